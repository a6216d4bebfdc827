/* mpfarm runner "uf2": copy a UF2 file to the board's UF2 bootloader drive
 * (RP2040/RP2350 BOOTSEL, Adafruit/TinyUF2 bootloaders on SAMD, nRF52,
 * ESP32-S2/S3, STM32), as uf2conv.py and a person dragging the file do
 * (/work/shared/protocols/uf2.md).
 *
 * Before the board is touched: the bytes to copy are made and checked
 * (runners/uf2_drive.h): a .uf2 image is copied as the original file (which
 * must still be the planned image), after its blocks, its family id (the
 * MCU's) and its addresses (the MCU's flash) are checked; other formats are
 * converted to UF2 with the MCU's family id.
 *
 * The drive: flash: mount (a mount point), or flash: device (a block
 * device; mpfarm mounts it when nobody has), else any mounted volume with
 * INFO_UF2.TXT matching flash: board_id / model and the board's USB
 * location (serial.location, else serial.usb_serial). If none is there,
 * flash: entry methods (runners/entry.h) put the board into its bootloader
 * (waiting for its USB id: flash: bootloader_usb, else the MCU's BOOTSEL
 * id), then the drive is awaited for flash: wait seconds.
 *
 * Copy: write + fsync + close. The bootloader restarts once it has every
 * block, often before the host is done: ENODEV/EIO/ENOTCONN or the mount
 * vanishing after the last byte is the normal end; before it, an error.
 * Then the drive must go away (else the bootloader refused the file); the
 * board restarts by itself and the job reconnects to its console.
 *
 * flash: options
 *   mount:          the drive's mount point
 *   device:         the drive's block device (/dev/disk/by-id/usb-...-part1 ...)
 *   board_id:       INFO_UF2.TXT Board-ID the drive must show
 *   model:          INFO_UF2.TXT Model the drive must show
 *   entry:          bootloader entry methods when the drive is not there
 *                   (default none: someone put the board in its bootloader)
 *   bootloader_usb: VID:PID of the bootloader, for entry (default by mcu:
 *                   rp2040 2e8a:0003, rp2350 2e8a:000f)
 *   wait:           seconds to wait for the drive (default 30) */
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "entry.h"
#include "uf2_drive.h"

#define DEFAULT_WAIT_S 30
#define VANISH_TIMEOUT_MS 10000
#define POLL_MS 100
#define CHUNK (64 * 512)
#define UF2_BLOCK 512
#define TARGET_NAME "NEW.UF2"   /* uf2conv.py's name */

struct uf2_priv {
	const struct runner_ctx *ctx;
	const char *board;
	char mount[RUNNER_UF2_PATH_MAX];
	char device[RUNNER_UF2_PATH_MAX];
	const char *board_id, *model;
	char location[64], usb_serial[128];
	char entry[128];
	unsigned boot_vid, boot_pid;
	unsigned wait_ms;
	char our_mount[64];        /* a directory mpfarm mounted the device on, "" if none */
	int copied;
};

static const char *const options[] = { "mount", "device", "board_id", "model", "entry",
				       "bootloader_usb", "wait", NULL };

/* The USB id a board's UF2 bootloader enumerates as, by MCU family. */
static const struct {
	const char *family;
	unsigned vid, pid;
} boot_ids[] = {
	{ "rp2040", 0x2e8a, 0x0003 },
	{ "rp2350", 0x2e8a, 0x000f },
};

static int uf2_available(char *why, size_t len)
{
	if (access("/proc/self/mountinfo", R_OK) == 0)
		return 0;
	snprintf(why, len, "cannot read /proc/self/mountinfo (not Linux, or /proc not mounted)");
	return -1;
}

static int copy_opt(char *out, size_t cap, const char *v, const char *board, const char *key,
		    struct farm_err *e)
{
	if (!v)
		return 0;
	if (v[0] != '/')
		return farm_err_set(e, FARM_EINVAL, "board %s: flash: %s must be an absolute path, got "
				    "\"%.100s\"", board, key, v);
	if (strlen(v) >= cap)
		return farm_err_set(e, FARM_ELIMIT, "board %s: flash: %s is too long", board, key);
	snprintf(out, cap, "%s", v);
	return 0;
}

