/// Why a ``FlowClient`` call did not get an answer from the gateway.
public struct FlowClientError: Error, Sendable, Equatable, CustomStringConvertible {
    private enum Reason: Equatable {
        case timedOut
        case connectionLost
        case stopped
    }
    private let reason: Reason

    /// No answer (or no connection) within the call timeout.
    public static let timedOut = Self(reason: .timedOut)
    /// The connection closed while the call was in flight; it may or may not have run.
    public static let connectionLost = Self(reason: .connectionLost)
    /// The client was stopped.
    public static let stopped = Self(reason: .stopped)

    public var description: String {
        switch self.reason {
        case .timedOut: "no answer from the gateway within the call timeout"
        case .connectionLost: "the connection to the gateway closed during the call"
        case .stopped: "the client is stopped"
        }
    }
}
