import FlowProtocol
import Foundation
import Testing

/// Holds the codec to `Schemas/envelope.schema.json` and `Schemas/response.schema.json`, checked
/// by Python's `jsonschema` (Draft 2020-12), an independent validator.
@Suite struct SchemaConformanceTests {
    static let script = """
        import json, sys
        from jsonschema import Draft202012Validator
        schema = json.load(open(sys.argv[1]))
        Draft202012Validator.check_schema(schema)
        validator = Draft202012Validator(schema)
        for sample in json.load(open(sys.argv[2])):
            errors = list(validator.iter_errors(sample))
            print("valid" if not errors else "invalid: " + errors[0].message)
        """

    /// The verdict ("valid" or "invalid: …") for each sample, in order.
    func validate(_ samples: [JSONValue], against schema: String) throws -> [String] {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flowgate-schema-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let samplesFile = folder.appendingPathComponent("samples.json")
        try Data(JSONValue.array(samples).encoded()).write(to: samplesFile)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", Self.script, Golden.repositoryRoot.appendingPathComponent("Schemas/\(schema)").path, samplesFile.path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "python3 with jsonschema is needed (pip install jsonschema; .ci/run does)")
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test func everyResponseTheCodecWritesMatchesTheSchema() throws {
        var samples: [JSONValue] = [
            try JSONValue(parsing: Golden.bytes("response-success")),
            try JSONValue(parsing: Golden.bytes("response-failure")),
            try JSONValue(parsing: Golden.bytes("response-paging")),
            try JSONValue(parsing: Response(status: 3, success: true, dataType: "TEXT").encoded()),
        ]
        for code in ErrorCode.all {
            let response = Response.failure(
                FlowError(code, "message", data: ["errors": [["path": "/name", "message": "required"]]]),
                errorid: UUID().uuidString.lowercased(), requestid: .integer(1)
            )
            samples.append(try JSONValue(parsing: response.encoded()))
        }
        let verdicts = try self.validate(samples, against: "response.schema.json")
        #expect(verdicts.count == samples.count)
        for (sample, verdict) in zip(samples, verdicts) {
            #expect(verdict == "valid", "\(sample)")
        }
        // And the schema is strict enough to refuse what the codec must never write.
        let refused = try self.validate([
            ["success": false, "status": 0, "dataType": "JSON"],
            ["success": true, "status": 0, "dataType": "JSON", "errorcode": "DO_NOT_EXIST"],
            ["success": false, "status": 0, "dataType": "JSON", "message": "m", "errorcode": "NOPE", "errorid": "x"],
        ], against: "response.schema.json")
        #expect(refused.allSatisfy { $0.hasPrefix("invalid") }, "\(refused)")
    }

    @Test func envelopesTheDecoderAcceptsMatchTheSchemaAndRefusedOnesDoNot() throws {
        let accepted: [JSONValue] = try ["envelope-open-seed", "envelope-update", "envelope-list"].map { try JSONValue(parsing: Golden.bytes($0)) }
        let refused: [JSONValue] = [
            ["namespace": "a/b"],
            ["method": "list"],
            ["method": "OPEN", "namespace": "a/b"],
            ["method": "OPEN", "objectid": "a/b"],
            ["method": "LIST", "objectid": "x"],
            ["method": "CREATE"],
            ["method": "LIST", "namespace": "A/B"],
            ["method": "LIST", "parameters": [1]],
            ["method": "LIST", "requestid": 1.5],
        ]
        for sample in accepted {
            guard case .envelope = try Envelope.decodeFrame(sample.encoded()) else {
                Issue.record("not an envelope")
                continue
            }
        }
        let verdicts = try self.validate(accepted + refused, against: "envelope.schema.json")
        #expect(Array(verdicts.prefix(accepted.count)) == Array(repeating: "valid", count: accepted.count))
        for (sample, verdict) in zip(refused, verdicts.dropFirst(accepted.count)) {
            #expect(verdict.hasPrefix("invalid"), "\(sample)")
        }
    }
}
