import Foundation
import XCTest

/// The base of the command-line suites: a fresh temporary folder per test, and the built `restore` binary
/// run as a user runs it (next to the test bundle in the build folder).
class RestoreTestCase: XCTestCase {
    private(set) var folder: URL!

    struct Result { let status: Int32; let stdout: String; let stderr: String }

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("restore-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    /// The build folder holding `restore` and the test bundles.
    var buildFolder: URL {
        get throws { URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")).deletingLastPathComponent() }
    }

    func restore(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = try buildFolder.appendingPathComponent("restore")
        process.arguments = arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile(), stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }

    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
}
