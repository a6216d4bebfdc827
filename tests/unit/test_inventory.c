/* Unit tests for farm/inventory.c: loading and validating board inventories. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "inventory.h"

#define INV_DIR TEST_DATA_DIR "/inventories/"

/* ------------------------------------------------------------- helpers */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct farm_inventory *load_ok(const char *path)
{
	struct farm_diags d = { 0 };
	struct farm_err e = { 0 };
	struct farm_inventory *inv = NULL;
	int rc = farm_inventory_load(&inv, path, &d, &e);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(d.n, 0);
	if (rc || d.n) {
		fprintf(stderr, "\n%s: %s\n", path, e.msg);
		farm_diags_print(&d, stderr);
	}
	farm_diags_free(&d);
	return inv;
}

/* Load a file that must fail validation; diagnostics are left in d. */
static void load_bad(const char *path, struct farm_diags *d)
{
	struct farm_err e = { 0 };
	struct farm_inventory *inv = NULL;
	int rc = farm_inventory_load(&inv, path, d, &e);
	CU_ASSERT_EQUAL(rc, FARM_EINVAL);
	CU_ASSERT_PTR_NULL(inv);
	CU_ASSERT_TRUE(d->n > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "problem"));
	farm_inventory_free(inv);
}

static void load_bad_buf(const char *text, size_t len, struct farm_diags *d)
{
	struct farm_err e = { 0 };
	struct farm_inventory *inv = NULL;
	int rc = farm_inventory_load_buf(&inv, "mem.yaml", text, len, d, &e);
	CU_ASSERT_EQUAL(rc, FARM_EINVAL);
	CU_ASSERT_PTR_NULL(inv);
	CU_ASSERT_TRUE(d->n > 0);
	farm_inventory_free(inv);
}

/* Exactly one diagnostic at line:col containing needle, with a hint containing
 * hint_needle (if given). */
static int expect_diag(const struct farm_diags *d, unsigned line, unsigned col,
		       const char *needle, const char *hint_needle)
{
	size_t found = 0;
	for (size_t i = 0; i < d->n; i++) {
		const struct farm_diag *g = &d->v[i];
		if (g->line == line && g->col == col && strstr(g->msg, needle) &&
		    (!hint_needle || (g->hint && strstr(g->hint, hint_needle))))
			found++;
	}
	if (found != 1) {
		fprintf(stderr, "\nexpected one diagnostic %u:%u \"%s\" (hint \"%s\"), found %zu; have:\n",
			line, col, needle, hint_needle ? hint_needle : "", found);
		farm_diags_print(d, stderr);
	}
	return found == 1;
}

static const char *kv(const struct farm_kv *v, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].key, key) == 0)
			return v[i].value;
	return NULL;
}

/* ------------------------------------------------------------- good files */

