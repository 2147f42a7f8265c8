public import FlowProtocol

/// What happened to an object (SPEC §13.1: an event's `event` field).
public enum ChangeKind: String, Sendable {
    case created
    case updated
    case deleted
}

/// One committed write to a collection, as the change log keeps it (SPEC §13.2).
public struct Change: Sendable {
    /// Its place in the log: strictly increasing in commit order.
    public var position: Int64
    public var namespace: String
    public var objectid: String
    public var kind: ChangeKind
    public var rev: String
    /// The object after the change (its last state for `deleted`), as stored JSON text.
    public var body: String
    /// The object before an update, as stored JSON text: whether it matched a watch's filter
    /// decides the "stopped matching" event. Nil for creates and deletes.
    public var previous: String?

    public init(position: Int64, namespace: String, objectid: String, kind: ChangeKind, rev: String, body: String, previous: String? = nil) {
        self.position = position
        self.namespace = namespace
        self.objectid = objectid
        self.kind = kind
        self.rev = rev
        self.body = body
        self.previous = previous
    }
}

/// A place in the change log as clients see it: `<epoch>.<sequence>`. The epoch names the log
/// (a new database, or a restored one, starts a new epoch), so a position from another log is
/// recognised and refused, never read as a place in this one (SPEC §13.1).
public struct FeedPosition: Sendable, Hashable, CustomStringConvertible {
    public var epoch: String
    /// Every change at or before it has been seen.
    public var sequence: Int64

    public init(epoch: String, sequence: Int64) {
        self.epoch = epoch
        self.sequence = sequence
    }

    /// Reads a position a client sends back; nil for text no log could have produced.
    public init?(_ text: String) {
        guard text.utf8.count <= 64, let dot = text.lastIndex(of: "."), let sequence = Int64(text[text.index(after: dot)...]), sequence >= 0
        else { return nil }
        let epoch = text[..<dot]
        guard !epoch.isEmpty, epoch.unicodeScalars.allSatisfy({ $0.properties.isASCIIHexDigit || ("g"..."z").contains($0) }) else { return nil }
        self.init(epoch: String(epoch), sequence: sequence)
    }

    public var description: String { "\(self.epoch).\(self.sequence)" }

    /// A fresh epoch for a new (or restored) log: 64 random bits in base 36.
    public static func newEpoch() -> String {
        String(UInt64.random(in: 1 << 40...UInt64.max), radix: 36)
    }
}

/// What the change log keeps (SPEC §13.1: the last 100,000 changes or 7 days, whichever is less).
public struct ChangeRetention: Sendable, Equatable {
    public var maxChanges: Int
    public var maxAge: Duration

    public init(maxChanges: Int = 100_000, maxAge: Duration = .seconds(7 * 24 * 3600)) {
        self.maxChanges = maxChanges
        self.maxAge = maxAge
    }
}

/// The durable change log of the collections (SPEC §13.2). Each collection write appends its
/// change in the write's own transaction, so a change is in the log if and only if its write
/// committed.
public protocol ChangeLog: Sendable {
    /// The log's epoch (fixed for the life of the database).
    var epoch: String { get }
    /// The last position written, and the last one pruned: a client position `p` can resume
    /// iff `pruned <= p <= head`.
    func bounds() async throws -> (head: Int64, pruned: Int64)
    /// Up to `limit` changes after `position` in `namespace` (of `objectid` only, when given), in order.
    func changes(after position: Int64, namespace: String, objectid: String?, limit: Int) async throws -> [Change]
    /// Up to `limit` changes after `position`, of every namespace, in order.
    func changes(after position: Int64, limit: Int) async throws -> [Change]
    /// Drops what `retention` no longer keeps; returns how many changes went.
    @discardableResult
    func prune(_ retention: ChangeRetention) async throws -> Int
    /// Receives every committed change, in commit order, right after its commit.
    func onCommit(_ receiver: @escaping @Sendable (Change) -> Void)
}

/// A change log other processes append to as well: several nodes sharing one database (SPEC §12).
/// Their changes reach this process's watches through ``follow(_:)``, not ``onCommit(_:)``.
public protocol SharedChangeLog: ChangeLog {
    /// Calls `advanced` whenever the log may hold changes this process has not seen, until the
    /// task is cancelled: with the position committed, at once when a node commits one; with nil
    /// now and then regardless.
    func follow(_ advanced: @escaping @Sendable (Int64?) -> Void) async
}

extension ChangeLog {
    /// The position to resume from, checked against this log: `CURSOR_EXPIRED` for a position
    /// of another epoch, older than the log keeps, or beyond its head; `INVALID_REQUEST` for
    /// text that is no position at all. "Older than the log keeps" counts `retention`'s
    /// number of changes at once, not only once pruning has run.
    public func resumable(_ text: String, retention: ChangeRetention? = nil) async throws -> Int64 {
        guard let position = FeedPosition(text) else {
            throw FlowError(.invalidRequest, "'since' must be a position from paging.position or an event")
        }
        guard position.epoch == self.epoch else {
            throw FlowError(.cursorExpired, "The position is from another change log (a new or restored database): list again")
        }
        let (head, pruned) = try await self.bounds()
        let kept = retention.map { head - Int64($0.maxChanges) } ?? pruned
        guard position.sequence >= max(pruned, kept) else {
            throw FlowError(.cursorExpired, "The position is older than the change log keeps: list again")
        }
        guard position.sequence <= head else {
            throw FlowError(.cursorExpired, "The position is ahead of this change log: list again")
        }
        return position.sequence
    }
}
