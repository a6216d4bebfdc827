/* gdbsim: a fake GDB server (the debug-probe side of the GDB Remote Serial
 * Protocol) for tests, in the spirit of OpenOCD, pyOCD and Black Magic Probe.
 * Protocol facts: shared/protocols/gdb-rsp-flash.md; usage: README.md.
 *
 * A flash/RAM model behind a byte-level RSP parser: acks and no-ack mode,
 * escapes, qSupported, the memory map over qXfer, vFlashErase/Write/Done with
 * the servers' different timing, X/M/m, qCRC, qRcmd, 0x03. Server flavours are
 * rows of a table (--profile). Every packet handled is one line of the event
 * log (--log) and the flash content is saved (--state, --dump), so tests
 * assert on what the device saw, never on what a client claims. Faults
 * (--fault) exercise a client's recovery: a lost ack, a corrupt reply, a nak,
 * a dropped connection, a stall.
 *
 * Standalone on purpose (no farmcore): its framing, escaping and CRC are an
 * independent implementation, checked against the real gdb-multiarch. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_REGIONS 16
#define MAX_FAULTS 16
#define MAX_PACKET_SIZE (1u << 20)
#define WRITE_TIMEOUT_MS 10000

enum { ERASE_NOW, ERASE_AT_DONE };
enum { PROGRAM_AT_DONE, PROGRAM_AT_WRITE };
enum { MON_NONE, MON_CONSOLE, MON_HEX };

/* A server flavour: the differences in the protocol doc's table. */
struct profile {
	const char *name;
	unsigned packet_size;
	int no_ack, memory_map, x, qcrc, vflash;
	int erase;             /* ERASE_NOW: at vFlashErase; ERASE_AT_DONE: sectors written, at vFlashDone */
	int program;           /* when vFlashWrite data reaches the flash */
	int debug_write_flash; /* M/X may write flash (QEMU) */
	int monitor;           /* MON_CONSOLE: 'O' packets then OK; MON_HEX: output as the reply */
	int truncate_m;        /* m longer than a packet: short reply (else err_toolong) */
	const char *err_flash; /* vFlash failures */
	const char *err_memtype;
	const char *err_mem;   /* m/M/X/qCRC outside memory */
	const char *err_toolong;
	const char *stop;      /* reply to '?' */
	const char *halt_text; /* monitor reset halt / reset init output */
	const char *reset_text;
};

static const struct profile profiles[] = {
	{ .name = "openocd", .packet_size = 0x4000, .no_ack = 1, .memory_map = 1, .x = 1, .qcrc = 1,
	  .vflash = 1, .erase = ERASE_NOW, .program = PROGRAM_AT_DONE, .monitor = MON_CONSOLE,
	  .truncate_m = 1, .err_flash = "E05", .err_memtype = "E.memtype", .err_mem = "E0E",
	  .err_toolong = "E0E", .stop = "S05",
	  .halt_text = "target halted due to debug-request, current mode: Thread \n"
		       "xPSR: 0x01000000 pc: 0x000000c0 msp: 0x20004000\n",
	  .reset_text = "" },
	{ .name = "pyocd", .packet_size = 0x800, .no_ack = 1, .memory_map = 1, .x = 1, .qcrc = 0,
	  .vflash = 1, .erase = ERASE_AT_DONE, .program = PROGRAM_AT_DONE, .monitor = MON_HEX,
	  .truncate_m = 1, .err_flash = "E01", .err_memtype = "E.memtype", .err_mem = "E01",
	  .err_toolong = "E01", .stop = "S05",
	  .halt_text = "Successfully halted device on reset\n", .reset_text = "OK\n" },
	{ .name = "bmp", .packet_size = 0x400, .no_ack = 0, .memory_map = 1, .x = 1, .qcrc = 1,
	  .vflash = 1, .erase = ERASE_NOW, .program = PROGRAM_AT_WRITE, .monitor = MON_CONSOLE,
	  .truncate_m = 1, .err_flash = "EFF", .err_memtype = "E.memtype", .err_mem = "EFF",
	  .err_toolong = "EFF", .stop = "S05", .halt_text = "", .reset_text = "" },
	{ .name = "plain", .packet_size = 0x1000, .no_ack = 0, .memory_map = 0, .x = 1, .qcrc = 0,
	  .vflash = 0, .debug_write_flash = 1, .monitor = MON_NONE, .truncate_m = 0,
	  .err_flash = "E01", .err_memtype = "E01", .err_mem = "E14", .err_toolong = "E22",
	  .stop = "T05thread:01;", .halt_text = "", .reset_text = "" },
};

struct region {
	uint32_t start, size, block; /* block 0: RAM */
	uint8_t *mem;
};

enum fault_kind { F_DROP_ACK, F_CORRUPT, F_NAK, F_DISCONNECT, F_STALL, F_STALL_DONE, F_ERROR };
static const char *const fault_names[] = { "drop-ack", "corrupt", "nak", "disconnect-after",
					   "stall", "stall-done", "error" };

struct fault {
	enum fault_kind kind;
	unsigned long n; /* packet number, or milliseconds for stall-done */
	int fired;
};

struct chunk {
	uint32_t addr, len;
	uint8_t *data;
};

struct buf {
	char *p;
	size_t len, cap;
};

struct sim {
	struct profile prof;
	int rle;
	struct region regions[MAX_REGIONS];
	size_t n_regions;
	struct fault faults[MAX_FAULTS];
	size_t n_faults;
	FILE *log;
	const char *state_path, *dump_path;
	int sigfd;
	int stop;
	unsigned long seq; /* packets received since start, 1-based */
	/* the connection */
	int in_fd, out_fd;
	int connected;
	int noack;
	int running;
	struct buf body;       /* raw body of the packet being received */
	int state;             /* receiver: 0 idle, 1 body, 2 first checksum digit, 3 second */
	unsigned char cs_hi;
	int overlong;
	struct buf out;        /* what goes to the client next */
	struct buf last;       /* the last reply, framed, for a resend on '-' */
	struct buf reply;      /* reply data being built */
	/* the open vFlash group */
	struct chunk *pending;
	size_t n_pending, cap_pending;
	uint32_t group_end;
	int group_writes;
};

