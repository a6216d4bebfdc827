/* mpfarm: the board inventory (YAML). Schema: inventories/README.md.
 *
 * farm_inventory_load parses and validates the whole file and records every
 * problem in a farm_diags list (file:line:col + hint). It returns FARM_EINVAL
 * when any problem was found; *out is then NULL. All strings are owned by the
 * inventory and freed by farm_inventory_free. */
#ifndef FARM_INVENTORY_H
#define FARM_INVENTORY_H

#include <stddef.h>
#include "diag.h"
#include "err.h"

#define FARM_ID_MAX 64       /* board/probe/resource id length bound */
#define FARM_INVENTORY_MAX_BYTES (4u << 20)
#define FARM_INVENTORY_MAX_BOARDS 1024  /* entries in boards: */
#define FARM_INVENTORY_MAX_PROBES 256   /* entries in probes: */
#define FARM_INVENTORY_MAX_TARGETS 256  /* entries in firmware: */

/* A key/value option (scalar values only, e.g. flash method options). */
struct farm_kv {
	char *key;
	char *value;
	unsigned line, col;
};

struct farm_serial_cfg {
	char *path;     /* "/dev/...", "tcp://HOST:PORT", "unix:PATH"; NULL for emulated boards
			   and for USB boards found by usb_serial/location alone */
	char *usb_serial; /* USB serial number of the board's serial device, or NULL */
	char *location; /* USB bus-port path ("1-1.2"), or NULL */
	int baud;       /* default 115200 */
	int dtr, rts;   /* 1 = assert, 0 = deassert, -1 = leave as the driver opens it (default) */
};

/* Write pacing and REPL timing for one board. Defaults in farm_repl_cfg_default(). */
struct farm_repl_cfg {
	unsigned chunk;        /* plain raw-REPL writes: bytes per burst (default 32) */
	unsigned delay_ms;     /* pause between bursts (default 2) */
	unsigned window;       /* echo-paste upload: bytes in flight (default 32) */
	unsigned test_timeout_ms; /* default per-test timeout (default 10000) */
	unsigned boot_timeout_ms; /* wait for the first prompt (default 10000) */
	unsigned retries;      /* transport-fault retries per exec (default 3) */
	char *upload;          /* "auto" (default), "raw-paste", "echo-paste", "raw" */
};

struct farm_flash_cfg {
	char *method;          /* runner name, or NULL = choose automatically */
	struct farm_kv *opts;  /* every other scalar key of flash: */
	size_t n_opts;
	unsigned line, col;
};

struct farm_emulator_cfg {
	int present;
	char *kind;            /* "qemu" */
	char *machine;         /* "microbit" */
	char *firmware;        /* image in the board's flash at power-on; default: Debian's
				  firmware-microbit-micropython; NULL when blank */
	int blank;             /* blank: true: the flash is empty (the board must be flashed) */
	unsigned line, col;
};

struct farm_timeouts {
	unsigned boot_ms, test_ms, flash_ms, build_ms, board_ms; /* 0 = default */
};

struct farm_board {
	char *id;
	char *port;            /* MicroPython port: rp2, stm32, esp32, nrf, ... */
	char *board;           /* MicroPython board name */
	char *variant;         /* may be NULL */
	char *mcu;             /* MCU family for flash maps (later issues), may be NULL */
	struct farm_serial_cfg serial;
	char **tags;
	size_t n_tags;
	char *probe;           /* probe id, NULL if none (validated to exist) */
	char **resources;
	size_t n_resources;
	struct farm_flash_cfg flash;
	struct farm_emulator_cfg emulator;
	struct farm_repl_cfg repl;
	struct farm_timeouts timeouts; /* the inventory's, overridden by the board's own timeouts: */
	unsigned line, col;    /* where the board's mapping starts */
};

