/* Tests for farm/probesrv.c: the argv mpfarm gives OpenOCD and pyOCD (pure:
 * farm_probesrv_new + farm_probesrv_argv), the options it refuses, the
 * program lookup error, and the child-process helpers (exit detection, stop
 * with SIGTERM then SIGKILL, stragglers of the group, log quoting). Servers
 * that really run are tests/sim/test_probesrv.sh. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probesrv.h"

/* ---- helpers ---- */

struct probe_spec {
	const char *kind, *connection, *serial;
	const char *kv[16]; /* key, value, ..., NULL */
};

static struct farm_kv kvs[8];

static struct farm_probe make_probe(const struct probe_spec *ps)
{
	struct farm_probe p = { .id = "jlink-1", .kind = (char *)ps->kind,
				.connection = (char *)ps->connection,
				.serial_number = (char *)ps->serial };
	size_t n = 0;
	for (size_t i = 0; ps->kv[i] && n < 8; i += 2)
		kvs[n++] = (struct farm_kv){ .key = (char *)ps->kv[i], .value = (char *)ps->kv[i + 1] };
	p.opts = kvs;
	p.n_opts = n;
	return p;
}

/* argv after argv[0], space-joined with each element in [brackets]. */
static void joined(const struct farm_probesrv *s, char *out, size_t len)
{
	const char *const *av = farm_probesrv_argv(s);
	size_t k = 0;
	out[0] = '\0';
	for (size_t i = 0; av[i] && k < len; i++)
		k += (size_t)snprintf(out + k, len - k, i ? " [%s]" : "%s", av[i]);
}

/* Build and compare; want NULL = must be refused with a message holding err. */
static void check(const struct probe_spec *ps, const char *want, const char *err)
{
	struct farm_probe p = make_probe(ps);
	struct farm_probesrv *s = NULL;
	struct farm_err e = { 0 };
	int rc = farm_probesrv_new(&s, &p, NULL, NULL, &e);
	if (want) {
		CU_ASSERT_EQUAL_FATAL(rc, 0);
		char got[2048];
		joined(s, got, sizeof got);
		if (strcmp(got, want))
			fprintf(stderr, "\n got: %s\nwant: %s\n", got, want);
		CU_ASSERT_STRING_EQUAL(got, want);
	} else {
		CU_ASSERT_EQUAL(rc, FARM_EINVAL);
		CU_ASSERT_PTR_NULL(s);
		if (!strstr(e.msg, err))
			fprintf(stderr, "\nmessage: %s\n   want: %s\n", e.msg, err);
		CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, err));
		CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "probe jlink-1: "));
	}
	farm_probesrv_free(s);
}

#define OO_HEAD "openocd [-c] [gdb_port pipe] [-c] [tcl_port disabled] [-c] [telnet_port disabled]"
#define PY_HEAD "pyocd [gdbserver] [--port] [PORT] [--no-wait] [--persist] [-O] [semihost_console_type=console]"

/* ---- tests ---- */

static void test_needed(void)
{
	struct probe_spec a = { .kind = "openocd" }, b = { .kind = "pyocd" },
			  c = { .kind = "openocd", .connection = "tcp://127.0.0.1:3333" },
			  d = { .kind = "blackmagic" }, f = { .kind = "gdb-remote" },
			  g = { .kind = "pyocd", .connection = "" };
	struct farm_probe p;
	p = make_probe(&a);
	CU_ASSERT_TRUE(farm_probesrv_needed(&p));
	p = make_probe(&b);
	CU_ASSERT_TRUE(farm_probesrv_needed(&p));
	p = make_probe(&c);
	CU_ASSERT_FALSE(farm_probesrv_needed(&p));
	p = make_probe(&d);
	CU_ASSERT_FALSE(farm_probesrv_needed(&p));
	p = make_probe(&f);
	CU_ASSERT_FALSE(farm_probesrv_needed(&p));
	p = make_probe(&g);
	CU_ASSERT_TRUE(farm_probesrv_needed(&p));
	CU_ASSERT_FALSE(farm_probesrv_needed(NULL));
	check(&c, NULL, "only for probes of kind openocd or pyocd without connection:");
	check(&d, NULL, "only for probes of kind openocd or pyocd");
}

