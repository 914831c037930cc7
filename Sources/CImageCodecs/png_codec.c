// PNG decoding and encoding through libpng. libpng reports fatal errors by longjmp; the only setjmp is in
// the functions below, and every resource lives in a context struct whose address libpng holds (so it is
// in memory, not in a register, when the longjmp lands) and is released after the jump.
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec_common.h"

/// Bytes of the largest ancillary chunk libpng may buffer (text, ICC profiles): bounds memory use.
#define CIC_PNG_CHUNK_MALLOC_MAX ((png_alloc_size_t)64 * 1024 * 1024)

typedef struct PNGDecodeContext {
    const uint8_t *data;
    size_t length;
    size_t offset;
    CICStatus status;           // Set before png_error when the cause is known; otherwise CORRUPT.
    char *message;
    size_t message_capacity;
    uint8_t *pixels;
    png_bytep *rows;
    CICTextChunk *texts;
    size_t text_count;
} PNGDecodeContext;

static void png_decode_error(png_structp png, png_const_charp text) {
    PNGDecodeContext *context = (PNGDecodeContext *)png_get_error_ptr(png);
    if (context->status == CIC_OK) {
        context->status = CIC_ERROR_CORRUPT;
        cic_set_message(context->message, context->message_capacity, "libpng: %s", text);
    }
    png_longjmp(png, 1);
}

static void png_ignore_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

static void png_read_from_memory(png_structp png, png_bytep destination, size_t count) {
    PNGDecodeContext *context = (PNGDecodeContext *)png_get_io_ptr(png);
    if (count > context->length - context->offset) {
        context->status = CIC_ERROR_TRUNCATED;
        cic_set_message(context->message, context->message_capacity,
                        "the PNG data ends after %zu bytes", context->length);
        png_error(png, "truncated");
    }
    memcpy(destination, context->data + context->offset, count);
    context->offset += count;
}

static uint32_t read_big_endian_32(const uint8_t *bytes) {
    return ((uint32_t)bytes[0] << 24) | ((uint32_t)bytes[1] << 16) | ((uint32_t)bytes[2] << 8) | bytes[3];
}

/// Checks the signature and the IHDR dimensions from the raw bytes, before libpng allocates anything.
static CICStatus png_check_header(const uint8_t *data, size_t length, uint64_t max_pixels, CICImage *out,
                                  char *message, size_t capacity) {
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    if (length < 8 || memcmp(data, signature, 8) != 0) {
        cic_set_message(message, capacity, "bad PNG signature");
        return CIC_ERROR_CORRUPT;
    }
    if (length < 8 + 8 + 13) {
        cic_set_message(message, capacity, "the PNG data ends after %zu bytes", length);
        return CIC_ERROR_TRUNCATED;
    }
    if (read_big_endian_32(data + 8) != 13 || memcmp(data + 12, "IHDR", 4) != 0) {
        cic_set_message(message, capacity, "the first PNG chunk is not a valid IHDR");
        return CIC_ERROR_CORRUPT;
    }
    out->width = read_big_endian_32(data + 16);
    out->height = read_big_endian_32(data + 20);
    return cic_check_dimensions(out->width, out->height, max_pixels, message, capacity);
}

/// Copies libpng's text chunks into malloc'ed CICTextChunks.
static CICStatus png_copy_text(png_structp png, png_infop info, PNGDecodeContext *context) {
    png_textp text = NULL;
    int count = png_get_text(png, info, &text, NULL);
    if (count <= 0 || text == NULL) return CIC_OK;
    context->texts = calloc((size_t)count, sizeof(CICTextChunk));
    if (context->texts == NULL) return CIC_ERROR_OUT_OF_MEMORY;
    for (int i = 0; i < count; i++) {
        int is_utf8 = text[i].compression >= PNG_ITXT_COMPRESSION_NONE;
        const char *value = text[i].text != NULL ? text[i].text : "";
        size_t length = is_utf8 ? text[i].itxt_length : text[i].text_length;
        if (length == 0) length = strlen(value);
        CICTextChunk *chunk = &context->texts[context->text_count];
        chunk->key = strdup(text[i].key != NULL ? text[i].key : "");
        chunk->value = malloc(length + 1);
        if (chunk->key == NULL || chunk->value == NULL) {
            free(chunk->key);
            free(chunk->value);
            chunk->key = NULL;
            chunk->value = NULL;
            return CIC_ERROR_OUT_OF_MEMORY;
        }
        memcpy(chunk->value, value, length);
        chunk->value[length] = '\0';
        chunk->value_length = length;
        chunk->is_utf8 = is_utf8;
        context->text_count++;
    }
    return CIC_OK;
}

