/* mpfarm: bootloader entry, a small registry of its own (runners/entry.c).
 *
 * A method puts a running board into its bootloader; entry_run then waits
 * for the bootloader to appear (the same port, or a USB device matching
 * what the runner expects) and hands it to the runner.
 *
 *   touch1200  open the port at 1200 baud, drop DTR, close
 *   repl       machine.bootloader() over the raw REPL (the port vanishing
 *              is the expected end)
 *   esp-reset  DTR/RTS into the ESP ROM loader: USB-UART bridge sequences
 *              (classic, unix-tight) or the USB-Serial/JTAG one (303A:1001)
 *   probe      reset/halt through the board's debug probe
 *   manual     a person presses the buttons; in CI (non-interactive) it
 *              fails at once with what to press
 *   none       the board is already in its bootloader
 * A board lists methods in flash.entry ("repl, touch1200"); on failure the
 * next one is tried. */
#ifndef RUNNER_ENTRY_H
#define RUNNER_ENTRY_H

#include <signal.h>
#include <stddef.h>

#include "err.h"
#include "inventory.h"
#include "transport.h"
#include "usbdev.h"

/* What the runner waits for after entry. */
struct entry_want {
	int same_port;          /* the bootloader speaks on the board's own port (USB-UART bridge) */
	struct farm_usbdev_match usb; /* else: the device to wait for (VIDs/PIDs of the bootloader);
					 entry_run narrows it to the board's location or serial */
	unsigned settle_ms;     /* the device must stay this long (default 0) */
};

struct entry_ctx {
	const struct farm_board *board;
	const char *port_path;          /* the board's serial port now, or NULL */
	const struct farm_usbdev *dev;  /* its USB device before entry, or NULL (not USB) */
	int interactive;                /* a person is at the terminal */
	void (*log)(void *payload, const char *line);
	void *log_payload;
	const volatile sig_atomic_t *cancel;
	unsigned timeout_ms;            /* per method, wait included (default 10000; manual: at
					   least ENTRY_MANUAL_WAIT_MS) */
	/* A reset through the board's debug probe (the job fills it from the
	 * runner context's board_reset), or NULL. halt: keep the core stopped. */
	int (*probe_reset)(void *payload, int halt, struct farm_err *e);
	void *probe_payload;
	/* Where farm_usbdev looks (NULL = "/sys" and "/dev"): for tests. */
	const char *sys_root, *dev_root;
};

#define ENTRY_DEFAULT_TIMEOUT_MS 10000u
#define ENTRY_MANUAL_WAIT_MS 60000u     /* a person gets at least this long */
#define ENTRY_MAX_METHODS 8

struct entry_result {
	char method[32];                /* the method that worked */
	char port[256];                 /* serial port of the bootloader ("" when it has none) */
	struct farm_usbdev dev;         /* the bootloader's USB device (when !same_port) */
	/* Still open when the method kept the port (esp-reset on a bridge): the
	 * runner takes it over and closes it. Else NULL. */
	struct farm_transport *t;
};

struct entry_ops {
	const char *name;
	const char *summary;
	/* Trigger the bootloader; may fill res->t / res->port. No waiting for
	 * the new device here (entry_run does that). */
	int (*enter)(const struct entry_ctx *ctx, const struct entry_want *want,
		     struct entry_result *res, struct farm_err *e);
	/* The wait after enter lasts at least this long (0 = ctx->timeout_ms
	 * alone); manual: a person needs time. */
	unsigned min_wait_ms;
};

const struct entry_ops *const *entry_all(void);
const struct entry_ops *entry_find(const char *name);
/* Check a comma-separated method list ("repl, touch1200"): FARM_EINVAL
 * naming the unknown one. */
int entry_check_list(const char *methods, struct farm_err *e);
/* Try each method of the list in turn until the wanted bootloader appears.
 * The final error names the board and says what each method did. */
int entry_run(const char *methods, const struct entry_ctx *ctx, const struct entry_want *want,
	      struct entry_result *res, struct farm_err *e);
/* The same with another registry (NULL-terminated): for tests. */
int entry_run_in(const struct entry_ops *const *registry, const char *methods,
		 const struct entry_ctx *ctx, const struct entry_want *want,
		 struct entry_result *res, struct farm_err *e);
/* Split a method list into names (at most ENTRY_MAX_METHODS, each checked
 * against registry); returns the count or FARM_EINVAL. */
int entry_parse_list(const struct entry_ops *const *registry, const char *methods,
		     const struct entry_ops **out, size_t max, struct farm_err *e);
/* One line to ctx->log ("entry: ..."), for methods. */
void entry_log(const struct entry_ctx *ctx, const char *fmt, ...) FARM_PRINTF(2, 3);
/* The board's id for messages ("board" when unknown). */
const char *entry_board_id(const struct entry_ctx *ctx);

/* The methods (one file each). */
extern const struct entry_ops entry_touch1200_ops;  /* runners/entry_touch.c */
extern const struct entry_ops entry_repl_ops;       /* runners/entry_repl.c */
extern const struct entry_ops entry_esp_reset_ops;  /* runners/entry_esp.c */
extern const struct entry_ops entry_probe_ops;      /* runners/entry_probe.c */
extern const struct entry_ops entry_manual_ops;     /* runners/entry_manual.c */
extern const struct entry_ops entry_none_ops;       /* runners/entry.c */
extern const struct entry_ops entry_openmv_ops;     /* runners/entry_openmv.c */

#endif
