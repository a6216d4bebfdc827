/* serialsim model "openmv": an OpenMV Cam (M4/M7/H7) with its legacy USB-CDC
 * bootloader (/work/shared/protocols/openmv-bootloader.md), written from the
 * protocol notes and independent of mpfarm's client (runners/openmv_boot.c).
 *
 * App mode: USB 1209:ABD1 with the app's serial string. The console is
 * bridged to a MicroPython board (app=UNIX_SOCKET: mpsim, QEMU) except
 * while the client's baud rate is a USBDBG rate (12000000 or 921600): then
 * USBDBG commands are parsed; SYS_RESET (30 0C) and reset-to-bootloader
 * (30 0E) unplug the cam and, gap_ms later, plug the bootloader.
 *
 * Bootloader: 1209:ABD1, serial 000000000011 (hs=1: 000000000010). No START
 * within window_ms of the plug: it jumps to the app (logged). The stream is
 * cut into records by command word (a pty has no USB packet boundaries):
 * START/RESET/QUERY/QSPIF_LAYOUT/QSPIF_MEMTEST 4 bytes, ERASE 8 (zero words
 * after it are the fast-mode padding), WRITE 4 + chunk. A WRITE record of the
 * endpoint size, an unknown word (a WRITE of the wrong size shows up as
 * one), a write past the flash or onto bytes that are not erased is fatal:
 * the model logs it and stops answering, as __fatal_error() does. WRITE data
 * fills an endpoint-sized buffer programmed at the next address from the app
 * base; ERASE blocks everything for erase_ms; RESET pads the buffer with FF,
 * programs it and re-enumerates as the app.
 *
 * Options (key=value, comma separated):
 *   board=OPENMV2|OPENMV3|OPENMV4|OPENMV4P|OPENMVPT (OPENMV4)  hs=0|1 (0)
 *   version=1..3 (3)  chunk=N WRITE data bytes (ep - 8)  erase_ms (300)
 *   window_ms (1000)  gap_ms (200)  start=app|boot (app)  app=UNIX_SOCKET
 *   app_serial=STR (3473365C3036)  blank=0|1: empty firmware sectors (0:
 *   they hold an old firmware, so a write without an erase is fatal). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ssim.h"

#define KB 1024u
#define RX_MAX (1u << 20)
#define DBG_REPLY_MAX 65536u

enum { C_START = 0xabcd0001u, C_RESET = 0xabcd0002u, C_ERASE = 0xabcd0004u,
       C_WRITE = 0xabcd0008u, C_QUERY = 0xabcd0010u, C_QERASE = 0xabcd1004u,
       C_QWRITE = 0xabcd1008u, C_QLAYOUT = 0xabcd1010u, C_QMEMTEST = 0xabcd1020u };

struct mlayout {
	const char *name;
	unsigned n;                 /* sectors */
	unsigned small, small_kb, mid_kb, big_kb; /* `small` sectors of small_kb, one mid, the rest big */
	unsigned fs, fw, last;      /* FLASH_LAYOUT */
	int qspi;
};

/* From the notes' table (ST reference manuals for the sector sizes). */
static const struct mlayout mlayouts[] = {
	{ "OPENMV2", 12, 4, 16, 64, 128, 1, 4, 11, 0 },
	{ "OPENMV3", 12, 4, 32, 128, 256, 1, 4, 11, 0 },
	{ "OPENMV4", 16, 16, 128, 0, 0, 1, 2, 15, 0 },
	{ "OPENMV4P", 16, 16, 128, 0, 0, 1, 2, 15, 1 },
	{ "OPENMVPT", 16, 16, 128, 0, 0, 1, 2, 15, 1 },
};

#define FLASH_BASE 0x08000000u

enum state { S_APP, S_GONE, S_BOOT, S_ERASING, S_FATAL };
enum timer_kind { T_NONE, T_WINDOW, T_ERASE, T_PLUG };

