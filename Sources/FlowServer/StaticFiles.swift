import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The files the daemon serves without a credential (SPEC §10 "Browser"): `/client/flowgate.js`
/// and its `.d.ts`. They ship inside the build (the FlowServer resource bundle) and are read
/// once at startup.
struct StaticFiles {
    struct File {
        let contentType: String
        let bytes: ByteBuffer
    }

    let files: [String: File]

    /// Loads the client files; a build without its resource bundle serves none (404).
    static func client() -> StaticFiles {
        var files: [String: File] = [:]
        let types = ["js": "text/javascript; charset=utf-8", "ts": "text/plain; charset=utf-8"]
        for (name, ext) in [("flowgate", "js"), ("flowgate.d", "ts")] {
            guard let url = Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "client"),
                let data = try? Data(contentsOf: url)
            else { continue }
            files["/client/\(name).\(ext)"] = File(contentType: types[ext]!, bytes: ByteBuffer(bytes: data))
        }
        return StaticFiles(files: files)
    }

    func add(to router: Router<GatewayRequestContext>) {
        for (path, file) in self.files {
            router.get(RouterPath(path)) { _, _ in
                var headers = HTTPFields()
                headers[.contentType] = file.contentType
                headers[.cacheControl] = "no-cache"
                headers[.init("X-Content-Type-Options")!] = "nosniff"
                // Public and credential-free: a page on another origin may import the module.
                headers[.accessControlAllowOrigin] = "*"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: file.bytes))
            }
        }
    }
}
