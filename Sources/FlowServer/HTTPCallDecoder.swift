public import FlowCore
public import FlowProtocol
import Foundation
import HTTPTypes
public import Hummingbird
public import HummingbirdCore
public import NIOCore

/// Turns an HTTP request under `/api/` into a call (SPEC §6.1–§6.3): the URL names the
/// application, endpoint and maybe the object id; the other fields come from `Flow-Request-*`
/// headers or the query string; `data` is the body.
///
/// The head (URL and headers) and the body are decoded apart, so that a transport can refuse an
/// unauthenticated request before reading its body; ``call(head:body:contentType:)`` puts them
/// together with the failures in SPEC §3's order: body (`INVALID_JSON`), shape
/// (`INVALID_REQUEST`, `UNKNOWN_METHOD`), then verb and sources (`METHOD_NOT_ALLOWED`,
/// `AMBIGUOUS_REQUEST`).
public struct HTTPCallDecoder: Sendable {
    static let objectIDHeader = HTTPField.Name("Flow-Request-ObjectId")!
    static let namespaceHeader = HTTPField.Name("Flow-Request-Namespace")!
    static let methodHeader = HTTPField.Name("Flow-Request-Method")!
    static let parametersHeader = HTTPField.Name("Flow-Request-Parameters")!
    static let requestIDHeader = HTTPField.Name("Flow-Request-Id")!
    static let traceparentHeader = HTTPField.Name("traceparent")!

    /// A request that cannot be a call: the failure to answer with, and its request id if known.
    public struct Failure: Error {
        public let error: FlowError
        public let requestid: FlowProtocol.RequestID?
    }

    let registry: EndpointRegistry
    let maxJSONDepth: Int

    /// A decoder resolving paths against `registry`'s endpoints (the fuzz harness builds one).
    public init(registry: EndpointRegistry, maxJSONDepth: Int) {
        self.registry = registry
        self.maxJSONDepth = maxJSONDepth
    }

    /// The call for `request` from its head and its `body` (failures in SPEC §3's order).
    public func call(head: Result<CallRequest, Failure>, body: ByteBuffer, contentType: String?) throws(Failure) -> CallRequest {
        let data: JSONValue?
        do throws(FlowError) {
            data = try self.decodeBody(body, contentType: contentType)
        } catch {
            // (1) the body comes first; the request id is known if the head had one.
            let requestid: FlowProtocol.RequestID? = switch head {
            case .success(let call): call.envelope.requestid
            case .failure(let failure): failure.requestid
            }
            throw Failure(error: error, requestid: requestid)
        }
        var call = try head.get()
        call.envelope.data = data
        return call
    }

    /// The call for `request` without its body: what the URL and the headers say (SPEC §6.1–§6.3),
    /// the request's path after `/api/` being `apiPath`.
    public func decodeHead(_ request: Request, apiPath: Substring, source: CallSource) -> Result<CallRequest, Failure> {
        do throws(Failure) {
            return .success(try self.head(request, apiPath: apiPath, source: source))
        } catch {
            return .failure(error)
        }
    }

