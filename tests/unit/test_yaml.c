/* Unit tests for farm/yaml.c: the bounded YAML tree and its accessors. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "ydoc.h"

/* ------------------------------------------------------------- helpers */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse(struct farm_ydoc **doc, const char *text, size_t len, struct farm_diags *d)
{
	struct farm_err e = { 0 };
	int rc = farm_ydoc_parse(doc, "t.yaml", text, len, d, &e);
	if (rc) {
		CU_ASSERT_PTR_NULL(*doc);
		CU_ASSERT_STRING_NOT_EQUAL(e.msg, "");
	}
	return rc;
}

/* Parse text that must be valid; returns the document (or NULL after a failed assert). */
static struct farm_ydoc *parse_ok(const char *text)
{
	struct farm_diags d = { 0 };
	struct farm_ydoc *doc = NULL;
	int rc = parse(&doc, text, strlen(text), &d);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(d.n, 0);
	if (rc || d.n)
		farm_diags_print(&d, stderr);
	farm_diags_free(&d);
	return doc;
}

/* A diagnostic at line:col whose message contains needle (col 0 = any). */
static const struct farm_diag *find_diag(const struct farm_diags *d, unsigned line, unsigned col,
					 const char *needle)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct farm_diag *g = &d->v[i];
		if (g->line == line && (col == 0 || g->col == col) && strstr(g->msg, needle))
			return g;
	}
	return NULL;
}

static int expect_diag(const struct farm_diags *d, unsigned line, unsigned col,
		       const char *needle, const char *hint_needle)
{
	const struct farm_diag *g = find_diag(d, line, col, needle);
	int ok = g && (!hint_needle || (g->hint && strstr(g->hint, hint_needle)));
	if (!ok) {
		fprintf(stderr, "\nmissing diagnostic %u:%u \"%s\" (hint \"%s\"); have:\n", line, col,
			needle, hint_needle ? hint_needle : "");
		farm_diags_print(d, stderr);
	}
	return ok;
}

/* Parse text that must fail; the diagnostics are left in d. */
static void parse_bad(const char *text, size_t len, struct farm_diags *d)
{
	struct farm_ydoc *doc = NULL;
	int rc = parse(&doc, text, len, d);
	CU_ASSERT_EQUAL(rc, FARM_EINVAL);
	CU_ASSERT_TRUE(d->n > 0);
	farm_ydoc_free(doc);
}

static const struct farm_ynode *path1(const struct farm_ydoc *doc, const char *key)
{
	return farm_ymap_get(doc ? doc->root : NULL, key);
}

/* ------------------------------------------------------------- structure */

