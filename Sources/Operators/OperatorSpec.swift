import Engine
import Foundation

/// The text specs of degradation operators, one grammar for every command:
/// `pool:S`, `gray`, `mask:FILE`, `noise`, and comma-separated compositions applied left to right
/// (`mask:holes.png,gray,pool:2`).
public enum OperatorSpec {
    /// The spec forms this build understands, for help texts.
    public static let forms = ["pool:S (average-pooling SR ×S)", "bicubic:S (bicubic SR ×S, the official a = −0.5 kernel)",
                               "gray (colorization)", "mask:FILE (inpainting; white = hole)",
                               "blur:uni | blur:gauss | blur:aniso (the official deblurring kernels)",
                               "blur:gauss:K:SIGMA | blur:box:K (K-tap kernels)",
                               "blur:FILE (any kernel: a gray image or a text file of rows; FFT, periodic boundary) | blur:motion:LENGTH:ANGLE",
                               "cs-wht:R[:PERMFILE] (Walsh–Hadamard compressed sensing keeping a fraction R; y is a coefficient vector)",
                               "cs-block:R (32×32 block compressed sensing, seeded orthonormal rows)",
                               "noise (denoising; pair with --sigma-y)", "A,B,… (composition, applied left to right)"]

    /// Which official sampler the operators are built for (they differ only in colorization's weights).
    public enum Path: Sendable { case svd, simplified }

