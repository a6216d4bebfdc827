/* Tests for farm/fetch.c: downloads against tests/tools/httpd.py (a real
 * HTTP/1.1 server on 127.0.0.1, spawned once for the suite) and file:// URLs.
 * Every network test asserts on the server's request log (requests made, Range
 * asked, status answered) and on the bytes at the destination, compared with
 * the served file and with a sha256 computed here; none asserts speed. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fetch.h"

extern char **environ;

#define FILE_SIZE 10000
#define LOG_LINE 512
#define SLOW_DELAY "3" /* seconds before each 64-byte piece of a /slow/ answer */

static char tmp_dir[256], root_dir[300], log_path[300], port_path[300];
static int http_port;
static pid_t server_pid = -1;
static unsigned char content[FILE_SIZE]; /* every served test file holds these bytes */
static char content_sha[65];

/* ---- helpers ---- */

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void sha_hex(const void *data, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	out[0] = '\0';
	if (EVP_Digest(data, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32)
		return;
	for (unsigned int i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	int rc = write(fd, data, n) == (ssize_t)n ? 0 : -1;
	if (close(fd) != 0)
		rc = -1;
	return rc;
}

/* Whole file into buf (at most cap bytes); its length, or -1. */
static long read_file(const char *path, void *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	long got = 0;
	for (;;) {
		ssize_t r = read(fd, (char *)buf + got, cap - (size_t)got);
		if (r <= 0)
			break;
		got += r;
		if ((size_t)got == cap)
			break;
	}
	close(fd);
	return got;
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static void path_in(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", tmp_dir, name);
}

/* The destination holds exactly the served content. */
static int dest_is_content(const char *path)
{
	static unsigned char buf[FILE_SIZE + 16];
	long n = read_file(path, buf, sizeof buf);
	return n == FILE_SIZE && memcmp(buf, content, FILE_SIZE) == 0;
}

/* Lines of the request log for exactly this path, "RANGE STATUS BYTES" each
 * (the part after METHOD PATH), into rest[]; returns how many there are. */
static int read_requests(const char *path, char rest[][LOG_LINE], int max)
{
	int n = 0;
	FILE *f = fopen(log_path, "r");
	char line[LOG_LINE];
	while (f && fgets(line, sizeof line, f)) {
		char method[16], p[256];
		int off = 0;
		if (sscanf(line, "%15s %255s %n", method, p, &off) < 2 || off <= 0 || strcmp(p, path) != 0)
			continue;
		if (n < max) {
			snprintf(rest[n], LOG_LINE, "%s", line + off);
			rest[n][strcspn(rest[n], "\n")] = '\0';
		}
		n++;
	}
	if (f)
		fclose(f);
	return n;
}

/* The server answered exactly these requests for path, in order: each want[i]
 * is "RANGE STATUS" or "RANGE STATUS BYTES" (NULL-terminated list). The server
 * logs an answer after sending it, so this waits (bounded) for the lines. */
static void expect_requests(const char *path, const char *const *want)
{
	int nwant = 0;
	while (want[nwant])
		nwant++;
	char rest[8][LOG_LINE];
	int n = 0;
	for (int tries = 0; tries < 100 && (n = read_requests(path, rest, 8)) < nwant; tries++)
		sleep_ms(50);
	sleep_ms(100); /* a request beyond the expected ones would be logged by now */
	n = read_requests(path, rest, 8);
	if (n != nwant)
		printf("\n    %s: %d requests, expected %d\n", path, n, nwant);
	CU_ASSERT_EQUAL(n, nwant);
	for (int i = 0; i < n && i < nwant && i < 8; i++) {
		size_t k = strlen(want[i]);
		int ok = strncmp(rest[i], want[i], k) == 0 && (rest[i][k] == ' ' || rest[i][k] == '\0');
		if (!ok)
			printf("\n    %s request %d: \"%s\", expected \"%s\"\n", path, i + 1, rest[i], want[i]);
		CU_ASSERT(ok);
	}
}

#define REQUESTS(path, ...) expect_requests(path, (const char *const[]){ __VA_ARGS__, NULL })
#define NO_REQUESTS(path) expect_requests(path, (const char *const[]){ NULL })

struct rec {
	uint64_t done, total;
	unsigned progress_calls;
	int cancel_on_progress;
	const char *cancel_on_log;
	volatile sig_atomic_t *flag;
	char last_log[640];
	unsigned log_lines;
	unsigned long delays[8]; /* from "retrying in N ms" lines */
	unsigned n_delays;
};

static void rec_progress(void *p, uint64_t done, uint64_t total)
{
	struct rec *r = p;
	r->done = done;
	r->total = total;
	r->progress_calls++;
	if (r->cancel_on_progress && r->flag)
		*r->flag = 1;
}

static void rec_log(void *p, const char *line)
{
	struct rec *r = p;
	snprintf(r->last_log, sizeof r->last_log, "%s", line);
	r->log_lines++;
	const char *d = strstr(line, "retrying in ");
	if (d && r->n_delays < 8)
		r->delays[r->n_delays++] = strtoul(d + 12, NULL, 10);
	if (r->cancel_on_log && r->flag && strstr(line, r->cancel_on_log))
		*r->flag = 1;
}

struct fx {
	char url[FARM_FETCH_URL_MAX], part[340], dest[320];
	struct farm_fetch_opts o;
	struct farm_fetch_result r;
	struct farm_err e;
	struct rec rec;
	volatile sig_atomic_t cancel;
};

/* A download of /URLPATH into NAME.part -> NAME, checked against the content. */
static void fx_init(struct fx *f, const char *urlpath, const char *name)
{
	memset(f, 0, sizeof *f);
	snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d%s", http_port, urlpath);
	path_in(f->dest, sizeof f->dest, name);
	snprintf(f->part, sizeof f->part, "%s.part", f->dest);
	f->o.url = f->url;
	f->o.part_path = f->part;
	f->o.dest_path = f->dest;
	f->o.sha256 = content_sha;
	f->o.timeout_s = 20;
	f->o.connect_timeout_s = 5;
	f->o.stall_s = 10;
	f->o.retries = 0;
	f->o.backoff_ms = 10;
	f->o.cancel = &f->cancel;
	f->o.progress = rec_progress;
	f->o.log = rec_log;
	f->o.cb_p = &f->rec;
	f->rec.flag = &f->cancel;
}

static int fx_run(struct fx *f)
{
	int rc = farm_fetch(&f->o, &f->r, &f->e);
	if (rc)
		printf("\n    farm_fetch: %d %s\n", rc, f->e.msg);
	return rc;
}

static void serve(const char *name)
{
	char p[400];
	snprintf(p, sizeof p, "%s/%s", root_dir, name);
	CU_ASSERT_FATAL(write_file(p, content, FILE_SIZE) == 0);
}

/* ---- suite setup: the files and the server ---- */

static int suite_init(void)
{
	snprintf(tmp_dir, sizeof tmp_dir, "/tmp/mpfarm-test-fetch-XXXXXX");
	if (!mkdtemp(tmp_dir))
		return -1;
	snprintf(root_dir, sizeof root_dir, "%s/www", tmp_dir);
	snprintf(log_path, sizeof log_path, "%s/requests.log", tmp_dir);
	snprintf(port_path, sizeof port_path, "%s/port", tmp_dir);
	if (mkdir(root_dir, 0755) != 0)
		return -1;
	struct farm_err e;
	if (farm_fetch_global_init(&e) != 0)
		return -1;
	for (size_t i = 0; i < FILE_SIZE; i++) /* not periodic: a misplaced resume shows */
		content[i] = (unsigned char)((i * 2654435761u) >> 13);
	sha_hex(content, FILE_SIZE, content_sha);
	if (strlen(content_sha) != 64)
		return -1;

	char script[512];
	snprintf(script, sizeof script, "%s/tests/tools/httpd.py", SOURCE_DIR);
	char *argv[] = { "python3",	 script,      "--root",		    root_dir,	"--port-file", port_path,
			 "--log",	 log_path,    "--max-seconds",	    "120",	"--fail-first", "2",
			 "--truncate-first", "1", "--slow-delay", SLOW_DELAY, "--slow-chunk", "64", NULL };
	if (posix_spawnp(&server_pid, "python3", NULL, NULL, argv, environ) != 0) {
		server_pid = -1;
		return -1;
	}
	for (int i = 0; i < 200; i++) { /* up to 10 s for the port file */
		char buf[32];
		long n = read_file(port_path, buf, sizeof buf - 1);
		if (n > 0) {
			buf[n] = '\0';
			char *end = NULL;
			long port = strtol(buf, &end, 10);
			if (port > 0 && port < 65536) {
				http_port = (int)port;
				return 0;
			}
		}
		int st;
		if (waitpid(server_pid, &st, WNOHANG) == server_pid) {
			server_pid = -1;
			return -1;
		}
		sleep_ms(50);
	}
	return -1;
}

static int suite_clean(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		int st;
		waitpid(server_pid, &st, 0);
		server_pid = -1;
	}
	if (tmp_dir[0])
		nftw(tmp_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	farm_fetch_global_cleanup();
	return 0;
}

/* ---- downloads ---- */

/* Success: the destination holds the served bytes, its sha256 is reported,
 * no part file is left. */
static void expect_ok(struct fx *f, unsigned attempts)
{
	CU_ASSERT_EQUAL(fx_run(f), 0);
	CU_ASSERT(dest_is_content(f->dest));
	CU_ASSERT_FALSE(exists(f->part));
	CU_ASSERT_STRING_EQUAL(f->r.sha256, content_sha);
	CU_ASSERT_EQUAL(f->r.size, FILE_SIZE);
	CU_ASSERT_EQUAL(f->r.attempts, attempts);
}

/* Failure with code: nothing at the destination. */
static void expect_fail(struct fx *f, int code, unsigned attempts)
{
	int rc = farm_fetch(&f->o, &f->r, &f->e);
	if (rc != code)
		printf("\n    farm_fetch: %d, expected %d: %s\n", rc, code, f->e.msg);
	CU_ASSERT_EQUAL(rc, code);
	CU_ASSERT_EQUAL(f->r.attempts, attempts);
	CU_ASSERT_FALSE(exists(f->dest));
}

static void test_good_checksum(void)
{
	struct fx f;
	serve("good.bin");
	fx_init(&f, "/good.bin", "good");
	expect_ok(&f, 1);
	CU_ASSERT_EQUAL(f.r.status, 200);
	CU_ASSERT_EQUAL(f.r.resumed_from, 0);
	CU_ASSERT_EQUAL(f.rec.done, FILE_SIZE);
	CU_ASSERT_EQUAL(f.rec.total, FILE_SIZE);
	CU_ASSERT(f.rec.log_lines >= 2);
	REQUESTS("/good.bin", "- 200 10000");
}

static void test_bad_checksum(void)
{
	struct fx f;
	char wrong[65];
	memset(wrong, 'a', 64);
	wrong[64] = '\0';
	serve("bad.bin");
	fx_init(&f, "/bad.bin", "bad");
	f.o.sha256 = wrong;
	f.o.retries = 3; /* a checksum mismatch is not transient: one retry from 0 only */
	expect_fail(&f, FARM_EPROTO, 2);
	CU_ASSERT_FALSE(exists(f.part));
	CU_ASSERT_PTR_NOT_NULL(strstr(f.e.msg, wrong));
	CU_ASSERT_PTR_NOT_NULL(strstr(f.e.msg, content_sha));
	CU_ASSERT_PTR_NOT_NULL(strstr(f.e.msg, "sha256 is wrong"));
	CU_ASSERT_PTR_NOT_NULL(strstr(f.e.msg, "/bad.bin"));
	REQUESTS("/bad.bin", "- 200", "- 200"); /* the retry starts at byte 0 */
}

static void test_not_found_no_retry(void)
{
	struct fx f;
	fx_init(&f, "/status/404", "nf");
	f.o.retries = 3;
	expect_fail(&f, FARM_ENOTFOUND, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(f.e.msg, "HTTP 404"));
	CU_ASSERT_PTR_NOT_NULL(strstr(f.e.msg, "(1 attempt)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(f.e.msg, "/status/404"));
	CU_ASSERT_EQUAL(f.r.status, 404);
	CU_ASSERT_FALSE(exists(f.part)); /* an empty part file is not left behind */
	REQUESTS("/status/404", "- 404");
}

static void test_server_error_then_ok(void)
{
	struct fx f;
	serve("f500.bin");
	fx_init(&f, "/status/500/f500.bin", "f500");
	f.o.retries = 3;
	expect_ok(&f, 3);
	CU_ASSERT_EQUAL(f.r.status, 200);
	CU_ASSERT_EQUAL(f.rec.n_delays, 2); /* backoff_ms, then doubled */
	CU_ASSERT_EQUAL(f.rec.delays[0], 10);
	CU_ASSERT_EQUAL(f.rec.delays[1], 20);
	REQUESTS("/status/500/f500.bin", "- 500", "- 500", "- 200 10000");
}

static void test_server_error_retries_exhausted(void)
{
	struct fx f;
	serve("g500.bin");
	fx_init(&f, "/status/503/g500.bin", "g500");
	f.o.retries = 1; /* 2 attempts, the server fails the first 2 */
	expect_fail(&f, FARM_EIO, 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(f.e.msg, "HTTP 503"));
	CU_ASSERT_PTR_NOT_NULL(strstr(f.e.msg, "(2 attempts)"));
	REQUESTS("/status/503/g500.bin", "- 503", "- 503");
}

static void test_timeout(void)
{
	struct fx f;
	serve("slow.bin");
	fx_init(&f, "/slow/slow.bin", "slow");
	f.o.timeout_s = 1; /* the first byte comes after SLOW_DELAY */
	f.o.retries = 1;
	expect_fail(&f, FARM_ETIMEDOUT, 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(f.e.msg, "(2 attempts)"));
	REQUESTS("/slow/slow.bin", "- 200 0", "- 200 0");
}

static void test_stall(void)
{
	struct fx f;
	serve("stall.bin");
	fx_init(&f, "/slow/stall.bin", "stall");
	f.o.stall_s = 1; /* nothing arrives for SLOW_DELAY seconds */
	expect_fail(&f, FARM_ETIMEDOUT, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(f.e.msg, "too slow"));
	REQUESTS("/slow/stall.bin", "- 200 0");
}

static void test_truncated_then_resumed(void)
{
	struct fx f;
	serve("trunc.bin");
	fx_init(&f, "/truncate/trunc.bin", "trunc");
	f.o.retries = 2;
	expect_ok(&f, 2);
	CU_ASSERT_EQUAL(f.r.resumed_from, FILE_SIZE / 2);
	CU_ASSERT_EQUAL(f.r.status, 206);
	CU_ASSERT_EQUAL(f.rec.done, FILE_SIZE);
	CU_ASSERT_EQUAL(f.rec.total, FILE_SIZE);
	REQUESTS("/truncate/trunc.bin", "- 200 5000", "bytes=5000- 206 5000");
}

static void test_part_file_resumed(void)
{
	struct fx f;
	serve("part.bin");
	fx_init(&f, "/part.bin", "part");
	CU_ASSERT_FATAL(write_file(f.part, content, 4000) == 0); /* left by an earlier run */
	expect_ok(&f, 1);
	CU_ASSERT_EQUAL(f.r.resumed_from, 4000);
	REQUESTS("/part.bin", "bytes=4000- 206 6000");
}

static void test_corrupt_part_file(void)
{
	struct fx f;
	unsigned char junk[4000];
	memset(junk, 0x5a, sizeof junk);
	serve("corrupt.bin");
	fx_init(&f, "/corrupt.bin", "corrupt");
	CU_ASSERT_FATAL(write_file(f.part, junk, sizeof junk) == 0);
	expect_ok(&f, 2); /* resumed, mismatch, again from byte 0 */
	REQUESTS("/corrupt.bin", "bytes=4000- 206", "- 200 10000");
}

static void test_complete_part_file(void)
{
	struct fx f;
	serve("whole.bin");
	fx_init(&f, "/whole.bin", "whole");
	CU_ASSERT_FATAL(write_file(f.part, content, FILE_SIZE) == 0); /* finished, not renamed */
	expect_ok(&f, 1);
	REQUESTS("/whole.bin", "bytes=10000- 416");
}

static void test_longer_part_file(void)
{
	struct fx f;
	static unsigned char big[FILE_SIZE + 500];
	memcpy(big, content, FILE_SIZE);
	serve("longer.bin");
	fx_init(&f, "/longer.bin", "longer");
	CU_ASSERT_FATAL(write_file(f.part, big, sizeof big) == 0); /* the file shrank since */
	expect_ok(&f, 2);
	REQUESTS("/longer.bin", "bytes=10500- 416", "- 200 10000");
}

static void test_range_ignored(void)
{
	struct fx f;
	serve("nr.bin");
	fx_init(&f, "/norange/nr.bin", "nr");
	CU_ASSERT_FATAL(write_file(f.part, content, 3000) == 0);
	expect_ok(&f, 2);
	CU_ASSERT_EQUAL(f.r.resumed_from, 0);
	/* Asked from byte 3000, answered 200 with the whole file: not appended to
	 * the part file but asked again from byte 0. */
	REQUESTS("/norange/nr.bin", "bytes=3000- 200", "- 200");
}

static void test_too_large(void)
{
	struct fx f;
	serve("big.bin");
	fx_init(&f, "/big.bin", "big");
	f.o.max_size = 1000;
	f.o.retries = 2;
	expect_fail(&f, FARM_ELIMIT, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(f.e.msg, "1000"));
	CU_ASSERT_PTR_NOT_NULL(strstr(f.e.msg, "max_size"));
	CU_ASSERT_FALSE(exists(f.part));
	REQUESTS("/big.bin", "- 200");
}

static void test_too_large_resumed_and_file(void)
{
	/* A resumed download: only the part file and Content-Range tell the total. */
	struct fx f;
	serve("big2.bin");
	fx_init(&f, "/big2.bin", "big2");
	CU_ASSERT_FATAL(write_file(f.part, content, 900) == 0);
	f.o.max_size = 1000;
	expect_fail(&f, FARM_ELIMIT, 1);
	CU_ASSERT_FALSE(exists(f.part));
	REQUESTS("/big2.bin", "bytes=900- 206");

	fx_init(&f, "", "big3");
	snprintf(f.url, sizeof f.url, "file://%s/big2.bin", root_dir);
	f.o.max_size = 1000;
	expect_fail(&f, FARM_ELIMIT, 1);
	CU_ASSERT_FALSE(exists(f.part));
}

static void test_file_url(void)
{
	struct fx f;
	serve("local.bin");
	fx_init(&f, "", "local");
	snprintf(f.url, sizeof f.url, "file://%s/local.bin", root_dir);
	expect_ok(&f, 1);
	CU_ASSERT_EQUAL(f.r.status, 0);

	fx_init(&f, "", "missing");
	snprintf(f.url, sizeof f.url, "file://%s/no-such.bin", root_dir);
	f.o.retries = 2;
	expect_fail(&f, FARM_ENOTFOUND, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(f.e.msg, "no-such.bin"));
	CU_ASSERT_FALSE(exists(f.part));
}

static void test_checksum_waived(void)
{
	struct fx f;
	serve("waived.bin");
	fx_init(&f, "/waived.bin", "waived");
	f.o.sha256 = NULL;
	expect_ok(&f, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(f.rec.last_log, "waived"));
}

static void test_cancel(void)
{
	struct fx f;
	serve("cancel.bin");
	fx_init(&f, "/cancel-before.bin", "cancel0");
	f.cancel = 1;
	expect_fail(&f, FARM_EINTR, 0);

	/* During a transfer: the first progress report sets the flag. The whole
	 * answer would take 157 * SLOW_DELAY seconds, beyond timeout_s. */
	fx_init(&f, "/slow/cancel.bin", "cancel1");
	f.rec.cancel_on_progress = 1;
	expect_fail(&f, FARM_EINTR, 1);
	CU_ASSERT(f.rec.progress_calls >= 1);

	/* While waiting to retry. */
	fx_init(&f, "/status/500/cancel.bin", "cancel2");
	f.o.retries = 3;
	f.o.backoff_ms = 20000;
	f.rec.cancel_on_log = "retrying";
	expect_fail(&f, FARM_EINTR, 1);
	NO_REQUESTS("/cancel-before.bin");
	REQUESTS("/status/500/cancel.bin", "- 500");
}

static void test_redirects(void)
{
	struct fx f;
	serve("redir.bin");
	fx_init(&f, "/redirect/redirect/redir.bin", "redir");
	expect_ok(&f, 1);
	REQUESTS("/redir.bin", "- 200");

	char path[512] = "";
	size_t n = 0;
	for (int i = 0; i <= FARM_FETCH_REDIRECTS_MAX; i++)
		n += (size_t)snprintf(path + n, sizeof path - n, "/redirect");
	snprintf(path + n, sizeof path - n, "/redir.bin");
	fx_init(&f, path, "redir2");
	f.o.retries = 2;
	expect_fail(&f, FARM_EPROTO, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(f.e.msg, "edirect"));
	REQUESTS("/redir.bin", "- 200"); /* still the one of the first download */
}

static void test_messages_redacted(void)
{
	struct fx f;
	fx_init(&f, "", "secret");
	snprintf(f.url, sizeof f.url, "http://alice:s3cr3t@127.0.0.1:%d/status/404/x.bin?token=t0k3n",
		 http_port);
	CU_ASSERT_EQUAL(farm_fetch(&f.o, &f.r, &f.e), FARM_ENOTFOUND);
	CU_ASSERT_PTR_NULL(strstr(f.e.msg, "s3cr3t"));
	CU_ASSERT_PTR_NULL(strstr(f.e.msg, "alice"));
	CU_ASSERT_PTR_NULL(strstr(f.e.msg, "t0k3n"));
	CU_ASSERT_PTR_NULL(strstr(f.rec.last_log, "s3cr3t"));
	CU_ASSERT_PTR_NULL(strstr(f.rec.last_log, "t0k3n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(f.e.msg, "/status/404/x.bin"));
}

static void test_bad_options(void)
{
	struct fx f;
	fx_init(&f, "/good.bin", "opts");
	f.o.sha256 = "abc";
	CU_ASSERT_EQUAL(farm_fetch(&f.o, &f.r, &f.e), FARM_EINVAL);

	fx_init(&f, "", "opts");
	snprintf(f.url, sizeof f.url, "ftp://127.0.0.1/x.bin");
	CU_ASSERT_EQUAL(farm_fetch(&f.o, &f.r, &f.e), FARM_EINVAL);

	fx_init(&f, "/a b.bin", "opts");
	CU_ASSERT_EQUAL(farm_fetch(&f.o, &f.r, &f.e), FARM_EINVAL);

	static char long_url[FARM_FETCH_URL_MAX + 1]; /* one character too many */
	fx_init(&f, "", "opts");
	memset(long_url, 'a', sizeof long_url - 1);
	memcpy(long_url, "http://127.0.0.1:1/", 19); /* nothing listens on port 1 */
	f.o.url = long_url;
	CU_ASSERT_EQUAL(farm_fetch(&f.o, &f.r, &f.e), FARM_ELIMIT);
	long_url[FARM_FETCH_URL_MAX - 1] = '\0'; /* the longest allowed: not refused as too long */
	f.o.retries = 0;
	f.o.connect_timeout_s = 1;
	CU_ASSERT_NOT_EQUAL(farm_fetch(&f.o, &f.r, &f.e), FARM_ELIMIT);

	fx_init(&f, "/good.bin", "opts");
	f.o.part_path = f.o.dest_path;
	CU_ASSERT_EQUAL(farm_fetch(&f.o, &f.r, &f.e), FARM_EINVAL);
	CU_ASSERT_FALSE(exists(f.dest));
}

static void test_sha256_file(void)
{
	char p[400], hex[65];
	struct farm_err e;
	path_in(p, sizeof p, "sha.bin");
	CU_ASSERT_FATAL(write_file(p, "abc", 3) == 0);
	CU_ASSERT_EQUAL(farm_fetch_sha256_file(p, hex, &e), 0);
	CU_ASSERT_STRING_EQUAL(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	path_in(p, sizeof p, "no-such-file");
	CU_ASSERT_EQUAL(farm_fetch_sha256_file(p, hex, &e), FARM_ENOTFOUND);
}

/* ---- URL text ---- */

static void test_expand(void)
{
	struct farm_fetch_vars v = { .board = "pico-1", .port = "rp2", .variant = "RPI_PICO W",
				     .version = "v1.22.0+x/y" };
	char out[256];
	struct farm_err e;
	CU_ASSERT_EQUAL(farm_fetch_expand("https://h/{port}/{board}-{variant}-{version}.uf2", &v, out,
					  sizeof out, &e),
			0);
	CU_ASSERT_STRING_EQUAL(out, "https://h/rp2/pico-1-RPI_PICO%20W-v1.22.0%2Bx%2Fy.uf2");
	CU_ASSERT_EQUAL(farm_fetch_expand("file:///a/b.bin", NULL, out, sizeof out, &e), 0);
	CU_ASSERT_STRING_EQUAL(out, "file:///a/b.bin");
	v.variant = "~a.b_c-d";
	CU_ASSERT_EQUAL(farm_fetch_expand("{variant}", &v, out, sizeof out, &e), 0);
	CU_ASSERT_STRING_EQUAL(out, "~a.b_c-d");
	v.variant = "\xc3\xa9";
	CU_ASSERT_EQUAL(farm_fetch_expand("{variant}", &v, out, sizeof out, &e), 0);
	CU_ASSERT_STRING_EQUAL(out, "%C3%A9");

	CU_ASSERT_EQUAL(farm_fetch_expand("http://h/{bord}.hex", &v, out, sizeof out, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "{bord}"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "character 10"));
	v.version = NULL;
	CU_ASSERT_EQUAL(farm_fetch_expand("http://h/{version}.hex", &v, out, sizeof out, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "{version}"));
	CU_ASSERT_EQUAL(farm_fetch_expand("http://h/{board.hex", &v, out, sizeof out, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "not closed"));
	CU_ASSERT_EQUAL(farm_fetch_expand("http://h/board}.hex", &v, out, sizeof out, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "'}'"));
	CU_ASSERT_EQUAL(farm_fetch_expand("http://h/{{board}}.hex", &v, out, sizeof out, &e), FARM_EINVAL);

	/* Overflow: exactly len - 1 fits, one more does not. */
	char small[8];
	CU_ASSERT_EQUAL(farm_fetch_expand("{board}", &v, small, sizeof small, &e), 0);
	CU_ASSERT_STRING_EQUAL(small, "pico-1");
	CU_ASSERT_EQUAL(farm_fetch_expand("1{board}", &v, small, sizeof small, &e), 0);
	CU_ASSERT_STRING_EQUAL(small, "1pico-1");
	CU_ASSERT_EQUAL(farm_fetch_expand("12{board}", &v, small, sizeof small, &e), FARM_ELIMIT);
	CU_ASSERT_STRING_EQUAL(small, "");
	v.variant = "  ";
	CU_ASSERT_EQUAL(farm_fetch_expand("1{variant}", &v, small, sizeof small, &e), 0);
	CU_ASSERT_STRING_EQUAL(small, "1%20%20");
	CU_ASSERT_EQUAL(farm_fetch_expand("12{variant}", &v, small, sizeof small, &e), FARM_ELIMIT);

	static char huge[FARM_FETCH_TEMPLATE_MAX + 2];
	memset(huge, 'x', sizeof huge - 1);
	static char big_out[FARM_FETCH_TEMPLATE_MAX * 2];
	CU_ASSERT_EQUAL(farm_fetch_expand(huge, &v, big_out, sizeof big_out, &e), FARM_ELIMIT);
}

static void test_redact(void)
{
	char out[128];
	farm_fetch_redact("https://user:pw@example.com:8443/a/b.bin?x=1#f", out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "https://example.com:8443/a/b.bin");
	farm_fetch_redact("https://tok@example.com/a@b.bin", out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "https://example.com/a@b.bin");
	farm_fetch_redact("http://a:b@c@host/x", out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "http://host/x");
	farm_fetch_redact("http://host?user:pw@x", out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "http://host");
	farm_fetch_redact("file:///srv/fw.hex", out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "file:///srv/fw.hex");
	farm_fetch_redact("http://h/\x1b[31m", out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "http://h/?[31m");
	char tiny[10];
	farm_fetch_redact("https://example.com/", tiny, sizeof tiny);
	CU_ASSERT_STRING_EQUAL(tiny, "https://e");
	farm_fetch_redact(NULL, tiny, sizeof tiny);
	CU_ASSERT_STRING_EQUAL(tiny, "");
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("fetch_text", NULL, NULL);
	if (!s || !CU_add_test(s, "expand", test_expand) || !CU_add_test(s, "redact", test_redact))
		return -1;
	s = CU_add_suite("fetch_http", suite_init, suite_clean);
	if (!s)
		return -1;
	static const struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
		{ "good checksum", test_good_checksum },
		{ "bad checksum", test_bad_checksum },
		{ "404 not retried", test_not_found_no_retry },
		{ "500 twice then ok", test_server_error_then_ok },
		{ "503 retries exhausted", test_server_error_retries_exhausted },
		{ "timeout", test_timeout },
		{ "stall", test_stall },
		{ "truncated then resumed", test_truncated_then_resumed },
		{ "part file resumed", test_part_file_resumed },
		{ "corrupt part file", test_corrupt_part_file },
		{ "complete part file (416)", test_complete_part_file },
		{ "part file longer than the file (416)", test_longer_part_file },
		{ "range ignored", test_range_ignored },
		{ "too large", test_too_large },
		{ "too large, resumed and file://", test_too_large_resumed_and_file },
		{ "file:// url", test_file_url },
		{ "checksum waived", test_checksum_waived },
		{ "cancel", test_cancel },
		{ "redirects", test_redirects },
		{ "messages redacted", test_messages_redacted },
		{ "bad options", test_bad_options },
		{ "sha256 of a file", test_sha256_file },
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
