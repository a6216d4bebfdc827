/* mpfarm: which firmware each board gets, loaded and checked before any
 * board is touched.
 *
 * The plan (farm_fwplan_make) runs in the parent before workers start:
 * for every selected board it finds the inventory's firmware: entry (an
 * entry naming the board in boards: beats a match: entry; among equals the
 * first in the file wins), loads the image once per unique file (parsed by
 * farm/image.h, every checksum checked), chooses the runner
 * (runners/runner.h), and gates the image against the board's flash map
 * and the runner's formats. Every problem is collected; a plan with problems
 * is bad input and nothing is flashed.
 *
 * The expected firmware identity of an image is the inventory's
 * `identity:` text, else what the image says of itself: MicroPython embeds
 * its version banner ("MicroPython v1.24.0 on 2024-10-25; ...") and
 * os.uname().version carries the same "v1.24.0 on 2024-10-25". */
#ifndef FARM_FIRMWARE_H
#define FARM_FIRMWARE_H

#include <stddef.h>

#include "diag.h"
#include "err.h"
#include "fwget.h"
#include "image.h"
#include "inventory.h"
#include "runner.h"

#define FARM_FW_IDENTITY_MAX 128

/* One loaded image, shared by every board that uses the same file. */
struct farm_fw_image {
	char *path;
	struct farm_image *img;
	char sha256[65];
	char identity[FARM_FW_IDENTITY_MAX]; /* expected identity text, "" = unknown */
};

struct farm_fw_board {
	const struct farm_board *board;
	const struct farm_fw_target *target; /* NULL: no firmware entry applies */
	const struct runner_ops *runner;     /* NULL: the board is not flashed */
	const struct farm_fw_image *image;   /* NULL: not flashed */
	const struct farm_flashmap *map;     /* from board->mcu, may be NULL */
	/* fetch:/build: boards: what the firmware phase got (NULL otherwise), and
	 * why this board cannot be flashed ("" = it can): the board's tests are
	 * then skipped, the other boards carry on. */
	const struct farm_fwget_board *got;
	char error[FARM_ERR_MSG_MAX];
};

struct farm_fwplan {
	struct farm_fw_board *boards;        /* one per board given to farm_fwplan_make */
	size_t n_boards;
	struct farm_fw_image *images;
	size_t n_images;
};

struct farm_fwplan_opts {
	/* Flash this file instead of the inventory's firmware: entries (mpfarm flash). */
	const char *override_path;
	enum farm_image_format override_format; /* UNKNOWN = detect */
	unsigned long override_base;            /* for raw bin */
	int no_flash;                           /* plan nothing (flashing disabled) */
	/* The firmware phase's result for fetch: and build: entries; NULL = such
	 * entries are a problem (the command has no firmware phase). */
	const struct farm_fwget *got;
};

/* Plan boards[0..n). Problems are added to d (file:line:col of the
 * inventory entry that causes them) and make the call return FARM_EINVAL;
 * *out is returned either way (NULL only on FARM_ENOMEM). */
int farm_fwplan_make(struct farm_fwplan **out, const struct farm_inventory *inv,
		     const struct farm_board *const *boards, size_t n,
		     const struct farm_fwplan_opts *o, struct farm_diags *d, struct farm_err *e);
void farm_fwplan_free(struct farm_fwplan *p);
/* The plan entry of a board, or NULL. */
const struct farm_fw_board *farm_fwplan_board(const struct farm_fwplan *p, const char *board_id);

/* The firmware: entry for board b, or NULL. */
const struct farm_fw_target *farm_fw_target_for(const struct farm_inventory *inv,
						const struct farm_board *b);

/* The identity an image announces ("v1.9.2-34-gd64154c73 on 2017-09-01"),
 * found in its version banner; "" if none. */
void farm_fw_identity_of(const struct farm_image *img, char *out, size_t len);

/* Whether the board's reported build string (os.uname().version, or the
 * banner) shows the expected identity. */
int farm_fw_identity_matches(const char *expected, const char *reported);

#endif
