import Foundation
import ImageIO
import XCTest

/// `restore resshift` as a user runs it, on the bundled model (Models/resshift-x4-own.safetensors).
final class ResShiftCLITests: RestoreTestCase {
    private func photo(_ name: String, _ width: Int, _ height: Int, channels: Int = 3) throws -> String {
        var pixels: [Float] = []
        for y in 0..<height { for x in 0..<width { for c in 0..<channels { pixels.append(0.5 + 0.4 * sin(Float(x * 3 + y * 2 + c * 5) / 7)) } } }
        let p = path(name)
        try ImageWriter.write(Image(width: width, height: height, channels: channels, pixels: pixels), to: p)
        return p
    }

    private func report(_ r: Result) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
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
        let r = try restore(["resshift", "--simulate", "-i", clean, "-o", path("sr.png"), "--save-observation", path("lr.png"), "--json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rep = try report(r)
        for key in ["psnr_db", "ssim", "bicubic_psnr_db", "bicubic_ssim"] { XCTAssertNotNil(rep[key] as? Double, key) }
        XCTAssertGreaterThan(rep["psnr_db"] as? Double ?? 0, 15)
        let lr = try ImageReader.read(path: path("lr.png")), sr = try ImageReader.read(path: path("sr.png"))
        XCTAssertEqual([lr.width, lr.height, sr.width, sr.height], [16, 12, 64, 48])
        let odd = try restore(["resshift", "--simulate", "-i", try photo("odd.png", 30, 30), "-o", path("x.png")])
        XCTAssertEqual(odd.status, 1, odd.stderr)
        XCTAssertTrue(odd.stderr.contains("multiples of 4"), odd.stderr)
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
            (["--model", try photo("not-a-model.pth", 4, 4)], "not-a-model.pth"),
        ] {
            r = try restore(["resshift", "-i", lr, "-o", out] + arguments)
            XCTAssertEqual(r.status, 1, "\(arguments): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.hasPrefix("restore: error: ") && r.stderr.contains(mentions), r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
    }
}
