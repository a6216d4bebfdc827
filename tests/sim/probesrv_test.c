/* probesrv_test: drives farm/probesrv.c for tests/sim/test_probesrv.sh.
 *
 * Builds a probe in memory, starts its GDB server through farm_probesrv_connect
 * (fake servers stand in for OpenOCD and pyOCD), and over each connection reads
 * the memory map, writes and reads back RAM, and erases, programs and reads
 * back one flash block, through farm/rsp.c.
 *
 * usage: probesrv_test --kind openocd|pyocd [--id ID] [--interface V] [--target V]
 *          [--config V] [--serial V] [--speed KHZ] [--gdb-port N] [--server PROG]
 *          [--log FILE|""] [--timeout MS] [--connects N] [--argv-only] [--pid-file FILE]
 *          [--hold]
 *   stdout: "arg: X" for each argv element after argv[0] (before the first
 *   connect), "connect K: ..." per connection, "pid: N" (pyOCD), "done".
 *   --pid-file: the fake server writes its pid there; after each connection is
 *   closed (OpenOCD) or after farm_probesrv_free (pyOCD) that process must be
 *   gone, checked while this program (its parent) is still alive.
 *   --hold: after the first connection, print "held" and sleep (to be killed).
 *   A descriptor without close-on-exec is left open as fd 37: the server must
 *   not inherit it. Exit 0 on success, 1 with "error: MSG" on stderr. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probesrv.h"
#include "rsp.h"

static pid_t read_pid(const char *path)
{
	FILE *f = path ? fopen(path, "r") : NULL;
	long pid = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return (pid_t)pid;
}

/* The process is gone (not even a zombie of ours). */
static int gone(pid_t pid)
{
	for (int i = 0; i < 100; i++) {
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return 1;
		usleep(20000);
	}
	return 0;
}

static int exercise(struct farm_rsp *r, int k, struct farm_err *e)
{
	const struct farm_rsp_info *info = farm_rsp_info(r);
	const struct farm_rsp_region *ram = NULL, *flash = NULL;
	printf("connect %d: %zu regions", k, info->n_regions);
	for (size_t i = 0; i < info->n_regions; i++) {
		const struct farm_rsp_region *g = &info->regions[i];
		printf(" %s@0x%x+0x%x", g->is_flash ? "flash" : g->is_ram ? "ram" : "rom",
		       (unsigned)g->start, (unsigned)g->length);
		if (g->is_ram && !ram)
			ram = g;
		if (g->is_flash && !flash)
			flash = g;
	}
	printf("\n");
	if (!ram || !flash)
		return farm_err_set(e, FARM_EPROTO, "the memory map lacks RAM or flash");
	unsigned char out[64], back[64];
	for (size_t i = 0; i < sizeof out; i++)
		out[i] = (unsigned char)(i * 7 + (unsigned)k * 31 + '#');
	int rc = farm_rsp_write_mem(r, ram->start, out, sizeof out, NULL, NULL, e);
	if (!rc)
		rc = farm_rsp_read_mem(r, ram->start, back, sizeof back, NULL, NULL, e);
	if (rc)
		return rc;
	if (memcmp(out, back, sizeof out))
		return farm_err_set(e, FARM_EPROTO, "RAM read back differs");
	uint32_t blk = flash->start + (uint32_t)k * flash->blocksize;
	if ((rc = farm_rsp_flash_erase(r, blk, flash->blocksize, e)) ||
	    (rc = farm_rsp_flash_write(r, blk, out, sizeof out, NULL, NULL, e)) ||
	    (rc = farm_rsp_flash_done(r, 10000, e)) ||
	    (rc = farm_rsp_read_mem(r, blk, back, sizeof back, NULL, NULL, e)))
		return rc;
	if (memcmp(out, back, sizeof out))
		return farm_err_set(e, FARM_EPROTO, "flash read back differs");
	printf("connect %d: ram and flash at 0x%x ok\n", k, (unsigned)blk);
	return 0;
}

