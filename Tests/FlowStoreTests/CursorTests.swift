import Foundation
import Testing

@testable import FlowStore
import FlowCore

@Suite struct CursorTests {
    /// Every length and every byte value: the same text as Foundation's base64 made URL-safe.
    @Test func base64URLMatchesFoundationAndRoundTrips() {
        for length in 0...40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ length &* 11) }
            let expected = Data(bytes).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            #expect(Base64URL.encode(bytes) == expected)
            #expect(Base64URL.decode(expected) == bytes)
        }
    }

    @Test func base64URLRefusesWhatIsNotBase64URL() {
        for text in ["a", "abcde", "ab+c", "ab/c", "ab=c", "ab c", "é"] {
            #expect(Base64URL.decode(text) == nil, "\(text)")
        }
    }
}
