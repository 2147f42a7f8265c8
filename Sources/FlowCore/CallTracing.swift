public import Tracing
import FlowProtocol

/// A span per call (SPEC §10), continued from the caller's W3C `traceparent` when it sent one:
/// the transport, namespace, method and errorcode as attributes, the errorid on failures. A call
/// to a remote handler (a provider, an upstream) gets a client span inside it, whose
/// `traceparent` goes on with the call, so the handler's work joins the same trace.
///
/// The dispatcher holds one only when tracing is configured: with none, a call pays one branch.
/// Sampling is decided here, before the tracer is asked for anything: a caller's `traceparent`
/// decides by its sampled flag; a call without one is traced with the probability
/// `sampleRatio`. An unsampled call costs a random number, not a span.
struct CallTracing: Sendable {
    let tracer: any Tracer
    let sampleRatio: Double

    /// Whether `request` is traced.
    func samples(_ request: CallRequest) -> Bool {
        if let traceparent = request.envelope.traceparent {
            // The flags' last hex digit (lower case: the envelope checked it); bit 0 is "sampled".
            guard let last = traceparent.utf8.last else { return false }
            let digit = last >= UInt8(ascii: "a") ? last - UInt8(ascii: "a") + 10 : last - UInt8(ascii: "0")
            return digit & 1 == 1
        }
        return self.sampleRatio >= 1 || Double.random(in: 0..<1) < self.sampleRatio
    }

    /// Runs `body` in the call's span; `body` gets the `traceparent` to pass on (nil when the
    /// endpoint runs in process).
    func trace(
        _ request: CallRequest, endpoint: (any Endpoint)?, _ body: (String?) async -> DispatchResult
    ) async -> DispatchResult {
        var parent = ServiceContext.topLevel
        if let traceparent = request.envelope.traceparent {
            self.tracer.extract(["traceparent": traceparent], into: &parent, using: HeaderExtractor())
        }
        let namespace = endpoint?.definition.namespace.rawValue ?? "other"
        let method = request.envelope.method.rawValue
        let span = self.tracer.startSpan("\(method) \(namespace)", context: parent, ofKind: .server)
        span.attributes["rpc.system"] = "flowgate"
        span.attributes["flow.transport"] = request.origin.transport.rawValue
        span.attributes["flow.namespace"] = namespace
        span.attributes["flow.method"] = method
        var forward: (any Span)?
        var carrier: [String: String] = [:]
        if let kind = endpoint?.definition.kind, kind == .provider || kind == .upstream {
            let client = self.tracer.startSpan("forward \(namespace)", context: span.context, ofKind: .client)
            self.tracer.inject(client.context, into: &carrier, using: HeaderInjector())
            forward = client
        }
        let result = await body(carrier["traceparent"])
        if let code = result.response.errorcode {
            span.attributes["flow.errorcode"] = code.rawValue
            if let errorid = result.response.errorid { span.attributes["flow.errorid"] = errorid }
            span.setStatus(SpanStatus(code: .error, message: code.rawValue))
            forward?.setStatus(SpanStatus(code: .error, message: code.rawValue))
        } else {
            span.attributes["flow.errorcode"] = "OK"
        }
        forward?.end()
        span.end()
        return result
    }
}

/// Reads trace headers from a dictionary.
struct HeaderExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}

/// Writes trace headers into a dictionary.
struct HeaderInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}
