#include "hashkit.h"

uint32_t hk_fnv1a32_update(uint32_t h, const void *data, size_t n)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= UINT32_C(0x01000193);
	}
	return h;
}

uint64_t hk_fnv1a64_update(uint64_t h, const void *data, size_t n)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

/*
 * Bit by bit rather than with a table: the demo hashes a few kilobytes at
 * most, and this form needs no initialisation and is obviously correct.
 */
uint32_t hk_crc32_update(uint32_t crc, const void *data, size_t n)
{
	const unsigned char *p = data;
	crc = ~crc;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (UINT32_C(0xedb88320) & (0u - (crc & 1u)));
	}
	return ~crc;
}

uint32_t hk_fnv1a32(const void *data, size_t n)
{
	return hk_fnv1a32_update(HK_FNV1A32_INIT, data, n);
}

uint64_t hk_fnv1a64(const void *data, size_t n)
{
	return hk_fnv1a64_update(HK_FNV1A64_INIT, data, n);
}

uint32_t hk_crc32(const void *data, size_t n)
{
	return hk_crc32_update(HK_CRC32_INIT, data, n);
}
