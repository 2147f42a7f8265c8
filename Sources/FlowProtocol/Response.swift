import OrderedCollections

/// A response envelope (SPEC §3). The same bytes travel over WebSocket and HTTP.
public struct Response: Sendable, Equatable {
    /// Application status; `0` unless the handler sets one.
    public var status: Int
    /// Always present.
    public var success: Bool
    /// The result, or structured detail of a failure.
    public var payload: JSONPayload?
    /// Failure only: human-readable and safe to show.
    public var message: String?
    /// Failure only: the stable code.
    public var errorcode: ErrorCode?
    /// Failure only: a fresh UUID, also logged with the internal detail.
    public var errorid: String?
    /// `"JSON"` unless a handler says otherwise.
    public var dataType: String
    /// LIST only: `{next, total}`.
    public var paging: JSONValue?

    /// Echo of the request's `requestid`.
    public var requestid: RequestID?

    /// `payload` as a value (encoded text is parsed).
    public var data: JSONValue? {
        get { self.payload?.value }
        set { self.payload = newValue.map(JSONPayload.value) }
    }

    public init(
        status: Int = 0,
        success: Bool,
        data: JSONValue? = nil,
        message: String? = nil,
        errorcode: ErrorCode? = nil,
        errorid: String? = nil,
        dataType: String = "JSON",
        paging: JSONValue? = nil,
        requestid: RequestID? = nil
    ) {
        self.status = status
        self.success = success
        self.payload = data.map(JSONPayload.value)
        self.message = message
        self.errorcode = errorcode
        self.errorid = errorid
        self.dataType = dataType
        self.paging = paging
        self.requestid = requestid
    }

    /// The failure response for `error`, identified by `errorid`.
    public static func failure(_ error: FlowError, errorid: String, requestid: RequestID?) -> Response {
        Response(
            success: false, data: error.data, message: error.message, errorcode: error.code,
            errorid: errorid, requestid: requestid
        )
    }

    /// The response as compact JSON bytes, fields in a fixed order.
    public func encoded() -> [UInt8] {
        var writer = JSONWriter(capacity: 256)
        self.write(to: &writer)
        return writer.bytes
    }

    /// Appends the response's JSON text to `writer`.
    public func write(to writer: inout JSONWriter) {
        writer.writeRaw("{\"status\":")
        writer.write(integer: Int64(self.status))
        self.success ? writer.writeRaw(",\"success\":true") : writer.writeRaw(",\"success\":false")
        if let payload = self.payload {
            writer.writeRaw(",\"data\":")
            writer.write(payload)
        }
        if let message = self.message {
            writer.writeRaw(",\"message\":")
            writer.write(string: message)
        }
        if let errorcode = self.errorcode {
            writer.writeRaw(",\"errorcode\":")
            writer.write(string: errorcode.rawValue)
        }
        if let errorid = self.errorid {
            writer.writeRaw(",\"errorid\":")
            writer.write(string: errorid)
        }
        writer.writeRaw(",\"dataType\":")
        writer.write(string: self.dataType)
        if let paging = self.paging {
            writer.writeRaw(",\"paging\":")
            writer.write(paging)
        }
        if let requestid = self.requestid {
            writer.writeRaw(",\"requestid\":")
            writer.write(requestid.jsonValue)
        }
        writer.writeRaw("}")
    }
}

extension Response {
    /// Reads a response envelope (as a client or the gateway relaying a provider does), strictly:
    /// `success` must be a boolean, a failure must carry a known `errorcode`.
    public init(decoding object: JSONObject) throws(FlowError) {
        guard case .bool(let success)? = object["success"] else {
            throw FlowError(.invalidRequest, "Response field 'success' must be a boolean")
        }
        var status = 0
        switch object["status"] {
        case nil, .null?: break
        case .integer(let value)?:
            guard let value = Int(exactly: value) else { throw FlowError(.invalidRequest, "Response field 'status' is out of range") }
            status = value
        default: throw FlowError(.invalidRequest, "Response field 'status' must be an integer")
        }
        func string(_ field: String) throws(FlowError) -> String? {
            switch object[field] {
            case nil, .null?: return nil
            case .string(let value)?: return value
            default: throw FlowError(.invalidRequest, "Response field '\(field)' must be a string")
            }
        }
        var errorcode: ErrorCode?
        if let code = try string("errorcode") {
            guard let known = ErrorCode(rawValue: code) else { throw FlowError(.invalidRequest, "Unknown errorcode '\(code.prefix(40))'") }
            errorcode = known
        }
        if !success && errorcode == nil { throw FlowError(.invalidRequest, "A failure response needs an 'errorcode'") }
        let requestid = try Envelope.requestID(object["requestid"])
        self.init(
            status: status, success: success, data: object["data"].flatMap { value -> JSONValue? in value == .null ? nil : value },
            message: try string("message"), errorcode: errorcode, errorid: try string("errorid"),
            dataType: try string("dataType") ?? "JSON", paging: object["paging"], requestid: requestid
        )
    }

    /// Reads a response from JSON bytes.
    public init(decoding bytes: [UInt8]) throws(FlowError) {
        let value: JSONValue
        do { value = try JSONValue(parsing: bytes) } catch { throw FlowError(.invalidJSON, "Invalid JSON: \(error)") }
        guard case .object(let object) = value else { throw FlowError(.invalidRequest, "A response must be a JSON object") }
        try self.init(decoding: object)
    }
}