    /// Builds the operator; `loadMask(path)` returns the keep-mask [H, W] (1 = known) for `mask:` parts.
    ///
    /// `referenceExact` reproduces the official operators' quirks where they are not what the operator
    /// means: the official blur matrices use only k − 1 taps of a k-tap kernel (svd_operators.py:949).
    public static func parse(_ text: String, path: Path = .svd, referenceExact: Bool = false, seed: UInt64 = 1234,
                             loadMask: (String) throws -> Tensor,
                             loadKernelImage: ((String) throws -> (values: [Float], rows: Int, columns: Int))? = nil) throws -> any DegradationOperator {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) }
        guard !parts.isEmpty, !parts.contains(where: \.isEmpty) else { throw OperatorError("empty degradation spec \(text.debugDescription)") }
        let operators = try parts.map { part -> any DegradationOperator in
            let fields = part.split(separator: ":", maxSplits: 1).map(String.init)
            switch fields[0] {
            case "pool":
                guard fields.count == 2, let s = Int(fields[1]) else { throw OperatorError("pool needs an integer factor, e.g. pool:4 (got \(part.debugDescription))") }
                return try AveragePoolingOperator(factor: s)
            case "gray", "grey":
                guard fields.count == 1 else { throw OperatorError("gray takes no argument (got \(part.debugDescription))") }
                return path == .svd ? GrayscaleOperator(weights: GrayscaleOperator.svdWeights) : GrayscaleOperator()
            case "noise", "denoise":
                guard fields.count == 1 else { throw OperatorError("noise takes no argument (got \(part.debugDescription))") }
                return IdentityOperator()
            case "bicubic":
                guard fields.count == 2, let s = Int(fields[1]), (1...16).contains(s) else {
                    throw OperatorError("bicubic needs an integer factor 1–16, e.g. bicubic:4 (got \(part.debugDescription))")
                }
                // Windows (USDR tiling) take the bicubic rows inside each window: a 2s-pixel reach, aligned to s.
                let local = SizedOperator.Local(alignment: s, halo: (4 * s - 1 + s - 1) / s * s) { rect, shape in
                    try SeparableOperator.window(spec: part, vertical: BandedAxis.bicubic(factor: s, size: shape[1]),
                                                 horizontal: BandedAxis.bicubic(factor: s, size: shape[2]), rect: rect)
                }
                return SizedOperator(spec: part, factor: s, local: local) { h, w in try SeparableOperator.bicubic(factor: s, height: h, width: w) }
            case "blur":
                let argument = fields.count == 2 ? fields[1] : ""
                if argument.hasPrefix("motion:") {
                    let values = argument.split(separator: ":").dropFirst().compactMap { Float($0) }
                    guard values.count == 2, values[0] >= 1, values[0] <= 255, values[1].isFinite else {
                        throw OperatorError("blur:motion:LENGTH:ANGLE needs a length 1–255 px and an angle in degrees (got \(part.debugDescription))")
                    }
                    let k = FFTBlurOperator.motionKernel(length: values[0], angle: values[1])
                    return fftBlur(part, k)
                }
                let ext = (argument as NSString).pathExtension.lowercased()
                if ["png", "jpg", "jpeg", "txt", "csv"].contains(ext) {
                    let k: (values: [Float], rows: Int, columns: Int)
                    if ext == "txt" || ext == "csv" {
                        k = try FFTBlurOperator.kernel(text: argument)
                    } else {
                        guard let loadKernelImage else { throw OperatorError("image kernels need an image reader (\(argument))") }
                        k = try loadKernelImage(argument)
                    }
                    return fftBlur(part, k)
                }
                return try blur(part, argument, referenceExact: referenceExact)
            case "cs-wht":
                let arguments = fields.count == 2 ? fields[1].split(separator: ":", maxSplits: 1).map(String.init) : []
                guard let first = arguments.first, let fraction = Double(first), fraction.isFinite, fraction >= 1.0 / Double(1 << 24), fraction <= 1 else {
                    throw OperatorError("cs-wht needs the kept fraction in (0, 1], e.g. cs-wht:0.25 (got \(part.debugDescription))")
                }
                // compress_by = round(1 / deg_scale), as diffusion.py:455.
                return DeferredWHTOperator(spec: part, compressBy: Int((1 / fraction).rounded()), permutationFile: arguments.count == 2 ? arguments[1] : nil, seed: seed)
            case "cs-block":
                guard fields.count == 2, let fraction = Double(fields[1]), fraction.isFinite, fraction > 0, fraction <= 1 else {
                    throw OperatorError("cs-block needs the kept fraction in (0, 1], e.g. cs-block:0.25 (got \(part.debugDescription))")
                }
                return try BlockCSOperator(spec: part, fraction: fraction, seed: seed)
            case "mask":
                guard fields.count == 2, !fields[1].isEmpty else { throw OperatorError("mask needs a file, e.g. mask:holes.png (got \(part.debugDescription))") }
                return try MaskOperator(keep: try loadMask(fields[1]), source: fields[1])
            default:
                throw OperatorError("unknown degradation \(fields[0].debugDescription); known: \(forms.joined(separator: "; "))")
            }
        }
        return operators.count == 1 ? operators[0] : CompositeOperator(operators)
    }

    /// A 2-D kernel blur through the FFT (periodic, whole image), with a window form for tiling: the valid
    /// convolution inside each window (`ValidConvolutionOperator`), a halo of the kernel's span.
    static func fftBlur(_ part: String, _ k: (values: [Float], rows: Int, columns: Int)) -> SizedOperator {
        let local = SizedOperator.Local(alignment: 1, halo: max(k.rows, k.columns) - 1) { rect, shape in
            let op = try ValidConvolutionOperator(spec: part, kernel: k.values, kernelHeight: k.rows, kernelWidth: k.columns,
                                                  height: rect.height, width: rect.width)
            return (op, ValidConvolutionOperator.observedRect(rect, kernelHeight: k.rows, kernelWidth: k.columns))
        }
        return SizedOperator(spec: part, factor: 1, local: local) { h, w in
            try FFTBlurOperator(spec: part, kernel: k.values, kernelHeight: k.rows, kernelWidth: k.columns, height: h, width: w)
        }
    }

    /// `blur:uni`, `blur:gauss`, `blur:aniso`: the official kernels (diffusion.py:500-520); `blur:gauss:K:SIGMA`,
    /// `blur:box:K`: K-tap kernels. All taps are used, unless `referenceExact` asks for the official loop's k − 1.
    static func blur(_ part: String, _ argument: String, referenceExact: Bool) throws -> any DegradationOperator {
        let fields = argument.split(separator: ":").map(String.init)
        let (vertical, horizontal, official): ([Float], [Float], Bool)
        switch fields.first {
        case "uni" where fields.count == 1:
            (vertical, horizontal, official) = ([Float](repeating: 1.0 / 9, count: 9), [Float](repeating: 1.0 / 9, count: 9), referenceExact)
        case "gauss" where fields.count == 1:
            let k = SeparableOperator.gaussianTaps(size: 5, sigma: 10)
            (vertical, horizontal, official) = (k, k, referenceExact)
        case "aniso" where fields.count == 1:
            (vertical, horizontal, official) = (SeparableOperator.gaussianTaps(size: 9, sigma: 1), SeparableOperator.gaussianTaps(size: 9, sigma: 20), referenceExact)
        case "gauss" where fields.count == 3:
            guard let k = Int(fields[1]), (1...63).contains(k), let sigma = Float(fields[2]), sigma > 0, sigma.isFinite else {
                throw OperatorError("blur:gauss:K:SIGMA needs K in 1–63 and SIGMA > 0 (got \(part.debugDescription))")
            }
            let taps = SeparableOperator.gaussianTaps(size: k, sigma: sigma)
            (vertical, horizontal, official) = (taps, taps, referenceExact)
        case "box" where fields.count == 2:
            guard let k = Int(fields[1]), (1...63).contains(k) else { throw OperatorError("blur:box:K needs K in 1–63 (got \(part.debugDescription))") }
            (vertical, horizontal, official) = ([Float](repeating: 1, count: k), [Float](repeating: 1, count: k), referenceExact)
        default:
            throw OperatorError("unknown blur \(part.debugDescription); use blur:uni, blur:gauss, blur:aniso, blur:gauss:K:SIGMA or blur:box:K")
        }
        let reach = max(vertical.count, horizontal.count) - 1
        let local = SizedOperator.Local(alignment: 1, halo: reach) { rect, shape in
            try SeparableOperator.window(spec: part, vertical: try BandedAxis.blur(spec: part, kernel: vertical, size: shape[1], officialTaps: official),
                                         horizontal: try BandedAxis.blur(spec: part, kernel: horizontal, size: shape[2], officialTaps: official), rect: rect)
        }
        return SizedOperator(spec: part, factor: 1, local: local) { h, w in
            try SeparableOperator.blur(spec: part, vertical: vertical, horizontal: horizontal, height: h, width: w, officialTaps: official)
        }
    }
}