/* ------------------------------------------------------------ utilities */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die_oom(void)
{
	fputs("gdbsim: out of memory\n", stderr);
	abort();
}

static void buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q)
			die_oom();
		b->p = q;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_fmt(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_fmt(struct buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		buf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static void logf_(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct sim *s, const char *fmt, ...)
{
	if (!s->log)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(s->log, fmt, ap);
	va_end(ap);
	fputc('\n', s->log);
	fflush(s->log);
}

static int hexv(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static const char hexd[] = "0123456789abcdef";

/* Parse hex up to a terminator; returns the position after it or NULL. */
static const char *parse_hex(const char *p, const char *end, char term, uint64_t *v)
{
	uint64_t x = 0;
	if (!p)
		return NULL;
	const char *start = p;
	while (p < end && hexv((unsigned char)*p) >= 0) {
		if (x >> 60)
			return NULL;
		x = x * 16 + (uint64_t)hexv((unsigned char)*p);
		p++;
	}
	if (p == start)
		return NULL;
	if (term) {
		if (p >= end || *p != term)
			return NULL;
		p++;
	} else if (p != end) {
		return NULL;
	}
	*v = x;
	return p;
}

static uint32_t crc32_msb(uint32_t crc, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		crc ^= (uint32_t)p[i] << 24;
		for (int k = 0; k < 8; k++)
			crc = (crc & 0x80000000u) ? (crc << 1) ^ 0x04C11DB7u : crc << 1;
	}
	return crc;
}

/* ------------------------------------------------------------ memory model */

static struct region *find_region(struct sim *s, uint32_t addr)
{
	for (size_t i = 0; i < s->n_regions; i++) {
		struct region *r = &s->regions[i];
		if (addr >= r->start && (uint64_t)addr < (uint64_t)r->start + r->size)
			return r;
	}
	return NULL;
}

/* Every byte of [addr, addr+len) in regions of the kind wanted (flash: 1,
 * ram: 0, any: -1)? */
static int covered(struct sim *s, uint32_t addr, uint64_t len, int flash)
{
	uint64_t a = addr, end = (uint64_t)addr + len;
	while (a < end) {
		if (a > UINT32_MAX)
			return 0;
		struct region *r = find_region(s, (uint32_t)a);
		if (!r || (flash == 1 && !r->block) || (flash == 0 && r->block))
			return 0;
		a = (uint64_t)r->start + r->size;
	}
	return 1;
}

/* Copy between buf and memory; the range must be covered. */
static void mem_copy(struct sim *s, uint32_t addr, uint8_t *buf, size_t len, int write)
{
	size_t done = 0;
	while (done < len) {
		uint32_t a = addr + (uint32_t)done;
		struct region *r = find_region(s, a);
		size_t off = a - r->start, n = r->size - off;
		if (n > len - done)
			n = len - done;
		if (write)
			memcpy(r->mem + off, buf + done, n);
		else
			memcpy(buf + done, r->mem + off, n);
		done += n;
	}
}

static int writable(struct sim *s, uint32_t addr, uint64_t len)
{
	return s->prof.debug_write_flash ? covered(s, addr, len, -1) : covered(s, addr, len, 0);
}

/* Erase-block aligned: start and end on block boundaries of their regions. */
static int block_aligned(struct sim *s, uint32_t addr, uint64_t len)
{
	struct region *r = find_region(s, addr);
	if (!r || (addr - r->start) % r->block)
		return 0;
	uint64_t end = (uint64_t)addr + len;
	if (end == (uint64_t)UINT32_MAX + 1)
		return 1;
	struct region *q = find_region(s, (uint32_t)(end - 1));
	return q && ((end - q->start) % q->block) == 0;
}

static void erase_range(struct sim *s, uint32_t addr, uint64_t len)
{
	uint64_t a = addr, end = (uint64_t)addr + len;
	while (a < end) {
		struct region *r = find_region(s, (uint32_t)a);
		uint64_t n = (uint64_t)r->start + r->size - a;
		if (n > end - a)
			n = end - a;
		memset(r->mem + (a - r->start), 0xff, n);
		a += n;
	}
}

static uint64_t flash_total(const struct sim *s)
{
	uint64_t t = 0;
	for (size_t i = 0; i < s->n_regions; i++)
		if (s->regions[i].block)
			t += s->regions[i].size;
	return t;
}

static int save_flash(const struct sim *s, const char *path)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "wb");
	if (!f) {
		fprintf(stderr, "gdbsim: cannot write %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < s->n_regions; i++)
		if (s->regions[i].block)
			fwrite(s->regions[i].mem, 1, s->regions[i].size, f);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		fprintf(stderr, "gdbsim: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int load_flash(struct sim *s, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return errno == ENOENT ? 0 : -1;
	int rc = 0;
	for (size_t i = 0; i < s->n_regions && !rc; i++)
		if (s->regions[i].block && fread(s->regions[i].mem, 1, s->regions[i].size, f) !=
						   s->regions[i].size)
			rc = -1;
	if (!rc && fgetc(f) != EOF)
		rc = -1;
	fclose(f);
	if (rc)
		fprintf(stderr, "gdbsim: %s does not hold exactly %llu bytes of flash\n", path,
			(unsigned long long)flash_total(s));
	return rc;
}

static void save_all(struct sim *s)
{
	if (s->state_path)
		save_flash(s, s->state_path);
	if (s->dump_path)
		save_flash(s, s->dump_path);
}

/* ------------------------------------------------------------ output */

static void send_bytes(struct sim *s, const void *p, size_t n)
{
	buf_add(&s->out, p, n);
}

static int flush_out(struct sim *s)
{
	size_t off = 0;
	long long deadline = now_ms() + WRITE_TIMEOUT_MS;
	while (off < s->out.len) {
		ssize_t w = write(s->out_fd, s->out.p + off, s->out.len - off);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR) {
			s->out.len = 0;
			return -1;
		}
		long long left = deadline - now_ms();
		if (left <= 0) {
			s->out.len = 0;
			return -1;
		}
		struct pollfd p = { .fd = s->out_fd, .events = POLLOUT };
		poll(&p, 1, (int)left);
	}
	s->out.len = 0;
	return 0;
}

/* Run-length encode as gdbserver does: runs of 4+ characters, counts
 * avoiding '#' and '$' (and over 97). */
static void rle_encode(struct buf *out, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t run = 1;
		while (i + run < n && p[i + run] == p[i] && run < 98)
			run++;
		if (run >= 4) {
			size_t rep = run - 1;
			if (rep + 29 == '#' || rep + 29 == '$')
				rep = 5;
			char r[3] = { p[i], '*', (char)(rep + 29) };
			buf_add(out, r, 3);
			i += rep + 1;
		} else {
			buf_add(out, p + i, 1);
			i++;
		}
	}
}

/* Frame data as a reply; corrupt: a wrong checksum. Remembered for '-'. */
static void put_packet(struct sim *s, const char *data, size_t n, int rle, int corrupt)
{
	struct buf body = { 0 };
	if (rle && s->rle)
		rle_encode(&body, data, n);
	else
		buf_add(&body, data, n);
	unsigned sum = 0;
	for (size_t i = 0; i < body.len; i++)
		sum += (unsigned char)body.p[i];
	s->last.len = 0;
	buf_add(&s->last, "$", 1);
	buf_add(&s->last, body.p ? body.p : "", body.len);
	char tail[3] = { '#', hexd[(sum >> 4) & 15], hexd[sum & 15] };
	buf_add(&s->last, tail, 3);
	send_bytes(s, "$", 1);
	send_bytes(s, body.p ? body.p : "", body.len);
	if (corrupt)
		sum ^= 0x5a;
	char ctail[3] = { '#', hexd[(sum >> 4) & 15], hexd[sum & 15] };
	send_bytes(s, ctail, 3);
	buf_free(&body);
}

static void escape_into(struct buf *b, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (c == '#' || c == '$' || c == '}' || c == '*') {
			char e[2] = { '}', (char)(c ^ 0x20) };
			buf_add(b, e, 2);
		} else {
			buf_add(b, &c, 1);
		}
	}
}

