import Dispatch
import FlowCore
import FlowProtocol
import FlowSchema
import FlowServer
import FlowStore
import FlowTestSupport
import GRDB
import HTTPTypes
import Hummingbird
import NIOCore

/// What the fuzz targets (`Tests/Fuzz`, built with libFuzzer) run on each input, and what the
/// regression test runs on every kept corpus file and crasher. Each harness feeds the bytes to
/// one piece that reads what clients send, and traps (so libFuzzer reports a crash) when that
/// piece breaks one of its promises: an unexpected error is the kind that would be a 500.
public enum FuzzHarness {
    /// The names of the harnesses, as the corpus folders are named.
    public static let all: [String: @Sendable ([UInt8]) -> Void] = [
        "envelope": Self.envelope, "http": Self.httpRequest, "schema": Self.schema, "mergepatch": Self.mergePatch,
        "listparameters": Self.listParameters,
    ]

    /// A WebSocket frame: decoded as an envelope or a provider frame, or answered with a failure
    /// that encodes to JSON that reads back.
    public static func envelope(_ bytes: [UInt8]) {
        let decoded = bytes.withUnsafeBytes { buffer -> Result<InboundFrame, EnvelopeDecodingError> in
            do throws(EnvelopeDecodingError) { return .success(try Envelope.decodeFrame(buffer, maxDepth: JSONValue.defaultMaxDepth)) } catch {
                return .failure(error)
            }
        }
        switch decoded {
        case .success(.envelope(let envelope)):
            if let objectid = envelope.objectid { require(ObjectID.isValid(objectid), "an accepted objectid breaks the rules") }
        case .success(.provider):
            break
        case .failure(let failure):
            let response = FlowProtocol.Response.failure(failure.error, errorid: "e", requestid: failure.requestid)
            require((try? FlowProtocol.Response(decoding: response.encoded())) != nil, "a failure response does not read back")
        }
    }

