/* mpfarm: ESP ROM serial download protocol client (see esp_rom.h). */
#include "esp_rom.h"
#include "le.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "esp_reset.h"
#include "flashmap.h"

/* Chip families. ROM facts from esptool's target classes (CHIP_DETECT_MAGIC_VALUE,
 * IMAGE_CHIP_ID, STATUS_BYTES_LENGTH, SUPPORTS_ENCRYPTED_FLASH, BOOTLOADER_FLASH_OFFSET). */
static const struct runner_esp_chip chips[] = {
	{ "esp8266", 0xfff0c101u, -1, 2, 0, 0, 0, 0, 0x0 },
	{ "esp32", 0x00f01d83u, -1, 4, 0, 1, 1, 1, 0x1000 },
	{ "esp32s2", 0x000007c6u, 2, 4, 1, 1, 1, 1, 0x1000 },
	{ "esp32s3", 0, 9, 4, 1, 1, 1, 1, 0x0 },
	{ "esp32c3", 0, 5, 4, 1, 1, 1, 1, 0x0 },
	{ "esp32c2", 0, 12, 4, 1, 1, 1, 1, 0x0 },
	{ "esp32c6", 0, 13, 4, 1, 1, 1, 1, 0x0 },
	{ "esp32h2", 0, 16, 4, 1, 1, 1, 1, 0x0 },
	{ NULL, 0, 0, 0, 0, 0, 0, 0, 0 },
};

static const struct {
	int code;
	const char *name;
} errors[] = {
	{ 0x05, "invalid message / unsupported command" }, { 0x06, "failed" },
	{ 0x07, "checksum error" }, { 0x08, "flash write error" }, { 0x09, "flash read error" },
	{ 0x0a, "read length error" }, { 0x0b, "deflate error" },
	{ 0x0c, "deflate Adler-32 error" }, { 0x0d, "deflate parameter error" },
	{ 0x0e, "invalid RAM size" }, { 0x0f, "invalid RAM address" },
	{ 0xc0, "bad data length" }, { 0xc1, "bad data checksum" }, { 0xc2, "bad block size" },
	{ 0xc3, "invalid command" }, { 0xc4, "SPI operation failed" },
	{ 0xc5, "SPI unlock failed" }, { 0xc6, "not in flash mode" }, { 0xc7, "inflate error" },
	{ 0xc8, "not enough data" }, { 0xc9, "too much data" }, { 0xff, "command not implemented" },
};

static const char *op_name(uint8_t op)
{
	switch (op) {
	case RUNNER_ESP_FLASH_BEGIN: return "FLASH_BEGIN";
	case RUNNER_ESP_FLASH_DATA: return "FLASH_DATA";
	case RUNNER_ESP_FLASH_END: return "FLASH_END";
	case RUNNER_ESP_SYNC: return "SYNC";
	case RUNNER_ESP_READ_REG: return "READ_REG";
	case RUNNER_ESP_SPI_SET_PARAMS: return "SPI_SET_PARAMS";
	case RUNNER_ESP_SPI_ATTACH: return "SPI_ATTACH";
	case RUNNER_ESP_CHANGE_BAUDRATE: return "CHANGE_BAUDRATE";
	case RUNNER_ESP_FLASH_DEFL_BEGIN: return "FLASH_DEFL_BEGIN";
	case RUNNER_ESP_FLASH_DEFL_DATA: return "FLASH_DEFL_DATA";
	case RUNNER_ESP_FLASH_DEFL_END: return "FLASH_DEFL_END";
	case RUNNER_ESP_SPI_FLASH_MD5: return "SPI_FLASH_MD5";
	case RUNNER_ESP_GET_SECURITY_INFO: return "GET_SECURITY_INFO";
	default: return "command";
	}
}

const struct runner_esp_chip *runner_esp_chips(void)
{
	return chips;
}

const struct runner_esp_chip *runner_esp_chip_find(const char *name)
{
	for (size_t i = 0; name && chips[i].name; i++)
		if (farm_flashmap_name_eq(chips[i].name, name))
			return &chips[i];
	return NULL;
}

const char *runner_esp_error_name(int code)
{
	for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
		if (errors[i].code == code)
			return errors[i].name;
	return "unknown";
}

