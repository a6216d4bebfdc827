/* mpfarm: one board's job, its phases in order:
 *   lock      the board's flock (farm/lock.h): never two mpfarm runs on one board
 *   emulator  an emulated board's QEMU (blank boards start halted, empty)
 *   identify  (--reflash=changed only) read the running firmware's identity;
 *             equal to the target's: the flash is skipped
 *   flash     hold the board's probe and resources (farm/resource.h), write
 *             the planned image with its runner, verify, reset, release
 *   connect   the console and the raw REPL (the board may take a while)
 *   identify  sys.implementation / os.uname(); after a flash it must show the
 *             image's identity, else the flash failed
 *   test      the suites' tests
 * Whatever happens, every selected test ends up in the board's result
 * exactly once; a failed flash makes every test an <error> naming it. */
#ifndef FARM_JOB_H
#define FARM_JOB_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "emulator.h"
#include "err.h"
#include "firmware.h"
#include "resource.h"
#include "inventory.h"
#include "result.h"
#include "suite.h"
#include "ui.h"

struct farm_job {
	const struct farm_inventory *inv;
	const struct farm_board *board;
	struct farm_suite *const *suites;
	size_t n_suites;
	const char *log_dir;          /* board logs are written here; NULL = none */
	const struct farm_emu_opts *emu;
	const volatile sig_atomic_t *cancel;
	const char *lock_dir;         /* board locks (farm/lock.h); NULL = no locking */
	int wait_lock_ms;             /* 0 = a busy board is skipped at once */
	const char *run_id;           /* recorded in lock files for humans */
	unsigned deadline_ms;         /* whole board (parent-enforced); 0 = the scheduler's */
	unsigned stall_ms;            /* parent's watchdog: longest silence of a healthy worker */
	const struct farm_fw_board *fw;  /* the plan for this board; NULL or no runner = no flash */
	int reflash_changed;          /* skip the flash when the board already runs the target */
	const struct farm_res_gate *gate; /* the run's resource arbiter (set in workers), or NULL */
	int interactive;              /* a person at a terminal (bootloader entry "manual" may wait) */
};

/* Where a job reports, as things happen. In a worker process the sink
 * encodes records for the parent (farm/worker.c); the parent replays them
 * into the direct sink, which fills the board's result and prints. */
struct farm_job_sink {
	void (*meta)(void *p, const char *timestamp, const char *hostname, const char *log_path);
	void (*prop)(void *p, const char *name, const char *value);
	void (*phase)(void *p, const char *phase, const char *msg);
	void (*chunk)(void *p, const char *data, size_t len);      /* one test's transcript (-v) */
	void (*case_done)(void *p, const struct farm_case *c);
	void (*transcript)(void *p, const char *data, size_t len); /* the whole transcript, once */
	void (*end)(void *p, double time_s);
	/* A long step's progress (flash "erase"/"write"/"verify"), in bytes. */
	void (*progress)(void *p, const char *step, uint64_t done, uint64_t total);
	void *payload;
};

struct farm_job_direct {
	struct farm_board_result *res;
	const struct farm_ui *ui;
	FILE *json;   /* --json-events stream, or NULL */
	char prog_step[16]; /* progress lines off a terminal: the step and quarter shown last */
	int prog_quarter;
};
/* A sink writing into d->res and printing through d->ui. */
void farm_job_direct_sink(struct farm_job_sink *sink, struct farm_job_direct *d);

/* Runs the job, reporting through sink. Returns 0 when the job ran to its
 * end (whatever the verdicts), FARM_EINTR when interrupted. */
int farm_job_run(const struct farm_job *job, const struct farm_job_sink *sink, struct farm_err *e);

/* Board identity read once per connection: the code and its parser. */
extern const char farm_job_identity_code[];

#endif
