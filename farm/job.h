/* mpfarm: one board's job: connect (booting its emulator), read its
 * identity, run the suites' tests, and record every result. Whatever
 * happens, every selected test ends up in the board's result exactly once. */
#ifndef FARM_JOB_H
#define FARM_JOB_H

#include <signal.h>

#include "emulator.h"
#include "err.h"
#include "inventory.h"
#include "result.h"
#include "suite.h"
#include "ui.h"

struct farm_job {
	const struct farm_inventory *inv;
	const struct farm_board *board;
	struct farm_suite *const *suites;
	size_t n_suites;
	const struct farm_ui *ui;
	const char *log_dir;          /* board logs are written here; NULL = none */
	const struct farm_emu_opts *emu;
	const volatile sig_atomic_t *cancel;
	const char *lock_dir;         /* board locks (farm/lock.h); NULL = no locking */
	int wait_lock_ms;             /* 0 = a busy board is skipped at once */
	const char *run_id;           /* recorded in lock files for humans */
};

/* Fills res (an entry of the run result). Returns 0 when the job ran to its
 * end (whatever the verdicts), FARM_EINTR when interrupted. */
int farm_job_run(const struct farm_job *job, struct farm_board_result *res, struct farm_err *e);

/* Board identity read once per connection: the code and its parser. */
extern const char farm_job_identity_code[];

#endif
