import Engine

/// Benchmarks of the Swift SIMD kernels (GroupNorm + SiLU).
func extraOps() throws -> [BenchOp] {
    []
}
