/* Tests for farm/image_uf2.c: the vectors of /work/shared/protocols/uf2.md,
 * flags, numbering, concatenated files, picotool's RP2350-E10 block, hostile
 * input (truncation, every single-bit flip, classified by field), writer. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "image.h"

#define BLK 512
#define RP2040 0xe48bff56u
#define RP2350_ARM_S 0xe48bff59u
#define ABSOLUTE 0xe48bff57u

/* ---- helpers ---- */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

struct blk {
	uint32_t flags, addr, size, no, total, family;
	uint8_t fill; /* payload bytes are fill + index */
};

static void make_block(uint8_t *p, const struct blk *b)
{
	memset(p, 0, BLK);
	put32(p, 0x0A324655);
	put32(p + 4, 0x9E5D5157);
	put32(p + 8, b->flags);
	put32(p + 12, b->addr);
	put32(p + 16, b->size);
	put32(p + 20, b->no);
	put32(p + 24, b->total);
	put32(p + 28, b->family);
	for (uint32_t i = 0; i < b->size && i < 476; i++)
		p[32 + i] = (uint8_t)(b->fill + i);
	put32(p + 508, 0x0AB16F30);
}

/* A file of n blocks. */
static uint8_t *make_file(const struct blk *b, size_t n)
{
	uint8_t *f = malloc(n * BLK);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	for (size_t i = 0; i < n; i++)
		make_block(f + i * BLK, &b[i]);
	return f;
}

static struct farm_image *parse(const uint8_t *d, size_t len, struct farm_err *e)
{
	struct farm_image *img = NULL;
	int rc = farm_image_parse_uf2(&img, d, len, "fw.uf2", e);
	CU_ASSERT((rc == 0) == (img != NULL));
	return img;
}

static void expect_error(const struct blk *b, size_t n, const char *msg)
{
	uint8_t *f = make_file(b, n);
	struct farm_err e = {0};
	struct farm_image *img = parse(f, n * BLK, &e);
	CU_ASSERT_PTR_NULL(img);
	CU_ASSERT_EQUAL(e.code, FARM_EINVAL);
	if (strcmp(e.msg, msg) != 0)
		fprintf(stderr, "\n  got:  %s\n  want: %s\n", e.msg, msg);
	CU_ASSERT_STRING_EQUAL(e.msg, msg);
	farm_image_free(img);
	free(f);
}

static int same_image(const struct farm_image *a, const struct farm_image *b)
{
	if (!a || !b || a->n_segs != b->n_segs || a->has_family != b->has_family ||
	    a->uf2_family != b->uf2_family)
		return 0;
	for (size_t i = 0; i < a->n_segs; i++)
		if (a->segs[i].addr != b->segs[i].addr || a->segs[i].len != b->segs[i].len ||
		    memcmp(a->segs[i].data, b->segs[i].data, a->segs[i].len) != 0)
			return 0;
	return 1;
}

#define FAM 0x2000u

/* ---- vectors and basics ---- */

/* uf2.md: block 0 and 1 of 2, RP2040, 0x10000000, payload 256. */
static void test_vector_writer(void)
{
	struct farm_image *img = NULL;
	struct farm_err e = {0};
	CU_ASSERT_EQUAL_FATAL(farm_image_new(&img, FARM_IMG_BIN, &e), 0);
	uint8_t d[512];
	for (int i = 0; i < 512; i++)
		d[i] = (uint8_t)i;
	CU_ASSERT_EQUAL(farm_image_add(img, 0x10000000, d, 512, &e), 0);
	struct farm_buf b = {0};
	CU_ASSERT_EQUAL_FATAL(farm_image_write_uf2(img, RP2040, &b, &e), 0);
	CU_ASSERT_EQUAL_FATAL(b.len, 1024);
	static const uint8_t head0[32] = {0x55, 0x46, 0x32, 0x0A, 0x57, 0x51, 0x5D, 0x9E,
					  0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
					  0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
					  0x02, 0x00, 0x00, 0x00, 0x56, 0xFF, 0x8B, 0xE4};
	static const uint8_t head1[32] = {0x55, 0x46, 0x32, 0x0A, 0x57, 0x51, 0x5D, 0x9E,
					  0x00, 0x20, 0x00, 0x00, 0x00, 0x01, 0x00, 0x10,
					  0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
					  0x02, 0x00, 0x00, 0x00, 0x56, 0xFF, 0x8B, 0xE4};
	static const uint8_t tail[8] = {0x00, 0x00, 0x00, 0x00, 0x30, 0x6F, 0xB1, 0x0A};
	const uint8_t *p = (const uint8_t *)b.data;
	CU_ASSERT_EQUAL(memcmp(p, head0, 32), 0);
	CU_ASSERT_EQUAL(memcmp(p + 504, tail, 8), 0);
	CU_ASSERT_EQUAL(memcmp(p + 512, head1, 32), 0);
	CU_ASSERT_EQUAL(memcmp(p + 512 + 504, tail, 8), 0);
	CU_ASSERT_EQUAL(memcmp(p + 32, d, 256), 0);
	CU_ASSERT_EQUAL(memcmp(p + 512 + 32, d + 256, 256), 0);
	/* padding after the payload is zero */
	int zero = 1;
	for (int i = 32 + 256; i < 508; i++)
		zero &= p[i] == 0;
	CU_ASSERT(zero);
	CU_ASSERT_EQUAL(farm_image_detect(b.data, b.len, NULL), FARM_IMG_UF2);

	struct farm_image *back = parse(p, b.len, &e);
	CU_ASSERT(back && back->format == FARM_IMG_UF2 && back->has_family &&
		  back->uf2_family == RP2040);
	CU_ASSERT(back && back->n_segs == 1 && back->segs[0].addr == 0x10000000 &&
		  back->segs[0].len == 512 && memcmp(back->segs[0].data, d, 512) == 0);
	CU_ASSERT(back && !back->has_entry);
	farm_image_free(back);
	farm_image_free(img);
	farm_buf_free(&b);
}

