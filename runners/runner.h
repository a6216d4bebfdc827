/* mpfarm: flash runners. Each runner is one file of static functions that
 * exports one const ops table (runners/gdb.c: runner_gdb_ops, ...), listed
 * in the registry (runners/registry.c). The core calls a runner only
 * through the runner_* wrappers below, which check optional slots.
 *
 * Life of a runner on one board (in the board's worker process):
 *   runner_select()     which runner (inventory flash.method, else port +
 *                       image format + availability + priority); also run by
 *                       the planner before any board is touched
 *   runner_new()        allocates priv_size bytes and calls configure():
 *                       options are checked here, no I/O at all
 *   runner_flash()      erase + write, reporting progress
 *   runner_verify()     read back / checksum (optional slot)
 *   runner_reset()      start the new firmware (optional slot)
 *   runner_free()       cleanup(), then frees priv
 * Failures flow up as FARM_E* codes with the message in struct farm_err. */
#ifndef RUNNER_H
#define RUNNER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "flashmap.h"
#include "image.h"
#include "inventory.h"
#include "transport.h"
#include "usbdev.h"

/* Bit for an image format in runner_ops.formats. */
#define RUNNER_FMT(f) (1u << (unsigned)(f))

enum runner_cap {
	RUNNER_CAP_PROBE = 1u << 0,    /* needs a debug probe (or an emulator's gdbstub) */
	RUNNER_CAP_SERIAL = 1u << 1,   /* talks to a bootloader over the board's serial port */
	RUNNER_CAP_USB = 1u << 2,      /* talks to a USB bootloader device */
	RUNNER_CAP_VERIFY = 1u << 3,   /* can read back / checksum what it wrote */
	RUNNER_CAP_RESET = 1u << 4,    /* can start the new firmware itself */
	RUNNER_CAP_EMULATED = 1u << 5, /* works with emulated boards */
	RUNNER_CAP_NEEDS_MAP = 1u << 6,/* needs the board's flash map (mcu:) */
};

/* Progress of a long step: "erase", "write", "verify"; bytes done of total. */
typedef void (*runner_progress_fn)(void *payload, const char *step, uint64_t done, uint64_t total);

/* What the job gives a runner. Everything is borrowed for the runner's life. */
struct runner_ctx {
	const struct farm_board *board;
	const struct farm_probe *probe;     /* the board's probe, or NULL */
	const struct farm_flashmap *map;    /* from board->mcu, or NULL if unknown */
	/* The board's serial port now (resolved from serial.path, usb_serial or
	 * location), NULL when it has none (emulated, network console); and its
	 * USB device when it is one, else NULL. */
	const char *serial_path;
	const struct farm_usbdev *usb;
	int interactive;                    /* a person is at the terminal */
	const char *gdb_url;                /* a GDB server mpfarm runs for this board (an emulator's
					       gdbstub, a probe server); beats probe->connection */
	/* A GDB server mpfarm starts itself for the probe (farm/probesrv.h):
	 * opens a fresh connection to it; beats gdb_url. NULL = none. */
	int (*gdb_connect)(void *payload, struct farm_transport **out, int timeout_ms,
			   struct farm_err *e);
	void *gdb_payload;
	/* A hardware reset the job can do (QMP for emulated boards), or NULL. */
	int (*board_reset)(void *payload, struct farm_err *e);
	void *reset_payload;
	/* One line for the board's log, or NULL. */
	void (*log)(void *payload, const char *line);
	void *log_payload;
	const volatile sig_atomic_t *cancel;
	unsigned timeout_ms;                /* the whole flash step; 0 = the runner's default */
	const char *image_path;             /* the planned image's file (a runner may copy it as
					       is, after checking it is still that image), or NULL */
	const char *report_dir;             /* where the run's logs go (backups), or NULL */
};