static void hex_into(struct buf *b, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char h[2] = { hexd[p[i] >> 4], hexd[p[i] & 15] };
		buf_add(b, h, 2);
	}
}

/* ------------------------------------------------------------ vFlash */

static void group_reset(struct sim *s)
{
	for (size_t i = 0; i < s->n_pending; i++)
		free(s->pending[i].data);
	s->n_pending = 0;
	s->group_writes = 0;
	s->group_end = 0;
}

static int all_erased(struct sim *s, uint32_t addr, size_t len, uint32_t *bad)
{
	uint8_t tmp[4096];
	for (size_t off = 0; off < len; off += sizeof tmp) {
		size_t n = len - off < sizeof tmp ? len - off : sizeof tmp;
		mem_copy(s, addr + (uint32_t)off, tmp, n, 0);
		for (size_t i = 0; i < n; i++)
			if (tmp[i] != 0xff) {
				*bad = addr + (uint32_t)(off + i);
				return 0;
			}
	}
	return 1;
}

/* Erase the blocks a range touches (pyOCD erases at vFlashDone). */
static void erase_touched(struct sim *s, uint32_t addr, uint32_t len)
{
	uint64_t a = addr, end = (uint64_t)addr + len;
	while (a < end) {
		struct region *r = find_region(s, (uint32_t)a);
		uint64_t bstart = r->start + ((a - r->start) / r->block) * r->block;
		uint64_t bend = bstart + r->block;
		if (bend > (uint64_t)r->start + r->size)
			bend = (uint64_t)r->start + r->size;
		erase_range(s, (uint32_t)bstart, bend - bstart);
		a = bend;
	}
}

/* ------------------------------------------------------------ packets */

/* The reply to the packet being handled, and what the log says of it. */
struct answer {
	struct buf *data;
	int rle;        /* may be run-length encoded */
	int no_reply;   /* 'c', 'k': nothing now */
	int hangup;     /* 'D', 'k': close after replying */
	char note[160]; /* extra log text */
};

static void reply_str(struct answer *a, const char *s)
{
	buf_str(a->data, s);
}

static const struct fault *fault_at(struct sim *s, enum fault_kind k)
{
	for (size_t i = 0; i < s->n_faults; i++) {
		struct fault *f = &s->faults[i];
		if (f->kind == k && !f->fired && (k == F_STALL_DONE || f->n == s->seq)) {
			f->fired = 1;
			return f;
		}
	}
	return NULL;
}

/* Undo '}' escapes in place; returns the new length. */
static size_t unescape(char *p, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '}' && i + 1 < n)
			p[o++] = (char)(p[++i] ^ 0x20);
		else
			p[o++] = p[i];
	}
	return o;
}

static void memory_map_xml(const struct sim *s, struct buf *x)
{
	buf_str(x, "<?xml version=\"1.0\"?>\n"
		   "<!DOCTYPE memory-map PUBLIC \"+//IDN gnu.org//DTD GDB Memory Map V1.0//EN\" "
		   "\"http://sourceware.org/gdb/gdb-memory-map.dtd\">\n<memory-map>\n");
	for (size_t i = 0; i < s->n_regions; i++) {
		const struct region *r = &s->regions[i];
		if (r->block)
			buf_fmt(x, "<memory type=\"flash\" start=\"0x%x\" length=\"0x%x\">\n"
				   "<property name=\"blocksize\">0x%x</property>\n</memory>\n",
				r->start, r->size, r->block);
		else
			buf_fmt(x, "<memory type=\"ram\" start=\"0x%x\" length=\"0x%x\"/>\n", r->start,
				r->size);
	}
	buf_str(x, "</memory-map>\n");
}

