/* Tests for farm/junit.c: escaping, rendering, atomic writing, and the
 * report checker tests/integration/check_junit.py run against what we render.
 *
 * Python 3 is used to parse reports back (xml.etree) and to run the checker;
 * where it is missing those tests say so on stderr and check nothing more. */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "junit.h"

#define CHECKER SOURCE_DIR "/tests/integration/check_junit.py"
#define PY_UNAVAILABLE 127

/* ---------------------------------------------------------------- helpers */

static char *escape_str(const char *s, size_t len, int attribute)
{
	struct farm_buf b = {0};
	if (farm_xml_escape(&b, s, len, attribute)) {
		farm_buf_free(&b);
		return NULL;
	}
	return farm_buf_steal(&b);
}

/* A second, independent UTF-8 decoder: length of the sequence at s and its
 * code point, or 0 if it is not well-formed. */
static size_t decode_utf8(const unsigned char *s, size_t len, uint32_t *cp)
{
	size_t n;
	uint32_t min;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xE0) == 0xC0) {
		n = 2;
		min = 0x80;
		*cp = s[0] & 0x1Fu;
	} else if ((s[0] & 0xF0) == 0xE0) {
		n = 3;
		min = 0x800;
		*cp = s[0] & 0x0Fu;
	} else if ((s[0] & 0xF8) == 0xF0) {
		n = 4;
		min = 0x10000;
		*cp = s[0] & 0x07u;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		*cp = (*cp << 6) | (s[i] & 0x3Fu);
	}
	if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF))
		return 0;
	return n;
}

enum { MODE_TEXT = 0, MODE_ATTR = 1, MODE_DOC = 2 };

/* NULL if s is safe as escaped text/attribute (or, MODE_DOC, as a whole
 * document's bytes); else why not. */
static const char *xml_unsafe(const char *s, size_t len, int mode)
{
	static const char *const entities[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;",
					       "&#9;", "&#10;", "&#13;"};
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		uint32_t cp;
		size_t n = decode_utf8(p + i, len - i, &cp);
		if (!n)
			return "invalid UTF-8";
		int xml_char = cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
			       (cp >= 0xE000 && cp <= 0xFFFD) || cp >= 0x10000;
		if (!xml_char)
			return "character XML 1.0 forbids";
		if (cp == 0x7F || (cp >= 0x80 && cp <= 0x9F))
			return "DEL or C1 control left raw";
		if (mode != MODE_DOC) {
			if (cp == '<' || cp == '>')
				return "raw < or >";
			if (cp == '\r')
				return "raw CR";
			if (mode == MODE_ATTR && (cp == '"' || cp == '\'' || cp == '\t' || cp == '\n'))
				return "raw quote, TAB or LF in an attribute";
			if (cp == '&') {
				int known = 0;
				for (size_t k = 0; k < sizeof entities / sizeof entities[0]; k++)
					if (!strncmp(s + i, entities[k], strlen(entities[k])))
						known = 1;
				if (!known)
					return "& that starts no known entity";
			}
		}
		i += n;
	}
	return NULL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void put_utf8(struct farm_buf *b, uint32_t cp)
{
	unsigned char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (unsigned char)(0xC0 | (cp >> 6));
		u[1] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 2;
	} else {
		u[0] = (unsigned char)(0xE0 | (cp >> 12));
		u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 3;
	}
	farm_buf_append(b, u, n);
}

/* Undo farm_xml_escape: entities, control pictures, "\xNN", "\u{XXXX}".
 * Exact for inputs holding no '\\' and no U+2400..U+2421 of their own. */
static void unescape(const char *s, size_t len, struct farm_buf *out)
{
	static const struct {
		const char *ent;
		char c;
	} ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'},
		    {"&apos;", '\''}, {"&#9;", '\t'}, {"&#10;", '\n'}, {"&#13;", '\r'}};
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		size_t k;
		for (k = 0; k < sizeof ents / sizeof ents[0]; k++) {
			size_t n = strlen(ents[k].ent);
			if (len - i >= n && !memcmp(s + i, ents[k].ent, n)) {
				farm_buf_append(out, &ents[k].c, 1);
				i += n;
				break;
			}
		}
		if (k < sizeof ents / sizeof ents[0])
			continue;
		if (len - i >= 3 && p[i] == 0xE2 && p[i + 1] == 0x90 && p[i + 2] >= 0x80 &&
		    (p[i + 2] <= 0x9F || p[i + 2] == 0xA1)) {
			char c = (char)(p[i + 2] == 0xA1 ? 0x7F : p[i + 2] - 0x80);
			farm_buf_append(out, &c, 1);
			i += 3;
		} else if (len - i >= 4 && s[i] == '\\' && s[i + 1] == 'x' && hexval(s[i + 2]) >= 0 &&
			   hexval(s[i + 3]) >= 0) {
			char c = (char)(hexval(s[i + 2]) * 16 + hexval(s[i + 3]));
			farm_buf_append(out, &c, 1);
			i += 4;
		} else if (len - i >= 8 && !memcmp(s + i, "\\u{", 3) && s[i + 7] == '}') {
			uint32_t cp = 0;
			for (int d = 3; d < 7; d++)
				cp = cp * 16 + (uint32_t)hexval(s[i + (size_t)d]);
			put_utf8(out, cp);
			i += 8;
		} else {
			farm_buf_append(out, s + i, 1);
			i++;
		}
	}
}

/* Escape in, check the result is safe and undoes back to in. */
static void check_roundtrip(const char *in, size_t len, int attribute)
{
	struct farm_buf e = {0}, back = {0};
	CU_ASSERT_EQUAL_FATAL(farm_xml_escape(&e, in, len, attribute), 0);
	const char *why = xml_unsafe(e.data ? e.data : "", e.len, attribute);
	if (why) {
		fprintf(stderr, "unsafe (%s) for input of %zu bytes:", why, len);
		for (size_t i = 0; i < len; i++)
			fprintf(stderr, " %02X", (unsigned char)in[i]);
		fprintf(stderr, "\n");
	}
	CU_ASSERT_PTR_NULL(why);
	unescape(e.data ? e.data : "", e.len, &back);
	CU_ASSERT_EQUAL(back.len, len);
	CU_ASSERT(back.len == len && (len == 0 || !memcmp(back.data, in, len)));
	farm_buf_free(&e);
	farm_buf_free(&back);
}

static char *make_tmpdir(void)
{
	char tmpl[] = "/tmp/mpfarm-junit-XXXXXX";
	if (!mkdtemp(tmpl))
		return NULL;
	return strdup(tmpl);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(char *dir)
{
	if (dir) {
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		free(dir);
	}
}

static char *path_join(const char *dir, const char *name)
{
	struct farm_buf b = {0};
	if (farm_buf_printf(&b, "%s/%s", dir, name)) {
		farm_buf_free(&b);
		return NULL;
	}
	return farm_buf_steal(&b);
}

static int write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t n = fwrite(data, 1, len, f);
	return (fclose(f) == 0 && n == len) ? 0 : -1;
}

