import Engine
import Foundation

/// A small dense SVD (one-sided Jacobi, Float64): A = U diag(s) Vᵀ for the 1-D matrices of separable
/// operators (at most a few hundred rows). Singular values come out sorted descending.
enum SmallSVD {
    /// Returns (U m×r, s r, V n×r) with r = min(m, n), row-major.
    static func decompose(_ a: [Double], rows m: Int, columns n: Int) -> (u: [Double], s: [Double], v: [Double]) {
        // Work on the tall orientation: Jacobi rotations of the columns of B (m×n, m ≥ n) converge to B V.
        if m < n {
            let t = transpose(a, m, n)
            let (u, s, v) = decompose(t, rows: n, columns: m)
            return (v, s, u)
        }
        var b = a
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        for _ in 0..<60 {
            var rotated = false
            for p in 0..<(n - 1) {
                for q in (p + 1)..<n {
                    var alpha = 0.0, beta = 0.0, gamma = 0.0
                    for i in 0..<m { let x = b[i * n + p], y = b[i * n + q]; alpha += x * x; beta += y * y; gamma += x * y }
                    guard abs(gamma) > 1e-15 * (alpha * beta).squareRoot(), gamma != 0 else { continue }
                    rotated = true
                    let zeta = (beta - alpha) / (2 * gamma)
                    let t = (zeta >= 0 ? 1.0 : -1.0) / (abs(zeta) + (1 + zeta * zeta).squareRoot())
                    let c = 1 / (1 + t * t).squareRoot(), s = c * t
                    for i in 0..<m { let x = b[i * n + p], y = b[i * n + q]; b[i * n + p] = c * x - s * y; b[i * n + q] = s * x + c * y }
                    for i in 0..<n { let x = v[i * n + p], y = v[i * n + q]; v[i * n + p] = c * x - s * y; v[i * n + q] = s * x + c * y }
                }
            }
            if !rotated { break }
        }
        var singular = (0..<n).map { j in (0..<m).reduce(0.0) { $0 + b[$1 * n + j] * b[$1 * n + j] }.squareRoot() }
        let order = (0..<n).sorted { singular[$0] > singular[$1] }
        var u = [Double](repeating: 0, count: m * n), vSorted = [Double](repeating: 0, count: n * n)
        for (k, j) in order.enumerated() {
            for i in 0..<m { u[i * n + k] = singular[j] > 0 ? b[i * n + j] / singular[j] : 0 }
            for i in 0..<n { vSorted[i * n + k] = v[i * n + j] }
        }
        singular = order.map { singular[$0] }
        return (u, singular, vSorted)
    }

    /// An orthonormal n×n basis whose first `columns` columns are those of `q` (n×columns, orthonormal):
    /// the rest by Gram–Schmidt on the unit vectors, taken in order (deterministic).
    static func completedBasis(_ q: [Double], rows n: Int, columns r: Int) -> [Double] {
        var basis = [[Double]]()
        for k in 0..<r { basis.append((0..<n).map { q[$0 * r + k] }) }
        var unit = 0
        while basis.count < n, unit < n {
            var e = [Double](repeating: 0, count: n)
            e[unit] = 1
            unit += 1
            for _ in 0..<2 { for b in basis {
                let dot = zip(b, e).reduce(0) { $0 + $1.0 * $1.1 }
                for i in 0..<n { e[i] -= dot * b[i] }
            } }
            let norm = e.reduce(0) { $0 + $1 * $1 }.squareRoot()
            if norm > 1e-6 { basis.append(e.map { $0 / norm }) }
        }
        var out = [Double](repeating: 0, count: n * n)
        for (k, b) in basis.enumerated() { for i in 0..<n { out[i * n + k] = b[i] } }
        return out
    }

    static func transpose(_ a: [Double], _ m: Int, _ n: Int) -> [Double] {
        var t = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { t[j * m + i] = a[i * n + j] } }
        return t
    }
}

/// A linear map applied along the rows and the columns of every channel: A X = A_v X A_hᵀ. With the 1-D
/// matrices' singular values below `threshold` set to zero (the official ZERO = 3e-2), both A and A† are
/// those of the truncated Ã = Ã_v ⊗ Ã_h, exactly as the official `SRConv` / `Deblurring` /
/// `Deblurring2D` compute them through their SVDs (functions/svd_operators.py:851-1160).
public struct SeparableOperator: TransposableOperator {
    public let spec: String
    /// The truncated 1-D matrices (rows × columns, row-major) and their pseudo-inverses.
    let vertical: (a: [Float], pinv: [Float], rows: Int, columns: Int)
    let horizontal: (a: [Float], pinv: [Float], rows: Int, columns: Int)
    /// The untruncated right-singular bases of the 1-D matrices (DDNM+'s Λ works in them).
    public internal(set) var spectrum: SeparableSpectrum

