/* farm/serial_port.c: /dev/serial/by-id links to the node libserialport can
 * open, and the inventory's serial.usb_serial / serial.location keys. */
#include <CUnit/CUnit.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inventory.h"
#include "serial_port.h"

static char tmp[PATH_MAX];

static void mk(const char *rel_link, const char *target)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof p, "%s/%s", tmp, rel_link);
	CU_ASSERT_EQUAL_FATAL(symlink(target, p), 0);
}

static void test_canon(void)
{
	char dir[PATH_MAX + 16], out[PATH_MAX], in[PATH_MAX + 64], want[PATH_MAX + 64];
	struct farm_err e = {0};
	snprintf(tmp, sizeof tmp, "/tmp/mpfarm-sp-XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tmp));
	snprintf(dir, sizeof dir, "%s/by-id", tmp);
	CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
	snprintf(dir, sizeof dir, "%s/node", tmp);
	CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
	/* udev's relative link, a chain, an absolute link, a loop */
	mk("by-id/usb-MicroPython_Board_123-if00", "../node/ttyACM3");
	mk("by-id/chain", "usb-MicroPython_Board_123-if00");
	mk("by-id/abs", "/dev/ttyUSB7");
	mk("by-id/loop-a", "loop-b");
	mk("by-id/loop-b", "loop-a");

	snprintf(in, sizeof in, "%s/by-id/usb-MicroPython_Board_123-if00", tmp);
	snprintf(want, sizeof want, "%s/node/ttyACM3", tmp);
	CU_ASSERT_EQUAL(farm_serial_path_canon(out, sizeof out, in, &e), 0);
	CU_ASSERT_STRING_EQUAL(out, want);
	snprintf(in, sizeof in, "%s/by-id/chain", tmp);
	CU_ASSERT_EQUAL(farm_serial_path_canon(out, sizeof out, in, &e), 0);
	CU_ASSERT_STRING_EQUAL(out, want);
	snprintf(in, sizeof in, "%s/by-id/abs", tmp);
	CU_ASSERT_EQUAL(farm_serial_path_canon(out, sizeof out, in, &e), 0);
	CU_ASSERT_STRING_EQUAL(out, "/dev/ttyUSB7");
	snprintf(in, sizeof in, "%s/by-id/loop-a", tmp);
	CU_ASSERT_EQUAL(farm_serial_path_canon(out, sizeof out, in, &e), FARM_ELIMIT);
	/* not a link: unchanged; /dev/tty* is never followed */
	CU_ASSERT_EQUAL(farm_serial_path_canon(out, sizeof out, "/dev/ttyACM0", &e), 0);
	CU_ASSERT_STRING_EQUAL(out, "/dev/ttyACM0");
	/* too small an output */
	snprintf(in, sizeof in, "%s/by-id/chain", tmp);
	CU_ASSERT_EQUAL(farm_serial_path_canon(out, 8, in, &e), FARM_ELIMIT);

	const char *names[] = {"by-id/usb-MicroPython_Board_123-if00", "by-id/chain", "by-id/abs",
			       "by-id/loop-a", "by-id/loop-b", "by-id", "node", ""};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(in, sizeof in, "%s/%s", tmp, names[i]);
		if (unlink(in) != 0)
			rmdir(in);
	}
}

static struct farm_inventory *load(const char *text, struct farm_diags *d)
{
	struct farm_inventory *inv = NULL;
	struct farm_err e = {0};
	memset(d, 0, sizeof *d);
	farm_inventory_load_buf(&inv, "mem.yaml", text, strlen(text), d, &e);
	return inv;
}

static void test_inventory_keys(void)
{
	struct farm_diags d;
	struct farm_inventory *inv = load(
		"boards:\n"
		"  - {id: a, port: rp2, board: PICO, serial: {usb_serial: E6614103E7425C2F}}\n"
		"  - {id: b, port: rp2, board: PICO, serial: {location: 1-1.4, baud: 9600}}\n"
		"  - {id: c, port: rp2, board: PICO, serial: {path: /dev/ttyACM0, usb_serial: X1}}\n",
		&d);
	CU_ASSERT_PTR_NOT_NULL_FATAL(inv);
	const struct farm_board *a = farm_inventory_board(inv, "a");
	const struct farm_board *b = farm_inventory_board(inv, "b");
	const struct farm_board *c = farm_inventory_board(inv, "c");
	CU_ASSERT_PTR_NULL(a->serial.path);
	CU_ASSERT_STRING_EQUAL(a->serial.usb_serial, "E6614103E7425C2F");
	CU_ASSERT_STRING_EQUAL(b->serial.location, "1-1.4");
	CU_ASSERT_EQUAL(b->serial.baud, 9600);
	CU_ASSERT_STRING_EQUAL(c->serial.path, "/dev/ttyACM0");
	CU_ASSERT(farm_serial_is_local(&a->serial) && farm_serial_is_local(&b->serial));
	farm_inventory_free(inv);
	farm_diags_free(&d);

	/* no way to find it, a malformed location */
	const char *bad[] = {
		"boards:\n  - {id: a, port: rp2, board: PICO, serial: {baud: 9600}}\n",
		"boards:\n  - {id: a, port: rp2, board: PICO, serial: {location: usb1}}\n",
		"boards:\n  - {id: a, port: rp2, board: PICO, serial: {location: 1-}}\n",
		"boards:\n  - {id: a, port: rp2, board: PICO, serial: {usb_serial: \"\"}}\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		inv = load(bad[i], &d);
		CU_ASSERT_PTR_NULL(inv);
		CU_ASSERT(d.n > 0);
		farm_inventory_free(inv);
		farm_diags_free(&d);
	}
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("serial_port", NULL, NULL);
	if (!s || !CU_add_test(s, "by-id links to the device node", test_canon) ||
	    !CU_add_test(s, "inventory: usb_serial and location", test_inventory_keys))
		return -1;
	return 0;
}
