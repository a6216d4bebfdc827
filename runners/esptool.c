/* mpfarm runner "esptool": ESP32-family and ESP8266 boards through their ROM
 * serial download loader (runners/esp_rom.h), as esptool does without its
 * RAM stub: reset into the loader with DTR/RTS (runners/esp_reset.h), SYNC,
 * detect the chip, attach the SPI flash, raise the baud rate, write every
 * image segment at its flash offset (deflated by default), check each with
 * SPI_FLASH_MD5, then pulse RTS to run the new firmware.
 *
 * An image's segment addresses are SPI flash offsets: a multi-file set
 * (bootloader 0x1000, partition table 0x8000, app 0x10000) or a merged
 * image at 0.
 *
 * flash: options
 *   baud:       the rate for the data (default 460800; 0 or 115200 = stay at
 *               115200; ignored over USB-Serial/JTAG)
 *   compress:   true (default) | false (the ESP8266 ROM cannot inflate: plain)
 *   entry:      esp-reset (default, esptool's reset loop), none (the chip
 *               already waits in its loader), or a list for runners/entry.h
 *               ("repl, esp-reset")
 *   chip:       the chip expected (esp32, esp32s3, esp8266, ...): another
 *               one is an error before anything is written
 *   flash_size: SPI_SET_PARAMS total size, bytes or 1MB..16MB (default 4MB)
 *   after:      hard-reset (default) | no-reset */
#include "runner.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "entry.h"
#include "esp_reset.h"
#include "esp_rom.h"

#define DEFAULT_BAUD 460800u
#define ROM_BAUD 115200u
#define SECTOR 0x1000u

struct esp_priv {
	const struct runner_ctx *ctx;
	unsigned baud;
	int compress;
	char entry[128];
	const struct runner_esp_chip *want_chip;
	uint32_t flash_size;
	int hard_reset;
	int usb_jtag;
	struct farm_transport *t;
	struct runner_esp_rom rom;
	uint64_t base, total;           /* progress over all segments */
	runner_progress_fn fn;
	void *payload;
};

static const char *const options[] = { "baud", "compress", "entry", "chip", "flash_size", "after",
				       NULL };

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	if (!s || !*s || *s == '-')
		return -1;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || v > max)
		return -1;
	if (!strcmp(end, "MB") || !strcmp(end, "M"))
		v *= 1024ull * 1024ull;
	else if (!strcmp(end, "KB") || !strcmp(end, "K"))
		v *= 1024ull;
	else if (*end)
		return -1;
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/* An option with two values: *out = 1 for `on` (the default), 0 for `off`. */
static int two_way(int *out, const struct farm_board *b, const char *key, const char *on,
		   const char *off, struct farm_err *e)
{
	const char *o = runner_opt(b, key);
	*out = !o || !strcmp(o, on);
	if (o && !*out && strcmp(o, off))
		return farm_err_set(e, FARM_EINVAL, "board %s: flash.%s must be %s or %s, got "
				    "\"%.40s\"", b->id, key, on, off, o);
	return 0;
}

