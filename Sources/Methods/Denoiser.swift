import Engine

/// What every sampler sees of a network: its prediction for x_t at the integer timestep t — ε for the
/// ε-prediction priors (DDNM, DreamClean), x0 or the residual for ResShift (its `ResShiftPrediction`) — with
/// the shape of x_t. A denoiser hides the network's conventions: learn_sigma's extra output channels and class
/// labels (`DiffusionNetwork.epsilon`), ResShift's input scaling and conditioning image
/// (`ResShiftInputScaling.denoiser`), cancellation (Restoration). Samplers never know which network they call
/// (k-diffusion's wrapped model); networks never know which sampler calls them.
public typealias Denoiser = (_ x: Tensor, _ t: Int) throws -> Tensor

/// The denoiser's output, checked to have x_t's shape (a network with extra channels needs its wrapper).
func checkedPrediction(_ output: Tensor, for x: Tensor) throws -> Tensor {
    guard output.shape == x.shape else {
        throw SamplerError("the denoiser returned \(output.shape) for x_t \(x.shape); wrap a network with extra output channels (learn_sigma) in its ε-denoiser")
    }
    return output
}

/// Called by a sampler after each step with its estimate of the clean image at timestep t: DDNM's x0|t (before
/// the correction), DreamClean's x0 (after its correction), ResShift's x0 (in its latent space). For progress
/// previews; the observer must not change the tensor.
public typealias StepObserver = (_ t: Int, _ x0: Tensor) -> Void