static void test_openocd_argv(void)
{
	struct probe_spec names = { .kind = "openocd", .serial = "066DFF485550755187121723",
				    .kv = { "interface", "stlink", "target", "stm32f4x", "speed_khz", "4000" } };
	check(&names,
	      OO_HEAD " [-f] [interface/stlink.cfg] [-f] [target/stm32f4x.cfg]"
		      " [-c] [adapter serial 066DFF485550755187121723] [-c] [adapter speed 4000]",
	      NULL);
	struct probe_spec paths = { .kind = "openocd",
				    .kv = { "interface", "interface/ftdi/olimex-arm-usb-ocd-h.cfg", "target",
					    "/lab/my targets/nrf51.cfg" } };
	check(&paths,
	      OO_HEAD " [-f] [interface/ftdi/olimex-arm-usb-ocd-h.cfg] [-f] [/lab/my targets/nrf51.cfg]",
	      NULL);
	struct probe_spec cfgname = { .kind = "openocd", .kv = { "interface", "jlink.cfg", "target", "nrf52" } };
	check(&cfgname, OO_HEAD " [-f] [jlink.cfg] [-f] [target/nrf52.cfg]", NULL);
	struct probe_spec config = { .kind = "openocd", .kv = { "config", "board/st_nucleo_f4.cfg" } };
	check(&config, OO_HEAD " [-f] [board/st_nucleo_f4.cfg]", NULL);
	struct probe_spec all = { .kind = "openocd", .serial = "E6614103E7",
				  .kv = { "interface", "cmsis-dap", "target", "rp2040", "config", "lab.cfg",
					  "speed_khz", "1000", "server", "/opt/ocd/bin/openocd" } };
	check(&all,
	      "/opt/ocd/bin/openocd [-c] [gdb_port pipe] [-c] [tcl_port disabled] [-c] [telnet_port disabled]"
	      " [-f] [interface/cmsis-dap.cfg] [-f] [target/rp2040.cfg] [-f] [lab.cfg]"
	      " [-c] [adapter serial E6614103E7] [-c] [adapter speed 1000]",
	      NULL);
}

static void test_openocd_refused(void)
{
	struct probe_spec none = { .kind = "openocd" };
	check(&none, NULL, "OpenOCD needs interface: and target:");
	struct probe_spec half = { .kind = "openocd", .kv = { "interface", "stlink" } };
	check(&half, NULL, "OpenOCD needs interface: and target:");
	struct probe_spec port = { .kind = "openocd", .kv = { "config", "a.cfg", "gdb_port", "3333" } };
	check(&port, NULL, "gdb_port: has no use here");
	struct probe_spec brace = { .kind = "openocd", .kv = { "config", "a}; shutdown; {.cfg" } };
	check(&brace, NULL, "contains '}', which OpenOCD would read as Tcl");
	struct probe_spec bslash = { .kind = "openocd", .kv = { "interface", "a\\b", "target", "t" } };
	check(&bslash, NULL, "contains '\\'");
	struct probe_spec ctl = { .kind = "openocd", .kv = { "config", "a\nb.cfg" } };
	check(&ctl, NULL, "config: contains a control character");
	struct probe_spec dash = { .kind = "openocd", .kv = { "config", "-c shutdown" } };
	check(&dash, NULL, "starts with '-'");
	struct probe_spec serial = { .kind = "openocd", .serial = "ab [exec rm]", .kv = { "config", "a.cfg" } };
	check(&serial, NULL, "has characters mpfarm does not pass to OpenOCD");
	struct probe_spec dollar = { .kind = "openocd", .serial = "$x", .kv = { "config", "a.cfg" } };
	check(&dollar, NULL, "serial_number:");
	struct probe_spec speed = { .kind = "openocd", .kv = { "config", "a.cfg", "speed_khz", "4k" } };
	check(&speed, NULL, "speed_khz:");
	struct probe_spec empty = { .kind = "openocd", .kv = { "config", "" } };
	check(&empty, NULL, "config: is empty");
}

