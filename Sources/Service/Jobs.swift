import Engine
import Foundation
import ImageIO
import Restoration

/// One submitted restoration: its job, files, state and progress. Mutable state is guarded by the store's lock.
final class ServiceJob: @unchecked Sendable {
    enum State: String, Codable { case queued, running, done, failed, cancelled }

    let id: String
    let job: RestorationJob
    let label: String
    /// Server-side files this job owns (uploads, result), deleted when it expires.
    var files: [String]
    /// Events go to the store; `cancel()` stops the run at its next network evaluation.
    var context: RestorationContext!
    var state = State.queued
    let created = Date()
    var started: Date?
    var finished: Date?
    var stage = ""
    var done = 0, total = 0
    var note: String?
    var stageStarted = Date()
    var previewPNG: String?
    var previewVersion = 0
    var lastPreview = Date.distantPast
    var report: String?
    var error: String?
    var result: String?
    var log: [String] = []

    init(id: String, job: RestorationJob, label: String, files: [String]) {
        (self.id, self.job, self.label, self.files) = (id, job, label, files)
    }
}

/// What a client sees of a job (GET /jobs/{id} and the events).
public struct JobStatus: Codable, Sendable, Equatable {
    public var id: String
    public var state: String
    /// 0 = running next; nil when not waiting.
    public var position: Int?
    public var stage: String?
    public var done: Int?
    public var total: Int?
    public var note: String?
    public var etaSeconds: Double?
    public var elapsedSeconds: Double?
    public var error: String?
    /// The report (the CLI's JSON, with "output" the result's URL), when done.
    public var report: String?
    public var result: String?
    public var previewVersion: Int

    enum CodingKeys: String, CodingKey {
        case id, state, position, stage, done, total, note, etaSeconds = "eta_s", elapsedSeconds = "elapsed_s", error, report, result
        case previewVersion = "preview_version"
    }
}

/// The bounded queue and its one worker: jobs run one at a time (two cores; see the README for larger
/// machines), models are loaded once by the worker's runner and shared by every job, finished jobs are kept
/// `keepSeconds` and then deleted with their files.
public final class JobStore: @unchecked Sendable {
    let configuration: ServiceConfiguration
    private let lock = NSLock()
    private var jobs: [String: ServiceJob] = [:]
    private var waiting: [String] = []
    private var expired: [String: Date] = [:]
    private let wake = DispatchSemaphore(value: 0)
    private var stopped = false
    private let runner = RestorationRunner()
    private var worker: Thread?

