import FlowCore
import FlowProtocol
import Testing

@Suite struct ScopeTests {
    func scope(_ text: String) throws -> Scope { try #require(Scope(text), "\(text)") }
    func ns(_ text: String) throws -> Namespace { try #require(Namespace(text)) }

    @Test func parsingAndCanonicalText() throws {
        #expect(try self.scope("inventory/*:OPEN,LIST,INDEX").description == "inventory/*:LIST,OPEN,INDEX")
        #expect(try self.scope("*:LIST,OPEN,UPDATE,DELETE,INDEX,CREATE,RUN").description == "*:*")
        #expect(try self.scope("provide:scheduler/*").description == "provide:scheduler/*")
        for bad in ["", "*", "inventory", "inventory/*:", "inventory/*:list", "inventory/*:LIST,", "Inventory/*:LIST",
                    "a//b:LIST", "/a:LIST", "a/*b:LIST", "provide:", "provide:A", ":LIST", "a/b/c/d/e/f/g/h/i:LIST"] {
            #expect(Scope(bad) == nil, "\(bad)")
        }
    }

    @Test func matching() throws {
        let inventory = try self.scope("inventory/*:LIST,OPEN")
        #expect(inventory.allows(.list, on: try self.ns("inventory/device")))
        #expect(inventory.allows(.open, on: try self.ns("inventory/device/ports")))
        #expect(!inventory.allows(.create, on: try self.ns("inventory/device")))
        #expect(!inventory.allows(.list, on: try self.ns("inventory")))
        #expect(!inventory.allows(.list, on: try self.ns("inventoryx/device")))

        let middle = try self.scope("app/*/status:OPEN")
        #expect(middle.allows(.open, on: try self.ns("app/a/status")))
        #expect(!middle.allows(.open, on: try self.ns("app/a/b/status")))
        #expect(!middle.allows(.open, on: try self.ns("app/a/status/x")))

        let everything = try self.scope("*:*")
        #expect(everything.allows(.run, on: try self.ns("scheduler/queue")))
        #expect(everything.allows(.run, on: try self.ns("x")))
        // `*` never reaches the reserved applications; naming them does.
        #expect(!everything.allows(.open, on: try self.ns("auth/session")))
        #expect(!everything.allows(.list, on: try self.ns("system/endpoints")))
        #expect(try self.scope("auth/*:*").allows(.create, on: try self.ns("auth/tokens")))
        #expect(try self.scope("system/endpoints:LIST").allows(.list, on: try self.ns("system/endpoints")))

        // Provide scopes allow providing only, and call scopes never allow providing.
        let provide = try self.scope("provide:scheduler/*")
        #expect(provide.allowsProviding(try self.ns("scheduler/queue")))
        #expect(!provide.allows(.list, on: try self.ns("scheduler/queue")))
        #expect(!everything.allowsProviding(try self.ns("scheduler/queue")))
        #expect(!(try self.scope("provide:*")).allowsProviding(try self.ns("auth/session")))
    }

    /// A token's scopes must be covered by its user's: narrowing is allowed, widening is not.
    @Test func covering() throws {
        let cases: [(String, String, Bool)] = [
            ("*:*", "inventory/*:LIST", true),
            ("*:*", "inventory/device:*", true),
            ("*:*", "auth/*:LIST", false),
            ("*:*", "*:LIST", true),
            ("*:LIST", "*:*", false),
            ("inventory/*:LIST,OPEN", "inventory/device:OPEN", true),
            ("inventory/*:LIST,OPEN", "inventory/*:LIST", true),
            ("inventory/*:LIST,OPEN", "inventory/device/ports:LIST", true),
            ("inventory/*:LIST", "inventory/*:CREATE", false),
            ("inventory/*:LIST", "*:LIST", false),
            ("inventory/device:LIST", "inventory/*:LIST", false),
            ("app/*/status:OPEN", "app/x/status:OPEN", true),
            ("app/*/status:OPEN", "app/*:OPEN", false),
            ("app/*/status:OPEN", "app/*/status:OPEN", true),
            ("a/*/b:OPEN", "a/*:OPEN", false),
            ("a/*:OPEN", "a/*/b:OPEN", true),
            ("provide:*", "provide:scheduler/*", true),
            ("provide:*", "provide:auth/x", false),
            ("provide:scheduler/*", "scheduler/*:LIST", false),
            ("*:*", "provide:scheduler/*", false),
        ]
        for (mine, theirs, expected) in cases {
            #expect(try self.scope(mine).covers(try self.scope(theirs)) == expected, "\(mine) covers \(theirs)")
        }
        let admin = try ["*:*", "auth/*:*", "system/*:*", "provide:*"].map(self.scope)
        #expect(admin.cover(try ["auth/tokens:LIST", "inventory/*:*", "provide:x"].map(self.scope)))
        #expect(!(try ["*:LIST,OPEN,INDEX"].map(self.scope)).cover(try ["inventory/*:CREATE"].map(self.scope)))
        #expect(admin.allow(.open, on: try self.ns("system/endpoints")))
    }
}
