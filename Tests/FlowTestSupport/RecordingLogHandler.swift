public import Logging
import FlowProtocol

/// A log handler that keeps every line (message and metadata) so tests can read the log.
public struct RecordingLogHandler: LogHandler {
    /// The lines logged through every handler sharing this store.
    public final class Store: Sendable {
        private let lines = Locked<[String]>([])
        public init() {}
        public var all: [String] { self.lines.withLock { $0 } }
        func append(_ line: String) { self.lines.withLock { $0.append(line) } }
        /// A logger writing here.
        public func logger(level: Logger.Level = .trace) -> Logger {
            var logger = Logger(label: "test") { _ in RecordingLogHandler(store: self) }
            logger.logLevel = level
            return logger
        }
    }

    let store: Store
    public var metadata: Logger.Metadata = [:]

    public init(store: Store) {
        self.store = store
    }
    public var logLevel: Logger.Level = .trace

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = self.metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        self.store.append("\(event.level) \(event.message) \(fields)")
    }
}

extension Logger {
    /// A logger that drops everything.
    public static var silent: Logger { Logger(label: "test") { _ in SwiftLogNoOpLogHandler() } }
}