static int uf2_configure(void *priv, const struct runner_ctx *ctx, struct farm_err *e)
{
	struct uf2_priv *p = priv;
	const struct farm_board *b = ctx->board;
	const char *v;
	p->ctx = ctx;
	p->board = b->id;
	if (!ctx->map)
		return farm_err_set(e, FARM_EINVAL, "board %s: the uf2 runner needs the board's MCU "
				    "family (mcu:, see `mpfarm runners --mcus`)", b->id);
	int rc = copy_opt(p->mount, sizeof p->mount, runner_opt(b, "mount"), b->id, "mount", e);
	if (rc == 0)
		rc = copy_opt(p->device, sizeof p->device, runner_opt(b, "device"), b->id, "device", e);
	if (rc)
		return rc;
	if (p->mount[0] && p->device[0])
		return farm_err_set(e, FARM_EINVAL, "board %s: flash: give mount or device, not both",
				    b->id);
	p->board_id = runner_opt(b, "board_id");
	p->model = runner_opt(b, "model");
	const char *loc = ctx->usb && ctx->usb->location[0] ? ctx->usb->location : b->serial.location;
	snprintf(p->location, sizeof p->location, "%s", loc ? loc : "");
	if (!p->location[0] && b->serial.usb_serial)
		snprintf(p->usb_serial, sizeof p->usb_serial, "%s", b->serial.usb_serial);
	v = runner_opt(b, "wait");
	p->wait_ms = DEFAULT_WAIT_S * 1000u;
	if (v) {
		char *end;
		double s = strtod(v, &end);
		if (end == v || *end || !(s > 0 && s <= 3600))
			return farm_err_set(e, FARM_EINVAL, "board %s: flash: wait must be seconds "
					    "between 0 and 3600, got \"%.40s\"", b->id, v);
		p->wait_ms = (unsigned)(s * 1000.0);
	}
	v = runner_opt(b, "entry");
	snprintf(p->entry, sizeof p->entry, "%s", v ? v : "none");
	if ((rc = entry_check_list(p->entry, e)))
		return farm_err_prefix(e, "board %s: flash: entry", b->id);
	if ((v = runner_opt(b, "bootloader_usb"))) {
		char *end;
		unsigned long vid = strtoul(v, &end, 16), pid = 0;
		if (*end == ':')
			pid = strtoul(end + 1, &end, 16);
		if (*end || !vid || vid > 0xffff || !pid || pid > 0xffff)
			return farm_err_set(e, FARM_EINVAL, "board %s: flash: bootloader_usb must be "
					    "VID:PID in hex (2e8a:0003), got \"%.40s\"", b->id, v);
		p->boot_vid = (unsigned)vid;
		p->boot_pid = (unsigned)pid;
	}
	for (size_t i = 0; !p->boot_vid && i < sizeof boot_ids / sizeof boot_ids[0]; i++)
		if (farm_flashmap_name_eq(boot_ids[i].family, ctx->map->family)) {
			p->boot_vid = boot_ids[i].vid;
			p->boot_pid = boot_ids[i].pid;
		}
	if (strcmp(p->entry, "none") && !p->boot_vid)
		return farm_err_set(e, FARM_EINVAL, "board %s: flash: entry needs the bootloader's "
				    "USB id to wait for: set flash: bootloader_usb: VID:PID (what "
				    "`mpfarm detect` shows while the board is in its bootloader)", b->id);
	return 0;
}

/* The bytes to copy: the original .uf2 file (checked, and still the planned
 * image) or the image converted with the MCU's family. */
