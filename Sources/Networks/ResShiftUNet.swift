import Checkpoints
import Engine
import Foundation

/// The constructor options of ResShift's `UNetModelSwin` (`models/unet.py`), with the official names.
/// `attentionResolutions` are spatial sizes (compared with ds, which starts at `image_size` and halves per
/// level), unlike guided-diffusion's downsampling factors.
public struct ResShiftUNetConfiguration: Codable, Sendable, Equatable {
    public var imageSize: Int
    public var inChannels: Int
    public var modelChannels: Int
    public var outChannels: Int
    /// Per level (an integer in a config applies to every level).
    public var numResBlocks: [Int]
    public var attentionResolutions: [Int]
    public var channelMult: [Double]
    public var convResample = true
    public var numHeads = 1
    public var numHeadChannels = -1
    public var useScaleShiftNorm = false
    public var resblockUpdown = false
    public var swinDepth = 2
    public var swinEmbedDim = 96
    public var windowSize = 8
    public var mlpRatio = 2.0
    public var patchNorm = false
    public var condLQ = true
    public var condMask = false
    public var lqSize = 256

    public init(imageSize: Int, inChannels: Int, modelChannels: Int, outChannels: Int, numResBlocks: [Int],
                attentionResolutions: [Int], channelMult: [Double], convResample: Bool = true, numHeads: Int = 1,
                numHeadChannels: Int = -1, useScaleShiftNorm: Bool = false, resblockUpdown: Bool = false, swinDepth: Int = 2,
                swinEmbedDim: Int = 96, windowSize: Int = 8, mlpRatio: Double = 2, condLQ: Bool = true, condMask: Bool = false,
                lqSize: Int = 256) {
        self.imageSize = imageSize
        self.inChannels = inChannels
        self.modelChannels = modelChannels
        self.outChannels = outChannels
        self.numResBlocks = numResBlocks
        self.attentionResolutions = attentionResolutions
        self.channelMult = channelMult
        self.convResample = convResample
        self.numHeads = numHeads
        self.numHeadChannels = numHeadChannels
        self.useScaleShiftNorm = useScaleShiftNorm
        self.resblockUpdown = resblockUpdown
        self.swinDepth = swinDepth
        self.swinEmbedDim = swinEmbedDim
        self.windowSize = windowSize
        self.mlpRatio = mlpRatio
        self.condLQ = condLQ
        self.condMask = condMask
        self.lqSize = lqSize
    }

    /// The released ×4 real-world SR network (v1, v2, v3 and bicsr share it): 118.6 M parameters.
    public static let realSRx4 = ResShiftUNetConfiguration(
        imageSize: 64, inChannels: 3, modelChannels: 160, outChannels: 3, numResBlocks: [2, 2, 2, 2],
        attentionResolutions: [64, 32, 16, 8], channelMult: [1, 2, 2, 4], numHeadChannels: 32, useScaleShiftNorm: true,
        swinDepth: 2, swinEmbedDim: 192, windowSize: 8, mlpRatio: 4, condLQ: true, lqSize: 64)

    /// The released inpainting networks (ImageNet and face): a 256² image and its mask next to a 64² latent.
    public static var inpainting256: ResShiftUNetConfiguration {
        var c = realSRx4
        c.condMask = true
        c.lqSize = 256
        return c
    }

    /// The released blind face restoration network: 8-channel f8 latents next to a 512² image.
    public static var faceRestoration512: ResShiftUNetConfiguration {
        var c = realSRx4
        c.inChannels = 8
        c.outChannels = 8
        c.lqSize = 512
        return c
    }

    enum CodingKeys: String, CodingKey {
        case imageSize = "image_size", inChannels = "in_channels", modelChannels = "model_channels", outChannels = "out_channels"
        case numResBlocks = "num_res_blocks", attentionResolutions = "attention_resolutions", channelMult = "channel_mult"
        case convResample = "conv_resample", numHeads = "num_heads", numHeadChannels = "num_head_channels"
        case useScaleShiftNorm = "use_scale_shift_norm", resblockUpdown = "resblock_updown", swinDepth = "swin_depth"
        case swinEmbedDim = "swin_embed_dim", windowSize = "window_size", mlpRatio = "mlp_ratio", patchNorm = "patch_norm"
        case condLQ = "cond_lq", condMask = "cond_mask", lqSize = "lq_size"
    }