/* Number of directory entries other than . and ..; the first in *first. */
static int count_entries(const char *dir, char *first, size_t first_len)
{
	DIR *d = opendir(dir);
	int n = 0;
	if (!d)
		return -1;
	if (first_len)
		first[0] = '\0';
	for (struct dirent *de; (de = readdir(d));) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n++ == 0 && first_len)
			snprintf(first, first_len, "%s", de->d_name);
	}
	closedir(d);
	return n;
}

/* Run python3 with argv (argv[0] ignored), stdout+stderr into out_path.
 * Returns its exit status, PY_UNAVAILABLE if it cannot run, -1 on a signal. */
static int run_python(const char *const *argv, const char *out_path)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status, rc;
	char *args[32];
	size_t n = 0;

	args[n++] = (char *)"python3";
	for (size_t i = 1; argv[i] && n < 31; i++)
		args[n++] = (char *)argv[i];
	args[n] = NULL;
	if (posix_spawn_file_actions_init(&fa))
		return PY_UNAVAILABLE;
	posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	rc = posix_spawnp(&pid, "python3", &fa, NULL, args, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc)
		return PY_UNAVAILABLE;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Run the checker on report with extra args; its output in *out (caller frees). */
static int run_checker(const char *dir, const char *report, const char *const *extra,
		       struct farm_buf *out)
{
	const char *argv[32] = {"python3", CHECKER, report};
	size_t n = 3;
	for (size_t i = 0; extra && extra[i] && n < 31; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	char *log = path_join(dir, "checker.out");
	int rc = log ? run_python(argv, log) : -1;
	if (log && out)
		farm_buf_read_file(out, log, 1 << 20, NULL);
	if (log)
		unlink(log);
	free(log);
	return rc;
}

static void note_no_python(const char *what)
{
	fprintf(stderr, "\n    note: python3 unavailable, %s not checked\n", what);
}

/* ------------------------------------------------------------- sample run */

static void add_case(struct farm_board_result *b, const char *suite, const char *name,
		     enum farm_verdict v, double t, const char *type, const char *msg,
		     const char *detail, const char *output)
{
	struct farm_case *c = farm_board_add_case(b, suite, name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	c->time_s = t;
	if (msg)
		CU_ASSERT_EQUAL(farm_case_set(c, v, type, "%s", msg), 0);
	c->verdict = v;
	c->detail = detail ? strdup(detail) : NULL;
	c->output = output ? strdup(output) : NULL;
}

static const char sample_transcript[] = ">>> print(1)\r\n1\r\n\x04>>> \x1b[0m\xff";

static void build_sample(struct farm_run_result *r)
{
	memset(r, 0, sizeof *r);
	r->name = strdup("lab");

	struct farm_board_result *b = farm_run_add_board(r, "pico-1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	b->hostname = strdup("ci-host");
	b->timestamp = strdup("2026-11-21T18:45:40");
	b->time_s = 12.345;
	b->log_path = strdup("/var/log/mpfarm/pico-1.log");
	b->transcript = malloc(sizeof sample_transcript);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b->transcript);
	memcpy(b->transcript, sample_transcript, sizeof sample_transcript);
	b->transcript_len = sizeof sample_transcript - 1;
	CU_ASSERT_EQUAL(farm_board_add_prop(b, "port", "rp2"), 0);
	CU_ASSERT_EQUAL(farm_board_add_prop(b, "firmware", "v1.24.0 <dirty> & \"patched\""), 0);
	add_case(b, "basics", "print", FARM_PASS, 1.5, NULL, NULL, NULL, NULL);
	add_case(b, "basics", "math", FARM_FAIL, 0.25, "output-mismatch", "expected 2, got 3",
		 "expected:\n2\ngot:\n3\n", "3\r\n");
	add_case(b, "basics", "wifi", FARM_SKIP, 0, NULL, "needs network", NULL, NULL);
	add_case(b, "io", "uart", FARM_ERROR, 5.0, "timeout", "no prompt after 5000 ms",
		 "last bytes: \x04\x03", NULL);
	add_case(b, "io", "echo", FARM_PASS, 0.001, NULL, NULL, NULL, "hello\n");

	b = farm_run_add_board(r, "esp32-s3");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	add_case(b, "basics", "print", FARM_PASS, 0.5, NULL, NULL, NULL, NULL);
	add_case(b, "basics", "math", FARM_FAIL, 0.75, NULL, "got \"3\"\tnot '2'\n<&>]]>\x01", NULL,
		 NULL);
}

static char *render_sample(void)
{
	struct farm_run_result r;
	struct farm_buf out = {0};
	build_sample(&r);
	int rc = farm_junit_render(&out, &r);
	farm_run_result_free(&r);
	CU_ASSERT_EQUAL(rc, 0);
	return rc ? NULL : farm_buf_steal(&out);
}

static const char *find_after(const char *hay, const char *needle, const char *after)
{
	const char *a = strstr(hay, after);
	return a ? strstr(a, needle) : NULL;
}

/* Render a one-board run whose single case has the given time; return the
 * testcase's time attribute text in secs. */
static void case_time(double t, char secs[32])
{
	struct farm_run_result r = {0};
	struct farm_buf out = {0};
	secs[0] = '\0';
	struct farm_board_result *b = farm_run_add_board(&r, "b");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct farm_case *c = farm_board_add_case(b, "s", "n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	c->time_s = t;
	CU_ASSERT_EQUAL_FATAL(farm_junit_render(&out, &r), 0);
	const char *p = strstr(out.data, "<testcase");
	p = p ? strstr(p, " time=\"") : NULL;
	if (p) {
		p += 7;
		size_t n = strcspn(p, "\"");
		if (n < 32) {
			memcpy(secs, p, n);
			secs[n] = '\0';
		}
	}
	farm_buf_free(&out);
	farm_run_result_free(&r);
}

/* ------------------------------------------------------------ escape tests */

struct vector {
	const char *in;
	size_t len;
	const char *text; /* expected, character data */
	const char *attr; /* expected, attribute value (NULL = same as text) */
};

#define V(s) s, sizeof(s) - 1

static const struct vector vectors[] = {
	{V(""), "", NULL},
	{V("plain text 123"), "plain text 123", NULL},
	{V("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&apos;f", NULL},
	{V("]]>"), "]]&gt;", NULL},
	{V("<![CDATA[x]]>"), "&lt;![CDATA[x]]&gt;", NULL},
	{V("\t\n\r"), "\t\n&#13;", "&#9;&#10;&#13;"},
	{V("line\r\n"), "line&#13;\n", "line&#13;&#10;"},
	{V("\x00"), "\xE2\x90\x80", NULL},
	{V("a\x00" "b"), "a\xE2\x90\x80" "b", NULL},
	{V("\x04"), "\xE2\x90\x84", NULL},
	{V("\x0B\x0C"), "\xE2\x90\x8B\xE2\x90\x8C", NULL},
	{V("\x1B[31m"), "\xE2\x90\x9B[31m", NULL},
	{V("\x1F"), "\xE2\x90\x9F", NULL},
	{V("\x7F"), "\xE2\x90\xA1", NULL},
	{V("caf\xC3\xA9"), "caf\xC3\xA9", NULL},
	{V("\xE2\x82\xAC"), "\xE2\x82\xAC", NULL},                   /* € */
	{V("\xF0\x9F\x98\x80!"), "\xF0\x9F\x98\x80!", NULL},         /* emoji, 4 bytes */
	{V("\xF4\x8F\xBF\xBF"), "\xF4\x8F\xBF\xBF", NULL},           /* U+10FFFF */
	{V("\xEF\xBF\xBD"), "\xEF\xBF\xBD", NULL},                   /* U+FFFD */
	{V("\xE2\x80\xA8"), "\xE2\x80\xA8", NULL},                   /* U+2028 */
	{V("\xC2\xA0"), "\xC2\xA0", NULL},                           /* NBSP */
	{V("\xEF\xBF\xBE"), "\\u{FFFE}", NULL},
	{V("\xEF\xBF\xBF"), "\\u{FFFF}", NULL},
	{V("\xC2\x85"), "\\u{0085}", NULL},                          /* NEL (C1) */
	{V("\xC2\x80\xC2\x9F"), "\\u{0080}\\u{009F}", NULL},
	{V("\x80"), "\\x80", NULL},                                  /* stray continuation */
	{V("\xFF\xFE"), "\\xFF\\xFE", NULL},
	{V("\xC0\xAF"), "\\xC0\\xAF", NULL},                         /* overlong '/' */
	{V("\xC1\xBF"), "\\xC1\\xBF", NULL},
	{V("\xE0\x80\xAF"), "\\xE0\\x80\\xAF", NULL},                /* overlong, 3 bytes */
	{V("\xF0\x80\x80\xAF"), "\\xF0\\x80\\x80\\xAF", NULL},       /* overlong, 4 bytes */
	{V("\xED\xA0\x80"), "\\xED\\xA0\\x80", NULL},                /* surrogate D800 */
	{V("\xED\xBF\xBF"), "\\xED\\xBF\\xBF", NULL},                /* surrogate DFFF */
	{V("\xF4\x90\x80\x80"), "\\xF4\\x90\\x80\\x80", NULL},       /* U+110000 */
	{V("\xF5\x80\x80\x80"), "\\xF5\\x80\\x80\\x80", NULL},
	{V("\xF0\x9F\x98"), "\\xF0\\x9F\\x98", NULL},                /* truncated at the end */
	{V("\xF0\x9F\x98" "A"), "\\xF0\\x9F\\x98" "A", NULL},        /* truncated, then ASCII */
	{V("\xE2\x82" "<"), "\\xE2\\x82&lt;", NULL},
	{V("\xC3"), "\\xC3", NULL},
	{V("\xC3\xC3\xA9"), "\\xC3\xC3\xA9", NULL},                  /* truncated, then valid */
};

static void test_escape_vectors(void)
{
	for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
		const struct vector *v = &vectors[i];
		for (int attr = 0; attr <= 1; attr++) {
			const char *want = attr && v->attr ? v->attr : v->text;
			char *got = escape_str(v->in, v->len, attr);
			CU_ASSERT_PTR_NOT_NULL_FATAL(got);
			if (strcmp(got, want))
				fprintf(stderr, "\n    vector %zu (%s): got \"%s\", want \"%s\"\n", i,
					attr ? "attribute" : "text", got, want);
			CU_ASSERT_STRING_EQUAL(got, want);
			free(got);
			check_roundtrip(v->in, v->len, attr);
		}
	}
}

static void test_escape_every_byte(void)
{
	for (int c = 0; c < 256; c++) {
		char in = (char)c;
		check_roundtrip(&in, 1, 0);
		check_roundtrip(&in, 1, 1);
		char *got = escape_str(&in, 1, 0);
		CU_ASSERT_PTR_NOT_NULL_FATAL(got);
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
			/* control picture U+2400 + byte */
			CU_ASSERT_EQUAL(strlen(got), 3);
			CU_ASSERT((unsigned char)got[0] == 0xE2 && (unsigned char)got[1] == 0x90 &&
				  (unsigned char)got[2] == 0x80 + c);
		} else if (c >= 0x80) {
			char want[8];
			snprintf(want, sizeof want, "\\x%02X", c);
			CU_ASSERT_STRING_EQUAL(got, want);
		}
		free(got);
	}
}

static void test_escape_every_pair(void)
{
	for (int a = 0; a < 256; a++)
		for (int b = 0; b < 256; b++) {
			char in[2] = {(char)a, (char)b};
			check_roundtrip(in, 2, (a + b) & 1);
		}
}

/* xorshift64: a fixed sequence, so a failure reproduces. */
static uint64_t next_random(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void test_escape_fuzz(void)
{
	/* Alphabet without '\\' and 0xE2 so undoing the escape is exact. */
	static const unsigned char alphabet[] = {
		0x00, 0x01, 0x04, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x1B, 0x1F, 0x20, '&',
		'<',  '>',  '"',  '\'', ']',  'a',  'x',  'u',  '{',  '}',  0x7F, 0x80, 0x85, 0x8F,
		0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xC3, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4,
		0xF5, 0xF8, 0xFE, 0xFF, 0xBE, 0xBD, 0x98, 0x9D};
	uint64_t x = 0x9E3779B97F4A7C15u;
	unsigned char in[48];
	for (int iter = 0; iter < 20000; iter++) {
		size_t len = (size_t)(next_random(&x) % sizeof in);
		for (size_t i = 0; i < len; i++)
			in[i] = alphabet[next_random(&x) % sizeof alphabet];
		check_roundtrip((const char *)in, len, iter & 1);
	}
	/* Fully random bytes: undoing may be ambiguous, safety must hold. */
	for (int iter = 0; iter < 20000; iter++) {
		size_t len = (size_t)(next_random(&x) % sizeof in);
		for (size_t i = 0; i < len; i++)
			in[i] = (unsigned char)next_random(&x);
		char *e = escape_str((const char *)in, len, iter & 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(e);
		CU_ASSERT_PTR_NULL(xml_unsafe(e, strlen(e), iter & 1));
		free(e);
	}
}

static void test_escape_errors(void)
{
	struct farm_buf b = {0};
	CU_ASSERT_EQUAL(farm_xml_escape(NULL, "x", 1, 0), FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_xml_escape(&b, NULL, 1, 0), FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_xml_escape(&b, NULL, 0, 0), 0);
	CU_ASSERT_EQUAL(b.len, 0);

	/* A failed append leaves the buffer as it was: no half entity. */
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "keep:"), 0);
	b.limit = 12;
	CU_ASSERT_EQUAL(farm_xml_escape(&b, "&&&&", 4, 0), FARM_ELIMIT);
	CU_ASSERT_EQUAL(b.len, 5);
	CU_ASSERT_STRING_EQUAL(b.data, "keep:");
	farm_buf_free(&b);
}

/* Parse escaped text and attribute back with a real XML parser. */
static void test_escape_parsed_back(void)
{
	static const char in[] = "a\x04\r\n\t<&>\"'\xFF\xF0\x9F\x98\x80]]>\xEF\xBF\xBE\x7F\x00z";
	static const char want[] = "a\xE2\x90\x84\r\n\t<&>\"'\\xFF\xF0\x9F\x98\x80]]>\\u{FFFE}"
				   "\xE2\x90\xA1\xE2\x90\x80z";
	char *dir = make_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	char *doc = path_join(dir, "doc.xml"), *exp = path_join(dir, "want.txt");
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	CU_ASSERT_PTR_NOT_NULL_FATAL(exp);

	struct farm_buf b = {0};
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<r a=\""), 0);
	CU_ASSERT_EQUAL(farm_xml_escape(&b, in, sizeof in - 1, 1), 0);
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "\">"), 0);
	CU_ASSERT_EQUAL(farm_xml_escape(&b, in, sizeof in - 1, 0), 0);
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "</r>\n"), 0);
	CU_ASSERT_EQUAL(write_file(doc, b.data, b.len), 0);
	CU_ASSERT_EQUAL(write_file(exp, want, sizeof want - 1), 0);

	const char *argv[] = {
		"python3", "-c",
		"import sys, xml.etree.ElementTree as E\n"
		"r = E.parse(sys.argv[1]).getroot()\n"
		"want = open(sys.argv[2], 'rb').read().decode('utf-8')\n"
		"ok = r.text == want and r.get('a') == want\n"
		"print('text', repr(r.text)); print('attr', repr(r.get('a'))); print('want', repr(want))\n"
		"sys.exit(0 if ok else 1)\n",
		doc, exp, NULL};
	char *log = path_join(dir, "py.out");
	int rc = run_python(argv, log);
	if (rc == PY_UNAVAILABLE) {
		note_no_python("parsing back");
	} else {
		if (rc != 0) {
			struct farm_buf o = {0};
			farm_buf_read_file(&o, log, 1 << 16, NULL);
			fprintf(stderr, "\n%s\n", o.data ? o.data : "");
			farm_buf_free(&o);
		}
		CU_ASSERT_EQUAL(rc, 0);
	}
	farm_buf_free(&b);
	free(log);
	free(doc);
	free(exp);
	rm_tree(dir);
}

