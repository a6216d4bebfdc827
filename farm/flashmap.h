/* mpfarm: flash maps per MCU family, from one documented data table
 * (farm/flashmap.c, described in runners/README.md).
 *
 * A board names its family with `mcu:` in the inventory ("nrf51",
 * "stm32f4", "rp2040", ...). The map lists the regions an image may be
 * written to, each with its sector (erase block) size; sector sizes may vary
 * inside a family's flash (STM32F4: 16/64/128 KiB), which is expressed as
 * several regions. farm_flashmap_check is the gate before any erase: an image
 * that does not fit is refused with the first offending byte range. */
#ifndef FARM_FLASHMAP_H
#define FARM_FLASHMAP_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "image.h"

enum farm_region_kind { FARM_REGION_FLASH, FARM_REGION_RAM };

struct farm_flash_region {
	uint32_t start;
	uint32_t size;
	uint32_t sector;   /* erase granularity; 0 for RAM */
	enum farm_region_kind kind;
	const char *name;  /* "flash", "bank2", "sram", ... */
};

struct farm_flashmap {
	const char *family;             /* "nrf51" */
	const char *description;        /* "Nordic nRF51822/nRF51422 (256 KiB flash)" */
	const char *const *ports;       /* MicroPython ports that use this family, NULL-terminated */
	const struct farm_flash_region *regions; /* address-ordered */
	size_t n_regions;
	uint32_t uf2_family;            /* UF2 family id, 0 if none */
	uint32_t app_base;              /* where MicroPython's image normally starts */
};

/* The family, or NULL. Names are matched case-insensitively. */
const struct farm_flashmap *farm_flashmap_find(const char *family);
/* Whether two family names are the same, ignoring case, '-' and '_'
 * ("ESP32-S3" is "esp32s3"). */
int farm_flashmap_name_eq(const char *a, const char *b);
/* The whole table (for listings and tests), NULL-terminated. */
const struct farm_flashmap *const *farm_flashmap_all(void);

/* The region holding addr, or NULL. */
const struct farm_flash_region *farm_flashmap_region(const struct farm_flashmap *m, uint32_t addr);

/* 0 if every byte of img lies inside flash (or, when allow_ram, RAM)
 * regions of m; else FARM_EINVAL with a message such as
 * "image bytes 0x00040000-0x00041fff lie outside nrf51 flash (0x00000000-0x0003ffff)"
 * or "image is 270336 bytes; nrf51 flash holds 262144". */
int farm_flashmap_check(const struct farm_flashmap *m, const struct farm_image *img, int allow_ram,
			struct farm_err *e);

/* The erase range covering [addr, addr+len) in a flash region: start rounded
 * down, end rounded up to the sectors of the regions it touches. Fails if any
 * part is outside flash. */
int farm_flashmap_erase_range(const struct farm_flashmap *m, uint32_t addr, uint32_t len,
			      uint32_t *erase_start, uint32_t *erase_len, struct farm_err *e);

#endif