static void png_free_decode_context(PNGDecodeContext *context) {
    free(context->pixels);
    free(context->rows);
    for (size_t i = 0; i < context->text_count; i++) {
        free(context->texts[i].key);
        free(context->texts[i].value);
    }
    free(context->texts);
    context->pixels = NULL;
    context->rows = NULL;
    context->texts = NULL;
    context->text_count = 0;
}

/// The libpng calls, in their own frame; `context` holds every allocation so the caller can free it.
static CICStatus png_decode_with_libpng(PNGDecodeContext *context, png_structp png, png_infop info,
                                        uint64_t max_pixels, CICImage *out) {
    if (setjmp(png_jmpbuf(png))) {
        return context->status == CIC_OK ? CIC_ERROR_CORRUPT : context->status;
    }
    uint32_t dimension_limit = max_pixels > 0x7fffffffu ? 0x7fffffffu : (uint32_t)max_pixels;
    png_set_user_limits(png, dimension_limit, dimension_limit);
    png_set_chunk_malloc_max(png, CIC_PNG_CHUNK_MALLOC_MAX);
    png_set_read_fn(png, context, png_read_from_memory);
    png_read_info(png, info);

    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    CICStatus status = cic_check_dimensions(width, height, max_pixels, context->message,
                                            context->message_capacity);
    if (status != CIC_OK) return status;

    out->source_bit_depth = color_type == PNG_COLOR_TYPE_PALETTE ? 8 : (uint32_t)bit_depth;
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (bit_depth == 16 && CIC_HOST_IS_LITTLE_ENDIAN) png_set_swap(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    uint32_t channels = png_get_channels(png, info);
    uint32_t depth = png_get_bit_depth(png, info);
    size_t row_bytes = (size_t)width * channels * (depth / 8);
    if (channels < 1 || channels > 4 || (depth != 8 && depth != 16) || png_get_rowbytes(png, info) != row_bytes) {
        context->status = CIC_ERROR_UNSUPPORTED;
        cic_set_message(context->message, context->message_capacity,
                        "unsupported PNG layout (%u channels, %u bits)", channels, depth);
        return context->status;
    }
    context->pixels = malloc(row_bytes * height);
    context->rows = malloc(sizeof(png_bytep) * height);
    if (context->pixels == NULL || context->rows == NULL) {
        cic_set_message(context->message, context->message_capacity, "out of memory for a %ux%u PNG",
                        width, height);
        return CIC_ERROR_OUT_OF_MEMORY;
    }
    for (png_uint_32 y = 0; y < height; y++) context->rows[y] = context->pixels + (size_t)y * row_bytes;
    png_read_image(png, context->rows);
    png_read_end(png, info);
    if (png_copy_text(png, info, context) != CIC_OK) {
        cic_set_message(context->message, context->message_capacity, "out of memory for PNG text chunks");
        return CIC_ERROR_OUT_OF_MEMORY;
    }
    out->width = width;
    out->height = height;
    out->channels = channels;
    out->bit_depth = depth;
    return CIC_OK;
}

CICStatus cic_png_decode(const uint8_t *data, size_t length, uint64_t max_pixels, CICImage *out,
                         char *message, size_t message_capacity) {
    if (out == NULL) return CIC_ERROR_INVALID_ARGUMENT;
    memset(out, 0, sizeof *out);
    if (message != NULL && message_capacity > 0) message[0] = '\0';
    if (data == NULL) length = 0;
    CICStatus status = png_check_header(data, length, max_pixels, out, message, message_capacity);
    if (status != CIC_OK) return status;

    PNGDecodeContext context = {0};
    context.data = data;
    context.length = length;
    context.message = message;
    context.message_capacity = message_capacity;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &context, png_decode_error, png_ignore_warning);
    png_infop info = png != NULL ? png_create_info_struct(png) : NULL;
    if (png == NULL || info == NULL) {
        png_destroy_read_struct(&png, &info, NULL);
        cic_set_message(message, message_capacity, "out of memory creating a PNG decoder");
        return CIC_ERROR_OUT_OF_MEMORY;
    }
    status = png_decode_with_libpng(&context, png, info, max_pixels, out);
    png_destroy_read_struct(&png, &info, NULL);
    if (status != CIC_OK) {
        png_free_decode_context(&context);
        return status;
    }
    out->pixels = context.pixels;
    out->texts = context.texts;
    out->text_count = context.text_count;
    free(context.rows);
    return CIC_OK;
}

