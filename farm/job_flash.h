/* mpfarm: the flash phase of a board's job (farm/job.h), and the power-on
 * state of flashable emulated boards. */
#ifndef FARM_JOB_FLASH_H
#define FARM_JOB_FLASH_H

#include <stdio.h>

#include "emulator.h"
#include "job.h"

struct farm_flash_phase {
	const struct farm_job *job;
	const struct farm_job_sink *sink;
	struct farm_emu *emu;   /* the board's running emulator, or NULL */
	FILE *log;              /* the board's log, or NULL */
};

/* Hold the board's resources, write the planned image with its runner,
 * verify it, start it, release the resources. Progress and phase lines go
 * to the sink; the byte counts and times to properties (flash.*).
 * FARM_EBUSY: a resource is held by another mpfarm run (message names it). */
int farm_job_flash(const struct farm_flash_phase *f, struct farm_err *e);

/* An emulated board that is flashed later starts halted with an empty flash;
 * unless it is blank, its emulator.firmware is then written into the flash
 * through its gdbstub and the board is reset and started, as if it had been
 * programmed long ago (QEMU's -device loader would re-apply the old image on
 * every reset and undo a flash). */
int farm_job_emu_poweron(struct farm_emu *emu, const struct farm_board *b, FILE *log,
			 const volatile sig_atomic_t *cancel, struct farm_err *e);

/* QMP system_reset, then cont (the board may have been started halted). */
int farm_job_emu_reset_run(void *emu, struct farm_err *e);

#endif
