/* mpfarm: tests for the REPL smoke-suite loader (farm/suite.c).
 * Data: tests/data/suites/. Expectation generation runs the host's python3;
 * every test that may write a cache uses its own mkdtemp directory. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <openssl/evp.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "suite.h"

#define SUITES TEST_DATA_DIR "/suites"

/* ------------------------------------------------------------ helpers */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* dir must be a char[PATH_MAX]-sized buffer. */
static int make_tmp(char *dir, size_t len)
{
	const char *base = getenv("TMPDIR");
	snprintf(dir, len, "%s/mpfarm-suite-XXXXXX", base && base[0] ? base : "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

static void path_in(char *out, size_t len, const char *dir, const char *name)
{
	int n = snprintf(out, len, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= len)
		out[0] = '\0'; /* too long: fails loudly at the first use */
}

static int write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char p[4096];
	path_in(p, sizeof p, dir, name);
	FILE *f = fopen(p, "wb");
	if (!f)
		return -1;
	size_t n = strlen(text);
	int rc = fwrite(text, 1, n, f) == n ? 0 : -1;
	if (fclose(f) != 0)
		rc = -1;
	if (!rc && chmod(p, mode) != 0)
		rc = -1;
	return rc;
}

static int file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static const struct farm_test *find_test(const struct farm_suite *s, const char *name)
{
	for (size_t i = 0; s && i < s->n_tests; i++)
		if (strcmp(s->tests[i].name, name) == 0)
			return &s->tests[i];
	return NULL;
}

static int has_diag(const struct farm_diags *d, unsigned line, unsigned col, const char *needle)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct farm_diag *g = &d->v[i];
		if (g->line != line || g->col != col)
			continue;
		if (!needle || strstr(g->msg, needle) || (g->hint && strstr(g->hint, needle)))
			return 1;
	}
	return 0;
}

#define CHECK_DIAG(d, line, col, needle)                                                         \
	do {                                                                                     \
		int found_ = has_diag((d), (line), (col), (needle));                             \
		if (!found_)                                                                     \
			fprintf(stderr, "\n  missing diagnostic %u:%u '%s'\n", (unsigned)(line), \
				(unsigned)(col), (needle) ? (needle) : "");                      \
		CU_ASSERT(found_);                                                               \
	} while (0)

