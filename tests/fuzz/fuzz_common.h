/* Shared body of the image parser fuzzers (tests/fuzz/fuzz_<format>.c).
 *
 * One input: parse it; a failure must leave *out NULL and a message; a
 * success must give a well-formed image (sorted, non-overlapping, non-empty
 * segments within the bounds) that survives every writer: Intel HEX and
 * DfuSe give back the same segments (and entry / suffix facts), UF2 gives
 * back the same bytes padded with 0xff to whole 256-byte pages, bin gives
 * back the bytes at their offsets. Any violation aborts (a libFuzzer crash).
 *
 * With MPFARM_FUZZ_REQUIRE_OK set in the environment, a parse failure aborts
 * too: run_fuzz.sh uses it to prove the seed corpus reaches the round trips. */
#ifndef MPFARM_FUZZ_COMMON_H
#define MPFARM_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "flashmap.h"
#include "image.h"

#define FUZZ_CHECK(cond)                                                                     \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                             \
		}                                                                            \
	} while (0)

static void fuzz_well_formed(const struct farm_image *img)
{
	FUZZ_CHECK(img->n_segs > 0 && img->n_segs <= FARM_IMAGE_MAX_SEGMENTS);
	size_t total = 0;
	for (size_t i = 0; i < img->n_segs; i++) {
		const struct farm_image_segment *s = &img->segs[i];
		FUZZ_CHECK(s->len > 0 && s->data != NULL);
		FUZZ_CHECK((uint64_t)s->addr + s->len <= 0x100000000ull);
		if (i > 0) /* sorted, apart: adjacent runs are merged */
			FUZZ_CHECK((uint64_t)img->segs[i - 1].addr + img->segs[i - 1].len < s->addr);
		total += s->len;
	}
	FUZZ_CHECK(total == farm_image_size(img) && total <= FARM_IMAGE_MAX_BYTES);
}

static int fuzz_same_segments(const struct farm_image *a, const struct farm_image *b)
{
	if (a->n_segs != b->n_segs)
		return 0;
	for (size_t i = 0; i < a->n_segs; i++)
		if (a->segs[i].addr != b->segs[i].addr || a->segs[i].len != b->segs[i].len ||
		    memcmp(a->segs[i].data, b->segs[i].data, a->segs[i].len) != 0)
			return 0;
	return 1;
}

static struct farm_image *fuzz_reparse(enum farm_image_format fmt, const struct farm_buf *b)
{
	struct farm_image *img = NULL;
	struct farm_err e = {0};
	if (farm_image_parse(&img, fmt, b->data, b->len, "round-trip", &e) != 0) {
		fprintf(stderr, "re-parse as %s failed: %s\n", farm_image_format_name(fmt), e.msg);
		abort();
	}
	fuzz_well_formed(img);
	return img;
}

/* The byte at addr in img, or -1. */
static int fuzz_byte_at(const struct farm_image *img, uint32_t addr)
{
	size_t lo = 0, hi = img->n_segs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct farm_image_segment *s = &img->segs[mid];
		if (addr < s->addr)
			hi = mid;
		else if (addr - s->addr >= s->len)
			lo = mid + 1;
		else
			return s->data[addr - s->addr];
	}
	return -1;
}