/* The start of a packet for the log: printable, up to the binary part. */
static const char *brief(char out[40], const char *p, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k < 32; i++) {
		unsigned char c = (unsigned char)p[i];
		out[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '.';
		if (c == ':' && (p[0] == 'X' || p[0] == 'M' || p[0] == 'v'))
			break;
	}
	out[k] = '\0';
	return out;
}

static void handle_monitor(struct sim *s, const char *hex, size_t n, struct answer *a)
{
	char cmd[256];
	size_t cl = 0;
	for (size_t i = 0; i + 1 < n && cl < sizeof cmd - 1; i += 2) {
		int hi = hexv((unsigned char)hex[i]), lo = hexv((unsigned char)hex[i + 1]);
		if (hi < 0 || lo < 0) {
			reply_str(a, "E01");
			return;
		}
		cmd[cl++] = (char)(hi * 16 + lo);
	}
	cmd[cl] = '\0';
	snprintf(a->note, sizeof a->note, "cmd='%.100s'", cmd);
	if (s->prof.monitor == MON_NONE)
		return; /* empty: unsupported */
	const char *text = NULL;
	if (!strcmp(cmd, "reset halt") || !strcmp(cmd, "reset init")) {
		text = s->prof.halt_text;
		s->running = 0;
	} else if (!strcmp(cmd, "reset") || !strcmp(cmd, "reset run")) {
		text = s->prof.reset_text;
		s->running = 0;
	} else if (!strcmp(s->prof.name, "bmp") && !strcmp(cmd, "swd_scan")) {
		/* Black Magic Probe: list the targets found on the SWD bus */
		text = "Target voltage: 3.3V\nAvailable Targets:\nNo. Att Driver\n 1      Nordic nRF52 M4\n";
	}
	if (!text) {
		char msg[300];
		snprintf(msg, sizeof msg, "invalid command name \"%s\"\n", cmd);
		struct buf o = { 0 };
		buf_str(&o, "O");
		hex_into(&o, (const uint8_t *)msg, strlen(msg));
		put_packet(s, o.p, o.len, 0, 0);
		buf_free(&o);
		reply_str(a, "E01");
		return;
	}
	if (s->prof.monitor == MON_HEX) {
		hex_into(a->data, (const uint8_t *)text, strlen(text));
		if (!*text)
			reply_str(a, "OK");
		return;
	}
	if (*text) { /* console output first, each its own packet */
		struct buf o = { 0 };
		buf_str(&o, "O");
		hex_into(&o, (const uint8_t *)text, strlen(text));
		put_packet(s, o.p, o.len, 0, 0);
		buf_free(&o);
	}
	reply_str(a, "OK");
}

static void handle_vflash(struct sim *s, char *p, size_t n, struct answer *a, char *name, size_t nl)
{
	const char *end = p + n;
	uint64_t addr, len;
	if (!strncmp(p, "vFlashErase:", 12)) {
		snprintf(name, nl, "vFlashErase");
		if (!parse_hex(parse_hex(p + 12, end, ',', &addr), end, 0, &len)) {
			reply_str(a, "E01");
			return;
		}
		snprintf(name, nl, "vFlashErase addr=0x%08llx len=%llu", (unsigned long long)addr,
			 (unsigned long long)len);
		if (addr > UINT32_MAX || len == 0 || !covered(s, (uint32_t)addr, len, 1)) {
			reply_str(a, s->prof.err_memtype);
			return;
		}
		if (!block_aligned(s, (uint32_t)addr, len)) {
			reply_str(a, s->prof.err_flash);
			snprintf(a->note, sizeof a->note, "unaligned");
			return;
		}
		if (s->prof.erase == ERASE_NOW)
			erase_range(s, (uint32_t)addr, len);
		else
			snprintf(a->note, sizeof a->note, "deferred");
		reply_str(a, "OK");
	} else if (!strncmp(p, "vFlashWrite:", 12)) {
		const char *q = parse_hex(p + 12, end, ':', &addr);
		if (!q) {
			snprintf(name, nl, "vFlashWrite");
			reply_str(a, "E01");
			return;
		}
		size_t dl = unescape((char *)q, (size_t)(end - q));
		snprintf(name, nl, "vFlashWrite addr=0x%08llx len=%zu", (unsigned long long)addr, dl);
		if (addr > UINT32_MAX || dl == 0 || !covered(s, (uint32_t)addr, dl, 1)) {
			reply_str(a, s->prof.err_memtype);
			return;
		}
		if (s->group_writes && addr < s->group_end) {
			reply_str(a, s->prof.err_flash);
			snprintf(a->note, sizeof a->note, "overlapping or decreasing (previous end 0x%08x)",
				 s->group_end);
			return;
		}
		s->group_writes++;
		s->group_end = (uint32_t)(addr + dl);
		if (s->prof.program == PROGRAM_AT_WRITE) {
			uint32_t bad;
			if (!all_erased(s, (uint32_t)addr, dl, &bad)) {
				reply_str(a, s->prof.err_flash);
				snprintf(a->note, sizeof a->note, "unerased at 0x%08x", bad);
				return;
			}
			mem_copy(s, (uint32_t)addr, (uint8_t *)q, dl, 1);
		} else {
			if (s->n_pending == s->cap_pending) {
				size_t cap = s->cap_pending ? s->cap_pending * 2 : 64;
				struct chunk *c = realloc(s->pending, cap * sizeof *c);
				if (!c)
					die_oom();
				s->pending = c;
				s->cap_pending = cap;
			}
			struct chunk *c = &s->pending[s->n_pending++];
			c->addr = (uint32_t)addr;
			c->len = (uint32_t)dl;
			if (!(c->data = malloc(dl)))
				die_oom();
			memcpy(c->data, q, dl);
		}
		reply_str(a, "OK");
	} else if (!strcmp(p, "vFlashDone")) {
		snprintf(name, nl, "vFlashDone");
		const struct fault *f = fault_at(s, F_STALL_DONE);
		if (f) {
			logf_(s, "fault stall-done %lums", f->n);
			long long until = now_ms() + (long long)f->n;
			while (!s->stop && now_ms() < until) {
				struct pollfd pf = { .fd = s->sigfd, .events = POLLIN };
				if (poll(&pf, 1, (int)(until - now_ms())) > 0)
					s->stop = 1;
			}
		}
		size_t programmed = 0;
		uint32_t bad = 0;
		int ok = 1;
		if (s->prof.erase == ERASE_AT_DONE)
			for (size_t i = 0; i < s->n_pending; i++)
				erase_touched(s, s->pending[i].addr, s->pending[i].len);
		for (size_t i = 0; i < s->n_pending && ok; i++)
			if (!all_erased(s, s->pending[i].addr, s->pending[i].len, &bad))
				ok = 0;
		for (size_t i = 0; i < s->n_pending && ok; i++) {
			mem_copy(s, s->pending[i].addr, s->pending[i].data, s->pending[i].len, 1);
			programmed += s->pending[i].len;
		}
		if (ok) {
			reply_str(a, "OK");
			snprintf(a->note, sizeof a->note, "programmed=%zu", programmed);
		} else {
			reply_str(a, s->prof.err_flash);
			snprintf(a->note, sizeof a->note, "unerased at 0x%08x", bad);
		}
		group_reset(s);
	} else {
		snprintf(name, nl, "%.40s", p);
	}
}

