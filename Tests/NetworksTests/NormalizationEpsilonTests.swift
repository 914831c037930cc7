import Engine
import XCTest
@testable import Networks

/// Every GroupNorm of each network declares the ε of its official code: guided-diffusion's `GroupNorm32` (ADM,
/// and ResShift's UNet and Swin blocks) 1e-5; DDPM's and taming/LDM's `Normalize` (the DDPM UNet, the VQ
/// autoencoders) 1e-6. The goldens normalise O(1)-variance data where ε is invisible, so it is read here, from
/// the built networks (walked by reflection, so a norm added later is checked too), and the engine's
/// low-variance golden (NormalizationTests) pins what ε does.
final class NormalizationEpsilonTests: XCTestCase {
    /// The ε of every `ADMNorm` reachable from `subject` (weights and kernels are not walked).
    private func epsilons(_ subject: Any, depth: Int = 0) -> [Float] {
        if let norm = subject as? ADMNorm { return [norm.epsilon] }
        if depth > 24 || subject is Tensor || subject is Conv2D || subject is Linear || subject is Attention
            || subject is [Float] || subject is [Int] || subject is [Double] { return [] }
        return Mirror(reflecting: subject).children.flatMap { epsilons($0.value, depth: depth + 1) }
    }

    private func check(_ network: Any, expect epsilon: Float, atLeast count: Int, _ name: String) {
        let found = epsilons(network)
        XCTAssertGreaterThanOrEqual(found.count, count, "\(name): GroupNorms found by reflection")
        XCTAssertEqual(Set(found), [epsilon], "\(name)")
    }

    func testEveryNetworkDeclaresItsOfficialEpsilon() throws {
        let adm = ADMConfiguration(imageSize: 16, modelChannels: 32, outChannels: 6, numResBlocks: 1, attentionResolutions: [2],
                                   channelMult: [1, 2], numHeadChannels: 32, useScaleShiftNorm: true, resblockUpdown: true)
        // 2 levels × 1 block in, 3 up blocks per level, the middle (2 blocks + attention), attention, out: > 10.
        check(try ADMUNet(adm, parameters: .declaring()), expect: 1e-5, atLeast: 10, "ADM UNet")
        let ddpm = DDPMConfiguration(resolution: 16, ch: 32, chMult: [1, 2], numResBlocks: 1, attnResolutions: [8])
        check(try DDPMUNet(ddpm, parameters: .declaring()), expect: 1e-6, atLeast: 10, "DDPM UNet")
        let vq = AutoencoderConfiguration(ch: 32, chMult: [1, 2], numResBlocks: [1, 1], attnResolutions: [8], resolution: 16,
                                          zChannels: 3, nEmbed: 16, embedDim: 3)
        check(try VQAutoencoder(vq, parameters: .declaring()), expect: 1e-6, atLeast: 10, "VQ autoencoder")
        let resshift = ResShiftUNetConfiguration(imageSize: 16, inChannels: 6, modelChannels: 32, outChannels: 3, numResBlocks: [1, 1],
                                                 attentionResolutions: [2], channelMult: [1, 2], swinEmbedDim: 32, windowSize: 4, lqSize: 16)
        check(try ResShiftUNet(resshift, parameters: .declaring()), expect: 1e-5, atLeast: 8, "ResShift UNet (with Swin blocks)")
    }
}
