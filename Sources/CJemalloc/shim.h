// jemalloc replaces malloc/free for the whole `tern` process by being linked into it.
// Only its control interface is declared here: importing jemalloc.h itself would declare
// malloc and friends a second time next to Glibc's.
#include <stddef.h>

int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
