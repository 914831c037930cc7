import Engine
import Foundation
import Networks

/// Whole-network rows: guided-diffusion's UNet at 64² (ch 64, mult 1,2,2,4, attention at 16 and 8 px) and
/// the full ADM-256 unconditional configuration at 256², random weights, batch 1, t = 500. The PyTorch
/// side (Tools/bench/bench.py) builds the same configurations with guided-diffusion's own `UNetModel`.
/// GFLOP is reported by PyTorch's FlopCounterMode (0 here).
func networkOps() throws -> [BenchOp] {
    let small = ADMConfiguration(imageSize: 64, modelChannels: 64, outChannels: 6, numResBlocks: 2, attentionResolutions: [4, 8],
                                 channelMult: [1, 2, 2, 4], numHeads: 4, useScaleShiftNorm: true, resblockUpdown: true)
    let full = NetworkPreset.named("adm-imagenet256-uncond")!
    guard case .adm(let fullConfiguration) = full.architecture else { return [] }
    return [try admOp("unet_adm64", small), try admOp("unet_adm256", fullConfiguration)]
}

/// The network is built on first use (the 256² one holds 2.2 GB of weights).
private func admOp(_ name: String, _ configuration: ADMConfiguration) throws -> BenchOp {
    var network: ADMUNet?
    var x: Tensor?
    return BenchOp(name: name, gflop: 0, run: {
        if network == nil {
            network = try ADMUNet(configuration, parameters: .random(seed: 1))
            x = try randomTensor([1, configuration.imageSize, configuration.imageSize, 3], seed: 5)
        }
        _ = try network!(x!, timesteps: [500], classLabels: nil)
    }, kernel: { "ADMUNet (oneDNN convs, fused GN+SiLU)" })
}
