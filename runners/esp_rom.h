/* mpfarm: client of the ESP8266/ESP32-family ROM serial download protocol
 * (esptool's protocol; /work/shared/protocols/esp-rom-serial.md) on a
 * struct farm_transport.
 *
 * A session: runner_esp_rom_init(), runner_esp_rom_connect() (reset into the
 * ROM loader and SYNC, as esptool's connect loop), runner_esp_rom_detect()
 * (which chip), runner_esp_rom_attach() (SPI_ATTACH + SPI_SET_PARAMS),
 * optionally runner_esp_rom_change_baud(), then runner_esp_rom_write() per
 * region and runner_esp_rom_md5() to verify it. The transport is borrowed.
 *
 * Replies are matched by command code: unrelated frames (up to 100) are
 * skipped, as esptool does. A chip error is FARM_EPROTO with the ROM (or
 * stub) error code in last_error and named in the message
 * ("ROM error 0x07 (checksum error)"). */
#ifndef RUNNER_ESP_ROM_H
#define RUNNER_ESP_ROM_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "esp_slip.h"
#include "transport.h"

enum runner_esp_op {
	RUNNER_ESP_FLASH_BEGIN = 0x02,
	RUNNER_ESP_FLASH_DATA = 0x03,
	RUNNER_ESP_FLASH_END = 0x04,
	RUNNER_ESP_MEM_BEGIN = 0x05,
	RUNNER_ESP_MEM_END = 0x06,
	RUNNER_ESP_MEM_DATA = 0x07,
	RUNNER_ESP_SYNC = 0x08,
	RUNNER_ESP_WRITE_REG = 0x09,
	RUNNER_ESP_READ_REG = 0x0A,
	RUNNER_ESP_SPI_SET_PARAMS = 0x0B,
	RUNNER_ESP_SPI_ATTACH = 0x0D,
	RUNNER_ESP_CHANGE_BAUDRATE = 0x0F,
	RUNNER_ESP_FLASH_DEFL_BEGIN = 0x10,
	RUNNER_ESP_FLASH_DEFL_DATA = 0x11,
	RUNNER_ESP_FLASH_DEFL_END = 0x12,
	RUNNER_ESP_SPI_FLASH_MD5 = 0x13,
	RUNNER_ESP_GET_SECURITY_INFO = 0x14,
};

#define RUNNER_ESP_CHIP_DETECT_REG 0x40001000u
#define RUNNER_ESP_SYNC_TIMEOUT_MS 100
#define RUNNER_ESP_DEFAULT_TIMEOUT_MS 3000
#define RUNNER_ESP_ROM_BLOCK 0x400u     /* ROM FLASH_WRITE_SIZE */
#define RUNNER_ESP_BLOCK_ATTEMPTS 3
#define RUNNER_ESP_CONNECT_ATTEMPTS 7
#define RUNNER_ESP_SYNC_TRIES 5

/* What a chip family is, one row of a const table (esp_rom.c). */
struct runner_esp_chip {
	const char *name;          /* "esp32", "esp32s3", "esp8266", ... (the inventory's mcu:) */
	uint32_t magic;            /* READ_REG 0x40001000 value; 0 = not detected that way */
	int chip_id;               /* GET_SECURITY_INFO chip id; -1 = no such command */
	unsigned rom_status_len;   /* status bytes in a ROM reply: 2 (ESP8266) or 4 */
	int rom_begin_encrypt_word;/* ROM FLASH_BEGIN takes the 5th word (S2 and later) */
	int rom_deflate;           /* ROM has FLASH_DEFL_* */
	int rom_md5;               /* ROM has SPI_FLASH_MD5 */
	int rom_spi_attach;        /* ROM needs SPI_ATTACH before flash commands */
	uint32_t bootloader_offset;/* where the second-stage bootloader lives in flash */
};

/* The chip table, NULL-name terminated; lookup by name (ignoring case,
 * '-' and '_'). */
const struct runner_esp_chip *runner_esp_chips(void);
const struct runner_esp_chip *runner_esp_chip_find(const char *name);

/* One reply: points into the session's frame buffer until the next call. */
struct runner_esp_reply {
	uint8_t op;
	uint32_t value;
	const uint8_t *data;
	size_t len;
};

typedef void (*runner_esp_progress_fn)(void *payload, const char *step, uint64_t done,
				       uint64_t total);

