"""Writes the ImageIO test fixtures into Tests/ImageIOTests/Fixtures (deterministic, synthetic, tiny).

Run with the project's venv:  /work/venv/bin/python Tools/reference/make_image_fixtures.py
Not run by CI; the outputs are committed. Needs numpy and Pillow only.

PNG fixtures with unusual layouts (1/2/4-bit gray, palettes with tRNS, Adam7 interlacing, 16-bit) are
written by the small PNG writer below, so every chunk is under our control; each is checked against
Pillow's decoding where Pillow can represent it. JPEG fixtures are written by Pillow, and the expected
pixels are Pillow's own decode (`.bin` files, format below), which the Swift decoder must match within 1.

Expected-pixel files (`*.bin`): b"IMGX", then width, height, channels, bits as little-endian uint32,
then the samples row-major with channels interleaved (uint8, or little-endian uint16 when bits is 16).
"""
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "ImageIOTests", "Fixtures")


def save_expected(name, array, bits=8):
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    height, width, channels = array.shape
    dtype = "<u2" if bits == 16 else "u1"
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(b"IMGX" + struct.pack("<4I", width, height, channels, bits))
        f.write(np.ascontiguousarray(array.astype(dtype)).tobytes())


def write_bytes(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


# --- A minimal PNG writer -------------------------------------------------------------------------

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def ihdr(width, height, bit_depth, color_type, interlace=0):
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace))


