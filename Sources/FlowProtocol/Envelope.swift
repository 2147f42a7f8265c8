import OrderedCollections

/// A decoded request envelope (SPEC §2).
///
/// Absent, `null` and empty-string values of `objectid`, `token` and `namespace` are all nil,
/// so every transport hands the dispatcher the same shape.
public struct Envelope: Sendable, Equatable {
    public var method: Method
    public var namespace: Namespace?
    public var objectid: String?
    public var token: String?
    public var parameters: JSONValue?
    public var data: JSONValue?
    public var requestid: RequestID?
    /// A W3C trace context (`00-<trace id>-<parent id>-<flags>`, SPEC §10) to continue; one that
    /// is not well formed is ignored (a new trace starts), as the W3C recommendation says.
    public var traceparent: String?

    public init(
        method: Method,
        namespace: Namespace? = nil,
        objectid: String? = nil,
        token: String? = nil,
        parameters: JSONValue? = nil,
        data: JSONValue? = nil,
        requestid: RequestID? = nil
    ) {
        self.method = method
        self.namespace = namespace
        self.objectid = objectid
        self.token = token
        self.parameters = parameters
        self.data = data
        self.requestid = requestid
    }
}

/// What a WebSocket text frame turned out to be.
public enum InboundFrame: Sendable, Equatable {
    /// A request envelope.
    case envelope(Envelope)
    /// A provider frame (it has a `call`, `cancel` or `publish` field, SPEC §5.4, §13.2): never an envelope.
    case provider(JSONObject)
}

/// A frame or body that could not be decoded into an envelope. Carries the `requestid` when
/// one could be read, so the failure response still reaches the right pending call.
public struct EnvelopeDecodingError: Error, Sendable, Equatable {
    public var error: FlowError
    public var requestid: RequestID?

    public init(_ error: FlowError, requestid: RequestID? = nil) {
        self.error = error
        self.requestid = requestid
    }
}

extension Envelope {
    /// Decodes one frame: JSON text → provider frame or envelope, strictly.
    ///
    /// Checks run in SPEC §3's order: the text (`INVALID_JSON`), then the field types
    /// (`INVALID_REQUEST`, naming the field), then the method (`UNKNOWN_METHOD`).
    /// Unknown top-level fields are ignored.
    public static func decodeFrame(
        _ bytes: UnsafeRawBufferPointer,
        maxDepth: Int = JSONValue.defaultMaxDepth
    ) throws(EnvelopeDecodingError) -> InboundFrame {
        // The common case in one pass, without building the top-level object. Anything else
        // (errors included) takes the general path below, which gives the same result for the
        // frames the fast path reads.
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        if let fields = try? parser.parseEnvelopeFields() { return .envelope(try Self(fields)) }
        let value: JSONValue
        do {
            value = try JSONValue(parsing: bytes, maxDepth: maxDepth)
        } catch {
            throw EnvelopeDecodingError(FlowError(.invalidJSON, "Invalid JSON: \(error)"))
        }
        guard case .object(let object) = value else {
            throw EnvelopeDecodingError(FlowError(.invalidRequest, "The request must be a JSON object, not \(value.typeName)"))
        }
        if object["call"] != nil || object["cancel"] != nil || object["publish"] != nil { return .provider(object) }
        return .envelope(try Self(decoding: object))
    }