static int list_has(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

static int load(struct farm_suite **s, const char *path, const struct farm_suite_opts *o,
		struct farm_diags *d, struct farm_err *e)
{
	int rc = farm_suite_load(s, path, o, d, e);
	if (rc && getenv("MPFARM_TEST_VERBOSE")) {
		fprintf(stderr, "\n%s: rc=%d %s\n", path, rc, e->msg);
		farm_diags_print(d, stderr);
	}
	return rc;
}

/* A python3 wrapper at a path we control (and may delete). */
static int make_wrapper(const char *dir, const char *name, const char *body)
{
	return write_file(dir, name, body, 0755);
}

static int sha256_hex(const char *a, size_t alen, const char *b, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
		 EVP_DigestUpdate(c, a, alen) == 1 && EVP_DigestUpdate(c, b, strlen(b)) == 1 &&
		 EVP_DigestFinal_ex(c, md, &n) == 1;
	EVP_MD_CTX_free(c);
	if (!ok)
		return -1;
	for (unsigned i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* The cache file a script's generated expectation should be stored in. */
static int cache_path_for(char *out, size_t len, const char *cache, const char *script,
			  const char *python)
{
	struct farm_buf b = { 0 };
	char hex[65];
	if (farm_buf_read_file(&b, script, 1 << 20, NULL) || sha256_hex(b.data, b.len, python, hex)) {
		farm_buf_free(&b);
		return -1;
	}
	farm_buf_free(&b);
	snprintf(out, len, "%s/exp/%s.exp", cache, hex);
	return 0;
}

/* ------------------------------------------------------------ features */

static void test_feature_table(void)
{
	const char *const *names = farm_suite_feature_names();
	size_t n = 0;
	CU_ASSERT_PTR_NOT_NULL_FATAL(names);
	for (; names[n]; n++) {
		const char *p = farm_suite_feature_probe(names[n]);
		CU_ASSERT_PTR_NOT_NULL(p);
		if (p) {
			CU_ASSERT_PTR_NOT_NULL(strstr(p, "print(1"));
			CU_ASSERT_PTR_NOT_NULL(strstr(p, "except Exception:\n    print(0)\n"));
		}
		for (size_t k = 0; k < n; k++)
			CU_ASSERT(strcmp(names[k], names[n]) != 0);
	}
	CU_ASSERT(n >= 17);
	static const char *const required[] = {
		"float", "complex", "bigint", "set", "bytearray", "struct", "micropython", "uctypes",
		"re", "json", "collections", "async", "fstrings", "unicode", "slice_assign", "gc",
		"threading", NULL,
	};
	for (size_t i = 0; required[i]; i++)
		CU_ASSERT_PTR_NOT_NULL(farm_suite_feature_probe(required[i]));
	CU_ASSERT_PTR_NULL(farm_suite_feature_probe("flaot"));
	CU_ASSERT_PTR_NULL(farm_suite_feature_probe(""));
	CU_ASSERT_PTR_NULL(farm_suite_feature_probe(NULL));
}

/* Run every probe through the host python3 (as directory tests): each must
 * print exactly "1\n" or "0\n" and never fail, and CPython's answers are known. */
static void test_feature_probes_under_cpython(void)
{
	char tmp[4096], scripts[4096], suite[4096], cache[4096];
	struct farm_suite *s = NULL;
	struct farm_diags d = { 0 };
	struct farm_err e = { 0 };
	CU_ASSERT_FATAL(make_tmp(tmp, sizeof tmp) == 0);
	path_in(scripts, sizeof scripts, tmp, "probes");
	path_in(cache, sizeof cache, tmp, "cache");
	CU_ASSERT_FATAL(mkdir(scripts, 0700) == 0);
	const char *const *names = farm_suite_feature_names();
	for (size_t i = 0; names[i]; i++) {
		char fname[128];
		/* a prefix, so that re.py does not shadow the module it probes */
		snprintf(fname, sizeof fname, "probe_%s.py", names[i]);
		CU_ASSERT_FATAL(write_file(scripts, fname, farm_suite_feature_probe(names[i]), 0644) == 0);
	}
	CU_ASSERT_FATAL(write_file(tmp, "probes.yaml", "suite: probes\ninclude:\n  - dir: probes\n",
				   0644) == 0);
	path_in(suite, sizeof suite, tmp, "probes.yaml");
	struct farm_suite_opts o = { .cache_dir = cache };
	CU_ASSERT_EQUAL_FATAL(load(&s, suite, &o, &d, &e), 0);

	static const char *const has[] = {
		"float", "complex", "bigint", "set", "bytearray", "slice_assign", "fstrings",
		"unicode", "async", "threading", "gc", "struct", "re", "json", "collections",
		"array", "math", "cmath", "io", "os", "time", "random", "binascii", "hashlib",
		"heapq", "select", "socket", "asyncio", NULL,
	};
	static const char *const lacks[] = {
		"micropython", "uctypes", "native", "viper", "machine", "network", "bluetooth",
		"framebuf", NULL,
	};
	size_t n = 0;
	for (; names[n]; n++) {
		char tname[160];
		snprintf(tname, sizeof tname, "probes/probe_%s", names[n]);
		const struct farm_test *t = find_test(s, tname);
		CU_ASSERT_PTR_NOT_NULL(t);
		if (!t)
			continue;
		CU_ASSERT_PTR_NULL(t->skip_reason);
		CU_ASSERT_EQUAL(t->expect_kind, FARM_EXPECT_EXACT);
		CU_ASSERT(t->expect && (strcmp(t->expect, "1\n") == 0 || strcmp(t->expect, "0\n") == 0));
		if (t->skip_reason || !t->expect)
			fprintf(stderr, "\n  probe %s: %s\n", names[n],
				t->skip_reason ? t->skip_reason : "(no output)");
	}
	CU_ASSERT_EQUAL(s->n_tests, n);
	for (size_t i = 0; has[i]; i++) {
		char tname[160];
		snprintf(tname, sizeof tname, "probes/probe_%s", has[i]);
		const struct farm_test *t = find_test(s, tname);
		CU_ASSERT(t && t->expect && strcmp(t->expect, "1\n") == 0);
	}
	for (size_t i = 0; lacks[i]; i++) {
		char tname[160];
		snprintf(tname, sizeof tname, "probes/probe_%s", lacks[i]);
		const struct farm_test *t = find_test(s, tname);
		CU_ASSERT(t && t->expect && strcmp(t->expect, "0\n") == 0);
	}
	farm_suite_free(s);
	farm_diags_free(&d);
	rm_rf(tmp);
}

/* ------------------------------------------------------------ good suite */

static void check_good_suite(const struct farm_suite *s)
{
	const struct farm_test *t;
	CU_ASSERT_STRING_EQUAL(s->name, "good-suite");
	CU_ASSERT_STRING_EQUAL(s->path, SUITES "/good.yaml");
	CU_ASSERT_EQUAL(s->n_tests, 9);

	/* YAML tests keep their order, then directory tests sorted by name. */
	static const char *const order[] = {
		"arithmetic", "banner", "divide-by-zero", "from-file", "runs-only", "scripts/add",
		"scripts/impl", "scripts/needs_micropython", "scripts/skip_cpython",
	};
	for (size_t i = 0; i < 9 && i < s->n_tests; i++)
		CU_ASSERT_STRING_EQUAL(s->tests[i].name, order[i]);

	t = find_test(s, "arithmetic");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_STRING_EQUAL(t->code, "print(1 + 1)\n");
	CU_ASSERT_EQUAL(t->code_len, strlen(t->code));
	CU_ASSERT_EQUAL(t->expect_kind, FARM_EXPECT_EXACT);
	CU_ASSERT_STRING_EQUAL(t->expect, "2\n");
	CU_ASSERT_EQUAL(t->timeout_ms, 10000);
	CU_ASSERT_EQUAL(t->req.n_ports, 2);
	CU_ASSERT(list_has(t->req.ports, t->req.n_ports, "nrf"));
	CU_ASSERT(list_has(t->req.ports, t->req.n_ports, "rp2"));
	CU_ASSERT_EQUAL(t->req.n_tags, 0);
	CU_ASSERT_EQUAL(t->req.n_features, 1);
	CU_ASSERT(list_has(t->req.features, t->req.n_features, "float"));
	CU_ASSERT_STRING_EQUAL(t->file, SUITES "/good.yaml");
	CU_ASSERT_EQUAL(t->line, 9);
	CU_ASSERT_EQUAL(t->skip_on_output_skip, 0);
	CU_ASSERT_PTR_NULL(t->skip_reason);

	t = find_test(s, "banner");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(t->expect_kind, FARM_EXPECT_REGEX);
	CU_ASSERT_STRING_EQUAL(t->expect, "^micropython [0-9]+\\.[0-9]+"); /* \d rewritten */
	CU_ASSERT_EQUAL(t->timeout_ms, 2500);

	t = find_test(s, "divide-by-zero");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(t->expect_kind, FARM_EXPECT_ERROR);
	CU_ASSERT_STRING_EQUAL(t->expect, "ZeroDivisionError");
	CU_ASSERT_EQUAL(t->req.n_ports, 1);
	CU_ASSERT(list_has(t->req.ports, t->req.n_ports, "unix"));
	CU_ASSERT_EQUAL(t->req.n_tags, 2);
	CU_ASSERT(list_has(t->req.tags, t->req.n_tags, "wifi"));
	CU_ASSERT(list_has(t->req.tags, t->req.n_tags, "sensor"));
	CU_ASSERT_EQUAL(t->req.n_features, 1); /* inherited per key */

	t = find_test(s, "from-file");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_STRING_EQUAL(t->code, "print(\"hello\")\n");
	CU_ASSERT_STRING_EQUAL(t->expect, "hello\n");

	t = find_test(s, "runs-only");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(t->expect_kind, FARM_EXPECT_ANY);
	CU_ASSERT_PTR_NULL(t->expect);
	CU_ASSERT_EQUAL(t->req.n_features, 2);
	CU_ASSERT(list_has(t->req.features, t->req.n_features, "gc"));
	CU_ASSERT(list_has(t->req.features, t->req.n_features, "bigint"));
	CU_ASSERT_EQUAL(t->req.n_ports, 2);

	t = find_test(s, "scripts/impl"); /* .exp file wins over python3 */
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(t->expect_kind, FARM_EXPECT_EXACT);
	CU_ASSERT_STRING_EQUAL(t->expect, "micropython\n");
	CU_ASSERT_STRING_EQUAL(t->file, SUITES "/scripts/impl.py");
	CU_ASSERT_EQUAL(t->line, 0);
	CU_ASSERT_EQUAL(t->skip_on_output_skip, 1);
	CU_ASSERT_EQUAL(t->timeout_ms, 20000);
	CU_ASSERT_EQUAL(t->req.n_tags, 1);
	CU_ASSERT(list_has(t->req.tags, t->req.n_tags, "board-basics"));
	CU_ASSERT_EQUAL(t->req.n_ports, 2);
	CU_ASSERT_PTR_NULL(t->skip_reason);
	CU_ASSERT_PTR_NOT_NULL(strstr(t->code, "sys.implementation.name"));

	CU_ASSERT_PTR_NULL(find_test(s, "scripts/excluded"));
	CU_ASSERT_PTR_NULL(find_test(s, "scripts/notes"));
}

static void test_good_suite_and_cache(void)
{
	char tmp[4096], cache[4096], py[4096], cfile[4096], skipfile[4096], expdir[4096];
	struct farm_suite *s = NULL;
	struct farm_diags d = { 0 };
	struct farm_err e = { 0 };
	const struct farm_test *t;
	CU_ASSERT_FATAL(make_tmp(tmp, sizeof tmp) == 0);
	path_in(cache, sizeof cache, tmp, "cache/deep");
	path_in(py, sizeof py, tmp, "py3");
	CU_ASSERT_FATAL(make_wrapper(tmp, "py3", "#!/bin/sh\nexec python3 \"$@\"\n") == 0);
	struct farm_suite_opts o = { .cache_dir = cache, .python = py };

	/* First load: python3 runs and fills the cache. */
	CU_ASSERT_EQUAL_FATAL(load(&s, SUITES "/good.yaml", &o, &d, &e), 0);
	CU_ASSERT_EQUAL(d.n, 0);
	check_good_suite(s);
	t = find_test(s, "scripts/add");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(t->expect_kind, FARM_EXPECT_EXACT);
	CU_ASSERT_STRING_EQUAL(t->expect, "2\n");
	CU_ASSERT_STRING_EQUAL(t->code, "print(1 + 1)\n");
	CU_ASSERT_PTR_NULL(t->skip_reason);

	t = find_test(s, "scripts/skip_cpython");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_PTR_NOT_NULL(t->skip_reason);
	CU_ASSERT_PTR_NOT_NULL(t->skip_reason && strstr(t->skip_reason, "printed SKIP"));
	CU_ASSERT_EQUAL(t->expect_kind, FARM_EXPECT_ANY);
	CU_ASSERT_PTR_NULL(t->expect);

	t = find_test(s, "scripts/needs_micropython");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t->skip_reason);
	CU_ASSERT(strncmp(t->skip_reason, "host python3 could not produce the expected output: ",
			  52) == 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(t->skip_reason, "exited with status 1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t->skip_reason, "ModuleNotFoundError"));
	CU_ASSERT_EQUAL(t->expect_kind, FARM_EXPECT_ANY);
	farm_suite_free(s);
	s = NULL;

	/* The cache holds sha256(script + interpreter path): add and the SKIP
	 * output, not the failure (which is retried on the next load). */
	CU_ASSERT_EQUAL(cache_path_for(cfile, sizeof cfile, cache, SUITES "/scripts/add.py", py), 0);
	CU_ASSERT(file_exists(cfile));
	CU_ASSERT_EQUAL(cache_path_for(skipfile, sizeof skipfile, cache,
				       SUITES "/scripts/skip_cpython.py", py), 0);
	CU_ASSERT(file_exists(skipfile));
	path_in(expdir, sizeof expdir, cache, "exp");
	struct stat st;
	CU_ASSERT(stat(expdir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
	struct farm_buf b = { 0 };
	CU_ASSERT_EQUAL(farm_buf_read_file(&b, cfile, 100, NULL), 0);
	CU_ASSERT(b.data && strcmp(b.data, "2\n") == 0);
	farm_buf_free(&b);

	/* Second load with the interpreter gone: expectations come from the cache. */
	CU_ASSERT_EQUAL(unlink(py), 0);
	CU_ASSERT_EQUAL_FATAL(load(&s, SUITES "/good.yaml", &o, &d, &e), 0);
	check_good_suite(s);
	t = find_test(s, "scripts/add");
	CU_ASSERT(t && t->expect && strcmp(t->expect, "2\n") == 0 && !t->skip_reason);
	t = find_test(s, "scripts/skip_cpython");
	CU_ASSERT(t && t->skip_reason && strstr(t->skip_reason, "printed SKIP"));
	t = find_test(s, "scripts/needs_micropython");
	CU_ASSERT(t && t->skip_reason && strstr(t->skip_reason, "cannot run"));
	farm_suite_free(s);
	s = NULL;

	/* A cached expectation is used as is (so it really is read from there). */
	CU_ASSERT_EQUAL(unlink(cfile), 0);
	FILE *f = fopen(cfile, "wb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("2 from the cache\n", f);
	fclose(f);
	CU_ASSERT_EQUAL_FATAL(load(&s, SUITES "/good.yaml", &o, &d, &e), 0);
	t = find_test(s, "scripts/add");
	CU_ASSERT(t && t->expect && strcmp(t->expect, "2 from the cache\n") == 0);
	farm_suite_free(s);
	s = NULL;

	/* Without a cache entry and without an interpreter: skipped, not an error. */
	rm_rf(cache);
	CU_ASSERT_EQUAL_FATAL(load(&s, SUITES "/good.yaml", &o, &d, &e), 0);
	t = find_test(s, "scripts/add");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t->skip_reason);
	CU_ASSERT_PTR_NOT_NULL(strstr(t->skip_reason, "host python3 could not produce"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t->skip_reason, "cannot run"));
	CU_ASSERT_EQUAL(t->expect_kind, FARM_EXPECT_ANY);
	CU_ASSERT_PTR_NULL(t->expect);
	t = find_test(s, "scripts/impl"); /* .exp files need no interpreter */
	CU_ASSERT(t && !t->skip_reason && t->expect && strcmp(t->expect, "micropython\n") == 0);
	CU_ASSERT_EQUAL(d.n, 0);

	farm_suite_free(s);
	farm_diags_free(&d);
	rm_rf(tmp);
}

/* No cache_dir: $XDG_CACHE_HOME/mpfarm, else $HOME/.cache/mpfarm. */
static void test_default_cache_dir(void)
{
	char tmp[4096], xdg[4096], home[4096], cfile[4096];
	struct farm_suite *s = NULL;
	struct farm_diags d = { 0 };
	struct farm_err e = { 0 };
	char *old_xdg = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
	char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
	CU_ASSERT_FATAL(make_tmp(tmp, sizeof tmp) == 0);
	path_in(xdg, sizeof xdg, tmp, "xdg");
	path_in(home, sizeof home, tmp, "home");

	setenv("XDG_CACHE_HOME", xdg, 1);
	setenv("HOME", home, 1);
	CU_ASSERT_EQUAL(load(&s, SUITES "/good.yaml", NULL, &d, &e), 0);
	farm_suite_free(s);
	s = NULL;
	char base[4096];
	path_in(base, sizeof base, xdg, "mpfarm");
	CU_ASSERT_EQUAL(cache_path_for(cfile, sizeof cfile, base, SUITES "/scripts/add.py", "python3"), 0);
	CU_ASSERT(file_exists(cfile));

	unsetenv("XDG_CACHE_HOME");
	CU_ASSERT_EQUAL(load(&s, SUITES "/good.yaml", NULL, &d, &e), 0);
	farm_suite_free(s);
	s = NULL;
	path_in(base, sizeof base, home, ".cache/mpfarm");
	CU_ASSERT_EQUAL(cache_path_for(cfile, sizeof cfile, base, SUITES "/scripts/add.py", "python3"), 0);
	CU_ASSERT(file_exists(cfile));

	if (old_xdg)
		setenv("XDG_CACHE_HOME", old_xdg, 1);
	else
		unsetenv("XDG_CACHE_HOME");
	if (old_home)
		setenv("HOME", old_home, 1);
	else
		unsetenv("HOME");
	free(old_xdg);
	free(old_home);
	farm_diags_free(&d);
	rm_rf(tmp);
}

/* A cache that cannot be created degrades to no caching. */
static void test_cache_unwritable(void)
{
	char tmp[4096], cache[4096];
	struct farm_suite *s = NULL;
	struct farm_diags d = { 0 };
	struct farm_err e = { 0 };
	CU_ASSERT_FATAL(make_tmp(tmp, sizeof tmp) == 0);
	CU_ASSERT_FATAL(write_file(tmp, "plainfile", "x", 0644) == 0);
	path_in(cache, sizeof cache, tmp, "plainfile/cache");
	struct farm_suite_opts o = { .cache_dir = cache };
	CU_ASSERT_EQUAL_FATAL(load(&s, SUITES "/good.yaml", &o, &d, &e), 0);
	const struct farm_test *t = find_test(s, "scripts/add");
	CU_ASSERT(t && t->expect && strcmp(t->expect, "2\n") == 0 && !t->skip_reason);
	CU_ASSERT_EQUAL(d.n, 0);
	farm_suite_free(s);
	farm_diags_free(&d);
	rm_rf(tmp);
}

/* A host interpreter that hangs is killed at the deadline (with its children). */
static void test_python_deadline(void)
{
	char tmp[4096], py[4096], cache[4096];
	struct farm_suite *s = NULL;
	struct farm_diags d = { 0 };
	struct farm_err e = { 0 };
	CU_ASSERT_FATAL(make_tmp(tmp, sizeof tmp) == 0);
	path_in(py, sizeof py, tmp, "slow-python");
	path_in(cache, sizeof cache, tmp, "cache");
	CU_ASSERT_FATAL(make_wrapper(tmp, "slow-python", "#!/bin/sh\nsleep 30\necho late\n") == 0);
	struct farm_suite_opts o = { .cache_dir = cache, .python = py, .python_timeout_ms = 300 };
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CU_ASSERT_EQUAL_FATAL(load(&s, SUITES "/good.yaml", &o, &d, &e), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	CU_ASSERT(secs < 10.0); /* 3 scripts x 0.3 s, not 3 x 30 s */
	const struct farm_test *t = find_test(s, "scripts/add");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT(t->skip_reason && strstr(t->skip_reason, "timed out after 300 ms"));
	farm_suite_free(s);
	s = NULL;

	/* Output beyond the bound is not an expectation either. */
	CU_ASSERT_FATAL(make_wrapper(tmp, "slow-python",
				     "#!/bin/sh\nexec yes 0123456789abcdef0123456789abcdef\n") == 0);
	o.python_timeout_ms = 5000;
	CU_ASSERT_EQUAL_FATAL(load(&s, SUITES "/good.yaml", &o, &d, &e), 0);
	t = find_test(s, "scripts/add");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT(t->skip_reason && strstr(t->skip_reason, "printed more than"));
	farm_suite_free(s);
	s = NULL;

	/* argv, working directory and descriptors the interpreter gets */
	CU_ASSERT_FATAL(make_wrapper(tmp, "slow-python",
				     "#!/bin/sh\npwd\n"
				     "if [ -e /proc/self/fd/50 ]; then echo fd50-open; else echo fd50-closed; fi\n"
				     "echo \"$# $1 $2 $3\"\n"
				     "if read line; then echo stdin-data; else echo stdin-eof; fi\n") == 0);
	int fd = open("/dev/null", O_RDONLY);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(dup2(fd, 50) == 50); /* not close-on-exec */
	close(fd);
	CU_ASSERT_EQUAL_FATAL(load(&s, SUITES "/good.yaml", &o, &d, &e), 0);
	close(50);
	t = find_test(s, "scripts/add");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_PTR_NULL(t->skip_reason);
	CU_ASSERT_STRING_EQUAL(t->expect ? t->expect : "",
			       SUITES "/scripts\nfd50-closed\n3 -B -S add.py\nstdin-eof\n");
	farm_suite_free(s);
	s = NULL;
	rm_rf(cache); /* the next wrapper lives at the same path */

	/* Killed by a signal. */
	CU_ASSERT_FATAL(make_wrapper(tmp, "slow-python", "#!/bin/sh\nkill -TERM $$\n") == 0);
	CU_ASSERT_EQUAL_FATAL(load(&s, SUITES "/good.yaml", &o, &d, &e), 0);
	t = find_test(s, "scripts/add");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT(t->skip_reason && strstr(t->skip_reason, "killed by signal 15"));
	farm_suite_free(s);
	farm_diags_free(&d);
	rm_rf(tmp);
}

/* ------------------------------------------------------------ bad suite */

static void test_bad_suite(void)
{
	char tmp[4096];
	struct farm_suite *s = (struct farm_suite *)&tmp; /* must be reset to NULL */
	struct farm_diags d = { 0 };
	struct farm_err e = { 0 };
	CU_ASSERT_FATAL(make_tmp(tmp, sizeof tmp) == 0);
	char cache[4096];
	path_in(cache, sizeof cache, tmp, "cache");
	struct farm_suite_opts o = { .cache_dir = cache, .python = "/nonexistent/python3" };
	CU_ASSERT_EQUAL(load(&s, SUITES "/bad.yaml", &o, &d, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NULL(s);
	CU_ASSERT_EQUAL(e.code, FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "problems"));
	for (size_t i = 0; i < d.n; i++)
		CU_ASSERT_STRING_EQUAL(d.v[i].file, SUITES "/bad.yaml");

	CHECK_DIAG(&d, 3, 8, "invalid suite name 'bad name!'");
	CHECK_DIAG(&d, 5, 12, "timeout");                   /* 0 s is below 0.1 */
	CHECK_DIAG(&d, 6, 21, "unknown port 'nfr'");
	CHECK_DIAG(&d, 6, 21, "did you mean 'nrf'?");
	CHECK_DIAG(&d, 7, 3, "retries");                    /* unknown key in defaults */
	CHECK_DIAG(&d, 12, 19, "expect_regex conflicts with expect");
	CHECK_DIAG(&d, 13, 11, "duplicate test name 'one'");
	CHECK_DIAG(&d, 13, 11, "first defined at line 9");
	CHECK_DIAG(&d, 15, 5, "name");                      /* missing name */
	CHECK_DIAG(&d, 18, 11, "both code and file");
	CHECK_DIAG(&d, 19, 5, "neither code nor file");
	CHECK_DIAG(&d, 23, 19, "expect_regex does not compile");
	CHECK_DIAG(&d, 26, 19, "not an exception type name");
	CHECK_DIAG(&d, 28, 11, "nope.py");
	CHECK_DIAG(&d, 28, 11, "relative to the suite's directory");
	CHECK_DIAG(&d, 31, 27, "unknown feature 'flaot'");
	CHECK_DIAG(&d, 31, 27, "did you mean 'float'?");
	CHECK_DIAG(&d, 31, 42, "invalid tag 'bad tag'");
	CHECK_DIAG(&d, 31, 54, "ports");                    /* unknown key, did you mean port */
	CHECK_DIAG(&d, 31, 54, "\"port\"");
	CHECK_DIAG(&d, 34, 14, "timeout");                  /* 5000 s is above 3600 */
	CHECK_DIAG(&d, 37, 5, "expct");
	CHECK_DIAG(&d, 37, 5, "\"expect\"");
	CHECK_DIAG(&d, 40, 12, "expect has no value");
	CHECK_DIAG(&d, 43, 19, "\\D inside [...] is not supported");
	CHECK_DIAG(&d, 45, 10, "cannot open directory");
	CHECK_DIAG(&d, 46, 10, "no script in");
	CHECK_DIAG(&d, 49, 15, "exclude entry 'exclued.py' matches no script");
	CHECK_DIAG(&d, 49, 15, "did you mean 'excluded.py'?");
	CHECK_DIAG(&d, 50, 5, "dir");                       /* missing dir */
	if (getenv("MPFARM_TEST_VERBOSE") || d.n != 23)
		farm_diags_print(&d, stderr);
	CU_ASSERT_EQUAL(d.n, 23);
	farm_diags_free(&d);
	rm_rf(tmp);
}

/* Small suites written on the fly, each with one problem. */
struct snippet_case {
	const char *yaml;
	unsigned line, col;
	const char *needle;
};

static void test_snippets(void)
{
	static const struct snippet_case cases[] = {
		{ "", 0, 0, "the suite file is empty" },
		{ "- a\n- b\n", 1, 1, "must be a mapping" },
		{ "suite: x\n", 1, 1, "neither tests nor include" },
		{ "tests:\n  - name: a\n    code: x\n", 1, 1, "suite" },
		{ "suite: x\ntests: {name: a}\n", 2, 8, "tests must be a list" },
		{ "suite: x\ntests: []\n", 2, 8, "defines no tests" },
		{ "suite: x\ntest:\n  - name: a\n    code: x\n", 2, 1, "\"tests\"" },
		{ "suite: x\ntests:\n  - name: a\n    code: \"\"\n", 4, 11, "code is empty" },
		{ "suite: x\ntests:\n  - name: a\n    code: x\n    expect_error: a..b\n", 5, 19,
		  "not an exception type name" },
		{ "suite: x\ntests:\n  - name: a\n    code: x\n    expect_error: 1abc\n", 5, 19,
		  "not an exception type name" },
		{ "suite: x\ntests:\n  - name: a\n    code: x\n    expect_error: a.\n", 5, 19,
		  "not an exception type name" },
		{ "suite: x\ntests:\n  - name: \"a\\tb\"\n    code: x\n", 3, 11, "invalid test name" },
		{ "suite: x\ntests:\n  - name: a\n    code: x\n    requires: [nrf]\n", 5, 15,
		  "requires must be a mapping" },
		{ "suite: x\ntests:\n  - name: a\n    code: x\n    timeout: fast\n", 5, 14, "timeout" },
		{ "suite: x\ntests:\n  - name: scripts/add\n    code: x\ninclude:\n  - dir: scripts\n"
		  "    glob: add.py\n",
		  6, 10, "duplicate test name 'scripts/add'" },
		{ "suite: x\ninclude:\n  - dir: scripts\n    exclude: [add.py]\n    glob: add.py\n", 3,
		  10, "every script" },
		{ "suite: x\ninclude:\n  - dir: scripts\n    glob: \"sub/*.py\"\n", 4, 11,
		  "without '/'" },
		{ "suite: x\ninclude:\n  - dir: \"\"\n", 3, 10, "dir is empty" },
		{ "suite: x\ninclude: scripts\n", 2, 10, "include must be a list" },
		{ "suite: x\ndefaults: 3\ntests:\n  - name: a\n    code: x\n", 2, 11,
		  "defaults must be a mapping" },
		{ "suite: x\ntests:\n  - name: a\n    file: big.py\n", 4, 11, "larger than" },
	};
	char tmp[4096], path[4096], scripts[4096], cache[4096];
	CU_ASSERT_FATAL(make_tmp(tmp, sizeof tmp) == 0);
	path_in(path, sizeof path, tmp, "s.yaml");
	path_in(cache, sizeof cache, tmp, "cache");
	/* a copy of the scripts directory next to the snippets */
	path_in(scripts, sizeof scripts, tmp, "scripts");
	CU_ASSERT_FATAL(mkdir(scripts, 0700) == 0);
	CU_ASSERT_FATAL(write_file(scripts, "add.py", "print(1 + 1)\n", 0644) == 0);
	CU_ASSERT_FATAL(write_file(scripts, "add.py.exp", "2\n", 0644) == 0);
	/* one byte over the code bound */
	char *big = malloc(FARM_CODE_MAX_BYTES + 2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(big, '#', FARM_CODE_MAX_BYTES + 1);
	big[FARM_CODE_MAX_BYTES + 1] = '\0';
	CU_ASSERT_FATAL(write_file(tmp, "big.py", big, 0644) == 0);
	free(big);

	struct farm_suite_opts o = { .cache_dir = cache, .python = "/nonexistent/python3" };
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct farm_suite *s = NULL;
		struct farm_diags d = { 0 };
		struct farm_err e = { 0 };
		CU_ASSERT_FATAL(write_file(tmp, "s.yaml", cases[i].yaml, 0644) == 0);
		int rc = farm_suite_load(&s, path, &o, &d, &e);
		int ok = rc == FARM_EINVAL && !s &&
			 has_diag(&d, cases[i].line, cases[i].col, cases[i].needle);
		if (!ok) {
			fprintf(stderr, "\n  case %zu (rc %d), wanted %u:%u '%s', got:\n", i, rc,
				cases[i].line, cases[i].col, cases[i].needle);
			farm_diags_print(&d, stderr);
		}
		CU_ASSERT(ok);
		farm_suite_free(s);
		farm_diags_free(&d);
	}
	rm_rf(tmp);
}

/* ------------------------------------------------------------ the rest */

static void test_missing_file(void)
{
	struct farm_suite *s = NULL;
	struct farm_diags d = { 0 };
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(farm_suite_load(&s, SUITES "/no-such.yaml", NULL, &d, &e), FARM_ENOTFOUND);
	CU_ASSERT_PTR_NULL(s);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "no-such.yaml"));
	CU_ASSERT_EQUAL(d.n, 0);
	/* d may be NULL: problems are then only counted into the error */
	CU_ASSERT_EQUAL(farm_suite_load(&s, SUITES "/bad.yaml", NULL, NULL, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NULL(s);
	farm_suite_free(NULL);
}

static void test_regex_translation(void)
{
	static const struct {
		const char *yaml;  /* as written in a double-quoted YAML scalar */
		const char *want;  /* stored regex */
		const char *match; /* text it must match, or NULL */
	} cases[] = {
		{ "^MicroPython v\\\\d+\\\\.\\\\d+", "^MicroPython v[0-9]+\\.[0-9]+",
		  "MicroPython v1.22.0 on 2024-01-01" },
		{ "[\\\\d.]+x", "[0-9.]+x", "1.2x" },
		{ "a\\\\Db", "a[^0-9]b", "a-b" },
		{ "a\\\\\\\\d", "a\\\\d", "a\\d" },
		{ "[[:digit:]]\\\\t", "[[:digit:]]\t", "7\t" },
		{ "[]\\\\d]", "[]0-9]", "]" },
		{ "^x\\\\n", "^x\n", "x\n" },
		{ "\\\\w+\\\\s", "\\w+\\s", "ab " },
	};
	char tmp[4096], path[4096];
	CU_ASSERT_FATAL(make_tmp(tmp, sizeof tmp) == 0);
	path_in(path, sizeof path, tmp, "s.yaml");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char yaml[512];
		struct farm_suite *s = NULL;
		struct farm_diags d = { 0 };
		struct farm_err e = { 0 };
		snprintf(yaml, sizeof yaml,
			 "suite: rx\ntests:\n  - name: t\n    code: x\n    expect_regex: \"%s\"\n",
			 cases[i].yaml);
		CU_ASSERT_FATAL(write_file(tmp, "s.yaml", yaml, 0644) == 0);
		CU_ASSERT_EQUAL(load(&s, path, NULL, &d, &e), 0);
		if (s && s->n_tests == 1) {
			CU_ASSERT_STRING_EQUAL(s->tests[0].expect, cases[i].want);
			regex_t rx;
			CU_ASSERT_EQUAL(regcomp(&rx, s->tests[0].expect, REG_EXTENDED | REG_NOSUB), 0);
			CU_ASSERT_EQUAL(regexec(&rx, cases[i].match, 0, NULL, 0), 0);
			regfree(&rx);
		} else {
			CU_FAIL("regex suite did not load");
		}
		farm_suite_free(s);
		farm_diags_free(&d);
	}
	rm_rf(tmp);
}

static void test_names_and_globs(void)
{
	char tmp[4096], path[4096], cache[4096];
	struct farm_suite *s = NULL;
	struct farm_diags d = { 0 };
	struct farm_err e = { 0 };
	CU_ASSERT_FATAL(make_tmp(tmp, sizeof tmp) == 0);
	path_in(path, sizeof path, tmp, "s.yaml");
	path_in(cache, sizeof cache, tmp, "cache");
	char yaml[1024];
	snprintf(yaml, sizeof yaml,
		 "suite: globs\n"
		 "defaults: {timeout: 0.5}\n"
		 "tests:\n"
		 "  - {name: dotted, code: \"import asyncio\", expect_error: asyncio.CancelledError}\n"
		 "  - {name: empty-output, code: \"pass\", expect: \"\"}\n"
		 "include:\n"
		 "  - dir: %s/scripts/\n"
		 "    glob: \"[ai]*.py\"\n"
		 "  - dir: ./local//\n",
		 SUITES);
	CU_ASSERT_FATAL(write_file(tmp, "s.yaml", yaml, 0644) == 0);
	char local[4096];
	path_in(local, sizeof local, tmp, "local");
	CU_ASSERT_FATAL(mkdir(local, 0700) == 0);
	CU_ASSERT_FATAL(write_file(local, "one.py", "print(1)\n", 0644) == 0);
	CU_ASSERT_FATAL(write_file(local, "one.py.exp", "1\n", 0644) == 0);
	CU_ASSERT_FATAL(write_file(local, ".hidden.py", "print(1)\n", 0644) == 0);
	CU_ASSERT_FATAL(write_file(local, "-dash.py", "print('dash')\n", 0644) == 0);
	CU_ASSERT_FATAL(mkdir(local, 0700) != 0);
	char sub[4096];
	path_in(sub, sizeof sub, local, "subdir.py"); /* a directory is not a script */
	CU_ASSERT_FATAL(mkdir(sub, 0700) == 0);
	struct farm_suite_opts o = { .cache_dir = cache };
	CU_ASSERT_EQUAL_FATAL(load(&s, path, &o, &d, &e), 0);
	CU_ASSERT_EQUAL(s->n_tests, 6);
	const struct farm_test *t = find_test(s, "local/one");
	CU_ASSERT(t && t->expect && strcmp(t->expect, "1\n") == 0);
	t = find_test(s, "local/-dash"); /* not taken for an interpreter option */
	CU_ASSERT(t && t->expect && strcmp(t->expect, "dash\n") == 0);
	CU_ASSERT(s->n_tests == 6 && strcmp(s->tests[4].name, "local/-dash") == 0 &&
		  strcmp(s->tests[5].name, "local/one") == 0);
	t = find_test(s, "dotted");
	CU_ASSERT(t && t->expect_kind == FARM_EXPECT_ERROR &&
		  strcmp(t->expect, "asyncio.CancelledError") == 0 && t->timeout_ms == 500);
	t = find_test(s, "empty-output");
	CU_ASSERT(t && t->expect_kind == FARM_EXPECT_EXACT && strcmp(t->expect, "") == 0);
	/* a dir keeps its spelling in the test name, minus leading ./ and trailing / */
	char name[4096];
	snprintf(name, sizeof name, "%s/scripts/add", SUITES);
	t = find_test(s, name);
	CU_ASSERT(t && t->timeout_ms == 500 && t->expect && strcmp(t->expect, "2\n") == 0);
	snprintf(name, sizeof name, "%s/scripts/impl", SUITES);
	CU_ASSERT_PTR_NOT_NULL(find_test(s, name));
	farm_suite_free(s);
	farm_diags_free(&d);
	rm_rf(tmp);
}

/* Every suite shipped in suites/ loads without a problem. */
static void test_shipped_suites(void)
{
	char tmp[4096], cache[4096];
	glob_t g;
	CU_ASSERT_FATAL(make_tmp(tmp, sizeof tmp) == 0);
	path_in(cache, sizeof cache, tmp, "cache");
	struct farm_suite_opts o = { .cache_dir = cache };
	int grc = glob(SOURCE_DIR "/suites/*.yaml", 0, NULL, &g);
	CU_ASSERT(grc == 0 || grc == GLOB_NOMATCH);
	for (size_t i = 0; grc == 0 && i < g.gl_pathc; i++) {
		struct farm_suite *s = NULL;
		struct farm_diags d = { 0 };
		struct farm_err e = { 0 };
		int rc = farm_suite_load(&s, g.gl_pathv[i], &o, &d, &e);
		if (rc) {
			fprintf(stderr, "\n  %s: %s\n", g.gl_pathv[i], e.msg);
			farm_diags_print(&d, stderr);
		}
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT(s && s->n_tests > 0);
		farm_suite_free(s);
		farm_diags_free(&d);
	}
	if (grc == 0)
		globfree(&g);
	rm_rf(tmp);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("suite", NULL, NULL);
	if (!s)
		return -1;
	if (!CU_add_test(s, "feature table", test_feature_table) ||
	    !CU_add_test(s, "feature probes under CPython", test_feature_probes_under_cpython) ||
	    !CU_add_test(s, "good suite, python3 expectations and cache", test_good_suite_and_cache) ||
	    !CU_add_test(s, "default cache directory", test_default_cache_dir) ||
	    !CU_add_test(s, "unwritable cache degrades", test_cache_unwritable) ||
	    !CU_add_test(s, "python3 deadline, output bound, signal", test_python_deadline) ||
	    !CU_add_test(s, "bad suite diagnostics", test_bad_suite) ||
	    !CU_add_test(s, "one-problem snippets", test_snippets) ||
	    !CU_add_test(s, "missing file, NULL diags, free(NULL)", test_missing_file) ||
	    !CU_add_test(s, "regex shorthands", test_regex_translation) ||
	    !CU_add_test(s, "names, globs, dotted exceptions", test_names_and_globs) ||
	    !CU_add_test(s, "shipped suites load", test_shipped_suites))
		return -1;
	return 0;
}
