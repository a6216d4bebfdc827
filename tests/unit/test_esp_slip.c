/* Tests for runners/esp_slip.c: SLIP framing of the ESP serial protocol,
 * against the wire vectors of esp-rom-serial.md and esptool's strictness. */
#include <CUnit/CUnit.h>
#include <string.h>

#include "esp_slip.h"

/* Decode bytes; returns the number of complete frames, the last one in d. */
static int feed(struct runner_esp_slip *d, const uint8_t *p, size_t n, int *err)
{
	int frames = 0;
	*err = 0;
	for (size_t i = 0; i < n; i++) {
		struct farm_err e = { 0 };
		int rc = runner_esp_slip_byte(d, p[i], &e);
		if (rc < 0) {
			*err = rc;
			return frames;
		}
		frames += rc;
	}
	return frames;
}

static void test_encode_flash_data_vector(void)
{
	/* FLASH_DATA seq 0 with payload C0 DB 00 FF (esp-rom-serial.md). */
	static const uint8_t raw[] = { 0x00, 0x03, 0x14, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x04, 0x00,
				       0x00, 0x00, 0,    0,    0,    0,    0,    0,    0,    0,
				       0,    0,    0,    0,    0xc0, 0xdb, 0x00, 0xff };
	static const uint8_t wire[] = { 0xc0, 0x00, 0x03, 0x14, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x04,
					0x00, 0x00, 0x00, 0,    0,    0,    0,    0,    0,    0,
					0,    0,    0,    0,    0,    0xdb, 0xdc, 0xdb, 0xdd, 0x00,
					0xff, 0xc0 };
	uint8_t out[64];
	size_t n = runner_esp_slip_encode(out, sizeof out, raw, sizeof raw);
	CU_ASSERT_EQUAL(n, sizeof wire);
	CU_ASSERT_EQUAL(memcmp(out, wire, sizeof wire), 0);
	/* and back */
	struct runner_esp_slip d;
	int err;
	runner_esp_slip_reset(&d, 0);
	CU_ASSERT_EQUAL(feed(&d, wire, sizeof wire, &err), 1);
	CU_ASSERT_EQUAL(err, 0);
	CU_ASSERT_EQUAL(d.len, sizeof raw);
	CU_ASSERT_EQUAL(memcmp(d.frame, raw, sizeof raw), 0);
}

static void test_encode_sync_vector(void)
{
	uint8_t raw[44] = { 0x00, 0x08, 0x24, 0x00, 0, 0, 0, 0, 0x07, 0x07, 0x12, 0x20 };
	memset(raw + 12, 0x55, 32);
	uint8_t out[128];
	size_t n = runner_esp_slip_encode(out, sizeof out, raw, sizeof raw);
	CU_ASSERT_EQUAL(n, 46);
	CU_ASSERT_EQUAL(out[0], 0xc0);
	CU_ASSERT_EQUAL(out[45], 0xc0);
	CU_ASSERT_EQUAL(memcmp(out + 1, raw, 44), 0);
	/* a short buffer: the needed size is returned, no overrun */
	CU_ASSERT_EQUAL(runner_esp_slip_encode(out, 10, raw, sizeof raw), 46);
}

static void test_strict_head(void)
{
	static const uint8_t junk[] = { 0x00, 0xc0, 0x01, 0x08, 0x04, 0x00, 0x07, 0x07, 0x12,
					0x20, 0x00, 0x00, 0x00, 0x00, 0xc0 };
	struct runner_esp_slip d;
	int err;
	runner_esp_slip_reset(&d, 0); /* after sync: junk is an error */
	CU_ASSERT_EQUAL(feed(&d, junk, sizeof junk, &err), 0);
	CU_ASSERT_EQUAL(err, FARM_EPROTO);
	runner_esp_slip_reset(&d, 1); /* while syncing: skipped (esptool issue 19) */
	CU_ASSERT_EQUAL(feed(&d, junk, sizeof junk, &err), 1);
	CU_ASSERT_EQUAL(err, 0);
	CU_ASSERT_EQUAL(d.skipped, 1);
	CU_ASSERT_EQUAL(d.len, 12);
	CU_ASSERT_EQUAL(d.frame[1], 0x08);
}

static void test_bad_escape(void)
{
	static const uint8_t bad[] = { 0xc0, 0x01, 0xdb, 0x00, 0xc0 };
	struct runner_esp_slip d;
	int err;
	runner_esp_slip_reset(&d, 1); /* strict inside a frame even while syncing */
	CU_ASSERT_EQUAL(feed(&d, bad, sizeof bad, &err), 0);
	CU_ASSERT_EQUAL(err, FARM_EPROTO);
}

static void test_back_to_back_and_empty(void)
{
	static const uint8_t two[] = { 0xc0, 0x01, 0xc0, 0xc0, 0x02, 0x03, 0xc0, 0xc0, 0xc0 };
	struct runner_esp_slip d;
	int err;
	runner_esp_slip_reset(&d, 0);
	CU_ASSERT_EQUAL(feed(&d, two, 3, &err), 1);
	CU_ASSERT_EQUAL(d.len, 1);
	CU_ASSERT_EQUAL(feed(&d, two + 3, 4, &err), 1);
	CU_ASSERT_EQUAL(d.len, 2);
	CU_ASSERT_EQUAL(d.frame[1], 0x03);
	CU_ASSERT_EQUAL(feed(&d, two + 7, 2, &err), 1); /* C0 C0: an empty frame */
	CU_ASSERT_EQUAL(d.len, 0);
}

static void test_too_long(void)
{
	struct runner_esp_slip d;
	struct farm_err e = { 0 };
	runner_esp_slip_reset(&d, 0);
	CU_ASSERT_EQUAL(runner_esp_slip_byte(&d, 0xc0, &e), 0);
	int rc = 0;
	for (size_t i = 0; i <= RUNNER_ESP_SLIP_MAX && rc == 0; i++)
		rc = runner_esp_slip_byte(&d, 0x11, &e);
	CU_ASSERT_EQUAL(rc, FARM_ELIMIT);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("esp_slip", NULL, NULL);
	if (!s)
		return -1;
	if (!CU_add_test(s, "FLASH_DATA vector encodes and decodes", test_encode_flash_data_vector) ||
	    !CU_add_test(s, "SYNC vector is 46 bytes", test_encode_sync_vector) ||
	    !CU_add_test(s, "junk before a frame: error, skipped while syncing", test_strict_head) ||
	    !CU_add_test(s, "bad escape is an error", test_bad_escape) ||
	    !CU_add_test(s, "back-to-back and empty frames", test_back_to_back_and_empty) ||
	    !CU_add_test(s, "over-long frame", test_too_long))
		return -1;
	return 0;
}
