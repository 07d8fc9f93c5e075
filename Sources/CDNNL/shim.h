#include <oneapi/dnnl/dnnl.h>

// DNNL_MEMORY_ALLOCATE / DNNL_MEMORY_NONE are pointer-valued macros Swift cannot import.
static inline void *cdnnl_memory_allocate(void) { return DNNL_MEMORY_ALLOCATE; }
static inline void *cdnnl_memory_none(void) { return DNNL_MEMORY_NONE; }