uint8_t runner_esp_checksum(const uint8_t *data, size_t len)
{
	uint8_t c = 0xef;
	for (size_t i = 0; i < len; i++)
		c ^= data[i];
	return c;
}

int runner_esp_timeout_per_mb(unsigned ms_per_mb, size_t size, int floor_ms)
{
	unsigned long long t = (unsigned long long)ms_per_mb * size / 1000000u;
	if (t > 240000u) /* esptool: no command runs longer than 240 s */
		t = 240000u;
	return t < (unsigned long long)floor_ms ? floor_ms : (int)t;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void rom_log(struct runner_esp_rom *rom, const char *fmt, ...) FARM_PRINTF(2, 3);
static void rom_log(struct runner_esp_rom *rom, const char *fmt, ...)
{
	if (!rom->log)
		return;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	rom->log(rom->log_payload, line);
}

void runner_esp_rom_init(struct runner_esp_rom *rom, struct farm_transport *t, unsigned baud)
{
	memset(rom, 0, sizeof *rom);
	rom->t = t;
	rom->status_len = 4;
	rom->block_size = RUNNER_ESP_ROM_BLOCK;
	rom->baud = baud;
	rom->min_timeout_ms = RUNNER_ESP_DEFAULT_TIMEOUT_MS;
	rom->last_error = -1;
	runner_esp_slip_reset(&rom->slip, 1);
}

static int send_frame(struct runner_esp_rom *rom, uint8_t op, const void *data, size_t len,
		      uint32_t chk, struct farm_err *e)
{
	uint8_t raw[8 + RUNNER_ESP_SLIP_MAX];
	if (len > RUNNER_ESP_SLIP_MAX || len > 0xffff)
		return farm_err_set(e, FARM_ELIMIT, "%s: %zu data bytes is too long", op_name(op), len);
	raw[0] = 0;
	raw[1] = op;
	raw[2] = (uint8_t)len;
	raw[3] = (uint8_t)(len >> 8);
	farm_put_le32(raw + 4, chk);
	if (len)
		memcpy(raw + 8, data, len);
	size_t n = runner_esp_slip_encode(rom->tx, sizeof rom->tx, raw, 8 + len);
	if (n > sizeof rom->tx)
		return farm_err_set(e, FARM_ELIMIT, "%s: frame too long", op_name(op));
	return farm_transport_write(rom->t, rom->tx, n, 10000, e);
}

/* Next complete frame before deadline: 1 = got one, 0 = timeout. */
static int recv_frame(struct runner_esp_rom *rom, long long deadline, struct farm_err *e)
{
	for (;;) {
		while (rom->rx_pos < rom->rx_len) {
			uint8_t b = rom->rx[rom->rx_pos++];
			size_t skipped = rom->slip.skipped;
			int rc = runner_esp_slip_byte(&rom->slip, b, e);
			if (rom->slip.skipped != skipped && rom->bootlog_len + 1 < sizeof rom->bootlog) {
				rom->bootlog[rom->bootlog_len++] = (char)(b >= 0x20 && b < 0x7f ? b
									  : b == '\n' ? '\n' : '.');
				rom->bootlog[rom->bootlog_len] = '\0';
			}
			if (rc != 0)
				return rc;
		}
		if (rom->cancel && *rom->cancel)
			return farm_err_set(e, FARM_EINTR, "interrupted");
		long long left = deadline - farm_now_ms();
		if (left <= 0)
			return 0;
		size_t got = 0;
		int rc = farm_transport_read(rom->t, rom->rx, sizeof rom->rx, &got,
					     left > 100 ? 100 : (int)left, e);
		if (rc < 0)
			return rc;
		rom->rx_pos = 0;
		rom->rx_len = got;
	}
}

int runner_esp_rom_command(struct runner_esp_rom *rom, uint8_t op, const void *data, size_t len,
			   uint32_t chk, int timeout_ms, struct runner_esp_reply *r, struct farm_err *e)
{
	int rc = send_frame(rom, op, data, len, chk, e);
	if (rc < 0)
		return farm_err_prefix(e, "%s", op_name(op));
	long long deadline = farm_now_ms() + timeout_ms;
	for (int i = 0; i < 100; i++) {
		rc = recv_frame(rom, deadline, e);
		if (rc < 0)
			return farm_err_prefix(e, "%s", op_name(op));
		if (rc == 0)
			return farm_err_set(e, FARM_ETIMEDOUT, "%s: no reply within %d ms",
					    op_name(op), timeout_ms);
		const uint8_t *f = rom->slip.frame;
		size_t n = rom->slip.len;
		if (n < 8 || f[0] != 1 || f[1] != op)
			continue; /* not ours (a late reply, a repeated SYNC answer) */
		size_t dlen = (size_t)f[2] | (size_t)f[3] << 8;
		if (dlen > n - 8)
			return farm_err_set(e, FARM_EPROTO,
					    "%s: reply says %zu data bytes but carries %zu",
					    op_name(op), dlen, n - 8);
		r->op = op;
		r->value = farm_le32(f + 4);
		r->data = f + 8;
		r->len = dlen;
		return 0;
	}
	return farm_err_set(e, FARM_EPROTO, "%s: 100 frames without its reply", op_name(op));
}

int runner_esp_rom_check(struct runner_esp_rom *rom, uint8_t op, const void *data, size_t len,
			 uint32_t chk, int timeout_ms, size_t payload_len, struct runner_esp_reply *r,
			 struct farm_err *e)
{
	struct runner_esp_reply tmp;
	if (!r)
		r = &tmp;
	rom->last_error = -1;
	int rc = runner_esp_rom_command(rom, op, data, len, chk, timeout_ms, r, e);
	if (rc < 0)
		return rc;
	size_t at;
	if (payload_len == RUNNER_ESP_PAYLOAD_ANY) {
		if (r->len < rom->status_len)
			return farm_err_set(e, FARM_EPROTO, "%s: reply without status bytes",
					    op_name(op));
		payload_len = r->len - rom->status_len;
	}
	if (r->len >= payload_len + 2)
		at = payload_len;
	else if (r->len >= 2)
		at = r->len >= rom->status_len ? r->len - rom->status_len : r->len - 2;
	else
		return farm_err_set(e, FARM_EPROTO, "%s: reply without status bytes", op_name(op));
	uint8_t status = r->data[at], err = r->data[at + 1];
	if (rom->stub) { /* stub: [error, status] */
		if (status != 0) {
			rom->last_error = status;
			return farm_err_set(e, FARM_EPROTO, "%s: stub error 0x%02x (%s)", op_name(op),
					    status, runner_esp_error_name(status));
		}
	} else if (status != 0) {
		rom->last_error = err;
		return farm_err_set(e, FARM_EPROTO, "%s: ROM error 0x%02x (%s)", op_name(op), err,
				    runner_esp_error_name(err));
	}
	if (r->len < payload_len + 2)
		return farm_err_set(e, FARM_EPROTO, "%s: reply of %zu bytes, expected %zu",
				    op_name(op), r->len, payload_len + 2);
	return 0;
}

int runner_esp_rom_sync(struct runner_esp_rom *rom, struct farm_err *e)
{
	uint8_t sync[36] = { 0x07, 0x07, 0x12, 0x20 };
	memset(sync + 4, 0x55, 32);
	int rc = farm_transport_flush_input(rom->t, e);
	if (rc < 0 && rc != FARM_EUNSUPPORTED)
		return rc;
	rom->rx_pos = rom->rx_len = 0;
	struct runner_esp_reply r;
	rc = runner_esp_rom_command(rom, RUNNER_ESP_SYNC, sync, sizeof sync, 0,
				    RUNNER_ESP_SYNC_TIMEOUT_MS, &r, e);
	if (rc < 0)
		return rc;
	int stub = r.value == 0;
	unsigned status_len = r.len >= 4 ? 4 : 2;
	rom->slip.syncing = 0;
	for (int i = 0; i < 7; i++) {
		long long deadline = farm_now_ms() + rom->min_timeout_ms;
		for (;;) { /* the further answers to the one SYNC */
			rc = recv_frame(rom, deadline, e);
			if (rc < 0)
				return farm_err_prefix(e, "SYNC");
			if (rc == 0)
				return farm_err_set(e, FARM_ETIMEDOUT,
						    "SYNC: %d of 8 answers, then silence", i + 1);
			const uint8_t *f = rom->slip.frame;
			if (rom->slip.len >= 8 && f[0] == 1 && f[1] == RUNNER_ESP_SYNC) {
				stub &= farm_le32(f + 4) == 0;
				break;
			}
		}
	}
	rom->stub = stub;
	rom->status_len = stub ? 2 : status_len;
	return 0;
}

/* The boot mode the chip printed ("boot:0x13 (SPI_FAST_FLASH_BOOT)"), if it
 * is not download mode: that is worth telling instead of retrying. */
static const char *wrong_boot_mode(const char *log)
{
	const char *p = strstr(log, "boot:0x");
	if (!p || strstr(log, "waiting for download") || strstr(log, "DOWNLOAD"))
		return NULL;
	return p;
}

int runner_esp_rom_connect(struct runner_esp_rom *rom, int reset, int usb_jtag, unsigned attempts,
			   struct farm_err *e)
{
	if (!attempts)
		attempts = RUNNER_ESP_CONNECT_ATTEMPTS;
	char last[FARM_ERR_MSG_MAX] = "";
	char boot[160] = "";
	for (unsigned a = 0; a < attempts; a++) {
		enum runner_esp_reset_kind kind = RUNNER_ESP_RESET_CLASSIC;
		unsigned delay = 0;
		rom->bootlog_len = 0;
		rom->bootlog[0] = '\0';
		runner_esp_slip_reset(&rom->slip, 1);
		if (reset) {
			runner_esp_reset_schedule(a, usb_jtag, &kind, &delay);
			int rc = runner_esp_reset(rom->t, kind, delay, e);
			if (rc < 0)
				return rc;
			rom_log(rom, "connect attempt %u: %s reset, strap hold %u ms", a + 1,
				runner_esp_reset_name(kind), delay);
		}
		for (int s = 0; s < RUNNER_ESP_SYNC_TRIES; s++) {
			struct farm_err se = { 0 };
			int rc = runner_esp_rom_sync(rom, &se);
			if (rc == 0) {
				rom_log(rom, "synced with the %s loader (attempt %u, sync %d)",
					rom->stub ? "stub" : "ROM", a + 1, s + 1);
				return 0;
			}
			if (rc == FARM_EINTR || rc == FARM_ECLOSED || rc == FARM_EIO) {
				if (e)
					*e = se;
				return rc;
			}
			snprintf(last, sizeof last, "%s", se.msg);
			const char *wb = wrong_boot_mode(rom->bootlog);
			if (wb)
				snprintf(boot, sizeof boot, "%.*s", (int)strcspn(wb, "\r\n"), wb);
			sleep_ms(50);
		}
	}
	if (boot[0])
		return farm_err_set(e, FARM_ETIMEDOUT,
				    "the chip did not enter its ROM loader after %u resets: it booted "
				    "with \"%s\" (not download mode); check the board's auto-reset "
				    "circuit (DTR/RTS) or hold BOOT/GPIO0 low while resetting",
				    attempts, boot);
	return farm_err_set(e, FARM_ETIMEDOUT,
			    "no answer from the ESP ROM loader after %u %s (%s); check the port, "
			    "the board's power and its auto-reset circuit",
			    attempts, reset ? "resets" : "tries", last[0] ? last : "no reply");
}

int runner_esp_rom_detect(struct runner_esp_rom *rom, struct farm_err *e)
{
	struct runner_esp_reply r;
	struct farm_err se = { 0 };
	int rc = runner_esp_rom_check(rom, RUNNER_ESP_GET_SECURITY_INFO, NULL, 0, 0,
				      rom->min_timeout_ms, RUNNER_ESP_PAYLOAD_ANY, &r, &se);
	if (rc == 0 && r.len >= 20 + 2) { /* 12 bytes (ESP32-S2) carry no chip id */
		uint32_t id = farm_le32(r.data + 12);
		for (size_t i = 0; chips[i].name; i++)
			if (chips[i].chip_id >= 0 && (uint32_t)chips[i].chip_id == id) {
				rom->chip = &chips[i];
				return 0;
			}
		return farm_err_set(e, FARM_EUNSUPPORTED,
				    "unknown ESP chip id %u (GET_SECURITY_INFO)", (unsigned)id);
	}
	if (rc == FARM_EPROTO && rom->last_error >= 0) {
		/* Unsupported here (ESP8266, ESP32): some ROMs repeat that answer. */
		sleep_ms(200);
		farm_transport_flush_input(rom->t, NULL);
		rom->rx_pos = rom->rx_len = 0;
	} else if (rc < 0 && rc != FARM_EPROTO) {
		if (e)
			*e = se;
		return rc;
	}
	uint8_t addr[4];
	farm_put_le32(addr, RUNNER_ESP_CHIP_DETECT_REG);
	rc = runner_esp_rom_check(rom, RUNNER_ESP_READ_REG, addr, 4, 0, rom->min_timeout_ms, 0, &r,
				  e);
	if (rc < 0)
		return farm_err_prefix(e, "chip detection");
	for (size_t i = 0; chips[i].name; i++)
		if (chips[i].magic && chips[i].magic == r.value) {
			rom->chip = &chips[i];
			if (!rom->stub)
				rom->status_len = chips[i].rom_status_len;
			return 0;
		}
	return farm_err_set(e, FARM_EUNSUPPORTED,
			    "unknown ESP chip: magic 0x%08x at 0x%08x", (unsigned)r.value,
			    RUNNER_ESP_CHIP_DETECT_REG);
}

int runner_esp_rom_attach(struct runner_esp_rom *rom, uint32_t flash_size, struct farm_err *e)
{
	uint8_t d[24] = { 0 };
	int rc;
	if (rom->stub || !rom->chip || rom->chip->rom_spi_attach) {
		/* ROM: pin config word + 4 zero bytes; stub: the word alone. */
		rc = runner_esp_rom_check(rom, RUNNER_ESP_SPI_ATTACH, d, rom->stub ? 4 : 8, 0,
					  rom->min_timeout_ms, 0, NULL, e);
		if (rc < 0)
			return rc;
	}
	farm_put_le32(d + 0, 0);
	farm_put_le32(d + 4, flash_size);
	farm_put_le32(d + 8, 0x10000);
	farm_put_le32(d + 12, 0x1000);
	farm_put_le32(d + 16, 0x100);
	farm_put_le32(d + 20, 0xffff);
	return runner_esp_rom_check(rom, RUNNER_ESP_SPI_SET_PARAMS, d, 24, 0, rom->min_timeout_ms,
				    0, NULL, e);
}

int runner_esp_rom_change_baud(struct runner_esp_rom *rom, unsigned baud, struct farm_err *e)
{
	uint8_t d[8];
	farm_put_le32(d, baud);
	farm_put_le32(d + 4, rom->stub ? rom->baud : 0);
	int rc = runner_esp_rom_check(rom, RUNNER_ESP_CHANGE_BAUDRATE, d, 8, 0,
				      rom->min_timeout_ms, 0, NULL, e);
	if (rc < 0)
		return rc;
	rc = farm_transport_set_baud(rom->t, (int)baud, e);
	if (rc < 0)
		return farm_err_prefix(e, "switching the host to %u baud", baud);
	rom->baud = baud;
	sleep_ms(50);
	rc = farm_transport_flush_input(rom->t, e);
	if (rc < 0 && rc != FARM_EUNSUPPORTED)
		return rc;
	rom->rx_pos = rom->rx_len = 0;
	rom_log(rom, "switched to %u baud", baud);
	return 0;
}

/* Erase size the ESP8266 ROM must be told: its erase routine erases more
 * than asked (up to the next 64 KiB block, twice the head), as esptool's
 * ESP8266ROM.get_erase_size compensates. */
static uint32_t esp8266_erase_size(uint32_t offset, uint32_t size)
{
	const uint32_t per_block = 16, sector = 0x1000;
	uint32_t n = (size + sector - 1) / sector;
	uint32_t head = per_block - (offset / sector) % per_block;
	if (n < head)
		head = n;
	if (n < 2 * head)
		return (n + 1) / 2 * sector;
	return (n - head) * sector;
}

int runner_esp_rom_write(struct runner_esp_rom *rom, uint32_t addr, const uint8_t *data,
			 size_t len, int compress, runner_esp_progress_fn fn, void *payload,
			 struct farm_err *e)
{
	int rc = 0;
	uint8_t *z = NULL;
	uint8_t *blk = NULL;
	const uint8_t *src = data;
	size_t src_len = len;
	const unsigned bs = rom->block_size;
	const struct runner_esp_chip *chip = rom->chip;
	if (!len)
		return 0;
	if (len > 0x1000000u)
		return farm_err_set(e, FARM_ELIMIT, "region at 0x%x: %zu bytes is more than 16 MiB",
				    (unsigned)addr, len);
	if (compress && !rom->stub && chip && !chip->rom_deflate)
		compress = 0; /* the ESP8266 ROM has no FLASH_DEFL_* */
	if (compress) {
		uLongf zlen = compressBound((uLong)len);
		if (!(z = malloc(zlen)))
			return farm_err_set(e, FARM_ENOMEM, "out of memory compressing %zu bytes", len);
		if (compress2(z, &zlen, data, (uLong)len, 9) != Z_OK) {
			rc = farm_err_set(e, FARM_EIO, "zlib could not compress the region at 0x%x",
					  (unsigned)addr);
			goto out;
		}
		src = z;
		src_len = zlen;
	}
	if (!(blk = malloc(16 + bs))) {
		rc = farm_err_set(e, FARM_ENOMEM, "out of memory");
		goto out;
	}
	uint32_t nblocks = (uint32_t)((src_len + bs - 1) / bs);
	uint32_t erase;
	if (compress)
		erase = rom->stub ? (uint32_t)len : (uint32_t)((len + bs - 1) / bs) * bs;
	else if (!rom->stub && chip && !strcmp(chip->name, "esp8266"))
		erase = esp8266_erase_size(addr, (uint32_t)len);
	else
		erase = (uint32_t)len;
	uint8_t begin[20];
	farm_put_le32(begin, erase);
	farm_put_le32(begin + 4, nblocks);
	farm_put_le32(begin + 8, bs);
	farm_put_le32(begin + 12, addr);
	farm_put_le32(begin + 16, 0);
	size_t begin_len = (rom->stub || (chip && chip->rom_begin_encrypt_word)) ? 20 : 16;
	int erase_to = runner_esp_timeout_per_mb(40000, erase, rom->min_timeout_ms);
	uint8_t op_begin = compress ? RUNNER_ESP_FLASH_DEFL_BEGIN : RUNNER_ESP_FLASH_BEGIN;
	uint8_t op_data = compress ? RUNNER_ESP_FLASH_DEFL_DATA : RUNNER_ESP_FLASH_DATA;
	rc = runner_esp_rom_check(rom, op_begin, begin, begin_len, 0, erase_to, 0, NULL, e);
	if (rc < 0) {
		farm_err_prefix(e, "region at 0x%x (%zu bytes, erase timeout %d ms)", (unsigned)addr,
				len, erase_to);
		goto out;
	}
	int data_to = runner_esp_timeout_per_mb(40000, bs * 4u, rom->min_timeout_ms);
	for (uint32_t seq = 0; seq < nblocks; seq++) {
		size_t off = (size_t)seq * bs;
		size_t n = src_len - off < bs ? src_len - off : bs;
		farm_put_le32(blk, compress ? (uint32_t)n : bs);
		farm_put_le32(blk + 4, seq);
		farm_put_le32(blk + 8, 0);
		farm_put_le32(blk + 12, 0);
		memcpy(blk + 16, src + off, n);
		size_t plen = n;
		if (!compress && n < bs) { /* pad the last block with erased flash */
			memset(blk + 16 + n, 0xff, bs - n);
			plen = bs;
		}
		uint32_t chk = runner_esp_checksum(blk + 16, plen);
		for (int attempt = 1;; attempt++) {
			struct farm_err be = { 0 };
			rc = runner_esp_rom_check(rom, op_data, blk, 16 + plen, chk, data_to, 0, NULL,
						  &be);
			if (rc == 0)
				break;
			int retriable = rc == FARM_ETIMEDOUT ||
					(rc == FARM_EPROTO && (rom->last_error == 0x07 ||
							       rom->last_error == 0xc1));
			if (retriable && attempt < RUNNER_ESP_BLOCK_ATTEMPTS) {
				rom->block_retries++;
				rom_log(rom, "block %u of %u at 0x%x: %s; sending it again",
					seq + 1, nblocks, (unsigned)(addr + (compress ? 0 : off)),
					be.msg);
				continue;
			}
			/* "FLASH_DATA: ROM error 0x07 (checksum error)" -> block context */
			const char *what = strchr(be.msg, ':');
			rc = farm_err_set(e, rc, "block %u of %u at 0x%x: %s%s", seq + 1, nblocks,
					  (unsigned)(addr + (compress ? 0 : off)),
					  what ? what + 2 : be.msg,
					  attempt > 1 ? " (after retries)" : "");
			if (e)
				e->sys_errno = be.sys_errno;
			goto out;
		}
		if (fn) {
			uint64_t done = compress ? (uint64_t)len * (off + n) / src_len : off + n;
			fn(payload, "write", done > len ? len : done, len);
		}
	}
out:
	free(z);
	free(blk);
	return rc;
}

int runner_esp_rom_md5(struct runner_esp_rom *rom, uint32_t addr, uint32_t len, uint8_t md5[16],
		       struct farm_err *e)
{
	if (!rom->stub && rom->chip && !rom->chip->rom_md5)
		return farm_err_set(e, FARM_EUNSUPPORTED,
				    "the %s ROM loader cannot hash flash (no SPI_FLASH_MD5)",
				    rom->chip->name);
	uint8_t d[16];
	farm_put_le32(d, addr);
	farm_put_le32(d + 4, len);
	farm_put_le32(d + 8, 0);
	farm_put_le32(d + 12, 0);
	struct runner_esp_reply r;
	size_t plen = rom->stub ? 16 : 32;
	int rc = runner_esp_rom_check(rom, RUNNER_ESP_SPI_FLASH_MD5, d, 16, 0,
				      runner_esp_timeout_per_mb(8000, len, rom->min_timeout_ms), plen,
				      &r, e);
	if (rc < 0)
		return rc;
	if (rom->stub) {
		memcpy(md5, r.data, 16);
		return 0;
	}
	for (int i = 0; i < 16; i++) {
		unsigned v;
		char hx[3] = { (char)r.data[2 * i], (char)r.data[2 * i + 1], 0 };
		if (!isxdigit((unsigned char)hx[0]) || !isxdigit((unsigned char)hx[1]) ||
		    sscanf(hx, "%2x", &v) != 1)
			return farm_err_set(e, FARM_EPROTO, "SPI_FLASH_MD5: reply is not hex");
		md5[i] = (uint8_t)v;
	}
	return 0;
}

static int md5_of(const uint8_t *data, size_t len, uint8_t out[16], struct farm_err *e)
{
	unsigned n = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) &&
		 EVP_DigestUpdate(ctx, data, len) && EVP_DigestFinal_ex(ctx, out, &n) && n == 16;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : farm_err_set(e, FARM_ENOMEM, "OpenSSL could not compute an MD5");
}

static void hex16(const uint8_t m[16], char out[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", m[i]);
}

int runner_esp_rom_verify(struct runner_esp_rom *rom, uint32_t addr, const uint8_t *data,
			  size_t len, struct farm_err *e)
{
	uint8_t want[16], got[16];
	int rc = md5_of(data, len, want, e);
	if (rc == 0)
		rc = runner_esp_rom_md5(rom, addr, (uint32_t)len, got, e);
	if (rc < 0)
		return farm_err_prefix(e, "verify 0x%x..0x%x", (unsigned)addr,
				       (unsigned)(addr + len - 1));
	if (memcmp(want, got, 16)) {
		char w[33], g[33];
		hex16(want, w);
		hex16(got, g);
		return farm_err_set(e, FARM_EIO,
				    "verify 0x%x..0x%x: flash MD5 %s, image MD5 %s: the write did not "
				    "stick (power, flash mode or a bad flash chip?)",
				    (unsigned)addr, (unsigned)(addr + len - 1), g, w);
	}
	return 0;
}
