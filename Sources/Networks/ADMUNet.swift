import Checkpoints
import Engine
import Foundation

/// The options of guided-diffusion's `UNetModel` that the official checkpoints use, with the official
/// names. `attentionResolutions` are downsampling factors (ds), as the constructor takes them
/// (`script_util` turns "32,16,8" at 256 px into 8, 16, 32).
public struct ADMConfiguration: Codable, Sendable, Equatable {
    public var imageSize: Int
    public var inChannels = 3
    public var modelChannels: Int
    /// 6 with learn_sigma (ε, then the variance interpolation v), else 3.
    public var outChannels: Int
    public var numResBlocks: Int
    public var attentionResolutions: [Int]
    /// Per-level width multipliers; fractional for the 512² model (0.5, 1, 1, 2, 2, 4, 4): width = Int(mult × model_channels).
    public var channelMult: [Double]
    public var numHeads = 1
    public var numHeadChannels = -1
    public var numHeadsUpsample = -1
    public var useScaleShiftNorm = false
    public var resblockUpdown = false
    public var useNewAttentionOrder = false
    public var convResample = true
    /// Class-conditional models: the number of classes (label_emb rows).
    public var numClasses: Int?

    public init(imageSize: Int, inChannels: Int = 3, modelChannels: Int, outChannels: Int, numResBlocks: Int,
                attentionResolutions: [Int], channelMult: [Double], numHeads: Int = 1, numHeadChannels: Int = -1,
                numHeadsUpsample: Int = -1, useScaleShiftNorm: Bool = false, resblockUpdown: Bool = false,
                useNewAttentionOrder: Bool = false, convResample: Bool = true, numClasses: Int? = nil) {
        self.imageSize = imageSize
        self.inChannels = inChannels
        self.modelChannels = modelChannels
        self.outChannels = outChannels
        self.numResBlocks = numResBlocks
        self.attentionResolutions = attentionResolutions
        self.channelMult = channelMult
        self.numHeads = numHeads
        self.numHeadChannels = numHeadChannels
        self.numHeadsUpsample = numHeadsUpsample
        self.useScaleShiftNorm = useScaleShiftNorm
        self.resblockUpdown = resblockUpdown
        self.useNewAttentionOrder = useNewAttentionOrder
        self.convResample = convResample
        self.numClasses = numClasses
    }

    enum CodingKeys: String, CodingKey {
        case imageSize = "image_size", inChannels = "in_channels", modelChannels = "model_channels", outChannels = "out_channels"
        case numResBlocks = "num_res_blocks", attentionResolutions = "attention_resolutions", channelMult = "channel_mult"
        case numHeads = "num_heads", numHeadChannels = "num_head_channels", numHeadsUpsample = "num_heads_upsample"
        case useScaleShiftNorm = "use_scale_shift_norm", resblockUpdown = "resblock_updown"
        case useNewAttentionOrder = "use_new_attention_order", convResample = "conv_resample", numClasses = "num_classes"
    }

    /// Decodes the official `UNetModel` keyword arguments; the ones with constructor defaults may be absent.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        imageSize = try c.decode(Int.self, forKey: .imageSize)
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? 3
        modelChannels = try c.decode(Int.self, forKey: .modelChannels)
        outChannels = try c.decode(Int.self, forKey: .outChannels)
        numResBlocks = try c.decode(Int.self, forKey: .numResBlocks)
        attentionResolutions = try c.decode([Int].self, forKey: .attentionResolutions)
        channelMult = try c.decodeIfPresent([Double].self, forKey: .channelMult)
            ?? ADMConfiguration.defaultChannelMult(imageSize: imageSize) ?? [1, 2, 4, 8]
        numHeads = try c.decodeIfPresent(Int.self, forKey: .numHeads) ?? 1
        numHeadChannels = try c.decodeIfPresent(Int.self, forKey: .numHeadChannels) ?? -1
        numHeadsUpsample = try c.decodeIfPresent(Int.self, forKey: .numHeadsUpsample) ?? -1
        useScaleShiftNorm = try c.decodeIfPresent(Bool.self, forKey: .useScaleShiftNorm) ?? false
        resblockUpdown = try c.decodeIfPresent(Bool.self, forKey: .resblockUpdown) ?? false
        useNewAttentionOrder = try c.decodeIfPresent(Bool.self, forKey: .useNewAttentionOrder) ?? false
        convResample = try c.decodeIfPresent(Bool.self, forKey: .convResample) ?? true
        numClasses = try c.decodeIfPresent(Int.self, forKey: .numClasses)
    }

    /// `script_util.create_model`'s channel multipliers for an image size.
    public static func defaultChannelMult(imageSize: Int) -> [Double]? {
        switch imageSize {
        case 512: return [0.5, 1, 1, 2, 2, 4, 4]
        case 256: return [1, 1, 2, 2, 4, 4]
        case 128: return [1, 1, 2, 3, 4]
        case 64: return [1, 2, 3, 4]
        default: return nil
        }
    }

    /// The input must be divisible by this (each level but the last halves it).
    public var sizeMultiple: Int { 1 << (channelMult.count - 1) }
}