static int make_uf2(struct uf2_priv *p, const struct farm_image *img, struct farm_buf *out,
		    struct farm_err *e)
{
	const struct runner_ctx *ctx = p->ctx;
	if (img->format == FARM_IMG_UF2 && ctx->image_path) {
		struct farm_image *got = NULL;
		char a[65], b[65];
		int rc = farm_buf_read_file(out, ctx->image_path, FARM_IMAGE_MAX_BYTES, e);
		if (rc == 0)
			rc = runner_uf2_validate(&got, out->data, out->len, ctx->image_path, ctx->map, e);
		if (rc)
			return rc;
		farm_image_sha256(got, a);
		farm_image_sha256(img, b);
		farm_image_free(got);
		if (strcmp(a, b))
			return farm_err_set(e, FARM_EINVAL, "%s changed since the run was planned: "
					    "start the run again", ctx->image_path);
		runner_logf(ctx, "uf2: %s checked (%zu blocks, family %s0x%08x, inside %s flash): "
			    "copied as is", ctx->image_path, out->len / UF2_BLOCK,
			    img->has_family ? "" : "none, ", img->uf2_family, ctx->map->family);
		return 0;
	}
	int rc = runner_uf2_convert(out, img, ctx->map, e);
	if (rc)
		return rc;
	runner_logf(ctx, "uf2: %s image converted to UF2: %zu blocks of 256 bytes, family %s%08x",
		    farm_image_format_name(img->format), out->len / UF2_BLOCK,
		    ctx->map->uf2_family ? "0x" : "none, ", ctx->map->uf2_family);
	return 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* flash: device: the block device, mounted by someone or by mpfarm now. */
static int mount_device(struct uf2_priv *p, struct farm_err *e)
{
	const struct runner_ctx *ctx = p->ctx;
	struct stat st;
	long long deadline = farm_now_ms() + p->wait_ms;
	while (stat(p->device, &st) != 0 || !S_ISBLK(st.st_mode)) {
		if (ctx->cancel && *ctx->cancel)
			return farm_err_set(e, FARM_EINTR, "board %s: interrupted while waiting for %s",
					    p->board, p->device);
		if (farm_now_ms() >= deadline)
			return farm_err_set(e, FARM_ETIMEDOUT, "board %s: block device %s did not "
					    "appear within %u ms: put the board in its bootloader or "
					    "check flash: device", p->board, p->device, p->wait_ms);
		sleep_ms(POLL_MS);
	}
	struct runner_uf2_mount *m = NULL;
	size_t n = 0;
	int rc = runner_uf2_mounts(&m, &n, NULL, e);
	if (rc)
		return rc;
	for (size_t i = 0; i < n && !p->mount[0]; i++)
		if (m[i].major == major(st.st_rdev) && m[i].minor == minor(st.st_rdev))
			snprintf(p->mount, sizeof p->mount, "%s", m[i].point);
	free(m);
	if (p->mount[0])
		return 0;
	snprintf(p->our_mount, sizeof p->our_mount, "/tmp/mpfarm-uf2-XXXXXX");
	if (!mkdtemp(p->our_mount)) {
		rc = farm_err_sys(e, FARM_ESYS, errno, "board %s: cannot make a mount point", p->board);
		p->our_mount[0] = '\0';
		return rc;
	}
	if (mount(p->device, p->our_mount, "vfat", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) {
		rc = farm_err_sys(e, FARM_ESYS, errno, "board %s: cannot mount %s (vfat) on %s: mount "
				  "it yourself and give flash: mount, or run as root", p->board,
				  p->device, p->our_mount);
		rmdir(p->our_mount);
		p->our_mount[0] = '\0';
		return rc;
	}
	snprintf(p->mount, sizeof p->mount, "%s", p->our_mount);
	runner_logf(ctx, "uf2: mounted %s on %s", p->device, p->our_mount);
	return 0;
}

/* Find the drive, putting the board into its bootloader first if needed. */
static int find_drive(struct uf2_priv *p, struct runner_uf2_drive *d, struct farm_err *e)
{
	const struct runner_ctx *ctx = p->ctx;
	int rc;
	if (p->device[0] && (rc = mount_device(p, e)))
		return rc;
	struct runner_uf2_want w = {
		.mount = p->mount, .board_id = p->board_id, .model = p->model,
		.usb_location = p->location, .usb_serial = p->usb_serial,
	};
	rc = runner_uf2_find(d, &w, p->board, e);
	if (rc == 0) {
		runner_logf(ctx, "uf2: the board is in its bootloader: drive %s", d->m.point);
		return 0;
	}
	if (rc != FARM_ENOTFOUND)
		return rc;
	if (strcmp(p->entry, "none")) {
		struct entry_ctx ec = {
			.board = ctx->board,
			.port_path = ctx->serial_path ? ctx->serial_path : ctx->board->serial.path,
			.dev = ctx->usb,
			.interactive = ctx->interactive,
			.log = ctx->log,
			.log_payload = ctx->log_payload,
			.cancel = ctx->cancel,
		};
		struct entry_want want = {
			.usb = { .vid = p->boot_vid, .pid = p->boot_pid,
				 .location = p->location[0] ? p->location : NULL },
		};
		struct entry_result res;
		if ((rc = entry_run(p->entry, &ec, &want, &res, e)))
			return farm_err_prefix(e, "entering the bootloader");
		farm_transport_close(res.t);
		if (!p->location[0] && res.dev.location[0]) /* its drive is on that USB device */
			snprintf(p->location, sizeof p->location, "%s", res.dev.location);
	}
	runner_logf(ctx, "uf2: waiting up to %u ms for the UF2 drive", p->wait_ms);
	long long t0 = farm_now_ms();
	rc = runner_uf2_wait(d, &w, p->board, p->wait_ms, POLL_MS, ctx->cancel, e);
	if (rc == 0)
		runner_logf(ctx, "uf2: drive %s appeared after %lld ms", d->m.point,
			    farm_now_ms() - t0);
	return rc;
}

/* Errors that mean the device went away under the file. */
static int gone_errno(int err)
{
	return err == ENODEV || err == EIO || err == ENOTCONN || err == ENOENT || err == ENXIO ||
	       err == ESHUTDOWN || err == ECONNABORTED;
}

static int copy_to(struct uf2_priv *p, const struct runner_uf2_drive *d, const struct farm_buf *u,
		   runner_progress_fn fn, void *payload, struct farm_err *e)
{
	const struct runner_ctx *ctx = p->ctx;
	const struct runner_uf2_want w = { 0 };
	char path[RUNNER_UF2_PATH_MAX + 16];
	size_t total = u->len, done = 0, blocks = total / UF2_BLOCK;
	snprintf(path, sizeof path, "%s/%s", d->m.point, TARGET_NAME);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return farm_err_sys(e, FARM_EIO, errno, "board %s: cannot create %s on the UF2 drive "
				    "(read-only? full?)", p->board, path);
	int rc = 0, err = 0;
	const char *step = "write";
	while (done < total) {
		if (ctx->cancel && *ctx->cancel) {
			close(fd);
			return farm_err_set(e, FARM_EINTR, "board %s: interrupted after %zu of %zu UF2 "
					    "blocks: the board waits in its bootloader", p->board,
					    done / UF2_BLOCK, blocks);
		}
		size_t n = total - done < CHUNK ? total - done : CHUNK;
		ssize_t r = write(fd, u->data + done, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = r < 0 ? errno : EIO;
			break;
		}
		done += (size_t)r;
		if (fn)
			fn(payload, "write", done, total);
	}
	if (done == total && !err) {
		step = "fsync";
		if (fsync(fd) != 0)
			err = errno;
	}
	if (close(fd) != 0 && !err) {
		step = "close";
		err = errno;
	}
	int mounted = runner_uf2_mounted(&w, d->m.id, d->m.point);
	if (done < total) {
		if (gone_errno(err) || !mounted)
			rc = farm_err_sys(e, FARM_EIO, err, "board %s: the UF2 drive %s vanished after "
					  "%zu of %zu blocks: the bootloader restarted before the last "
					  "block (another copy at the same time? a block it took for the "
					  "last?); put the board back in its bootloader and flash again",
					  p->board, d->m.point, done / UF2_BLOCK, blocks);
		else
			rc = farm_err_sys(e, FARM_EIO, err, "board %s: writing %s failed after %zu of "
					  "%zu blocks; check the drive (full? read-only?)", p->board,
					  path, done / UF2_BLOCK, blocks);
		return rc;
	}
	if (err && !gone_errno(err) && mounted)
		return farm_err_sys(e, FARM_EIO, err, "board %s: %s of %s failed after the last block; "
				    "check the drive", p->board, step, path);
	if (err)
		runner_logf(ctx, "uf2: %s after the last block: %s: the board rebooted (normal)", step,
			    strerror(err));
	runner_logf(ctx, "uf2: %zu blocks (%zu bytes) copied to %s", blocks, total, path);
	return 0;
}

/* After the copy the bootloader restarts the board: its drive goes away. */
static int wait_vanish(struct uf2_priv *p, const struct runner_uf2_drive *d, struct farm_err *e)
{
	const struct runner_ctx *ctx = p->ctx;
	const struct runner_uf2_want w = { 0 };
	long long t0 = farm_now_ms();
	while (runner_uf2_mounted(&w, d->m.id, d->m.point)) {
		if (ctx->cancel && *ctx->cancel)
			return farm_err_set(e, FARM_EINTR, "board %s: interrupted while waiting for the "
					    "board to restart", p->board);
		if (farm_now_ms() - t0 >= VANISH_TIMEOUT_MS)
			return farm_err_set(e, FARM_EIO, "board %s: the UF2 drive %s is still there %d "
					    "ms after the copy: the bootloader did not take the file "
					    "(another chip's family? addresses outside its flash?); check "
					    "the image and the board's mcu:", p->board, d->m.point,
					    VANISH_TIMEOUT_MS);
		sleep_ms(POLL_MS / 5);
	}
	runner_logf(ctx, "uf2: drive %s gone %lld ms after the copy: the board is restarting",
		    d->m.point, farm_now_ms() - t0);
	return 0;
}

static int uf2_flash(void *priv, const struct farm_image *img, runner_progress_fn fn,
		     void *payload, struct farm_err *e)
{
	struct uf2_priv *p = priv;
	struct farm_buf u = { 0 };
	struct runner_uf2_drive d;
	int rc = make_uf2(p, img, &u, e);
	if (rc)
		goto out;
	if ((rc = find_drive(p, &d, e)))
		goto out;
	runner_logf(p->ctx, "uf2: drive %s: %s, Model: %s, Board-ID: %s%s%s", d.m.point,
		    d.info.version[0] ? d.info.version : "(no version line)", d.info.model,
		    d.info.board_id, d.usb_location[0] ? ", USB " : "", d.usb_location);
	if ((rc = copy_to(p, &d, &u, fn, payload, e)))
		goto out;
	p->copied = 1;
	rc = wait_vanish(p, &d, e);
out:
	farm_buf_free(&u);
	return rc;
}

static int uf2_reset(void *priv, struct farm_err *e)
{
	struct uf2_priv *p = priv;
	if (!p->copied)
		return farm_err_set(e, FARM_EUNSUPPORTED, "nothing copied: the board is not restarting");
	runner_logf(p->ctx, "uf2: the bootloader starts the new firmware itself");
	return 0;
}

static void uf2_cleanup(void *priv)
{
	struct uf2_priv *p = priv;
	if (!p->our_mount[0])
		return;
	umount2(p->our_mount, MNT_DETACH); /* normally gone with the device already */
	rmdir(p->our_mount);
	p->our_mount[0] = '\0';
}

/* Ports whose boards come with UF2 bootloaders. */
static const char *const ports[] = { "rp2", "samd", "nrf", "mimxrt", "stm32", "esp32", NULL };

const struct runner_ops runner_uf2_ops = {
	.name = "uf2",
	.summary = "copy a UF2 file to the board's UF2 bootloader drive (RP2 BOOTSEL, TinyUF2, "
		   "Adafruit), converting .hex/.bin/.elf with the MCU's family id",
	.ports = ports,
	.formats = RUNNER_FMT(FARM_IMG_UF2) | RUNNER_FMT(FARM_IMG_IHEX) | RUNNER_FMT(FARM_IMG_BIN) |
		   RUNNER_FMT(FARM_IMG_ELF),
	.caps = RUNNER_CAP_USB | RUNNER_CAP_RESET | RUNNER_CAP_NEEDS_MAP,
	.priority = 2,
	.entry = "none (the drive is there), or any method of flash: entry",
	.options = options,
	.priv_size = sizeof(struct uf2_priv),
	.available = uf2_available,
	.configure = uf2_configure,
	.flash = uf2_flash,
	.reset = uf2_reset,
	.cleanup = uf2_cleanup,
};
