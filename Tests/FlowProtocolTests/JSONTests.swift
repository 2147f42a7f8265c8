import FlowProtocol
import Testing

@Suite struct JSONTests {
    @Test func roundTripsKeepingKeyOrderAndIntegers() throws {
        let text = #"{"z":1,"a":[true,false,null],"m":{"n":-12,"big":9223372036854775807,"f":1.5,"e":1e+300},"s":"é\n\"\\ \u0001"}"#
        let value = try JSONValue(parsing: text)
        #expect(value["z"] == .integer(1))
        #expect(value["m"]?["big"] == .integer(Int64.max))
        #expect(value["m"]?["f"] == .number(1.5))
        #expect(value["s"] == .string("é\n\"\\ \u{01}"))
        let encoded = String(decoding: value.encoded(), as: UTF8.self)
        #expect(encoded == #"{"z":1,"a":[true,false,null],"m":{"n":-12,"big":9223372036854775807,"f":1.5,"e":1e+300},"s":"é\n\"\\ \u0001"}"#)
        #expect(try JSONValue(parsing: encoded) == value)
    }

    @Test func numbersBeyondInt64BecomeDoubles() throws {
        #expect(try JSONValue(parsing: "18446744073709551616") == .number(18446744073709551616))
        #expect(try JSONValue(parsing: "-0") == .integer(0))
        #expect(try JSONValue(parsing: "-9223372036854775808") == .integer(Int64.min))
        #expect(try JSONValue(parsing: "-9223372036854775809") == .number(-9223372036854775809))
        #expect(try JSONValue(parsing: "9223372036854775808") == .number(9223372036854775808))
        #expect(try JSONValue(parsing: "[0,7,-12,1000000]") == [0, 7, -12, 1_000_000])
        #expect(try JSONValue(parsing: "2.0") == .number(2))
        #expect(JSONValue.number(2).description == "2.0")
    }

    @Test func escapesAndSurrogatePairs() throws {
        #expect(try JSONValue(parsing: #""\u00e9\ud83d\ude00\/\b\f\r\t""#) == .string("é😀/\u{08}\u{0C}\r\t"))
    }

    @Test(arguments: [
        "", " ", "{", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul", "NaN", "Infinity",
        "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"a\u{01}b\"", "{\"a\" 1}", "{1:2}", "[1 2]", "1 2",
        "'single'", "{\"a\":1}}", "[", "\"\\ud83d\\u0041\"",
    ])
    func refusesInvalidJSON(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: text) }
    }

    @Test func refusesInvalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: [0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: [0x22, 0xED, 0xA0, 0x80, 0x22]) }  // encoded surrogate
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: [0x22, 0xC0, 0xAF, 0x22]) }  // overlong '/'
    }

    @Test func nestingLimit() throws {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        let tooDeep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        _ = try JSONValue(parsing: ok)
        #expect(throws: JSONParseError(reason: .tooDeep(limit: 64), offset: 64)) { try JSONValue(parsing: tooDeep) }
        let objects = String(repeating: "{\"a\":", count: 65) + "1" + String(repeating: "}", count: 65)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: objects) }
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: "[[[1]]]", maxDepth: 2) }
    }

    @Test func duplicateKeysKeepTheLastValue() throws {
        #expect(try JSONValue(parsing: #"{"a":1,"a":2}"#) == ["a": 2])
    }
}
