/* mpfarm: the DTR/RTS sequences that reset an ESP8266/ESP32-family chip into
 * its ROM download mode (or out of it into the application), with esptool's
 * timings (/work/shared/protocols/bootloader-entry.md).
 *
 * Dev boards wire RTS to EN (reset) and DTR to GPIO0 (boot strap) through two
 * transistors: an asserted line pulls its pin low only while the other line
 * is not asserted. The chip enters download mode when EN rises while GPIO0
 * is low.
 *
 *   CLASSIC     DTR=0; RTS=1; 100 ms; DTR=1; RTS=0; delay; DTR=0
 *   UNIX_TIGHT  both lines in one call per step: (0,0), (1,1), (0,1); 100 ms;
 *               (1,0); delay; (0,0); DTR=0
 *   USB_JTAG    the USB-Serial/JTAG peripheral (VID 303A PID 1001):
 *               RTS=0; DTR=0; 100 ms; DTR=1; RTS=0; 100 ms; RTS=1; DTR=0;
 *               RTS=1; 100 ms; DTR=0; RTS=0
 *   HARD        leave the loader, run the application: RTS=1; delay; RTS=0
 *               (delay 0 = 100 ms; use 200 ms over USB-Serial/JTAG)
 * Every RTS change is followed by re-setting DTR to its current value (some
 * USB CDC drivers only send the line state on a DTR change), as esptool does.
 * `delay_ms` is the strap hold for CLASSIC/UNIX_TIGHT (esptool: 50 ms, then
 * 550 ms on alternate attempts; 0 = 50 ms). All line changes go through
 * farm_transport_set_lines(); a transport without modem lines gives
 * FARM_EUNSUPPORTED. */
#ifndef RUNNER_ESP_RESET_H
#define RUNNER_ESP_RESET_H

#include "err.h"
#include "transport.h"

enum runner_esp_reset_kind {
	RUNNER_ESP_RESET_CLASSIC,
	RUNNER_ESP_RESET_UNIX_TIGHT,
	RUNNER_ESP_RESET_USB_JTAG,
	RUNNER_ESP_RESET_HARD,
};

#define RUNNER_ESP_RESET_DELAY_MS 50u       /* esptool's first strap hold */
#define RUNNER_ESP_RESET_EXTRA_DELAY_MS 500u /* added on alternate attempts */

/* Run one sequence on t. */
int runner_esp_reset(struct farm_transport *t, enum runner_esp_reset_kind kind, unsigned delay_ms,
		     struct farm_err *e);
/* "classic", "unix-tight", "usb-jtag", "hard". */
const char *runner_esp_reset_name(enum runner_esp_reset_kind kind);
/* Parse a name as above; FARM_EINVAL listing the names. */
int runner_esp_reset_parse(enum runner_esp_reset_kind *out, const char *name, struct farm_err *e);

/* esptool's connect schedule: the strategy and strap hold of attempt n
 * (0-based): unix-tight(d), unix-tight(d+500), classic(d), classic(d+500),
 * cycling; usb_jtag = 1 uses the USB-Serial/JTAG sequence every time. */
void runner_esp_reset_schedule(unsigned attempt, int usb_jtag, enum runner_esp_reset_kind *kind,
			       unsigned *delay_ms);

#endif
