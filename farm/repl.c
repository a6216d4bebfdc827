#include "repl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROTO_TIMEOUT_MS 3000     /* one protocol step (banner, prompt, ack) */
#define SLICE_MS 50               /* read slice: bounds the reaction to a cancel */
#define PASTE_VAR "_mpf"

struct farm_repl {
	struct farm_transport *t;
	struct farm_repl_cfg cfg;
	enum farm_repl_upload upload;
	int paste_state;          /* raw-paste: -1 unknown, 0 no, 1 yes */
	unsigned paste_window;
	int in_raw;               /* at the raw prompt, ready for code */
	struct farm_buf rx;       /* received, not yet consumed */
	struct farm_replp parser;
	farm_repl_log_fn log;
	void *log_payload;
	farm_repl_reset_fn reset;
	void *reset_payload;
	const volatile sig_atomic_t *cancel;
	struct farm_repl_stats stats;
	int ran;                  /* the last attempt's code started running */
};

static const char *const upload_names[] = { "auto", "raw-paste", "echo-paste", "raw" };

const char *farm_repl_upload_name(enum farm_repl_upload u)
{
	return (unsigned)u < 4 ? upload_names[u] : "?";
}

int farm_repl_upload_parse(const char *s, enum farm_repl_upload *out)
{
	if (!s) {
		*out = FARM_UPLOAD_AUTO;
		return 0;
	}
	for (unsigned i = 0; i < 4; i++)
		if (!strcmp(s, upload_names[i])) {
			*out = (enum farm_repl_upload)i;
			return 0;
		}
	return FARM_EINVAL;
}

int farm_repl_new(struct farm_repl **out, struct farm_transport *t, const struct farm_repl_cfg *cfg,
		  struct farm_err *e)
{
	*out = NULL;
	struct farm_repl *r = calloc(1, sizeof *r);
	if (!r)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	r->t = t;
	if (cfg)
		r->cfg = *cfg;
	else
		farm_repl_cfg_default(&r->cfg);
	if (!r->cfg.chunk)
		r->cfg.chunk = 32;
	if (!r->cfg.window)
		r->cfg.window = 32;
	if (farm_repl_upload_parse(r->cfg.upload, &r->upload)) {
		farm_err_set(e, FARM_EINVAL, "unknown REPL upload mode \"%s\"", r->cfg.upload);
		free(r);
		return FARM_EINVAL;
	}
	r->cfg.upload = NULL; /* not kept: the enum says it */
	r->paste_state = r->upload == FARM_UPLOAD_ECHO_PASTE || r->upload == FARM_UPLOAD_RAW ? 0 : -1;
	*out = r;
	return 0;
}

void farm_repl_free(struct farm_repl *r)
{
	if (!r)
		return;
	farm_buf_free(&r->rx);
	farm_replp_free(&r->parser);
	free(r);
}

void farm_repl_set_log(struct farm_repl *r, farm_repl_log_fn fn, void *payload)
{
	r->log = fn;
	r->log_payload = payload;
}

void farm_repl_set_reset(struct farm_repl *r, farm_repl_reset_fn fn, void *payload)
{
	r->reset = fn;
	r->reset_payload = payload;
}

void farm_repl_set_cancel(struct farm_repl *r, const volatile sig_atomic_t *flag)
{
	r->cancel = flag;
}

const struct farm_repl_stats *farm_repl_stats(const struct farm_repl *r)
{
	return &r->stats;
}

int farm_repl_raw_paste_supported(const struct farm_repl *r)
{
	return r->paste_state;
}

void farm_repl_result_free(struct farm_repl_result *res)
{
	farm_buf_free(&res->out);
	farm_buf_free(&res->err);
}

/* ---- I/O primitives ---- */

static void consume(struct farm_repl *r, size_t n)
{
	if (n >= r->rx.len) {
		farm_buf_reset(&r->rx);
		return;
	}
	memmove(r->rx.data, r->rx.data + n, r->rx.len - n);
	r->rx.len -= n;
	r->rx.data[r->rx.len] = '\0';
}

static int cancelled(struct farm_repl *r, struct farm_err *e)
{
	if (r->cancel && *r->cancel)
		return farm_err_set(e, FARM_EINTR, "interrupted");
	return 0;
}

