/* mpfarm: helpers of the uf2 runner (runners/uf2.c): finding a board's UF2
 * bootloader drive and checking what is copied to it.
 *
 * A UF2 drive is a mounted volume whose root holds INFO_UF2.TXT (any case)
 * with the lines "UF2 Bootloader vX", "Model: ..." and "Board-ID: ...".
 * Volumes come from /proc/self/mountinfo (the path is injectable for
 * tests); a volume on a block device knows its USB device through
 * /sys/dev/block/MAJ:MIN (the first ancestor with idVendor: its sysfs name
 * is the USB location "1-1.2", its serial file the USB serial). A board's
 * drive is picked by the explicit mount path, Board-ID, Model, USB location
 * and serial; several matches are an error naming them.
 *
 * Every length read from the system (mountinfo lines, INFO_UF2.TXT, sysfs
 * attributes) is bounded. */
#ifndef RUNNER_UF2_DRIVE_H
#define RUNNER_UF2_DRIVE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "flashmap.h"
#include "image.h"

#define RUNNER_UF2_PATH_MAX 1024    /* a mount point, unescaped */
#define RUNNER_UF2_LINE_MAX 8192    /* one mountinfo line */
#define RUNNER_UF2_MOUNTS_MAX 4096  /* mounts read at most */
#define RUNNER_UF2_INFO_MAX 4096    /* bytes of INFO_UF2.TXT read */

struct runner_uf2_mount {
	int id;                      /* mount id (field 1) */
	unsigned major, minor;       /* st_dev of the volume */
	char point[RUNNER_UF2_PATH_MAX];
	char fstype[64];
	char source[256];
};

struct runner_uf2_info {
	char version[64];            /* "UF2 Bootloader v3.0" line, "" if none */
	char model[128];
	char board_id[128];
};

struct runner_uf2_drive {
	struct runner_uf2_mount m;
	struct runner_uf2_info info;
	char usb_location[64];       /* "" when not on a USB block device */
	char usb_serial[128];
};

/* What the board wants; NULL/"" fields match anything. */
struct runner_uf2_want {
	const char *mount;           /* this mount point only */
	const char *board_id;
	const char *model;
	const char *usb_location;    /* the drive's USB device is at this location */
	const char *usb_serial;      /* ... with this serial number */
	const char *mountinfo;       /* NULL = /proc/self/mountinfo */
	const char *sys_root;        /* NULL = /sys */
};

/* One mountinfo line into m: octal escapes (\040 \011 \012 \134) undone.
 * FARM_EINVAL on a malformed line, FARM_ELIMIT on an over-long field. */
int runner_uf2_mountinfo_line(struct runner_uf2_mount *m, const char *line, struct farm_err *e);
/* Every mount of the file (NULL = /proc/self/mountinfo); *out is the
 * caller's to free. Malformed lines are skipped. */
int runner_uf2_mounts(struct runner_uf2_mount **out, size_t *n, const char *path,
		      struct farm_err *e);

/* INFO_UF2.TXT content (at most RUNNER_UF2_INFO_MAX bytes are looked at). */
void runner_uf2_info_parse(struct runner_uf2_info *out, const char *text, size_t len);
/* Read DIR's INFO_UF2.TXT (name matched ignoring case): 0, FARM_ENOTFOUND
 * when the volume has none (not a UF2 drive), FARM_EIO on a read error. */
int runner_uf2_info_read(struct runner_uf2_info *out, const char *dir, struct farm_err *e);

/* The USB device under block device MAJ:MIN (sysfs under sys_root): 0 and
 * its location and serial; FARM_ENOTFOUND when not on USB. */
int runner_uf2_usb_parent(char *location, size_t loc_len, char *serial, size_t ser_len,
			  const char *sys_root, unsigned major, unsigned minor);

/* The UF2 drives present now, whether they match want or not. */
int runner_uf2_list(struct runner_uf2_drive **out, size_t *n, const struct runner_uf2_want *w,
		    struct farm_err *e);
/* Whether drive d is what w asks for. */
int runner_uf2_matches(const struct runner_uf2_drive *d, const struct runner_uf2_want *w);
/* Exactly one drive in list[0..n) matching w: 0 and *out. FARM_ENOTFOUND
 * (naming the UF2 drives seen instead), FARM_EINVAL when several match
 * (naming them all: pin one with flash: mount or the board's
 * serial.location / usb_serial). board names the board in messages. */
int runner_uf2_pick(struct runner_uf2_drive *out, const struct runner_uf2_drive *list, size_t n,
		    const struct runner_uf2_want *w, const char *board, struct farm_err *e);
/* runner_uf2_list + runner_uf2_pick. */
int runner_uf2_find(struct runner_uf2_drive *out, const struct runner_uf2_want *w,
		    const char *board, struct farm_err *e);
/* Poll (every poll_ms, 0 = 100) until exactly one matching drive is there:
 * FARM_ETIMEDOUT after timeout_ms (the message says what was seen and what
 * to do), FARM_EINVAL at once when several match, FARM_EINTR on cancel. */
int runner_uf2_wait(struct runner_uf2_drive *out, const struct runner_uf2_want *w,
		    const char *board, unsigned timeout_ms, unsigned poll_ms,
		    const volatile sig_atomic_t *cancel, struct farm_err *e);
/* Whether mount `id` at `point` is still mounted (per the mountinfo file). */
int runner_uf2_mounted(const struct runner_uf2_want *w, int id, const char *point);

/* Check a UF2 file before it is copied: its blocks (magics, payload sizes,
 * numbering; farm/image_uf2.c), the family id against the MCU's (map's
 * uf2_family; an MCU without one takes files without a family id), and
 * every byte inside the MCU's flash. *out (may be NULL) gets the image. */
int runner_uf2_validate(struct farm_image **out, const void *data, size_t len, const char *name,
			const struct farm_flashmap *map, struct farm_err *e);
/* An image as UF2 for the MCU (its family id; 256-byte pages), checked
 * with runner_uf2_validate; appended to out. */
int runner_uf2_convert(struct farm_buf *out, const struct farm_image *img,
		       const struct farm_flashmap *map, struct farm_err *e);

#endif