    private func head(_ request: Request, apiPath: Substring, source: CallSource) throws(Failure) -> CallRequest {
        let headers = request.headers
        let query = request.uri.queryParameters
        var sources = FieldSources()

        let requestIDText = sources.single(headers[values: Self.requestIDHeader], query.getAll("requestid"), field: "requestid")
        var requestid: FlowProtocol.RequestID?
        if let requestIDText {
            if requestIDText.unicodeScalars.count <= FlowProtocol.RequestID.maxLength {
                requestid = .string(requestIDText)
            } else {
                sources.shapeError(FlowError(.invalidRequest, "Field 'requestid' must be at most \(FlowProtocol.RequestID.maxLength) characters"))
            }
        }
        func fail(_ error: FlowError) -> Failure { Failure(error: error, requestid: requestid) }

        // (2) the envelope's shape (the body, step 1, is decoded apart), read from path, headers and query
        let target = self.resolve(apiPath)
        let methodText = sources.single(headers[values: Self.methodHeader], query.getAll("method"), field: "method")
        var objectIDs = headers[values: Self.objectIDHeader] + query.getAll("objectid")
        if let pathObjectID = target.objectid { objectIDs.insert(pathObjectID, at: 0) }
        let objectIDText = sources.single(objectIDs, [], field: "objectid")
        let namespaceText = sources.single(headers[values: Self.namespaceHeader], query.getAll("namespace"), field: "namespace")
        let parametersText = sources.single(headers[values: Self.parametersHeader], query.getAll("parameters"), field: "parameters")

        var namespace = target.namespace
        var method: Method?
        var objectid: String?
        do throws(FlowError) {
            objectid = try Envelope.objectID(objectIDText)
            if let named = try Envelope.namespace(namespaceText) {
                if let namespace, namespace != named {
                    sources.ambiguity("The namespace in the URL and the one in the header or query differ")
                }
                namespace = named
            }
        } catch {
            sources.shapeError(error)
        }
        var parameters = Self.parameters(parametersText)
        if let ifMatch = headers[.ifMatch] {
            let rev = Self.entityTag(ifMatch)
            switch parameters {
            case nil: parameters = .object(["rev": .string(rev)])
            case .object(var object):
                if let given = object["rev"], given != .string(rev) { sources.ambiguity("If-Match and parameters.rev differ") }
                object["rev"] = .string(rev)
                parameters = .object(object)
            default: sources.ambiguity("If-Match cannot be combined with string parameters")
            }
        }
        if let error = sources.firstShapeError { throw fail(error) }
        do throws(FlowError) { method = try methodText.map { text throws(FlowError) in try Envelope.method(text) } } catch { throw fail(error) }

        // (3) the verb, then fields given twice
        let resolved: (Method, alternatives: [Method])
        do throws(FlowError) { resolved = try Self.method(for: request.method, given: method, hasObjectID: objectid != nil) } catch { throw fail(error) }
        var source = source
        do throws(FlowError) { source.credential = try CredentialSources.credential(headers: headers, query: query) } catch { throw fail(error) }
        if let ambiguity = sources.firstAmbiguity { throw fail(ambiguity) }

        var envelope = Envelope(
            method: resolved.0, namespace: namespace, objectid: objectid, token: nil,
            parameters: parameters, data: nil, requestid: requestid
        )
        // W3C Trace Context: one traceparent header; a malformed one is ignored (SPEC §10).
        if let traceparent = headers[Self.traceparentHeader] { envelope.traceparent = Envelope.traceparent(traceparent) }
        return CallRequest(
            envelope: envelope,
            origin: source.origin(),
            application: target.application,
            unresolvedPath: target.unresolved,
            defaultedMethodAlternatives: resolved.alternatives
        )
    }

    // MARK: URL

    struct Target {
        var application: String
        var namespace: Namespace?
        var objectid: String?
        var unresolved = false
    }

    /// SPEC §6.1: the path after `/api/<application>/` is a namespace of that application, or a
    /// namespace plus a final object-id segment; a trailing `/` always means no object id.
    func resolve(_ apiPath: Substring) -> Target {
        guard let slash = apiPath.firstIndex(of: "/") else { return Target(application: String(apiPath)) }
        let application = String(apiPath[..<slash])
        let remainder = apiPath[apiPath.index(after: slash)...]
        if remainder.isEmpty { return Target(application: application) }
        if remainder.hasSuffix("/") {
            guard let namespace = Namespace(remainder), self.registry.contains(namespace, application: application) else {
                return Target(application: application, unresolved: true)
            }
            return Target(application: application, namespace: namespace)
        }
        if let namespace = Namespace(remainder), self.registry.contains(namespace, application: application) {
            return Target(application: application, namespace: namespace)
        }
        guard let lastSlash = remainder.lastIndex(of: "/"),
            let namespace = Namespace(remainder[..<lastSlash]), self.registry.contains(namespace, application: application),
            let objectid = String(remainder[remainder.index(after: lastSlash)...]).removingPercentEncoding
        else {
            return Target(application: application, unresolved: true)
        }
        return Target(application: application, namespace: namespace, objectid: objectid)
    }

    // MARK: Verb