static void handle_packet(struct sim *s, char *p, size_t n, struct answer *a, char *name, size_t nl)
{
	const char *end = p + n;
	uint64_t addr, len;
	char b[40];
	snprintf(name, nl, "%s", brief(b, p, n));
	if (n == 0)
		return;
	switch (p[0]) {
	case '?':
		reply_str(a, s->prof.stop);
		s->running = 0;
		return;
	case 'g': /* GDB's default ARM set, all zero: r0-r15, f0-f7 (12 bytes each), fps, cpsr */
		for (int i = 0; i < 16 + 8 * 3 + 2; i++)
			reply_str(a, "00000000");
		return;
	case 'G':
	case 'P':
		snprintf(name, nl, "%c", p[0]);
		reply_str(a, "OK");
		return;
	case 'p':
		reply_str(a, "00000000");
		return;
	case 'H':
		reply_str(a, "OK");
		return;
	case 'c':
	case 's':
		s->running = 1;
		a->no_reply = 1;
		return;
	case 'D':
		reply_str(a, "OK");
		a->hangup = 1;
		return;
	case 'k':
		a->no_reply = 1;
		a->hangup = 1;
		return;
	case 'm':
		if (!parse_hex(parse_hex(p + 1, end, ',', &addr), end, 0, &len)) {
			reply_str(a, "E01");
			return;
		}
		snprintf(name, nl, "m addr=0x%08llx len=%llu", (unsigned long long)addr, (unsigned long long)len);
		if (len * 2 > s->prof.packet_size) {
			if (!s->prof.truncate_m) {
				reply_str(a, s->prof.err_toolong);
				return;
			}
			len = s->prof.packet_size / 2;
			snprintf(a->note, sizeof a->note, "short=%llu", (unsigned long long)len);
		}
		if (addr > UINT32_MAX || !covered(s, (uint32_t)addr, len, -1)) {
			reply_str(a, s->prof.err_mem);
			return;
		}
		{
			uint8_t *tmp = malloc(len ? len : 1);
			if (!tmp)
				die_oom();
			mem_copy(s, (uint32_t)addr, tmp, len, 0);
			hex_into(a->data, tmp, len);
			free(tmp);
		}
		a->rle = 1;
		return;
	case 'M':
	case 'X': {
		const char *q = parse_hex(parse_hex(p + 1, end, ',', &addr), end, ':', &len);
		if (!q) {
			reply_str(a, "E01");
			return;
		}
		snprintf(name, nl, "%c addr=0x%08llx len=%llu", p[0], (unsigned long long)addr,
			 (unsigned long long)len);
		if (p[0] == 'X' && !s->prof.x)
			return; /* empty: no binary downloads */
		size_t dl;
		if (p[0] == 'X') {
			dl = unescape((char *)q, (size_t)(end - q));
		} else {
			dl = (size_t)(end - q) / 2;
			if ((size_t)(end - q) % 2) {
				reply_str(a, "E01");
				return;
			}
			for (size_t i = 0; i < dl; i++) {
				int hi = hexv((unsigned char)q[2 * i]), lo = hexv((unsigned char)q[2 * i + 1]);
				if (hi < 0 || lo < 0) {
					reply_str(a, "E01");
					return;
				}
				((char *)q)[i] = (char)(hi * 16 + lo);
			}
		}
		if (dl != len) {
			reply_str(a, "E01");
			snprintf(a->note, sizeof a->note, "length mismatch: %zu bytes of data", dl);
			return;
		}
		if (len == 0) {
			reply_str(a, "OK");
			return;
		}
		if (addr > UINT32_MAX || !writable(s, (uint32_t)addr, len)) {
			reply_str(a, s->prof.err_mem);
			return;
		}
		mem_copy(s, (uint32_t)addr, (uint8_t *)q, len, 1);
		reply_str(a, "OK");
		return;
	}
	case 'v':
		if (!strncmp(p, "vFlash", 6)) {
			if (s->prof.vflash)
				handle_vflash(s, p, n, a, name, nl);
			else
				snprintf(name, nl, "%.12s", p);
			return;
		}
		if (!strncmp(p, "vAttach;", 8)) {
			reply_str(a, s->prof.stop);
			return;
		}
		return; /* vCont?, vMustReplyEmpty, ...: empty */
	case 'q':
	case 'Q':
		break;
	default:
		return; /* empty: unsupported */
	}
	if (!strncmp(p, "qSupported", 10)) {
		snprintf(name, nl, "qSupported");
		buf_fmt(a->data, "PacketSize=%x", s->prof.packet_size);
		if (s->prof.memory_map)
			reply_str(a, ";qXfer:memory-map:read+");
		if (s->prof.no_ack)
			reply_str(a, ";QStartNoAckMode+");
	} else if (!strcmp(p, "QStartNoAckMode")) {
		if (s->prof.no_ack) {
			reply_str(a, "OK");
			snprintf(a->note, sizeof a->note, "no-ack from now on");
		}
	} else if (!strncmp(p, "qXfer:memory-map:read::", 23) && s->prof.memory_map) {
		uint64_t off;
		if (!parse_hex(parse_hex(p + 23, end, ',', &off), end, 0, &len)) {
			reply_str(a, "E01");
			return;
		}
		snprintf(name, nl, "qXfer:memory-map:read off=%llu len=%llu", (unsigned long long)off,
			 (unsigned long long)len);
		struct buf x = { 0 };
		memory_map_xml(s, &x);
		if (off > x.len) {
			reply_str(a, "E01");
		} else {
			size_t k = x.len - off < len ? x.len - off : len;
			reply_str(a, off + k < x.len ? "m" : "l");
			escape_into(a->data, (const uint8_t *)x.p + off, k);
		}
		buf_free(&x);
	} else if (!strncmp(p, "qCRC:", 5)) {
		if (!parse_hex(parse_hex(p + 5, end, ',', &addr), end, 0, &len)) {
			reply_str(a, "E01");
			return;
		}
		snprintf(name, nl, "qCRC addr=0x%08llx len=%llu", (unsigned long long)addr, (unsigned long long)len);
		if (!s->prof.qcrc)
			return;
		if (addr > UINT32_MAX || !covered(s, (uint32_t)addr, len, -1)) {
			reply_str(a, s->prof.err_mem);
			return;
		}
		uint8_t *tmp = malloc(len ? len : 1);
		if (!tmp)
			die_oom();
		mem_copy(s, (uint32_t)addr, tmp, len, 0);
		buf_fmt(a->data, "C%08x", crc32_msb(0xffffffffu, tmp, len));
		free(tmp);
	} else if (!strncmp(p, "qRcmd,", 6)) {
		snprintf(name, nl, "qRcmd");
		handle_monitor(s, p + 6, n - 6, a);
	} else if (!strcmp(p, "qAttached")) {
		reply_str(a, "1");
	} else if (!strncmp(p, "qSymbol", 7)) {
		reply_str(a, "OK");
	}
	/* everything else: empty, unsupported */
}

