import Foundation

/// How `restore serve` runs: where it listens, what it accepts, how long it keeps results.
public struct ServiceConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0: any free port (tests read the one chosen from `onRunning`).
    public var port = 8080
    /// Required when `host` is not a loopback address: every API request must carry `Authorization: Bearer TOKEN`.
    public var token: String?
    /// Where installed models are looked for besides the bundled ones (sets DIFFUSIONRESTORE_MODELS).
    public var modelsFolder: String?
    /// Upload size limit per request, counted while the body streams in (413 beyond it).
    public var maxUploadBytes = 32 << 20
    /// Largest image accepted, in pixels, read from the header before decoding (422 beyond it).
    public var maxPixels = 16_000_000
    /// Jobs waiting or running at most (429 beyond it).
    public var queueCapacity = 8
    /// How long a finished job's result and report are kept, in seconds.
    public var keepSeconds: Double = 3600
    /// Side of the x̂0 previews sent in the events.
    public var previewSide = 96
    /// The server's own log lines on stderr at this level and above ("info"; tests use "critical").
    public var logLevel = "info"
    /// The server's own folder for uploads and results (server-chosen names only).
    public var workFolder: String = NSTemporaryDirectory() + "restore-serve-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"

    public init() {}

    public var isLoopback: Bool { ["127.0.0.1", "::1", "localhost"].contains(host) }

    /// The checks before the server starts: a token when reachable from elsewhere, sane limits.
    public func validate() throws {
        if !isLoopback, (token ?? "").isEmpty {
            throw ServiceError(.badRequest, "binding to \(host) makes the service reachable from other machines: pass --token SECRET (clients send Authorization: Bearer SECRET)")
        }
        if let token, token.count < 8 { throw ServiceError(.badRequest, "--token must be at least 8 characters") }
        if maxUploadBytes < 1024 { throw ServiceError(.badRequest, "--max-upload-mb is too small") }
        if queueCapacity < 1 { throw ServiceError(.badRequest, "--queue must be at least 1") }
        if keepSeconds < 0 { throw ServiceError(.badRequest, "--keep-minutes must not be negative") }
    }
}

/// An error with the HTTP status it answers with and a one-line message (the CLI's wording where one exists).
public struct ServiceError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Int, Sendable {
        case badRequest = 400, unauthorized = 401, notFound = 404, conflict = 409, gone = 410, contentTooLarge = 413
        case unsupportedMediaType = 415, unprocessable = 422, tooManyRequests = 429, internalError = 500
    }
    public let kind: Kind
    public let description: String
    public init(_ kind: Kind, _ message: String) { (self.kind, self.description) = (kind, message) }
}
