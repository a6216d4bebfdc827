/* Tests for farm/firmware.c (the plan) and the inventory's firmware entry
 * forms it loads: a files: list of raw binaries at flash offsets (an ESP32
 * bootloader / partition table / application set) and a merged image. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "firmware.h"

static char dir[64];

static void write_file(const char *name, size_t len, uint8_t fill)
{
	char path[128];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	for (size_t i = 0; i < len; i++)
		fputc((int)(uint8_t)(fill + i), f);
	fclose(f);
}

static int setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/mpfarm-fwtest-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void)
{
	const char *names[] = { "boot.bin", "pt.bin", "app.bin", "empty.bin", "merged.bin" };
	char path[128];
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
	return rmdir(dir);
}

static struct farm_inventory *last_inv;

static void done(struct farm_fwplan *p, struct farm_diags *d)
{
	farm_fwplan_free(p);
	farm_inventory_free(last_inv);
	last_inv = NULL;
	farm_diags_free(d);
	memset(d, 0, sizeof *d);
}

/* An inventory with one esp32 board and the given firmware entry body. */
static int plan(const char *entry, struct farm_fwplan **out, struct farm_diags *d)
{
	char text[2048];
	snprintf(text, sizeof text,
		 "boards:\n"
		 "  - {id: e1, port: esp32, board: ESP32_GENERIC, mcu: esp32,\n"
		 "     serial: {path: /dev/ttyUSB0}}\n"
		 "firmware:\n"
		 "  - boards: [e1]\n"
		 "%s",
		 entry);
	struct farm_inventory *inv = NULL;
	struct farm_err e = { 0 };
	*out = NULL;
	int rc = farm_inventory_load_buf(&inv, "mem.yaml", text, strlen(text), d, &e);
	if (rc)
		return rc;
	const struct farm_board *b = &inv->boards[0];
	rc = farm_fwplan_make(out, inv, &b, 1, NULL, d, &e);
	/* the plan points into inv: freed with it (done()) */
	last_inv = inv;
	return rc;
}

static const char *diag_text(const struct farm_diags *d)
{
	static char buf[2048];
	buf[0] = '\0';
	for (size_t i = 0; i < d->n; i++) {
		size_t k = strlen(buf);
		snprintf(buf + k, sizeof buf - k, "%u:%u %s | %s\n", d->v[i].line, d->v[i].col,
			 d->v[i].msg, d->v[i].hint ? d->v[i].hint : "");
	}
	return buf;
}

static void test_files_list(void)
{
	write_file("boot.bin", 0x5000, 0xe9);
	write_file("pt.bin", 0xc00, 0xaa);
	write_file("app.bin", 0x12345, 0x10);
	char entry[1024];
	snprintf(entry, sizeof entry,
		 "    files: [{path: %s/boot.bin, offset: 0x1000}, {path: %s/pt.bin, offset: 0x8000},\n"
		 "            {path: %s/app.bin, offset: 0x10000}]\n",
		 dir, dir, dir);
	struct farm_diags d = { 0 };
	struct farm_fwplan *p = NULL;
	int rc = plan(entry, &p, &d);
	CU_ASSERT_EQUAL(rc, 0);
	if (rc)
		fprintf(stderr, "%s", diag_text(&d));
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	const struct farm_fw_board *fb = farm_fwplan_board(p, "e1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(fb);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fb->image);
	const struct farm_image *img = fb->image->img;
	CU_ASSERT_EQUAL(img->format, FARM_IMG_BIN);
	CU_ASSERT_EQUAL_FATAL(img->n_segs, 3);
	CU_ASSERT_EQUAL(img->segs[0].addr, 0x1000);
	CU_ASSERT_EQUAL(img->segs[0].len, 0x5000);
	CU_ASSERT_EQUAL(img->segs[0].data[0], 0xe9);
	CU_ASSERT_EQUAL(img->segs[1].addr, 0x8000);
	CU_ASSERT_EQUAL(img->segs[1].data[1], 0xab);
	CU_ASSERT_EQUAL(img->segs[2].addr, 0x10000);
	CU_ASSERT_EQUAL(img->segs[2].len, 0x12345);
	CU_ASSERT_PTR_NOT_NULL(strstr(fb->image->path, "pt.bin@0x8000"));
	CU_ASSERT_PTR_NOT_NULL(fb->runner);
	if (fb->runner)
		CU_ASSERT_STRING_EQUAL(fb->runner->name, "esptool");
	done(p, &d);
}

static void test_files_overlap_and_bad(void)
{
	write_file("boot.bin", 0x8000, 0xe9);
	write_file("pt.bin", 0xc00, 0xaa);
	write_file("empty.bin", 0, 0);
	char entry[1024];
	struct farm_diags d = { 0 };
	struct farm_fwplan *p = NULL;
	/* boot.bin at 0x1000 runs to 0x8fff: over the partition table */
	snprintf(entry, sizeof entry,
		 "    files: [{path: %s/boot.bin, offset: 0x1000}, {path: %s/pt.bin, offset: 0x8000}]\n",
		 dir, dir);
	CU_ASSERT_EQUAL(plan(entry, &p, &d), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(diag_text(&d), "pt.bin at 0x8000"));
	done(p, &d);
	snprintf(entry, sizeof entry, "    files: [{path: %s/empty.bin, offset: 0}]\n", dir);
	CU_ASSERT_EQUAL(plan(entry, &p, &d), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(diag_text(&d), "empty file"));
	done(p, &d);
	/* shape errors from the inventory, with their line and column */
	memset(&d, 0, sizeof d);
	CU_ASSERT_EQUAL(plan("    files: [{path: a.bin}, {offset: 0x10, path: b.bin, size: 3},\n"
			     "            {path: c.bin, offset: -1}]\n    base: 0\n", &p, &d),
			FARM_EINVAL);
	const char *t = diag_text(&d);
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "offset"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "size"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "must be an address"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "do not apply to files:"));
	done(NULL, &d);
	CU_ASSERT_EQUAL(plan("    files: []\n", &p, &d), FARM_EINVAL);
	done(NULL, &d);
	CU_ASSERT_EQUAL(plan("    file: x.bin\n    files: [{path: a.bin, offset: 0}]\n", &p, &d),
			FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(diag_text(&d), "both file: and files:"));
	done(NULL, &d);
}

static void test_merged_image(void)
{
	write_file("merged.bin", 0x20000, 0x00);
	char entry[512];
	snprintf(entry, sizeof entry, "    file: %s/merged.bin\n    format: bin\n    base: 0\n", dir);
	struct farm_diags d = { 0 };
	struct farm_fwplan *p = NULL;
	CU_ASSERT_EQUAL(plan(entry, &p, &d), 0);
	const struct farm_fw_board *fb = farm_fwplan_board(p, "e1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(fb);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fb->image);
	CU_ASSERT_EQUAL(fb->image->img->n_segs, 1);
	CU_ASSERT_EQUAL(fb->image->img->segs[0].addr, 0);
	CU_ASSERT_EQUAL(fb->image->img->segs[0].len, 0x20000);
	done(p, &d);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("firmware", setup, teardown);
	if (!s)
		return -1;
	if (!CU_add_test(s, "files: list loads one image of parts", test_files_list) ||
	    !CU_add_test(s, "files: overlap, empty file, bad shapes", test_files_overlap_and_bad) ||
	    !CU_add_test(s, "merged image at base 0", test_merged_image))
		return -1;
	return 0;
}