/// guided-diffusion's UNet (ADM): ε (and v with learn_sigma) from x_t, t and an optional class label.
/// Input and output are NHWC in the model's scale ([-1, 1] images); any size divisible by `sizeMultiple`.
public final class ADMUNet: ParameterDeclaring, DiffusionNetwork {
    public let configuration: ADMConfiguration
    let timeEmbedding0: Linear, timeEmbedding2: Linear
    let labelEmbedding: Tensor?
    let inputConv: Conv2D
    let inputBlocks: [[ADMLayer]]
    let middleBlock: [ADMLayer]
    let outputBlocks: [[ADMLayer]]
    let outNorm: ADMNorm, outConv: Conv2D

    enum ADMLayer {
        case res(ADMResBlock)
        case attention(ADMAttentionBlock)
        case downsample(Conv2D?)  // nil: 2×2 average pooling
        case upsample(Conv2D?)    // nil: nearest ×2 only
    }

    /// Builds the network, asking `parameters` for every tensor by its official name.
    public init(_ c: ADMConfiguration, parameters p: ParameterSource) throws {
        configuration = c
        let mc = c.modelChannels, embeddingChannels = 4 * mc
        guard mc % 32 == 0, !c.channelMult.isEmpty, c.channelMult.allSatisfy({ Int($0 * Double(mc)) % 32 == 0 && $0 > 0 }), c.numResBlocks >= 1 else {
            throw EngineError.invalidArgument(op: "ADMUNet", reason: "model_channels and every level's width must be multiples of 32 (GroupNorm32), channel_mult non-empty, num_res_blocks ≥ 1")
        }
        timeEmbedding0 = try loadLinear(p, "time_embed.0", in: mc, out: embeddingChannels, postOps: [.silu])
        timeEmbedding2 = try loadLinear(p, "time_embed.2", in: embeddingChannels, out: embeddingChannels)
        labelEmbedding = try c.numClasses.map { try p.tensor("label_emb.weight", [$0, embeddingChannels]) }

        func heads(_ channels: Int, upsampling: Bool) -> Int {
            if c.numHeadChannels != -1 { return channels / c.numHeadChannels }
            return upsampling && c.numHeadsUpsample != -1 ? c.numHeadsUpsample : c.numHeads
        }
        func width(_ mult: Double) -> Int { Int(mult * Double(mc)) }  // int(mult * model_channels), as unet.py
        var ch = width(c.channelMult[0])
        inputConv = try loadConv(p, "input_blocks.0.0", in: c.inChannels, out: ch)
        var chans = [ch]
        var blocks: [[ADMLayer]] = []
        var ds = 1
        for (level, mult) in c.channelMult.enumerated() {
            for _ in 0..<c.numResBlocks {
                let prefix = "input_blocks.\(blocks.count + 1)"
                var layers: [ADMLayer] = [.res(try ADMResBlock(p, prefix + ".0", channels: ch, embeddingChannels: embeddingChannels,
                                                                outChannels: width(mult), scaleShift: c.useScaleShiftNorm))]
                ch = width(mult)
                if c.attentionResolutions.contains(ds) {
                    layers.append(.attention(try ADMAttentionBlock(p, prefix + ".1", channels: ch, heads: heads(ch, upsampling: false), newOrder: c.useNewAttentionOrder)))
                }
                blocks.append(layers)
                chans.append(ch)
            }
            if level != c.channelMult.count - 1 {
                let prefix = "input_blocks.\(blocks.count + 1).0"
                if c.resblockUpdown {
                    blocks.append([.res(try ADMResBlock(p, prefix, channels: ch, embeddingChannels: embeddingChannels, outChannels: ch,
                                                        scaleShift: c.useScaleShiftNorm, resample: .down))])
                } else {
                    blocks.append([.downsample(c.convResample ? try loadConv(p, prefix + ".op", in: ch, out: ch, stride: 2) : nil)])
                }
                chans.append(ch)
                ds *= 2
            }
        }
        inputBlocks = blocks

        middleBlock = [
            .res(try ADMResBlock(p, "middle_block.0", channels: ch, embeddingChannels: embeddingChannels, outChannels: ch, scaleShift: c.useScaleShiftNorm)),
            .attention(try ADMAttentionBlock(p, "middle_block.1", channels: ch, heads: heads(ch, upsampling: false), newOrder: c.useNewAttentionOrder)),
            .res(try ADMResBlock(p, "middle_block.2", channels: ch, embeddingChannels: embeddingChannels, outChannels: ch, scaleShift: c.useScaleShiftNorm)),
        ]

        blocks = []
        for (level, mult) in c.channelMult.enumerated().reversed() {
            for i in 0...c.numResBlocks {
                let prefix = "output_blocks.\(blocks.count)"
                let skipChannels = chans.removeLast()
                var layers: [ADMLayer] = [.res(try ADMResBlock(p, prefix + ".0", channels: ch + skipChannels, embeddingChannels: embeddingChannels,
                                                                outChannels: width(mult), scaleShift: c.useScaleShiftNorm))]
                ch = width(mult)
                if c.attentionResolutions.contains(ds) {
                    layers.append(.attention(try ADMAttentionBlock(p, prefix + ".\(layers.count)", channels: ch, heads: heads(ch, upsampling: true), newOrder: c.useNewAttentionOrder)))
                }
                if level > 0, i == c.numResBlocks {
                    let name = prefix + ".\(layers.count)"
                    if c.resblockUpdown {
                        layers.append(.res(try ADMResBlock(p, name, channels: ch, embeddingChannels: embeddingChannels, outChannels: ch,
                                                           scaleShift: c.useScaleShiftNorm, resample: .up)))
                    } else {
                        layers.append(.upsample(c.convResample ? try loadConv(p, name + ".conv", in: ch, out: ch) : nil))
                    }
                    ds /= 2
                }
                blocks.append(layers)
            }
        }
        outputBlocks = blocks
        outNorm = try ADMNorm(p, "out.0", channels: ch)
        outConv = try loadConv(p, "out.2", in: width(c.channelMult[0]), out: c.outChannels)
    }


