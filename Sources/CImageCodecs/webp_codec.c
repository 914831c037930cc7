// WebP through Debian's libwebp (decode, encode) and libwebpmux (our text chunk). libwebp reports errors by
// status codes, never by longjmp, so no setjmp is needed here.
#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include "codec_common.h"

/// Our text entries live in one chunk of this FourCC: "key\0value\0" repeated (value UTF-8).
static const char *const kTextChunk = "DRtx";

/// Appends "key\0value\0" for every entry into one malloc'ed buffer.
static uint8_t *webp_pack_texts(const CICTextEntry *texts, size_t count, size_t *length) {
    size_t total = 0;
    for (size_t i = 0; i < count; i++) total += strlen(texts[i].key) + strlen(texts[i].value) + 2;
    uint8_t *buffer = malloc(total > 0 ? total : 1);
    if (buffer == NULL) return NULL;
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
        size_t k = strlen(texts[i].key) + 1, v = strlen(texts[i].value) + 1;
        memcpy(buffer + at, texts[i].key, k);
        memcpy(buffer + at + k, texts[i].value, v);
        at += k + v;
    }
    *length = total;
    return buffer;
}

/// Splits our text chunk into `out->texts` (ignoring a malformed tail).
static void webp_unpack_texts(const uint8_t *bytes, size_t length, CICImage *out) {
    size_t pairs = 0, nuls = 0;
    for (size_t i = 0; i < length; i++) if (bytes[i] == 0) nuls++;
    pairs = nuls / 2;
    if (pairs == 0) return;
    out->texts = calloc(pairs, sizeof(CICTextChunk));
    if (out->texts == NULL) return;   // text is optional: without memory, drop it.
    size_t at = 0;
    for (size_t p = 0; p < pairs; p++) {
        size_t k = strnlen((const char *)bytes + at, length - at);
        if (at + k + 1 >= length) break;
        size_t v = strnlen((const char *)bytes + at + k + 1, length - at - k - 1);
        if (at + k + 1 + v >= length) break;
        CICTextChunk *chunk = &out->texts[out->text_count];
        chunk->key = strndup((const char *)bytes + at, k);
        chunk->value = strndup((const char *)bytes + at + k + 1, v);
        if (chunk->key == NULL || chunk->value == NULL) { free(chunk->key); free(chunk->value); break; }
        chunk->value_length = v;
        chunk->is_utf8 = 1;
        out->text_count++;
        at += k + v + 2;
    }
}

CICStatus cic_webp_decode(const uint8_t *data, size_t length, uint64_t max_pixels, CICImage *out,
                          char *message, size_t message_capacity) {
    if (message != NULL && message_capacity > 0) message[0] = '\0';
    memset(out, 0, sizeof *out);
    WebPBitstreamFeatures features;
    VP8StatusCode code = WebPGetFeatures(data, length, &features);
    if (code != VP8_STATUS_OK) {
        cic_set_message(message, message_capacity, "not a decodable WebP (libwebp status %d)", (int)code);
        return code == VP8_STATUS_NOT_ENOUGH_DATA ? CIC_ERROR_TRUNCATED : code == VP8_STATUS_UNSUPPORTED_FEATURE ? CIC_ERROR_UNSUPPORTED : CIC_ERROR_CORRUPT;
    }
    out->width = (uint32_t)features.width;
    out->height = (uint32_t)features.height;
    CICStatus status = cic_check_dimensions(out->width, out->height, max_pixels, message, message_capacity);
    if (status != CIC_OK) return status;
    if (features.has_animation) {
        cic_set_message(message, message_capacity, "animated WebP files are not supported");
        return CIC_ERROR_UNSUPPORTED;
    }
    int width = 0, height = 0;
    uint8_t *pixels = features.has_alpha ? WebPDecodeRGBA(data, length, &width, &height) : WebPDecodeRGB(data, length, &width, &height);
    if (pixels == NULL) {
        cic_set_message(message, message_capacity, "the WebP image data could not be decoded");
        return CIC_ERROR_CORRUPT;
    }
    out->channels = features.has_alpha ? 4 : 3;
    size_t bytes = (size_t)width * (size_t)height * out->channels;
    out->pixels = malloc(bytes);
    if (out->pixels == NULL) { WebPFree(pixels); cic_set_message(message, message_capacity, "out of memory"); return CIC_ERROR_OUT_OF_MEMORY; }
    memcpy(out->pixels, pixels, bytes);
    WebPFree(pixels);
    out->bit_depth = 8;
    out->source_bit_depth = 8;
    WebPData bitstream = { data, length };
    WebPMux *mux = WebPMuxCreate(&bitstream, 0);
    if (mux != NULL) {
        WebPData chunk;
        if (WebPMuxGetChunk(mux, kTextChunk, &chunk) == WEBP_MUX_OK) webp_unpack_texts(chunk.bytes, chunk.size, out);
        WebPMuxDelete(mux);
    }
    return CIC_OK;
}

