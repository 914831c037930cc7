// JPEG decoding and encoding through libjpeg(-turbo). Fatal errors arrive in error_exit, which longjmps
// back into the function that called setjmp here; all allocations are tracked in a context struct whose
// address libjpeg holds, and are released after the jump.
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "codec_common.h"

/// Progressive JPEGs with more scans than this are refused (a known decompression-time DoS).
#define CIC_JPEG_MAX_SCANS 500

typedef struct JPEGErrorContext {
    struct jpeg_error_mgr manager;   // First member: libjpeg casts cinfo->err to this struct.
    jmp_buf jump;
    CICStatus status;
    char *message;
    size_t message_capacity;
} JPEGErrorContext;

static void jpeg_fail(j_common_ptr cinfo, CICStatus status, const char *prefix) {
    JPEGErrorContext *error = (JPEGErrorContext *)cinfo->err;
    if (error->status == CIC_OK) {
        char text[JMSG_LENGTH_MAX] = {0};
        (*cinfo->err->format_message)(cinfo, text);
        error->status = status;
        cic_set_message(error->message, error->message_capacity, "%s: %s", prefix, text);
    }
    longjmp(error->jump, 1);
}

static void jpeg_error_exit(j_common_ptr cinfo) {
    int code = cinfo->err->msg_code;
    CICStatus status = code == JERR_OUT_OF_MEMORY ? CIC_ERROR_OUT_OF_MEMORY
                     : code == JERR_BAD_PRECISION ? CIC_ERROR_UNSUPPORTED   // e.g. 12-bit JPEG
                     : CIC_ERROR_CORRUPT;
    jpeg_fail(cinfo, status, cinfo->is_decompressor ? "libjpeg" : "libjpeg encoder");
}

/// Warnings are ignored except premature end of data, which libjpeg would otherwise paper over with gray.
static void jpeg_emit_message(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        jpeg_fail(cinfo, CIC_ERROR_TRUNCATED, "libjpeg");
    }
    if (level < 0) cinfo->err->num_warnings++;
}

static void jpeg_limit_scans(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr decompressor = (j_decompress_ptr)cinfo;
    if (decompressor->progressive_mode && decompressor->input_scan_number > CIC_JPEG_MAX_SCANS) {
        JPEGErrorContext *error = (JPEGErrorContext *)cinfo->err;
        if (error->status == CIC_OK) {
            error->status = CIC_ERROR_CORRUPT;
            cic_set_message(error->message, error->message_capacity,
                            "more than %d progressive JPEG scans", CIC_JPEG_MAX_SCANS);
        }
        longjmp(error->jump, 1);
    }
}

static void jpeg_init_error_context(JPEGErrorContext *error, char *message, size_t capacity) {
    jpeg_std_error(&error->manager);
    error->manager.error_exit = jpeg_error_exit;
    error->manager.emit_message = jpeg_emit_message;
    error->status = CIC_OK;
    error->message = message;
    error->message_capacity = capacity;
}

typedef struct JPEGDecodeContext {
    struct jpeg_decompress_struct cinfo;
    JPEGErrorContext error;
    struct jpeg_progress_mgr progress;
    uint8_t *pixels;
    uint8_t *row;            // CMYK scanline before conversion to RGB.
    uint8_t *exif;
    size_t exif_length;
    CICTextChunk *texts;     // COM markers: "key\0value" (ours), or plain comments under the key "comment".
    size_t text_count;
} JPEGDecodeContext;

/// Copies every COM marker into `context->texts` (optional: without memory, they are dropped).
static void jpeg_copy_comments(JPEGDecodeContext *context) {
    size_t count = 0;
    for (jpeg_saved_marker_ptr m = context->cinfo.marker_list; m != NULL; m = m->next) if (m->marker == JPEG_COM) count++;
    if (count == 0) return;
    context->texts = calloc(count, sizeof(CICTextChunk));
    if (context->texts == NULL) return;
    for (jpeg_saved_marker_ptr m = context->cinfo.marker_list; m != NULL; m = m->next) {
        if (m->marker != JPEG_COM || m->data == NULL) continue;
        const char *bytes = (const char *)m->data;
        size_t length = m->data_length, key_length = strnlen(bytes, length);
        CICTextChunk *chunk = &context->texts[context->text_count];
        if (key_length < length) {
            chunk->key = strndup(bytes, key_length);
            chunk->value = strndup(bytes + key_length + 1, length - key_length - 1);
        } else {
            chunk->key = strdup("comment");
            chunk->value = strndup(bytes, length);
        }
        if (chunk->key == NULL || chunk->value == NULL) { free(chunk->key); free(chunk->value); chunk->key = chunk->value = NULL; return; }
        chunk->value_length = strlen(chunk->value);
        chunk->is_utf8 = 1;
        context->text_count++;
    }
}

