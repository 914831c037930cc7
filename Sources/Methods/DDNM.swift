import Engine
import Foundation
import Operators

/// The ε-prediction a sampler calls: x_t and a timestep in, ε (first 3 channels) out. Samplers never know
/// which network stands behind it.
public typealias NoisePredictor = (_ x: Tensor, _ t: Int) throws -> Tensor

/// Draws standard-normal tensors; tests inject recorded sequences to replay the official runs.
public protocol GaussianSource {
    mutating func next(shape: [Int]) throws -> Tensor
}

/// Seeded standard normals (`SplitMix64` + Box–Muller, filled in pairs): same seed, same sequence.
public struct SeededGaussian: GaussianSource {
    var generator: SplitMix64
    public init(seed: UInt64) { generator = SplitMix64(seed: seed &+ 0x5DEE_CE66_D1CE_5EED) }
    public mutating func next(shape: [Int]) throws -> Tensor {
        let t = try Tensor(uninitializedShape: shape)
        var i = 0
        while i < t.count {
            let (a, b) = generator.nextGaussianPair()
            t.data[i] = Float(a)
            if i + 1 < t.count { t.data[i + 1] = Float(b) }
            i += 2
        }
        return t
    }
}

/// A recorded sequence of Gaussian tensors, returned in order (for golden tests against the official code).
public struct RecordedGaussian: GaussianSource {
    public private(set) var remaining: [Tensor]
    public init(_ tensors: [Tensor]) { remaining = tensors }
    public mutating func next(shape: [Int]) throws -> Tensor {
        guard !remaining.isEmpty else { throw SamplerError("the recorded noise sequence ran out") }
        let t = remaining.removeFirst()
        guard t.count == shape.reduce(1, *) else { throw SamplerError("recorded noise has \(t.count) values, the sampler needs \(shape)") }
        return try t.view(as: shape)
    }
}

/// DDNM (Wang, Yu & Zhang, ICLR 2023): DDIM sampling where every x0 prediction is replaced by its
/// range–null-space correction x̂0 = x0 − λ·A†(A x0 − y) (Eqs. 13, 17), with DDNM+'s noise handling (σy)
/// and time-travel, as the official code (wyhuai/DDNM@00b58ea) runs it; see `Variant`.
public struct DDNMSampler {
    /// Which of the official code's two samplers, or the paper's corrected equations.
    public enum Variant: String, Sendable {
        /// `functions/svd_ddnm.py` (the official default): for σy = 0 `ddnm_diffusion` (lines 36-78),
        /// x̂0 = x0 − A†(A x0 − y), x_{t−1} = √ᾱ' x̂0 + √(1−ᾱ')(η z + √(1−η²) ε); for σy > 0
        /// `ddnm_plus_diffusion` (lines 97-142) with the per-singular Λ and Λ_noise of `DDNMPlusSpectral`
        /// (operators with a block SVD: pool, gray, mask, noise).
        case svd
        /// `simplified_ddnm_plus` (guided_diffusion/diffusion.py:346-395), quirks included: σ_t = √(1 − ᾱ'²)
        /// and γ_t multiplying the DDIM noise (diffusion.py:357, 385).
        case simplified
        /// The simplified path with σ_t = √(1 − ᾱ') in place of the code's √(1 − ᾱ'²), and γ_t/σ_t scaling
        /// the DDIM noise, so that σy = 0 is exactly the SVD path's DDIM step. The threshold and γ still
        /// compare σ_t with ᾱ'·σy as the code does (the paper's Eq. 19 writes a_t σy with a_t = √ᾱ'); this
        /// variant corrects the σ_t quirk only.
        case paper
    }

    public let schedule: NoiseSchedule
    public let timesteps: TimeTravelSchedule
    /// DDIM stochasticity η (official default 0.85).
    public let eta: Float
    /// Observation noise level σy on the model's [-1, 1] scale (twice the [0, 1] value the CLI takes).
    public private(set) var sigmaY: Float
    public let variant: Variant

    /// Replaces the block SVD an operator reports (tests inject the official LAPACK bases to replay runs).
    public var adjustSpectralBlocks: ((SpectralBlocks) -> SpectralBlocks)?

    /// Clamp x0|t to [-1, 1] before the correction and take ε consistent with it, ε = (x_t − √ᾱ_t x0)/√(1−ᾱ_t),
    /// as guided-diffusion's samplers and hq_demo (`clip(predict_x0_from_eps(...))`) do. Off by default: the
    /// official DDNM code does not clip. A weak prior needs it: the bundled one diverges without it in
    /// unconditional sampling (its ε at large t, divided by √ᾱ_t ≈ 0.006, throws x0 far out of range).
    public var clipX0 = false

