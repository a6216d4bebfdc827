/* mpfarm runner "dfu": USB DFU 1.1 and ST DfuSe bootloaders (STM32 system
 * ROM, MicroPython's mboot, plain DFU devices) through libusb, with the
 * protocol of runners/dfu_proto.h over the transport of runners/dfu_usb.h.
 *
 * The board must already be in DFU mode. Its DFU device is found by VID:PID
 * plus USB serial number and/or bus port path: several identical boards in
 * DFU mode at once are normal in a farm, so an ambiguous match is an error
 * naming the candidates, never "the first one".
 *
 * flash: options
 *   vid_pid:       the DFU device's ids (default 0483:df11, ST ROM and mboot)
 *   dfu_serial:    its USB serial number (in DFU mode it is usually not the
 *                  application's serial.usb_serial)
 *   location:      its bus port path ("1-1.2"; default: serial.location)
 *   alt:           alternate setting, number or name ("Internal Flash");
 *                  default: the DfuSe image's target, else "Internal Flash",
 *                  else the first
 *   transfer_size: block size instead of the device's wTransferSize
 *   protocol:      auto (default: DfuSe when bcdDFU is 0x011a or the alt
 *                  names a memory layout) | dfuse | dfu
 *   backup:        false (default) | true (the flash regions read into the
 *                  report's log directory before anything is erased) | DIR
 *   verify:        auto (default: read back when the device allows UPLOAD)
 *                  | none
 *   leave:         true (default: start the firmware) | false (stay in DFU)
 *   usb_timeout:   ms for each control transfer (default 5000) */
#include "runner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dfu_proto.h"
#include "dfu_usb.h"

#define BACKUP_PLAIN_MAX (16u << 20) /* bytes read from a plain DFU device at most */

struct dfu_priv {
	const struct runner_ctx *ctx;
	unsigned vid, pid;
	const char *serial, *location, *alt;
	unsigned xfer;
	int protocol;                   /* -1 auto, 1 dfuse, 0 plain */
	const char *backup_dir;         /* NULL = no backup */
	int verify, leave;
	unsigned usb_timeout_ms;
	struct runner_dfu_usb usb;
	struct runner_dfu d;
	int open;
	uint32_t jump;
};

static const char *const options[] = { "vid_pid", "dfu_serial", "location", "alt", "transfer_size",
				       "protocol", "backup", "verify", "leave", "usb_timeout", NULL };

