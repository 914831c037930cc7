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

    init(width: Int, height: Int, channels: Int, pixels: [Float]) {
        (self.width, self.height, self.channels, self.pixels) = (width, height, channels, pixels)
    }

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

    /// For tiled runs: `denoised` events whose preview is the whole image at preview size, each window's x̂0
    /// averaged into its place as it is restored (the rest shows the windows restored before).
    func windowObserver(imageHeight h: Int, imageWidth w: Int, channels c: Int) -> (Int, PixelRect, Tensor) -> Void {
        guard let side = previewSide else { return { [self] t, _, _ in emit(.denoised(timestep: t, preview: nil)) } }
        let f = max(1, (max(h, w) + max(1, side) - 1) / max(1, side)), (ph, pw) = (max(1, h / f), max(1, w / f))
        var canvas = [Float](repeating: 0.5, count: ph * pw * c)
        return { [self] t, rect, x0 in
            var sums = [Float](repeating: 0, count: ph * pw * c), counts = [Float](repeating: 0, count: ph * pw)
            for r in 0..<rect.height { for q in 0..<rect.width {
                let (py, px) = ((rect.y + r) / f, (rect.x + q) / f)
                guard py < ph, px < pw else { continue }
                counts[py * pw + px] += 1
                for k in 0..<c { sums[(py * pw + px) * c + k] += x0.data[(r * rect.width + q) * c + k] }
            } }
            for p in 0..<(ph * pw) where counts[p] > 0 {
                for k in 0..<c { canvas[p * c + k] = min(max((sums[p * c + k] / counts[p] + 1) / 2, 0), 1) }
            }
            emit(.denoised(timestep: t, preview: PreviewImage(width: pw, height: ph, channels: c, pixels: canvas)))
        }
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