def pack_row(samples, bit_depth):
    """One scanline of samples (already interleaved) as bytes, big-endian, sub-byte depths packed."""
    samples = np.asarray(samples).reshape(-1)
    if bit_depth == 16:
        return samples.astype(">u2").tobytes()
    if bit_depth == 8:
        return samples.astype("u1").tobytes()
    per_byte = 8 // bit_depth
    padded = np.zeros(-(-len(samples) // per_byte) * per_byte, dtype=np.int64)
    padded[: len(samples)] = samples
    groups = padded.reshape(-1, per_byte)
    shifts = np.array([8 - bit_depth * (i + 1) for i in range(per_byte)])
    return (groups << shifts).sum(axis=1).astype("u1").tobytes()


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_bytes(array, bit_depth, color_type, palette=None, trns=None, interlace=False, extra_chunks=()):
    """array: H×W (gray / palette indices) or H×W×C samples at `bit_depth`."""
    array = np.asarray(array)
    height, width = array.shape[:2]
    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        sub = array[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in sub:
            raw += b"\x00" + pack_row(row, bit_depth)   # filter type 0 (None)
    data = b"\x89PNG\r\n\x1a\n" + ihdr(width, height, bit_depth, color_type, 1 if interlace else 0)
    if palette is not None:
        data += chunk(b"PLTE", bytes(np.asarray(palette, dtype="u1").reshape(-1)))
    if trns is not None:
        data += chunk(b"tRNS", trns)
    for extra in extra_chunks:
        data += extra
    data += chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b"")
    return data


def pillow_array(data):
    return np.array(Image.open(io.BytesIO(data)))


# --- Synthetic content ------------------------------------------------------------------------------

def pattern(height, width, channels, maximum, seed):
    """A smooth gradient plus deterministic noise, so both codecs and orientation errors show."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    planes = []
    for c in range(channels):
        base = (x * (c + 1) * 7 + y * (3 - c % 3) * 11) / (width * 7 + height * 22)
        planes.append(base)
    smooth = np.stack(planes, axis=-1)
    noisy = smooth * 0.8 + rng.random((height, width, channels)) * 0.2
    return np.round(np.clip(noisy, 0, 1) * maximum).astype(np.int64)


def make_png_fixtures():
    # Sub-8-bit gray: libpng and Pillow both scale to 8 bits by bit replication (v * 255 / (2^b - 1)).
    for bits, (w, h) in {1: (13, 7), 2: (11, 5), 4: (9, 6)}.items():
        maximum = (1 << bits) - 1
        values = pattern(h, w, 1, maximum, seed=bits)[:, :, 0]
        data = png_bytes(values, bits, 0)
        expected = values * 255 // maximum
        got = pillow_array(data).astype(np.int64) * (255 if bits == 1 else 1)
        assert np.array_equal(got, expected), f"Pillow disagrees on {bits}-bit gray"
        write_bytes(f"gray{bits}.png", data)
        save_expected(f"gray{bits}.bin", expected)

    # Palettes: 4-bit with tRNS (→ RGBA) and 8-bit without (→ RGB).
    rng = np.random.default_rng(11)
    palette = rng.integers(0, 256, size=(11, 3))
    alpha = np.array([0, 64, 128, 200, 255], dtype=np.uint8)   # entries 5+ are opaque
    indices = rng.integers(0, 11, size=(7, 10))
    data = png_bytes(indices, 4, 3, palette=palette, trns=bytes(alpha))
    full_alpha = np.concatenate([alpha, np.full(11 - len(alpha), 255, dtype=np.uint8)])
    expected = np.concatenate([palette[indices], full_alpha[indices][:, :, None]], axis=-1)
    assert np.array_equal(np.array(Image.open(io.BytesIO(data)).convert("RGBA")), expected)
    write_bytes("palette4_trns.png", data)
    save_expected("palette4_trns.bin", expected)

    palette = rng.integers(0, 256, size=(200, 3))
    indices = rng.integers(0, 200, size=(6, 9))
    data = png_bytes(indices, 8, 3, palette=palette)
    assert np.array_equal(np.array(Image.open(io.BytesIO(data)).convert("RGB")), palette[indices])
    write_bytes("palette8.png", data)
    save_expected("palette8.bin", palette[indices])

    # Gray with a tRNS key colour → gray + alpha (alpha 0 exactly where gray == 77).
    values = pattern(6, 8, 1, 255, seed=21)[:, :, 0]
    values[1, 2] = values[4, 5] = 77
    data = png_bytes(values, 8, 0, trns=struct.pack(">H", 77))
    expected = np.stack([values, np.where(values == 77, 0, 255)], axis=-1)
    assert np.array_equal(np.array(Image.open(io.BytesIO(data)).convert("LA")), expected)
    write_bytes("gray8_trns.png", data)
    save_expected("gray8_trns.bin", expected)

    # 16-bit RGB with values whose two bytes differ (catches byte-order mistakes).
    values = pattern(5, 7, 3, 65535, seed=31)
    values[0, 0] = [0x0102, 0xFF00, 0x00FF]
    write_bytes("rgb16.png", png_bytes(values, 16, 2))
    save_expected("rgb16.bin", values, bits=16)

    # Adam7 interlaced: 8-bit RGB (checked by Pillow) and 16-bit RGBA.
    values = pattern(13, 19, 3, 255, seed=41)
    data = png_bytes(values, 8, 2, interlace=True)
    assert np.array_equal(pillow_array(data), values)
    write_bytes("interlaced_rgb8.png", data)
    save_expected("interlaced_rgb8.bin", values)
    values = pattern(11, 10, 4, 65535, seed=42)
    write_bytes("interlaced_rgba16.png", png_bytes(values, 16, 6, interlace=True))
    save_expected("interlaced_rgba16.bin", values, bits=16)

    # Text chunks written by Pillow: tEXt (Latin-1), zTXt (compressed) and iTXt (UTF-8).
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "Plain ASCII title")
    info.add_text("Comment", "caf\u00e9 in Latin-1")
    info.add_text("Zipped", "zTXt " * 40, zip=True)
    info.add_itxt("DiffusionRestore", '{"model":"\u00fc\u2192\u732b","steps":20}')
    buffer = io.BytesIO()
    Image.fromarray(pattern(4, 4, 3, 255, seed=51).astype(np.uint8)).save(buffer, "PNG", pnginfo=info)
    write_bytes("text_chunks.png", buffer.getvalue())


def jpeg_bytes(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def make_jpeg_fixtures():
    rgb = Image.fromarray(pattern(32, 48, 3, 255, seed=61).astype(np.uint8))
    gray = Image.fromarray(pattern(24, 40, 1, 255, seed=62)[:, :, 0].astype(np.uint8))
    fixtures = {
        "baseline_rgb.jpg": jpeg_bytes(rgb, quality=90),
        "progressive_rgb.jpg": jpeg_bytes(rgb, quality=85, progressive=True),
        "gray.jpg": jpeg_bytes(gray, quality=90),
    }
    for name, data in fixtures.items():
        write_bytes(name, data)
        save_expected(name.replace(".jpg", ".bin"), pillow_array(data))
    # A JPEG named .png: the reader must go by the magic bytes, not the extension.
    write_bytes("jpeg_named.png", fixtures["gray.jpg"])

    # Adobe (inverted) CMYK, as Photoshop and Pillow write it; expected = Pillow's convert("RGB").
    cmyk = Image.fromarray(pattern(16, 24, 4, 255, seed=63).astype(np.uint8), "CMYK")
    data = jpeg_bytes(cmyk, quality=95)
    decoded = Image.open(io.BytesIO(data))
    assert decoded.mode == "CMYK"
    write_bytes("cmyk_adobe.jpg", data)
    save_expected("cmyk_adobe.bin", np.array(decoded.convert("RGB")))

    # EXIF orientation 1-8 (little-endian TIFF, written by Pillow), one big-endian hand-made 6, and
    # one with a malformed IFD that must be ignored. Expected = Pillow's decode + exif_transpose.
    base = Image.fromarray(pattern(16, 24, 3, 255, seed=64).astype(np.uint8))
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        data = jpeg_bytes(base, quality=92, exif=exif.tobytes())
        upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
        write_bytes(f"orientation{orientation}.jpg", data)
        save_expected(f"orientation{orientation}.bin", np.array(upright))
    big_endian = (b"Exif\0\0MM\0\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
                  + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0))
    data = jpeg_bytes(base, quality=92, exif=big_endian)
    write_bytes("orientation6_big_endian.jpg", data)
    save_expected("orientation6_big_endian.bin", np.array(ImageOps.exif_transpose(Image.open(io.BytesIO(data)))))
    # IFD claims 500 entries but the payload ends after one unrelated entry.
    malformed = (b"Exif\0\0II\x2a\0" + struct.pack("<I", 8) + struct.pack("<H", 500)
                 + struct.pack("<HHIHH", 0x010F, 2, 4, 0x4142, 0x4300))
    data = jpeg_bytes(base, quality=92, exif=malformed)
    write_bytes("malformed_exif.jpg", data)
    save_expected("malformed_exif.bin", pillow_array(data))
    return fixtures["baseline_rgb.jpg"]


def make_bad_inputs(jpeg):
    good_png = png_bytes(pattern(32, 32, 3, 255, seed=71), 8, 2)
    write_bytes("truncated.png", good_png[: len(good_png) * 3 // 5])
    write_bytes("truncated.jpg", jpeg[: len(jpeg) // 2])
    # Flip one byte inside the compressed IDAT payload (zlib fails before the chunk CRC is checked).
    corrupt = bytearray(good_png)
    idat = corrupt.index(b"IDAT")
    corrupt[idat + 20] ^= 0xFF
    write_bytes("corrupt_idat.png", bytes(corrupt))
    # Intact data but a wrong IHDR checksum.
    corrupt = bytearray(good_png)
    corrupt[8 + 8 + 13] ^= 0xFF
    write_bytes("corrupt_crc.png", bytes(corrupt))
    # A JPEG start-of-image followed by garbage where the markers should be.
    write_bytes("corrupt.jpg", b"\xff\xd8\xff" + bytes(np.random.default_rng(72).integers(0, 256, 200, dtype=np.uint8)))
    # Headers claiming absurd or zero sizes (valid CRCs, no pixel data worth the name).
    iend = chunk(b"IEND", b"")
    write_bytes("huge_dimensions.png", b"\x89PNG\r\n\x1a\n" + ihdr(100000, 100000, 8, 2) + iend)
    write_bytes("zero_width.png", b"\x89PNG\r\n\x1a\n" + ihdr(0, 16, 8, 2) + iend)
    # The baseline JPEG with its SOF0 frame size patched to 60000×60000.
    patched = bytearray(jpeg)
    sof = patched.index(b"\xff\xc0")
    patched[sof + 5: sof + 9] = struct.pack(">HH", 60000, 60000)
    write_bytes("huge_dimensions.jpg", bytes(patched))
    # Not PNG/JPEG: a real GIF, a text file with a .png name, and an empty file.
    buffer = io.BytesIO()
    Image.new("P", (4, 4)).save(buffer, "GIF")
    write_bytes("not_supported.gif", buffer.getvalue())
    write_bytes("text_named.png", b"This is a text file, not a PNG.\n")
    write_bytes("empty.png", b"")


def main():
    os.makedirs(OUT, exist_ok=True)
    make_png_fixtures()
    jpeg = make_jpeg_fixtures()
    make_bad_inputs(jpeg)
    total = sum(os.path.getsize(os.path.join(OUT, name)) for name in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} fixtures, {total} bytes, into {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
