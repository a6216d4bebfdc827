/* mpfarm: flash maps per MCU family: one const data table and the checks
 * made against it before anything is erased.
 *
 * The table is the source of truth; runners/README.md ("Flash maps")
 * describes where each number comes from. Sizes are the family's usual
 * part (the one named in the description); a region's size is a multiple of
 * its sector size and its start is sector-aligned. Regions are listed in
 * address order. UICR pages of the nRF parts are flash (the micro:bit
 * MicroPython image writes one) and count as flash. ESP32-family maps are
 * SPI flash offsets from 0, not CPU addresses. */
#include "flashmap.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define KiB 1024u
#define MiB (1024u * 1024u)

#define FLASH(start, size, sector, name) {start, size, sector, FARM_REGION_FLASH, name}
#define RAM(start, size, name) {start, size, 0, FARM_REGION_RAM, name}
#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define REGIONS(r) r, N_ELEMS(r)

static const char *const ports_nrf[] = {"nrf", NULL};
static const char *const ports_rp2[] = {"rp2", NULL};
static const char *const ports_stm32[] = {"stm32", NULL};
static const char *const ports_samd[] = {"samd", NULL};
static const char *const ports_esp32[] = {"esp32", NULL};
static const char *const ports_esp8266[] = {"esp8266", NULL};
static const char *const ports_mimxrt[] = {"mimxrt", NULL};

/* Nordic: code flash at 0, the UICR page at 0x10001000, RAM at 0x20000000. */
static const struct farm_flash_region nrf51_regions[] = {
	FLASH(0x00000000, 256 * KiB, 1 * KiB, "flash"),
	FLASH(0x10001000, 1 * KiB, 1 * KiB, "uicr"),
	RAM(0x20000000, 16 * KiB, "ram"),
};
static const struct farm_flash_region nrf52832_regions[] = {
	FLASH(0x00000000, 512 * KiB, 4 * KiB, "flash"),
	FLASH(0x10001000, 4 * KiB, 4 * KiB, "uicr"),
	RAM(0x20000000, 64 * KiB, "ram"),
};
static const struct farm_flash_region nrf52840_regions[] = {
	FLASH(0x00000000, 1 * MiB, 4 * KiB, "flash"),
	FLASH(0x10001000, 4 * KiB, 4 * KiB, "uicr"),
	RAM(0x20000000, 256 * KiB, "ram"),
};

/* Raspberry Pi: QSPI flash through the XIP window, striped SRAM. */
static const struct farm_flash_region rp2040_regions[] = {
	FLASH(0x10000000, 2 * MiB, 4 * KiB, "flash"),
	RAM(0x20000000, 264 * KiB, "sram"),
};
static const struct farm_flash_region rp2350_regions[] = {
	FLASH(0x10000000, 4 * MiB, 4 * KiB, "flash"),
	RAM(0x20000000, 520 * KiB, "sram"),
};

/* STM32: sector sizes vary inside the flash, one region per run of equal sectors. */
static const struct farm_flash_region stm32f4_regions[] = {
	FLASH(0x08000000, 64 * KiB, 16 * KiB, "sectors 0-3"),
	FLASH(0x08010000, 64 * KiB, 64 * KiB, "sector 4"),
	FLASH(0x08020000, 896 * KiB, 128 * KiB, "sectors 5-11"),
	RAM(0x20000000, 128 * KiB, "sram"),
};
static const struct farm_flash_region stm32f7_regions[] = {
	FLASH(0x08000000, 128 * KiB, 32 * KiB, "sectors 0-3"),
	FLASH(0x08020000, 128 * KiB, 128 * KiB, "sector 4"),
	FLASH(0x08040000, 1792 * KiB, 256 * KiB, "sectors 5-11"),
	RAM(0x20000000, 512 * KiB, "sram"),
};
static const struct farm_flash_region stm32h7_regions[] = {
	FLASH(0x08000000, 1 * MiB, 128 * KiB, "bank1"),
	FLASH(0x08100000, 1 * MiB, 128 * KiB, "bank2"),
	RAM(0x20000000, 128 * KiB, "dtcm"),
	RAM(0x24000000, 512 * KiB, "axi sram"),
};

