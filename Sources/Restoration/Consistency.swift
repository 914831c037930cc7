import Engine
import Foundation
import Operators

/// How well a restored x explains the observation y, the figures every report carries.
public enum Consistency {
    /// (‖A x − y‖, ‖(I − A A†) y‖) as RMS on the [0, 1] scale. Local (windowable) operators are evaluated in
    /// bands of rows, so the temporaries stay band-sized whatever the image size; operators with a halo
    /// (blur, bicubic, FFT kernels) in tiles of about `tile`² pixels widened by the halo, since their window
    /// forms cost a 1-D SVD or a CG solve per side (a full-width band of a large image took minutes).
    /// ‖A x − y‖ is exact either way; the irreducible part of a halo operator comes from each tile's own A†,
    /// an estimate of the whole image's (1.6 % below it for a 5-tap Gaussian on 200 × 168, RestorationTests).
    public static func measure(_ x: Tensor, _ y: Tensor, _ a: any DegradationOperator, tile: Int = 128) throws -> (residual: Double, irreducible: Double) {
        var residual = 0.0, irreducible = 0.0, count = 0
        /// Adds the samples of y's part whose (row, column) passes `counted` (others belong to another band or tile).
        func add(_ xPart: Tensor, _ yPart: Tensor, _ op: any DegradationOperator, counted: (Int, Int) -> Bool = { _, _ in true }) throws {
            let r = try subtract(try op.apply(xPart), yPart)
            let q = try subtract(try op.apply(try op.pseudoInverse(yPart)), yPart)
            let (_, h, w, c) = try r.nhwc("consistency")
            for i in 0..<h { for j in 0..<w where counted(i, j) {
                for k in 0..<c {
                    let p = (i * w + j) * c + k
                    residual += Double(r.data[p] * r.data[p])
                    irreducible += Double(q.data[p] * q.data[p])
                }
                count += c
            } }
        }
        if let local = a as? any WindowableOperator, local.windowAlignment > 0, local.windowHalo > 0, x.shape[0] == 1 {
            // Tiles: each sample of y is counted in the tile whose core holds its top-left image pixel (samples
            // are f×f image blocks for an f-fold reduction; f = 1 for blurs).
            let (h, w) = (x.shape[1], x.shape[2]), f = max(1, h / y.shape[1])
            let unit = local.windowAlignment, side = max(unit, tile / unit * unit)
            let halo = (local.windowHalo + unit - 1) / unit * unit
            for top in stride(from: 0, to: h, by: side) { for left in stride(from: 0, to: w, by: side) {
                let core = PixelRect(y: top, x: left, height: min(side, h - top), width: min(side, w - left))
                let (y0, x0) = (max(0, top - halo), max(0, left - halo))
                let rect = PixelRect(y: y0, x: x0, height: min(h, top + core.height + halo) - y0, width: min(w, left + core.width + halo) - x0)
                let (op, observed) = try local.window(rect, imageShape: x.shape)
                try add(try x.crop(rect), try y.crop(observed), op) { i, j in
                    let (r, c) = ((observed.y + i) * f, (observed.x + j) * f)
                    return r >= core.y && r < core.y + core.height && c >= core.x && c < core.x + core.width
                }
            } }
        } else if let local = a as? any WindowableOperator, local.windowAlignment > 0, x.shape[0] == 1 {
            var nextRow = 0
            for band in Self.bands(height: x.shape[1], width: x.shape[2], alignment: local.windowAlignment) {
                let (op, observed) = try local.window(band, imageShape: x.shape)
                let first = max(nextRow, observed.y), end = observed.y + observed.height
                guard first < end else { continue }
                try add(try x.crop(band), try y.crop(observed), op) { i, _ in observed.y + i >= first }
                nextRow = end
            }
        } else {
            try add(x, y, a)
        }
        let n = Double(max(count, 1))
        return ((residual / n).squareRoot() / 2, (irreducible / n).squareRoot() / 2)
    }

    /// Full-width bands of about 64² pixels each (rows a multiple of `alignment`), covering the image: the
    /// unit of the band-wise report and projection computations, so their temporaries stay small at any size.
    public static func bands(height: Int, width: Int, alignment: Int) -> [PixelRect] {
        let rows = max(alignment, 4096 / max(width, 1) / alignment * alignment)
        return stride(from: 0, to: height, by: rows).map { PixelRect(y: $0, x: 0, height: min(rows, height - $0), width: width) }
    }
}
