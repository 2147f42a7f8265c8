import FlowProtocol

/// A namespace served by remote providers (SPEC §4 kind 3): hands the call to the ``ProviderHub``
/// (the dispatcher checked its data against the namespace's schema).
struct ProviderEndpoint: Endpoint {
    let definition: EndpointDefinition
    let validator: (any DataValidator)?
    /// Weak: the hub owns the registry this endpoint sits in.
    weak let hub: ProviderHub?

    var isServed: Bool { self.providerCount > 0 }
    var providerCount: Int { self.hub?.providerCount(self.definition.namespace) ?? 0 }
    /// Each registration has its own `timeout_ms`.
    var handlesOwnTimeout: Bool { true }

    func validator(for method: Method) -> (any DataValidator)? { self.validator }

    /// The provider reads them as it likes.
    func parametersSchema(for method: Method) -> JSONValue? { true }

    func handle(_ call: Call, context: CallContext) async throws -> Reply {
        guard let hub = self.hub else { throw FlowError(.providerUnavailable, "No provider serves '\(call.namespace)' right now") }
        return try await hub.forward(call, context: context)
    }
}