    /// The same sampler for an observation whose noise is `factor` × σy (HiR's coarse levels average y).
    public func scalingNoise(by factor: Float) -> DDNMSampler {
        var copy = self
        copy.sigmaY *= factor
        return copy
    }

    public init(schedule: NoiseSchedule = .linear(), timesteps: TimeTravelSchedule, eta: Float = 0.85, sigmaY: Float = 0, variant: Variant = .svd) throws {
        self.schedule = schedule
        self.timesteps = timesteps
        self.eta = eta
        self.sigmaY = sigmaY
        self.variant = variant
    }

    /// Restores x from y. `progress(done, total)` is called after each network evaluation.
    ///
    /// `known`: pixels fixed to given values (USDR's mask-shift: a window's overlap with finished windows);
    /// they overwrite x̂0 after the correction at every step, as hq_demo does (gaussian_diffusion.py:344-380).
    public func sample(observation y: Tensor, operator a: any DegradationOperator, imageShape: [Int],
                       predictNoise: NoisePredictor, noise: inout some GaussianSource, known: KnownRegion? = nil, guide: BlockMeanGuide? = nil,
                       progress: (Int, Int) -> Void = { _, _ in }) throws -> Tensor {
        if let known { try known.check(imageShape) }
        if let guide { try guide.check(imageShape) }
        // DDNM+ on the SVD path needs the operator's block SVD.
        // Λ(v; a, σ_t) and Λ_noise(z, ε; a, σ_t) of a block SVD or of an operator that computes its own.
        var plus: (lambda: (Tensor, Float, Float) throws -> Tensor, noise: (Tensor, Tensor, Float, Float) throws -> Tensor)?
        var svd: (form: any SVDForm, raw: ([Float]) -> [Float])?
        let (sigmaY, eta) = (self.sigmaY, self.eta)
        if variant == .svd, sigmaY > 0 {
            if let spectral = a as? any SpectralOperator {
                let own = try spectral.spectralBlocks(imageShape: imageShape)
                let blocks = adjustSpectralBlocks?(own) ?? own
                let denoising = a is IdentityOperator
                plus = ({ v, root, sigmaT in try DDNMPlusSpectral.lambda(v, blocks, a: root, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta) },
                        { z, e, root, sigmaT in try DDNMPlusSpectral.noise(z, e, blocks, a: root, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta, denoising: denoising) })
            } else if let providing = a as? any SVDFormProviding {
                guard known == nil, guide == nil else { throw SamplerError("known regions (tiling) are not supported with DDNM+ on an SVD form (\(a.spec))") }
                svd = try providing.svdForm(imageShape: imageShape)
            } else if let own = a as? any DDNMPlusProviding, own.ddnmPlusAvailable(imageShape: imageShape) {
                plus = ({ v, root, sigmaT in try own.ddnmPlusLambda(v, a: root, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta) },
                        { z, e, root, sigmaT in try own.ddnmPlusNoise(z, e, a: root, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta) })
            } else {
                throw SamplerError("DDNM+ (σy > 0) on the SVD path supports pool, gray, mask, noise, cs-wht, bicubic and the separable blurs; use --simplified for \(a.spec)")
            }
        }
        var x = try noise.next(shape: imageShape)  // x_T
        var lastX0: Tensor?
        var evaluations = 0
        let total = timesteps.networkEvaluations
        for (t, next) in timesteps.pairs {
            let aNext = schedule.alphaBar(next)
            if next > t {
                // Time-travel: re-noise the last uncorrected x0 to the higher level (diffusion.py:388-393).
                guard let x0 = lastX0 else { throw SamplerError("time-travel before the first step") }
                let z = try noise.next(shape: imageShape)
                x = try axpby(aNext.squareRoot(), x0, (1 - aNext).squareRoot(), z)
                continue
            }
            let aT = schedule.alphaBar(t)
            var epsilon = try firstThreeChannels(try predictNoise(x, t))
            // x0|t = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t   (Eq. 12; no clipping, as the official code, unless clipX0)
            var x0 = try axpby(1 / aT.squareRoot(), x, -(1 - aT).squareRoot() / aT.squareRoot(), epsilon)
            if clipX0 {
                x0 = try clamp(x0, to: -1...1)
                epsilon = try axpby(1 / (1 - aT).squareRoot(), x, -aT.squareRoot() / (1 - aT).squareRoot(), x0)
            }
            lastX0 = x0
            if let svd {
                // The same step on an SVD form (Walsh–Hadamard CS), sample by sample in the official layout.
                let root = aNext.squareRoot(), sigmaT = (1 - aNext).squareRoot()
                let correction = try a.pseudoInverse(try subtract(try a.apply(x0), y))
                let z = try noise.next(shape: imageShape)
                let next = try Tensor(uninitializedShape: imageShape)
                for b in 0..<imageShape[0] {
                    let lambda = DDNMPlusSVD.lambda(correction.channelMajor(batch: b), svd.form, a: root, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta)
                    let stochastic = DDNMPlusSVD.noise(z.channelMajor(batch: b), epsilon.channelMajor(batch: b), svd.form, raw: svd.raw,
                                                       a: root, sigmaY: sigmaY, sigmaT: sigmaT, eta: eta)
                    let x0b = x0.channelMajor(batch: b)
                    next.setChannelMajor((0..<x0b.count).map { root * (x0b[$0] - lambda[$0]) + stochastic[$0] }, batch: b)
                }
                x = next
                evaluations += 1
                progress(evaluations, total)
                continue
            }
            if let plus {
                // ddnm_plus_diffusion: x̂0 = x0 − Λ A†(A x0 − y) (Eq. 17), x_{t−1} = √ᾱ' x̂0 + Λ_noise(z, ε) (Eq. 51 of the code);
                // Λ on the operator's block SVD, or its own (separable blurs, bicubic, FFT kernels).
                let root = aNext.squareRoot(), sigmaT = (1 - aNext).squareRoot()
                let correction = try a.pseudoInverse(try subtract(try a.apply(x0), y))
                let x0Hat = try impose(known, on: try guided(guide, subtract(x0, try plus.lambda(correction, root, sigmaT))))
                let z = try noise.next(shape: imageShape)
                x = try axpby(root, x0Hat, 1, try plus.noise(z, epsilon, root, sigmaT))
                evaluations += 1
                progress(evaluations, total)
                continue
            }
            let sigmaT = variant == .simplified ? (1 - aNext * aNext).squareRoot() : (1 - aNext).squareRoot()
            let (lambda, gamma): (Float, Float)
            if sigmaT >= aNext * sigmaY {
                (lambda, gamma) = (1, (sigmaT * sigmaT - aNext * sigmaY * aNext * sigmaY).squareRoot())  // Eq. 19
            } else {
                (lambda, gamma) = (sigmaT / (aNext * sigmaY), 0)
            }
            var x0Hat = try impose(known, on: try guided(guide, a.rangeNullCorrection(x0, observation: y, strength: lambda)))  // Eq. 17
            if lambda == 1, let known, known.refinements > 0 { x0Hat = try settle(x0Hat, known, a, y) }
            let c1 = (1 - aNext).squareRoot() * eta, c2 = (1 - aNext).squareRoot() * (1 - eta * eta).squareRoot()
            // svd: γ = σ_t (σy = 0), so the scale is 1 — plain DDIM noise; paper: γ/σ_t; simplified: γ (the quirk).
            let noiseScale = variant == .simplified ? gamma : (sigmaT > 0 ? gamma / sigmaT : 0)
            let z = try noise.next(shape: imageShape)
            // x_{t−1} = √ᾱ_{t−1} x̂0 + γ (c1 z + c2 ε)
            let stochastic = try axpby(c1 * noiseScale, z, c2 * noiseScale, epsilon)
            x = try axpby(aNext.squareRoot(), x0Hat, 1, stochastic)
            evaluations += 1
            progress(evaluations, total)
        }
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

    func check(_ shape: [Int]) throws {
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

    func check(_ shape: [Int]) throws {
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

func guided(_ guide: BlockMeanGuide?, _ x: Tensor) throws -> Tensor { try guide?.apply(x) ?? x }

/// Makes x̂0 (known pixels already imposed) satisfy A x = y by changing only the free pixels, by the least
/// change: δ = D Aᵀ λ with (A D Aᵀ) λ = y − A x (D: the free pixels), solved by conjugate gradients for
/// operators with Aᵀ (at most `refinements` iterations); otherwise `refinements` rounds of alternating
/// projections x ← impose(x − A†(A x − y)).
func settle(_ x: Tensor, _ known: KnownRegion, _ a: any DegradationOperator, _ y: Tensor) throws -> Tensor {
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
func impose(_ known: KnownRegion?, on x: Tensor) throws -> Tensor {
    guard let known else { return x }
    let (n, h, w, c) = try x.nhwc("known region")
    for b in 0..<n { for p in 0..<(h * w) where known.keep[p] != 0 {
        let m = known.keep[p], base = (b * h * w + p) * c, source = p * c
        for k in 0..<c { x.data[base + k] = m * known.values.data[source + k] + (1 - m) * x.data[base + k] }
    } }
    return x
}

/// The first three channels of an NHWC tensor (ε of a learn_sigma network's 6 outputs), or the tensor itself.
func firstThreeChannels(_ x: Tensor) throws -> Tensor {
    guard let c = x.shape.last, c != 3 else { return x }
    guard c > 3 else { throw SamplerError("the network returned \(c) channels, expected at least 3") }
    return try splitChannels(x, sizes: [3, c - 3])[0]
}
