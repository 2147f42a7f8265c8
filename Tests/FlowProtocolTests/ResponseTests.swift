import FlowProtocol
import Foundation
import Testing

@Suite struct ResponseTests {
    @Test func successGolden() throws {
        let response = Response(
            success: true,
            data: [
                "id": "3a472a78-4e3e-4858-8acc-eb754f9d1328", "created": "2017-07-10T09:23:50Z",
                "updated": "2018-03-27T09:27:40Z", "name": "5128v1.3 (Core-MGNT-switch)", "ports": 48, "uplink": 1.5,
                "tags": ["core", "mgmt"], "note": "tab\there \"quoted\" \\ \u{01}",
            ],
            requestid: .string("c-17")
        )
        #expect(response.encoded() == (try Golden.bytes("response-success")))
        #expect(try Response(decoding: Golden.bytes("response-success")) == response)
    }

    @Test func failureGolden() throws {
        let response = Response.failure(
            FlowError(.doNotExist, "Object does not exist"), errorid: "7981f103-142e-41bf-ae39-ff1341de35f6", requestid: nil
        )
        #expect(response.encoded() == (try Golden.bytes("response-failure")))
        #expect(try Response(decoding: Golden.bytes("response-failure")) == response)
    }

    @Test func pagingGolden() throws {
        let response = Response(success: true, data: [], paging: ["next": "abc", "total": 3], requestid: .integer(7))
        #expect(response.encoded() == (try Golden.bytes("response-paging")))
    }

    @Test func decodingRefusesMalformedResponses() {
        #expect(throws: FlowError.self) { try Response(decoding: Array(#"{"status":0}"#.utf8)) }
        #expect(throws: FlowError.self) { try Response(decoding: Array(#"{"success":false,"message":"x"}"#.utf8)) }
        #expect(throws: FlowError.self) { try Response(decoding: Array(#"{"success":false,"errorcode":"NOPE"}"#.utf8)) }
        #expect(throws: FlowError.self) { try Response(decoding: Array(#"{"success":true,"status":"0"}"#.utf8)) }
    }
}

@Suite struct ErrorCodeTests {
    /// SPEC §3's table, written out independently of the code.
    static let table: [(String, Int)] = [
        ("INVALID_JSON", 400), ("INVALID_REQUEST", 400), ("UNKNOWN_METHOD", 400), ("OBJECTID_REQUIRED", 400),
        ("DATA_REQUIRED", 400), ("AMBIGUOUS_REQUEST", 400), ("UNAUTHENTICATED", 401), ("FORBIDDEN", 403),
        ("NO_SUCH_ENDPOINT", 404), ("DO_NOT_EXIST", 404), ("METHOD_NOT_ALLOWED", 405), ("ALREADY_EXISTS", 409), ("CURSOR_EXPIRED", 410),
        ("CONFLICT", 409), ("PAYLOAD_TOO_LARGE", 413), ("VALIDATION_FAILED", 422), ("RATE_LIMITED", 429),
        ("INTERNAL_ERROR", 500), ("PROVIDER_UNAVAILABLE", 503), ("SHUTTING_DOWN", 503), ("TIMEOUT", 504),
    ]

    @Test func everyCodeHasItsHTTPStatus() {
        #expect(ErrorCode.all.map(\.rawValue) == Self.table.map(\.0))
        for (name, status) in Self.table {
            #expect(ErrorCode(rawValue: name)?.httpStatus == status, "\(name)")
        }
        #expect(ErrorCode(rawValue: "NOPE") == nil)
    }

    @Test func responseSchemaListsTheSameCodes() throws {
        let url = Golden.repositoryRoot.appendingPathComponent("Schemas/response.schema.json")
        let schema = try JSONValue(parsing: Array(try Data(contentsOf: url)))
        let listed = schema["properties"]?["errorcode"]?["enum"]?.arrayValue?.compactMap(\.stringValue)
        #expect(listed == ErrorCode.all.map(\.rawValue))
        let description = schema["properties"]?["errorcode"]?["description"]?.stringValue ?? ""
        for code in ErrorCode.all {
            #expect(description.contains(code.rawValue), "\(code) missing from the schema's status table")
        }
    }
}