static int esp_configure(void *priv, const struct runner_ctx *ctx, struct farm_err *e)
{
	struct esp_priv *p = priv;
	const struct farm_board *b = ctx->board;
	unsigned long long v;
	p->ctx = ctx;
	const char *o = runner_opt(b, "baud");
	p->baud = DEFAULT_BAUD;
	if (o) {
		if (parse_uint(o, 4000000, &v) < 0 || (v && v < 9600))
			return farm_err_set(e, FARM_EINVAL,
					    "board %s: flash.baud must be 0 (stay at 115200) or a rate "
					    "from 9600 to 4000000, got \"%.40s\"", b->id, o);
		p->baud = (unsigned)v;
	}
	if (two_way(&p->compress, b, "compress", "true", "false", e) < 0)
		return FARM_EINVAL;
	o = runner_opt(b, "entry");
	snprintf(p->entry, sizeof p->entry, "%s", o ? o : "esp-reset");
	if (o && strlen(o) >= sizeof p->entry)
		return farm_err_set(e, FARM_ELIMIT, "board %s: flash.entry is too long", b->id);
	if (entry_check_list(p->entry, e) < 0)
		return farm_err_prefix(e, "board %s: flash.entry", b->id);
	o = runner_opt(b, "chip");
	if (o && !(p->want_chip = runner_esp_chip_find(o))) {
		char names[256] = "";
		size_t k = 0;
		for (const struct runner_esp_chip *c = runner_esp_chips(); c->name && k < sizeof names;
		     c++) {
			int w = snprintf(names + k, sizeof names - k, "%s%s", k ? ", " : "", c->name);
			if (w < 0)
				break;
			k += (size_t)w;
		}
		return farm_err_set(e, FARM_EINVAL, "board %s: flash.chip \"%.40s\" is not an ESP "
				    "chip this runner knows (%s)", b->id, o, names);
	}
	if (!p->want_chip && b->mcu)
		p->want_chip = runner_esp_chip_find(b->mcu);
	o = runner_opt(b, "flash_size");
	p->flash_size = 4u << 20;
	if (o) {
		if (parse_uint(o, 256ull << 20, &v) < 0 || v < 0x40000 || (v & (v - 1)))
			return farm_err_set(e, FARM_EINVAL, "board %s: flash.flash_size must be a power "
					    "of two from 256KB to 256MB (\"4MB\", 4194304), got "
					    "\"%.40s\"", b->id, o);
		p->flash_size = (uint32_t)v;
	}
	if (two_way(&p->hard_reset, b, "after", "hard-reset", "no-reset", e) < 0)
		return FARM_EINVAL;
	p->usb_jtag = ctx->usb && ctx->usb->vid == 0x303a && ctx->usb->pid == 0x1001;
	return 0;
}

