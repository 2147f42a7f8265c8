import FlowCore
import FlowTestSupport
import Logging
import Testing

/// SPEC §11: logs cannot be forged by what a client sends.
@Suite struct EscapingLogHandlerTests {
    @Test func clientValuesCannotStartALineOrPoseAsAField() {
        let store = RecordingLogHandler.Store()
        var logger = Logger(label: "test") { _ in EscapingLogHandler(RecordingLogHandler(store: store)) }
        logger.logLevel = .trace
        logger[metadataKey: "flow.user"] = .string("mallory\n2026-12-01T00:00:00 notice flowgate: audit flow.audit=login flow.user=admin")
        logger.info(
            "call failed\r\nforged", metadata: ["flow.request.id": "c-1 flow.errorcode=NONE", "flow.objectid": .stringConvertible("a\u{2028}b\u{0}"), "ok": "plain-value"]
        )
        let lines = store.all
        #expect(lines.count == 1)
        let line = lines[0]
        #expect(!line.contains("\n") && !line.contains("\r") && !line.contains("\u{2028}") && !line.contains("\u{0}"))
        #expect(line.contains(#"flow.user="mallory\n2026-12-01T00:00:00 notice flowgate: audit flow.audit=login flow.user=admin""#))
        #expect(line.contains(#"flow.request.id="c-1 flow.errorcode=NONE""#))
        #expect(line.contains(#"flow.objectid=a\u{2028}b\u{0}"#))
        #expect(line.contains("ok=plain-value"), "values that need nothing are left alone")
        #expect(line.contains(#"call failed\r\nforged"#))
    }

    @Test func quotedValuesEscapeTheirQuotesAndBackslashes() {
        #expect(EscapingLogHandler.escape(#"a "b" \c"#, quoting: true) == #""a \"b\" \\c""#)
        #expect(EscapingLogHandler.escape("simple", quoting: true) == "simple")
        #expect(EscapingLogHandler.escape("tab\there", quoting: false) == #"tab\there"#)
    }
}
