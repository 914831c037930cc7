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

    /// The (input, output) pairs to process (`RestorationJob.pairs`: a file, or every PNG/JPEG of a folder).
    func jobs() throws -> [(input: String, output: String)] { try RestorationJob.pairs(input: input, output: output, format: format) }

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
