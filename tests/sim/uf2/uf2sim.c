/* uf2sim: a UF2 mass-storage bootloader for mpfarm's tests, as a FUSE
 * filesystem (libfuse3, high-level API).
 *
 *   uf2sim --mount DIR [--mcu nrf51|rp2040|samd21] [--family HEX] [--board-id S]
 *          [--model S] [--log FILE] [--dump DIR] [--uart SOCK] [--qemu PATH]
 *          [--reboot-ms N] [--vanish-after N] [--ready FILE]
 *
 * The drive holds INFO_UF2.TXT ("UF2 Bootloader v3.0", Model:, Board-ID:),
 * INDEX.HTM and CURRENT.UF2 (the flash as UF2, generated on read). A file
 * written under any name is taken in 512-byte units as the host writes
 * them, each checked as a real bootloader does (/work/shared/protocols/
 * uf2.md, microsoft/uf2 README): both start magics and the end magic,
 * flags (0x0001 not main flash and 0x1000 file container: skipped), payload
 * size (<= 476, 256 here as the RP2040 ROM, or a multiple of 4), family id
 * when flag 0x2000 is set (a foreign family is ignored with its numbering),
 * target address and payload inside a flash region, blockNo < numBlocks and
 * numBlocks the same as the first block's. Bad blocks are ignored and
 * logged; good ones are written into the flash model. When every blockNo of
 * numBlocks has arrived the board "reboots": the flash is dumped, the mount
 * disappears (lazy unmount), and for an nRF51 an emulated micro:bit
 * (qemu-system-arm -M microbit) starts from the flash content (Intel HEX
 * through -device loader) with its UART on the unix socket --uart, so the
 * board comes back with its console.
 *
 * --vanish-after N: the bootloader restarts after N accepted blocks, before
 * the file is complete (the connection is aborted: the host's next write
 * fails). --ready FILE is written once the drive is mounted.
 *
 * Event log, one line each, "<ms> <event>": mount, create NAME, ignored
 * blocks with the reason, "file NAME: N blocks accepted, M ignored",
 * "complete N blocks", "dump DIR", "reboot: unmounted", "qemu pid P uart
 * SOCK", "qemu exited", "exit". Runs until SIGTERM/SIGINT; QEMU is stopped
 * and the mount removed at exit. */
#define FUSE_USE_VERSION 31
#include <fuse.h>
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 512
#define MAGIC0 0x0A324655u
#define MAGIC1 0x9E5D5157u
#define MAGIC_END 0x0AB16F30u
#define F_NOT_MAIN 0x00000001u
#define F_FILE 0x00001000u
#define F_FAMILY 0x00002000u
#define MAX_FILES 16
#define MAX_FILE (64u << 20)
#define MAX_BLOCKS (MAX_FILE / BLOCK)
#define NAME_MAX_LEN 255

struct region {
	const char *name;
	uint32_t start, size;
};

struct mcu {
	const char *name;
	uint32_t family; /* 0: none (blocks without the family flag only) */
	const char *model, *board_id;
	struct region regions[2];
	int qemu;        /* boots a QEMU micro:bit after a flash */
};

static const struct mcu mcus[] = {
	{ "nrf51", 0, "BBC micro:bit (simulated)", "NRF51-microbit-v1",
	  { { "flash", 0x00000000, 256 * 1024 }, { "uicr", 0x10001000, 1024 } }, 1 },
	{ "rp2040", 0xE48BFF56, "Raspberry Pi RP2", "RPI-RP2",
	  { { "flash", 0x10000000, 2 * 1024 * 1024 }, { NULL, 0, 0 } }, 0 },
	{ "samd21", 0x68ED2B88, "Adafruit Feather M0 (simulated)", "SAMD21G18A-Feather-v0",
	  { { "flash", 0x00002000, 256 * 1024 - 0x2000 }, { NULL, 0, 0 } }, 0 },
};