/* Microchip SAM D: erase granularity is a row (SAMD21) or a block (SAMD51). */
static const struct farm_flash_region samd21_regions[] = {
	FLASH(0x00000000, 256 * KiB, 256, "flash"),
	RAM(0x20000000, 32 * KiB, "sram"),
};
static const struct farm_flash_region samd51_regions[] = {
	FLASH(0x00000000, 512 * KiB, 8 * KiB, "flash"),
	RAM(0x20000000, 192 * KiB, "sram"),
};

/* Espressif: SPI flash offsets (what esptool writes), no CPU addresses. */
static const struct farm_flash_region esp32_regions[] = {
	FLASH(0x00000000, 4 * MiB, 4 * KiB, "spi flash"),
};

/* NXP i.MX RT1060: FlexSPI NOR through its AHB window, OCRAM2. */
static const struct farm_flash_region mimxrt1060_regions[] = {
	RAM(0x20200000, 512 * KiB, "ocram"),
	FLASH(0x60000000, 8 * MiB, 4 * KiB, "flexspi"),
};

#define NRF51_DESC "Nordic nRF51822/nRF51422 (256 KiB flash, 16 KiB RAM; micro:bit v1)"
#define NRF52832_DESC "Nordic nRF52832 (512 KiB flash, 64 KiB RAM)"
#define NRF52840_DESC "Nordic nRF52840 (1 MiB flash, 256 KiB RAM; app after the S140 SoftDevice)"
#define STM32F4_DESC "ST STM32F405/F407 (1 MiB flash: 4x16K, 1x64K, 7x128K sectors)"
#define STM32F7_DESC "ST STM32F765/F767/F769 (2 MiB single-bank flash: 4x32K, 1x128K, 7x256K)"
#define STM32H7_DESC "ST STM32H743/H753 (2 MiB flash, two banks of 8x128K sectors)"
#define MIMXRT_DESC "NXP i.MX RT1060/RT1062 (8 MiB FlexSPI NOR flash)"

static const struct farm_flashmap maps[] = {
	{"nrf51", NRF51_DESC, ports_nrf, REGIONS(nrf51_regions), 0, 0x00000000},
	{"nrf52", NRF52832_DESC, ports_nrf, REGIONS(nrf52832_regions), 0x1B57745F, 0x00000000},
	{"nrf52832", NRF52832_DESC, ports_nrf, REGIONS(nrf52832_regions), 0x1B57745F, 0x00000000},
	{"nrf52840", NRF52840_DESC, ports_nrf, REGIONS(nrf52840_regions), 0xADA52840, 0x00026000},
	{"rp2040", "Raspberry Pi RP2040 (2 MiB QSPI flash as on the Pico)", ports_rp2,
	 REGIONS(rp2040_regions), 0xE48BFF56, 0x10000000},
	{"rp2350", "Raspberry Pi RP2350, Arm secure images (4 MiB QSPI flash as on the Pico 2)",
	 ports_rp2, REGIONS(rp2350_regions), 0xE48BFF59, 0x10000000},
	{"stm32f4", STM32F4_DESC, ports_stm32, REGIONS(stm32f4_regions), 0x57755A57, 0x08000000},
	{"stm32f405", STM32F4_DESC, ports_stm32, REGIONS(stm32f4_regions), 0x57755A57, 0x08000000},
	{"stm32f407", STM32F4_DESC, ports_stm32, REGIONS(stm32f4_regions), 0x57755A57, 0x08000000},
	{"stm32f7", STM32F7_DESC, ports_stm32, REGIONS(stm32f7_regions), 0x53B80F00, 0x08000000},
	{"stm32f767", STM32F7_DESC, ports_stm32, REGIONS(stm32f7_regions), 0x53B80F00, 0x08000000},
	{"stm32h7", STM32H7_DESC, ports_stm32, REGIONS(stm32h7_regions), 0x6DB66082, 0x08000000},
	{"stm32h743", STM32H7_DESC, ports_stm32, REGIONS(stm32h7_regions), 0x6DB66082, 0x08000000},
	{"samd21", "Microchip SAMD21x18 (256 KiB flash, 256-byte rows; 8 KiB UF2 bootloader)",
	 ports_samd, REGIONS(samd21_regions), 0x68ED2B88, 0x00002000},
	{"samd51", "Microchip SAMD51x19 (512 KiB flash, 8 KiB blocks; 16 KiB UF2 bootloader)",
	 ports_samd, REGIONS(samd51_regions), 0x55114460, 0x00004000},
	{"esp32", "Espressif ESP32 (4 MiB SPI flash, by offset; bootloader at 0x1000)", ports_esp32,
	 REGIONS(esp32_regions), 0x1C5F21B0, 0x00001000},
	{"esp32s2", "Espressif ESP32-S2 (4 MiB SPI flash, by offset; bootloader at 0x1000)",
	 ports_esp32, REGIONS(esp32_regions), 0xBFDD4EEE, 0x00001000},
	{"esp32s3", "Espressif ESP32-S3 (4 MiB SPI flash, by offset; bootloader at 0)", ports_esp32,
	 REGIONS(esp32_regions), 0xC47E5767, 0x00000000},
	{"esp32c3", "Espressif ESP32-C3 (4 MiB SPI flash, by offset; bootloader at 0)", ports_esp32,
	 REGIONS(esp32_regions), 0xD42BA06C, 0x00000000},
	{"esp8266", "Espressif ESP8266 (4 MiB SPI flash, by offset; image at 0)", ports_esp8266,
	 REGIONS(esp32_regions), 0x7EAB61ED, 0x00000000},
	{"mimxrt", MIMXRT_DESC, ports_mimxrt, REGIONS(mimxrt1060_regions), 0x4FB2D5BD, 0x60000000},
	{"mimxrt1060", MIMXRT_DESC, ports_mimxrt, REGIONS(mimxrt1060_regions), 0x4FB2D5BD, 0x60000000},
	{"mimxrt1062", MIMXRT_DESC, ports_mimxrt, REGIONS(mimxrt1060_regions), 0x4FB2D5BD, 0x60000000},
};