/* A complete packet arrived with a good checksum. Returns -1 to hang up. */
static int on_packet(struct sim *s)
{
	s->seq++;
	char *p = s->body.p ? s->body.p : (char *)"";
	size_t n = s->body.len;
	char b[40];
	if (fault_at(s, F_DISCONNECT)) {
		logf_(s, "%lu fault disconnect-after (%s)", s->seq, brief(b, p, n));
		return -1;
	}
	if (fault_at(s, F_STALL)) {
		logf_(s, "%lu fault stall (%s): no ack, no reply", s->seq, brief(b, p, n));
		return 0;
	}
	if (fault_at(s, F_NAK)) {
		logf_(s, "%lu fault nak (%s)", s->seq, brief(b, p, n));
		send_bytes(s, "-", 1);
		return 0;
	}
	int drop_ack = fault_at(s, F_DROP_ACK) != NULL;
	int corrupt = fault_at(s, F_CORRUPT) != NULL;
	int error = fault_at(s, F_ERROR) != NULL;
	if (!s->noack && !drop_ack)
		send_bytes(s, "+", 1);
	struct buf data = { 0 };
	struct answer a = { .data = &data };
	char name[200];
	if (s->overlong) {
		snprintf(name, sizeof name, "%s", brief(b, p, n));
		buf_str(&data, s->prof.err_toolong);
		snprintf(a.note, sizeof a.note, "overlong packet (more than PacketSize=%u characters)",
			 s->prof.packet_size);
	} else if (error) {
		snprintf(name, sizeof name, "%s", brief(b, p, n));
		buf_str(&data, s->prof.err_flash);
		snprintf(a.note, sizeof a.note, "fault error");
	} else {
		handle_packet(s, p, n, &a, name, sizeof name);
	}
	if (!a.no_reply)
		put_packet(s, data.p ? data.p : "", data.len, a.rle, corrupt);
	if (!strcmp(name, "QStartNoAckMode") && data.len == 2)
		s->noack = 1;
	char shown[48];
	size_t k = 0;
	for (size_t i = 0; i < data.len && k < sizeof shown - 4; i++)
		shown[k++] = (data.p[i] >= 0x20 && data.p[i] < 0x7f) ? data.p[i] : '.';
	if (data.len > k)
		shown[k++] = '.', shown[k++] = '.', shown[k++] = '.';
	shown[k] = '\0';
	logf_(s, "%lu %s -> %s%s%s%s%s", s->seq, name,
	      a.no_reply ? "(no reply)" : data.len ? shown : "(empty)", a.note[0] ? " " : "", a.note,
	      drop_ack ? " [fault drop-ack]" : "", corrupt ? " [fault corrupt]" : "");
	buf_free(&data);
	return a.hangup ? -1 : 0;
}

