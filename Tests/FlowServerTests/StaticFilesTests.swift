import FlowServer
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

/// The browser's files (SPEC §10 "Browser"): served without a credential, the dashboard under a
/// strict Content-Security-Policy, and off when `dashboard` is false.
@Suite struct StaticFilesTests {
    @Test func theClientAndTheDashboardAreServedWithoutACredential() async throws {
        try await LiveGateway.run { live in
            let module = try await live.http("/client/flowgate.js", headers: [.anonymous: "1"])
            #expect(module.head.status == .ok)
            #expect(module.head.headerFields[.contentType] == "text/javascript; charset=utf-8")
            #expect(module.bodyText.contains("export function connect"))
            let page = try await live.http("/dashboard/", headers: [.anonymous: "1"])
            #expect(page.head.status == .ok)
            let policy = try #require(page.head.headerFields[.contentSecurityPolicy])
            #expect(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'") && !policy.contains("unsafe"))
            #expect(!page.bodyText.contains("<script>"), "no inline script")
            #expect(try await live.http("/dashboard/dashboard.js", headers: [.anonymous: "1"]).head.status == .ok)
        }
    }

    @Test func theDashboardCanBeTurnedOff() async throws {
        try await LiveGateway.run(configure: { $0.dashboard = false }) { live in
            let page = try await live.http("/dashboard/", headers: [.anonymous: "1"])
            let module = try await live.http("/client/flowgate.js", headers: [.anonymous: "1"])
            #expect(page.head.status == .notFound)
            #expect(module.head.status == .ok)
        }
    }
}
