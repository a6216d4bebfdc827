/* mpfarm runner "gdb": flashing through a GDB server over the GDB Remote
 * Serial Protocol (farm/rsp.h): OpenOCD, pyOCD, probe-rs, Black Magic Probe
 * (SWD/JTAG probes) and QEMU's gdbstub (emulated boards).
 *
 * With a memory map that lists flash (OpenOCD, pyOCD, probe-rs, BMP), every
 * flash segment is erased per block, written with vFlashWrite and committed
 * with one vFlashDone (the server may program everything there: long
 * timeout); RAM segments use X/M writes. Without a map (QEMU), all segments
 * are memory writes. Verification uses qCRC where offered, else reads back
 * with m. Reset: the job's hardware reset (QMP for emulated boards) when
 * there is one, else a monitor command chosen by probe kind.
 *
 * flash: options
 *   verify: auto | crc | read | none    (default auto: crc if offered, else read)
 *   halt:   monitor command before flashing (default by probe kind:
 *           openocd/pyocd "reset halt", others none)
 *   reset:  monitor command that starts the firmware (default by kind:
 *           openocd "reset run", pyocd/gdb-remote "reset"), or "none" */
#include "runner.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsp.h"

#define PACKET_TIMEOUT_MS 5000
#define DONE_TIMEOUT_MS 300000 /* OpenOCD programs the whole image at vFlashDone */
#define READ_CHUNK 4096

struct gdb_priv {
	const struct runner_ctx *ctx;
	char url[512];
	char kind[32];
	char verify[16];
	const char *halt;   /* monitor command or NULL */
	const char *reset;  /* monitor command or NULL */
	struct farm_rsp *rsp;
	uint64_t done, total;
	const char *step;
	runner_progress_fn fn;
	void *payload;
};

static const char *const options[] = { "verify", "halt", "reset", NULL };

/* Flash controllers that must be opened before plain memory writes program
 * flash (servers without flash drivers, e.g. QEMU's gdbstub): what a flash
 * algorithm does first. nRF51/nRF52: NVMC CONFIG = 1 (write enable), else
 * writes to the UICR are ignored; back to 0 (read only) afterwards. */
struct mem_write_quirk {
	const char *family_prefix;
	uint32_t reg, on, off;
	const char *what;
};

static const struct mem_write_quirk quirks[] = {
	{ "nrf5", 0x4001e504u, 1, 0, "NVMC CONFIG write enable" },
};

static const struct mem_write_quirk *quirk_for(const struct farm_flashmap *map)
{
	for (size_t i = 0; map && i < sizeof quirks / sizeof quirks[0]; i++)
		if (!strncmp(map->family, quirks[i].family_prefix, strlen(quirks[i].family_prefix)))
			return &quirks[i];
	return NULL;
}

