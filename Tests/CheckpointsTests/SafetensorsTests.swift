import Engine
import Foundation
import XCTest
@testable import Checkpoints

/// Our shipping format: written atomically, read back bit-exactly (F32) or within half precision (F16).
final class SafetensorsTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("checkpoints-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func testWriteThenReadRoundTripsFloat32AndFloat16() throws {
        let a = try Tensor(shape: [2, 3, 5], values: (0..<30).map { Float($0) * 0.37 - 4 })
        let b = try Tensor(shape: [7], values: (0..<7).map { Float($0) / 3 })
        for half in [false, true] {
            let path = folder.appendingPathComponent("w\(half).safetensors").path
            try SafetensorsWriter.write([("layer.b", b), ("layer.a", a)], to: path, half: half, metadata: ["k": "v \"quoted\""])
            let checkpoint = try Checkpoint(path: path)
            XCTAssertEqual(checkpoint.metadata["k"], "v \"quoted\"")
            let state = try checkpoint.stateDict()
            XCTAssertEqual(state.names, ["layer.a", "layer.b"])
            let readA = try XCTUnwrap(state["layer.a"])
            XCTAssertEqual(readA.elementType, half ? .float16 : .float32)
            XCTAssertEqual(readA.shape, [2, 3, 5])
            let expected = half ? a.values.map { Float(Float16($0)) } : a.values
            XCTAssertEqual(try readA.floatTensor().values, expected)
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [])
    }

    func testExistingOutputIsKeptWithoutOverwrite() throws {
        let path = folder.appendingPathComponent("keep.safetensors").path
        try Data("precious".utf8).write(to: URL(fileURLWithPath: path))
        let t = try Tensor(shape: [1], values: [1])
        XCTAssertThrowsError(try SafetensorsWriter.write([("t", t)], to: path)) { XCTAssertTrue("\($0)".contains("--overwrite")) }
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "precious")
        try SafetensorsWriter.write([("t", t)], to: path, overwrite: true)
        XCTAssertEqual(try Checkpoint(path: path).tensorCount, 1)
    }

    func testConvertingATorchFileKeepsIntegersAndConvertsFloats() throws {
        let source = try Checkpoint(path: FixtureFiles.url("good/zip_dtypes.pt").path)
        let state = try source.stateDict()
        let path = folder.appendingPathComponent("converted.safetensors").path
        try SafetensorsWriter.write(state.tensors, to: path, half: true)
        let converted = try Checkpoint(path: path).stateDict()
        XCTAssertEqual(Set(converted.names), Set(state.names))
        for (name, original) in state.tensors {
            let copy = try XCTUnwrap(converted[name])
            XCTAssertEqual(copy.shape, original.shape, name)
            XCTAssertEqual(copy.elementType, original.elementType.isFloatingPoint ? .float16 : original.elementType, name)
            let want = try original.floatValues()
            let got = try copy.floatValues()
            for (g, w) in zip(got, want) where w.isFinite && abs(w) < 60000 {
                XCTAssertEqual(g, original.elementType.isFloatingPoint ? Float(Float16(w)) : w, name)
            }
        }
    }
}