static void test_positions(void)
{
	struct farm_ydoc *doc = parse_ok("# comment\n"
					 "a: 1\n"
					 "b:\n"
					 "  - x\n"
					 "  - {c: \"q\", d: [1, 2]}\n"
					 "e: |\n"
					 "  text\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	const struct farm_ynode *r = doc->root;
	CU_ASSERT_EQUAL(r->kind, FARM_YMAP);
	CU_ASSERT_EQUAL(r->line, 2);
	CU_ASSERT_EQUAL(r->col, 1);
	CU_ASSERT_EQUAL(r->n, 3);
	CU_ASSERT_EQUAL(r->keys[0]->line, 2);
	CU_ASSERT_EQUAL(r->keys[0]->col, 1);
	const struct farm_ynode *a = farm_ymap_get(r, "a");
	CU_ASSERT_EQUAL(a->line, 2);
	CU_ASSERT_EQUAL(a->col, 4);
	const struct farm_ynode *b = farm_ymap_get(r, "b");
	CU_ASSERT_EQUAL_FATAL(b->kind, FARM_YSEQ);
	CU_ASSERT_EQUAL(b->line, 4);
	CU_ASSERT_EQUAL(b->col, 3);
	CU_ASSERT_EQUAL_FATAL(b->n, 2);
	CU_ASSERT_EQUAL(b->items[0]->line, 4);
	CU_ASSERT_EQUAL(b->items[0]->col, 5);
	const struct farm_ynode *m = b->items[1];
	CU_ASSERT_EQUAL(m->kind, FARM_YMAP);
	CU_ASSERT_EQUAL(m->line, 5);
	CU_ASSERT_EQUAL(m->col, 5);
	const struct farm_ynode *c = farm_ymap_get(m, "c");
	CU_ASSERT_EQUAL(c->line, 5);
	CU_ASSERT_EQUAL(c->col, 9);
	CU_ASSERT_STRING_EQUAL(c->str, "q");
	CU_ASSERT_EQUAL(c->plain, 0);
	const struct farm_ynode *dd = farm_ymap_get(m, "d");
	CU_ASSERT_EQUAL(dd->kind, FARM_YSEQ);
	CU_ASSERT_EQUAL(dd->items[1]->line, 5);
	CU_ASSERT_EQUAL(dd->items[1]->col, 21);
	const struct farm_ynode *e = farm_ymap_get(r, "e");
	CU_ASSERT_STRING_EQUAL(e->str, "text\n");
	CU_ASSERT_EQUAL(e->plain, 0);
	farm_ydoc_free(doc);

	/* CRLF line endings count as one line break. */
	doc = parse_ok("a: 1\r\nb: 2\r\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	CU_ASSERT_EQUAL(path1(doc, "b")->line, 2);
	CU_ASSERT_EQUAL(path1(doc, "b")->col, 4);
	farm_ydoc_free(doc);
}

static void test_scalars_plain_null(void)
{
	struct farm_ydoc *doc = parse_ok("q: \"123\"\n"
					 "p: 123\n"
					 "n1: ~\n"
					 "n2: null\n"
					 "n3: Null\n"
					 "n4: NULL\n"
					 "n5:\n"
					 "s1: \"null\"\n"
					 "s2: '~'\n"
					 "s3: nULL\n"
					 "z: \"a\\0b\"\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	CU_ASSERT_EQUAL(path1(doc, "q")->plain, 0);
	CU_ASSERT_STRING_EQUAL(path1(doc, "q")->str, "123");
	CU_ASSERT_EQUAL(path1(doc, "p")->plain, 1);
	CU_ASSERT_TRUE(farm_yscalar_is_null(path1(doc, "n1")));
	CU_ASSERT_TRUE(farm_yscalar_is_null(path1(doc, "n2")));
	CU_ASSERT_TRUE(farm_yscalar_is_null(path1(doc, "n3")));
	CU_ASSERT_TRUE(farm_yscalar_is_null(path1(doc, "n4")));
	CU_ASSERT_TRUE(farm_yscalar_is_null(path1(doc, "n5")));
	CU_ASSERT_FALSE(farm_yscalar_is_null(path1(doc, "s1")));
	CU_ASSERT_FALSE(farm_yscalar_is_null(path1(doc, "s2")));
	CU_ASSERT_FALSE(farm_yscalar_is_null(path1(doc, "s3")));
	CU_ASSERT_FALSE(farm_yscalar_is_null(path1(doc, "p")));
	CU_ASSERT_FALSE(farm_yscalar_is_null(doc->root));
	CU_ASSERT_TRUE(farm_yscalar_is_null(NULL));
	const struct farm_ynode *z = path1(doc, "z");
	CU_ASSERT_EQUAL(z->len, 3);
	CU_ASSERT_EQUAL(memcmp(z->str, "a\0b", 4), 0);
	farm_ydoc_free(doc);
}

static void test_anchors_aliases(void)
{
	struct farm_ydoc *doc = parse_ok("base: &b {k: v, list: [1, 2]}\n"
					 "copy: *b\n"
					 "s: &s hello\n"
					 "t: *s\n"
					 "re: &b other\n"
					 "u: *b\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	const struct farm_ynode *base = path1(doc, "base"), *copy = path1(doc, "copy");
	CU_ASSERT_PTR_NOT_EQUAL(base, copy);
	CU_ASSERT_EQUAL_FATAL(copy->kind, FARM_YMAP);
	CU_ASSERT_STRING_EQUAL(farm_ymap_get(copy, "k")->str, "v");
	CU_ASSERT_EQUAL(farm_ymap_get(copy, "list")->n, 2);
	/* The copy's top node sits at the alias; its content keeps the anchor's positions. */
	CU_ASSERT_EQUAL(copy->line, 2);
	CU_ASSERT_EQUAL(copy->col, 7);
	CU_ASSERT_EQUAL(farm_ymap_get(copy, "k")->line, 1);
	CU_ASSERT_STRING_EQUAL(path1(doc, "t")->str, "hello");
	CU_ASSERT_EQUAL(path1(doc, "t")->line, 4);
	/* A redefined anchor: later aliases see the latest definition. */
	CU_ASSERT_STRING_EQUAL(path1(doc, "u")->str, "other");
	farm_ydoc_free(doc);
}

static void test_merge_keys(void)
{
	struct farm_ydoc *doc = parse_ok("a: &a {x: 1, y: 1, z: 1}\n"
					 "b: &b {y: 2, w: 2}\n"
					 "one:\n"
					 "  <<: *a\n"
					 "  x: 9\n"
					 "two: {<<: [*b, *a], q: 3}\n"
					 "chain: &c {<<: *a, z: 5}\n"
					 "again: {<<: *c}\n"
					 "inline: {<<: {m: 1}, n: 2}\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	const struct farm_ynode *one = path1(doc, "one");
	CU_ASSERT_EQUAL(one->n, 3);
	CU_ASSERT_PTR_NULL(farm_ymap_get(one, "<<"));
	CU_ASSERT_STRING_EQUAL(farm_ymap_get(one, "x")->str, "9"); /* explicit wins */
	CU_ASSERT_STRING_EQUAL(farm_ymap_get(one, "y")->str, "1");
	CU_ASSERT_STRING_EQUAL(farm_ymap_get(one, "z")->str, "1");
	const struct farm_ynode *two = path1(doc, "two");
	CU_ASSERT_EQUAL(two->n, 5);
	CU_ASSERT_STRING_EQUAL(farm_ymap_get(two, "y")->str, "2"); /* earlier in the list wins */
	CU_ASSERT_STRING_EQUAL(farm_ymap_get(two, "w")->str, "2");
	CU_ASSERT_STRING_EQUAL(farm_ymap_get(two, "x")->str, "1");
	CU_ASSERT_STRING_EQUAL(farm_ymap_get(two, "q")->str, "3");
	CU_ASSERT_STRING_EQUAL(two->keys[0]->str, "q"); /* explicit keys first */
	/* An anchor on a mapping with a merge refers to the merged result. */
	const struct farm_ynode *again = path1(doc, "again");
	CU_ASSERT_EQUAL(again->n, 3);
	CU_ASSERT_STRING_EQUAL(farm_ymap_get(again, "z")->str, "5");
	CU_ASSERT_STRING_EQUAL(farm_ymap_get(again, "x")->str, "1");
	CU_ASSERT_EQUAL(path1(doc, "inline")->n, 2);
	/* A quoted "<<" is an ordinary key. */
	farm_ydoc_free(doc);
	doc = parse_ok("m: {\"<<\": 1}\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	CU_ASSERT_STRING_EQUAL(farm_ymap_get(path1(doc, "m"), "<<")->str, "1");
	farm_ydoc_free(doc);
}

static void test_merge_large(void)
{
	/* Merging many keys into a small mapping grows the key set. */
	struct farm_buf b = { 0 };
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "big: &big {"), 0);
	for (int i = 0; i < 3000; i++)
		CU_ASSERT_EQUAL(farm_buf_printf(&b, "%sk%d: %d", i ? ", " : "", i, i), 0);
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "}\nm: {<<: [*big, *big], k7: seven, x: 1}\n"), 0);
	struct farm_ydoc *doc = parse_ok(b.data);
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	const struct farm_ynode *m = path1(doc, "m");
	CU_ASSERT_EQUAL(m->n, 3001);
	CU_ASSERT_STRING_EQUAL(farm_ymap_get(m, "k7")->str, "seven");
	CU_ASSERT_STRING_EQUAL(farm_ymap_get(m, "k2999")->str, "2999");
	farm_ydoc_free(doc);

	/* Many duplicates in one large mapping: each reported once, quickly. */
	struct farm_diags d = { 0 };
	farm_buf_reset(&b);
	for (int i = 0; i < 20000; i++)
		CU_ASSERT_EQUAL(farm_buf_printf(&b, "k%d: 1\n", i % 10000), 0);
	double t0 = now_s();
	parse_bad(b.data, b.len, &d);
	CU_ASSERT_TRUE(now_s() - t0 < 5.0);
	CU_ASSERT_EQUAL(d.n + d.n_dropped, 10000);
	CU_ASSERT_TRUE(expect_diag(&d, 10001, 1, "duplicate key \"k0\" (first defined at line 1)", NULL));
	farm_diags_free(&d);
	farm_buf_free(&b);
}

static void test_many_anchors(void)
{
	/* 45000 anchors then 45000 aliases: lookups must not be linear scans. */
	struct farm_buf b = { 0 };
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "a:\n"), 0);
	for (int i = 0; i < 45000; i++)
		CU_ASSERT_EQUAL(farm_buf_printf(&b, "- &a%d x%d\n", i, i), 0);
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "b:\n"), 0);
	for (int i = 0; i < 45000; i++)
		CU_ASSERT_EQUAL(farm_buf_printf(&b, "- *a%d\n", i % 3 ? 0 : i), 0);
	double t0 = now_s();
	struct farm_ydoc *doc = parse_ok(b.data);
	CU_ASSERT_TRUE(now_s() - t0 < 5.0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	const struct farm_ynode *l = path1(doc, "b");
	CU_ASSERT_EQUAL_FATAL(l->n, 45000);
	CU_ASSERT_STRING_EQUAL(l->items[1]->str, "x0");
	CU_ASSERT_STRING_EQUAL(l->items[44997]->str, "x44997");
	farm_ydoc_free(doc);
	farm_buf_free(&b);
}

