/* mpfarm runner "openmv": OpenMV Cams (M4, M7, H7, H7 Plus, Pure Thermal)
 * through their legacy USB-CDC bootloader, the way OpenMV IDE updates them
 * (protocol client: runners/openmv_boot.c).
 *
 * Flow: bootloader entry (default "openmv": the app's USBDBG reset, then
 * the bootloader enumerates as 1209:ABD1 with serial 000000000011, or
 * ...010 on a high-speed build, at the board's USB location), open it
 * within its 1 s window, START, FLASH_LAYOUT, erase the firmware sectors the
 * image covers (never sector 0, the filesystem only with erase_fs), write,
 * RESET; reset() waits for the app to enumerate again.
 *
 * The bootloader cannot read flash back: the runner does not verify (the
 * job reports "not verified"); a FLASH_LAYOUT query after the last write
 * only proves the device is still alive (a flash error halts it).
 *
 * flash: options
 *   layout:   OPENMV2 | OPENMV3 | OPENMV4 | OPENMV4P | OPENMV4_PRO | OPENMVPT
 *             (default from mcu: stm32f4 -> OPENMV2, stm32f7 -> OPENMV3,
 *             stm32h7 -> OPENMV4)
 *   mode:     safe (default: 2 s after each erase, 1 ms after each packet)
 *             | fast (a FLASH_LAYOUT query marks each erase's end and
 *             syncs every 32 packets)
 *   entry:    bootloader entry methods (runners/entry.h), default openmv
 *   usbdbg:   sys-reset (30 0C, default) | bootloader (30 0E)
 *   speed:    fs (default) | hs: the bootloader's USB build (64- or
 *             512-byte endpoint, serial ...011 or ...010)
 *   erase_fs: false (default) | true: also erase the internal filesystem */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "entry.h"
#include "openmv_boot.h"

#define ENTRY_TIMEOUT_MS 10000
#define APP_TIMEOUT_MS 10000
#define OPEN_TIMEOUT_MS 1000
#define POLL_MS 100

struct omv_priv {
	const struct runner_ctx *ctx;
	struct runner_openmv_cfg cfg;
	char entry[128];
	char location[64];       /* the board's USB location, "" if unknown */
	char app_serial[128];    /* the app's USB serial, "" if unknown */
	int flashed;
};

static const char *const options[] = { "layout", "mode", "entry", "usbdbg", "speed", "erase_fs",
				       NULL };

static void omv_log(void *payload, const char *line)
{
	const struct runner_ctx *ctx = payload;
	if (ctx->log)
		ctx->log(ctx->log_payload, line);
}

static int pick(const char *v, const char *a, const char *b, int *out)
{
	if (!v || !strcmp(v, a))
		*out = 0;
	else if (!strcmp(v, b))
		*out = 1;
	else
		return -1;
	return 0;
}

