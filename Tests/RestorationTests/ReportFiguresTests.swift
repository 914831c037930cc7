import Engine
import Foundation
import Operators
import XCTest
@testable import Restoration

/// The figures every report carries are checked for value, not only presence: PSNR and SSIM against
/// scikit-image (Tools/reference/make_quality_fixtures.py), the model hash against `sha256sum`, and the tiled
/// ‖A x − y‖ / ‖(I − A A†) y‖ against the same sums over the whole image.
final class ReportFiguresTests: XCTestCase {
    private struct Reference: Decodable { let psnr: Double; let ssim: Double; let ssim_sample_covariance: Double }

    private func qualityFixture() throws -> (tensors: [String: Tensor], values: [String: Reference]) {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil)).appendingPathComponent("quality.safetensors")
        let data = try Data(contentsOf: url)
        // safetensors: u64 header length, JSON header, then little-endian float32 data.
        let headerLength = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try XCTUnwrap(try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as? [String: Any])
        var tensors: [String: Tensor] = [:]
        for (name, entry) in header where name != "__metadata__" {
            let info = try XCTUnwrap(entry as? [String: Any])
            let shape = try XCTUnwrap(info["shape"] as? [Int]), offsets = try XCTUnwrap(info["data_offsets"] as? [Int])
            let bytes = data.subdata(in: (8 + headerLength + offsets[0])..<(8 + headerLength + offsets[1]))
            let values = bytes.withUnsafeBytes { raw in (0..<(bytes.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
            // Stored on [0, 1]; the metrics take the networks' [-1, 1].
            tensors[name] = try Tensor(shape: shape, values: values.map { 2 * $0 - 1 })
        }
        let metadata = try XCTUnwrap(header["__metadata__"] as? [String: String])
        let values = try JSONDecoder().decode([String: Reference].self, from: Data(try XCTUnwrap(metadata["values"]).utf8))
        return (tensors, values)
    }

    func testPSNRAndSSIMMatchScikitImage() throws {
        let (tensors, values) = try qualityFixture()
        XCTAssertEqual(values.count, 3)
        for (name, reference) in values.sorted(by: { $0.key < $1.key }) {
            let a = try XCTUnwrap(tensors["\(name).a"]), b = try XCTUnwrap(tensors["\(name).b"])
            XCTAssertEqual(Quality.psnr(a, b), reference.psnr, accuracy: 1e-4, "\(name) PSNR")
            let ssim = Quality.ssim(a, b)
            XCTAssertEqual(ssim, reference.ssim, accuracy: 2e-6, "\(name) SSIM")
            // The bar is tighter than the gap to scikit-image's default (sample covariance), so the convention is pinned.
            XCTAssertGreaterThan(abs(reference.ssim - reference.ssim_sample_covariance), 4e-6, "\(name): the two conventions must be told apart")
        }
        let a = try XCTUnwrap(tensors["rgb_noise.a"])
        XCTAssertEqual(Quality.psnr(a, a), 99)
        XCTAssertEqual(Quality.ssim(a, a), 1, accuracy: 1e-12)
        XCTAssertTrue(Quality.psnr(a, try XCTUnwrap(tensors["gray_random.a"])).isNaN, "different shapes")
    }

    func testSHA256MatchesSha256sum() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sha-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var generator = SplitMix64(seed: 7)
        // Empty, one short block, the 55/56/64-byte padding edges, and more than one 4 MiB read chunk.
        for size in [0, 3, 55, 56, 64, 119, (4 << 20) + 77] {
            let bytes = (0..<size).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let file = folder.appendingPathComponent("f\(size).bin")
            try Data(bytes).write(to: file)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
            process.arguments = [file.path]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            XCTAssertEqual(try SHA256.hex(ofFile: file.path), String(output.prefix(64)), "\(size) bytes")
            XCTAssertEqual(SHA256.hex(of: bytes), String(output.prefix(64)), "\(size) bytes in memory")
        }
        let abc = folder.appendingPathComponent("abc")
        try Data("abc".utf8).write(to: abc)
        XCTAssertEqual(try SHA256.hex(ofFile: abc.path), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")  // FIPS 180-2 B.1
        XCTAssertThrowsError(try SHA256.hex(ofFile: folder.appendingPathComponent("missing").path))
    }

    /// Whole-image sums, the definition the tiled computation must reproduce.
    private func wholeImage(_ x: Tensor, _ y: Tensor, _ a: any DegradationOperator) throws -> (Double, Double) {
        let r = try subtract(try a.apply(x), y), q = try subtract(try a.apply(try a.pseudoInverse(y)), y)
        func rms(_ t: Tensor) -> Double { (t.values.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(t.count)).squareRoot() / 2 }
        return (rms(r), rms(q))
    }

    func testTiledConsistencyEqualsTheWholeImageSums() throws {
        var generator = SplitMix64(seed: 3)
        func gaussian(_ shape: [Int]) throws -> Tensor {
            try Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Float(generator.nextGaussianPair().0) })
        }
        // 200 × 168: more than one 128² tile each way, and tiles cut short at the right and bottom edges.
        let x = try gaussian([1, 200, 168, 3])
        // The irreducible part of halo operators (blur, bicubic) comes from each tile's own A†, an estimate of the
        // whole image's (1.6 % off for this blur); operators without a halo are exact.
        for (spec, irreducibleBar) in [("blur:gauss:5:1.5", 0.03), ("bicubic:2", 0.03), ("pool:4", 1e-5), ("gray", 1e-5)] {
            let a = try OperatorSpec.parse(spec, loadMask: { _ in throw RestorationError("no mask") })
            // y = A x' + noise for another x': neither term is zero.
            let y = try axpby(1, try a.apply(try gaussian(x.shape)), 0.1, try gaussian(try a.observationShape(for: x.shape)))
            let tiled = try Consistency.measure(x, y, a)
            let (residual, irreducible) = try wholeImage(x, y, a)
            XCTAssertGreaterThan(residual, 0.05, spec)
            XCTAssertEqual(tiled.residual, residual, accuracy: 1e-5 * residual, "\(spec): ‖A x − y‖")
            XCTAssertEqual(tiled.irreducible, irreducible, accuracy: irreducibleBar * max(irreducible, 1e-3), "\(spec): ‖(I − A A†) y‖")
        }
    }
}
