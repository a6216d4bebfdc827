/* mpfarm: human-friendly output. One line per board per phase, prefixed
 * with the board id and never interleaved mid-line; a summary table at the
 * end. Colour only on a TTY and never when NO_COLOR is set. */
#ifndef FARM_UI_H
#define FARM_UI_H

#include <stdio.h>

#include "err.h"
#include "result.h"

struct farm_ui_live; /* state of the live table (ui.c) */

struct farm_ui {
	FILE *out;
	int color;    /* ANSI colours */
	int verbose;  /* -v: REPL transcripts */
	int quiet;    /* -q: summary only */
	int tty;      /* out is a terminal: timestamps off, colours maybe */
	struct farm_ui_live *live; /* non-NULL: a live table redrawn in place instead of lines */
};

/* Decide colour/tty from the stream and the environment. */
void farm_ui_init(struct farm_ui *ui, FILE *out, int verbose, int quiet);
/* "[board] phase: message" (message printf-style). */
void farm_ui_phase(const struct farm_ui *ui, const char *board, const char *phase, const char *fmt,
		   ...) FARM_PRINTF(4, 5);
/* A long step's progress in bytes (flash "erase"/"write"/"verify"). In the
 * live table: the progress column. On a terminal without the table: a bar
 * redrawn in place. Otherwise (CI logs): a plain line at the start, at every
 * quarter and at the end of each step. */
void farm_ui_progress(const struct farm_ui *ui, const char *board, const char *step,
		      unsigned long long done, unsigned long long total);
/* One test's verdict line. */
void farm_ui_case(const struct farm_ui *ui, const char *board, const struct farm_case *c);
/* Verbose transcript block: every line prefixed "[board] | ", control bytes shown as \xNN. */
void farm_ui_transcript(const struct farm_ui *ui, const char *board, const char *data, size_t len);
/* On a TTY (and not -v/-q): switch to a live table with one row per board
 * (board, phase, progress, current test, elapsed, result), redrawn in place.
 * Returns 0, or -1 if it stays line output. */
int farm_ui_live_start(struct farm_ui *ui, const char *const *boards, const size_t *tests, size_t n);
/* A board's job ended. */
void farm_ui_board_done(const struct farm_ui *ui, const char *board, double time_s);
/* Final redraw and release of the live table (NULL-safe state). */
void farm_ui_live_stop(struct farm_ui *ui);
/* Summary table: board, passed/failed/errors/skipped, time; then totals. */
void farm_ui_summary(const struct farm_ui *ui, const struct farm_run_result *r);

#endif