static int omv_configure(void *priv, const struct runner_ctx *ctx, struct farm_err *e)
{
	struct omv_priv *p = priv;
	const struct farm_board *b = ctx->board;
	const char *v;
	p->ctx = ctx;
	runner_openmv_cfg_default(&p->cfg);
	p->cfg.log = omv_log;
	p->cfg.log_payload = (void *)ctx;
	p->cfg.cancel = ctx->cancel;

	if ((v = runner_opt(b, "layout"))) {
		p->cfg.layout = runner_openmv_layout_find(v);
	} else {
		p->cfg.layout = runner_openmv_layout_for_mcu(b->mcu);
		v = b->mcu ? b->mcu : "(no mcu:)";
	}
	if (!p->cfg.layout) {
		char names[160];
		runner_openmv_layout_names(names, sizeof names);
		return farm_err_set(e, FARM_EINVAL,
				    "board %s: flash: layout: \"%s\" is not an OpenMV board; use one "
				    "of %s",
				    b->id, v, names);
	}
	if (pick(runner_opt(b, "mode"), "safe", "fast", &p->cfg.fast))
		return farm_err_set(e, FARM_EINVAL, "board %s: flash: mode: use safe or fast", b->id);
	if (pick(runner_opt(b, "speed"), "fs", "hs", &p->cfg.hs))
		return farm_err_set(e, FARM_EINVAL, "board %s: flash: speed: use fs or hs", b->id);
	if (pick(runner_opt(b, "erase_fs"), "false", "true", &p->cfg.erase_fs))
		return farm_err_set(e, FARM_EINVAL, "board %s: flash: erase_fs: use true or false",
				    b->id);
	v = runner_opt(b, "usbdbg");
	if (v && strcmp(v, "sys-reset") && strcmp(v, "bootloader"))
		return farm_err_set(e, FARM_EINVAL,
				    "board %s: flash: usbdbg: use sys-reset (30 0C) or bootloader (30 0E)",
				    b->id);
	v = runner_opt(b, "entry");
	snprintf(p->entry, sizeof p->entry, "%s", v ? v : "openmv");
	int rc = entry_check_list(p->entry, e);
	if (rc)
		return farm_err_prefix(e, "board %s: flash: entry", b->id);
	const char *loc = ctx->usb ? ctx->usb->location : b->serial.location;
	snprintf(p->location, sizeof p->location, "%s", loc ? loc : "");
	const char *ser = ctx->usb ? ctx->usb->serial : b->serial.usb_serial;
	snprintf(p->app_serial, sizeof p->app_serial, "%s", ser ? ser : "");
	return 0;
}

static int omv_flash(void *priv, const struct farm_image *img, runner_progress_fn fn,
		     void *payload, struct farm_err *e)
{
	struct omv_priv *p = priv;
	const struct runner_ctx *ctx = p->ctx;
	const struct farm_board *b = ctx->board;
	struct farm_transport *t = NULL;
	struct runner_openmv_plan plan;
	const struct runner_openmv_layout *l = p->cfg.layout;
	unsigned fl[3] = { l->fs_start, l->fw_start, l->last };
	char line[1024];

	/* The image must fit before the board is even reset. */
	int rc = runner_openmv_plan(&plan, l, fl, img, p->cfg.erase_fs, p->cfg.hs ? 512 : 64, e);
	if (rc)
		return rc;
	if (!p->location[0] && !p->app_serial[0])
		omv_log((void *)ctx, "openmv: the board has no usb_serial/location: any one OpenMV "
				     "bootloader on this host will do");
	struct entry_ctx ectx = {
		.board = b,
		.port_path = ctx->serial_path ? ctx->serial_path : b->serial.path,
		.dev = ctx->usb,
		.interactive = ctx->interactive,
		.log = ctx->log,
		.log_payload = ctx->log_payload,
		.cancel = ctx->cancel,
		.timeout_ms = ENTRY_TIMEOUT_MS,
	};
	struct entry_want want = {
		.usb = { .vid = RUNNER_OPENMV_VID,
			 .pid = RUNNER_OPENMV_PID,
			 .serial = p->cfg.hs ? RUNNER_OPENMV_SERIAL_HS : RUNNER_OPENMV_SERIAL_FS,
			 .location = p->location[0] ? p->location : NULL,
			 .need_tty = 1 },
	};
	struct entry_result res;
	memset(&res, 0, sizeof res);
	long long t0 = farm_now_ms();
	if ((rc = entry_run(p->entry, &ectx, &want, &res, e)))
		return farm_err_prefix(e, "entering the bootloader");
	farm_transport_close(res.t); /* the bootloader is a new device */
	const char *port = res.port[0] ? res.port : res.dev.tty;
	snprintf(line, sizeof line, "openmv: bootloader %s at %s (%s) after %lld ms via %s",
		 res.dev.serial, port, res.dev.location, farm_now_ms() - t0, res.method);
	omv_log((void *)ctx, line);
	/* Baud is irrelevant to the bootloader; OpenMV IDE asserts DTR. */
	struct farm_serial_cfg sc = { .baud = 921600, .dtr = 1, .rts = -1 };
	if ((rc = farm_transport_open(&t, port, &sc, OPEN_TIMEOUT_MS, e))) {
		farm_err_prefix(e, "opening the bootloader port");
		goto out;
	}
	rc = runner_openmv_flash(t, &p->cfg, img, fn, payload, e);
	if (rc == 0)
		p->flashed = 1;
out:
	farm_transport_close(t);
	return rc;
}