static void test_pyocd_argv(void)
{
	struct probe_spec plain = { .kind = "pyocd" };
	check(&plain, PY_HEAD, NULL);
	struct probe_spec all = { .kind = "pyocd", .serial = "0240000034544e45001b00038b5b000a",
				  .kv = { "target", "nrf51", "speed_khz", "4000", "config", "pyocd.yaml" } };
	check(&all,
	      PY_HEAD " [--uid] [0240000034544e45001b00038b5b000a] [--target] [nrf51]"
		      " [--frequency] [4000000] [--config] [pyocd.yaml]",
	      NULL);
	struct probe_spec port = { .kind = "pyocd", .kv = { "gdb_port", "3334", "server", "pyocd-0.36" } };
	check(&port,
	      "pyocd-0.36 [gdbserver] [--port] [3334] [--no-wait] [--persist] [-O] "
	      "[semihost_console_type=console]",
	      NULL);
}

static void test_pyocd_refused(void)
{
	struct probe_spec iface = { .kind = "pyocd", .kv = { "interface", "stlink" } };
	check(&iface, NULL, "interface: is an OpenOCD setting");
	struct probe_spec dash = { .kind = "pyocd", .serial = "--allow-remote" };
	check(&dash, NULL, "would be read as an option by pyocd");
	struct probe_spec port = { .kind = "pyocd", .kv = { "gdb_port", "0" } };
	check(&port, NULL, "gdb_port: \"0\" is not a TCP port");
	struct probe_spec port2 = { .kind = "pyocd", .kv = { "gdb_port", "70000" } };
	check(&port2, NULL, "is not a TCP port");
	struct probe_spec ctl = { .kind = "pyocd", .kv = { "target", "nrf\t51" } };
	check(&ctl, NULL, "target: contains a control character");
	struct probe_spec server = { .kind = "pyocd", .kv = { "server", "-x" } };
	check(&server, NULL, "server:");
}

static void test_program_not_found(void)
{
	struct probe_spec ps = { .kind = "openocd", .kv = { "config", "a.cfg" } };
	struct farm_probe p = make_probe(&ps);
	struct farm_probesrv *s = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(farm_probesrv_new(&s, &p, NULL, NULL, &e), 0);
	char *old = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
	setenv("PATH", "/nonexistent-mpfarm-dir", 1);
	struct farm_transport *t = NULL;
	int rc = farm_probesrv_connect(s, &t, 1000, &e);
	if (old) {
		setenv("PATH", old, 1);
		free(old);
	}
	CU_ASSERT_EQUAL(rc, FARM_ENOTFOUND);
	CU_ASSERT_PTR_NULL(t);
	CU_ASSERT_STRING_EQUAL(e.msg, "probe jlink-1: openocd not found on PATH (install openocd or set "
				      "server: in the probe entry)");
	farm_probesrv_free(s);
}

static void test_cancelled(void)
{
	struct probe_spec ps = { .kind = "pyocd" };
	struct farm_probe p = make_probe(&ps);
	volatile sig_atomic_t stop = 1;
	struct farm_probesrv *s = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(farm_probesrv_new(&s, &p, NULL, &stop, &e), 0);
	struct farm_transport *t = NULL;
	CU_ASSERT_EQUAL(farm_probesrv_connect(s, &t, 1000, &e), FARM_EINTR);
	CU_ASSERT_EQUAL(farm_probesrv_pid(s), 0);
	farm_probesrv_free(s);
}

/* A child leading its own process group, like a server. */
static pid_t fork_child(int exit_code, int ignore_term, int with_straggler, int *straggler_fd)
{
	int fds[2];
	if (pipe(fds) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		close(fds[0]);
		if (with_straggler && fork() == 0) { /* a grandchild in the same group */
			char b = 'x';
			if (write(fds[1], &b, 1) < 0)
				_exit(1);
			for (;;)
				pause();
		}
		if (ignore_term)
			signal(SIGTERM, SIG_IGN);
		if (exit_code >= 0)
			_exit(exit_code);
		for (;;)
			pause();
	}
	setpgid(pid, pid);
	close(fds[1]);
	if (straggler_fd)
		*straggler_fd = fds[0];
	else
		close(fds[0]);
	return pid;
}

