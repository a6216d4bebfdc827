/* mpfarm: every board's job in its own worker process.
 *
 * The parent forks one worker per board (at most `jobs` at once), each in
 * its own process group, and multiplexes their event pipes (farm/event.h)
 * with poll(). It never touches a board itself: it replays the records into
 * the board's result and prints them, so output lines never interleave.
 * Nothing is lost: when a worker dies without its END record (signal, abort,
 * exit), its results so far are kept and every test it did not report
 * becomes an <error> naming the signal and the phase. On a board deadline or
 * an interrupt the worker gets SIGTERM (it stops cleanly: leaves the raw
 * REPL, closes its port, stops its emulator), then SIGKILL after the grace
 * period; an interrupted run's unfinished tests are <skipped>. */
#ifndef FARM_WORKER_H
#define FARM_WORKER_H

#include <signal.h>
#include <stdio.h>

#include "err.h"
#include "job.h"
#include "result.h"
#include "ui.h"

/* The flash phase's deadline when the inventory sets no timeouts.flash. */
#define FARM_FLASH_DEADLINE_MS 600000u

struct farm_sched_opts {
	unsigned jobs;             /* concurrent workers; 0 = all boards at once */
	unsigned board_timeout_ms; /* whole-board deadline; 0 = none */
	unsigned grace_ms;         /* SIGTERM to SIGKILL; 0 = 5000 */
	const volatile sig_atomic_t *cancel;
	const struct farm_ui *ui;
	FILE *json;                /* --json-events, or NULL */
};

/* results[i] (board_id already set) is filled for jobs[i]. Returns 1 if the
 * run was interrupted, 0 otherwise, <0 if workers could not be started. */
int farm_sched_run(const struct farm_job *jobs, size_t n, struct farm_board_result *results,
		   const struct farm_sched_opts *o, struct farm_err *e);

#endif
