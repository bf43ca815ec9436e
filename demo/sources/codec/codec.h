/* codec.h: hex and base64 (RFC 4648) encoding into a strbuf. */
#ifndef CODEC_H
#define CODEC_H

#include <stddef.h>
#include <democonfig.h>
#include <strbuf.h>

/* The encoders append to out. */
DEMO_API void codec_hex_encode(strbuf *out, const void *data, size_t n);
DEMO_API void codec_b64_encode(strbuf *out, const void *data, size_t n);

/*
 * The decoders append the decoded bytes to out and return 0, or return -1
 * on malformed input and leave out as it was. Base64 input may contain
 * whitespace (line breaks), which is skipped.
 */
DEMO_API int codec_hex_decode(strbuf *out, const char *s, size_t n);
DEMO_API int codec_b64_decode(strbuf *out, const char *s, size_t n);

#endif /* CODEC_H */