    public init(configuration: ServiceConfiguration) throws {
        self.configuration = configuration
        try FileManager.default.createDirectory(atPath: configuration.workFolder, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
    }

    /// Starts the worker thread (idempotent).
    public func start() {
        lock.lock()
        defer { lock.unlock() }
        guard worker == nil else { return }
        let thread = Thread { [weak self] in self?.work() }
        thread.name = "restore-worker"
        thread.stackSize = 16 << 20
        worker = thread
        thread.start()
    }

    /// Stops the worker after the running job and removes the work folder.
    public func stop() {
        lock.lock()
        stopped = true
        let running = jobs.values.filter { $0.state == .running }
        lock.unlock()
        running.forEach { $0.context.cancel() }
        wake.signal()
        try? FileManager.default.removeItem(atPath: configuration.workFolder)
    }

    /// A fresh server-chosen path in the work folder (never derived from anything a client sent).
    func newPath(_ kind: String, ext: String) -> String {
        (configuration.workFolder as NSString).appendingPathComponent("\(kind)-\(Self.randomID()).\(ext)")
    }

    static func randomID() -> String {
        var random = SystemRandomNumberGenerator()
        return (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &random)) }.joined()
    }

    /// Queues a job; 429 when the queue is full.
    func submit(_ job: RestorationJob, label: String, files: [String]) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        removeExpired()
        let active = jobs.values.filter { $0.state == .queued || $0.state == .running }.count
        guard active < configuration.queueCapacity else {
            throw ServiceError(.tooManyRequests, "the queue is full (\(configuration.queueCapacity) jobs waiting or running); try again later")
        }
        let id = "j" + Self.randomID()
        let entry = ServiceJob(id: id, job: job, label: label, files: files)
        entry.context = RestorationContext(previewSide: configuration.previewSide) { [weak self, weak entry] event in
            guard let self, let entry else { return }
            self.record(event, for: entry)
        }
        jobs[id] = entry
        waiting.append(id)
        wake.signal()
        return id
    }

    func status(_ id: String) throws -> JobStatus {
        lock.lock()
        defer { lock.unlock() }
        return try statusLocked(id)
    }

    func preview(_ id: String) throws -> (version: Int, png: String?) {
        lock.lock()
        defer { lock.unlock() }
        let job = try find(id)
        return (job.previewVersion, job.previewPNG)
    }

    /// The result file of a finished job.
    func resultPath(_ id: String) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        let job = try find(id)
        guard job.state == .done, let result = job.result else {
            throw ServiceError(.conflict, "job \(id) has no result (it is \(job.state.rawValue))")
        }
        return result
    }

    /// Cancels a waiting job at once, a running one at its next network evaluation.
    func cancel(_ id: String) throws -> JobStatus {
        lock.lock()
        defer { lock.unlock() }
        let job = try find(id)
        switch job.state {
        case .queued:
            waiting.removeAll { $0 == id }
            job.state = .cancelled
            job.finished = Date()
        case .running:
            job.context.cancel()
        case .done, .failed, .cancelled:
            break
        }
        return try statusLocked(id)
    }

    public var counts: (waiting: Int, running: Int, kept: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (waiting.count, jobs.values.filter { $0.state == .running }.count, jobs.count)
    }

    private func find(_ id: String) throws -> ServiceJob {
        if let job = jobs[id] { return job }
        if expired[id] != nil { throw ServiceError(.gone, "job \(id) has expired: results are kept \(Int(configuration.keepSeconds)) s") }
        throw ServiceError(.notFound, "no job \(id)")
    }

    private func statusLocked(_ id: String) throws -> JobStatus {
        let job = try find(id)
        let now = Date()
        var status = JobStatus(id: id, state: job.state.rawValue, previewVersion: job.previewVersion)
        status.position = waiting.firstIndex(of: id)
        if job.state != .queued {
            (status.stage, status.done, status.total, status.note) = (job.stage, job.done, job.total, job.note)
            status.elapsedSeconds = (job.finished ?? now).timeIntervalSince(job.started ?? now)
            if job.state == .running, job.done > 0, job.total > job.done {
                status.etaSeconds = now.timeIntervalSince(job.stageStarted) / Double(job.done) * Double(job.total - job.done)
            }
        }
        (status.error, status.report) = (job.error, job.report)
        if job.state == .done { status.result = "/jobs/\(id)/result" }
        return status
    }

    /// Drops finished jobs older than `keepSeconds` with their files (called under the lock).
    private func removeExpired() {
        let now = Date()
        for (id, job) in jobs {
            guard let finished = job.finished, now.timeIntervalSince(finished) >= configuration.keepSeconds else { continue }
            job.files.forEach { try? FileManager.default.removeItem(atPath: $0) }
            jobs[id] = nil
            expired[id] = now
        }
        if expired.count > 10_000 { expired = expired.filter { now.timeIntervalSince($0.value) < 86_400 } }
    }

    // MARK: the worker

    private func work() {
        while true {
            _ = wake.wait(timeout: .now() + 5)
            lock.lock()
            removeExpired()
            if stopped { lock.unlock(); return }
            guard !waiting.isEmpty, let job = jobs[waiting.removeFirst()] else { lock.unlock(); continue }
            job.state = .running
            job.started = Date()
            lock.unlock()
            run(job)
            wake.signal()  // look for the next one at once
        }
    }

    private func run(_ job: ServiceJob) {
        do {
            var result = try runner.run(job.job, context: job.context)
            let path = newPath("result", ext: "png")
            result.report.output = "/jobs/\(job.id)/result"
            result.report.input = job.label
            // The operator names the uploaded parts as the client did (mask:mask, blur:kernel), not the server's files.
            for file in job.files {
                let role = (file as NSString).lastPathComponent.split(separator: "-").first.map(String.init) ?? "upload"
                result.report.operator = result.report.operator?.replacingOccurrences(of: file, with: role)
            }
            let text = try result.write(to: path, format: .png(bits: result.sourceBitDepth > 8 ? 16 : 8), overwrite: false, protecting: [])
            finish(job, state: .done, report: text, result: path)
        } catch is RestorationCancelled {
            finish(job, state: .cancelled, error: "cancelled")
        } catch {
            finish(job, state: .failed, error: "\(error)")
        }
    }

    private func finish(_ job: ServiceJob, state: ServiceJob.State, report: String? = nil, error: String? = nil, result: String? = nil) {
        lock.lock()
        defer { lock.unlock() }
        (job.state, job.report, job.error, job.finished) = (state, report, error, Date())
        if let result {
            job.result = result
            job.files.append(result)
        }
    }

    private func record(_ event: RestorationEvent, for job: ServiceJob) {
        lock.lock()
        defer { lock.unlock() }
        switch event {
        case .stage(let label, let total):
            // Stages are labelled with the input's file name: show the client's name, not the server's.
            let shown = label.replacingOccurrences(of: (job.job.input as NSString).lastPathComponent, with: job.label)
            (job.stage, job.total, job.done, job.note, job.stageStarted) = (shown, total, 0, nil, Date())
        case .step(let done, let total, let note):
            (job.done, job.total, job.note) = (done, total, note)
        case .denoised(_, let preview):
            guard let preview, Date().timeIntervalSince(job.lastPreview) > 0.5 else { return }
            let image = Image(width: preview.width, height: preview.height, channels: preview.channels, pixels: preview.pixels)
            if let png = try? ImageWriter.encode(image, format: .png(bits: 8)) {
                job.previewPNG = Data(png).base64EncodedString()
                job.previewVersion += 1
                job.lastPreview = Date()
            }
        case .log(let line):
            job.log = Array((job.log + [line]).suffix(20))
        }
    }
}