    /// Decodes one frame from a byte array; see ``decodeFrame(_:maxDepth:)-(UnsafeRawBufferPointer,_)``.
    public static func decodeFrame(_ bytes: [UInt8], maxDepth: Int = JSONValue.defaultMaxDepth) throws(EnvelopeDecodingError) -> InboundFrame {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(EnvelopeDecodingError) in try Self.decodeFrame(raw, maxDepth: maxDepth) }
        }
        return try result.get()
    }

    /// Decodes an envelope from an already parsed JSON object.
    public init(decoding object: JSONObject) throws(EnvelopeDecodingError) {
        try self.init(EnvelopeFields(object))
    }

    /// Checks the fields' types and values, in SPEC §3's order.
    init(_ fields: EnvelopeFields) throws(EnvelopeDecodingError) {
        let requestid: RequestID?
        do { requestid = try Self.requestID(fields.requestid) } catch { throw EnvelopeDecodingError(error) }
        do {
            let methodText = try Self.optionalString(fields.method, field: "method")
            let namespace = try Self.namespace(Self.optionalString(fields.namespace, field: "namespace"))
            let objectid = try Self.objectID(Self.optionalString(fields.objectid, field: "objectid"))
            let token = try Self.optionalString(fields.token, field: "token")
            let parameters = try Self.parameters(fields.parameters)
            let data = fields.data.flatMap { value -> JSONValue? in value == .null ? nil : value }
            let method = try Self.method(methodText)
            self.init(
                method: method, namespace: namespace, objectid: objectid, token: token,
                parameters: parameters, data: data, requestid: requestid
            )
            if case .string(let traceparent)? = fields.traceparent { self.traceparent = Self.traceparent(traceparent) }
        } catch {
            throw EnvelopeDecodingError(error, requestid: requestid)
        }
    }

    /// `text` if it is a well-formed version-00 `traceparent` with non-zero ids, else nil.
    public static func traceparent(_ text: String) -> String? {
        // The length first: a long value is refused without being copied.
        guard text.utf8.count == 55 else { return nil }
        let bytes = Array(text.utf8)
        guard bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-") else { return nil }
        func isHex(_ range: Range<Int>) -> Bool {
            bytes[range].allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
        }
        func isZero(_ range: Range<Int>) -> Bool { bytes[range].allSatisfy { $0 == UInt8(ascii: "0") } }
        guard isHex(0..<2), isHex(3..<35), isHex(36..<52), isHex(53..<55), bytes[0..<2] != [0x66, 0x66] else { return nil }
        guard !isZero(3..<35), !isZero(36..<52) else { return nil }
        return text
    }

    /// A string field: nil when absent, `null` or empty.
    static func optionalString(_ value: JSONValue?, field: String) throws(FlowError) -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let string)?: return string.isEmpty ? nil : string
        case let other?: throw FlowError(.invalidRequest, "Field '\(field)' must be a string, not \(other.typeName)")
        }
    }

    /// `method`: missing or not one of the seven (exact upper case) is `UNKNOWN_METHOD`.
    public static func method(_ text: String?) throws(FlowError) -> Method {
        guard let text else { throw FlowError(.unknownMethod, "Field 'method' is required") }
        guard let method = Method(rawValue: text) else {
            throw FlowError(.unknownMethod, "Unknown method '\(text.prefix(32))'; expected one of LIST, OPEN, UPDATE, DELETE, INDEX, CREATE, RUN")
        }
        return method
    }

    /// `namespace`, normalised; nil when absent.
    public static func namespace(_ text: String?) throws(FlowError) -> Namespace? {
        guard let text else { return nil }
        guard let namespace = Namespace(text) else {
            throw FlowError(.invalidRequest, "Field 'namespace' is not a valid namespace (lowercase segments [a-z0-9][a-z0-9_.-]* separated by '/', at most 8 segments and 200 characters)")
        }
        return namespace
    }

    /// `objectid`: nil when absent; otherwise 1–200 characters, no control characters, no `/`.
    public static func objectID(_ text: String?) throws(FlowError) -> String? {
        guard let text else { return nil }
        guard ObjectID.isValid(text) else {
            throw FlowError(.invalidRequest, "Field 'objectid' must be 1-200 characters without control characters or '/'")
        }
        return text
    }

    /// `parameters`: a string or a JSON object; nil when absent or `null`.
    static func parameters(_ value: JSONValue?) throws(FlowError) -> JSONValue? {
        switch value {
        case nil, .null?: return nil
        case .string?, .object?: return value
        case let other?: throw FlowError(.invalidRequest, "Field 'parameters' must be a string or an object, not \(other.typeName)")
        }
    }

    /// `requestid`: a string of at most 128 characters or an integer; nil when absent or `null`.
    public static func requestID(_ value: JSONValue?) throws(FlowError) -> RequestID? {
        switch value {
        case nil, .null?: return nil
        case .string(let string)?:
            guard string.unicodeScalars.count <= RequestID.maxLength else {
                throw FlowError(.invalidRequest, "Field 'requestid' must be at most \(RequestID.maxLength) characters")
            }
            return .string(string)
        case .integer(let integer)?: return .integer(integer)
        case let other?: throw FlowError(.invalidRequest, "Field 'requestid' must be a string or an integer, not \(other.typeName)")
        }
    }
}

