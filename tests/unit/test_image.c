/* Tests for farm/image.c and farm/image_bin.c: building images, format
 * names and detection, loading files, totals, SHA-256, the bin writer, and
 * round trips through every writer. The per-format parsers have their own
 * test_image_<format>.c. */
#include <CUnit/CUnit.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "image.h"

/* ---- helpers ---- */

static struct farm_image *new_image(void)
{
	struct farm_image *img = NULL;
	struct farm_err e = {0};
	CU_ASSERT_EQUAL_FATAL(farm_image_new(&img, FARM_IMG_BIN, &e), 0);
	return img;
}

static void add_ok(struct farm_image *img, uint32_t addr, const void *d, size_t n)
{
	struct farm_err e = {0};
	int rc = farm_image_add(img, addr, d, n, &e);
	if (rc)
		fprintf(stderr, "add 0x%08x+%zu: %s\n", addr, n, e.msg);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
}

/* Same segments (addresses, lengths, bytes). */
static int same_segments(const struct farm_image *a, const struct farm_image *b)
{
	if (!a || !b || a->n_segs != b->n_segs)
		return 0;
	for (size_t i = 0; i < a->n_segs; i++)
		if (a->segs[i].addr != b->segs[i].addr || a->segs[i].len != b->segs[i].len ||
		    memcmp(a->segs[i].data, b->segs[i].data, a->segs[i].len) != 0)
			return 0;
	return 1;
}

static int write_file(const char *path, const void *d, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	int rc = fwrite(d, 1, n, f) == n ? 0 : -1;
	return fclose(f) || rc ? -1 : 0;
}

/* Three segments, one crossing a 64 KiB boundary, one with a partial page. */
static struct farm_image *sample_image(void)
{
	struct farm_image *img = new_image();
	uint8_t d[700];
	for (size_t i = 0; i < sizeof d; i++)
		d[i] = (uint8_t)(i * 7 + 3);
	add_ok(img, 0x0800fff0, d, 600);
	add_ok(img, 0x08020000, d + 10, 37);
	add_ok(img, 0x08030100, d + 100, 256);
	img->has_entry = 1;
	img->entry = 0x08000189;
	return img;
}

/* ---- names and detection ---- */

static void test_format_names(void)
{
	static const enum farm_image_format all[] = {FARM_IMG_IHEX, FARM_IMG_UF2, FARM_IMG_DFUSE,
						     FARM_IMG_ELF, FARM_IMG_BIN};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		CU_ASSERT_EQUAL(farm_image_format_parse(farm_image_format_name(all[i])), all[i]);
	CU_ASSERT_STRING_EQUAL(farm_image_format_name(FARM_IMG_UNKNOWN), "unknown");
	CU_ASSERT_STRING_EQUAL(farm_image_format_name(FARM_IMG_DFUSE), "dfuse");
	CU_ASSERT_EQUAL(farm_image_format_parse("UF2"), FARM_IMG_UF2);
	CU_ASSERT_EQUAL(farm_image_format_parse("hex"), FARM_IMG_IHEX);
	CU_ASSERT_EQUAL(farm_image_format_parse("dfu"), FARM_IMG_DFUSE);
	CU_ASSERT_EQUAL(farm_image_format_parse("srec"), FARM_IMG_UNKNOWN);
	CU_ASSERT_EQUAL(farm_image_format_parse(""), FARM_IMG_UNKNOWN);
	CU_ASSERT_EQUAL(farm_image_format_parse(NULL), FARM_IMG_UNKNOWN);
}