    /// - Parameters: `verticalMatrix` acts on columns (rows × height), `horizontalMatrix` on rows (rows × width).
    public init(spec: String, verticalMatrix: [Float], verticalRows: Int, height: Int,
                horizontalMatrix: [Float], horizontalRows: Int, width: Int, threshold: Float = 3e-2) {
        self.spec = spec
        let (v, vBasis) = Self.truncate(verticalMatrix, verticalRows, height, threshold)
        let (h, hBasis) = Self.truncate(horizontalMatrix, horizontalRows, width, threshold)
        (vertical, horizontal) = (v, h)
        spectrum = SeparableSpectrum(vertical: vBasis, horizontal: hBasis)
    }

    static func truncate(_ a: [Float], _ m: Int, _ n: Int, _ threshold: Float)
        -> ((a: [Float], pinv: [Float], rows: Int, columns: Int), SeparableSpectrum.Axis) {
        let (u, s, v) = SmallSVD.decompose(a.map(Double.init), rows: m, columns: n)
        let r = min(m, n)
        // V's columns for nonzero singulars (a rank-deficient wide matrix gives zero columns), completed to a
        // square orthonormal basis whose extra columns have singular 0.
        let rank = (0..<r).filter { s[$0] > 1e-12 }.count  // s is sorted descending
        var kept = [Double](repeating: 0, count: n * rank)
        for i in 0..<n { for k in 0..<rank { kept[i * rank + k] = v[i * r + k] } }
        let axis = SeparableSpectrum.Axis(size: n, v: SmallSVD.completedBasis(kept, rows: n, columns: rank).map(Float.init),
                                          singulars: (0..<n).map { $0 < rank ? Float(s[$0]) : 0 })
        var truncated = [Float](repeating: 0, count: m * n), pinv = [Float](repeating: 0, count: n * m)
        for k in 0..<r where s[k] >= Double(threshold) {
            for i in 0..<m { for j in 0..<n {
                truncated[i * n + j] += Float(u[i * r + k] * s[k] * v[j * r + k])
                pinv[j * m + i] += Float(v[j * r + k] / s[k] * u[i * r + k])
            } }
        }
        return ((truncated, pinv, m, n), axis)
    }

    public func observationShape(for s: [Int]) throws -> [Int] {
        guard s.count == 4, s[1] == vertical.columns, s[2] == horizontal.columns else {
            throw OperatorError("\(spec) was built for \(horizontal.columns)×\(vertical.columns) images, got \(s.count == 4 ? "\(s[2])×\(s[1])" : "\(s)")")
        }
        return [s[0], vertical.rows, horizontal.rows, s[3]]
    }

    public func imageShape(for s: [Int]) throws -> [Int] {
        guard s.count == 4, s[1] == vertical.rows, s[2] == horizontal.rows else {
            throw OperatorError("\(spec) expects a \(horizontal.rows)×\(vertical.rows) observation, got \(s.count == 4 ? "\(s[2])×\(s[1])" : "\(s)")")
        }
        return [s[0], vertical.columns, horizontal.columns, s[3]]
    }

    public func apply(_ x: Tensor) throws -> Tensor {
        _ = try observationShape(for: x.shape)
        return try Self.product(x, vertical.a, vertical.rows, horizontal.a, horizontal.rows)
    }

    public func pseudoInverse(_ y: Tensor) throws -> Tensor {
        _ = try imageShape(for: y.shape)
        return try Self.product(y, vertical.pinv, vertical.columns, horizontal.pinv, horizontal.columns)
    }

    /// Aᵀ y with the truncated matrices (the A that `apply` computes).
    public func applyTranspose(_ y: Tensor) throws -> Tensor {
        _ = try imageShape(for: y.shape)
        return try Self.product(y, SmallSVD.transpose(vertical.a.map(Double.init), vertical.rows, vertical.columns).map(Float.init), vertical.columns,
                                SmallSVD.transpose(horizontal.a.map(Double.init), horizontal.rows, horizontal.columns).map(Float.init), horizontal.columns)
    }