/// An envelope's fields as a frame holds them, before their types are checked.
struct EnvelopeFields {
    var method: JSONValue?
    var namespace: JSONValue?
    var objectid: JSONValue?
    var token: JSONValue?
    var parameters: JSONValue?
    var data: JSONValue?
    var requestid: JSONValue?
    var traceparent: JSONValue?

    init() {}

    init(_ object: JSONObject) {
        self.method = object["method"]
        self.namespace = object["namespace"]
        self.objectid = object["objectid"]
        self.token = object["token"]
        self.parameters = object["parameters"]
        self.data = object["data"]
        self.requestid = object["requestid"]
        self.traceparent = object["traceparent"]
    }
}

extension JSONParser {
    /// The top-level members a frame may have, told apart by their bytes.
    private enum FrameKey {
        case method, namespace, objectid, token, parameters, data, requestid, traceparent
        /// `call`, `cancel` or `publish`: a provider frame.
        case provider
        case other
    }

    /// Reads a whole frame that is an object of plain (ASCII, unescaped) keys and is no provider
    /// frame, keeping only the envelope's fields — last one wins, as in the general path.
    /// Returns nil for any other frame; throws where the JSON is invalid.
    mutating func parseEnvelopeFields() throws(JSONParseError) -> EnvelopeFields? {
        self.skipWhitespace()
        guard try self.peek() == UInt8(ascii: "{") else { return nil }
        try self.enterContainer()
        var fields = EnvelopeFields()
        self.skipWhitespace()
        if try self.peek() == UInt8(ascii: "}") {
            self.index += 1
        } else {
            members: while true {
                self.skipWhitespace()
                guard try self.peek() == UInt8(ascii: "\""), let key = self.plainKey() else { return nil }
                self.skipWhitespace()
                guard try self.peek() == UInt8(ascii: ":") else { throw self.error(.unexpectedByte(self.bytes[self.index])) }
                self.index += 1
                self.skipWhitespace()
                let value = try self.parseValue()
                switch key {
                case .method: fields.method = value
                case .namespace: fields.namespace = value
                case .objectid: fields.objectid = value
                case .token: fields.token = value
                case .parameters: fields.parameters = value
                case .data: fields.data = value
                case .requestid: fields.requestid = value
                case .traceparent: fields.traceparent = value
                case .provider: return nil
                case .other: break
                }
                self.skipWhitespace()
                switch try self.peek() {
                case UInt8(ascii: ","): self.index += 1
                case UInt8(ascii: "}"):
                    self.index += 1
                    break members
                case let byte: throw self.error(.unexpectedByte(byte))
                }
            }
        }
        self.depth -= 1
        self.skipWhitespace()
        guard self.index == self.bytes.count else { throw self.error(.trailingData) }
        return fields
    }

    /// The key at the opening quote, if it is printable ASCII without escapes; the index moves past it.
    private mutating func plainKey() -> FrameKey? {
        let start = self.index + 1
        var end = start
        while end < self.bytes.count {
            let byte = self.bytes[end]
            if byte == UInt8(ascii: "\"") { break }
            guard byte >= 0x20, byte < 0x80, byte != UInt8(ascii: "\\") else { return nil }
            end += 1
        }
        guard end < self.bytes.count else { return nil }
        self.index = end + 1
        let key = UnsafeRawBufferPointer(rebasing: self.bytes[start..<end])
        func equals(_ name: StaticString) -> Bool {
            name.utf8CodeUnitCount == key.count && UnsafeRawBufferPointer(start: name.utf8Start, count: key.count).elementsEqual(key)
        }
        switch key.count {
        case 4 where equals("data"): return .data
        case 4 where equals("call"): return .provider
        case 5 where equals("token"): return .token
        case 6 where equals("method"): return .method
        case 6 where equals("cancel"): return .provider
        case 7 where equals("publish"): return .provider
        case 8 where equals("objectid"): return .objectid
        case 9 where equals("namespace"): return .namespace
        case 9 where equals("requestid"): return .requestid
        case 10 where equals("parameters"): return .parameters
        case 11 where equals("traceparent"): return .traceparent
        default: return .other
        }
    }
}
