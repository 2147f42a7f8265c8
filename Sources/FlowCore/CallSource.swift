public import FlowProtocol

/// The seam between a transport and the dispatcher. A transport decodes what arrived into a
/// ``DecodedCall`` and hands it to ``Dispatcher/dispatch(_:from:deliver:)`` with the
/// ``CallSource`` it arrived from; it writes what comes back. Everything else — the failure
/// answer for what did not decode, which task a call runs in, whether a client hanging up
/// cancels it — the dispatcher decides.
public enum DecodedCall: Sendable {
    /// A call to run.
    case call(CallRequest)
    /// What arrived is no call; answered as a failure with the requestid read from it, if any.
    case failure(FlowError, requestid: RequestID?)

    /// The call's requestid, or the one read from what failed to decode.
    public var requestid: RequestID? {
        switch self {
        case .call(let request): request.envelope.requestid
        case .failure(_, let requestid): requestid
        }
    }
}

/// Where calls come from: one WebSocket (for all its frames) or one HTTP request.
public struct CallSource: Sendable {
    public var transport: Transport
    /// The peer address, for rate limits and audit lines.
    public var clientAddress: String?
    /// The WebSocket (or stream) events and provider calls go to; nil over plain HTTP.
    public var connection: (any ConnectionHandle)?
    /// The credential of the connection or request; a frame's own `token` wins over it.
    public var credential: Credential?
    /// How the task that dispatches relates to the call.
    public var tasking: CallTasking

    public init(
        transport: Transport, clientAddress: String? = nil, connection: (any ConnectionHandle)? = nil, credential: Credential? = nil,
        tasking: CallTasking
    ) {
        self.transport = transport
        self.clientAddress = clientAddress
        self.connection = connection
        self.credential = credential
        self.tasking = tasking
    }

    /// The origin of a call from here; `token` is the call's own (a WebSocket frame's).
    public func origin(token: String? = nil) -> CallOrigin {
        CallOrigin(transport: self.transport, credential: token.map { .token($0) } ?? self.credential, clientAddress: self.clientAddress, connection: self.connection)
    }
}

/// What the task a transport dispatches from is to the call.
public enum CallTasking: Sendable {
    /// The task exists for this one call (a WebSocket frame's): the call runs in it, and a
    /// timeout cancels it. The transport cancels it when the client goes away.
    case dedicated
    /// The task serves the transport (an HTTP request's handler): the call runs in a child, and
    /// calls that may wait long (providers, upstreams) in a task `hangUp` cancels when the
    /// client goes away.
    case shared(hangUp: (any HangUpSignal)?)
}

/// Tells when the client of a request has gone away.
public protocol HangUpSignal: Sendable {
    /// Runs `operation` in a task of its own that is cancelled once the client is gone.
    func run<T: Sendable>(_ operation: @escaping @Sendable () async -> T) async -> T
}