struct file {
	char name[NAME_MAX_LEN + 1];
	uint8_t *data;
	size_t size, cap;
	uint16_t *filled;  /* bytes written per 512-byte unit */
	size_t n_units;
	unsigned accepted, ignored;
};

struct sim {
	pthread_mutex_t lock;
	const struct mcu *mcu;
	uint32_t family;
	const char *model, *board_id;
	const char *mount, *log_path, *dump_dir, *uart, *qemu, *ready;
	unsigned reboot_ms, vanish_after;
	FILE *log;
	struct timespec t0;
	uint8_t *flash[2];
	struct file files[MAX_FILES];
	/* the one sequence being flashed */
	uint32_t total;
	uint8_t *seen;
	uint32_t n_seen, accepted_all;
	long long first_us;   /* when the first good block arrived */
	int rebooting, unmounted;
	int ending;           /* main is exiting: the reboot thread may end */
	pthread_cond_t end_cond;
	pid_t qemu_pid;
	char workdir[256];
	struct fuse *fuse;
	pthread_t reboot_thread;
	int have_thread;
};

static long long ms_since(const struct sim *s)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)(t.tv_sec - s->t0.tv_sec) * 1000 + (t.tv_nsec - s->t0.tv_nsec) / 1000000;
}

static long long us_since(const struct sim *s)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)(t.tv_sec - s->t0.tv_sec) * 1000000 + (t.tv_nsec - s->t0.tv_nsec) / 1000;
}

