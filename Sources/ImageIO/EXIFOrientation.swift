/// The EXIF orientation tag (0x0112): how the stored pixels must be transformed for display.
///
/// Raw values follow the EXIF specification; the transforms match Pillow's `ImageOps.exif_transpose`.
public enum EXIFOrientation: Int, Sendable, CaseIterable {
    /// 1: stored upright.
    case up = 1
    /// 2: mirrored left-right.
    case upMirrored = 2
    /// 3: rotated 180°.
    case down = 3
    /// 4: mirrored top-bottom.
    case downMirrored = 4
    /// 5: transposed (mirrored about the main diagonal).
    case leftMirrored = 5
    /// 6: needs a 90° clockwise rotation.
    case right = 6
    /// 7: transversed (mirrored about the anti-diagonal).
    case rightMirrored = 7
    /// 8: needs a 90° counter-clockwise rotation.
    case left = 8

    /// Whether displaying the image swaps width and height (orientations 5-8).
    public var swapsDimensions: Bool { rawValue >= 5 }

    /// Reads the orientation from the TIFF payload of an APP1 Exif marker (the bytes after "Exif\0\0").
    ///
    /// Returns nil when the payload is malformed, the tag is missing, or its value is not 1-8: bad EXIF
    /// is ignored, never fatal. Every offset is bounds-checked.
    public static func parse(tiff bytes: [UInt8]) -> EXIFOrientation? {
        guard bytes.count >= 8 else { return nil }
        let littleEndian: Bool
        switch (bytes[0], bytes[1]) {
        case (0x49, 0x49): littleEndian = true    // "II"
        case (0x4D, 0x4D): littleEndian = false   // "MM"
        default: return nil
        }
        func uint16(at offset: Int) -> Int? {
            guard offset >= 0, offset <= bytes.count - 2 else { return nil }
            let a = Int(bytes[offset]), b = Int(bytes[offset + 1])
            return littleEndian ? a | b << 8 : a << 8 | b
        }
        func uint32(at offset: Int) -> Int? {
            guard let low = uint16(at: littleEndian ? offset : offset + 2),
                  let high = uint16(at: littleEndian ? offset + 2 : offset) else { return nil }
            return high << 16 | low
        }
        guard uint16(at: 2) == 42, let ifdOffset = uint32(at: 4), let entryCount = uint16(at: ifdOffset) else {
            return nil
        }
        for entry in 0..<entryCount {
            let entryOffset = ifdOffset + 2 + entry * 12
            guard let tag = uint16(at: entryOffset) else { return nil }   // Entries run past the end.
            guard tag == 0x0112 else { continue }
            // Type SHORT (3), count 1: the value sits in the first two bytes of the value field.
            guard uint16(at: entryOffset + 2) == 3, uint32(at: entryOffset + 4) == 1,
                  let value = uint16(at: entryOffset + 8) else { return nil }
            return EXIFOrientation(rawValue: value)
        }
        return nil
    }
}

extension Image {
    /// The image transformed as its EXIF orientation says, so that it displays upright (the result is
    /// tagged `.up`). Orientations 5-8 swap width and height.
    public func applyingOrientation(_ orientation: EXIFOrientation) -> Image {
        if orientation == .up { return self }
        let outputWidth = orientation.swapsDimensions ? height : width
        let outputHeight = orientation.swapsDimensions ? width : height
        var output = [Float](repeating: 0, count: pixels.count)
        let (w, h, c) = (width, height, channels)
        pixels.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                for outY in 0..<outputHeight {
                    for outX in 0..<outputWidth {
                        // The source pixel shown at (outX, outY) after the transform.
                        let (x, y): (Int, Int)
                        switch orientation {
                        case .up: (x, y) = (outX, outY)
                        case .upMirrored: (x, y) = (w - 1 - outX, outY)
                        case .down: (x, y) = (w - 1 - outX, h - 1 - outY)
                        case .downMirrored: (x, y) = (outX, h - 1 - outY)
                        case .leftMirrored: (x, y) = (outY, outX)
                        case .right: (x, y) = (outY, h - 1 - outX)
                        case .rightMirrored: (x, y) = (w - 1 - outY, h - 1 - outX)
                        case .left: (x, y) = (w - 1 - outY, outX)
                        }
                        let from = (y * w + x) * c
                        let to = (outY * outputWidth + outX) * c
                        for channel in 0..<c { target[to + channel] = source[from + channel] }
                    }
                }
            }
        }
        return Image(width: outputWidth, height: outputHeight, channels: channels, pixels: output,
                     sourceBitDepth: sourceBitDepth, text: text)
    }
}