/// Copies the TIFF payload of the first APP1 "Exif\0\0" marker, if any.
static void jpeg_copy_exif(JPEGDecodeContext *context) {
    for (jpeg_saved_marker_ptr marker = context->cinfo.marker_list; marker != NULL; marker = marker->next) {
        if (marker->marker != JPEG_APP0 + 1 || marker->data_length < 6 || marker->data == NULL) continue;
        if (memcmp(marker->data, "Exif\0\0", 6) != 0) continue;
        size_t length = marker->data_length - 6;
        if (length == 0) return;
        context->exif = malloc(length);
        if (context->exif == NULL) return;   // EXIF is optional: without memory, ignore it.
        memcpy(context->exif, marker->data + 6, length);
        context->exif_length = length;
        return;
    }
}

/// (a × b) / 255, rounded, for 8-bit a and b.
static uint8_t multiply_255(unsigned a, unsigned b) {
    return (uint8_t)((a * b + 127) / 255);
}

static CICStatus jpeg_decode_with_libjpeg(JPEGDecodeContext *context, const uint8_t *data, size_t length,
                                          uint64_t max_pixels, CICImage *out) {
    struct jpeg_decompress_struct *cinfo = &context->cinfo;
    if (setjmp(context->error.jump)) {
        return context->error.status == CIC_OK ? CIC_ERROR_CORRUPT : context->error.status;
    }
    jpeg_create_decompress(cinfo);
    cinfo->progress = &context->progress;
    jpeg_mem_src(cinfo, (unsigned char *)data, (unsigned long)length);
    jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xffff);
    jpeg_save_markers(cinfo, JPEG_COM, 0xffff);
    if (jpeg_read_header(cinfo, TRUE) != JPEG_HEADER_OK) {
        cic_set_message(context->error.message, context->error.message_capacity,
                        "no image in the JPEG data");
        return CIC_ERROR_CORRUPT;
    }
    out->width = cinfo->image_width;
    out->height = cinfo->image_height;
    CICStatus status = cic_check_dimensions(cinfo->image_width, cinfo->image_height, max_pixels,
                                            context->error.message, context->error.message_capacity);
    if (status != CIC_OK) return status;
    jpeg_copy_exif(context);
    jpeg_copy_comments(context);

    int is_cmyk = 0;
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo->out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        cinfo->out_color_space = JCS_RGB;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo->out_color_space = JCS_CMYK;
        is_cmyk = 1;
        break;
    default:
        cic_set_message(context->error.message, context->error.message_capacity,
                        "unsupported JPEG colour space (%d components)", cinfo->num_components);
        return CIC_ERROR_UNSUPPORTED;
    }
    cinfo->dct_method = JDCT_ISLOW;
    jpeg_start_decompress(cinfo);

    uint32_t decoded_channels = (uint32_t)cinfo->output_components;
    uint32_t channels = is_cmyk ? 3 : decoded_channels;
    if (decoded_channels != (is_cmyk ? 4u : (cinfo->out_color_space == JCS_GRAYSCALE ? 1u : 3u))) {
        cic_set_message(context->error.message, context->error.message_capacity,
                        "unsupported JPEG layout (%u output components)", decoded_channels);
        return CIC_ERROR_UNSUPPORTED;
    }
    size_t width = cinfo->output_width, height = cinfo->output_height;
    size_t row_bytes = width * channels;
    context->pixels = malloc(row_bytes * height);
    if (is_cmyk) context->row = malloc(width * 4);
    if (context->pixels == NULL || (is_cmyk && context->row == NULL)) {
        cic_set_message(context->error.message, context->error.message_capacity,
                        "out of memory for a %zux%zu JPEG", width, height);
        return CIC_ERROR_OUT_OF_MEMORY;
    }
    // Adobe CMYK/YCCK JPEGs (Photoshop, Pillow) store inverted ink values: 255 means no ink.
    int inverted = cinfo->saw_Adobe_marker;
    while (cinfo->output_scanline < cinfo->output_height) {
        size_t y = cinfo->output_scanline;
        uint8_t *target = context->pixels + y * row_bytes;
        JSAMPROW row = is_cmyk ? context->row : target;
        if (jpeg_read_scanlines(cinfo, &row, 1) != 1) {
            cic_set_message(context->error.message, context->error.message_capacity,
                            "JPEG data ends before row %zu", y);
            return CIC_ERROR_TRUNCATED;
        }
        if (!is_cmyk) continue;
        for (size_t x = 0; x < width; x++) {
            const uint8_t *ink = context->row + 4 * x;
            unsigned white_k = inverted ? ink[3] : 255u - ink[3];
            for (int c = 0; c < 3; c++) {
                unsigned white_c = inverted ? ink[c] : 255u - ink[c];
                target[3 * x + (size_t)c] = multiply_255(white_c, white_k);
            }
        }
    }
    jpeg_finish_decompress(cinfo);
    out->width = (uint32_t)width;
    out->height = (uint32_t)height;
    out->channels = channels;
    out->bit_depth = 8;
    out->source_bit_depth = 8;
    return CIC_OK;
}

