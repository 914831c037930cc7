import Engine
import Foundation

/// Compressed sensing by the Walsh–Hadamard transform (DDNM `cs_walshhadamard`, functions/svd_operators.py
/// `WalshHadamardCS`): each channel's H·W samples (row-major) go through the orthonormal fast WHT (Sylvester
/// order, ÷√(H·W)); the coefficients are permuted, and the first H·W/ratio of them (all channels) are kept.
/// H·W must be a power of two. A† puts y back at the kept coefficients and inverts the (self-inverse) WHT.
///
/// The observation is a coefficient vector, not an image: y is stored as [N, M, 1, C] with M = H·W/ratio, in
/// the official order (coefficient-major, channels interleaved). The permutation is ours (seeded
/// Fisher–Yates), or loaded from a file for parity with a run of the official code (its `torch.randperm`).
public struct WalshHadamardCSOperator: DegradationOperator {
    public let ratio: Int
    public let side: Int
    /// perm[k] = the WHT coefficient that lands in position k.
    public let permutation: [Int]
    public let spec: String

    public init(ratio: Int, side: Int, permutation: [Int], spec: String) throws {
        let count = side * side
        guard side > 0, count & (count - 1) == 0 else { throw OperatorError("\(spec) needs an image whose H·W is a power of two (e.g. 256×256), got \(side)×\(side)") }
        guard ratio >= 1, count % ratio == 0 else { throw OperatorError("\(spec): the compression ratio must divide H·W = \(count)") }
        guard permutation.count == count, Set(permutation).count == count, permutation.allSatisfy({ (0..<count).contains($0) }) else {
            throw OperatorError("\(spec): the permutation must hold each of 0…\(count - 1) once (got \(permutation.count) values)")
        }
        self.ratio = ratio
        self.side = side
        self.permutation = permutation
        self.spec = spec
    }

    /// Our permutation: Fisher–Yates driven by SplitMix64 from `seed`.
    public static func seededPermutation(count: Int, seed: UInt64) -> [Int] {
        var generator = SplitMix64(seed: seed &+ 0x243F_6A88_85A3_08D3)
        var p = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) { p.swapAt(i, Int(generator.next() % UInt64(i + 1))) }
        return p
    }

    var kept: Int { side * side / ratio }

    public func observationShape(for s: [Int]) throws -> [Int] {
        guard s.count == 4, s[1] == side, s[2] == side else {
            throw OperatorError("\(spec) was set up for \(side)×\(side) images, got \(s.count == 4 ? "\(s[2])×\(s[1])" : "\(s)")")
        }
        return [s[0], kept, 1, s[3]]
    }

    public func imageShape(for s: [Int]) throws -> [Int] {
        guard s.count == 4, s[1] == kept, s[2] == 1 else { throw OperatorError("\(spec) expects \(kept) coefficients per channel, got \(s)") }
        return [s[0], side, side, s[3]]
    }

    /// In-place orthonormal fast WHT of `count` values (the butterfly order of the official `fwht`).
    static func transform(_ a: inout [Float]) {
        let n = a.count
        var h = 1
        while h < n {
            var start = 0
            while start < n {
                for i in start..<(start + h) { let x = a[i], y = a[i + h]; a[i] = x + y; a[i + h] = x - y }
                start += 2 * h
            }
            h *= 2
        }
        let scale = 1 / Float(n).squareRoot()
        for i in 0..<n { a[i] *= scale }
    }

    public func apply(_ x: Tensor) throws -> Tensor {
        let shape = try observationShape(for: x.shape)
        let (n, c, count) = (x.shape[0], x.shape[3], side * side)
        let y = try Tensor(uninitializedShape: shape)
        var plane = [Float](repeating: 0, count: count)
        for b in 0..<n { for ch in 0..<c {
            for p in 0..<count { plane[p] = x.data[(b * count + p) * c + ch] }
            Self.transform(&plane)
            for k in 0..<kept { y.data[(b * kept + k) * c + ch] = plane[permutation[k]] }
        } }
        return y
    }

    public func pseudoInverse(_ y: Tensor) throws -> Tensor {
        let shape = try imageShape(for: y.shape)
        let (n, c, count) = (y.shape[0], y.shape[3], side * side)
        let x = try Tensor(uninitializedShape: shape)
        var plane = [Float](repeating: 0, count: count)
        for b in 0..<n { for ch in 0..<c {
            for p in 0..<count { plane[p] = 0 }
            for k in 0..<kept { plane[permutation[k]] = y.data[(b * kept + k) * c + ch] }
            Self.transform(&plane)
            for p in 0..<count { x.data[(b * count + p) * c + ch] = plane[p] }
        } }
        return x
    }

    /// Reads a permutation file: whitespace- or comma-separated integers (e.g. `torch.randperm(n)` saved with
    /// `numpy.savetxt`).
    public static func loadPermutation(_ path: String) throws -> [Int] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw OperatorError("cannot read the permutation file (\(path))") }
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," || $0 == "\t" || $0 == "\r" })
        var values: [Int] = []
        values.reserveCapacity(fields.count)
        for field in fields {
            guard let v = Int(field) ?? Double(field).flatMap({ $0 == $0.rounded() ? Int($0) : nil }) else {
                throw OperatorError("the permutation file holds a non-integer \(String(field).debugDescription) (\(path))")
            }
            values.append(v)
        }
        return values
    }
}