/* Payload sizes other than 256, no family, page-sharing segments. */
static void test_parse_variants(void)
{
	struct blk b[3] = {
		{0, 0x2000, 476, 0, 3, 0, 1},
		{0, 0x2000 + 476, 4, 1, 3, 0, 2},
		{0, 0x3000, 0, 2, 3, 0, 3}, /* an empty payload is harmless */
	};
	uint8_t *f = make_file(b, 3);
	struct farm_err e = {0};
	struct farm_image *img = parse(f, 3 * BLK, &e);
	CU_ASSERT(img && img->n_segs == 1 && img->segs[0].len == 480 && !img->has_family);
	CU_ASSERT(img && img->segs[0].data[476] == 2);
	farm_image_free(img);
	free(f);

	/* the writer shares a page between two close segments */
	CU_ASSERT_EQUAL_FATAL(farm_image_new(&img, FARM_IMG_BIN, &e), 0);
	CU_ASSERT_EQUAL(farm_image_add(img, 0x100, "ab", 2, &e), 0);
	CU_ASSERT_EQUAL(farm_image_add(img, 0x1f0, "cd", 2, &e), 0);
	CU_ASSERT_EQUAL(farm_image_add(img, 0x2ff, "ef", 2, &e), 0);
	struct farm_buf out = {0};
	CU_ASSERT_EQUAL(farm_image_write_uf2(img, 0, &out, &e), 0);
	CU_ASSERT_EQUAL(out.len, 3 * BLK); /* pages 0x100, 0x200, 0x300 */
	struct farm_image *back = parse((uint8_t *)out.data, out.len, &e);
	CU_ASSERT_FATAL(back != NULL);
	CU_ASSERT(back->n_segs == 1 && back->segs[0].addr == 0x100 && back->segs[0].len == 0x300);
	CU_ASSERT(back->segs[0].data[0] == 'a' && back->segs[0].data[2] == 0xff &&
		  back->segs[0].data[0xf0] == 'c' && back->segs[0].data[0x1ff] == 'e' &&
		  back->segs[0].data[0x200] == 'f' && back->segs[0].data[0x201] == 0xff);
	CU_ASSERT_EQUAL(get32((uint8_t *)out.data + 24), 3);
	farm_image_free(back);
	farm_image_free(img);
	farm_buf_free(&out);
}

static void test_flags(void)
{
	/* not-main-flash blocks are numbered, their data skipped */
	struct blk b[3] = {
		{FAM, 0x10000000, 256, 0, 3, RP2040, 1},
		{FAM | 1, 0x20000000, 256, 1, 3, RP2040, 2},
		{FAM, 0x10000100, 256, 2, 3, RP2040, 3},
	};
	uint8_t *f = make_file(b, 3);
	struct farm_err e = {0};
	struct farm_image *img = parse(f, 3 * BLK, &e);
	CU_ASSERT(img && img->n_segs == 1 && farm_image_size(img) == 512 && img->uf2_family == RP2040);
	farm_image_free(img);
	free(f);

	/* MD5 and extension-tag flags change nothing */
	b[1].flags = FAM | 0x4000 | 0x8000;
	f = make_file(b, 3);
	img = parse(f, 3 * BLK, &e);
	CU_ASSERT(img && img->n_segs == 2 && farm_image_size(img) == 768);
	farm_image_free(img);
	free(f);

	/* only not-main-flash blocks: nothing to flash */
	struct blk only[1] = {{1, 0, 256, 0, 1, 0, 0}};
	expect_error(only, 1, "fw.uf2: no main-flash data");
	struct blk file[1] = {{0x1000, 0, 256, 0, 1, 1234, 0}};
	expect_error(file, 1,
		     "fw.uf2: block 0 (offset 0): file-container block (flags 0x00001000): not a flash "
		     "image");
	struct blk md5[1] = {{0x4000, 0, 460, 0, 1, 0, 0}};
	expect_error(md5, 1,
		     "fw.uf2: block 0 (offset 0): payload size 460 overlaps the MD5 record (flag "
		     "0x4000: at most 452)");
}

