import AsyncHTTPClient
import FlowCore
import FlowProtocol
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// An endpoint whose calls are forwarded to an HTTP service (SPEC §4 kind 4, §7.5): the call is
/// POSTed as a JSON envelope carrying the caller's identity instead of a credential, and the
/// upstream's response envelope is relayed to the caller.
///
/// An upstream that cannot be reached, or that answers 502/503/504 without an envelope, is
/// `PROVIDER_UNAVAILABLE`; one that does not answer within `timeout_ms` is `TIMEOUT` (the request
/// is abandoned); a caller that goes away cancels the request. An answer that is not an envelope
/// (a redirect, which is never followed, among them) is `PROVIDER_UNAVAILABLE` too.
struct UpstreamEndpoint: Endpoint {
    let definition: EndpointDefinition
    let validator: (any DataValidator)?
    let upstream: EndpointCatalog.Upstream
    /// The largest answer read from the upstream (`max_message_bytes`).
    let maxAnswerBytes: Int
    let client: HTTPClient
    let metrics: GatewayMetrics

    /// The definition's `timeout_ms` applies, not the gateway's `call_timeout_ms`.
    var handlesOwnTimeout: Bool { true }

    func validator(for method: FlowProtocol.Method) -> (any DataValidator)? { self.validator }

    /// The upstream reads them as it likes.
    func parametersSchema(for method: FlowProtocol.Method) -> JSONValue? { true }

    func handle(_ call: Call, context: CallContext) async throws -> Reply {
        do {
            return try await self.forward(call, context: context)
        } catch let error as FlowError where error.code == .providerUnavailable || error.code == .timeout {
            self.metrics.upstreamFailure(self.definition.namespace)
            throw error
        }
    }

    private func forward(_ call: Call, context: CallContext) async throws -> Reply {
        var request = HTTPClientRequest(url: self.upstream.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "application/json")
        if let traceparent = context.traceparent { request.headers.add(name: "traceparent", value: traceparent) }
        request.body = .bytes(self.body(call, context: context))
        let (status, answer) = try await self.exchange(request, context: context)
        if case .object(let object)? = answer.withUnsafeReadableBytes({ try? JSONValue(parsing: $0) }) {
            return try Reply(relaying: object, sender: "The upstream", source: self.source(status), logger: context.logger)
        }
        if [502, 503, 504].contains(status) {
            throw FlowError(.providerUnavailable, "The upstream of '\(call.namespace)' is unavailable")
        }
        // A redirect among them: it is never followed, so the identity goes nowhere else (SPEC §11).
        context.logger.warning("malformed answer from the upstream: not a JSON object", metadata: self.source(status))
        throw FlowError(.providerUnavailable, "The upstream answered HTTP \(status) without a response envelope")
    }

    /// `{"method", "namespace", "objectid", "parameters", "data", "identity", "requestid"}`.
    private func body(_ call: Call, context: CallContext) -> ByteBuffer {
        var writer = JSONWriter(capacity: 256)
        writer.writeRaw("{")
        call.writeForwarded(identity: context.identity, to: &writer)
        if let requestid = context.requestid {
            writer.writeRaw(",\"requestid\":")
            writer.write(requestid.jsonValue)
        }
        writer.writeRaw("}")
        return ByteBuffer(bytes: writer.bytes)
    }

    /// Sends the request and reads the whole answer, within the timeout; failures as `FlowError`.
    private func exchange(_ request: HTTPClientRequest, context: CallContext) async throws -> (status: UInt, answer: ByteBuffer) {
        let deadline = NIODeadline.now() + .milliseconds(self.upstream.timeout.wholeMilliseconds)
        do {
            let response = try await self.client.execute(request, deadline: deadline)
            let answer = try await response.body.collect(upTo: self.maxAnswerBytes)
            return (response.status.code, answer)
        } catch let error as HTTPClientError where [.deadlineExceeded, .readTimeout, .writeTimeout].contains(error) || NIODeadline.now() >= deadline {
            throw FlowError(.timeout, "The upstream did not answer within \(self.upstream.timeout.readable)")
        } catch is CancellationError {
            throw CancellationError()
        } catch is NIOTooManyBytesError {
            context.logger.warning("the upstream's answer is too large", metadata: self.source(nil))
            throw FlowError(.providerUnavailable, "The upstream's answer is larger than \(self.maxAnswerBytes) bytes")
        } catch {
            if Task.isCancelled { throw CancellationError() }
            context.logger.warning("upstream unreachable", metadata: self.source(nil).merging(["flow.error": "\(error)"]) { $1 })
            throw FlowError(.providerUnavailable, "The upstream of '\(self.definition.namespace)' cannot be reached")
        }
    }

    /// Log metadata naming the upstream by host (the URL may carry secrets in its path or query).
    private func source(_ status: UInt?) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["flow.upstream": .string(URL(string: self.upstream.url)?.host ?? "?")]
        if let status { metadata["flow.upstream.status"] = "\(status)" }
        return metadata
    }
}

extension HTTPClient {
    /// The client of upstream calls: never follows a redirect, so the caller's identity only ever
    /// reaches the configured upstream (SPEC §11). Process-wide, like `HTTPClient.shared`.
    static let upstreams: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()
}
