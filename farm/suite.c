/* mpfarm: REPL smoke-suite loader. Contract: suite.h; schema: suites/README.md.
 *
 * The loader validates the whole file and records every problem as a
 * diagnostic; only I/O the caller must know about (the suite file itself
 * unreadable, out of memory) is an error value. Directory tests without a
 * .exp file take their expected output from the host's python3, run through
 * posix_spawnp (never a shell) with a deadline, and cached by content hash. */
#include "suite.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "buf.h"
#include "ydoc.h"

#define SUITE_NAME_MAX 64
#define TEST_NAME_MAX 200
#define PATH_VALUE_MAX 4096
#define REQ_LIST_MAX 64
#define EXCLUDE_MAX 1000
#define TIMEOUT_MIN_MS 100u
#define TIMEOUT_MAX_MS 3600000u
#define STDERR_TAIL 4096
#define REASON_MAX 200

#define EMPTY_CODE_HINT "the program to run, e.g. code: print(1 + 1)"
#define TEXT_HINT "test code and expected output are text"

/* ------------------------------------------------------------------ tables */

static const char *const known_ports[] = {
	"rp2", "stm32", "esp32", "esp8266", "nrf", "samd", "mimxrt", "renesas-ra", "cc3200", "unix",
	NULL,
};

/* Each probe prints the line "1" when the board has the feature and "0"
 * otherwise; syntax that a build may lack goes through eval/exec so that the
 * snippet itself always compiles, and every probe catches its own failure. */
#define PROBE_EXPR(expr) \
	"try:\n    print(1 if (" expr ") else 0)\nexcept Exception:\n    print(0)\n"
#define PROBE_MODULE(m) \
	"try:\n    try:\n        import " m "\n    except ImportError:\n        import u" m \
	"\n    print(1)\nexcept Exception:\n    print(0)\n"
#define PROBE_EXEC(src, check) \
	"try:\n    exec(" src ")\n    print(1 if (" check ") else 0)\nexcept Exception:\n    print(0)\n"

struct feature {
	const char *name;
	const char *probe;
};

static const struct feature features[] = {
	{ "float", PROBE_EXPR("eval('1.5') * 2 == 3") },
	{ "complex", PROBE_EXPR("eval('1j * 1j') == -1") },
	{ "bigint", PROBE_EXPR("eval('2 ** 100') // eval('2 ** 98') == 4") },
	{ "set", PROBE_EXPR("len(set([1, 1, 2])) == 2") },
	{ "bytearray", PROBE_EXPR("bytearray(b'ab')[1] == 98") },
	{ "slice_assign",
	  PROBE_EXEC("'_farm_b = bytearray(b\"abc\")\\n_farm_b[1:2] = b\"xy\"'",
		     "_farm_b == bytearray(b'axyc')") },
	{ "fstrings", PROBE_EXPR("eval('f\"{1}\"') == '1'") },
	{ "unicode", PROBE_EXPR("len(str(b'\\xc3\\xa9', 'utf-8')) == 1") },
	{ "async", PROBE_EXEC("'async def _farm_a():\\n    pass'", "_farm_a") },
	{ "native",
	  PROBE_EXEC("'import micropython\\n@micropython.native\\ndef _farm_n():\\n    return 1'",
		     "_farm_n() == 1") },
	{ "viper",
	  PROBE_EXEC("'import micropython\\n@micropython.viper\\ndef _farm_v() -> int:\\n    return 1'",
		     "_farm_v() == 1") },
	{ "micropython", PROBE_MODULE("micropython") },
	{ "uctypes", PROBE_MODULE("uctypes") },
	{ "threading", PROBE_MODULE("_thread") },
	{ "gc", PROBE_MODULE("gc") },
	{ "struct", PROBE_MODULE("struct") },
	{ "re", PROBE_MODULE("re") },
	{ "json", PROBE_MODULE("json") },
	{ "collections", PROBE_MODULE("collections") },
	{ "array", PROBE_MODULE("array") },
	{ "math", PROBE_MODULE("math") },
	{ "cmath", PROBE_MODULE("cmath") },
	{ "io", PROBE_MODULE("io") },
	{ "os", PROBE_MODULE("os") },
	{ "time", PROBE_MODULE("time") },
	{ "random", PROBE_MODULE("random") },
	{ "binascii", PROBE_MODULE("binascii") },
	{ "hashlib", PROBE_MODULE("hashlib") },
	{ "heapq", PROBE_MODULE("heapq") },
	{ "select", PROBE_MODULE("select") },
	{ "socket", PROBE_MODULE("socket") },
	{ "ssl", PROBE_MODULE("ssl") },
	{ "asyncio", PROBE_MODULE("asyncio") },
	{ "machine", PROBE_MODULE("machine") },
	{ "network", PROBE_MODULE("network") },
	{ "bluetooth", PROBE_MODULE("bluetooth") },
	{ "framebuf", PROBE_MODULE("framebuf") },
};

#define N_FEATURES (sizeof features / sizeof features[0])

/* The same names as features[], NULL-terminated, for did-you-mean. */
static const char *const feature_names[] = {
	"float", "complex", "bigint", "set", "bytearray", "slice_assign", "fstrings", "unicode",
	"async", "native", "viper", "micropython", "uctypes", "threading", "gc", "struct", "re",
	"json", "collections", "array", "math", "cmath", "io", "os", "time", "random", "binascii",
	"hashlib", "heapq", "select", "socket", "ssl", "asyncio", "machine", "network", "bluetooth",
	"framebuf", NULL,
};

_Static_assert(sizeof feature_names / sizeof feature_names[0] == N_FEATURES + 1,
	       "feature_names must list every feature");

const char *farm_suite_feature_probe(const char *feature)
{
	if (!feature)
		return NULL;
	for (size_t i = 0; i < N_FEATURES; i++)
		if (strcmp(features[i].name, feature) == 0)
			return features[i].probe;
	return NULL;
}

const char *const *farm_suite_feature_names(void)
{
	return feature_names;
}

/* ------------------------------------------------------------------ freeing */

/* Lists here are malloc'd arrays of strdup'd strings (as farm_yget_strlist
 * makes them); unlike farm_strv_free this is defined for v == NULL. */
static void strv_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void req_free(struct farm_requires *r)
{
	strv_free(r->ports, r->n_ports);
	strv_free(r->tags, r->n_tags);
	strv_free(r->features, r->n_features);
	memset(r, 0, sizeof *r);
}

static void test_free(struct farm_test *t)
{
	free(t->name);
	free(t->code);
	free(t->expect);
	req_free(&t->req);
	free(t->file);
	free(t->skip_reason);
	memset(t, 0, sizeof *t);
}

void farm_suite_free(struct farm_suite *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_tests; i++)
		test_free(&s->tests[i]);
	free(s->tests);
	free(s->name);
	free(s->path);
	free(s);
}

