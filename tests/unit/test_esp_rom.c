/* Tests for runners/esp_rom.c and runners/esp_reset.c: the ESP ROM loader
 * client, byte for byte against the vectors of esp-rom-serial.md (a scripted
 * transport), then in-process against the serialsim ESP device model
 * (tests/sim/serial/model_esp.c) through a loopback transport: the client's
 * writes go to the model's rx(), the model's tx() is what the client reads,
 * set_lines()/set_baud() reach the model's lines()/baud(). Assertions are on
 * the model's event log and its flash (dumped as the harness does). */
#include <CUnit/CUnit.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "esp_reset.h"
#include "esp_rom.h"
#include "esp_loop.h"

extern const struct ssim_model_ops ssim_model_esp;

/* ---- a scripted transport: records writes, replays canned input ---- */
struct script {
	struct farm_transport base;
	struct farm_buf written;
	const uint8_t *in;
	size_t in_len, in_pos;
};

static int sc_read(struct farm_transport *t, void *buf, size_t len, size_t *got, int timeout_ms,
		   struct farm_err *e)
{
	struct script *s = (struct script *)t;
	(void)timeout_ms;
	(void)e;
	size_t n = s->in_len - s->in_pos < len ? s->in_len - s->in_pos : len;
	memcpy(buf, s->in + s->in_pos, n);
	s->in_pos += n;
	*got = n;
	return 0;
}

static int sc_write(struct farm_transport *t, const void *buf, size_t len, int timeout_ms,
		    struct farm_err *e)
{
	(void)timeout_ms;
	(void)e;
	return farm_buf_append(&((struct script *)t)->written, buf, len);
}

static int sc_set_baud(struct farm_transport *t, int baud, struct farm_err *e)
{
	(void)t;
	(void)baud;
	(void)e;
	return 0;
}

static const struct farm_transport_ops script_ops = {
	.name = "script", .read = sc_read, .write = sc_write, .set_baud = sc_set_baud,
};

static void script_init(struct script *s, const uint8_t *in, size_t len)
{
	memset(s, 0, sizeof *s);
	s->base.ops = &script_ops;
	s->in = in;
	s->in_len = len;
}

static const uint8_t SYNC_REQ[46] = { 0xc0, 0x00, 0x08, 0x24, 0x00, 0x00, 0x00, 0x00, 0x00,
				      0x07, 0x07, 0x12, 0x20, 0x55, 0x55, 0x55, 0x55, 0x55,
				      0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
				      0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
				      0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0xc0 };
static const uint8_t SYNC_ESP32[14] = { 0xc0, 0x01, 0x08, 0x04, 0x00, 0x07, 0x07,
					0x12, 0x20, 0x00, 0x00, 0x00, 0x00, 0xc0 };
static const uint8_t SYNC_ESP8266[12] = { 0xc0, 0x01, 0x08, 0x02, 0x00, 0x07,
					  0x07, 0x12, 0x20, 0x00, 0x00, 0xc0 };
static const uint8_t SYNC_STUB[12] = { 0xc0, 0x01, 0x08, 0x02, 0x00, 0x00,
				       0x00, 0x00, 0x00, 0x00, 0x00, 0xc0 };
static const uint8_t READ_REG_REQ[14] = { 0xc0, 0x00, 0x0a, 0x04, 0x00, 0x00, 0x00,
					  0x00, 0x00, 0x00, 0x10, 0x00, 0x40, 0xc0 };
static const uint8_t READ_REG_ESP32[14] = { 0xc0, 0x01, 0x0a, 0x04, 0x00, 0x83, 0x1d,
					    0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0 };