static void ev(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ev(struct sim *s, const char *fmt, ...)
{
	if (!s->log)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(s->log, "%lld %s\n", ms_since(s), line);
	fflush(s->log);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static struct sim *sim_of(void)
{
	return fuse_get_context()->private_data;
}

/* ---- drive files ---- */

static const char *const index_htm =
	"<!doctype html>\n<html><body><script>\nlocation.replace(\"https://github.com/microsoft/uf2\");\n"
	"</script></body></html>\n";

static size_t info_text(const struct sim *s, char *out, size_t cap)
{
	int n = snprintf(out, cap, "UF2 Bootloader v3.0 uf2sim\r\nModel: %s\r\nBoard-ID: %s\r\n",
			 s->model, s->board_id);
	return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

static size_t flash_bytes(const struct sim *s)
{
	size_t n = 0;
	for (int r = 0; r < 2 && s->mcu->regions[r].name; r++)
		n += s->mcu->regions[r].size;
	return n;
}

static size_t current_size(const struct sim *s)
{
	return flash_bytes(s) / 256 * BLOCK;
}

/* Block i of CURRENT.UF2: the flash in 256-byte pages, region after region. */
static void current_block(const struct sim *s, size_t i, uint8_t *blk)
{
	size_t page = i, total = flash_bytes(s) / 256;
	memset(blk, 0, BLOCK);
	for (int r = 0; r < 2 && s->mcu->regions[r].name; r++) {
		size_t pages = s->mcu->regions[r].size / 256;
		if (page < pages) {
			put32(blk, MAGIC0);
			put32(blk + 4, MAGIC1);
			put32(blk + 8, s->family ? F_FAMILY : 0);
			put32(blk + 12, s->mcu->regions[r].start + (uint32_t)(page * 256));
			put32(blk + 16, 256);
			put32(blk + 20, (uint32_t)i);
			put32(blk + 24, (uint32_t)total);
			put32(blk + 28, s->family);
			memcpy(blk + 32, s->flash[r] + page * 256, 256);
			put32(blk + 508, MAGIC_END);
			return;
		}
		page -= pages;
	}
}

static struct file *file_find(struct sim *s, const char *path)
{
	for (int i = 0; i < MAX_FILES; i++)
		if (s->files[i].name[0] && !strcasecmp(s->files[i].name, path + 1))
			return &s->files[i];
	return NULL;
}

static int fixed_file(const char *path)
{
	if (!strcasecmp(path, "/INFO_UF2.TXT"))
		return 1;
	if (!strcasecmp(path, "/INDEX.HTM"))
		return 2;
	if (!strcasecmp(path, "/CURRENT.UF2"))
		return 3;
	return 0;
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	struct sim *s = sim_of();
	char info[512];
	int rc = 0;
	memset(st, 0, sizeof *st);
	pthread_mutex_lock(&s->lock);
	st->st_uid = getuid();
	st->st_gid = getgid();
	struct file *f;
	if (!strcmp(path, "/")) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else if (fixed_file(path)) {
		int k = fixed_file(path);
		st->st_mode = S_IFREG | (k == 3 ? 0444 : 0644);
		st->st_nlink = 1;
		st->st_size = k == 1   ? (off_t)info_text(s, info, sizeof info)
			      : k == 2 ? (off_t)strlen(index_htm)
				       : (off_t)current_size(s);
	} else if ((f = file_find(s, path))) {
		st->st_mode = S_IFREG | 0644;
		st->st_nlink = 1;
		st->st_size = (off_t)f->size;
	} else {
		rc = -ENOENT;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)off;
	(void)fi;
	(void)flags;
	struct sim *s = sim_of();
	if (strcmp(path, "/"))
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, "INFO_UF2.TXT", NULL, 0, 0);
	fill(buf, "INDEX.HTM", NULL, 0, 0);
	fill(buf, "CURRENT.UF2", NULL, 0, 0);
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < MAX_FILES; i++)
		if (s->files[i].name[0])
			fill(buf, s->files[i].name, NULL, 0, 0);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
	struct sim *s = sim_of();
	int k = fixed_file(path), rc = 0;
	pthread_mutex_lock(&s->lock);
	if (k == 3 && (fi->flags & O_ACCMODE) != O_RDONLY)
		rc = -EACCES;
	else if (!k && !file_find(s, path))
		rc = -ENOENT;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)mode;
	(void)fi;
	struct sim *s = sim_of();
	if (fixed_file(path))
		return -EACCES;
	if (strlen(path + 1) > NAME_MAX_LEN || strchr(path + 1, '/'))
		return -ENAMETOOLONG;
	int rc = -ENOSPC;
	pthread_mutex_lock(&s->lock);
	struct file *f = file_find(s, path);
	if (f) {
		f->size = 0;
		memset(f->filled, 0, f->n_units * sizeof *f->filled);
		rc = 0;
	}
	for (int i = 0; !f && i < MAX_FILES; i++)
		if (!s->files[i].name[0]) {
			f = &s->files[i];
			memset(f, 0, sizeof *f);
			snprintf(f->name, sizeof f->name, "%s", path + 1);
			rc = 0;
		}
	pthread_mutex_unlock(&s->lock);
	if (rc == 0)
		ev(s, "create %s", path + 1);
	return rc;
}