/* ------------------------------------------------------------ render tests */

static void test_render_layout(void)
{
	char *x = render_sample();
	CU_ASSERT_PTR_NOT_NULL_FATAL(x);

	CU_ASSERT_PTR_NULL(xml_unsafe(x, strlen(x), MODE_DOC));
	CU_ASSERT_PTR_NULL(strchr(x, '\r'));
	CU_ASSERT_EQUAL(strncmp(x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites ", 51), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(x, "<testsuites name=\"lab\" tests=\"7\" failures=\"2\" "
					 "errors=\"1\" skipped=\"1\" time=\"13.595\">\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(x, "  <testsuite name=\"pico-1\" tests=\"5\" failures=\"1\" "
					 "errors=\"1\" skipped=\"1\" time=\"12.345\" "
					 "timestamp=\"2026-11-21T18:45:40\" hostname=\"ci-host\" "
					 "id=\"0\" package=\"lab\">\n    <properties>\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(x, "<property name=\"port\" value=\"rp2\"/>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(x, "<property name=\"firmware\" value=\"v1.24.0 &lt;dirty&gt; "
					 "&amp; &quot;patched&quot;\"/>"));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(x, "<property name=\"log_path\" value=\"/var/log/mpfarm/pico-1.log\"/>"));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(x, "<testcase classname=\"basics.pico-1\" name=\"print\" time=\"1.500\"/>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(
		x, "<testcase classname=\"basics.pico-1\" name=\"math\" time=\"0.250\">\n"
		   "      <failure message=\"expected 2, got 3\" type=\"output-mismatch\">"
		   "expected:\n2\ngot:\n3\n</failure>\n"
		   "      <system-out>3&#13;\n</system-out>\n    </testcase>\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(
		x, "<testcase classname=\"basics.pico-1\" name=\"wifi\" time=\"0.000\">\n"
		   "      <skipped message=\"needs network\"/>\n    </testcase>\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(
		x, "<testcase classname=\"io.pico-1\" name=\"uart\" time=\"5.000\">\n"
		   "      <error message=\"no prompt after 5000 ms\" type=\"timeout\">"
		   "last bytes: \xE2\x90\x84\xE2\x90\x83</error>\n    </testcase>\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(
		x, "<testcase classname=\"io.pico-1\" name=\"echo\" time=\"0.001\">\n"
		   "      <system-out>hello\n</system-out>\n    </testcase>\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(
		x, "    <system-out>&gt;&gt;&gt; print(1)&#13;\n1&#13;\n\xE2\x90\x84&gt;&gt;&gt; "
		   "\xE2\x90\x9B[0m\\xFF</system-out>\n  </testsuite>\n"));
	/* Second board: no timestamp, default hostname, message with markup. */
	CU_ASSERT_PTR_NOT_NULL(strstr(x, "  <testsuite name=\"esp32-s3\" tests=\"2\" failures=\"1\" "
					 "errors=\"0\" skipped=\"0\" time=\"1.250\" "
					 "hostname=\"localhost\" id=\"1\" package=\"lab\">\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(
		x, "<failure message=\"got &quot;3&quot;&#9;not &apos;2&apos;&#10;&lt;&amp;&gt;]]&gt;"
		   "\xE2\x90\x81\" type=\"failure\"/>"));
	CU_ASSERT(strlen(x) > 20 && !strcmp(x + strlen(x) - 14, "</testsuites>\n"));

	/* Order: properties before the first testcase, transcript after the last. */
	const char *props = strstr(x, "<properties>");
	const char *first_case = strstr(x, "<testcase");
	const char *suite_end = strstr(x, "</testsuite>");
	CU_ASSERT(props && first_case && props < first_case);
	const char *last_case_end = NULL;
	for (const char *p = x; (p = strstr(p, "</testcase>")) && p < suite_end; p++)
		last_case_end = p;
	const char *suite_out = find_after(x, "\n    <system-out>", "<system-out>hello");
	CU_ASSERT(last_case_end && suite_out && last_case_end < suite_out && suite_out < suite_end);
	free(x);
}