/* ------------------------------------------------------------------ loader */

struct pos {
	unsigned line, col;
};

struct loader {
	const char *path;          /* suite file, as given */
	char *dir;                 /* its directory */
	const struct farm_ydoc *doc;
	struct farm_diags *d;
	struct farm_err *e;
	struct farm_suite *s;
	size_t cap;
	struct pos *pos;           /* where each test was defined (for duplicates) */
	int too_many;              /* the FARM_SUITE_MAX_TESTS diagnostic was given */
	unsigned timeout_def;      /* defaults.timeout, ms (0 = board default) */
	struct farm_requires req_def;
	/* host python3 */
	const char *python_key;    /* as configured: part of the cache key */
	char *python_run;          /* what is spawned (relative paths made absolute) */
	unsigned py_timeout_ms;
	/* expectation cache */
	char *cache_base;          /* NULL = no cache */
	int cache_state;           /* 0 = not prepared, 1 = ready, -1 = disabled */
};

static int oom(struct loader *ld)
{
	return farm_err_set(ld->e, FARM_ENOMEM, "%s: out of memory", ld->path);
}

static void diag(struct loader *ld, const struct farm_ynode *at, const char *hint,
		 const char *fmt, ...) FARM_PRINTF(4, 5);

static void diag(struct loader *ld, const struct farm_ynode *at, const char *hint,
		 const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	farm_diags_add(ld->d, ld->path, at ? at->line : 0, at ? at->col : 0, hint, "%s", msg);
}

static char *join(const char *dir, const char *rel)
{
	struct farm_buf b = { 0 };
	if (rel[0] == '/' || !dir[0] || strcmp(dir, ".") == 0) {
		if (farm_buf_puts(&b, rel))
			goto fail;
	} else if (farm_buf_printf(&b, "%s/%s", dir, rel)) {
		goto fail;
	}
	return farm_buf_steal(&b);
fail:
	farm_buf_free(&b);
	return NULL;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

/* Item i of a node that farm_yget_strlist read (a scalar or a sequence). */
static const struct farm_ynode *list_item(const struct farm_ynode *n, size_t i)
{
	if (n && n->kind == FARM_YSEQ && i < n->n)
		return n->items[i];
	return n;
}

static int strv_dup(char ***out, size_t *n_out, char *const *v, size_t n)
{
	*out = NULL;
	*n_out = 0;
	if (!n)
		return 0;
	char **c = calloc(n, sizeof *c);
	if (!c)
		return FARM_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		c[i] = strdup(v[i]);
		if (!c[i]) {
			strv_free(c, i);
			return FARM_ENOMEM;
		}
	}
	*out = c;
	*n_out = n;
	return 0;
}

/* -------------------------------------------------------------- requires */

enum { REQ_PORT = 1, REQ_TAGS = 2, REQ_FEATURES = 4 };

static int valid_word(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static void check_names(struct loader *ld, const struct farm_ynode *n, char **v, size_t cnt,
			const char *what, const char *const *known)
{
	for (size_t i = 0; i < cnt; i++) {
		const struct farm_ynode *at = list_item(n, i);
		if (known) {
			int found = 0;
			for (size_t k = 0; known[k]; k++)
				if (strcmp(known[k], v[i]) == 0)
					found = 1;
			if (found)
				continue;
			char hint[256];
			const char *best = farm_did_you_mean(v[i], known);
			if (best)
				snprintf(hint, sizeof hint, "did you mean '%s'?", best);
			else
				snprintf(hint, sizeof hint, "see suites/README.md for the known %s names",
					 what);
			diag(ld, at, hint, "unknown %s '%s'", what, v[i]);
		} else if (!valid_word(v[i], 64)) {
			diag(ld, at, "use 1-64 of A-Z a-z 0-9 . _ -", "invalid %s '%s'", what, v[i]);
		}
	}
}

/* Parse a requires: mapping into r; *present says which keys it had. */
static int parse_requires(struct loader *ld, const struct farm_ynode *n, struct farm_requires *r,
			  unsigned *present)
{
	static const char *const known[] = { "port", "tags", "features", NULL };
	*present = 0;
	if (!n)
		return 0;
	if (farm_ycheck_kind(ld->doc, n, FARM_YMAP, "requires", ld->d))
		return 0;
	farm_ycheck_keys(ld->doc, n, known, "requires", ld->d);

	const struct farm_ynode *v = farm_ymap_get(n, "port");
	if (v) {
		*present |= REQ_PORT;
		if (farm_yget_strlist(ld->doc, v, "requires.port", REQ_LIST_MAX, &r->ports,
				      &r->n_ports, ld->d) == 0)
			check_names(ld, v, r->ports, r->n_ports, "port", known_ports);
	}
	v = farm_ymap_get(n, "tags");
	if (v) {
		*present |= REQ_TAGS;
		if (farm_yget_strlist(ld->doc, v, "requires.tags", REQ_LIST_MAX, &r->tags,
				      &r->n_tags, ld->d) == 0)
			check_names(ld, v, r->tags, r->n_tags, "tag", NULL);
	}
	v = farm_ymap_get(n, "features");
	if (v) {
		*present |= REQ_FEATURES;
		if (farm_yget_strlist(ld->doc, v, "requires.features", REQ_LIST_MAX, &r->features,
				      &r->n_features, ld->d) == 0)
			check_names(ld, v, r->features, r->n_features, "feature", feature_names);
	}
	return 0;
}

/* Every key absent from the test's own requires: comes from defaults. */
static int requires_inherit(struct loader *ld, struct farm_requires *r, unsigned present)
{
	const struct farm_requires *def = &ld->req_def;
	if (!(present & REQ_PORT) && strv_dup(&r->ports, &r->n_ports, def->ports, def->n_ports))
		return oom(ld);
	if (!(present & REQ_TAGS) && strv_dup(&r->tags, &r->n_tags, def->tags, def->n_tags))
		return oom(ld);
	if (!(present & REQ_FEATURES) &&
	    strv_dup(&r->features, &r->n_features, def->features, def->n_features))
		return oom(ld);
	return 0;
}

/* ------------------------------------------------------------------ regex */

/* Rewrite the Python shorthands glibc's ERE lacks (\d \D \n \t \r) into POSIX
 * form. Returns a malloc'd string (NULL: out of memory); *bad names an escape
 * that cannot be rewritten. */
static char *regex_translate(const char *re, const char **bad)
{
	struct farm_buf b = { 0 };
	int in_br = 0, rc = 0;
	*bad = NULL;
	for (size_t i = 0; re[i] && !rc;) {
		char c = re[i];
		if (!in_br) {
			if (c == '\\' && re[i + 1]) {
				const char *rep = NULL;
				char lit[2] = { 0, 0 };
				switch (re[i + 1]) {
				case 'd': rep = "[0-9]"; break;
				case 'D': rep = "[^0-9]"; break;
				case 'n': lit[0] = '\n'; rep = lit; break;
				case 't': lit[0] = '\t'; rep = lit; break;
				case 'r': lit[0] = '\r'; rep = lit; break;
				}
				rc = rep ? farm_buf_puts(&b, rep) : farm_buf_append(&b, re + i, 2);
				i += 2;
				continue;
			}
			if (c == '[') {
				in_br = 1;
				rc = farm_buf_append(&b, "[", 1);
				i++;
				if (re[i] == '^')
					rc = rc ? rc : farm_buf_append(&b, re + i++, 1);
				if (re[i] == ']')
					rc = rc ? rc : farm_buf_append(&b, re + i++, 1);
				continue;
			}
			rc = farm_buf_append(&b, &c, 1);
			i++;
			continue;
		}
		/* inside a bracket expression */
		if (c == '[' && (re[i + 1] == ':' || re[i + 1] == '.' || re[i + 1] == '=')) {
			char close[3] = { re[i + 1], ']', 0 };
			const char *end = strstr(re + i + 2, close);
			size_t n = end ? (size_t)(end - (re + i)) + 2 : strlen(re + i);
			rc = farm_buf_append(&b, re + i, n);
			i += n;
			continue;
		}
		if (c == '\\' && re[i + 1] == 'd') {
			rc = farm_buf_puts(&b, "0-9");
			i += 2;
			continue;
		}
		if (c == '\\' && re[i + 1] == 'D') {
			*bad = "\\D inside [...]";
			rc = farm_buf_append(&b, re + i, 2);
			i += 2;
			continue;
		}
		if (c == '\\' && (re[i + 1] == 'n' || re[i + 1] == 't' || re[i + 1] == 'r')) {
			char lit = re[i + 1] == 'n' ? '\n' : re[i + 1] == 't' ? '\t' : '\r';
			rc = farm_buf_append(&b, &lit, 1);
			i += 2;
			continue;
		}
		if (c == ']')
			in_br = 0;
		rc = farm_buf_append(&b, &c, 1);
		i++;
	}
	if (rc) {
		farm_buf_free(&b);
		return NULL;
	}
	return farm_buf_steal(&b);
}

static int valid_exception_name(const char *s)
{
	int at_start = 1;
	if (!*s || strlen(s) > 128)
		return 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
		int digit = c >= '0' && c <= '9';
		if (c == '.') {
			if (at_start)
				return 0;
			at_start = 1;
			continue;
		}
		if (at_start ? !alpha : !(alpha || digit))
			return 0;
		at_start = 0;
	}
	return !at_start;
}