static void test_numbering(void)
{
	struct blk gap[3] = {{0, 0, 256, 0, 3, 0, 0}, {0, 256, 256, 2, 3, 0, 0}, {0, 512, 256, 1, 3, 0, 0}};
	expect_error(gap, 3,
		     "fw.uf2: block 1 (offset 512): block number 2, expected 1: blocks missing or out "
		     "of order");
	struct blk start[1] = {{0, 0, 256, 1, 2, 0, 0}};
	expect_error(start, 1,
		     "fw.uf2: block 0 (offset 0): block number 1 where a sequence starts (expected 0): "
		     "blocks missing or out of order");
	struct blk total[2] = {{0, 0, 256, 0, 2, 0, 0}, {0, 256, 256, 1, 3, 0, 0}};
	expect_error(total, 2,
		     "fw.uf2: block 1 (offset 512): total number of blocks 3, the sequence started with 2");
	struct blk zero[1] = {{0, 0, 256, 0, 0, 0, 0}};
	expect_error(zero, 1, "fw.uf2: block 0 (offset 0): total number of blocks is 0");
	struct blk missing[2] = {{0, 0, 256, 0, 3, 0, 0}, {0, 256, 256, 1, 3, 0, 0}};
	expect_error(missing, 2,
		     "fw.uf2: the file ends inside a sequence: block 2 of 3 is missing (truncated?)");
	struct blk huge[1] = {{0, 0, 256, 0, 0xffffffff, 0, 0}};
	expect_error(huge, 1,
		     "fw.uf2: the file ends inside a sequence: block 1 of 4294967295 is missing "
		     "(truncated?)");
	struct blk dup[2] = {{0, 0x100, 256, 0, 2, 0, 0}, {0, 0x180, 256, 1, 2, 0, 0}};
	expect_error(dup, 2,
		     "fw.uf2: block 1 (offset 512): bytes 0x00000180-0x0000027f overlap bytes "
		     "0x00000100-0x000001ff already in the image");
	struct blk big[1] = {{0, 0, 477, 0, 1, 0, 0}};
	expect_error(big, 1, "fw.uf2: block 0 (offset 0): payload size 477, at most 476");
	struct blk wrap[1] = {{0, 0xffffff80, 256, 0, 1, 0, 0}};
	expect_error(wrap, 1,
		     "fw.uf2: block 0 (offset 0): 256 bytes at 0xffffff80 run past address 0xffffffff");
}

static void test_families(void)
{
	struct blk mixed[2] = {{FAM, 0, 256, 0, 2, RP2040, 0}, {FAM, 256, 256, 1, 2, RP2350_ARM_S, 0}};
	expect_error(mixed, 2,
		     "fw.uf2: block 1 (offset 512): family id 0xe48bff59, earlier blocks have 0xe48bff56 "
		     "(multi-family UF2 files are not supported)");
	struct blk half[2] = {{FAM, 0, 256, 0, 2, RP2040, 0}, {0, 256, 256, 1, 2, 0, 0}};
	expect_error(half, 2, "fw.uf2: block 1 (offset 512): no family id, earlier blocks have 0xe48bff56");
	struct blk late[2] = {{0, 0, 256, 0, 2, 0, 0}, {FAM, 256, 256, 1, 2, RP2040, 0}};
	expect_error(late, 2, "fw.uf2: block 1 (offset 512): family id 0xe48bff56, earlier blocks have none");
	/* two concatenated families are refused even as separate sequences */
	struct blk two[2] = {{FAM, 0, 256, 0, 1, RP2040, 0}, {FAM, 0x1000, 256, 0, 1, RP2350_ARM_S, 0}};
	expect_error(two, 2,
		     "fw.uf2: block 1 (offset 512): family id 0xe48bff59, earlier blocks have 0xe48bff56 "
		     "(multi-family UF2 files are not supported)");
}

