/* mpfarm: USB DFU 1.1 and ST DfuSe protocol logic (runners/dfu_proto.c),
 * over the transport of runners/dfu_usb.h, for the "dfu" runner
 * (runners/dfu.c). No USB library here: the unit tests drive it against a
 * simulated device in one process.
 *
 * DfuSe (STM32 ROM, MicroPython's mboot): the alternate setting's name is a
 * memory layout ("@Internal Flash /0x08000000/04*016Kg,01*064Kg,07*128Kg");
 * only the sectors the image covers are erased, each block is written at the
 * address pointer, the device is polled with GETSTATUS honouring its
 * bwPollTimeout within a deadline, read back with UPLOAD, and told to leave
 * (jump to the firmware). Plain DFU 1.1: the image streamed in wTransferSize
 * blocks from block 0, then the zero-length download that ends it.
 *
 * Every failure names the board, the step (which block, which address) and
 * what to do; nothing waits without a deadline. See /work/shared/protocols/
 * dfu-dfuse.md for the protocol facts. */
#ifndef RUNNER_DFU_PROTO_H
#define RUNNER_DFU_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "dfu_usb.h"
#include "err.h"
#include "image.h"

struct runner_ctx;

/* Requests. */
enum {
	RUNNER_DFU_DETACH = 0,
	RUNNER_DFU_DNLOAD = 1,
	RUNNER_DFU_UPLOAD = 2,
	RUNNER_DFU_GETSTATUS = 3,
	RUNNER_DFU_CLRSTATUS = 4,
	RUNNER_DFU_GETSTATE = 5,
	RUNNER_DFU_ABORT = 6,
};

/* States (bState). */
enum {
	RUNNER_DFU_APP_IDLE = 0,
	RUNNER_DFU_APP_DETACH = 1,
	RUNNER_DFU_IDLE = 2,
	RUNNER_DFU_DNLOAD_SYNC = 3,
	RUNNER_DFU_DNBUSY = 4,
	RUNNER_DFU_DNLOAD_IDLE = 5,
	RUNNER_DFU_MANIFEST_SYNC = 6,
	RUNNER_DFU_MANIFEST = 7,
	RUNNER_DFU_MANIFEST_WAIT_RESET = 8,
	RUNNER_DFU_UPLOAD_IDLE = 9,
	RUNNER_DFU_ERROR = 10,
};

/* Status codes (bStatus): 0 OK, 6 errPROG, 7 errVERIFY, ... */
#define RUNNER_DFU_STATUS_OK 0
#define RUNNER_DFU_STATUS_PROG 6
#define RUNNER_DFU_STATUS_VERIFY 7

/* "dfuDNBUSY", "errPROG" ("state 42" / "status 0x42" when unknown; s is
 * scratch space for those). */
const char *runner_dfu_state_name(unsigned state, char *s, size_t len);
const char *runner_dfu_status_name(unsigned status, char *s, size_t len);

/* ---- DfuSe memory layout ---- */

#define RUNNER_DFU_LAYOUT_MAX 32        /* sector groups in one layout */

#define RUNNER_DFU_MEM_READ 1u
#define RUNNER_DFU_MEM_ERASE 2u
#define RUNNER_DFU_MEM_WRITE 4u

/* count sectors of size bytes each, starting at start, with flags. */
struct runner_dfu_sectors {
	uint32_t start;
	uint32_t size;
	uint32_t count;
	unsigned flags;                 /* RUNNER_DFU_MEM_* */
};

struct runner_dfu_layout {
	char name[64];                  /* "Internal Flash" */
	struct runner_dfu_sectors groups[RUNNER_DFU_LAYOUT_MAX];
	size_t n;
};

/* Parse an alternate setting's name "@NAME/0xADDR/N*SSm[T][,N*SSmT...][/0xADDR/...]"
 * (SS decimal, m B|K|M or a space, T a..g: bit 1 readable, 2 erasable, 4
 * writable). FARM_EINVAL naming the column of the first problem. */
int runner_dfu_layout_parse(struct runner_dfu_layout *out, const char *s, struct farm_err *e);
/* The sector holding addr: its group (NULL if none) and the sector's start. */
const struct runner_dfu_sectors *runner_dfu_layout_sector(const struct runner_dfu_layout *l,
							  uint32_t addr, uint32_t *sector_start);

/* One sector to erase. */
struct runner_dfu_erase {
	uint32_t addr, size;
};

/* The sectors the image covers, each once, in address order; every image
 * byte must lie in a writable sector (erasable, or it is not erased).
 * *out allocated (NULL when n is 0); FARM_EINVAL naming the first byte
 * outside the layout or in a read-only sector. */
