import Engine

/// Estimates the standard deviation of additive white Gaussian noise in an image: Donoho & Johnstone's robust
/// estimator, the median absolute value of the finest diagonal wavelet detail divided by 0.6745 (the median of
/// |N(0, 1)|), here with the orthonormal Haar wavelet (HH = (a − b − c + d) / 2 on each 2×2 block, whose
/// standard deviation is σ for white noise). Edges and texture barely move the median; the estimate is the
/// mean over channels, as scikit-image's `estimate_sigma(average_sigmas=True)` reports it.
public enum NoiseEstimate {
    /// σ of `image` ([1, H, W, C]) times `scale` (0.5 for a [-1, 1] tensor, giving the [0, 1] scale); 0 when
    /// the image is smaller than 2×2.
    public static func sigma(_ image: Tensor, scale: Float = 1) -> Float {
        let (h, w, c) = (image.shape[1], image.shape[2], image.shape[3])
        guard h >= 2, w >= 2 else { return 0 }
        var total: Float = 0
        for channel in 0..<c {
            var details: [Float] = []
            details.reserveCapacity((h / 2) * (w / 2))
            for y in stride(from: 0, to: h - 1, by: 2) {
                for x in stride(from: 0, to: w - 1, by: 2) {
                    let at = { (yy: Int, xx: Int) in image.data[(yy * w + xx) * c + channel] }
                    details.append(abs(at(y, x) - at(y, x + 1) - at(y + 1, x) + at(y + 1, x + 1)) / 2)
                }
            }
            details.sort()
            let n = details.count
            let median = n % 2 == 1 ? details[n / 2] : (details[n / 2 - 1] + details[n / 2]) / 2
            total += median / 0.6745
        }
        return total / Float(c) * scale
    }
}
