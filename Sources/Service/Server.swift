import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Restoration

/// `restore serve`: the HTTP service and its web page. The routes only translate HTTP to the `Restoration`
/// library (through `JobStore` and `Submission`); no restoration logic lives here.
///
/// Routes: `GET /` (the page, `/app.js`, `/app.css`), `GET /health`, `GET /models`, `POST /jobs`
/// (multipart: image, optional mask/kernel, job JSON), `GET /jobs/{id}`, `GET /jobs/{id}/events`
/// (Server-Sent Events), `GET /jobs/{id}/preview`, `GET /jobs/{id}/result`, `DELETE /jobs/{id}`.
public enum RestorationService {
    /// Builds the router on `store`.
    public static func router(store: JobStore) -> Router<BasicRequestContext> {
        let configuration = store.configuration
        let router = Router()
        router.add(middleware: SecurityHeaders(token: configuration.token))
        router.get("/") { _, _ in asset(WebPage.html, type: "text/html; charset=utf-8") }
        router.get("/app.js") { _, _ in asset(WebPage.script, type: "text/javascript; charset=utf-8") }
        router.get("/app.css") { _, _ in asset(WebPage.style, type: "text/css; charset=utf-8") }
        router.get("/favicon.ico") { _, _ in Response(status: .noContent) }
        router.get("/health") { _, _ in
            let counts = store.counts
            return jsonObject(["status": "ok", "version": RestorationLibrary.version, "waiting": counts.waiting, "running": counts.running,
                         "queue_capacity": configuration.queueCapacity, "max_upload_bytes": configuration.maxUploadBytes,
                         "max_pixels": configuration.maxPixels])
        }
        router.get("/models") { _, _ in jsonObject(["models": ModelListing.shared.entries(), "tasks": RestorationTask.allCases.map { ["task": $0.rawValue, "summary": $0.summary] }]) }
        router.post("/jobs") { request, _ in
            await answer {
                guard let type = request.headers[.contentType], let boundary = MultipartForm.boundary(contentType: type) else {
                    throw ServiceError(.unsupportedMediaType, "send the job as multipart/form-data with an image part and a job part (JSON)")
                }
                var request = request
                let body: ByteBuffer
                do { body = try await request.collectBody(upTo: configuration.maxUploadBytes) } catch is NIOTooManyBytesError {
                    throw ServiceError(.contentTooLarge, "the upload is larger than \(configuration.maxUploadBytes) bytes")
                }
                let form = try MultipartForm(bytes: Array(body.readableBytesView), boundary: boundary)
                let submission = try Submission(form: form, store: store)
                let id: String
                do { id = try store.submit(submission.job, label: submission.label, files: submission.files) } catch {
                    submission.files.forEach { try? FileManager.default.removeItem(atPath: $0) }
                    throw error
                }
                return try json(store.status(id), status: .created, headers: [.location: "/jobs/\(id)"])
            }
        }
        router.get("/jobs/{id}") { _, context in await answer { try json(store.status(context.parameters.require("id"))) } }
        router.delete("/jobs/{id}") { _, context in await answer { try json(store.cancel(context.parameters.require("id"))) } }
        router.get("/jobs/{id}/result") { _, context in
            await answer {
                let id = try context.parameters.require("id")
                let path = try store.resultPath(id)
                guard let data = FileManager.default.contents(atPath: path) else { throw ServiceError(.gone, "the result of \(id) is gone") }
                return Response(status: .ok, headers: [.contentType: "image/png", .contentDisposition: "attachment; filename=\"restored-\(id).png\""],
                                body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
            }
        }
        router.get("/jobs/{id}/preview") { _, context in
            await answer {
                let id = try context.parameters.require("id")
                guard let png = try store.preview(id).png, let data = Data(base64Encoded: png) else { return Response(status: .noContent) }
                return Response(status: .ok, headers: [.contentType: "image/png", .cacheControl: "no-store"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
            }
        }
        router.get("/jobs/{id}/events") { _, context in
            await answer {
                let id = try context.parameters.require("id")
                _ = try store.status(id)
                return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: ResponseBody { writer in
                    try await events(id: id, store: store, writer: &writer)
                })
            }
        }
        return router
    }

    /// Server-Sent Events: a `progress` event whenever the status changes (step, total, ETA), a `preview`
    /// event with a base64 PNG of x̂0 when a new one exists, and `end` with the final status.
    static func events(id: String, store: JobStore, writer: inout any ResponseBodyWriter) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var lastStatus = Data(), lastPreview = 0, lastWrite = Date()
        while true {
            let status: JobStatus
            do { status = try store.status(id) } catch { break }
            var frame = ""
            if status.previewVersion != lastPreview, let png = try? store.preview(id).png {
                lastPreview = status.previewVersion
                frame += "event: preview\ndata: {\"png\":\"\(png)\"}\n\n"
            }
            let data = try encoder.encode(status)
            let terminal = ["done", "failed", "cancelled"].contains(status.state)
            if data != lastStatus {
                lastStatus = data
                frame += "event: \(terminal ? "end" : "progress")\ndata: \(String(decoding: data, as: UTF8.self))\n\n"
            } else if Date().timeIntervalSince(lastWrite) > 10 {
                frame += ": keep-alive\n\n"
            }
            if !frame.isEmpty {
                try await writer.write(ByteBuffer(string: frame))
                lastWrite = Date()
            }
            if terminal { break }
            try await Task.sleep(nanoseconds: 250_000_000)
        }
        try await writer.finish(nil)
    }

    /// Runs the service until SIGINT/SIGTERM; `onRunning` gets the bound port.
    public static func run(configuration: ServiceConfiguration, graceful: Bool = true, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try configuration.validate()
        if let folder = configuration.modelsFolder { setenv("DIFFUSIONRESTORE_MODELS", folder, 1) }
        let store = try JobStore(configuration: configuration)
        store.start()
        defer { store.stop() }
        let app = Application(router: router(store: store),
                              configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "restore/\(RestorationLibrary.version)"),
                              onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? configuration.port) },
                              logger: {
                                  var logger = Logger(label: "restore.serve")
                                  logger.logLevel = Logger.Level(rawValue: configuration.logLevel) ?? .info
                                  return logger
                              }())
        if graceful { try await app.runService() } else { try await app.run() }
    }
}

