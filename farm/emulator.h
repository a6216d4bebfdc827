/* mpfarm: emulated boards. A QEMU micro:bit runs real MicroPython firmware;
 * its UART is a private unix socket, its gdbstub listens on a loopback port
 * that mpfarm binds itself (no race: the listening fd is handed to QEMU) and
 * QMP is another private unix socket used for reset, power and quit.
 *
 * The QEMU process is in its own process group, dies with its parent
 * (PR_SET_PDEATHSIG) and is always stopped by farm_emu_stop (QMP quit, then
 * SIGKILL): no emulator outlives a run. */
#ifndef FARM_EMULATOR_H
#define FARM_EMULATOR_H

#include <sys/types.h>

#include "err.h"
#include "inventory.h"

struct farm_emu;

struct farm_emu_opts {
	const char *work_dir;  /* where the per-board socket dir is made; NULL = $XDG_RUNTIME_DIR or /tmp */
	const char *qemu;      /* binary, NULL = "qemu-system-arm" */
	int halted;            /* start with the CPU stopped (-S), no firmware loaded */
	int timeout_ms;        /* for QMP handshake and sockets to appear */
};

int farm_emu_start(struct farm_emu **out, const struct farm_emulator_cfg *cfg, const char *board_id,
		   const struct farm_emu_opts *opts, struct farm_err *e);
/* "unix:/.../uart.sock" */
const char *farm_emu_console_url(const struct farm_emu *emu);
int farm_emu_gdb_port(const struct farm_emu *emu);
pid_t farm_emu_pid(const struct farm_emu *emu);
/* The emulator's own stderr/stdout log file. */
const char *farm_emu_log_path(const struct farm_emu *emu);

/* QMP system_reset (the board reboots; preloaded firmware is re-applied). */
int farm_emu_reset(struct farm_emu *emu, struct farm_err *e);
/* QMP "cont" (after a halted start). */
int farm_emu_cont(struct farm_emu *emu, struct farm_err *e);
/* Stop QEMU (QMP quit, wait up to grace_ms, then SIGKILL), remove its
 * sockets and free emu. NULL-safe. Returns 0 if it quit cleanly. */
int farm_emu_stop(struct farm_emu *emu, int grace_ms);

/* The tiny QMP client (qmp.c). */
struct farm_qmp;
int farm_qmp_connect(struct farm_qmp **out, const char *path, int timeout_ms, struct farm_err *e);
/* Send {"execute": cmd} and wait for its return (events are skipped). */
int farm_qmp_execute(struct farm_qmp *q, const char *cmd, int timeout_ms, struct farm_err *e);
void farm_qmp_close(struct farm_qmp *q);

#endif
