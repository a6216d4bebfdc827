/* mpfarm: a person puts the board into its bootloader. Interactive: say
 * what to press and wait (at least ENTRY_MANUAL_WAIT_MS). In CI (no person
 * at a terminal) it fails at once, naming the board and what someone would
 * have to do, so a job never waits for nobody. */
#include <stdio.h>
#include <string.h>

#include "entry.h"
#include "usbids.h"

static const char *what_to_press(const struct entry_ctx *ctx, const struct entry_want *want)
{
	const char *port = ctx->board && ctx->board->port ? ctx->board->port : "";
	enum farm_usbid_boot boot = FARM_USBID_BOOT_NONE;
	const struct farm_usbid *id = want->usb.vid ? farm_usbid_lookup(want->usb.vid, want->usb.pid,
									 want->usb.serial)
						    : NULL;
	if (id)
		boot = id->boot;
	else if (!strcmp(port, "esp32") || !strcmp(port, "esp8266"))
		boot = FARM_USBID_BOOT_ESP_ROM;
	else if (!strcmp(port, "rp2"))
		boot = FARM_USBID_BOOT_UF2;
	else if (!strcmp(port, "stm32"))
		boot = FARM_USBID_BOOT_DFU;
	switch (boot) {
	case FARM_USBID_BOOT_UF2:
		if (!strcmp(port, "rp2"))
			return "hold BOOTSEL and press RESET (or replug the board with BOOTSEL held)";
		return "double-tap RESET (the UF2 drive appears)";
	case FARM_USBID_BOOT_DFU:
		return "hold BOOT0 (or the board's DFU/USR button) and press RESET";
	case FARM_USBID_BOOT_ESP_ROM:
		return "hold BOOT (GPIO0) and press RESET/EN, then release BOOT";
	case FARM_USBID_BOOT_OPENMV:
		return "unplug and replug the camera (its bootloader runs for a few seconds after power-up)";
	case FARM_USBID_BOOT_NONE:
		break;
	}
	return "put it into its bootloader by hand (see the board's documentation)";
}

static int manual_enter(const struct entry_ctx *ctx, const struct entry_want *want,
			struct entry_result *res, struct farm_err *e)
{
	(void)res;
	const char *how = what_to_press(ctx, want);
	if (!ctx->interactive)
		return farm_err_set(e, FARM_EUNSUPPORTED,
				    "board %s needs a person to enter its bootloader: %s; no one is at a "
				    "terminal here (CI), so give the board an automatic flash.entry method "
				    "(touch1200, repl, esp-reset, probe) or flash it at a desk",
				    entry_board_id(ctx), how);
	unsigned wait_s = (ctx->timeout_ms > ENTRY_MANUAL_WAIT_MS ? ctx->timeout_ms : ENTRY_MANUAL_WAIT_MS) /
			  1000;
	fprintf(stderr, "\n>>> board %s: %s. Waiting up to %u s for its bootloader...\n",
		entry_board_id(ctx), how, wait_s);
	fflush(stderr);
	entry_log(ctx, "entry: manual: asked a person to %s", how);
	return 0;
}

const struct entry_ops entry_manual_ops = {
	.name = "manual",
	.summary = "a person presses the buttons (fails at once when not interactive)",
	.enter = manual_enter,
	.min_wait_ms = ENTRY_MANUAL_WAIT_MS,
};
