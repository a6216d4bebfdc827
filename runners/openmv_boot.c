/* mpfarm: the OpenMV legacy bootloader protocol (see openmv_boot.h). */
#include "openmv_boot.h"
#include "le.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define K 1024u

/* Sector sizes from the ST reference manuals (RM0090, RM0410, RM0433); app
 * bases and FLASH_LAYOUT from the boards' omv_bootconfig.h. */
static const struct runner_openmv_layout layouts[] = {
	{ "OPENMV2", "OpenMV Cam M4 (STM32F427)", "stm32f4", 0x08000000u, 12,
	  { 16 * K, 16 * K, 16 * K, 16 * K, 64 * K, 128 * K, 128 * K, 128 * K, 128 * K, 128 * K,
	    128 * K, 128 * K },
	  1, 4, 11, 0x08010000u },
	{ "OPENMV3", "OpenMV Cam M7 (STM32F765)", "stm32f7", 0x08000000u, 12,
	  { 32 * K, 32 * K, 32 * K, 32 * K, 128 * K, 256 * K, 256 * K, 256 * K, 256 * K, 256 * K,
	    256 * K, 256 * K },
	  1, 4, 11, 0x08020000u },
#define H7_SECTORS                                                                           \
	{ 128 * K, 128 * K, 128 * K, 128 * K, 128 * K, 128 * K, 128 * K, 128 * K, 128 * K,  \
	  128 * K, 128 * K, 128 * K, 128 * K, 128 * K, 128 * K, 128 * K }
	{ "OPENMV4", "OpenMV Cam H7 (STM32H743)", "stm32h7", 0x08000000u, 16, H7_SECTORS, 1, 2, 15,
	  0x08040000u },
	{ "OPENMV4P", "OpenMV Cam H7 Plus (STM32H743)", "stm32h7", 0x08000000u, 16, H7_SECTORS, 1, 2,
	  15, 0x08040000u },
	{ "OPENMV4_PRO", "OpenMV Pure Thermal / H7 Pro (STM32H743)", "stm32h7", 0x08000000u, 16,
	  H7_SECTORS, 1, 2, 15, 0x08040000u },
	{ "OPENMVPT", "OpenMV Pure Thermal (STM32H743)", "stm32h7", 0x08000000u, 16, H7_SECTORS, 1,
	  2, 15, 0x08040000u },
#undef H7_SECTORS
};

#define N_LAYOUTS (sizeof layouts / sizeof layouts[0])
#define START_WINDOW_MS 10  /* OpenMV IDE: collect the reply for 10 ms ... */
#define START_RESEND_MS 2   /* ... re-sending START every 2 ms */
#define WRITE_TIMEOUT_MS 1000
#define DRAIN_QUIET_MS 20
#define RESET_PAUSE_MS 5

/* Compare ignoring case, '-' and '_'. */
static int name_eq(const char *a, const char *b)
{
	for (;;) {
		while (*a == '-' || *a == '_')
			a++;
		while (*b == '-' || *b == '_')
			b++;
		if (!*a || !*b)
			return !*a && !*b;
		if (tolower((unsigned char)*a++) != tolower((unsigned char)*b++))
			return 0;
	}
}

const struct runner_openmv_layout *runner_openmv_layout_find(const char *name)
{
	for (size_t i = 0; name && i < N_LAYOUTS; i++)
		if (name_eq(layouts[i].name, name))
			return &layouts[i];
	return NULL;
}

const struct runner_openmv_layout *runner_openmv_layout_for_mcu(const char *mcu)
{
	for (size_t i = 0; mcu && i < N_LAYOUTS; i++)
		if (!strncasecmp(mcu, layouts[i].mcu, strlen(layouts[i].mcu)))
			return &layouts[i];
	return NULL;
}

void runner_openmv_layout_names(char *out, size_t len)
{
	size_t k = 0;
	if (len)
		out[0] = '\0';
	for (size_t i = 0; i < N_LAYOUTS && k < len; i++) {
		int w = snprintf(out + k, len - k, "%s%s", i ? ", " : "", layouts[i].name);
		if (w < 0)
			break;
		k += (size_t)w;
	}
}

