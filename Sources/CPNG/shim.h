#include <png.h>

// PNG_IMAGE_SIZE and friends are macros Swift cannot import.
static inline size_t cpng_image_row_stride(const png_image *image) {
    return PNG_IMAGE_ROW_STRIDE(*image);
}
static inline size_t cpng_image_buffer_size(const png_image *image) {
    return PNG_IMAGE_SIZE(*image);
}