    /// Decodes the official keyword arguments (YAML `model.params`); those with constructor defaults may be absent,
    /// and extra ones (dropout, dims, use_fp16) are ignored.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        imageSize = try c.decode(Int.self, forKey: .imageSize)
        inChannels = try c.decode(Int.self, forKey: .inChannels)
        modelChannels = try c.decode(Int.self, forKey: .modelChannels)
        outChannels = try c.decode(Int.self, forKey: .outChannels)
        attentionResolutions = try c.decode([Int].self, forKey: .attentionResolutions)
        channelMult = try c.decodeIfPresent([Double].self, forKey: .channelMult) ?? [1, 2, 4, 8]
        if let perLevel = try? c.decode([Int].self, forKey: .numResBlocks) {
            numResBlocks = perLevel
        } else {
            numResBlocks = Array(repeating: try c.decode(Int.self, forKey: .numResBlocks), count: channelMult.count)
        }
        convResample = try c.decodeIfPresent(Bool.self, forKey: .convResample) ?? true
        numHeads = try c.decodeIfPresent(Int.self, forKey: .numHeads) ?? 1
        numHeadChannels = try c.decodeIfPresent(Int.self, forKey: .numHeadChannels) ?? -1
        useScaleShiftNorm = try c.decodeIfPresent(Bool.self, forKey: .useScaleShiftNorm) ?? false
        resblockUpdown = try c.decodeIfPresent(Bool.self, forKey: .resblockUpdown) ?? false
        swinDepth = try c.decodeIfPresent(Int.self, forKey: .swinDepth) ?? 2
        swinEmbedDim = try c.decodeIfPresent(Int.self, forKey: .swinEmbedDim) ?? 96
        windowSize = try c.decodeIfPresent(Int.self, forKey: .windowSize) ?? 8
        mlpRatio = try c.decodeIfPresent(Double.self, forKey: .mlpRatio) ?? 2
        patchNorm = try c.decodeIfPresent(Bool.self, forKey: .patchNorm) ?? false
        condLQ = try c.decodeIfPresent(Bool.self, forKey: .condLQ) ?? true
        condMask = try c.decodeIfPresent(Bool.self, forKey: .condMask) ?? false
        lqSize = try c.decodeIfPresent(Int.self, forKey: .lqSize) ?? 256
    }

    /// Channels of the conditioning image: 3 (RGB), 4 with the inpainting mask.
    public var conditionChannels: Int { condMask ? 4 : 3 }
    /// How much larger the conditioning image is than x_t (1 for ×4 SR; 4 for inpainting: 256² next to 64²).
    public var conditionScale: Int { max(1, lqSize / imageSize) }
}

/// A network that predicts from x_t, t and a conditioning image (ResShift's `lq`, with the mask channel for
/// inpainting). It never knows which sampler calls it.
public protocol ConditionedDiffusionNetwork: AnyObject {
    var inputChannels: Int { get }
    var outputChannels: Int { get }
    var conditionChannels: Int { get }
    /// The conditioning image is this many times larger than x_t in height and width.
    var conditionScale: Int { get }
    /// x_t's height and width must be multiples of this.
    var sizeMultiple: Int { get }
    /// The prediction for `x` ([N, H, W, in]) at `timesteps`, given `condition` ([N, H·s, W·s, conditionChannels]).
    func callAsFunction(_ x: Tensor, timesteps: [Float], condition: Tensor) throws -> Tensor
}

/// ResShift's UNetModelSwin: ADM residual blocks with a Swin layer after the first block of each listed
/// level and in the middle; x_t is concatenated with the (feature-extracted) conditioning image.
public final class ResShiftUNet: ParameterDeclaring, ConditionedDiffusionNetwork {
    public let configuration: ResShiftUNetConfiguration
    let timeEmbedding0: Linear, timeEmbedding2: Linear
    /// conv 3×3 + SiLU, then a stride-2 conv, per factor of 2 between the conditioning image and x_t.
    let featureExtractor: [(Conv2D, Conv2D)]
    let inputConv: Conv2D
    let inputBlocks: [[Layer]]
    let middleBlock: [Layer]
    let outputBlocks: [[Layer]]
    let outNorm: ADMNorm, outConv: Conv2D
    public let sizeMultiple: Int

    enum Layer {
        case res(ADMResBlock)
        case swin(SwinBasicLayer)
        case downsample(Conv2D?)
        case upsample(Conv2D?)
    }