static void png_flush_nothing(png_structp png) {
    (void)png;
}

/// The in-memory encoder is the streaming one with a growing buffer as its sink.
typedef struct PNGMemorySink {
    uint8_t *buffer;
    size_t length;
    size_t capacity;
} PNGMemorySink;

static int png_memory_sink(void *context, const uint8_t *bytes, size_t count) {
    PNGMemorySink *sink = (PNGMemorySink *)context;
    if (count > sink->capacity - sink->length) {
        size_t capacity = sink->capacity > 0 ? sink->capacity : 65536;
        while (count > capacity - sink->length) {
            if (capacity > SIZE_MAX / 2) return 1;
            capacity *= 2;
        }
        uint8_t *grown = realloc(sink->buffer, capacity);
        if (grown == NULL) return 1;
        sink->buffer = grown;
        sink->capacity = capacity;
    }
    memcpy(sink->buffer + sink->length, bytes, count);
    sink->length += count;
    return 0;
}

typedef struct PNGPixelRows {
    const uint8_t *pixels;
    size_t row_bytes;
} PNGPixelRows;

static int png_pixel_rows(void *context, uint32_t y, uint8_t *row) {
    PNGPixelRows *rows = (PNGPixelRows *)context;
    memcpy(row, rows->pixels + (size_t)y * rows->row_bytes, rows->row_bytes);
    return 0;
}

CICStatus cic_png_encode(const void *pixels, uint32_t width, uint32_t height, uint32_t channels,
                         uint32_t bit_depth, const CICTextEntry *texts, size_t text_count,
                         uint8_t **out_data, size_t *out_length, char *message, size_t message_capacity) {
    if (message != NULL && message_capacity > 0) message[0] = '\0';
    if (out_data == NULL || out_length == NULL) return CIC_ERROR_INVALID_ARGUMENT;
    *out_data = NULL;
    *out_length = 0;
    if (pixels == NULL) {
        cic_set_message(message, message_capacity, "invalid PNG encoder arguments (no pixels)");
        return CIC_ERROR_INVALID_ARGUMENT;
    }
    PNGMemorySink sink = {0};
    PNGPixelRows rows = {(const uint8_t *)pixels, (size_t)width * channels * (bit_depth / 8)};
    CICStatus status = cic_png_encode_rows(width, height, channels, bit_depth, texts, text_count, png_pixel_rows, &rows,
                                           png_memory_sink, &sink, message, message_capacity);
    if (status == CIC_ERROR_IO) {  // the memory sink fails only when it cannot grow
        status = CIC_ERROR_OUT_OF_MEMORY;
        cic_set_message(message, message_capacity, "out of memory encoding a PNG");
    }
    if (status != CIC_OK) {
        free(sink.buffer);
        return status;
    }
    *out_data = sink.buffer;
    *out_length = sink.length;
    return CIC_OK;
}

// ---- Streaming encoder: rows come from a callback, bytes go to a sink (no whole-image buffers) ----

typedef struct PNGStreamContext {
    CICStatus status;
    char *message;
    size_t message_capacity;
    CICPNGSink sink;
    void *sink_context;
    png_bytep row;
    png_text *texts;
} PNGStreamContext;

static void png_stream_error(png_structp png, png_const_charp text) {
    PNGStreamContext *context = (PNGStreamContext *)png_get_error_ptr(png);
    if (context->status == CIC_OK) {
        context->status = CIC_ERROR_INVALID_ARGUMENT;
        cic_set_message(context->message, context->message_capacity, "PNG encoder: %s", text);
    }
    png_longjmp(png, 1);
}

