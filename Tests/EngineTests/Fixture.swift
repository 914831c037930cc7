import Foundation
import XCTest
@testable import Engine

/// A golden fixture written by Tools/reference/make_engine_fixtures.py: a safetensors file of Float32
/// tensors (activations already in NHWC, weights in PyTorch's layout) plus string parameters in its
/// `__metadata__`. This small reader serves the tests only; checkpoints have their own loader.
struct Fixture {
    let tensors: [String: Tensor]
    let metadata: [String: String]

    init(_ name: String) throws {
        guard let url = Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: "safetensors") else {
            throw FixtureError("missing fixture \(name).safetensors: run Tools/reference/make_engine_fixtures.py")
        }
        let bytes = try Data(contentsOf: url)
        guard bytes.count >= 8 else { throw FixtureError("\(name): truncated") }
        let headerLength = bytes.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        guard 8 + headerLength <= bytes.count,
              let header = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + headerLength))) as? [String: Any]
        else { throw FixtureError("\(name): bad header") }
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        for (key, value) in header {
            if key == "__metadata__" {
                metadata = value as? [String: String] ?? [:]
                continue
            }
            guard let entry = value as? [String: Any], entry["dtype"] as? String == "F32",
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int]
            else { throw FixtureError("\(name): tensor \(key) is not F32") }
            let start = 8 + headerLength + offsets[0], end = 8 + headerLength + offsets[1]
            let tensor = try Tensor(uninitializedShape: shape.isEmpty ? [1] : shape)
            guard end - start == tensor.count * 4, end <= bytes.count else { throw FixtureError("\(name): \(key) size") }
            _ = bytes.withUnsafeBytes { raw in
                memcpy(tensor.data, raw.baseAddress! + start, end - start)
            }
            tensors[key] = tensor
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    subscript(_ key: String) -> Tensor {
        get throws {
            guard let t = tensors[key] else { throw FixtureError("fixture has no tensor \(key)") }
            return t
        }
    }

    func int(_ key: String) throws -> Int {
        guard let s = metadata[key], let v = Int(s) else { throw FixtureError("fixture has no integer \(key)") }
        return v
    }

    func float(_ key: String) throws -> Float {
        guard let s = metadata[key], let v = Float(s) else { throw FixtureError("fixture has no number \(key)") }
        return v
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Asserts max|actual − expected| ≤ tolerance · max|expected|, and that the reference is not trivially zero.
func assertClose(_ actual: Tensor, _ expected: Tensor, relativeTolerance: Float,
                 _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.shape, expected.shape, "shape \(message)", file: file, line: line)
    guard actual.shape == expected.shape else { return }
    var maxDiff: Float = 0, maxRef: Float = 0
    for i in 0..<expected.count {
        maxDiff = max(maxDiff, abs(actual.data[i] - expected.data[i]))
        maxRef = max(maxRef, abs(expected.data[i]))
        if actual.data[i].isNaN { maxDiff = .infinity }
    }
    XCTAssertGreaterThan(maxRef, 0, "reference is all zero: the test could not fail \(message)", file: file, line: line)
    XCTAssertLessThanOrEqual(maxDiff, relativeTolerance * maxRef,
                             "max|Δ| = \(maxDiff), max|ref| = \(maxRef), ratio \(maxDiff / max(maxRef, 1e-30)) \(message)",
                             file: file, line: line)
}