static int op_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	struct sim *s = sim_of();
	char info[512];
	int k = fixed_file(path);
	size_t len = 0, done = 0;
	if (off < 0)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	if (k == 1 || k == 2) {
		const char *t = k == 1 ? info : index_htm;
		len = k == 1 ? info_text(s, info, sizeof info) : strlen(index_htm);
		if ((size_t)off < len) {
			done = len - (size_t)off < size ? len - (size_t)off : size;
			memcpy(buf, t + off, done);
		}
	} else if (k == 3) {
		uint8_t blk[BLOCK];
		len = current_size(s);
		while (done < size && (size_t)off + done < len) {
			size_t at = (size_t)off + done, in = at % BLOCK;
			size_t n = BLOCK - in < size - done ? BLOCK - in : size - done;
			current_block(s, at / BLOCK, blk);
			memcpy(buf + done, blk + in, n);
			done += n;
		}
	} else {
		struct file *f = file_find(s, path);
		if (!f) {
			pthread_mutex_unlock(&s->lock);
			return -ENOENT;
		}
		if ((size_t)off < f->size) {
			done = f->size - (size_t)off < size ? f->size - (size_t)off : size;
			memcpy(buf, f->data + off, done);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return (int)done;
}

/* ---- the bootloader ---- */

static void *reboot_main(void *arg);

/* One complete 512-byte unit of a file. Called with the lock held. */
static void take_block(struct sim *s, struct file *f, size_t unit, const uint8_t *b)
{
	uint32_t m0 = le32(b), m1 = le32(b + 4), flags = le32(b + 8), addr = le32(b + 12);
	uint32_t size = le32(b + 16), no = le32(b + 20), total = le32(b + 24), fam = le32(b + 28);
	uint32_t mend = le32(b + 508);
	const char *why = NULL;
	char whybuf[160];
	int region = -1;
	if (m0 != MAGIC0 || m1 != MAGIC1) {
		f->ignored++; /* not a UF2 block (FAT data, metadata files): silently */
		return;
	}
	if (s->rebooting)
		return;
	if (mend != MAGIC_END)
		why = "bad end magic";
	else if (flags & F_NOT_MAIN)
		why = "flag 0x0001 (not main flash)";
	else if (flags & F_FILE)
		why = "flag 0x1000 (file container)";
	else if ((flags & F_FAMILY) && fam != s->family) {
		snprintf(whybuf, sizeof whybuf, "family 0x%08x, this board is %s0x%08x", fam,
			 s->family ? "" : "none, ", s->family);
		why = whybuf;
	} else if (size == 0 || size > 476 || size % 4) {
		snprintf(whybuf, sizeof whybuf, "payload size %u", size);
		why = whybuf;
	} else if (total == 0 || no >= total || total > MAX_BLOCKS) {
		snprintf(whybuf, sizeof whybuf, "block %u of %u", no, total);
		why = whybuf;
	} else if (s->total && total != s->total) {
		snprintf(whybuf, sizeof whybuf, "numBlocks %u, the first block said %u", total,
			 s->total);
		why = whybuf;
	} else {
		for (int r = 0; r < 2 && s->mcu->regions[r].name && region < 0; r++) {
			const struct region *g = &s->mcu->regions[r];
			if (addr >= g->start && (uint64_t)addr + size <= (uint64_t)g->start + g->size)
				region = r;
		}
		if (region < 0) {
			snprintf(whybuf, sizeof whybuf, "address 0x%08x+%u outside flash", addr, size);
			why = whybuf;
		}
	}
	if (why) {
		f->ignored++;
		ev(s, "ignored %s unit %zu: %s", f->name, unit, why);
		return;
	}
	if (!s->total) {
		s->total = total;
		s->seen = calloc((total + 7) / 8, 1);
		if (!s->seen) {
			ev(s, "out of memory");
			return;
		}
		s->first_us = us_since(s);
		ev(s, "first block: %u blocks announced", total);
	}
	const struct region *g = &s->mcu->regions[region];
	memcpy(s->flash[region] + (addr - g->start), b + 32, size);
	f->accepted++;
	s->accepted_all++;
	if (!(s->seen[no / 8] & (1u << (no % 8)))) {
		s->seen[no / 8] |= (uint8_t)(1u << (no % 8));
		s->n_seen++;
	}
	int vanish = s->vanish_after && s->accepted_all >= s->vanish_after;
	if (s->n_seen == s->total || vanish) {
		if (vanish)
			ev(s, "vanish after %u blocks (fault injected)", s->accepted_all);
		else
			ev(s, "complete %u blocks, %lld us after the first", s->total,
			   us_since(s) - s->first_us);
		s->rebooting = 1 + vanish;
		if (pthread_create(&s->reboot_thread, NULL, reboot_main, s) == 0)
			s->have_thread = 1;
		else
			ev(s, "cannot start the reboot thread");
	}
}

static int op_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)fi;
	struct sim *s = sim_of();
	if (off < 0 || (uint64_t)off + size > MAX_FILE)
		return -EFBIG;
	int k = fixed_file(path);
	if (k)
		return k == 3 ? -EACCES : (int)size; /* INFO_UF2.TXT/INDEX.HTM: ignored */
	pthread_mutex_lock(&s->lock);
	struct file *f = file_find(s, path);
	if (!f) {
		pthread_mutex_unlock(&s->lock);
		return -ENOENT;
	}
	if (s->rebooting == 2) { /* gone before the host finished */
		pthread_mutex_unlock(&s->lock);
		return -EIO;
	}
	size_t end = (size_t)off + size;
	if (end > f->cap) {
		size_t nc = f->cap ? f->cap : 64 * 1024;
		while (nc < end)
			nc *= 2;
		size_t nu = (nc + BLOCK - 1) / BLOCK;
		uint8_t *nd = realloc(f->data, nc);
		uint16_t *nf = nd ? realloc(f->filled, nu * sizeof *nf) : NULL;
		if (!nd || !nf) {
			if (nd)
				f->data = nd;
			pthread_mutex_unlock(&s->lock);
			return -ENOSPC;
		}
		memset(nf + f->n_units, 0, (nu - f->n_units) * sizeof *nf);
		f->data = nd;
		f->filled = nf;
		f->n_units = nu;
		f->cap = nc;
	}
	memcpy(f->data + off, buf, size);
	if (end > f->size)
		f->size = end;
	/* Count the bytes each 512-byte unit got; a unit is taken when whole,
	 * however the host split its writes. */
	for (size_t u = (size_t)off / BLOCK; u * BLOCK < end; u++) {
		size_t lo = u * BLOCK > (size_t)off ? u * BLOCK : (size_t)off;
		size_t hi = (u + 1) * BLOCK < end ? (u + 1) * BLOCK : end;
		unsigned before = f->filled[u];
		unsigned now = before + (unsigned)(hi - lo);
		f->filled[u] = (uint16_t)(now > BLOCK ? BLOCK : now);
		if (before < BLOCK && f->filled[u] == BLOCK)
			take_block(s, f, u, f->data + u * BLOCK);
	}
	pthread_mutex_unlock(&s->lock);
	return (int)size;
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	(void)fi;
	struct sim *s = sim_of();
	pthread_mutex_lock(&s->lock);
	struct file *f = file_find(s, path);
	int rc = f ? 0 : fixed_file(path) ? -EACCES : -ENOENT;
	if (f && (size_t)size < f->size)
		f->size = (size_t)size;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
	(void)fi;
	struct sim *s = sim_of();
	pthread_mutex_lock(&s->lock);
	struct file *f = file_find(s, path);
	if (f && (fi->flags & O_ACCMODE) != O_RDONLY)
		ev(s, "file %s: %zu bytes, %u blocks accepted, %u ignored", f->name, f->size,
		   f->accepted, f->ignored);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static int op_ok(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	(void)datasync;
	(void)fi;
	return 0;
}