/* Several UF2 files concatenated: each sequence numbered on its own. */
static void test_concatenated(void)
{
	struct blk b[5] = {
		{FAM, 0x10000000, 256, 0, 2, RP2040, 1},   {FAM, 0x10000100, 256, 1, 2, RP2040, 2},
		{FAM, 0x10100000, 256, 0, 3, RP2040, 3},   {FAM, 0x10100100, 256, 1, 3, RP2040, 4},
		{FAM, 0x10100200, 256, 2, 3, RP2040, 5},
	};
	uint8_t *f = make_file(b, 5);
	struct farm_err e = {0};
	struct farm_image *img = parse(f, 5 * BLK, &e);
	CU_ASSERT(img && img->n_segs == 2 && farm_image_size(img) == 5 * 256);
	farm_image_free(img);
	/* cut inside the second sequence */
	img = parse(f, 4 * BLK, &e);
	CU_ASSERT_PTR_NULL(img);
	CU_ASSERT_STRING_EQUAL(e.msg, "fw.uf2: the file ends inside a sequence: block 2 of 3 is "
				      "missing (truncated?)");
	free(f);
}

/* picotool's RP2350-E10 absolute block before an RP2350 image. */
static void test_rp2350_e10_block(void)
{
	struct blk b[3] = {
		{FAM, 0x10ffff00, 256, 0, 2, ABSOLUTE, 0},
		{FAM, 0x10000000, 256, 0, 2, RP2350_ARM_S, 1},
		{FAM, 0x10000100, 256, 1, 2, RP2350_ARM_S, 2},
	};
	uint8_t *f = make_file(b, 3);
	memset(f + 32, 0xef, 256);
	struct farm_err e = {0};
	struct farm_image *img = parse(f, 3 * BLK, &e);
	if (!img)
		fprintf(stderr, "%s\n", e.msg);
	CU_ASSERT(img && img->n_segs == 1 && img->segs[0].addr == 0x10000000 &&
		  farm_image_size(img) == 512 && img->has_family && img->uf2_family == RP2350_ARM_S);
	farm_image_free(img);
	/* the same block with other contents is an ordinary (foreign-family) block */
	f[32 + 17] = 0;
	img = parse(f, 3 * BLK, &e);
	CU_ASSERT_PTR_NULL(img);
	CU_ASSERT_STRING_EQUAL(e.msg, "fw.uf2: block 1 (offset 512): block number 0, expected 1: "
				      "blocks missing or out of order");
	free(f);
	/* an absolute image whose first block looks like it, with its block 1 */
	struct blk abs[2] = {{FAM, 0x10000000, 256, 0, 2, ABSOLUTE, 0},
			     {FAM, 0x10000100, 256, 1, 2, ABSOLUTE, 0}};
	f = make_file(abs, 2);
	memset(f + 32, 0xef, 256);
	img = parse(f, 2 * BLK, &e);
	CU_ASSERT(img && farm_image_size(img) == 512 && img->uf2_family == ABSOLUTE);
	farm_image_free(img);
	free(f);
}

static void test_bad_magics_and_sizes(void)
{
	struct blk b[2] = {{0, 0, 256, 0, 2, 0, 0}, {0, 256, 256, 1, 2, 0, 0}};
	uint8_t *f = make_file(b, 2);
	struct farm_err e = {0};
	static const struct {
		size_t at;
		const char *msg;
	} cases[] = {
		{512 + 0, "fw.uf2: block 1 (offset 512): bad first magic 0x0a324654, expected 0x0a324655"},
		{512 + 4, "fw.uf2: block 1 (offset 512): bad second magic 0x9e5d5156, expected 0x9e5d5157"},
		{512 + 508, "fw.uf2: block 1 (offset 512): bad final magic 0x0ab16f31, expected 0x0ab16f30"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		f[cases[i].at] ^= 1;
		struct farm_image *img = parse(f, 2 * BLK, &e);
		CU_ASSERT_PTR_NULL(img);
		CU_ASSERT_STRING_EQUAL(e.msg, cases[i].msg);
		f[cases[i].at] ^= 1;
	}
	struct farm_image *img = parse(f, 0, &e);
	CU_ASSERT_STRING_EQUAL(e.msg, "fw.uf2: empty file");
	img = parse(f, 1000, &e);
	CU_ASSERT_PTR_NULL(img);
	CU_ASSERT_STRING_EQUAL(e.msg, "fw.uf2: file size 1000 is not a multiple of 512 bytes (truncated?)");
	free(f);
}

/* Cut at every byte: never accepted (the file is one sequence). */
static void test_truncated_everywhere(void)
{
	struct blk b[3] = {{FAM, 0x10000000, 256, 0, 3, RP2040, 1},
			   {FAM, 0x10000100, 256, 1, 3, RP2040, 2},
			   {FAM, 0x10000200, 256, 2, 3, RP2040, 3}};
	uint8_t *f = make_file(b, 3);
	for (size_t cut = 0; cut < 3 * BLK; cut++) {
		struct farm_err e = {0};
		struct farm_image *img = parse(f, cut, &e);
		CU_ASSERT_PTR_NULL(img);
		farm_image_free(img);
	}
	free(f);
}

/* What a literal reading of the (flipped) headers gives: used to check that
 * an accepted flip of an address or size field did exactly what it says. */
static struct farm_image *literal(const uint8_t *f, size_t n)
{
	struct farm_image *img = NULL;
	struct farm_err e = {0};
	if (farm_image_new(&img, FARM_IMG_UF2, &e))
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = f + i * BLK;
		if (get32(p + 16) > 476) {
			farm_image_free(img);
			return NULL;
		}
		if ((get32(p + 8) & 1) == 0 &&
		    farm_image_add(img, get32(p + 12), p + 32, get32(p + 16), &e)) {
			farm_image_free(img);
			return NULL;
		}
	}
	img->has_family = 1;
	img->uf2_family = RP2040;
	return img;
}

