import CImageCodecs

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#elseif canImport(Musl)
import Musl
#endif

/// Encodes `Image`s as PNG or JPEG and writes them safely: to a temporary file in the target folder,
/// fsync'ed, then renamed into place, so no partial output is ever left behind.
public enum ImageWriter {
    /// Writes `image` to `path`.
    ///
    /// Samples are clamped to [0, 1] and rounded to the nearest integer level (NaN becomes 0).
    /// - Parameters:
    ///   - image: the image; for JPEG, alpha is dropped and gray stays gray.
    ///   - path: the output file.
    ///   - format: the encoding; when nil it follows the extension (`ImageFileFormat.fromExtension`:
    ///     `.png` at the image's source depth, 8 or 16 bits; `.jpg`/`.jpeg` at quality 95).
    ///   - text: PNG text chunks, keyword → UTF-8 value, written as uncompressed iTXt chunks before the
    ///     image data (e.g. the `DiffusionRestore` JSON report). Keywords are 1-79 printable Latin-1
    ///     characters without leading, trailing or double spaces. JPEG keeps them as COM markers
    ///     ("key\0value"), WebP in one "DRtx" chunk; the readers return them in `Image.text`. `image.text` is
    ///     not written automatically.
    ///   - overwrite: replace an existing file at `path`; when false an existing file is never touched.
    ///   - inputs: paths that must never be written over (the command's inputs), compared by resolved
    ///     path and by device and inode, even when `overwrite` is true.
    /// - Throws: `ImageIOError` (output exists, output is an input, folder not writable, bad encoding
    ///   parameters, write failure).
    public static func write(_ image: Image, to path: String, format: ImageFileFormat? = nil,
                             text: [String: String] = [:], overwrite: Bool = false,
                             protecting inputs: [String] = []) throws(ImageIOError) {
        try write(image, to: path, format: format, text: text, overwrite: overwrite, protecting: inputs,
                  beforeCommit: {})
    }

    /// A hook for crash tests, run on every write with the target path when the complete file is synced
    /// but has no name yet (an unnamed O_TMPFILE on Linux, else a hidden temporary file): `restore` sets it
    /// from `RESTORE_TEST_PAUSE_BEFORE_COMMIT` so a test can kill -9 the process exactly there. Set it before
    /// any write starts; it is not synchronised.
    public static var pauseBeforeCommit: ((String) -> Void)? {
        get { AtomicFileWriter.everyCommit }
        set { AtomicFileWriter.everyCommit = newValue }
    }

    /// `write(_:to:format:text:overwrite:protecting:)` with a hook run just before the commit (tests).
    static func write(_ image: Image, to path: String, format: ImageFileFormat?, text: [String: String],
                      overwrite: Bool, protecting inputs: [String],
                      beforeCommit: () throws(ImageIOError) -> Void) throws(ImageIOError) {
        guard let format = format ?? ImageFileFormat.fromExtension(of: path, sourceBitDepth: image.sourceBitDepth)
        else { throw .unknownOutputFormat(path: path) }
        try checkDestination(path, overwrite: overwrite, inputs: inputs)
        let bytes = try encode(image, format: format, text: text, name: path)
        try AtomicFileWriter.write(bytes, to: path, overwrite: overwrite, beforeCommit: beforeCommit)
    }