static int op_unlink(const char *path)
{
	struct sim *s = sim_of();
	pthread_mutex_lock(&s->lock);
	struct file *f = file_find(s, path);
	if (f) {
		free(f->data);
		free(f->filled);
		memset(f, 0, sizeof *f);
	}
	pthread_mutex_unlock(&s->lock);
	return f ? 0 : -ENOENT;
}

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)path;
	(void)mode;
	(void)fi;
	return 0;
}

static int op_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	(void)path;
	(void)tv;
	(void)fi;
	return 0;
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	cfg->direct_io = 1; /* every write reaches the bootloader as the host makes it */
	return fuse_get_context()->private_data;
}

static const struct fuse_operations ops = {
	.init = op_init,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.truncate = op_truncate,
	.release = op_release,
	.fsync = op_ok,
	.unlink = op_unlink,
	.chmod = op_chmod,
	.utimens = op_utimens,
};

/* ---- reboot: dump, unmount, boot the app ---- */

static int write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t w = fwrite(data, 1, len, f);
	return fclose(f) == 0 && w == len ? 0 : -1;
}

static void dump(struct sim *s)
{
	char path[512];
	for (int r = 0; s->dump_dir && r < 2 && s->mcu->regions[r].name; r++) {
		snprintf(path, sizeof path, "%s/%s.bin", s->dump_dir, s->mcu->regions[r].name);
		if (write_file(path, s->flash[r], s->mcu->regions[r].size))
			ev(s, "cannot write %s: %s", path, strerror(errno));
	}
	if (s->dump_dir)
		ev(s, "dump %s", s->dump_dir);
}