int main(int argc, char **argv)
{
	struct farm_kv kv[8];
	struct farm_probe p = { .id = "probe-1" };
	const char *log = NULL, *pid_file = NULL;
	int timeout = 10000, connects = 1, argv_only = 0, hold = 0;
	size_t n = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		static const char *const keys[][2] = {
			{ "--interface", "interface" }, { "--target", "target" },   { "--config", "config" },
			{ "--speed", "speed_khz" },     { "--gdb-port", "gdb_port" }, { "--server", "server" },
		};
		if (!strcmp(a, "--argv-only")) {
			argv_only = 1;
			continue;
		}
		if (!strcmp(a, "--hold")) {
			hold = 1;
			continue;
		}
		if (!v) {
			fprintf(stderr, "probesrv_test: %s needs a value\n", a);
			return 2;
		}
		i++;
		int known = 0;
		for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
			if (!strcmp(a, keys[k][0]) && n < 8) {
				kv[n++] = (struct farm_kv){ .key = (char *)keys[k][1], .value = (char *)v };
				known = 1;
			}
		if (known)
			continue;
		if (!strcmp(a, "--kind"))
			p.kind = (char *)v;
		else if (!strcmp(a, "--id"))
			p.id = (char *)v;
		else if (!strcmp(a, "--serial"))
			p.serial_number = (char *)v;
		else if (!strcmp(a, "--log"))
			log = v[0] ? v : NULL; /* "": no server log */
		else if (!strcmp(a, "--pid-file"))
			pid_file = v;
		else if (!strcmp(a, "--timeout"))
			timeout = (int)strtol(v, NULL, 10);
		else if (!strcmp(a, "--connects"))
			connects = (int)strtol(v, NULL, 10);
		else {
			fprintf(stderr, "probesrv_test: unknown option %s\n", a);
			return 2;
		}
	}
	p.opts = kv;
	p.n_opts = n;
	signal(SIGPIPE, SIG_IGN); /* as mpfarm's main does */

	/* A descriptor a careless spawn would leak into the server. */
	int canary = open("/dev/null", O_RDONLY);
	if (canary < 0 || dup2(canary, 37) < 0)
		return 2;
	close(canary);

	struct farm_err e = { 0 };
	struct farm_probesrv *s = NULL;
	int rc = farm_probesrv_new(&s, &p, log, NULL, &e);
	if (rc)
		goto out;
	const char *const *av = farm_probesrv_argv(s);
	for (size_t i = 1; av[i]; i++)
		printf("arg: %s\n", av[i]);
	fflush(stdout);
	if (argv_only)
		goto out;
	for (int k = 0; k < connects && !rc; k++) {
		struct farm_transport *t = NULL;
		struct farm_rsp *r = NULL;
		if ((rc = farm_probesrv_connect(s, &t, timeout, &e)))
			break;
		printf("connect %d: %s\n", k, t->url);
		if ((rc = farm_rsp_open(&r, t, 5000, NULL, &e)))
			break;
		rc = exercise(r, k, &e);
		if (!rc && hold) {
			printf("held\n");
			fflush(stdout);
			for (;;)
				pause();
		}
		farm_rsp_close(r);
		fflush(stdout);
		if (!rc && strcmp(p.kind, "openocd") == 0 && pid_file) {
			pid_t pid = read_pid(pid_file);
			if (pid <= 0 || !gone(pid))
				rc = farm_err_set(&e, FARM_EIO, "openocd stand-in %d is still running after close",
						  (int)pid);
			unlink(pid_file);
		}
	}
	if (!rc && strcmp(p.kind, "pyocd") == 0) {
		printf("pid: %d\n", (int)farm_probesrv_pid(s));
		printf("argv after start:");
		for (size_t i = 1; av[i]; i++)
			printf(" %s", av[i]);
		printf("\n");
	}
out:;
	pid_t server = farm_probesrv_pid(s);
	farm_probesrv_free(s);
	if (server > 0 && !gone(server) && !rc)
		rc = farm_err_set(&e, FARM_EIO, "pyocd stand-in %d is still running after free", (int)server);
	if (!rc && pid_file && strcmp(p.kind ? p.kind : "", "pyocd") == 0) {
		pid_t pid = read_pid(pid_file);
		if (pid > 0 && !gone(pid))
			rc = farm_err_set(&e, FARM_EIO, "pyocd stand-in %d is still running after free",
					  (int)pid);
	}
	if (rc) {
		fprintf(stderr, "error: %s\n", e.msg);
		return 1;
	}
	printf("done\n");
	return 0;
}
