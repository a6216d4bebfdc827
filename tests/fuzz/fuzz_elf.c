/* libFuzzer target: the ELF parser, then every writer and back (fuzz_common.h). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_one(FARM_IMG_ELF, data, size);
}
