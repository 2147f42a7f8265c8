import Foundation
public import HTTPTypes

#if canImport(Glibc)
import Glibc
#endif

/// The load balancers whose `X-Forwarded-For` names the client (`trusted_proxies`): behind one,
/// every connection comes from the balancer, so without this the per-address login limit
/// (SPEC §9.6) would count every client as one, and logs would name the balancer.
///
/// A request from a trusted proxy is attributed to the right-most address of its
/// `X-Forwarded-For` that is not a trusted proxy itself (the ones to its left are what the
/// client said, and anyone can say anything). A request from anywhere else, or whose header
/// has something that is not an IP address where the walk stops, keeps the peer's address.
/// The address is re-written from its parsed bytes, so nothing a client sent reaches a log raw.
public struct TrustedProxies: Sendable, Equatable {
    struct Range: Sendable, Equatable {
        /// 4 bytes (IPv4) or 16 (IPv6).
        let bytes: [UInt8]
        let prefixLength: Int
    }

    let ranges: [Range]

    public static let none = TrustedProxies(ranges: [])

    init(ranges: [Range]) {
        self.ranges = ranges
    }

    /// `entries`: addresses (`10.0.0.7`, `::1`) or CIDR ranges (`172.16.0.0/12`, `fd00::/8`).
    public init(_ entries: [String]) throws(ConfigurationError) {
        var ranges: [Range] = []
        for entry in entries {
            let parts = entry.split(separator: "/", maxSplits: 1)
            guard let first = parts.first, let bytes = Self.parse(first) else {
                throw ConfigurationError(key: "trusted_proxies", message: "has an entry that is not an IP address or CIDR range")
            }
            let length = parts.count == 2 ? Int(parts[1]) : bytes.count * 8
            guard let length, (0...(bytes.count * 8)).contains(length) else {
                throw ConfigurationError(key: "trusted_proxies", message: "has a CIDR range whose prefix length is out of range")
            }
            ranges.append(Range(bytes: bytes, prefixLength: length))
        }
        self.ranges = ranges
    }

    public var isEmpty: Bool { self.ranges.isEmpty }

    /// The client's address for a request from `peer` carrying `headers` (see the type).
    func client(peer: String?, headers: HTTPFields) -> String? {
        guard !self.ranges.isEmpty, let peer, let peerBytes = Self.parse(Substring(peer)), self.contains(peerBytes) else { return peer }
        var client = peer
        // Right to left, over every X-Forwarded-For field as one list.
        for field in headers[values: Self.forwardedFor].reversed() {
            for entry in field.split(separator: ",").reversed() {
                guard let bytes = Self.parse(entry.trimmingCharacters(in: .whitespaces)[...]) else { return client }
                client = Self.format(bytes)
                if !self.contains(bytes) { return client }
            }
        }
        return client
    }

    func contains(_ address: [UInt8]) -> Bool {
        self.ranges.contains { range in
            guard range.bytes.count == address.count else { return false }
            var remaining = range.prefixLength
            for index in 0..<address.count where remaining > 0 {
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                if range.bytes[index] & mask != address[index] & mask { return false }
                remaining -= bits
            }
            return true
        }
    }

    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    /// The bytes of an IPv4 or IPv6 address in text (IPv6 may be in brackets); nil for anything else.
    static func parse(_ text: Substring) -> [UInt8]? {
        var text = text
        if text.hasPrefix("[") && text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        guard !text.isEmpty, text.utf8.count <= 45 else { return nil }
        let string = String(text)
        var v4 = in_addr()
        if inet_pton(AF_INET, string, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, string, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    /// An address's canonical text.
    static func format(_ bytes: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        let written = bytes.withUnsafeBytes { raw in inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) }
        guard written != nil else { return "?" }
        return String(cString: buffer)
    }
}