    public init(_ c: ResShiftUNetConfiguration, parameters p: ParameterSource) throws {
        configuration = c
        let mc = c.modelChannels, embeddingChannels = 4 * mc
        func width(_ mult: Double) -> Int { Int(mult * Double(mc)) }
        guard c.condLQ, !c.channelMult.isEmpty, c.numResBlocks.count == c.channelMult.count, c.numResBlocks.allSatisfy({ $0 >= 1 }),
              c.channelMult.allSatisfy({ $0 > 0 && width($0) % 32 == 0 }), c.swinEmbedDim % 32 == 0, c.windowSize >= 2,
              c.imageSize >> (c.channelMult.count - 1) >= 1, !c.patchNorm else {
            throw EngineError.invalidArgument(op: "ResShiftUNet", reason: "unsupported configuration: needs cond_lq, one num_res_blocks (≥ 1) per level, widths and swin_embed_dim multiples of 32 (GroupNorm32), no patch_norm")
        }
        let heads = c.numHeadChannels == -1 ? c.numHeads : c.swinEmbedDim / c.numHeadChannels
        guard heads > 0, c.swinEmbedDim % heads == 0 else {
            throw EngineError.invalidArgument(op: "ResShiftUNet", reason: "\(heads) heads do not divide swin_embed_dim \(c.swinEmbedDim)")
        }
        timeEmbedding0 = try loadLinear(p, "time_embed.0", in: mc, out: embeddingChannels, postOps: [.silu])
        timeEmbedding2 = try loadLinear(p, "time_embed.2", in: embeddingChannels, out: embeddingChannels)

        var conditionWidth = c.conditionChannels
        var extractor: [(Conv2D, Conv2D)] = []
        if c.lqSize != c.imageSize {
            guard c.lqSize > c.imageSize, c.lqSize % c.imageSize == 0, (c.lqSize / c.imageSize).nonzeroBitCount == 1 else {
                throw EngineError.invalidArgument(op: "ResShiftUNet", reason: "lq_size \(c.lqSize) must be image_size \(c.imageSize) times a power of two")
            }
            var base = 16
            for stage in 0..<(c.lqSize / c.imageSize).trailingZeroBitCount {
                extractor.append((try loadConv(p, "feature_extractor.\(3 * stage)", in: conditionWidth, out: base, postOps: [.silu]),
                                  try loadConv(p, "feature_extractor.\(3 * stage + 2).op", in: base, out: 2 * base, stride: 2)))
                base *= 2
                conditionWidth = base
            }
        }
        featureExtractor = extractor

        func swin(_ prefix: String, _ channels: Int, _ ds: Int) throws -> SwinBasicLayer {
            try SwinBasicLayer(p, prefix, channels: channels, embedChannels: c.swinEmbedDim, heads: heads, window: c.windowSize,
                               depth: c.swinDepth, constructionSize: ds, mlpRatio: c.mlpRatio)
        }
        func res(_ prefix: String, _ channels: Int, _ out: Int, _ resample: Resample = .none) throws -> Layer {
            .res(try ADMResBlock(p, prefix, channels: channels, embeddingChannels: embeddingChannels, outChannels: out,
                                 scaleShift: c.useScaleShiftNorm, resample: resample))
        }
        var multiple = 1 << (c.channelMult.count - 1)
        var ch = width(c.channelMult[0])
        inputConv = try loadConv(p, "input_blocks.0.0", in: c.inChannels + conditionWidth, out: ch)
        var chans = [ch]
        var blocks: [[Layer]] = []
        var ds = c.imageSize
        for (level, mult) in c.channelMult.enumerated() {
            for j in 0..<c.numResBlocks[level] {
                let prefix = "input_blocks.\(blocks.count + 1)"
                var layers = [try res(prefix + ".0", ch, width(mult))]
                ch = width(mult)
                if c.attentionResolutions.contains(ds), j == 0 {
                    let layer = try swin(prefix + ".1", ch, ds)
                    multiple = max(multiple, layer.windowMultiple << level)
                    layers.append(.swin(layer))
                }
                blocks.append(layers)
                chans.append(ch)
            }
            if level != c.channelMult.count - 1 {
                let prefix = "input_blocks.\(blocks.count + 1).0"
                blocks.append([c.resblockUpdown ? try res(prefix, ch, ch, .down)
                                                : .downsample(c.convResample ? try loadConv(p, prefix + ".op", in: ch, out: ch, stride: 2) : nil)])
                chans.append(ch)
                ds /= 2
            }
        }
        inputBlocks = blocks
        let middleSwin = try swin("middle_block.1", ch, ds)
        multiple = max(multiple, middleSwin.windowMultiple << (c.channelMult.count - 1))
        middleBlock = [try res("middle_block.0", ch, ch), .swin(middleSwin), try res("middle_block.2", ch, ch)]

        blocks = []
        for (level, mult) in c.channelMult.enumerated().reversed() {
            for i in 0...c.numResBlocks[level] {
                let prefix = "output_blocks.\(blocks.count)"
                var layers = [try res(prefix + ".0", ch + chans.removeLast(), width(mult))]
                ch = width(mult)
                if c.attentionResolutions.contains(ds), i == 0 {
                    let layer = try swin(prefix + ".1", ch, ds)
                    multiple = max(multiple, layer.windowMultiple << level)
                    layers.append(.swin(layer))
                }
                if level > 0, i == c.numResBlocks[level] {
                    let name = prefix + ".\(layers.count)"
                    layers.append(c.resblockUpdown ? try res(name, ch, ch, .up)
                                                   : .upsample(c.convResample ? try loadConv(p, name + ".conv", in: ch, out: ch) : nil))
                    ds *= 2
                }
                blocks.append(layers)
            }
        }
        outputBlocks = blocks
        outNorm = try ADMNorm(p, "out.0", channels: ch)
        outConv = try loadConv(p, "out.2", in: width(c.channelMult[0]), out: c.outChannels)
        sizeMultiple = multiple
    }