static void test_render_deterministic(void)
{
	char *a = render_sample(), *b = render_sample();
	CU_ASSERT(a && b && !strcmp(a, b));
	free(a);
	free(b);
}

static void test_render_times(void)
{
	static const struct {
		double t;
		const char *want;
	} cases[] = {
		{0, "0.000"},       {-1, "0.000"},          {0.0004, "0.000"},
		{0.0006, "0.001"},  {1.5, "1.500"},         {12.3456, "12.346"},
		{59.9999, "60.000"}, {1234567.25, "1234567.250"}, {1e300, "1000000000000.000"},
	};
	char secs[32];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		case_time(cases[i].t, secs);
		CU_ASSERT_STRING_EQUAL(secs, cases[i].want);
	}
	case_time(NAN, secs);
	CU_ASSERT_STRING_EQUAL(secs, "0.000");
	case_time(INFINITY, secs);
	CU_ASSERT_STRING_EQUAL(secs, "1000000000000.000");
	case_time(-INFINITY, secs);
	CU_ASSERT_STRING_EQUAL(secs, "0.000");
}

/* LC_NUMERIC with a decimal comma must not change "1.500". */
static void test_render_locale(void)
{
	static const char *const comma_locales[] = {"de_DE.UTF-8", "de_DE.utf8", "de_DE",
						     "fr_FR.UTF-8", "fr_FR.utf8", "nl_NL.UTF-8",
						     "ru_RU.UTF-8", NULL};
	const char *used = NULL;
	for (size_t i = 0; comma_locales[i] && !used; i++)
		if (setlocale(LC_NUMERIC, comma_locales[i]))
			used = comma_locales[i];
	if (!used) {
		fprintf(stderr, "\n    note: no decimal-comma locale installed; "
				"LC_NUMERIC test ran in the C locale only\n");
	} else {
		char probe[16];
		snprintf(probe, sizeof probe, "%.1f", 1.5);
		CU_ASSERT_STRING_EQUAL(probe, "1,5"); /* the locale is really in effect */
	}
	char secs[32];
	case_time(1.5, secs);
	CU_ASSERT_STRING_EQUAL(secs, "1.500");
	struct farm_run_result r;
	struct farm_buf out = {0};
	build_sample(&r);
	CU_ASSERT_EQUAL(farm_junit_render(&out, &r), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "time=\"12.345\""));
	CU_ASSERT_PTR_NULL(strstr(out.data, "time=\"12,345\""));
	farm_buf_free(&out);
	farm_run_result_free(&r);
	setlocale(LC_NUMERIC, "C");
}