CICStatus cic_webp_encode(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t channels, int quality,
                          const CICTextEntry *texts, size_t text_count, uint8_t **out_data, size_t *out_length,
                          char *message, size_t message_capacity) {
    if (message != NULL && message_capacity > 0) message[0] = '\0';
    if (out_data == NULL || out_length == NULL) return CIC_ERROR_INVALID_ARGUMENT;
    *out_data = NULL;
    *out_length = 0;
    if (pixels == NULL || width == 0 || height == 0 || width > WEBP_MAX_DIMENSION || height > WEBP_MAX_DIMENSION ||
        (channels != 3 && channels != 4) || quality < 1 || quality > 100) {
        cic_set_message(message, message_capacity, "invalid WebP encoder arguments (%ux%u, %u channels, quality %d; at most %d pixels a side)",
                        width, height, channels, quality, WEBP_MAX_DIMENSION);
        return CIC_ERROR_INVALID_ARGUMENT;
    }
    uint8_t *encoded = NULL;
    int stride = (int)(width * channels);
    size_t size;
    if (quality == 100) {   // quality 100 means lossless
        size = channels == 4 ? WebPEncodeLosslessRGBA(pixels, (int)width, (int)height, stride, &encoded)
                             : WebPEncodeLosslessRGB(pixels, (int)width, (int)height, stride, &encoded);
    } else {
        size = channels == 4 ? WebPEncodeRGBA(pixels, (int)width, (int)height, stride, (float)quality, &encoded)
                             : WebPEncodeRGB(pixels, (int)width, (int)height, stride, (float)quality, &encoded);
    }
    if (size == 0 || encoded == NULL) {
        cic_set_message(message, message_capacity, "the WebP encoder failed");
        return CIC_ERROR_OUT_OF_MEMORY;
    }
    if (text_count == 0) {
        *out_data = malloc(size);
        if (*out_data == NULL) { WebPFree(encoded); return CIC_ERROR_OUT_OF_MEMORY; }
        memcpy(*out_data, encoded, size);
        *out_length = size;
        WebPFree(encoded);
        return CIC_OK;
    }
    size_t packed_length = 0;
    uint8_t *packed = webp_pack_texts(texts, text_count, &packed_length);
    WebPData image = { encoded, size }, chunk = { packed, packed_length }, assembled = { NULL, 0 };
    WebPMux *mux = packed != NULL ? WebPMuxNew() : NULL;
    CICStatus status = CIC_OK;
    if (mux == NULL || WebPMuxSetImage(mux, &image, 0) != WEBP_MUX_OK || WebPMuxSetChunk(mux, kTextChunk, &chunk, 0) != WEBP_MUX_OK ||
        WebPMuxAssemble(mux, &assembled) != WEBP_MUX_OK) {
        cic_set_message(message, message_capacity, "could not add the text chunk to the WebP file");
        status = CIC_ERROR_OUT_OF_MEMORY;
    } else {
        *out_data = malloc(assembled.size);
        if (*out_data == NULL) status = CIC_ERROR_OUT_OF_MEMORY;
        else { memcpy(*out_data, assembled.bytes, assembled.size); *out_length = assembled.size; }
    }
    WebPDataClear(&assembled);
    if (mux != NULL) WebPMuxDelete(mux);
    free(packed);
    WebPFree(encoded);
    return status;
}