static void test_merge_errors(void)
{
	struct farm_diags d = { 0 };
	const char *t = "s: &s text\n"
			"l: &l [1]\n"
			"a: {<<: *s}\n"
			"b:\n"
			"  <<: [*l, {ok: 1}]\n";
	parse_bad(t, strlen(t), &d);
	CU_ASSERT_TRUE(expect_diag(&d, 3, 9, "merge key (<<) value must be a mapping or a list of mappings, got \"text\"",
				   "<<: *name"));
	CU_ASSERT_TRUE(expect_diag(&d, 5, 8, "merge key (<<) list items must be mappings, got a list", NULL));
	CU_ASSERT_EQUAL(d.n, 2);
	farm_diags_free(&d);
}

static void test_duplicate_keys(void)
{
	struct farm_diags d = { 0 };
	const char *t = "boards:\n"
			"  - id: a\n"
			"    port: rp2\n"
			"    id: b\n"
			"x: 1\n"
			"x: 2\n"
			"x: 3\n";
	parse_bad(t, strlen(t), &d);
	CU_ASSERT_TRUE(expect_diag(&d, 4, 5, "duplicate key \"id\" (first defined at line 2)", "line 2"));
	CU_ASSERT_TRUE(expect_diag(&d, 6, 1, "duplicate key \"x\" (first defined at line 5)", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 7, 1, "duplicate key \"x\" (first defined at line 5)", NULL));
	CU_ASSERT_EQUAL(d.n, 3);
	farm_diags_free(&d);
}

static void test_nonscalar_keys(void)
{
	struct farm_diags d = { 0 };
	const char *t = "? [a, b]\n"
			": 1\n"
			"ok: 2\n"
			"? {k: v}\n"
			": 3\n";
	parse_bad(t, strlen(t), &d);
	CU_ASSERT_TRUE(expect_diag(&d, 1, 3, "mapping keys must be scalars, got a list", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 4, 3, "mapping keys must be scalars, got a mapping", NULL));
	farm_diags_free(&d);
}