static const struct farm_flashmap *const all_maps[] = {
	&maps[0],  &maps[1],  &maps[2],  &maps[3],  &maps[4],  &maps[5],  &maps[6],  &maps[7],
	&maps[8],  &maps[9],  &maps[10], &maps[11], &maps[12], &maps[13], &maps[14], &maps[15],
	&maps[16], &maps[17], &maps[18], &maps[19], &maps[20], &maps[21], &maps[22], NULL,
};
_Static_assert(N_ELEMS(all_maps) == N_ELEMS(maps) + 1, "all_maps lists every map");

const struct farm_flashmap *const *farm_flashmap_all(void)
{
	return all_maps;
}

int farm_flashmap_name_eq(const char *a, const char *b)
{
	for (;;) {
		while (*a == '-' || *a == '_')
			a++;
		while (*b == '-' || *b == '_')
			b++;
		if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
			return 0;
		if (!*a)
			return 1;
		a++;
		b++;
	}
}

const struct farm_flashmap *farm_flashmap_find(const char *family)
{
	if (!family)
		return NULL;
	for (size_t i = 0; i < N_ELEMS(maps); i++)
		if (farm_flashmap_name_eq(maps[i].family, family))
			return &maps[i];
	return NULL;
}

static int contains(const struct farm_flash_region *r, uint32_t addr)
{
	return addr >= r->start && addr - r->start < r->size;
}

static uint64_t region_end(const struct farm_flash_region *r)
{
	return (uint64_t)r->start + r->size;
}

const struct farm_flash_region *farm_flashmap_region(const struct farm_flashmap *m, uint32_t addr)
{
	for (size_t i = 0; m && i < m->n_regions; i++)
		if (contains(&m->regions[i], addr))
			return &m->regions[i];
	return NULL;
}

static int usable(const struct farm_flash_region *r, int allow_ram)
{
	return r && (r->kind == FARM_REGION_FLASH || allow_ram);
}

/* "0x08000000-0x080fffff, 0x10001000-0x100013ff": the usable ranges,
 * adjacent regions joined. */
