import Engine
import Foundation
import ImageIO

/// A same-size degradation made from a clean image, for `--simulate` of the blind restorers (RDDM): the kinds and
/// formulas of our RDDM trainer's mixture (Tools/train/train_rddm.py), on [0, 1] intensities, the result clipped to
/// [0, 1] and rounded to 8 bits as a saved file would be:
///
///     noise:S            x + S/255·N(0, 1)
///     poisson:P          Poisson(P·x)/P                     (P photons per unit intensity)
///     defocus:R          a uniform disk of radius R px (pixels whose centre lies within R), normalised, reflect borders
///     motion:L[:A]       a line of length L px at A degrees (default 0 = horizontal), normalised, reflect borders
///     jpeg:Q             libjpeg at quality Q, 4:2:0
///     lowlight:K:G[:S]   K·x^G, then S/255·N(0, 1) (default S 5)
///
/// Noise comes from a seeded stream, so a seed gives the same degraded image every time.
public struct SimulatedDegradation: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Codable, Sendable, CaseIterable { case noise, poisson, defocus, motion, jpeg, lowlight }
    public let kind: Kind
    public let parameters: [Double]

    public var description: String {
        ([kind.rawValue] + parameters.map { $0 == $0.rounded() && abs($0) < 1e9 ? String(Int($0)) : String($0) }).joined(separator: ":")
    }

    /// Parses `KIND:P[:P…]` (see the type's documentation).
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let kinds = Kind.allCases.map(\.rawValue).joined(separator: ", ")
        guard let kind = Kind(rawValue: parts[0].lowercased()) else {
            throw RestorationError("--simulate \(text): unknown degradation \"\(parts[0])\" (one of \(kinds), e.g. noise:25, jpeg:20)")
        }
        let values = parts.dropFirst().map { Double($0) }
        guard values.allSatisfy({ $0 != nil && $0!.isFinite }) else { throw RestorationError("--simulate \(text): parameters must be numbers") }
        var p = values.map { $0! }
        let (low, high, name): (Int, Int, String) = switch kind {
        case .noise: (1, 1, "noise:SIGMA (0 < SIGMA ≤ 255, on the 0–255 scale)")
        case .poisson: (1, 1, "poisson:PEAK (photons per unit intensity, 0.1–10⁶)")
        case .defocus: (1, 1, "defocus:RADIUS (0.5–32 px)")
        case .motion: (1, 2, "motion:LENGTH[:ANGLE] (2–64 px, degrees)")
        case .jpeg: (1, 1, "jpeg:QUALITY (1–100)")
        case .lowlight: (2, 3, "lowlight:SCALE:GAMMA[:SIGMA] (0 < SCALE ≤ 1, 0.2 ≤ GAMMA ≤ 5)")
        }
        guard (low...high).contains(p.count) else { throw RestorationError("--simulate \(text): expected \(name)") }
        if kind == .lowlight, p.count == 2 { p.append(5) }
        let ok: Bool = switch kind {
        case .noise: p[0] > 0 && p[0] <= 255
        case .poisson: p[0] >= 0.1 && p[0] <= 1e6
        case .defocus: p[0] >= 0.5 && p[0] <= 32
        case .motion: p[0] >= 2 && p[0] <= 64
        case .jpeg: p[0] >= 1 && p[0] <= 100 && p[0] == p[0].rounded()
        case .lowlight: p[0] > 0 && p[0] <= 1 && p[1] >= 0.2 && p[1] <= 5 && p[2] >= 0 && p[2] <= 255
        }
        guard ok else { throw RestorationError("--simulate \(text): out of range; expected \(name)") }
        self.kind = kind
        parameters = p
    }

    /// The degraded copy of `clean` ([1, H, W, C] on [-1, 1]), on [-1, 1], 8-bit values.
    public func apply(_ clean: Tensor, seed: UInt64) throws -> Tensor {
        let (_, h, w, c) = try clean.nhwc("simulate")
        var x = clean.values.map { ($0 + 1) / 2 }
        var random = SplitMix64(seed: seed &+ 0x0DE6_7ADE)
        switch kind {
        case .noise:
            let s = parameters[0] / 255
            for i in x.indices { x[i] += Float(s * random.nextGaussian()) }
        case .poisson:
            let peak = parameters[0]
            for i in x.indices { x[i] = Float(Self.poisson(peak * Double(max(0, x[i])), &random) / peak) }
        case .defocus:
            x = try Self.convolve(x, height: h, width: w, channels: c, kernel: Self.disk(radius: parameters[0]))
        case .motion:
            x = try Self.convolve(x, height: h, width: w, channels: c, kernel: Self.line(length: parameters[0], degrees: parameters.count > 1 ? parameters[1] : 0))
        case .jpeg:
            let image = Image(width: w, height: h, channels: c, pixels: x.map { min(1, max(0, $0)) })
            do {
                let bytes = try ImageWriter.encode(image, format: .jpeg(quality: Int(parameters[0])))
                x = try ImageReader.decode(bytes, name: "simulated JPEG").pixels
            } catch {
                throw RestorationError("--simulate \(description): \(error)")
            }
        case .lowlight:
            let (k, g, s) = (Float(parameters[0]), Float(parameters[1]), parameters[2] / 255)
            for i in x.indices { x[i] = k * Foundation.pow(max(0, x[i]), g) + Float(s * random.nextGaussian()) }
        }
        let out = try Tensor(uninitializedShape: clean.shape)
        for i in x.indices { out.data[i] = (min(1, max(0, x[i])) * 255).rounded() / 127.5 - 1 }
        return out
    }

    /// A Poisson draw of mean `lambda`: Knuth's product method below 30, else the normal approximation
    /// round(λ + √λ·z) (the difference is far below the 8-bit rounding that follows).
    static func poisson(_ lambda: Double, _ random: inout SplitMix64) -> Double {
        if lambda <= 0 { return 0 }
        if lambda < 30 {
            let limit = Foundation.exp(-lambda)
            var k = 0.0, product = Double(random.next() >> 11) / Double(1 << 53)
            while product > limit { k += 1; product *= Double(random.next() >> 11) / Double(1 << 53) }
            return k
        }
        return max(0, (lambda + lambda.squareRoot() * random.nextGaussian()).rounded())
    }

    /// The disk kernel: 1 on pixels whose centre lies within `radius` of the centre, normalised.
    static func disk(radius: Double) -> (size: Int, weights: [Float]) {
        let r = Int(radius.rounded(.up)), size = 2 * r + 1
        var k = [Float](repeating: 0, count: size * size)
        for y in 0..<size { for x in 0..<size where Double((y - r) * (y - r) + (x - r) * (x - r)) <= radius * radius { k[y * size + x] = 1 } }
        let sum = k.reduce(0, +)
        return (size, k.map { $0 / sum })
    }

    /// The motion kernel: a segment of `length` px through the centre at `degrees`, drawn by bilinear splats of
    /// points every 1/8 px, normalised.
    static func line(length: Double, degrees: Double) -> (size: Int, weights: [Float]) {
        let r = Int((length / 2).rounded(.up)), size = 2 * r + 1
        var k = [Float](repeating: 0, count: size * size)
        let (dx, dy) = (Foundation.cos(degrees * .pi / 180), -Foundation.sin(degrees * .pi / 180))
        let points = Int(length * 8) + 1
        for i in 0..<points {
            let t = -length / 2 + length * Double(i) / Double(points - 1)
            let (px, py) = (Double(r) + t * dx, Double(r) + t * dy)
            let (x0, y0) = (Int(px.rounded(.down)), Int(py.rounded(.down)))
            let (fx, fy) = (px - Double(x0), py - Double(y0))
            for (yy, wy) in [(y0, 1 - fy), (y0 + 1, fy)] {
                for (xx, wx) in [(x0, 1 - fx), (x0 + 1, fx)] where (0..<size).contains(yy) && (0..<size).contains(xx) {
                    k[yy * size + xx] += Float(wy * wx)
                }
            }
        }
        let sum = k.reduce(0, +)
        return (size, k.map { $0 / sum })
    }

    /// `x` (HWC) convolved per channel with a square kernel, reflect borders (no edge repeat, as cv2's BORDER_REFLECT_101).
    static func convolve(_ x: [Float], height h: Int, width w: Int, channels c: Int, kernel: (size: Int, weights: [Float])) throws -> [Float] {
        let r = kernel.size / 2
        guard h > r, w > r else { throw RestorationError("--simulate: the image (\(w)×\(h)) is smaller than the blur kernel (\(kernel.size) px)") }
        func reflect(_ i: Int, _ n: Int) -> Int { i < 0 ? -i : i >= n ? 2 * n - 2 - i : i }
        var out = [Float](repeating: 0, count: x.count)
        let taps = (0..<kernel.weights.count).filter { kernel.weights[$0] != 0 }
        out.withUnsafeMutableBufferPointer { o in
            let output = o.baseAddress!
            x.withUnsafeBufferPointer { s in
                let source = s.baseAddress!
                Parallel.forRanges(h, grain: 8) { begin, end in
                    for y in begin..<end {
                        for xx in 0..<w {
                            for ch in 0..<c {
                                var sum: Float = 0
                                for tap in taps {
                                    let sy = reflect(y + tap / kernel.size - r, h), sx = reflect(xx + tap % kernel.size - r, w)
                                    sum += kernel.weights[tap] * source[(sy * w + sx) * c + ch]
                                }
                                output[(y * w + xx) * c + ch] = sum
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
