import ArgumentParser
import Foundation
import Engine
import ImageIO
import Restoration

/// Input/output flags shared by every image-producing subcommand (see the CLI conventions in the README).
struct ImageIOOptions: ParsableArguments {
    @Option(name: [.short, .long], help: "An image file (PNG or JPEG) or a folder of them.")
    var input: String

    @Option(name: [.short, .long], help: "The output file (single input) or folder. Never the input path.")
    var output: String

    @Flag(help: "Replace existing output files.")
    var overwrite = false

    @Option(help: "PNG bit depth of the output: 8 or 16 (default: the input's depth).")
    var bits: Int?

    @Option(help: "Output format: png or jpg (default: from the output file's extension).")
    var format: String?

    @Option(help: "JPEG quality, 1–100.")
    var quality: Int = 95

    @Option(help: "Refuse input images with more pixels than this (checked before decoding).")
    var maxPixels: Int = ImageReader.defaultMaxPixels

    @Flag(help: "Print one JSON report line per output on stdout.")
    var json = false

    @Flag(help: "No progress on stderr.")
    var quiet = false

    func validate() throws {
        if let bits, bits != 8, bits != 16 { throw ValidationError("--bits must be 8 or 16") }
        if !(1...100).contains(quality) { throw ValidationError("--quality must be between 1 and 100") }
        if let format, !["png", "jpg", "jpeg"].contains(format.lowercased()) {
            throw ValidationError("--format must be png or jpg")
        }
        if maxPixels < 1 { throw ValidationError("--max-pixels must be positive") }
    }

    /// The (input, output) pairs to process: one for a file; for a folder, every PNG/JPEG inside, sorted,
    /// written into the output folder under the same base name.
    func jobs() throws -> [(input: String, output: String)] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isFolder) else {
            throw CommandFailure("no such file or folder (\(input))")
        }
        guard isFolder.boolValue else { return [(input, output)] }
        let names = try FileManager.default.contentsOfDirectory(atPath: input).filter {
            ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased())
        }.sorted()
        guard !names.isEmpty else { throw CommandFailure("no PNG or JPEG files in folder (\(input))") }
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let ext = format.map { $0.lowercased() == "jpeg" ? "jpg" : $0.lowercased() }
        return names.map { name in
            let base = (name as NSString).deletingPathExtension
            let outName = base + "." + (ext ?? (name as NSString).pathExtension)
            return ((input as NSString).appendingPathComponent(name), (output as NSString).appendingPathComponent(outName))
        }
    }

    /// The encoding for `path` given the flags and the source image's bit depth.
    func fileFormat(for path: String, sourceBitDepth: Int) throws -> ImageFileFormat {
        let ext = (format ?? (path as NSString).pathExtension).lowercased()
        switch ext {
        case "png": return .png(bits: bits ?? (sourceBitDepth > 8 ? 16 : 8))
        case "jpg", "jpeg": return .jpeg(quality: quality)
        default: throw CommandFailure("cannot tell the output format from the extension; use .png or .jpg, or --format (\(path))")
        }
    }

    /// `path` with "-k" before its extension (the k-th sample's file).
    static func suffixed(_ path: String, _ index: Int) -> String {
        let ext = (path as NSString).pathExtension
        return (path as NSString).deletingPathExtension + "-\(index)" + (ext.isEmpty ? "" : "." + ext)
    }

    /// Writes a restoration's result (alpha reattached, report in the PNG chunk); prints the report with --json.
    func write(_ result: RestorationResult, to path: String, inputs: [String]) throws {
        let text = try result.write(to: path, format: try fileFormat(for: path, sourceBitDepth: result.sourceBitDepth), overwrite: overwrite,
                                    protecting: inputs)
        if json { print(text) }
    }

    /// Writes `image` (atomically) with the report in its text chunk; prints the report with --json unless `quietJSON`.
    func write(_ image: Image, to path: String, report: RestorationReport, inputs: [String], quietJSON: Bool = false) throws {
        let text = try report.json()
        try ImageWriter.write(image, to: path, format: try fileFormat(for: path, sourceBitDepth: image.sourceBitDepth),
                              text: [reportChunkKeyword: text], overwrite: overwrite, protecting: inputs)
        if json, !quietJSON { print(text) }
    }
}