/* The flash as Intel HEX, every 16-byte line that is not all 0xff. */
static int write_hex(const struct sim *s, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	uint32_t upper = 0xffffffffu;
	for (int r = 0; r < 2 && s->mcu->regions[r].name; r++) {
		const struct region *g = &s->mcu->regions[r];
		for (uint32_t o = 0; o < g->size; o += 16) {
			const uint8_t *d = s->flash[r] + o;
			int blank = 1;
			for (int i = 0; i < 16; i++)
				blank &= d[i] == 0xff;
			if (blank)
				continue;
			uint32_t a = g->start + o;
			if (a >> 16 != upper) {
				upper = a >> 16;
				unsigned sum = 2 + 4 + (upper >> 8) + (upper & 0xff);
				fprintf(f, ":02000004%04X%02X\n", upper, (0x100 - (sum & 0xff)) & 0xff);
			}
			unsigned sum = 16 + ((a >> 8) & 0xff) + (a & 0xff);
			fprintf(f, ":10%04X00", a & 0xffff);
			for (int i = 0; i < 16; i++) {
				fprintf(f, "%02X", d[i]);
				sum += d[i];
			}
			fprintf(f, "%02X\n", (0x100 - (sum & 0xff)) & 0xff);
		}
	}
	fprintf(f, ":00000001FF\n");
	return fclose(f);
}

static void start_qemu(struct sim *s)
{
	char hex[300], loader[400], chardev[400];
	snprintf(hex, sizeof hex, "%s/flash.hex", s->workdir);
	if (write_hex(s, hex)) {
		ev(s, "cannot write %s: %s", hex, strerror(errno));
		return;
	}
	snprintf(loader, sizeof loader, "loader,file=%s", hex);
	snprintf(chardev, sizeof chardev, "socket,id=uart0,path=%s,server=on,wait=off", s->uart);
	unlink(s->uart);
	const char *argv[] = { s->qemu, "-M", "microbit", "-nographic", "-monitor", "none",
			       "-nodefaults", "-device", loader, "-chardev", chardev, "-serial",
			       "chardev:uart0", NULL };
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setpgid(0, 0);
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (pid < 0) {
		ev(s, "fork: %s", strerror(errno));
		return;
	}
	s->qemu_pid = pid;
	ev(s, "qemu pid %d uart %s", (int)pid, s->uart);
}

/* Once, from whichever thread comes first. */
static int claim_unmount(struct sim *s)
{
	pthread_mutex_lock(&s->lock);
	int first = !s->unmounted;
	s->unmounted = 1;
	pthread_mutex_unlock(&s->lock);
	return first;
}

static void unmount_now(struct sim *s)
{
	if (!claim_unmount(s))
		return;
	if (umount2(s->mount, MNT_DETACH) == 0)
		return;
	/* not root: the setuid helper */
	pid_t pid = fork();
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "-z", s->mount, (char *)NULL);
		_exit(127);
	}
	int st = 0;
	if (pid <= 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		ev(s, "cannot unmount %s", s->mount);
}

/* The connection's abort file: the device is gone, pending and later
 * requests fail at once (a USB drive pulled mid-copy). */
static void abort_connection(struct sim *s)
{
	struct stat st;
	char path[128];
	if (stat(s->mount, &st) != 0)
		return;
	snprintf(path, sizeof path, "/sys/fs/fuse/connections/%u/abort", minor(st.st_dev));
	int fd = open(path, O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "1", 1) != 1)
			ev(s, "cannot abort the connection");
		close(fd);
	}
}

