/// An output encoding for `ImageWriter`.
public enum ImageFileFormat: Sendable, Equatable, CustomStringConvertible {
    /// PNG with 8 or 16 bits per sample; gray, gray + alpha, RGB or RGBA as the image has.
    case png(bits: Int)
    /// Baseline JPEG with the given quality (1-100); alpha is dropped, gray stays gray.
    case jpeg(quality: Int)
    /// WebP (libwebp): lossy at quality 1-99, lossless at 100; gray is stored as RGB.
    case webp(quality: Int)

    /// The JPEG quality used when a format is picked from a `.jpg`/`.jpeg` extension.
    public static let defaultJPEGQuality = 95

    /// The format implied by a path's extension (case-insensitive): `.png` → PNG with 16 bits if
    /// `sourceBitDepth` is above 8, else 8; `.jpg`/`.jpeg` → JPEG at `defaultJPEGQuality`; otherwise nil.
    public static func fromExtension(of path: String, sourceBitDepth: Int = 8) -> ImageFileFormat? {
        let name = path.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? path
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return nil }
        switch name[name.index(after: dot)...].lowercased() {
        case "png": return .png(bits: sourceBitDepth > 8 ? 16 : 8)
        case "jpg", "jpeg": return .jpeg(quality: defaultJPEGQuality)
        case "webp": return .webp(quality: defaultJPEGQuality)
        default: return nil
        }
    }

    /// A short name, e.g. "PNG (16-bit)" or "JPEG (quality 95)".
    public var description: String {
        switch self {
        case .png(let bits): return "PNG (\(bits)-bit)"
        case .jpeg(let quality): return "JPEG (quality \(quality))"
        case .webp(let quality): return quality == 100 ? "WebP (lossless)" : "WebP (quality \(quality))"
        }
    }
}

/// The container format of an input, recognised from its first bytes ("magic numbers").
public enum DetectedImageFormat: Sendable, Equatable {
    /// PNG signature `89 50 4E 47 0D 0A 1A 0A`.
    case png
    /// JPEG start-of-image marker `FF D8 FF`.
    case jpeg
    /// RIFF container with the `WEBP` form type.
    case webp
    /// Anything else, with a human-readable guess of what it is ("GIF", "text or unknown data", …).
    case unsupported(String)

    /// Classifies the leading bytes of a file (at least the first 12 bytes should be passed).
    public init(leadingBytes bytes: some Collection<UInt8>) {
        let head = Array(bytes.prefix(12))
        func starts(_ magic: [UInt8], at offset: Int = 0) -> Bool {
            head.count >= offset + magic.count && Array(head[offset..<(offset + magic.count)]) == magic
        }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            self = .png
        } else if starts([0xFF, 0xD8, 0xFF]) {
            self = .jpeg
        } else if head.isEmpty {
            self = .unsupported("empty file")
        } else if starts(Array("GIF8".utf8)) {
            self = .unsupported("GIF")
        } else if starts(Array("BM".utf8)) {
            self = .unsupported("BMP")
        } else if starts(Array("RIFF".utf8)) && starts(Array("WEBP".utf8), at: 8) {
            self = .webp
        } else if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) {
            self = .unsupported("TIFF")
        } else if starts(Array("ftyp".utf8), at: 4) {
            self = .unsupported("HEIF/AVIF or another ISO media file")
        } else if starts([0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50]) || starts([0xFF, 0x4F, 0xFF, 0x51]) {
            self = .unsupported("JPEG 2000")
        } else if starts([0x89, 0x50, 0x4E, 0x47]) {
            self = .unsupported("damaged PNG signature")
        } else {
            self = .unsupported("text or unknown data")
        }
    }
}
