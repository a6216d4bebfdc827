/* mpfarm: machine.bootloader() over the raw REPL, as `mpremote bootloader`
 * does: interrupt, enter the raw REPL (Ctrl-C Ctrl-C, Ctrl-A), run
 *   import time, machine; time.sleep_ms(100); machine.bootloader()
 * with Ctrl-D, expect "OK"; then the port vanishing is the normal end. A
 * traceback (a port without machine.bootloader(), e.g. plain ESP32) or a
 * clean return means the method failed. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "entry.h"
#include "repl.h"

#define REPL_CODE "import time, machine; time.sleep_ms(100); machine.bootloader()"
#define REPL_REPLY_MAX 512      /* bytes of the reply kept */
#define REPL_AFTER_OK_MS 600    /* a traceback arrives well before the 100 ms sleep ends */

static void pause_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)ms * 1000000L };
	nanosleep(&ts, NULL);
}

/* The code and Ctrl-D, paced as the board's repl: settings ask. */
static int send_code(struct farm_transport *t, const struct farm_repl_cfg *cfg, struct farm_err *e)
{
	static const char code[] = REPL_CODE "\x04";
	size_t len = sizeof code - 1, chunk = cfg && cfg->chunk ? cfg->chunk : 32;
	for (size_t off = 0; off < len; off += chunk) {
		size_t k = len - off < chunk ? len - off : chunk;
		int rc = farm_transport_write(t, code + off, k, 1000, e);
		if (rc)
			return rc;
		if (cfg && cfg->delay_ms && off + k < len)
			pause_ms(cfg->delay_ms > 1000 ? 1000 : cfg->delay_ms);
	}
	return 0;
}

/* After the code went out: 0 when the board took it (OK) and went away or
 * stayed silent; else why not. */
static int read_reply(const struct entry_ctx *ctx, struct farm_transport *t, unsigned timeout_ms,
		      struct farm_err *e)
{
	char buf[REPL_REPLY_MAX + 1];
	size_t len = 0;
	long long deadline = farm_now_ms() + timeout_ms, ok_at = -1;
	for (;;) {
		long long now = farm_now_ms();
		if (ok_at >= 0 && now - ok_at >= REPL_AFTER_OK_MS)
			return 0; /* OK, then silence: the jump is under way */
		if (now >= deadline)
			break;
		if (ctx->cancel && *ctx->cancel)
			return farm_err_set(e, FARM_EINTR, "interrupted");
		size_t got = 0;
		struct farm_err re = { 0 };
		if (len >= REPL_REPLY_MAX) /* endless output: keep the head */
			len = REPL_REPLY_MAX / 2;
		int rc = farm_transport_read(t, buf + len, REPL_REPLY_MAX - len, &got, 50, &re);
		if (rc) {
			if (ok_at >= 0) {
				entry_log(ctx, "entry: repl: the port went away after OK (expected)");
				return 0;
			}
			return farm_err_set(e, rc, "the port failed before the board acknowledged the code: %s",
					    re.msg);
		}
		len += got;
		buf[len] = '\0';
		const char *ok = memmem(buf, len, "OK", 2);
		if (ok && ok_at < 0)
			ok_at = farm_now_ms();
		if (!ok)
			continue;
		/* OK stdout 04 traceback 04: the code ended without resetting. */
		const char *end1 = memchr(ok, 0x04, len - (size_t)(ok - buf));
		const char *end2 = end1 ? memchr(end1 + 1, 0x04, len - (size_t)(end1 + 1 - buf)) : NULL;
		if (end2) {
			size_t tl = (size_t)(end2 - end1 - 1);
			if (tl) {
				char type[64];
				farm_repl_exc_type(end1 + 1, tl, type, sizeof type);
				return farm_err_set(e, FARM_EUNSUPPORTED,
						    "machine.bootloader() raised %s (this firmware has no "
						    "software bootloader entry: use another flash.entry method)",
						    type[0] ? type : "an exception");
			}
			return farm_err_set(e, FARM_EPROTO, "machine.bootloader() returned without resetting");
		}
	}
	return farm_err_set(e, FARM_ETIMEDOUT, "the board did not acknowledge the code (no OK within %u ms)",
			    timeout_ms);
}

static int repl_enter(const struct entry_ctx *ctx, const struct entry_want *want,
		      struct entry_result *res, struct farm_err *e)
{
	(void)want;
	(void)res;
	if (!ctx->port_path)
		return farm_err_set(e, FARM_EINVAL,
				    "board %s has no serial port (serial.path, usb_serial or location) for the REPL",
				    entry_board_id(ctx));
	const struct farm_serial_cfg *scfg = ctx->board ? &ctx->board->serial : NULL;
	struct farm_repl_cfg dflt;
	farm_repl_cfg_default(&dflt);
	const struct farm_repl_cfg *rcfg = ctx->board ? &ctx->board->repl : &dflt;
	unsigned budget = ctx->timeout_ms ? ctx->timeout_ms : ENTRY_DEFAULT_TIMEOUT_MS;
	struct farm_transport *t = NULL;
	struct farm_repl *r = NULL;
	int rc = farm_transport_serial_open(&t, ctx->port_path, scfg, e);
	if (rc)
		goto out;
	if ((rc = farm_repl_new(&r, t, rcfg, e)))
		goto out;
	farm_repl_set_cancel(r, ctx->cancel);
	if ((rc = farm_repl_enter_raw(r, (int)(budget / 2), e)))
		goto out;
	if ((rc = send_code(t, rcfg, e)))
		goto out;
	rc = read_reply(ctx, t, 2000, e);
	if (rc == 0)
		entry_log(ctx, "entry: repl: machine.bootloader() accepted on %s", ctx->port_path);
out:
	farm_repl_free(r);
	farm_transport_close(t);
	if (rc)
		farm_err_prefix(e, "raw REPL");
	return rc;
}

const struct entry_ops entry_repl_ops = {
	.name = "repl",
	.summary = "machine.bootloader() over the raw REPL (the port vanishing is the expected end)",
	.enter = repl_enter,
};
