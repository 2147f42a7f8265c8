import FlowCore
import FlowProtocol
import Testing

struct ScopePolicyTests {
    let policy = ScopePolicy()

    func definition(_ namespace: String, selfService: Set<Method> = [], overrides: [Method: String] = [:]) -> EndpointDefinition {
        EndpointDefinition(
            namespace: Namespace(namespace)!, title: "t", methods: Set(Method.allCases), selfServiceMethods: selfService,
            scopeOverrides: overrides.mapValues { Scope($0)! }
        )
    }

    func allows(_ scopes: [String], _ method: Method, _ endpoint: EndpointDefinition, narrowedTo: [String]? = nil) -> Bool {
        let grants = Grants(scopes.compactMap(Scope.init), narrowedTo: narrowedTo.map { $0.compactMap(Scope.init) })
        do {
            try self.policy.authorize(Identity(username: "u", roles: [], grants: grants), method: method, objectid: nil, endpoint: endpoint)
            return true
        } catch {
            #expect(error.code == .forbidden)
            return false
        }
    }

    @Test func checksTheMethodAndNamespaceAgainstTheScopes() {
        let device = self.definition("inventory/device")
        #expect(self.allows(["*:LIST,OPEN,INDEX"], .list, device))
        #expect(!self.allows(["*:LIST,OPEN,INDEX"], .create, device))
        #expect(self.allows(["inventory/*:*"], .delete, device))
        #expect(!self.allows(["billing/*:*"], .list, device))
        #expect(!self.allows(["*:*"], .list, self.definition("auth/users")), "* never reaches the reserved applications")
        #expect(self.allows(["auth/*:*"], .list, self.definition("auth/users")))
        #expect(!self.allows(["provide:*"], .list, device), "a provide scope allows no call")
    }

    @Test func aNarrowedTokenNeedsBothItsOwnAndItsUsersScopes() {
        let device = self.definition("inventory/device")
        #expect(self.allows(["*:*"], .list, device, narrowedTo: ["inventory/*:LIST"]))
        #expect(!self.allows(["*:*"], .create, device, narrowedTo: ["inventory/*:LIST"]))
        #expect(!self.allows(["*:OPEN"], .list, device, narrowedTo: ["inventory/*:LIST"]), "the user lost LIST since")
    }

    @Test func selfServiceNeedsOnlyASignedInCallerAndOverridesAreHonoured() throws {
        let tokens = self.definition("auth/tokens", selfService: [.list, .create])
        #expect(self.allows([], .list, tokens))
        #expect(!self.allows([], .delete, tokens))
        #expect(throws: FlowError.self) {
            try self.policy.authorize(.anonymous, method: .list, objectid: nil, endpoint: tokens)
        }
        let report = self.definition("reports/daily", overrides: [.run: "reports/*:LIST"])
        #expect(self.allows(["reports/*:LIST"], .run, report))
        #expect(!self.allows(["reports/*:RUN"], .run, report))
    }
}
