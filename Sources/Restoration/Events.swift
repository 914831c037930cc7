import Engine
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
    /// The sampler's estimate of the clean image after the evaluation at `timestep`, with a low-resolution
    /// preview when the context asks for previews (`RestorationContext(previewSide:)`; untiled runs).
    case denoised(timestep: Int, preview: PreviewImage?)
    /// A line for a person.
    case log(String)
}

/// A small picture of a running restoration: the current x̂0, averaged down to at most the context's
/// `previewSide` pixels on its longer side, clamped to [0, 1], NHWC without batch.
public struct PreviewImage: Sendable, Equatable {
    public let width: Int, height: Int, channels: Int
    public let pixels: [Float]

    /// The first sample of x0 ([-1, 1]) reduced by the smallest integer factor that brings it within `side`.
    init(_ x0: Tensor, side: Int) {
        let (h, w, c) = (x0.shape[1], x0.shape[2], x0.shape[3])
        let f = max(1, (max(h, w) + side - 1) / side)
        let (ph, pw) = (h / f, w / f)
        var out = [Float](repeating: 0, count: ph * pw * c)
        for r in 0..<(ph * f) { for q in 0..<(pw * f) { for k in 0..<c {
            out[((r / f) * pw + q / f) * c + k] += x0.data[(r * w + q) * c + k]
        } } }
        let scale = 1 / Float(f * f)
        pixels = out.map { min(max(($0 * scale + 1) / 2, 0), 1) }
        (width, height, channels) = (pw, ph, c)
    }
}

/// Receives the events of one request and lets its caller stop it. `cancel()` may be called from any
/// thread; the run stops at its next network evaluation with `RestorationCancelled`.
public final class RestorationContext: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false
    private let handler: (RestorationEvent) -> Void

    /// Previews of x̂0 no larger than this many pixels per side, or none.
    public let previewSide: Int?

    /// `handler` runs on the restoring thread, synchronously: keep it short. `previewSide`: attach a preview of
    /// x̂0 of at most this side to the `denoised` events (costs one pass over the image per step).
    public init(previewSide: Int? = nil, events handler: @escaping (RestorationEvent) -> Void = { _ in }) {
        self.previewSide = previewSide
        self.handler = handler
    }

    /// The observer a pipeline hands its sampler: `denoised` events with previews when asked for.
    func observer() -> (Int, Tensor) -> Void {
        { [self] t, x0 in emit(.denoised(timestep: t, preview: previewSide.map { PreviewImage(x0, side: max(1, $0)) })) }
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