static void test_good(void)
{
	struct farm_inventory *inv = load_ok(INV_DIR "good.yaml");
	CU_ASSERT_PTR_NOT_NULL_FATAL(inv);
	CU_ASSERT_STRING_EQUAL(inv->name, "test-farm");
	CU_ASSERT_STRING_EQUAL(inv->path, INV_DIR "good.yaml");
	CU_ASSERT_EQUAL(inv->timeouts.boot_ms, 12000);
	CU_ASSERT_EQUAL(inv->timeouts.test_ms, 2500);
	CU_ASSERT_EQUAL(inv->timeouts.flash_ms, 90000);
	CU_ASSERT_EQUAL(inv->timeouts.build_ms, 600000);
	CU_ASSERT_EQUAL(inv->timeouts.board_ms, 900000);

	CU_ASSERT_EQUAL_FATAL(inv->n_probes, 2);
	const struct farm_probe *p = farm_inventory_probe(inv, "stlink-1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_STRING_EQUAL(p->kind, "openocd");
	CU_ASSERT_STRING_EQUAL(p->connection, "tcp://127.0.0.1:3333");
	CU_ASSERT_STRING_EQUAL(p->serial_number, "0669FF555052836687031431");
	CU_ASSERT_EQUAL(p->n_opts, 5);
	CU_ASSERT_STRING_EQUAL(kv(p->opts, p->n_opts, "interface"), "stlink");
	CU_ASSERT_STRING_EQUAL(kv(p->opts, p->n_opts, "config"), "board/st_nucleo_f4.cfg");
	CU_ASSERT_STRING_EQUAL(kv(p->opts, p->n_opts, "speed_khz"), "1800");
	CU_ASSERT_STRING_EQUAL(kv(p->opts, p->n_opts, "gdb_port"), "3333");
	CU_ASSERT_EQUAL(p->line, 7);
	CU_ASSERT_EQUAL(p->col, 5);
	CU_ASSERT_STRING_EQUAL(inv->probes[1].kind, "blackmagic");
	CU_ASSERT_PTR_NULL(farm_inventory_probe(inv, "nope"));

	CU_ASSERT_EQUAL_FATAL(inv->n_boards, 4);
	const struct farm_board *b = farm_inventory_board(inv, "pico-1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_PTR_EQUAL(b, &inv->boards[0]);
	CU_ASSERT_EQUAL(b->line, 27);
	CU_ASSERT_EQUAL(b->col, 5);
	CU_ASSERT_STRING_EQUAL(b->port, "rp2");
	CU_ASSERT_STRING_EQUAL(b->board, "RPI_PICO");
	CU_ASSERT_PTR_NULL(b->variant);
	CU_ASSERT_STRING_EQUAL(b->mcu, "rp2040");
	CU_ASSERT_STRING_EQUAL(b->serial.path,
			       "/dev/serial/by-id/usb-MicroPython_Board_in_FS_mode_e6614c311b7e6f35-if00");
	CU_ASSERT_EQUAL(b->serial.baud, 115200);
	CU_ASSERT_EQUAL(b->serial.dtr, -1);
	CU_ASSERT_EQUAL(b->serial.rts, -1);
	CU_ASSERT_EQUAL_FATAL(b->n_tags, 2);
	CU_ASSERT_TRUE(farm_board_has_tag(b, "pico"));
	CU_ASSERT_TRUE(farm_board_has_tag(b, "wifi"));
	CU_ASSERT_FALSE(farm_board_has_tag(b, "ble"));
	CU_ASSERT_EQUAL_FATAL(b->n_resources, 2);
	CU_ASSERT_STRING_EQUAL(b->resources[1], "relay.2");
	CU_ASSERT_PTR_NULL(b->probe);
	CU_ASSERT_STRING_EQUAL(b->flash.method, "uf2");
	CU_ASSERT_EQUAL(b->flash.n_opts, 2);
	CU_ASSERT_STRING_EQUAL(kv(b->flash.opts, b->flash.n_opts, "mount"), "/media/RPI-RP2");
	CU_ASSERT_STRING_EQUAL(kv(b->flash.opts, b->flash.n_opts, "settle_ms"), "500");
	CU_ASSERT_FALSE(b->emulator.present);
	CU_ASSERT_EQUAL(b->repl.chunk, 64);
	CU_ASSERT_EQUAL(b->repl.delay_ms, 0);
	CU_ASSERT_EQUAL(b->repl.window, 128);
	CU_ASSERT_EQUAL(b->repl.test_timeout_ms, 30000);
	CU_ASSERT_EQUAL(b->repl.boot_timeout_ms, 500);
	CU_ASSERT_EQUAL(b->repl.retries, 0);
	CU_ASSERT_STRING_EQUAL(b->repl.upload, "raw-paste");

	/* Merge key in serial:, explicit keys win; inventory timeouts apply. */
	b = farm_inventory_board(inv, "nucleo-1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_STRING_EQUAL(b->variant, "DP");
	CU_ASSERT_STRING_EQUAL(b->serial.path, "tcp://[::1]:4000");
	CU_ASSERT_EQUAL(b->serial.baud, 921600);
	CU_ASSERT_EQUAL(b->serial.dtr, 0);
	CU_ASSERT_EQUAL(b->serial.rts, 0);
	CU_ASSERT_EQUAL_FATAL(b->n_tags, 1);
	CU_ASSERT_STRING_EQUAL(b->tags[0], "nucleo");
	CU_ASSERT_STRING_EQUAL(b->probe, "stlink-1");
	CU_ASSERT_STRING_EQUAL(b->flash.method, "gdb");
	CU_ASSERT_EQUAL(b->repl.test_timeout_ms, 2500);
	CU_ASSERT_EQUAL(b->repl.boot_timeout_ms, 12000);
	CU_ASSERT_EQUAL(b->repl.chunk, 32);
	CU_ASSERT_EQUAL(b->repl.delay_ms, 2);
	CU_ASSERT_EQUAL(b->repl.window, 32);
	CU_ASSERT_EQUAL(b->repl.retries, 3);
	CU_ASSERT_PTR_NULL(b->repl.upload);

	b = farm_inventory_board(inv, "esp-1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_STRING_EQUAL(b->serial.path, "unix:/run/mpfarm/esp.sock");
	CU_ASSERT_PTR_NULL(b->repl.upload); /* "auto" is stored as NULL */
	CU_ASSERT_PTR_NULL(b->flash.method);
	CU_ASSERT_EQUAL(b->n_tags, 0);

	b = farm_inventory_board(inv, "microbit-1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_TRUE(b->emulator.present);
	CU_ASSERT_STRING_EQUAL(b->emulator.kind, "qemu");
	CU_ASSERT_STRING_EQUAL(b->emulator.machine, "microbit");
	CU_ASSERT_STRING_EQUAL(b->emulator.firmware, "/opt/fw/microbit.hex");
	CU_ASSERT_PTR_NULL(b->serial.path);
	CU_ASSERT_PTR_NULL(farm_inventory_board(inv, "pico-9"));

	CU_ASSERT_EQUAL_FATAL(inv->n_targets, 4);
	const struct farm_fw_target *t = &inv->targets[0];
	CU_ASSERT_EQUAL(t->source, FARM_FW_FILE);
	CU_ASSERT_EQUAL_FATAL(t->n_boards, 1);
	CU_ASSERT_STRING_EQUAL(t->boards[0], "pico-1");
	CU_ASSERT_STRING_EQUAL(kv(t->opts, t->n_opts, "path"), "build/RPI_PICO.uf2");
	t = &inv->targets[1];
	CU_ASSERT_EQUAL(t->source, FARM_FW_FETCH);
	CU_ASSERT_EQUAL(t->n_boards, 0);
	CU_ASSERT_STRING_EQUAL(t->match_port, "stm32");
	CU_ASSERT_STRING_EQUAL(t->match_board, "NUCLEO_F446RE");
	CU_ASSERT_PTR_NULL(t->match_variant);
	CU_ASSERT_STRING_EQUAL(kv(t->opts, t->n_opts, "url"), "https://example.com/{board}-{version}.dfu");
	CU_ASSERT_STRING_EQUAL(kv(t->opts, t->n_opts, "sha256"),
			       "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
	CU_ASSERT_STRING_EQUAL(kv(t->opts, t->n_opts, "timeout"), "60");
	CU_ASSERT_STRING_EQUAL(kv(t->opts, t->n_opts, "retries"), "2");
	CU_ASSERT_STRING_EQUAL(kv(t->opts, t->n_opts, "max_size"), "4194304");
	t = &inv->targets[2];
	CU_ASSERT_EQUAL(t->source, FARM_FW_FETCH);
	CU_ASSERT_EQUAL_FATAL(t->n_boards, 1);
	CU_ASSERT_STRING_EQUAL(t->boards[0], "esp-1");
	CU_ASSERT_STRING_EQUAL(kv(t->opts, t->n_opts, "sha256_waived"), "true");
	CU_ASSERT_PTR_NULL(kv(t->opts, t->n_opts, "sha256"));
	t = &inv->targets[3];
	CU_ASSERT_EQUAL(t->source, FARM_FW_BUILD);
	CU_ASSERT_STRING_EQUAL(t->match_port, "rp2");
	CU_ASSERT_STRING_EQUAL(kv(t->opts, t->n_opts, "repo"), "https://github.com/micropython/micropython.git");
	CU_ASSERT_STRING_EQUAL(kv(t->opts, t->n_opts, "ref"), "v1.24.0");
	CU_ASSERT_STRING_EQUAL(kv(t->opts, t->n_opts, "port"), "rp2");
	/* command: one string is split into words, never given to a shell */
	CU_ASSERT_PTR_NULL(kv(t->opts, t->n_opts, "command"));
	CU_ASSERT_EQUAL_FATAL(t->n_command, 3);
	CU_ASSERT_STRING_EQUAL(t->command[0], "make");
	CU_ASSERT_STRING_EQUAL(t->command[1], "-C");
	CU_ASSERT_STRING_EQUAL(t->command[2], "ports/rp2");
	CU_ASSERT_FALSE(t->has_submodules);
	CU_ASSERT_EQUAL(t->n_opts, 5);
	farm_inventory_free(inv);
}

static void test_shipped(void)
{
	struct farm_inventory *inv = load_ok(SOURCE_DIR "/inventories/emulated.yaml");
	CU_ASSERT_PTR_NOT_NULL_FATAL(inv);
	CU_ASSERT_STRING_EQUAL(inv->name, "emulated");
	CU_ASSERT_EQUAL_FATAL(inv->n_boards, 2);
	static const char *const ids[] = { "microbit-1", "microbit-2" };
	for (size_t i = 0; i < 2; i++) {
		const struct farm_board *b = &inv->boards[i];
		CU_ASSERT_STRING_EQUAL(b->id, ids[i]);
		CU_ASSERT_STRING_EQUAL(b->port, "nrf");
		CU_ASSERT_STRING_EQUAL(b->board, "microbit");
		CU_ASSERT_STRING_EQUAL(b->mcu, "nrf51");
		CU_ASSERT_TRUE(farm_board_has_tag(b, "emulated"));
		CU_ASSERT_TRUE(farm_board_has_tag(b, "microbit"));
		CU_ASSERT_TRUE(b->emulator.present);
		CU_ASSERT_STRING_EQUAL(b->emulator.kind, "qemu");
		CU_ASSERT_STRING_EQUAL(b->emulator.machine, "microbit");
		CU_ASSERT_TRUE(b->emulator.blank);
		CU_ASSERT_PTR_NULL(b->emulator.firmware);
		CU_ASSERT_STRING_EQUAL(b->flash.method, "gdb");
		CU_ASSERT_PTR_NULL(b->serial.path);
	}
	CU_ASSERT_EQUAL_FATAL(inv->n_targets, 1);
	CU_ASSERT_STRING_EQUAL(inv->targets[0].match_board, "microbit");
	farm_inventory_free(inv);

	inv = load_ok(SOURCE_DIR "/inventories/example-lab.yaml");
	CU_ASSERT_PTR_NOT_NULL_FATAL(inv);
	CU_ASSERT_TRUE(inv->n_boards >= 5);
	CU_ASSERT_TRUE(inv->n_targets >= 3);
	const struct farm_board *b = farm_inventory_board(inv, "nrf52-1");
	CU_ASSERT_PTR_NOT_NULL(b);
	if (b)
		CU_ASSERT_PTR_NOT_NULL(farm_inventory_probe(inv, b->probe));
	farm_inventory_free(inv);
}

static void test_defaults_and_lookup(void)
{
	struct farm_repl_cfg r;
	memset(&r, 0xab, sizeof r);
	farm_repl_cfg_default(&r);
	CU_ASSERT_EQUAL(r.chunk, 32);
	CU_ASSERT_EQUAL(r.delay_ms, 2);
	CU_ASSERT_EQUAL(r.window, 32);
	CU_ASSERT_EQUAL(r.test_timeout_ms, 10000);
	CU_ASSERT_EQUAL(r.boot_timeout_ms, 10000);
	CU_ASSERT_EQUAL(r.retries, 3);
	CU_ASSERT_PTR_NULL(r.upload);

	const char *text = "boards:\n"
			   "  - {id: a, port: unix, board: standard, serial: unix:/tmp/a.sock}\n";
	struct farm_inventory *inv = NULL;
	struct farm_diags d = { 0 };
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(farm_inventory_load_buf(&inv, "mem.yaml", text, strlen(text), &d, &e), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(inv);
	CU_ASSERT_STRING_EQUAL(inv->name, "mpfarm");
	CU_ASSERT_STRING_EQUAL(inv->path, "mem.yaml");
	CU_ASSERT_EQUAL(inv->n_probes, 0);
	CU_ASSERT_EQUAL(inv->n_targets, 0);
	CU_ASSERT_EQUAL(inv->timeouts.test_ms, 0);
	const struct farm_board *b = farm_inventory_board(inv, "a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_EQUAL(b->repl.test_timeout_ms, 10000);
	CU_ASSERT_EQUAL(b->serial.baud, 115200);
	CU_ASSERT_EQUAL(b->serial.dtr, -1);
	CU_ASSERT_FALSE(farm_board_has_tag(b, "x"));
	CU_ASSERT_FALSE(farm_board_has_tag(NULL, "x"));
	CU_ASSERT_PTR_NULL(farm_inventory_board(NULL, "a"));
	CU_ASSERT_PTR_NULL(farm_inventory_probe(NULL, "a"));
	CU_ASSERT_PTR_NULL(farm_inventory_board(inv, NULL));
	farm_inventory_free(inv);
	farm_inventory_free(NULL);
	/* The diagnostics list is optional. */
	inv = NULL;
	CU_ASSERT_EQUAL(farm_inventory_load_buf(&inv, NULL, "boards: []\n", 11, NULL, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NULL(inv);
	CU_ASSERT_EQUAL(d.n, 0);
}

/* ------------------------------------------------------------- bad files */

static void test_bad_many(void)
{
	struct farm_diags d = { 0 };
	load_bad(INV_DIR "bad-many.yaml", &d);
	CU_ASSERT_TRUE(expect_diag(&d, 3, 18, "timeouts.boot must be a number of seconds between 0.1 and 3600, got \"fast\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 3, 24, "unknown key \"tests\" in timeouts", "did you mean \"test\"?"));
	CU_ASSERT_TRUE(expect_diag(&d, 4, 1, "unknown key \"bords\" in the inventory", "did you mean \"boards\"?"));
	CU_ASSERT_TRUE(expect_diag(&d, 7, 11, "probes[0].kind: unknown probe kind \"openocd-x\"", "did you mean \"openocd\"?"));
	CU_ASSERT_TRUE(expect_diag(&d, 8, 16, "probes[0].speed_khz must be an integer between 1 and 100000, got \"0\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 11, 11, "boards[0].port: unknown port \"rp-2\"", "did you mean \"rp2\"?"));
	CU_ASSERT_TRUE(expect_diag(&d, 13, 34, "unknown key \"baudrate\" in boards[0].serial", "did you mean \"baud\"?"));
	CU_ASSERT_TRUE(expect_diag(&d, 13, 58, "boards[0].serial.baud must be an integer between 50 and 4000000, got \"fast\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 14, 12, "boards[0].probe: probe \"stlink1\" is not defined in probes:", "did you mean \"stlink-1\"?"));
	CU_ASSERT_TRUE(expect_diag(&d, 15, 5, "missing required key \"board\" in boards[1]", "add \"board: ...\""));
	CU_ASSERT_TRUE(expect_diag(&d, 15, 9, "boards[1].id \"pico 2\" is not a valid id", "A-Z a-z 0-9"));
	CU_ASSERT_TRUE(expect_diag(&d, 18, 16, "boards[1].tags[1] must be a non-empty string, got a mapping", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 19, 19, "boards[1].repl.chunk must be an integer between 1 and 4096, got \"0\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 19, 30, "boards[1].repl.upload: unknown upload mode \"turbo\"", "auto, raw-paste, echo-paste, raw"));
	CU_ASSERT_TRUE(expect_diag(&d, 19, 46, "boards[1].repl.timeout must be a number of seconds between 0.1 and 3600, got \"0.01\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 23, 13, "boards[2] has both serial: and emulator:", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 23, 20, "boards[2].serial.path must be a device path (/dev/...), tcp://HOST:PORT or unix:PATH, got \"COM3\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 23, 31, "boards[2].serial.dtr must be true or false, got \"yes\"", "write true instead of yes"));
	CU_ASSERT_TRUE(expect_diag(&d, 24, 15, "missing required key \"machine\" in boards[2].emulator", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 25, 21, "boards[2].flash.method: unknown flash method \"esptol\"", "did you mean \"esptool\"?"));
	CU_ASSERT_TRUE(expect_diag(&d, 25, 35, "boards[2].flash.args must be a single value, got a list", NULL));
	CU_ASSERT_EQUAL(d.n, 21);
	/* Reported in file order, every one with the file name. */
	for (size_t i = 1; i < d.n; i++) {
		CU_ASSERT_TRUE(d.v[i - 1].line < d.v[i].line ||
			       (d.v[i - 1].line == d.v[i].line && d.v[i - 1].col <= d.v[i].col));
		CU_ASSERT_PTR_NOT_NULL(strstr(d.v[i].file, "bad-many.yaml"));
	}
	farm_diags_free(&d);
}

static void test_duplicate_ids(void)
{
	struct farm_diags d = { 0 };
	load_bad(INV_DIR "bad-dup-ids.yaml", &d);
	CU_ASSERT_TRUE(expect_diag(&d, 4, 9, "duplicate probe id \"p1\" (first defined at line 2)", "unique"));
	CU_ASSERT_TRUE(expect_diag(&d, 15, 9, "duplicate board id \"pico-1\" (first defined at line 7)", "unique"));
	CU_ASSERT_EQUAL(d.n, 2);
	farm_diags_free(&d);
}

static void test_unknown_probe(void)
{
	struct farm_diags d = { 0 };
	load_bad(INV_DIR "bad-probe-ref.yaml", &d);
	CU_ASSERT_TRUE(expect_diag(&d, 5, 71, "boards[0].probe: probe \"stlink-b\" is not defined in probes:", "did you mean \"stlink-a\"?"));
	CU_ASSERT_TRUE(expect_diag(&d, 6, 71, "boards[1].probe: probe \"cmsis-dap\" is not defined in probes:", "defined probes: stlink-a, jlink-b"));
	CU_ASSERT_EQUAL(d.n, 2);
	farm_diags_free(&d);

	/* No probes: section at all. */
	const char *t = "boards:\n  - {id: a, port: rp2, board: X, serial: /dev/x, probe: p}\n";
	load_bad_buf(t, strlen(t), &d);
	CU_ASSERT_TRUE(expect_diag(&d, 2, 57, "probe \"p\" is not defined in probes:", "top-level probes:"));
	farm_diags_free(&d);
}

static void test_missing_fields(void)
{
	struct farm_diags d = { 0 };
	load_bad(INV_DIR "bad-missing.yaml", &d);
	CU_ASSERT_TRUE(expect_diag(&d, 3, 5, "missing required key \"port\" in boards[0]", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 3, 5, "missing required key \"board\" in boards[0]", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 3, 5, "boards[0] needs serial: (or emulator:)", "emulator:"));
	CU_ASSERT_TRUE(expect_diag(&d, 4, 5, "missing required key \"id\" in boards[1]", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 7, 5, "missing required key \"id\" in boards[2]", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 7, 5, "missing required key \"port\" in boards[2]", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 7, 5, "missing required key \"board\" in boards[2]", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 7, 5, "boards[2] needs serial: (or emulator:)", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 11, 15, "missing required key \"kind\" in boards[3].emulator", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 14, 5, "required key \"board\" in boards[4] has no value", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 15, 13, "missing required key \"path\" in boards[4].serial", NULL));
	CU_ASSERT_EQUAL(d.n, 11);
	farm_diags_free(&d);

	load_bad(INV_DIR "bad-no-boards.yaml", &d);
	CU_ASSERT_TRUE(expect_diag(&d, 1, 1, "missing required key \"boards\" in the inventory", NULL));
	CU_ASSERT_EQUAL(d.n, 1);
	farm_diags_free(&d);
	load_bad(INV_DIR "bad-empty.yaml", &d);
	CU_ASSERT_TRUE(expect_diag(&d, 0, 0, "the inventory is empty", "boards:"));
	CU_ASSERT_EQUAL(d.n, 1);
	farm_diags_free(&d);
	load_bad(INV_DIR "bad-empty-boards.yaml", &d);
	CU_ASSERT_TRUE(expect_diag(&d, 3, 9, "boards must list at least one board", NULL));
	CU_ASSERT_EQUAL(d.n, 1);
	farm_diags_free(&d);
}

static void test_wrong_types(void)
{
	struct farm_diags d = { 0 };
	load_bad(INV_DIR "bad-types.yaml", &d);
	CU_ASSERT_TRUE(expect_diag(&d, 1, 7, "farm must be a string, got a list", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 2, 11, "timeouts must be a mapping, got \"10\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 3, 9, "probes must be a list, got a mapping", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 8, 13, "boards[0].serial must be a device path or a mapping, got a list", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 9, 11, "boards[0].tags must be a string or a list of strings, got a mapping", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 10, 16, "boards[0].resources: \"hub 1\" is not a valid id", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 11, 12, "boards[0].flash must be a mapping, got \"uf2\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 12, 19, "boards[0].repl.chunk must be an integer between 1 and 4096, got \"64\"", "remove the quotes"));
	CU_ASSERT_TRUE(expect_diag(&d, 12, 34, "boards[0].repl.retries must be an integer between 0 and 10, got \"11\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 12, 48, "boards[0].repl.delay_ms must be an integer between 0 and 1000, got \"1.5\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 13, 5, "boards[1] must be a mapping, got \"just-a-string\"", NULL));
	CU_ASSERT_EQUAL(d.n, 11);
	farm_diags_free(&d);

	/* The top level must be a mapping. */
	load_bad_buf("- a\n- b\n", 8, &d);
	CU_ASSERT_TRUE(expect_diag(&d, 1, 1, "the inventory must be a mapping, got a list", NULL));
	farm_diags_free(&d);
}

static void test_serial_forms(void)
{
	struct farm_diags d = { 0 };
	load_bad(INV_DIR "bad-serial.yaml", &d);
	/* Lines 2-5 (b0-b3) are valid forms: nothing reported there. */
	for (size_t i = 0; i < d.n; i++)
		CU_ASSERT_TRUE(d.v[i].line >= 6);
	const char *form = "must be a device path (/dev/...), tcp://HOST:PORT or unix:PATH";
	CU_ASSERT_TRUE(expect_diag(&d, 6, 44, form, "tcp:// needs a port"));
	CU_ASSERT_TRUE(expect_diag(&d, 7, 44, form, "1 to 65535"));
	CU_ASSERT_TRUE(expect_diag(&d, 8, 44, form, "1 to 65535"));
	CU_ASSERT_TRUE(expect_diag(&d, 9, 44, form, "needs a host"));
	CU_ASSERT_TRUE(expect_diag(&d, 10, 44, form, "tcp://[ADDR]:PORT"));
	CU_ASSERT_TRUE(expect_diag(&d, 11, 44, form, "unix: needs a socket path"));
	CU_ASSERT_TRUE(expect_diag(&d, 12, 45, "got \"ttyUSB0\"", "/dev/serial/by-id/"));
	CU_ASSERT_TRUE(expect_diag(&d, 13, 45, "got \"COM3\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 14, 72, "boards[12].serial.baud must be an integer between 50 and 4000000, got \"49\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 15, 72, "got \"4000001\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 16, 45, "got \"tcp://host:40a0\"", "1 to 65535"));
	CU_ASSERT_TRUE(expect_diag(&d, 17, 86, "boards[15].serial.dtr must be true or false, got \"true\"", "remove the quotes"));
	CU_ASSERT_TRUE(expect_diag(&d, 17, 99, "boards[15].serial.rts must be true or false, got \"off\"", "write false instead of off"));
	CU_ASSERT_EQUAL(d.n, 13);
	farm_diags_free(&d);
}

static void test_firmware_shape(void)
{
	struct farm_diags d = { 0 };
	load_bad(INV_DIR "bad-firmware.yaml", &d);
	CU_ASSERT_TRUE(expect_diag(&d, 4, 5, "firmware[0] needs boards: or match:", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 6, 12, "firmware[1] has both boards: and match:; use one", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 8, 14, "firmware[2].boards: no board has id \"pico1\"", "did you mean \"pico-1\"?"));
	CU_ASSERT_TRUE(expect_diag(&d, 8, 21, "firmware[2].boards: no board has id \"ghost\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 10, 5, "firmware[3] needs one of file:, fetch: or build:", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 13, 12, "firmware[4] has both file: and fetch:", "exactly one"));
	CU_ASSERT_TRUE(expect_diag(&d, 15, 12, "firmware[5].fetch: sha256 is required for an http(s) download", "sha256_waived: true"));
	CU_ASSERT_TRUE(expect_diag(&d, 17, 18, "firmware[6].fetch.url must be an https://, http:// or file:// URL, got \"ftp://x/y.uf2\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 17, 43, "firmware[6].fetch.sha256 must be 64 hexadecimal digits, got \"abc\"", "sha256sum"));
	CU_ASSERT_TRUE(expect_diag(&d, 18, 12, "firmware[7].match must name a port, board or variant", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 19, 12, "missing required key \"repo\" in firmware[7].build", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 19, 33, "firmware[7].build.port: unknown port \"rp3\"", "did you mean \"rp2\"?"));
	CU_ASSERT_TRUE(expect_diag(&d, 20, 24, "unknown key \"mcu\" in firmware[8].match", "valid keys: port, board, variant"));
	CU_ASSERT_TRUE(expect_diag(&d, 21, 12, "firmware[8].build must be a mapping, got a list", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 23, 49, "firmware[9].fetch.timeout must be an integer between 1 and 3600, got \"0\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 23, 61, "firmware[9].fetch.retries must be an integer between 0 and 10, got \"11\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 23, 75, "firmware[9].fetch.max_size must be an integer between 1 and 1073741824, got \"-1\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 23, 79, "unknown key \"mirror\" in firmware[9].fetch", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 24, 5, "firmware[10] must be a mapping, got \"just-a-string\"", NULL));
	CU_ASSERT_EQUAL(d.n, 19);
	farm_diags_free(&d);
}

/* build: command as a list or one string (split, no shell), submodules:,
 * and paths that would leave the source tree. */
static void test_build_lists(void)
{
	static const char good[] =
		"boards:\n  - {id: pico-1, port: rp2, board: RPI_PICO, serial: {path: /dev/ttyACM0}}\n"
		"firmware:\n"
		"  - boards: [pico-1]\n"
		"    build:\n"
		"      repo: /srv/micropython\n"
		"      ref: master\n"
		"      command: [make, -C, ports/rp2, 'BOARD={board}', 'CFLAGS_EXTRA=-DX=\"a b\"']\n"
		"      submodules: [lib/pico-sdk, lib/tinyusb]\n";
	struct farm_diags d = { 0 };
	struct farm_err e = { 0 };
	struct farm_inventory *inv = NULL;
	CU_ASSERT_EQUAL_FATAL(farm_inventory_load_buf(&inv, "b.yaml", good, sizeof good - 1, &d, &e), 0);
	const struct farm_fw_target *t = &inv->targets[0];
	CU_ASSERT_EQUAL_FATAL(t->n_command, 5);
	CU_ASSERT_STRING_EQUAL(t->command[3], "BOARD={board}");
	CU_ASSERT_STRING_EQUAL(t->command[4], "CFLAGS_EXTRA=-DX=\"a b\"");
	CU_ASSERT_TRUE(t->has_submodules);
	CU_ASSERT_EQUAL_FATAL(t->n_submodules, 2);
	CU_ASSERT_STRING_EQUAL(t->submodules[1], "lib/tinyusb");
	farm_inventory_free(inv);
	farm_diags_free(&d);

	static const char bad[] =
		"boards:\n  - {id: pico-1, port: rp2, board: RPI_PICO, serial: {path: /dev/ttyACM0}}\n"
		"firmware:\n"
		"  - boards: [pico-1]\n"
		"    build: {repo: /srv/mp, ref: master, artifact: ../../etc/passwd, submodules: [lib/ok, /abs, a/../../b], command: []}\n";
	load_bad_buf(bad, sizeof bad - 1, &d);
	CU_ASSERT_TRUE(expect_diag(&d, 5, 90, "firmware[0].build.submodules: \"/abs\" is not a path inside the source tree", "lib/pico-sdk"));
	CU_ASSERT_TRUE(expect_diag(&d, 5, 96, "firmware[0].build.submodules: \"a/../../b\" is not a path inside the source tree", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 5, 51, "firmware[0].build.artifact: \"../../etc/passwd\" is not a path inside the source tree", "relative to the port directory"));
	CU_ASSERT_TRUE(expect_diag(&d, 5, 117, "firmware[0].build.command is empty", NULL));
	farm_diags_free(&d);
}

static void test_emulator_rules(void)
{
	struct farm_diags d = { 0 };
	const char *t = "boards:\n"
			"  - {id: a, port: rp2, board: X, emulator: {kind: qemu, machine: microbit}}\n"
			"  - {id: b, port: nrf, board: X, emulator: {kind: renode, machine: nrf52840dk}}\n"
			"  - {id: c, port: nrf, board: X, emulator: qemu}\n";
	load_bad_buf(t, strlen(t), &d);
	CU_ASSERT_TRUE(expect_diag(&d, 2, 19, "boards[0]: port must be nrf for the microbit emulator", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 3, 51, "unknown emulator kind \"renode\"", "qemu"));
	CU_ASSERT_TRUE(expect_diag(&d, 3, 68, "unknown emulated machine \"nrf52840dk\"", "only the BBC micro:bit"));
	CU_ASSERT_TRUE(expect_diag(&d, 4, 44, "boards[2].emulator must be a mapping", NULL));
	CU_ASSERT_EQUAL(d.n, 4); /* no "needs serial:" on top */
	farm_diags_free(&d);
}

static void test_yaml_problems_reported(void)
{
	struct farm_diags d = { 0 };
	const char *t = "boards:\n"
			"  - id: a\n"
			"    id: b\n"
			"    port: !!python/object x\n";
	load_bad_buf(t, strlen(t), &d);
	CU_ASSERT_TRUE(expect_diag(&d, 3, 5, "duplicate key \"id\" (first defined at line 2)", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 4, 11, "unsupported tag \"!!python/object\"", NULL));
	farm_diags_free(&d);
}

/* ------------------------------------------------------------- hostile input */

static void test_huge_file(void)
{
	char path[] = "/tmp/mpfarm-inv-XXXXXX";
	int fd = mkstemp(path);
	CU_ASSERT_TRUE_FATAL(fd >= 0);
	/* Sparse: 100 MB of NULs without using the disk. */
	CU_ASSERT_EQUAL(ftruncate(fd, 100L << 20), 0);
	close(fd);
	struct farm_diags d = { 0 };
	struct farm_err e = { 0 };
	struct farm_inventory *inv = NULL;
	double t0 = now_s();
	int rc = farm_inventory_load(&inv, path, &d, &e);
	CU_ASSERT_TRUE(now_s() - t0 < 5.0);
	CU_ASSERT_EQUAL(rc, FARM_ELIMIT);
	CU_ASSERT_EQUAL(e.code, FARM_ELIMIT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "larger than"));
	CU_ASSERT_PTR_NULL(inv);
	unlink(path);
	farm_diags_free(&d);

	rc = farm_inventory_load(&inv, INV_DIR "does-not-exist.yaml", &d, &e);
	CU_ASSERT_EQUAL(rc, FARM_ENOTFOUND);
	CU_ASSERT_PTR_NULL(inv);
}

static void test_hostile_yaml(void)
{
	struct farm_diags d = { 0 };
	struct farm_buf b = { 0 };

	/* Billion laughs under boards: */
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "x-0: &a0 [{id: a, port: rp2, board: X, serial: /dev/x}]\n"), 0);
	for (int i = 1; i < 12; i++) {
		CU_ASSERT_EQUAL(farm_buf_printf(&b, "x-%d: &a%d [", i, i), 0);
		for (int k = 0; k < 10; k++)
			CU_ASSERT_EQUAL(farm_buf_printf(&b, "%s*a%d", k ? ", " : "", i - 1), 0);
		CU_ASSERT_EQUAL(farm_buf_puts(&b, "]\n"), 0);
	}
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "boards: *a11\n"), 0);
	double t0 = now_s();
	load_bad_buf(b.data, b.len, &d);
	CU_ASSERT_TRUE(now_s() - t0 < 5.0);
	CU_ASSERT_EQUAL(d.n, 1);
	if (d.n)
		CU_ASSERT_PTR_NOT_NULL(strstr(d.v[0].msg, "alias expansion exceeds"));
	farm_diags_free(&d);

	/* Deep nesting. */
	farm_buf_reset(&b);
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "boards: "), 0);
	for (int i = 0; i < 100000; i++)
		CU_ASSERT_EQUAL(farm_buf_puts(&b, "["), 0);
	load_bad_buf(b.data, b.len, &d);
	CU_ASSERT_TRUE(expect_diag(&d, 1, 72, "nesting is deeper than 64 levels", NULL));
	farm_diags_free(&d);

	/* Binary garbage. */
	farm_buf_reset(&b);
	unsigned seed = 4242;
	for (int i = 0; i < 65536; i++) {
		seed = seed * 1103515245u + 12345u;
		char ch = (char)(seed >> 16);
		CU_ASSERT_EQUAL(farm_buf_append(&b, &ch, 1), 0);
	}
	load_bad_buf(b.data, b.len, &d);
	CU_ASSERT_TRUE(d.n >= 1);
	if (d.n)
		CU_ASSERT_PTR_NOT_NULL(strstr(d.v[0].msg, "invalid YAML"));
	farm_diags_free(&d);
	farm_buf_free(&b);
}

static void test_many_problems_capped(void)
{
	/* 1000 boards with an unknown key each: the list is capped, the rest
	 * counted, and the time stays bounded. */
	struct farm_buf b = { 0 };
	struct farm_diags d = { 0 };
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "boards:\n"), 0);
	for (int i = 0; i < 1000; i++)
		CU_ASSERT_EQUAL(farm_buf_printf(&b, "  - {id: b%d, port: rp2, board: X, serial: /dev/x, prot: 1}\n", i), 0);
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "firmware:\n  - boards: ["), 0);
	for (int i = 0; i < 1000; i++)
		CU_ASSERT_EQUAL(farm_buf_printf(&b, "%sghost-%d", i ? ", " : "", i), 0);
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "]\n    file: x.uf2\n"), 0);
	double t0 = now_s();
	load_bad_buf(b.data, b.len, &d);
	CU_ASSERT_TRUE(now_s() - t0 < 10.0);
	CU_ASSERT_EQUAL(d.n, 200);
	CU_ASSERT_EQUAL(d.n + d.n_dropped, 2000);
	CU_ASSERT_TRUE(expect_diag(&d, 2, 51, "unknown key \"prot\" in boards[0]", "did you mean \"port\"?"));
	farm_diags_free(&d);

	/* Too many boards. */
	farm_buf_reset(&b);
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "boards:\n"), 0);
	for (int i = 0; i < FARM_INVENTORY_MAX_BOARDS + 1; i++)
		CU_ASSERT_EQUAL(farm_buf_printf(&b, "  - {id: b%d, port: rp2, board: X, serial: /dev/x}\n", i), 0);
	load_bad_buf(b.data, b.len, &d);
	CU_ASSERT_TRUE(expect_diag(&d, 2, 3, "boards has 1025 entries; mpfarm accepts at most 1024", NULL));
	CU_ASSERT_EQUAL(d.n, 1);
	farm_diags_free(&d);
	farm_buf_free(&b);
}