static void test_tags(void)
{
	struct farm_diags d = { 0 };
	struct farm_ydoc *doc = parse_ok("a: !!str 123\n"
					 "b: !!int \"42\"\n"
					 "c: !!map {k: v}\n"
					 "d: !!seq [1]\n"
					 "e: !!null ''\n"
					 "f: !!bool true\n"
					 "g: !!float 1.5\n"
					 "h: ! 12\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	CU_ASSERT_EQUAL(path1(doc, "a")->plain, 0);
	long v = 0;
	CU_ASSERT_EQUAL(farm_yget_long(doc, path1(doc, "b"), "b", 0, 100, &v, &d), 0);
	CU_ASSERT_EQUAL(v, 42);
	CU_ASSERT_TRUE(farm_yscalar_is_null(path1(doc, "e")));
	CU_ASSERT_EQUAL(path1(doc, "h")->plain, 0);
	CU_ASSERT_EQUAL(d.n, 0);
	farm_ydoc_free(doc);

	const char *t = "a: !!python/object:os.system ls\n"
			"b: !custom x\n"
			"c: !!map scalar\n"
			"d: !!str [1]\n"
			"e: !<tag:example.com,2000:x> y\n";
	parse_bad(t, strlen(t), &d);
	CU_ASSERT_TRUE(expect_diag(&d, 1, 4, "unsupported tag \"!!python/object:os.system\"", "core tags"));
	CU_ASSERT_TRUE(expect_diag(&d, 2, 4, "unsupported tag \"!custom\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 3, 4, "tag \"!!map\" does not fit a scalar", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 4, 4, "tag \"!!str\" does not fit a list", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 5, 4, "unsupported tag \"tag:example.com,2000:x\"", NULL));
	CU_ASSERT_EQUAL(d.n, 5);
	farm_diags_free(&d);
}

static void test_alias_errors(void)
{
	struct farm_diags d = { 0 };
	const char *t = "a: *nowhere\n"
			"b: &self [1, *self]\n"
			"c: *later\n"
			"d: &later 1\n";
	parse_bad(t, strlen(t), &d);
	CU_ASSERT_TRUE(expect_diag(&d, 1, 4, "unknown alias \"*nowhere\"", "&nowhere"));
	CU_ASSERT_TRUE(expect_diag(&d, 2, 14, "alias \"*self\" refers to its own enclosing node", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 3, 4, "unknown alias \"*later\"", NULL));
	CU_ASSERT_EQUAL(d.n, 3);
	farm_diags_free(&d);
}

/* ------------------------------------------------------------- hostile input */

static void test_billion_laughs(void)
{
	struct farm_buf b = { 0 };
	struct farm_diags d = { 0 };
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"), 0);
	for (int i = 1; i < 10; i++) {
		CU_ASSERT_EQUAL(farm_buf_printf(&b, "l%d: &l%d [", i, i), 0);
		for (int k = 0; k < 9; k++)
			CU_ASSERT_EQUAL(farm_buf_printf(&b, "%s*l%d", k ? ", " : "", i - 1), 0);
		CU_ASSERT_EQUAL(farm_buf_puts(&b, "]\n"), 0);
	}
	double t0 = now_s();
	parse_bad(b.data, b.len, &d);
	double took = now_s() - t0;
	CU_ASSERT_TRUE(took < 5.0);
	CU_ASSERT_EQUAL(d.n, 1);
	CU_ASSERT_PTR_NOT_NULL(find_diag(&d, 6, 0, "alias expansion exceeds 100000 nodes"));
	if (d.n)
		CU_ASSERT_PTR_NOT_NULL(strstr(d.v[0].hint, "multiply"));
	farm_diags_free(&d);

	/* The same through merge keys. */
	farm_buf_reset(&b);
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "m0: &m0 {a: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n"), 0);
	for (int i = 1; i < 12; i++) {
		CU_ASSERT_EQUAL(farm_buf_printf(&b, "m%d: &m%d {", i, i), 0);
		for (int k = 0; k < 10; k++)
			CU_ASSERT_EQUAL(farm_buf_printf(&b, "%sk%d: *m%d", k ? ", " : "", k, i - 1), 0);
		CU_ASSERT_EQUAL(farm_buf_puts(&b, ", <<: *m0}\n"), 0);
	}
	t0 = now_s();
	parse_bad(b.data, b.len, &d);
	CU_ASSERT_TRUE(now_s() - t0 < 5.0);
	CU_ASSERT_EQUAL(d.n, 1);
	if (d.n)
		CU_ASSERT_PTR_NOT_NULL(strstr(d.v[0].msg, "exceeds 100000 nodes"));
	farm_diags_free(&d);
	farm_buf_free(&b);
}

static void test_depth_bomb(void)
{
	struct farm_diags d = { 0 };
	size_t n = 200000;
	char *flow = malloc(n + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(flow);
	memset(flow, '[', n);
	flow[n] = '\0';
	double t0 = now_s();
	parse_bad(flow, n, &d);
	CU_ASSERT_TRUE(now_s() - t0 < 5.0);
	CU_ASSERT_TRUE(expect_diag(&d, 1, 65, "nesting is deeper than 64 levels", NULL));
	CU_ASSERT_EQUAL(d.n, 1);
	farm_diags_free(&d);
	memset(flow, '{', n);
	parse_bad(flow, n, &d);
	CU_ASSERT_EQUAL(d.n, 1);
	farm_diags_free(&d);
	free(flow);

	/* Block mappings, 100 levels. */
	struct farm_buf b = { 0 };
	for (int i = 0; i < 100; i++)
		CU_ASSERT_EQUAL(farm_buf_printf(&b, "%*sk:\n", i, ""), 0);
	CU_ASSERT_EQUAL(farm_buf_printf(&b, "%*sv\n", 100, ""), 0);
	parse_bad(b.data, b.len, &d);
	CU_ASSERT_TRUE(expect_diag(&d, 65, 65, "nesting is deeper than 64 levels", NULL));
	farm_diags_free(&d);

	/* Alias expansion may not deepen past the limit either. */
	farm_buf_reset(&b);
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "a: &deep "), 0);
	for (int i = 0; i < 40; i++)
		CU_ASSERT_EQUAL(farm_buf_puts(&b, "["), 0);
	for (int i = 0; i < 40; i++)
		CU_ASSERT_EQUAL(farm_buf_puts(&b, "]"), 0);
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "\nb: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[*deep]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n"), 0);
	parse_bad(b.data, b.len, &d);
	CU_ASSERT_TRUE(expect_diag(&d, 2, 34, "alias expansion nests deeper than 64 levels", NULL));
	farm_diags_free(&d);
	farm_buf_free(&b);
}

