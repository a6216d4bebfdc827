/* mpfarm: bootloader entry: the method registry, method lists and the
 * generic "trigger, then wait for the bootloader" loop (see entry.h and
 * /work/shared/protocols/bootloader-entry.md, host state machine):
 *   1. the board's identity before entry (ctx->dev: its USB location);
 *   2. the method's trigger (it closes the port unless it hands it over);
 *   3. poll for the bootloader: the same port again (USB-UART bridges), or
 *      the wanted USB device at the board's location (the serial number
 *      may change across re-enumeration, the socket does not), which must
 *      stay present for want->settle_ms;
 *   4. on failure the next method; the final error says what each did. */
#include "entry.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "diag.h"

static int none_enter(const struct entry_ctx *ctx, const struct entry_want *want,
		      struct entry_result *res, struct farm_err *e)
{
	(void)want;
	(void)res;
	(void)e;
	entry_log(ctx, "entry: none: the board should already be in its bootloader");
	return 0;
}

const struct entry_ops entry_none_ops = {
	.name = "none",
	.summary = "nothing to do: the board is already in its bootloader",
	.enter = none_enter,
};

/* The registry, in listing order. The OpenMV method joins as
 * &entry_openmv_ops (runners/entry_openmv.c). */
static const struct entry_ops *const methods_all[] = {
	&entry_touch1200_ops,
	&entry_repl_ops,
	&entry_esp_reset_ops,
	&entry_probe_ops,
	&entry_manual_ops,
	&entry_openmv_ops,
	&entry_none_ops,
	NULL,
};

const struct entry_ops *const *entry_all(void)
{
	return methods_all;
}

static const struct entry_ops *find_in(const struct entry_ops *const *reg, const char *name,
				       size_t len)
{
	for (; *reg; reg++)
		if (strlen((*reg)->name) == len && !strncmp((*reg)->name, name, len))
			return *reg;
	return NULL;
}

const struct entry_ops *entry_find(const char *name)
{
	return find_in(methods_all, name, strlen(name));
}

const char *entry_board_id(const struct entry_ctx *ctx)
{
	return ctx && ctx->board && ctx->board->id ? ctx->board->id : "board";
}