static void describe(const struct farm_flashmap *m, int allow_ram, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < m->n_regions; i++) {
		const struct farm_flash_region *r = &m->regions[i];
		if (!usable(r, allow_ram))
			continue;
		uint64_t end = region_end(r);
		while (i + 1 < m->n_regions && usable(&m->regions[i + 1], allow_ram) &&
		       m->regions[i + 1].start == end)
			end = region_end(&m->regions[++i]);
		int k = snprintf(buf + n, len - n, "%s0x%08x-0x%08x", n ? ", " : "", r->start,
				 (uint32_t)(end - 1));
		if (k < 0 || (size_t)k >= len - n)
			return;
		n += (size_t)k;
	}
}

int farm_flashmap_check(const struct farm_flashmap *m, const struct farm_image *img, int allow_ram,
			struct farm_err *e)
{
	if (!m)
		return farm_err_set(e, FARM_EINVAL, "no flash map");
	if (!img || !img->n_segs)
		return farm_err_set(e, FARM_EINVAL, "image is empty");
	const char *what = allow_ram ? "flash and RAM" : "flash";
	uint64_t capacity = 0;
	for (size_t i = 0; i < m->n_regions; i++)
		if (usable(&m->regions[i], allow_ram))
			capacity += m->regions[i].size;
	size_t size = farm_image_size(img);
	if (size > capacity)
		return farm_err_set(e, FARM_EINVAL, "image is %zu bytes; %s %s hold%s %llu", size,
				    m->family, what, allow_ram ? "" : "s", (unsigned long long)capacity);
	for (size_t s = 0; s < img->n_segs; s++) {
		uint64_t at = img->segs[s].addr, end = at + img->segs[s].len;
		while (at < end) {
			const struct farm_flash_region *r = farm_flashmap_region(m, (uint32_t)at);
			if (usable(r, allow_ram)) {
				at = region_end(r) < end ? region_end(r) : end;
				continue;
			}
			uint64_t bad_end = end;
			for (size_t i = 0; i < m->n_regions; i++)
				if (usable(&m->regions[i], allow_ram) && m->regions[i].start > at &&
				    m->regions[i].start < bad_end)
					bad_end = m->regions[i].start;
			char ranges[256];
			describe(m, allow_ram, ranges, sizeof ranges);
			return farm_err_set(e, FARM_EINVAL, "image bytes 0x%08x-0x%08x lie outside %s %s (%s)",
					    (uint32_t)at, (uint32_t)(bad_end - 1), m->family, what, ranges);
		}
	}
	return 0;
}

int farm_flashmap_erase_range(const struct farm_flashmap *m, uint32_t addr, uint32_t len,
			      uint32_t *erase_start, uint32_t *erase_len, struct farm_err *e)
{
	*erase_start = addr;
	*erase_len = 0;
	if (!m)
		return farm_err_set(e, FARM_EINVAL, "no flash map");
	if (len == 0)
		return 0;
	uint64_t end = (uint64_t)addr + len;
	if (end > 0x100000000ull)
		return farm_err_set(e, FARM_EINVAL, "erase range at 0x%08x (%u bytes) runs past 0xffffffff",
				    addr, len);
	const struct farm_flash_region *first = NULL, *last = NULL;
	for (uint64_t at = addr; at < end;) {
		const struct farm_flash_region *r = farm_flashmap_region(m, (uint32_t)at);
		if (!r || r->kind != FARM_REGION_FLASH) {
			char ranges[256];
			describe(m, 0, ranges, sizeof ranges);
			return farm_err_set(e, FARM_EINVAL,
					    "erase range 0x%08x-0x%08x: 0x%08x is outside %s flash (%s)", addr,
					    (uint32_t)(end - 1), (uint32_t)at, m->family, ranges);
		}
		if (!first)
			first = r;
		last = r;
		at = region_end(r);
	}
	uint64_t lo = first->start + (addr - first->start) / first->sector * first->sector;
	uint64_t hi_off = end - last->start;
	uint64_t hi = last->start + (hi_off + last->sector - 1) / last->sector * last->sector;
	*erase_start = (uint32_t)lo;
	*erase_len = (uint32_t)(hi - lo);
	return 0;
}