    /// Y = M_v · X · M_hᵀ per (batch, channel), on NHWC tensors.
    static func product(_ x: Tensor, _ mv: [Float], _ outRows: Int, _ mh: [Float], _ outColumns: Int) throws -> Tensor {
        let (n, h, w, c) = try x.nhwc("separable operator")
        // Vertical pass: T[b, i, x, c] = Σ_y M_v[i, y] X[b, y, x, c]  (rows of M_v have h entries)
        let t = try Tensor(shape: [n, outRows, w, c], repeating: 0)
        for b in 0..<n { for i in 0..<outRows { for y in 0..<h {
            let m = mv[i * h + y]
            guard m != 0 else { continue }
            let source = x.data + (b * h + y) * w * c, destination = t.data + (b * outRows + i) * w * c
            for k in 0..<(w * c) { destination[k] += m * source[k] }
        } } }
        // Horizontal pass: Y[b, i, j, c] = Σ_x M_h[j, x] T[b, i, x, c]
        let out = try Tensor(shape: [n, outRows, outColumns, c], repeating: 0)
        for row in 0..<(n * outRows) { for j in 0..<outColumns { for xx in 0..<w {
            let m = mh[j * w + xx]
            guard m != 0 else { continue }
            let source = t.data + (row * w + xx) * c, destination = out.data + (row * outColumns + j) * c
            for k in 0..<c { destination[k] += m * source[k] }
        } } }
        return out
    }

    // MARK: The official operators

    /// `sr_bicubic` ×s: Keys' cubic with a = −0.5, 4s taps at (i − 2s + 0.5)/s, normalised; reflect padding
    /// (diffusion.py:484-499, SRConv's matrix at svd_operators.py:859-871).
    public static func bicubic(factor s: Int, height: Int, width: Int) throws -> SeparableOperator {
        guard (1...16).contains(s), height % s == 0, width % s == 0 else {
            throw OperatorError("bicubic:\(s) needs a factor 1–16 dividing the image sides (\(width)×\(height))")
        }
        let (v, h) = (BandedAxis.bicubic(factor: s, size: height), BandedAxis.bicubic(factor: s, size: width))
        return SeparableOperator(spec: "bicubic:\(s)", verticalMatrix: v.matrix(), verticalRows: v.outputs, height: height,
                                 horizontalMatrix: h.matrix(), horizontalRows: h.outputs, width: width)
    }

    /// Deblurring with one kernel along both axes (`deblur_uni`, `deblur_gauss`) or two (`deblur_aniso`:
    /// kernel1 vertical, kernel2 horizontal), kernels normalised to sum 1; zero padding.
    public static func blur(spec: String, vertical: [Float], horizontal: [Float], height: Int, width: Int, officialTaps: Bool) throws -> SeparableOperator {
        let (v, h) = (try BandedAxis.blur(spec: spec, kernel: vertical, size: height, officialTaps: officialTaps),
                      try BandedAxis.blur(spec: spec, kernel: horizontal, size: width, officialTaps: officialTaps))
        return SeparableOperator(spec: spec, verticalMatrix: v.matrix(), verticalRows: v.outputs, height: height,
                                 horizontalMatrix: h.matrix(), horizontalRows: h.outputs, width: width)
    }

    /// The operator of the window `rect` of an image whose axes are `vertical` × `horizontal` (USDR tiling):
    /// the observation samples whose taps all fall inside the window, and those rows' taps (`BandedAxis.restricted`),
    /// with A† of the window's own matrices (same truncation threshold). Returns the operator and the rect of y it observes.
    public static func window(spec: String, vertical: BandedAxis, horizontal: BandedAxis, rect: PixelRect) throws -> (operator: SeparableOperator, observation: PixelRect) {
        let v = try vertical.restricted(to: rect.y..<(rect.y + rect.height), spec: spec)
        let h = try horizontal.restricted(to: rect.x..<(rect.x + rect.width), spec: spec)
        let op = SeparableOperator(spec: spec, verticalMatrix: v.matrix, verticalRows: v.rows.count, height: rect.height,
                                   horizontalMatrix: h.matrix, horizontalRows: h.rows.count, width: rect.width)
        return (op, PixelRect(y: v.rows.lowerBound, x: h.rows.lowerBound, height: v.rows.count, width: h.rows.count))
    }

    /// Gaussian taps exp(−x²/2σ²) at x = −(k−1)/2 … (k−1)/2.
    public static func gaussianTaps(size k: Int, sigma: Float) -> [Float] {
        (0..<k).map { i in let x = Float(i) - Float(k - 1) / 2; return Foundation.exp(-0.5 * (x / sigma) * (x / sigma)) }
    }
}

/// One axis of a separable operator as a banded matrix, row by row: observation sample i is Σ_j w_ij x_j over
/// a few neighbouring j (`taps(i)`). The full matrix is built only for images up to the prior's size; windows
/// of large images take the rows whose taps lie inside the window (`restricted`).
public struct BandedAxis: Sendable {
    public let inputs: Int, outputs: Int
    /// Row i's taps (column, weight), columns within 0..<inputs, each column once.
    public let taps: @Sendable (Int) -> [(column: Int, weight: Float)]

