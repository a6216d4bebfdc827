/* Tests for farm/flashmap.c: the table's own consistency, the numbers of
 * each family, lookups, the pre-erase gate and erase ranges. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmap.h"
#include "image.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

/* ---- helpers ---- */

static const struct farm_flashmap *map(const char *family)
{
	const struct farm_flashmap *m = farm_flashmap_find(family);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	return m;
}

static uint64_t flash_total(const struct farm_flashmap *m)
{
	uint64_t n = 0;
	for (size_t i = 0; i < m->n_regions; i++)
		if (m->regions[i].kind == FARM_REGION_FLASH)
			n += m->regions[i].size;
	return n;
}

/* An image with one segment per (addr, len) pair, bytes = 0xa5. */
static struct farm_image *image_of(const uint32_t *ranges, size_t n)
{
	struct farm_image *img = NULL;
	struct farm_err e = {0};
	CU_ASSERT_EQUAL_FATAL(farm_image_new(&img, FARM_IMG_BIN, &e), 0);
	for (size_t i = 0; i < n; i++) {
		uint8_t *d = malloc(ranges[2 * i + 1]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(d);
		memset(d, 0xa5, ranges[2 * i + 1]);
		CU_ASSERT_EQUAL_FATAL(farm_image_add(img, ranges[2 * i], d, ranges[2 * i + 1], &e), 0);
		free(d);
	}
	return img;
}

static void expect_check(const char *family, const uint32_t *ranges, size_t n, int allow_ram,
			 const char *msg)
{
	struct farm_image *img = image_of(ranges, n);
	struct farm_err e = {0};
	int rc = farm_flashmap_check(map(family), img, allow_ram, &e);
	if (!msg) {
		if (rc)
			fprintf(stderr, "\n  unexpected: %s\n", e.msg);
		CU_ASSERT_EQUAL(rc, 0);
	} else {
		CU_ASSERT_EQUAL(rc, FARM_EINVAL);
		if (strcmp(e.msg, msg) != 0)
			fprintf(stderr, "\n  got:  %s\n  want: %s\n", e.msg, msg);
		CU_ASSERT_STRING_EQUAL(e.msg, msg);
	}
	farm_image_free(img);
}

/* ---- the table ---- */

static void test_table_consistent(void)
{
	const struct farm_flashmap *const *all = farm_flashmap_all();
	size_t n = 0;
	for (; all[n]; n++) {
		const struct farm_flashmap *m = all[n];
		CU_ASSERT(m->family && m->family[0] && m->description && m->description[0]);
		CU_ASSERT(m->ports && m->ports[0]);
		CU_ASSERT(m->regions && m->n_regions > 0);
		CU_ASSERT_PTR_EQUAL(farm_flashmap_find(m->family), m);
		for (size_t k = 0; k < n; k++)
			CU_ASSERT(strcmp(all[k]->family, m->family) != 0);
		int has_flash = 0;
		for (size_t i = 0; i < m->n_regions; i++) {
			const struct farm_flash_region *r = &m->regions[i];
			CU_ASSERT(r->name && r->name[0] && r->size > 0);
			CU_ASSERT((uint64_t)r->start + r->size <= 0x100000000ull);
			if (i > 0) /* address-ordered, never overlapping */
				CU_ASSERT((uint64_t)m->regions[i - 1].start + m->regions[i - 1].size <= r->start);
			if (r->kind == FARM_REGION_FLASH) {
				has_flash = 1;
				CU_ASSERT(r->sector > 0 && r->size % r->sector == 0 && r->start % r->sector == 0);
				CU_ASSERT((r->sector & (r->sector - 1)) == 0);
			} else {
				CU_ASSERT_EQUAL(r->kind, FARM_REGION_RAM);
				CU_ASSERT_EQUAL(r->sector, 0);
			}
			CU_ASSERT_PTR_EQUAL(farm_flashmap_region(m, r->start), r);
			CU_ASSERT_PTR_EQUAL(farm_flashmap_region(m, r->start + r->size - 1), r);
		}
		CU_ASSERT(has_flash);
		/* MicroPython's image starts in flash */
		const struct farm_flash_region *app = farm_flashmap_region(m, m->app_base);
		CU_ASSERT(app && app->kind == FARM_REGION_FLASH);
	}
	CU_ASSERT(n >= 15);
}

static void test_find(void)
{
	CU_ASSERT_PTR_EQUAL(farm_flashmap_find("NRF51"), farm_flashmap_find("nrf51"));
	CU_ASSERT_PTR_EQUAL(farm_flashmap_find("ESP32-S3"), farm_flashmap_find("esp32s3"));
	CU_ASSERT_PTR_EQUAL(farm_flashmap_find("stm32_f4"), farm_flashmap_find("stm32f4"));
	CU_ASSERT_PTR_NULL(farm_flashmap_find("nrf5"));
	CU_ASSERT_PTR_NULL(farm_flashmap_find("nrf511"));
	CU_ASSERT_PTR_NULL(farm_flashmap_find(""));
	CU_ASSERT_PTR_NULL(farm_flashmap_find("z80"));
	CU_ASSERT_PTR_NULL(farm_flashmap_find(NULL));
	CU_ASSERT_PTR_NULL(farm_flashmap_region(NULL, 0));
	/* the names the inventories use */
	static const char *const used[] = {"nrf51", "nrf52", "rp2040", "stm32f4", "esp32"};
	for (size_t i = 0; i < sizeof used / sizeof used[0]; i++)
		CU_ASSERT_PTR_NOT_NULL(farm_flashmap_find(used[i]));
}

/* The figures runners/README.md documents. */
static void test_family_numbers(void)
{
	const struct farm_flashmap *m = map("nrf51");
	CU_ASSERT(m->regions[0].start == 0 && m->regions[0].size == 256 * KiB &&
		  m->regions[0].sector == 1 * KiB);
	const struct farm_flash_region *ram = farm_flashmap_region(m, 0x20000000);
	CU_ASSERT(ram && ram->kind == FARM_REGION_RAM && ram->size == 16 * KiB);
	CU_ASSERT(farm_flashmap_region(m, 0x10001000) != NULL);
	CU_ASSERT(m->uf2_family == 0 && m->app_base == 0 && strcmp(m->ports[0], "nrf") == 0);

	m = map("nrf52");
	CU_ASSERT(m->regions[0].size == 512 * KiB && m->regions[0].sector == 4 * KiB);
	m = map("nrf52840");
	CU_ASSERT(m->regions[0].size == 1 * MiB && m->uf2_family == 0xADA52840 && m->app_base == 0x26000);

	m = map("rp2040");
	CU_ASSERT(m->regions[0].start == 0x10000000 && m->regions[0].size == 2 * MiB &&
		  m->regions[0].sector == 4 * KiB && m->uf2_family == 0xe48bff56 &&
		  m->app_base == 0x10000000 && strcmp(m->ports[0], "rp2") == 0);
	m = map("rp2350");
	CU_ASSERT(m->regions[0].size == 4 * MiB && m->uf2_family == 0xe48bff59);

	m = map("stm32f4");
	CU_ASSERT_EQUAL(flash_total(m), 1 * MiB);
	CU_ASSERT_EQUAL(farm_flashmap_region(m, 0x0800c000)->sector, 16 * KiB);
	CU_ASSERT_EQUAL(farm_flashmap_region(m, 0x08010000)->sector, 64 * KiB);
	CU_ASSERT_EQUAL(farm_flashmap_region(m, 0x080fffff)->sector, 128 * KiB);
	CU_ASSERT(m->uf2_family == 0x57755A57 && m->app_base == 0x08000000);
	CU_ASSERT_PTR_EQUAL(map("stm32f405")->regions, m->regions);
	m = map("stm32f7");
	CU_ASSERT_EQUAL(flash_total(m), 2 * MiB);
	CU_ASSERT_EQUAL(farm_flashmap_region(m, 0x08018000)->sector, 32 * KiB);
	CU_ASSERT_EQUAL(farm_flashmap_region(m, 0x08020000)->sector, 128 * KiB);
	CU_ASSERT_EQUAL(farm_flashmap_region(m, 0x08040000)->sector, 256 * KiB);
	m = map("stm32h7");
	CU_ASSERT_EQUAL(flash_total(m), 2 * MiB);
	CU_ASSERT_EQUAL(farm_flashmap_region(m, 0x081fffff)->sector, 128 * KiB);
	CU_ASSERT_EQUAL(m->uf2_family, 0x6DB66082);

	m = map("samd21");
	CU_ASSERT(m->regions[0].size == 256 * KiB && m->regions[0].sector == 256 && m->app_base == 0x2000 &&
		  m->uf2_family == 0x68ED2B88);
	m = map("samd51");
	CU_ASSERT(m->regions[0].size == 512 * KiB && m->regions[0].sector == 8 * KiB &&
		  m->app_base == 0x4000 && m->uf2_family == 0x55114460);

	static const struct {
		const char *name;
		uint32_t family, app;
	} esp[] = {{"esp32", 0x1C5F21B0, 0x1000},
		   {"esp32s2", 0xBFDD4EEE, 0x1000},
		   {"esp32s3", 0xC47E5767, 0},
		   {"esp32c3", 0xD42BA06C, 0}};
	for (size_t i = 0; i < sizeof esp / sizeof esp[0]; i++) {
		m = map(esp[i].name);
		CU_ASSERT(m->n_regions == 1 && m->regions[0].start == 0 && m->regions[0].size == 4 * MiB &&
			  m->regions[0].sector == 4 * KiB);
		CU_ASSERT(m->uf2_family == esp[i].family && m->app_base == esp[i].app);
	}
	m = map("mimxrt");
	const struct farm_flash_region *fs = farm_flashmap_region(m, 0x60000000);
	CU_ASSERT(fs && fs->kind == FARM_REGION_FLASH && fs->size == 8 * MiB && fs->sector == 4 * KiB);
	CU_ASSERT(m->uf2_family == 0x4FB2D5BD && m->app_base == 0x60000000);
}

/* ---- the gate ---- */

static void test_check(void)
{
	/* fits exactly; one byte past the end */
	const uint32_t fits[] = {0, 256 * KiB};
	expect_check("nrf51", fits, 1, 0, NULL);
	const uint32_t last[] = {0x3ffff, 1, 0x40000, 1};
	expect_check("nrf51", last, 2, 0,
		     "image bytes 0x00040000-0x00040000 lie outside nrf51 flash "
		     "(0x00000000-0x0003ffff, 0x10001000-0x100013ff)");
	/* too big overall */
	const uint32_t big[] = {0, 264 * KiB};
	expect_check("nrf51", big, 1, 0, "image is 270336 bytes; nrf51 flash holds 263168");
	/* a run leaving flash stops at the flash end; a gap is named up to the next region */
	const uint32_t leaving[] = {0x3f000, 0x2000};
	expect_check("nrf51", leaving, 1, 0,
		     "image bytes 0x00040000-0x00040fff lie outside nrf51 flash "
		     "(0x00000000-0x0003ffff, 0x10001000-0x100013ff)");
	const uint32_t gap[] = {0x10000f00, 0x200};
	expect_check("nrf51", gap, 1, 0,
		     "image bytes 0x10000f00-0x10000fff lie outside nrf51 flash "
		     "(0x00000000-0x0003ffff, 0x10001000-0x100013ff)");
	/* the first offending range is reported */
	const uint32_t two[] = {0x100, 1, 0x50000, 4, 0x60000, 4};
	expect_check("nrf51", two, 3, 0,
		     "image bytes 0x00050000-0x00050003 lie outside nrf51 flash "
		     "(0x00000000-0x0003ffff, 0x10001000-0x100013ff)");
	/* RAM only when allowed */
	const uint32_t ram[] = {0x20000000, 0x100};
	expect_check("nrf51", ram, 1, 0,
		     "image bytes 0x20000000-0x200000ff lie outside nrf51 flash "
		     "(0x00000000-0x0003ffff, 0x10001000-0x100013ff)");
	expect_check("nrf51", ram, 1, 1, NULL);
	const uint32_t ram_end[] = {0x20003f00, 0x200};
	expect_check("nrf51", ram_end, 1, 1,
		     "image bytes 0x20004000-0x200040ff lie outside nrf51 flash and RAM "
		     "(0x00000000-0x0003ffff, 0x10001000-0x100013ff, 0x20000000-0x20003fff)");
	/* one run across the differently sized sectors of an STM32F4 */
	const uint32_t across[] = {0x08000000, 1 * MiB};
	expect_check("stm32f4", across, 1, 0, NULL);
	const uint32_t past[] = {0x080ff000, 0x2000};
	expect_check("stm32f4", past, 1, 0,
		     "image bytes 0x08100000-0x08100fff lie outside stm32f4 flash (0x08000000-0x080fffff)");
	/* both H7 banks */
	const uint32_t banks[] = {0x080ff000, 0x2000};
	expect_check("stm32h7", banks, 1, 0, NULL);
	/* an ESP32 ELF (CPU addresses) is not a flash image */
	const uint32_t irom[] = {0x400d0020, 0x100};
	expect_check("esp32", irom, 1, 1,
		     "image bytes 0x400d0020-0x400d011f lie outside esp32 flash and RAM "
		     "(0x00000000-0x003fffff)");
	/* the top of the address space */
	const uint32_t top[] = {0xffffff00, 0x100};
	expect_check("rp2040", top, 1, 1,
		     "image bytes 0xffffff00-0xffffffff lie outside rp2040 flash and RAM "
		     "(0x10000000-0x101fffff, 0x20000000-0x20041fff)");

	struct farm_err e = {0};
	struct farm_image *empty = image_of(NULL, 0);
	CU_ASSERT_EQUAL(farm_flashmap_check(map("nrf51"), empty, 0, &e), FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.msg, "image is empty");
	CU_ASSERT_EQUAL(farm_flashmap_check(NULL, empty, 0, &e), FARM_EINVAL);
	farm_image_free(empty);
}

static void test_erase_range(void)
{
	uint32_t start = 1, len = 1;
	struct farm_err e = {0};
	CU_ASSERT_EQUAL(farm_flashmap_erase_range(map("nrf51"), 0x1234, 10, &start, &len, &e), 0);
	CU_ASSERT(start == 0x1000 && len == 0x400);
	CU_ASSERT_EQUAL(farm_flashmap_erase_range(map("nrf51"), 0x1000, 0x400, &start, &len, &e), 0);
	CU_ASSERT(start == 0x1000 && len == 0x400);
	CU_ASSERT_EQUAL(farm_flashmap_erase_range(map("nrf51"), 0x1000, 0x401, &start, &len, &e), 0);
	CU_ASSERT(start == 0x1000 && len == 0x800);
	/* from a 16 KiB sector into the 64 KiB one */
	CU_ASSERT_EQUAL(farm_flashmap_erase_range(map("stm32f4"), 0x0800c100, 0x8000, &start, &len, &e), 0);
	CU_ASSERT(start == 0x0800c000 && len == 0x14000);
	/* the whole F4 flash */
	CU_ASSERT_EQUAL(farm_flashmap_erase_range(map("stm32f4"), 0x08000000, 1 * MiB, &start, &len, &e), 0);
	CU_ASSERT(start == 0x08000000 && len == 1 * MiB);
	/* SAMD21 rows */
	CU_ASSERT_EQUAL(farm_flashmap_erase_range(map("samd21"), 0x2001, 0x100, &start, &len, &e), 0);
	CU_ASSERT(start == 0x2000 && len == 0x200);
	/* nothing to erase */
	CU_ASSERT_EQUAL(farm_flashmap_erase_range(map("nrf51"), 0x1234, 0, &start, &len, &e), 0);
	CU_ASSERT(start == 0x1234 && len == 0);
	/* outside flash, RAM, past the end */
	CU_ASSERT_EQUAL(farm_flashmap_erase_range(map("nrf51"), 0x3ff00, 0x200, &start, &len, &e),
			FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.msg, "erase range 0x0003ff00-0x000400ff: 0x00040000 is outside nrf51 "
				      "flash (0x00000000-0x0003ffff, 0x10001000-0x100013ff)");
	CU_ASSERT_EQUAL(farm_flashmap_erase_range(map("nrf51"), 0x20000000, 4, &start, &len, &e),
			FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_flashmap_erase_range(map("nrf51"), 0xffffff00, 0x200, &start, &len, &e),
			FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_flashmap_erase_range(NULL, 0, 4, &start, &len, &e), FARM_EINVAL);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("flashmap", NULL, NULL);
	if (!s)
		return -1;
	const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{"table is consistent", test_table_consistent},
		{"find by name", test_find},
		{"documented numbers per family", test_family_numbers},
		{"check: fits, past the end, gaps, RAM", test_check},
		{"erase ranges", test_erase_range},
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