static void png_write_to_sink(png_structp png, png_bytep bytes, size_t count) {
    PNGStreamContext *context = (PNGStreamContext *)png_get_io_ptr(png);
    if (context->sink(context->sink_context, bytes, count) != 0) {
        context->status = CIC_ERROR_IO;
        cic_set_message(context->message, context->message_capacity, "writing the PNG failed");
        png_error(png, "write failed");
    }
}

static CICStatus png_stream_with_libpng(PNGStreamContext *context, png_structp png, png_infop info, uint32_t width,
                                        uint32_t height, uint32_t channels, uint32_t bit_depth,
                                        const CICTextEntry *texts, size_t text_count,
                                        CICPNGRowProvider rows, void *rows_context) {
    if (setjmp(png_jmpbuf(png))) {
        return context->status == CIC_OK ? CIC_ERROR_INVALID_ARGUMENT : context->status;
    }
    static const int color_types[4] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                       PNG_COLOR_TYPE_RGB_ALPHA};
    png_set_write_fn(png, context, png_write_to_sink, png_flush_nothing);
    png_set_IHDR(png, info, width, height, (int)bit_depth, color_types[channels - 1], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (text_count > 0) {
        context->texts = calloc(text_count, sizeof(png_text));
        if (context->texts == NULL) {
            context->status = CIC_ERROR_OUT_OF_MEMORY;
            cic_set_message(context->message, context->message_capacity, "out of memory encoding a PNG");
            return context->status;
        }
        for (size_t i = 0; i < text_count; i++) {
            context->texts[i].compression = PNG_ITXT_COMPRESSION_NONE;
            context->texts[i].key = (png_charp)texts[i].key;
            context->texts[i].text = (png_charp)texts[i].value;
            context->texts[i].itxt_length = strlen(texts[i].value);
        }
        png_set_text(png, info, context->texts, (int)text_count);
    }
    png_write_info(png, info);
    if (bit_depth == 16 && CIC_HOST_IS_LITTLE_ENDIAN) png_set_swap(png);
    context->row = malloc((size_t)width * channels * (bit_depth / 8));
    if (context->row == NULL) {
        context->status = CIC_ERROR_OUT_OF_MEMORY;
        cic_set_message(context->message, context->message_capacity, "out of memory encoding a PNG");
        return context->status;
    }
    for (uint32_t y = 0; y < height; y++) {
        if (rows(rows_context, y, context->row) != 0) {
            context->status = CIC_ERROR_INVALID_ARGUMENT;
            cic_set_message(context->message, context->message_capacity, "the row provider failed at row %u", y);
            return context->status;
        }
        png_write_row(png, context->row);
    }
    png_write_end(png, NULL);
    return CIC_OK;
}

CICStatus cic_png_encode_rows(uint32_t width, uint32_t height, uint32_t channels, uint32_t bit_depth,
                              const CICTextEntry *texts, size_t text_count, CICPNGRowProvider rows,
                              void *rows_context, CICPNGSink sink, void *sink_context, char *message,
                              size_t message_capacity) {
    if (message != NULL && message_capacity > 0) message[0] = '\0';
    if (rows == NULL || sink == NULL || width == 0 || height == 0 || width > 0x7fffffffu || height > 0x7fffffffu ||
        channels < 1 || channels > 4 || (bit_depth != 8 && bit_depth != 16) || (text_count > 0 && texts == NULL)) {
        cic_set_message(message, message_capacity, "invalid PNG encoder arguments (%ux%u, %u channels, %u bits)",
                        width, height, channels, bit_depth);
        return CIC_ERROR_INVALID_ARGUMENT;
    }
    PNGStreamContext context = {0};
    context.message = message;
    context.message_capacity = message_capacity;
    context.sink = sink;
    context.sink_context = sink_context;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &context, png_stream_error, png_ignore_warning);
    png_infop info = png != NULL ? png_create_info_struct(png) : NULL;
    if (png == NULL || info == NULL) {
        png_destroy_write_struct(&png, &info);
        cic_set_message(message, message_capacity, "out of memory creating a PNG encoder");
        return CIC_ERROR_OUT_OF_MEMORY;
    }
    CICStatus status = png_stream_with_libpng(&context, png, info, width, height, channels, bit_depth, texts,
                                              text_count, rows, rows_context);
    png_destroy_write_struct(&png, &info);
    free(context.row);
    free(context.texts);
    return status;
}
