/// Who is calling, as established by an ``Authenticator``. Handlers and providers see this,
/// never the caller's credential.
public struct Identity: Sendable, Hashable {
    /// The user's name; nil for an anonymous caller.
    public var username: String?
    /// The user's roles.
    public var roles: [String]
    /// The effective call and provide scopes (SPEC §9.3).
    public var scopes: [String]

    public init(username: String?, roles: [String] = [], scopes: [String] = []) {
        self.username = username
        self.roles = roles
        self.scopes = scopes
    }

    /// A caller with no identity: allowed only on public methods, or everywhere in open-access mode.
    public static let anonymous = Identity(username: nil)

    /// Whether no user is behind the call.
    public var isAnonymous: Bool { self.username == nil }
}

/// A credential presented with a call. Its description never shows the secret.
public enum Credential: Sendable, Hashable, CustomStringConvertible {
    /// A session or personal access token (frame `token`, `Flow-Auth-Token`, Bearer, `?token=`).
    case token(String)
    /// HTTP Basic user name and password.
    case basic(username: String, password: String)

    public var description: String {
        switch self {
        case .token: "token(<redacted>)"
        case .basic(let username, _): "basic(\(username), <redacted>)"
        }
    }
}

/// The transport a call arrived on.
public enum Transport: String, Sendable, Hashable {
    case websocket
    case http
}

/// Where a call came from: the transport, the credential it carried, the client's address.
public struct CallOrigin: Sendable {
    public var transport: Transport
    /// The effective credential: a frame's own `token` wins over the socket's.
    public var credential: Credential?
    /// The peer address, for rate limits and audit lines.
    public var clientAddress: String?

    public init(transport: Transport, credential: Credential? = nil, clientAddress: String? = nil) {
        self.transport = transport
        self.credential = credential
        self.clientAddress = clientAddress
    }
}