/* Feed received bytes to the packet parser. Returns -1 to hang up. */
static int feed(struct sim *s, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		switch (s->state) {
		case 0:
			if (c == '$') {
				s->state = 1;
				s->body.len = 0;
				s->overlong = 0;
			} else if (c == '-' && !s->noack && s->last.len) {
				logf_(s, "nak: resending the last reply");
				send_bytes(s, s->last.p, s->last.len);
			} else if (c == 0x03) {
				logf_(s, "interrupt%s", s->running ? "" : " (already halted)");
				if (s->running || strcmp(s->prof.name, "plain")) {
					put_packet(s, s->running ? "T02" : s->prof.stop,
						   strlen(s->running ? "T02" : s->prof.stop), 0, 0);
					s->running = 0;
				}
			}
			break; /* '+' and anything else between packets: ignored */
		case 1:
			if (c == '#') {
				s->state = 2;
			} else if (c == '$') {
				s->body.len = 0; /* a new start: the old packet was garbage */
				s->overlong = 0;
			} else {
				/* QEMU drops what exceeds its buffer; we answer an error. */
				if (s->body.len >= s->prof.packet_size)
					s->overlong = 1;
				else
					buf_add(&s->body, &c, 1);
			}
			break;
		case 2:
			s->cs_hi = c;
			s->state = 3;
			break;
		case 3: {
			s->state = 0;
			unsigned sum = 0;
			for (size_t k = 0; k < s->body.len; k++)
				sum += (unsigned char)s->body.p[k];
			int hi = hexv(s->cs_hi), lo = hexv(c);
			if (!s->overlong && (hi < 0 || lo < 0 || (unsigned)(hi * 16 + lo) != (sum & 0xff))) {
				char b[40];
				logf_(s, "bad checksum (%s)", brief(b, s->body.p ? s->body.p : "", s->body.len));
				if (!s->noack)
					send_bytes(s, "-", 1);
				break;
			}
			if (on_packet(s) < 0)
				return -1;
			break;
		}
		}
	}
	return 0;
}

/* Serve one client until it leaves, a fault hangs up, or a signal. */
static void serve(struct sim *s, int in_fd, int out_fd)
{
	s->in_fd = in_fd;
	s->out_fd = out_fd;
	s->noack = 0;
	s->state = 0;
	s->last.len = 0;
	s->out.len = 0;
	s->running = 0;
	group_reset(s);
	logf_(s, "connect");
	unsigned char buf[65536];
	while (!s->stop) {
		struct pollfd pf[2] = { { .fd = in_fd, .events = POLLIN }, { .fd = s->sigfd, .events = POLLIN } };
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents) {
			s->stop = 1;
			break;
		}
		if (!pf[0].revents)
			continue;
		ssize_t k = read(in_fd, buf, sizeof buf);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k <= 0)
			break;
		int hang = feed(s, buf, (size_t)k);
		if (flush_out(s) < 0 || hang)
			break;
	}
	group_reset(s);
	logf_(s, "disconnect");
	save_all(s);
}

/* ------------------------------------------------------------ setup */

static int usage(int rc)
{
	fprintf(rc ? stderr : stdout,
		"usage: gdbsim (--port N [--port-file FILE] | --stdio) [--profile openocd|pyocd|bmp|plain]\n"
		"              [--flash START:SIZE:BLOCK]... [--ram START:SIZE]... [--state FILE] [--dump FILE]\n"
		"              [--log FILE] [--fault KIND:N]... [--packet-size N] [--no-ack on|off]\n"
		"              [--memory-map on|off] [--x on|off] [--qcrc on|off] [--rle on|off] [--max-clients N]\n"
		"faults: drop-ack:N corrupt:N nak:N disconnect-after:N stall:N error:N stall-done:MS\n");
	return rc;
}

static int parse_u32(const char *s, char **end, uint32_t *v)
{
	errno = 0;
	unsigned long long x = strtoull(s, end, 0);
	if (errno || *end == s || x > UINT32_MAX)
		return -1;
	*v = (uint32_t)x;
	return 0;
}

static int add_region(struct sim *s, const char *spec, int flash)
{
	struct region r = { 0 };
	char *e;
	uint32_t size;
	if (s->n_regions == MAX_REGIONS || parse_u32(spec, &e, &r.start) || *e != ':' ||
	    parse_u32(e + 1, &e, &size) || size == 0)
		return -1;
	r.size = size;
	if (flash) {
		if (*e != ':' || parse_u32(e + 1, &e, &r.block) || r.block == 0 || size % r.block)
			return -1;
	}
	if (*e || (uint64_t)r.start + r.size > (uint64_t)UINT32_MAX + 1)
		return -1;
	for (size_t i = 0; i < s->n_regions; i++) {
		const struct region *q = &s->regions[i];
		if ((uint64_t)r.start < (uint64_t)q->start + q->size && (uint64_t)q->start < (uint64_t)r.start + r.size)
			return -1;
	}
	if (!(r.mem = malloc(r.size)))
		return -1;
	memset(r.mem, flash ? 0xff : 0x00, r.size);
	/* keep address order (the dump concatenates flash regions in it) */
	size_t i = s->n_regions++;
	while (i > 0 && s->regions[i - 1].start > r.start) {
		s->regions[i] = s->regions[i - 1];
		i--;
	}
	s->regions[i] = r;
	return 0;
}

static int add_fault(struct sim *s, const char *spec)
{
	const char *colon = strchr(spec, ':');
	if (!colon || s->n_faults == MAX_FAULTS)
		return -1;
	for (size_t k = 0; k < sizeof fault_names / sizeof fault_names[0]; k++) {
		if (strlen(fault_names[k]) == (size_t)(colon - spec) && !strncmp(spec, fault_names[k], (size_t)(colon - spec))) {
			char *e;
			errno = 0;
			unsigned long n = strtoul(colon + 1, &e, 10);
			if (errno || *e || e == colon + 1 || (n == 0 && k != F_STALL_DONE))
				return -1;
			s->faults[s->n_faults++] = (struct fault){ .kind = (enum fault_kind)k, .n = n };
			return 0;
		}
	}
	return -1;
}

