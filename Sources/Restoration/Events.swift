import Foundation

/// What a running restoration tells its caller, in order: a `stage` opens each phase (the whole image, a HiR
/// level, the windows, the patches of one sample), `step`s follow after every network evaluation of that
/// phase, `log` lines carry what a person may want to read (model loaded, a summary). The library never
/// prints; the CLI draws its progress bar from these, the service forwards them as Server-Sent Events.
public enum RestorationEvent: Sendable, Equatable {
    /// A phase begins: `label` names it ("photo.png (9 windows)"), `total` is its network evaluations.
    case stage(label: String, total: Int)
    /// `done` of the current stage's `total` evaluations are finished; `note` says where ("window 3/9").
    case step(done: Int, total: Int, note: String?)
    /// A line for a person.
    case log(String)
}

/// Receives the events of one request and lets its caller stop it. `cancel()` may be called from any
/// thread; the run stops at its next network evaluation with `RestorationCancelled`.
public final class RestorationContext: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false
    private let handler: (RestorationEvent) -> Void

    /// `handler` runs on the restoring thread, synchronously: keep it short.
    public init(events handler: @escaping (RestorationEvent) -> Void = { _ in }) {
        self.handler = handler
    }

    public func emit(_ event: RestorationEvent) { handler(event) }

    public func cancel() {
        lock.lock()
        cancelled = true
        lock.unlock()
    }

    public var isCancelled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return cancelled
    }

    /// Throws `RestorationCancelled` once `cancel()` was called.
    public func checkCancellation() throws {
        if isCancelled { throw RestorationCancelled() }
    }
}

/// The run was cancelled through its `RestorationContext`.
public struct RestorationCancelled: Error, CustomStringConvertible, Sendable {
    public init() {}
    public var description: String { "cancelled" }
}
