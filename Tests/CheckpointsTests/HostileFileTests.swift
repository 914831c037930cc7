import Foundation
import XCTest
@testable import Checkpoints

/// Hostile and broken files: each is refused with one line and no crash, and nothing in them ever runs.
final class HostileFileTests: XCTestCase {
    /// The payload of the code-execution fixtures: `touch` of this file, through os.system and friends.
    static let marker = "/tmp/diffusionrestore-pwned-marker"

    private struct Case: Decodable {
        let file: String
        let expect: String
        let error_contains: String?
        let why: String?
    }

    /// Reads the file the way `restore` does: container, then the state dict, then every tensor converted.
    private func load(_ path: String) throws {
        let checkpoint = try Checkpoint(path: path)
        let state = try checkpoint.stateDict()
        for (_, tensor) in state.tensors where tensor.elementCount < 1 << 24 { _ = try tensor.floatTensor() }
    }

    func testEveryHostileFileIsRefusedWithOneLineAndNothingRuns() throws {
        // The marker's path is baked into the fixtures' payloads, so it is fixed; it is not removed (another run may
        // be using it) but compared before and after: a payload that ran would create or touch it.
        func markerState() -> String {
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: Self.marker) else { return "absent" }
            return "\(attributes[.systemFileNumber] ?? "?") \(attributes[.modificationDate] ?? "?")"
        }
        let markerBefore = markerState()
        let manifest = try JSONDecoder().decode([Case].self, from: Data(contentsOf: FixtureFiles.url("hostile/manifest.json")))
        XCTAssertGreaterThanOrEqual(manifest.count, 40)
        for item in manifest {
            let path = try FixtureFiles.url("hostile/" + item.file).path
            XCTAssertTrue(FileManager.default.fileExists(atPath: path), "missing \(item.file)")
            do {
                try load(path)
                XCTFail("\(item.file) loaded, but should be refused: \(item.why ?? "")")
            } catch {
                let message = "\(error)"
                XCTAssertFalse(message.contains("\n"), "\(item.file): more than one line: \(message)")
                XCTAssertFalse(message.isEmpty)
                if let expected = item.error_contains {
                    XCTAssertTrue(message.lowercased().contains(expected.lowercased()), "\(item.file): \(message) should mention \(expected)")
                }
            }
        }
        XCTAssertEqual(markerState(), markerBefore, "a payload ran: \(Self.marker) was created or touched")
    }

    func testForbiddenGlobalsAreRefusedWhateverTheOpcode() throws {
        // GLOBAL 'os system' + the argument + REDUCE, as protocol 2 bytes, built here so the test stands alone.
        let reduce: [UInt8] = [0x80, 0x02] + Array("cos\nsystem\n".utf8) + [0x58, 4, 0, 0, 0] + Array("true".utf8) + [0x85, 0x52, 0x2E]
        let inst: [UInt8] = [0x28, 0x58, 4, 0, 0, 0] + Array("true".utf8) + [0x69] + Array("subprocess\ncall\n".utf8) + [0x2E]
        let stackGlobal: [UInt8] = [0x80, 0x04, 0x8C, 8] + Array("builtins".utf8) + [0x8C, 4] + Array("eval".utf8) + [0x93, 0x29, 0x52, 0x2E]
        for bytes in [reduce, inst, stackGlobal] {
            XCTAssertThrowsError(try bytes.withUnsafeBytes { try PickleMachine($0).load() }) { error in
                guard case CheckpointError.forbiddenGlobal = error else { return XCTFail("\(error)") }
                XCTAssertTrue("\(error)".contains("nothing was executed"))
            }
        }
    }

    func testUnknownClassesBecomeInertPlaceholders() throws {
        // mylib.Config() then BUILD with a dict: loads, the class is named, nothing is called.
        let bytes: [UInt8] = [0x80, 0x02] + Array("cmylib\nConfig\n".utf8) + [0x29, 0x81, 0x7D, 0x58, 1, 0, 0, 0, 0x61, 0x4B, 7, 0x73, 0x62, 0x2E]
        let result = try bytes.withUnsafeBytes { try PickleMachine($0).load() }
        XCTAssertEqual(result.unknownGlobals, ["mylib.Config"])
        guard case .instance(let instance)? = result.heap.object(result.root) else { return XCTFail("not an instance") }
        XCTAssertNotNil(instance.state)
    }

    func testDeepNestingIsRefusedNotACrash() throws {
        let bytes: [UInt8] = [0x80, 0x02] + [UInt8](repeating: 0x28, count: 200_000) + [UInt8](repeating: 0x74, count: 200_000) + [0x2E]
        XCTAssertThrowsError(try bytes.withUnsafeBytes { try PickleMachine($0).load() })
        let lists: [UInt8] = [0x80, 0x02] + Array([[UInt8]](repeating: [0x5D, 0x71, 0], count: 100_000).joined()) + [UInt8](repeating: 0x61, count: 99_999) + [0x2E]
        XCTAssertThrowsError(try lists.withUnsafeBytes { try PickleMachine($0).load() }) { error in
            XCTAssertTrue("\(error)".contains("nesting"), "\(error)")
        }
    }

    /// Nesting built top-down (each new list appended to the previous one, which is then dropped from the
    /// stack) escapes a bottom-up depth count; the state-dict search must still take linear time.
    /// CPU seconds of this thread: unlike wall-clock time, not inflated when the machine is shared (linear
    /// runs take well under 0.5 s; a quadratic one, 2·10¹⁰ steps, far more than the 10 s bars).
    static func threadCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    func testTopDownNestingStaysLinear() throws {
        let step: [UInt8] = [0x5D, 0x71, 0x00, 0x61, 0x30, 0x68, 0x00]  // ] BINPUT 0, APPEND, POP, BINGET 0
        let main: [UInt8] = [0x80, 0x02, 0x5D] + Array([[UInt8]](repeating: step, count: 200_000).joined()) + [0x2E]
        let file = TorchCheckpointReader.legacyMagic + [0x80, 0x02, 0x4D, 0xE9, 0x03, 0x2E] + [0x80, 0x02, 0x7D, 0x2E] + main + [0x80, 0x02, 0x5D, 0x2E]
        let start = Self.threadCPUSeconds()
        let checkpoint = try Checkpoint(file: MappedBytes(copying: file), path: "deep.pt")
        XCTAssertEqual(checkpoint.allTensors().count, 0)
        XCTAssertThrowsError(try checkpoint.stateDict())
        XCTAssertLessThan(Self.threadCPUSeconds() - start, 10, "hostile nesting must not be quadratic")
    }

    func testManyItemsOnAnUnknownObjectStayLinear() throws {
        // mylib.X() then 200 000 APPENDs of None: each must not copy the object's growing list.
        let bytes: [UInt8] = [0x80, 0x02] + Array("cmylib\nX\n".utf8) + [0x29, 0x81] + Array([[UInt8]](repeating: [0x4E, 0x61], count: 200_000).joined()) + [0x2E]
        let start = Self.threadCPUSeconds()
        _ = try bytes.withUnsafeBytes { try PickleMachine($0).load() }
        XCTAssertLessThan(Self.threadCPUSeconds() - start, 10, "appends must not copy the list")
    }

    func testControlCharactersInNamesCannotBreakTheOneLineError() {
        let error = CheckpointError.invalidZip(reason: "missing entry evil\nname\u{1b}[31m")
        XCTAssertFalse(error.description.contains("\n"))
        XCTAssertFalse(error.description.contains("\u{1b}"))
    }

    func testMalformedSafetensorsHeadersAreRefused() throws {
        let cases: [(String, [UInt8])] = [
            ("past the data section", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: [0, 0, 0, 0])),
            ("bytes", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8))),
            ("dtype", safetensorsBytes(header: #"{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])),
            ("overlaps", safetensorsBytes(header: #"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}"#, data: [0, 0, 0, 0])),
            ("shape", safetensorsBytes(header: #"{"a":{"dtype":"U8","shape":[-4],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])),
            ("header length", [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x7B, 0x7D]),
            ("shape", safetensorsBytes(header: #"{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#)),
        ]
        for (expected, bytes) in cases {
            XCTAssertThrowsError(try bytes.withUnsafeBytes { try Safetensors.parseHeader($0, fileSize: $0.count) }, expected) { error in
                XCTAssertTrue("\(error)".hasPrefix("invalid safetensors file"), "\(error)")
                XCTAssertTrue("\(error)".contains(expected), "\(error) should mention \(expected)")
            }
        }
    }

    func testMissingAndNonRegularFilesGiveClearErrors() {
        XCTAssertThrowsError(try Checkpoint(path: "/nonexistent/model.pt")) { XCTAssertTrue("\($0)".contains("cannot open the file"), "\($0)") }
        XCTAssertThrowsError(try Checkpoint(path: "/tmp")) { XCTAssertTrue("\($0)".contains("not a regular file"), "\($0)") }
    }

    /// The fuzzer's seed corpus and every crash it ever found go through the same entry point.
    func testFuzzCorpusAndRegressionsReplayWithoutCrashing() throws {
        let inputs = try FixtureFiles.files(in: "fuzz-seeds") + FixtureFiles.files(in: "fuzz-crashes")
        XCTAssertGreaterThanOrEqual(inputs.count, 10)
        for url in inputs {
            let data = try Data(contentsOf: url)
            _ = data.withUnsafeBytes { CheckpointFuzzing.consume($0) }
        }
    }
}