static void *reboot_main(void *arg)
{
	struct sim *s = arg;
	struct timespec ts = { .tv_sec = s->reboot_ms / 1000,
			       .tv_nsec = (long)(s->reboot_ms % 1000) * 1000000L };
	if (s->rebooting == 1)
		nanosleep(&ts, NULL);
	pthread_mutex_lock(&s->lock);
	dump(s);
	pthread_mutex_unlock(&s->lock);
	if (s->rebooting == 2)
		abort_connection(s);
	unmount_now(s);
	ev(s, "reboot: unmounted %s", s->mount);
	pthread_mutex_lock(&s->lock);
	int complete = s->n_seen == s->total && s->total;
	if (complete && s->mcu->qemu && s->uart)
		start_qemu(s);
	else if (complete)
		ev(s, "app running (no emulator for %s)", s->mcu->name);
	/* QEMU was started by this thread with PR_SET_PDEATHSIG, which fires
	 * when the forking thread ends: stay until the simulator exits. */
	while (!s->ending)
		pthread_cond_wait(&s->end_cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---- main ---- */

/* SIGTERM/SIGINT/SIGHUP: leave the FUSE loop (as libfuse's own handler
 * does) and remember that the run is over. The only file-scope state: a
 * signal handler has no argument. */
static volatile sig_atomic_t stop_flag;
static struct fuse_session *stop_session;

static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
	if (stop_session)
		fuse_session_exit(stop_session);
}

static int usage(void)
{
	fprintf(stderr, "usage: uf2sim --mount DIR [--mcu nrf51|rp2040|samd21] [--family HEX] "
			"[--board-id S] [--model S] [--log FILE] [--dump DIR] [--uart SOCK] "
			"[--qemu PATH] [--reboot-ms N] [--vanish-after N] [--ready FILE]\n");
	return 2;
}

static void stop_qemu(struct sim *s)
{
	pthread_mutex_lock(&s->lock);
	pid_t pid = s->qemu_pid;
	s->qemu_pid = 0;
	pthread_mutex_unlock(&s->lock);
	if (pid <= 0)
		return;
	kill(-pid, SIGTERM);
	kill(pid, SIGTERM);
	for (int i = 0; i < 40; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			ev(s, "qemu exited");
			return;
		}
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL);
	}
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	ev(s, "qemu killed");
}

static int parse_uint(const char *v, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long x = strtoul(v, &end, 0);
	if (errno || end == v || *end || x > max)
		return -1;
	*out = x;
	return 0;
}

