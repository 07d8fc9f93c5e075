#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

// libtiff reports through handlers that print to stderr by default. These keep the last error of
// the calling thread instead, so that a failure can name what libtiff found; warnings (unknown
// tags, vendor fields) are dropped: they are not the user's problem.
static inline char *ctiff_error_buffer(void) {
    static _Thread_local char buffer[512];
    return buffer;
}

static inline void ctiff_on_error(thandle_t handle, const char *module, const char *format, va_list args) {
    (void)handle;
    (void)module;
    vsnprintf(ctiff_error_buffer(), 512, format, args);
}

static inline void ctiff_on_warning(thandle_t handle, const char *module, const char *format, va_list args) {
    (void)handle; (void)module; (void)format; (void)args;
}

static inline void ctiff_install_handlers(void) {
    TIFFSetErrorHandler(NULL);
    TIFFSetWarningHandler(NULL);
    TIFFSetErrorHandlerExt(ctiff_on_error);
    TIFFSetWarningHandlerExt(ctiff_on_warning);
}

static inline const char *ctiff_last_error(void) { return ctiff_error_buffer(); }
static inline void ctiff_clear_error(void) { ctiff_error_buffer()[0] = 0; }

// A TIFF read from memory: the bytes are the caller's and must outlive the handle.
typedef struct {
    const unsigned char *data;
    toff_t size;
    toff_t offset;
} ctiff_memory;

static inline tmsize_t ctiff_read(thandle_t h, void *buffer, tmsize_t size) {
    ctiff_memory *m = (ctiff_memory *)h;
    if (size < 0 || m->offset >= m->size) return 0;
    toff_t left = m->size - m->offset;
    toff_t n = (toff_t)size < left ? (toff_t)size : left;
    memcpy(buffer, m->data + m->offset, (size_t)n);
    m->offset += n;
    return (tmsize_t)n;
}

static inline tmsize_t ctiff_write(thandle_t h, void *buffer, tmsize_t size) {
    (void)h; (void)buffer; (void)size;
    return -1;
}

static inline toff_t ctiff_seek(thandle_t h, toff_t offset, int whence) {
    ctiff_memory *m = (ctiff_memory *)h;
    toff_t base = whence == SEEK_CUR ? m->offset : whence == SEEK_END ? m->size : 0;
    m->offset = base + offset;
    return m->offset;
}

static inline int ctiff_close(thandle_t h) {
    free(h);
    return 0;
}

static inline toff_t ctiff_size(thandle_t h) { return ((ctiff_memory *)h)->size; }

static inline int ctiff_map(thandle_t h, void **base, toff_t *size) {
    ctiff_memory *m = (ctiff_memory *)h;
    *base = (void *)m->data;
    *size = m->size;
    return 1;
}

static inline void ctiff_unmap(thandle_t h, void *base, toff_t size) {
    (void)h; (void)base; (void)size;
}

static inline TIFF *ctiff_open_memory(const void *data, size_t size, const char *name) {
    ctiff_memory *m = (ctiff_memory *)malloc(sizeof *m);
    if (!m) return NULL;
    m->data = (const unsigned char *)data;
    m->size = (toff_t)size;
    m->offset = 0;
    TIFF *tiff = TIFFClientOpen(name, "rm", (thandle_t)m, ctiff_read, ctiff_write, ctiff_seek, ctiff_close,
                                ctiff_size, ctiff_map, ctiff_unmap);
    if (!tiff) free(m);
    return tiff;
}

// Fields whose C types Swift's variadic import cannot express.
static inline int ctiff_get_u32(TIFF *tiff, uint32_t tag, uint32_t *value) { return TIFFGetField(tiff, tag, value); }
static inline int ctiff_get_u16(TIFF *tiff, uint32_t tag, uint16_t *value) { return TIFFGetField(tiff, tag, value); }
static inline int ctiff_get_u16_defaulted(TIFF *tiff, uint32_t tag, uint16_t *value) { return TIFFGetFieldDefaulted(tiff, tag, value); }
static inline int ctiff_get_extra_samples(TIFF *tiff, uint16_t *count) {
    uint16_t *types = NULL;
    return TIFFGetFieldDefaulted(tiff, TIFFTAG_EXTRASAMPLES, count, &types);
}

// For writing (the tests make every variant of a real image with libtiff itself).
static inline int ctiff_set_u16(TIFF *tiff, uint32_t tag, uint16_t value) { return TIFFSetField(tiff, tag, value); }
static inline int ctiff_set_u32(TIFF *tiff, uint32_t tag, uint32_t value) { return TIFFSetField(tiff, tag, value); }
static inline int ctiff_set_colormap(TIFF *tiff, uint16_t *red, uint16_t *green, uint16_t *blue) {
    return TIFFSetField(tiff, TIFFTAG_COLORMAP, red, green, blue);
}