uint32_t runner_openmv_sector_addr(const struct runner_openmv_layout *l, unsigned sector)
{
	uint32_t a = l->flash_base;
	for (unsigned i = 0; i < sector && i < l->n_sectors; i++)
		a += l->sector_size[i];
	return a;
}

static unsigned sector_of(const struct runner_openmv_layout *l, uint32_t addr)
{
	unsigned s = 0;
	while (s + 1 < l->n_sectors && runner_openmv_sector_addr(l, s + 1) <= addr)
		s++;
	return s;
}

static uint32_t round_up(uint32_t v, uint32_t m)
{
	return (v + m - 1) / m * m;
}

int runner_openmv_plan(struct runner_openmv_plan *out, const struct runner_openmv_layout *l,
		       const unsigned fl[3], const struct farm_image *img, int erase_fs, unsigned ep,
		       struct farm_err *e)
{
	memset(out, 0, sizeof *out);
	if (fl[0] < 1 || fl[0] > fl[1] || fl[1] > fl[2] || fl[2] >= l->n_sectors)
		return farm_err_set(e, FARM_EPROTO,
				    "FLASH_LAYOUT {%u, %u, %u} does not fit the %u sectors of %s "
				    "(set flash: layout: to the board's model)",
				    fl[0], fl[1], fl[2], l->n_sectors, l->name);
	if (runner_openmv_sector_addr(l, fl[1]) != l->app_base)
		return farm_err_set(e, FARM_EPROTO,
				    "the bootloader's firmware starts at sector %u (0x%08x), layout %s "
				    "expects 0x%08x: set flash: layout: to the board's model",
				    fl[1], (unsigned)runner_openmv_sector_addr(l, fl[1]), l->name,
				    (unsigned)l->app_base);
	if (!img || img->n_segs == 0)
		return farm_err_set(e, FARM_EINVAL, "empty image");
	uint32_t shift = 0;
	if (img->format == FARM_IMG_BIN && img->segs[0].addr == 0)
		shift = l->app_base; /* a raw firmware.bin without a base goes to the app base */
	uint64_t lo = (uint64_t)img->segs[0].addr + shift;
	const struct farm_image_segment *z = &img->segs[img->n_segs - 1];
	uint64_t hi = (uint64_t)z->addr + shift + z->len;
	uint64_t area_end = (uint64_t)runner_openmv_sector_addr(l, fl[2]) + l->sector_size[fl[2]];
	if (lo != l->app_base)
		return farm_err_set(e, FARM_EINVAL,
				    "the image starts at 0x%08llx; the %s bootloader writes firmware "
				    "from 0x%08x (use a firmware.bin built for this board, or base: 0x%08x)",
				    (unsigned long long)lo, l->name, (unsigned)l->app_base,
				    (unsigned)l->app_base);
	unsigned chunk = ep - 8; /* WRITE packets of ep - 4 bytes: never the endpoint size */
	uint64_t len = round_up((uint32_t)(hi - lo), chunk);
	uint64_t programmed = round_up((uint32_t)len, ep); /* RESET pads the last buffer */
	if (hi > area_end || lo + programmed > area_end)
		return farm_err_set(e, FARM_EINVAL,
				    "the image is %llu bytes (%llu with the bootloader's padding); the "
				    "%s firmware sectors %u-%u (0x%08x-0x%08llx) hold %llu",
				    (unsigned long long)(hi - lo), (unsigned long long)programmed,
				    l->name, fl[1], fl[2], (unsigned)l->app_base,
				    (unsigned long long)area_end - 1,
				    (unsigned long long)(area_end - l->app_base));
	out->base = l->app_base;
	out->data_len = (uint32_t)(hi - lo);
	out->len = (uint32_t)len;
	out->chunk = chunk;
	out->first = erase_fs ? fl[0] : fl[1];
	out->last = sector_of(l, (uint32_t)(lo + programmed - 1));
	return 0;
}

