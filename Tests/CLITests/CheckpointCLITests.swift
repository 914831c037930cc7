import Checkpoints
import Engine
import Foundation
import XCTest

/// `restore inspect` and `restore convert` as a user runs them.
final class CheckpointCLITests: RestoreTestCase {
    private func makeWeights(_ name: String) throws -> String {
        let p = path(name)
        try SafetensorsWriter.write([("conv.weight", try Tensor(shape: [4, 3, 3, 3], repeating: 0.5)),
                                     ("conv.bias", try Tensor(shape: [4], values: [1, 2, 3, 4]))], to: p)
        return p
    }

    func testInspectListsTensorsAndParameterCount() throws {
        let r = try restore(["inspect", try makeWeights("w.safetensors")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("2 tensors, 112 parameters"), r.stdout)
        XCTAssertTrue(r.stdout.contains("conv.weight") && r.stdout.contains("[4, 3, 3, 3]"), r.stdout)
    }

    func testInspectRefusesAFileThatWouldRunCodeAndRunsNothing() throws {
        let marker = path("pwned")
        // The legacy format's magic, then a pickle calling os.system("touch <marker>").
        let magic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E]
        let command = Array("touch \(marker)".utf8)
        let payload: [UInt8] = [0x80, 0x02] + Array("cos\nsystem\n".utf8) + [0x58] + withUnsafeBytes(of: UInt32(command.count).littleEndian) { Array($0) }
            + command + [0x85, 0x52, 0x2E]
        let file = path("evil.pt")
        try Data(magic + [0x80, 0x02, 0x4D, 0xE9, 0x03, 0x2E] + [0x80, 0x02, 0x7D, 0x2E] + payload).write(to: URL(fileURLWithPath: file))
        let r = try restore(["inspect", file])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("refusing the file") && r.stderr.contains("os.system"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker))
    }

    func testConvertWritesHalfPrecisionAndKeepsExistingOutputs() throws {
        let input = try makeWeights("in.safetensors")
        let output = path("out.safetensors")
        var r = try restore(["convert", input, output, "--half"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let converted = try Checkpoint(path: output).stateDict()
        XCTAssertEqual(converted["conv.bias"]?.elementType, .float16)
        XCTAssertEqual(try converted["conv.bias"]?.floatTensor().values, [1, 2, 3, 4])
        r = try restore(["convert", input, output])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("--overwrite"), r.stderr)
        r = try restore(["convert", input, input, "--overwrite"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("overwrite the input"), r.stderr)
        XCTAssertEqual(try Checkpoint(path: input).stateDict()["conv.bias"]?.elementType, .float32)
    }
}
