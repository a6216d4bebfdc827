/* Tests for farm/image_ihex.c: every test vector and record type of
 * /work/shared/protocols/intel-hex.md, line ends, hostile input (truncation
 * at every byte, every single-bit flip), the writer's exact output, and the
 * real micro:bit MicroPython image when installed. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "flashmap.h"
#include "image.h"

#define MICROBIT_HEX "/usr/share/firmware-microbit-micropython/firmware.hex"

/* ---- helpers ---- */

static struct farm_image *parse(const char *text, struct farm_err *e)
{
	struct farm_image *img = NULL;
	int rc = farm_image_parse_ihex(&img, text, strlen(text), "fw.hex", e);
	CU_ASSERT((rc == 0) == (img != NULL));
	return img;
}

static struct farm_image *parse_ok(const char *text)
{
	struct farm_err e = {0};
	struct farm_image *img = parse(text, &e);
	if (!img)
		fprintf(stderr, "unexpected error: %s\n", e.msg);
	CU_ASSERT_PTR_NOT_NULL(img);
	return img;
}

/* Parse must fail with exactly this message. */
static void expect_error(const char *text, int code, const char *msg)
{
	struct farm_err e = {0};
	struct farm_image *img = parse(text, &e);
	CU_ASSERT_PTR_NULL(img);
	CU_ASSERT_EQUAL(e.code, code);
	if (strcmp(e.msg, msg) != 0)
		fprintf(stderr, "\n  got:  %s\n  want: %s\n", e.msg, msg);
	CU_ASSERT_STRING_EQUAL(e.msg, msg);
	farm_image_free(img);
}

static int seg_is(const struct farm_image *img, size_t i, uint32_t addr, const void *d, size_t n)
{
	return img && i < img->n_segs && img->segs[i].addr == addr && img->segs[i].len == n &&
	       memcmp(img->segs[i].data, d, n) == 0;
}

static int same_image(const struct farm_image *a, const struct farm_image *b)
{
	char ha[65], hb[65];
	farm_image_sha256(a, ha);
	farm_image_sha256(b, hb);
	return strcmp(ha, hb) == 0 && a->n_segs == b->n_segs && a->has_entry == b->has_entry &&
	       a->entry == b->entry;
}

/* ---- the vectors of intel-hex.md ---- */

