/* mpfarm: SLIP framing of the ESP ROM/stub serial protocol
 * (/work/shared/protocols/esp-rom-serial.md "Framing").
 *
 * Every frame starts and ends with C0; inside, C0 is sent as DB DC and DB as
 * DB DD. The decoder is strict, as esptool's slip_reader: a byte other than
 * C0 between frames is an error ("invalid head of packet"), and so is DB
 * followed by anything but DC/DD. The one leniency is `syncing`: before the
 * first frame after a reset the chip prints a boot log and some ROMs emit a
 * junk byte, so while syncing is set bytes outside a frame are skipped. */
#ifndef RUNNER_ESP_SLIP_H
#define RUNNER_ESP_SLIP_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Largest decoded frame: a 0x4000-byte stub block + 16-byte data header +
 * 8-byte command header, with room to spare. */
#define RUNNER_ESP_SLIP_MAX 0x4100u

struct runner_esp_slip {
	uint8_t frame[RUNNER_ESP_SLIP_MAX];
	size_t len;             /* bytes of the frame decoded so far / of the finished frame */
	int in_frame, escape;
	int syncing;            /* skip bytes outside frames (boot log, junk) */
	size_t skipped;         /* bytes skipped while syncing since the last reset */
};

/* Encode len bytes of in as one frame into out (cap bytes). Returns the
 * encoded length; if it exceeds cap nothing usable was written (at most
 * 2 * len + 2 is ever needed). */
size_t runner_esp_slip_encode(uint8_t *out, size_t cap, const void *in, size_t len);

/* Start over: no frame in progress; syncing as given. */
void runner_esp_slip_reset(struct runner_esp_slip *d, int syncing);

/* Feed one byte: 1 = a frame is complete (d->frame, d->len; it may be empty),
 * 0 = more bytes needed, FARM_EPROTO on a framing error (invalid head,
 * bad escape), FARM_ELIMIT on a frame longer than RUNNER_ESP_SLIP_MAX. After
 * an error or a complete frame the decoder waits for the next C0. */
int runner_esp_slip_byte(struct runner_esp_slip *d, uint8_t b, struct farm_err *e);

#endif
