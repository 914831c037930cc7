// Deallocation entry points shared by both codecs.
#include <stdlib.h>
#include <string.h>
#include "CImageCodecs.h"

void cic_image_free(CICImage *image) {
    if (image == NULL) return;
    free(image->pixels);
    for (size_t i = 0; i < image->text_count; i++) {
        free(image->texts[i].key);
        free(image->texts[i].value);
    }
    free(image->texts);
    free(image->exif);
    memset(image, 0, sizeof *image);
}

void cic_buffer_free(void *buffer) {
    free(buffer);
}