static void test_render_timestamps(void)
{
	static const struct {
		const char *in;
		const char *attr;  /* expected timestamp attribute, NULL = none */
	} cases[] = {
		{"2026-11-21T18:45:40", "2026-11-21T18:45:40"},
		{"2026-11-21T18:45:40Z", "2026-11-21T18:45:40"},
		{"2026-11-21T18:45:40.123456", "2026-11-21T18:45:40"},
		{"2026-11-21T18:45:40.5+00:00", "2026-11-21T18:45:40"},
		{"2026-11-21T18:45:40+02:00", NULL},
		{"2026-11-21 18:45:40", NULL},
		{"yesterday", NULL},
		{"", NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct farm_run_result r = {0};
		struct farm_buf out = {0};
		struct farm_board_result *b = farm_run_add_board(&r, "b");
		CU_ASSERT_PTR_NOT_NULL_FATAL(b);
		b->timestamp = strdup(cases[i].in);
		CU_ASSERT_EQUAL_FATAL(farm_junit_render(&out, &r), 0);
		if (cases[i].attr) {
			char want[64];
			snprintf(want, sizeof want, " timestamp=\"%s\" ", cases[i].attr);
			CU_ASSERT_PTR_NOT_NULL(strstr(out.data, want));
		} else {
			CU_ASSERT_PTR_NULL(strstr(out.data, " timestamp="));
			/* kept as a property rather than lost */
			CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "<property name=\"timestamp\" value=\""));
		}
		farm_buf_free(&out);
		farm_run_result_free(&r);
	}
}

static void test_render_fallbacks(void)
{
	struct farm_run_result r = {0};
	struct farm_buf out = {0};
	struct farm_board_result *b = farm_run_add_board(&r, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_EQUAL(farm_board_add_prop(b, NULL, NULL), 0);
	struct farm_case *c = farm_board_add_case(b, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	c->verdict = FARM_FAIL;
	c = farm_board_add_case(b, "s", "odd");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	c->verdict = (enum farm_verdict)42;
	c = farm_board_add_case(b, "s", "e");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	c->verdict = FARM_ERROR;
	b->transcript = strdup("no length given");

	CU_ASSERT_EQUAL_FATAL(farm_junit_render(&out, &r), 0);
	const char *x = out.data;
	CU_ASSERT_PTR_NOT_NULL(strstr(x, "<testsuites name=\"mpfarm\" tests=\"3\" failures=\"1\" "
					 "errors=\"2\" skipped=\"0\" time=\"0.000\">"));
	CU_ASSERT_PTR_NOT_NULL(strstr(x, "<testsuite name=\"board-0\" "));
	CU_ASSERT_PTR_NULL(strstr(x, "package="));
	CU_ASSERT_PTR_NOT_NULL(strstr(x, "<property name=\"\" value=\"\"/>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(x, "<testcase classname=\"board-0\" name=\"case-0\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(x, "<failure message=\"test failed\" type=\"failure\"/>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(x, "<error message=\"mpfarm: invalid verdict 42\" "
					 "type=\"invalid-verdict\"/>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(x, "<error message=\"infrastructure error\" type=\"error\"/>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(x, "<system-out>no length given</system-out>"));
	farm_buf_free(&out);
	farm_run_result_free(&r);
}

static void test_render_empty(void)
{
	struct farm_run_result r = {0};
	struct farm_buf out = {0};
	CU_ASSERT_EQUAL_FATAL(farm_junit_render(&out, &r), 0);
	CU_ASSERT_STRING_EQUAL(out.data, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
					 "<testsuites name=\"mpfarm\" tests=\"0\" failures=\"0\" "
					 "errors=\"0\" skipped=\"0\" time=\"0.000\">\n</testsuites>\n");
	farm_buf_free(&out);

	struct farm_board_result *b = farm_run_add_board(&r, "idle");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_EQUAL_FATAL(farm_junit_render(&out, &r), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "<testsuite name=\"idle\" tests=\"0\" failures=\"0\" "
						"errors=\"0\" skipped=\"0\" time=\"0.000\" "
						"hostname=\"localhost\" id=\"0\">\n"
						"    <properties>\n    </properties>\n"
						"  </testsuite>\n"));
	farm_buf_free(&out);
	farm_run_result_free(&r);

	CU_ASSERT_EQUAL(farm_junit_render(&out, NULL), FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_junit_render(NULL, &r), FARM_EINVAL);
}

/* The attribute value of `name` in the first element containing it. */
static char *attr_value(const char *x, const char *name)
{
	char key[64];
	snprintf(key, sizeof key, " %s=\"", name);
	const char *p = strstr(x, key);
	if (!p)
		return NULL;
	p += strlen(key);
	return strndup(p, strcspn(p, "\""));
}

static void render_one_message(const char *msg, struct farm_buf *out)
{
	struct farm_run_result r = {0};
	struct farm_board_result *b = farm_run_add_board(&r, "b");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct farm_case *c = farm_board_add_case(b, "s", "n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(farm_case_set(c, FARM_FAIL, "t", "%s", msg), 0);
	CU_ASSERT_EQUAL(farm_junit_render(out, &r), 0);
	farm_run_result_free(&r);
}

static void test_render_attr_bound(void)
{
	static const char *const fill[] = {"x", "&", "\xF0\x9F\x98\x80", "\x04", "\xFF", "ab\"", NULL};
	for (size_t f = 0; fill[f]; f++) {
		struct farm_buf msg = {0}, out = {0};
		while (msg.len < 5000)
			CU_ASSERT_EQUAL_FATAL(farm_buf_puts(&msg, fill[f]), 0);
		render_one_message(msg.data, &out);
		CU_ASSERT_PTR_NULL(xml_unsafe(out.data, out.len, MODE_DOC));
		char *v = attr_value(out.data, "message");
		CU_ASSERT_PTR_NOT_NULL_FATAL(v);
		size_t n = strlen(v);
		CU_ASSERT(n <= FARM_JUNIT_ATTR_MAX);
		CU_ASSERT(n > FARM_JUNIT_ATTR_MAX - 16);
		CU_ASSERT(n >= 3 && !strcmp(v + n - 3, "\xE2\x80\xA6"));
		CU_ASSERT_PTR_NULL(xml_unsafe(v, n, MODE_ATTR)); /* no cut entity or sequence */
		free(v);
		farm_buf_free(&msg);
		farm_buf_free(&out);
	}

	/* Exactly at the bound: not cut. */
	struct farm_buf out = {0};
	char msg[FARM_JUNIT_ATTR_MAX + 1];
	memset(msg, 'y', FARM_JUNIT_ATTR_MAX);
	msg[FARM_JUNIT_ATTR_MAX] = '\0';
	render_one_message(msg, &out);
	char *v = attr_value(out.data, "message");
	CU_ASSERT(v && !strcmp(v, msg));
	free(v);
	farm_buf_free(&out);
	msg[FARM_JUNIT_ATTR_MAX - 1] = '&'; /* escaped: 4 bytes too long */
	render_one_message(msg, &out);
	v = attr_value(out.data, "message");
	CU_ASSERT(v && strlen(v) == FARM_JUNIT_ATTR_MAX &&
		  !strcmp(v + strlen(v) - 5, "yy\xE2\x80\xA6"));
	free(v);
	farm_buf_free(&out);
}

static void test_render_body_cap(void)
{
	const size_t max = FARM_JUNIT_BODY_MAX;
	struct farm_run_result r = {0};
	struct farm_buf out = {0};
	struct farm_board_result *b = farm_run_add_board(&r, "b");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct farm_case *c = farm_board_add_case(b, "s", "big");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	c->verdict = FARM_FAIL;
	/* detail: 'a' then "é"s, so the cut falls inside a sequence; head kept */
	size_t dlen = max + 101;
	c->detail = malloc(dlen + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c->detail);
	c->detail[0] = 'a';
	for (size_t i = 1; i + 1 < dlen; i += 2) {
		c->detail[i] = (char)0xC3;
		c->detail[i + 1] = (char)0xA9;
	}
	c->detail[dlen] = '\0';
	/* output: tail kept, the last line must survive */
	c->output = malloc(max + 21);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c->output);
	memset(c->output, 'o', max + 20);
	memcpy(c->output + max + 20 - 9, "Traceback", 9);
	c->output[max + 20] = '\0';
	b->transcript = malloc(max + 5);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b->transcript);
	memset(b->transcript, 't', max + 5);
	b->transcript_len = max + 5;

	CU_ASSERT_EQUAL_FATAL(farm_junit_render(&out, &r), 0);
	CU_ASSERT_PTR_NULL(xml_unsafe(out.data, out.len, MODE_DOC));
	CU_ASSERT_PTR_NULL(strstr(out.data, "\\x")); /* no sequence was split */
	/* kept max - 1 bytes of detail (backed off the split sequence) */
	char want[96];
	snprintf(want, sizeof want, "\xC3\xA9\n[truncated %zu bytes]</failure>", dlen - (max - 1));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, want));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "<system-out>[truncated 20 bytes]\nooo"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "oTraceback</system-out>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "    <system-out>[truncated 5 bytes]\nttt"));
	farm_buf_free(&out);

	/* Exactly at the cap: nothing noted. */
	c->output[max] = '\0';
	free(c->detail);
	c->detail = NULL;
	b->transcript_len = max;
	CU_ASSERT_EQUAL_FATAL(farm_junit_render(&out, &r), 0);
	CU_ASSERT_PTR_NULL(strstr(out.data, "[truncated"));
	farm_buf_free(&out);
	farm_run_result_free(&r);
}

