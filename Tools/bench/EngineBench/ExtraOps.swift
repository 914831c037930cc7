import Engine

/// GroupNorm(32) + SiLU (a Swift SIMD kernel), and a ResBlock-shaped sequence that alternates Swift
/// kernels and oneDNN convolutions (what a UNet does all the time; used to choose OMP_WAIT_POLICY).
func extraOps() throws -> [BenchOp] {
    var ops: [BenchOp] = []
    for (c, s) in [(128, 64), (256, 32)] {
        let x = try randomTensor([1, s, s, c], seed: 11)
        let gamma = try randomTensor([c], seed: 12), beta = try randomTensor([c], seed: 13)
        ops.append(BenchOp(name: "gn_silu_c\(c)_\(s)", gflop: 0, run: {
            _ = try groupNorm(x, groups: 32, weight: gamma, bias: beta, epsilon: 1e-5, silu: true)
        }, kernel: { "Swift SIMD (2 passes)" }))
    }
    let (c, s) = (128, 64)
    let x = try randomTensor([1, s, s, c], seed: 21)
    let gamma = try randomTensor([c], seed: 22), beta = try randomTensor([c], seed: 23)
    func convWeight(_ seed: UInt64) throws -> Tensor {
        let w = try randomTensor([c, c, 3, 3], seed: seed)
        for i in 0..<w.count { w.data[i] *= 1 / Float(c * 9).squareRoot() }
        return w
    }
    let conv1 = try Conv2D(weight: try convWeight(31), bias: try randomTensor([c], seed: 32), padding: .same(1))
    let conv2 = try Conv2D(weight: try convWeight(33), bias: try randomTensor([c], seed: 34), padding: .same(1), postOps: [.sum()])
    ops.append(BenchOp(name: "resblock_c128_64", gflop: 2 * 2.0 * Double(s * s * c * c * 9) * 1e-9, run: {
        let h = try conv1(try groupNorm(x, groups: 32, weight: gamma, bias: beta, epsilon: 1e-5, silu: true))
        _ = try conv2(try groupNorm(h, groups: 32, weight: gamma, bias: beta, epsilon: 1e-5, silu: true), residual: try x.copy())
    }, kernel: { "GN+SiLU, conv, GN+SiLU, conv+sum" }))
    return ops
}
