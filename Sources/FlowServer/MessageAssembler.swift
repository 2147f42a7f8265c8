import NIOCore
import NIOWebSocket

/// Joins WebSocket data frames into messages, enforcing the message size limit and validating
/// text as it arrives. The one place frame-level rules live, shared by `/ws` and the
/// diagnostics echo route.
struct MessageAssembler {
    enum Kind: Sendable {
        case text
        case binary
    }

    enum FrameOpcode {
        case text
        case binary
        case continuation
    }

    enum Outcome {
        /// The message is not finished yet.
        case incomplete
        /// A whole message.
        case message(Kind, ByteBuffer)
        /// A protocol violation: close the socket with this code (RFC 6455 §7.4).
        case close(WebSocketErrorCode, String)
    }

    let maxMessageBytes: Int
    private var kind: Kind?
    private var buffer = ByteBuffer()
    private var validator = UTF8Validator()

    init(maxMessageBytes: Int) {
        self.maxMessageBytes = maxMessageBytes
    }

    mutating func append(opcode: FrameOpcode, data: ByteBuffer, fin: Bool) -> Outcome {
        switch opcode {
        case .text, .binary:
            guard self.kind == nil else { return .close(.protocolError, "New message before the previous one ended") }
            let kind: Kind = opcode == .text ? .text : .binary
            guard data.readableBytes <= self.maxMessageBytes else { return .close(.messageTooLarge, "Message too large") }
            if kind == .text, !self.validate(data) { return .close(.dataInconsistentWithMessage, "Invalid UTF-8") }
            if fin {
                if kind == .text, !self.validator.isAtBoundary {
                    self.validator = UTF8Validator()
                    return .close(.dataInconsistentWithMessage, "Invalid UTF-8")
                }
                return .message(kind, data)
            }
            self.kind = kind
            self.buffer.clear()
            self.buffer.writeImmutableBuffer(data)
            return .incomplete
        case .continuation:
            guard let kind = self.kind else { return .close(.protocolError, "Continuation frame without a message") }
            guard self.buffer.readableBytes + data.readableBytes <= self.maxMessageBytes else {
                return .close(.messageTooLarge, "Message too large")
            }
            if kind == .text, !self.validate(data) { return .close(.dataInconsistentWithMessage, "Invalid UTF-8") }
            self.buffer.writeImmutableBuffer(data)
            guard fin else { return .incomplete }
            self.kind = nil
            if kind == .text, !self.validator.isAtBoundary {
                return .close(.dataInconsistentWithMessage, "Invalid UTF-8")
            }
            let message = self.buffer
            self.buffer = ByteBuffer()
            return .message(kind, message)
        }
    }

    private mutating func validate(_ data: ByteBuffer) -> Bool {
        data.withUnsafeReadableBytes { self.validator.consume($0) }
    }
}
