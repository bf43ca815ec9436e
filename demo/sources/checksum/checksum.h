/* checksum.h: the size, CRC-32 and FNV-1a 64 of a stream, in one pass. */
#ifndef CHECKSUM_H
#define CHECKSUM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <democonfig.h>
#include <hashkit.h>
#include <strbuf.h>

typedef struct checksum {
	uint64_t size;
	uint32_t crc32;
	uint64_t fnv1a64;
} checksum;

#define CHECKSUM_INIT { 0, HK_CRC32_INIT, HK_FNV1A64_INIT }

DEMO_API void checksum_update(checksum *c, const void *data, size_t n);
/* checksum_stream reads f to its end: 0, or -1 on a read error (see errno). */
DEMO_API int checksum_stream(checksum *c, FILE *f);
/* checksum_format appends "crc32:<8 hex> fnv1a64:<16 hex>". */
DEMO_API void checksum_format(const checksum *c, strbuf *out);

#endif /* CHECKSUM_H */