struct runner_ops {
	const char *name;                /* flash.method in the inventory */
	const char *summary;             /* one line for `mpfarm runners` */
	const char *const *ports;        /* MicroPython ports served, NULL-terminated; NULL = any */
	unsigned formats;                /* RUNNER_FMT(FARM_IMG_...) bits it accepts */
	unsigned caps;                   /* enum runner_cap bits */
	int priority;                    /* higher wins in automatic selection */
	const char *entry;               /* how the board reaches programming mode (for listings) */
	const char *const *options;      /* flash: option keys it understands, NULL-terminated */
	size_t priv_size;                /* the core allocates (zeroed) and frees this */

	/* Optional (NULL = always available): 0 if usable here, else -1 with why. */
	int (*available)(char *why, size_t len);
	/* Mandatory. Check the board's flash: options and the context; no I/O. */
	int (*configure)(void *priv, const struct runner_ctx *ctx, struct farm_err *e);
	/* Mandatory. Write img (already checked against the flash map). */
	int (*flash)(void *priv, const struct farm_image *img, runner_progress_fn fn, void *payload,
		     struct farm_err *e);
	/* Optional. Compare the board's memory with img. */
	int (*verify)(void *priv, const struct farm_image *img, runner_progress_fn fn, void *payload,
		      struct farm_err *e);
	/* Optional. Start the new firmware. */
	int (*reset)(void *priv, struct farm_err *e);
	/* Optional. Release connections; called once, also after failures. */
	void (*cleanup)(void *priv);
};

/* The registry: every runner, NULL-terminated, in listing order. */
const struct runner_ops *const *runner_all(void);
/* By name, or NULL. */
const struct runner_ops *runner_find(const char *name);
/* 0 if usable here; else -1 and why. */
int runner_available(const struct runner_ops *ops, char *why, size_t len);
/* Whether ops serves this MicroPython port. */
int runner_serves_port(const struct runner_ops *ops, const char *port);
/* Comma-separated format names into out ("ihex, elf, bin"). */
void runner_format_names(const struct runner_ops *ops, char *out, size_t len);

/* Choose the runner for board b and an image of format fmt
 * (FARM_IMG_UNKNOWN = not known yet). *out = NULL when the board is not
 * flashed (flash.method: none). FARM_EINVAL with the reason when no runner
 * fits (naming what each candidate lacks) or the named one cannot do it;
 * FARM_EUNSUPPORTED when the named runner is unavailable here. */
int runner_select(const struct runner_ops **out, const struct farm_board *b,
		  enum farm_image_format fmt, struct farm_err *e);

/* Check every flash: option key of b against ops->options (did-you-mean in
 * the message). */
int runner_check_options(const struct runner_ops *ops, const struct farm_board *b,
			 struct farm_err *e);

struct runner;
int runner_new(struct runner **out, const struct runner_ops *ops, const struct runner_ctx *ctx,
	       struct farm_err *e);
const struct runner_ops *runner_ops_of(const struct runner *r);
int runner_flash(struct runner *r, const struct farm_image *img, runner_progress_fn fn,
		 void *payload, struct farm_err *e);
/* FARM_EUNSUPPORTED if the runner cannot verify. */
int runner_verify(struct runner *r, const struct farm_image *img, runner_progress_fn fn,
		  void *payload, struct farm_err *e);
/* Uses the runner's reset, else ctx->board_reset; FARM_EUNSUPPORTED if neither. */
int runner_reset(struct runner *r, struct farm_err *e);
void runner_free(struct runner *r);

/* One formatted line for the board's log through ctx->log (if any). */
void runner_logf(const struct runner_ctx *ctx, const char *fmt, ...) FARM_PRINTF(2, 3);

/* The board option value for key, or NULL. */
const char *runner_opt(const struct farm_board *b, const char *key);

/* The runners. */
extern const struct runner_ops runner_gdb_ops;
extern const struct runner_ops runner_openmv_ops;
extern const struct runner_ops runner_esptool_ops;
extern const struct runner_ops runner_dfu_ops;
extern const struct runner_ops runner_uf2_ops;

#endif