    public var inputChannels: Int { configuration.inChannels }
    public var outputChannels: Int { configuration.outChannels }
    public var conditionChannels: Int { configuration.conditionChannels }
    public var conditionScale: Int { configuration.conditionScale }

    public func callAsFunction(_ x: Tensor, timesteps: [Float], condition: Tensor) throws -> Tensor {
        let (n, height, width, channels) = try x.nhwc("ResShiftUNet")
        let (cn, ch, cw, cc) = try condition.nhwc("ResShiftUNet condition")
        guard channels == inputChannels else {
            throw EngineError.shapeMismatch(op: "ResShiftUNet", expected: "\(inputChannels) input channels", found: "\(channels)")
        }
        guard cn == n, cc == conditionChannels, ch == height * conditionScale, cw == width * conditionScale else {
            throw EngineError.shapeMismatch(op: "ResShiftUNet condition", expected: "[\(n), \(height * conditionScale), \(width * conditionScale), \(conditionChannels)]",
                                            found: "\(condition.shape)")
        }
        guard height % sizeMultiple == 0, width % sizeMultiple == 0 else {
            throw EngineError.invalidArgument(op: "ResShiftUNet", reason: "height and width (\(height)×\(width)) must be multiples of \(sizeMultiple)")
        }
        guard timesteps.count == n else { throw EngineError.shapeMismatch(op: "ResShiftUNet", expected: "\(n) timesteps", found: "\(timesteps.count)") }
        let embedding = try timeEmbedding2(try timeEmbedding0(try timestepEmbedding(timesteps, dimension: configuration.modelChannels, style: .adm)))
        let siluEmbedding = try silu(embedding)

        var features = condition
        for (conv, down) in featureExtractor { features = try down(try conv(features)) }
        var h = try inputConv(try concatenateChannels([x, features]))
        var skips = [h]
        for block in inputBlocks {
            h = try run(block, h, siluEmbedding)
            skips.append(h)
        }
        h = try run(middleBlock, h, siluEmbedding)
        for block in outputBlocks {
            h = try run(block, try concatenateChannels([h, skips.removeLast()]), siluEmbedding)
        }
        return try outConv(try outNorm(h, silu: true))
    }

    /// Runs one block's layers; the input is never modified (it may be kept as a skip).
    private func run(_ layers: [Layer], _ input: Tensor, _ siluEmbedding: Tensor) throws -> Tensor {
        var h = input
        for layer in layers {
            switch layer {
            case .res(let block): h = try block(h, siluEmbedding)
            case .swin(let layer): h = try layer(h)
            case .downsample(let conv): h = try conv.map { try $0(h) } ?? averagePool(h, kernel: 2)
            case .upsample(let conv):
                h = try upsampleNearest2x(h)
                if let conv { h = try conv(h) }
            }
        }
        return h
    }
}