static void test_detect(void)
{
	static const uint8_t uf2[8] = {0x55, 0x46, 0x32, 0x0a, 0x57, 0x51, 0x5d, 0x9e};
	CU_ASSERT_EQUAL(farm_image_detect(uf2, sizeof uf2, "x.bin"), FARM_IMG_UF2);
	CU_ASSERT_EQUAL(farm_image_detect(uf2, 7, "x.bin"), FARM_IMG_BIN); /* too short for the magic */
	CU_ASSERT_EQUAL(farm_image_detect("DfuSe\x01", 6, NULL), FARM_IMG_DFUSE);
	CU_ASSERT_EQUAL(farm_image_detect("\x7f" "ELF\x01", 5, "fw.hex"), FARM_IMG_ELF);
	CU_ASSERT_EQUAL(farm_image_detect(":020000040800F2\n", 16, "fw.bin"), FARM_IMG_IHEX);
	CU_ASSERT_EQUAL(farm_image_detect(":xx", 3, NULL), FARM_IMG_UNKNOWN);
	/* content says nothing: the extension decides, case-insensitively */
	static const struct {
		const char *name;
		enum farm_image_format fmt;
	} ext[] = {
		{"a.hex", FARM_IMG_IHEX},  {"a.IHEX", FARM_IMG_IHEX}, {"dir/a.uf2", FARM_IMG_UF2},
		{"a.dfu", FARM_IMG_DFUSE}, {"a.elf", FARM_IMG_ELF},   {"a.Bin", FARM_IMG_BIN},
		{"a.txt", FARM_IMG_UNKNOWN}, {"a", FARM_IMG_UNKNOWN}, {"dir.hex/a", FARM_IMG_UNKNOWN},
		{NULL, FARM_IMG_UNKNOWN},
	};
	for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
		CU_ASSERT_EQUAL(farm_image_detect("\0\1\2\3", 4, ext[i].name), ext[i].fmt);
	CU_ASSERT_EQUAL(farm_image_detect(NULL, 0, "a.uf2"), FARM_IMG_UF2);
}

/* ---- building ---- */