void runner_openmv_cfg_default(struct runner_openmv_cfg *c)
{
	memset(c, 0, sizeof *c);
	c->start_timeout_ms = 1000;
	c->erase_delay_ms = 2000;
	c->erase_timeout_ms = 10000;
	c->write_delay_ms = 1;
	c->sync_every = 32;
	c->reply_timeout_ms = 5000;
}

/* ---- the session ---- */

struct sess {
	struct farm_transport *t;
	const struct runner_openmv_cfg *c;
	unsigned version;
	unsigned fl[3];
	unsigned ep;
};

static void slog(const struct sess *s, const char *fmt, ...) FARM_PRINTF(2, 3);
static void slog(const struct sess *s, const char *fmt, ...)
{
	if (!s->c->log)
		return;
	char line[512];
	int k = snprintf(line, sizeof line, "openmv: ");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + k, sizeof line - (size_t)k, fmt, ap);
	va_end(ap);
	s->c->log(s->c->log_payload, line);
}

static int cancelled(const struct sess *s, struct farm_err *e)
{
	if (s->c->cancel && *s->c->cancel)
		return farm_err_set(e, FARM_EINTR, "interrupted");
	return 0;
}

static int pause_ms(const struct sess *s, unsigned ms, struct farm_err *e)
{
	long long end = farm_now_ms() + ms;
	for (;;) {
		int rc = cancelled(s, e);
		if (rc)
			return rc;
		long long left = end - farm_now_ms();
		if (left <= 0)
			return 0;
		struct timespec ts = { 0, (left > 50 ? 50 : left) * 1000000L };
		nanosleep(&ts, NULL);
	}
}

/* One command = one write call = one USB transfer. */
static int send(struct sess *s, const void *buf, size_t len, struct farm_err *e)
{
	return farm_transport_write(s->t, buf, len, WRITE_TIMEOUT_MS, e);
}

static int send_cmd(struct sess *s, uint32_t cmd, struct farm_err *e)
{
	uint8_t b[4];
	farm_put_le32(b, cmd);
	return send(s, b, sizeof b, e);
}

/* Exactly len bytes within timeout_ms; *got tells how many came. */
static int read_n(struct sess *s, uint8_t *buf, size_t len, size_t *got, unsigned timeout_ms,
		  struct farm_err *e)
{
	long long end = farm_now_ms() + timeout_ms;
	*got = 0;
	while (*got < len) {
		int rc = cancelled(s, e);
		if (rc)
			return rc;
		long long left = end - farm_now_ms();
		if (left <= 0)
			return 0;
		size_t n = 0;
		rc = farm_transport_read(s->t, buf + *got, len - *got, &n, (int)(left > 50 ? 50 : left),
					 e);
		if (rc)
			return rc;
		*got += n;
	}
	return 0;
}

/* Discard what arrives until DRAIN_QUIET_MS of silence (extra START replies). */
static int drain(struct sess *s, struct farm_err *e)
{
	uint8_t junk[64];
	long long end = farm_now_ms() + 500;
	while (farm_now_ms() < end) {
		size_t n = 0;
		int rc = farm_transport_read(s->t, junk, sizeof junk, &n, DRAIN_QUIET_MS, e);
		if (rc)
			return rc;
		if (n == 0)
			return 0;
	}
	return 0;
}