/* Read what arrives within timeout_ms (at most one slice) into rx. */
static int fill(struct farm_repl *r, int timeout_ms, struct farm_err *e)
{
	int rc = cancelled(r, e);
	if (rc)
		return rc;
	char buf[4096];
	size_t got = 0;
	int slice = timeout_ms < SLICE_MS ? timeout_ms : SLICE_MS;
	rc = farm_transport_read(r->t, buf, sizeof buf, &got, slice < 0 ? 0 : slice, e);
	if (rc)
		return rc;
	if (got) {
		if (r->rx.len + got > 4 * FARM_REPL_OUTPUT_MAX) /* a board flooding us: keep the tail */
			farm_buf_keep_tail(&r->rx, FARM_REPL_OUTPUT_MAX);
		if (farm_buf_append(&r->rx, buf, got))
			return farm_err_set(e, FARM_ENOMEM, "out of memory");
		if (r->log)
			r->log(r->log_payload, 'r', buf, got);
	}
	return 0;
}

static int send_bytes(struct farm_repl *r, const char *p, size_t n, struct farm_err *e)
{
	int rc = cancelled(r, e);
	if (rc)
		return rc;
	rc = farm_transport_write(r->t, p, n, PROTO_TIMEOUT_MS, e);
	if (rc)
		return rc;
	r->stats.bytes_sent += n;
	if (r->log)
		r->log(r->log_payload, 'w', p, n);
	return 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* Paced write for the classic raw REPL. */
static int send_paced(struct farm_repl *r, const char *p, size_t n, struct farm_err *e)
{
	size_t chunk = r->cfg.chunk;
	for (size_t off = 0; off < n; off += chunk) {
		size_t k = n - off < chunk ? n - off : chunk;
		int rc = send_bytes(r, p + off, k, e);
		if (rc)
			return rc;
		if (off + k < n && r->cfg.delay_ms)
			sleep_ms(r->cfg.delay_ms);
	}
	return 0;
}

/* Wait until rx contains needle; consume through it. *before (optional) gets
 * the length of what preceded it (still in rx[0..before) until consumed). */
static int wait_for(struct farm_repl *r, const char *needle, long long deadline, size_t *skipped,
		    struct farm_err *e)
{
	size_t nl = strlen(needle);
	for (;;) {
		long pos = farm_memfind(r->rx.data ? r->rx.data : "", r->rx.len, needle, nl);
		if (pos >= 0) {
			if (skipped)
				*skipped = (size_t)pos;
			consume(r, (size_t)pos + nl);
			return 0;
		}
		long long left = deadline - farm_now_ms();
		if (left <= 0)
			return farm_err_set(e, FARM_ETIMEDOUT, "no \"%s\" from the board in time",
					    nl > 20 ? "prompt" : needle);
		int rc = fill(r, (int)left, e);
		if (rc)
			return rc;
	}
}

/* Read until the board stays quiet for quiet_ms (bounded by max_ms). */
static int drain(struct farm_repl *r, int quiet_ms, int max_ms, struct farm_err *e)
{
	long long end = farm_now_ms() + max_ms;
	long long quiet_since = farm_now_ms();
	while (farm_now_ms() < end) {
		size_t before = r->rx.len;
		int rc = fill(r, quiet_ms, e);
		if (rc)
			return rc;
		if (r->rx.len != before)
			quiet_since = farm_now_ms();
		else if (farm_now_ms() - quiet_since >= quiet_ms)
			break;
	}
	farm_buf_reset(&r->rx);
	return 0;
}

/* ---- raw REPL entry ---- */

int farm_repl_enter_raw(struct farm_repl *r, int timeout_ms, struct farm_err *e)
{
	long long deadline = farm_now_ms() + timeout_ms;
	int rc = 0;
	r->in_raw = 0;
	while (farm_now_ms() < deadline) {
		/* Interrupt a running program twice (a first Ctrl-C may land in an
		 * except clause), then drop whatever it printed. */
		if ((rc = send_bytes(r, "\r\x03", 2, e)) ||
		    (rc = drain(r, 30, 300, e)) ||
		    (rc = send_bytes(r, "\x03", 1, e)) ||
		    (rc = drain(r, 30, 500, e)) ||
		    (rc = send_bytes(r, "\r\x01", 2, e)))
			return rc;
		long long step = farm_now_ms() + (PROTO_TIMEOUT_MS < timeout_ms ? PROTO_TIMEOUT_MS : timeout_ms);
		if (step > deadline)
			step = deadline;
		rc = wait_for(r, FARM_REPL_RAW_BANNER, step, NULL, e);
		if (rc == 0)
			rc = wait_for(r, ">", step, NULL, e);
		if (rc == 0) {
			/* Anything after the prompt now would be stale noise. */
			r->in_raw = 1;
			farm_buf_reset(&r->rx);
			return 0;
		}
		if (rc != FARM_ETIMEDOUT)
			return rc;
	}
	return farm_err_set(e, FARM_ETIMEDOUT,
			    "the board did not enter the raw REPL within %d ms (is MicroPython running "
			    "on it, at the configured baud rate?)",
			    timeout_ms);
}

int farm_repl_leave_raw(struct farm_repl *r, struct farm_err *e)
{
	/* Ctrl-C first: code still running (an interrupted test) is stopped. */
	int rc = send_bytes(r, "\r\x03\x02", 3, e);
	r->in_raw = 0;
	if (!rc)
		rc = wait_for(r, ">>> ", farm_now_ms() + PROTO_TIMEOUT_MS, NULL, e);
	farm_buf_reset(&r->rx);
	return rc;
}

int farm_repl_soft_reset(struct farm_repl *r, int timeout_ms, struct farm_err *e)
{
	int rc = 0;
	if (!r->in_raw && (rc = farm_repl_enter_raw(r, timeout_ms, e)))
		return rc;
	r->in_raw = 0;
	long long deadline = farm_now_ms() + timeout_ms;
	if ((rc = send_bytes(r, "\x04", 1, e)) ||
	    (rc = wait_for(r, FARM_REPL_SOFT_REBOOT, deadline, NULL, e)) ||
	    (rc = wait_for(r, FARM_REPL_RAW_BANNER, deadline, NULL, e)) ||
	    (rc = wait_for(r, ">", deadline, NULL, e)))
		return farm_err_prefix(e, "soft reset");
	r->in_raw = 1;
	farm_buf_reset(&r->rx);
	return 0;
}

/* ---- uploads ---- */

/* Raw-paste: returns 1 if the code was sent (ack received), 0 if the board
 * does not offer raw-paste (still at the raw prompt), <0 on error. */
static int upload_raw_paste(struct farm_repl *r, const char *code, size_t len, struct farm_err *e)
{
	long long deadline = farm_now_ms() + PROTO_TIMEOUT_MS;
	int rc = send_bytes(r, "\x05" "A\x01", 3, e);
	if (rc)
		return rc;
	unsigned window = 0;
	size_t used = 0;
	for (;;) {
		int v = farm_replp_paste_reply(r->rx.data ? r->rx.data : "", r->rx.len, &window, &used);
		if (v == 0) {
			consume(r, used);
			r->paste_state = 0;
			return 0;
		}
		if (v == 1) {
			consume(r, used);
			r->paste_state = 1;
			r->paste_window = window;
			break;
		}
		if (v == -2)
			return farm_err_set(e, FARM_EPROTO, "garbled reply to the raw-paste request");
		long long left = deadline - farm_now_ms();
		if (left <= 0)
			return farm_err_set(e, FARM_EPROTO, "no reply to the raw-paste request");
		if ((rc = fill(r, (int)left, e)))
			return rc;
	}
	/* Flow control: the board granted two windows (the W and the first 01). */
	size_t remaining = 2 * (size_t)window;
	size_t off = 0;
	long long stall = farm_now_ms() + PROTO_TIMEOUT_MS;
	while (off < len) {
		while (remaining == 0 || r->rx.len > 0) {
			if (r->rx.len == 0) {
				long long left = stall - farm_now_ms();
				if (left <= 0)
					return farm_err_set(e, FARM_EPROTO,
							    "raw-paste: the board granted no window for %d ms",
							    PROTO_TIMEOUT_MS);
				if ((rc = fill(r, (int)left, e)))
					return rc;
				continue;
			}
			unsigned char c = (unsigned char)r->rx.data[0];
			consume(r, 1);
			if (c == 0x01) {
				remaining += window;
				stall = farm_now_ms() + PROTO_TIMEOUT_MS;
			} else if (c == 0x04) {
				/* The board stopped reading (compile error): end the data. */
				if ((rc = send_bytes(r, "\x04", 1, e)))
					return rc;
				return 1;
			} else {
				return farm_err_set(e, FARM_EPROTO,
						    "raw-paste: unexpected byte 0x%02x during upload", c);
			}
		}
		size_t k = len - off < remaining ? len - off : remaining;
		if ((rc = send_bytes(r, code + off, k, e)))
			return rc;
		off += k;
		remaining -= k;
		stall = farm_now_ms() + PROTO_TIMEOUT_MS;
		/* Pick up any 01/04 that arrived meanwhile, without waiting. */
		if ((rc = fill(r, 0, e)))
			return rc;
	}
	if ((rc = send_bytes(r, "\x04", 1, e)))
		return rc;
	/* The board acknowledges the end of data with 04 (window grants may precede it). */
	deadline = farm_now_ms() + PROTO_TIMEOUT_MS;
	for (;;) {
		while (r->rx.len) {
			unsigned char c = (unsigned char)r->rx.data[0];
			consume(r, 1);
			if (c == 0x04)
				return 1;
			if (c != 0x01)
				return farm_err_set(e, FARM_EPROTO,
						    "raw-paste: unexpected byte 0x%02x before the acknowledgement", c);
		}
		long long left = deadline - farm_now_ms();
		if (left <= 0)
			return farm_err_set(e, FARM_EPROTO, "raw-paste: no acknowledgement of the code");
		if ((rc = fill(r, (int)left, e)))
			return rc;
	}
}

/* Echo-paste: leaves the code in the board's global PASTE_VAR, verified. */
static int upload_echo_paste(struct farm_repl *r, const char *code, size_t len, struct farm_err *e)
{
	struct farm_buf line = { 0 };
	int rc = farm_repl_encode_assign(&line, PASTE_VAR, code, len);
	if (rc) {
		rc = farm_err_set(e, FARM_ENOMEM, "out of memory");
		goto out;
	}
	long long deadline = farm_now_ms() + PROTO_TIMEOUT_MS;
	/* raw -> friendly -> paste mode */
	r->in_raw = 0;
	if ((rc = send_bytes(r, "\x02", 1, e)) || (rc = wait_for(r, ">>> ", deadline, NULL, e)))
		goto fault;
	farm_buf_reset(&r->rx);
	if ((rc = send_bytes(r, "\x05", 1, e)) ||
	    (rc = wait_for(r, FARM_REPL_PASTE_BANNER, deadline, NULL, e)))
		goto fault;
	size_t sent = 0, echoed = 0;
	size_t window = r->cfg.window;
	long long stall = farm_now_ms() + PROTO_TIMEOUT_MS;
	while (echoed < line.len) {
		if (sent < line.len && sent - echoed < window) {
			size_t k = window - (sent - echoed);
			if (k > line.len - sent)
				k = line.len - sent;
			if ((rc = send_bytes(r, line.data + sent, k, e)))
				goto out;
			sent += k;
		}
		long long left = stall - farm_now_ms();
		if (left <= 0) {
			rc = farm_err_set(e, FARM_EPROTO,
					  "paste upload stalled: %zu of %zu bytes echoed (input lost?)", echoed,
					  line.len);
			goto cancel;
		}
		if ((rc = fill(r, (int)left, e)))
			goto out;
		if (r->rx.len) {
			size_t k = r->rx.len;
			if (k > sent - echoed) {
				rc = farm_err_set(e, FARM_EPROTO, "paste upload: the board echoed more than was sent");
				goto cancel;
			}
			if (memcmp(r->rx.data, line.data + echoed, k) != 0) {
				rc = farm_err_set(e, FARM_EPROTO,
						  "paste upload: echo differs from the code at byte %zu (input lost or garbled)",
						  echoed);
				goto cancel;
			}
			echoed += k;
			consume(r, k);
			stall = farm_now_ms() + PROTO_TIMEOUT_MS;
		}
	}
	/* Verified: compile the assignment, back to the raw REPL. */
	deadline = farm_now_ms() + PROTO_TIMEOUT_MS;
	size_t before = 0;
	if ((rc = send_bytes(r, "\x04", 1, e)) || (rc = wait_for(r, ">>> ", deadline, &before, e)))
		goto fault;
	if (before > 2) {
		/* The board printed something: most likely a MemoryError. */
		rc = farm_err_set(e, FARM_ELIMIT, "the board could not store the %zu-byte test code",
				  len);
		goto back_to_raw;
	}
	rc = 0;
	goto back_to_raw;
cancel:
	send_bytes(r, "\x03", 1, NULL);
	goto back_to_raw;
fault:
	if (rc == FARM_ETIMEDOUT) {
		farm_err_prefix(e, "paste upload");
		if (e)
			e->code = FARM_EPROTO;
		rc = FARM_EPROTO;
	}
back_to_raw:;
	struct farm_err e2 = { 0 };
	int rc2 = send_bytes(r, "\x01", 1, &e2);
	if (!rc2)
		rc2 = wait_for(r, FARM_REPL_RAW_BANNER, farm_now_ms() + PROTO_TIMEOUT_MS, NULL, &e2);
	if (!rc2)
		rc2 = wait_for(r, ">", farm_now_ms() + PROTO_TIMEOUT_MS, NULL, &e2);
	if (!rc2) {
		r->in_raw = 1;
		farm_buf_reset(&r->rx);
	} else if (!rc) {
		rc = farm_err_set(e, FARM_EPROTO, "could not return to the raw REPL after the upload: %s",
				  e2.msg);
	}
out:
	farm_buf_free(&line);
	return rc;
}

/* ---- exec ---- */

/* Feed rx to the parser until done or deadline. */
static int collect(struct farm_repl *r, long long deadline, struct farm_err *e)
{
	for (;;) {
		if (r->rx.len) {
			size_t used = farm_replp_feed(&r->parser, r->rx.data, r->rx.len);
			consume(r, used);
		}
		if (r->parser.state == FARM_REPLP_DONE)
			return 0;
		if (r->parser.state == FARM_REPLP_BAD)
			return farm_err_set(e, FARM_EPROTO, "%s", r->parser.reason);
		long long left = deadline - farm_now_ms();
		if (left <= 0)
			return FARM_ETIMEDOUT;
		int rc = fill(r, (int)left, e);
		if (rc)
			return rc;
	}
}

static int hard_reset(struct farm_repl *r, struct farm_err *e)
{
	if (!r->reset)
		return farm_err_set(e, FARM_EIO, "the board stopped answering and has no reset method");
	r->stats.hard_resets++;
	int rc = r->reset(r->reset_payload, e);
	if (rc)
		return farm_err_prefix(e, "reset after the board stopped answering");
	farm_buf_reset(&r->rx);
	rc = farm_repl_enter_raw(r, (int)r->cfg.boot_timeout_ms, e);
	if (rc)
		return farm_err_prefix(e, "the board did not come back after a reset");
	return 0;
}

/* After a timeout: interrupt, then recover the raw prompt by ever stronger means. */
static int recover(struct farm_repl *r, struct farm_err *e)
{
	struct farm_err ign = { 0 };
	r->stats.recoveries++;
	int rc = send_bytes(r, "\x03", 1, &ign);
	if (rc == FARM_EINTR)
		return farm_err_set(e, FARM_EINTR, "interrupted");
	if (rc == 0) {
		rc = collect(r, farm_now_ms() + 1000, &ign);
		if (rc == 0)
			return 0; /* KeyboardInterrupt traceback and prompt: back at raw */
	}
	if (rc == FARM_EINTR)
		return farm_err_set(e, FARM_EINTR, "interrupted");
	if (rc != FARM_ECLOSED && farm_repl_enter_raw(r, 2000, &ign) == 0)
		return 0;
	if (rc != FARM_ECLOSED && farm_repl_soft_reset(r, 2000, &ign) == 0)
		return 0;
	return hard_reset(r, e);
}

static int exec_once(struct farm_repl *r, const char *code, size_t len, int timeout_ms,
		     struct farm_repl_result *res, struct farm_err *e)
{
	int rc;
	if (!r->in_raw && (rc = farm_repl_enter_raw(r, (int)r->cfg.boot_timeout_ms, e)))
		return rc;
	int expect_ok = 1;
	int sent = 0;
	if (len + 1 > r->cfg.chunk && r->upload != FARM_UPLOAD_RAW) {
		if (r->paste_state != 0) {
			rc = upload_raw_paste(r, code, len, e);
			if (rc < 0)
				return rc;
			if (rc == 1) {
				sent = 1;
				expect_ok = 0;
			} else if (r->upload == FARM_UPLOAD_RAW_PASTE) {
				return farm_err_set(e, FARM_EUNSUPPORTED,
						    "the board does not offer raw-paste mode (repl.upload: raw-paste); "
						    "use auto or echo-paste");
			}
		}
		if (!sent) {
			if ((rc = upload_echo_paste(r, code, len, e)))
				return rc;
			static const char run[] = "exec(globals().pop('" PASTE_VAR "'))\x04";
			if ((rc = send_bytes(r, run, sizeof run - 1, e)))
				return rc;
			sent = 1;
		}
	}
	if (!sent) {
		if ((rc = send_paced(r, code, len, e)) || (rc = send_bytes(r, "\x04", 1, e)))
			return rc;
	}
	r->stats.execs++;
	farm_replp_begin(&r->parser, expect_ok);
	long long start = farm_now_ms();
	rc = collect(r, start + timeout_ms, e);
	res->time_s = (double)(farm_now_ms() - start) / 1000.0;
	farm_buf_reset(&res->out);
	farm_buf_reset(&res->err);
	if (r->parser.out.len && farm_buf_append(&res->out, r->parser.out.data, r->parser.out.len))
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	if (r->parser.err.len && farm_buf_append(&res->err, r->parser.err.data, r->parser.err.len))
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	if (rc == FARM_ETIMEDOUT) {
		struct farm_err re = { 0 };
		int rrc = recover(r, &re);
		if (rrc == FARM_EINTR)
			return farm_err_set(e, FARM_EINTR, "interrupted");
		if (rrc) {
			r->in_raw = 0;
			return farm_err_set(e, FARM_EIO,
					    "timed out after %d ms and the board could not be recovered: %s",
					    timeout_ms, re.msg);
		}
		return farm_err_set(e, FARM_ETIMEDOUT, "timed out after %d ms (interrupted, REPL recovered)",
				    timeout_ms);
	}
	if (rc) {
		r->in_raw = 0;
		/* Once the board said OK the code is running: a broken frame after
		 * that (e.g. the code printed a 04 byte) must not run it again. */
		if (rc == FARM_EPROTO && r->parser.ok_matched == 2)
			r->ran = 1;
		return rc;
	}
	/* The exec() wrapper is known to compile: a SyntaxError in it means the
	 * line was garbled on the way. */
	if (!expect_ok || len + 1 <= r->cfg.chunk || r->upload == FARM_UPLOAD_RAW)
		return 0;
	if (res->err.len && farm_memfind(res->err.data, res->err.len, "SyntaxError", 11) >= 0 &&
	    farm_memfind(res->err.data, res->err.len, "\"<string>\"", 10) < 0)
		return farm_err_set(e, FARM_EPROTO, "the exec wrapper arrived garbled");
	return 0;
}

int farm_repl_exec(struct farm_repl *r, const char *code, size_t len, int timeout_ms,
		   struct farm_repl_result *res, struct farm_err *e)
{
	unsigned attempts = r->cfg.retries + 1;
	int rc = 0;
	res->attempts = 0;
	for (unsigned i = 0; i < attempts; i++) {
		res->attempts++;
		r->ran = 0;
		rc = exec_once(r, code, len, timeout_ms, res, e);
		if (rc == FARM_ELIMIT && i + 1 < attempts) {
			/* The board could not hold the code: usually a fragmented heap.
			 * Collect garbage and try again. */
			struct farm_repl_result gc = { 0 };
			static const char collect[] = "import gc;gc.collect()";
			int grc = exec_once(r, collect, sizeof collect - 1, PROTO_TIMEOUT_MS, &gc, e);
			farm_repl_result_free(&gc);
			r->stats.memory_retries++;
			if (grc)
				return grc;
			continue;
		}
		if (rc != FARM_EPROTO)
			return rc;
		if (r->ran) {
			struct farm_err ign = { 0 };
			r->stats.faults++;
			farm_repl_enter_raw(r, (int)r->cfg.boot_timeout_ms, &ign);
			return farm_err_prefix(e, "the output could not be read (not retried: the code had run)");
		}
		/* A transport fault: never a test verdict. Resynchronise and retry. */
		r->stats.faults++;
		struct farm_err ign = { 0 };
		if (farm_repl_enter_raw(r, (int)r->cfg.boot_timeout_ms, &ign) != 0) {
			if (hard_reset(r, &ign) != 0)
				return farm_err_set(e, FARM_EIO,
						    "transport fault (%s), then the board stopped answering: %s",
						    e ? e->msg : "?", ign.msg);
		}
	}
	return farm_err_prefix(e, "transport fault persisted after %u attempts", attempts);
}
