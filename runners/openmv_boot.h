/* mpfarm: the OpenMV Cam legacy USB-CDC bootloader (BOOTLDR_* commands),
 * driven as OpenMV IDE drives it (/work/shared/protocols/openmv-bootloader.md).
 * Used by the "openmv" runner (runners/openmv.c); a separate module so the
 * protocol can be tested over any farm_transport.
 *
 * The device takes each USB transfer as one command (u32 LE code, then its
 * argument); there is no length field, no checksum and no read-back. The
 * client therefore writes one command per write call, never two in one,
 * always whole WRITE packets of the same size (endpoint size - 4 bytes: 60 on
 * a full-speed build, 508 high speed) so that no transfer is a multiple of
 * the endpoint size (a zero-length packet would be parsed from stale data).
 *
 * Session: START (re-sent every 2 ms inside 10 ms windows until a version
 * word 0xABCD0001..3 arrives, up to start_timeout_ms), FLASH_LAYOUT (v2+),
 * one FLASH_ERASE per sector the image covers, FLASH_WRITE packets,
 * FLASH_LAYOUT once more as a liveness check (v2+: a device that hit a flash
 * error answers nothing), RESET. Waits: safe mode sleeps after each erase
 * (2000 ms) and each packet (1 ms); fast mode follows each erase with a
 * FLASH_LAYOUT query whose reply marks the erase's end, and syncs the same
 * way every 32 packets. */
#ifndef RUNNER_OPENMV_BOOT_H
#define RUNNER_OPENMV_BOOT_H

#include <signal.h>
#include <stdint.h>

#include "err.h"
#include "image.h"
#include "runner.h"
#include "transport.h"

#define RUNNER_OPENMV_VID 0x1209u
#define RUNNER_OPENMV_PID 0xabd1u
#define RUNNER_OPENMV_SERIAL_HS "000000000010" /* bootloader, high-speed build */
#define RUNNER_OPENMV_SERIAL_FS "000000000011" /* bootloader, full-speed build */

#define RUNNER_OPENMV_CMD_START 0xabcd0001u
#define RUNNER_OPENMV_CMD_RESET 0xabcd0002u
#define RUNNER_OPENMV_CMD_ERASE 0xabcd0004u
#define RUNNER_OPENMV_CMD_WRITE 0xabcd0008u
#define RUNNER_OPENMV_CMD_QUERY 0xabcd0010u /* FLASH_LAYOUT, v2+ */

#define RUNNER_OPENMV_MAX_SECTORS 16

/* One board model's internal flash as its bootloader sees it. */
struct runner_openmv_layout {
	const char *name;            /* "OPENMV4" (flash: layout:) */
	const char *what;            /* "OpenMV Cam H7 (STM32H743)" */
	const char *mcu;             /* flash map family it matches ("stm32h7") */
	uint32_t flash_base;
	unsigned n_sectors;
	uint32_t sector_size[RUNNER_OPENMV_MAX_SECTORS];
	unsigned fs_start, fw_start, last; /* default FLASH_LAYOUT (v1 bootloaders) */
	uint32_t app_base;           /* address of sector fw_start */
};

/* By name, ignoring case, '-' and '_'; NULL if unknown. */
const struct runner_openmv_layout *runner_openmv_layout_find(const char *name);
/* The layout whose mcu prefixes the board's mcu: (stm32h743 -> OPENMV4), or NULL. */
const struct runner_openmv_layout *runner_openmv_layout_for_mcu(const char *mcu);
/* "OPENMV2, OPENMV3, ..." into out. */
void runner_openmv_layout_names(char *out, size_t len);
uint32_t runner_openmv_sector_addr(const struct runner_openmv_layout *l, unsigned sector);

/* What a session will send. */
struct runner_openmv_plan {
	uint32_t base;          /* first address written: the app base */
	uint32_t data_len;      /* image bytes from base to the image's end */
	uint32_t len;           /* bytes sent: data_len padded with FF to whole packets */
	unsigned chunk;         /* data bytes per WRITE packet */
	unsigned first, last;   /* sectors erased */
};

/* Check img against layout l with the bootloader's FLASH_LAYOUT
 * {fs_start, fw_start, last}: it must start at the app base (a BIN at 0 is
 * placed there) and, padded to whole packets and to the device's write
 * buffer (ep bytes), end within sector `last`. FARM_EINVAL naming the
 * problem; no I/O. */
int runner_openmv_plan(struct runner_openmv_plan *out, const struct runner_openmv_layout *l,
		       const unsigned flash_layout[3], const struct farm_image *img, int erase_fs,
		       unsigned ep, struct farm_err *e);

struct runner_openmv_cfg {
	const struct runner_openmv_layout *layout;
	int fast;                   /* 0 safe (default), 1 fast */
	int erase_fs;               /* also erase the internal filesystem sectors */
	int hs;                     /* high-speed build: 512-byte endpoint (else 64) */
	unsigned start_timeout_ms;  /* START until a version word (default 1000) */
	unsigned erase_delay_ms;    /* safe mode, after each ERASE (default 2000) */
	unsigned erase_timeout_ms;  /* fast mode, the query after an ERASE (default 10000) */
	unsigned write_delay_ms;    /* safe mode, after each WRITE packet (default 1) */
	unsigned sync_every;        /* fast mode, packets between syncs (default 32) */
	unsigned reply_timeout_ms;  /* FLASH_LAYOUT replies (default 5000) */
	void (*log)(void *payload, const char *line);
	void *log_payload;
	const volatile sig_atomic_t *cancel;
};

void runner_openmv_cfg_default(struct runner_openmv_cfg *c);

/* The whole session on an open port to the bootloader, RESET included (the
 * device programs its last buffer only then). Progress steps "erase" and
 * "write" in bytes. The message names the step that failed. */
int runner_openmv_flash(struct farm_transport *t, const struct runner_openmv_cfg *c,
			const struct farm_image *img, runner_progress_fn fn, void *payload,
			struct farm_err *e);

#endif