static int parse_num(const char *s, unsigned long lo, unsigned long hi, unsigned *out)
{
	char *end;
	errno = 0;
	if (!s || !*s || *s == '-')
		return -1;
	unsigned long v = strtoul(s, &end, 0);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* One of two words: *out 1 for `on`, 0 for `off`, dflt when absent. */
static int two_way(int *out, const struct farm_board *b, const char *key, const char *on,
		   const char *off, int dflt, struct farm_err *e)
{
	const char *o = runner_opt(b, key);
	*out = dflt;
	if (!o)
		return 0;
	if (!strcmp(o, on))
		*out = 1;
	else if (!strcmp(o, off))
		*out = 0;
	else
		return farm_err_set(e, FARM_EINVAL, "board %s: flash.%s must be %s or %s, got "
				    "\"%.40s\"", b->id, key, on, off, o);
	return 0;
}

static int dfu_configure(void *priv, const struct runner_ctx *ctx, struct farm_err *e)
{
	struct dfu_priv *p = priv;
	const struct farm_board *b = ctx->board;
	p->ctx = ctx;
	p->vid = 0x0483;
	p->pid = 0xdf11;
	const char *o = runner_opt(b, "vid_pid");
	if (o) {
		char *end;
		unsigned long v = strtoul(o, &end, 16), q = 0;
		if (*end == ':')
			q = strtoul(end + 1, &end, 16);
		if (*end || !strchr(o, ':') || v == 0 || v > 0xffff || q > 0xffff)
			return farm_err_set(e, FARM_EINVAL, "board %s: flash.vid_pid must be VID:PID in "
					    "hex (\"0483:df11\"), got \"%.40s\"", b->id, o);
		p->vid = (unsigned)v;
		p->pid = (unsigned)q;
	}
	p->serial = runner_opt(b, "dfu_serial");
	p->location = runner_opt(b, "location");
	if (!p->location)
		p->location = b->serial.location;
	if (!p->location && ctx->usb && ctx->usb->location[0])
		p->location = ctx->usb->location;
	p->alt = runner_opt(b, "alt");
	if ((o = runner_opt(b, "transfer_size")) && parse_num(o, 8, 65535, &p->xfer) < 0)
		return farm_err_set(e, FARM_EINVAL, "board %s: flash.transfer_size must be 8 to 65535 "
				    "bytes, got \"%.40s\"", b->id, o);
	o = runner_opt(b, "protocol");
	p->protocol = -1;
	if (o && strcmp(o, "auto")) {
		if (!strcmp(o, "dfuse"))
			p->protocol = 1;
		else if (!strcmp(o, "dfu"))
			p->protocol = 0;
		else
			return farm_err_set(e, FARM_EINVAL, "board %s: flash.protocol must be auto, dfuse "
					    "or dfu, got \"%.40s\"", b->id, o);
	}
	o = runner_opt(b, "backup");
	if (o && strcmp(o, "false")) {
		p->backup_dir = strcmp(o, "true") ? o : ctx->report_dir;
		if (!p->backup_dir)
			return farm_err_set(e, FARM_EINVAL, "board %s: flash.backup: true needs a report "
					    "directory (mpfarm run -o DIR); with mpfarm flash give "
					    "flash.backup a directory", b->id);
	}
	int v;
	if (two_way(&v, b, "verify", "auto", "none", 1, e) < 0)
		return FARM_EINVAL;
	p->verify = v;
	if (two_way(&p->leave, b, "leave", "true", "false", 1, e) < 0)
		return FARM_EINVAL;
	p->usb_timeout_ms = RUNNER_DFU_CTL_TIMEOUT_MS;
	if ((o = runner_opt(b, "usb_timeout")) && parse_num(o, 100, 600000, &p->usb_timeout_ms) < 0)
		return farm_err_set(e, FARM_EINVAL, "board %s: flash.usb_timeout must be 100 to 600000 "
				    "ms, got \"%.40s\"", b->id, o);
	return 0;
}

/* Find, open and prepare the DFU device for img. */
static int connect_device(struct dfu_priv *p, const struct farm_image *img, struct farm_err *e)
{
	const struct runner_ctx *ctx = p->ctx;
	const char *id = ctx->board->id;
	struct runner_dfu_find f = { p->vid, p->pid, p->serial, p->location };
	struct farm_usbdev dev;
	int rc = runner_dfu_find_device(&dev, &f, e);
	if (rc < 0)
		return farm_err_prefix(e, "board %s", id);
	if (!p->serial && !p->location)
		runner_logf(ctx, "dfu: neither flash.dfu_serial nor flash.location is set: taking the "
			    "only %04x:%04x present", p->vid, p->pid);
	if ((rc = runner_dfu_libusb_open(&p->usb, &dev, e)) < 0)
		return farm_err_prefix(e, "board %s", id);
	p->open = 1;
	size_t index;
	if ((rc = runner_dfu_pick_alt(&index, &p->usb.info, p->alt, img, e)) < 0)
		return farm_err_prefix(e, "board %s", id);
	p->d.ctx = ctx;
	p->d.ctl_timeout_ms = p->usb_timeout_ms;
	return runner_dfu_begin(&p->d, &p->usb, index, p->protocol, p->xfer, e);
}

static int save_file(const char *path, const uint8_t *buf, size_t len, struct farm_err *e)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return farm_err_sys(e, FARM_ESYS, errno, "cannot create %s", path);
	size_t w = fwrite(buf, 1, len, f);
	int bad = w != len || ferror(f);
	if (fclose(f) != 0 || bad)
		return farm_err_sys(e, FARM_ESYS, errno ? errno : EIO, "cannot write %s", path);
	return 0;
}

/* Read one memory range into DIR/BOARD-dfu-backup-0xADDR.bin. */
static int backup_range(struct dfu_priv *p, uint32_t addr, size_t len, runner_progress_fn fn,
			void *payload, struct farm_err *e)
{
	const char *id = p->ctx->board->id;
	char path[4200];
	uint8_t *buf = malloc(len ? len : 1);
	size_t got = 0;
	if (!buf)
		return farm_err_set(e, FARM_ENOMEM, "out of memory for a %zu-byte backup", len);
	snprintf(path, sizeof path, "%s/%s-dfu-backup-0x%08x.bin", p->backup_dir, id, (unsigned)addr);
	int rc = runner_dfu_read(&p->d, addr, buf, len, &got, "backup", fn, payload, e);
	if (rc == 0)
		rc = save_file(path, buf, got, e);
	if (rc == 0)
		runner_logf(p->ctx, "dfu: backup of %zu bytes at 0x%08x in %s", got, (unsigned)addr, path);
	free(buf);
	return rc < 0 ? farm_err_prefix(e, "board %s: backup before flashing (nothing was erased)",
					id) : 0;
}