static void test_depth_limit_exact(void)
{
	struct farm_buf b = { 0 };
	for (int i = 0; i < FARM_YAML_MAX_DEPTH; i++)
		CU_ASSERT_EQUAL(farm_buf_puts(&b, "["), 0);
	for (int i = 0; i < FARM_YAML_MAX_DEPTH; i++)
		CU_ASSERT_EQUAL(farm_buf_puts(&b, "]"), 0);
	struct farm_ydoc *doc = parse_ok(b.data);
	CU_ASSERT_PTR_NOT_NULL(doc);
	farm_ydoc_free(doc);
	farm_buf_free(&b);
}

static void test_node_and_scalar_limits(void)
{
	struct farm_diags d = { 0 };
	struct farm_buf b = { 0 };
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "["), 0);
	for (unsigned i = 0; i < FARM_YAML_MAX_NODES + 10; i++)
		CU_ASSERT_EQUAL(farm_buf_puts(&b, "0,"), 0);
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "0]"), 0);
	parse_bad(b.data, b.len, &d);
	CU_ASSERT_EQUAL(d.n, 1);
	CU_ASSERT_PTR_NOT_NULL(find_diag(&d, 1, 0, "the document has more than 100000 nodes"));
	farm_diags_free(&d);

	farm_buf_reset(&b);
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "k: \""), 0);
	for (unsigned i = 0; i < FARM_YAML_MAX_SCALAR / 64 + 1; i++)
		CU_ASSERT_EQUAL(farm_buf_puts(&b, "0123456789012345678901234567890123456789012345678901234567890123"), 0);
	CU_ASSERT_EQUAL(farm_buf_puts(&b, "\"\n"), 0);
	parse_bad(b.data, b.len, &d);
	CU_ASSERT_TRUE(expect_diag(&d, 1, 4, "scalar is longer than 1048576 bytes", NULL));
	farm_diags_free(&d);
	farm_buf_free(&b);
}

static void test_binary_garbage(void)
{
	struct farm_diags d = { 0 };
	/* Invalid UTF-8: reported where it is, as a libyaml reader error. */
	const char bad_utf8[] = "a: 1\nb: x\xff\xfey\n";
	parse_bad(bad_utf8, sizeof bad_utf8 - 1, &d);
	CU_ASSERT_TRUE(expect_diag(&d, 2, 5, "invalid YAML: invalid leading UTF-8 octet", "UTF-8"));
	farm_diags_free(&d);

	const char nul[] = "a: 1\0\0\0b: 2\n";
	parse_bad(nul, sizeof nul - 1, &d);
	CU_ASSERT_TRUE(expect_diag(&d, 1, 5, "control characters are not allowed", NULL));
	farm_diags_free(&d);

	/* Random bytes and mutated YAML: never a crash or a hang. */
	static const char good[] = "boards:\n  - id: pico-1\n    serial: {path: /dev/ttyACM0, baud: 115200}\n"
				   "    tags: [a, b]\n  - &x {id: p2, <<: {port: rp2}}\n  - *x\n";
	unsigned seed = 12345;
	char buf[600];
	double t0 = now_s();
	for (int round = 0; round < 3000; round++) {
		size_t len;
		seed = seed * 1103515245u + 12345u;
		if (round % 2) {
			len = 1 + (seed >> 8) % sizeof buf;
			for (size_t i = 0; i < len; i++) {
				seed = seed * 1103515245u + 12345u;
				buf[i] = (char)(seed >> 16);
			}
		} else {
			len = sizeof good - 1;
			memcpy(buf, good, len);
			for (int k = 0; k < 4; k++) {
				seed = seed * 1103515245u + 12345u;
				buf[(seed >> 8) % len] = (char)(seed >> 20);
			}
		}
		struct farm_ydoc *doc = NULL;
		struct farm_err e = { 0 };
		int rc = farm_ydoc_parse(&doc, "fuzz", buf, len, &d, &e);
		CU_ASSERT_TRUE(rc == 0 || rc == FARM_EINVAL);
		if (rc == FARM_EINVAL)
			CU_ASSERT_TRUE(d.n > 0 || d.n_dropped > 0);
		for (size_t i = 0; i < d.n; i++)
			CU_ASSERT_TRUE(d.v[i].line >= 1);
		farm_ydoc_free(doc);
		farm_diags_free(&d);
	}
	CU_ASSERT_TRUE(now_s() - t0 < 30.0);
}

static void test_syntax_error(void)
{
	struct farm_diags d = { 0 };
	const char *t = "a: 1\n"
			"b: [1, 2\n"
			"c: 3\n";
	parse_bad(t, strlen(t), &d);
	CU_ASSERT_EQUAL(d.n, 1);
	CU_ASSERT_PTR_NOT_NULL(find_diag(&d, 3, 0, "invalid YAML"));
	if (d.n)
		CU_ASSERT_PTR_NOT_NULL(d.v[0].hint && strstr(d.v[0].hint, "line 2, column 4"));
	farm_diags_free(&d);

	t = "a: 1\n b: 2\n";
	parse_bad(t, strlen(t), &d);
	CU_ASSERT_TRUE(expect_diag(&d, 2, 3, "invalid YAML: mapping values are not allowed in this context", NULL));
	farm_diags_free(&d);
}

