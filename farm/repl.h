/* mpfarm: the REPL engine. Runs Python code on a board over its console
 * transport and returns stdout and the traceback separately.
 *
 * Upload strategies (board repl.upload, "auto" picks the first that works):
 *   raw-paste   MicroPython >= 1.14: the board grants each window of input.
 *   echo-paste  older firmware: the code is sent as one bytes literal in
 *               friendly paste mode (Ctrl-E), at most `window` bytes ahead of
 *               the board's echo, verified byte for byte, then executed from
 *               the raw REPL with exec(). Lost input is detected, never run.
 *   raw         classic raw REPL, paced (`chunk` bytes, `delay_ms` pause).
 * Code no longer than `chunk` bytes always goes the classic raw way: a single
 * burst that fits the board's input buffer cannot overflow it.
 *
 * Faults (lost or garbled bytes, missing OK) are retried up to `retries`
 * times and are never reported as a test failure. A test that exceeds its
 * timeout is interrupted (Ctrl-C), then the REPL is recovered: re-enter raw,
 * soft reset, and finally the board's hard reset hook. */
#ifndef FARM_REPL_H
#define FARM_REPL_H

#include <signal.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"
#include "inventory.h"
#include "replproto.h"
#include "transport.h"

/* dir: 'r' for bytes from the board, 'w' for bytes to it. */
typedef void (*farm_repl_log_fn)(void *payload, char dir, const char *data, size_t len);
/* Power-cycle or reset the board (e.g. QMP system_reset). */
typedef int (*farm_repl_reset_fn)(void *payload, struct farm_err *e);

enum farm_repl_upload { FARM_UPLOAD_AUTO, FARM_UPLOAD_RAW_PASTE, FARM_UPLOAD_ECHO_PASTE,
			FARM_UPLOAD_RAW };

struct farm_repl_stats {
	unsigned execs;
	unsigned faults;      /* transport faults detected (each retried) */
	unsigned recoveries;  /* timeouts recovered */
	unsigned hard_resets;
	unsigned memory_retries; /* uploads retried after gc.collect() */
	unsigned long long bytes_sent;
};

struct farm_repl;

struct farm_repl_result {
	struct farm_buf out;  /* stdout */
	struct farm_buf err;  /* traceback; empty when the code raised nothing */
	double time_s;
	unsigned attempts;
};

int farm_repl_new(struct farm_repl **out, struct farm_transport *t, const struct farm_repl_cfg *cfg,
		  struct farm_err *e);
/* The transport stays the caller's. */
void farm_repl_free(struct farm_repl *r);

void farm_repl_set_log(struct farm_repl *r, farm_repl_log_fn fn, void *payload);
void farm_repl_set_reset(struct farm_repl *r, farm_repl_reset_fn fn, void *payload);
/* When *flag becomes non-zero, pending calls return FARM_EINTR soon. */
void farm_repl_set_cancel(struct farm_repl *r, const volatile sig_atomic_t *flag);

/* Interrupt whatever runs and enter the raw REPL; waits up to timeout_ms. */
int farm_repl_enter_raw(struct farm_repl *r, int timeout_ms, struct farm_err *e);
/* Run code. 0: it ran (res->err holds the traceback if it raised).
 * FARM_ETIMEDOUT: it exceeded timeout_ms and was interrupted; the REPL was
 *   recovered (res->out holds the output so far). If recovery failed the
 *   return is FARM_EIO and the board must be treated as gone.
 * FARM_EPROTO: transport faults persisted through every retry. */
int farm_repl_exec(struct farm_repl *r, const char *code, size_t len, int timeout_ms,
		   struct farm_repl_result *res, struct farm_err *e);
/* Leave the raw REPL (Ctrl-B) so the board is left at its friendly prompt. */
int farm_repl_leave_raw(struct farm_repl *r, struct farm_err *e);
/* Soft reset from the raw REPL; waits for the raw prompt again. */
int farm_repl_soft_reset(struct farm_repl *r, int timeout_ms, struct farm_err *e);

void farm_repl_result_free(struct farm_repl_result *res);
const struct farm_repl_stats *farm_repl_stats(const struct farm_repl *r);
/* Whether the last connection's board accepted raw-paste (-1 not yet known). */
int farm_repl_raw_paste_supported(const struct farm_repl *r);
const char *farm_repl_upload_name(enum farm_repl_upload u);
int farm_repl_upload_parse(const char *s, enum farm_repl_upload *out);

#endif