/* flash.backup: every readable range of the alt's memory (DfuSe), or what
 * the device uploads (plain), before anything is erased. */
static int backup(struct dfu_priv *p, runner_progress_fn fn, void *payload, struct farm_err *e)
{
	struct stat st;
	const char *id = p->ctx->board->id;
	if (stat(p->backup_dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return farm_err_set(e, FARM_EINVAL, "board %s: flash.backup: %s is not a directory; "
				    "create it or fix the option (nothing was erased)", id, p->backup_dir);
	if (runner_dfu_can_read(&p->d, NULL, e) < 0)
		return farm_err_prefix(e, "board %s: flash.backup asked for, but", id);
	if (!p->d.dfuse)
		return backup_range(p, 0, BACKUP_PLAIN_MAX, fn, payload, e);
	const struct runner_dfu_layout *l = &p->d.layout;
	for (size_t i = 0; i < l->n;) {
		if (!(l->groups[i].flags & RUNNER_DFU_MEM_READ)) {
			i++;
			continue;
		}
		uint32_t start = l->groups[i].start;
		uint64_t end = start;
		while (i < l->n && (l->groups[i].flags & RUNNER_DFU_MEM_READ) && l->groups[i].start == end) {
			end += (uint64_t)l->groups[i].count * l->groups[i].size;
			i++;
		}
		if (end - start > FARM_IMAGE_MAX_BYTES)
			return farm_err_set(e, FARM_ELIMIT, "board %s: flash.backup: the memory at 0x%08x "
					    "is larger than %u bytes", id, (unsigned)start,
					    (unsigned)FARM_IMAGE_MAX_BYTES);
		int rc = backup_range(p, start, (size_t)(end - start), fn, payload, e);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int dfu_flash(void *priv, const struct farm_image *img, runner_progress_fn fn, void *payload,
		     struct farm_err *e)
{
	struct dfu_priv *p = priv;
	int rc = connect_device(p, img, e);
	if (rc < 0)
		return rc;
	if (p->backup_dir && (rc = backup(p, fn, payload, e)) < 0)
		return rc;
	p->jump = farm_image_lowest(img);
	return runner_dfu_write(&p->d, img, fn, payload, e);
}

static int dfu_verify(void *priv, const struct farm_image *img, runner_progress_fn fn,
		      void *payload, struct farm_err *e)
{
	struct dfu_priv *p = priv;
	if (!p->open)
		return farm_err_set(e, FARM_EPROTO, "board %s: verify before flash", p->ctx->board->id);
	if (!p->verify)
		return farm_err_set(e, FARM_EUNSUPPORTED, "flash.verify: none");
	if (runner_dfu_can_read(&p->d, img, e) < 0) {
		runner_logf(p->ctx, "dfu: not verified: %s", e->msg);
		return FARM_EUNSUPPORTED;
	}
	return runner_dfu_verify(&p->d, img, fn, payload, e);
}

static int dfu_reset(void *priv, struct farm_err *e)
{
	struct dfu_priv *p = priv;
	if (!p->open)
		return farm_err_set(e, FARM_EPROTO, "board %s: reset before flash", p->ctx->board->id);
	if (!p->leave) {
		runner_logf(p->ctx, "dfu: flash.leave: false; the board stays in DFU mode");
		return 0;
	}
	return runner_dfu_leave(&p->d, p->jump, e);
}

static void dfu_cleanup(void *priv)
{
	struct dfu_priv *p = priv;
	runner_dfu_usb_close(&p->usb);
	p->open = 0;
}

const struct runner_ops runner_dfu_ops = {
	.name = "dfu",
	.summary = "USB DFU 1.1 and ST DfuSe bootloaders (STM32 ROM, mboot) through libusb",
	.ports = NULL,
	.formats = RUNNER_FMT(FARM_IMG_DFUSE) | RUNNER_FMT(FARM_IMG_BIN) | RUNNER_FMT(FARM_IMG_IHEX) |
		   RUNNER_FMT(FARM_IMG_ELF),
	.caps = RUNNER_CAP_USB | RUNNER_CAP_VERIFY | RUNNER_CAP_RESET,
	.priority = 10,
	.entry = "none: the board must be in DFU mode (BOOT0 + reset, or machine.bootloader())",
	.options = options,
	.priv_size = sizeof(struct dfu_priv),
	.configure = dfu_configure,
	.flash = dfu_flash,
	.verify = dfu_verify,
	.reset = dfu_reset,
	.cleanup = dfu_cleanup,
};
