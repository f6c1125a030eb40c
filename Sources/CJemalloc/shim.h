#ifndef KENSHO_CJEMALLOC_SHIM_H
#define KENSHO_CJEMALLOC_SHIM_H
#include <jemalloc/jemalloc.h>
#endif
