/* mpfarm: one firmware build, and what MicroPython's ports build.
 *
 * A build is a process spawned with argv (never a shell) in the source
 * checkout, in its own process group, stdin from /dev/null, stdout and stderr
 * into its log file. Its deadline is enforced here: SIGTERM to the whole
 * group, SIGKILL 5 s later.
 *
 * Port defaults (MicroPython's own build steps): the command is
 *   make -C ports/<port> BOARD=<board> [BOARD_VARIANT=<variant>] -j<jobs>
 * after a one-time `make -C mpy-cross -j<jobs>` in the checkout when it has
 * mpy-cross/Makefile; the artifact, relative to ports/<port>, is
 *   build-<board>[-<variant>]/ + firmware.uf2 (rp2, samd), firmware.dfu
 *   (stm32), firmware.hex (nrf, mimxrt, renesas-ra), firmware.bin (esp8266,
 *   at 0), flash_args (esp32: the .bin set with offsets, merged into one
 *   image). Other ports need artifact:. The submodules a port needs are
 *   read from the GIT_SUBMODULES lines of ports/<port>/Makefile. */
#ifndef FARM_FWBUILD_H
#define FARM_FWBUILD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"
#include "image.h"

#define FARM_FWBUILD_MAX_ARGS 72

struct farm_fwbuild_proc {
	pid_t pid;             /* 0: not running */
	long long started_ms;
	long long term_ms;     /* when SIGTERM was sent, 0 = not yet */
	unsigned timeout_ms;   /* 0 = none */
	int timed_out;
};

/* Values for {port} {board} {variant} {jobs} in commands and artifacts. */
struct farm_fwbuild_vars {
	const char *port, *board, *variant;
	unsigned jobs;
};

/* Spawn argv[0] (looked up in PATH) in dir with output appended to log_path. */
int farm_fwbuild_spawn(struct farm_fwbuild_proc *p, const char *dir, char *const *argv,
		       const char *log_path, unsigned timeout_ms, struct farm_err *e);
/* 1 when the process ended (*status: its exit code, or 128 + signal), 0 while
 * it runs; enforces the deadline. */
int farm_fwbuild_poll(struct farm_fwbuild_proc *p, int *status);
/* Stop it now (SIGKILL to its group) and reap it. */
void farm_fwbuild_kill(struct farm_fwbuild_proc *p);

/* Expand the placeholders in s into out (FARM_EINVAL names an unknown one). */
int farm_fwbuild_expand(const char *s, const struct farm_fwbuild_vars *v, char *out, size_t len,
			struct farm_err *e);
/* The port's default command as argv (strdup'd, NULL-terminated, *n words)
 * with v expanded. */
int farm_fwbuild_default_argv(const struct farm_fwbuild_vars *v, char ***argv, size_t *n,
			      struct farm_err *e);
/* The port's default artifact (relative to ports/<port>), or NULL when the
 * port has none. */
const char *farm_fwbuild_default_artifact(const char *port);
/* Submodule paths from the GIT_SUBMODULES lines of the Makefile at path
 * (missing file: none). Bounded; strdup'd into *out. */
int farm_fwbuild_makefile_submodules(const char *path, char ***out, size_t *n, struct farm_err *e);

/* Load a build artifact: an image file, or an ESP-IDF flash_args file whose
 * "0xOFFSET path" lines (relative to its directory) are merged into one raw
 * image (gaps 0xff) starting at the lowest offset: *base receives it. */
int farm_fwbuild_load_artifact(const char *path, struct farm_image **img, unsigned long *base,
			       int *is_set, struct farm_err *e);

/* The last max bytes of a log file, as text (a cut first line dropped). */
int farm_fwbuild_log_tail(const char *path, size_t max, struct farm_buf *out);

#endif