    /// Writes a PNG whose rows come from `row(y, samples)` (fill `width × channels` samples in [0, 1]),
    /// encoded and written as they come: no whole-image buffer is made (USDR's large outputs). Same safety
    /// as `write`: unnamed temporary file, never over an input, an existing file only with `overwrite`.
    public static func writePNGRows(to path: String, width: Int, height: Int, channels: Int, bits: Int = 8,
                                    text: [String: String] = [:], overwrite: Bool = false, protecting inputs: [String] = [],
                                    row: @escaping (Int, UnsafeMutableBufferPointer<Float>) -> Void) throws(ImageIOError) {
        guard width > 0, height > 0, width <= Int(Int32.max), height <= Int(Int32.max), (1...4).contains(channels), bits == 8 || bits == 16 else {
            throw .invalidEncoding(path: path, reason: "cannot write a \(width)x\(height) PNG with \(channels) channels and \(bits) bits")
        }
        try withTextEntries(text, name: path) { (cEntries: [CICTextEntry]) throws(ImageIOError) in
            try checkDestination(path, overwrite: overwrite, inputs: inputs)
            try AtomicFileWriter.write(to: path, overwrite: overwrite) { (descriptor: Int32) throws(ImageIOError) in
                let stream = PNGRowStream(width: width, channels: channels, bits: bits, descriptor: descriptor, row: row)
                var message = [CChar](repeating: 0, count: 512)
                let context = Unmanaged.passUnretained(stream).toOpaque()
                let status = message.withUnsafeMutableBufferPointer { buffer in
                    cic_png_encode_rows(UInt32(width), UInt32(height), UInt32(channels), UInt32(bits), cEntries, cEntries.count,
                                        { context, y, destination in
                                            Unmanaged<PNGRowStream>.fromOpaque(context!).takeUnretainedValue().fill(Int(y), destination!)
                                            return 0
                                        }, context,
                                        { context, bytes, count in
                                            let stream = Unmanaged<PNGRowStream>.fromOpaque(context!).takeUnretainedValue()
                                            return AtomicFileWriter.writeAll(bytes!, count: count, to: stream.descriptor) ? 0 : 1
                                        }, context, buffer.baseAddress!, buffer.count)
                }
                withExtendedLifetime(stream) {}
                guard status == CIC_OK else {
                    if status == CIC_ERROR_OUT_OF_MEMORY { throw .outOfMemory(path: path) }
                    if status == CIC_ERROR_IO { throw .writeFailed(path: path, reason: FileSystem.reason(errno)) }
                    let detail = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    throw .invalidEncoding(path: path, reason: detail.isEmpty ? "the encoder failed" : detail)
                }
            }
        }
    }

    /// Encodes `image` as a complete PNG or JPEG file in memory; `name` is used in error messages.
    ///
    /// - Throws: `ImageIOError.invalidEncoding` for PNG bits other than 8 or 16, JPEG quality outside
    ///   1-100, an invalid text keyword, or an image the format cannot hold.
    public static func encode(_ image: Image, format: ImageFileFormat, text: [String: String] = [:],
                              name: String = "<memory>") throws(ImageIOError) -> [UInt8] {
        guard image.width <= Int(Int32.max), image.height <= Int(Int32.max) else {
            throw .invalidEncoding(path: name, reason: "\(image.width)x\(image.height) is too large for a file")
        }
        switch format {
        case .png(let bits):
            guard bits == 8 || bits == 16 else {
                throw .invalidEncoding(path: name, reason: "PNG bit depth must be 8 or 16, not \(bits)")
            }
            return try withTextEntries(text, name: name) { (entries: [CICTextEntry]) throws(ImageIOError) -> [UInt8] in
                try encodePNG(image, bits: bits, entries: entries, name: name)
            }
        case .jpeg(let quality):
            guard (1...100).contains(quality) else {
                throw .invalidEncoding(path: name, reason: "JPEG quality must be 1-100, not \(quality)")
            }
            let color = image.splittingAlpha().color
            let samples = quantize(color.pixels, as: UInt8.self)
            return try withTextEntries(text, name: name) { (entries: [CICTextEntry]) throws(ImageIOError) -> [UInt8] in
                try runEncoder(name: name) { output, length, message, capacity in
                    cic_jpeg_encode_text(samples, UInt32(color.width), UInt32(color.height), UInt32(color.channels),
                                         Int32(quality), entries, entries.count, output, length, message, capacity)
                }
            }
        case .webp(let quality):
            guard (1...100).contains(quality) else {
                throw .invalidEncoding(path: name, reason: "WebP quality must be 1-100 (100: lossless), not \(quality)")
            }
            let rgb = image.colorChannels == 1 ? image.expandingGrayToRGB() : image
            let samples = quantize(rgb.pixels, as: UInt8.self)
            return try withTextEntries(text, name: name) { (entries: [CICTextEntry]) throws(ImageIOError) -> [UInt8] in
                try runEncoder(name: name) { output, length, message, capacity in
                    cic_webp_encode(samples, UInt32(rgb.width), UInt32(rgb.height), UInt32(rgb.channels), Int32(quality),
                                    entries, entries.count, output, length, message, capacity)
                }
            }
        }
    }

    /// Text entries as NUL-terminated C strings for `body`, sorted by key: keys checked as PNG keywords and
    /// passed as Latin-1 bytes (as the readers decode them, for every format), values UTF-8 without NUL bytes.
    private static func withTextEntries<Result>(_ text: [String: String], name: String,
                                                _ body: ([CICTextEntry]) throws(ImageIOError) -> Result) throws(ImageIOError) -> Result {
        for (key, value) in text {
            if let problem = problemWithTextKeyword(key) { throw .invalidEncoding(path: name, reason: "text keyword \"\(key)\" \(problem)") }
            if value.utf8.contains(0) { throw .invalidEncoding(path: name, reason: "text value for \"\(key)\" contains a NUL byte") }
        }
        let entries = text.sorted { $0.key < $1.key }
        let keys = entries.map { strdupBytes($0.key.unicodeScalars.map { UInt8($0.value) }) }
        let values = entries.map { strdupBytes(Array($0.value.utf8)) }
        defer { (keys + values).forEach { free($0) } }
        return try body(zip(keys, values).map { CICTextEntry(key: $0, value: $1) })
    }

