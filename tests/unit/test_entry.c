/* CUnit: bootloader entry (runners/entry*.c): method lists, the manual
 * method in CI, fallbacks in order with stand-in methods (a registry of the
 * test's own, run by the real entry_run_in), the wait for the bootloader on
 * a fake sysfs tree narrowed to the board's USB location, the probe method
 * and cancellation. */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <string.h>

#include "entry.h"
#include "usbfake.h"

struct rec {
	char log[4096];
	size_t len;
	int probe_calls, probe_halt;
};

static void rec_log(void *payload, const char *line)
{
	struct rec *r = payload;
	int w = snprintf(r->log + r->len, sizeof r->log - r->len, "%s\n", line);
	if (w > 0 && (size_t)w < sizeof r->log - r->len)
		r->len += (size_t)w;
}

static int fake_fail(const struct entry_ctx *ctx, const struct entry_want *want, struct entry_result *res,
		     struct farm_err *e)
{
	(void)want;
	(void)res;
	entry_log(ctx, "called fake-a");
	return farm_err_set(e, FARM_EIO, "fake-a broke");
}

static int fake_ok(const struct entry_ctx *ctx, const struct entry_want *want, struct entry_result *res,
		   struct farm_err *e)
{
	(void)want;
	(void)res;
	(void)e;
	entry_log(ctx, "called fake-b");
	return 0;
}

static const struct entry_ops fake_a = { .name = "fake-a", .summary = "fails", .enter = fake_fail };
static const struct entry_ops fake_b = { .name = "fake-b", .summary = "works", .enter = fake_ok };
static const struct entry_ops fake_c = { .name = "fake-c", .summary = "works", .enter = fake_ok };
static const struct entry_ops *const fakes[] = { &fake_a, &fake_b, &fake_c, NULL };

static void test_check_list(void)
{
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(entry_check_list("repl, touch1200", &e), 0);
	CU_ASSERT_EQUAL(entry_check_list("touch1200,repl,esp-reset,probe,manual,none", &e), 0);
	CU_ASSERT_EQUAL(entry_check_list("  none  ", &e), 0);
	CU_ASSERT_EQUAL(entry_check_list("", &e), FARM_EINVAL);
	CU_ASSERT_EQUAL(entry_check_list("repl,,touch1200", &e), FARM_EINVAL);
	CU_ASSERT_EQUAL(entry_check_list("repl,", &e), FARM_EINVAL);
	CU_ASSERT_EQUAL(entry_check_list("repl, tuch1200", &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "\"tuch1200\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "did you mean \"touch1200\""));
	CU_ASSERT_EQUAL(entry_check_list("repl, repl", &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "twice"));
	const struct entry_ops *out[ENTRY_MAX_METHODS];
	CU_ASSERT_EQUAL(entry_parse_list(fakes, "fake-c , fake-a", out, ENTRY_MAX_METHODS, &e), 2);
	CU_ASSERT_PTR_EQUAL(out[0], &fake_c);
	CU_ASSERT_PTR_EQUAL(out[1], &fake_a);
	CU_ASSERT_EQUAL(entry_parse_list(fakes, "fake-a,fake-b", out, 1, &e), FARM_ELIMIT);
}

