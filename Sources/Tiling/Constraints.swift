import Engine
import Foundation
import Methods
import Operators

/// A window's constraints in USDR's mask-shift restoration, applied to x̂0 after DDNM's range–null correction
/// at every step: the HiR guide's block means, then the known region (the overlap with finished windows),
/// then, where samples straddle the known edge and the correction was exact, the settle step.
public struct WindowConstraint: X0Constraint {
    public let known: KnownRegion?
    public let guide: BlockMeanGuide?

    public init(known: KnownRegion?, guide: BlockMeanGuide?) {
        self.known = known
        self.guide = guide
    }

    public func check(_ shape: [Int]) throws {
        try known?.check(shape)
        try guide?.check(shape)
    }

    public func apply(_ x0: Tensor, exact: Bool, operator a: any DegradationOperator, observation y: Tensor) throws -> Tensor {
        var x = try impose(known, on: try guide?.apply(x0) ?? x0)
        if exact, let known, known.refinements > 0 { x = try settle(x, known, a, y) }
        return x
    }
}

/// Pixels of x̂0 fixed to known values: `keep` is [H, W] (1 = known), `values` the image they take.
public struct KnownRegion {
    public let keep: [Float]
    public let values: Tensor
    /// Iterations of the settle step after each correction (`settle`): for operators whose samples straddle
    /// the known region's edge (blur, bicubic windows), where the correction alone leaves those samples off —
    /// conjugate gradients for operators with Aᵀ, else rounds of alternating projections. 0 for pixel- and
    /// block-local operators, where the correction is already exact.
    public var refinements: Int
    public init(keep: [Float], values: Tensor, refinements: Int = 0) {
        self.keep = keep
        self.values = values
        self.refinements = refinements
    }

    public func check(_ shape: [Int]) throws {
        guard shape.count == 4, values.shape.count == 4, values.shape[1...3] == shape[1...3], keep.count == shape[1] * shape[2] else {
            throw SamplerError("the known region (\(values.shape)) does not match the image \(shape)")
        }
    }
}

/// USDR's HiR constraint on a window: the f×f block means of x̂0 must equal the global (coarse) result g.
/// The correction d = g − mean(block) is spread over the block's free pixels (all, or a mask's holes), which
/// keeps the window's own constraints: gray, pooling and noise commute with block means (and g satisfies the
/// coarse A_g), and a mask's known pixels are not free.
///
/// With every pixel free (no mask), d is spread as a smooth field rather than as a constant per block (the
/// least-norm change, which left an f×f pattern in the output: the last step's correction is never seen by
/// the network): the bilinear interpolation of d between block centres, refined `smoothingRounds` times by
/// interpolating what its block means still miss, and the rest added per block, so the block means are still
/// exactly g. Interpolation acts on each channel alike and is linear, so the per-pixel gray constraint and
/// pooling over whole blocks hold as before.
public struct BlockMeanGuide {
    public let factor: Int
    /// [1, h/f, w/f, C]
    public let target: Tensor
    /// h·w weights, 1 = free; nil = every pixel.
    public let free: [Float]?
    /// Rounds of bilinear refinement (0: the constant-per-block correction).
    public var smoothingRounds: Int
    public init(factor: Int, target: Tensor, free: [Float]?, smoothingRounds: Int = 3) {
        self.factor = factor
        self.target = target
        self.free = free
        self.smoothingRounds = smoothingRounds
    }

    public func check(_ shape: [Int]) throws {
        guard shape.count == 4, factor >= 1, shape[1] % factor == 0, shape[2] % factor == 0,
              target.shape == [1, shape[1] / factor, shape[2] / factor, shape[3]], free.map({ $0.count == shape[1] * shape[2] }) ?? true else {
            throw SamplerError("the HiR guide (\(target.shape), ÷\(factor)) does not match the window \(shape)")
        }
    }

    public func apply(_ x: Tensor) throws -> Tensor {
        let (n, h, w, c) = try x.nhwc("HiR guide")
        let f = factor, (bh, bw) = (h / f, w / f)
        /// Block means of one sample's field v ([h·w·c]) → [bh·bw·c].
        func blockMeans(_ v: UnsafePointer<Float>) -> [Float] {
            var m = [Float](repeating: 0, count: bh * bw * c)
            for r in 0..<h { for q in 0..<w { for k in 0..<c { m[((r / f) * bw + q / f) * c + k] += v[(r * w + q) * c + k] } } }
            let scale = 1 / Float(f * f)
            return m.map { $0 * scale }
        }
        for b in 0..<n {
            let sample = x.data + b * h * w * c
            var d = blockMeans(sample)
            for i in 0..<d.count { d[i] = target.data[i] - d[i] }
            if free == nil, smoothingRounds > 0, f > 1 {
                // u = Σ bilinear(e_j), e_0 = d, e_{j+1} = d − means(u): the smooth part, then the rest per block.
                var u = [Float](repeating: 0, count: h * w * c)
                var e = d
                for round in 0...smoothingRounds {
                    if round > 0 {
                        let m = u.withUnsafeBufferPointer { blockMeans($0.baseAddress!) }
                        for i in 0..<e.count { e[i] = d[i] - m[i] }
                    }
                    guard round < smoothingRounds else { break }
                    Self.addBilinear(e, blocksHigh: bh, blocksWide: bw, factor: f, channels: c, to: &u)
                }
                for i in 0..<u.count { sample[i] += u[i] }
                d = e
            }
            for by in 0..<bh { for bx in 0..<bw {
                var count: Float = 0
                for r in 0..<f { for q in 0..<f { count += free?[(by * f + r) * w + bx * f + q] ?? 1 } }
                guard count > 0 else { continue }
                for k in 0..<c {
                    let delta = d[(by * bw + bx) * c + k] * Float(f * f) / count
                    for r in 0..<f { for q in 0..<f {
                        let p = (by * f + r) * w + bx * f + q
                        sample[p * c + k] += delta * (free?[p] ?? 1)
                    } }
                }
            } }
        }
        return x
    }