    /// Samples clamped to [0, 1], scaled to [0, `Sample.max`] and rounded to the nearest integer
    /// (NaN becomes 0), written straight into the integer array (no intermediate copy).
    static func quantize<Sample: FixedWidthInteger & UnsignedInteger>(_ samples: [Float],
                                                                      as _: Sample.Type) -> [Sample] {
        let scale = Float(Sample.max)
        return [Sample](unsafeUninitializedCapacity: samples.count) { target, initialized in
            samples.withUnsafeBufferPointer { source in
                for index in 0..<source.count {
                    let value = source[index]
                    let clamped: Float = value > 0 ? (value < 1 ? value : 1) : 0   // NaN fails `> 0`.
                    target[index] = Sample((clamped * scale).rounded())
                }
            }
            initialized = samples.count
        }
    }

    /// Why a PNG text keyword is invalid, or nil when it is valid.
    static func problemWithTextKeyword(_ key: String) -> String? {
        let scalars = Array(key.unicodeScalars)
        guard (1...79).contains(scalars.count) else { return "must be 1-79 characters long" }
        let printable = scalars.allSatisfy { (0x20...0x7E).contains($0.value) || (0xA1...0xFF).contains($0.value) }
        guard printable else { return "must contain only printable Latin-1 characters" }
        guard scalars.first != " ", scalars.last != " ", !key.contains("  ") else {
            return "must not have leading, trailing or consecutive spaces"
        }
        return nil
    }

    private static func encodePNG(_ image: Image, bits: Int, entries cEntries: [CICTextEntry],
                                  name: String) throws(ImageIOError) -> [UInt8] {
        let (width, height, channels) = (UInt32(image.width), UInt32(image.height), UInt32(image.channels))
        if bits == 16 {
            let samples = quantize(image.pixels, as: UInt16.self)
            return try runEncoder(name: name) { output, length, message, capacity in
                cic_png_encode(samples, width, height, channels, 16, cEntries, cEntries.count,
                               output, length, message, capacity)
            }
        }
        let samples = quantize(image.pixels, as: UInt8.self)
        return try runEncoder(name: name) { output, length, message, capacity in
            cic_png_encode(samples, width, height, channels, 8, cEntries, cEntries.count,
                           output, length, message, capacity)
        }
    }

    /// A malloc'ed NUL-terminated copy of `bytes`.
    private static func strdupBytes(_ bytes: [UInt8]) -> UnsafeMutablePointer<CChar> {
        let copy = malloc(bytes.count + 1)!.assumingMemoryBound(to: CChar.self)
        for (index, byte) in bytes.enumerated() { copy[index] = CChar(bitPattern: byte) }
        copy[bytes.count] = 0
        return copy
    }

    /// Calls a C encoder and copies its malloc'ed output into an array.
    private static func runEncoder(
        name: String,
        _ encoder: (UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>, UnsafeMutablePointer<Int>,
                    UnsafeMutablePointer<CChar>, Int) -> CICStatus
    ) throws(ImageIOError) -> [UInt8] {
        var output: UnsafeMutablePointer<UInt8>?
        var length = 0
        var message = [CChar](repeating: 0, count: 512)
        let status = message.withUnsafeMutableBufferPointer { buffer in
            encoder(&output, &length, buffer.baseAddress!, buffer.count)
        }
        defer { cic_buffer_free(output) }
        guard status == CIC_OK, let output else {
            if status == CIC_ERROR_OUT_OF_MEMORY { throw .outOfMemory(path: name) }
            let detail = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw .invalidEncoding(path: name, reason: detail.isEmpty ? "the encoder failed" : detail)
        }
        return Array(UnsafeBufferPointer(start: output, count: length))
    }

    /// Refuses to write onto an input, into a missing or unwritable folder, or over an existing file
    /// without `overwrite`.
    /// Checks that `path` can be written before any work is done: its folder exists and is writable, it is
    /// none of `inputs` (by resolved path or by device and inode), and nothing is there, or, with `overwrite`,
    /// a regular file (never a folder, device, pipe, socket or symbolic link, which a rename would replace).
    public static func checkDestination(_ path: String, overwrite: Bool, protecting inputs: [String]) throws(ImageIOError) {
        try checkDestination(path, overwrite: overwrite, inputs: inputs)
    }

