import FlowProtocol
import Logging
import NIOCore
public import NIOSSL

/// The server's certificate chain and private key (SPEC §10: `tls_cert`, `tls_key`), read from
/// PEM files, for `https://` and `wss://` through Hummingbird's TLS channel.
///
/// Every handshake asks for the current pair (swift-nio-ssl's context callback), so
/// ``reload()`` (on SIGHUP) puts a renewed certificate in force for new connections while the
/// open ones keep the session they have. A reload that cannot read the files keeps the pair in
/// use and says why.
public final class TLSCertificates: Sendable {
    struct Pair {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
    }

    public let certificatePath: String
    public let keyPath: String
    private let current: Locked<Pair>

    /// Reads both files; throws ``ConfigurationError`` naming the key whose file is unusable.
    public init(certificatePath: String, keyPath: String) throws(ConfigurationError) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.current = Locked(try Self.read(certificatePath: certificatePath, keyPath: keyPath))
    }

    /// Reads the files again and uses them from the next handshake on.
    public func reload() throws(ConfigurationError) {
        let pair = try Self.read(certificatePath: self.certificatePath, keyPath: self.keyPath)
        self.current.withLock { $0 = pair }
    }

    /// The server configuration: TLS 1.2 and up, the current pair at every handshake.
    var configuration: TLSConfiguration {
        let pair = self.current.withLock { $0 }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: pair.chain.map { .certificate($0) }, privateKey: .privateKey(pair.key)
        )
        configuration.minimumTLSVersion = .tlsv12
        configuration.sslContextCallback = { [self] _, promise in
            let pair = self.current.withLock { $0 }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = pair.chain.map { .certificate($0) }
            override.privateKey = .privateKey(pair.key)
            promise.succeed(override)
        }
        return configuration
    }

    private static func read(certificatePath: String, keyPath: String) throws(ConfigurationError) -> Pair {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw ConfigurationError(key: "tls_cert", message: "cannot be read as a PEM certificate chain (\(certificatePath))")
        }
        guard !chain.isEmpty else { throw ConfigurationError(key: "tls_cert", message: "holds no certificate (\(certificatePath))") }
        do {
            return Pair(chain: chain, key: try NIOSSLPrivateKey(file: keyPath, format: .pem))
        } catch {
            throw ConfigurationError(key: "tls_key", message: "cannot be read as a PEM private key (\(keyPath))")
        }
    }
}
