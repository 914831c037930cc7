import Engine

/// A denoising network as samplers see it: a function of (x_t, t[, class]) → its prediction (ε, or ε and
/// the variance interpolation v). It never knows which sampler calls it.
public protocol DiffusionNetwork: AnyObject {
    /// Channels of x_t (3 for RGB priors).
    var inputChannels: Int { get }
    /// Channels of the output (3: ε; 6: ε then v, with learn_sigma).
    var outputChannels: Int { get }
    /// Height and width must be multiples of this.
    var sizeMultiple: Int { get }
    /// The number of classes of a class-conditional model, else nil.
    var classCount: Int? { get }
    /// The prediction for `x` ([N, H, W, inputChannels], NHWC) at `timesteps` (N values).
    func callAsFunction(_ x: Tensor, timesteps: [Float], classLabels: [Int]?) throws -> Tensor
}

extension DiffusionNetwork {
    /// The network as an ε-denoiser (the samplers' `Denoiser`): the timestep and `classID` repeated per sample,
    /// and only ε kept of a learn_sigma output (its first 3 channels; the variance interpolation v is unused by
    /// the DDIM-style samplers, as in the official DDNM code's `[:, :3]`).
    public func epsilon(classID: Int? = nil) -> (_ x: Tensor, _ t: Int) throws -> Tensor {
        { x, t in
            let output = try self(x, timesteps: Array(repeating: Float(t), count: x.shape[0]), classLabels: classID.map { Array(repeating: $0, count: x.shape[0]) })
            guard let c = output.shape.last, c != x.shape.last ?? c, c > 3 else { return output }
            return try splitChannels(output, sizes: [3, c - 3])[0]
        }
    }

    /// Throws a one-line error unless the input fits the network.
    func checkInput(n: Int, height: Int, width: Int, channels: Int, timesteps: [Float], classLabels: [Int]?) throws {
        let name = String(describing: type(of: self))
        guard channels == inputChannels else {
            throw EngineError.shapeMismatch(op: name, expected: "\(inputChannels) input channels", found: "\(channels)")
        }
        guard height % sizeMultiple == 0, width % sizeMultiple == 0 else {
            throw EngineError.invalidArgument(op: name, reason: "height and width (\(height)×\(width)) must be multiples of \(sizeMultiple)")
        }
        guard timesteps.count == n else {
            throw EngineError.shapeMismatch(op: name, expected: "\(n) timesteps", found: "\(timesteps.count)")
        }
        if let classCount {
            guard let classLabels, classLabels.count == n else {
                throw EngineError.invalidArgument(op: name, reason: "this class-conditional model needs one class label per sample (--class ID)")
            }
            if let bad = classLabels.first(where: { !(0..<classCount).contains($0) }) {
                throw EngineError.invalidArgument(op: name, reason: "class \(bad) is outside 0..<\(classCount)")
            }
        } else if classLabels != nil {
            throw EngineError.invalidArgument(op: name, reason: "this model is not class-conditional; drop the class label")
        }
    }
}
