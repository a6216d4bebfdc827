/* libFuzzer target: the DfuSe parser, then every writer and back
 * (fuzz_common.h). A mutated file almost never keeps a valid suffix CRC, so
 * each input is also parsed with its last 4 bytes replaced by the right CRC:
 * that copy reaches the prefix, target and element checks. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t dfu_crc(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
	}
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_one(FARM_IMG_DFUSE, data, size);
	if (size < 16 || getenv("MPFARM_FUZZ_REQUIRE_OK"))
		return 0;
	uint8_t *copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	uint32_t crc = dfu_crc(copy, size - 4);
	for (int i = 0; i < 4; i++)
		copy[size - 4 + i] = (uint8_t)(crc >> (8 * i));
	fuzz_one(FARM_IMG_DFUSE, copy, size);
	free(copy);
	return 0;
}