    /// An HTTP request as bytes: `VERB /path?query` on the first line, `name: value` headers, a
    /// blank line, the body. Mapped to a call as the HTTP transport does, against a registry of
    /// test endpoints.
    public static func httpRequest(_ bytes: [UInt8]) {
        let (headText, body) = Self.split(bytes, at: [13, 10, 13, 10]) ?? Self.split(bytes, at: [10, 10]) ?? (bytes, [])
        let lines = String(decoding: headText, as: UTF8.self).split(whereSeparator: \.isNewline)
        guard let first = lines.first else { return }
        let parts = first.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, let method = HTTPRequest.Method(String(parts[0])) else { return }
        let path = String(parts[1])
        guard path.hasPrefix("/api/") else { return }
        var fields = HTTPFields()
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":"), let name = HTTPField.Name(String(line[..<colon])) else { continue }
            let value = line[line.index(after: colon)...].drop { $0 == " " }
            fields.append(HTTPField(name: name, value: String(value)))
        }
        let head = HTTPRequest(method: method, scheme: "http", authority: "127.0.0.1", path: path, headerFields: fields)
        let request = Request(head: head, body: .init(buffer: ByteBuffer(bytes: body)))
        let decoder = HTTPCallDecoder(registry: Self.registry, maxJSONDepth: JSONValue.defaultMaxDepth)
        let decodedHead = decoder.decodeHead(request, apiPath: request.uri.path.dropFirst(5), source: CallSource(transport: .http, clientAddress: "127.0.0.1", tasking: .shared(hangUp: nil)))
        do {
            let call = try decoder.call(head: decodedHead, body: ByteBuffer(bytes: body), contentType: fields[.contentType])
            if let objectid = call.envelope.objectid { require(ObjectID.isValid(objectid), "an accepted objectid breaks the rules") }
        } catch {
            require(error.error.code.httpStatus < 500, "an HTTP request mapped to \(error.error.code)")
        }
    }

    /// A schema and an instance, as two JSON texts separated by a NUL byte: the schema compiles or
    /// is refused; the instance is checked within the work budget, and both ways of asking agree.
    public static func schema(_ bytes: [UInt8]) {
        let (schemaBytes, instanceBytes) = Self.split(bytes, at: [0]) ?? (bytes, [])
        guard let schemaValue = try? JSONValue(parsing: schemaBytes, maxDepth: 64) else { return }
        guard let schema = try? JSONSchema(schemaValue, assertFormats: true, workLimit: 200_000) else { return }
        let instance = (try? JSONValue(parsing: instanceBytes, maxDepth: 64)) ?? .null
        let errors = schema.validate(instance)
        require(errors.count <= JSONSchema.maxErrors, "more errors than the cap")
        require(schema.isValid(instance) == errors.isEmpty, "validate and isValid disagree")
    }

    /// A target and a merge patch, as two JSON texts separated by a NUL byte: merging is an
    /// object when the patch is one, and merging the same patch twice changes nothing more.
    public static func mergePatch(_ bytes: [UInt8]) {
        let (targetBytes, patchBytes) = Self.split(bytes, at: [0]) ?? (bytes, [])
        guard let target = try? JSONValue(parsing: targetBytes, maxDepth: 64), let patch = try? JSONValue(parsing: patchBytes, maxDepth: 64) else {
            return
        }
        let merged = target.mergePatched(with: patch)
        if case .object = patch { require(merged.objectValue != nil, "an object patch did not give an object") }
        require(merged.mergePatched(with: patch) == merged, "merging a patch twice changed more")
    }

    /// LIST parameters as JSON: read within the limits, and when they are accepted the store
    /// answers the query without an error of its own (a 500 in the daemon).
    public static func listParameters(_ bytes: [UInt8]) {
        guard let parameters = try? JSONValue(parsing: bytes, maxDepth: 64) else { return }
        let limits = ListLimits()
        let query: ListQuery
        do { query = try CollectionEndpoint.listQuery(parameters, limits: limits) } catch { return }
        require(query.filter.count <= limits.maxFilterFields, "too many filter fields accepted")
        require((query.search?.unicodeScalars.count ?? 0) <= limits.maxSearchLength, "too long a search accepted")
        let outcome = Self.blocking { try await Self.store.list(CollectionSpec(name: "fuzz/things", searchFields: ["name"]), query: query) }
        if case .failure(let error) = outcome {
            require((error as? FlowError).map { $0.code.httpStatus < 500 } ?? false, "LIST failed in the store: \(error)")
        }
    }

    // MARK: Support

    static func require(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fatalError("fuzz: \(message())") }
    }

    static func split(_ bytes: [UInt8], at separator: [UInt8]) -> ([UInt8], [UInt8])? {
        guard bytes.count >= separator.count else { return nil }
        for index in 0...(bytes.count - separator.count) where bytes[index..<(index + separator.count)].elementsEqual(separator) {
            return (Array(bytes[..<index]), Array(bytes[(index + separator.count)...]))
        }
        return nil
    }

    /// The endpoints HTTP paths resolve against.
    static let registry: EndpointRegistry = {
        let registry = EndpointRegistry()
        for endpoint in [EchoEndpoint("test/echo"), EchoEndpoint("test/public", methods: [.list, .create], publicMethods: [.create]), EchoEndpoint("other/deep/thing")] {
            try? registry.register(endpoint)
        }
        return registry
    }()

    /// An in-memory store with a few objects, for the LIST queries.
    static let store: SQLiteStore = {
        do {
            let store = try SQLiteStore(writer: try DatabaseQueue())
            let spec = CollectionSpec(name: "fuzz/things", searchFields: ["name"])
            _ = Self.blocking {
                for (index, name) in ["alpha", "beta gamma", "Zürich", ""].enumerated() {
                    _ = try await store.insert(spec, id: "t\(index)", fields: ["name": .string(name), "n": .integer(Int64(index)), "flag": .bool(index % 2 == 0)])
                }
            }
            return store
        } catch {
            fatalError("fuzz: no store: \(error)")
        }
    }()

    /// Runs async work to its end from synchronous code (libFuzzer calls the harness synchronously).
    static func blocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) -> Result<T, any Error> {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        Task {
            do { box.result = .success(try await work()) } catch { box.result = .failure(error) }
            done.signal()
        }
        done.wait()
        return box.result!
    }
}

/// The result handed from the task to the waiting thread; the semaphore orders the two accesses.
private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}
