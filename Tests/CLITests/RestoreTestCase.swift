import Foundation
import ImageIO
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

    /// The synthetic photos the suites write (the goldens depend on their exact pixels): a ramp (x·16 + y·8 + c·60
    /// mod 256) or a smooth wave (0.5 + 0.4 sin((3x + 2y + 5c) / 7)).
    enum Pattern { case ramp, wave }

    /// Writes a `width`×`height` PNG of `pattern` into the test folder and returns its path.
    func photo(_ name: String, _ width: Int, _ height: Int, channels: Int = 3, pattern: Pattern) throws -> String {
        var pixels: [Float] = []
        for y in 0..<height { for x in 0..<width { for c in 0..<channels {
            switch pattern {
            case .ramp: pixels.append(Float((x * 16 + y * 8 + c * 60) % 256) / 255)
            case .wave: pixels.append(0.5 + 0.4 * sin(Float(x * 3 + y * 2 + c * 5) / 7))
            }
        } } }
        try ImageWriter.write(Image(width: width, height: height, channels: channels, pixels: pixels), to: path(name))
        return path(name)
    }

    /// The first `--json` report line of a run.
    func report(_ r: Result) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data((r.stdout.split(separator: "\n").first ?? "").utf8)) as? [String: Any], r.stdout + r.stderr)
    }
}