static int valid_test_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > TEST_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

/* ------------------------------------------------------------- test list */

static int push_test(struct loader *ld, struct farm_test *t, const struct farm_ynode *at)
{
	struct farm_suite *s = ld->s;
	if (s->n_tests >= FARM_SUITE_MAX_TESTS) {
		if (!ld->too_many)
			diag(ld, at, "split the suite into several files",
			     "more than %u tests in one suite", (unsigned)FARM_SUITE_MAX_TESTS);
		ld->too_many = 1;
		test_free(t);
		return 0;
	}
	if (s->n_tests == ld->cap) {
		size_t cap = ld->cap ? ld->cap * 2 : 16;
		struct farm_test *v = realloc(s->tests, cap * sizeof *v);
		if (!v)
			goto nomem;
		s->tests = v;
		struct pos *p = realloc(ld->pos, cap * sizeof *p);
		if (!p)
			goto nomem;
		ld->pos = p;
		ld->cap = cap;
	}
	s->tests[s->n_tests] = *t;
	ld->pos[s->n_tests].line = at ? at->line : 0;
	ld->pos[s->n_tests].col = at ? at->col : 0;
	s->n_tests++;
	memset(t, 0, sizeof *t);
	return 0;
nomem:
	test_free(t);
	return oom(ld);
}

struct name_ref {
	const char *name;
	size_t idx;
};

static int name_ref_cmp(const void *a, const void *b)
{
	const struct name_ref *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int check_duplicates(struct loader *ld)
{
	struct farm_suite *s = ld->s;
	size_t n = 0;
	struct name_ref *v = s->n_tests ? calloc(s->n_tests, sizeof *v) : NULL;
	if (s->n_tests && !v)
		return oom(ld);
	for (size_t i = 0; i < s->n_tests; i++)
		if (s->tests[i].name)
			v[n++] = (struct name_ref){ s->tests[i].name, i };
	if (n > 1)
		qsort(v, n, sizeof *v, name_ref_cmp);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(v[i].name, v[i - 1].name) != 0)
			continue;
		size_t first = i - 1;
		while (first > 0 && strcmp(v[first - 1].name, v[i].name) == 0)
			first--;
		const struct pos *p = &ld->pos[v[i].idx];
		const struct pos *p0 = &ld->pos[v[first].idx];
		char hint[128];
		snprintf(hint, sizeof hint, "first defined at line %u; test names must be unique",
			 p0->line);
		farm_diags_add(ld->d, ld->path, p->line, p->col, hint, "duplicate test name '%s'",
			       v[i].name);
	}
	free(v);
	return 0;
}

/* ------------------------------------------------------------ sha / cache */

static int cache_key(const char *script, size_t len, const char *python, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	int rc = -1;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c)
		return -1;
	if (EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(c, script, len) != 1 ||
	    EVP_DigestUpdate(c, python, strlen(python)) != 1 || EVP_DigestFinal_ex(c, md, &md_len) != 1 ||
	    md_len != 32)
		goto out;
	for (unsigned i = 0; i < md_len; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	rc = 0;
out:
	EVP_MD_CTX_free(c);
	return rc;
}

static char *cache_base_dir(const char *configured)
{
	struct farm_buf b = { 0 };
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	int rc;
	if (configured && configured[0])
		rc = farm_buf_puts(&b, configured);
	else if (xdg && xdg[0] == '/')
		rc = farm_buf_printf(&b, "%s/mpfarm", xdg);
	else if (home && home[0])
		rc = farm_buf_printf(&b, "%s/.cache/mpfarm", home);
	else
		return NULL;
	if (rc) {
		farm_buf_free(&b);
		return NULL;
	}
	return farm_buf_steal(&b);
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof tmp)
		return -1;
	memcpy(tmp, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		char saved = tmp[i];
		tmp[i] = '\0';
		if (mkdir(tmp, mode) != 0 && errno != EEXIST)
			return -1;
		tmp[i] = saved;
	}
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

