/* Benchmark: the esptool runner's ROM protocol client (runners/esp_rom.c)
 * writing to the ESP ROM loader model (tests/sim/serial/model_esp.c) over an
 * in-process loopback paced at the line rate (10 bits per byte both ways).
 * Prints the write throughput at 115200 and 921600 baud, plain and deflated,
 * as bytes of image per second and as a fraction of the link's byte rate
 * (baud / 10); a deflated write can exceed 1. Never asserts on time.
 *   esptool [KiB]   (image size, default 128) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp_loop.h"
#include "esp_rom.h"

static uint8_t *firmware_like(size_t n)
{
	/* 5 of 8 bytes random: zlib -9 keeps about 77 % (a MicroPython image: ~60 %) */
	uint8_t *p = malloc(n);
	uint32_t x = 12345;
	for (size_t i = 0; p && i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (i % 8 < 5) ? (uint8_t)(x >> 24) : (uint8_t)(i >> 6);
	}
	return p;
}

static int run(unsigned baud, int compress, const uint8_t *img, size_t len)
{
	char err[256] = "";
	struct esp_loop *l = esp_loop_new("chip=esp32", 1, err, sizeof err);
	static struct runner_esp_rom rom;
	struct farm_err e = { 0 };
	int rc = -1;
	if (!l) {
		fprintf(stderr, "esptool bench: model: %s\n", err);
		return -1;
	}
	runner_esp_rom_init(&rom, &l->base, 115200);
	if (runner_esp_rom_connect(&rom, 1, 0, 0, &e) || runner_esp_rom_detect(&rom, &e) ||
	    runner_esp_rom_attach(&rom, 4u << 20, &e) ||
	    (baud != 115200 && runner_esp_rom_change_baud(&rom, baud, &e)))
		goto out;
	long long t0 = farm_now_ms();
	if (runner_esp_rom_write(&rom, 0x10000, img, len, compress, NULL, NULL, &e))
		goto out;
	long long t1 = farm_now_ms();
	if (runner_esp_rom_verify(&rom, 0x10000, img, len, &e))
		goto out;
	double s = (double)(t1 - t0) / 1000.0;
	double bps = (double)len / s;
	printf("esptool %7u baud %-8s %7zu bytes in %6.2f s: %8.0f B/s = %.2f of the link (%u B/s)\n",
	       baud, compress ? "deflate" : "plain", len, s, bps, bps / (baud / 10.0), baud / 10);
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "esptool bench at %u baud: %s\n", baud, e.msg);
	esp_loop_free(l);
	return rc;
}

int main(int argc, char **argv)
{
	size_t kib = argc > 1 ? strtoul(argv[1], NULL, 10) : 128;
	if (kib < 4 || kib > 4096)
		kib = 128;
	size_t len = kib * 1024;
	uint8_t *img = firmware_like(len);
	if (!img)
		return 1;
	int rc = 0;
	static const unsigned bauds[] = { 115200, 921600 };
	for (size_t i = 0; i < 2; i++)
		for (int c = 0; c < 2; c++)
			rc |= run(bauds[i], c, img, len);
	free(img);
	return rc ? 1 : 0;
}