static void test_add_merges_and_sorts(void)
{
	struct farm_image *img = new_image();
	uint8_t a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[4] = {9, 10, 11, 12};
	add_ok(img, 0x108, c, 4); /* out of order on purpose */
	add_ok(img, 0x100, a, 4);
	CU_ASSERT_EQUAL(img->n_segs, 2);
	CU_ASSERT_EQUAL(img->segs[0].addr, 0x100);
	add_ok(img, 0x104, b, 4); /* fills the gap: one segment */
	CU_ASSERT_EQUAL_FATAL(img->n_segs, 1);
	CU_ASSERT_EQUAL(img->segs[0].addr, 0x100);
	CU_ASSERT_EQUAL(img->segs[0].len, 12);
	static const uint8_t want[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
	CU_ASSERT_EQUAL(memcmp(img->segs[0].data, want, 12), 0);
	add_ok(img, 0xfc, b, 4); /* right neighbour only */
	CU_ASSERT_EQUAL(img->n_segs, 1);
	CU_ASSERT_EQUAL(img->segs[0].addr, 0xfc);
	CU_ASSERT_EQUAL(img->segs[0].data[0], 5);
	add_ok(img, 0x200, a, 0); /* empty add: nothing */
	CU_ASSERT_EQUAL(img->n_segs, 1);
	CU_ASSERT_EQUAL(farm_image_size(img), 16);
	CU_ASSERT_EQUAL(farm_image_lowest(img), 0xfc);
	CU_ASSERT_EQUAL(farm_image_end(img), 0x10c);
	farm_image_free(img);
	farm_image_free(NULL);
	CU_ASSERT_EQUAL(farm_image_size(NULL), 0);
	CU_ASSERT_EQUAL(farm_image_end(NULL), 0);
}

static void test_add_many_appends(void)
{
	/* byte by byte, as a HEX parser would with tiny records */
	struct farm_image *img = new_image();
	for (uint32_t i = 0; i < 100000; i++) {
		uint8_t v = (uint8_t)(i ^ (i >> 8));
		add_ok(img, 0x20000000 + i, &v, 1);
	}
	CU_ASSERT_EQUAL_FATAL(img->n_segs, 1);
	CU_ASSERT_EQUAL(img->segs[0].len, 100000);
	int ok = 1;
	for (uint32_t i = 0; i < 100000; i++)
		ok &= img->segs[0].data[i] == (uint8_t)(i ^ (i >> 8));
	CU_ASSERT(ok);
	farm_image_free(img);
}

static void test_add_overlap(void)
{
	struct farm_image *img = new_image();
	uint8_t d[16] = {0};
	add_ok(img, 0x1000, d, 16);
	struct farm_err e = {0};
	CU_ASSERT_EQUAL(farm_image_add(img, 0x100f, d, 2, &e), FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.msg, "bytes 0x0000100f-0x00001010 overlap bytes 0x00001000-0x0000100f "
				      "already in the image");
	CU_ASSERT_EQUAL(farm_image_add(img, 0x0ff0, d, 17, &e), FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_image_add(img, 0x0f00, d, 16, &e), 0);
	CU_ASSERT_EQUAL(farm_image_add(img, 0x0ff0, d, 16, &e), 0); /* touching is fine */
	CU_ASSERT_EQUAL(farm_image_add(img, 0x1008, d, 1, &e), FARM_EINVAL);
	CU_ASSERT_EQUAL(img->n_segs, 2);
	CU_ASSERT_EQUAL(farm_image_size(img), 48);
	farm_image_free(img);
}

static void test_add_address_overflow(void)
{
	struct farm_image *img = new_image();
	uint8_t d[16] = {0};
	struct farm_err e = {0};
	CU_ASSERT_EQUAL(farm_image_add(img, 0xfffffff8, d, 9, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "0xffffffff"));
	CU_ASSERT_EQUAL(farm_image_add(img, 0xfffffff8, d, 8, &e), 0); /* ends exactly at 2^32 */
	CU_ASSERT_EQUAL(farm_image_end(img), 0x100000000ull);
	farm_image_free(img);
}

static void test_add_limits(void)
{
	struct farm_image *img = new_image();
	struct farm_err e = {0};
	uint8_t d = 0;
	for (uint32_t i = 0; i < FARM_IMAGE_MAX_SEGMENTS; i++)
		add_ok(img, i * 2, &d, 1);
	CU_ASSERT_EQUAL(img->n_segs, FARM_IMAGE_MAX_SEGMENTS);
	CU_ASSERT_EQUAL(farm_image_add(img, 0x100000, &d, 1, &e), FARM_ELIMIT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "4096"));
	add_ok(img, 1, &d, 1); /* joining two segments is always possible */
	CU_ASSERT_EQUAL(img->n_segs, FARM_IMAGE_MAX_SEGMENTS - 1);
	farm_image_free(img);

	img = new_image();
	uint8_t *big = calloc(1, FARM_IMAGE_MAX_BYTES);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	CU_ASSERT_EQUAL(farm_image_add(img, 0, big, FARM_IMAGE_MAX_BYTES + (size_t)1, &e), FARM_ELIMIT);
	add_ok(img, 0, big, FARM_IMAGE_MAX_BYTES - 1);
	add_ok(img, 0x10000000, big, 1);
	CU_ASSERT_EQUAL(farm_image_add(img, 0x20000000, big, 1, &e), FARM_ELIMIT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "limit"));
	CU_ASSERT_EQUAL(farm_image_size(img), FARM_IMAGE_MAX_BYTES);
	free(big);
	farm_image_free(img);
}

/* ---- SHA-256 ---- */

