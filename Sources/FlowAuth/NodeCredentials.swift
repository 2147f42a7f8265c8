import Crypto
public import FlowCore
import Foundation

/// How the nodes of a cluster recognise one another (SPEC §12): a node's credential is its id
/// with an HMAC-SHA256 of that id under the shared `cluster_secret`. It says "a node that holds
/// the secret", grants only registering providers (``Identity/node(_:)``), and is good only
/// while that node heartbeats in the node directory (the gateway checks that part), so a copy
/// of it dies with the node that made it. The caller's own token never travels between nodes.
public struct NodeCredentials: Sendable {
    static let prefix = "flowgate-node."
    /// The secret's bytes (`SymmetricKey` is not `Sendable`; one is made per use).
    private let secret: [UInt8]

    public init(secret: String) {
        self.secret = Array(secret.utf8)
    }

    /// The token node `id` presents when it links to another node.
    public func token(for id: String) -> String {
        Self.prefix + id + "." + Base64URL.encode(self.mac(id))
    }

    /// Whether `token` looks like a node credential at all (then only this type judges it).
    public static func isNodeToken(_ token: String) -> Bool {
        token.hasPrefix(Self.prefix)
    }

    /// The node id `token` was made for with this secret; nil for a wrong MAC or a malformed token.
    public func node(_ token: String) -> String? {
        guard Self.isNodeToken(token) else { return nil }
        let rest = token.utf8.dropFirst(Self.prefix.utf8.count)
        guard let dot = rest.firstIndex(of: UInt8(ascii: ".")) else { return nil }
        let id = String(decoding: rest[..<dot], as: UTF8.self)
        guard Self.isValidID(id), let mac = Base64URL.decode(String(decoding: rest[rest.index(after: dot)...], as: UTF8.self)) else { return nil }
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Array(("flowgate-node:" + id).utf8), using: SymmetricKey(data: self.secret)) ? id : nil
    }

    /// A node id: 1 to 64 characters of lowercase letters, digits and `-` (a new one is a UUID).
    public static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 64 && id.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D }
    }

    private func mac(_ id: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(("flowgate-node:" + id).utf8), using: SymmetricKey(data: self.secret)))
    }
}
