/* mpfarm: the 1200-baud touch (arduino-cli's TouchSerialPortAt1200bps):
 * open the board's port, set 1200 bit/s 8N1, drop DTR and RTS, close.
 * MicroPython boards built with MICROPY_HW_USB_CDC_1200BPS_TOUCH (samd,
 * mimxrt, several rp2/nrf/esp32 boards), Arduino-style SAMD/RP2040 cores and
 * the STM32 stack schedule their bootloader when the line state goes to
 * DTR=0 RTS=0 at 1200 bit/s (or on disconnect at 1200 bit/s). The speed is
 * set first (libserialport would apply configured lines before the speed,
 * and a device that sees DTR drop at the old speed does nothing); then both
 * lines drop in one TIOCMSET, so the trigger does not depend on the close
 * dropping them (HUPCL).
 * The port is closed at once: holding it can block re-enumeration. */
#include <stdio.h>
#include <string.h>

#include "entry.h"

static int touch_enter(const struct entry_ctx *ctx, const struct entry_want *want,
		       struct entry_result *res, struct farm_err *e)
{
	(void)want;
	(void)res;
	if (!ctx->port_path)
		return farm_err_set(e, FARM_EINVAL,
				    "board %s has no serial port (serial.path, usb_serial or location) to touch",
				    entry_board_id(ctx));
	struct farm_serial_cfg cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.baud = 1200;
	cfg.dtr = -1; /* libserialport applies the lines before the speed: drop them after */
	cfg.rts = -1;
	struct farm_transport *t = NULL;
	int rc = farm_transport_serial_open(&t, ctx->port_path, &cfg, e);
	if (rc)
		return farm_err_prefix(e, "1200-baud touch");
	/* Both lines in one TIOCMSET: one line-state change, at 1200 bit/s. */
	rc = farm_transport_set_lines(t, 0, 0, e);
	farm_transport_close(t);
	if (rc)
		return farm_err_prefix(e, "1200-baud touch: drop DTR");
	entry_log(ctx, "entry: touch1200: %s opened at 1200 baud, DTR and RTS dropped, closed",
		  ctx->port_path);
	return 0;
}

const struct entry_ops entry_touch1200_ops = {
	.name = "touch1200",
	.summary = "open the port at 1200 baud, drop DTR, close (MicroPython's and Arduino's touch)",
	.enter = touch_enter,
};