static void test_vectors(void)
{
	static const uint8_t deadbeef[4] = {0xde, 0xad, 0xbe, 0xef};
	static const uint8_t seq[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
	struct farm_image *img = parse_ok(":020000040800F2\n"
					  ":04000000DEADBEEFC4\n"
					  ":10010000000102030405060708090A0B0C0D0E0F77\n"
					  ":04FFFC0001020304F7\n"
					  ":040000050800018965\n"
					  ":00000001FF\n");
	CU_ASSERT(img && img->format == FARM_IMG_IHEX && img->n_segs == 3);
	CU_ASSERT(seg_is(img, 0, 0x08000000, deadbeef, 4));
	CU_ASSERT(seg_is(img, 1, 0x08000100, seq, 16));
	CU_ASSERT(seg_is(img, 2, 0x0800fffc, seq + 1, 4)); /* ends exactly at the window edge */
	CU_ASSERT(img && img->has_entry && img->entry == 0x08000189);
	CU_ASSERT(img && !img->has_family && !img->has_dfuse);
	farm_image_free(img);

	/* 02: segment 0x1000 -> base 0x10000 */
	img = parse_ok(":020000021000EC\n:04000000DEADBEEFC4\n:00000001FF\n");
	CU_ASSERT(seg_is(img, 0, 0x00010000, deadbeef, 4));
	CU_ASSERT(img && !img->has_entry);
	farm_image_free(img);

	/* 03: CS 0x0000, IP 0x0100 -> entry CS * 16 + IP */
	img = parse_ok(":0400000300000100F8\n:04000000DEADBEEFC4\n:00000001FF\n");
	CU_ASSERT(img && img->has_entry && img->entry == 0x100);
	farm_image_free(img);
	img = parse_ok(":0400000312345678E5\n:04000000DEADBEEFC4\n:00000001FF\n");
	CU_ASSERT(img && img->entry == 0x1234 * 16 + 0x5678);
	farm_image_free(img);

	/* the checksum example, with the checksum left uncomplemented */
	expect_error(":04000000DEADBEEF3C\n:00000001FF\n", FARM_EINVAL,
		     "fw.hex: line 1: checksum 0x3c, expected 0xc4");
}

/* Repeated 02 or 04 records replace the base. Data placed while both a 02
 * and a 04 base are non-zero is refused: python-intelhex takes the last,
 * binutils adds them. With either at zero, both readings agree. */
static void test_base_records(void)
{
	struct farm_image *img = parse_ok(":020000040800F2\n"
					  ":0100000011EE\n"
					  ":020000040801F1\n"
					  ":0100000022DD\n"
					  ":020000040000FA\n" /* back to 0: then 02 alone */
					  ":020000021000EC\n"
					  ":0100000033CC\n"
					  ":020000020000FC\n"
					  ":0100000044BB\n"
					  ":00000001FF\n");
	CU_ASSERT(img && img->n_segs == 4);
	CU_ASSERT(seg_is(img, 0, 0x00000000, "\x44", 1));
	CU_ASSERT(seg_is(img, 1, 0x00010000, "\x33", 1));
	CU_ASSERT(seg_is(img, 2, 0x08000000, "\x11", 1));
	CU_ASSERT(seg_is(img, 3, 0x08010000, "\x22", 1));
	farm_image_free(img);
	const char *msg = "fw.hex: line 3: data after both a segment base (02: 0x00010000) and a "
			  "linear base (04: 0x08000000): tools disagree on its address (the last "
			  "base, or their sum); refused";
	expect_error(":020000021000EC\n:020000040800F2\n:0100000011EE\n:00000001FF\n", FARM_EINVAL, msg);
	expect_error(":020000040800F2\n:020000021000EC\n:0100000011EE\n:00000001FF\n", FARM_EINVAL, msg);
	/* a 0-byte data record places nothing: no conflict */
	img = parse_ok(":020000040800F2\n:020000021000EC\n:0000000000\n:020000040000FA\n"
		       ":020000022000DC\n:0100000011EE\n:00000001FF\n");
	CU_ASSERT(seg_is(img, 0, 0x00020000, "\x11", 1));
	farm_image_free(img);
}

/* A run crossing 0x0800FFFF -> 0x08010000 with its 04 record is one
 * segment; without the 04 record the offset would wrap: refused. */
static void test_64k_crossing(void)
{
	struct farm_image *img = parse_ok(":020000040800F2\n"
					  ":08FFF8000001020304050607E5\n"
					  ":020000040801F1\n"
					  ":0800000008090A0B0C0D0E0F9C\n"
					  ":00000001FF\n");
	static const uint8_t seq[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
	CU_ASSERT(img && img->n_segs == 1);
	CU_ASSERT(seg_is(img, 0, 0x0800fff8, seq, 16));
	farm_image_free(img);
	expect_error(":020000040800F2\n:10FFF800000102030405060708090A0B0C0D0E0F81\n:00000001FF\n",
		     FARM_EINVAL,
		     "fw.hex: line 2: data record at offset 0xfff8 with 16 bytes crosses a 64 KiB "
		     "boundary (its 16-bit offset would wrap)");
}

static void test_line_ends_and_case(void)
{
	const char *lf = ":020000040800F2\n:04000000DEADBEEFC4\n:00000001FF\n";
	struct farm_image *want = parse_ok(lf);
	const char *variants[] = {
		":020000040800F2\r\n:04000000DEADBEEFC4\r\n:00000001FF\r\n",
		":020000040800f2\n:04000000deadbeefc4\n:00000001ff\n",
		"\n\n:020000040800F2\n\r\n:04000000DeAdBeEfC4\r\n\n:00000001FF",
		":020000040800F2\n:04000000DEADBEEFC4\n:00000001FF\r",
		":020000040800F2\r\n:04000000DEADBEEFC4\n:00000001FF\n",
		/* records after the end-of-file record are ignored, even garbage */
		":020000040800F2\n:04000000DEADBEEFC4\n:00000001FF\n:04000000DEADBEEF00\nnonsense\x01",
	};
	for (size_t i = 0; want && i < sizeof variants / sizeof variants[0]; i++) {
		struct farm_image *img = parse_ok(variants[i]);
		CU_ASSERT(img && same_image(img, want));
		farm_image_free(img);
	}
	farm_image_free(want);
}

static void test_errors(void)
{
	static const struct {
		const char *text, *msg;
	} cases[] = {
		{"", "fw.hex: no end-of-file record (file truncated?)"},
		{":020000040800F2\n:04000000DEADBEEFC4\n",
		 "fw.hex: no end-of-file record (file truncated?)"},
		{":00000001FF\n", "fw.hex: no data records"},
		{":020000040800F2\n:04000000DEADBEEFC4\n:0400000ADEADBEEFBA\n:00000001FF\n",
		 "fw.hex: line 3: unknown record type 0x0a"},
		{":04000006DEADBEEFBE\n:00000001FF\n", "fw.hex: line 1: unknown record type 0x06"},
		{"020000040800F2\n", "fw.hex: line 1: record does not start with ':' (found '0')"},
		{"\xef\xbb\xbf:00000001FF\n",
		 "fw.hex: line 1: record does not start with ':' (found byte 0xef)"},
		{":0200000408G0F2\n", "fw.hex: line 1: column 12: 'G' is not a hex digit"},
		{":020000040800F2 \n", "fw.hex: line 1: column 16: ' ' is not a hex digit"},
		{":020000040800F\n", "fw.hex: line 1: odd number of hex digits (record truncated?)"},
		{":00000001\n", "fw.hex: line 1: record shorter than its 5-byte header and checksum"},
		{":\n", "fw.hex: line 1: record shorter than its 5-byte header and checksum"},
		{":05000000DEADBEEFC4\n",
		 "fw.hex: line 1: byte count 0x05 (5) but the record holds 4 data bytes"},
		{":03000000DEADBEEFC4\n",
		 "fw.hex: line 1: byte count 0x03 (3) but the record holds 4 data bytes"},
		{":01000001AA54\n", "fw.hex: line 1: end-of-file record carries data"},
		{":03000004080000F1\n",
		 "fw.hex: line 1: extended linear address record (type 0x04) must have 2 data bytes "
		 "and offset 0000, has 3 and 0000"},
		{":020010040800E2\n",
		 "fw.hex: line 1: extended linear address record (type 0x04) must have 2 data bytes "
		 "and offset 0000, has 2 and 0010"},
		{":0100000210ED\n",
		 "fw.hex: line 1: extended segment address record (type 0x02) must have 2 data bytes "
		 "and offset 0000, has 1 and 0000"},
		{":03000005080001EF\n",
		 "fw.hex: line 1: start linear address record (type 0x05) must have 4 data bytes and "
		 "offset 0000, has 3 and 0000"},
		{":0400010300000100F7\n",
		 "fw.hex: line 1: start segment address record (type 0x03) must have 4 data bytes and "
		 "offset 0000, has 4 and 0001"},
		{":040000050800018965\n:040000050800018965\n",
		 "fw.hex: line 2: a second start address record"},
		{":0400000300000100F8\n:040000050800018965\n",
		 "fw.hex: line 2: a second start address record"},
		/* duplicate and overlapping data */
		{":020000040800F2\n:04000000DEADBEEFC4\n:04000000DEADBEEFC4\n:00000001FF\n",
		 "fw.hex: line 3: bytes 0x08000000-0x08000003 overlap bytes 0x08000000-0x08000003 "
		 "already in the image"},
		{":020000040800F2\n:04000000DEADBEEFC4\n:02000200AABB97\n:00000001FF\n",
		 "fw.hex: line 3: bytes 0x08000002-0x08000003 overlap bytes 0x08000000-0x08000003 "
		 "already in the image"},
		/* old Mac line ends: one long line */
		{":020000040800F2\r:00000001FF\r",
		 "fw.hex: line 1: column 16: byte 0x0d is not a hex digit"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect_error(cases[i].text, FARM_EINVAL, cases[i].msg);

	/* a record longer than any valid one */
	char *longline = malloc(2000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(longline);
	longline[0] = ':';
	memset(longline + 1, '0', 1200);
	memcpy(longline + 1201, "\n", 2);
	expect_error(longline, FARM_EINVAL,
		     "fw.hex: line 1: record is 1201 characters long, at most 521 are possible");
	free(longline);
}

/* The same data address twice is refused even far apart in the file, and
 * a data record of 0 bytes is harmless. */
static void test_zero_length_and_max_record(void)
{
	struct farm_image *img = parse_ok(":0000000000\n:04000000DEADBEEFC4\n:00000001FF\n");
	CU_ASSERT(img && img->n_segs == 1 && farm_image_size(img) == 4);
	farm_image_free(img);
	/* 255 data bytes in one record */
	struct farm_buf b = {0};
	uint8_t sum = 0xff + 0x00 + 0x00 + 0x00;
	farm_buf_puts(&b, ":FF000000");
	for (int i = 0; i < 255; i++) {
		farm_buf_printf(&b, "%02X", i);
		sum = (uint8_t)(sum + i);
	}
	farm_buf_printf(&b, "%02X\n:00000001FF\n", (uint8_t)(0x100 - sum));
	img = parse_ok(b.data);
	CU_ASSERT(img && img->n_segs == 1 && img->segs[0].len == 255 && img->segs[0].data[254] == 254);
	farm_image_free(img);
	farm_buf_free(&b);
}

/* More separate runs than an image may have. */
static void test_segment_limit(void)
{
	struct farm_buf b = {0};
	for (unsigned i = 0; i <= FARM_IMAGE_MAX_SEGMENTS; i++) {
		unsigned off = i * 2 & 0xffff, hi = i * 2 >> 16;
		if (off == 0)
			farm_buf_printf(&b, ":02000004%04X%02X\n", hi,
					(uint8_t)(0x100 - (2 + 4 + (hi >> 8) + (hi & 0xff))));
		farm_buf_printf(&b, ":01%04X0000%02X\n", off,
				(uint8_t)(0x100 - (1 + (off >> 8) + (off & 0xff))));
	}
	farm_buf_puts(&b, ":00000001FF\n");
	struct farm_err e = {0};
	struct farm_image *img = parse(b.data, &e);
	CU_ASSERT_PTR_NULL(img);
	CU_ASSERT_EQUAL(e.code, FARM_ELIMIT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "fw.hex: line 4098: more than 4096 separate segments"));
	farm_buf_free(&b);
}

static const char *small_lf = ":020000040800F2\n"
			      ":10010000000102030405060708090A0B0C0D0E0F77\n"
			      ":04000000DEADBEEFC4\n"
			      ":040000050800018965\n"
			      ":00000001FF\n";
static const char *small_crlf = ":020000040800F2\r\n"
				":10010000000102030405060708090A0B0C0D0E0F77\r\n"
				":04000000DEADBEEFC4\r\n"
				":040000050800018965\r\n"
				":00000001FF\r\n";

/* Cut a small file at every byte: every prefix is refused, except those
 * that still hold the whole end-of-file record, which give the same image. */
static void test_truncated_everywhere(void)
{
	const char *files[] = {small_lf, small_crlf};
	for (size_t f = 0; f < 2; f++) {
		const char *text = files[f];
		size_t len = strlen(text);
		struct farm_image *full = parse_ok(text);
		size_t eof_end = (size_t)(strstr(text, ":00000001FF") - text) + 11;
		for (size_t cut = 0; full && cut < len; cut++) {
			struct farm_image *img = NULL;
			struct farm_err e = {0};
			int rc = farm_image_parse_ihex(&img, text, cut, "fw.hex", &e);
			if (cut >= eof_end) {
				CU_ASSERT(rc == 0 && same_image(img, full));
			} else {
				CU_ASSERT(rc == FARM_EINVAL && img == NULL);
			}
			farm_image_free(img);
		}
		farm_image_free(full);
	}
}

/* Flip every bit of every byte: refused, or the very same image. The only
 * harmless flips are the case of a hex letter and a '\r' lost before its '\n'
 * (0x0d ^ 0x01 = 0x0c is a different byte, so none of those); count them. */
static void test_bit_flips(void)
{
	const char *files[] = {small_lf, small_crlf};
	for (size_t f = 0; f < 2; f++) {
		size_t len = strlen(files[f]);
		struct farm_image *full = parse_ok(files[f]);
		char *buf = malloc(len + 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
		size_t accepted = 0, letters = 0;
		for (size_t i = 0; full && i < len; i++) {
			char c = files[f][i];
			letters += (c >= 'A' && c <= 'F');
			for (int bit = 0; bit < 8; bit++) {
				memcpy(buf, files[f], len + 1);
				buf[i] = (char)(buf[i] ^ (1 << bit));
				struct farm_image *img = NULL;
				struct farm_err e = {0};
				if (farm_image_parse_ihex(&img, buf, len, "fw.hex", &e) == 0) {
					accepted++;
					CU_ASSERT(same_image(img, full));
					CU_ASSERT(bit == 5 && c >= 'A' && c <= 'F');
				} else {
					CU_ASSERT(e.msg[0] != '\0');
				}
				farm_image_free(img);
			}
		}
		CU_ASSERT_EQUAL(accepted, letters); /* exactly the case flips */
		free(buf);
		farm_image_free(full);
	}
}

/* ---- writer ---- */

static void test_writer_output(void)
{
	struct farm_image *img = NULL;
	struct farm_err e = {0};
	CU_ASSERT_EQUAL_FATAL(farm_image_new(&img, FARM_IMG_BIN, &e), 0);
	uint8_t d[20];
	for (int i = 0; i < 20; i++)
		d[i] = (uint8_t)i;
	CU_ASSERT_EQUAL(farm_image_add(img, 0x0800fff8, d, 20, &e), 0);
	img->has_entry = 1;
	img->entry = 0x08000189;
	struct farm_buf b = {0};
	CU_ASSERT_EQUAL(farm_image_write_ihex(img, &b, &e), 0);
	CU_ASSERT_STRING_EQUAL(b.data, ":040000050800018965\n"
				       ":020000040800F2\n"
				       ":08FFF8000001020304050607E5\n"
				       ":020000040801F1\n"
				       ":0C00000008090A0B0C0D0E0F1011121352\n"
				       ":00000001FF\n");
	farm_image_free(img);
	farm_buf_free(&b);

	/* low addresses need no 04 record; 16 bytes per record */
	CU_ASSERT_EQUAL_FATAL(farm_image_new(&img, FARM_IMG_BIN, &e), 0);
	CU_ASSERT_EQUAL(farm_image_add(img, 0x100, d, 16, &e), 0);
	CU_ASSERT_EQUAL(farm_image_add(img, 0x200, d, 20, &e), 0);
	CU_ASSERT_EQUAL(farm_image_write_ihex(img, &b, &e), 0);
	CU_ASSERT_STRING_EQUAL(b.data, ":10010000000102030405060708090A0B0C0D0E0F77\n"
				       ":10020000000102030405060708090A0B0C0D0E0F76\n"
				       ":0402100010111213A4\n"
				       ":00000001FF\n");
	farm_image_free(img);
	farm_buf_free(&b);
}

static void test_writer_round_trip_wide(void)
{
	/* segments across the whole 32-bit space, touching 2^32 */
	struct farm_image *img = NULL, *back = NULL;
	struct farm_err e = {0};
	CU_ASSERT_EQUAL_FATAL(farm_image_new(&img, FARM_IMG_BIN, &e), 0);
	uint8_t d[300];
	for (int i = 0; i < 300; i++)
		d[i] = (uint8_t)(255 - i);
	CU_ASSERT_EQUAL(farm_image_add(img, 0, d, 1, &e), 0);
	CU_ASSERT_EQUAL(farm_image_add(img, 0x1fff0, d, 300, &e), 0);
	CU_ASSERT_EQUAL(farm_image_add(img, 0xffffff00, d, 256, &e), 0);
	struct farm_buf b = {0};
	CU_ASSERT_EQUAL(farm_image_write_ihex(img, &b, &e), 0);
	CU_ASSERT_EQUAL(farm_image_parse_ihex(&back, b.data, b.len, "rt.hex", &e), 0);
	CU_ASSERT(back && same_image(img, back));
	farm_image_free(back);
	farm_image_free(img);
	farm_buf_free(&b);
}

/* ---- the real thing ---- */

static void test_microbit_firmware(void)
{
	struct farm_image *img = NULL;
	struct farm_err e = {0};
	struct farm_buf raw = {0};
	if (farm_buf_read_file(&raw, MICROBIT_HEX, FARM_IMAGE_MAX_BYTES, &e) != 0) {
		fprintf(stderr, "(skipped: %s not installed) ", MICROBIT_HEX);
		farm_buf_free(&raw);
		return;
	}
	CU_ASSERT_EQUAL(farm_image_detect(raw.data, raw.len, MICROBIT_HEX), FARM_IMG_IHEX);
	int rc = farm_image_load(&img, MICROBIT_HEX, FARM_IMG_UNKNOWN, 0, &e);
	if (rc)
		fprintf(stderr, "%s\n", e.msg);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT(img->n_segs >= 2);
	CU_ASSERT_EQUAL(img->segs[0].addr, 0);
	CU_ASSERT(farm_image_size(img) > 100 * 1024);
	CU_ASSERT(img->has_entry);
	/* flash at 0 plus MicroPython's UICR words at 0x100010c0 */
	CU_ASSERT_EQUAL(img->segs[img->n_segs - 1].addr >> 12, 0x10001);
	const struct farm_flashmap *m = farm_flashmap_find("nrf51");
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	rc = farm_flashmap_check(m, img, 0, &e);
	if (rc)
		fprintf(stderr, "%s\n", e.msg);
	CU_ASSERT_EQUAL(rc, 0);
	/* too big for nothing, but not a fit for a smaller part */
	CU_ASSERT_NOT_EQUAL(farm_flashmap_check(farm_flashmap_find("samd21"), img, 0, &e), 0);

	/* written back as HEX it is the same image */
	struct farm_buf b = {0};
	struct farm_image *back = NULL;
	CU_ASSERT_EQUAL(farm_image_write_ihex(img, &b, &e), 0);
	CU_ASSERT_EQUAL(farm_image_parse_ihex(&back, b.data, b.len, "rt.hex", &e), 0);
	CU_ASSERT(back && same_image(img, back));
	farm_image_free(back);
	farm_buf_free(&b);
	farm_buf_free(&raw);
	farm_image_free(img);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("image_ihex", NULL, NULL);
	if (!s)
		return -1;
	const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{"intel-hex.md vectors, every record type", test_vectors},
		{"02 and 04 bases: replaced, never mixed", test_base_records},
		{"crossing 64 KiB with and without an 04 record", test_64k_crossing},
		{"line ends, case, empty lines, data after EOF", test_line_ends_and_case},
		{"malformed records: clear messages", test_errors},
		{"zero-length and 255-byte records", test_zero_length_and_max_record},
		{"segment limit", test_segment_limit},
		{"truncated at every byte", test_truncated_everywhere},
		{"every single-bit flip", test_bit_flips},
		{"writer output", test_writer_output},
		{"writer round trip across the address space", test_writer_round_trip_wide},
		{"Debian micro:bit MicroPython firmware fits nrf51", test_microbit_firmware},
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