/// `cs-wht:RATIO[:PERMFILE]` needs the image side, known only once the input is: built on first use.
public final class DeferredWHTOperator: DegradationOperator, @unchecked Sendable {
    public let spec: String
    let compressBy: Int
    let permutationFile: String?
    let seed: UInt64
    private var built: WalshHadamardCSOperator?
    private let lock = NSLock()

    init(spec: String, compressBy: Int, permutationFile: String?, seed: UInt64) {
        self.spec = spec
        self.compressBy = compressBy
        self.permutationFile = permutationFile
        self.seed = seed
    }

    func sized(_ side: Int) throws -> WalshHadamardCSOperator {
        lock.lock()
        defer { lock.unlock() }
        if let built, built.side == side { return built }
        let permutation = try permutationFile.map(WalshHadamardCSOperator.loadPermutation)
            ?? WalshHadamardCSOperator.seededPermutation(count: side * side, seed: seed)
        let op = try WalshHadamardCSOperator(ratio: compressBy, side: side, permutation: permutation, spec: spec)
        built = op
        return op
    }

    public func observationShape(for s: [Int]) throws -> [Int] {
        guard s.count == 4, s[1] == s[2] else { throw OperatorError("\(spec) needs a square image, got \(s)") }
        return try sized(s[1]).observationShape(for: s)
    }
    public func imageShape(for s: [Int]) throws -> [Int] {
        guard s.count == 4, s[2] == 1 else { throw OperatorError("\(spec) expects a coefficient vector [N, M, 1, C], got \(s)") }
        let count = s[1] * compressBy, side = Int(Double(count).squareRoot().rounded())
        guard side * side == count else { throw OperatorError("\(spec): \(s[1]) coefficients × \(compressBy) is not a square image") }
        return try sized(side).imageShape(for: s)
    }
    public func apply(_ x: Tensor) throws -> Tensor { _ = try observationShape(for: x.shape); return try sized(x.shape[1]).apply(x) }
    public func pseudoInverse(_ y: Tensor) throws -> Tensor {
        let shape = try imageShape(for: y.shape)
        return try sized(shape[1]).pseudoInverse(y)
    }
}

/// Block-based compressed sensing (DDNM `cs_blockbased`, `functions/svd_operators.py` class `CS`): each
/// channel is cut into 32×32 blocks (row-major), each block's 1024 samples (row-major) are projected on the
/// first M = 1024·fraction rows of an orthonormal matrix, all singular values 1. The official code takes V from
/// the SVD of an unseeded `torch.randn(1024, 1024)`, so no two runs share it; ours orthonormalises seeded
/// Gaussian rows (modified Gram–Schmidt in Float64, only the M rows that are kept), or uses a given basis.
/// y is [N, H/32, (W/32)·M, C]: block rows, then per block its M coefficients, channels innermost — the
/// block-major flat order, shaped so that a window of whole blocks observes a rect of y (USDR tiling).
public struct BlockCSOperator: DegradationOperator {
    public static let blockSide = 32
    public let spec: String
    public let kept: Int
    /// M × 1024 row-major, orthonormal rows.
    public let rows: [Float]