/// A handler's outcome: its response, or its error as JSON `{"error": "…"}` with the error's status.
func answer(_ body: () async throws -> Response) async -> Response {
    do { return try await body() } catch let error as ServiceError {
        return jsonObject(["error": error.description], status: HTTPResponse.Status(code: error.kind.rawValue))
    } catch {
        return jsonObject(["error": "\(error)"], status: .badRequest)
    }
}

func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    var fields = headers
    fields[.contentType] = "application/json"
    return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
}

func jsonObject(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}

func asset(_ text: String, type: String) -> Response {
    Response(status: .ok, headers: [.contentType: type, .cacheControl: "no-cache"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
}

/// A strict Content-Security-Policy (the page loads nothing from elsewhere), no sniffing, no referrer; and,
/// with a token, `Authorization: Bearer TOKEN` (or `?token=` for EventSource and images) on every API route.
struct SecurityHeaders<Context: RequestContext>: RouterMiddleware {
    let token: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        var response: Response
        if let token, path.hasPrefix("/jobs") || path.hasPrefix("/models"),
           request.headers[.authorization] != "Bearer \(token)", request.uri.queryParameters.get("token") != token {
            response = jsonObject(["error": "this service needs Authorization: Bearer TOKEN"], status: .unauthorized)
        } else {
            response = try await next(request, context)
        }
        response.headers[.contentSecurityPolicy] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        return response
    }
}

/// The installed and bundled models for GET /models: name, family, preset, size and SHA-256 (hashed once).
final class ModelListing: @unchecked Sendable {
    static let shared = ModelListing()
    private let lock = NSLock()
    private var hashes: [String: String] = [:]

    func entries() -> [[String: String]] {
        InstalledModels.all().map { entry in
            let description = try? ModelCatalog.describe(path: entry.path)
            lock.lock()
            defer { lock.unlock() }
            let key = entry.path + "|\(entry.bytes)"
            if hashes[key] == nil { hashes[key] = (try? SHA256.hex(ofFile: entry.path)) ?? "" }
            return ["name": (entry.name as NSString).deletingPathExtension, "file": entry.name, "family": description?.familyName ?? "unreadable",
                    "preset": description?.preset?.name ?? "", "bytes": "\(entry.bytes)", "sha256": hashes[key] ?? "",
                    "serves": description?.servedTasks ?? "none"]
        }
    }
}
