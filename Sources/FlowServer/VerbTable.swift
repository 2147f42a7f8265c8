import FlowCore
import FlowProtocol
import HTTPTypes

/// SPEC §6.3 as one table: which of the seven methods each HTTP verb carries, on a path with an
/// object id and on one without, the verb's default first. The decoder, the OpenAPI document
/// and the `Allow` header all read it, so they cannot disagree.
enum VerbTable {
    /// The verbs that carry calls, in the order they are documented.
    static let verbs: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete]

    /// The methods `verb` carries for a call with or without an object id, its default first;
    /// empty when it carries none (a PUT needs an object id).
    static func methods(of verb: HTTPRequest.Method, withObjectID: Bool) -> [FlowProtocol.Method] {
        switch verb {
        case .get: withObjectID ? [.open, .index, .delete] : [.list]
        case .post: withObjectID ? [.update, .run] : [.create]
        case .put, .patch: withObjectID ? [.update] : []
        case .delete: withObjectID ? [.delete] : []
        default: []
        }
    }

    /// The methods of `definition` a call over HTTP can reach.
    static func reachable(_ definition: EndpointDefinition) -> Set<FlowProtocol.Method> {
        definition.methods.subtracting(definition.webSocketOnlyMethods)
    }

    /// The verbs that reach at least one of `definition`'s methods on such a path, for `Allow`.
    static func allowed(_ definition: EndpointDefinition, withObjectID: Bool) -> [HTTPRequest.Method] {
        let reachable = Self.reachable(definition)
        return Self.verbs.filter { verb in Self.methods(of: verb, withObjectID: withObjectID).contains(where: reachable.contains) }
    }

    /// `Allow`'s value: `verbs` and OPTIONS (the CORS preflight).
    static func allowHeader(_ verbs: [HTTPRequest.Method]) -> String {
        (verbs.map(\.rawValue) + ["OPTIONS"]).joined(separator: ", ")
    }
}