int main(int argc, char **argv)
{
	static struct sim sim;
	struct sim *s = &sim;
	unsigned long v;
	const char *mcu = "nrf51", *family = NULL;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->end_cond, NULL);
	clock_gettime(CLOCK_MONOTONIC, &s->t0);
	s->qemu = "qemu-system-arm";
	s->reboot_ms = 20;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!val)
			return usage();
		i++;
		if (!strcmp(a, "--mount"))
			s->mount = val;
		else if (!strcmp(a, "--mcu"))
			mcu = val;
		else if (!strcmp(a, "--family"))
			family = val;
		else if (!strcmp(a, "--board-id"))
			s->board_id = val;
		else if (!strcmp(a, "--model"))
			s->model = val;
		else if (!strcmp(a, "--log"))
			s->log_path = val;
		else if (!strcmp(a, "--dump"))
			s->dump_dir = val;
		else if (!strcmp(a, "--uart"))
			s->uart = val;
		else if (!strcmp(a, "--qemu"))
			s->qemu = val;
		else if (!strcmp(a, "--ready"))
			s->ready = val;
		else if (!strcmp(a, "--reboot-ms") && !parse_uint(val, 60000, &v))
			s->reboot_ms = (unsigned)v;
		else if (!strcmp(a, "--vanish-after") && !parse_uint(val, MAX_BLOCKS, &v))
			s->vanish_after = (unsigned)v;
		else
			return usage();
	}
	if (!s->mount)
		return usage();
	for (size_t i = 0; i < sizeof mcus / sizeof mcus[0]; i++)
		if (!strcmp(mcus[i].name, mcu))
			s->mcu = &mcus[i];
	if (!s->mcu) {
		fprintf(stderr, "uf2sim: unknown --mcu %s (nrf51, rp2040, samd21)\n", mcu);
		return 2;
	}
	s->family = s->mcu->family;
	if (family && parse_uint(family, 0xffffffffu, &v) == 0)
		s->family = (uint32_t)v;
	else if (family)
		return usage();
	if (!s->model)
		s->model = s->mcu->model;
	if (!s->board_id)
		s->board_id = s->mcu->board_id;
	if (s->log_path && !(s->log = fopen(s->log_path, "a"))) {
		fprintf(stderr, "uf2sim: %s: %s\n", s->log_path, strerror(errno));
		return 1;
	}
	for (int r = 0; r < 2 && s->mcu->regions[r].name; r++) {
		s->flash[r] = malloc(s->mcu->regions[r].size);
		if (!s->flash[r])
			return 1;
		memset(s->flash[r], 0xff, s->mcu->regions[r].size);
	}
	snprintf(s->workdir, sizeof s->workdir, "/tmp/uf2sim-XXXXXX");
	if (!mkdtemp(s->workdir)) {
		fprintf(stderr, "uf2sim: mkdtemp: %s\n", strerror(errno));
		return 1;
	}

	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	if (fuse_opt_add_arg(&args, "uf2sim") || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, "fsname=uf2sim,subtype=uf2sim"))
		return 1;
	s->fuse = fuse_new(&args, &ops, sizeof ops, s);
	fuse_opt_free_args(&args);
	if (!s->fuse) {
		fprintf(stderr, "uf2sim: fuse_new failed\n");
		return 1;
	}
	if (fuse_mount(s->fuse, s->mount) != 0) {
		fprintf(stderr, "uf2sim: cannot mount on %s (is /dev/fuse usable?)\n", s->mount);
		fuse_destroy(s->fuse);
		return 77;
	}
	struct fuse_session *se = fuse_get_session(s->fuse);
	stop_session = se;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop; /* no SA_RESTART: the blocked read returns */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	ev(s, "mount %s mcu %s family 0x%08x Board-ID %s", s->mount, s->mcu->name, s->family,
	   s->board_id);
	if (s->ready) {
		char pid[32];
		int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
		if (write_file(s->ready, pid, (size_t)n))
			ev(s, "cannot write %s", s->ready);
	}
	int rc = fuse_loop(s->fuse);
	/* Always: it also frees libfuse's copy of the mount point (a second
	 * unmount of a lazily unmounted drive fails harmlessly). */
	claim_unmount(s);
	fuse_unmount(s->fuse);
	fuse_destroy(s->fuse);
	stop_session = NULL;
	ev(s, "fuse loop ended (%d)", rc);
	/* The board runs its app until the test stops it. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (!stop_flag) {
		for (;;) {
			int sig = 0;
			if (sigwait(&set, &sig))
				break;
			if (sig != SIGCHLD)
				break;
			int st;
			pthread_mutex_lock(&s->lock);
			if (s->qemu_pid > 0 && waitpid(s->qemu_pid, &st, WNOHANG) == s->qemu_pid) {
				ev(s, "qemu exited (status 0x%x)", st);
				s->qemu_pid = 0;
			}
			pthread_mutex_unlock(&s->lock);
		}
	}
	stop_qemu(s);
	pthread_mutex_lock(&s->lock);
	s->ending = 1;
	pthread_cond_broadcast(&s->end_cond);
	pthread_mutex_unlock(&s->lock);
	if (s->have_thread)
		pthread_join(s->reboot_thread, NULL);
	char hex[300];
	snprintf(hex, sizeof hex, "%s/flash.hex", s->workdir);
	unlink(hex);
	rmdir(s->workdir);
	for (int i = 0; i < MAX_FILES; i++) {
		free(s->files[i].data);
		free(s->files[i].filled);
	}
	free(s->seen);
	free(s->flash[0]);
	free(s->flash[1]);
	ev(s, "exit");
	if (s->log)
		fclose(s->log);
	return 0;
}
