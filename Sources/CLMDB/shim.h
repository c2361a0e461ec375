// CLMDB: the system LMDB header (Debian liblmdb-dev) as a Swift module.
// Macros that Swift cannot import are re-exported here as inline functions.
#ifndef TERN_CLMDB_SHIM_H
#define TERN_CLMDB_SHIM_H
#include <lmdb.h>

static inline const char *tern_mdb_version_string(void) { return MDB_VERSION_STRING; }
#endif
