import Foundation

/// Where a ``FlowClient`` connects and how it behaves.
public struct FlowClientConfiguration: Sendable {
    /// How the client signs in at the WebSocket upgrade (SPEC §5.3).
    public enum Credential: Sendable {
        /// A personal access token or session token (sent as `Authorization: Bearer`).
        case token(String)
        /// A user name and password (HTTP Basic at the upgrade).
        case basic(username: String, password: String)
    }

    /// The gateway's WebSocket URL, e.g. `ws://127.0.0.1:8080/ws`.
    public var url: String
    public var credential: Credential?
    /// How long ``FlowClient/call(_:_:objectid:parameters:data:)`` waits for an answer,
    /// including the wait for a connection.
    public var callTimeout: Duration
    /// The first pause before reconnecting; it doubles after each failed attempt, up to `maxBackoff`.
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    /// The largest message accepted from the gateway.
    public var maxMessageBytes: Int
    /// How often the client pings the gateway; a connection that misses a pong is dropped and
    /// made again, so a dead path is noticed even when nothing is being called.
    public var pingInterval: Duration

    public init(
        url: String, credential: Credential? = nil, callTimeout: Duration = .seconds(60),
        initialBackoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(5), maxMessageBytes: Int = 1 << 20,
        pingInterval: Duration = .seconds(30)
    ) {
        self.url = url
        self.credential = credential
        self.callTimeout = callTimeout
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.maxMessageBytes = maxMessageBytes
        self.pingInterval = pingInterval
    }

    /// The `Authorization` header value for the credential.
    var authorization: String? {
        switch self.credential {
        case .token(let token): "Bearer \(token)"
        case .basic(let username, let password): "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
        case nil: nil
        }
    }

    /// The pause before reconnect attempt `attempt` (0 for the first): exponential, capped, with up to 20% jitter
    /// so that many providers cut at once do not all come back in the same instant.
    func backoff(attempt: Int) -> Duration {
        let doubled = self.initialBackoff * (1 << min(attempt, 20))
        let capped = min(doubled, self.maxBackoff)
        return capped + capped * Double.random(in: 0..<0.2)
    }
}