void entry_log(const struct entry_ctx *ctx, const char *fmt, ...)
{
	if (!ctx || !ctx->log)
		return;
	char line[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	ctx->log(ctx->log_payload, line);
}

int entry_parse_list(const struct entry_ops *const *registry, const char *methods,
		     const struct entry_ops **out, size_t max, struct farm_err *e)
{
	size_t n = 0;
	if (!methods)
		return farm_err_set(e, FARM_EINVAL, "no bootloader entry method given");
	for (const char *p = methods;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		size_t len = strcspn(p, ",");
		size_t trim = len;
		while (trim && (p[trim - 1] == ' ' || p[trim - 1] == '\t'))
			trim--;
		if (!trim)
			return farm_err_set(e, FARM_EINVAL,
					    "empty bootloader entry method in \"%.100s\" (write e.g. \"repl, touch1200\")",
					    methods);
		const struct entry_ops *ops = find_in(registry, p, trim);
		if (!ops) {
			char word[64], names[256] = "";
			const char *cand[16];
			size_t k = 0, nc = 0;
			snprintf(word, sizeof word, "%.*s", (int)(trim < 63 ? trim : 63), p);
			for (const struct entry_ops *const *r = registry; *r && nc < 15; r++) {
				cand[nc++] = (*r)->name;
				int w = snprintf(names + k, sizeof names - k, "%s%s", k ? ", " : "", (*r)->name);
				if (w > 0 && (size_t)w < sizeof names - k)
					k += (size_t)w;
			}
			cand[nc] = NULL;
			const char *dym = farm_did_you_mean(word, cand);
			return farm_err_set(e, FARM_EINVAL,
					    "unknown bootloader entry method \"%s\"%s%s%s (known: %s)", word,
					    dym ? " (did you mean \"" : "", dym ? dym : "", dym ? "\"?)" : "", names);
		}
		for (size_t i = 0; i < n; i++)
			if (out[i] == ops)
				return farm_err_set(e, FARM_EINVAL,
						    "bootloader entry method \"%s\" listed twice in \"%.100s\"",
						    ops->name, methods);
		if (n == max)
			return farm_err_set(e, FARM_ELIMIT, "more than %zu bootloader entry methods in \"%.100s\"",
					    max, methods);
		out[n++] = ops;
		if (!p[len])
			break;
		p += len + 1;
	}
	return (int)n;
}

int entry_check_list(const char *methods, struct farm_err *e)
{
	const struct entry_ops *ops[ENTRY_MAX_METHODS];
	int n = entry_parse_list(methods_all, methods, ops, ENTRY_MAX_METHODS, e);
	return n < 0 ? n : 0;
}

static void sleep_slice(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A port without a USB device behind it (or not known as one): poll until
 * the path is there again and stays settle_ms. */
static int wait_path(const struct entry_ctx *ctx, const char *path, unsigned timeout_ms,
		     unsigned settle_ms, struct farm_err *e)
{
	long long deadline = farm_now_ms() + timeout_ms, since = -1;
	for (;;) {
		if (ctx->cancel && *ctx->cancel)
			return farm_err_set(e, FARM_EINTR, "interrupted while waiting for %s", path);
		struct stat st;
		long long now = farm_now_ms();
		if (stat(path, &st) == 0 && S_ISCHR(st.st_mode)) {
			if (since < 0)
				since = now;
			if (now - since >= (long long)settle_ms)
				return 0;
		} else {
			since = -1;
		}
		if (now >= deadline)
			return farm_err_set(e, FARM_ETIMEDOUT, "%s did not come back within %u ms", path,
					    timeout_ms);
		sleep_slice(50);
	}
}

/* Step 3: wait for what the runner wants; fills res->port / res->dev. */
static int wait_bootloader(const struct entry_ctx *ctx, const struct entry_want *want,
			   struct entry_result *res, unsigned timeout_ms, struct farm_err *e)
{
	const char *sys = ctx->sys_root ? ctx->sys_root : "/sys";
	const char *dev = ctx->dev_root ? ctx->dev_root : "/dev";
	struct farm_usbdev_match m;
	if (want->same_port) {
		if (res->t) /* the method kept the port open: nothing went away */
			return 0;
		const char *path = res->port[0] ? res->port : ctx->port_path;
		if (!ctx->dev) {
			if (!path)
				return farm_err_set(e, FARM_EINVAL, "the board has no serial port to wait for");
			int rc = wait_path(ctx, path, timeout_ms, want->settle_ms, e);
			if (rc == 0 && path != res->port)
				snprintf(res->port, sizeof res->port, "%s", path);
			return rc;
		}
		/* A USB serial device: the same device at the same socket, with a
		 * tty (its name may change if the old node was still held). */
		memset(&m, 0, sizeof m);
		m.vid = ctx->dev->vid;
		m.pid = ctx->dev->pid;
		m.location = ctx->dev->location;
		m.need_tty = 1;
	} else {
		m = want->usb;
		const char *loc = ctx->dev && ctx->dev->location[0] ? ctx->dev->location
				  : ctx->board ? ctx->board->serial.location : NULL;
		if (loc && loc[0])
			m.location = loc;
	}
	int rc = farm_usbdev_wait_at(sys, dev, &res->dev, &m, timeout_ms, want->settle_ms, 0,
				     ctx->cancel, e);
	if (rc)
		return rc;
	snprintf(res->port, sizeof res->port, "%s", res->dev.tty);
	return 0;
}

int entry_run_in(const struct entry_ops *const *registry, const char *methods,
		 const struct entry_ctx *ctx, const struct entry_want *want,
		 struct entry_result *res, struct farm_err *e)
{
	const struct entry_ops *list[ENTRY_MAX_METHODS];
	memset(res, 0, sizeof *res);
	int n = entry_parse_list(registry, methods, list, ENTRY_MAX_METHODS, e);
	if (n < 0)
		return farm_err_prefix(e, "board %s: flash.entry", entry_board_id(ctx));
	char what[FARM_ERR_MSG_MAX] = "";
	size_t k = 0;
	int last = FARM_EIO;
	for (int i = 0; i < n; i++) {
		const struct entry_ops *ops = list[i];
		if (ctx->cancel && *ctx->cancel)
			return farm_err_set(e, FARM_EINTR, "board %s: bootloader entry interrupted",
					    entry_board_id(ctx));
		unsigned timeout = ctx->timeout_ms ? ctx->timeout_ms : ENTRY_DEFAULT_TIMEOUT_MS;
		if (timeout < ops->min_wait_ms)
			timeout = ops->min_wait_ms;
		struct entry_result r;
		struct farm_err me = { 0 };
		memset(&r, 0, sizeof r);
		entry_log(ctx, "entry: %s: %s", ops->name, ops->summary);
		long long start = farm_now_ms();
		int rc = ops->enter(ctx, want, &r, &me);
		if (rc == 0) {
			long long spent = farm_now_ms() - start;
			unsigned left = spent >= (long long)timeout ? 0 : timeout - (unsigned)spent;
			rc = wait_bootloader(ctx, want, &r, left, &me);
			if (rc)
				farm_err_prefix(&me, "after the trigger");
		}
		if (rc == 0) {
			snprintf(r.method, sizeof r.method, "%s", ops->name);
			*res = r;
			if (want->same_port)
				entry_log(ctx, "entry: %s: bootloader on %s%s", ops->name,
					  res->port[0] ? res->port : "the board's port",
					  res->t ? " (port kept open)" : "");
			else {
				char d[400];
				farm_usbdev_describe(&res->dev, d, sizeof d);
				entry_log(ctx, "entry: %s: bootloader appeared: %s", ops->name, d);
			}
			return 0;
		}
		farm_transport_close(r.t);
		entry_log(ctx, "entry: %s failed: %s", ops->name, me.msg);
		if (rc == FARM_EINTR)
			return farm_err_set(e, FARM_EINTR, "board %s: bootloader entry interrupted (%s)",
					    entry_board_id(ctx), ops->name);
		int w = snprintf(what + k, sizeof what - k, "%s%s: %s", k ? "; " : "", ops->name, me.msg);
		if (w > 0)
			k = (size_t)w < sizeof what - k ? k + (size_t)w : sizeof what - 1;
		last = rc;
	}
	return farm_err_set(e, last, "board %s: could not enter the bootloader: %s",
			    entry_board_id(ctx), what);
}

int entry_run(const char *methods, const struct entry_ctx *ctx, const struct entry_want *want,
	      struct entry_result *res, struct farm_err *e)
{
	return entry_run_in(methods_all, methods, ctx, want, res, e);
}