static int write_reg(struct farm_rsp *rsp, uint32_t reg, uint32_t v, struct farm_err *e)
{
	uint8_t le[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	return farm_rsp_write_mem(rsp, reg, le, sizeof le, NULL, NULL, e);
}

static int gdb_configure(void *priv, const struct runner_ctx *ctx, struct farm_err *e)
{
	struct gdb_priv *p = priv;
	const struct farm_board *b = ctx->board;
	p->ctx = ctx;
	const char *url = ctx->gdb_url;
	if (!url && ctx->probe)
		url = ctx->probe->connection;
	if (!url && ctx->gdb_connect)
		url = "(a GDB server mpfarm runs for the probe)";
	if (!url)
		return farm_err_set(e, FARM_EINVAL,
				    "board %s: the gdb runner needs a GDB server: give the probe %s a "
				    "connection: (tcp://HOST:PORT or a serial device)", b->id,
				    ctx->probe ? ctx->probe->id : "(none)");
	if (strlen(url) >= sizeof p->url)
		return farm_err_set(e, FARM_ELIMIT, "board %s: GDB server address too long", b->id);
	snprintf(p->url, sizeof p->url, "%s", url);
	snprintf(p->kind, sizeof p->kind, "%s",
		 ctx->probe && ctx->probe->kind ? ctx->probe->kind : "qemu");
	const char *v = runner_opt(b, "verify");
	if (!v)
		v = "auto";
	if (strcmp(v, "auto") && strcmp(v, "crc") && strcmp(v, "read") && strcmp(v, "none"))
		return farm_err_set(e, FARM_EINVAL,
				    "board %s: flash.verify must be auto, crc, read or none, got \"%.40s\"",
				    b->id, v);
	snprintf(p->verify, sizeof p->verify, "%s", v);
	p->halt = runner_opt(b, "halt");
	if (!p->halt && (!strcmp(p->kind, "openocd") || !strcmp(p->kind, "pyocd")))
		p->halt = "reset halt";
	p->reset = runner_opt(b, "reset");
	if (!p->reset)
		p->reset = !strcmp(p->kind, "openocd") ? "reset run"
			 : !strcmp(p->kind, "qemu") ? "system_reset" : "reset";
	if (!strcmp(p->reset, "none"))
		p->reset = NULL;
	return 0;
}

static void progress(void *payload, uint64_t done, uint64_t total)
{
	(void)total;
	struct gdb_priv *p = payload;
	if (p->fn)
		p->fn(p->payload, p->step, p->done + done, p->total);
}

static int connect_server(struct gdb_priv *p, struct farm_err *e)
{
	if (p->rsp)
		return 0;
	int rc;
	if (p->ctx->gdb_connect) {
		struct farm_transport *t = NULL;
		if ((rc = p->ctx->gdb_connect(p->ctx->gdb_payload, &t, PACKET_TIMEOUT_MS, e)))
			return rc;
		snprintf(p->url, sizeof p->url, "%s", t->url);
		rc = farm_rsp_open(&p->rsp, t, PACKET_TIMEOUT_MS, p->ctx->cancel, e);
	} else {
		rc = farm_rsp_connect(&p->rsp, p->url, PACKET_TIMEOUT_MS, p->ctx->cancel, e);
	}
	if (rc)
		return rc; /* the message names the server */
	const struct farm_rsp_info *in = farm_rsp_info(p->rsp);
	runner_logf(p->ctx, "gdb: connected to %s (PacketSize %u, %s, %zu memory regions)", p->url,
	      in->packet_size, in->no_ack ? "no-ack" : "acks", in->n_regions);
	if (!strcmp(p->kind, "blackmagic")) {
		struct farm_buf out = { 0 }, reply = { 0 };
		rc = farm_rsp_monitor(p->rsp, "swd_scan", &out, e);
		if (rc && rc != FARM_EINTR && rc != FARM_ECLOSED && rc != FARM_ETIMEDOUT)
			rc = farm_rsp_monitor(p->rsp, "swdp_scan", &out, e); /* older firmware */
		if (rc == 0)
			rc = farm_rsp_request(p->rsp, "vAttach;1", 9, &reply, e);
		if (rc == 0 && reply.len && reply.data[0] == 'E')
			rc = farm_err_set(e, FARM_EIO, "GDB server %s: vAttach;1 failed: %.40s (is the "
				       "target powered and wired?)", p->url, reply.data);
		farm_buf_free(&out);
		farm_buf_free(&reply);
		if (rc)
			return rc;
	}
	if (p->halt) {
		rc = farm_rsp_monitor(p->rsp, p->halt, NULL, e);
		if (rc)
			return rc;
	}
	return 0;
}

/* Every byte of img inside the server's own memory map, when it has one. */
static int check_server_map(struct gdb_priv *p, const struct farm_image *img, struct farm_err *e)
{
	const struct farm_rsp_info *in = farm_rsp_info(p->rsp);
	if (!in->n_regions)
		return 0;
	for (size_t i = 0; i < img->n_segs; i++) {
		uint64_t a = img->segs[i].addr, end = a + img->segs[i].len;
		while (a < end) {
			const struct farm_rsp_region *r = NULL;
			for (size_t k = 0; k < in->n_regions; k++)
				if (a >= in->regions[k].start &&
				    a < (uint64_t)in->regions[k].start + in->regions[k].length)
					r = &in->regions[k];
			if (!r || r->is_rom)
				return farm_err_set(e, FARM_EINVAL,
						    "image byte 0x%08llx is outside the flash and RAM the GDB "
						    "server %s reports; nothing was written",
						    (unsigned long long)a, p->url);
			a = (uint64_t)r->start + r->length;
		}
	}
	return 0;
}

static const struct farm_rsp_region *server_flash(const struct farm_rsp_info *in, uint32_t addr)
{
	for (size_t k = 0; k < in->n_regions; k++)
		if (in->regions[k].is_flash && addr >= in->regions[k].start &&
		    (uint64_t)addr < (uint64_t)in->regions[k].start + in->regions[k].length)
			return &in->regions[k];
	return NULL;
}

/* Erase the blocks under every flash segment (each block once). */
static int erase_all(struct gdb_priv *p, const struct farm_image *img, struct farm_err *e)
{
	const struct farm_rsp_info *in = farm_rsp_info(p->rsp);
	uint64_t erased_to = 0;
	for (size_t i = 0; i < img->n_segs; i++) {
		uint64_t a = img->segs[i].addr, end = a + img->segs[i].len;
		while (a < end) {
			const struct farm_rsp_region *r = server_flash(in, (uint32_t)a);
			uint64_t rend = r ? (uint64_t)r->start + r->length : end;
			if (!r) {
				a = end; /* a RAM segment: written, not erased */
				continue;
			}
			uint64_t bs = r->blocksize ? r->blocksize : 1;
			uint64_t s = r->start + (a - r->start) / bs * bs;
			uint64_t t = end < rend ? end : rend;
			t = r->start + (t - r->start + bs - 1) / bs * bs;
			if (t > rend)
				t = rend;
			if (s < erased_to)
				s = erased_to;
			if (t > s) {
				runner_logf(p->ctx, "gdb: vFlashErase 0x%08llx +0x%llx", (unsigned long long)s,
				      (unsigned long long)(t - s));
				int rc = farm_rsp_flash_erase(p->rsp, (uint32_t)s, (uint32_t)(t - s), e);
				if (rc)
					return rc;
				erased_to = t;
			}
			a = t > a ? t : end;
		}
	}
	return 0;
}

static int gdb_flash(void *priv, const struct farm_image *img, runner_progress_fn fn, void *payload,
		     struct farm_err *e)
{
	struct gdb_priv *p = priv;
	int rc = connect_server(p, e);
	if (rc)
		return rc;
	if ((rc = check_server_map(p, img, e)))
		return rc;
	const struct farm_rsp_info *in = farm_rsp_info(p->rsp);
	int vflash = 0;
	for (size_t i = 0; i < img->n_segs; i++)
		if (server_flash(in, img->segs[i].addr))
			vflash = 1;
	p->fn = fn;
	p->payload = payload;
	p->total = farm_image_size(img);
	p->done = 0;
	if (vflash) {
		p->step = "erase";
		if (fn)
			fn(payload, p->step, 0, p->total);
		if ((rc = erase_all(p, img, e)))
			return rc;
	}
	p->step = "write";
	const struct mem_write_quirk *q = vflash ? NULL : quirk_for(p->ctx->map);
	if (q) {
		runner_logf(p->ctx, "gdb: %s (0x%08x = %u)", q->what, q->reg, q->on);
		if ((rc = write_reg(p->rsp, q->reg, q->on, e)))
			return farm_err_prefix(e, "%s", q->what);
	}
	for (size_t i = 0; i < img->n_segs; i++) {
		const struct farm_image_segment *s = &img->segs[i];
		if (vflash && server_flash(in, s->addr))
			rc = farm_rsp_flash_write(p->rsp, s->addr, s->data, s->len, progress, p, e);
		else
			rc = farm_rsp_write_mem(p->rsp, s->addr, s->data, s->len, progress, p, e);
		if (rc)
			return rc;
		p->done += s->len;
	}
	if (q && (rc = write_reg(p->rsp, q->reg, q->off, e)))
		return farm_err_prefix(e, "%s", q->what);
	if (vflash) {
		unsigned t = p->ctx->timeout_ms ? p->ctx->timeout_ms : DONE_TIMEOUT_MS;
		runner_logf(p->ctx, "gdb: vFlashDone (up to %.0f s)", t / 1000.0);
		if ((rc = farm_rsp_flash_done(p->rsp, (int)t, e)))
			return rc;
	}
	if (fn)
		fn(payload, p->step, p->total, p->total);
	runner_logf(p->ctx, "gdb: wrote %llu bytes in %zu segments (%s)", (unsigned long long)p->total,
	      img->n_segs, vflash ? "vFlash" : "memory writes");
	return 0;
}

static int verify_read(struct gdb_priv *p, const struct farm_image_segment *s, struct farm_err *e)
{
	uint8_t *buf = malloc(READ_CHUNK);
	if (!buf)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	int rc = 0;
	for (uint32_t off = 0; off < s->len && rc == 0; off += READ_CHUNK) {
		uint32_t n = s->len - off < READ_CHUNK ? s->len - off : READ_CHUNK;
		rc = farm_rsp_read_mem(p->rsp, s->addr + off, buf, n, NULL, NULL, e);
		if (rc)
			break;
		if (memcmp(buf, s->data + off, n) != 0) {
			uint32_t k = 0;
			while (buf[k] == s->data[off + k])
				k++;
			rc = farm_err_set(e, FARM_EIO,
					  "verify failed: byte 0x%08x reads 0x%02x, the image has 0x%02x",
					  s->addr + off + k, buf[k], s->data[off + k]);
			break;
		}
		p->done += n;
		if (p->fn)
			p->fn(p->payload, p->step, p->done, p->total);
	}
	free(buf);
	return rc;
}

/* Servers that accept writes they do not carry out: segments inside such a
 * range are written but not verified, and the log says so. QEMU models the
 * nRF51/nRF52 UICR as registers and drops debug writes to them (the real chip
 * programs them like flash); MicroPython runs without them. */
struct verify_quirk {
	const char *kind, *family_prefix;
	uint32_t start, size;
	const char *why;
};

static const struct verify_quirk verify_quirks[] = {
	{ "qemu", "nrf5", 0x10001000u, 0x1000, "QEMU's nRF5 model ignores debug writes to the UICR" },
};

static const char *unverifiable(const struct gdb_priv *p, const struct farm_image_segment *s)
{
	for (size_t i = 0; i < sizeof verify_quirks / sizeof verify_quirks[0]; i++) {
		const struct verify_quirk *q = &verify_quirks[i];
		const char *fam = p->ctx->map ? p->ctx->map->family : "";
		if (strcmp(p->kind, q->kind) || strncmp(fam, q->family_prefix, strlen(q->family_prefix)))
			continue;
		if (s->addr >= q->start && (uint64_t)s->addr + s->len <= (uint64_t)q->start + q->size)
			return q->why;
	}
	return NULL;
}

static int gdb_verify(void *priv, const struct farm_image *img, runner_progress_fn fn, void *payload,
		      struct farm_err *e)
{
	struct gdb_priv *p = priv;
	if (!strcmp(p->verify, "none"))
		return farm_err_set(e, FARM_EUNSUPPORTED, "verification disabled (flash.verify: none)");
	int rc = connect_server(p, e);
	if (rc)
		return rc;
	p->fn = fn;
	p->payload = payload;
	p->step = "verify";
	p->done = 0;
	p->total = farm_image_size(img);
	int use_crc = strcmp(p->verify, "read") != 0;
	for (size_t i = 0; i < img->n_segs && rc == 0; i++) {
		const struct farm_image_segment *s = &img->segs[i];
		const char *why = unverifiable(p, s);
		if (why) {
			runner_logf(p->ctx, "gdb: 0x%08x+%u not verified: %s", s->addr, s->len, why);
			p->done += s->len;
			continue;
		}
		if (use_crc) {
			uint32_t crc = 0;
			rc = farm_rsp_crc(p->rsp, s->addr, s->len, &crc, e);
			if (rc == FARM_EUNSUPPORTED && !strcmp(p->verify, "auto")) {
				use_crc = 0; /* the server has no qCRC: read back instead */
				rc = 0;
			} else if (rc == 0) {
				uint32_t want = farm_rsp_crc32(0xffffffffu, s->data, s->len);
				if (crc != want)
					rc = farm_err_set(e, FARM_EIO,
							  "verify failed: CRC of 0x%08x+%u is 0x%08x, the "
							  "image's is 0x%08x", s->addr, s->len, crc, want);
				p->done += s->len;
				if (fn)
					fn(payload, p->step, p->done, p->total);
				continue;
			} else {
				break;
			}
		}
		rc = verify_read(p, s, e);
	}
	if (rc == 0) {
		if (fn)
			fn(payload, p->step, p->total, p->total);
		runner_logf(p->ctx, "gdb: verified %llu bytes (%s)", (unsigned long long)p->total,
		      use_crc ? "qCRC" : "read back");
	}
	return rc;
}

static int gdb_reset(void *priv, struct farm_err *e)
{
	struct gdb_priv *p = priv;
	if (p->ctx->board_reset) {
		/* detach first: the server must not hold the core while it restarts */
		farm_rsp_close(p->rsp);
		p->rsp = NULL;
		return p->ctx->board_reset(p->ctx->reset_payload, e);
	}
	if (!p->reset)
		return farm_err_set(e, FARM_EUNSUPPORTED, "flash.reset: none");
	int rc = connect_server(p, e);
	if (rc)
		return rc;
	runner_logf(p->ctx, "gdb: monitor %s", p->reset);
	rc = farm_rsp_monitor(p->rsp, p->reset, NULL, e);
	/* Black Magic Probe drops the connection on reset: that is success. */
	if (rc == FARM_ECLOSED && !strcmp(p->kind, "blackmagic"))
		rc = 0;
	farm_rsp_close(p->rsp);
	p->rsp = NULL;
	return rc;
}

static void gdb_cleanup(void *priv)
{
	struct gdb_priv *p = priv;
	farm_rsp_close(p->rsp);
	p->rsp = NULL;
}

static const char *const gdb_ports[] = { "nrf", "stm32", "rp2", "samd", "mimxrt", "renesas-ra",
					 "esp32", NULL };

const struct runner_ops runner_gdb_ops = {
	.name = "gdb",
	.summary = "GDB remote protocol: OpenOCD, pyOCD, probe-rs, Black Magic Probe, QEMU",
	.ports = gdb_ports,
	.formats = RUNNER_FMT(FARM_IMG_IHEX) | RUNNER_FMT(FARM_IMG_ELF) | RUNNER_FMT(FARM_IMG_BIN) |
		   RUNNER_FMT(FARM_IMG_UF2) | RUNNER_FMT(FARM_IMG_DFUSE),
	.caps = RUNNER_CAP_PROBE | RUNNER_CAP_VERIFY | RUNNER_CAP_RESET | RUNNER_CAP_EMULATED,
	.priority = 50,
	.entry = "probe (halts the core over SWD/JTAG)",
	.options = options,
	.priv_size = sizeof(struct gdb_priv),
	.configure = gdb_configure,
	.flash = gdb_flash,
	.verify = gdb_verify,
	.reset = gdb_reset,
	.cleanup = gdb_cleanup,
};