static void fuzz_round_trips(const struct farm_image *img)
{
	struct farm_buf b = {0};
	struct farm_err e = {0};
	char want[65], got[65];
	farm_image_sha256(img, want);

	FUZZ_CHECK(farm_image_write_ihex(img, &b, &e) == 0);
	struct farm_image *back = fuzz_reparse(FARM_IMG_IHEX, &b);
	FUZZ_CHECK(fuzz_same_segments(img, back));
	FUZZ_CHECK(back->has_entry == img->has_entry && back->entry == img->entry);
	farm_image_sha256(back, got);
	FUZZ_CHECK(strcmp(want, got) == 0);
	farm_image_free(back);

	farm_buf_reset(&b);
	uint16_t vid = img->has_dfuse ? img->dfu_vid : 0x0483, pid = img->has_dfuse ? img->dfu_pid : 0xdf11;
	FUZZ_CHECK(farm_image_write_dfuse(img, vid, pid, img->dfuse_alt, img->dfuse_target_name, &b,
					  &e) == 0);
	back = fuzz_reparse(FARM_IMG_DFUSE, &b);
	FUZZ_CHECK(fuzz_same_segments(img, back));
	FUZZ_CHECK(back->dfu_vid == vid && back->dfu_pid == pid && back->dfuse_alt == img->dfuse_alt);
	FUZZ_CHECK(strcmp(back->dfuse_target_name, img->dfuse_target_name) == 0);
	FUZZ_CHECK(back->dfu_bcd == (img->has_dfuse ? img->dfu_bcd : 0));
	farm_image_free(back);

	farm_buf_reset(&b);
	uint32_t family = img->has_family ? img->uf2_family : 0;
	FUZZ_CHECK(farm_image_write_uf2(img, family, &b, &e) == 0);
	back = fuzz_reparse(FARM_IMG_UF2, &b);
	FUZZ_CHECK(back->has_family == (family != 0) && back->uf2_family == family);
	int aligned = 1;
	for (size_t i = 0; i < img->n_segs; i++) {
		const struct farm_image_segment *s = &img->segs[i];
		aligned &= s->addr % 256 == 0 && s->len % 256 == 0;
		for (uint32_t k = 0; k < s->len; k++)
			FUZZ_CHECK(fuzz_byte_at(back, s->addr + k) == s->data[k]);
	}
	for (size_t i = 0; i < back->n_segs; i++) {
		const struct farm_image_segment *s = &back->segs[i];
		FUZZ_CHECK(s->addr % 256 == 0 && s->len % 256 == 0);
		for (uint32_t k = 0; k < s->len; k++)
			if (fuzz_byte_at(img, s->addr + k) < 0)
				FUZZ_CHECK(s->data[k] == 0xff);
	}
	if (aligned)
		FUZZ_CHECK(fuzz_same_segments(img, back));
	farm_image_free(back);

	/* bin: refused beyond the limit; checked byte by byte when small (a
	 * 64 MiB flattening per input would slow the fuzzer down a hundredfold) */
	uint64_t span = farm_image_end(img) - farm_image_lowest(img);
	farm_buf_reset(&b);
	int rc = 0;
	if (span > FARM_IMAGE_MAX_BYTES)
		FUZZ_CHECK(farm_image_write_bin(img, 0xa5, &b, &e) == FARM_ELIMIT && b.len == 0);
	else if (span <= (1u << 20))
		rc = farm_image_write_bin(img, 0xa5, &b, &e);
	FUZZ_CHECK(rc == 0);
	if (span <= (1u << 20)) {
		FUZZ_CHECK(b.len == span);
		const uint8_t *p = (const uint8_t *)b.data;
		uint64_t at = farm_image_lowest(img);
		for (size_t i = 0; i < img->n_segs; i++) {
			const struct farm_image_segment *s = &img->segs[i];
			for (; at < s->addr; at++)
				FUZZ_CHECK(p[at - farm_image_lowest(img)] == 0xa5);
			FUZZ_CHECK(memcmp(p + (s->addr - farm_image_lowest(img)), s->data, s->len) == 0);
			at = (uint64_t)s->addr + s->len;
		}
	}
	farm_buf_free(&b);

	/* the gate never trips over a parsed image */
	const struct farm_flashmap *const *maps = farm_flashmap_all();
	for (size_t i = 0; maps[i]; i++) {
		int r = farm_flashmap_check(maps[i], img, (int)(i & 1), &e);
		FUZZ_CHECK(r == 0 || (r == FARM_EINVAL && e.msg[0]));
	}
}

static int fuzz_one(enum farm_image_format fmt, const uint8_t *data, size_t size)
{
	struct farm_image *img = (struct farm_image *)1;
	struct farm_err e = {0};
	int rc = farm_image_parse(&img, fmt, data, size, "fuzz", &e);
	if (rc) {
		FUZZ_CHECK(img == NULL);
		FUZZ_CHECK(e.code == rc && e.msg[0] != '\0');
		FUZZ_CHECK(rc == FARM_ENOMEM || strncmp(e.msg, "fuzz: ", 6) == 0);
		FUZZ_CHECK(rc == FARM_EINVAL || rc == FARM_ELIMIT || rc == FARM_ENOMEM);
		if (getenv("MPFARM_FUZZ_REQUIRE_OK")) {
			fprintf(stderr, "seed does not parse: %s\n", e.msg);
			abort();
		}
		return 0;
	}
	FUZZ_CHECK(img != NULL && img->format == fmt);
	fuzz_well_formed(img);
	fuzz_round_trips(img);
	farm_image_free(img);
	return 0;
}

#endif