static void test_render_limit(void)
{
	struct farm_run_result r;
	build_sample(&r);
	struct farm_buf out = {0};
	CU_ASSERT_EQUAL(farm_buf_puts(&out, "before|"), 0);
	out.limit = 600;
	CU_ASSERT_EQUAL(farm_junit_render(&out, &r), FARM_ELIMIT);
	CU_ASSERT_EQUAL(out.len, 7);
	CU_ASSERT_STRING_EQUAL(out.data, "before|");
	out.limit = 0;
	CU_ASSERT_EQUAL(farm_junit_render(&out, &r), 0);
	CU_ASSERT_EQUAL(strncmp(out.data, "before|<?xml", 12), 0);
	farm_buf_free(&out);
	farm_run_result_free(&r);
}

/* ------------------------------------------------------------- write tests */

static void test_write_atomic(void)
{
	char *dir = make_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	char *path = path_join(dir, "report.xml");
	CU_ASSERT_PTR_NOT_NULL_FATAL(path);
	CU_ASSERT_EQUAL(write_file(path, "OLD", 3), 0);

	struct farm_run_result r;
	struct farm_err e = {0};
	build_sample(&r);
	CU_ASSERT_EQUAL(farm_junit_write(path, &r, &e), 0);

	struct farm_buf want = {0}, got = {0};
	CU_ASSERT_EQUAL(farm_junit_render(&want, &r), 0);
	CU_ASSERT_EQUAL(farm_buf_read_file(&got, path, 1 << 24, &e), 0);
	CU_ASSERT(got.len == want.len && !memcmp(got.data, want.data, want.len));

	char name[256];
	CU_ASSERT_EQUAL(count_entries(dir, name, sizeof name), 1); /* no temp file left */
	CU_ASSERT_STRING_EQUAL(name, "report.xml");
	struct stat st;
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0644);

	farm_buf_free(&want);
	farm_buf_free(&got);
	farm_run_result_free(&r);
	free(path);
	rm_tree(dir);
}

