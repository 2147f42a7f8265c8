public import FlowProtocol

/// One event frame (SPEC §13.1) on its way to a subscriber: a head of its own
/// (`{"event":"updated","watch":"w3",`) and a tail shared by every subscriber of the same change
/// (`"namespace":…,"position":"…"}`), so a change is encoded once however many watch it: each
/// subscriber's frame costs a few bytes of head and a reference to the shared tail.
public struct EventFrame: Sendable {
    /// `event`: created, updated, deleted, ended or overflow (the SSE `event:` line).
    public var kind: String
    /// The change's position (the SSE `id:` line); nil for frames that are no change.
    public var position: String?
    public var head: [UInt8]
    public var tail: [UInt8]

    /// A change (created, updated, deleted), not a watch's last word.
    var isEvent: Bool { self.kind != "ended" && self.kind != "overflow" }

    /// The frame's JSON text.
    public var bytes: [UInt8] { self.head + self.tail }

    /// `{"event":"<kind>",["reason":"<reason>",]"watch":"<watch>",` followed by `tail`.
    init(kind: String, reason: String? = nil, watch: String, position: String?, tail: [UInt8]) {
        var writer = JSONWriter(capacity: 64)
        writer.writeRaw(#"{"event":"#)
        writer.write(string: kind)
        if let reason {
            writer.writeRaw(#","reason":"#)
            writer.write(string: reason)
        }
        writer.writeRaw(#","watch":"#)
        writer.write(string: watch)
        self.init(kind: kind, position: position, head: writer.bytes, tail: tail)
    }

    private init(kind: String, position: String?, head: [UInt8], tail: [UInt8]) {
        self.kind = kind
        self.position = position
        self.head = head
        self.tail = tail
    }

    /// A change as `watch` sees it; `filtered` for the `deleted` of an object that stopped
    /// matching the watch's filter.
    static func change(_ encoded: EncodedChange, watch: String, filtered: Bool = false) -> EventFrame {
        EventFrame(
            kind: filtered ? ChangeKind.deleted.rawValue : encoded.kind.rawValue, reason: filtered ? "filtered" : nil, watch: watch,
            position: encoded.position, tail: encoded.tail
        )
    }

    /// `{"event":"ended","watch":…,"reason":…}`: the watch is over, nothing follows.
    static func ended(watch: String, reason: String) -> EventFrame {
        var tail = JSONWriter(capacity: 32)
        tail.writeRaw(#","reason":"#)
        tail.write(string: reason)
        tail.writeRaw("}")
        return EventFrame(kind: "ended", watch: watch, position: nil, tail: tail.bytes)
    }

    /// `{"event":"overflow","watch":…,"position":…}`: the watch ended because its socket fell
    /// behind; everything up to `position` was delivered, so resuming `since` it loses nothing.
    static func overflow(watch: String, position: String) -> EventFrame {
        var tail = JSONWriter(capacity: 48)
        tail.writeRaw(#","position":"#)
        tail.write(string: position)
        tail.writeRaw("}")
        return EventFrame(kind: "overflow", watch: watch, position: position, tail: tail.bytes)
    }
}

/// An event a provider published (SPEC §13.2), or one of `system/endpoints`: live only, so it
/// has no position and no rev.
public struct LiveEvent: Sendable {
    public var namespace: Namespace
    public var objectid: String
    public var kind: ChangeKind
    public var data: JSONValue

    public init(namespace: Namespace, objectid: String, kind: ChangeKind, data: JSONValue) {
        self.namespace = namespace
        self.objectid = objectid
        self.kind = kind
        self.data = data
    }
}

/// A change encoded once for all its subscribers: the shared tail of its frames, and the
/// object before and after, decoded on first need (filters ask for them).
final class EncodedChange: Sendable {
    let change: Change
    let kind: ChangeKind
    /// Nil for a live event (not in the change log).
    let position: String?
    let tail: [UInt8]

    /// Live: it is delivered to whoever watches now, and moves no watch's position.
    var isLive: Bool { self.position == nil }

    /// A provider's or system/endpoints' event: no rev, no position.
    convenience init(live event: LiveEvent) {
        let body = String(decoding: event.data.encoded(), as: UTF8.self)
        self.init(Change(position: 0, namespace: event.namespace.rawValue, objectid: event.objectid, kind: event.kind, rev: "", body: body), position: nil)
    }

    /// A change of the log, at its position in `epoch`.
    convenience init(_ change: Change, epoch: String) {
        self.init(change, position: FeedPosition(epoch: epoch, sequence: change.position).description)
    }

    private init(_ change: Change, position: String?) {
        self.change = change
        self.kind = change.kind
        self.position = position
        var writer = JSONWriter(capacity: change.body.utf8.count + 128)
        writer.writeRaw(#","namespace":"#)
        writer.write(string: change.namespace)
        writer.writeRaw(#","objectid":"#)
        writer.write(string: change.objectid)
        if position != nil {
            writer.writeRaw(#","rev":"#)
            writer.write(string: change.rev)
        }
        writer.writeRaw(#","data":"#)
        writer.write(encoded: change.body)
        if let position {
            writer.writeRaw(#","position":"#)
            writer.write(string: position)
        }
        writer.writeRaw("}")
        self.tail = writer.bytes
        self.objects = Locked(nil)
    }

    private let objects: Locked<(after: JSONObject?, before: JSONObject?)?>

    /// The object after the change (the last state for a delete) and before an update.
    var decoded: (after: JSONObject?, before: JSONObject?) {
        self.objects.withLock { cached in
            if let cached { return cached }
            // A live event's data need not be an object: then no filter matches it.
            let decoded = (try? decodeStoredObject(self.change.body), self.change.previous.flatMap { try? decodeStoredObject($0) })
            cached = decoded
            return decoded
        }
    }
}