static void test_child_helpers(void)
{
	int status;
	/* exits by itself */
	pid_t pid = fork_child(3, 0, 0, NULL);
	CU_ASSERT_EQUAL(farm_probesrv_child_exited(pid, 2000, &status), 1);
	CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3);
	CU_ASSERT_EQUAL(farm_probesrv_child_exited(pid, 0, NULL), -1); /* reaped */
	/* still running: 0, then stopped with SIGTERM */
	pid = fork_child(-1, 0, 0, NULL);
	CU_ASSERT_EQUAL(farm_probesrv_child_exited(pid, 50, NULL), 0);
	CU_ASSERT_EQUAL(farm_probesrv_stop_child(pid, 0, 2000, &status), -1);
	CU_ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
	CU_ASSERT_TRUE(kill(pid, 0) < 0 && errno == ESRCH);
	/* ignores SIGTERM: SIGKILL after term_ms */
	pid = fork_child(-1, 1, 0, NULL);
	usleep(50000); /* let it ignore SIGTERM */
	CU_ASSERT_EQUAL(farm_probesrv_stop_child(pid, 0, 100, &status), -1);
	CU_ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* a straggler of the group goes too when the leader exits */
	int sfd = -1;
	pid = fork_child(0, 0, 1, &sfd);
	char b;
	CU_ASSERT_EQUAL(read(sfd, &b, 1), 1);
	CU_ASSERT_EQUAL(farm_probesrv_stop_child(pid, 2000, 100, &status), 0);
	CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* the grandchild held the pipe's write end: EOF means it is gone */
	CU_ASSERT_EQUAL(read(sfd, &b, 1), 0);
	close(sfd);
	CU_ASSERT_EQUAL(farm_probesrv_child_exited(0, 0, NULL), -1);
}

static void test_status_and_log(void)
{
	char out[300];
	farm_probesrv_describe_status(1 << 8, out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "exited with status 1");
	farm_probesrv_describe_status(SIGKILL, out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "was killed by signal 9 (KILL)");
	farm_probesrv_log_hint(NULL, 0, out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "no server log was kept");

	char path[] = "/tmp/mpfarm-test-probesrv-XXXXXX";
	int fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	const char first[] = "Open On-Chip Debugger 0.12.0\nInfo : old start\n";
	const char second[] = "Info : new start\nError: open failed\x1b[0m\r\n\n  \n";
	CU_ASSERT_EQUAL(write(fd, first, sizeof first - 1), (ssize_t)(sizeof first - 1));
	CU_ASSERT_EQUAL(write(fd, second, sizeof second - 1), (ssize_t)(sizeof second - 1));
	close(fd);
	char want[400];
	farm_probesrv_log_hint(path, (long long)(sizeof first - 1), out, sizeof out);
	snprintf(want, sizeof want, "see %s (last line: Error: open failed?[0m)", path);
	CU_ASSERT_STRING_EQUAL(out, want);
	/* nothing written since the offset */
	farm_probesrv_log_hint(path, (long long)(sizeof first + sizeof second - 2), out, sizeof out);
	snprintf(want, sizeof want, "see %s (the server wrote nothing)", path);
	CU_ASSERT_STRING_EQUAL(out, want);
	unlink(path);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("probesrv", NULL, NULL);
	if (!s)
		return -1;
	const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{ "which probes need a server", test_needed },
		{ "OpenOCD argv: names, paths, config, serial, speed", test_openocd_argv },
		{ "OpenOCD options refused", test_openocd_refused },
		{ "pyOCD argv", test_pyocd_argv },
		{ "pyOCD options refused", test_pyocd_refused },
		{ "program not on PATH", test_program_not_found },
		{ "cancelled before starting", test_cancelled },
		{ "child exit, stop, stragglers", test_child_helpers },
		{ "status text and log quoting", test_status_and_log },
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
