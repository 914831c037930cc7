import Checkpoints
import Engine
import Foundation

/// Latent-diffusion SR models in the diffusers folder layout (`ldm-super-resolution-4x-openimages`: `unet/`, `vqvae/` or
/// `vae/`, `scheduler/`, each with its JSON config and `diffusion_pytorch_model.{safetensors,bin}`), mapped by name
/// onto the same networks as the CompVis checkpoints.
///
/// The UNet2DModel names follow diffusers' conversion script in reverse (`time_embedding.linear_{1,2}` ← `time_embed.{0,2}`,
/// `down_blocks.b.resnets.l` ← `input_blocks.i.0`, …); its attention holds q, k, v apart (`to_q`/`to_k`/`to_v`, or the older
/// `query`/`key`/`value`), which are interleaved back per head into the legacy `qkv` (the conversion script split them
/// with `reshape(heads, 3·d, …)`). The VQ/KL decoders' `up_blocks` run in the opposite order to CompVis' `up`.
/// `scaled_linear` betas are LDM's linear-in-√β schedule (computed here in float64 as LDM does; diffusers uses
/// float32, a difference of ~1e-7 relative); sampling is LDM's own DDIM either way.
public enum DiffusersLDM {
    /// True when `path` is a folder with `unet/config.json`.
    public static func isFolder(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("unet/config.json"))
    }

    static func json(_ path: String) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CheckpointError.stateDictNotFound(reason: "\(path) is missing or not a JSON object")
        }
        return object
    }

    static func weights(_ folder: String) throws -> StateDict {
        for name in ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"] {
            let path = (folder as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: path) { return try Checkpoint(path: path).stateDict(StateDictSelection(entry: "")) }
        }
        throw CheckpointError.stateDictNotFound(reason: "\(folder) has no diffusion_pytorch_model.safetensors or .bin")
    }

    static func ints(_ object: [String: Any], _ key: String) throws -> [Int] {
        guard let values = object[key] as? [Int], !values.isEmpty else {
            throw CheckpointError.stateDictNotFound(reason: "config: \(key) must be a non-empty list of integers")
        }
        return values
    }

    static func strings(_ object: [String: Any], _ key: String) -> [String] { object[key] as? [String] ?? [] }

    /// The openaimodel configuration of a UNet2DModel config.
    public static func unetConfiguration(_ c: [String: Any]) throws -> ADMConfiguration {
        let widths = try ints(c, "block_out_channels")
        let down = strings(c, "down_block_types")
        guard down.count == widths.count, widths[0] > 0, widths.allSatisfy({ $0 % widths[0] == 0 }) else {
            throw CheckpointError.stateDictNotFound(reason: "unet config: down_block_types and block_out_channels differ in length, or widths are not multiples of the first")
        }
        var attention: [Int] = []
        for (level, type) in down.enumerated() where type.hasPrefix("Attn") { attention.append(1 << level) }
        let headDim = c["attention_head_dim"] as? Int
        return ADMConfiguration(imageSize: c["sample_size"] as? Int ?? 64, inChannels: c["in_channels"] as? Int ?? 3, modelChannels: widths[0],
                                outChannels: c["out_channels"] as? Int ?? 3, numResBlocks: c["layers_per_block"] as? Int ?? 2,
                                attentionResolutions: attention, channelMult: widths.map { Double($0 / widths[0]) },
                                numHeads: headDim == nil ? 1 : -1, numHeadChannels: headDim ?? -1,
                                useScaleShiftNorm: (c["resnet_time_scale_shift"] as? String) == "scale_shift",
                                resblockUpdown: (c["downsample_type"] as? String) == "resnet")
    }

    /// The CompVis autoencoder configuration of a VQModel / AutoencoderKL config.
    public static func autoencoderConfiguration(_ c: [String: Any], kl: Bool) throws -> AutoencoderConfiguration {
        let widths = try ints(c, "block_out_channels")
        guard widths[0] > 0, widths.allSatisfy({ $0 % widths[0] == 0 }) else {
            throw CheckpointError.stateDictNotFound(reason: "autoencoder config: block_out_channels must be multiples of the first")
        }
        let levels = widths.count, blocks = c["layers_per_block"] as? Int ?? 1
        let attentionLevels = strings(c, "down_block_types").enumerated().filter { $0.element.hasPrefix("Attn") }.map(\.offset)
        let latent = c["latent_channels"] as? Int ?? 4
        return AutoencoderConfiguration(ch: widths[0], outCh: c["out_channels"] as? Int ?? 3, chMult: widths.map { $0 / widths[0] },
                                        numResBlocks: Array(repeating: blocks, count: levels), attnResolutions: attentionLevels.map { 256 >> $0 },
                                        inChannels: c["in_channels"] as? Int ?? 3, resolution: 256, zChannels: latent, doubleZ: kl,
                                        nEmbed: kl ? 0 : c["num_vq_embeddings"] as? Int ?? 256, embedDim: kl ? latent : c["vq_embed_dim"] as? Int ?? latent,
                                        attnType: (c["mid_block_add_attention"] as? Bool ?? true) ? "vanilla" : "none")
    }

    /// Collects the tensors under official names, checking that every diffusers tensor found a place.
    final class Renamer {
        let state: StateDict
        var out: [String: Tensor] = [:]
        var used = Set<String>()
        init(_ state: StateDict) { self.state = state }

        func first(_ names: [String]) -> String? { names.first { state[$0] != nil } }

        func tensor(_ name: String) throws -> Tensor {
            guard let stored = state[name] else { throw CheckpointError.bindingFailed(problems: [.missing(key: name, expected: [])]) }
            used.insert(name)
            return try stored.floatTensor()
        }

        /// `official.{weight,bias}` from the first of `names` that exists (`.weight`/`.bias` appended).
        func map(_ official: String, _ names: String..., bias: Bool = true) throws {
            guard let name = first(names.map { $0 + ".weight" }) else {
                throw CheckpointError.bindingFailed(problems: [.missing(key: names[0] + ".weight", expected: [])])
            }
            let base = String(name.dropLast(".weight".count))
            out[official + ".weight"] = try tensor(base + ".weight")
            if bias { out[official + ".bias"] = try tensor(base + ".bias") }
        }

        func resnet(_ official: String, _ d: String, adm: Bool) throws {
            if adm {
                try map(official + ".in_layers.0", d + ".norm1")
                try map(official + ".in_layers.2", d + ".conv1")
                try map(official + ".emb_layers.1", d + ".time_emb_proj")
                try map(official + ".out_layers.0", d + ".norm2")
                try map(official + ".out_layers.3", d + ".conv2")
                if state[d + ".conv_shortcut.weight"] != nil { try map(official + ".skip_connection", d + ".conv_shortcut") }
            } else {
                for (o, n) in [("norm1", "norm1"), ("conv1", "conv1"), ("norm2", "norm2"), ("conv2", "conv2")] { try map("\(official).\(o)", "\(d).\(n)") }
                if state[d + ".conv_shortcut.weight"] != nil { try map(official + ".nin_shortcut", d + ".conv_shortcut") }
            }
        }

        /// ADM's legacy `qkv` ([3C, C, 1], per head q, k, v rows) from diffusers' separate projections.
        func admAttention(_ official: String, _ d: String, channels: Int, heads: Int) throws {
            try map(official + ".norm", d + ".group_norm")
            let q = try tensor(first([d + ".to_q.weight", d + ".query.weight"]) ?? d + ".to_q.weight")
            let k = try tensor(first([d + ".to_k.weight", d + ".key.weight"]) ?? d + ".to_k.weight")
            let v = try tensor(first([d + ".to_v.weight", d + ".value.weight"]) ?? d + ".to_v.weight")
            let qb = try tensor(first([d + ".to_q.bias", d + ".query.bias"]) ?? d + ".to_q.bias")
            let kb = try tensor(first([d + ".to_k.bias", d + ".key.bias"]) ?? d + ".to_k.bias")
            let vb = try tensor(first([d + ".to_v.bias", d + ".value.bias"]) ?? d + ".to_v.bias")
            guard q.count == channels * channels, k.count == q.count, v.count == q.count, heads > 0, channels % heads == 0 else {
                throw CheckpointError.bindingFailed(problems: [.shapeMismatch(key: d + ".to_q.weight", expected: [channels, channels], found: q.shape)])
            }
            let hd = channels / heads
            let weight = try Tensor(uninitializedShape: [3 * channels, channels, 1]), bias = try Tensor(uninitializedShape: [3 * channels])
            for h in 0..<heads {
                for (part, (w, b)) in [(q, qb), (k, kb), (v, vb)].enumerated() {
                    for r in 0..<hd {
                        let row = h * 3 * hd + part * hd + r, source = h * hd + r
                        (weight.data + row * channels).update(from: w.data + source * channels, count: channels)
                        bias.data[row] = b.data[source]
                    }
                }
            }
            out[official + ".qkv.weight"] = weight
            out[official + ".qkv.bias"] = bias
            try map(official + ".proj_out", d + ".to_out.0", d + ".proj_attn")
        }

        func vaeAttention(_ official: String, _ d: String) throws {
            try map(official + ".norm", d + ".group_norm")
            try map(official + ".q", d + ".to_q", d + ".query")
            try map(official + ".k", d + ".to_k", d + ".key")
            try map(official + ".v", d + ".to_v", d + ".value")
            try map(official + ".proj_out", d + ".to_out.0", d + ".proj_attn")
        }

        func checkAllUsed(_ what: String) throws {
            let left = state.names.filter { !used.contains($0) }
            guard left.isEmpty else {
                throw CheckpointError.bindingFailed(problems: left.prefix(8).map { .unexpected(key: $0, found: state[$0]?.shape ?? []) })
            }
        }
    }

    /// The UNet's tensors under openaimodel names.
    static func unetTensors(_ state: StateDict, _ c: ADMConfiguration) throws -> [String: Tensor] {
        let r = Renamer(state)
        try r.map("time_embed.0", "time_embedding.linear_1")
        try r.map("time_embed.2", "time_embedding.linear_2")
        try r.map("input_blocks.0.0", "conv_in")
        func heads(_ ch: Int) -> Int { c.numHeadChannels > 0 ? ch / c.numHeadChannels : c.numHeads }
        let mc = c.modelChannels
        var i = 1, ds = 1
        var ch = mc
        for (b, mult) in c.channelMult.enumerated() {
            for l in 0..<c.numResBlocks {
                try r.resnet("input_blocks.\(i).0", "down_blocks.\(b).resnets.\(l)", adm: true)
                ch = Int(mult) * mc
                if c.attentionResolutions.contains(ds) {
                    try r.admAttention("input_blocks.\(i).1", "down_blocks.\(b).attentions.\(l)", channels: ch, heads: heads(ch))
                }
                i += 1
            }
            if b != c.channelMult.count - 1 {
                if c.resblockUpdown { try r.resnet("input_blocks.\(i).0", "down_blocks.\(b).downsamplers.0", adm: true) }
                else { try r.map("input_blocks.\(i).0.op", "down_blocks.\(b).downsamplers.0.conv") }
                i += 1
                ds *= 2
            }
        }
        try r.resnet("middle_block.0", "mid_block.resnets.0", adm: true)
        try r.admAttention("middle_block.1", "mid_block.attentions.0", channels: ch, heads: heads(ch))
        try r.resnet("middle_block.2", "mid_block.resnets.1", adm: true)
        var j = 0
        for (u, (level, mult)) in c.channelMult.enumerated().reversed().enumerated() {
            for l in 0...c.numResBlocks {
                try r.resnet("output_blocks.\(j).0", "up_blocks.\(u).resnets.\(l)", adm: true)
                ch = Int(mult) * mc
                var next = 1
                if c.attentionResolutions.contains(ds) {
                    try r.admAttention("output_blocks.\(j).1", "up_blocks.\(u).attentions.\(l)", channels: ch, heads: heads(ch))
                    next = 2
                }
                if level > 0, l == c.numResBlocks {
                    if c.resblockUpdown { try r.resnet("output_blocks.\(j).\(next)", "up_blocks.\(u).upsamplers.0", adm: true) }
                    else { try r.map("output_blocks.\(j).\(next).conv", "up_blocks.\(u).upsamplers.0.conv") }
                    ds /= 2
                }
                j += 1
            }
        }
        try r.map("out.0", "conv_norm_out")
        try r.map("out.2", "conv_out")
        try r.checkAllUsed("unet")
        return r.out
    }

    /// The autoencoder's tensors under CompVis names.
    static func autoencoderTensors(_ state: StateDict, _ c: AutoencoderConfiguration) throws -> [String: Tensor] {
        let r = Renamer(state)
        let levels = c.chMult.count
        try r.map("encoder.conv_in", "encoder.conv_in")
        for l in 0..<levels {
            for i in 0..<c.numResBlocks[l] {
                try r.resnet("encoder.down.\(l).block.\(i)", "encoder.down_blocks.\(l).resnets.\(i)", adm: false)
                if c.hasAttention, c.attnResolutions.contains(c.resolution >> l) {
                    try r.vaeAttention("encoder.down.\(l).attn.\(i)", "encoder.down_blocks.\(l).attentions.\(i)")
                }
            }
            if l != levels - 1 { try r.map("encoder.down.\(l).downsample.conv", "encoder.down_blocks.\(l).downsamplers.0.conv") }
        }
        for part in ["encoder", "decoder"] {
            try r.resnet("\(part).mid.block_1", "\(part).mid_block.resnets.0", adm: false)
            if c.hasAttention { try r.vaeAttention("\(part).mid.attn_1", "\(part).mid_block.attentions.0") }
            try r.resnet("\(part).mid.block_2", "\(part).mid_block.resnets.1", adm: false)
            try r.map("\(part).norm_out", "\(part).conv_norm_out")
            try r.map("\(part).conv_out", "\(part).conv_out")
        }
        try r.map("decoder.conv_in", "decoder.conv_in")
        for l in 0..<levels {
            let u = levels - 1 - l
            for i in 0...c.numResBlocks[l] {
                try r.resnet("decoder.up.\(l).block.\(i)", "decoder.up_blocks.\(u).resnets.\(i)", adm: false)
                if c.hasAttention, c.attnResolutions.contains(c.resolution >> l) {
                    try r.vaeAttention("decoder.up.\(l).attn.\(i)", "decoder.up_blocks.\(u).attentions.\(i)")
                }
            }
            if l != 0 { try r.map("decoder.up.\(l).upsample.conv", "decoder.up_blocks.\(u).upsamplers.0.conv") }
        }
        try r.map("quant_conv", "quant_conv")
        try r.map("post_quant_conv", "post_quant_conv")
        if !c.doubleZ { try r.map("quantize.embedding", "quantize.embedding", bias: false) }
        try r.checkAllUsed("autoencoder")
        return r.out
    }

    /// Loads a diffusers LDM SR folder: the UNet (latent + 3 image channels in), `vqvae/` (VQModel) or `vae/`
    /// (AutoencoderKL, with its `scaling_factor`), the schedule from `scheduler/scheduler_config.json`.
    public static func load(folder: String) throws -> (unet: ADMUNet, firstStage: FirstStage, configuration: LDMConfiguration) {
        func sub(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
        let unetConfig = try json(sub("unet/config.json"))
        let adm = try unetConfiguration(unetConfig)
        let kl = !FileManager.default.fileExists(atPath: sub("vqvae/config.json"))
        let stageFolder = sub(kl ? "vae" : "vqvae")
        guard FileManager.default.fileExists(atPath: (stageFolder as NSString).appendingPathComponent("config.json")) else {
            throw CheckpointError.stateDictNotFound(reason: "\(folder) has unet/ but neither vqvae/ nor vae/ with a config.json")
        }
        let stageConfig = try json((stageFolder as NSString).appendingPathComponent("config.json"))
        let autoencoder = try autoencoderConfiguration(stageConfig, kl: kl)
        var start = 0.0015, end = 0.0155, steps = 1000
        if FileManager.default.fileExists(atPath: sub("scheduler/scheduler_config.json")) {
            let s = try json(sub("scheduler/scheduler_config.json"))
            let schedule = s["beta_schedule"] as? String ?? "scaled_linear"
            guard schedule == "scaled_linear" else {
                throw CheckpointError.stateDictNotFound(reason: "scheduler beta_schedule \(schedule): only LDM's scaled_linear (linear in √β) is supported")
            }
            start = s["beta_start"] as? Double ?? start
            end = s["beta_end"] as? Double ?? end
            steps = s["num_train_timesteps"] as? Int ?? steps
        }
        let configuration = LDMConfiguration(unet: adm, firstStage: autoencoder, conditioning: .superResolution, timesteps: steps,
                                             linearStart: start, linearEnd: end,
                                             scaleFactor: kl ? Float(stageConfig["scaling_factor"] as? Double ?? 1) : 1)
        try configuration.validate()
        let unet = try ADMUNet(adm, parameters: .bound(try unetTensors(try weights(sub("unet")), adm)))
        let stageTensors = try autoencoderTensors(try weights(stageFolder), autoencoder)
        let stage: FirstStage = kl ? try KLAutoencoder(autoencoder, parameters: .bound(stageTensors))
                                   : try VQAutoencoder(autoencoder, parameters: .bound(stageTensors))
        return (unet, stage, configuration)
    }
}
