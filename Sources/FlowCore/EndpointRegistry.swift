public import FlowProtocol

/// Every endpoint the gateway serves, keyed by namespace (SPEC §4). Lookups are on the hot
/// path: one uncontended lock around a dictionary read.
public final class EndpointRegistry: Sendable {
    private let endpoints = Locked<[Namespace: any Endpoint]>([:])
    /// Told of every endpoint that comes, goes or changes (its providers); it must not block
    /// (callers may hold locks of their own).
    private let observer = Locked<Observer?>(nil)

    /// Boxed: a bare closure kept in a `Locked` gains a thunk at every `withLock` (see ``Locked``).
    private struct Observer: Sendable {
        let notify: @Sendable (ChangeKind, any Endpoint) -> Void
    }

    public init() {}

    /// Sets who is told when endpoints come (`created`), go (`deleted`) or change (`updated`).
    public func observe(_ observer: @escaping @Sendable (ChangeKind, any Endpoint) -> Void) {
        self.observer.withLock { $0 = Observer(notify: observer) }
    }

    /// Reports that the endpoint at `namespace` changed (a provider came or went).
    public func changed(_ namespace: Namespace) {
        guard let endpoint = self.endpoint(for: namespace) else { return }
        self.notify(.updated, endpoint)
    }

    private func notify(_ kind: ChangeKind, _ endpoint: any Endpoint) {
        self.observer.withLock { $0 }?.notify(kind, endpoint)
    }

    /// Adds `endpoint`. Throws when its namespace is taken or its application is not a valid segment.
    public func register(_ endpoint: any Endpoint) throws(RegistryError) {
        let definition = endpoint.definition
        guard let application = Namespace(definition.application), application.segments.count == 1 else {
            throw RegistryError.invalidApplication(definition.application)
        }
        try self.endpoints.withLock { endpoints throws(RegistryError) in
            guard endpoints[definition.namespace] == nil else { throw RegistryError.namespaceTaken(definition.namespace) }
            endpoints[definition.namespace] = endpoint
        }
        self.notify(.created, endpoint)
    }

    /// Removes the endpoint at `namespace`; returns it if there was one.
    @discardableResult
    public func unregister(_ namespace: Namespace) -> (any Endpoint)? {
        let removed = self.endpoints.withLock { $0.removeValue(forKey: namespace) }
        if let removed { self.notify(.deleted, removed) }
        return removed
    }

    /// The endpoint at `namespace`, if any.
    public func endpoint(for namespace: Namespace) -> (any Endpoint)? {
        self.endpoints.withLock { $0[namespace] }
    }

    /// Whether `namespace` is registered under `application`.
    public func contains(_ namespace: Namespace, application: String) -> Bool {
        self.endpoint(for: namespace)?.definition.application == application
    }

    /// All endpoints, ordered by namespace.
    public var all: [any Endpoint] {
        self.endpoints.withLock { Array($0.values) }.sorted { $0.definition.namespace < $1.definition.namespace }
    }

    /// How many endpoints are registered.
    public var count: Int { self.endpoints.withLock { $0.count } }
}

/// Why an endpoint could not be registered.
public struct RegistryError: Error, Sendable, Equatable, CustomStringConvertible {
    private enum Reason: Equatable {
        case namespaceTaken(Namespace)
        case invalidApplication(String)
    }
    private let reason: Reason

    /// Another endpoint already has the namespace.
    public static func namespaceTaken(_ namespace: Namespace) -> Self { .init(reason: .namespaceTaken(namespace)) }
    /// The application is not a single valid namespace segment.
    public static func invalidApplication(_ application: String) -> Self { .init(reason: .invalidApplication(application)) }

    public var description: String {
        switch self.reason {
        case .namespaceTaken(let namespace): "namespace '\(namespace)' is already registered"
        case .invalidApplication(let application): "application '\(application)' is not a valid namespace segment"
        }
    }
}