CICStatus cic_jpeg_decode(const uint8_t *data, size_t length, uint64_t max_pixels, CICImage *out,
                          char *message, size_t message_capacity) {
    if (out == NULL) return CIC_ERROR_INVALID_ARGUMENT;
    memset(out, 0, sizeof *out);
    if (message != NULL && message_capacity > 0) message[0] = '\0';
    if (data == NULL || length < 3 || data[0] != 0xff || data[1] != 0xd8) {
        if (data != NULL && length < 3) {
            cic_set_message(message, message_capacity, "only %zu bytes of JPEG data", length);
            return CIC_ERROR_TRUNCATED;
        }
        cic_set_message(message, message_capacity, "no JPEG start-of-image marker");
        return CIC_ERROR_CORRUPT;
    }
    JPEGDecodeContext *context = calloc(1, sizeof(JPEGDecodeContext));
    if (context == NULL) {
        cic_set_message(message, message_capacity, "out of memory creating a JPEG decoder");
        return CIC_ERROR_OUT_OF_MEMORY;
    }
    jpeg_init_error_context(&context->error, message, message_capacity);
    context->cinfo.err = &context->error.manager;
    context->progress.progress_monitor = jpeg_limit_scans;
    CICStatus status = jpeg_decode_with_libjpeg(context, data, length, max_pixels, out);
    jpeg_destroy_decompress(&context->cinfo);
    free(context->row);
    if (status != CIC_OK) {
        free(context->pixels);
        free(context->exif);
        for (size_t i = 0; i < context->text_count; i++) { free(context->texts[i].key); free(context->texts[i].value); }
        free(context->texts);
    } else {
        out->pixels = context->pixels;
        out->exif = context->exif;
        out->exif_length = context->exif_length;
        out->texts = context->texts;
        out->text_count = context->text_count;
    }
    free(context);
    return status;
}

/// A growable in-memory destination owned by us (jpeg_mem_dest's buffer ownership on error is awkward).
typedef struct JPEGMemoryDestination {
    struct jpeg_destination_mgr manager;   // First member: libjpeg casts cinfo->dest to this struct.
    uint8_t *buffer;
    size_t capacity;
    size_t length;
} JPEGMemoryDestination;

typedef struct JPEGEncodeContext {
    struct jpeg_compress_struct cinfo;
    JPEGErrorContext error;
    JPEGMemoryDestination destination;
} JPEGEncodeContext;

static void jpeg_destination_init(j_compress_ptr cinfo) {
    JPEGMemoryDestination *destination = (JPEGMemoryDestination *)cinfo->dest;
    destination->capacity = 65536;
    destination->buffer = malloc(destination->capacity);
    if (destination->buffer == NULL) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 0);
    destination->manager.next_output_byte = destination->buffer;
    destination->manager.free_in_buffer = destination->capacity;
}

static boolean jpeg_destination_grow(j_compress_ptr cinfo) {
    JPEGMemoryDestination *destination = (JPEGMemoryDestination *)cinfo->dest;
    size_t old_capacity = destination->capacity;
    uint8_t *grown = realloc(destination->buffer, old_capacity * 2);
    if (grown == NULL) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 0);
    destination->buffer = grown;
    destination->capacity = old_capacity * 2;
    destination->manager.next_output_byte = grown + old_capacity;
    destination->manager.free_in_buffer = old_capacity;
    return TRUE;
}

static void jpeg_destination_term(j_compress_ptr cinfo) {
    JPEGMemoryDestination *destination = (JPEGMemoryDestination *)cinfo->dest;
    destination->length = destination->capacity - destination->manager.free_in_buffer;
}