static int start(struct sess *s, struct farm_err *e)
{
	uint8_t buf[64];
	size_t have = 0, got = 0;
	unsigned sent = 0, odd = 0;
	long long t0 = farm_now_ms(), end = t0 + s->c->start_timeout_ms;
	int rc;
	while (farm_now_ms() < end) {
		/* One IDE window: START, then collect for 10 ms, re-sending every 2 ms. */
		long long wend = farm_now_ms() + START_WINDOW_MS;
		have = 0;
		while (farm_now_ms() < wend) {
			if ((rc = cancelled(s, e)))
				return rc;
			if ((rc = send_cmd(s, RUNNER_OPENMV_CMD_START, e)))
				goto fail;
			sent++;
			long long next = farm_now_ms() + START_RESEND_MS;
			while (farm_now_ms() < next) {
				rc = farm_transport_read(s->t, buf + have, sizeof buf - have, &got, 1, e);
				if (rc)
					goto fail;
				have += got;
				size_t i = 0;
				for (; i + 4 <= have; i += 4) {
					uint32_t w = farm_le32(buf + i);
					if (w >= RUNNER_OPENMV_CMD_START && w <= 0xabcd0003u) {
						s->version = w & 0xf;
						slog(s, "START: bootloader v%u after %lld ms (%u START sent)",
						     s->version, farm_now_ms() - t0, sent);
						return drain(s, e);
					}
					odd++;
				}
				memmove(buf, buf + i, have - i);
				have -= i;
			}
		}
	}
	return farm_err_set(e, FARM_ETIMEDOUT,
			    "START: no bootloader version word in %u ms (%u START sent, %u other "
			    "words): the bootloader gives a client 1 s after it enumerates, then "
			    "starts the app; check flash: layout and the USB cable, then retry",
			    s->c->start_timeout_ms, sent, odd);
fail:
	if (rc == FARM_ECLOSED)
		return farm_err_set(e, FARM_ECLOSED,
				    "START: the bootloader's port went away before it answered (it "
				    "left its 1 s window and started the app?): retry, and open the "
				    "port sooner after the bootloader appears");
	return farm_err_prefix(e, "START");
}

static int query(struct sess *s, unsigned timeout_ms, unsigned out[3], const char *when,
		 struct farm_err *e)
{
	uint8_t r[12];
	size_t got = 0;
	int rc = send_cmd(s, RUNNER_OPENMV_CMD_QUERY, e);
	if (rc == 0)
		rc = read_n(s, r, sizeof r, &got, timeout_ms, e);
	if (rc)
		return farm_err_prefix(e, "FLASH_LAYOUT query %s", when);
	if (got < sizeof r)
		return farm_err_set(e, FARM_ETIMEDOUT,
				    "FLASH_LAYOUT query %s: %zu of 12 reply bytes in %u ms: the "
				    "bootloader stopped answering (a flash error halts it, LED "
				    "blinking): power-cycle the board and flash again",
				    when, got, timeout_ms);
	for (int i = 0; i < 3; i++)
		out[i] = farm_le32(r + 4 * i);
	return 0;
}

static int erase(struct sess *s, const struct runner_openmv_plan *p, runner_progress_fn fn,
		 void *payload, struct farm_err *e)
{
	const struct runner_openmv_layout *l = s->c->layout;
	uint64_t total = 0, done = 0;
	for (unsigned i = p->first; i <= p->last; i++)
		total += l->sector_size[i];
	int sync = s->c->fast && s->version >= 2;
	if (s->c->fast && !sync)
		slog(s, "v1 bootloader has no FLASH_LAYOUT: safe erase delays");
	if (fn)
		fn(payload, "erase", 0, total);
	for (unsigned i = p->first; i <= p->last; i++) {
		uint8_t b[8];
		unsigned fl[3];
		farm_put_le32(b, RUNNER_OPENMV_CMD_ERASE);
		farm_put_le32(b + 4, i);
		int rc = send(s, b, sizeof b, e);
		if (rc == 0 && sync) {
			char when[64];
			snprintf(when, sizeof when, "after erasing sector %u", i);
			rc = query(s, s->c->erase_timeout_ms, fl, when, e);
		} else if (rc == 0) {
			rc = pause_ms(s, s->c->erase_delay_ms, e);
		}
		if (rc)
			return farm_err_prefix(e, "erasing sector %u (0x%08x)", i,
					       (unsigned)runner_openmv_sector_addr(l, i));
		done += l->sector_size[i];
		if (fn)
			fn(payload, "erase", done, total);
	}
	return 0;
}

