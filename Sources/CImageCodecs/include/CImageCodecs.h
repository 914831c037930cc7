// CImageCodecs: setjmp-safe C wrappers around libpng and libjpeg-turbo, and libwebp.
//
// Both libraries report fatal errors by longjmp. Every setjmp lives inside these wrappers, so no longjmp
// ever crosses a Swift frame: each function returns a CICStatus and, on failure, a one-line NUL-terminated
// message in the caller's buffer. Decoders work on an in-memory copy of the file and encoders produce an
// in-memory file; the Swift side owns all file-system access.
#ifndef CIMAGECODECS_H
#define CIMAGECODECS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Outcome of a codec call.
typedef enum CICStatus {
    CIC_OK = 0,
    CIC_ERROR_CORRUPT = 1,       ///< Malformed data (bad chunk, bad marker, bad CRC, bad compressed stream).
    CIC_ERROR_TRUNCATED = 2,     ///< The data ends before the image does.
    CIC_ERROR_ZERO_SIZE = 3,     ///< Width or height is zero.
    CIC_ERROR_TOO_LARGE = 4,     ///< width × height exceeds the caller's pixel limit (checked before allocating).
    CIC_ERROR_UNSUPPORTED = 5,   ///< Valid but unsupported (e.g. an unknown JPEG colour space).
    CIC_ERROR_OUT_OF_MEMORY = 6, ///< malloc failed.
    CIC_ERROR_INVALID_ARGUMENT = 7, ///< Bad parameters from the caller (encoders).
    CIC_ERROR_IO = 8             ///< The output sink failed (streaming encoder).
} CICStatus;

/// One text chunk read from a PNG (tEXt, zTXt or iTXt). Strings are malloc'ed and NUL-terminated.
typedef struct CICTextChunk {
    char *key;          ///< Keyword, Latin-1.
    char *value;        ///< Text; `value_length` bytes plus a NUL.
    size_t value_length;
    int is_utf8;        ///< 1 for iTXt (UTF-8), 0 for tEXt/zTXt (Latin-1).
} CICTextChunk;

/// A decoded image: interleaved samples, rows top to bottom, no padding.
typedef struct CICImage {
    uint32_t width;
    uint32_t height;
    uint32_t channels;          ///< 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
    uint32_t bit_depth;         ///< 8 (uint8_t samples) or 16 (uint16_t samples in host byte order).
    uint32_t source_bit_depth;  ///< Bit depth stored in the file (1, 2, 4, 8 or 16).
    void *pixels;               ///< malloc'ed, width × height × channels samples.
    CICTextChunk *texts;        ///< malloc'ed array of PNG text chunks (NULL for JPEG).
    size_t text_count;
    uint8_t *exif;              ///< JPEG: malloc'ed TIFF payload of the APP1 Exif marker (after "Exif\0\0"), or NULL.
    size_t exif_length;
} CICImage;

/// One key/value pair for the PNG encoder. Both strings are NUL-terminated; `key` is 1-79 Latin-1
/// characters, `value` is UTF-8 (written as an uncompressed iTXt chunk).
typedef struct CICTextEntry {
    const char *key;
    const char *value;
} CICTextEntry;

/// Decodes a PNG held in memory. Refuses images with a zero dimension or more than `max_pixels` pixels
/// before allocating pixel memory (the IHDR dimensions are also left in `out->width/height` then).
/// Palette, tRNS and 1/2/4-bit gray are expanded to 8 bits; 16-bit stays 16-bit in host byte order.
/// On success the caller frees `out` with cic_image_free; on failure `out` holds no allocations.
CICStatus cic_png_decode(const uint8_t *data, size_t length, uint64_t max_pixels, CICImage *out,
                         char *message, size_t message_capacity);

/// Decodes a JPEG held in memory (baseline or progressive; gray, YCbCr/RGB, or CMYK/YCCK converted to
/// RGB, inverted Adobe CMYK included). The pixel limit is checked right after the header. The EXIF
/// orientation is not applied here: the APP1 Exif payload is returned in `out->exif`.
CICStatus cic_jpeg_decode(const uint8_t *data, size_t length, uint64_t max_pixels, CICImage *out,
                          char *message, size_t message_capacity);

/// Frees everything a decoder allocated in `image` and zeroes it. Safe on a zeroed struct.
void cic_image_free(CICImage *image);

/// Encodes interleaved samples (8-bit, or 16-bit in host order) as a PNG in memory; `channels` is 1-4,
/// `bit_depth` 8 or 16. Text entries become iTXt chunks before the image data. On success `*out_data`
/// is malloc'ed (free with cic_buffer_free).
CICStatus cic_png_encode(const void *pixels, uint32_t width, uint32_t height, uint32_t channels,
                         uint32_t bit_depth, const CICTextEntry *texts, size_t text_count,
                         uint8_t **out_data, size_t *out_length, char *message, size_t message_capacity);

/// Fills row `y` (width × channels samples, 8-bit or 16-bit in host order); returns 0 on success.
typedef int (*CICPNGRowProvider)(void *context, uint32_t y, uint8_t *row);
/// Receives encoded bytes; returns 0 on success.
typedef int (*CICPNGSink)(void *context, const uint8_t *bytes, size_t count);

/// Encodes a PNG row by row: rows come from `rows`, the encoded bytes go to `sink` as they are produced,
/// so no whole-image buffer exists (large outputs in bounded memory). Same layouts as cic_png_encode.
CICStatus cic_png_encode_rows(uint32_t width, uint32_t height, uint32_t channels, uint32_t bit_depth,
                              const CICTextEntry *texts, size_t text_count, CICPNGRowProvider rows,
                              void *rows_context, CICPNGSink sink, void *sink_context, char *message,
                              size_t message_capacity);

/// Encodes 8-bit gray (`channels` 1) or RGB (`channels` 3) samples as a baseline JPEG in memory with the
/// given quality (1-100). On success `*out_data` is malloc'ed (free with cic_buffer_free).
CICStatus cic_jpeg_encode(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t channels,
                          int quality, uint8_t **out_data, size_t *out_length,
                          char *message, size_t message_capacity);

/// As cic_jpeg_encode, with each text entry written as a COM marker "key\0value" (value UTF-8, each entry
/// at most 65 533 bytes); cic_jpeg_decode returns such markers in `out->texts` (others under the key "comment").
CICStatus cic_jpeg_encode_text(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t channels,
                               int quality, const CICTextEntry *texts, size_t text_count, uint8_t **out_data,
                               size_t *out_length, char *message, size_t message_capacity);

/// Decodes a still WebP held in memory (lossy or lossless) to 8-bit RGB or RGBA; the pixel limit is checked
/// from the header before decoding. Our text chunk ("DRtx": "key\0value\0" pairs) comes back in `out->texts`.
CICStatus cic_webp_decode(const uint8_t *data, size_t length, uint64_t max_pixels, CICImage *out,
                          char *message, size_t message_capacity);

/// Encodes 8-bit RGB (`channels` 3) or RGBA (4) as WebP: lossy at `quality` 1-99, lossless at 100. Text
/// entries go into one "DRtx" chunk (extended format, through libwebpmux).
CICStatus cic_webp_encode(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t channels, int quality,
                          const CICTextEntry *texts, size_t text_count, uint8_t **out_data, size_t *out_length,
                          char *message, size_t message_capacity);

/// Frees a buffer returned by an encoder.
void cic_buffer_free(void *buffer);

#ifdef __cplusplus
}
#endif

#endif