static char *cache_file(const struct loader *ld, const char *key)
{
	struct farm_buf b = { 0 };
	if (farm_buf_printf(&b, "%s/exp/%s.exp", ld->cache_base, key)) {
		farm_buf_free(&b);
		return NULL;
	}
	return farm_buf_steal(&b);
}

/* 0 = hit (out filled); anything else = miss. */
static int cache_read(struct loader *ld, const char *key, struct farm_buf *out)
{
	if (!ld->cache_base || ld->cache_state < 0 || !key[0])
		return -1;
	char *path = cache_file(ld, key);
	if (!path)
		return -1;
	int rc = farm_buf_read_file(out, path, FARM_EXPECT_MAX_BYTES, NULL);
	if (rc)
		farm_buf_reset(out);
	free(path);
	return rc;
}

/* Best effort: any failure disables the cache for the rest of the load. */
static void cache_write(struct loader *ld, const char *key, const struct farm_buf *data)
{
	char *path = NULL, *tmp = NULL, *exp_dir = NULL;
	int fd = -1, ok = 0;
	if (!ld->cache_base || ld->cache_state < 0 || !key[0])
		return;
	exp_dir = join(ld->cache_base, "exp");
	if (!exp_dir)
		goto out;
	if (ld->cache_state == 0) {
		if (mkdir_p(ld->cache_base, 0700) || mkdir_p(exp_dir, 0700))
			goto out;
		ld->cache_state = 1;
	}
	path = cache_file(ld, key);
	struct farm_buf tb = { 0 };
	if (!path || farm_buf_printf(&tb, "%s.XXXXXX", path)) {
		farm_buf_free(&tb);
		goto out;
	}
	tmp = farm_buf_steal(&tb);
	if (!tmp)
		goto out;
	fd = mkstemp(tmp);
	if (fd < 0) {
		free(tmp);
		tmp = NULL;
		goto out;
	}
	for (size_t off = 0; off < data->len;) {
		ssize_t w = write(fd, data->data + off, data->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto out;
		off += (size_t)w;
	}
	if (fsync(fd) != 0)
		goto out;
	int crc = close(fd);
	fd = -1;
	if (crc != 0 || rename(tmp, path) != 0)
		goto out;
	ok = 1;
out:
	if (fd >= 0)
		close(fd);
	if (!ok) {
		if (tmp)
			unlink(tmp);
		ld->cache_state = -1;
	}
	free(tmp);
	free(path);
	free(exp_dir);
}

/* ------------------------------------------------------------ host python */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void last_line(const struct farm_buf *b, char *dst, size_t dst_len)
{
	dst[0] = '\0';
	if (!b->len)
		return;
	size_t end = b->len;
	while (end > 0 && (b->data[end - 1] == '\n' || b->data[end - 1] == '\r' ||
			   b->data[end - 1] == ' '))
		end--;
	size_t start = end;
	while (start > 0 && b->data[start - 1] != '\n')
		start--;
	while (start < end && (b->data[start] == ' ' || b->data[start] == '\t'))
		start++;
	size_t n = end - start;
	if (n >= dst_len)
		n = dst_len - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)b->data[start + i];
		dst[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	dst[n] = '\0';
}

static void kill_child(pid_t pid)
{
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
}

/* Run "<python> -B -S <fname>" in dir with a deadline. Returns 0 with out
 * holding its stdout when it exited 0; 1 with why set when it could not
 * produce an expected output; FARM_ENOMEM (e set) when memory ran out. */
static int run_python(struct loader *ld, const char *dir, const char *fname, struct farm_buf *out,
		      char *why, size_t why_len)
{
	int outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int fa_ok = 0, at_ok = 0, rc = 1, src, status = 0, timed_out = 0, too_big = 0;
	pid_t pid = -1;
	struct farm_buf err = { 0 };
	char arg_b[] = "-B", arg_s[] = "-S";
	struct farm_buf sb = { 0 };
	/* "./" keeps a script named "-x.py" from being read as an option */
	char *script = farm_buf_printf(&sb, "%s%s", fname[0] == '-' ? "./" : "", fname) == 0
			       ? farm_buf_steal(&sb)
			       : NULL;
	char *argv[] = { ld->python_run, arg_b, arg_s, script, NULL };

	out->limit = FARM_EXPECT_MAX_BYTES;
	if (!script) {
		farm_buf_free(&sb);
		rc = oom(ld);
		goto out;
	}
	if (pipe2(outp, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
		snprintf(why, why_len, "cannot create a pipe: %s", strerror(errno));
		goto out;
	}
	if ((src = posix_spawn_file_actions_init(&fa)) != 0)
		goto spawn_fail;
	fa_ok = 1;
	if ((src = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) != 0 ||
	    (src = posix_spawn_file_actions_adddup2(&fa, outp[1], 1)) != 0 ||
	    (src = posix_spawn_file_actions_adddup2(&fa, errp[1], 2)) != 0 ||
	    (src = posix_spawn_file_actions_addchdir_np(&fa, dir)) != 0)
		goto spawn_fail;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
	/* the interpreter has no business with our serial ports and sockets */
	if ((src = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) != 0)
		goto spawn_fail;
#endif
	if ((src = posix_spawnattr_init(&at)) != 0)
		goto spawn_fail;
	at_ok = 1;
	sigset_t none, dfl;
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGQUIT);
	if ((src = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
							 POSIX_SPAWN_SETSIGDEF)) != 0 ||
	    (src = posix_spawnattr_setpgroup(&at, 0)) != 0 ||
	    (src = posix_spawnattr_setsigmask(&at, &none)) != 0 ||
	    (src = posix_spawnattr_setsigdefault(&at, &dfl)) != 0)
		goto spawn_fail;
	src = posix_spawnp(&pid, ld->python_run, &fa, &at, argv, environ);
	if (src != 0) {
		pid = -1;
		goto spawn_fail;
	}
	close(outp[1]);
	close(errp[1]);
	outp[1] = errp[1] = -1;

	int64_t deadline = now_ms() + ld->py_timeout_ms;
	struct pollfd p[2] = { { .fd = outp[0], .events = POLLIN }, { .fd = errp[0], .events = POLLIN } };
	while (p[0].fd >= 0 || p[1].fd >= 0) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			timed_out = 1;
			break;
		}
		int n = poll(p, 2, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, why_len, "poll failed: %s", strerror(errno));
			goto out;
		}
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			char chunk[4096];
			ssize_t r = read(p[i].fd, chunk, sizeof chunk);
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r <= 0) {
				p[i].fd = -1;
				continue;
			}
			if (i == 0) {
				int arc = farm_buf_append(out, chunk, (size_t)r);
				if (arc == FARM_ELIMIT) {
					too_big = 1;
					break;
				}
				if (arc) {
					rc = oom(ld);
					goto out;
				}
			} else {
				if (farm_buf_append(&err, chunk, (size_t)r)) {
					rc = oom(ld);
					goto out;
				}
				farm_buf_keep_tail(&err, STDERR_TAIL);
			}
		}
		if (too_big)
			break;
	}
	/* Output closed: wait for the exit, still within the deadline. */
	while (!timed_out && !too_big) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid) {
			pid = -1;
			break;
		}
		if (w < 0 && errno != EINTR) {
			snprintf(why, why_len, "waitpid failed: %s", strerror(errno));
			goto out;
		}
		if (now_ms() >= deadline) {
			timed_out = 1;
			break;
		}
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (timed_out) {
		snprintf(why, why_len, "%s timed out after %u ms", ld->python_key, ld->py_timeout_ms);
		goto out;
	}
	if (too_big) {
		snprintf(why, why_len, "%s printed more than %u bytes", ld->python_key,
			 (unsigned)FARM_EXPECT_MAX_BYTES);
		goto out;
	}
	if (WIFSIGNALED(status)) {
		snprintf(why, why_len, "%s was killed by signal %d", ld->python_key, WTERMSIG(status));
		goto out;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
		char line[REASON_MAX];
		last_line(&err, line, sizeof line);
		snprintf(why, why_len, "%s exited with status %d%s%s", ld->python_key,
			 WEXITSTATUS(status), line[0] ? ": " : "", line);
		goto out;
	}
	rc = 0;
	goto out;
