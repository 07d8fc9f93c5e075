#include <png.h>

// PNG_IMAGE_SIZE and friends are macros Swift cannot import.
static inline size_t cpng_image_row_stride(const png_image *image) {
    return PNG_IMAGE_ROW_STRIDE(*image);
}
static inline size_t cpng_image_buffer_size(const png_image *image) {
    return PNG_IMAGE_SIZE(*image);
}

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Reading through libpng's full API, for exact 16-bit samples: the simplified API converts
// 16-bit data by the file's gamma. Errors longjmp back into this C function only, never through
// Swift frames; the message is copied into the caller's buffer.
typedef struct {
    const unsigned char *data;
    size_t size;
    size_t offset;
    unsigned char *pixels;
    png_bytep *rows;
    char *error;
} cpng_reader;

static inline void cpng_read_bytes(png_structp png, png_bytep out, size_t count) {
    cpng_reader *r = (cpng_reader *)png_get_io_ptr(png);
    if (count > r->size - r->offset) png_error(png, "the file ends early (truncated)");
    memcpy(out, r->data + r->offset, count);
    r->offset += count;
}

static inline void cpng_on_error(png_structp png, png_const_charp message) {
    cpng_reader *r = (cpng_reader *)png_get_error_ptr(png);
    snprintf(r->error, 256, "%s", message);
    png_longjmp(png, 1);
}

static inline void cpng_on_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;
}

/// Reads the header (width, height, bit depth, colour type) and, when `samples` is not NULL, the
/// pixels of a gray 8- or 16-bit image as 16-bit values, row-major. Returns 1, or 0 with `error`
/// (256 bytes) saying why.
static inline int cpng_read_gray(const void *data, size_t size, uint32_t *width, uint32_t *height, int *depth,
                                 int *color_type, uint16_t *samples, char *error) {
    error[0] = 0;
    // On the heap, not the stack: what it holds after a longjmp is then well defined.
    cpng_reader *reader = (cpng_reader *)calloc(1, sizeof *reader);
    if (!reader) return 0;
    *reader = (cpng_reader){(const unsigned char *)data, size, 0, NULL, NULL, error};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, reader, cpng_on_error, cpng_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        free(reader->pixels);
        free(reader->rows);
        free(reader);
        if (png) png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        return 0;
    }
    cpng_reader *const r = reader;
    png_set_read_fn(png, r, cpng_read_bytes);
    png_read_info(png, info);
    *width = png_get_image_width(png, info);
    *height = png_get_image_height(png, info);
    *depth = png_get_bit_depth(png, info);
    *color_type = png_get_color_type(png, info);
    if (samples && *color_type == PNG_COLOR_TYPE_GRAY && (*depth == 8 || *depth == 16)) {
        png_set_interlace_handling(png);
        png_read_update_info(png, info);
        size_t stride = png_get_rowbytes(png, info);
        r->pixels = (unsigned char *)malloc(stride * *height);
        r->rows = (png_bytep *)malloc(sizeof(png_bytep) * *height);
        if (!r->pixels || !r->rows) png_error(png, "out of memory");
        for (uint32_t y = 0; y < *height; y++) r->rows[y] = r->pixels + y * stride;
        png_read_image(png, r->rows);
        size_t n = (size_t)*width * *height;
        for (size_t i = 0; i < n; i++) {
            size_t y = i / *width, x = i % *width;
            const unsigned char *p = r->rows[y];
            samples[i] = *depth == 16 ? (uint16_t)((p[2 * x] << 8) | p[2 * x + 1]) : p[x];
        }
    }
    free(r->pixels);
    free(r->rows);
    free(r);
    png_destroy_read_struct(&png, &info, NULL);
    return 1;
}