struct omv {
	struct ssim_env *env;
	const struct mlayout *L;
	int hs, blank, to_boot_first;
	unsigned version, chunk, ep, erase_ms, window_ms, gap_ms;
	char app[256], app_serial[64];
	uint32_t sec_addr[17];      /* sector start addresses, [n] = flash end */
	uint8_t *flash;
	enum state st;
	enum timer_kind timer;
	int plug_boot;              /* what the pending T_PLUG plugs */
	int dbg, bridged;
	uint8_t *rx;
	size_t rx_len;
	int started, last_write;
	unsigned pad_left;          /* zero padding allowed after an ERASE */
	uint8_t wbuf[512];
	unsigned wlen;
	uint32_t waddr, lo, hi;     /* next program address; programmed range this session */
	unsigned n_start, n_write, n_erase, n_viol;
	long long plugged_at;
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static unsigned sector_kb(const struct mlayout *L, unsigned s)
{
	if (s < L->small)
		return L->small_kb;
	return s == L->small ? L->mid_kb : L->big_kb;
}

static uint32_t app_base(const struct omv *m)
{
	return m->sec_addr[m->L->fw];
}

/* Power-on content: a bootloader in sector 0, a filesystem, an old firmware. */
static uint8_t initial(const struct omv *m, uint32_t a)
{
	if (a < m->sec_addr[1])
		return (uint8_t)(0x5a ^ (a >> 3));
	if (a < app_base(m))
		return (uint8_t)(0x46 ^ (a >> 5));
	return m->blank ? 0xff : (uint8_t)(a >> 7);
}

static void get_id(const struct omv *m, int boot, struct ssim_usb_id *id)
{
	memset(id, 0, sizeof *id);
	id->vid = 0x1209;
	id->pid = 0xabd1;
	id->has_tty = 1;
	snprintf(id->manufacturer, sizeof id->manufacturer, "OpenMV");
	if (boot) {
		snprintf(id->serial, sizeof id->serial, "%s", m->hs ? "000000000010" : "000000000011");
		snprintf(id->product, sizeof id->product, "OpenMV Cam Bootloader");
	} else {
		snprintf(id->serial, sizeof id->serial, "%s", m->app_serial);
		snprintf(id->product, sizeof id->product, "OpenMV Virtual Comm Port in FS Mode");
	}
}

static void arm(struct omv *m, enum timer_kind k, unsigned ms)
{
	m->timer = k;
	m->env->set_timer(m->env, k == T_NONE ? 0 : m->env->now_ms() + ms);
}

static void unbridge(struct omv *m)
{
	if (m->bridged)
		m->env->bridge(m->env, NULL, 0);
	m->bridged = 0;
}

/* Leave the bus; gap_ms later come back as the bootloader or the app. */
static void replug(struct omv *m, int boot, const char *why)
{
	m->env->log(m->env, "unplug (%s); %s in %u ms", why, boot ? "bootloader" : "app",
		    m->gap_ms);
	unbridge(m);
	m->env->tx_flush(m->env);
	m->env->unplug(m->env);
	m->st = S_GONE;
	m->plug_boot = boot;
	m->rx_len = 0;
	arm(m, T_PLUG, m->gap_ms);
}

static void plug(struct omv *m, int boot)
{
	struct ssim_usb_id id;
	get_id(m, boot, &id);
	m->dbg = 0;
	m->rx_len = 0;
	m->plugged_at = m->env->now_ms();
	if (boot) {
		m->st = S_BOOT;
		m->started = 0;
		m->last_write = 0;
		m->pad_left = 0;
		m->wlen = 0;
		m->waddr = app_base(m);
		m->lo = m->hi = 0;
		m->env->log(m->env, "plug bootloader v%u (serial %s, %s, endpoint %u, WRITE record "
				    "%u bytes); START window %u ms",
			    m->version, id.serial, m->L->name, m->ep, m->chunk + 4, m->window_ms);
		arm(m, T_WINDOW, m->window_ms);
	} else {
		m->st = S_APP;
		m->env->log(m->env, "plug app (serial %s)", id.serial);
		arm(m, T_NONE, 0);
	}
	m->env->plug(m->env, &id);
}

static void fatal(struct omv *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fatal(struct omv *m, const char *fmt, ...)
{
	char why[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	m->n_viol++;
	m->env->log(m->env, "FATAL %s: __fatal_error, LED blinking, USB no longer answers", why);
	m->st = S_FATAL;
	m->rx_len = 0;
	arm(m, T_NONE, 0);
}

static void reply(struct omv *m, const uint32_t *w, unsigned n)
{
	uint8_t b[16];
	for (unsigned i = 0; i < n; i++)
		put_le32(b + 4 * i, w[i]);
	m->env->tx(m->env, b, 4 * n, 0);
}

/* Program n bytes at the next address; 0, or -1 after a fatal error. */
static int program(struct omv *m, const uint8_t *d, unsigned n)
{
	uint32_t a = m->waddr, end = m->sec_addr[m->L->n];
	if (a < app_base(m) || a + n > end) {
		fatal(m, "program 0x%08x+%u: outside the firmware sectors", (unsigned)a, n);
		return -1;
	}
	uint8_t *f = m->flash + (a - FLASH_BASE);
	for (unsigned i = 0; i < n; i++)
		if (f[i] != 0xff) {
			fatal(m, "program 0x%08x: byte 0x%02x not erased (flash error)",
			      (unsigned)(a + i), f[i]);
			return -1;
		}
	memcpy(f, d, n);
	if (!m->lo)
		m->lo = a;
	m->hi = a + n;
	m->waddr += n;
	return 0;
}

static void do_erase(struct omv *m, uint32_t s)
{
	m->n_erase++;
	if (s >= m->L->n) {
		m->env->log(m->env, "ERASE sector %u: no such sector (0-%u), ignored", (unsigned)s,
			    m->L->n - 1);
		return;
	}
	if (s < m->L->fs) {
		m->n_viol++;
		m->env->log(m->env, "VIOLATION ERASE sector %u: the bootloader's own sector, refused",
			    (unsigned)s);
		return;
	}
	memset(m->flash + (m->sec_addr[s] - FLASH_BASE), 0xff, sector_kb(m->L, s) * KB);
	m->env->log(m->env, "ERASE sector %u (0x%08x, %u KiB%s%s), busy %u ms", (unsigned)s,
		    (unsigned)m->sec_addr[s], sector_kb(m->L, s),
		    s < m->L->fw ? ", filesystem" : "", m->started ? "" : ", before START",
		    m->erase_ms);
	m->pad_left = m->ep - 8;
	m->st = S_ERASING;
	arm(m, T_ERASE, m->erase_ms);
}

static void do_write(struct omv *m, const uint8_t *d, unsigned n)
{
	m->n_write++;
	if (!m->started) {
		m->n_viol++;
		m->env->log(m->env, "VIOLATION WRITE %u bytes before START: ignored (the real "
				    "bootloader writes at a stale offset)", n);
		return;
	}
	m->env->log(m->env, "WRITE %u bytes -> 0x%08x", n, (unsigned)(m->waddr + m->wlen));
	while (n) {
		unsigned k = m->ep - m->wlen < n ? m->ep - m->wlen : n;
		memcpy(m->wbuf + m->wlen, d, k);
		m->wlen += k;
		d += k;
		n -= k;
		if (m->wlen == m->ep) {
			m->wlen = 0;
			if (program(m, m->wbuf, m->ep))
				return;
		}
	}
}

static void do_reset(struct omv *m)
{
	if (m->wlen) {
		memset(m->wbuf + m->wlen, 0xff, m->ep - m->wlen);
		m->wlen = 0;
		if (program(m, m->wbuf, m->ep))
			return;
	}
	if (m->hi)
		m->env->log(m->env, "RESET: programmed 0x%08x-0x%08x (%u bytes); starting the app",
			    (unsigned)m->lo, (unsigned)m->hi - 1, (unsigned)(m->hi - m->lo));
	else
		m->env->log(m->env, "RESET: nothing programmed; starting the app");
	replug(m, 0, "RESET");
}

/* Cut and run bootloader records while not busy. */
static void boot_process(struct omv *m)
{
	size_t off = 0;
	while (m->st == S_BOOT && m->rx_len - off >= 4) {
		const uint8_t *p = m->rx + off;
		uint32_t w = le32(p);
		size_t avail = m->rx_len - off;
		if (w == 0 && m->pad_left >= 4) { /* fast-mode ERASE padding */
			m->pad_left -= 4;
			off += 4;
			continue;
		}
		m->pad_left = 0;
		int was_write = m->last_write;
		m->last_write = 0;
		if (w == C_START) {
			off += 4;
			m->n_start++;
			m->started = 1;
			m->wlen = 0;
			m->waddr = app_base(m);
			if (m->timer == T_WINDOW) {
				m->env->log(m->env, "START %lld ms after the plug -> v%u",
					    m->env->now_ms() - m->plugged_at, m->version);
				arm(m, T_NONE, 0);
			} else {
				m->env->log(m->env, "START -> v%u", m->version);
			}
			uint32_t v = 0xabcd0000u | m->version;
			reply(m, &v, 1);
		} else if (w == C_RESET) {
			off += 4;
			m->env->log(m->env, "RESET");
			do_reset(m);
		} else if (w == C_QUERY && m->version >= 2) {
			off += 4;
			uint32_t r[3] = { m->L->fs, m->L->fw, m->L->last };
			m->env->log(m->env, "QUERY -> {%u, %u, %u}", m->L->fs, m->L->fw, m->L->last);
			reply(m, r, 3);
		} else if (w == C_QLAYOUT && m->version >= 3 && m->L->qspi) {
			off += 4;
			uint32_t r[3] = { 0, 511, 65536 };
			m->env->log(m->env, "QSPIF_LAYOUT -> {0, 511, 65536}");
			reply(m, r, 3);
		} else if (w == C_QMEMTEST && m->version >= 3 && m->L->qspi) {
			off += 4;
			uint32_t r = 1;
			m->env->log(m->env, "QSPIF_MEMTEST -> 1");
			reply(m, &r, 1);
		} else if (w == C_ERASE || (w == C_QERASE && m->version >= 3 && m->L->qspi)) {
			if (avail < 8)
				break;
			off += 8;
			if (w == C_ERASE)
				do_erase(m, le32(p + 4));
			else
				m->env->log(m->env, "QSPIF_ERASE block %u (not modelled)",
					    (unsigned)le32(p + 4));
		} else if (w == C_WRITE) {
			if (m->chunk + 4 == m->ep) {
				fatal(m, "WRITE record of %u bytes = the endpoint size (a host adds a "
					 "zero-length packet, parsed from stale data)",
				      m->ep);
				break;
			}
			if (avail < 4 + m->chunk)
				break;
			off += 4 + m->chunk;
			m->last_write = 1;
			do_write(m, p + 4, m->chunk);
		} else {
			fatal(m, "unknown command word 0x%08x%s", (unsigned)w,
			      was_write ? " right after a WRITE record: that WRITE was not 4 + chunk "
					  "bytes"
					: "");
			break;
		}
	}
	if (m->st == S_FATAL || m->st == S_GONE) {
		m->rx_len = 0;
		return;
	}
	memmove(m->rx, m->rx + off, m->rx_len - off);
	m->rx_len -= off;
}

/* USBDBG in the app: 30 OP LEN32, OP with bit 7 = device-to-host data. */
static void app_process(struct omv *m)
{
	size_t off = 0;
	while (m->st == S_APP && m->rx_len - off >= 6) {
		const uint8_t *p = m->rx + off;
		if (p[0] != 0x30) {
			off++;
			continue;
		}
		uint8_t op = p[1];
		uint32_t len = le32(p + 2);
		if (op == 0x0c || op == 0x0e) {
			m->env->log(m->env, "app: USBDBG %s (30 %02X)",
				    op == 0x0c ? "SYS_RESET" : "reset to bootloader", op);
			replug(m, 1, "USBDBG reset");
			return;
		}
		if (op & 0x80) {
			uint8_t z[256] = { 0 };
			m->env->log(m->env, "app: USBDBG 0x%02x, %u reply bytes (zeros)", op,
				    (unsigned)len);
			for (uint32_t left = len < DBG_REPLY_MAX ? len : DBG_REPLY_MAX; left;) {
				uint32_t k = left < sizeof z ? left : (uint32_t)sizeof z;
				m->env->tx(m->env, z, k, 0);
				left -= k;
			}
			off += 6;
		} else {
			if (m->rx_len - off < 6 + (size_t)len && len < RX_MAX)
				break;
			m->env->log(m->env, "app: USBDBG 0x%02x with %u bytes", op, (unsigned)len);
			off = len < RX_MAX ? off + 6 + len : m->rx_len;
		}
	}
	if (m->st != S_APP) {
		m->rx_len = 0;
		return;
	}
	memmove(m->rx, m->rx + off, m->rx_len - off);
	m->rx_len -= off;
}

static void *omv_create(const char *args, struct ssim_env *env, struct ssim_usb_id *id, char *err,
			size_t errlen)
{
	char board[32] = "OPENMV4", startv[16] = "app";
	const struct mlayout *L = NULL;
	ssim_arg(args, "board", board, sizeof board);
	ssim_arg(args, "start", startv, sizeof startv);
	for (size_t i = 0; i < sizeof mlayouts / sizeof mlayouts[0]; i++)
		if (!strcasecmp(board, mlayouts[i].name))
			L = &mlayouts[i];
	if (!L) {
		snprintf(err, errlen, "openmv: board=%s: use OPENMV2, OPENMV3, OPENMV4, OPENMV4P or "
				      "OPENMVPT", board);
		return NULL;
	}
	struct omv *m = calloc(1, sizeof *m);
	if (!m || !(m->rx = malloc(RX_MAX))) {
		if (m)
			free(m);
		snprintf(err, errlen, "openmv: out of memory");
		return NULL;
	}
	m->env = env;
	m->L = L;
	m->hs = ssim_arg_long(args, "hs", 0) != 0;
	m->ep = m->hs ? 512 : 64;
	m->version = (unsigned)ssim_arg_long(args, "version", 3);
	m->chunk = (unsigned)ssim_arg_long(args, "chunk", (long)m->ep - 8);
	m->erase_ms = (unsigned)ssim_arg_long(args, "erase_ms", 300);
	m->window_ms = (unsigned)ssim_arg_long(args, "window_ms", 1000);
	m->gap_ms = (unsigned)ssim_arg_long(args, "gap_ms", 200);
	m->blank = ssim_arg_long(args, "blank", 0) != 0;
	snprintf(m->app_serial, sizeof m->app_serial, "3473365C3036");
	ssim_arg(args, "app_serial", m->app_serial, sizeof m->app_serial);
	ssim_arg(args, "app", m->app, sizeof m->app);
	if (m->version < 1 || m->version > 3 || m->chunk < 4 || m->chunk % 4 || m->chunk > 1024 ||
	    (strcmp(startv, "app") && strcmp(startv, "boot"))) {
		snprintf(err, errlen, "openmv: version=1..3, chunk=4..1024 (a multiple of 4), "
				      "start=app|boot");
		free(m->rx);
		free(m);
		return NULL;
	}
	uint32_t a = FLASH_BASE;
	for (unsigned s = 0; s <= L->n; s++) {
		m->sec_addr[s] = a;
		if (s < L->n)
			a += sector_kb(L, s) * KB;
	}
	m->flash = malloc(a - FLASH_BASE);
	if (!m->flash) {
		snprintf(err, errlen, "openmv: out of memory");
		free(m->rx);
		free(m);
		return NULL;
	}
	for (uint32_t x = FLASH_BASE; x < a; x++)
		m->flash[x - FLASH_BASE] = initial(m, x);
	int boot = !strcmp(startv, "boot");
	get_id(m, boot, id);
	env->log(env, "openmv %s: %u sectors, app base 0x%08x, FLASH_LAYOUT {%u, %u, %u}, erase %u ms",
		 L->name, L->n, (unsigned)app_base(m), L->fs, L->fw, L->last, m->erase_ms);
	m->plugged_at = env->now_ms();
	if (boot) {
		m->st = S_BOOT;
		m->waddr = app_base(m);
		env->log(env, "bootloader v%u (serial %s, endpoint %u, WRITE record %u bytes); START "
			      "window %u ms",
			 m->version, id->serial, m->ep, m->chunk + 4, m->window_ms);
		arm(m, T_WINDOW, m->window_ms);
	} else {
		m->st = S_APP;
	}
	return m;
}

static void omv_open(void *p)
{
	struct omv *m = p;
	m->env->log(m->env, "open (%s)", m->st == S_APP ? "app" : m->st == S_FATAL ? "dead" : "bootloader");
	if (m->st == S_APP && m->app[0] && !m->dbg && !m->bridged)
		m->bridged = m->env->bridge(m->env, m->app, 0) == 0;
}

static void omv_close(void *p)
{
	struct omv *m = p;
	m->env->log(m->env, "close");
}

static void omv_baud(void *p, unsigned baud)
{
	struct omv *m = p;
	if (m->st != S_APP)
		return;
	int dbg = baud == 12000000 || baud == 921600;
	if (dbg == m->dbg)
		return;
	m->dbg = dbg;
	m->rx_len = 0;
	m->env->log(m->env, "app: baud %u: %s", baud, dbg ? "USBDBG mode" : "console");
	if (dbg)
		unbridge(m);
	else if (m->app[0] && m->env->client_open(m->env))
		m->bridged = m->env->bridge(m->env, m->app, 0) == 0;
}

static void omv_lines(void *p, int dtr, int rts)
{
	(void)p;
	(void)dtr;
	(void)rts;
}

static void omv_rx(void *p, const uint8_t *buf, size_t len, unsigned rx_baud)
{
	struct omv *m = p;
	(void)rx_baud;
	if (m->st == S_FATAL || m->st == S_GONE)
		return;
	if (m->st == S_APP && !m->dbg) {
		m->env->log(m->env, "app console: %zu bytes, no board bridged", len);
		return;
	}
	if (len > RX_MAX - m->rx_len) {
		fatal(m, "host queued more than %u bytes", RX_MAX);
		return;
	}
	memcpy(m->rx + m->rx_len, buf, len);
	m->rx_len += len;
	if (m->st == S_APP)
		app_process(m);
	else if (m->st == S_BOOT)
		boot_process(m);
	/* S_ERASING: USB is blocked; the bytes wait for the erase to end. */
}

static void omv_timer(void *p)
{
	struct omv *m = p;
	enum timer_kind k = m->timer;
	m->timer = T_NONE;
	if (k == T_PLUG && m->st == S_GONE) {
		plug(m, m->plug_boot);
	} else if (k == T_ERASE && m->st == S_ERASING) {
		m->st = S_BOOT;
		boot_process(m);
	} else if (k == T_WINDOW && m->st == S_BOOT && !m->started) {
		m->env->log(m->env, "bootloader: no START within %u ms of the plug: jumping to the app",
			    m->window_ms);
		replug(m, 0, "START window missed");
	}
}

static void omv_dump(void *p, const char *dir, const char *dev)
{
	struct omv *m = p;
	char path[4096];
	uint32_t lo = app_base(m), hi = m->sec_addr[m->L->n];
	snprintf(path, sizeof path, "%s/%s.flash", dir, dev);
	FILE *f = fopen(path, "wb");
	int ok = f && fwrite(m->flash + (lo - FLASH_BASE), 1, hi - lo, f) == hi - lo;
	if (f && fclose(f))
		ok = 0;
	int boot_ok = 1, fs_ok = 1;
	for (uint32_t a = FLASH_BASE; a < lo; a++)
		if (m->flash[a - FLASH_BASE] != initial(m, a))
			*(a < m->sec_addr[1] ? &boot_ok : &fs_ok) = 0;
	m->env->log(m->env, "dump %s: firmware sectors %u-%u at 0x%08x-0x%08x (%u bytes)%s; sector 0 "
			    "%s; filesystem sectors %u-%u %s; %u START, %u ERASE, %u WRITE, %u "
			    "violations",
		    path, m->L->fw, m->L->n - 1, (unsigned)lo, (unsigned)hi - 1, (unsigned)(hi - lo),
		    ok ? "" : " WRITE FAILED", boot_ok ? "intact" : "CHANGED", m->L->fs, m->L->fw - 1,
		    fs_ok ? "intact" : "CHANGED", m->n_start, m->n_erase, m->n_write, m->n_viol);
}

static void omv_destroy(void *p)
{
	struct omv *m = p;
	if (!m)
		return;
	free(m->flash);
	free(m->rx);
	free(m);
}

const struct ssim_model_ops ssim_model_openmv = {
	.name = "openmv",
	.help = "OpenMV Cam app + legacy CDC bootloader: board=OPENMV4 hs=0 version=3 chunk=56 "
		"erase_ms=300 window_ms=1000 gap_ms=200 start=app|boot app=SOCK app_serial=S blank=0",
	.create = omv_create,
	.open = omv_open,
	.close = omv_close,
	.baud = omv_baud,
	.lines = omv_lines,
	.rx = omv_rx,
	.timer = omv_timer,
	.dump = omv_dump,
	.destroy = omv_destroy,
};