    /// Bytes free to this user on the file system that `path` would be written to (nil: unknown).
    public static func freeBytes(forWriting path: String) -> Int? {
        var info = statvfs()
        guard statvfs(FileSystem.parentFolder(of: path), &info) == 0 else { return nil }
        let (blocks, size) = (UInt64(info.f_bavail), UInt64(info.f_frsize))
        return Int(clamping: blocks.multipliedReportingOverflow(by: size).overflow ? UInt64.max : blocks * size)
    }

    private static func checkDestination(_ path: String, overwrite: Bool, inputs: [String]) throws(ImageIOError) {
        let folder = FileSystem.parentFolder(of: path)
        var folderInfo = stat()
        guard stat(folder, &folderInfo) == 0 else {
            throw .cannotWriteFolder(path: path, folder: folder, reason: FileSystem.reason(errno))
        }
        guard (folderInfo.st_mode & S_IFMT) == S_IFDIR else {
            throw .cannotWriteFolder(path: path, folder: folder, reason: "not a folder")
        }
        guard access(folder, W_OK | X_OK) == 0 else {
            throw .cannotWriteFolder(path: path, folder: folder, reason: FileSystem.reason(errno))
        }
        // The output's resolved path: the file itself if it exists, else the resolved folder + name.
        let resolvedOutput = FileSystem.resolvedPath(path)
            ?? FileSystem.resolvedPath(folder).map { ($0 == "/" ? "" : $0) + "/" + FileSystem.fileName(of: path) }
        let outputIdentity = FileSystem.fileIdentity(path)
        for input in inputs {
            let sameIdentity = outputIdentity != nil && FileSystem.fileIdentity(input).map {
                $0 == outputIdentity!
            } == true
            let resolvedInput = FileSystem.resolvedPath(input)
            let samePath = resolvedInput != nil && resolvedInput == resolvedOutput
            if sameIdentity || samePath || input == path { throw .outputIsInput(path: path, input: input) }
        }
        var outputInfo = stat()
        if lstat(path, &outputInfo) == 0 {
            if (outputInfo.st_mode & S_IFMT) == S_IFDIR {
                throw .writeFailed(path: path, reason: "a folder exists at the output path")
            }
            if !overwrite { throw .outputExists(path: path) }
            if (outputInfo.st_mode & S_IFMT) != S_IFREG {
                throw .writeFailed(path: path, reason: "something other than a regular file is at the output path (a device, pipe, socket or link); only regular files are replaced")
            }
        }
    }
}

/// The state of one streamed PNG: quantizes the caller's float rows into the encoder's row buffer.
private final class PNGRowStream {
    let width: Int, channels: Int, bits: Int, descriptor: Int32
    let row: (Int, UnsafeMutableBufferPointer<Float>) -> Void
    var samples: [Float]

    init(width: Int, channels: Int, bits: Int, descriptor: Int32, row: @escaping (Int, UnsafeMutableBufferPointer<Float>) -> Void) {
        self.width = width
        self.channels = channels
        self.bits = bits
        self.descriptor = descriptor
        self.row = row
        samples = [Float](repeating: 0, count: width * channels)
    }

    /// Rounds to nearest, clamps to [0, 1] (NaN → 0), as `ImageWriter.quantize`.
    func fill(_ y: Int, _ destination: UnsafeMutablePointer<UInt8>) {
        samples.withUnsafeMutableBufferPointer { row(y, $0) }
        let scale: Float = bits == 16 ? 65535 : 255
        if bits == 16 {
            destination.withMemoryRebound(to: UInt16.self, capacity: samples.count) { out in
                for i in 0..<samples.count { let v = samples[i]; out[i] = UInt16((v >= 0 ? min(v, 1) : 0) * scale + 0.5) }
            }
        } else {
            for i in 0..<samples.count { let v = samples[i]; destination[i] = UInt8((v >= 0 ? min(v, 1) : 0) * scale + 0.5) }
        }
    }
}

extension ImageWriter {
    /// Writes any bytes (a sidecar, a plan) the way images are written: a temporary file in the target's folder,
    /// fsync'ed, then renamed into place (replacing an existing file only with `overwrite`, never an input).
    public static func writeFile(_ bytes: [UInt8], to path: String, overwrite: Bool, protecting inputs: [String] = []) throws {
        try checkDestination(path, overwrite: overwrite, protecting: inputs)
        try AtomicFileWriter.write(bytes, to: path, overwrite: overwrite)
    }
}
