/* mpfarm: a live connection to one board: its emulator (if any), console
 * transport and REPL engine, with the transcript and the board's log file. */
#ifndef FARM_SESSION_H
#define FARM_SESSION_H

#include <signal.h>
#include <stdio.h>

#include "buf.h"
#include "emulator.h"
#include "err.h"
#include "inventory.h"
#include "repl.h"
#include "transport.h"

#define FARM_TRANSCRIPT_MAX (256u << 10) /* kept for the report; the log file has everything */

struct farm_session {
	const struct farm_board *board;
	struct farm_emu *emu;
	int own_emu;                  /* started by the session: stopped by it */
	struct farm_transport *t;
	struct farm_repl *repl;
	struct farm_buf transcript;   /* bytes from the board (tail kept) */
	size_t transcript_dropped;
	FILE *log;                    /* full two-way log, may be NULL */
	int borrowed_log;             /* opened by the caller */
	double boot_s;                /* start to raw REPL */
};

struct farm_session_opts {
	const char *log_path;         /* board log file, NULL = none */
	const struct farm_emu_opts *emu;
	struct farm_emu *emu_running; /* an emulator the caller started (borrowed), or NULL */
	const volatile sig_atomic_t *cancel;
	/* After a reset a real board's USB serial device vanishes and returns:
	 * keep trying to open the console for up to this long (0 = once). */
	unsigned reopen_ms;
	FILE *log;                    /* an already open board log to append to (borrowed), or NULL */
};

/* Start the emulator if the board has one (unless opts->emu_running), open
 * the console and enter the raw REPL. */
int farm_session_open(struct farm_session **out, const struct farm_board *b,
		      const struct farm_session_opts *opts, struct farm_err *e);
/* Leave the raw REPL, close the console, stop the emulator. NULL-safe. */
void farm_session_close(struct farm_session *s);
/* Same, handing the transcript to the caller (appended to *transcript). */
void farm_session_close_keep(struct farm_session *s, struct farm_buf *transcript);

#endif