spawn_fail:
	snprintf(why, why_len, "cannot run %s: %s", ld->python_key, strerror(src));
out:
	if (pid > 0) {
		kill_child(pid);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (at_ok)
		posix_spawnattr_destroy(&at);
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	farm_buf_free(&err);
	free(script);
	out->limit = 0;
	return rc;
}

/* Expected output of a script without .exp: cache, else the host python3.
 * Same return convention as run_python. */
static int python_expect(struct loader *ld, const char *dir, const char *fname,
			 const struct farm_buf *script, struct farm_buf *out, char *why,
			 size_t why_len)
{
	char key[65] = "";
	if (cache_key(script->data, script->len, ld->python_key, key) != 0)
		key[0] = '\0';
	if (cache_read(ld, key, out) == 0)
		return 0;
	int rc = run_python(ld, dir, fname, out, why, why_len);
	if (rc == 0)
		cache_write(ld, key, out);
	return rc;
}

/* ------------------------------------------------------------ YAML tests */

static int parse_timeout(struct loader *ld, const struct farm_ynode *v, unsigned *ms)
{
	if (!v)
		return 0;
	unsigned t = 0;
	if (farm_yget_ms(ld->doc, v, "timeout", TIMEOUT_MIN_MS, TIMEOUT_MAX_MS, &t, ld->d) == 0)
		*ms = t;
	return 0;
}

/* code: or file: into t->code. */
static int parse_code(struct loader *ld, const struct farm_ynode *tn, struct farm_test *t)
{
	const struct farm_ynode *code = farm_ymap_get(tn, "code");
	const struct farm_ynode *file = farm_ymap_get(tn, "file");
	if (code && file) {
		diag(ld, file, "give the source inline (code:) or from a file (file:), not both",
		     "test has both code and file");
		return 0;
	}
	if (!code && !file) {
		diag(ld, tn, "add code: (inline source) or file: (a script next to the suite)",
		     "test has neither code nor file");
		return 0;
	}
	if (code) {
		if (farm_ycheck_kind(ld->doc, code, FARM_YSCALAR, "code", ld->d))
			return 0;
		if (farm_yscalar_is_null(code)) {
			diag(ld, code, EMPTY_CODE_HINT, "code is empty");
			return 0;
		}
		if (code->str && strlen(code->str) != code->len) {
			diag(ld, code, TEXT_HINT, "code contains a NUL byte");
			return 0;
		}
		if (farm_yget_str(ld->doc, code, "code", FARM_CODE_MAX_BYTES, &t->code, ld->d))
			return 0;
		t->code_len = strlen(t->code);
		if (t->code_len == 0)
			diag(ld, code, EMPTY_CODE_HINT, "code is empty");
		return 0;
	}
	char *rel = NULL, *path = NULL;
	struct farm_buf b = { 0 };
	struct farm_err fe = { 0 };
	int rc = 0;
	if (farm_yget_str(ld->doc, file, "file", PATH_VALUE_MAX, &rel, ld->d))
		goto out;
	if (!rel || !rel[0]) {
		diag(ld, file, "a script path, relative to the suite's directory", "file is empty");
		goto out;
	}
	path = join(ld->dir, rel);
	if (!path) {
		rc = oom(ld);
		goto out;
	}
	int frc = farm_buf_read_file(&b, path, FARM_CODE_MAX_BYTES, &fe);
	if (frc == FARM_ENOMEM) {
		rc = oom(ld);
		goto out;
	}
	if (frc == FARM_ELIMIT) {
		diag(ld, file, "split the test or use a directory include", "%s is larger than %u bytes",
		     path, (unsigned)FARM_CODE_MAX_BYTES);
		goto out;
	}
	if (frc) {
		char hint[PATH_VALUE_MAX + 64];
		snprintf(hint, sizeof hint, "file: is relative to the suite's directory (%s)", ld->dir);
		diag(ld, file, hint, "%s", fe.msg);
		goto out;
	}
	if (strlen(b.data) != b.len) {
		diag(ld, file, TEXT_HINT, "%s contains a NUL byte", path);
		goto out;
	}
	if (b.len == 0) {
		diag(ld, file, EMPTY_CODE_HINT, "%s is empty", path);
		goto out;
	}
	t->code_len = b.len;
	t->code = farm_buf_steal(&b);
	if (!t->code)
		rc = oom(ld);
out:
	farm_buf_free(&b);
	free(rel);
	free(path);
	return rc;
}

