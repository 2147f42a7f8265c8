public import FlowProtocol
public import Logging

/// What the gateway sends to a remote handler — a provider's `call` frame (SPEC §5.4) or an
/// upstream's POST body (SPEC §7.5) — and how it relays the answer. Both carry the caller's
/// identity, never the credential the caller signed in with.
extension Call {
    /// Appends `"method", "namespace", "objectid", "parameters", "data"` and `"identity":
    /// {"user", "roles", "scopes"}` as members of a JSON object (no braces, no leading comma).
    public func writeForwarded(identity: Identity, to writer: inout JSONWriter) {
        writer.writeRaw("\"method\":")
        writer.write(string: self.method.rawValue)
        writer.writeRaw(",\"namespace\":")
        writer.write(string: self.namespace.rawValue)
        if let objectid = self.objectid {
            writer.writeRaw(",\"objectid\":")
            writer.write(string: objectid)
        }
        if let parameters = self.parameters {
            writer.writeRaw(",\"parameters\":")
            writer.write(parameters)
        }
        if let data = self.data {
            writer.writeRaw(",\"data\":")
            writer.write(data)
        }
        writer.writeRaw(",\"identity\":{\"user\":")
        if let username = identity.username { writer.write(string: username) } else { writer.writeRaw("null") }
        writer.writeRaw(",\"roles\":")
        writer.write(.array(identity.roles.map(JSONValue.string)))
        writer.writeRaw(",\"scopes\":")
        writer.write(.array(identity.scopes.map(JSONValue.string)))
        writer.writeRaw("}")
    }
}

extension Reply {
    /// The caller's reply from a remote handler's answer, which must be a response envelope
    /// (SPEC §3): a success becomes the reply, a failure is thrown with its code, message and
    /// data. A malformed answer is logged (with `source` naming the sender) and answers
    /// `PROVIDER_UNAVAILABLE`: the handler is not serving, and no input a remote handler sends
    /// may pose as a bug of the gateway's (`INTERNAL_ERROR`, SPEC §11). `sender` ("The provider")
    /// starts the caller's messages.
    public init(
        relaying answer: JSONObject, sender: String, source: @autoclosure () -> Logger.Metadata, logger: @autoclosure () -> Logger
    ) throws(FlowError) {
        // `source` and `logger` are built only for a malformed answer: a call's logger carries
        // its metadata, and setting each value costs the log handler a re-render.
        let response: Response
        do {
            response = try Response(decoding: answer)
        } catch {
            logger().warning("malformed answer from \(sender.lowercased())", metadata: source().merging(["flow.error": .string(error.message)]) { $1 })
            throw FlowError(.providerUnavailable, "\(sender) sent a malformed answer")
        }
        guard response.success else {
            // Decoding made sure a failure has a known errorcode.
            throw FlowError(response.errorcode ?? .providerUnavailable, response.message ?? "\(sender) reported a failure", data: response.data)
        }
        self.init(payload: response.payload, status: response.status, dataType: response.dataType, paging: response.paging)
    }
}
