import FlowCore
import FlowProtocol
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore

/// Reads the credential of an HTTP request or WebSocket upgrade (SPEC §5.3, §6.4):
/// `Flow-Auth-Token`, `Authorization: Bearer`, `?token=` or `Authorization: Basic`.
enum CredentialSources {
    static let flowAuthToken = HTTPField.Name("Flow-Auth-Token")!

    /// The credential, or nil when there is none (an empty token is none, SPEC §2). A request
    /// that presents two different credentials — Basic and a token, or two different tokens or
    /// Basic headers — is `AMBIGUOUS_REQUEST` (SPEC §6.4): the gateway never picks one.
    static func credential(headers: HTTPFields, query: FlatDictionary<Substring, Substring>) throws(FlowError) -> Credential? {
        var tokens: [String] = headers[values: Self.flowAuthToken]
        var basics: [String] = []
        for authorization in headers[values: .authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard parts.count == 2 else { continue }
            switch parts[0].lowercased() {
            case "bearer": tokens.append(String(parts[1]))
            case "basic": basics.append(String(parts[1]))
            default: continue
            }
        }
        tokens.append(contentsOf: query.getAll("token"))
        tokens = tokens.filter { !$0.isEmpty }
        if let token = tokens.first {
            guard tokens.allSatisfy({ $0 == token }) else {
                throw FlowError(.ambiguousRequest, "The token is given in several places with different values")
            }
            guard basics.isEmpty else {
                throw FlowError(.ambiguousRequest, "The request carries both a token and Basic credentials; send one")
            }
            return .token(token)
        }
        guard let basic = basics.first else { return nil }
        guard basics.allSatisfy({ $0 == basic }) else {
            throw FlowError(.ambiguousRequest, "The request carries several different Basic credentials")
        }
        guard let decoded = Data(base64Encoded: basic).flatMap({ String(data: $0, encoding: .utf8) }),
            let colon = decoded.firstIndex(of: ":")
        else {
            throw FlowError(.unauthenticated, "Malformed Basic credentials")
        }
        return .basic(username: String(decoded[..<colon]), password: String(decoded[decoded.index(after: colon)...]))
    }
}

extension HTTPFields {
    /// Whether the request asked for HTTP Basic (an `Authorization: Basic …` header): only then
    /// does a 401 carry a Basic challenge (SPEC §6.4).
    var asksForBasic: Bool {
        self[values: .authorization].contains { $0.lowercased().hasPrefix("basic ") }
    }
}
