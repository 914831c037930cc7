import Engine

/// A linear degradation A with a pseudo-inverse A†, on NHWC image tensors in the model's scale ([-1, 1]).
///
/// DDNM restores by the range–null-space decomposition x̂0 = A†y + (I − A†A)x0 (Wang et al. 2023, Eq. 4);
/// an operator needs only `apply` and `pseudoInverse` for that. Operators never touch networks.
public protocol DegradationOperator: Sendable {
    /// The text spec that builds this operator (e.g. `pool:4`), for reports.
    var spec: String { get }
    /// The shape of y for an image x of `imageShape` ([N, H, W, C]); throws when the sizes do not fit.
    func observationShape(for imageShape: [Int]) throws -> [Int]
    /// The shape of x that produces y of `observationShape` (the restored image's size).
    func imageShape(for observationShape: [Int]) throws -> [Int]
    /// y = A x.
    func apply(_ x: Tensor) throws -> Tensor
    /// A† y: the minimum-norm x with A x = y (for y in A's range).
    func pseudoInverse(_ y: Tensor) throws -> Tensor
}

/// An operator that also gives Aᵀ y (blur and bicubic windows): lets tiling solve the known-region
/// constraint exactly (conjugate gradients) where alternating projections converge slowly.
public protocol TransposableOperator: DegradationOperator {
    /// Aᵀ y.
    func applyTranspose(_ y: Tensor) throws -> Tensor
}

/// Errors of operator specs and shapes: one line each.
public struct OperatorError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension DegradationOperator {
    /// x − A†(A x − y): the DDNM data-consistency step (Eq. 13 of the paper for σy = 0).
    public func rangeNullCorrection(_ x0: Tensor, observation y: Tensor, strength lambda: Float = 1) throws -> Tensor {
        let residual = try subtract(try apply(x0), y)
        let correction = try pseudoInverse(residual)
        return try axpby(1, x0, -lambda, correction)
    }
}
