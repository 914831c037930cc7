import Engine
import Foundation
import Networks
import Methods

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

/// ResShift rows: the released v3 UNetModelSwin (118.6 M parameters) at a 64² latent with its 64² LR (one
/// sampling step, t = 3), and the VQ-f4 decoder (quantisation included) from a 64² latent to a 256² image.
/// Random weights; the PyTorch side builds the official modules (bench.py --resshift DIR).
func resshiftOps() throws -> [BenchOp] {
    var network: ResShiftUNet?, vq: VQAutoencoder?
    var x: Tensor?, lq: Tensor?, z: Tensor?
    return [
        BenchOp(name: "resshift_v3_64", gflop: 0, run: {
            if network == nil {
                network = try ResShiftUNet(.realSRx4, parameters: .random(seed: 1))
                x = try randomTensor([1, 64, 64, 3], seed: 5)
                lq = try randomTensor([1, 64, 64, 3], seed: 6)
            }
            _ = try network!(x!, timesteps: [3], condition: lq!)
        }, kernel: { "ResShiftUNet (oneDNN convs, window attention)" }),
        BenchOp(name: "vq_f4_decode_64", gflop: 0, run: {
            if vq == nil {
                vq = try VQAutoencoder(.vqF4, parameters: .random(seed: 2))
                z = try randomTensor([1, 64, 64, 3], seed: 7)
            }
            _ = try vq!.decode(z!)
        }, kernel: { "VQ-f4 decoder (nearest code + LDM decoder)" }),
    ]
}

/// DiffIR rows: the official RealSR ×4 DiffIRS2 (dim 64, blocks [13, 1, 1, 1], refinement 13, 25.0 M parameters) on a
/// 64² input — CPEN, the 4 MLP steps of the IPR diffusion and DIRformer, one whole restore as `model(lq)` — and
/// our own bundled configuration on a 256² input. Random weights; the PyTorch side builds the official DiffIRS2
/// (bench.py --diffir DIR).
func diffirOps() throws -> [BenchOp] {
    func op(_ name: String, _ configuration: DiffIRConfiguration, size: Int) -> BenchOp {
        var network: DiffIRNetwork?
        var x: Tensor?
        return BenchOp(name: name, gflop: 0, run: {
            if network == nil {
                network = try DiffIRNetwork(configuration, parameters: .random(seed: 1))
                x = try randomTensor([1, size, size, 3], seed: 5)
            }
            let n = network!
            let c = try n.condition(x!)
            var ipr = try randomTensor([1, 256], seed: 6)
            let diffusion = try IPRDiffusion()
            ipr = try diffusion.sample(from: ipr) { v, t in try n.denoiser(v, t: t, condition: c) }
            _ = try n.generator(x!, modulations: try n.generator.modulations(ipr))
        }, kernel: { "DiffIRS2 (CPEN + 4-step MLP + DIRformer)" })
    }
    let own = DiffIRConfiguration(task: .sr4, dim: 24, numBlocks: [2, 2, 2, 2], refinementBlocks: 2, ffnExpansion: 2.0, layerNorm: "BiasFree",
                                  encoderResBlocks: 2)
    return [op("diffir_x4_64", .realSRx4, size: 64), op("diffir_own_256", own, size: 256)]
}

/// RDDM rows: the official restoration `UnetRes` of train.py (dim 64, dim_mults 1,2,4,8, two UNets, input cat(x_t, I_in))
/// for one sampling step at 256² (t = 999), and our own bundled configuration (Tools/train/train_rddm.py: one UNet,
/// dim 24). Random weights; the PyTorch side builds the official `UnetRes` (bench.py --rddm DIR).
func rddmOps() throws -> [BenchOp] {
    func op(_ name: String, _ configuration: RDDMConfiguration, size: Int) -> BenchOp {
        var network: RDDMUNet?
        var x: Tensor?
        return BenchOp(name: name, gflop: 0, run: {
            if network == nil {
                network = try RDDMUNet(configuration, parameters: .random(seed: 1))
                x = try randomTensor([1, size, size, configuration.inputChannels], seed: 5)
            }
            _ = try network!(x!, timesteps: [999])
        }, kernel: { "RDDM UnetRes (WS convs, GN, linear attention)" })
    }
    return [op("rddm_unetres_256", .deraining, size: 256),
            op("rddm_own_256", RDDMConfiguration(dim: 24, dimMults: [1, 2, 4, 8], shareEncoder: -1), size: 256)]
}

/// LDM rows: the released ×4 SR UNet (models/ldm/bsr_sr/config.yaml: openaimodel = our ADM UNet, 169 M parameters) for one
/// sampling step on a 64² latent with its 64² LR (t = 500), and the KL-f8 decoder (LDM's kl-f8: 128·[1, 2, 4, 4], the
/// shape of diffusers' AutoencoderKL default) from a 64² latent to a 512² image. Random weights; the PyTorch side builds
/// the official UNetModel (bench.py --ldm DIR) and diffusers' AutoencoderKL.
func ldmOps() throws -> [BenchOp] {
    var unet: ADMUNet?, kl: KLAutoencoder?
    var x: Tensor?, z: Tensor?
    return [
        BenchOp(name: "ldm_sr_unet_64", gflop: 0, run: {
            if unet == nil {
                unet = try ADMUNet(LDMConfiguration.bsrSR.unet, parameters: .random(seed: 1))
                x = try randomTensor([1, 64, 64, 6], seed: 5)
            }
            _ = try unet!(x!, timesteps: [500])
        }, kernel: { "ADMUNet, bsr_sr configuration" }),
        BenchOp(name: "kl_f8_decode_512", gflop: 0, run: {
            if kl == nil {
                kl = try KLAutoencoder(.klF8, parameters: .random(seed: 2))
                z = try randomTensor([1, 64, 64, 4], seed: 7)
            }
            _ = try kl!.decode(z!)
        }, kernel: { "KL-f8 decoder (LDM decoder)" }),
    ]
}
