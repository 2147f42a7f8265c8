/// When an HTTP connection has waited too long for its client (SPEC §11): a value type that is
/// told what happens on the connection and the time, and answers with its next deadline.
///
/// - Between requests the connection may stay idle for `idleTimeout` (keep-alive).
/// - Once the first byte of a request head arrives, the whole head must arrive within
///   `headTimeout`, and be at most `maxHeadBytes` long.
/// - While a request body is read, each `idleTimeout` must bring more of it.
/// - While a handler works on a request there is no deadline here (the call has its own).
/// - An upgraded connection (WebSocket) is no longer watched: the socket has its pings.
struct ConnectionTimeouts<Instant: InstantProtocol> where Instant.Duration == Duration {
    enum Reason: Equatable {
        case idle, head, body
    }

    let idleTimeout: Duration
    let headTimeout: Duration
    let maxHeadBytes: Int

    /// Requests whose head arrived and whose response has not ended (more than one if pipelined).
    private(set) var inFlight = 0
    private(set) var readingBody = false
    private(set) var upgraded = false
    private var idleSince: Instant
    /// When the first byte of the next head arrived, and how many bytes arrived since.
    private var headStarted: Instant?
    private var headBytes = 0
    private var lastBodyBytes: Instant

    init(idleTimeout: Duration, headTimeout: Duration, maxHeadBytes: Int, now: Instant) {
        self.idleTimeout = idleTimeout
        self.headTimeout = headTimeout
        self.maxHeadBytes = maxHeadBytes
        self.idleSince = now
        self.lastBodyBytes = now
    }

    /// Whether bytes that arrive now belong to a request head not yet complete.
    var awaitingHead: Bool { !self.upgraded && self.inFlight == 0 }

    /// `count` bytes came from the client, of which `headPart` (all when nil) belong to the
    /// head being received.
    mutating func received(_ count: Int, headPart: Int? = nil, now: Instant) {
        guard !self.upgraded, count > 0 else { return }
        if self.inFlight == 0 {
            if self.headStarted == nil { self.headStarted = now }
            self.headBytes += headPart ?? count
        } else if self.readingBody {
            self.lastBodyBytes = now
        }
    }

    /// A request head was decoded.
    mutating func headReceived(now: Instant) {
        self.inFlight += 1
        self.readingBody = true
        self.headStarted = nil
        self.headBytes = 0
        self.lastBodyBytes = now
    }

    /// The request's body ended.
    mutating func requestEnded() {
        self.readingBody = false
    }

    /// A response was written in full.
    mutating func responseEnded(now: Instant) {
        self.inFlight = max(0, self.inFlight - 1)
        if self.inFlight == 0 { self.idleSince = now }
    }

    /// The connection became a WebSocket.
    mutating func upgrade() {
        self.upgraded = true
    }

    /// Whether the head being received is already longer than allowed.
    var headTooLarge: Bool { !self.upgraded && self.inFlight == 0 && self.headBytes > self.maxHeadBytes }

    /// When the connection is to be closed unless something happens first, and why.
    var deadline: (at: Instant, reason: Reason)? {
        if self.upgraded { return nil }
        if self.inFlight == 0 {
            if let headStarted { return (headStarted.advanced(by: self.headTimeout), .head) }
            return (self.idleSince.advanced(by: self.idleTimeout), .idle)
        }
        if self.readingBody { return (self.lastBodyBytes.advanced(by: self.idleTimeout), .body) }
        return nil
    }
}
