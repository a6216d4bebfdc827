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
	struct farm_transport *t;
	struct farm_repl *repl;
	struct farm_buf transcript;   /* bytes from the board (tail kept) */
	size_t transcript_dropped;
	FILE *log;                    /* full two-way log, may be NULL */
	double boot_s;                /* start to raw REPL */
};

struct farm_session_opts {
	const char *log_path;         /* board log file, NULL = none */
	const struct farm_emu_opts *emu;
	const volatile sig_atomic_t *cancel;
};

/* Start the emulator if the board has one, open the console and enter the raw REPL. */
int farm_session_open(struct farm_session **out, const struct farm_board *b,
		      const struct farm_session_opts *opts, struct farm_err *e);
/* Leave the raw REPL, close the console, stop the emulator. NULL-safe. */
void farm_session_close(struct farm_session *s);
/* Same, handing the transcript to the caller (appended to *transcript). */
void farm_session_close_keep(struct farm_session *s, struct farm_buf *transcript);

#endif
