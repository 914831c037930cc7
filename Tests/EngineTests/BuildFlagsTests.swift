import Foundation
import XCTest
@testable import Engine

/// Guards the speed flags: `make test` builds with `-target-cpu haswell`, so the Engine's Swift kernels
/// must contain 256-bit FMA instructions. Without the flag Swift emits baseline SSE2 and every
/// `addingProduct` becomes a libm call (≈170× slower GEMM, perf-feasibility.md §3.1).
final class BuildFlagsTests: XCTestCase {
    func testReleaseBuildHasAVX2FMACodegen() throws {
        guard ProcessInfo.processInfo.environment["RESTORE_EXPECT_SPEED_FLAGS"] == "1" else {
            throw XCTSkip("set by `make test` only; a plain `swift test` builds without the speed flags")
        }
        let counts = try fmaInstructionsInEngineSymbols()
        XCTAssertGreaterThan(counts.functions, 0, "no Engine symbols found in the test binary")
        XCTAssertGreaterThanOrEqual(counts.ymmFMA, 20,
            "the Engine was compiled without AVX2/FMA code generation (\(counts.ymmFMA) ymm FMAs in \(counts.functions) functions): build with the Makefile's SPEED_FLAGS")
    }

    func testCPUReportsTheInstructionSetsThisBuildNeeds() {
        // The release build is compiled for AVX2 + FMA; the CLI refuses to start on a CPU without them.
        XCTAssertTrue(CPU.hasAVX2FMA)
        XCTAssertFalse(CPU.modelDescription.isEmpty)
    }

    /// Disassembles this test executable and counts `vfmadd…` instructions on %ymm registers inside
    /// functions whose mangled name belongs to the Engine module.
    private func fmaInstructionsInEngineSymbols() throws -> (functions: Int, ymmFMA: Int) {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/objdump")
        process.arguments = ["-d", "--no-show-raw-insn", executable]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        var functions = 0, fma = 0, inEngine = false
        var pending = Data()
        func consume(_ line: Substring) {
            if line.hasSuffix(">:") {
                inEngine = line.contains("<$s6Engine")
                if inEngine { functions += 1 }
            } else if inEngine, line.contains("vfmadd"), line.contains("%ymm") {
                fma += 1
            }
        }
        while true {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            pending.append(chunk)
            if let last = pending.lastIndex(of: UInt8(ascii: "\n")) {
                let text = String(decoding: pending[..<last], as: UTF8.self)
                for line in text.split(separator: "\n") { consume(line) }
                pending = Data(pending[(last + 1)...])
            }
        }
        process.waitUntilExit()
        return (functions, fma)
    }
}
