/* Benchmark: boot-to-REPL time of an emulated micro:bit (QEMU start to the
 * raw REPL prompt), and the median round trip of 50 `print(1)` execs in one
 * raw-REPL session. Prints figures only. Exit 77 if QEMU or the firmware is missing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "session.h"

#define BOOTS 5
#define EXECS 50

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int have_qemu(void)
{
	const char *path = getenv("PATH");
	if (!path || access(FARM_MICROBIT_FIRMWARE, R_OK) != 0)
		return 0;
	char dir[4096];
	while (*path) {
		size_t n = strcspn(path, ":");
		snprintf(dir, sizeof dir, "%.*s/qemu-system-arm", (int)n, path);
		if (access(dir, X_OK) == 0)
			return 1;
		path += n + (path[n] == ':');
	}
	return 0;
}

int main(void)
{
	if (!have_qemu()) {
		printf("SKIP: qemu-system-arm or firmware-microbit-micropython not installed\n");
		return 77;
	}
	struct farm_board b = { 0 };
	b.id = "bench";
	b.port = "nrf";
	b.board = "microbit";
	b.emulator.present = 1;
	farm_repl_cfg_default(&b.repl);
	struct farm_err e = { 0 };
	double boot[BOOTS], rt[EXECS];
	struct farm_session *s = NULL;
	for (int i = 0; i < BOOTS; i++) {
		long long t0 = farm_now_ms();
		if (farm_session_open(&s, &b, NULL, &e)) {
			fprintf(stderr, "repl_roundtrip: %s\n", e.msg);
			return 1;
		}
		boot[i] = (double)(farm_now_ms() - t0);
		if (i + 1 < BOOTS) {
			farm_session_close(s);
			s = NULL;
		}
	}
	struct farm_repl_result r = { 0 };
	for (int i = 0; i < EXECS; i++) {
		struct timespec a, z;
		clock_gettime(CLOCK_MONOTONIC, &a);
		int rc = farm_repl_exec(s->repl, "print(1)", 8, 5000, &r, &e);
		clock_gettime(CLOCK_MONOTONIC, &z);
		if (rc || r.out.len != 3 || memcmp(r.out.data, "1\r\n", 3)) {
			fprintf(stderr, "repl_roundtrip: exec %d failed: %s\n", i, rc ? e.msg : "wrong output");
			farm_repl_result_free(&r);
			farm_session_close(s);
			return 1;
		}
		rt[i] = (double)(z.tv_sec - a.tv_sec) * 1e3 + (double)(z.tv_nsec - a.tv_nsec) / 1e6;
	}
	farm_repl_result_free(&r);
	farm_session_close(s);
	double mn = rt[0];
	for (int i = 1; i < EXECS; i++)
		if (rt[i] < mn)
			mn = rt[i];
	printf("boot-to-REPL (qemu start to raw prompt), median of %d: %.1f ms\n", BOOTS,
	       median(boot, BOOTS));
	printf("print(1) round trip in one raw-REPL session, median of %d: %.3f ms (min %.3f ms)\n",
	       EXECS, median(rt, EXECS), mn);
	return 0;
}
