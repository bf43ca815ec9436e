/* hashkit.h: FNV-1a and CRC-32, one-shot and incremental. */
#ifndef HASHKIT_H
#define HASHKIT_H

#include <stddef.h>
#include <stdint.h>
#include <democonfig.h>

/* Start values for the incremental forms: h = hk_*_update(h, data, n)... */
#define HK_FNV1A32_INIT UINT32_C(0x811c9dc5)
#define HK_FNV1A64_INIT UINT64_C(0xcbf29ce484222325)
#define HK_CRC32_INIT UINT32_C(0)

DEMO_API uint32_t hk_fnv1a32_update(uint32_t h, const void *data, size_t n);
DEMO_API uint64_t hk_fnv1a64_update(uint64_t h, const void *data, size_t n);
/* CRC-32 as in zlib, gzip and PNG (reflected polynomial 0xedb88320). */
DEMO_API uint32_t hk_crc32_update(uint32_t crc, const void *data, size_t n);

DEMO_API uint32_t hk_fnv1a32(const void *data, size_t n);
DEMO_API uint64_t hk_fnv1a64(const void *data, size_t n);
DEMO_API uint32_t hk_crc32(const void *data, size_t n);

#endif /* HASHKIT_H */
