/* mpfarm: the byte-level MicroPython raw-REPL protocol, as pure functions.
 * No I/O here: the engine (repl.c) feeds what it reads; tests feed byte
 * streams (split reads, noise, truncation). See shared protocol notes:
 *   raw exec:   host "code" 04  ->  "OK" stdout 04 traceback 04 ">"
 *   raw-paste:  host 05 'A' 01  ->  "R" 01 W_lo W_hi 01 | "R" 00 | "ra..." */
#ifndef FARM_REPLPROTO_H
#define FARM_REPLPROTO_H

#include <stddef.h>
#include "buf.h"

#define FARM_REPL_RAW_BANNER "raw REPL; CTRL-B to exit\r\n"
#define FARM_REPL_PASTE_BANNER "paste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== "
#define FARM_REPL_FRIENDLY_PROMPT "\r\n>>> "
#define FARM_REPL_SOFT_REBOOT "soft reboot\r\n"
#define FARM_REPL_OUTPUT_MAX (1u << 20) /* stdout/traceback kept per exec; the rest is counted */

enum farm_replp_state {
	FARM_REPLP_WAIT_OK,  /* raw exec: expecting "OK" */
	FARM_REPLP_STDOUT,   /* collecting stdout up to the first 04 */
	FARM_REPLP_STDERR,   /* collecting the traceback up to the second 04 */
	FARM_REPLP_PROMPT,   /* expecting ">" */
	FARM_REPLP_DONE,     /* complete; the prompt was consumed */
	FARM_REPLP_BAD,      /* malformed: see reason */
};

struct farm_replp {
	enum farm_replp_state state;
	size_t ok_matched;     /* bytes of "OK" matched so far */
	struct farm_buf out;   /* stdout (bounded) */
	struct farm_buf err;   /* traceback (bounded) */
	size_t dropped;        /* output bytes beyond the bound */
	char reason[160];      /* why BAD */
};

/* expect_ok: 1 for classic raw exec, 0 after a raw-paste upload (no "OK"). */
void farm_replp_begin(struct farm_replp *p, int expect_ok);
/* Feed bytes; returns how many were consumed. Stops consuming at DONE or BAD
 * (the rest belongs to whatever comes next). */
size_t farm_replp_feed(struct farm_replp *p, const void *data, size_t len);
void farm_replp_free(struct farm_replp *p);

/* Raw-paste request reply. Returns: 1 accepted (*window set), 0 not supported
 * (board stays at the raw prompt), -1 need more bytes, -2 malformed.
 * *used = bytes of the reply consumed (for "ra": through the '>' of the banner). */
int farm_replp_paste_reply(const void *data, size_t len, unsigned *window, size_t *used);

/* Exception type from a MicroPython traceback: the text before ':' on the last
 * non-empty line ("ZeroDivisionError: divide by zero" -> "ZeroDivisionError").
 * Writes "" when there is none. */
void farm_repl_exc_type(const char *tb, size_t len, char *out, size_t out_len);

/* Encode code as a one-line Python assignment `NAME=b'...'` that uses only
 * printable ASCII (so the board's paste-mode echo equals it byte for byte). */
int farm_repl_encode_assign(struct farm_buf *out, const char *name, const char *code, size_t len);

/* Normalise line endings: "\r\n" and lone "\r" -> "\n". In place; returns the new length. */
size_t farm_repl_normalize_eol(char *s, size_t len);

/* Find needle in hay; returns offset or -1. */
long farm_memfind(const void *hay, size_t hay_len, const void *needle, size_t needle_len);

#endif