static void test_write_errors(void)
{
	char *dir = make_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	struct farm_run_result r;
	struct farm_err e = {0};
	build_sample(&r);

	/* Directory missing. */
	char *path = path_join(dir, "missing/report.xml");
	CU_ASSERT_EQUAL(farm_junit_write(path, &r, &e), FARM_ENOTFOUND);
	CU_ASSERT_EQUAL(e.code, FARM_ENOTFOUND);
	CU_ASSERT_EQUAL(e.sys_errno, ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, path));
	free(path);

	/* Parent is a regular file. */
	char *file = path_join(dir, "file");
	CU_ASSERT_EQUAL(write_file(file, "x", 1), 0);
	path = path_join(dir, "file/report.xml");
	farm_err_clear(&e);
	CU_ASSERT_EQUAL(farm_junit_write(path, &r, &e), FARM_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, path));
	free(path);
	free(file);

	/* Target is a non-empty directory: the rename fails after the temp file
	 * was written; the temp file must be gone, the directory untouched. */
	char *sub = path_join(dir, "report.xml");
	CU_ASSERT_EQUAL(mkdir(sub, 0755), 0);
	char *inner = path_join(sub, "keep");
	CU_ASSERT_EQUAL(write_file(inner, "k", 1), 0);
	farm_err_clear(&e);
	CU_ASSERT_EQUAL(farm_junit_write(sub, &r, &e), FARM_EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, sub));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "rename"));
	CU_ASSERT_EQUAL(count_entries(dir, NULL, 0), 2); /* "file" and "report.xml/" only */
	CU_ASSERT_EQUAL(count_entries(sub, NULL, 0), 1);
	free(inner);
	free(sub);

	/* Bad arguments. */
	farm_err_clear(&e);
	CU_ASSERT_EQUAL(farm_junit_write(NULL, &r, &e), FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_junit_write("", &r, &e), FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_junit_write("/tmp/x.xml", NULL, NULL), FARM_EINVAL);

	/* Unwritable directory (only meaningful when not root). */
	if (geteuid() != 0) {
		char *ro = path_join(dir, "ro");
		CU_ASSERT_EQUAL(mkdir(ro, 0555), 0);
		path = path_join(ro, "report.xml");
		farm_err_clear(&e);
		CU_ASSERT_EQUAL(farm_junit_write(path, &r, &e), FARM_EIO);
		CU_ASSERT_EQUAL(e.sys_errno, EACCES);
		CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, path));
		CU_ASSERT_EQUAL(count_entries(ro, NULL, 0), 0);
		chmod(ro, 0755);
		free(path);
		free(ro);
	}
	farm_run_result_free(&r);
	rm_tree(dir);
}

/* A write that fails half-way (file size limit: EFBIG, works as root too)
 * leaves the previous report intact and no temp file behind. */
static void test_write_fails_midway(void)
{
	char *dir = make_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	char *path = path_join(dir, "report.xml");
	CU_ASSERT_PTR_NOT_NULL_FATAL(path);
	CU_ASSERT_EQUAL(write_file(path, "OLD REPORT", 10), 0);

	struct farm_run_result r;
	struct farm_err e = {0};
	build_sample(&r);

	struct rlimit old, lim;
	struct sigaction ign = {0}, old_sa;
	ign.sa_handler = SIG_IGN;
	CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 256;
	CU_ASSERT_EQUAL_FATAL(sigaction(SIGXFSZ, &ign, &old_sa), 0);
	CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_FSIZE, &lim), 0);
	int rc = farm_junit_write(path, &r, &e);
	setrlimit(RLIMIT_FSIZE, &old);
	sigaction(SIGXFSZ, &old_sa, NULL);

	CU_ASSERT_EQUAL(rc, FARM_EIO);
	CU_ASSERT_EQUAL(e.sys_errno, EFBIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, path));
	struct farm_buf got = {0};
	CU_ASSERT_EQUAL(farm_buf_read_file(&got, path, 1 << 20, NULL), 0);
	CU_ASSERT_STRING_EQUAL(got.data, "OLD REPORT");
	CU_ASSERT_EQUAL(count_entries(dir, NULL, 0), 1);
	farm_buf_free(&got);
	farm_run_result_free(&r);
	free(path);
	rm_tree(dir);
}

/* ----------------------------------------------- parse back + the checker */

static void test_checker_accepts_rendered(void)
{
	char *dir = make_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	char *path = path_join(dir, "report.xml");
	struct farm_run_result r;
	struct farm_err e = {0};
	struct farm_buf out = {0};
	build_sample(&r);
	CU_ASSERT_EQUAL_FATAL(farm_junit_write(path, &r, &e), 0);

	static const char *const all_expected[] = {
		"--expect", "pico-1:basics:print:pass",   "--expect", "pico-1:basics:math:fail",
		"--expect", "pico-1:basics:wifi:skip",    "--expect", "pico-1:io:uart:error",
		"--expect", "pico-1:io:echo:pass",        "--expect", "esp32-s3:basics:print:pass",
		"--expect", "esp32-s3:basics:math:failure", "--min-tests", "7", NULL};
	int rc = run_checker(dir, path, all_expected, &out);
	if (rc == PY_UNAVAILABLE) {
		note_no_python("the report checker");
		goto out;
	}
	if (rc)
		fprintf(stderr, "\n%s\n", out.data ? out.data : "");
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT(out.data && strstr(out.data, "ok: 2 testsuite(s), 7 tests"));
	farm_buf_free(&out);

	static const char *const wrong[] = {"--expect", "pico-1:basics:math:pass", NULL};
	CU_ASSERT_EQUAL(run_checker(dir, path, wrong, &out), 1);
	CU_ASSERT(out.data && strstr(out.data, "basics:math is fail, expected pass"));
	farm_buf_free(&out);

	static const char *const missing[] = {"--expect", "pico-1:basics:nope:pass", NULL};
	CU_ASSERT_EQUAL(run_checker(dir, path, missing, &out), 1);
	CU_ASSERT(out.data && strstr(out.data, "no testcase pico-1:basics:nope"));
	farm_buf_free(&out);

	static const char *const too_few[] = {"--min-tests", "8", NULL};
	CU_ASSERT_EQUAL(run_checker(dir, path, too_few, &out), 1);
	farm_buf_free(&out);

	/* An empty run and a hostile one render to reports the checker accepts. */
	farm_run_result_free(&r);
	CU_ASSERT_EQUAL(farm_junit_write(path, &r, &e), 0);
	CU_ASSERT_EQUAL(run_checker(dir, path, NULL, &out), 0);
	farm_buf_free(&out);

	struct farm_board_result *b = farm_run_add_board(&r, "b\x01<\xFF>");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	b->timestamp = strdup("2026-02-29T00:00:00Z"); /* not a real date: no leap year */
	for (int i = 0; i < 64; i++) {
		char name[8] = {'n', (char)i, (char)(0x80 + i), (char)(i * 4), 0};
		struct farm_case *c = farm_board_add_case(b, "s\"'&", name);
		CU_ASSERT_PTR_NOT_NULL_FATAL(c);
		c->verdict = (enum farm_verdict)(i % 5);
		c->output = strdup(name);
		c->detail = strdup("]]>\r\x00");
	}
	CU_ASSERT_EQUAL(farm_junit_write(path, &r, &e), 0);
	rc = run_checker(dir, path, NULL, &out);
	/* Renders fine; the checker flags only the impossible date it was given. */
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT(out.data && strstr(out.data, "is not a real date"));
	CU_ASSERT(out.data && !strstr(out.data, ": parse: "));
	CU_ASSERT(out.data && !strstr(out.data, "but its testcases say"));
	farm_buf_free(&out);
	free(b->timestamp);
	b->timestamp = strdup("2028-02-29T23:59:59");
	CU_ASSERT_EQUAL(farm_junit_write(path, &r, &e), 0);
	CU_ASSERT_EQUAL(run_checker(dir, path, NULL, &out), 0);
out:
	farm_buf_free(&out);
	farm_run_result_free(&r);
	free(path);
	rm_tree(dir);
}