static void test_sha256(void)
{
	struct farm_image *img = new_image();
	char hex[65];
	farm_image_sha256(img, hex);
	/* the empty image: SHA-256 of nothing */
	CU_ASSERT_STRING_EQUAL(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	uint8_t a[3] = {1, 2, 3}, b = 0xff;
	add_ok(img, 0x1000, a, 3);
	add_ok(img, 0x2000, &b, 1);
	farm_image_sha256(img, hex);
	/* python3: sha256(pack('<II',0x1000,3)+b'\1\2\3'+pack('<II',0x2000,1)+b'\xff') */
	CU_ASSERT_STRING_EQUAL(hex, "d5f4fcdd6d8b608c477eb8a224d80a7edc764d15a9fcb44e32540b6ba23308e4");
	farm_image_free(img);

	/* one segment vs the same bytes split where the split's address header
	 * would fall: different images, different hashes */
	uint8_t one[12] = {0xaa, 0xaa, 0xaa, 0xaa, 0x20, 0, 0, 0, 0xbb, 0xbb, 0xbb, 0xbb};
	struct farm_image *x = new_image(), *y = new_image();
	add_ok(x, 0, one, 12);
	add_ok(y, 0, one, 4);
	add_ok(y, 0x20, one + 8, 4);
	char hx[65], hy[65];
	farm_image_sha256(x, hx);
	farm_image_sha256(y, hy);
	CU_ASSERT_STRING_NOT_EQUAL(hx, hy);
	farm_image_free(x);
	farm_image_free(y);
}

/* ---- bin ---- */

static void test_parse_bin(void)
{
	struct farm_image *img = NULL;
	struct farm_err e = {0};
	CU_ASSERT_EQUAL(farm_image_parse_bin(&img, "abc", 3, 0x08004000, "fw.bin", &e), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(img);
	CU_ASSERT_EQUAL(img->format, FARM_IMG_BIN);
	CU_ASSERT_EQUAL(img->n_segs, 1);
	CU_ASSERT_EQUAL(img->segs[0].addr, 0x08004000);
	CU_ASSERT_EQUAL(img->has_entry, 0);
	farm_image_free(img);
	CU_ASSERT_EQUAL(farm_image_parse_bin(&img, "", 0, 0, "fw.bin", &e), FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.msg, "fw.bin: empty file");
	CU_ASSERT_PTR_NULL(img);
	CU_ASSERT_EQUAL(farm_image_parse_bin(&img, "abc", 3, 0xfffffffe, "fw.bin", &e), FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.msg, "fw.bin: 3 bytes at 0xfffffffe run past address 0xffffffff");
	CU_ASSERT_PTR_NULL(img);
	CU_ASSERT_EQUAL(farm_image_parse(&img, FARM_IMG_BIN, "abc", 3, "fw.bin", &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "base address"));
	CU_ASSERT_EQUAL(farm_image_parse(&img, FARM_IMG_UNKNOWN, "abc", 3, "fw", &e), FARM_EINVAL);
}

static void test_write_bin(void)
{
	struct farm_image *img = new_image();
	add_ok(img, 0x100, "AB", 2);
	add_ok(img, 0x105, "C", 1);
	struct farm_buf b = {0};
	struct farm_err e = {0};
	CU_ASSERT_EQUAL(farm_image_write_bin(img, 0xff, &b, &e), 0);
	CU_ASSERT_EQUAL_FATAL(b.len, 6);
	CU_ASSERT_EQUAL(memcmp(b.data, "AB\xff\xff\xff" "C", 6), 0);
	farm_buf_reset(&b);
	CU_ASSERT_EQUAL(farm_image_write_bin(img, 0x00, &b, &e), 0);
	CU_ASSERT_EQUAL(memcmp(b.data, "AB\0\0\0C", 6), 0);
	/* appends to what is there */
	CU_ASSERT_EQUAL(farm_image_write_bin(img, 0x00, &b, &e), 0);
	CU_ASSERT_EQUAL(b.len, 12);
	/* an output limit is an error, not a short file */
	struct farm_buf small = {.limit = 4};
	CU_ASSERT_EQUAL(farm_image_write_bin(img, 0xff, &small, &e), FARM_ELIMIT);
	farm_buf_free(&small);
	/* a sparse image (micro:bit: flash at 0, UICR at 0x10001000) does not flatten */
	add_ok(img, 0x10001000, "D", 1);
	CU_ASSERT_EQUAL(farm_image_write_bin(img, 0xff, &b, &e), FARM_ELIMIT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "0x00000100-0x10001000"));
	farm_image_free(img);
	img = new_image();
	CU_ASSERT_EQUAL(farm_image_write_bin(img, 0xff, &b, &e), FARM_EINVAL);
	farm_image_free(img);
	farm_buf_free(&b);
}

/* ---- round trips through every writer ---- */

static struct farm_image *parse_ok(enum farm_image_format fmt, const struct farm_buf *b)
{
	struct farm_image *img = NULL;
	struct farm_err e = {0};
	int rc = farm_image_parse(&img, fmt, b->data, b->len, "rt", &e);
	if (rc)
		fprintf(stderr, "round trip %s: %s\n", farm_image_format_name(fmt), e.msg);
	CU_ASSERT_EQUAL(rc, 0);
	return img;
}

static void test_round_trips(void)
{
	struct farm_image *img = sample_image(), *back;
	struct farm_buf b = {0};
	struct farm_err e = {0};
	char want[65], got[65];
	farm_image_sha256(img, want);

	CU_ASSERT_EQUAL_FATAL(farm_image_write_ihex(img, &b, &e), 0);
	back = parse_ok(FARM_IMG_IHEX, &b);
	CU_ASSERT(same_segments(img, back));
	CU_ASSERT(back && back->has_entry && back->entry == 0x08000189);
	farm_image_sha256(back, got);
	CU_ASSERT_STRING_EQUAL(want, got);
	farm_image_free(back);

	farm_buf_reset(&b);
	CU_ASSERT_EQUAL_FATAL(farm_image_write_dfuse(img, 0x0483, 0xdf11, 2, "@Internal Flash", &b, &e),
			      0);
	back = parse_ok(FARM_IMG_DFUSE, &b);
	CU_ASSERT(same_segments(img, back));
	CU_ASSERT(back && back->has_dfuse && back->dfu_vid == 0x0483 && back->dfu_pid == 0xdf11 &&
		  back->dfu_bcd == 0 && back->dfuse_alt == 2);
	CU_ASSERT(back && strcmp(back->dfuse_target_name, "@Internal Flash") == 0);
	/* and once more from the parsed image: the suffix facts survive */
	struct farm_buf b2 = {0};
	back->dfu_bcd = 0x0200;
	CU_ASSERT_EQUAL(farm_image_write_dfuse(back, back->dfu_vid, back->dfu_pid, back->dfuse_alt,
					       back->dfuse_target_name, &b2, &e), 0);
	struct farm_image *again = parse_ok(FARM_IMG_DFUSE, &b2);
	CU_ASSERT(same_segments(back, again) && again->dfu_bcd == 0x0200);
	farm_image_free(again);
	farm_buf_free(&b2);
	farm_image_free(back);

	/* bin: flattened with fill, parsed back at the lowest address */
	farm_buf_reset(&b);
	CU_ASSERT_EQUAL_FATAL(farm_image_write_bin(img, 0xff, &b, &e), 0);
	CU_ASSERT_EQUAL(b.len, farm_image_end(img) - farm_image_lowest(img));
	back = NULL;
	CU_ASSERT_EQUAL(farm_image_parse_bin(&back, b.data, b.len, farm_image_lowest(img), "rt", &e), 0);
	CU_ASSERT(back && back->n_segs == 1 && farm_image_end(back) == farm_image_end(img));
	for (size_t s = 0; back && s < img->n_segs; s++)
		CU_ASSERT(memcmp(back->segs[0].data + (img->segs[s].addr - farm_image_lowest(img)),
				 img->segs[s].data, img->segs[s].len) == 0);
	farm_image_free(back);

	/* UF2 of an image made of whole aligned pages comes back identical */
	struct farm_image *pages = new_image();
	uint8_t d[1024];
	for (size_t i = 0; i < sizeof d; i++)
		d[i] = (uint8_t)(i * 13);
	add_ok(pages, 0x10000000, d, 512);
	add_ok(pages, 0x10001000, d + 512, 256);
	farm_buf_reset(&b);
	CU_ASSERT_EQUAL_FATAL(farm_image_write_uf2(pages, 0xe48bff56, &b, &e), 0);
	CU_ASSERT_EQUAL(b.len, 3 * 512);
	back = parse_ok(FARM_IMG_UF2, &b);
	CU_ASSERT(same_segments(pages, back));
	CU_ASSERT(back && back->has_family && back->uf2_family == 0xe48bff56);
	farm_image_free(back);
	farm_buf_reset(&b);
	CU_ASSERT_EQUAL_FATAL(farm_image_write_uf2(pages, 0, &b, &e), 0);
	back = parse_ok(FARM_IMG_UF2, &b);
	CU_ASSERT(same_segments(pages, back));
	CU_ASSERT(back && !back->has_family);
	farm_image_free(back);
	farm_image_free(pages);

	/* an unaligned image comes back padded with 0xff to whole pages */
	farm_buf_reset(&b);
	CU_ASSERT_EQUAL_FATAL(farm_image_write_uf2(img, 0x57755a57, &b, &e), 0);
	back = parse_ok(FARM_IMG_UF2, &b);
	CU_ASSERT_FATAL(back != NULL);
	for (size_t s = 0; s < img->n_segs; s++) {
		const struct farm_image_segment *seg = &img->segs[s];
		int inside = 0;
		for (size_t k = 0; k < back->n_segs; k++) {
			const struct farm_image_segment *o = &back->segs[k];
			if (o->addr <= seg->addr && (uint64_t)o->addr + o->len >= (uint64_t)seg->addr + seg->len)
				inside = memcmp(o->data + (seg->addr - o->addr), seg->data, seg->len) == 0;
		}
		CU_ASSERT(inside);
	}
	CU_ASSERT_EQUAL(back->segs[0].addr, 0x0800ff00);
	CU_ASSERT_EQUAL(back->segs[0].data[0], 0xff);
	CU_ASSERT_EQUAL(farm_image_size(back) % 256, 0);
	farm_image_free(back);

	/* writers refuse the empty image */
	struct farm_image *empty = new_image();
	CU_ASSERT_EQUAL(farm_image_write_ihex(empty, &b, &e), FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_image_write_uf2(empty, 0, &b, &e), FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_image_write_dfuse(empty, 0, 0, 0, NULL, &b, &e), FARM_EINVAL);
	farm_image_free(empty);
	farm_buf_free(&b);
	farm_image_free(img);
}

/* The same content in every container has one identity. */
static void test_sha_same_across_formats(void)
{
	struct farm_image *img = new_image();
	uint8_t d[512];
	for (size_t i = 0; i < sizeof d; i++)
		d[i] = (uint8_t)(i ^ 0x5a);
	add_ok(img, 0x10000000, d, 512);
	char want[65];
	farm_image_sha256(img, want);
	struct farm_err e = {0};
	struct farm_buf b = {0};
	for (int f = 0; f < 3; f++) {
		farm_buf_reset(&b);
		int rc = f == 0	  ? farm_image_write_ihex(img, &b, &e)
			 : f == 1 ? farm_image_write_uf2(img, 0xe48bff56, &b, &e)
				  : farm_image_write_dfuse(img, 1, 2, 0, "x", &b, &e);
		CU_ASSERT_EQUAL_FATAL(rc, 0);
		static const enum farm_image_format fmts[] = {FARM_IMG_IHEX, FARM_IMG_UF2, FARM_IMG_DFUSE};
		struct farm_image *back = parse_ok(fmts[f], &b);
		char got[65] = "";
		if (back)
			farm_image_sha256(back, got);
		CU_ASSERT_STRING_EQUAL(got, want);
		farm_image_free(back);
	}
	farm_buf_free(&b);
	farm_image_free(img);
}

/* ---- load ---- */

static void test_load(void)
{
	char dir[] = "/tmp/mpfarm-test-image-XXXXXX";
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	char path[256];
	struct farm_image *img = NULL;
	struct farm_err e = {0};

	/* Intel HEX content under a .bin name: content wins */
	snprintf(path, sizeof path, "%s/fw.bin", dir);
	const char *hex = ":020000040800F2\n:04000000DEADBEEFC4\n:00000001FF\n";
	CU_ASSERT_EQUAL_FATAL(write_file(path, hex, strlen(hex)), 0);
	CU_ASSERT_EQUAL(farm_image_load(&img, path, FARM_IMG_UNKNOWN, 0, &e), 0);
	CU_ASSERT(img && img->format == FARM_IMG_IHEX && img->segs[0].addr == 0x08000000);
	farm_image_free(img);
	/* forced to bin: the text itself at the base */
	CU_ASSERT_EQUAL(farm_image_load(&img, path, FARM_IMG_BIN, 0x1000, &e), 0);
	CU_ASSERT(img && img->format == FARM_IMG_BIN && img->segs[0].addr == 0x1000 &&
		  img->segs[0].len == strlen(hex));
	farm_image_free(img);
	unlink(path);

	/* a broken file: the message names the path and the line */
	snprintf(path, sizeof path, "%s/fw.hex", dir);
	const char *bad = ":020000040800F2\n:04000000DEADBEEF3C\n:00000001FF\n";
	CU_ASSERT_EQUAL_FATAL(write_file(path, bad, strlen(bad)), 0);
	CU_ASSERT_EQUAL(farm_image_load(&img, path, FARM_IMG_UNKNOWN, 0, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NULL(img);
	char want[400];
	snprintf(want, sizeof want, "%s: line 2: checksum 0x3c, expected 0xc4", path);
	CU_ASSERT_STRING_EQUAL(e.msg, want);
	unlink(path);

	/* unknown content and extension */
	snprintf(path, sizeof path, "%s/fw.txt", dir);
	CU_ASSERT_EQUAL_FATAL(write_file(path, "hello", 5), 0);
	CU_ASSERT_EQUAL(farm_image_load(&img, path, FARM_IMG_UNKNOWN, 0, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "unknown image format"));
	unlink(path);

	/* missing file */
	snprintf(path, sizeof path, "%s/none.uf2", dir);
	CU_ASSERT_EQUAL(farm_image_load(&img, path, FARM_IMG_UNKNOWN, 0, &e), FARM_ENOTFOUND);

	/* a file over the limit is not read whole */
	snprintf(path, sizeof path, "%s/big.bin", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(ftruncate(fd, (off_t)FARM_IMAGE_MAX_BYTES + 1), 0);
	close(fd);
	CU_ASSERT_EQUAL(farm_image_load(&img, path, FARM_IMG_BIN, 0, &e), FARM_ELIMIT);
	CU_ASSERT_PTR_NULL(img);
	unlink(path);
	rmdir(dir);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("image", NULL, NULL);
	if (!s)
		return -1;
	const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{"format names", test_format_names},
		{"detect by content, then extension", test_detect},
		{"add merges neighbours and keeps order", test_add_merges_and_sorts},
		{"100000 one-byte appends", test_add_many_appends},
		{"add refuses overlaps naming both ranges", test_add_overlap},
		{"add refuses addresses past 0xffffffff", test_add_address_overflow},
		{"segment and payload limits", test_add_limits},
		{"sha256 of segments", test_sha256},
		{"parse bin", test_parse_bin},
		{"write bin with fill", test_write_bin},
		{"round trips through every writer", test_round_trips},
		{"one sha256 whatever the container", test_sha_same_across_formats},
		{"load files", test_load},
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
