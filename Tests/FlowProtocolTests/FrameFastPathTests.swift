import Testing

@testable import FlowProtocol

/// `decodeFrame` reads plain envelopes in one pass without building the top-level object. For
/// every frame it must give exactly what the general path (parse, then read the object) gives.
@Suite struct FrameFastPathTests {
    static let frames: [String] = [
        #"{"method":"OPEN","namespace":"inventory/device","objectid":"bench-1","requestid":17}"#,
        #"  { "requestid" : "r-1" , "method" : "LIST" , "namespace" : "a/b" , "parameters" : {"limit": 10} }  "#,
        #"{"method":"CREATE","namespace":"a/b","data":{"name":"x","tags":[1,2.5,"three",null,true,{"deep":[[]]}]}}"#,
        #"{"method":"OPEN","method":"LIST","namespace":"a/b"}"#,
        #"{"method":"OPEN","namespace":"a/b","objectid":"1","extra":{"nested":[1,{"x":"y"}]},"more":null}"#,
        #"{"meth\u006fd":"OPEN","namespace":"a/b","objectid":"1"}"#,
        #"{"méthode":"x","method":"LIST","namespace":"a/b"}"#,
        #"{"method":"LIST","namespace":"a/b","call":{"id":1}}"#,
        #"{"cancel":"7"}"#,
        #"{}"#,
        #"{"":1,"method":"LIST","namespace":"a/b"}"#,
        #"{"method":"LIST","namespace":"A/B"}"#,
        #"{"method":"OPEN","namespace":"a/b","objectid":"x/y"}"#,
        #"{"method":7,"namespace":"a/b","requestid":[1]}"#,
        #"{"method":"NOPE","namespace":"a/b","requestid":"q"}"#,
        #"{"method":"LIST","namespace":"a/b","parameters":[1]}"#,
        #"{"method":"LIST","namespace":"a/b","token":"","objectid":null,"data":null}"#,
        #"{"method":"LIST","namespace":"a/b","requestid":"\#(String(repeating: "x", count: 200))"}"#,
        #"{"method":"LIST","namespace":"a/b"} x"#,
        #"{"method":"LIST","namespace":"a/b",}"#,
        #"{"method":"LIST" "namespace":"a/b"}"#,
        #"{"method":"LIST","namespace":"a/b"#,
        #"{"method":"LIST","namespace":"a\tb"}"#,
        #"{"method":"LIST","data":"\ud800"}"#,
        #"[1,2]"#,
        #""text""#,
        "",
        #"{"data":\#(String(repeating: "[", count: 70))\#(String(repeating: "]", count: 70))}"#,
        #"{"data":\#(String(repeating: "[", count: 62))\#(String(repeating: "]", count: 62))}"#,
    ]

    @Test(arguments: Self.frames)
    func fastPathAgreesWithTheGeneralPath(_ frame: String) {
        let bytes = Array(frame.utf8)
        let fast = Result { () throws(EnvelopeDecodingError) in try Envelope.decodeFrame(bytes) }
        #expect(fast == Self.general(bytes))
    }

    /// Which frames the fast path reads itself (the rest go to the general path).
    @Test func fastPathTakesPlainEnvelopesOnly() throws {
        func takes(_ frame: String) throws -> Bool {
            try Array(frame.utf8).withUnsafeBytes { bytes in
                var parser = JSONParser(bytes: bytes, maxDepth: 64)
                return try parser.parseEnvelopeFields() != nil
            }
        }
        #expect(try takes(Self.frames[0]))
        #expect(try takes(Self.frames[1]))
        #expect(try takes(#"{"method":"OPEN","method":"LIST","namespace":"a/b","unknown":[{}]}"#))
        #expect(try !takes(#"{"meth\u006fd":"OPEN"}"#))
        #expect(try !takes(#"{"cancel":"7"}"#))
        #expect(try !takes("[1]"))
    }

    /// The general path on its own: parse the whole document, then read the object.
    static func general(_ bytes: [UInt8]) -> Result<InboundFrame, EnvelopeDecodingError> {
        let value: JSONValue
        do { value = try JSONValue(parsing: bytes) } catch {
            return .failure(EnvelopeDecodingError(FlowError(.invalidJSON, "Invalid JSON: \(error)")))
        }
        guard case .object(let object) = value else {
            return .failure(EnvelopeDecodingError(FlowError(.invalidRequest, "The request must be a JSON object, not \(value.typeName)")))
        }
        if object["call"] != nil || object["cancel"] != nil { return .success(.provider(object)) }
        return Result { () throws(EnvelopeDecodingError) in .envelope(try Envelope(decoding: object)) }
    }
}