/// An operator whose matrices depend on the image size (bicubic SR, blur): built for each size on first
/// use and cached. `factor` is the ratio of image to observation sides.
public final class SizedOperator: DegradationOperator, @unchecked Sendable {
    public let spec: String
    public let factor: Int
    private let build: (Int, Int) throws -> any DegradationOperator
    private var cache: [[Int]: any DegradationOperator] = [:]
    private let lock = NSLock()
    /// How the operator restricts to a window of a large image (USDR tiling), when it can.
    public let local: Local?

    /// A window form: offsets aligned to `alignment`; observation samples reach `halo` pixels, so a window
    /// observes only the samples wholly inside it; `window(rect, imageShape)` builds A_w and the rect of y.
    public struct Local {
        public let alignment: Int, halo: Int
        public let window: (PixelRect, [Int]) throws -> (operator: any DegradationOperator, observation: PixelRect)
        public init(alignment: Int, halo: Int, window: @escaping (PixelRect, [Int]) throws -> (operator: any DegradationOperator, observation: PixelRect)) {
            self.alignment = alignment
            self.halo = halo
            self.window = window
        }
    }

    public init(spec: String, factor: Int, local: Local? = nil, build: @escaping (Int, Int) throws -> any DegradationOperator) {
        self.spec = spec
        self.factor = factor
        self.local = local
        self.build = build
    }

    /// The operator for images of `height` × `width`.
    public func sized(height: Int, width: Int) throws -> any DegradationOperator {
        lock.lock()
        defer { lock.unlock() }
        if let op = cache[[height, width]] { return op }
        let op = try build(height, width)
        cache[[height, width]] = op
        return op
    }

    public func observationShape(for s: [Int]) throws -> [Int] {
        guard s.count == 4 else { throw OperatorError("\(spec) needs an NHWC image, got \(s)") }
        return try sized(height: s[1], width: s[2]).observationShape(for: s)
    }
    public func imageShape(for s: [Int]) throws -> [Int] {
        guard s.count == 4 else { throw OperatorError("\(spec) needs an NHWC observation, got \(s)") }
        return [s[0], s[1] * factor, s[2] * factor, s[3]]
    }
    public func apply(_ x: Tensor) throws -> Tensor { try sized(height: x.shape[1], width: x.shape[2]).apply(x) }
    public func pseudoInverse(_ y: Tensor) throws -> Tensor {
        let shape = try imageShape(for: y.shape)
        return try sized(height: shape[1], width: shape[2]).pseudoInverse(y)
    }
}
