/* mpfarm: UTF-8 decoding shared by the report writers (JUnit, JSON Lines). */
#ifndef FARM_UTF8_H
#define FARM_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length (2..4) of the valid multi-byte UTF-8 sequence at s, with its code
 * point in *cp; 0 if s[0] does not start one (ASCII, overlong forms,
 * surrogates, beyond U+10FFFF, truncated). */
size_t farm_utf8_seq(const unsigned char *s, size_t len, uint32_t *cp);

#endif
