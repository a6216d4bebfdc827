/* CUnit: USB device listing from sysfs (farm/usbdev.c) on a fake tree laid
 * out as the kernel does: hubs and root hubs skipped, cdc_acm and
 * usb-serial tty layouts, by-id links, bounded attributes, matching, and
 * the wait (settle, timeout message, cancel). */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <string.h>

#include "usbdev.h"
#include "usbfake.h"

static void make_tree(struct usbfake *f)
{
	CU_ASSERT_FATAL(usbfake_init(f) == 0);
	usbfake_device(f, "usb1", "1d6b\n", "0002\n", NULL, "xHCI Host Controller\n", "09\n", 1);
	usbfake_device(f, "1-1", "05e3\n", "0610\n", NULL, "USB2.0 Hub\n", "09\n", 2);
	/* MicroPython on RP2040: interface 0 without tty, 2 with ttyACM0; no
	 * trailing newlines (umockdev writes attributes without). */
	usbfake_device(f, "1-1.2", "2e8a", "0005", "E6614103E7425C2F", "Board in FS mode", "ef", 5);
	usbfake_attr(f, "1-1.2/1-1.2:1.0", "bInterfaceClass", "08\n");
	usbfake_tty(f, "1-1.2", "1-1.2:1.2", "ttyACM0", 1);
	usbfake_byid(f, "usb-MicroPython_Board_in_FS_mode_E6614103E7425C2F-if00", "ttyACM0");
	/* An FTDI bridge (usb-serial layout) at a port numbered 10. */
	usbfake_device(f, "1-1.10", "0403\n", "6001\n", "A50285BI\n", "FT232R USB UART\n", "00\n", 7);
	usbfake_tty(f, "1-1.10", "1-1.10:1.0", "ttyUSB0", 0);
	/* RP2040 BOOTSEL: no serial port. */
	usbfake_device(f, "1-3", "2e8a\n", "0003\n", "E0C9125B0D9B\n", "RP2 Boot\n", "00\n", 9);
	/* Interface symlink-style entries in the bus dir are not devices. */
	usbfake_attr(f, "1-3:1.0", "bInterfaceClass", "08\n");
}

static void test_list(void)
{
	struct usbfake f;
	make_tree(&f);
	struct farm_usbdev *v = NULL;
	size_t n = 0;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(farm_usbdev_list_at(f.sys, f.dev, &v, &n, &e), 0);
	CU_ASSERT_EQUAL_FATAL(n, 3);
	/* Sorted by location, version order: 1-1.2 < 1-1.10 < 1-3. */
	CU_ASSERT_STRING_EQUAL(v[0].location, "1-1.2");
	CU_ASSERT_STRING_EQUAL(v[1].location, "1-1.10");
	CU_ASSERT_STRING_EQUAL(v[2].location, "1-3");
	CU_ASSERT_EQUAL(v[0].vid, 0x2e8a);
	CU_ASSERT_EQUAL(v[0].pid, 0x0005);
	CU_ASSERT_EQUAL(v[0].busnum, 1);
	CU_ASSERT_EQUAL(v[0].devnum, 5);
	CU_ASSERT_STRING_EQUAL(v[0].serial, "E6614103E7425C2F");
	CU_ASSERT_STRING_EQUAL(v[0].product, "Board in FS mode");
	CU_ASSERT_STRING_EQUAL(v[0].manufacturer, "Test");
	char want[600];
	snprintf(want, sizeof want, "%s/ttyACM0", f.dev);
	CU_ASSERT_STRING_EQUAL(v[0].tty, want);
	snprintf(want, sizeof want, "%s/serial/by-id/usb-MicroPython_Board_in_FS_mode_E6614103E7425C2F-if00", f.dev);
	CU_ASSERT_STRING_EQUAL(v[0].by_id, want);
	snprintf(want, sizeof want, "%s/ttyUSB0", f.dev);
	CU_ASSERT_STRING_EQUAL(v[1].tty, want);
	CU_ASSERT_STRING_EQUAL(v[1].serial, "A50285BI");
	CU_ASSERT_STRING_EQUAL(v[1].by_id, "");
	CU_ASSERT_STRING_EQUAL(v[2].tty, "");
	CU_ASSERT_EQUAL(v[2].pid, 0x0003);
	free(v);
	usbfake_free(&f);
}

