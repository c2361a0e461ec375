// CSodium: the system libsodium header (Debian libsodium-dev) as a Swift module.
#ifndef TERN_CSODIUM_SHIM_H
#define TERN_CSODIUM_SHIM_H
#include <sodium.h>
#endif
