import Foundation
import XCTest
@testable import Checkpoints

/// Real `torch.save` files (zip, legacy, Lightning, every dtype, views into shared storages) read by our
/// loader give exactly what PyTorch holds: same dtype, shape and values after conversion to Float32.
final class TorchFormatTests: XCTestCase {
    func testEveryGoodFixtureMatchesPyTorchExactly() throws {
        let files = try FixtureFiles.files(in: "good").filter { !$0.lastPathComponent.contains(".expected.") }
        XCTAssertGreaterThanOrEqual(files.count, 8, "expected the fixture set of make_checkpoint_fixtures.py")
        var compared = 0
        for file in files {
            let expectedURL = file.deletingLastPathComponent().appendingPathComponent(file.lastPathComponent + ".expected.safetensors")
            guard FileManager.default.fileExists(atPath: expectedURL.path) else { continue }
            let expected = try ExpectedTensors(expectedURL)
            let checkpoint = try Checkpoint(path: file.path)
            let actual = Dictionary(checkpoint.allTensors().map { ($0.path, $0.tensor) }, uniquingKeysWith: { a, _ in a })
            XCTAssertFalse(expected.values.isEmpty, file.lastPathComponent)
            for (path, values) in expected.values {
                guard let tensor = actual[path] else {
                    XCTFail("\(file.lastPathComponent): no tensor at \(path); have \(actual.keys.sorted().prefix(8))")
                    continue
                }
                XCTAssertEqual(tensor.elementType.rawValue, expected.dtypes[path], "\(file.lastPathComponent) \(path) dtype")
                XCTAssertEqual(tensor.shape, expected.shapes[path], "\(file.lastPathComponent) \(path) shape")
                let converted = try tensor.floatValues()
                XCTAssertEqual(converted.count, values.count, "\(file.lastPathComponent) \(path) count")
                XCTAssertTrue(zip(converted, values).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) },
                              "\(file.lastPathComponent) \(path): values differ from PyTorch's")
                compared += 1
            }
        }
        XCTAssertGreaterThan(compared, 40, "tensors compared against PyTorch")
    }

    func testZipAndLegacyFormatsAreDetected() throws {
        XCTAssertEqual(try Checkpoint(path: FixtureFiles.url("good/zip_dtypes.pt").path).format, .torchZip)
        XCTAssertEqual(try Checkpoint(path: FixtureFiles.url("good/legacy_dtypes.pt").path).format, .torchLegacy)
        XCTAssertEqual(try Checkpoint(path: FixtureFiles.url("good/weights.safetensors").path).format, .safetensors)
    }

    func testViewsShareOneStorageWithoutCopies() throws {
        for name in ["good/views.pt", "good/views_legacy.pt"] {
            let checkpoint = try Checkpoint(path: FixtureFiles.url(name).path)
            let tensors = checkpoint.allTensors()
            XCTAssertTrue(tensors.contains { !$0.tensor.layout.isContiguous }, "\(name) has a strided view")
            XCTAssertTrue(tensors.contains { $0.tensor.layout.storageOffset > 0 }, "\(name) has an offset view")
            let ranges = Set(tensors.map { $0.tensor.storageRange.lowerBound })
            XCTAssertLessThan(ranges.count, tensors.count, "\(name): views point into a shared storage")
        }
    }

    func testUnknownHarmlessClassLoadsWithOneWarning() throws {
        let checkpoint = try Checkpoint(path: FixtureFiles.url("good/unknown_class.pt").path)
        XCTAssertEqual(checkpoint.warnings.count, 1)
        XCTAssertTrue(checkpoint.warnings[0].contains("never called"), checkpoint.warnings[0])
        XCTAssertFalse(checkpoint.warnings[0].contains("\n"))
        XCTAssertGreaterThan(try checkpoint.stateDict().tensors.count, 0)
    }
}