/* n copies of a reply */
static uint8_t *repeat(const uint8_t *r, size_t len, int n)
{
	uint8_t *p = malloc(len * (size_t)n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	for (int i = 0; i < n; i++)
		memcpy(p + len * (size_t)i, r, len);
	return p;
}

static void check_sync(const uint8_t *reply, size_t len, int stub, unsigned status_len)
{
	uint8_t *in = repeat(reply, len, 8);
	struct script s;
	script_init(&s, in, len * 8);
	struct runner_esp_rom rom;
	struct farm_err e = { 0 };
	runner_esp_rom_init(&rom, &s.base, 115200);
	CU_ASSERT_EQUAL(runner_esp_rom_sync(&rom, &e), 0);
	CU_ASSERT_EQUAL(rom.stub, stub);
	CU_ASSERT_EQUAL(rom.status_len, status_len);
	CU_ASSERT_EQUAL(s.written.len, sizeof SYNC_REQ);
	CU_ASSERT(s.written.data && !memcmp(s.written.data, SYNC_REQ, sizeof SYNC_REQ));
	farm_buf_free(&s.written);
	free(in);
}

static void test_vectors_sync(void)
{
	check_sync(SYNC_ESP32, sizeof SYNC_ESP32, 0, 4);
	check_sync(SYNC_ESP8266, sizeof SYNC_ESP8266, 0, 2);
	check_sync(SYNC_STUB, sizeof SYNC_STUB, 1, 2);
}

static void test_sync_answered_once_fails(void)
{
	struct script s;
	script_init(&s, SYNC_ESP32, sizeof SYNC_ESP32);
	struct runner_esp_rom rom;
	struct farm_err e = { 0 };
	runner_esp_rom_init(&rom, &s.base, 115200);
	rom.min_timeout_ms = 50;
	CU_ASSERT_EQUAL(runner_esp_rom_sync(&rom, &e), FARM_ETIMEDOUT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "1 of 8 answers"));
	farm_buf_free(&s.written);
}

static void test_vectors_detect(void)
{
	/* GET_SECURITY_INFO refused (ESP32 ROM), then READ_REG 0x40001000. */
	static const uint8_t refused[14] = { 0xc0, 0x01, 0x14, 0x04, 0x00, 0x00, 0x00,
					     0x00, 0x00, 0x01, 0x05, 0x00, 0x00, 0xc0 };
	uint8_t in[28];
	memcpy(in, refused, 14);
	memcpy(in + 14, READ_REG_ESP32, 14);
	struct script s;
	script_init(&s, in, 14);
	struct runner_esp_rom rom;
	struct farm_err e = { 0 };
	runner_esp_rom_init(&rom, &s.base, 115200);
	/* the refusal is read, then the pause drains; the READ_REG reply comes next */
	CU_ASSERT_EQUAL(runner_esp_rom_check(&rom, RUNNER_ESP_GET_SECURITY_INFO, NULL, 0, 0, 100, 12,
					     NULL, &e), FARM_EPROTO);
	CU_ASSERT_EQUAL(rom.last_error, 5);
	s.in = in + 14;
	s.in_pos = 0;
	farm_buf_reset(&s.written);
	struct runner_esp_reply r;
	uint8_t addr[4] = { 0x00, 0x10, 0x00, 0x40 };
	CU_ASSERT_EQUAL(runner_esp_rom_check(&rom, RUNNER_ESP_READ_REG, addr, 4, 0, 100, 0, &r, &e),
			0);
	CU_ASSERT_EQUAL(r.value, 0x00f01d83u);
	CU_ASSERT_EQUAL(s.written.len, sizeof READ_REG_REQ);
	CU_ASSERT(!memcmp(s.written.data, READ_REG_REQ, sizeof READ_REG_REQ));
	farm_buf_free(&s.written);
}

