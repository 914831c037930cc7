import Engine
import Foundation

/// Image quality metrics on [-1, 1] tensors, computed on the [0, 1] scale as the papers report them.
public enum Quality {
    /// PSNR in dB over all pixels and channels (scikit-image's `peak_signal_noise_ratio` with data range 1);
    /// 99 for identical images, NaN for different shapes.
    public static func psnr(_ a: Tensor, _ b: Tensor) -> Double {
        guard a.shape == b.shape else { return .nan }
        var sum = 0.0
        for i in 0..<a.count { let d = Double(a.data[i] - b.data[i]) / 2; sum += d * d }
        let mse = sum / Double(max(a.count, 1))
        return mse == 0 ? 99 : 10 * log10(1 / mse)
    }

    /// SSIM (Wang et al. 2004): 11×11 Gaussian window σ = 1.5, K1 0.01, K2 0.03, data range 1, per channel,
    /// averaged over valid windows and channels, with the population (not the sample) covariance: scikit-image's
    /// `structural_similarity(a, b, data_range=1, channel_axis=-1, gaussian_weights=True, sigma=1.5,
    /// use_sample_covariance=False)`, the setting that reproduces Wang et al. (checked against it in
    /// RestorationTests). NaN for different shapes or images under 11 px on a side.
    public static func ssim(_ a: Tensor, _ b: Tensor) -> Double {
        guard a.shape == b.shape, a.shape.count == 4 else { return .nan }
        let (h, w, c) = (a.shape[1], a.shape[2], a.shape[3])
        let radius = 5
        guard h > 2 * radius, w > 2 * radius else { return .nan }
        var g = (0...(2 * radius)).map { i -> Double in let d = Double(i - radius); return exp(-d * d / (2 * 1.5 * 1.5)) }
        let total = g.reduce(0, +)
        g = g.map { $0 / total }
        let c1 = 0.01 * 0.01, c2 = 0.03 * 0.03
        var sum = 0.0, count = 0
        for k in 0..<c {
            func plane(_ t: Tensor) -> [Double] { (0..<(h * w)).map { Double(t.data[$0 * c + k] + 1) / 2 } }
            let x = plane(a), y = plane(b)
            func blur(_ v: [Double]) -> [Double] {  // separable Gaussian, valid region only
                var horizontal = [Double](repeating: 0, count: h * (w - 2 * radius))
                for r in 0..<h { for q in 0..<(w - 2 * radius) {
                    var s = 0.0
                    for i in 0...(2 * radius) { s += g[i] * v[r * w + q + i] }
                    horizontal[r * (w - 2 * radius) + q] = s
                } }
                let ww = w - 2 * radius
                var out = [Double](repeating: 0, count: (h - 2 * radius) * ww)
                for r in 0..<(h - 2 * radius) { for q in 0..<ww {
                    var s = 0.0
                    for i in 0...(2 * radius) { s += g[i] * horizontal[(r + i) * ww + q] }
                    out[r * ww + q] = s
                } }
                return out
            }
            let mx = blur(x), my = blur(y)
            let sxx = blur(zip(x, x).map(*)), syy = blur(zip(y, y).map(*)), sxy = blur(zip(x, y).map(*))
            for i in 0..<mx.count {
                let vx = sxx[i] - mx[i] * mx[i], vy = syy[i] - my[i] * my[i], cxy = sxy[i] - mx[i] * my[i]
                sum += ((2 * mx[i] * my[i] + c1) * (2 * cxy + c2)) / ((mx[i] * mx[i] + my[i] * my[i] + c1) * (vx + vy + c2))
                count += 1
            }
        }
        return sum / Double(max(count, 1))
    }
}