struct runner_esp_rom {
	struct farm_transport *t;
	const struct runner_esp_chip *chip; /* after detect, else NULL */
	int stub;                   /* SYNC said a stub runs (value 0) */
	unsigned status_len;        /* 2 or 4, learned from the SYNC reply */
	unsigned block_size;        /* RUNNER_ESP_ROM_BLOCK */
	unsigned baud;              /* the host's current rate */
	int min_timeout_ms;         /* floor of every command timeout (default 3000) */
	int last_error;             /* chip error code of the last failed command, -1 = none */
	unsigned block_retries;     /* blocks re-sent so far (statistics) */
	void (*log)(void *payload, const char *line);
	void *log_payload;
	const volatile sig_atomic_t *cancel;
	char bootlog[512];          /* text the chip printed before the first frame (NUL-ended) */
	size_t bootlog_len;
	/* private */
	struct runner_esp_slip slip;
	uint8_t rx[1024];
	size_t rx_pos, rx_len;
	uint8_t tx[2 * (RUNNER_ESP_SLIP_MAX + 32) + 2];
};

/* Set up a session on t at `baud` (the rate t is at now). */
void runner_esp_rom_init(struct runner_esp_rom *rom, struct farm_transport *t, unsigned baud);

/* Send one command (data of len bytes, checksum chk) and wait up to
 * timeout_ms for the reply with the same command code. No status check. */
int runner_esp_rom_command(struct runner_esp_rom *rom, uint8_t op, const void *data, size_t len,
			   uint32_t chk, int timeout_ms, struct runner_esp_reply *r, struct farm_err *e);
/* As command, then check the status bytes after `payload_len` bytes of
 * payload (RUNNER_ESP_PAYLOAD_ANY: the status is the reply's last bytes and
 * the payload what precedes it); *r (may be NULL) gets the reply. */
#define RUNNER_ESP_PAYLOAD_ANY ((size_t)-1)
int runner_esp_rom_check(struct runner_esp_rom *rom, uint8_t op, const void *data, size_t len,
			 uint32_t chk, int timeout_ms, size_t payload_len, struct runner_esp_reply *r,
			 struct farm_err *e);

/* One SYNC round: flush, SYNC (100 ms), and the 7 further answers. */
int runner_esp_rom_sync(struct runner_esp_rom *rom, struct farm_err *e);
/* esptool's connect loop: up to `attempts` (0 = 7) resets by
 * runner_esp_reset_schedule (reset = 0: no reset, just SYNC; usb_jtag = 1:
 * the USB-Serial/JTAG sequence), each followed by up to 5 SYNC rounds. */
int runner_esp_rom_connect(struct runner_esp_rom *rom, int reset, int usb_jtag, unsigned attempts,
			   struct farm_err *e);
/* Which chip: GET_SECURITY_INFO chip id, else READ_REG 0x40001000. */
int runner_esp_rom_detect(struct runner_esp_rom *rom, struct farm_err *e);
/* SPI_ATTACH (where the chip's ROM needs it) and SPI_SET_PARAMS for a flash
 * of flash_size bytes. */
int runner_esp_rom_attach(struct runner_esp_rom *rom, uint32_t flash_size, struct farm_err *e);
/* CHANGE_BAUDRATE, then switch the host, wait 50 ms, flush input. */
int runner_esp_rom_change_baud(struct runner_esp_rom *rom, unsigned baud, struct farm_err *e);
/* Write one region at flash offset addr: FLASH_BEGIN/DATA (or the DEFL_
 * variants when compress, zlib level 9), each block tried up to 3 times on
 * a checksum error or a timeout. Progress: "write", bytes of data done. */
int runner_esp_rom_write(struct runner_esp_rom *rom, uint32_t addr, const uint8_t *data,
			 size_t len, int compress, runner_esp_progress_fn fn, void *payload,
			 struct farm_err *e);
/* SPI_FLASH_MD5 of [addr, addr + len): 16 raw bytes in md5. */
int runner_esp_rom_md5(struct runner_esp_rom *rom, uint32_t addr, uint32_t len, uint8_t md5[16],
		       struct farm_err *e);
/* Check [addr, addr + len) of flash against data by MD5; FARM_EIO naming
 * both digests on a mismatch. */
int runner_esp_rom_verify(struct runner_esp_rom *rom, uint32_t addr, const uint8_t *data,
			  size_t len, struct farm_err *e);

/* Helpers (exposed for tests). */
uint8_t runner_esp_checksum(const uint8_t *data, size_t len);
/* Timeout for an operation over size bytes at ms_per_mb, at least floor_ms. */
int runner_esp_timeout_per_mb(unsigned ms_per_mb, size_t size, int floor_ms);
/* Name of a ROM / stub error code ("checksum error"), "unknown" if none. */
const char *runner_esp_error_name(int code);

#endif