static int open_port(struct esp_priv *p, const char *path, struct farm_err *e)
{
	struct farm_serial_cfg cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.baud = (int)ROM_BAUD;
	cfg.dtr = -1; /* as the driver opens it: both asserted, the chip idles */
	cfg.rts = -1;
	int rc = farm_transport_serial_open(&p->t, path, &cfg, e);
	if (rc < 0)
		return farm_err_prefix(e, "board %s: opening %s for the ESP ROM loader",
				       p->ctx->board->id, path);
	runner_esp_rom_init(&p->rom, p->t, ROM_BAUD);
	p->rom.log = p->ctx->log;
	p->rom.log_payload = p->ctx->log_payload;
	p->rom.cancel = p->ctx->cancel;
	return 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Reach the ROM loader: esptool's reset loop on the port, or the entry
 * registry's methods, then SYNC. */
static int connect_loader(struct esp_priv *p, struct farm_err *e)
{
	const struct runner_ctx *ctx = p->ctx;
	const char *path = ctx->serial_path;
	int rc;
	if (!strcmp(p->entry, "esp-reset") || !strcmp(p->entry, "none")) {
		if (!path)
			return farm_err_set(e, FARM_EINVAL,
					    "board %s: the esptool runner needs the board's serial "
					    "port (serial.path, usb_serial or location)", ctx->board->id);
		if ((rc = open_port(p, path, e)) < 0)
			return rc;
		int reset = !strcmp(p->entry, "esp-reset");
		rc = runner_esp_rom_connect(&p->rom, reset, p->usb_jtag, reset ? 0 : 1, e);
		/* USB-Serial/JTAG re-enumerates on reset: re-open, as esptool, 3 times. */
		for (int i = 0; rc < 0 && p->usb_jtag && (rc == FARM_EIO || rc == FARM_ECLOSED) && i < 3;
		     i++) {
			farm_transport_close(p->t);
			p->t = NULL;
			sleep_ms(500);
			if (open_port(p, path, e) == 0)
				rc = runner_esp_rom_connect(&p->rom, 0, 1, 1, e);
		}
		return rc < 0 ? farm_err_prefix(e, "board %s: %s", ctx->board->id, path) : 0;
	}
	struct entry_ctx ec = {
		.board = ctx->board, .port_path = path, .dev = ctx->usb,
		.interactive = ctx->interactive, .log = ctx->log, .log_payload = ctx->log_payload,
		.cancel = ctx->cancel,
	};
	struct entry_want want = { .same_port = !p->usb_jtag };
	if (p->usb_jtag) { /* the loader re-enumerates with the same USB identity */
		want.usb.vid = 0x303a;
		want.usb.pid = 0x1001;
		want.usb.need_tty = 1;
	}
	struct entry_result res;
	memset(&res, 0, sizeof res);
	if ((rc = entry_run(p->entry, &ec, &want, &res, e)) < 0)
		return rc;
	if (res.t) {
		p->t = res.t;
		runner_esp_rom_init(&p->rom, p->t, ROM_BAUD);
		p->rom.log = ctx->log;
		p->rom.log_payload = ctx->log_payload;
		p->rom.cancel = ctx->cancel;
	} else if ((rc = open_port(p, res.port[0] ? res.port : path, e)) < 0) {
		return rc;
	}
	rc = runner_esp_rom_connect(&p->rom, 0, p->usb_jtag, 1, e);
	return rc < 0 ? farm_err_prefix(e, "board %s: after entry %s", ctx->board->id, res.method)
		      : 0;
}

/* Segments that share a 4 KiB sector would erase each other. */
static int check_segments(struct esp_priv *p, const struct farm_image *img, struct farm_err *e)
{
	for (size_t i = 0; i + 1 < img->n_segs; i++) {
		const struct farm_image_segment *a = &img->segs[i], *b = &img->segs[i + 1];
		uint32_t a_last = (uint32_t)(((uint64_t)a->addr + a->len - 1) / SECTOR);
		if (b->addr / SECTOR <= a_last)
			return farm_err_set(e, FARM_EINVAL,
					    "board %s: image parts 0x%x..0x%x and 0x%x..0x%x share the "
					    "flash sector at 0x%x: writing the second would erase the "
					    "first; start each part on a 4 KiB boundary",
					    p->ctx->board->id, (unsigned)a->addr,
					    (unsigned)(a->addr + a->len - 1), (unsigned)b->addr,
					    (unsigned)(b->addr + b->len - 1), (unsigned)(a_last * SECTOR));
		}
	for (size_t i = 0; i < img->n_segs; i++)
		if ((uint64_t)img->segs[i].addr + img->segs[i].len > p->flash_size)
			return farm_err_set(e, FARM_EINVAL,
					    "board %s: image part at 0x%x (%u bytes) ends past the %u-byte "
					    "flash (flash.flash_size)", p->ctx->board->id,
					    (unsigned)img->segs[i].addr, (unsigned)img->segs[i].len,
					    (unsigned)p->flash_size);
	return 0;
}

static void seg_progress(void *payload, const char *step, uint64_t done, uint64_t total)
{
	struct esp_priv *p = payload;
	(void)total;
	if (p->fn)
		p->fn(p->payload, step, p->base + done, p->total);
}

static int esp_flash(void *priv, const struct farm_image *img, runner_progress_fn fn, void *payload,
		     struct farm_err *e)
{
	struct esp_priv *p = priv;
	const char *id = p->ctx->board->id;
	int rc = check_segments(p, img, e);
	if (rc < 0)
		return rc;
	if ((rc = connect_loader(p, e)) < 0)
		return rc;
	if ((rc = runner_esp_rom_detect(&p->rom, e)) < 0)
		return farm_err_prefix(e, "board %s", id);
	runner_logf(p->ctx, "esptool: %s %s loader", p->rom.chip->name, p->rom.stub ? "stub" : "ROM");
	if (p->want_chip && p->want_chip != p->rom.chip)
		return farm_err_set(e, FARM_EINVAL,
				    "board %s: the ROM loader reports an %s, the inventory expects "
				    "an %s (flash.chip / mcu): nothing was written; check which "
				    "board is on this port", id, p->rom.chip->name, p->want_chip->name);
	if ((rc = runner_esp_rom_attach(&p->rom, p->flash_size, e)) < 0)
		return farm_err_prefix(e, "board %s", id);
	if (p->baud && p->baud != ROM_BAUD && !p->usb_jtag &&
	    (rc = runner_esp_rom_change_baud(&p->rom, p->baud, e)) < 0)
		return farm_err_prefix(e, "board %s", id);
	p->fn = fn;
	p->payload = payload;
	p->total = farm_image_size(img);
	p->base = 0;
	for (size_t i = 0; i < img->n_segs; i++) {
		const struct farm_image_segment *s = &img->segs[i];
		runner_logf(p->ctx, "esptool: writing %u bytes at 0x%x%s", (unsigned)s->len, (unsigned)s->addr,
		      p->compress ? " (deflated)" : "");
		rc = runner_esp_rom_write(&p->rom, s->addr, s->data, s->len, p->compress,
					  seg_progress, p, e);
		if (rc < 0)
			return farm_err_prefix(e, "board %s: part %zu of %zu", id, i + 1, img->n_segs);
		p->base += s->len;
	}
	if (p->rom.block_retries)
		runner_logf(p->ctx, "esptool: %u blocks sent again after checksum errors or timeouts",
		      p->rom.block_retries);
	return 0;
}

static int esp_verify(void *priv, const struct farm_image *img, runner_progress_fn fn,
		      void *payload, struct farm_err *e)
{
	struct esp_priv *p = priv;
	if (!p->t)
		return farm_err_set(e, FARM_EPROTO, "board %s: verify before flash",
				    p->ctx->board->id);
	uint64_t done = 0, total = farm_image_size(img);
	for (size_t i = 0; i < img->n_segs; i++) {
		const struct farm_image_segment *s = &img->segs[i];
		int rc = runner_esp_rom_verify(&p->rom, s->addr, s->data, s->len, e);
		if (rc == FARM_EUNSUPPORTED) {
			runner_logf(p->ctx, "esptool: %s; the write is not verified", e->msg);
			return rc;
		}
		if (rc < 0)
			return farm_err_prefix(e, "board %s", p->ctx->board->id);
		done += s->len;
		if (fn)
			fn(payload, "verify", done, total);
	}
	runner_logf(p->ctx, "esptool: %zu parts verified by SPI_FLASH_MD5", img->n_segs);
	return 0;
}

static int esp_reset(void *priv, struct farm_err *e)
{
	struct esp_priv *p = priv;
	if (!p->hard_reset) {
		runner_logf(p->ctx, "esptool: after: no-reset; the chip stays in its loader");
		return 0;
	}
	if (!p->t)
		return farm_err_set(e, FARM_EPROTO, "board %s: reset before flash",
				    p->ctx->board->id);
	int rc = runner_esp_reset(p->t, RUNNER_ESP_RESET_HARD, p->usb_jtag ? 200 : 100, e);
	if (rc < 0)
		return farm_err_prefix(e, "board %s: hard reset", p->ctx->board->id);
	if (p->usb_jtag)
		sleep_ms(200);
	runner_logf(p->ctx, "esptool: hard reset (RTS pulse): running the new firmware");
	farm_transport_close(p->t);
	p->t = NULL;
	return 0;
}

static void esp_cleanup(void *priv)
{
	struct esp_priv *p = priv;
	farm_transport_close(p->t);
	p->t = NULL;
}

static const char *const esp_ports[] = { "esp32", "esp8266", NULL };

const struct runner_ops runner_esptool_ops = {
	.name = "esptool",
	.summary = "ESP32-family and ESP8266 ROM serial loader (esptool protocol, no stub)",
	.ports = esp_ports,
	.formats = RUNNER_FMT(FARM_IMG_BIN) | RUNNER_FMT(FARM_IMG_IHEX) | RUNNER_FMT(FARM_IMG_UF2),
	.caps = RUNNER_CAP_SERIAL | RUNNER_CAP_VERIFY | RUNNER_CAP_RESET,
	.priority = 40,
	.entry = "esp-reset (DTR/RTS into the ROM loader), or flash.entry",
	.options = options,
	.priv_size = sizeof(struct esp_priv),
	.configure = esp_configure,
	.flash = esp_flash,
	.verify = esp_verify,
	.reset = esp_reset,
	.cleanup = esp_cleanup,
};
