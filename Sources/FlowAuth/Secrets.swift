import Crypto
import Foundation
import Dispatch
import HummingbirdBcrypt

/// Token values, their digests, and password hashing (SPEC §9.1–§9.2). Nothing here is home-made
/// cryptography: SHA-256 is swift-crypto's, bcrypt is hummingbird-auth's.
enum Secrets {
    static let base62 = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
    /// Random characters in a token: 40 base62 characters are about 238 bits.
    static let tokenLength = 40

    /// A fresh token value: `prefix` and `length` random base62 characters from the system's
    /// secure generator.
    static func newToken(prefix: String, length: Int = Self.tokenLength) -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = Array(prefix.utf8)
        bytes.reserveCapacity(bytes.count + length)
        for _ in 0..<length { bytes.append(Self.base62[Int.random(in: 0..<62, using: &generator)]) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// SHA-256 of `text`'s UTF-8 bytes.
    static func digest(_ text: String) -> [UInt8] {
        var text = text
        return text.withUTF8 { Array(SHA256.hash(data: $0)) }
    }

    /// Whether two digests are equal, in time that does not depend on where they differ.
    static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }

    /// The first 8 bytes of a digest, as the key of a lookup table (the full digest is compared after).
    static func prefix(_ digest: [UInt8]) -> UInt64 {
        var value: UInt64 = 0
        for byte in digest.prefix(8) { value = value << 8 | UInt64(byte) }
        return value
    }

    /// bcrypt hashing runs on a Dispatch queue, so the slow hash never blocks a cooperative thread.
    private static let hashing = DispatchQueue(label: "flowgate.bcrypt", attributes: .concurrent)

    static func hashPassword(_ password: String, cost: Int) async -> String {
        let input = Self.bcryptInput(password)
        return await withCheckedContinuation { continuation in
            Self.hashing.async { continuation.resume(returning: Bcrypt.hash(input, cost: UInt8(cost))) }
        }
    }

    static func verifyPassword(_ password: String, hash: String) async -> Bool {
        let input = Self.bcryptInput(password)
        return await withCheckedContinuation { continuation in
            Self.hashing.async { continuation.resume(returning: Bcrypt.verify(input, hash: hash)) }
        }
    }

    /// What bcrypt hashes for `password`. bcrypt reads 72 bytes and stops at a NUL, so a longer
    /// password, or one with a NUL, would be cut silently: those are pre-hashed with SHA-256
    /// (as base64, 44 bytes, no NUL). Every other password is hashed as it is, so hashes made
    /// before this rule still verify.
    static func bcryptInput(_ password: String) -> String {
        guard password.utf8.count > 72 || password.utf8.contains(0) else { return password }
        return "sha256:" + Data(Self.digest(password)).base64EncodedString()
    }
}
