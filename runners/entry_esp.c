/* mpfarm: DTR/RTS into the ESP ROM download mode (runners/esp_reset.h).
 * Through a USB-UART bridge the port stays (the bridge does not
 * re-enumerate): it is kept open and handed to the runner in res->t, so
 * no open/close toggles the lines again. Through the chip's own
 * USB-Serial/JTAG (303A:1001) the device re-enumerates: the port is closed
 * and entry_run waits for it at the same socket. The first sequence is
 * esptool's first POSIX attempt (unix-tight, 50 ms strap hold); a runner
 * that fails to sync goes on with runner_esp_reset_schedule() on res->t. */
#include <stdio.h>
#include <string.h>

#include "entry.h"
#include "esp_reset.h"

static int esp_enter(const struct entry_ctx *ctx, const struct entry_want *want,
		     struct entry_result *res, struct farm_err *e)
{
	(void)want;
	if (!ctx->port_path)
		return farm_err_set(e, FARM_EINVAL,
				    "board %s has no serial port (serial.path, usb_serial or location) to reset",
				    entry_board_id(ctx));
	int usb_jtag = ctx->dev && ctx->dev->vid == 0x303A && ctx->dev->pid == 0x1001;
	enum runner_esp_reset_kind kind;
	unsigned delay;
	runner_esp_reset_schedule(0, usb_jtag, &kind, &delay);
	/* Open with the lines as the driver leaves them (both asserted = idle
	 * on the two-transistor circuit); the sequence drives them. */
	struct farm_serial_cfg cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.baud = ctx->board && ctx->board->serial.baud > 0 ? ctx->board->serial.baud : 115200;
	cfg.dtr = -1;
	cfg.rts = -1;
	struct farm_transport *t = NULL;
	int rc = farm_transport_serial_open(&t, ctx->port_path, &cfg, e);
	if (rc)
		return farm_err_prefix(e, "esp-reset");
	if ((rc = runner_esp_reset(t, kind, delay, e))) {
		farm_transport_close(t);
		return farm_err_prefix(e, "esp-reset %s", runner_esp_reset_name(kind));
	}
	entry_log(ctx, "entry: esp-reset: %s sequence on %s (strap hold %u ms)",
		  runner_esp_reset_name(kind), ctx->port_path, delay);
	if (usb_jtag) {
		farm_transport_close(t);
		return 0;
	}
	res->t = t;
	snprintf(res->port, sizeof res->port, "%s", ctx->port_path);
	return 0;
}

const struct entry_ops entry_esp_reset_ops = {
	.name = "esp-reset",
	.summary = "DTR/RTS into the ESP ROM loader (bridge: port kept open; USB-Serial/JTAG)",
	.enter = esp_enter,
};
