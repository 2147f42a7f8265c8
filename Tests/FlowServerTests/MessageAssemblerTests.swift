import NIOCore
import NIOWebSocket
import Testing

@testable import FlowServer

@Suite struct MessageAssemblerTests {
    func validate(_ chunks: [[UInt8]]) -> (valid: Bool, atBoundary: Bool) {
        var validator = UTF8Validator()
        for chunk in chunks {
            guard chunk.withUnsafeBytes({ validator.consume($0) }) else { return (false, validator.isAtBoundary) }
        }
        return (true, validator.isAtBoundary)
    }

    @Test func utf8AcrossChunkBoundaries() {
        let text = Array("κόσμε 😀 ascii-long-enough-for-the-fast-path".utf8)
        for split in 0...text.count {
            let result = self.validate([Array(text[..<split]), Array(text[split...])])
            #expect(result.valid && result.atBoundary)
        }
        #expect(self.validate([[0xF0, 0x9F]]) == (true, false))  // incomplete, not yet wrong
    }

    @Test(arguments: [
        [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFF], [0x80], [0xC2, 0x41],
        [0xF8, 0x88, 0x80, 0x80, 0x80],
    ] as [[UInt8]])
    func invalidUTF8(_ bytes: [UInt8]) {
        #expect(!self.validate([bytes]).valid)
    }

    @Test func failsFastInTheFragmentHoldingTheBadByte() {
        var assembler = MessageAssembler(maxMessageBytes: 1024)
        guard case .incomplete = assembler.append(opcode: .text, data: ByteBuffer(string: "hello "), fin: false) else {
            Issue.record("expected incomplete")
            return
        }
        guard case .close(let code, _) = assembler.append(opcode: .continuation, data: ByteBuffer(bytes: [0xCE, 0xBA, 0xFF]), fin: false) else {
            Issue.record("expected close")
            return
        }
        #expect(code == .dataInconsistentWithMessage)
    }

    @Test func messageThatEndsMidCharacterIsInvalid() {
        var assembler = MessageAssembler(maxMessageBytes: 1024)
        guard case .close(let code, _) = assembler.append(opcode: .text, data: ByteBuffer(bytes: [0x61, 0xE2, 0x82]), fin: true) else {
            Issue.record("expected close")
            return
        }
        #expect(code == .dataInconsistentWithMessage)
    }

    @Test func fragmentsJoinAndLimitsHold() {
        var assembler = MessageAssembler(maxMessageBytes: 10)
        _ = assembler.append(opcode: .binary, data: ByteBuffer(bytes: [1, 2, 3]), fin: false)
        guard case .message(.binary, let message) = assembler.append(opcode: .continuation, data: ByteBuffer(bytes: [4, 5]), fin: true) else {
            Issue.record("expected a message")
            return
        }
        #expect(Array(message.readableBytesView) == [1, 2, 3, 4, 5])
        _ = assembler.append(opcode: .text, data: ByteBuffer(string: "123456"), fin: false)
        guard case .close(.messageTooLarge, _) = assembler.append(opcode: .continuation, data: ByteBuffer(string: "78901"), fin: true) else {
            Issue.record("expected 1009")
            return
        }
        var fresh = MessageAssembler(maxMessageBytes: 10)
        guard case .close(.protocolError, _) = fresh.append(opcode: .continuation, data: ByteBuffer(), fin: true) else {
            Issue.record("expected 1002 for a stray continuation")
            return
        }
        _ = fresh.append(opcode: .text, data: ByteBuffer(string: "a"), fin: false)
        guard case .close(.protocolError, _) = fresh.append(opcode: .text, data: ByteBuffer(string: "b"), fin: true) else {
            Issue.record("expected 1002 for a new message inside a fragmented one")
            return
        }
    }
}