static int parse_expect(struct loader *ld, const struct farm_ynode *tn, struct farm_test *t)
{
	static const char *const keys[] = { "expect", "expect_regex", "expect_error" };
	const struct farm_ynode *which = NULL;
	size_t k = 0;
	for (size_t i = 0; i < 3; i++) {
		const struct farm_ynode *v = farm_ymap_get(tn, keys[i]);
		if (!v)
			continue;
		if (which) {
			diag(ld, v, "a test checks its output one way: expect, expect_regex or expect_error",
			     "%s conflicts with %s", keys[i], keys[k]);
			continue;
		}
		which = v;
		k = i;
	}
	if (!which) {
		t->expect_kind = FARM_EXPECT_ANY;
		return 0;
	}
	if (farm_ycheck_kind(ld->doc, which, FARM_YSCALAR, keys[k], ld->d))
		return 0;
	if (farm_yscalar_is_null(which)) {
		diag(ld, which, "write \"\" to expect no output, or drop the key to only check that "
				"the code runs", "%s has no value", keys[k]);
		return 0;
	}
	if (which->str && strlen(which->str) != which->len) {
		diag(ld, which, TEXT_HINT, "%s contains a NUL byte", keys[k]);
		return 0;
	}
	char *v = NULL;
	if (farm_yget_str(ld->doc, which, keys[k], FARM_EXPECT_MAX_BYTES, &v, ld->d))
		return 0;
	if (k == 0) {
		t->expect_kind = FARM_EXPECT_EXACT;
		t->expect = v;
		return 0;
	}
	if (k == 2) {
		if (!valid_exception_name(v)) {
			diag(ld, which, "an exception type name, e.g. ZeroDivisionError or OSError",
			     "expect_error '%s' is not an exception type name", v);
			free(v);
			return 0;
		}
		t->expect_kind = FARM_EXPECT_ERROR;
		t->expect = v;
		return 0;
	}
	const char *bad = NULL;
	char *re = regex_translate(v, &bad);
	free(v);
	if (!re)
		return oom(ld);
	if (bad) {
		diag(ld, which, "write the class out, e.g. [^0-9] instead of [\\D]",
		     "expect_regex: %s is not supported", bad);
		free(re);
		return 0;
	}
	regex_t rx;
	int rrc = regcomp(&rx, re, REG_EXTENDED | REG_NOSUB);
	if (rrc != 0) {
		char msg[256];
		regerror(rrc, &rx, msg, sizeof msg);
		diag(ld, which,
		     "POSIX extended syntax: no (?...) groups or lazy quantifiers; \\d \\D \\n \\t \\r "
		     "are accepted",
		     "expect_regex does not compile: %s", msg);
		free(re);
		return 0;
	}
	regfree(&rx);
	t->expect_kind = FARM_EXPECT_REGEX;
	t->expect = re;
	return 0;
}

static int parse_test(struct loader *ld, const struct farm_ynode *tn)
{
	static const char *const known[] = {
		"name", "code", "file", "expect", "expect_regex", "expect_error", "timeout", "requires",
		NULL,
	};
	struct farm_test t = { 0 };
	unsigned present = 0;
	int rc = 0;
	if (farm_ycheck_kind(ld->doc, tn, FARM_YMAP, "test", ld->d))
		return 0;
	farm_ycheck_keys(ld->doc, tn, known, "test", ld->d);

	const struct farm_ynode *name = farm_ymap_get(tn, "name");
	if (farm_yrequire(ld->doc, tn, "name", "test", ld->d) == 0 &&
	    farm_yget_str(ld->doc, name, "name", TEST_NAME_MAX, &t.name, ld->d) == 0 &&
	    !valid_test_name(t.name)) {
		diag(ld, name, "1-200 printable characters", "invalid test name '%s'", t.name);
	}
	if ((rc = parse_code(ld, tn, &t)) != 0)
		goto out;
	if ((rc = parse_expect(ld, tn, &t)) != 0)
		goto out;
	t.timeout_ms = ld->timeout_def;
	parse_timeout(ld, farm_ymap_get(tn, "timeout"), &t.timeout_ms);
	parse_requires(ld, farm_ymap_get(tn, "requires"), &t.req, &present);
	if ((rc = requires_inherit(ld, &t.req, present)) != 0)
		goto out;
	t.file = strdup(ld->path);
	if (!t.file) {
		rc = oom(ld);
		goto out;
	}
	t.line = tn->line;
	rc = push_test(ld, &t, name ? name : tn);
out:
	test_free(&t);
	return rc;
}

/* ------------------------------------------------------- directory tests */

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_py_suffix(const char *s)
{
	size_t n = strlen(s);
	return n > 3 && strcmp(s + n - 3, ".py") == 0;
}

/* "./basics/" -> "basics"; "." -> "" */
static char *test_prefix(const char *dir)
{
	while (dir[0] == '.' && dir[1] == '/')
		dir += 2;
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n == 1 && dir[0] == '.')
		n = 0;
	return strndup(dir, n);
}

struct include {
	const struct farm_ynode *at;  /* the dir: value */
	const char *abs_dir;
	const char *prefix;
	unsigned timeout_ms;
	const struct farm_requires *req;
};

static int add_dir_test(struct loader *ld, const struct include *inc, const char *fname)
{
	struct farm_test t = { 0 };
	struct farm_buf script = { 0 }, exp = { 0 };
	struct farm_err fe = { 0 };
	char *exp_path = NULL;
	char why[512];
	int rc = 0, frc;

	t.file = join(inc->abs_dir, fname);
	size_t stem = strlen(fname) - 3;
	struct farm_buf nb = { 0 };
	if (!t.file || (inc->prefix[0] ? farm_buf_printf(&nb, "%s/%.*s", inc->prefix, (int)stem, fname)
					: farm_buf_printf(&nb, "%.*s", (int)stem, fname))) {
		farm_buf_free(&nb);
		rc = oom(ld);
		goto out;
	}
	t.name = farm_buf_steal(&nb);
	if (!t.name) {
		rc = oom(ld);
		goto out;
	}
	t.skip_on_output_skip = 1;
	t.timeout_ms = inc->timeout_ms;
	if (strv_dup(&t.req.ports, &t.req.n_ports, inc->req->ports, inc->req->n_ports) ||
	    strv_dup(&t.req.tags, &t.req.n_tags, inc->req->tags, inc->req->n_tags) ||
	    strv_dup(&t.req.features, &t.req.n_features, inc->req->features, inc->req->n_features)) {
		rc = oom(ld);
		goto out;
	}

	frc = farm_buf_read_file(&script, t.file, FARM_CODE_MAX_BYTES, &fe);
	if (frc == FARM_ENOMEM) {
		rc = oom(ld);
		goto out;
	}
	if (frc) {
		diag(ld, inc->at, frc == FARM_ELIMIT ? "exclude it, or split it" : "exclude it, or fix its permissions",
		     "%s", fe.msg);
		goto out;
	}
	if (strlen(script.data) != script.len) {
		diag(ld, inc->at, "exclude it", "%s contains a NUL byte", t.file);
		goto out;
	}

	if (farm_buf_printf(&exp, "%s.exp", t.file)) {
		rc = oom(ld);
		goto out;
	}
	exp_path = farm_buf_steal(&exp);
	if (!exp_path) {
		rc = oom(ld);
		goto out;
	}
	farm_err_clear(&fe);
	frc = farm_buf_read_file(&exp, exp_path, FARM_EXPECT_MAX_BYTES, &fe);
	if (frc == FARM_ENOMEM) {
		rc = oom(ld);
		goto out;
	}
	if (frc == 0) {
		t.expect_kind = FARM_EXPECT_EXACT;
	} else if (frc != FARM_ENOTFOUND) {
		diag(ld, inc->at, "the .exp file next to a script holds its expected output", "%s",
		     fe.msg);
		goto out;
	} else {
		farm_buf_reset(&exp);
		int prc = python_expect(ld, inc->abs_dir, fname, &script, &exp, why, sizeof why);
		if (prc < 0) {
			rc = prc;
			goto out;
		}
		struct farm_buf r = { 0 };
		if (prc > 0 && farm_buf_printf(&r, "host python3 could not produce the expected output: %s",
					       why)) {
			rc = oom(ld);
			goto out;
		}
		if (prc == 0 && exp.len == 5 && memcmp(exp.data, "SKIP\n", 5) == 0 &&
		    farm_buf_printf(&r, "the host python3 printed SKIP, so there is no expected output "
					"(add %s.exp)", fname)) {
			rc = oom(ld);
			goto out;
		}
		if (r.len) {
			t.skip_reason = farm_buf_steal(&r);
			if (!t.skip_reason) {
				rc = oom(ld);
				goto out;
			}
			t.expect_kind = FARM_EXPECT_ANY;
			farm_buf_reset(&exp);
		} else {
			t.expect_kind = FARM_EXPECT_EXACT;
		}
	}
	if (t.expect_kind == FARM_EXPECT_EXACT) {
		t.expect = farm_buf_steal(&exp);
		if (!t.expect) {
			rc = oom(ld);
			goto out;
		}
	}
	t.code_len = script.len;
	t.code = farm_buf_steal(&script);
	if (!t.code) {
		rc = oom(ld);
		goto out;
	}
	rc = push_test(ld, &t, inc->at);
out:
	test_free(&t);
	farm_buf_free(&script);
	farm_buf_free(&exp);
	free(exp_path);
	return rc;
}