int runner_dfu_erase_plan(struct runner_dfu_erase **out, size_t *n,
			  const struct runner_dfu_layout *l, const struct farm_image *img,
			  struct farm_err *e);

/* ---- a session with one device ---- */

#define RUNNER_DFU_CTL_TIMEOUT_MS 5000u /* each control transfer (dfu-util's) */
#define RUNNER_DFU_ERASE_DEADLINE_MS 40000u /* one erase (an F405 mass erase takes 32 s) */
#define RUNNER_DFU_WRITE_DEADLINE_MS 10000u /* one block */
#define RUNNER_DFU_STUCK_POLLS 100      /* busy with bwPollTimeout 0 this often = stuck */

typedef void (*runner_dfu_progress_fn)(void *payload, const char *step, uint64_t done,
				       uint64_t total);

struct runner_dfu {
	struct runner_dfu_usb *u;       /* opened transport (borrowed) */
	const struct runner_ctx *ctx;   /* the board (messages), its log and cancel flag */
	int dfuse;                      /* DfuSe dialect (else plain DFU 1.1) */
	uint8_t alt;                    /* selected alternate setting */
	const char *alt_name;           /* its name (points into u->info) */
	uint16_t xfer;                  /* block size in use */
	unsigned ctl_timeout_ms;        /* 0 = RUNNER_DFU_CTL_TIMEOUT_MS */
	unsigned erase_deadline_ms;     /* 0 = RUNNER_DFU_ERASE_DEADLINE_MS */
	unsigned write_deadline_ms;     /* 0 = RUNNER_DFU_WRITE_DEADLINE_MS */
	struct runner_dfu_layout layout; /* DfuSe: of the selected alt */
	/* Filled as it goes. */
	unsigned polls, busy_polls, stall_retries;
	unsigned last_state, last_status;
};

/* Choose the alternate setting: want is a number, or a name matched against
 * the start of each alt's name ignoring a leading '@' ("Internal Flash");
 * NULL = dfuse_alt of a DfuSe image if it has one, else the alt named
 * "Internal Flash", else the first. FARM_ENOTFOUND listing the alts. */
int runner_dfu_pick_alt(size_t *index, const struct runner_dfu_info *info, const char *want,
			const struct farm_image *img, struct farm_err *e);

/* Prepare d on transport u for alternate setting info.alts[index]: the
 * dialect (forced by dfuse: 1 DfuSe, 0 plain, -1 from bcdDFU / the '@'
 * layout), the block size (xfer_override, else wTransferSize), the layout;
 * select the alt and bring the device to dfuIDLE (CLRSTATUS from dfuERROR,
 * ABORT from an unfinished transfer). */
int runner_dfu_begin(struct runner_dfu *d, struct runner_dfu_usb *u, size_t index, int dfuse,
		     unsigned xfer_override, struct farm_err *e);

/* DfuSe: erase the plan's sectors, then write every image segment. Plain:
 * the image flattened from its lowest address (gaps 0xff), then the
 * zero-length download that ends it. Progress steps "erase" and "write". */
int runner_dfu_write(struct runner_dfu *d, const struct farm_image *img,
		     runner_dfu_progress_fn fn, void *payload, struct farm_err *e);

/* Read len bytes at addr (DfuSe) or from the start (plain) with UPLOAD,
 * reporting progress as step ("verify", "backup"). Plain: *got may be short
 * when the device ends the upload. */
int runner_dfu_read(struct runner_dfu *d, uint32_t addr, uint8_t *buf, size_t len, size_t *got,
		    const char *step, runner_dfu_progress_fn fn, void *payload, struct farm_err *e);

/* Whether the device lets the image be read back: 0, or FARM_EUNSUPPORTED
 * with why (no CanUpload bit, a sector not readable). */
int runner_dfu_can_read(const struct runner_dfu *d, const struct farm_image *img,
			struct farm_err *e);

/* Read the image back and compare: FARM_EIO naming the first differing
 * address and both bytes. */
int runner_dfu_verify(struct runner_dfu *d, const struct farm_image *img,
		      runner_dfu_progress_fn fn, void *payload, struct farm_err *e);

/* Leave DFU mode and start the firmware: DfuSe sets the address pointer to
 * jump_addr, sends the zero-length download and one GETSTATUS (the device
 * going away there is the normal end); plain DFU (already manifested by
 * runner_dfu_write): a USB reset. */
int runner_dfu_leave(struct runner_dfu *d, uint32_t jump_addr, struct farm_err *e);

#endif
