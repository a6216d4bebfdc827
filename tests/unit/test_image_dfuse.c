/* Tests for farm/image_dfuse.c: the DfuSe vector of
 * /work/shared/protocols/dfu-dfuse.md byte for byte (reader and writer),
 * every structural check, truncation at every byte and every single-bit flip
 * (the suffix CRC covers every byte: all must be refused). */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "image.h"

#define VEC_LEN 317

/* ---- helpers ---- */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* dfu-util's CRC, bit by bit (the code under test uses a table). */
static uint32_t crc_ref(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
	}
	return c;
}

/* Store a fresh CRC in the last 4 bytes. */
static void fix_crc(uint8_t *f, size_t len)
{
	put32(f + len - 4, crc_ref(f, len - 4));
}

/* dfu-dfuse.md: one element of 8 bytes 00..07 at 0x08000000, VID 0483 PID
 * DF11 bcdDevice 0, target named "ST...", 317 bytes. */
static void make_vector(uint8_t f[VEC_LEN])
{
	static const uint8_t prefix[11] = {0x44, 0x66, 0x75, 0x53, 0x65, 0x01, 0x2D, 0x01, 0x00, 0x00, 0x01};
	static const uint8_t target_head[17] = {0x54, 0x61, 0x72, 0x67, 0x65, 0x74, 0x00, 0x01, 0x00,
						0x00, 0x00, 0x53, 0x54, 0x2E, 0x2E, 0x2E, 0x00};
	static const uint8_t target_tail[8] = {0x10, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00};
	static const uint8_t element[16] = {0x00, 0x00, 0x00, 0x08, 0x08, 0x00, 0x00, 0x00,
					    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};
	static const uint8_t suffix[16] = {0x00, 0x00, 0x11, 0xDF, 0x83, 0x04, 0x1A, 0x01,
					   0x55, 0x46, 0x44, 0x10, 0x47, 0x58, 0x0F, 0x89};
	memset(f, 0, VEC_LEN);
	memcpy(f, prefix, 11);
	memcpy(f + 11, target_head, sizeof target_head);
	memcpy(f + 11 + 266, target_tail, 8);
	memcpy(f + 285, element, 16);
	memcpy(f + 301, suffix, 16);
}

static struct farm_image *parse(const uint8_t *d, size_t len, struct farm_err *e)
{
	struct farm_image *img = NULL;
	int rc = farm_image_parse_dfuse(&img, d, len, "fw.dfu", e);
	CU_ASSERT((rc == 0) == (img != NULL));
	return img;
}

static void expect_error(const uint8_t *f, size_t len, int code, const char *msg)
{
	struct farm_err e = {0};
	struct farm_image *img = parse(f, len, &e);
	CU_ASSERT_PTR_NULL(img);
	CU_ASSERT_EQUAL(e.code, code);
	if (strcmp(e.msg, msg) != 0)
		fprintf(stderr, "\n  got:  %s\n  want: %s\n", e.msg, msg);
	CU_ASSERT_STRING_EQUAL(e.msg, msg);
	farm_image_free(img);
}

/* ---- tests ---- */