static void test_board_timeouts_override(void)
{
	static const char text[] =
		"timeouts: {test: 20, board: 600}\n"
		"boards:\n"
		"  - {id: a, port: nrf, board: microbit, emulator: {kind: qemu, machine: microbit}}\n"
		"  - {id: b, port: nrf, board: microbit, emulator: {kind: qemu, machine: microbit},\n"
		"     timeouts: {test: 5, board: 60, flash: 30}}\n"
		"  - {id: c, port: nrf, board: microbit, emulator: {kind: qemu, machine: microbit},\n"
		"     timeouts: {tset: 5}}\n";
	struct farm_inventory *inv = NULL;
	struct farm_diags d = { 0 };
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(farm_inventory_load_buf(&inv, "t.yaml", text, sizeof text - 1, &d, &e), FARM_EINVAL);
	CU_ASSERT_EQUAL(d.n, 1); /* only the misspelt key */
	CU_ASSERT(d.n == 1 && strstr(d.v[0].msg, "tset") && d.v[0].line == 7);
	farm_diags_free(&d);
	/* without the bad board, the values merge: board's own beat the inventory's */
	static const char good[] =
		"timeouts: {test: 20, board: 600}\n"
		"boards:\n"
		"  - {id: a, port: nrf, board: microbit, emulator: {kind: qemu, machine: microbit}}\n"
		"  - {id: b, port: nrf, board: microbit, emulator: {kind: qemu, machine: microbit},\n"
		"     timeouts: {test: 5, board: 60}}\n";
	CU_ASSERT_EQUAL_FATAL(farm_inventory_load_buf(&inv, "g.yaml", good, sizeof good - 1, &d, &e), 0);
	CU_ASSERT_EQUAL(inv->boards[0].repl.test_timeout_ms, 20000);
	CU_ASSERT_EQUAL(inv->boards[0].timeouts.board_ms, 600000);
	CU_ASSERT_EQUAL(inv->boards[1].repl.test_timeout_ms, 5000);
	CU_ASSERT_EQUAL(inv->boards[1].timeouts.board_ms, 60000);
	farm_inventory_free(inv);
	farm_diags_free(&d);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("inventory", NULL, NULL);
	if (!s)
		return -1;
	struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{ "good inventory", test_good },
		{ "shipped inventories", test_shipped },
		{ "defaults and lookups", test_defaults_and_lookup },
		{ "many problems, all reported", test_bad_many },
		{ "duplicate ids", test_duplicate_ids },
		{ "unknown probe", test_unknown_probe },
		{ "missing fields", test_missing_fields },
		{ "wrong types", test_wrong_types },
		{ "serial forms", test_serial_forms },
		{ "firmware shape", test_firmware_shape },
		{ "build command and submodules", test_build_lists },
		{ "emulator rules", test_emulator_rules },
		{ "YAML problems", test_yaml_problems_reported },
		{ "100 MB file", test_huge_file },
		{ "hostile YAML", test_hostile_yaml },
		{ "problem cap", test_many_problems_capped },
		{ "board timeouts override", test_board_timeouts_override },
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