    public var inputChannels: Int { configuration.inChannels }
    public var outputChannels: Int { configuration.outChannels }
    public var sizeMultiple: Int { configuration.sizeMultiple }
    public var classCount: Int? { configuration.numClasses }

    /// ε (and v) for `x` ([N, H, W, in]) at `timesteps` (N values, may be fractional), with class labels
    /// for class-conditional models.
    public func callAsFunction(_ x: Tensor, timesteps: [Float], classLabels: [Int]? = nil) throws -> Tensor {
        let (n, height, width, channels) = try x.nhwc("ADMUNet")
        try checkInput(n: n, height: height, width: width, channels: channels, timesteps: timesteps, classLabels: classLabels)
        // emb = time_embed(timestep_embedding(t, model_channels)) (+ label_emb(y)); every block uses SiLU(emb).
        let embedding = try timeEmbedding2(try timeEmbedding0(try timestepEmbedding(timesteps, dimension: configuration.modelChannels, style: .adm)))
        if let labelEmbedding, let classLabels {
            let e = embedding.count / n
            for (i, label) in classLabels.enumerated() { for j in 0..<e { embedding.data[i * e + j] += labelEmbedding.data[label * e + j] } }
        }
        let siluEmbedding = try silu(embedding)

        var h = try inputConv(x)
        var skips = [h]
        for block in inputBlocks {
            h = try run(block, h, siluEmbedding, inputIsShared: true)
            skips.append(h)
        }
        h = try run(middleBlock, h, siluEmbedding, inputIsShared: true)
        for block in outputBlocks {
            h = try concatenateChannels([h, skips.removeLast()])
            h = try run(block, h, siluEmbedding, inputIsShared: false)
        }
        return try outConv(try outNorm(h, silu: true))
    }

    /// Runs one block's layers; `inputIsShared` says whether the block's input is also kept as a skip.
    private func run(_ layers: [ADMLayer], _ input: Tensor, _ siluEmbedding: Tensor, inputIsShared: Bool) throws -> Tensor {
        var h = input
        for (index, layer) in layers.enumerated() {
            switch layer {
            case .res(let block): h = try block(h, siluEmbedding)
            case .attention(let block): h = try block(h, consuming: index > 0 || !inputIsShared)
            case .downsample(let conv): h = try conv.map { try $0(h) } ?? averagePool(h, kernel: 2)
            case .upsample(let conv):
                h = try upsampleNearest2x(h)
                if let conv { h = try conv(h) }
            }
        }
        return h
    }
}
