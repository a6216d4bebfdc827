/* mpfarm bootloader entry "openmv": the OpenMV Cam app's USB debug protocol
 * (USBDBG) asks the running firmware to reset; the legacy CDC bootloader
 * then runs for about a second before it starts the app again.
 *
 * The app listens to USBDBG only while the port's line coding is one of the
 * debug baud rates (12000000, or 921600 where the host cannot set it), as
 * OpenMV IDE opens it. The command is USBDBG_CMD (0x30), an opcode and a u32
 * LE payload length of 0:
 *   30 0C 00 00 00 00   USBDBG_SYS_RESET: plain reset (the bootloader runs first)
 *   30 0E 00 00 00 00   reset into the bootloader (newer firmware)
 * chosen by the board's flash: usbdbg option (sys-reset, default, or
 * bootloader). The port is closed at once; entry_run waits for the
 * bootloader (USB 1209:ABD1, serial 000000000011/000000000010). */
#include "entry.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "inventory.h"
#include "runner.h"

#define USBDBG_CMD 0x30
#define USBDBG_SYS_RESET 0x0c
#define USBDBG_SYS_RESET_TO_BL 0x0e
#define BAUD_FAST 12000000
#define BAUD_SLOW 921600
#define OPEN_TIMEOUT_MS 2000
#define WRITE_TIMEOUT_MS 1000

static void elog(const struct entry_ctx *ctx, const char *line)
{
	if (ctx->log)
		ctx->log(ctx->log_payload, line);
}

static int openmv_enter(const struct entry_ctx *ctx, const struct entry_want *want,
			struct entry_result *res, struct farm_err *e)
{
	(void)want;
	(void)res;
	const char *board = ctx->board && ctx->board->id ? ctx->board->id : "board";
	const char *which = ctx->board ? runner_opt(ctx->board, "usbdbg") : NULL;
	uint8_t op = USBDBG_SYS_RESET;
	if (which && !strcmp(which, "bootloader"))
		op = USBDBG_SYS_RESET_TO_BL;
	else if (which && strcmp(which, "sys-reset"))
		return farm_err_set(e, FARM_EINVAL,
				    "%s: flash: usbdbg: \"%s\": use sys-reset (30 0C, default) or "
				    "bootloader (30 0E, newer firmware)",
				    board, which);
	if (!ctx->port_path)
		return farm_err_set(e, FARM_ENOTFOUND,
				    "%s: entry openmv: the board's app port is not present (give "
				    "serial: path, usb_serial or location; is the camera plugged in?)",
				    board);
	struct farm_serial_cfg cfg = { .baud = BAUD_FAST, .dtr = 1, .rts = -1 };
	struct farm_transport *t = NULL;
	int rc = farm_transport_open(&t, ctx->port_path, &cfg, OPEN_TIMEOUT_MS, e);
	if (rc) {
		/* Hosts that cannot set 12 Mbit/s use the slow debug rate (OpenMV IDE). */
		cfg.baud = BAUD_SLOW;
		rc = farm_transport_open(&t, ctx->port_path, &cfg, OPEN_TIMEOUT_MS, e);
	}
	if (rc)
		return farm_err_prefix(e, "%s: entry openmv: opening the app port", board);
	const uint8_t cmd[6] = { USBDBG_CMD, op, 0, 0, 0, 0 };
	rc = farm_transport_write(t, cmd, sizeof cmd, WRITE_TIMEOUT_MS, e);
	if (rc == FARM_ECLOSED)
		rc = 0; /* the app may reset before the write call returns */
	/* Give the command time to leave before the close drops DTR. */
	struct timespec ts = { 0, 20 * 1000000L };
	nanosleep(&ts, NULL);
	farm_transport_close(t);
	if (rc)
		return farm_err_prefix(e, "%s: entry openmv: sending USBDBG reset", board);
	char line[160];
	snprintf(line, sizeof line, "entry openmv: sent USBDBG %s (30 %02X 00 00 00 00) at %d baud",
		 op == USBDBG_SYS_RESET ? "SYS_RESET" : "reset-to-bootloader", op, cfg.baud);
	elog(ctx, line);
	return 0;
}

const struct entry_ops entry_openmv_ops = {
	.name = "openmv",
	.summary = "OpenMV app: USBDBG reset (30 0C, or 30 0E) at the debug baud rate",
	.enter = openmv_enter,
};
