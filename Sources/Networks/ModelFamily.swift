import Checkpoints

/// A best guess at which network a state dict belongs to, from its key names and a few shapes.
/// Used by `restore inspect` and to pick a preset; networks still verify every key when they bind.
public struct ModelFamily: Sendable, Equatable, CustomStringConvertible {
    /// Short name, e.g. `adm-unet`, `ddpm-unet`, `swin-unet`, `vq-autoencoder`, `ldm`, `diffir`.
    public let name: String
    /// Facts read from the weights (e.g. `learn_sigma`, class-conditional, base width).
    public let details: [String]

    public var description: String { details.isEmpty ? name : "\(name) (\(details.joined(separator: ", ")))" }

    /// Recognises the families this project runs; nil when the keys match none of them.
    public static func recognise(_ state: StateDict) -> ModelFamily? {
        func has(_ key: String) -> Bool { state[key] != nil }
        func anyKey(_ test: (String) -> Bool) -> Bool { state.names.contains(where: test) }
        func shape(_ key: String) -> [Int]? { state[key]?.shape }

        if anyKey({ $0.hasPrefix("model.diffusion_model.") }) && anyKey({ $0.hasPrefix("first_stage_model.") }) {
            var details: [String] = []
            if anyKey({ $0.hasPrefix("model_ema.") }) { details.append("with EMA copy (model_ema., dots stripped)") }
            if anyKey({ $0.hasPrefix("first_stage_model.quantize.") }) { details.append("VQ first stage") } else { details.append("KL first stage") }
            return ModelFamily(name: "ldm", details: details)
        }
        if DiffIRLoader.recognises(state) {
            var details: [String] = []
            if let configuration = try? DiffIRLoader.detect(state) {
                details.append(configuration.presetName ?? "\(configuration.task.rawValue), dim \(configuration.dim)")
            }
            if anyKey({ $0.hasPrefix("diffusion.model.") }) { details.append("with the official diffusion.* aliases") }
            return ModelFamily(name: "diffir", details: details)
        }
        if let prefix = RDDMLoader.networkPrefix(state) {
            var details: [String] = []
            if let c = try? RDDMLoader.detect(state) {
                details.append(c.shareEncoder == 0 ? "two UNets" : c.shareEncoder == 1 ? "shared encoder, two decoders" : "one UNet")
                details.append("dim \(c.dim), dim_mults \(c.dimMults.map(String.init).joined(separator: ","))")
                details.append(c.conditionImages == 0 ? "unconditional" : c.conditionImages == 1 ? "conditional on I_in" : "conditional on I_in and a third image")
            }
            if prefix == "model.", state["betas2_cumsum"] != nil { details.append("with the schedule buffers") }
            return ModelFamily(name: "rddm", details: details)
        }
        if has("input_blocks.0.0.weight"), has("out.2.weight"), has("time_embed.0.weight") {
            var details: [String] = []
            if let input = shape("input_blocks.0.0.weight"), input.count == 4 { details.append("model_channels \(input[0]), in_channels \(input[1])") }
            if let output = shape("out.2.weight"), let first = output.first { details.append("out_channels \(first)\(first == 6 ? " (learn_sigma)" : "")") }
            if let classes = shape("label_emb.weight")?.first { details.append("class-conditional, \(classes) classes") }
            let swin = anyKey { $0.contains("relative_position_bias_table") }
            return ModelFamily(name: swin ? "swin-unet" : "adm-unet", details: details)
        }
        if has("temb.dense.0.weight"), has("conv_in.weight"), anyKey({ $0.hasPrefix("down.0.block.") }) {
            var details: [String] = []
            if let input = shape("conv_in.weight"), input.count == 4 { details.append("ch \(input[0])") }
            return ModelFamily(name: "ddpm-unet", details: details)
        }
        if has("encoder.conv_in.weight"), has("decoder.conv_out.weight") {
            if let codebook = shape("quantize.embedding.weight") {
                return ModelFamily(name: "vq-autoencoder", details: ["codebook \(codebook.map(String.init).joined(separator: "×"))"])
            }
            return ModelFamily(name: "kl-autoencoder", details: [])
        }
        return nil
    }
}