    /// SPEC §6.3's verb table (``VerbTable``): the method a request carries, and — when it was
    /// not given but defaulted — the other methods its verb could have carried.
    static func method(for verb: HTTPRequest.Method, given: Method?, hasObjectID: Bool) throws(FlowError) -> (Method, alternatives: [Method]) {
        let allowed = VerbTable.anyMethods(of: verb)
        guard !allowed.isEmpty else {
            throw FlowError(.methodNotAllowed, "HTTP \(verb.rawValue) cannot carry a call; use GET, POST, PUT, PATCH or DELETE")
        }
        guard let given else {
            let carried = VerbTable.methods(of: verb, withObjectID: hasObjectID)
            // A PUT, PATCH or DELETE without an object id: the method is theirs, the object id is missing.
            guard let fallback = carried.first else { return (allowed[0], []) }
            return (fallback, VerbTable.alternatives(of: verb, withObjectID: hasObjectID))
        }
        guard allowed.contains(given) else {
            throw FlowError(.methodNotAllowed, "HTTP \(verb.rawValue) cannot carry \(given.rawValue); it carries \(allowed.map(\.rawValue).joined(separator: ", "))")
        }
        return (given, [])
    }

    // MARK: Body and fields

    func decodeBody(_ body: ByteBuffer, contentType: String?) throws(FlowError) -> JSONValue? {
        guard body.readableBytes > 0 else { return nil }
        let mediaType = contentType?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        // `curl -d '{…}'` labels JSON as a form: a "form" that starts like JSON and parses is JSON.
        let firstByte = body.readableBytesView.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }
        let looksLikeJSON = firstByte == UInt8(ascii: "{") || firstByte == UInt8(ascii: "[")
        if mediaType == "application/x-www-form-urlencoded", !looksLikeJSON || (try? self.parseJSON(body)) == nil {
            guard let text = String(validating: body.readableBytesView, as: UTF8.self) else {
                throw FlowError(.invalidJSON, "The body is not UTF-8")
            }
            return try Self.formObject(text)
        }
        do {
            let value = try self.parseJSON(body)
            return value == .null ? nil : value
        } catch {
            throw FlowError(.invalidJSON, "Invalid JSON body: \(error)")
        }
    }

    private func parseJSON(_ body: ByteBuffer) throws(JSONParseError) -> JSONValue {
        let maxDepth = self.maxJSONDepth
        let result = body.withUnsafeReadableBytes { bytes -> Result<JSONValue, JSONParseError> in
            do throws(JSONParseError) { return .success(try JSONValue(parsing: bytes, maxDepth: maxDepth)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// `application/x-www-form-urlencoded` → an object of strings (the last value of a repeated key wins).
    static func formObject(_ text: String) throws(FlowError) -> JSONValue {
        var object = JSONObject()
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) throws(FlowError) -> String {
                guard let decoded = part.replacingOccurrences(of: "+", with: " ").removingPercentEncoding else {
                    throw FlowError(.invalidRequest, "The form body has a bad percent-encoding")
                }
                return decoded
            }
            object[try decode(parts[0])] = .string(parts.count > 1 ? try decode(parts[1]) : "")
        }
        return .object(object)
    }

    /// `Flow-Request-Parameters`: a JSON object or string, otherwise the text itself as a string.
    static func parameters(_ text: String?) -> JSONValue? {
        guard let text else { return nil }
        if let value = try? JSONValue(parsing: text, maxDepth: JSONValue.defaultMaxDepth) {
            switch value {
            case .object, .string: return value
            default: break
            }
        }
        return .string(text)
    }

    /// An `If-Match` value without quotes or the weak prefix.
    static func entityTag(_ value: String) -> String {
        var tag = Substring(value.trimmingCharacters(in: .whitespaces))
        if tag.hasPrefix("W/") { tag = tag.dropFirst(2) }
        if tag.count >= 2, tag.hasPrefix("\""), tag.hasSuffix("\"") { tag = tag.dropFirst().dropLast() }
        return String(tag)
    }
}

/// Collects a field's values from its sources and remembers the first conflict or shape error.
private struct FieldSources {
    private(set) var firstAmbiguity: FlowError?
    private(set) var firstShapeError: FlowError?

    /// The field's value when every non-empty source agrees; records AMBIGUOUS_REQUEST otherwise.
    mutating func single(_ first: [String], _ second: [String], field: String) -> String? {
        let values = (first + second).filter { !$0.isEmpty }
        guard let value = values.first else { return nil }
        if values.contains(where: { $0 != value }) {
            self.ambiguity("Field '\(field)' is given in several places with different values")
        }
        return value
    }

    mutating func ambiguity(_ message: String) {
        if self.firstAmbiguity == nil { self.firstAmbiguity = FlowError(.ambiguousRequest, message) }
    }

    mutating func shapeError(_ error: FlowError) {
        if self.firstShapeError == nil { self.firstShapeError = error }
    }
}