    public init(spec: String, fraction: Double, seed: UInt64) throws {
        let n = Self.blockSide * Self.blockSide
        let m = Int((Double(n) * fraction).rounded(.down))
        guard m >= 1, m <= n else { throw OperatorError("\(spec): the kept fraction must leave 1–\(n) of \(n) coefficients per block") }
        var generator = SplitMix64(seed: seed &+ 0x1337_5EED)
        var basis = [Double](repeating: 0, count: m * n)
        for r in 0..<m {
            for i in 0..<n { basis[r * n + i] = generator.nextGaussian() }
            for _ in 0..<2 {  // twice, for orthogonality to working precision
                for q in 0..<r {
                    var dot = 0.0
                    for i in 0..<n { dot += basis[r * n + i] * basis[q * n + i] }
                    for i in 0..<n { basis[r * n + i] -= dot * basis[q * n + i] }
                }
            }
            let norm = (0..<n).reduce(0.0) { $0 + basis[r * n + $1] * basis[r * n + $1] }.squareRoot()
            for i in 0..<n { basis[r * n + i] /= norm }
        }
        try self.init(spec: spec, rows: basis.map(Float.init), kept: m)
    }

    /// With given orthonormal rows (M × 1024), e.g. to replay a run of the official code with its V.
    public init(spec: String, rows: [Float], kept: Int) throws {
        guard kept >= 1, rows.count == kept * Self.blockSide * Self.blockSide else { throw OperatorError("\(spec): the basis must be \(kept)×1024") }
        self.spec = spec
        self.rows = rows
        self.kept = kept
    }

    public func observationShape(for s: [Int]) throws -> [Int] {
        let b = Self.blockSide
        guard s.count == 4, s[1] % b == 0, s[2] % b == 0, s[1] > 0, s[2] > 0 else {
            throw OperatorError("\(spec) needs an image whose sides are multiples of 32, got \(s.count == 4 ? "\(s[2])×\(s[1])" : "\(s)")")
        }
        return [s[0], s[1] / b, s[2] / b * kept, s[3]]
    }

    /// From y laid out by block rows ([N, H/32, (W/32)·M, C]), or as a flat vector [N, blocks·M, 1, C] (the
    /// same memory order) of a square image.
    public func imageShape(for s: [Int]) throws -> [Int] {
        let b = Self.blockSide
        guard s.count == 4 else { throw OperatorError("\(spec) expects [N, H/32, (W/32)·\(kept), C] coefficients, got \(s)") }
        if s[2] == 1, kept > 1 {  // (with M = 1 the two readings coincide only for one block column: read as rows)
            guard s[1] % kept == 0 else { throw OperatorError("\(spec) expects blocks·\(kept) coefficients, got \(s[1])") }
            let blocks = s[1] / kept, perSide = Int(Double(blocks).squareRoot().rounded())
            guard perSide * perSide == blocks else { throw OperatorError("\(spec): a flat vector of \(blocks) blocks does not form a square image") }
            return [s[0], perSide * b, perSide * b, s[3]]
        }
        guard s[1] > 0, s[2] > 0, s[2] % kept == 0 else { throw OperatorError("\(spec) expects [N, H/32, (W/32)·\(kept), C] coefficients, got \(s)") }
        return [s[0], s[1] * b, s[2] / kept * b, s[3]]
    }

    public func apply(_ x: Tensor) throws -> Tensor {
        let shape = try observationShape(for: x.shape)
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let b = Self.blockSide, size = b * b, across = w / b, blocks = (h / b) * across
        let y = try Tensor(uninitializedShape: shape)
        var patch = [Float](repeating: 0, count: size)
        for batch in 0..<n { for ch in 0..<c { for block in 0..<((h / b) * across) {
            let (by, bx) = (block / across, block % across)
            for r in 0..<b { for q in 0..<b { patch[r * b + q] = x.data[((batch * h + by * b + r) * w + bx * b + q) * c + ch] } }
            for k in 0..<kept {
                var sum: Float = 0
                for i in 0..<size { sum += rows[k * size + i] * patch[i] }
                y.data[((batch * blocks + block) * kept + k) * c + ch] = sum  // = [batch, by, bx·M + k, ch]
            }
        } } }
        return y
    }

    public func pseudoInverse(_ y: Tensor) throws -> Tensor {
        let shape = try imageShape(for: y.shape)
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        let b = Self.blockSide, size = b * b, across = w / b, blocks = (h / b) * across
        let x = try Tensor(uninitializedShape: shape)
        var patch = [Float](repeating: 0, count: size)
        for batch in 0..<n { for ch in 0..<c { for block in 0..<((h / b) * across) {
            let (by, bx) = (block / across, block % across)
            for i in 0..<size { patch[i] = 0 }
            for k in 0..<kept {
                let v = y.data[((batch * blocks + block) * kept + k) * c + ch]
                for i in 0..<size { patch[i] += rows[k * size + i] * v }
            }
            for r in 0..<b { for q in 0..<b { x.data[((batch * h + by * b + r) * w + bx * b + q) * c + ch] = patch[r * b + q] } }
        } } }
        return x
    }
}