static void test_registry(void)
{
	static const char *const names[] = { "touch1200", "repl", "esp-reset", "probe", "manual", "none" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		const struct entry_ops *o = entry_find(names[i]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(o);
		CU_ASSERT_STRING_EQUAL(o->name, names[i]);
		CU_ASSERT_PTR_NOT_NULL(o->summary);
		CU_ASSERT_PTR_NOT_NULL(o->enter);
	}
	CU_ASSERT_PTR_NULL(entry_find("touch"));
	size_t n = 0;
	for (const struct entry_ops *const *o = entry_all(); *o; o++)
		n++;
	CU_ASSERT_TRUE(n >= 6);
}

static struct farm_board pico_board(void)
{
	struct farm_board b;
	memset(&b, 0, sizeof b);
	b.id = "pico-7";
	b.port = "rp2";
	b.board = "RPI_PICO";
	b.serial.baud = 115200;
	b.serial.dtr = b.serial.rts = -1;
	farm_repl_cfg_default(&b.repl);
	return b;
}

/* Manual entry with nobody at a terminal fails at once, saying what a
 * person would press; a wait would hit the test's timeout instead. */
static void test_manual_in_ci(void)
{
	struct farm_board b = pico_board();
	struct rec r = { 0 };
	struct entry_ctx ctx = { .board = &b, .log = rec_log, .log_payload = &r, .timeout_ms = 600000 };
	struct entry_want want = { .usb = { .vid = 0x2e8a, .pid = 0x0003 } };
	struct entry_result res;
	struct farm_err e = { 0 };
	long long t0 = farm_now_ms();
	CU_ASSERT_EQUAL(entry_run("manual", &ctx, &want, &res, &e), FARM_EUNSUPPORTED);
	CU_ASSERT_TRUE(farm_now_ms() - t0 < 60000); /* did not wait for the deadline */
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "board pico-7"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "BOOTSEL"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "CI"));
}

/* Methods run in list order; the first failure is logged, the second works
 * (the bootloader on the same port: /dev/null stands for a port that
 * stays); the third is never called. */
static void test_fallback_order(void)
{
	struct farm_board b = pico_board();
	struct rec r = { 0 };
	struct entry_ctx ctx = { .board = &b, .port_path = "/dev/null", .log = rec_log, .log_payload = &r,
				 .timeout_ms = 2000 };
	struct entry_want want = { .same_port = 1 };
	struct entry_result res;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(entry_run_in(fakes, "fake-a, fake-b, fake-c", &ctx, &want, &res, &e), 0);
	CU_ASSERT_STRING_EQUAL(res.method, "fake-b");
	CU_ASSERT_STRING_EQUAL(res.port, "/dev/null");
	CU_ASSERT_PTR_NULL(res.t);
	const char *a = strstr(r.log, "called fake-a"), *fa = strstr(r.log, "fake-a failed: fake-a broke");
	const char *bb = strstr(r.log, "called fake-b");
	CU_ASSERT_TRUE(a && fa && bb && a < fa && fa < bb);
	CU_ASSERT_PTR_NULL(strstr(r.log, "called fake-c"));
}

/* Every method fails: the error names the board and what each did. */
static void test_all_fail(void)
{
	struct farm_board b = pico_board();
	struct rec r = { 0 };
	struct entry_ctx ctx = { .board = &b, .port_path = "/nonexistent/ttyACM9", .log = rec_log,
				 .log_payload = &r, .timeout_ms = 150 };
	struct entry_want want = { .same_port = 1 };
	struct entry_result res;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(entry_run_in(fakes, "fake-a,fake-b", &ctx, &want, &res, &e), FARM_ETIMEDOUT);
	const char *p1 = strstr(e.msg, "fake-a: fake-a broke");
	const char *p2 = strstr(e.msg, "fake-b: after the trigger: /nonexistent/ttyACM9 did not come back");
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "board pico-7"));
	CU_ASSERT_TRUE(p1 && p2 && p1 < p2);
	/* No port at all for the real port methods: each says so. */
	ctx.port_path = NULL;
	CU_ASSERT_EQUAL(entry_run("touch1200, repl, esp-reset", &ctx, &want, &res, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "touch1200: board pico-7 has no serial port"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "esp-reset: board pico-7 has no serial port"));
	/* An unknown method is an input error before anything runs. */
	CU_ASSERT_EQUAL(entry_run("repl, jump", &ctx, &want, &res, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "flash.entry"));
}

/* The wanted bootloader is looked for at the board's USB location: another
 * board's bootloader elsewhere on the bus is not taken. */
