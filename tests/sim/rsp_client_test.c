/* rsp_client_test: drives mpfarm's GDB remote client (farm/rsp.h) against a
 * GDB server (gdbsim, QEMU's gdbstub) one step at a time, for
 * tests/sim/test_rsp_client.sh. It is a test driver of the client library,
 * not a mock: every step is one or more real client calls; the scripts check
 * the server's own log and flash dump.
 *
 * usage: rsp_client_test [--timeout MS] [--done-timeout MS] [--wire FILE] URL STEP...
 *   info                      packet size, no-ack, map regions
 *   flash FILE ADDR           vFlashErase (blocks covering the data, per the map), vFlashWrite, vFlashDone
 *   erase ADDR LEN | fwrite FILE ADDR | done     the three vFlash calls one by one
 *   write FILE ADDR           X/M memory writes (timed)
 *   verify FILE ADDR          m reads compared with FILE (timed)
 *   crc FILE ADDR             qCRC compared with the CRC of FILE ("crc unsupported" if none)
 *   read ADDR LEN OUT         m reads into OUT
 *   monitor CMD               qRcmd; prints the output
 *   request PACKET            one raw exchange; prints the reply
 *   interrupt                 0x03 and the stop reply
 *   ping N                    N '?' round trips (timed)
 *   image FILE LIMIT          a firmware image (farm_image_load: HEX, ELF, UF2, ...): every
 *                             segment below address LIMIT written (X/M) and read back (timed)
 * Prints one line per step; on the first failure prints "error: MESSAGE (code)"
 * to stderr and exits 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "image.h"
#include "rsp.h"
#include "transport.h"

struct ctx {
	struct farm_rsp *rsp;
	int done_timeout;
	uint64_t last_progress;
};

static int num(const char *s, uint32_t *v, struct farm_err *e)
{
	char *end;
	unsigned long long x = strtoull(s, &end, 0);
	if (!*s || *end || x > UINT32_MAX)
		return farm_err_set(e, FARM_EINVAL, "not a 32-bit number: '%s'", s);
	*v = (uint32_t)x;
	return 0;
}

static int load(struct farm_buf *b, const char *path, struct farm_err *e)
{
	farm_buf_reset(b);
	return farm_buf_read_file(b, path, 64u << 20, e);
}

static void progress(void *payload, uint64_t done, uint64_t total)
{
	struct ctx *c = payload;
	if (done <= c->last_progress || done > total)
		fprintf(stderr, "progress went from %llu to %llu of %llu\n",
			(unsigned long long)c->last_progress, (unsigned long long)done,
			(unsigned long long)total);
	c->last_progress = done;
}

static void rate(const char *what, size_t n, long long ms)
{
	printf("%s %zu bytes in %lld ms (%.0f bytes/s)\n", what, n, ms,
	       ms > 0 ? (double)n * 1000.0 / (double)ms : (double)n * 1000.0);
}

/* Erase every block the data touches, per the server's map. */
static int erase_for(struct ctx *c, uint32_t addr, size_t len, struct farm_err *e)
{
	const struct farm_rsp_info *in = farm_rsp_info(c->rsp);
	if (in->n_regions == 0)
		return farm_err_set(e, FARM_EUNSUPPORTED, "no memory map: cannot plan the erase");
	uint64_t a = addr, end = (uint64_t)addr + len;
	while (a < end) {
		const struct farm_rsp_region *r = NULL;
		for (size_t i = 0; i < in->n_regions; i++)
			if (a >= in->regions[i].start && a < (uint64_t)in->regions[i].start + in->regions[i].length)
				r = &in->regions[i];
		if (!r || !r->is_flash)
			return farm_err_set(e, FARM_EINVAL, "0x%08llx is not in a flash region of the map",
					    (unsigned long long)a);
		uint64_t rend = (uint64_t)r->start + r->length;
		uint64_t s = r->start + (a - r->start) / r->blocksize * r->blocksize;
		uint64_t t = end < rend ? end : rend;
		t = r->start + (t - r->start + r->blocksize - 1) / r->blocksize * r->blocksize;
		if (t > rend)
			t = rend;
		int rc = farm_rsp_flash_erase(c->rsp, (uint32_t)s, (uint32_t)(t - s), e);
		if (rc)
			return rc;
		printf("erased 0x%08llx-0x%08llx\n", (unsigned long long)s, (unsigned long long)t - 1);
		a = t;
	}
	return 0;
}

