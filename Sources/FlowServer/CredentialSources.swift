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

    /// The credential, or nil when there is none. A token given in several places with different
    /// values is `AMBIGUOUS_REQUEST`; Basic is used only when no token is given.
    static func credential(headers: HTTPFields, query: FlatDictionary<Substring, Substring>) throws(FlowError) -> Credential? {
        var tokens: [String] = headers[values: Self.flowAuthToken]
        var basic: String?
        for authorization in headers[values: .authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard parts.count == 2 else { continue }
            switch parts[0].lowercased() {
            case "bearer": tokens.append(String(parts[1]))
            case "basic": basic = String(parts[1])
            default: continue
            }
        }
        tokens.append(contentsOf: query.getAll("token"))
        tokens = tokens.filter { !$0.isEmpty }
        if let token = tokens.first {
            guard tokens.allSatisfy({ $0 == token }) else {
                throw FlowError(.ambiguousRequest, "The token is given in several places with different values")
            }
            return .token(token)
        }
        guard let basic else { return nil }
        guard let decoded = Data(base64Encoded: basic).flatMap({ String(data: $0, encoding: .utf8) }),
            let colon = decoded.firstIndex(of: ":")
        else {
            throw FlowError(.unauthenticated, "Malformed Basic credentials")
        }
        return .basic(username: String(decoded[..<colon]), password: String(decoded[decoded.index(after: colon)...]))
    }
}