static void test_multi_doc(void)
{
	struct farm_diags d = { 0 };
	const char *t = "a: 1\n---\nb: 2\n";
	parse_bad(t, strlen(t), &d);
	CU_ASSERT_TRUE(expect_diag(&d, 2, 1, "more than one YAML document", "one document per file"));
	CU_ASSERT_EQUAL(d.n, 1);
	farm_diags_free(&d);
	t = "---\na: 1\n...\n---\nb: 2\n";
	parse_bad(t, strlen(t), &d);
	CU_ASSERT_TRUE(expect_diag(&d, 4, 1, "more than one YAML document", NULL));
	farm_diags_free(&d);
}

static void test_empty_doc(void)
{
	static const char *const empties[] = { "", "# just a comment\n", "---\n", "~\n", "--- ~\n...\n",
					       "\n\n\n", NULL };
	for (size_t i = 0; empties[i]; i++) {
		struct farm_ydoc *doc = parse_ok(empties[i]);
		CU_ASSERT_PTR_NOT_NULL(doc);
		if (doc)
			CU_ASSERT_PTR_NULL(doc->root);
		farm_ydoc_free(doc);
	}
	/* A NULL buffer with length 0 is an empty document too. */
	struct farm_ydoc *doc = NULL;
	CU_ASSERT_EQUAL(farm_ydoc_parse(&doc, NULL, NULL, 0, NULL, NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(doc);
	farm_ydoc_free(doc);
	farm_ydoc_free(NULL);
	farm_strv_free(NULL, 0);
}

static void test_null_diags(void)
{
	/* d may be NULL: problems still fail the parse. */
	struct farm_ydoc *doc = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(farm_ydoc_parse(&doc, "x", "a: 1\na: 2\n", 10, NULL, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NULL(doc);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "1 problem"));
}

/* ------------------------------------------------------------- accessors */

static void test_get_long(void)
{
	struct farm_diags d = { 0 };
	struct farm_ydoc *doc = parse_ok("boards:\n"
					 "  - serial: {baud: 9600}\n"
					 "  - serial: {baud: fast}\n"
					 "vals: [-5, +7, 0x1f, 0o17, \"12\", 1.5, 99999999999999999999, 0x, '', 12abc]\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	const struct farm_ynode *boards = path1(doc, "boards");
	long v = -1;
	CU_ASSERT_EQUAL(farm_yget_long(doc, farm_ymap_get(farm_ymap_get(boards->items[0], "serial"), "baud"),
				       "boards[0].serial.baud", 50, 4000000, &v, &d), 0);
	CU_ASSERT_EQUAL(v, 9600);
	CU_ASSERT_EQUAL(farm_yget_long(doc, farm_ymap_get(farm_ymap_get(boards->items[1], "serial"), "baud"),
				       "boards[1].serial.baud", 50, 4000000, &v, &d), FARM_EINVAL);
	CU_ASSERT_EQUAL(v, 9600);
	CU_ASSERT_EQUAL_FATAL(d.n, 1);
	CU_ASSERT_STRING_EQUAL(d.v[0].file, "t.yaml");
	CU_ASSERT_EQUAL(d.v[0].line, 3);
	CU_ASSERT_EQUAL(d.v[0].col, 20);
	CU_ASSERT_STRING_EQUAL(d.v[0].msg,
			       "boards[1].serial.baud must be an integer between 50 and 4000000, got \"fast\"");
	farm_diags_free(&d);

	const struct farm_ynode *vals = path1(doc, "vals");
	long expect[] = { -5, 7, 31, 15 };
	for (size_t i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL(farm_yget_long(doc, vals->items[i], "v", -100, 100, &v, &d), 0);
		CU_ASSERT_EQUAL(v, expect[i]);
	}
	CU_ASSERT_EQUAL(d.n, 0);
	for (size_t i = 4; i < vals->n; i++)
		CU_ASSERT_EQUAL(farm_yget_long(doc, vals->items[i], "v", -100, 100, &v, &d), FARM_EINVAL);
	CU_ASSERT_EQUAL(d.n, vals->n - 4);
	CU_ASSERT_TRUE(expect_diag(&d, 4, 28, "got \"12\"", "remove the quotes"));
	farm_diags_free(&d);
	/* Out of bounds. */
	CU_ASSERT_EQUAL(farm_yget_long(doc, vals->items[2], "v", 0, 30, &v, &d), FARM_EINVAL);
	CU_ASSERT_TRUE(expect_diag(&d, 4, 16, "v must be an integer between 0 and 30, got \"0x1f\"", NULL));
	farm_diags_free(&d);
	/* Absent and null values leave *out alone. */
	v = 77;
	CU_ASSERT_EQUAL(farm_yget_long(doc, NULL, "v", 0, 1, &v, &d), 0);
	CU_ASSERT_EQUAL(v, 77);
	CU_ASSERT_EQUAL(farm_yget_long(doc, vals, "v", 0, 1, &v, &d), FARM_EINVAL);
	CU_ASSERT_TRUE(expect_diag(&d, 4, 7, "v must be an integer between 0 and 1, got a list", NULL));
	farm_diags_free(&d);
	farm_ydoc_free(doc);
}

static void test_get_bool(void)
{
	struct farm_diags d = { 0 };
	struct farm_ydoc *doc = parse_ok("t: [true, True, TRUE]\n"
					 "f: [false, False, FALSE]\n"
					 "bad: [yes, Off, \"true\", 1, tRuE, ~]\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	int b = -1;
	for (size_t i = 0; i < 3; i++) {
		b = -1;
		CU_ASSERT_EQUAL(farm_yget_bool(doc, path1(doc, "t")->items[i], "t", &b, &d), 0);
		CU_ASSERT_EQUAL(b, 1);
		CU_ASSERT_EQUAL(farm_yget_bool(doc, path1(doc, "f")->items[i], "f", &b, &d), 0);
		CU_ASSERT_EQUAL(b, 0);
	}
	const struct farm_ynode *bad = path1(doc, "bad");
	b = -1;
	for (size_t i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(farm_yget_bool(doc, bad->items[i], "x.dtr", &b, &d), FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_yget_bool(doc, bad->items[5], "x.dtr", &b, &d), 0); /* null: absent */
	CU_ASSERT_EQUAL(b, -1);
	CU_ASSERT_EQUAL(d.n, 5);
	CU_ASSERT_TRUE(expect_diag(&d, 3, 7, "x.dtr must be true or false, got \"yes\"", "write true instead of yes"));
	CU_ASSERT_TRUE(expect_diag(&d, 3, 12, "got \"Off\"", "write false instead of Off"));
	CU_ASSERT_TRUE(expect_diag(&d, 3, 17, "got \"true\"", "remove the quotes"));
	farm_diags_free(&d);
	farm_ydoc_free(doc);
}

static void test_get_ms(void)
{
	struct farm_diags d = { 0 };
	struct farm_ydoc *doc = parse_ok("ok: [2.5, 10, .5, 5., 0.0005, 0.0004, +3, 3600]\n"
					 "bad: [1e3, -1, fast, \"2\", 1.2.3, 3600.001, 0.05, ., inf]\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	unsigned expect[] = { 2500, 10000, 500, 5000, 1, 0, 3000, 3600000 };
	const struct farm_ynode *ok = path1(doc, "ok");
	for (size_t i = 0; i < ok->n; i++) {
		unsigned ms = 99;
		CU_ASSERT_EQUAL(farm_yget_ms(doc, ok->items[i], "t", 0, 3600000, &ms, &d), 0);
		CU_ASSERT_EQUAL(ms, expect[i]);
	}
	CU_ASSERT_EQUAL(d.n, 0);
	const struct farm_ynode *bad = path1(doc, "bad");
	for (size_t i = 0; i < bad->n; i++) {
		unsigned ms = 99;
		CU_ASSERT_EQUAL(farm_yget_ms(doc, bad->items[i], "repl.timeout", 100, 3600000, &ms, &d),
				FARM_EINVAL);
		CU_ASSERT_EQUAL(ms, 99);
	}
	CU_ASSERT_EQUAL(d.n, bad->n);
	CU_ASSERT_TRUE(expect_diag(&d, 2, 7,
				   "repl.timeout must be a number of seconds between 0.1 and 3600, got \"1e3\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 2, 22, "got \"2\"", "remove the quotes"));
	farm_diags_free(&d);
	farm_ydoc_free(doc);
}

static void test_get_str_and_list(void)
{
	struct farm_diags d = { 0 };
	struct farm_ydoc *doc = parse_ok("s: hello\n"
					 "n: 123\n"
					 "long: abcdefghij\n"
					 "nul: \"a\\0b\"\n"
					 "m: {a: 1}\n"
					 "one: pico\n"
					 "many: [a, b, c]\n"
					 "badlist: [a, [b], '', ~]\n"
					 "empty: []\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	char *s = NULL;
	CU_ASSERT_EQUAL(farm_yget_str(doc, path1(doc, "s"), "s", 64, &s, &d), 0);
	CU_ASSERT_STRING_EQUAL(s, "hello");
	free(s);
	s = NULL;
	CU_ASSERT_EQUAL(farm_yget_str(doc, path1(doc, "n"), "n", 64, &s, &d), 0);
	CU_ASSERT_STRING_EQUAL(s, "123");
	free(s);
	s = NULL;
	CU_ASSERT_EQUAL(farm_yget_str(doc, path1(doc, "long"), "long", 5, &s, &d), FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_yget_str(doc, path1(doc, "nul"), "nul", 64, &s, &d), FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_yget_str(doc, path1(doc, "m"), "m", 64, &s, &d), FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_yget_str(doc, path1(doc, "absent"), "absent", 64, &s, &d), 0);
	CU_ASSERT_PTR_NULL(s);
	CU_ASSERT_TRUE(expect_diag(&d, 3, 7, "long is longer than 5 characters", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 4, 6, "nul must not contain NUL characters", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 5, 4, "m must be a string, got a mapping", NULL));
	CU_ASSERT_EQUAL(d.n, 3);
	farm_diags_free(&d);

	char **v = NULL;
	size_t n = 0;
	CU_ASSERT_EQUAL(farm_yget_strlist(doc, path1(doc, "one"), "one", 8, &v, &n, &d), 0);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_STRING_EQUAL(v[0], "pico");
	farm_strv_free(v, n);
	CU_ASSERT_EQUAL(farm_yget_strlist(doc, path1(doc, "many"), "many", 8, &v, &n, &d), 0);
	CU_ASSERT_EQUAL_FATAL(n, 3);
	CU_ASSERT_STRING_EQUAL(v[2], "c");
	farm_strv_free(v, n);
	v = NULL;
	n = 0;
	CU_ASSERT_EQUAL(farm_yget_strlist(doc, path1(doc, "empty"), "empty", 8, &v, &n, &d), 0);
	CU_ASSERT_EQUAL(n, 0);
	farm_strv_free(v, n);
	v = NULL;
	CU_ASSERT_EQUAL(farm_yget_strlist(doc, path1(doc, "many"), "many", 2, &v, &n, &d), FARM_EINVAL);
	CU_ASSERT_TRUE(expect_diag(&d, 7, 7, "many has 3 items; at most 2 are allowed", NULL));
	CU_ASSERT_EQUAL(farm_yget_strlist(doc, path1(doc, "badlist"), "tags", 8, &v, &n, &d), FARM_EINVAL);
	CU_ASSERT_TRUE(expect_diag(&d, 8, 14, "tags[1] must be a non-empty string, got a list", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 8, 19, "tags[2] must be a non-empty string, got \"\"", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 8, 23, "tags[3] must be a non-empty string, got null", NULL));
	CU_ASSERT_EQUAL(farm_yget_strlist(doc, path1(doc, "m"), "m", 8, &v, &n, &d), FARM_EINVAL);
	CU_ASSERT_EQUAL(d.n, 5);
	farm_diags_free(&d);
	farm_ydoc_free(doc);
}

static void test_check_keys_require_kind(void)
{
	static const char *const serial_keys[] = { "path", "baud", "dtr", "rts", NULL };
	struct farm_diags d = { 0 };
	struct farm_ydoc *doc = parse_ok("serial:\n"
					 "  path: /dev/ttyACM0\n"
					 "  baudrate: 115200\n"
					 "  Baud: 1\n"
					 "  pth: x\n"
					 "  zzzzzz: 1\n"
					 "  empty:\n"
					 "list: [1]\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	const struct farm_ynode *s = path1(doc, "serial");
	CU_ASSERT_EQUAL(farm_ycheck_keys(doc, s, serial_keys, "boards[0].serial", &d), 5);
	CU_ASSERT_TRUE(expect_diag(&d, 3, 3, "unknown key \"baudrate\" in boards[0].serial", "did you mean \"baud\"?"));
	CU_ASSERT_TRUE(expect_diag(&d, 4, 3, "unknown key \"Baud\"", "did you mean \"baud\"?"));
	CU_ASSERT_TRUE(expect_diag(&d, 5, 3, "unknown key \"pth\"", "did you mean \"path\"?"));
	CU_ASSERT_TRUE(expect_diag(&d, 6, 3, "unknown key \"zzzzzz\"", "valid keys: path, baud, dtr, rts"));
	farm_diags_free(&d);

	CU_ASSERT_EQUAL(farm_yrequire(doc, s, "path", "serial", &d), 0);
	CU_ASSERT_EQUAL(farm_yrequire(doc, s, "baud", "boards[0].serial", &d), -1);
	CU_ASSERT_EQUAL(farm_yrequire(doc, s, "empty", "serial", &d), -1);
	CU_ASSERT_EQUAL(farm_yrequire(doc, NULL, "boards", "the inventory", &d), -1);
	CU_ASSERT_EQUAL(farm_yrequire(doc, path1(doc, "list"), "x", "list", &d), -1);
	CU_ASSERT_TRUE(expect_diag(&d, 2, 3, "missing required key \"baud\" in boards[0].serial",
				   "add \"baud: ...\""));
	CU_ASSERT_TRUE(expect_diag(&d, 7, 3, "required key \"empty\" in serial has no value", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 0, 0, "missing required key \"boards\" in the inventory", NULL));
	CU_ASSERT_EQUAL(d.n, 3);
	farm_diags_free(&d);

	CU_ASSERT_EQUAL(farm_ycheck_kind(doc, s, FARM_YMAP, "serial", &d), 0);
	CU_ASSERT_EQUAL(farm_ycheck_kind(doc, NULL, FARM_YMAP, "x", &d), -1);
	CU_ASSERT_EQUAL(d.n, 0);
	CU_ASSERT_EQUAL(farm_ycheck_kind(doc, path1(doc, "list"), FARM_YMAP, "list", &d), -1);
	CU_ASSERT_EQUAL(farm_ycheck_kind(doc, farm_ymap_get(s, "path"), FARM_YSEQ, "path", &d), -1);
	CU_ASSERT_TRUE(expect_diag(&d, 8, 7, "list must be a mapping, got a list", NULL));
	CU_ASSERT_TRUE(expect_diag(&d, 2, 9, "path must be a list, got \"/dev/ttyACM0\"", NULL));
	farm_diags_free(&d);

	/* NULL tolerance. */
	CU_ASSERT_PTR_NULL(farm_ymap_get(NULL, "x"));
	CU_ASSERT_PTR_NULL(farm_ymap_get(path1(doc, "list"), "x"));
	CU_ASSERT_EQUAL(farm_ycheck_keys(doc, NULL, serial_keys, "x", &d), 0);
	farm_ydoc_free(doc);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("yaml", NULL, NULL);
	if (!s)
		return -1;
	struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{ "positions", test_positions },
		{ "scalars, plain flag, null", test_scalars_plain_null },
		{ "anchors and aliases", test_anchors_aliases },
		{ "merge keys", test_merge_keys },
		{ "merge of a large mapping", test_merge_large },
		{ "many anchors", test_many_anchors },
		{ "merge key errors", test_merge_errors },
		{ "duplicate keys", test_duplicate_keys },
		{ "non-scalar keys", test_nonscalar_keys },
		{ "tags", test_tags },
		{ "alias errors", test_alias_errors },
		{ "billion laughs", test_billion_laughs },
		{ "depth bomb", test_depth_bomb },
		{ "depth limit is inclusive", test_depth_limit_exact },
		{ "node and scalar limits", test_node_and_scalar_limits },
		{ "binary garbage", test_binary_garbage },
		{ "syntax errors", test_syntax_error },
		{ "multiple documents", test_multi_doc },
		{ "empty documents", test_empty_doc },
		{ "NULL diagnostics list", test_null_diags },
		{ "get long", test_get_long },
		{ "get bool", test_get_bool },
		{ "get ms", test_get_ms },
		{ "get str and strlist", test_get_str_and_list },
		{ "check keys, require, kind", test_check_keys_require_kind },
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