static int step(struct ctx *c, char **argv, int argc, int *used, struct farm_err *e)
{
	const char *s = argv[0];
	struct farm_buf b = { 0 };
	uint32_t addr = 0, len = 0;
	int rc = 0;
	long long t0 = farm_now_ms();
	c->last_progress = 0;
#define NEED(n)                                                                              \
	do {                                                                                 \
		if (argc < (n) + 1) {                                                        \
			rc = farm_err_set(e, FARM_EINVAL, "%s needs %d argument(s)", s, (n)); \
			goto out;                                                            \
		}                                                                            \
		*used = (n) + 1;                                                             \
	} while (0)
	*used = 1;
	if (!strcmp(s, "info")) {
		const struct farm_rsp_info *in = farm_rsp_info(c->rsp);
		printf("packet_size=0x%x no_ack=%d memory_map=%d regions=%zu\n", in->packet_size, in->no_ack,
		       in->has_memory_map, in->n_regions);
		for (size_t i = 0; i < in->n_regions; i++)
			printf("region %s 0x%08x 0x%x blocksize=0x%x\n",
			       in->regions[i].is_flash ? "flash" : in->regions[i].is_ram ? "ram" : "rom",
			       in->regions[i].start, in->regions[i].length, in->regions[i].blocksize);
	} else if (!strcmp(s, "flash")) {
		NEED(2);
		if ((rc = load(&b, argv[1], e)) || (rc = num(argv[2], &addr, e)))
			goto out;
		if ((rc = erase_for(c, addr, b.len, e)) ||
		    (rc = farm_rsp_flash_write(c->rsp, addr, b.data, b.len, progress, c, e)) ||
		    (rc = farm_rsp_flash_done(c->rsp, c->done_timeout, e)))
			goto out;
		rate("flashed", b.len, farm_now_ms() - t0);
	} else if (!strcmp(s, "erase")) {
		NEED(2);
		if ((rc = num(argv[1], &addr, e)) || (rc = num(argv[2], &len, e)) ||
		    (rc = farm_rsp_flash_erase(c->rsp, addr, len, e)))
			goto out;
		printf("erase ok\n");
	} else if (!strcmp(s, "fwrite")) {
		NEED(2);
		if ((rc = load(&b, argv[1], e)) || (rc = num(argv[2], &addr, e)) ||
		    (rc = farm_rsp_flash_write(c->rsp, addr, b.data, b.len, progress, c, e)))
			goto out;
		printf("fwrite ok\n");
	} else if (!strcmp(s, "done")) {
		if ((rc = farm_rsp_flash_done(c->rsp, c->done_timeout, e)))
			goto out;
		printf("done ok\n");
	} else if (!strcmp(s, "write")) {
		NEED(2);
		if ((rc = load(&b, argv[1], e)) || (rc = num(argv[2], &addr, e)) ||
		    (rc = farm_rsp_write_mem(c->rsp, addr, b.data, b.len, progress, c, e)))
			goto out;
		rate(farm_rsp_info(c->rsp)->has_x ? "wrote (X)" : "wrote (M)", b.len, farm_now_ms() - t0);
	} else if (!strcmp(s, "verify")) {
		NEED(2);
		if ((rc = load(&b, argv[1], e)) || (rc = num(argv[2], &addr, e)))
			goto out;
		unsigned char *got = malloc(b.len ? b.len : 1);
		if (!got) {
			rc = farm_err_set(e, FARM_ENOMEM, "out of memory");
			goto out;
		}
		rc = farm_rsp_read_mem(c->rsp, addr, got, b.len, progress, c, e);
		size_t bad = 0;
		while (!rc && bad < b.len && got[bad] == (unsigned char)b.data[bad])
			bad++;
		free(got);
		if (rc)
			goto out;
		if (bad < b.len) {
			rc = farm_err_set(e, FARM_EIO, "verify: first difference at 0x%08zx", addr + bad);
			goto out;
		}
		rate("verified", b.len, farm_now_ms() - t0);
	} else if (!strcmp(s, "crc")) {
		NEED(2);
		if ((rc = load(&b, argv[1], e)) || (rc = num(argv[2], &addr, e)))
			goto out;
		uint32_t crc = 0, want = farm_rsp_crc32(0xffffffffu, b.data, b.len);
		rc = farm_rsp_crc(c->rsp, addr, (uint32_t)b.len, &crc, e);
		if (rc == FARM_EUNSUPPORTED) {
			printf("crc unsupported\n");
			rc = 0;
			goto out;
		}
		if (rc)
			goto out;
		if (crc != want) {
			rc = farm_err_set(e, FARM_EIO, "crc: server 0x%08x, file 0x%08x", crc, want);
			goto out;
		}
		printf("crc ok 0x%08x\n", crc);
	} else if (!strcmp(s, "read")) {
		NEED(3);
		if ((rc = num(argv[1], &addr, e)) || (rc = num(argv[2], &len, e)))
			goto out;
		unsigned char *got = malloc(len ? len : 1);
		if (!got) {
			rc = farm_err_set(e, FARM_ENOMEM, "out of memory");
			goto out;
		}
		rc = farm_rsp_read_mem(c->rsp, addr, got, len, NULL, NULL, e);
		FILE *f = rc ? NULL : fopen(argv[3], "wb");
		if (!rc && (!f || fwrite(got, 1, len, f) != len))
			rc = farm_err_set(e, FARM_EIO, "cannot write %s", argv[3]);
		if (f)
			fclose(f);
		free(got);
		if (rc)
			goto out;
		rate("read", len, farm_now_ms() - t0);
	} else if (!strcmp(s, "monitor")) {
		NEED(1);
		if ((rc = farm_rsp_monitor(c->rsp, argv[1], &b, e)))
			goto out;
		printf("monitor ok: %s\n", b.data ? b.data : "");
	} else if (!strcmp(s, "request")) {
		NEED(1);
		if ((rc = farm_rsp_request(c->rsp, argv[1], strlen(argv[1]), &b, e)))
			goto out;
		printf("reply: %s\n", b.data ? b.data : "");
	} else if (!strcmp(s, "interrupt")) {
		if ((rc = farm_rsp_interrupt(c->rsp, e)))
			goto out;
		printf("interrupt ok\n");
	} else if (!strcmp(s, "ping")) {
		NEED(1);
		if ((rc = num(argv[1], &len, e)))
			goto out;
		for (uint32_t i = 0; i < len && !rc; i++)
			rc = farm_rsp_request(c->rsp, "?", 1, &b, e);
		if (rc)
			goto out;
		long long ms = farm_now_ms() - t0;
		printf("round trip: %u in %lld ms (%.1f us each)\n", len, ms,
		       len ? (double)ms * 1000.0 / len : 0.0);
	} else if (!strcmp(s, "image")) {
		NEED(2);
		struct farm_image *img = NULL;
		if ((rc = num(argv[2], &len, e)) ||
		    (rc = farm_image_load(&img, argv[1], FARM_IMG_UNKNOWN, 0, e)))
			goto out;
		size_t total = 0;
		for (size_t i = 0; i < img->n_segs && !rc; i++) {
			const struct farm_image_segment *g = &img->segs[i];
			if ((uint64_t)g->addr + g->len > len) {
				printf("skipped segment 0x%08x (%u bytes)\n", g->addr, g->len);
				continue;
			}
			unsigned char *got = malloc(g->len ? g->len : 1);
			if (!got) {
				rc = farm_err_set(e, FARM_ENOMEM, "out of memory");
				break;
			}
			rc = farm_rsp_write_mem(c->rsp, g->addr, g->data, g->len, NULL, NULL, e);
			if (!rc)
				rc = farm_rsp_read_mem(c->rsp, g->addr, got, g->len, NULL, NULL, e);
			if (!rc && memcmp(got, g->data, g->len))
				rc = farm_err_set(e, FARM_EIO, "segment at 0x%08x reads back different", g->addr);
			free(got);
			total += g->len;
		}
		farm_image_free(img);
		if (rc)
			goto out;
		rate("image written and read back:", total, farm_now_ms() - t0);
	} else {
		rc = farm_err_set(e, FARM_EINVAL, "unknown step '%s'", s);
	}
out:
	farm_buf_free(&b);
	return rc;
#undef NEED
}