struct farm_probe {
	char *id;
	char *kind;            /* "gdb-remote", "openocd", "pyocd", "blackmagic", "qemu" */
	char *connection;      /* e.g. "tcp://127.0.0.1:3333", "/dev/ttyACM1" */
	char *serial_number;   /* probe USB serial, may be NULL */
	struct farm_kv *opts;
	size_t n_opts;
	unsigned line, col;
};

enum farm_fw_source { FARM_FW_FILE, FARM_FW_FETCH, FARM_FW_BUILD };

#define FARM_INVENTORY_MAX_PARTS 16     /* entries in a firmware entry's files: */
#define FARM_INVENTORY_MAX_ARGS 64      /* words of a build command:, entries of submodules: */

/* One raw binary of a files: list, placed at a flash offset. */
struct farm_fw_part {
	char *path;
	unsigned long offset;
	unsigned line, col;
};

/* One firmware: entry. Shape validated now, used by later issues.
 * opts by source (values are the validated scalar text; booleans are "true"
 * or "false", integers in decimal, sha256 in lower case):
 *   FARM_FW_FILE:  path
 *   FARM_FW_FETCH: url, sha256, sha256_waived, timeout (s), retries, max_size (bytes), version
 *   FARM_FW_BUILD: repo, ref, port, board, variant, artifact (command and
 *                  submodules are the lists below) */
struct farm_fw_target {
	char **boards;         /* board ids this target applies to (may be empty) */
	size_t n_boards;
	char *match_port, *match_board, *match_variant; /* or a match: selector */
	enum farm_fw_source source;
	char *format;          /* "ihex", "uf2", "dfuse", "elf", "bin"; NULL = detect */
	unsigned long base;    /* load address of a raw binary (has_base) */
	int has_base;
	char *identity;        /* expected os.uname().version text; NULL = read from the image */
	struct farm_kv *opts;  /* file: path | fetch: url, sha256, ... | build: repo, ref, ... */
	size_t n_opts;
	/* files: [{path, offset}, ...] (source FARM_FW_FILE, no opts): raw
	 * binaries loaded into one image, each at its offset (ESP flash sets). */
	struct farm_fw_part *parts;
	size_t n_parts;
	/* build: command: argv (NULL = the port's default) and submodules:
	 * (has_submodules: given, maybe empty; else read from the port's Makefile). */
	char **command;
	size_t n_command;
	char **submodules;
	size_t n_submodules;
	int has_submodules;
	unsigned line, col;
};


struct farm_inventory {
	char *path;
	char *name;            /* farm name */
	struct farm_board *boards;
	size_t n_boards;
	struct farm_probe *probes;
	size_t n_probes;
	struct farm_fw_target *targets;
	size_t n_targets;
	struct farm_timeouts timeouts;
};

/* Fill c with the defaults above. upload is left NULL, which means "auto";
 * the inventory also stores an explicit "upload: auto" as NULL, so consumers
 * only need to test for NULL. */
void farm_repl_cfg_default(struct farm_repl_cfg *c);

int farm_inventory_load(struct farm_inventory **out, const char *path, struct farm_diags *d,
			struct farm_err *e);
/* Same, from memory (name used in diagnostics). */
int farm_inventory_load_buf(struct farm_inventory **out, const char *name, const char *buf,
			    size_t len, struct farm_diags *d, struct farm_err *e);
void farm_inventory_free(struct farm_inventory *inv);

const struct farm_board *farm_inventory_board(const struct farm_inventory *inv, const char *id);
const struct farm_probe *farm_inventory_probe(const struct farm_inventory *inv, const char *id);
int farm_board_has_tag(const struct farm_board *b, const char *tag);
/* The value of key among kv[0..n), or NULL. */
const char *farm_kv_get(const struct farm_kv *kv, size_t n, const char *key);

/* Default firmware for emulated micro:bit boards. */
#define FARM_MICROBIT_FIRMWARE "/usr/share/firmware-microbit-micropython/firmware.hex"

#endif
