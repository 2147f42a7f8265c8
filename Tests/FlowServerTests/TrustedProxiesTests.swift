import FlowAuth
@testable import FlowServer
import FlowProtocol
import FlowTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

/// `trusted_proxies`: behind a load balancer the client is named by `X-Forwarded-For`, and only
/// when the balancer is trusted.
struct TrustedProxiesTests {
    static func headers(_ values: String...) -> HTTPFields {
        var fields = HTTPFields()
        for value in values { fields.append(HTTPField(name: TrustedProxies.forwardedFor, value: value)) }
        return fields
    }

    @Test func theClientIsTheRightMostAddressNoTrustedProxyAdded() throws {
        let proxies = try TrustedProxies(["10.0.0.0/8", "::1", "fd00::/8"])
        // From a trusted proxy: the right-most address that is not one.
        #expect(proxies.client(peer: "10.1.2.3", headers: Self.headers("203.0.113.9")) == "203.0.113.9")
        #expect(proxies.client(peer: "10.1.2.3", headers: Self.headers("198.51.100.1, 203.0.113.9, 10.9.9.9")) == "203.0.113.9")
        #expect(proxies.client(peer: "::1", headers: Self.headers("198.51.100.1", "2001:db8::0001")) == "2001:db8::1", "several fields, canonical text")
        #expect(proxies.client(peer: "fd12::5", headers: Self.headers("[2001:db8::7]")) == "2001:db8::7")
        // What the client wrote to the left of the first untrusted address is never believed.
        #expect(proxies.client(peer: "10.1.2.3", headers: Self.headers("10.0.0.1, 203.0.113.9")) == "203.0.113.9")
        // From anywhere else, the header is the client's word: ignored.
        #expect(proxies.client(peer: "192.0.2.1", headers: Self.headers("203.0.113.9")) == "192.0.2.1")
        // Not an address where the walk stops: the last hop known is kept, the text never used.
        #expect(proxies.client(peer: "10.1.2.3", headers: Self.headers("203.0.113.9, evil\nline")) == "10.1.2.3")
        #expect(proxies.client(peer: "10.1.2.3", headers: Self.headers("unknown, 10.4.4.4")) == "10.4.4.4")
        #expect(proxies.client(peer: "10.1.2.3", headers: [:]) == "10.1.2.3")
        // None trusted (the default): the peer, whatever the header says.
        #expect(TrustedProxies.none.client(peer: "10.1.2.3", headers: Self.headers("203.0.113.9")) == "10.1.2.3")
    }

    @Test func entriesAreCheckedWhenTheConfigurationIsRead() throws {
        #expect(try GatewayConfiguration.load(flags: ["trusted_proxies": "10.0.0.0/8, 127.0.0.1"], environment: [:], file: nil).trustedProxies
            == TrustedProxies(["10.0.0.0/8", "127.0.0.1"]))
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.1/x", "::1/129"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try GatewayConfiguration.load(flags: ["trusted_proxies": bad], environment: [:], file: nil) }
        }
    }

    /// End to end: the per-address login limit counts the forwarded clients apart when the
    /// balancer (loopback here) is trusted, and as one when it is not.
    @Test(arguments: [true, false]) func theLoginLimitCountsForwardedClientsApartOnlyBehindATrustedProxy(_ trusted: Bool) async throws {
        try await LiveGateway.runShipped(configure: { configuration in
            configuration.auth.loginFailuresPerMinute = 3
            if trusted { configuration.trustedProxies = try! TrustedProxies(["127.0.0.1", "::1"]) }
        }) { live in
            // Three different names from one client: its address reaches the limit.
            for name in ["ghost1", "ghost2", "ghost3"] {
                let code = try await Self.failedLogin(live, name, from: "203.0.113.9")
                #expect(code == .unauthenticated)
            }
            let limited = try await Self.failedLogin(live, "ghost4", from: "203.0.113.9")
            #expect(limited == .rateLimited)
            // Another client behind the same balancer.
            let other = try await Self.failedLogin(live, "ghost5", from: "198.51.100.1")
            #expect(other == (trusted ? .unauthenticated : .rateLimited))
        }
    }

    static func failedLogin(_ live: LiveGateway, _ username: String, from client: String) async throws -> ErrorCode? {
        var headers = AuthEndToEndTests.anonymous
        headers[TrustedProxies.forwardedFor] = client
        let body = #"{"username":"\#(username)","password":"wrong-password"}"#
        return try await live.http("/api/auth/auth/session", method: .post, headers: headers, body: body).envelope().errorcode
    }
}