/* Flip every bit of every byte of a three-block file. UF2 has no checksum,
 * so what a flip may do depends on the field:
 *   magics, block number, total, family      -> always refused
 *   flags                                    -> refused or identical, except bit 0
 *                                               (not main flash), which drops the block
 *   target address, payload size             -> refused, or exactly what the header says
 *   payload bytes                            -> accepted, that byte differs
 *   padding after the payload                -> identical */
static void test_bit_flips(void)
{
	struct blk b[3] = {{FAM, 0x10000000, 256, 0, 3, RP2040, 1},
			   {FAM, 0x10000100, 256, 1, 3, RP2040, 2},
			   {FAM, 0x10000200, 256, 2, 3, RP2040, 3}};
	const size_t len = 3 * BLK;
	uint8_t *f = make_file(b, 3);
	struct farm_err e = {0};
	struct farm_image *full = parse(f, len, &e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(full);
	size_t refused = 0, same = 0, changed = 0;
	for (size_t i = 0; i < len; i++) {
		size_t o = i % BLK;
		for (int bit = 0; bit < 8; bit++) {
			f[i] ^= (uint8_t)(1 << bit);
			struct farm_image *img = parse(f, len, &e);
			int ok = 1;
			if (o < 8 || (o >= 20 && o < 32) || o >= 508) {
				ok = img == NULL;
			} else if (o < 12) {
				if (o == 8 && bit == 0) {
					ok = img && farm_image_size(img) == 512;
				} else {
					ok = !img || same_image(img, full);
				}
			} else if (o < 20) {
				struct farm_image *want = literal(f, 3);
				ok = !img || same_image(img, want);
				farm_image_free(want);
			} else if (o < 32 + 256) {
				ok = img && img->n_segs == 1 && farm_image_size(img) == 768 &&
				     img->segs[0].data[(i / BLK) * 256 + o - 32] ==
					     (uint8_t)(full->segs[0].data[(i / BLK) * 256 + o - 32] ^ (1 << bit));
			} else {
				ok = img && same_image(img, full);
			}
			if (!ok)
				fprintf(stderr, "\nflip of bit %d at offset %zu: %s\n", bit, i,
					img ? "accepted" : e.msg);
			CU_ASSERT(ok);
			refused += img == NULL;
			same += img && same_image(img, full);
			changed += img && !same_image(img, full);
			farm_image_free(img);
			f[i] ^= (uint8_t)(1 << bit);
		}
	}
	CU_ASSERT(refused > 0 && same > 0 && changed > 0);
	farm_image_free(full);
	free(f);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("image_uf2", NULL, NULL);
	if (!s)
		return -1;
	const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{"uf2.md vectors from the writer, parsed back", test_vector_writer},
		{"payload sizes, no family, shared pages", test_parse_variants},
		{"flags: not main flash, MD5, tags, file container", test_flags},
		{"block numbering and totals", test_numbering},
		{"family ids must agree", test_families},
		{"concatenated files", test_concatenated},
		{"RP2350-E10 absolute block skipped", test_rp2350_e10_block},
		{"bad magics, empty and partial files", test_bad_magics_and_sizes},
		{"truncated at every byte", test_truncated_everywhere},
		{"every single-bit flip, by field", test_bit_flips},
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
