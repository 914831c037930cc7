import CImageCodecs

/// Reads PNG, JPEG and WebP files into `Image`s (Float32 samples in [0, 1]).
///
/// The format is recognised from the file's first bytes, never from its extension. Dimensions are
/// checked against a pixel limit before any pixel memory is allocated.
public enum ImageReader {
    /// The default limit on `width × height`: 400 megapixels (about 4.8 GB as RGB Float32).
    public static let defaultMaxPixels = 400_000_000

    /// Reads and decodes the image at `path`.
    ///
    /// - PNG: 1/2/4/8/16-bit gray, gray + alpha, RGB, RGBA and palette images, interlaced or not.
    ///   Palettes and tRNS transparency are expanded (to RGB(A) or gray + alpha); text chunks are kept.
    /// - JPEG: baseline or progressive, gray, YCbCr/RGB, and CMYK/YCCK (converted to RGB, Adobe
    ///   inverted CMYK included). The EXIF orientation is applied when `applyEXIFOrientation` is true
    ///   (malformed EXIF is ignored).
    /// - Parameters:
    ///   - path: the file to read.
    ///   - maxPixels: refuse images whose `width × height` exceeds this.
    ///   - applyEXIFOrientation: rotate/mirror JPEGs upright as their EXIF orientation tag says.
    /// - Throws: `ImageIOError` (missing file, unsupported format, truncated or corrupt data, zero or
    ///   too many pixels).
    public static func read(path: String, maxPixels: Int = defaultMaxPixels,
                            applyEXIFOrientation: Bool = true) throws(ImageIOError) -> Image {
        let bytes = try FileSystem.readFile(path)
        return try decode(bytes, name: path, maxPixels: maxPixels, applyEXIFOrientation: applyEXIFOrientation)
    }

    /// Decodes an in-memory PNG or JPEG file; `name` is used in error messages.
    ///
    /// - Throws: `ImageIOError`, as `read(path:maxPixels:applyEXIFOrientation:)`.
    public static func decode(_ bytes: [UInt8], name: String, maxPixels: Int = defaultMaxPixels,
                              applyEXIFOrientation: Bool = true) throws(ImageIOError) -> Image {
        let format = DetectedImageFormat(leadingBytes: bytes)
        let limit = UInt64(max(0, maxPixels))
        var decoded = CICImage()
        var message = [CChar](repeating: 0, count: 512)
        let status: CICStatus = bytes.withUnsafeBufferPointer { data in
            message.withUnsafeMutableBufferPointer { text in
                switch format {
                case .png:
                    return cic_png_decode(data.baseAddress, data.count, limit, &decoded, text.baseAddress, text.count)
                case .jpeg:
                    return cic_jpeg_decode(data.baseAddress, data.count, limit, &decoded, text.baseAddress, text.count)
                case .webp:
                    return cic_webp_decode(data.baseAddress, data.count, limit, &decoded, text.baseAddress, text.count)
                case .unsupported:
                    return CIC_ERROR_UNSUPPORTED
                }
            }
        }
        if case .unsupported(let detected) = format {
            throw .unsupportedFormat(path: name, detected: detected)
        }
        defer { cic_image_free(&decoded) }
        guard status == CIC_OK else {
            let detail = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw error(for: status, detail: detail, name: name, width: Int(decoded.width),
                        height: Int(decoded.height), limit: maxPixels)
        }
        var image = makeImage(from: decoded)
        if applyEXIFOrientation, let exif = decoded.exif, decoded.exif_length > 0 {
            let payload = Array(UnsafeBufferPointer(start: exif, count: decoded.exif_length))
            if let orientation = EXIFOrientation.parse(tiff: payload) {
                image = image.applyingOrientation(orientation)
            }
        }
        return image
    }

    /// Maps a codec status to the matching error.
    private static func error(for status: CICStatus, detail: String, name: String, width: Int, height: Int,
                              limit: Int) -> ImageIOError {
        switch status {
        case CIC_ERROR_TRUNCATED: return .truncatedFile(path: name, detail: detail)
        case CIC_ERROR_ZERO_SIZE: return .zeroDimensions(path: name, width: width, height: height)
        case CIC_ERROR_TOO_LARGE: return .tooManyPixels(path: name, width: width, height: height, limit: limit)
        case CIC_ERROR_UNSUPPORTED: return .unsupportedContent(path: name, detail: detail)
        case CIC_ERROR_OUT_OF_MEMORY: return .outOfMemory(path: name)
        default: return .corruptFile(path: name, detail: detail.isEmpty ? "undecodable data" : detail)
        }
    }

    /// Converts the decoder's integer samples to Float32 in [0, 1] (divided by 255 or 65535).
    private static func makeImage(from decoded: CICImage) -> Image {
        let width = Int(decoded.width), height = Int(decoded.height), channels = Int(decoded.channels)
        let count = width * height * channels
        var pixels = [Float](repeating: 0, count: count)
        pixels.withUnsafeMutableBufferPointer { target in
            if decoded.bit_depth == 16 {
                let source = decoded.pixels.assumingMemoryBound(to: UInt16.self)
                for index in 0..<count { target[index] = Float(source[index]) / 65535 }
            } else {
                let scale = (0...255).map { Float($0) / 255 }
                let source = decoded.pixels.assumingMemoryBound(to: UInt8.self)
                for index in 0..<count { target[index] = scale[Int(source[index])] }
            }
        }
        var text: [String: String] = [:]
        for index in 0..<decoded.text_count {
            let chunk = decoded.texts[index]
            let key = latin1String(UnsafeBufferPointer(start: UnsafeRawPointer(chunk.key)
                .assumingMemoryBound(to: UInt8.self), count: strlenOf(chunk.key)))
            let valueBytes = UnsafeBufferPointer(start: UnsafeRawPointer(chunk.value)
                .assumingMemoryBound(to: UInt8.self), count: chunk.value_length)
            text[key] = chunk.is_utf8 != 0 ? String(decoding: valueBytes, as: UTF8.self) : latin1String(valueBytes)
        }
        return Image(width: width, height: height, channels: channels, pixels: pixels,
                     sourceBitDepth: Int(decoded.source_bit_depth), text: text)
    }

    private static func strlenOf(_ string: UnsafeMutablePointer<CChar>?) -> Int {
        guard let string else { return 0 }
        var length = 0
        while string[length] != 0 { length += 1 }
        return length
    }

    /// tEXt and zTXt chunks are Latin-1: each byte is one Unicode scalar.
    private static func latin1String(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
    }
}

extension ImageReader {
    /// An image's width and height from its header, without decoding its pixels (nil: not a readable image).
    public static func dimensions(path: String) -> (width: Int, height: Int)? {
        do {
            _ = try read(path: path, maxPixels: 0)
        } catch .tooManyPixels(_, let width, let height, _) {
            return (width, height)
        } catch {
            return nil
        }
        return nil
    }
}