static int scan_include(struct loader *ld, const struct include *inc, const char *glob,
			const struct farm_ynode *excl_node, char **excl, size_t n_excl)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	unsigned char *used = NULL;
	const char **cands = NULL;
	int rc = 0;
	DIR *dp = opendir(inc->abs_dir);
	if (!dp) {
		char hint[PATH_VALUE_MAX + 64];
		snprintf(hint, sizeof hint, "dir: is relative to the suite's directory (%s)", ld->dir);
		diag(ld, inc->at, hint, "cannot open directory %s: %s", inc->abs_dir, strerror(errno));
		return 0;
	}
	if (n_excl && !(used = calloc(n_excl, 1))) {
		rc = oom(ld);
		goto out;
	}
	struct dirent *de;
	while ((de = readdir(dp)) != NULL) {
		const char *nm = de->d_name;
		if (nm[0] == '.' || !has_py_suffix(nm) || fnmatch(glob, nm, FNM_PERIOD) != 0)
			continue;
		char *full = join(inc->abs_dir, nm);
		if (!full) {
			rc = oom(ld);
			goto out;
		}
		struct stat st;
		int reg = stat(full, &st) == 0 && S_ISREG(st.st_mode);
		free(full);
		if (!reg)
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 32;
			char **v = realloc(names, nc * sizeof *v);
			if (!v) {
				rc = oom(ld);
				goto out;
			}
			names = v;
			cap = nc;
		}
		if (!(names[n] = strdup(nm))) {
			rc = oom(ld);
			goto out;
		}
		n++;
	}
	if (n > 1)
		qsort(names, n, sizeof *names, name_cmp);

	/* Excluded names: every entry must match a script, or it is likely a typo. */
	if (n_excl) {
		cands = calloc(n + 1, sizeof *cands);
		if (!cands) {
			rc = oom(ld);
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			cands[i] = names[i];
	}
	for (size_t k = 0; k < n_excl; k++) {
		for (size_t i = 0; i < n; i++)
			if (strcmp(names[i], excl[k]) == 0)
				used[k] = 1;
		if (used[k])
			continue;
		const char *best = farm_did_you_mean(excl[k], cands);
		char hint[256];
		if (best)
			snprintf(hint, sizeof hint, "did you mean '%s'?", best);
		else
			snprintf(hint, sizeof hint, "exclude lists script file names, e.g. foo.py");
		diag(ld, list_item(excl_node, k), hint, "exclude entry '%s' matches no script in %s",
		     excl[k], inc->abs_dir);
	}
	if (n == 0) {
		diag(ld, inc->at, "check dir: and glob:; only *.py files are collected",
		     "no script in %s matches '%s'", inc->abs_dir, glob);
		goto out;
	}
	size_t before = ld->s->n_tests;
	for (size_t i = 0; i < n && !rc; i++) {
		int skip = 0;
		for (size_t k = 0; k < n_excl; k++)
			if (strcmp(names[i], excl[k]) == 0)
				skip = 1;
		if (!skip)
			rc = add_dir_test(ld, inc, names[i]);
	}
	if (!rc && ld->s->n_tests == before && !ld->too_many)
		diag(ld, inc->at, "drop the include entry, or shorten its exclude list",
		     "every script in %s is excluded", inc->abs_dir);
out:
	if (dp)
		closedir(dp);
	strv_free(names, n);
	free(used);
	free(cands);
	return rc;
}

static int parse_include(struct loader *ld, const struct farm_ynode *in)
{
	static const char *const known[] = { "dir", "glob", "exclude", "timeout", "requires", NULL };
	char *dir = NULL, *glob = NULL, *abs_dir = NULL, *prefix = NULL;
	char **excl = NULL;
	size_t n_excl = 0;
	struct farm_requires req = { 0 };
	unsigned present = 0, timeout = ld->timeout_def;
	size_t d0 = ld->d->n + ld->d->n_dropped;
	int rc = 0;

	if (farm_ycheck_kind(ld->doc, in, FARM_YMAP, "include entry", ld->d))
		return 0;
	farm_ycheck_keys(ld->doc, in, known, "include entry", ld->d);
	const struct farm_ynode *dn = farm_ymap_get(in, "dir");
	if (farm_yrequire(ld->doc, in, "dir", "include entry", ld->d) == 0 &&
	    farm_yget_str(ld->doc, dn, "dir", PATH_VALUE_MAX, &dir, ld->d) == 0 && !dir[0])
		diag(ld, dn, "use . for the suite's own directory", "dir is empty");

	const struct farm_ynode *gn = farm_ymap_get(in, "glob");
	if (gn) {
		if (farm_yget_str(ld->doc, gn, "glob", 255, &glob, ld->d) == 0 &&
		    (!glob || !glob[0] || strchr(glob, '/')))
			diag(ld, gn, "a file-name pattern such as \"*.py\" or \"int_*.py\"",
			     "glob must be a non-empty file-name pattern without '/'");
	}
	const struct farm_ynode *en = farm_ymap_get(in, "exclude");
	if (en)
		farm_yget_strlist(ld->doc, en, "exclude", EXCLUDE_MAX, &excl, &n_excl, ld->d);
	parse_timeout(ld, farm_ymap_get(in, "timeout"), &timeout);
	parse_requires(ld, farm_ymap_get(in, "requires"), &req, &present);
	if ((rc = requires_inherit(ld, &req, present)) != 0)
		goto out;
	if (ld->d->n + ld->d->n_dropped != d0 || !dir)
		goto out; /* the entry itself is wrong: do not scan */

	abs_dir = join(ld->dir, dir);
	prefix = test_prefix(dir);
	if (!abs_dir || !prefix) {
		rc = oom(ld);
		goto out;
	}
	struct include inc = {
		.at = dn, .abs_dir = abs_dir, .prefix = prefix, .timeout_ms = timeout, .req = &req,
	};
	rc = scan_include(ld, &inc, glob ? glob : "*.py", en, excl, n_excl);
out:
	free(dir);
	free(glob);
	free(abs_dir);
	free(prefix);
	strv_free(excl, n_excl);
	req_free(&req);
	return rc;
}

