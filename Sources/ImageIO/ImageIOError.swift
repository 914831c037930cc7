/// Why reading or writing an image failed. Each `description` is one line that names the file and the
/// reason, ready to print as a command-line error.
public enum ImageIOError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The input file does not exist.
    case fileNotFound(path: String)
    /// The input exists but cannot be read (permissions, a folder, an I/O error).
    case unreadableFile(path: String, reason: String)
    /// The file is neither PNG nor JPEG (judged by its first bytes, not its extension).
    case unsupportedFormat(path: String, detected: String)
    /// The data ends before the image does.
    case truncatedFile(path: String, detail: String)
    /// The data is malformed (bad chunk, marker, checksum or compressed stream).
    case corruptFile(path: String, detail: String)
    /// A valid file whose contents this reader does not handle (e.g. an unusual JPEG colour space).
    case unsupportedContent(path: String, detail: String)
    /// The header claims a zero width or height.
    case zeroDimensions(path: String, width: Int, height: Int)
    /// The header claims more pixels than allowed; refused before any pixel memory is allocated.
    case tooManyPixels(path: String, width: Int, height: Int, limit: Int)
    /// Decoding or encoding ran out of memory.
    case outOfMemory(path: String)
    /// The output file exists and overwriting was not requested.
    case outputExists(path: String)
    /// The output path is one of the inputs (same resolved path or same file).
    case outputIsInput(path: String, input: String)
    /// The output's folder is missing, not a folder, or not writable.
    case cannotWriteFolder(path: String, folder: String, reason: String)
    /// Writing, syncing or renaming the output failed; no partial file was left behind.
    case writeFailed(path: String, reason: String)
    /// The output extension does not name a known format and no format was given.
    case unknownOutputFormat(path: String)
    /// The requested encoding is invalid (PNG bits other than 8/16, JPEG quality outside 1-100, a bad
    /// text keyword, an image too large for the format).
    case invalidEncoding(path: String, reason: String)

    /// A one-line explanation naming the file.
    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "\(path): no such file"
        case .unreadableFile(let path, let reason):
            return "\(path): cannot read the file: \(reason)"
        case .unsupportedFormat(let path, let detected):
            return "\(path): unsupported image format (\(detected)); only PNG, JPEG and WebP can be read"
        case .truncatedFile(let path, let detail):
            return "\(path): the file is truncated or incomplete (\(detail))"
        case .corruptFile(let path, let detail):
            return "\(path): the file is corrupt (\(detail))"
        case .unsupportedContent(let path, let detail):
            return "\(path): unsupported image content (\(detail))"
        case .zeroDimensions(let path, let width, let height):
            return "\(path): invalid image size \(width)x\(height) (a dimension is zero)"
        case .tooManyPixels(let path, let width, let height, let limit):
            let (count, overflow) = width.multipliedReportingOverflow(by: height)
            let total = overflow ? "" : " = \(count) pixels"
            return "\(path): image is \(width)x\(height)\(total), over the limit of \(limit) pixels"
        case .outOfMemory(let path):
            return "\(path): out of memory while processing the image"
        case .outputExists(let path):
            return "\(path): output file already exists (use --overwrite to replace it)"
        case .outputIsInput(let path, let input):
            return "\(path): refusing to write over the input file \(input)"
        case .cannotWriteFolder(let path, let folder, let reason):
            return "\(path): cannot write into the folder \(folder): \(reason)"
        case .writeFailed(let path, let reason):
            return "\(path): writing failed: \(reason); no output was written"
        case .unknownOutputFormat(let path):
            return "\(path): cannot tell the output format from the extension (use .png, .jpg, .jpeg or .webp)"
        case .invalidEncoding(let path, let reason):
            return "\(path): cannot encode the image: \(reason)"
        }
    }
}
