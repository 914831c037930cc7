// Internal helpers shared by the PNG and JPEG wrappers (not part of the public header).
#ifndef CIMAGECODECS_COMMON_H
#define CIMAGECODECS_COMMON_H

#include <stdarg.h>
#include <stdio.h>
#include "CImageCodecs.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define CIC_HOST_IS_LITTLE_ENDIAN 0
#else
#define CIC_HOST_IS_LITTLE_ENDIAN 1
#endif

/// Writes a formatted one-line message into the caller's buffer (if any), truncating as needed.
static inline void cic_set_message(char *message, size_t capacity, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static inline void cic_set_message(char *message, size_t capacity, const char *format, ...) {
    if (message == NULL || capacity == 0) return;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(message, capacity, format, arguments);
    va_end(arguments);
}

/// Refuses zero dimensions and width × height above `max_pixels`; called before any pixel allocation.
static inline CICStatus cic_check_dimensions(uint64_t width, uint64_t height, uint64_t max_pixels,
                                             char *message, size_t capacity) {
    if (width == 0 || height == 0) {
        cic_set_message(message, capacity, "image has a zero dimension (%llux%llu)",
                        (unsigned long long)width, (unsigned long long)height);
        return CIC_ERROR_ZERO_SIZE;
    }
    // Both factors are below 2^32, so the product cannot overflow 64 bits.
    if (width * height > max_pixels) {
        cic_set_message(message, capacity, "image is %llux%llu = %llu pixels, over the limit of %llu pixels",
                        (unsigned long long)width, (unsigned long long)height,
                        (unsigned long long)(width * height), (unsigned long long)max_pixels);
        return CIC_ERROR_TOO_LARGE;
    }
    return CIC_OK;
}

#endif