static void test_vector_parse(void)
{
	uint8_t f[VEC_LEN];
	make_vector(f);
	CU_ASSERT_EQUAL(crc_ref(f, VEC_LEN - 4), 0x890F5847); /* the vector is self-consistent */
	CU_ASSERT_EQUAL(farm_image_detect(f, VEC_LEN, NULL), FARM_IMG_DFUSE);
	struct farm_err e = {0};
	struct farm_image *img = parse(f, VEC_LEN, &e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(img);
	static const uint8_t data[8] = {0, 1, 2, 3, 4, 5, 6, 7};
	CU_ASSERT_EQUAL(img->format, FARM_IMG_DFUSE);
	CU_ASSERT(img->n_segs == 1 && img->segs[0].addr == 0x08000000 && img->segs[0].len == 8 &&
		  memcmp(img->segs[0].data, data, 8) == 0);
	CU_ASSERT(img->has_dfuse && img->dfu_vid == 0x0483 && img->dfu_pid == 0xdf11 &&
		  img->dfu_bcd == 0 && img->dfuse_alt == 0);
	CU_ASSERT_STRING_EQUAL(img->dfuse_target_name, "ST...");
	CU_ASSERT(!img->has_entry && !img->has_family);
	farm_image_free(img);
}

static void test_vector_writer(void)
{
	uint8_t want[VEC_LEN];
	make_vector(want);
	struct farm_image *img = NULL;
	struct farm_err e = {0};
	CU_ASSERT_EQUAL_FATAL(farm_image_new(&img, FARM_IMG_BIN, &e), 0);
	static const uint8_t data[8] = {0, 1, 2, 3, 4, 5, 6, 7};
	CU_ASSERT_EQUAL(farm_image_add(img, 0x08000000, data, 8, &e), 0);
	struct farm_buf b = {0};
	farm_buf_puts(&b, "xyz"); /* appended after what is there; the CRC covers only the file */
	CU_ASSERT_EQUAL_FATAL(farm_image_write_dfuse(img, 0x0483, 0xdf11, 0, "ST...", &b, &e), 0);
	CU_ASSERT_EQUAL_FATAL(b.len, 3 + VEC_LEN);
	CU_ASSERT_EQUAL(memcmp(b.data + 3, want, VEC_LEN), 0);
	for (size_t i = 0; i < VEC_LEN; i++)
		if ((uint8_t)b.data[3 + i] != want[i]) {
			fprintf(stderr, "first difference at %zu\n", i);
			break;
		}
	farm_image_free(img);
	farm_buf_free(&b);
}

static void test_plain_dfu_refused(void)
{
	/* dfu-dfuse.md: plain suffix for 01 02 03 04, CRC 0xA5231396 */
	static const uint8_t plain[20] = {0x01, 0x02, 0x03, 0x04, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
					  0x00, 0x01, 0x55, 0x46, 0x44, 0x10, 0x96, 0x13, 0x23, 0xA5};
	CU_ASSERT_EQUAL(crc_ref(plain, 16), 0xA5231396);
	expect_error(plain, sizeof plain, FARM_EINVAL,
		     "fw.dfu: no \"DfuSe\" prefix (a plain DFU file has no addresses)");
	CU_ASSERT_EQUAL(farm_image_detect(plain, sizeof plain, "fw.dfu"), FARM_IMG_DFUSE);
}

static void test_frame_errors(void)
{
	uint8_t f[VEC_LEN + 8];
	make_vector(f);
	expect_error(f, 20, FARM_EINVAL, "fw.dfu: 20 bytes: too short for a DfuSe file (truncated?)");
	expect_error(f, VEC_LEN - 1, FARM_EINVAL,
		     "fw.dfu: no DFU suffix: \"UFD\" signature missing at offset 308 (truncated?)");
	f[VEC_LEN - 1] ^= 0x01;
	expect_error(f, VEC_LEN, FARM_EINVAL,
		     "fw.dfu: DFU suffix CRC 0x880f5847, computed 0x890f5847 (file corrupted?)");
	make_vector(f);
	f[312] = 15;
	fix_crc(f, VEC_LEN);
	expect_error(f, VEC_LEN, FARM_EINVAL, "fw.dfu: DFU suffix length 15, expected 16");
	make_vector(f);
	f[307] = 0x00; /* bcdDFU 0x0100 */
	f[308] = 0x01;
	fix_crc(f, VEC_LEN);
	expect_error(f, VEC_LEN, FARM_EINVAL,
		     "fw.dfu: bcdDFU 0x0100 in the suffix, expected 0x011a for DfuSe");
	make_vector(f);
	f[5] = 2;
	fix_crc(f, VEC_LEN);
	expect_error(f, VEC_LEN, FARM_EINVAL, "fw.dfu: DfuSe version 2, expected 1");
	make_vector(f);
	f[6] = 0x2c;
	fix_crc(f, VEC_LEN);
	expect_error(f, VEC_LEN, FARM_EINVAL,
		     "fw.dfu: image size 300 in the prefix, but the file holds 301 bytes before its "
		     "suffix");
	make_vector(f);
	f[10] = 0;
	fix_crc(f, VEC_LEN);
	expect_error(f, VEC_LEN, FARM_EINVAL, "fw.dfu: no targets");
	f[10] = 2;
	fix_crc(f, VEC_LEN);
	expect_error(f, VEC_LEN, FARM_EINVAL,
		     "fw.dfu: 2 targets (alternate settings): several targets are not supported");
}

static void test_target_errors(void)
{
	uint8_t f[VEC_LEN + 8];
	make_vector(f);
	f[11] = 't';
	fix_crc(f, VEC_LEN);
	expect_error(f, VEC_LEN, FARM_EINVAL, "fw.dfu: target 0 (offset 11): no \"Target\" signature");

	/* element size past the end of the file, and into the suffix */
	make_vector(f);
	put32(f + 289, 99999);
	fix_crc(f, VEC_LEN);
	expect_error(f, VEC_LEN, FARM_EINVAL,
		     "fw.dfu: target 0 element 0 (offset 285): size 99999 runs past the end of the file "
		     "(317 bytes)");
	put32(f + 289, 20);
	fix_crc(f, VEC_LEN);
	expect_error(f, VEC_LEN, FARM_EINVAL,
		     "fw.dfu: target 0 element 0 (offset 285): size 20 runs into the DFU suffix at "
		     "offset 301");
	put32(f + 289, 0xffffffff);
	fix_crc(f, VEC_LEN);
	expect_error(f, VEC_LEN, FARM_EINVAL,
		     "fw.dfu: target 0 element 0 (offset 285): size 4294967295 runs past the end of the "
		     "file (317 bytes)");

	/* element counts */
	make_vector(f);
	put32(f + 281, 0xffffffff);
	fix_crc(f, VEC_LEN);
	expect_error(f, VEC_LEN, FARM_EINVAL,
		     "fw.dfu: target 0: 4294967295 elements cannot fit in the 16 bytes left");
	put32(f + 281, 2);
	fix_crc(f, VEC_LEN);
	expect_error(f, VEC_LEN, FARM_EINVAL,
		     "fw.dfu: target 0 element 1 (offset 301): element header runs past the end of the "
		     "image (301 bytes before the suffix)");
	put32(f + 281, 0);
	fix_crc(f, VEC_LEN);
	expect_error(f, VEC_LEN, FARM_EINVAL,
		     "fw.dfu: target 0: target size 16, but its 0 elements take 0 bytes");

	/* target size disagreeing with the elements */
	make_vector(f);
	put32(f + 277, 17);
	fix_crc(f, VEC_LEN);
	expect_error(f, VEC_LEN, FARM_EINVAL,
		     "fw.dfu: target 0: target size 17, but its 1 elements take 16 bytes");

	/* bytes between the last element and the suffix */
	uint8_t g[VEC_LEN + 4];
	make_vector(f);
	memcpy(g, f, 301);
	memset(g + 301, 0xaa, 4);
	memcpy(g + 305, f + 301, 16);
	put32(g + 6, 305);
	fix_crc(g, sizeof g);
	expect_error(g, sizeof g, FARM_EINVAL,
		     "fw.dfu: 4 unexpected bytes after the last target (offset 301)");

	/* no target prefix room at all */
	uint8_t h[11 + 16];
	memcpy(h, f, 11);
	put32(h + 6, 11);
	memcpy(h + 11, f + 301, 16);
	fix_crc(h, sizeof h);
	expect_error(h, sizeof h, FARM_EINVAL,
		     "fw.dfu: target 0 (offset 11): the target prefix runs past the end of the image "
		     "(11 bytes before the suffix)");

	/* an element of no bytes only: nothing to flash */
	uint8_t z[VEC_LEN - 8];
	memcpy(z, f, 285);
	put32(z + 277, 8);
	memset(z + 285, 0, 8); /* address 0, size 0 */
	memcpy(z + 293, f + 301, 16);
	put32(z + 6, 293);
	fix_crc(z, sizeof z);
	expect_error(z, sizeof z, FARM_EINVAL, "fw.dfu: no data in any element");
}

static void test_overlap_and_names(void)
{
	/* two elements, the second overlapping the first */
	uint8_t f[VEC_LEN + 16];
	uint8_t v[VEC_LEN];
	make_vector(v);
	memcpy(f, v, 301);
	memcpy(f + 301, v + 285, 16);
	put32(f + 301, 0x08000004);
	memcpy(f + 317, v + 301, 16);
	put32(f + 6, 317);
	put32(f + 277, 32);
	put32(f + 281, 2);
	fix_crc(f, sizeof f);
	expect_error(f, sizeof f, FARM_EINVAL,
		     "fw.dfu: target 0 element 1 (offset 301): bytes 0x08000004-0x0800000b overlap bytes "
		     "0x08000000-0x08000007 already in the image");
	/* moved next to it instead: one segment */
	put32(f + 301, 0x08000008);
	fix_crc(f, sizeof f);
	struct farm_err e = {0};
	struct farm_image *img = parse(f, sizeof f, &e);
	CU_ASSERT(img && img->n_segs == 1 && img->segs[0].len == 16);
	farm_image_free(img);

	/* an unnamed target has no name; odd bytes in a name are shown as '?' */
	make_vector(v);
	v[18] = 0; /* bTargetNamed */
	fix_crc(v, VEC_LEN);
	img = parse(v, VEC_LEN, &e);
	CU_ASSERT(img && img->dfuse_target_name[0] == '\0');
	farm_image_free(img);
	make_vector(v);
	v[23] = 0x1b;
	memset(v + 27, 'x', 250); /* 255 characters, no NUL: the last is dropped */
	fix_crc(v, VEC_LEN);
	img = parse(v, VEC_LEN, &e);
	CU_ASSERT(img && strlen(img->dfuse_target_name) == 254 && strncmp(img->dfuse_target_name, "S?...x", 6) == 0);
	farm_image_free(img);
}

/* Every prefix of the vector is refused. */
static void test_truncated_everywhere(void)
{
	uint8_t f[VEC_LEN];
	make_vector(f);
	for (size_t cut = 0; cut < VEC_LEN; cut++) {
		struct farm_err e = {0};
		struct farm_image *img = parse(f, cut, &e);
		CU_ASSERT_PTR_NULL(img);
		CU_ASSERT(e.msg[0] != '\0');
		farm_image_free(img);
	}
}

/* The CRC covers every byte: every single-bit flip is refused. */
static void test_bit_flips(void)
{
	uint8_t f[VEC_LEN];
	make_vector(f);
	size_t accepted = 0;
	for (size_t i = 0; i < VEC_LEN; i++)
		for (int bit = 0; bit < 8; bit++) {
			f[i] ^= (uint8_t)(1 << bit);
			struct farm_err e = {0};
			struct farm_image *img = parse(f, VEC_LEN, &e);
			accepted += img != NULL;
			farm_image_free(img);
			f[i] ^= (uint8_t)(1 << bit);
		}
	CU_ASSERT_EQUAL(accepted, 0);
}

/* Many elements, some adjacent, through the writer and back. */
static void test_writer_many_elements(void)
{
	struct farm_image *img = NULL, *back = NULL;
	struct farm_err e = {0};
	CU_ASSERT_EQUAL_FATAL(farm_image_new(&img, FARM_IMG_BIN, &e), 0);
	uint8_t d[1000];
	for (size_t i = 0; i < sizeof d; i++)
		d[i] = (uint8_t)(i * 31);
	for (uint32_t k = 0; k < 50; k++)
		CU_ASSERT_EQUAL(farm_image_add(img, 0x08000000 + k * 0x1000, d + k, 100 + k * 10, &e), 0);
	struct farm_buf b = {0};
	char name[300];
	memset(name, 'n', sizeof name - 1);
	name[sizeof name - 1] = '\0'; /* longer than the field: cut to 254 */
	CU_ASSERT_EQUAL_FATAL(farm_image_write_dfuse(img, 0xffff, 0xffff, 3, name, &b, &e), 0);
	CU_ASSERT_EQUAL(farm_image_parse_dfuse(&back, b.data, b.len, "rt.dfu", &e), 0);
	CU_ASSERT_FATAL(back != NULL);
	CU_ASSERT_EQUAL(back->n_segs, 50);
	for (size_t s = 0; s < 50 && s < back->n_segs; s++)
		CU_ASSERT(back->segs[s].addr == img->segs[s].addr && back->segs[s].len == img->segs[s].len &&
			  memcmp(back->segs[s].data, img->segs[s].data, img->segs[s].len) == 0);
	CU_ASSERT(back->dfu_vid == 0xffff && back->dfuse_alt == 3 && strlen(back->dfuse_target_name) == 254);
	farm_image_free(back);
	farm_image_free(img);
	farm_buf_free(&b);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("image_dfuse", NULL, NULL);
	if (!s)
		return -1;
	const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{"dfu-dfuse.md vector parsed", test_vector_parse},
		{"writer reproduces the vector byte for byte", test_vector_writer},
		{"plain DFU file refused", test_plain_dfu_refused},
		{"prefix and suffix errors", test_frame_errors},
		{"target and element errors", test_target_errors},
		{"overlapping elements, target names", test_overlap_and_names},
		{"truncated at every byte", test_truncated_everywhere},
		{"every single-bit flip refused", test_bit_flips},
		{"writer with many elements", test_writer_many_elements},
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