static void test_wait_at_location(void)
{
	struct usbfake f;
	CU_ASSERT_FATAL(usbfake_init(&f) == 0);
	usbfake_device(&f, "1-2", "2e8a\n", "0003\n", "AAAA\n", "RP2 Boot\n", "00\n", 4);
	usbfake_device(&f, "1-4", "2e8a\n", "0003\n", "BBBB\n", "RP2 Boot\n", "00\n", 6);
	struct farm_board b = pico_board();
	struct farm_usbdev before = { .location = "1-4", .vid = 0x2e8a, .pid = 0x0005 };
	struct rec r = { 0 };
	struct entry_ctx ctx = { .board = &b, .dev = &before, .log = rec_log, .log_payload = &r,
				 .timeout_ms = 3000, .sys_root = f.sys, .dev_root = f.dev };
	struct entry_want want = { .usb = { .vid = 0x2e8a, .pid = 0x0003 }, .settle_ms = 50 };
	struct entry_result res;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(entry_run("none", &ctx, &want, &res, &e), 0);
	CU_ASSERT_STRING_EQUAL(res.method, "none");
	CU_ASSERT_STRING_EQUAL(res.dev.location, "1-4");
	CU_ASSERT_STRING_EQUAL(res.dev.serial, "BBBB");
	CU_ASSERT_STRING_EQUAL(res.port, "");
	CU_ASSERT_PTR_NOT_NULL(strstr(r.log, "bootloader appeared: 2e8a:0003 at 1-4"));
	/* The inventory's location when the device before entry is unknown. */
	ctx.dev = NULL;
	b.serial.location = "1-2";
	CU_ASSERT_EQUAL_FATAL(entry_run("none", &ctx, &want, &res, &e), 0);
	CU_ASSERT_STRING_EQUAL(res.dev.serial, "AAAA");
	/* Nothing at the location: a timeout saying what was there. */
	b.serial.location = "1-7";
	ctx.timeout_ms = 200;
	CU_ASSERT_EQUAL(entry_run("none", &ctx, &want, &res, &e), FARM_ETIMEDOUT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "none: after the trigger: no 2e8a:0003 at 1-7"));
	usbfake_free(&f);
}

static int fake_probe_reset(void *payload, int halt, struct farm_err *e)
{
	(void)e;
	struct rec *r = payload;
	r->probe_calls++;
	r->probe_halt = halt;
	return 0;
}

static void test_probe(void)
{
	struct farm_board b = pico_board();
	struct rec r = { 0 };
	struct entry_ctx ctx = { .board = &b, .port_path = "/dev/null", .log = rec_log, .log_payload = &r,
				 .timeout_ms = 1000 };
	struct entry_want want = { .same_port = 1 };
	struct entry_result res;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(entry_run("probe", &ctx, &want, &res, &e), FARM_EUNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "no debug probe reset"));
	ctx.probe_reset = fake_probe_reset;
	ctx.probe_payload = &r;
	CU_ASSERT_EQUAL(entry_run("probe", &ctx, &want, &res, &e), 0);
	CU_ASSERT_EQUAL(r.probe_calls, 1);
	CU_ASSERT_EQUAL(r.probe_halt, 0);
	CU_ASSERT_STRING_EQUAL(res.method, "probe");
}

static void test_cancel(void)
{
	struct farm_board b = pico_board();
	volatile sig_atomic_t cancel = 1;
	struct entry_ctx ctx = { .board = &b, .port_path = "/dev/null", .cancel = &cancel, .timeout_ms = 60000 };
	struct entry_want want = { .same_port = 1 };
	struct entry_result res;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(entry_run_in(fakes, "fake-a,fake-b", &ctx, &want, &res, &e), FARM_EINTR);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "interrupted"));
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("entry", NULL, NULL);
	if (!s)
		return -1;
	CU_add_test(s, "method lists", test_check_list);
	CU_add_test(s, "registry", test_registry);
	CU_add_test(s, "manual in CI fails at once", test_manual_in_ci);
	CU_add_test(s, "fallbacks in order", test_fallback_order);
	CU_add_test(s, "every method fails: what each did", test_all_fail);
	CU_add_test(s, "wait at the board's USB location", test_wait_at_location);
	CU_add_test(s, "probe reset", test_probe);
	CU_add_test(s, "cancel", test_cancel);
	return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
