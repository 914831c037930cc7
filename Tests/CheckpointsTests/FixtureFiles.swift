import Foundation
import XCTest
@testable import Checkpoints

/// Paths of the fixtures written by Tools/reference/make_checkpoint_fixtures.py.
enum FixtureFiles {
    static var root: URL {
        get throws {
            guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
                throw FixtureMissing("fixtures missing: run Tools/reference/make_checkpoint_fixtures.py")
            }
            return url
        }
    }

    static func url(_ relative: String) throws -> URL { try root.appendingPathComponent(relative) }

    /// The files of a fixture folder, sorted, hidden files excluded.
    static func files(in folder: String) throws -> [URL] {
        let directory = try root.appendingPathComponent(folder)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return [] }
        return names.filter { !$0.hasPrefix(".") }.sorted().map { directory.appendingPathComponent($0) }
    }
}

/// The expected contents of a good fixture: each tensor as Float32, with its original dtype and shape.
struct ExpectedTensors {
    let values: [String: [Float]]
    let dtypes: [String: String]
    let shapes: [String: [Int]]

    init(_ url: URL) throws {
        let checkpoint = try Checkpoint(path: url.path)
        var values: [String: [Float]] = [:]
        for (name, tensor) in checkpoint.allTensors() {
            values[name] = try tensor.floatValues()
        }
        func decode<T: Decodable>(_ key: String, as: T.Type) throws -> T {
            guard let text = checkpoint.metadata[key] else { throw FixtureMissing("\(url.lastPathComponent) lacks metadata \(key)") }
            return try JSONDecoder().decode(T.self, from: Data(text.utf8))
        }
        self.values = values
        dtypes = try decode("dtypes", as: [String: String].self)
        shapes = try decode("shapes", as: [String: [Int]].self)
    }
}

/// A safetensors file built in memory (for tests that need a precise malformation).
func safetensorsBytes(header: String, data: [UInt8] = []) -> [UInt8] {
    let json = Array(header.utf8)
    var length = UInt64(json.count).littleEndian
    return withUnsafeBytes(of: &length) { Array($0) } + json + data
}

extension StoredTensor {
    /// The elements as Float32 in row-major order (empty tensors give an empty array).
    func floatValues() throws -> [Float] {
        elementCount == 0 ? [] : try floatTensor(shape: [elementCount]).values
    }
}