static void test_vectors_flash_frames(void)
{
	/* FLASH_BEGIN to the ESP32 ROM: erase 0x1000, 1 block of 0x400 at 0x10000 */
	static const uint8_t begin_wire[] = { 0xc0, 0x00, 0x02, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00,
					      0x00, 0x10, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
					      0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0xc0 };
	static const uint8_t ok[] = { 0xc0, 0x01, 0x02, 0x04, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0 };
	uint8_t begin[16] = { 0x00, 0x10, 0, 0, 0x01, 0, 0, 0, 0x00, 0x04, 0, 0, 0x00, 0x00, 0x01, 0 };
	struct script s;
	script_init(&s, ok, sizeof ok);
	struct runner_esp_rom rom;
	struct farm_err e = { 0 };
	runner_esp_rom_init(&rom, &s.base, 115200);
	CU_ASSERT_EQUAL(runner_esp_rom_check(&rom, RUNNER_ESP_FLASH_BEGIN, begin, 16, 0, 100, 0, NULL,
					     &e), 0);
	CU_ASSERT_EQUAL(s.written.len, sizeof begin_wire);
	CU_ASSERT(!memcmp(s.written.data, begin_wire, sizeof begin_wire));

	/* FLASH_DATA seq 0 with payload C0 DB 00 FF: checksum 0x0B, escaped */
	static const uint8_t cksum_err[] = { 0xc0, 0x01, 0x03, 0x04, 0x00, 0x00, 0x00,
					     0x00, 0x00, 0x01, 0x07, 0x00, 0x00, 0xc0 };
	uint8_t blk[20] = { 4, 0, 0, 0 };
	memcpy(blk + 16, "\xc0\xdb\x00\xff", 4);
	CU_ASSERT_EQUAL(runner_esp_checksum(blk + 16, 4), 0x0b);
	s.in = cksum_err;
	s.in_len = sizeof cksum_err;
	s.in_pos = 0;
	farm_buf_reset(&s.written);
	CU_ASSERT_EQUAL(runner_esp_rom_check(&rom, RUNNER_ESP_FLASH_DATA, blk, 20, 0x0b, 100, 0, NULL,
					     &e), FARM_EPROTO);
	CU_ASSERT_EQUAL(rom.last_error, 0x07);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "ROM error 0x07 (checksum error)"));
	static const uint8_t data_wire_head[] = { 0xc0, 0x00, 0x03, 0x14, 0x00, 0x0b, 0x00, 0x00,
						  0x00, 0x04, 0x00, 0x00, 0x00 };
	static const uint8_t data_wire_tail[] = { 0xdb, 0xdc, 0xdb, 0xdd, 0x00, 0xff, 0xc0 };
	CU_ASSERT_EQUAL(s.written.len, 13 + 12 + 7);
	CU_ASSERT(!memcmp(s.written.data, data_wire_head, 13));
	CU_ASSERT(!memcmp(s.written.data + 25, data_wire_tail, 7));

	/* the stub's checksum error */
	static const uint8_t stub_err[] = { 0xc0, 0x01, 0x03, 0x02, 0x00, 0x00, 0x00,
					    0x00, 0x00, 0xc1, 0x00, 0xc0 };
	rom.stub = 1;
	rom.status_len = 2;
	s.in = stub_err;
	s.in_len = sizeof stub_err;
	s.in_pos = 0;
	CU_ASSERT_EQUAL(runner_esp_rom_check(&rom, RUNNER_ESP_FLASH_DATA, blk, 20, 0x0b, 100, 0, NULL,
					     &e), FARM_EPROTO);
	CU_ASSERT_EQUAL(rom.last_error, 0xc1);

	/* CHANGE_BAUDRATE 921600 to the stub at 115200 */
	static const uint8_t baud_wire[] = { 0xc0, 0x00, 0x0f, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00,
					     0x00, 0x10, 0x0e, 0x00, 0x00, 0xc2, 0x01, 0x00, 0xc0 };
	static const uint8_t baud_ok[] = { 0xc0, 0x01, 0x0f, 0x02, 0x00, 0, 0, 0, 0, 0, 0, 0xc0 };
	s.in = baud_ok;
	s.in_len = sizeof baud_ok;
	s.in_pos = 0;
	farm_buf_reset(&s.written);
	CU_ASSERT_EQUAL(runner_esp_rom_change_baud(&rom, 921600, &e), 0);
	CU_ASSERT_EQUAL(rom.baud, 921600);
	CU_ASSERT_EQUAL(s.written.len, sizeof baud_wire);
	CU_ASSERT(!memcmp(s.written.data, baud_wire, sizeof baud_wire));

	/* an unknown command D0 to the ROM */
	static const uint8_t unknown[] = { 0xc0, 0x01, 0xd0, 0x04, 0x00, 0x00, 0x00,
					   0x00, 0x00, 0x01, 0x05, 0x00, 0x00, 0xc0 };
	rom.stub = 0;
	rom.status_len = 4;
	s.in = unknown;
	s.in_len = sizeof unknown;
	s.in_pos = 0;
	CU_ASSERT_EQUAL(runner_esp_rom_check(&rom, 0xd0, NULL, 0, 0, 100, 0, NULL, &e), FARM_EPROTO);
	CU_ASSERT_EQUAL(rom.last_error, 0x05);
	farm_buf_free(&s.written);
}