static void wire(void *p, char dir, const char *data, size_t len)
{
	FILE *f = p;
	fprintf(f, "%c ", dir);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)data[i];
		if (ch >= 0x20 && ch < 0x7f && ch != '\\')
			fputc(ch, f);
		else
			fprintf(f, "\\x%02x", ch);
	}
	fputc('\n', f);
}

int main(int argc, char **argv)
{
	int timeout = 3000, done_timeout = 30000;
	const char *wire_path = NULL;
	int i = 1;
	for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
		if (!strcmp(argv[i], "--timeout"))
			timeout = (int)strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--done-timeout"))
			done_timeout = (int)strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--wire"))
			wire_path = argv[i + 1];
		else
			break;
	}
	if (i >= argc || timeout <= 0 || done_timeout <= 0) {
		fprintf(stderr, "usage: rsp_client_test [--timeout MS] [--done-timeout MS] [--wire FILE] URL STEP...\n");
		return 2;
	}
	struct farm_err e = { 0 };
	struct ctx c = { .done_timeout = done_timeout };
	long long t0 = farm_now_ms();
	int rc = farm_rsp_connect(&c.rsp, argv[i], timeout, NULL, &e);
	FILE *wf = NULL;
	if (!rc) {
		printf("connected in %lld ms\n", farm_now_ms() - t0);
		if (wire_path && (wf = fopen(wire_path, "w")))
			farm_rsp_set_log(c.rsp, wire, wf);
	}
	for (i++; !rc && i < argc;) {
		int used = 1;
		rc = step(&c, argv + i, argc - i, &used, &e);
		i += used;
	}
	fflush(stdout);
	if (rc)
		fprintf(stderr, "error: %s (%s)\n", e.msg, farm_strerror(rc));
	farm_rsp_close(c.rsp);
	if (wf)
		fclose(wf);
	return rc ? 1 : 0;
}
