import FlowCore
import Logging
public import ServiceLifecycle

/// The auth service's background work, as a `Service`: picks up changes other processes made
/// to the store (SPEC §9.6: within one second), notices token expiries (so sockets opened with an
/// expired token close), and deletes expired tokens.
public struct AuthHousekeeping: Service {
    let auth: AuthService

    public init(auth: AuthService) {
        self.auth = auth
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.loop() }
    }

    private func loop() async {
        var checked = self.auth.now()
        var lastPurge = ContinuousClock.now
        // Logged once per run of failures (a database out of reach fails every round), and its end.
        var failing = false
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: self.auth.configuration.refreshInterval)
            } catch {
                return
            }
            do {
                try await self.auth.refreshIfChanged()
                checked = self.auth.noticeExpiries(since: checked)
                if ContinuousClock.now - lastPurge >= self.auth.configuration.purgeInterval {
                    lastPurge = .now
                    try await self.auth.purgeExpiredTokens()
                }
                if failing {
                    failing = false
                    self.auth.logger.notice("auth housekeeping works again")
                }
            } catch {
                if !failing {
                    failing = true
                    self.auth.logger.error("auth housekeeping failed; retrying quietly until it works", metadata: ["flow.error": "\(error)"])
                }
            }
        }
    }
}