static void test_reply_matching_skips_frames(void)
{
	/* two stray SYNC answers and a request-direction frame before the reply */
	uint8_t in[14 * 3 + 10];
	memcpy(in, SYNC_ESP32, 14);
	memcpy(in + 14, SYNC_ESP32, 14);
	static const uint8_t req[] = { 0xc0, 0x00, 0x0a, 0, 0, 0, 0, 0, 0, 0xc0 };
	memcpy(in + 28, req, 10);
	memcpy(in + 38, READ_REG_ESP32, 14);
	struct script s;
	script_init(&s, in, sizeof in);
	struct runner_esp_rom rom;
	struct farm_err e = { 0 };
	runner_esp_rom_init(&rom, &s.base, 115200);
	rom.slip.syncing = 0;
	struct runner_esp_reply r;
	uint8_t addr[4] = { 0x00, 0x10, 0x00, 0x40 };
	CU_ASSERT_EQUAL(runner_esp_rom_check(&rom, RUNNER_ESP_READ_REG, addr, 4, 0, 100, 0, &r, &e),
			0);
	CU_ASSERT_EQUAL(r.value, 0x00f01d83u);
	farm_buf_free(&s.written);
}

static void test_timeouts(void)
{
	CU_ASSERT_EQUAL(runner_esp_timeout_per_mb(40000, 0x1000, 3000), 3000);
	CU_ASSERT_EQUAL(runner_esp_timeout_per_mb(40000, 1000000, 3000), 40000);
	CU_ASSERT_EQUAL(runner_esp_timeout_per_mb(8000, 4000000, 3000), 32000);
	CU_ASSERT_EQUAL(runner_esp_timeout_per_mb(40000, 16000000, 3000), 240000);
}

static void test_chip_table(void)
{
	CU_ASSERT_PTR_NOT_NULL(runner_esp_chip_find("ESP32-S3"));
	CU_ASSERT_EQUAL(runner_esp_chip_find("esp32")->bootloader_offset, 0x1000);
	CU_ASSERT_EQUAL(runner_esp_chip_find("esp32c3")->bootloader_offset, 0x0);
	CU_ASSERT_EQUAL(runner_esp_chip_find("esp8266")->rom_status_len, 2);
	CU_ASSERT_PTR_NULL(runner_esp_chip_find("esp31"));
	/* magic values and ids are unique */
	const struct runner_esp_chip *c = runner_esp_chips();
	for (size_t i = 0; c[i].name; i++)
		for (size_t j = i + 1; c[j].name; j++) {
			CU_ASSERT(!c[i].magic || c[i].magic != c[j].magic);
			CU_ASSERT(c[i].chip_id < 0 || c[i].chip_id != c[j].chip_id);
		}
}

