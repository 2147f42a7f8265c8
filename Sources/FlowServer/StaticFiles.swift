import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The files the daemon serves without a credential (SPEC §10 "Browser"): the client module at
/// `/client/` and the dashboard at `/dashboard/`. They ship inside the build (the FlowServer
/// resource bundle, `Resources/`) and are read once at startup.
struct StaticFiles {
    struct File {
        let contentType: String
        let bytes: ByteBuffer
        /// Extra headers: the dashboard's Content-Security-Policy.
        let headers: HTTPFields
    }

    /// Path → file.
    let files: [String: File]

    static let contentTypes = [
        "js": "text/javascript; charset=utf-8", "ts": "text/plain; charset=utf-8", "html": "text/html; charset=utf-8",
        "css": "text/css; charset=utf-8",
    ]

    /// The dashboard runs only its own files and talks only to this origin; no page may frame
    /// it, no form of it posts anywhere, and it stores its session in sessionStorage (nothing
    /// a cross-site page can ride).
    static let dashboardPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

    /// Loads the client and, unless `dashboard` is false, the dashboard. A build without its
    /// resource bundle serves none of them (404).
    static func load(dashboard: Bool) -> StaticFiles {
        var files: [String: File] = [:]
        var clientHeaders = HTTPFields()
        // Public and credential-free: a page on another origin may import the module.
        clientHeaders[.accessControlAllowOrigin] = "*"
        for name in ["flowgate.js", "flowgate.d.ts"] {
            files["/client/\(name)"] = Self.file("client", name, headers: clientHeaders)
        }
        if dashboard {
            var dashboardHeaders = HTTPFields()
            dashboardHeaders[.contentSecurityPolicy] = Self.dashboardPolicy
            dashboardHeaders[.init("X-Frame-Options")!] = "DENY"
            dashboardHeaders[.init("Referrer-Policy")!] = "no-referrer"
            for name in ["index.html", "dashboard.js", "dashboard.css"] {
                files["/dashboard/\(name)"] = Self.file("dashboard", name, headers: dashboardHeaders)
            }
            // The router treats /dashboard and /dashboard/ alike; the page names its files absolutely.
            files["/dashboard/"] = files["/dashboard/index.html"]
        }
        return StaticFiles(files: files.compactMapValues { $0 })
    }

    private static func file(_ folder: String, _ name: String, headers: HTTPFields) -> File? {
        guard let bundle = Self.bundle, let data = try? Data(contentsOf: bundle.appendingPathComponent(folder).appendingPathComponent(name))
        else { return nil }
        let ext = String(name.split(separator: ".").last ?? "")
        return File(contentType: Self.contentTypes[ext] ?? "application/octet-stream", bytes: ByteBuffer(bytes: data), headers: headers)
    }

    /// The resource bundle beside the executable (where `swift build` puts it, and where the
    /// Docker image copies it). Looked up by hand: SwiftPM's `Bundle.module` stops the process
    /// when the bundle is missing, and a daemon copied without it should still serve its API.
    static let bundle: URL? = {
        let name = "flowgate_FlowServer.resources"
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let candidates = [executable.appendingPathComponent(name), Bundle.main.bundleURL.appendingPathComponent(name)]
        return candidates.first { FileManager.default.fileExists(atPath: $0.path) }
    }()

    func add(to router: Router<GatewayRequestContext>) {
        for (path, file) in self.files {
            router.get(RouterPath(path)) { _, _ in
                var headers = file.headers
                headers[.contentType] = file.contentType
                headers[.cacheControl] = "no-cache"
                headers[.init("X-Content-Type-Options")!] = "nosniff"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: file.bytes))
            }
        }
    }
}