static int write_all(struct sess *s, const struct runner_openmv_plan *p, const uint8_t *data,
		     runner_progress_fn fn, void *payload, struct farm_err *e)
{
	uint8_t pkt[512];
	unsigned n = 0, fl[3];
	int sync = s->c->fast && s->version >= 2;
	if (fn)
		fn(payload, "write", 0, p->data_len);
	for (uint32_t off = 0; off < p->len; off += p->chunk) {
		farm_put_le32(pkt, RUNNER_OPENMV_CMD_WRITE);
		memcpy(pkt + 4, data + off, p->chunk);
		int rc = send(s, pkt, 4 + p->chunk, e);
		if (rc == 0 && sync && ++n % s->c->sync_every == 0) {
			char when[64];
			snprintf(when, sizeof when, "after %u bytes", (unsigned)(off + p->chunk));
			rc = query(s, s->c->reply_timeout_ms, fl, when, e);
		} else if (rc == 0 && !sync && s->c->write_delay_ms) {
			rc = pause_ms(s, s->c->write_delay_ms, e);
		} else if (rc == 0) {
			rc = cancelled(s, e);
		}
		if (rc)
			return farm_err_prefix(e, "writing at 0x%08x", (unsigned)(p->base + off));
		if (fn)
			fn(payload, "write", off + p->chunk < p->data_len ? off + p->chunk : p->data_len,
			   p->data_len);
	}
	return 0;
}

int runner_openmv_flash(struct farm_transport *t, const struct runner_openmv_cfg *c,
			const struct farm_image *img, runner_progress_fn fn, void *payload,
			struct farm_err *e)
{
	struct sess s = { .t = t, .c = c, .ep = c->hs ? 512 : 64 };
	const struct runner_openmv_layout *l = c->layout;
	struct runner_openmv_plan p;
	uint8_t *data = NULL;
	unsigned fl[3] = { l->fs_start, l->fw_start, l->last };
	/* The gate before anything is sent: the image must fit the default layout. */
	int rc = runner_openmv_plan(&p, l, fl, img, c->erase_fs, s.ep, e);
	if (rc)
		return rc;
	if ((rc = start(&s, e)))
		return rc;
	if (s.version >= 2) {
		if ((rc = query(&s, c->reply_timeout_ms, fl, "after START", e)))
			return rc;
		slog(&s, "FLASH_LAYOUT {%u, %u, %u}", fl[0], fl[1], fl[2]);
		if ((rc = runner_openmv_plan(&p, l, fl, img, c->erase_fs, s.ep, e)))
			return farm_err_prefix(e, "before erasing");
	}
	data = malloc(p.len);
	if (!data)
		return farm_err_set(e, FARM_ENOMEM, "out of memory (%u bytes)", (unsigned)p.len);
	memset(data, 0xff, p.len);
	uint32_t shift = img->format == FARM_IMG_BIN && img->segs[0].addr == 0 ? l->app_base : 0;
	for (size_t i = 0; i < img->n_segs; i++)
		memcpy(data + (img->segs[i].addr + shift - p.base), img->segs[i].data, img->segs[i].len);
	slog(&s, "%s mode: erasing sectors %u-%u%s, writing %u bytes at 0x%08x in %u-byte packets",
	     c->fast ? "fast" : "safe", p.first, p.last,
	     p.first < fl[1] ? " (with the filesystem)" : "", (unsigned)p.data_len,
	     (unsigned)p.base, p.chunk + 4);
	if ((rc = erase(&s, &p, fn, payload, e)))
		goto out;
	if ((rc = write_all(&s, &p, data, fn, payload, e)))
		goto out;
	if (s.version >= 2 && (rc = query(&s, c->reply_timeout_ms, fl, "after the last write", e)))
		goto out;
	if ((rc = pause_ms(&s, RESET_PAUSE_MS, e)) || (rc = send_cmd(&s, RUNNER_OPENMV_CMD_RESET, e))) {
		farm_err_prefix(e, "RESET");
		goto out;
	}
	pause_ms(&s, RESET_PAUSE_MS, NULL);
	slog(&s, "RESET sent: %u bytes written, the bootloader starts the app", (unsigned)p.data_len);
out:
	free(data);
	return rc;
}
