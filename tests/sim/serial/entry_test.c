/* entry_test: drives mpfarm's bootloader entry (runners/entry.c) the way a
 * flash runner does, for the serial-harness tests:
 *
 *   entry_test METHODS PORT [--want VID:PID | --same-port] [--settle MS]
 *              [--timeout MS] [--port-name PORT] [--interactive]
 *
 * Finds PORT's USB device (its location) with farm_usbdev, runs entry_run
 * and prints the entry log, then one line
 *   OK method=M port=P dev=VID:PID location=L serial=S
 * or "FAIL <message>" (exit 1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"
#include "usbdev.h"

static void print_line(void *payload, const char *line)
{
	(void)payload;
	printf("log: %s\n", line);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: entry_test METHODS PORT [--want VID:PID | --same-port] [--settle MS] "
				"[--timeout MS] [--port-name PORT] [--interactive]\n");
		return 2;
	}
	struct farm_board b;
	memset(&b, 0, sizeof b);
	b.id = "sim-board";
	b.port = "rp2";
	b.board = "RPI_PICO";
	b.serial.baud = 115200;
	b.serial.dtr = b.serial.rts = -1;
	farm_repl_cfg_default(&b.repl);
	struct entry_want want;
	memset(&want, 0, sizeof want);
	struct entry_ctx ctx;
	memset(&ctx, 0, sizeof ctx);
	ctx.board = &b;
	ctx.port_path = argv[2];
	ctx.log = print_line;
	ctx.timeout_ms = 10000;
	for (int i = 3; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : "";
		if (!strcmp(argv[i], "--want") && i + 1 < argc) {
			if (sscanf(v, "%x:%x", &want.usb.vid, &want.usb.pid) != 2)
				return 2;
			i++;
		} else if (!strcmp(argv[i], "--same-port")) {
			want.same_port = 1;
		} else if (!strcmp(argv[i], "--settle") && i + 1 < argc) {
			want.settle_ms = (unsigned)strtoul(v, NULL, 10);
			i++;
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			ctx.timeout_ms = (unsigned)strtoul(v, NULL, 10);
			i++;
		} else if (!strcmp(argv[i], "--interactive")) {
			ctx.interactive = 1;
		} else {
			fprintf(stderr, "entry_test: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	/* The board's USB device before entry: the one whose tty is PORT. */
	struct farm_usbdev *v = NULL, before;
	size_t n = 0;
	struct farm_err e = { 0 };
	if (farm_usbdev_list(&v, &n, &e)) {
		printf("FAIL %s\n", e.msg);
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].tty, argv[2])) {
			before = v[i];
			ctx.dev = &before;
			printf("before: %04x:%04x location=%s\n", before.vid, before.pid, before.location);
		}
	free(v);
	struct entry_result res;
	int rc = entry_run(argv[1], &ctx, &want, &res, &e);
	if (rc) {
		printf("FAIL %s\n", e.msg);
		return 1;
	}
	printf("OK method=%s port=%s dev=%04x:%04x location=%s serial=%s\n", res.method,
	       res.port[0] ? res.port : "-", res.dev.vid, res.dev.pid,
	       res.dev.location[0] ? res.dev.location : "-", res.dev.serial[0] ? res.dev.serial : "-");
	farm_transport_close(res.t);
	return 0;
}