    /// u += the bilinear interpolation of per-block values v (at block centres; linearly extrapolated over the
    /// outer half blocks, so a ramp stays a ramp up to the window's edge) at every pixel.
    static func addBilinear(_ v: [Float], blocksHigh bh: Int, blocksWide bw: Int, factor f: Int, channels c: Int, to u: inout [Float]) {
        let w = bw * f
        func axis(_ i: Int, _ blocks: Int) -> (Int, Int, Float) {
            guard blocks > 1 else { return (0, 0, 0) }
            let position = (Float(i) + 0.5) / Float(f) - 0.5
            let low = min(max(Int(position.rounded(.down)), 0), blocks - 2)
            return (low, low + 1, position - Float(low))
        }
        for r in 0..<(bh * f) {
            let (y0, y1, ty) = axis(r, bh)
            for q in 0..<w {
                let (x0, x1, tx) = axis(q, bw)
                let (w00, w01, w10, w11) = ((1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx)
                for k in 0..<c {
                    u[(r * w + q) * c + k] += w00 * v[(y0 * bw + x0) * c + k] + w01 * v[(y0 * bw + x1) * c + k]
                        + w10 * v[(y1 * bw + x0) * c + k] + w11 * v[(y1 * bw + x1) * c + k]
                }
            }
        }
    }
}


/// Makes x̂0 (known pixels already imposed) satisfy A x = y by changing only the free pixels, by the least
/// change: δ = D Aᵀ λ with (A D Aᵀ) λ = y − A x (D: the free pixels), solved by conjugate gradients for
/// operators with Aᵀ (at most `refinements` iterations); otherwise `refinements` rounds of alternating
/// projections x ← impose(x − A†(A x − y)).
public func settle(_ x: Tensor, _ known: KnownRegion, _ a: any DegradationOperator, _ y: Tensor) throws -> Tensor {
    guard let t = a as? any TransposableOperator else {
        var x = x
        for _ in 0..<known.refinements { x = try impose(known, on: try a.rangeNullCorrection(x, observation: y, strength: 1)) }
        return x
    }
    let (n, h, w, c) = try x.nhwc("known region")
    func free(_ v: Tensor) -> Tensor {  // D v
        for b in 0..<n { for p in 0..<(h * w) where known.keep[p] != 0 {
            for k in 0..<c { v.data[(b * h * w + p) * c + k] *= 1 - known.keep[p] }
        } }
        return v
    }
    func dot(_ u: Tensor, _ v: Tensor) -> Double { (0..<u.count).reduce(0.0) { $0 + Double(u.data[$1]) * Double(v.data[$1]) } }
    // (A D Aᵀ + μ I) λ = r: rows with little free support make A D Aᵀ ill-conditioned; μ keeps CG stable.
    var r = try subtract(y, try t.apply(x))
    let lambda = try Tensor(shape: r.shape, repeating: 0)
    var p = r
    var rr = dot(r, r)
    let mu: Float = 1e-4
    let tolerance = 1e-14 * max(dot(y, y), 1e-30)
    for _ in 0..<known.refinements where rr > tolerance {
        let q = try axpby(1, try t.apply(free(try t.applyTranspose(p))), mu, p)
        let pq = dot(p, q)
        guard pq > 0 else { break }
        let alpha = Float(rr / pq)
        for i in 0..<lambda.count { lambda.data[i] += alpha * p.data[i] }
        r = try axpby(1, r, -alpha, q)
        let next = dot(r, r)
        p = try axpby(1, r, Float(next / rr), p)
        rr = next
    }
    return try axpby(1, x, 1, free(try t.applyTranspose(lambda)))
}

/// x ← keep ⊙ values + (1 − keep) ⊙ x, per pixel, for every sample.
public func impose(_ known: KnownRegion?, on x: Tensor) throws -> Tensor {
    guard let known else { return x }
    let (n, h, w, c) = try x.nhwc("known region")
    for b in 0..<n { for p in 0..<(h * w) where known.keep[p] != 0 {
        let m = known.keep[p], base = (b * h * w + p) * c, source = p * c
        for k in 0..<c { x.data[base + k] = m * known.values.data[source + k] + (1 - m) * x.data[base + k] }
    } }
    return x
}

