/// A file that stands for a call's body or a reply's answer when it is no JSON: a database
/// snapshot (SPEC §10, `RUN system/backup`). Only HTTP carries one (`application/octet-stream`);
/// only endpoints that declare the method in ``EndpointDefinition/binaryMethods`` take one.
///
/// The file belongs to whoever made it: the transport deletes an uploaded body once the call is
/// answered, and a reply's file once it has been sent.
public struct Attachment: Sendable, Equatable {
    /// Where the bytes are.
    public var path: String
    /// The media type, `application/octet-stream` for snapshots.
    public var contentType: String

    public init(path: String, contentType: String = Attachment.octetStream) {
        self.path = path
        self.contentType = contentType
    }

    public static let octetStream = "application/octet-stream"
}