static void test_reset_schedule(void)
{
	enum runner_esp_reset_kind k;
	unsigned d;
	runner_esp_reset_schedule(0, 0, &k, &d);
	CU_ASSERT(k == RUNNER_ESP_RESET_UNIX_TIGHT && d == 50);
	runner_esp_reset_schedule(1, 0, &k, &d);
	CU_ASSERT(k == RUNNER_ESP_RESET_UNIX_TIGHT && d == 550);
	runner_esp_reset_schedule(2, 0, &k, &d);
	CU_ASSERT(k == RUNNER_ESP_RESET_CLASSIC && d == 50);
	runner_esp_reset_schedule(3, 0, &k, &d);
	CU_ASSERT(k == RUNNER_ESP_RESET_CLASSIC && d == 550);
	runner_esp_reset_schedule(4, 0, &k, &d);
	CU_ASSERT(k == RUNNER_ESP_RESET_UNIX_TIGHT && d == 50);
	runner_esp_reset_schedule(5, 1, &k, &d);
	CU_ASSERT(k == RUNNER_ESP_RESET_USB_JTAG);
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(runner_esp_reset_parse(&k, "usb-jtag", &e), 0);
	CU_ASSERT(k == RUNNER_ESP_RESET_USB_JTAG);
	CU_ASSERT_EQUAL(runner_esp_reset_parse(&k, "tight", &e), FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(runner_esp_reset_name(RUNNER_ESP_RESET_CLASSIC), "classic");
}

static struct esp_loop *loop_new(const char *args)
{
	char err[256] = "";
	struct esp_loop *l = esp_loop_new(args, 0, err, sizeof err);
	if (!l)
		fprintf(stderr, "model: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	return l;
}

static uint8_t *loop_flash(struct esp_loop *l, size_t *len)
{
	uint8_t *f = esp_loop_flash(l, len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	return f;
}

/* Deterministic test data that compresses somewhat, like firmware. */
static uint8_t *blob(size_t n, unsigned seed)
{
	uint8_t *p = malloc(n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (i % 7 < 3) ? (uint8_t)(x >> 24) : (uint8_t)(i >> 4);
	}
	return p;
}

static struct runner_esp_rom *esp_connect(struct esp_loop *l, int usb_jtag, int expect_rc)
{
	static struct runner_esp_rom rom; /* large: keep it off the stack */
	struct farm_err e = { 0 };
	runner_esp_rom_init(&rom, &l->base, l->baud);
	rom.min_timeout_ms = 400;
	int rc = runner_esp_rom_connect(&rom, 1, usb_jtag, expect_rc ? 2 : 0, &e);
	CU_ASSERT_EQUAL(rc, expect_rc);
	if (rc != expect_rc)
		fprintf(stderr, "connect: %s\nmodel log:\n%s\n", e.msg, l->log.data);
	if (rc == 0) {
		CU_ASSERT_EQUAL(runner_esp_rom_detect(&rom, &e), 0);
		if (!rom.chip)
			fprintf(stderr, "detect: %s\n", e.msg);
	}
	return &rom;
}

struct region {
	uint32_t addr;
	size_t len;
	uint8_t *data;
};

static void flash_and_check(const char *args, int compress, struct region *r, size_t n,
			    const char *chip, unsigned baud, const char *expect_log)
{
	struct esp_loop *l = loop_new(args);
	struct runner_esp_rom *rom = esp_connect(l, 0, 0);
	struct farm_err e = { 0 };
	CU_ASSERT_PTR_NOT_NULL_FATAL(rom->chip);
	CU_ASSERT_STRING_EQUAL(rom->chip->name, chip);
	CU_ASSERT(esp_loop_log_has(l, "boot: download mode"));
	CU_ASSERT_EQUAL(runner_esp_rom_attach(rom, 4u << 20, &e), 0);
	if (baud) {
		CU_ASSERT_EQUAL(runner_esp_rom_change_baud(rom, baud, &e), 0);
		char want[32];
		snprintf(want, sizeof want, "change_baudrate %u", baud);
		CU_ASSERT(esp_loop_log_has(l, want));
	}
	for (size_t i = 0; i < n; i++) {
		int rc = runner_esp_rom_write(rom, r[i].addr, r[i].data, r[i].len, compress, NULL,
					      NULL, &e);
		CU_ASSERT_EQUAL(rc, 0);
		if (rc)
			fprintf(stderr, "write: %s\nmodel log:\n%s\n", e.msg, l->log.data);
		int vrc = runner_esp_rom_verify(rom, r[i].addr, r[i].data, r[i].len, &e);
		CU_ASSERT_EQUAL(vrc, rom->chip->rom_md5 ? 0 : FARM_EUNSUPPORTED);
	}
	if (expect_log) {
		CU_ASSERT(esp_loop_log_has(l, expect_log));
		CU_ASSERT(rom->block_retries >= 1);
	}
	CU_ASSERT_EQUAL(esp_loop_log_has(l, "defl_begin"), compress && rom->chip->rom_deflate);
	size_t flen;
	uint8_t *flash = loop_flash(l, &flen);
	CU_ASSERT_EQUAL(flen, 4u << 20);
	for (size_t i = 0; i < n; i++)
		CU_ASSERT(r[i].addr + r[i].len <= flen &&
			  !memcmp(flash + r[i].addr, r[i].data, r[i].len));
	/* outside the regions: erased or padding */
	CU_ASSERT_EQUAL(flash[flen - 1], 0xff);
	int valid = flash[rom->chip->bootloader_offset] == 0xe9;
	free(flash);
	/* hard reset into the app: a valid image (0xE9) boots and is bridged */
	l->bridged[0] = 0;
	CU_ASSERT_EQUAL(runner_esp_reset(&l->base, RUNNER_ESP_RESET_HARD, 0, &e), 0);
	usleep(20000);
	esp_loop_run_timers(l);
	CU_ASSERT_EQUAL(esp_loop_log_has(l, "boot: application"), valid);
	CU_ASSERT_EQUAL(esp_loop_log_has(l, "boot: invalid header"), !valid);
	CU_ASSERT_STRING_EQUAL(l->bridged, valid && strstr(args, "app=") ? "/tmp/app.sock" : "");
	esp_loop_free(l);
}

static struct region *regions3(void)
{
	static struct region r[3];
	r[0] = (struct region){ 0x1000, 0x5a31, blob(0x5a31, 1) };
	r[0].data[0] = 0xe9;
	r[1] = (struct region){ 0x8000, 0xc00, blob(0xc00, 2) };
	r[2] = (struct region){ 0x10000, 0x23456, blob(0x23456, 3) };
	return r;
}

static void free_regions(struct region *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(r[i].data);
}

static void test_model_multi_region_plain(void)
{
	struct region *r = regions3();
	flash_and_check("chip=esp32,app=/tmp/app.sock", 0, r, 3, "esp32", 0, NULL);
	free_regions(r, 3);
}

static void test_model_multi_region_deflate_baud(void)
{
	struct region *r = regions3();
	flash_and_check("chip=esp32,app=/tmp/app.sock", 1, r, 3, "esp32", 460800, NULL);
	free_regions(r, 3);
}

static void test_model_merged_image(void)
{
	struct region r = { 0x0, 0x30000, blob(0x30000, 4) };
	memset(r.data, 0xff, 0x1000);
	r.data[0x1000] = 0xe9;
	flash_and_check("chip=esp32", 1, &r, 1, "esp32", 0, NULL);
	free(r.data);
}

static void test_model_esp8266(void)
{
	/* no deflate and no MD5 in the ESP8266 ROM: plain writes, verify refused */
	struct region r[2] = { { 0x0, 0x3333, blob(0x3333, 5) }, { 0x12000, 0x9000, blob(0x9000, 6) } };
	r[0].data[0] = 0xe9;
	flash_and_check("chip=esp8266,app=/tmp/app.sock", 1, r, 2, "esp8266", 0, NULL);
	free_regions(r, 2);
}

static void test_model_s3_usb_jtag(void)
{
	struct esp_loop *l = loop_new("chip=esp32s3,usb=jtag");
	struct runner_esp_rom *rom = esp_connect(l, 1, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rom->chip);
	CU_ASSERT_STRING_EQUAL(rom->chip->name, "esp32s3"); /* by GET_SECURITY_INFO */
	uint8_t *d = blob(0x2000, 7);
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(runner_esp_rom_attach(rom, 8u << 20, &e), 0);
	CU_ASSERT_EQUAL(runner_esp_rom_write(rom, 0x0, d, 0x2000, 1, NULL, NULL, &e), 0);
	CU_ASSERT_EQUAL(runner_esp_rom_verify(rom, 0x0, d, 0x2000, &e), 0);
	free(d);
	esp_loop_free(l);
}

static void test_model_dropped_reply(void)
{
	struct region r = { 0x10000, 0x20000, blob(0x20000, 8) };
	/* replies after SYNC: GET_SECURITY_INFO (refused), READ_REG, SPI_ATTACH,
	 * SPI_SET_PARAMS, FLASH_BEGIN, then FLASH_DATA: the 7th is block seq 1 */
	flash_and_check("chip=esp32,drop=7", 0, &r, 1, "esp32", 0, "fault: dropped reply 7");
	flash_and_check("chip=esp32,drop=7", 1, &r, 1, "esp32", 0, "fault: dropped reply 7");
	free(r.data);
}

static void test_model_corrupt_frame(void)
{
	struct region r = { 0x10000, 0x20000, blob(0x20000, 9) };
	flash_and_check("chip=esp32,corrupt=2", 0, &r, 1, "esp32", 0, "checksum error seq 1");
	flash_and_check("chip=esp32,corrupt=1", 1, &r, 1, "esp32", 0, "checksum error seq 0");
	free(r.data);
}

static void test_model_slow_erase(void)
{
	struct region r = { 0x10000, 0x3000, blob(0x3000, 10) };
	/* the erase timeout of 12 KiB is 491 ms (40 s/MB): 900 ms of erase is a
	 * clear error naming the region and the step */
	struct esp_loop *l = loop_new("chip=esp32,slow_erase=900");
	struct runner_esp_rom *rom = esp_connect(l, 0, 0);
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(runner_esp_rom_attach(rom, 4u << 20, &e), 0);
	CU_ASSERT_EQUAL(runner_esp_rom_write(rom, r.addr, r.data, r.len, 0, NULL, NULL, &e),
			FARM_ETIMEDOUT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "region at 0x10000"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "FLASH_BEGIN: no reply within 491 ms"));
	esp_loop_free(l);
	/* a slow erase within the timeout is waited for */
	l = loop_new("chip=esp32,slow_erase=250");
	rom = esp_connect(l, 0, 0);
	CU_ASSERT_EQUAL(runner_esp_rom_attach(rom, 4u << 20, &e), 0);
	CU_ASSERT_EQUAL(runner_esp_rom_write(rom, r.addr, r.data, r.len, 0, NULL, NULL, &e), 0);
	CU_ASSERT_EQUAL(runner_esp_rom_verify(rom, r.addr, r.data, r.len, &e), 0);
	esp_loop_free(l);
	free(r.data);
}

static void test_model_wrong_baud_is_garbage(void)
{
	struct esp_loop *l = loop_new("chip=esp32");
	struct runner_esp_rom *rom = esp_connect(l, 0, 0);
	struct farm_err e = { 0 };
	/* the host switches without telling the chip: its bytes are garbage */
	CU_ASSERT_EQUAL(farm_transport_set_baud(&l->base, 921600, &e), 0);
	CU_ASSERT_EQUAL(runner_esp_rom_attach(rom, 4u << 20, &e), FARM_ETIMEDOUT);
	CU_ASSERT(esp_loop_log_has(l, "at 921600 baud, UART at 115200: garbage"));
	esp_loop_free(l);
}

static void test_model_no_strap(void)
{
	/* DTR never reaches the board: it resets into its (blank) flash */
	struct esp_loop *l = loop_new("chip=esp32");
	l->lines_broken = 1;
	l->dtr = 0;
	struct runner_esp_rom *rom = esp_connect(l, 0, FARM_ETIMEDOUT);
	(void)rom;
	CU_ASSERT(esp_loop_log_has(l, "boot: invalid header"));
	CU_ASSERT(!esp_loop_log_has(l, "boot: download mode"));
	esp_loop_free(l);
}

static void test_model_vectors(void)
{
	/* The model answers the documented SYNC and READ_REG vectors. */
	struct esp_loop *l = loop_new("chip=esp32");
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(runner_esp_reset(&l->base, RUNNER_ESP_RESET_UNIX_TIGHT, 50, &e), 0);
	usleep(10000);
	esp_loop_run_timers(l);
	esp_loop_discard(l); /* the boot log */
	ssim_model_esp.rx(l->m, SYNC_REQ, sizeof SYNC_REQ, 115200);
	CU_ASSERT_EQUAL(l->out_len, 8 * sizeof SYNC_ESP32);
	for (int i = 0; i < 8 && l->out_len == 8 * sizeof SYNC_ESP32; i++)
		CU_ASSERT(!memcmp(l->out + i * sizeof SYNC_ESP32, SYNC_ESP32, sizeof SYNC_ESP32));
	esp_loop_discard(l);
	ssim_model_esp.rx(l->m, READ_REG_REQ, sizeof READ_REG_REQ, 115200);
	CU_ASSERT_EQUAL(l->out_len, sizeof READ_REG_ESP32);
	CU_ASSERT(l->out && !memcmp(l->out, READ_REG_ESP32, sizeof READ_REG_ESP32));
	esp_loop_free(l);
	l = loop_new("chip=esp8266");
	CU_ASSERT_EQUAL(runner_esp_reset(&l->base, RUNNER_ESP_RESET_CLASSIC, 50, &e), 0);
	usleep(10000);
	esp_loop_run_timers(l);
	esp_loop_discard(l);
	ssim_model_esp.rx(l->m, SYNC_REQ, sizeof SYNC_REQ, 115200);
	CU_ASSERT_EQUAL(l->out_len, 8 * sizeof SYNC_ESP8266);
	CU_ASSERT(l->out && !memcmp(l->out, SYNC_ESP8266, sizeof SYNC_ESP8266));
	esp_loop_free(l);
}

int cu_register(void)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
		{ "SYNC vectors: request, ESP32/ESP8266/stub replies", test_vectors_sync },
		{ "a SYNC answered once fails", test_sync_answered_once_fails },
		{ "chip detection vectors", test_vectors_detect },
		{ "FLASH_BEGIN/DATA, errors, CHANGE_BAUDRATE vectors", test_vectors_flash_frames },
		{ "replies matched by command code", test_reply_matching_skips_frames },
		{ "timeouts per MB", test_timeouts },
		{ "chip table", test_chip_table },
		{ "reset schedule", test_reset_schedule },
		{ "model answers the vectors", test_model_vectors },
		{ "model: three regions, plain", test_model_multi_region_plain },
		{ "model: three regions, deflate at 460800", test_model_multi_region_deflate_baud },
		{ "model: merged image at 0", test_model_merged_image },
		{ "model: ESP8266 ROM", test_model_esp8266 },
		{ "model: ESP32-S3 over USB-Serial/JTAG", test_model_s3_usb_jtag },
		{ "model: dropped reply recovered", test_model_dropped_reply },
		{ "model: corrupted frame recovered", test_model_corrupt_frame },
		{ "model: slow erase", test_model_slow_erase },
		{ "model: bytes at the wrong baud", test_model_wrong_baud_is_garbage },
		{ "model: no boot strap, clear failure", test_model_no_strap },
	};
	CU_pSuite s = CU_add_suite("esp_rom", NULL, NULL);
	if (!s)
		return -1;
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