static int on_off(const char *v, int *out)
{
	if (!strcmp(v, "on"))
		*out = 1;
	else if (!strcmp(v, "off"))
		*out = 0;
	else
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct sim s = { .sigfd = -1 };
	const char *profile = "openocd", *port_file = NULL, *log_path = NULL;
	long port = -1;
	long max_clients = -1;
	int use_stdio = 0;
	int ov_noack = -1, ov_map = -1, ov_x = -1, ov_qcrc = -1;
	long ov_ps = -1;
	int rc = 0, lfd = -1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *e;
		if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			return usage(0);
		if (!strcmp(a, "--stdio")) {
			use_stdio = 1;
			continue;
		}
		if (!v)
			return usage(2);
		i++;
		if (!strcmp(a, "--port") && (port = strtol(v, &e, 10)) >= 0 && port < 65536 && !*e)
			continue;
		if (!strcmp(a, "--port-file"))
			port_file = v;
		else if (!strcmp(a, "--profile"))
			profile = v;
		else if (!strcmp(a, "--flash") || !strcmp(a, "--ram")) {
			if (add_region(&s, v, a[2] == 'f')) {
				fprintf(stderr, "gdbsim: bad or overlapping %s %s\n", a, v);
				return 2;
			}
		} else if (!strcmp(a, "--state"))
			s.state_path = v;
		else if (!strcmp(a, "--dump"))
			s.dump_path = v;
		else if (!strcmp(a, "--log"))
			log_path = v;
		else if (!strcmp(a, "--fault")) {
			if (add_fault(&s, v)) {
				fprintf(stderr, "gdbsim: bad fault %s\n", v);
				return 2;
			}
		} else if (!strcmp(a, "--packet-size") && (ov_ps = strtol(v, &e, 0)) >= 64 &&
			   ov_ps <= (long)MAX_PACKET_SIZE && !*e)
			continue;
		else if (!strcmp(a, "--no-ack") && !on_off(v, &ov_noack))
			continue;
		else if (!strcmp(a, "--memory-map") && !on_off(v, &ov_map))
			continue;
		else if (!strcmp(a, "--x") && !on_off(v, &ov_x))
			continue;
		else if (!strcmp(a, "--qcrc") && !on_off(v, &ov_qcrc))
			continue;
		else if (!strcmp(a, "--rle") && !on_off(v, &s.rle))
			continue;
		else if (!strcmp(a, "--max-clients") && (max_clients = strtol(v, &e, 10)) > 0 && !*e)
			continue;
		else
			return usage(2);
	}
	const struct profile *prof = NULL;
	for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; i++)
		if (!strcmp(profiles[i].name, profile))
			prof = &profiles[i];
	if (!prof || (port < 0) == !use_stdio) {
		fprintf(stderr, "gdbsim: %s\n", prof ? "give --port N or --stdio" : "unknown profile");
		return usage(2);
	}
	s.prof = *prof;
	if (ov_ps > 0)
		s.prof.packet_size = (unsigned)ov_ps;
	if (ov_noack >= 0)
		s.prof.no_ack = ov_noack;
	if (ov_map >= 0)
		s.prof.memory_map = ov_map;
	if (ov_x >= 0)
		s.prof.x = ov_x;
	if (ov_qcrc >= 0)
		s.prof.qcrc = ov_qcrc;
	if (s.n_regions == 0) /* an nRF51 (micro:bit) */
		if (add_region(&s, "0:0x40000:0x400", 1) || add_region(&s, "0x20000000:0x4000", 0))
			return 2;
	if (s.state_path && load_flash(&s, s.state_path))
		return 2;
	if (log_path && !(s.log = fopen(log_path, "ae"))) {
		fprintf(stderr, "gdbsim: cannot write %s: %s\n", log_path, strerror(errno));
		return 2;
	}

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	s.sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
	signal(SIGPIPE, SIG_IGN);
	pid_t parent = getppid();
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
		s.stop = 1; /* the parent is already gone */

	if (use_stdio) {
		serve(&s, 0, 1);
		goto out;
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sa;
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 4) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl)) {
		fprintf(stderr, "gdbsim: cannot listen on 127.0.0.1:%ld: %s\n", port, strerror(errno));
		rc = 1;
		goto out;
	}
	printf("gdbsim listening on 127.0.0.1:%u\n", ntohs(sa.sin_port));
	fflush(stdout);
	if (port_file) {
		char tmp[4096];
		snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%u\n", ntohs(sa.sin_port)) < 0 || fclose(f) || rename(tmp, port_file)) {
			fprintf(stderr, "gdbsim: cannot write %s\n", port_file);
			rc = 1;
			goto out;
		}
	}
	logf_(&s, "listening 127.0.0.1:%u profile=%s", ntohs(sa.sin_port), s.prof.name);
	while (!s.stop && max_clients != 0) {
		struct pollfd pf[2] = { { .fd = lfd, .events = POLLIN }, { .fd = s.sigfd, .events = POLLIN } };
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			break;
		if (!pf[0].revents)
			continue;
		int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0)
			continue;
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		serve(&s, cfd, cfd);
		close(cfd);
		if (max_clients > 0)
			max_clients--;
	}
out:
	save_all(&s);
	logf_(&s, "exit");
	if (lfd >= 0)
		close(lfd);
	if (s.sigfd >= 0)
		close(s.sigfd);
	if (s.log)
		fclose(s.log);
	group_reset(&s);
	free(s.pending);
	for (size_t i = 0; i < s.n_regions; i++)
		free(s.regions[i].mem);
	buf_free(&s.body);
	buf_free(&s.out);
	buf_free(&s.last);
	return rc;
}