/* The app is back: a device at the board's location (or with its serial)
 * that is not the bootloader. */
static int app_back(const struct omv_priv *p, struct farm_usbdev *out, struct farm_err *e)
{
	struct farm_usbdev *l = NULL;
	size_t n = 0;
	int rc = farm_usbdev_list(&l, &n, e), found = 0;
	for (size_t i = 0; rc == 0 && i < n && !found; i++) {
		const struct farm_usbdev *d = &l[i];
		if (!strcmp(d->serial, RUNNER_OPENMV_SERIAL_FS) ||
		    !strcmp(d->serial, RUNNER_OPENMV_SERIAL_HS) || !d->tty[0])
			continue;
		if ((p->app_serial[0] && !strcmp(d->serial, p->app_serial)) ||
		    (!p->app_serial[0] && !strcmp(d->location, p->location))) {
			*out = *d;
			found = 1;
		}
	}
	free(l);
	return rc ? rc : found;
}

static int omv_reset(void *priv, struct farm_err *e)
{
	struct omv_priv *p = priv;
	const struct runner_ctx *ctx = p->ctx;
	char line[1024];
	if (!p->flashed)
		return farm_err_set(e, FARM_EUNSUPPORTED, "nothing flashed: no bootloader session to end");
	if (!p->location[0] && !p->app_serial[0]) {
		omv_log((void *)ctx, "openmv: RESET sent; the app's USB identity is unknown, not waiting");
		return 0;
	}
	long long t0 = farm_now_ms(), end = t0 + APP_TIMEOUT_MS;
	struct farm_usbdev d;
	for (;;) {
		int rc = app_back(p, &d, e);
		if (rc < 0)
			return farm_err_prefix(e, "waiting for the app after RESET");
		if (rc > 0)
			break;
		if (ctx->cancel && *ctx->cancel)
			return farm_err_set(e, FARM_EINTR, "interrupted");
		if (farm_now_ms() >= end)
			return farm_err_set(e, FARM_ETIMEDOUT,
					    "the app did not enumerate within %d ms after RESET (USB "
					    "%s%s): the firmware may not boot; flash again or check "
					    "the image",
					    APP_TIMEOUT_MS, p->app_serial[0] ? "serial " : "location ",
					    p->app_serial[0] ? p->app_serial : p->location);
		struct timespec ts = { 0, POLL_MS * 1000000L };
		nanosleep(&ts, NULL);
	}
	snprintf(line, sizeof line, "openmv: app back as %s (%s, %s) %lld ms after RESET", d.tty,
		 d.serial, d.location, farm_now_ms() - t0);
	omv_log((void *)ctx, line);
	return 0;
}

/* The inventory calls OpenMV boards port stm32 (mpfarm detect maps "OpenMV" there). */
static const char *const ports[] = { "openmv", "stm32", NULL };

const struct runner_ops runner_openmv_ops = {
	.name = "openmv",
	.summary = "OpenMV Cam legacy USB-CDC bootloader (as OpenMV IDE), no read-back",
	.ports = ports,
	.formats = RUNNER_FMT(FARM_IMG_BIN) | RUNNER_FMT(FARM_IMG_IHEX) | RUNNER_FMT(FARM_IMG_ELF),
	.caps = RUNNER_CAP_SERIAL | RUNNER_CAP_RESET,
	.priority = 1,   /* only when nothing else fits, or flash: method: openmv */
	.entry = "openmv (USBDBG reset), or any method of flash: entry",
	.options = options,
	.priv_size = sizeof(struct omv_priv),
	.configure = omv_configure,
	.flash = omv_flash,
	.reset = omv_reset,
};
