import Checkpoints
import Engine
import Foundation
import ImageIO
import Networks
import XCTest

/// `restore resshift` as a user runs it, on the bundled model (Models/resshift-x4-own.safetensors).
final class ResShiftCLITests: RestoreTestCase {
    private func photo(_ name: String, _ width: Int, _ height: Int, channels: Int = 3) throws -> String {
        try photo(name, width, height, channels: channels, pattern: .wave)
    }

    func testDefaultModelUpscalesByFourDeterministicallyWithAReport() throws {
        let lr = try photo("lr.png", 24, 20)
        var outputs: [[Float]] = []
        for name in ["a.png", "b.png"] {
            let r = try restore(["resshift", "-i", lr, "-o", path(name), "--json", "--quiet", "--seed", "3"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let image = try ImageReader.read(path: path(name))
            XCTAssertEqual([image.width, image.height], [96, 80])
            let rep = try report(r)
            XCTAssertEqual(rep["method"] as? String, "resshift")
            XCTAssertEqual(rep["steps"] as? Int, 4)
            XCTAssertEqual(rep["model"] as? String, "resshift-x4-own.safetensors")
            XCTAssertEqual(rep["patches"] as? Int, 1)
            outputs.append(image.pixels)
        }
        XCTAssertEqual(outputs[0], outputs[1], "same seed, same image")
        // The result stays close to the input's bicubic upsampling (a ×4 SR model, not a generator).
        let input = try ImageReader.read(path: lr)
        let output = try ImageReader.read(path: path("a.png"))
        var error = 0.0
        for y in 0..<80 { for x in 0..<96 { for c in 0..<3 {
            error += abs(Double(output.pixels[(y * 96 + x) * 3 + c] - input.pixels[((y / 4) * 24 + x / 4) * 3 + c]))
        } } }
        XCTAssertLessThan(error / Double(96 * 80 * 3), 0.1)
    }

    func testLargeInputsAreChoppedAndBlended() throws {
        let lr = try photo("big.png", 40, 40)
        for blend in ["average", "feathered"] {
            let r = try restore(["resshift", "-i", lr, "-o", path("\(blend).png"), "--chop-size", "32", "--chop-stride", "16",
                                 "--blend", blend, "--json", "--quiet"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let rep = try report(r)
            XCTAssertEqual(rep["patches"] as? Int, 4)  // starts 0 and 8 along each axis
            XCTAssertEqual(rep["blend"] as? String, blend)
            let image = try ImageReader.read(path: path("\(blend).png"))
            XCTAssertEqual([image.width, image.height], [160, 160])
        }
    }

    func testSimulateShrinksTheCleanImageAndReportsQuality() throws {
        let clean = try photo("clean.png", 64, 48)
        let r = try restore(["resshift", "--simulate", "-i", clean, "-o", path("sr.png"), "--save-observation", path("lr.png"), "--json", "--quiet",
                             "--average", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rep = try report(r)
        XCTAssertEqual(rep["averaged"] as? Int, 2)
        for key in ["psnr_db", "ssim", "bicubic_psnr_db", "bicubic_ssim"] { XCTAssertNotNil(rep[key] as? Double, key) }
        XCTAssertGreaterThan(rep["psnr_db"] as? Double ?? 0, 15)
        let lr = try ImageReader.read(path: path("lr.png")), sr = try ImageReader.read(path: path("sr.png"))
        XCTAssertEqual([lr.width, lr.height, sr.width, sr.height], [16, 12, 64, 48])
        let odd = try restore(["resshift", "--simulate", "-i", try photo("odd.png", 30, 30), "-o", path("x.png")])
        XCTAssertEqual(odd.status, 1, odd.stderr)
        XCTAssertTrue(odd.stderr.contains("multiples of 4"), odd.stderr)
    }

    /// A tiny random inpainting model in our own export format (pixel-unshuffle first stage, ×1, mask channel,
    /// feature extractor): the mask plumbing end to end. A random network restores nothing, but the known
    /// pixels must come back exactly, the holes must change, and gray mask levels blend.
    func testInpaintingKeepsKnownPixelsAndFillsTheHoles() throws {
        let configuration = ResShiftUNetConfiguration(imageSize: 16, inChannels: 48, modelChannels: 32, outChannels: 48, numResBlocks: [1],
                                                      attentionResolutions: [], channelMult: [1], swinEmbedDim: 32, windowSize: 8,
                                                      condLQ: true, condMask: true, lqSize: 64)
        let declared = ParameterSource.declaring()
        _ = try ResShiftUNet(configuration, parameters: declared)
        let random = ParameterSource.random(seed: 9, scale: 0.3)
        let tensors = try declared.declarations.map { ($0.name, try random.tensor($0.name, $0.shape)) }
        let config = String(decoding: try JSONEncoder().encode(configuration), as: UTF8.self)
        let model = path("inpaint.safetensors")
        try SafetensorsWriter.write(tensors, to: model, metadata: [
            "family": "resshift-swin", "config": config, "first_stage": "pixel-unshuffle-4",
            "diffusion": #"{"steps": 4, "kappa": 2.0, "power": 0.3, "min_noise_level": 0.2, "etas_end": 0.99, "predict_type": "residual", "latent_flag": false, "clip_x0": true, "sf": 1}"#])
        let image = try photo("photo.png", 64, 48)
        var mask = [Float](repeating: 0, count: 64 * 48)
        for y in 16..<32 { for x in 20..<44 { mask[y * 64 + x] = 1 } }
        mask[0] = 0.5
        try ImageWriter.write(Image(width: 64, height: 48, channels: 1, pixels: mask), to: path("mask.png"))
        let r = try restore(["resshift", "--task", "inpaint", "-i", image, "--mask", path("mask.png"), "-o", path("filled.png"),
                             "--model", model, "--json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try report(r)["scale"] as? Int, 1)
        let input = try ImageReader.read(path: image), output = try ImageReader.read(path: path("filled.png"))
        XCTAssertEqual([output.width, output.height], [64, 48])
        var changed = 0
        for p in 0..<(64 * 48) where p != 0 {
            for c in 0..<3 {
                let a = input.pixels[p * 3 + c], b = output.pixels[p * 3 + c]
                if mask[p] == 0 { XCTAssertEqual(a, b, accuracy: 1 / 255, "known pixel \(p)") } else if abs(a - b) > 2 / 255 { changed += 1 }
            }
        }
        XCTAssertGreaterThan(changed, 16 * 24 * 3 / 2, "the holes are filled by the network")
        let wrong = try restore(["resshift", "-i", image, "-o", path("x.png"), "--model", model])
        XCTAssertEqual(wrong.status, 1, wrong.stderr)
        XCTAssertTrue(wrong.stderr.contains("inpainting"), wrong.stderr)
    }

    func testBadUsageAndBadFilesFailWithOneLine() throws {
        let lr = try photo("in.png", 16, 16)
        let out = path("out.png")
        var r = try restore(["resshift", "-i", lr, "-o", out, "--task", "inpaint"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("--mask"), r.stderr)
        r = try restore(["resshift", "-i", lr, "-o", out, "--chop-size", "64", "--chop-stride", "65"])
        XCTAssertEqual(r.status, 2, r.stderr)
        for (arguments, mentions) in [
            (["--task", "faceir"], "autoencoder"),
            (["--model", path("missing.pth")], "missing.pth"),
            (["--model", try { () throws -> String in
                try Data("not a checkpoint".utf8).write(to: URL(fileURLWithPath: path("not-a-model.pth"))); return path("not-a-model.pth") }()], "not-a-model.pth"),
        ] {
            r = try restore(["resshift", "-i", lr, "-o", out] + arguments)
            XCTAssertEqual(r.status, 1, "\(arguments): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.hasPrefix("restore: error: ") && r.stderr.contains(mentions), r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
    }
}