/* A valid report, and single mutations of it the checker must reject. */
static const char valid_report[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<testsuites name=\"lab\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"2.000\">\n"
	"  <testsuite name=\"pico\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"2.000\""
	" timestamp=\"2026-11-21T18:45:40\" hostname=\"h\">\n"
	"    <properties>\n      <property name=\"port\" value=\"rp2\"/>\n    </properties>\n"
	"    <testcase classname=\"basics.pico\" name=\"a\" time=\"1.500\"/>\n"
	"    <testcase classname=\"basics.pico\" name=\"b\" time=\"0.500\">\n"
	"      <failure message=\"m\" type=\"t\">body</failure>\n"
	"      <system-out>out</system-out>\n"
	"    </testcase>\n"
	"    <testcase classname=\"basics.pico\" name=\"c\" time=\"0.000\">"
	"<skipped message=\"s\"/></testcase>\n"
	"    <system-out>transcript</system-out>\n"
	"  </testsuite>\n"
	"</testsuites>\n";

static void test_checker_rejects(void)
{
	static const struct {
		const char *find, *replace, *complaint;
	} mutations[] = {
		{"<testsuites name=\"lab\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" "
		 "time=\"2.000\">\n", "", ": parse: "},
		{"  <testsuite name=\"pico\" tests=\"3\"", "  <testsuite name=\"pico\" tests=\"4\"",
		 "tests=4 but its testcases say 3"},
		{"failures=\"1\" errors=\"0\" skipped=\"1\" time=\"2.000\" timestamp",
		 "failures=\"0\" errors=\"0\" skipped=\"1\" time=\"2.000\" timestamp",
		 "failures=0 but its testcases say 1"},
		{"<testsuites name=\"lab\" tests=\"3\"", "<testsuites name=\"lab\" tests=\"5\"",
		 "tests=5 but its testsuites add up to 3"},
		{"name=\"a\" time=\"1.500\"", "name=\"a\" time=\"1,500\"", "time='1,500'"},
		{"2026-11-21T18:45:40", "2026-11-21T18:45:40Z", "is not YYYY-MM-DDTHH:MM:SS"},
		{"2026-11-21T18:45:40", "2026-13-21T18:45:40", "is not a real date"},
		{"<skipped message=\"s\"/>", "<skipped message=\"s\"/><failure/>",
		 "more than one outcome: skipped, failure"},
		{"classname=\"basics.pico\" name=\"a\"", "name=\"a\"", "missing or empty classname"},
		{"classname=\"basics.pico\" name=\"c\"", "classname=\"basics.pico\" name=\"a\"",
		 "duplicate classname and name"},
		{"    <properties>\n      <property name=\"port\" value=\"rp2\"/>\n    </properties>\n",
		 "", NULL}, /* no properties at all is fine: the control below */
		{"<property name=\"port\" value=\"rp2\"/>", "<property name=\"port\"/>",
		 "lacks name or value"},
		{"    <system-out>transcript</system-out>\n",
		 "    <system-out>transcript</system-out>\n    <properties/>\n",
		 "<properties> comes after a later element"},
		{"<testcase classname=\"basics.pico\" name=\"a\" time=\"1.500\"/>\n", "",
		 "tests=3 but its testcases say 2"},
		{"body</failure>", "body</failure><bogus/>", "unexpected child <bogus>"},
		{"<system-out>transcript</system-out>", "<system-out>a\x04z</system-out>",
		 "not well-formed (invalid token)"},
		{"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"lab\" tests=\"3\" "
		 "failures=\"1\" errors=\"0\" skipped=\"1\" time=\"2.000\">\n",
		 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", "root element is <testsuite>"},
	};
	char *dir = make_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	char *path = path_join(dir, "r.xml");
	struct farm_buf out = {0};

	CU_ASSERT_EQUAL(write_file(path, valid_report, sizeof valid_report - 1), 0);
	static const char *const expect[] = {"--expect", "pico:basics:a:pass", "--expect",
					     "pico:basics:b:fail", "--expect", "pico:basics:c:skip",
					     NULL};
	int rc = run_checker(dir, path, expect, &out);
	farm_buf_free(&out);
	if (rc == PY_UNAVAILABLE) {
		note_no_python("the report checker");
		goto out;
	}
	CU_ASSERT_EQUAL(rc, 0);

	for (size_t i = 0; i < sizeof mutations / sizeof mutations[0]; i++) {
		const char *at = strstr(valid_report, mutations[i].find);
		CU_ASSERT_PTR_NOT_NULL_FATAL(at);
		struct farm_buf doc = {0};
		size_t head = (size_t)(at - valid_report);
		farm_buf_append(&doc, valid_report, head);
		farm_buf_puts(&doc, mutations[i].replace);
		farm_buf_puts(&doc, at + strlen(mutations[i].find));
		/* the root-is-testsuite case also drops the closing tag */
		if (!strcmp(mutations[i].replace, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")) {
			char *end = strstr(doc.data, "</testsuites>\n");
			if (end) {
				doc.len = (size_t)(end - doc.data);
				doc.data[doc.len] = '\0';
			}
		}
		CU_ASSERT_EQUAL(write_file(path, doc.data, doc.len), 0);
		rc = run_checker(dir, path, NULL, &out);
		int want = mutations[i].complaint ? 1 : 0;
		int said = !mutations[i].complaint ||
			   (out.data && strstr(out.data, mutations[i].complaint));
		if (rc != want || !said)
			fprintf(stderr, "\n    mutation %zu: exit %d, output:\n%s\n", i, rc,
				out.data ? out.data : "");
		CU_ASSERT_EQUAL(rc, want);
		CU_ASSERT(said);
		farm_buf_free(&out);
		farm_buf_free(&doc);
	}
out:
	free(path);
	rm_tree(dir);
}

int cu_register(void)
{
	static const struct {
		const char *suite, *name;
		CU_TestFunc fn;
	} tests[] = {
		{"xml_escape", "vectors", test_escape_vectors},
		{"xml_escape", "every byte", test_escape_every_byte},
		{"xml_escape", "every byte pair", test_escape_every_pair},
		{"xml_escape", "fuzz", test_escape_fuzz},
		{"xml_escape", "errors leave the buffer", test_escape_errors},
		{"xml_escape", "parsed back by an XML parser", test_escape_parsed_back},
		{"junit_render", "layout", test_render_layout},
		{"junit_render", "deterministic", test_render_deterministic},
		{"junit_render", "times", test_render_times},
		{"junit_render", "LC_NUMERIC", test_render_locale},
		{"junit_render", "timestamps", test_render_timestamps},
		{"junit_render", "fallbacks", test_render_fallbacks},
		{"junit_render", "empty", test_render_empty},
		{"junit_render", "attribute bound", test_render_attr_bound},
		{"junit_render", "body cap", test_render_body_cap},
		{"junit_render", "buffer limit", test_render_limit},
		{"junit_write", "atomic", test_write_atomic},
		{"junit_write", "errors", test_write_errors},
		{"junit_write", "fails midway", test_write_fails_midway},
		{"check_junit", "accepts rendered reports", test_checker_accepts_rendered},
		{"check_junit", "rejects broken reports", test_checker_rejects},
	};
	CU_pSuite s = NULL;
	const char *cur = "";
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
		if (strcmp(cur, tests[i].suite)) {
			cur = tests[i].suite;
			s = CU_add_suite(cur, NULL, NULL);
			if (!s)
				return -1;
		}
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	}
	return 0;
}