static CICStatus jpeg_encode_with_libjpeg(JPEGEncodeContext *context, const uint8_t *pixels, uint32_t width,
                                          uint32_t height, uint32_t channels, int quality,
                                          const CICTextEntry *texts, size_t text_count) {
    struct jpeg_compress_struct *cinfo = &context->cinfo;
    if (setjmp(context->error.jump)) {
        return context->error.status == CIC_OK ? CIC_ERROR_INVALID_ARGUMENT : context->error.status;
    }
    jpeg_create_compress(cinfo);
    context->destination.manager.init_destination = jpeg_destination_init;
    context->destination.manager.empty_output_buffer = jpeg_destination_grow;
    context->destination.manager.term_destination = jpeg_destination_term;
    cinfo->dest = &context->destination.manager;
    cinfo->image_width = width;
    cinfo->image_height = height;
    cinfo->input_components = (int)channels;
    cinfo->in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(cinfo);
    jpeg_set_quality(cinfo, quality, TRUE);
    cinfo->optimize_coding = TRUE;
    cinfo->dct_method = JDCT_ISLOW;
    jpeg_start_compress(cinfo, TRUE);
    for (size_t i = 0; i < text_count; i++) {
        size_t k = strlen(texts[i].key), v = strlen(texts[i].value);
        uint8_t *marker = malloc(k + 1 + v);
        if (marker == NULL) { context->error.status = CIC_ERROR_OUT_OF_MEMORY; return CIC_ERROR_OUT_OF_MEMORY; }
        memcpy(marker, texts[i].key, k + 1);
        memcpy(marker + k + 1, texts[i].value, v);
        jpeg_write_marker(cinfo, JPEG_COM, marker, (unsigned int)(k + 1 + v));
        free(marker);
    }
    size_t row_bytes = (size_t)width * channels;
    while (cinfo->next_scanline < cinfo->image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo->next_scanline * row_bytes);
        jpeg_write_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_compress(cinfo);
    return CIC_OK;
}

CICStatus cic_jpeg_encode(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t channels,
                          int quality, uint8_t **out_data, size_t *out_length,
                          char *message, size_t message_capacity) {
    return cic_jpeg_encode_text(pixels, width, height, channels, quality, NULL, 0, out_data, out_length, message,
                                message_capacity);
}

CICStatus cic_jpeg_encode_text(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t channels,
                               int quality, const CICTextEntry *texts, size_t text_count, uint8_t **out_data,
                               size_t *out_length, char *message, size_t message_capacity) {
    if (message != NULL && message_capacity > 0) message[0] = '\0';
    if (out_data == NULL || out_length == NULL) return CIC_ERROR_INVALID_ARGUMENT;
    *out_data = NULL;
    *out_length = 0;
    if (pixels == NULL || width == 0 || height == 0 || width > JPEG_MAX_DIMENSION || height > JPEG_MAX_DIMENSION ||
        (channels != 1 && channels != 3) || quality < 1 || quality > 100) {
        cic_set_message(message, message_capacity,
                        "invalid JPEG encoder arguments (%ux%u, %u channels, quality %d; at most %ld pixels a side)",
                        width, height, channels, quality, (long)JPEG_MAX_DIMENSION);
        return CIC_ERROR_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < text_count; i++) {
        if (texts[i].key == NULL || texts[i].value == NULL || strlen(texts[i].key) + 1 + strlen(texts[i].value) > 65533) {
            cic_set_message(message, message_capacity, "a JPEG comment holds at most 65533 bytes (text entry %zu)", i);
            return CIC_ERROR_INVALID_ARGUMENT;
        }
    }
    JPEGEncodeContext *context = calloc(1, sizeof(JPEGEncodeContext));
    if (context == NULL) {
        cic_set_message(message, message_capacity, "out of memory creating a JPEG encoder");
        return CIC_ERROR_OUT_OF_MEMORY;
    }
    jpeg_init_error_context(&context->error, message, message_capacity);
    context->cinfo.err = &context->error.manager;
    CICStatus status = jpeg_encode_with_libjpeg(context, pixels, width, height, channels, quality, texts, text_count);
    jpeg_destroy_compress(&context->cinfo);
    if (status != CIC_OK) {
        free(context->destination.buffer);
    } else {
        *out_data = context->destination.buffer;
        *out_length = context->destination.length;
    }
    free(context);
    return status;
}