/* ------------------------------------------------------------- top level */

static int parse_defaults(struct loader *ld, const struct farm_ynode *n)
{
	static const char *const known[] = { "timeout", "requires", NULL };
	unsigned present;
	if (!n)
		return 0;
	if (farm_ycheck_kind(ld->doc, n, FARM_YMAP, "defaults", ld->d))
		return 0;
	farm_ycheck_keys(ld->doc, n, known, "defaults", ld->d);
	parse_timeout(ld, farm_ymap_get(n, "timeout"), &ld->timeout_def);
	return parse_requires(ld, farm_ymap_get(n, "requires"), &ld->req_def, &present);
}

static int parse_root(struct loader *ld, const struct farm_ynode *root)
{
	static const char *const known[] = { "suite", "defaults", "tests", "include", NULL };
	int rc;
	if (!root) {
		farm_diags_add(ld->d, ld->path, 0, 0, "start with 'suite: NAME' and a tests: list",
			       "the suite file is empty");
		return 0;
	}
	if (farm_ycheck_kind(ld->doc, root, FARM_YMAP, "suite file", ld->d))
		return 0;
	farm_ycheck_keys(ld->doc, root, known, "suite file", ld->d);

	const struct farm_ynode *nn = farm_ymap_get(root, "suite");
	if (farm_yrequire(ld->doc, root, "suite", "suite file", ld->d) == 0 &&
	    farm_yget_str(ld->doc, nn, "suite", SUITE_NAME_MAX, &ld->s->name, ld->d) == 0 &&
	    !valid_word(ld->s->name, SUITE_NAME_MAX))
		diag(ld, nn, "use 1-64 of A-Z a-z 0-9 . _ -", "invalid suite name '%s'", ld->s->name);

	if ((rc = parse_defaults(ld, farm_ymap_get(root, "defaults"))) != 0)
		return rc;

	const struct farm_ynode *tests = farm_ymap_get(root, "tests");
	const struct farm_ynode *inc = farm_ymap_get(root, "include");
	if (!tests && !inc) {
		diag(ld, root, "add a tests: list, an include: list of script directories, or both",
		     "the suite has neither tests nor include");
		return 0;
	}
	if (tests && farm_ycheck_kind(ld->doc, tests, FARM_YSEQ, "tests", ld->d) == 0) {
		for (size_t i = 0; i < tests->n; i++)
			if ((rc = parse_test(ld, tests->items[i])) != 0)
				return rc;
	}
	if (inc && farm_ycheck_kind(ld->doc, inc, FARM_YSEQ, "include", ld->d) == 0) {
		for (size_t i = 0; i < inc->n; i++)
			if ((rc = parse_include(ld, inc->items[i])) != 0)
				return rc;
	}
	if ((rc = check_duplicates(ld)) != 0)
		return rc;
	if (ld->s->n_tests == 0 && ld->d->n == 0 && ld->d->n_dropped == 0)
		diag(ld, tests ? tests : inc, "add a test to tests:, or a script directory to include:",
		     "the suite defines no tests");
	return 0;
}

int farm_suite_load(struct farm_suite **out, const char *path, const struct farm_suite_opts *opts,
		    struct farm_diags *d, struct farm_err *e)
{
	struct farm_diags local = { 0 };
	struct farm_buf buf = { 0 };
	struct farm_ydoc *doc = NULL;
	struct loader ld = { 0 };
	int rc;

	*out = NULL;
	farm_err_clear(e);
	if (!d)
		d = &local;
	size_t d0 = d->n + d->n_dropped;
	ld.path = path;
	ld.d = d;
	ld.e = e;

	rc = farm_buf_read_file(&buf, path, FARM_SUITE_MAX_BYTES, e);
	if (rc)
		goto out;
	rc = farm_ydoc_parse(&doc, path, buf.data, buf.len, d, e);
	if (rc) {
		if (e && !e->msg[0])
			farm_err_set(e, rc, "%s: not a usable YAML document", path);
		goto out;
	}
	ld.doc = doc;
	ld.s = calloc(1, sizeof *ld.s);
	ld.dir = dir_of(path);
	if (!ld.s || !ld.dir || !(ld.s->path = strdup(path))) {
		rc = oom(&ld);
		goto out;
	}
	ld.python_key = opts && opts->python && opts->python[0] ? opts->python : "python3";
	if (strchr(ld.python_key, '/') && ld.python_key[0] != '/') {
		char *abs = realpath(ld.python_key, NULL); /* the child runs in the script's dir */
		ld.python_run = abs ? abs : strdup(ld.python_key);
	} else {
		ld.python_run = strdup(ld.python_key);
	}
	if (!ld.python_run) {
		rc = oom(&ld);
		goto out;
	}
	ld.py_timeout_ms = opts && opts->python_timeout_ms ? opts->python_timeout_ms
							    : FARM_SUITE_PYTHON_TIMEOUT_MS;
	ld.cache_base = cache_base_dir(opts ? opts->cache_dir : NULL);

	rc = parse_root(&ld, doc->root);
	if (rc)
		goto out;
	size_t problems = d->n + d->n_dropped - d0;
	if (problems) {
		rc = farm_err_set(e, FARM_EINVAL, "%s: %zu problem%s", path, problems,
				  problems == 1 ? "" : "s");
		goto out;
	}
	*out = ld.s;
	ld.s = NULL;
out:
	farm_suite_free(ld.s);
	free(ld.pos);
	free(ld.dir);
	free(ld.python_run);
	free(ld.cache_base);
	req_free(&ld.req_def);
	farm_ydoc_free(doc);
	farm_buf_free(&buf);
	farm_diags_free(&local);
	return rc;
}