static void test_bounded_and_sanitized(void)
{
	struct usbfake f;
	CU_ASSERT_FATAL(usbfake_init(&f) == 0);
	char big[10000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	big[3] = '\x1b'; /* an escape sequence from a device string */
	usbfake_device(&f, "2-1", "f055", "9800", big, big, "00", 3);
	/* A vendor id that is not hex: not a device mpfarm can name. */
	usbfake_device(&f, "2-2", "zzzz", "0001", NULL, NULL, "00", 4);
	struct farm_usbdev *v = NULL;
	size_t n = 0;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(farm_usbdev_list_at(f.sys, f.dev, &v, &n, &e), 0);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_EQUAL(strlen(v[0].serial), sizeof v[0].serial - 1);
	CU_ASSERT_EQUAL(strlen(v[0].product), sizeof v[0].product - 1);
	CU_ASSERT_EQUAL(v[0].product[3], '?');
	free(v);
	usbfake_free(&f);
}

static void test_no_usb_bus(void)
{
	struct farm_usbdev *v = (struct farm_usbdev *)1;
	size_t n = 5;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(farm_usbdev_list_at("/nonexistent-mpfarm", "/nonexistent-mpfarm", &v, &n, &e), 0);
	CU_ASSERT_EQUAL(n, 0);
	free(v);
}

static void test_matches(void)
{
	struct farm_usbdev d = { .location = "1-1.2", .vid = 0x2e8a, .pid = 5, .serial = "ABC",
				 .tty = "/dev/ttyACM0" };
	struct farm_usbdev_match m = { .vid = 0x2e8a };
	CU_ASSERT_TRUE(farm_usbdev_matches(&d, &m));
	m.pid = 3;
	CU_ASSERT_FALSE(farm_usbdev_matches(&d, &m));
	m.pid = 5;
	m.serial = "ABC";
	m.location = "1-1.2";
	m.need_tty = 1;
	CU_ASSERT_TRUE(farm_usbdev_matches(&d, &m));
	m.location = "1-1.3";
	CU_ASSERT_FALSE(farm_usbdev_matches(&d, &m));
	struct farm_usbdev_match by_serial = { .serial = "ABD" };
	CU_ASSERT_FALSE(farm_usbdev_matches(&d, &by_serial));
	d.tty[0] = '\0';
	struct farm_usbdev_match tty = { .vid = 0x2e8a, .need_tty = 1 };
	CU_ASSERT_FALSE(farm_usbdev_matches(&d, &tty));
}

static void test_wait(void)
{
	struct usbfake f;
	make_tree(&f);
	struct farm_usbdev d;
	struct farm_err e = { 0 };
	/* Present: found, after staying 120 ms. */
	struct farm_usbdev_match boot = { .vid = 0x2e8a, .pid = 0x0003, .location = "1-3" };
	CU_ASSERT_EQUAL(farm_usbdev_wait_at(f.sys, f.dev, &d, &boot, 5000, 120, 20, NULL, &e), 0);
	CU_ASSERT_STRING_EQUAL(d.serial, "E0C9125B0D9B");
	/* Absent: a timeout that says what is at the location instead. */
	struct farm_usbdev_match other = { .vid = 0x2e8a, .pid = 0x0003, .location = "1-1.2" };
	CU_ASSERT_EQUAL(farm_usbdev_wait_at(f.sys, f.dev, &d, &other, 200, 0, 20, NULL, &e), FARM_ETIMEDOUT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "2e8a:0003 at 1-1.2"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "seen: 2e8a:0005 at 1-1.2"));
	/* Several match: the timeout names the candidates. */
	struct farm_usbdev_match any = { .vid = 0x2e8a };
	CU_ASSERT_EQUAL(farm_usbdev_wait_at(f.sys, f.dev, &d, &any, 100, 0, 20, NULL, &e), FARM_ETIMEDOUT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "1-1.2"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "1-3"));
	/* Cancel. */
	volatile sig_atomic_t cancel = 1;
	CU_ASSERT_EQUAL(farm_usbdev_wait_at(f.sys, f.dev, &d, &other, 60000, 0, 20, &cancel, &e), FARM_EINTR);
	/* Nothing to match on. */
	struct farm_usbdev_match none = { .need_tty = 1 };
	CU_ASSERT_EQUAL(farm_usbdev_wait_at(f.sys, f.dev, &d, &none, 100, 0, 20, NULL, &e), FARM_EINVAL);
	/* Gone before the settle time ends: not taken. */
	usbfake_unplug(&f, "1-3");
	CU_ASSERT_EQUAL(farm_usbdev_wait_at(f.sys, f.dev, &d, &boot, 100, 0, 20, NULL, &e), FARM_ETIMEDOUT);
	usbfake_free(&f);
}

static void test_describe(void)
{
	struct farm_usbdev d = { .location = "1-4", .vid = 0x303a, .pid = 0x1001, .serial = "F4:12",
				 .tty = "/dev/ttyACM3" };
	char s[300];
	farm_usbdev_describe(&d, s, sizeof s);
	CU_ASSERT_STRING_EQUAL(s, "303a:1001 at 1-4 serial F4:12 (/dev/ttyACM3)");
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("usbdev", NULL, NULL);
	if (!s)
		return -1;
	CU_add_test(s, "list: hubs skipped, tty layouts, by-id", test_list);
	CU_add_test(s, "attributes bounded and sanitized", test_bounded_and_sanitized);
	CU_add_test(s, "no USB bus", test_no_usb_bus);
	CU_add_test(s, "matches", test_matches);
	CU_add_test(s, "wait: settle, timeout message, cancel", test_wait);
	CU_add_test(s, "describe", test_describe);
	return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