    public init(inputs: Int, outputs: Int, taps: @escaping @Sendable (Int) -> [(column: Int, weight: Float)]) {
        self.inputs = inputs
        self.outputs = outputs
        self.taps = taps
    }

    /// outputs × inputs, row-major.
    public func matrix() -> [Float] {
        var m = [Float](repeating: 0, count: outputs * inputs)
        for i in 0..<outputs { for (j, w) in taps(i) { m[i * inputs + j] += w } }
        return m
    }

    /// The widest span of a row's taps, minus one: how far an observation sample reaches (a window's halo).
    public var reach: Int {
        (0..<outputs).map { i -> Int in
            let columns = taps(i).filter { $0.weight != 0 }.map(\.column)
            return (columns.max() ?? 0) - (columns.min() ?? 0)
        }.max() ?? 0
    }

    /// The rows whose nonzero taps all lie in `range` (contiguous for a banded matrix) and their taps on the
    /// range's columns (rows × range.count, row-major).
    public func restricted(to range: Range<Int>, spec: String) throws -> (rows: Range<Int>, matrix: [Float]) {
        guard range.lowerBound >= 0, range.upperBound <= inputs, !range.isEmpty else {
            throw OperatorError("\(spec): window \(range) outside the \(inputs)-sample axis")
        }
        var inside: [Int] = []
        for i in 0..<outputs {
            let columns = taps(i).filter { $0.weight != 0 }.map(\.column)
            if let lo = columns.min(), let hi = columns.max(), lo >= range.lowerBound, hi < range.upperBound { inside.append(i) }
        }
        guard let first = inside.first, let last = inside.last, last - first + 1 == inside.count else {
            throw OperatorError("\(spec): no observation sample lies wholly inside the window \(range) (the kernel is wider than the window)")
        }
        let n = range.count
        var m = [Float](repeating: 0, count: inside.count * n)
        for (r, i) in inside.enumerated() { for (j, w) in taps(i) { m[r * n + j - range.lowerBound] += w } }
        return (first..<(last + 1), m)
    }

    /// `sr_bicubic`'s axis (see `SeparableOperator.bicubic`): sample i centred at i·s + s/2, 4s taps of Keys' cubic
    /// (a = −0.5) at (j − centre + 0.5)/s, normalised, reflect padding (…, 1, 0 | 0, 1, …).
    public static func bicubic(factor s: Int, size: Int) -> BandedAxis {
        func cubic(_ x: Double, _ a: Double = -0.5) -> Double {
            let t = abs(x)
            if t <= 1 { return (a + 2) * t * t * t - (a + 3) * t * t + 1 }
            if t < 2 { return a * t * t * t - 5 * a * t * t + 8 * a * t - 4 * a }
            return 0
        }
        var kernel = (0..<(4 * s)).map { i in cubic((Double(i) - Double(2 * s) + 0.5) / Double(s)) }
        let total = kernel.reduce(0, +)
        kernel = kernel.map { $0 / total }
        let weights = kernel.map(Float.init), k = kernel.count
        return BandedAxis(inputs: size, outputs: size / s) { i in
            let centre = i * s + s / 2
            var merged: [Int: Float] = [:]
            for j in (centre - k / 2)..<(centre + k / 2) {
                var e = j  // reflect until inside, however small the image
                while e < 0 || e >= size { e = e < 0 ? -e - 1 : 2 * size - 1 - e }
                merged[e, default: 0] += weights[j - centre + k / 2]
            }
            return merged.sorted { $0.key < $1.key }.map { (column: $0.key, weight: $0.value) }
        }
    }

    /// A blur axis with zero padding, kernel normalised to sum 1. `officialTaps` reproduces the official loop
    /// `range(i - k//2, i + k//2)`, which uses only k − 1 taps of an odd kernel (svd_operators.py:949).
    public static func blur(spec: String, kernel: [Float], size: Int, officialTaps: Bool) throws -> BandedAxis {
        guard !kernel.isEmpty else { throw OperatorError("\(spec): empty blur kernel") }
        let total = kernel.reduce(0, +)
        guard total.isFinite, abs(total) > 1e-8 else { throw OperatorError("\(spec): the blur kernel sums to zero and cannot be normalised") }
        let weights = kernel.map { $0 / total }, k = kernel.count
        let upper = officialTaps ? k / 2 : k - k / 2
        return BandedAxis(inputs: size, outputs: size) { i in
            ((i - k / 2)..<(i + upper)).filter { $0 >= 0 && $0 < size }.map { (column: $0, weight: weights[$0 - i + k / 2]) }
        }
    }
}
