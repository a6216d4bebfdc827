/* mpfarm: SLIP framing for the ESP serial protocol (see esp_slip.h). */
#include "esp_slip.h"

#include <string.h>

#define SLIP_END 0xC0
#define SLIP_ESC 0xDB
#define SLIP_ESC_END 0xDC
#define SLIP_ESC_ESC 0xDD

size_t runner_esp_slip_encode(uint8_t *out, size_t cap, const void *in, size_t len)
{
	const uint8_t *p = in;
	size_t k = 0;
#define PUT(v)                                                                                     \
	do {                                                                                       \
		if (k < cap)                                                                       \
			out[k] = (uint8_t)(v);                                                     \
		k++;                                                                               \
	} while (0)
	PUT(SLIP_END);
	for (size_t i = 0; i < len; i++) {
		if (p[i] == SLIP_END) {
			PUT(SLIP_ESC);
			PUT(SLIP_ESC_END);
		} else if (p[i] == SLIP_ESC) {
			PUT(SLIP_ESC);
			PUT(SLIP_ESC_ESC);
		} else {
			PUT(p[i]);
		}
	}
	PUT(SLIP_END);
#undef PUT
	return k;
}

void runner_esp_slip_reset(struct runner_esp_slip *d, int syncing)
{
	d->len = 0;
	d->in_frame = 0;
	d->escape = 0;
	d->syncing = syncing;
	d->skipped = 0;
}

int runner_esp_slip_byte(struct runner_esp_slip *d, uint8_t b, struct farm_err *e)
{
	if (!d->in_frame) {
		if (b == SLIP_END) {
			d->in_frame = 1;
			d->escape = 0;
			d->len = 0;
			return 0;
		}
		if (d->syncing) {
			d->skipped++;
			return 0;
		}
		return farm_err_set(e, FARM_EPROTO,
				    "invalid head of packet (0x%02x): the chip sent something that is "
				    "not a SLIP frame (noise, or not in download mode?)", b);
	}
	if (d->escape) {
		d->escape = 0;
		if (b != SLIP_ESC_END && b != SLIP_ESC_ESC) {
			d->in_frame = 0;
			return farm_err_set(e, FARM_EPROTO,
					    "invalid SLIP escape 0xdb 0x%02x in a frame from the chip", b);
		}
		b = b == SLIP_ESC_END ? SLIP_END : SLIP_ESC;
	} else if (b == SLIP_ESC) {
		d->escape = 1;
		return 0;
	} else if (b == SLIP_END) {
		d->in_frame = 0;
		return 1;
	}
	if (d->len >= sizeof d->frame) {
		d->in_frame = 0;
		return farm_err_set(e, FARM_ELIMIT, "SLIP frame from the chip longer than %u bytes",
				    RUNNER_ESP_SLIP_MAX);
	}
	d->frame[d->len++] = b;
	return 0;
}
