public import FlowProtocol

/// Who is calling, as established by an ``Authenticator``. Handlers and providers see this,
/// never the caller's credential.
public struct Identity: Sendable, Hashable {
    /// The user's name; nil for an anonymous caller.
    public var username: String?
    /// The user's roles.
    public var roles: [String]
    /// The scopes as the policy checks them: the user's, and the token's when it narrows them.
    public var grants: Grants
    /// The id of the token that authenticated the call (not its value); nil for Basic and anonymous.
    public var tokenID: String?
    /// The cluster node this caller is (a node's link registering its providers, SPEC §12);
    /// nil for every user.
    public var node: String?

    /// An identity with `scopes` (text that does not spell a scope grants nothing).
    public init(username: String?, roles: [String] = [], scopes: [String] = []) {
        self.username = username
        self.roles = roles
        self.grants = Grants(scopes.compactMap(Scope.init))
        self.tokenID = nil
    }

    /// An identity with `grants`.
    public init(username: String?, roles: [String], grants: Grants, tokenID: String? = nil) {
        self.username = username
        self.roles = roles
        self.grants = grants
        self.tokenID = tokenID
    }

    /// A caller with no identity: allowed only on public methods, or everywhere in open-access mode.
    public static let anonymous = Identity(username: nil)

    /// Another node of the cluster, linked to this one to offer its providers (SPEC §12): it may
    /// register providers of any namespace and do nothing else.
    public static func node(_ id: String) -> Identity {
        var identity = Identity(username: "node:" + id, roles: [], scopes: ["provide:*"])
        identity.node = id
        return identity
    }

    /// The effective call and provide scopes (SPEC §9.3), as canonical text.
    public var scopes: [String] { self.grants.effective.map(\.description) }

    /// Whether no user is behind the call.
    public var isAnonymous: Bool { self.username == nil }
}

/// What an identity may do: its user's scopes and, for a token that narrows them, the token's
/// scopes too. A call must be allowed by both (SPEC §9.3: a token may narrow, never widen).
public struct Grants: Sendable, Hashable {
    /// The user's scopes (the union of their roles').
    public var scopes: [Scope]
    /// The token's scopes when it narrows the user's; nil when it does not.
    public var narrowedTo: [Scope]?

    public init(_ scopes: [Scope], narrowedTo: [Scope]? = nil) {
        self.scopes = scopes
        self.narrowedTo = narrowedTo
    }

    /// What the identity may do, as shown to the user.
    public var effective: [Scope] { self.narrowedTo ?? self.scopes }

    /// Whether calling `method` on `namespace` is allowed.
    public func allow(_ method: FlowProtocol.Method, on namespace: Namespace) -> Bool {
        self.scopes.allow(method, on: namespace) && (self.narrowedTo?.allow(method, on: namespace) ?? true)
    }

    /// Whether registering a provider for `namespace` is allowed (a `provide:` scope, SPEC §5.4).
    public func allowProviding(_ namespace: Namespace) -> Bool {
        self.scopes.contains { $0.allowsProviding(namespace) }
            && (self.narrowedTo?.contains { $0.allowsProviding(namespace) } ?? true)
    }

    /// Whether everything `others` allow is allowed (a new token's scopes must pass this).
    public func cover(_ others: [Scope]) -> Bool {
        self.scopes.cover(others) && (self.narrowedTo?.cover(others) ?? true)
    }
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
    /// An HTTP request answered with a Server-Sent Events stream (SPEC §13.3).
    case sse
}

/// Where a call came from: the transport, the credential it carried, the client's address.
public struct CallOrigin: Sendable {
    public var transport: Transport
    /// The effective credential: a frame's own `token` wins over the socket's.
    public var credential: Credential?
    /// The peer address, for rate limits and audit lines.
    public var clientAddress: String?
    /// The WebSocket the call came in on; nil over HTTP. Providers register through it (SPEC §5.4).
    public var connection: (any ConnectionHandle)?

    public init(transport: Transport, credential: Credential? = nil, clientAddress: String? = nil, connection: (any ConnectionHandle)? = nil) {
        self.transport = transport
        self.credential = credential
        self.clientAddress = clientAddress
        self.connection = connection
    }
}

/// A WebSocket as the layers below the transport see it: something that can be sent a text
/// frame and closed. The provider hub sends calls through it (SPEC §5.4).
public protocol ConnectionHandle: Sendable {
    /// Unique among the gateway's open sockets.
    var id: Int { get }
    /// Sends one text frame; a socket that closed meanwhile drops it (its close is reported separately).
    func send(_ text: [UInt8]) async
    /// Closes the socket with `code`.
    func close(code: UInt16, reason: String) async
    /// Sends one watch event (SPEC §13): over WebSocket its frame as a text frame (the
    /// default); a Server-Sent Events stream writes it as an event.
    func sendEvent(_ frame: EventFrame) async
}

extension ConnectionHandle {
    public func sendEvent(_ frame: EventFrame) async {
        await self.send(frame.bytes)
    }
}
