import Engine
import Foundation
import ImageIO
import Networks
import Restoration
import Tiling

/// `engine-bench first-stage STAGE SIZE [MODES] [PHOTO]`: how close a tiled first stage comes to the whole-image one.
/// STAGE: vq-f4 (bsr_sr's, attention in the middle), vq-f4-noattn (inpainting_big's), kl-f4, kl-f8, with random
/// weights (seed 3), or a first-stage checkpoint file (trained weights: which tiling comes closer depends on how
/// global the autoencoder is, so measure with the weights you use); the input is PHOTO (default Assets/photos/chelsea.png) mirror-tiled to SIZE², encoded whole.
/// MODES (comma-separated; default whole,official,halo): the decode of that latent whole, in LDM's split_input_params
/// windows (128 latent pixels at stride 64, border-distance weights) and in halo tiles (LDMPipeline.stageTiles); the
/// same for the encoder when "encode" is listed. Prints max|Δ|/max|ref| and RMS(Δ)/RMS(ref) against the whole
/// result, seconds, and the process's peak RSS at the end (run one mode per process to compare memory).
func firstStageTiling(_ args: [String]) throws {
    guard args.count >= 2, let size = Int(args[1]), size >= 8 else {
        print("usage: engine-bench first-stage vq-f4|vq-f4-noattn|kl-f4|kl-f8|FILE SIZE [whole,official,halo,encode] [PHOTO]")
        exit(2)
    }
    let modes = Set((args.count > 2 ? args[2] : "whole,official,halo").split(separator: ",").map(String.init))
    let photoPath = args.count > 3 ? args[3] : "Assets/photos/chelsea.png"
    let stage: any FirstStage
    switch args[0] {
    case "vq-f4": stage = try VQAutoencoder(.vqF4, parameters: .random(seed: 3))
    case "vq-f4-noattn": stage = try VQAutoencoder(.vqF4NoAttention, parameters: .random(seed: 3))
    case "kl-f4": stage = try KLAutoencoder(.klF4, parameters: .random(seed: 3))
    case "kl-f8": stage = try KLAutoencoder(.klF8, parameters: .random(seed: 3))
    default:
        // A first-stage file (a first_stage_models/*/model.ckpt, or a .ckpt holding first_stage_model.*): trained weights.
        guard FileManager.default.fileExists(atPath: args[0]) else { print("unknown first stage \(args[0])"); exit(2) }
        stage = try LDMLoader.loadFirstStage(path: args[0])
    }
    let f = stage.downFactor
    guard size % f == 0 else { print("SIZE must be a multiple of \(f)"); exit(2) }
    let photo = try ImageReader.read(path: photoPath)
    let x = try Tensor(uninitializedShape: [1, size, size, 3])
    func mirror(_ i: Int, _ n: Int) -> Int { let p = i % (2 * n); return p < n ? p : 2 * n - 1 - p }
    for y in 0..<size {
        for xx in 0..<size {
            let (sy, sx) = (mirror(y, photo.height), mirror(xx, photo.width))
            for c in 0..<3 { x.data[(y * size + xx) * 3 + c] = photo.pixels[(sy * photo.width + sx) * photo.channels + min(c, photo.channels - 1)] * 2 - 1 }
        }
    }
    let l = size / f
    let windows = LDMWindows(window: LDMOptions.defaultTile, stride: LDMOptions.defaultTile - LDMOptions.defaultOverlap)
    let tiles = LDMPipeline.stageTiles
    func compare(_ a: Tensor, _ ref: Tensor) -> (max: Double, rms: Double) {
        var (dmax, rmax, d2, r2) = (0.0, 0.0, 0.0, 0.0)
        for i in 0..<ref.count {
            let (r, d) = (Double(ref.data[i]), Double(a.data[i] - ref.data[i]))
            (dmax, rmax, d2, r2) = (max(dmax, abs(d)), max(rmax, abs(r)), d2 + d * d, r2 + r * r)
        }
        return (dmax / rmax, (d2 / r2).squareRoot())
    }
    func timed(_ body: () throws -> Tensor) rethrows -> (Tensor, Double) {
        let start = Date()
        let out = try body()
        return (out, Date().timeIntervalSince(start))
    }
    print("CPU: \(CPU.modelDescription); \(Parallel.threadCount) threads; \(args[0])\(FileManager.default.fileExists(atPath: args[0]) ? "" : " random weights"); \(size)² image, \(l)² latent")
    let (z, encodeSeconds) = try timed { try stage.encode(x) }
    print(String(format: "encode whole      %7.2f s", encodeSeconds))
    if modes.contains("encode") {
        let (zw, sw) = try timed { try windows.run(x, gridHeight: l, gridWidth: l, inScale: f, outChannels: z.shape[3]) { p, _, _ in try stage.encode(p) } }
        let (zh, sh) = try timed { try tiles.run(x, gridHeight: l, gridWidth: l, inScale: f, outChannels: z.shape[3]) { p, _, _ in try stage.encode(p) } }
        for (name, out, s, n) in [("official", zw, sw, windows.count(height: l, width: l)), ("halo", zh, sh, tiles.count(height: l, width: l))] {
            let d = compare(out, z)
            print(String(format: "encode %@ %7.2f s  %3d tiles  max|Δ|/max|ref| %.2e  RMS(Δ)/RMS(ref) %.2e", name.padding(toLength: 10, withPad: " ", startingAt: 0), s, n, d.max, d.rms))
        }
    }
    var reference: Tensor?
    if modes.contains("whole") || modes.count > 1 {
        let (whole, s) = try timed { try stage.decode(z) }
        reference = whole
        print(String(format: "decode whole      %7.2f s", s))
    }
    for name in ["official", "halo"] where modes.contains(name) {
        let (out, s) = try timed {
            name == "official"
                ? try windows.run(z, gridHeight: l, gridWidth: l, outScale: f, outChannels: 3) { p, _, _ in try stage.decode(p) }
                : try tiles.run(z, gridHeight: l, gridWidth: l, outScale: f, outChannels: 3) { p, _, _ in try stage.decode(p) }
        }
        let n = name == "official" ? windows.count(height: l, width: l) : tiles.count(height: l, width: l)
        if let reference {
            let d = compare(out, reference)
            print(String(format: "decode %@ %7.2f s  %3d tiles  max|Δ|/max|ref| %.2e  RMS(Δ)/RMS(ref) %.2e", name.padding(toLength: 10, withPad: " ", startingAt: 0), s, n, d.max, d.rms))
        } else {
            print(String(format: "decode %@ %7.2f s  %3d tiles", name.padding(toLength: 10, withPad: " ", startingAt: 0), s, n))
        }
    }
    print(String(format: "peak RSS %.0f MiB", peakRSSMegabytes()))
}
