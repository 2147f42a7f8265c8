import FlowCore
import FlowProtocol
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The HTTP transport (SPEC §6), the one place that routes `/api/`: `/api/` and
/// `/api/openapi.json` are the OpenAPI document (SPEC §6.6); every other request under
/// `/api/<application>/…` becomes a call through the same dispatcher as WebSocket frames, and
/// its response body is the same bytes.
struct HTTPTransport: RouterMiddleware {
    typealias Context = GatewayRequestContext

    static let flowErrorID = HTTPField.Name("Flow-Error-Id")!
    static let flowUser = HTTPField.Name("Flow-User")!
    static let exposedHeaders = "Flow-Request-Id, Flow-Error-Id, Flow-User"

    static let allowedHeaders =
        "Content-Type, Authorization, Flow-Auth-Token, Flow-Request-ObjectId, Flow-Request-Namespace, Flow-Request-Method, Flow-Request-Parameters, Flow-Request-Id, If-Match"

    let dispatcher: Dispatcher
    let configuration: GatewayConfiguration
    let decoder: HTTPCallDecoder
    let hangUps = HangUpWatch()
    /// `GET` with `Accept: text/event-stream` (SPEC §13.3).
    let events: EventStreamTransport?

    init(dispatcher: Dispatcher, configuration: GatewayConfiguration, events: EventStreamTransport? = nil) {
        self.dispatcher = dispatcher
        self.configuration = configuration
        self.events = events
        self.decoder = HTTPCallDecoder(registry: dispatcher.registry, maxJSONDepth: configuration.maxJSONDepth)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard path.hasPrefix("/api/") else { return try await next(request, context) }
        let apiPath = path.dropFirst(5)
        if apiPath.isEmpty || apiPath == "openapi.json" {
            guard request.method == .get || request.method == .head else { return try await next(request, context) }
            return self.openAPI()
        }
        if request.method == .options { return self.preflight(request) }

        // A provider or upstream may take long: a client that hangs up cancels the call.
        let source = CallSource(
            transport: .http, clientAddress: self.configuration.trustedProxies.client(peer: context.clientAddress, headers: request.headers), tasking: .shared(hangUp: ChannelHangUp(watch: self.hangUps, channel: context.channel))
        )
        let decoded: DecodedCall
        // A request answered without its body being read closes its connection, so that the
        // body is not drained (a client that means well sends it again on a new one).
        var closing = false
        // An application/octet-stream body goes to a file, deleted once the call is answered.
        var upload: Attachment?
        defer { if let upload { try? FileManager.default.removeItem(atPath: upload.path) } }
        do {
            let head = self.decoder.decodeHead(request, apiPath: apiPath, source: source)
            if let events = self.events, EventStreamTransport.wants(request), case .success(let call) = head,
                let watch = events.watchCall(for: call, request: request)
            {
                return await events.open(watch, source: source, channel: context.channel, hangUps: self.hangUps) { self.response($0, for: request) }
            }
            if Self.isBinary(request.headers[.contentType]) {
                do {
                    upload = try await self.receiveFile(request, head: head, source: source)
                } catch {
                    closing = true
                    throw error
                }
                var call = try head.get()
                call.attachment = upload
                decoded = .call(call)
            } else {
                let body: ByteBuffer
                do {
                    body = try await self.collectBody(request, head: head, source: source)
                } catch {
                    closing = true
                    throw error
                }
                decoded = .call(try self.decoder.call(head: head, body: body, contentType: request.headers[.contentType]))
            }
        } catch let failure as HTTPCallDecoder.Failure {
            decoded = .failure(failure.error, requestid: failure.requestid)
        }
        let result = await self.dispatcher.dispatch(decoded, from: source) { $0 }
        var response = self.response(result, for: request)
        if closing { response.headers[.connection] = "close" }
        return response
    }

    /// Whether the body is a file (`application/octet-stream`), not JSON.
    static func isBinary(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        return contentType.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() == Attachment.octetStream
    }

    /// The OpenAPI document of what can be called now: a provider namespace with no provider is
    /// left out (SPEC §5.4).
    private func openAPI() -> Response {
        let document = OpenAPIDocument(endpoints: self.dispatcher.registry.all.filter(\.isServed)).json()
        return Response(
            status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: document.encoded()))
        )
    }

    /// The body, at most `max_message_bytes` of it (`PAYLOAD_TOO_LARGE` past that), read only
    /// when the caller may send one (SPEC §11: see ``Dispatcher/refusalBeforeBody(_:origin:)``).
    private func collectBody(_ request: Request, head: Result<CallRequest, HTTPCallDecoder.Failure>, source: CallSource) async throws -> ByteBuffer {
        let limit = self.configuration.maxMessageBytes
        guard try await self.admitBody(request, head: head, source: source, limit: limit, binary: false) else { return ByteBuffer() }
        do {
            return try await request.body.collect(upTo: limit)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw Self.tooLarge(limit, head)
        }
    }

    /// An `application/octet-stream` body, at most `max_snapshot_bytes`, written to a file of
    /// its own in the data directory's `tmp/` (a snapshot can be larger than memory should
    /// hold). Read only for a caller the call's endpoint would let run it.
    private func receiveFile(_ request: Request, head: Result<CallRequest, HTTPCallDecoder.Failure>, source: CallSource) async throws -> Attachment {
        let limit = self.configuration.maxSnapshotBytes
        let hasBody = try await self.admitBody(request, head: head, source: source, limit: limit, binary: true)
        let folder = GatewayConfiguration.scratchDirectory(dataDirectory: self.configuration.dataDirectory)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = (folder as NSString).appendingPathComponent(UUID().uuidString.lowercased())
        guard FileManager.default.createFile(atPath: path, contents: nil), let file = FileHandle(forWritingAtPath: path) else {
            throw HTTPCallDecoder.Failure(error: FlowError(.internalError, "Could not store the body"), requestid: Self.requestid(head))
        }
        defer { try? file.close() }
        do {
            var received = 0
            if hasBody {
                for try await buffer in request.body {
                    received += buffer.readableBytes
                    guard received <= limit else { throw Self.tooLarge(limit, head) }
                    // Page-cache writes of one network read: microseconds, not worth a thread hop.
                    try file.write(contentsOf: buffer.readableBytesView)
                }
            }
            return Attachment(path: path)
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            if let failure = error as? HTTPCallDecoder.Failure { throw failure }
            // The client went away mid-body, or the disk is full.
            throw HTTPCallDecoder.Failure(error: FlowError(.invalidRequest, "The body could not be received"), requestid: Self.requestid(head))
        }
    }

    /// A reply that is a file (a snapshot): streamed from disk, deleted once written or abandoned.
    private func fileResponse(_ attachment: Attachment, _ result: DispatchResult, for request: Request) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = attachment.contentType
        if let requestid = result.response.requestid { headers[HTTPCallDecoder.requestIDHeader] = requestid.description }
        if let username = result.username { headers[Self.flowUser] = username }
        self.addCORSHeaders(for: request, to: &headers)
        let path = attachment.path
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
        let body = ResponseBody(contentLength: size) { writer in
            defer { try? FileManager.default.removeItem(atPath: path) }
            guard let file = FileHandle(forReadingAtPath: path) else { throw FlowError(.internalError, "The answer's file is gone") }
            defer { try? file.close() }
            // Page-cache reads of 256 KiB: microseconds, not worth a thread hop.
            while let chunk = try file.read(upToCount: 1 << 18), !chunk.isEmpty {
                try await writer.write(ByteBuffer(bytes: chunk))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    private static func tooLarge(_ limit: Int, _ head: Result<CallRequest, HTTPCallDecoder.Failure>) -> HTTPCallDecoder.Failure {
        HTTPCallDecoder.Failure(error: FlowError(.payloadTooLarge, "The body is larger than \(limit) bytes"), requestid: Self.requestid(head))
    }

    private static func requestid(_ head: Result<CallRequest, HTTPCallDecoder.Failure>) -> FlowProtocol.RequestID? {
        switch head {
        case .success(let call): call.envelope.requestid
        case .failure(let failure): failure.requestid
        }
    }

    /// Whether the body may be read (SPEC §11), refusing what is too large by its length; false
    /// when there is none.
    private func admitBody(
        _ request: Request, head: Result<CallRequest, HTTPCallDecoder.Failure>, source: CallSource, limit: Int, binary: Bool
    ) async throws -> Bool {
        let requestid = Self.requestid(head)
        let length = request.headers[.contentLength].flatMap { Int($0) }
        if let length, length > limit { throw Self.tooLarge(limit, head) }
        guard (length ?? 0) > 0 || request.headers[.transferEncoding] != nil || binary else { return false }
        let origin: CallOrigin
        switch head {
        case .success(let call):
            origin = call.origin
        case .failure:
            // The head is wrong in some way, but whoever sends a body must still be known first.
            var source = source
            do {
                source.credential = try CredentialSources.credential(headers: request.headers, query: request.uri.queryParameters)
            } catch {
                throw HTTPCallDecoder.Failure(error: error, requestid: requestid)
            }
            origin = source.origin()
        }
        if let refusal = await self.dispatcher.refusalBeforeBody(try? head.get(), origin: origin, binary: binary) {
            throw HTTPCallDecoder.Failure(error: refusal, requestid: requestid)
        }
        return (length ?? 0) > 0 || request.headers[.transferEncoding] != nil
    }

    private func response(_ result: DispatchResult, for request: Request) -> Response {
        if let attachment = result.attachment, result.response.success { return self.fileResponse(attachment, result, for: request) }
        let response = result.response
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        if let requestid = response.requestid { headers[HTTPCallDecoder.requestIDHeader] = requestid.description }
        if let errorid = response.errorid { headers[Self.flowErrorID] = errorid }
        if let username = result.username { headers[Self.flowUser] = username }
        let status = response.success ? 200 : (response.errorcode?.httpStatus ?? 500)
        if status == 405 { headers[.allow] = self.allowHeader(request) }
        // A challenge only when asked: a browser prompted for Basic caches it, and every cross-site
        // page could then ride it (SPEC §6.4).
        if status == 401, self.configuration.basicChallenge || request.headers.asksForBasic {
            headers[.wwwAuthenticate] = "Basic realm=\"flowgate\""
        }
        self.addCORSHeaders(for: request, to: &headers)
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: response.encoded())))
    }

    /// `Allow` for the request's path: the verbs that reach its endpoint there (SPEC §6.3), as
    /// the OpenAPI document lists them; every verb that carries calls for a path that names none.
    private func allowHeader(_ request: Request) -> String {
        let target = self.decoder.resolve(request.uri.path.dropFirst(5))
        guard let namespace = target.namespace, let endpoint = self.dispatcher.registry.endpoint(for: namespace),
            endpoint.definition.application == target.application
        else { return VerbTable.allowHeader(VerbTable.verbs) }
        return VerbTable.allowHeader(VerbTable.allowed(endpoint.definition, withObjectID: target.objectid != nil))
    }

    // MARK: CORS

    private func allowedOrigin(_ request: Request) -> String? {
        guard let origin = request.headers[.origin] else { return nil }
        let origins = self.configuration.corsOrigins
        return origins.contains("*") || origins.contains(origin) ? origin : nil
    }

    private func addCORSHeaders(for request: Request, to headers: inout HTTPFields) {
        guard let origin = self.allowedOrigin(request) else { return }
        headers[.accessControlAllowOrigin] = origin
        headers[.accessControlExposeHeaders] = Self.exposedHeaders
        headers[.vary] = "Origin"
    }

    /// `OPTIONS`: the CORS preflight. Origins not in `cors_origins` get no CORS headers.
    private func preflight(_ request: Request) -> Response {
        var headers = HTTPFields()
        let allowed = self.allowHeader(request)
        headers[.allow] = allowed
        if let origin = self.allowedOrigin(request) {
            headers[.accessControlAllowOrigin] = origin
            headers[.accessControlAllowMethods] = allowed
            headers[.accessControlAllowHeaders] = request.headers[.accessControlRequestHeaders] ?? Self.allowedHeaders
            headers[.accessControlMaxAge] = "600"
            headers[.vary] = "Origin"
        }
        return Response(status: .noContent, headers: headers)
    }
}
