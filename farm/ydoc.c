/* mpfarm: a bounded YAML tree built from libyaml's event parser.
 *
 * Every node is allocated on its own and owned by exactly one parent (or the
 * document root). Aliases are expanded by deep copy, each copied node counted
 * against FARM_YAML_MAX_NODES. Nodes dropped while building (duplicate keys,
 * merge keys, non-scalar keys) go to a graveyard that lives until the end of
 * the parse, so anchors that point into them stay valid. */
#include "ydoc.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h> /* libyaml */

#define TAG_PREFIX "tag:yaml.org,2002:"
#define DESC_MAX 96  /* a node described in a message: "\"value...\"" */

/* ---------------------------------------------------------------- nodes */

static void ynode_free(struct farm_ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++) {
		if (n->keys)
			ynode_free(n->keys[i]);
		if (n->items)
			ynode_free(n->items[i]);
	}
	free(n->keys);
	free(n->items);
	free(n->str);
	free(n);
}

/* Append items[n] (and keys[n] for a mapping). Capacity is implied by n:
 * the arrays hold max(4, next power of two above n) entries. */
static int coll_push(struct farm_ynode *c, struct farm_ynode *key, struct farm_ynode *val)
{
	size_t n = c->n;
	if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
		size_t cap = n == 0 ? 4 : n * 2;
		struct farm_ynode **items = realloc(c->items, cap * sizeof *items);
		if (!items)
			return FARM_ENOMEM;
		c->items = items;
		if (c->kind == FARM_YMAP) {
			struct farm_ynode **keys = realloc(c->keys, cap * sizeof *keys);
			if (!keys)
				return FARM_ENOMEM;
			c->keys = keys;
		}
	}
	if (c->kind == FARM_YMAP)
		c->keys[n] = key;
	c->items[n] = val;
	c->n = n + 1;
	return 0;
}

static int scalar_eq(const struct farm_ynode *a, const struct farm_ynode *b)
{
	return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
}

static int scalar_is(const struct farm_ynode *n, const char *s)
{
	size_t l = strlen(s);
	return n->kind == FARM_YSCALAR && n->len == l && memcmp(n->str, s, l) == 0;
}

static int is_merge_key(const struct farm_ynode *k)
{
	return k && k->plain && scalar_is(k, "<<");
}

/* "\"text\"" with control bytes escaped and long text cut, for messages. */
static void describe(const struct farm_ynode *n, char *out, size_t sz)
{
	if (!n) {
		snprintf(out, sz, "nothing");
		return;
	}
	if (n->kind == FARM_YMAP) {
		snprintf(out, sz, "a mapping");
		return;
	}
	if (n->kind == FARM_YSEQ) {
		snprintf(out, sz, "a list");
		return;
	}
	if (farm_yscalar_is_null(n)) {
		snprintf(out, sz, "null");
		return;
	}
	size_t o = 0;
	if (sz < 16) {
		snprintf(out, sz, "a value");
		return;
	}
	out[o++] = '"';
	for (size_t i = 0; i < n->len; i++) {
		unsigned char ch = (unsigned char)n->str[i];
		char tmp[8];
		int w;
		if (ch == '"' || ch == '\\')
			w = snprintf(tmp, sizeof tmp, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			w = snprintf(tmp, sizeof tmp, "\\x%02x", ch);
		else
			w = snprintf(tmp, sizeof tmp, "%c", ch);
		if (o + (size_t)w + 5 >= sz || i >= 60) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(out + o, tmp, (size_t)w);
		o += (size_t)w;
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* ------------------------------------------------------------- key sets */

/* Open-addressing set of scalar key nodes, so duplicate detection and merge
 * resolution stay linear on hostile mappings with many keys. */
struct kset {
	const struct farm_ynode **slot;
	size_t cap; /* power of two, kept at least twice count */
	size_t count;
};

static uint64_t khash(const struct farm_ynode *k)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < k->len; i++) {
		h ^= (unsigned char)k->str[i];
		h *= 1099511628211ull;
	}
	return h;
}

static int kset_init(struct kset *s, size_t n)
{
	size_t cap = 8;
	while (cap < 2 * n + 2)
		cap *= 2;
	s->slot = calloc(cap, sizeof *s->slot);
	s->cap = cap;
	s->count = 0;
	return s->slot ? 0 : FARM_ENOMEM;
}

static void kset_clear(struct kset *s)
{
	memset(s->slot, 0, s->cap * sizeof *s->slot);
	s->count = 0;
}

static size_t kset_probe(const struct kset *s, const struct farm_ynode *k)
{
	size_t i = (size_t)khash(k) & (s->cap - 1);
	while (s->slot[i] && !scalar_eq(s->slot[i], k))
		i = (i + 1) & (s->cap - 1);
	return i;
}

/* Add k unless an equal key is there: then *dup is that key. */
static int kset_add(struct kset *s, const struct farm_ynode *k, const struct farm_ynode **dup)
{
	*dup = NULL;
	if (2 * (s->count + 1) > s->cap) {
		struct kset g;
		if (kset_init(&g, s->count + 1))
			return FARM_ENOMEM;
		for (size_t i = 0; i < s->cap; i++)
			if (s->slot[i])
				g.slot[kset_probe(&g, s->slot[i])] = s->slot[i];
		g.count = s->count;
		free(s->slot);
		*s = g;
	}
	size_t i = kset_probe(s, k);
	if (s->slot[i]) {
		*dup = s->slot[i];
		return 0;
	}
	s->slot[i] = k;
	s->count++;
	return 0;
}

/* -------------------------------------------------------------- builder */

struct anchor {
	char *name;
	struct farm_ynode *node;
	int done; /* 0 while the anchored collection is still open */
};

struct frame {
	struct farm_ynode *node; /* open collection, owned by the frame until it ends */
	struct farm_ynode *key;  /* mapping: key waiting for its value */
	size_t anchor;           /* index + 1 into anchors, 0 if none */
};

struct builder {
	const char *name;
	const char *buf;
	size_t len;
	struct farm_diags *d;
	struct frame stack[FARM_YAML_MAX_DEPTH];
	size_t depth;
	struct anchor *anchors;
	size_t n_anchors, cap_anchors;
	size_t *ahash;    /* open addressing: anchor index + 1 of each name's latest definition */
	size_t ahash_cap; /* power of two, at least twice the number of names */
	size_t ahash_count;
	struct farm_ynode **grave;
	size_t n_grave, cap_grave;
	struct farm_ynode *root;
	size_t n_nodes;
	unsigned n_docs;
	unsigned problems; /* diagnostics recorded */
	int fatal;         /* stop reading events */
	int oom;
};

static void bdiag(struct builder *b, unsigned line, unsigned col, const char *hint,
		  const char *fmt, ...) FARM_PRINTF(5, 6);
static void bdiag(struct builder *b, unsigned line, unsigned col, const char *hint,
		  const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	farm_diags_add(b->d, b->name, line, col, hint, "%s", msg);
	b->problems++;
}

static unsigned mark_u(size_t v)
{
	return v >= UINT_MAX ? UINT_MAX : (unsigned)v + 1;
}

static void oom(struct builder *b)
{
	b->oom = 1;
	b->fatal = 1;
}

/* Keep a dropped node alive until the end of the parse. */
static void bury(struct builder *b, struct farm_ynode *n)
{
	if (!n)
		return;
	if (b->n_grave == b->cap_grave) {
		size_t cap = b->cap_grave ? b->cap_grave * 2 : 16;
		struct farm_ynode **g = realloc(b->grave, cap * sizeof *g);
		if (!g) {
			/* Nothing will be read after this: anchors into n are dead. */
			ynode_free(n);
			oom(b);
			return;
		}
		b->grave = g;
		b->cap_grave = cap;
	}
	b->grave[b->n_grave++] = n;
}

static struct farm_ynode *node_new(struct builder *b, enum farm_ynode_kind kind,
				   const yaml_mark_t *m)
{
	if (b->n_nodes >= FARM_YAML_MAX_NODES) {
		bdiag(b, mark_u(m->line), mark_u(m->column),
		      "split the file or simplify it; mpfarm bounds documents to protect the controller",
		      "the document has more than %u nodes", (unsigned)FARM_YAML_MAX_NODES);
		b->fatal = 1;
		return NULL;
	}
	struct farm_ynode *n = calloc(1, sizeof *n);
	if (!n) {
		oom(b);
		return NULL;
	}
	b->n_nodes++;
	n->kind = kind;
	n->line = mark_u(m->line);
	n->col = mark_u(m->column);
	return n;
}

static const char *const scalar_tags[] = {
	TAG_PREFIX "str", TAG_PREFIX "int", TAG_PREFIX "bool", TAG_PREFIX "null",
	TAG_PREFIX "float", NULL,
};

static const char *tag_show(const char *tag, char *buf, size_t sz)
{
	size_t pl = strlen(TAG_PREFIX);
	if (strncmp(tag, TAG_PREFIX, pl) == 0)
		snprintf(buf, sz, "!!%s", tag + pl);
	else
		snprintf(buf, sz, "%s", tag);
	return buf;
}

#define TAG_HINT "mpfarm accepts only the YAML core tags !!str, !!int, !!float, !!bool, !!null, !!map and !!seq"

/* Check a node's tag; returns 0 if acceptable (a diagnostic was added otherwise). */
static int tag_check(struct builder *b, const yaml_char_t *utag, enum farm_ynode_kind kind,
		     const yaml_mark_t *m)
{
	const char *tag = (const char *)utag;
	char shown[128];
	if (!tag || strcmp(tag, "!") == 0)
		return 0;
	int ok_scalar = 0;
	for (size_t i = 0; scalar_tags[i]; i++)
		if (strcmp(tag, scalar_tags[i]) == 0)
			ok_scalar = 1;
	int is_map = strcmp(tag, TAG_PREFIX "map") == 0;
	int is_seq = strcmp(tag, TAG_PREFIX "seq") == 0;
	if (!ok_scalar && !is_map && !is_seq) {
		bdiag(b, mark_u(m->line), mark_u(m->column), TAG_HINT, "unsupported tag \"%s\"",
		      tag_show(tag, shown, sizeof shown));
		return -1;
	}
	if ((kind == FARM_YSCALAR && !ok_scalar) || (kind == FARM_YSEQ && !is_seq) ||
	    (kind == FARM_YMAP && !is_map)) {
		bdiag(b, mark_u(m->line), mark_u(m->column), TAG_HINT,
		      "tag \"%s\" does not fit a %s", tag_show(tag, shown, sizeof shown),
		      kind == FARM_YSCALAR ? "scalar" : kind == FARM_YSEQ ? "list" : "mapping");
		return -1;
	}
	return 0;
}

static size_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return (size_t)h;
}

/* Slot of name in the anchor hash: its entry, or the empty slot for it. */
static size_t ahash_slot(const size_t *tab, size_t cap, const struct anchor *anchors,
			 const char *name)
{
	size_t i = name_hash(name) & (cap - 1);
	while (tab[i] && strcmp(anchors[tab[i] - 1].name, name) != 0)
		i = (i + 1) & (cap - 1);
	return i;
}

/* Point name at anchors[idx] (its latest definition); 0 or FARM_ENOMEM. */
static int ahash_put(struct builder *b, size_t idx)
{
	const char *name = b->anchors[idx].name;
	if (2 * (b->ahash_count + 1) > b->ahash_cap) {
		size_t cap = b->ahash_cap ? b->ahash_cap * 2 : 64;
		size_t *tab = calloc(cap, sizeof *tab);
		if (!tab)
			return FARM_ENOMEM;
		for (size_t i = 0; i < b->ahash_cap; i++)
			if (b->ahash[i])
				tab[ahash_slot(tab, cap, b->anchors, b->anchors[b->ahash[i] - 1].name)] =
					b->ahash[i];
		free(b->ahash);
		b->ahash = tab;
		b->ahash_cap = cap;
	}
	size_t i = ahash_slot(b->ahash, b->ahash_cap, b->anchors, name);
	if (!b->ahash[i])
		b->ahash_count++;
	b->ahash[i] = idx + 1;
	return 0;
}

/* Record an anchor; returns index + 1, or 0 on allocation failure. */
static size_t anchor_add(struct builder *b, const yaml_char_t *name, struct farm_ynode *node,
			 int done)
{
	if (b->n_anchors == b->cap_anchors) {
		size_t cap = b->cap_anchors ? b->cap_anchors * 2 : 16;
		struct anchor *a = realloc(b->anchors, cap * sizeof *a);
		if (!a) {
			oom(b);
			return 0;
		}
		b->anchors = a;
		b->cap_anchors = cap;
	}
	char *s = strdup((const char *)name);
	if (!s) {
		oom(b);
		return 0;
	}
	b->anchors[b->n_anchors].name = s;
	b->anchors[b->n_anchors].node = node;
	b->anchors[b->n_anchors].done = done;
	b->n_anchors++;
	if (ahash_put(b, b->n_anchors - 1)) {
		oom(b);
		return 0;
	}
	return b->n_anchors;
}

static const struct anchor *anchor_find(const struct builder *b, const char *name)
{
	if (!b->ahash_cap)
		return NULL;
	size_t i = ahash_slot(b->ahash, b->ahash_cap, b->anchors, name);
	return b->ahash[i] ? &b->anchors[b->ahash[i] - 1] : NULL;
}

/* Deep copy for alias expansion. level is the nesting depth the copy will
 * have if it is a collection. Returns NULL on failure (diagnostic added). */
static struct farm_ynode *copy_node(struct builder *b, const struct farm_ynode *src,
				    size_t level, unsigned line, unsigned col)
{
	if (b->fatal)
		return NULL;
	if (b->n_nodes >= FARM_YAML_MAX_NODES) {
		bdiag(b, line, col,
		      "an alias (*name) copies its anchor's whole subtree, so nested aliases "
		      "multiply; flatten the document",
		      "alias expansion exceeds %u nodes", (unsigned)FARM_YAML_MAX_NODES);
		b->fatal = 1;
		return NULL;
	}
	if (src->kind != FARM_YSCALAR && level > FARM_YAML_MAX_DEPTH) {
		bdiag(b, line, col, NULL, "alias expansion nests deeper than %u levels",
		      (unsigned)FARM_YAML_MAX_DEPTH);
		b->fatal = 1;
		return NULL;
	}
	struct farm_ynode *n = calloc(1, sizeof *n);
	if (!n) {
		oom(b);
		return NULL;
	}
	b->n_nodes++;
	n->kind = src->kind;
	n->line = src->line;
	n->col = src->col;
	n->plain = src->plain;
	if (src->kind == FARM_YSCALAR) {
		n->str = malloc(src->len + 1);
		if (!n->str) {
			free(n);
			oom(b);
			return NULL;
		}
		memcpy(n->str, src->str, src->len + 1);
		n->len = src->len;
		return n;
	}
	for (size_t i = 0; i < src->n; i++) {
		struct farm_ynode *k = NULL, *v = NULL;
		if (src->kind == FARM_YMAP) {
			k = copy_node(b, src->keys[i], level + 1, line, col);
			if (!k)
				goto fail;
		}
		v = copy_node(b, src->items[i], level + 1, line, col);
		if (!v || coll_push(n, k, v)) {
			if (v)
				oom(b);
			ynode_free(k);
			ynode_free(v);
			goto fail;
		}
	}
	return n;
fail:
	ynode_free(n);
	return NULL;
}

/* Hand a finished node to its parent (or make it the root). */
static void attach(struct builder *b, struct farm_ynode *node)
{
	if (b->depth == 0) {
		if (b->root)
			bury(b, b->root);
		b->root = node;
		return;
	}
	struct frame *f = &b->stack[b->depth - 1];
	if (f->node->kind == FARM_YSEQ) {
		if (coll_push(f->node, NULL, node)) {
			oom(b);
			ynode_free(node);
		}
		return;
	}
	if (!f->key) {
		f->key = node;
		return;
	}
	struct farm_ynode *key = f->key;
	f->key = NULL;
	if (key->kind != FARM_YSCALAR) {
		bdiag(b, key->line, key->col, "use a plain string as the key",
		      "mapping keys must be scalars, got %s",
		      key->kind == FARM_YMAP ? "a mapping" : "a list");
		bury(b, key);
		bury(b, node);
		return;
	}
	if (coll_push(f->node, key, node)) {
		oom(b);
		ynode_free(key);
		ynode_free(node);
	}
}

static void merge_from(struct builder *b, struct farm_ynode *m, const struct farm_ynode *src,
		       struct kset *seen, size_t level)
{
	for (size_t i = 0; i < src->n && !b->fatal; i++) {
		const struct farm_ynode *k = src->keys[i], *dup;
		if (kset_add(seen, k, &dup)) {
			oom(b);
			return;
		}
		if (dup)
			continue; /* explicit keys and earlier merges win */
		struct farm_ynode *kc = copy_node(b, k, level + 1, k->line, k->col);
		struct farm_ynode *vc = kc ? copy_node(b, src->items[i], level + 1, k->line, k->col) : NULL;
		if (!vc || coll_push(m, kc, vc)) {
			if (vc)
				oom(b);
			ynode_free(kc);
			ynode_free(vc);
			return;
		}
	}
}

#define MERGE_HINT "write \"<<: *name\" or \"<<: [*a, *b]\" where each anchor names a mapping"

/* A mapping ended: report duplicate keys, then resolve merge keys. level is
 * the mapping's own nesting depth. */
static void map_finish(struct builder *b, struct farm_ynode *m, size_t level)
{
	struct kset seen = { NULL, 0, 0 };
	struct farm_ynode **mk = NULL, **mv = NULL;
	size_t n_merge = 0;
	if (m->n == 0)
		return;
	if (kset_init(&seen, m->n)) {
		oom(b);
		goto out;
	}
	for (size_t i = 0; i < m->n; i++) {
		const struct farm_ynode *first;
		if (kset_add(&seen, m->keys[i], &first)) {
			oom(b);
			goto out;
		}
		if (first) {
			char k[DESC_MAX], hint[160];
			describe(m->keys[i], k, sizeof k);
			snprintf(hint, sizeof hint, "remove one of the two; the first is at line %u",
				 first->line);
			bdiag(b, m->keys[i]->line, m->keys[i]->col, hint,
			      "duplicate key %s (first defined at line %u)", k, first->line);
		}
		if (is_merge_key(m->keys[i]))
			n_merge++;
	}
	if (!n_merge)
		goto out;

	/* Take the merge pairs out of m, keeping the explicit pairs in order. */
	mk = calloc(n_merge, sizeof *mk);
	mv = calloc(n_merge, sizeof *mv);
	if (!mk || !mv) {
		oom(b);
		goto out;
	}
	size_t j = 0, t = 0;
	for (size_t i = 0; i < m->n; i++) {
		if (is_merge_key(m->keys[i])) {
			mk[t] = m->keys[i];
			mv[t++] = m->items[i];
		} else {
			m->keys[j] = m->keys[i];
			m->items[j++] = m->items[i];
		}
	}
	m->n = j;
	/* Rebuild the set from the explicit keys only (the "<<" keys are gone). */
	kset_clear(&seen);
	for (size_t i = 0; i < m->n; i++) {
		const struct farm_ynode *dup;
		if (kset_add(&seen, m->keys[i], &dup)) {
			oom(b);
			goto out;
		}
	}
	for (size_t i = 0; i < n_merge && !b->fatal; i++) {
		const struct farm_ynode *v = mv[i];
		char got[DESC_MAX];
		if (v->kind == FARM_YMAP) {
			merge_from(b, m, v, &seen, level);
		} else if (v->kind == FARM_YSEQ) {
			for (size_t k = 0; k < v->n && !b->fatal; k++) {
				if (v->items[k]->kind == FARM_YMAP) {
					merge_from(b, m, v->items[k], &seen, level);
					continue;
				}
				describe(v->items[k], got, sizeof got);
				bdiag(b, v->items[k]->line, v->items[k]->col, MERGE_HINT,
				      "merge key (<<) list items must be mappings, got %s", got);
			}
		} else {
			describe(v, got, sizeof got);
			bdiag(b, v->line, v->col, MERGE_HINT,
			      "merge key (<<) value must be a mapping or a list of mappings, got %s",
			      got);
		}
	}
out:
	for (size_t i = 0; i < n_merge && mk && mv; i++) {
		bury(b, mk[i]);
		bury(b, mv[i]);
	}
	free(mk);
	free(mv);
	free(seen.slot);
}

static void on_scalar(struct builder *b, const yaml_event_t *ev)
{
	const yaml_mark_t *m = &ev->start_mark;
	size_t len = ev->data.scalar.length;
	if (len > FARM_YAML_MAX_SCALAR) {
		bdiag(b, mark_u(m->line), mark_u(m->column), NULL,
		      "scalar is longer than %u bytes", (unsigned)FARM_YAML_MAX_SCALAR);
		b->fatal = 1;
		return;
	}
	tag_check(b, ev->data.scalar.tag, FARM_YSCALAR, m);
	struct farm_ynode *n = node_new(b, FARM_YSCALAR, m);
	if (!n)
		return;
	n->str = malloc(len + 1);
	if (!n->str) {
		free(n);
		oom(b);
		return;
	}
	if (len)
		memcpy(n->str, ev->data.scalar.value, len);
	n->str[len] = '\0';
	n->len = len;
	n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	const char *tag = (const char *)ev->data.scalar.tag;
	if (tag && strcmp(tag, TAG_PREFIX "str") == 0)
		n->plain = 0; /* !!str 123 is the string "123" */
	else if (tag && strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) == 0)
		n->plain = 1; /* !!int "123" is typed like a plain scalar */
	else if (tag && strcmp(tag, "!") == 0)
		n->plain = 0;
	if (ev->data.scalar.anchor && !anchor_add(b, ev->data.scalar.anchor, n, 1)) {
		ynode_free(n);
		return;
	}
	attach(b, n);
}

static void on_alias(struct builder *b, const yaml_event_t *ev)
{
	const yaml_mark_t *m = &ev->start_mark;
	const char *name = (const char *)ev->data.alias.anchor;
	const struct anchor *a = anchor_find(b, name);
	struct farm_ynode *n;
	if (!a || !a->done) {
		char hint[160];
		snprintf(hint, sizeof hint, "define the anchor first with \"&%.64s\" on an earlier node",
			 name);
		if (!a)
			bdiag(b, mark_u(m->line), mark_u(m->column), hint, "unknown alias \"*%s\"", name);
		else
			bdiag(b, mark_u(m->line), mark_u(m->column),
			      "an alias cannot refer to a node that contains it",
			      "alias \"*%s\" refers to its own enclosing node", name);
		/* Keep the structure (key/value pairing) intact with a null. */
		n = node_new(b, FARM_YSCALAR, m);
		if (!n)
			return;
		n->str = calloc(1, 1);
		n->plain = 1;
		if (!n->str) {
			free(n);
			oom(b);
			return;
		}
	} else {
		n = copy_node(b, a->node, b->depth + 1, mark_u(m->line), mark_u(m->column));
		if (!n)
			return;
		n->line = mark_u(m->line);
		n->col = mark_u(m->column);
	}
	attach(b, n);
}

static void on_start(struct builder *b, const yaml_event_t *ev, enum farm_ynode_kind kind)
{
	const yaml_mark_t *m = &ev->start_mark;
	const yaml_char_t *anchor = kind == FARM_YSEQ ? ev->data.sequence_start.anchor
						      : ev->data.mapping_start.anchor;
	const yaml_char_t *tag = kind == FARM_YSEQ ? ev->data.sequence_start.tag
						   : ev->data.mapping_start.tag;
	if (b->depth >= FARM_YAML_MAX_DEPTH) {
		bdiag(b, mark_u(m->line), mark_u(m->column), NULL,
		      "nesting is deeper than %u levels", (unsigned)FARM_YAML_MAX_DEPTH);
		b->fatal = 1;
		return;
	}
	tag_check(b, tag, kind, m);
	struct farm_ynode *n = node_new(b, kind, m);
	if (!n)
		return;
	size_t ai = 0;
	if (anchor) {
		ai = anchor_add(b, anchor, n, 0);
		if (!ai) {
			ynode_free(n);
			return;
		}
	}
	b->stack[b->depth].node = n;
	b->stack[b->depth].key = NULL;
	b->stack[b->depth].anchor = ai;
	b->depth++;
}

static void on_end(struct builder *b)
{
	if (b->depth == 0)
		return;
	struct frame *f = &b->stack[b->depth - 1];
	struct farm_ynode *n = f->node;
	if (f->key) { /* cannot happen with a well-formed event stream */
		bury(b, f->key);
		f->key = NULL;
	}
	if (n->kind == FARM_YMAP)
		map_finish(b, n, b->depth);
	if (f->anchor)
		b->anchors[f->anchor - 1].done = 1;
	f->node = NULL;
	b->depth--;
	attach(b, n);
}

/* Line and column (1-based) of a byte offset, for reader errors. */
static void offset_pos(const char *buf, size_t len, size_t off, unsigned *line, unsigned *col)
{
	size_t l = 1, c = 1;
	if (off > len)
		off = len;
	for (size_t i = 0; i < off; i++) {
		if (buf[i] == '\n') {
			l++;
			c = 1;
		} else {
			c++;
		}
	}
	*line = l >= UINT_MAX ? UINT_MAX : (unsigned)l;
	*col = c >= UINT_MAX ? UINT_MAX : (unsigned)c;
}

static void on_parser_error(struct builder *b, const yaml_parser_t *p)
{
	unsigned line, col;
	char hint[160];
	const char *problem = p->problem ? p->problem : "unknown problem";
	b->fatal = 1;
	switch (p->error) {
	case YAML_MEMORY_ERROR:
		oom(b);
		return;
	case YAML_READER_ERROR:
		offset_pos(b->buf, b->len, p->problem_offset, &line, &col);
		if (p->problem_value != -1)
			bdiag(b, line, col, "the file must be UTF-8 (or UTF-16) text",
			      "invalid YAML: %s (byte 0x%02x)", problem,
			      (unsigned)p->problem_value & 0xffu);
		else
			bdiag(b, line, col, "the file must be UTF-8 (or UTF-16) text",
			      "invalid YAML: %s", problem);
		return;
	default:
		line = mark_u(p->problem_mark.line);
		col = mark_u(p->problem_mark.column);
		if (p->context) {
			snprintf(hint, sizeof hint, "%s, which started at line %u, column %u",
				 p->context, mark_u(p->context_mark.line),
				 mark_u(p->context_mark.column));
			bdiag(b, line, col, hint, "invalid YAML: %s", problem);
		} else {
			bdiag(b, line, col, NULL, "invalid YAML: %s", problem);
		}
		return;
	}
}

static void on_event(struct builder *b, const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (b->n_docs++ > 0) {
			bdiag(b, mark_u(ev->start_mark.line), mark_u(ev->start_mark.column),
			      "mpfarm reads one document per file: remove the extra \"---\" (or split the file)",
			      "the file holds more than one YAML document");
			b->fatal = 1;
		}
		break;
	case YAML_SCALAR_EVENT:
		on_scalar(b, ev);
		break;
	case YAML_ALIAS_EVENT:
		on_alias(b, ev);
		break;
	case YAML_SEQUENCE_START_EVENT:
		on_start(b, ev, FARM_YSEQ);
		break;
	case YAML_MAPPING_START_EVENT:
		on_start(b, ev, FARM_YMAP);
		break;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		on_end(b);
		break;
	default:
		break;
	}
}

static void builder_free(struct builder *b)
{
	for (size_t i = 0; i < b->depth; i++) {
		ynode_free(b->stack[i].node);
		ynode_free(b->stack[i].key);
	}
	b->depth = 0;
	for (size_t i = 0; i < b->n_grave; i++)
		ynode_free(b->grave[i]);
	free(b->grave);
	for (size_t i = 0; i < b->n_anchors; i++)
		free(b->anchors[i].name);
	free(b->anchors);
	free(b->ahash);
	ynode_free(b->root);
}

int farm_ydoc_parse(struct farm_ydoc **out, const char *name, const char *buf, size_t len,
		    struct farm_diags *d, struct farm_err *e)
{
	struct farm_diags local = { 0 };
	struct builder *b = NULL;
	struct farm_ydoc *doc = NULL;
	yaml_parser_t parser;
	int have_parser = 0;
	int rc = 0;

	*out = NULL;
	if (!name)
		name = "<input>";
	if (!d)
		d = &local;
	b = calloc(1, sizeof *b);
	doc = calloc(1, sizeof *doc);
	if (!b || !doc || !(doc->file = strdup(name))) {
		rc = farm_err_set(e, FARM_ENOMEM, "%s: out of memory", name);
		goto out;
	}
	b->name = name;
	b->buf = buf ? buf : "";
	b->len = buf ? len : 0;
	b->d = d;
	if (!yaml_parser_initialize(&parser)) {
		rc = farm_err_set(e, FARM_ENOMEM, "%s: cannot initialise the YAML parser", name);
		goto out;
	}
	have_parser = 1;
	yaml_parser_set_input_string(&parser, (const unsigned char *)b->buf, b->len);

	for (int done = 0; !done && !b->fatal;) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&parser, &ev)) {
			on_parser_error(b, &parser);
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		on_event(b, &ev);
		yaml_event_delete(&ev);
	}
	if (b->oom) {
		rc = farm_err_set(e, FARM_ENOMEM, "%s: out of memory while reading YAML", name);
		goto out;
	}
	if (b->problems || b->fatal) {
		rc = farm_err_set(e, FARM_EINVAL, "%s: not usable YAML (%u problem%s)", name,
				  b->problems, b->problems == 1 ? "" : "s");
		goto out;
	}
	if (b->root && b->root->kind == FARM_YSCALAR && farm_yscalar_is_null(b->root)) {
		ynode_free(b->root); /* "---" alone or "~": an empty document */
		b->root = NULL;
	}
	doc->root = b->root;
	b->root = NULL;
	*out = doc;
	doc = NULL;
out:
	if (have_parser)
		yaml_parser_delete(&parser);
	if (b) {
		builder_free(b);
		free(b);
	}
	farm_ydoc_free(doc);
	farm_diags_free(&local);
	return rc;
}

void farm_ydoc_free(struct farm_ydoc *doc)
{
	if (!doc)
		return;
	ynode_free(doc->root);
	free(doc->file);
	free(doc);
}

/* ------------------------------------------------------------ accessors */

static const char *doc_file(const struct farm_ydoc *doc)
{
	return doc && doc->file ? doc->file : "<input>";
}

static void ndiag(const struct farm_ydoc *doc, const struct farm_ynode *n, struct farm_diags *d,
		  const char *hint, const char *fmt, ...) FARM_PRINTF(5, 6);
static void ndiag(const struct farm_ydoc *doc, const struct farm_ynode *n, struct farm_diags *d,
		  const char *hint, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (d)
		farm_diags_add(d, doc_file(doc), n ? n->line : 0, n ? n->col : 0, hint, "%s", msg);
}

const struct farm_ynode *farm_ymap_get(const struct farm_ynode *map, const char *key)
{
	if (!map || map->kind != FARM_YMAP || !key)
		return NULL;
	size_t kl = strlen(key);
	for (size_t i = 0; i < map->n; i++) {
		const struct farm_ynode *k = map->keys[i];
		if (k && k->len == kl && memcmp(k->str, key, kl) == 0)
			return map->items[i];
	}
	return NULL;
}

int farm_yscalar_is_null(const struct farm_ynode *n)
{
	if (!n)
		return 1;
	if (n->kind != FARM_YSCALAR || !n->plain)
		return 0;
	return n->len == 0 || scalar_is(n, "~") || scalar_is(n, "null") || scalar_is(n, "Null") ||
	       scalar_is(n, "NULL");
}

static const char *kind_name(enum farm_ynode_kind k)
{
	switch (k) {
	case FARM_YSCALAR: return "a single value";
	case FARM_YSEQ: return "a list";
	case FARM_YMAP: return "a mapping";
	}
	return "?";
}

int farm_ycheck_kind(const struct farm_ydoc *doc, const struct farm_ynode *n,
		     enum farm_ynode_kind kind, const char *what, struct farm_diags *d)
{
	char got[DESC_MAX];
	if (!n)
		return -1;
	if (n->kind == kind)
		return 0;
	describe(n, got, sizeof got);
	ndiag(doc, n, d, NULL, "%s must be %s, got %s", what, kind_name(kind), got);
	return -1;
}

static int has_nul(const struct farm_ynode *n)
{
	return strlen(n->str) != n->len;
}

#define QUOTE_HINT "remove the quotes: a quoted value is always a string"

int farm_yget_str(const struct farm_ydoc *doc, const struct farm_ynode *n, const char *what,
		  size_t max_len, char **out, struct farm_diags *d)
{
	char got[DESC_MAX];
	if (farm_yscalar_is_null(n))
		return 0;
	if (n->kind != FARM_YSCALAR) {
		describe(n, got, sizeof got);
		ndiag(doc, n, d, NULL, "%s must be a string, got %s", what, got);
		return FARM_EINVAL;
	}
	if (has_nul(n)) {
		ndiag(doc, n, d, NULL, "%s must not contain NUL characters", what);
		return FARM_EINVAL;
	}
	if (max_len && n->len > max_len) {
		ndiag(doc, n, d, NULL, "%s is longer than %zu characters", what, max_len);
		return FARM_EINVAL;
	}
	char *s = strdup(n->str);
	if (!s) {
		ndiag(doc, n, d, NULL, "out of memory reading %s", what);
		return FARM_ENOMEM;
	}
	*out = s;
	return 0;
}

/* Decimal, 0x hex or 0o octal integer (YAML 1.2 core), optional sign. */
static int parse_long(const char *s, size_t len, long *out)
{
	size_t i = 0;
	int neg = 0, base = 10;
	if (len == 0 || strlen(s) != len)
		return -1;
	if (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-';
		i++;
	}
	if (len - i > 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'o')) {
		base = s[i + 1] == 'x' ? 16 : 8;
		i += 2;
	}
	if (i == len)
		return -1;
	for (size_t k = i; k < len; k++) {
		char c = s[k];
		int ok = base == 16 ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
				       (c >= 'A' && c <= 'F'))
				    : base == 8 ? (c >= '0' && c <= '7') : (c >= '0' && c <= '9');
		if (!ok)
			return -1;
	}
	errno = 0;
	char *end = NULL;
	unsigned long long v = strtoull(s + i, &end, base);
	if (errno == ERANGE || !end || *end != '\0')
		return -1;
	if (neg) {
		if (v > (unsigned long long)LONG_MAX + 1)
			return -1;
		*out = v == (unsigned long long)LONG_MAX + 1 ? LONG_MIN : -(long)v;
	} else {
		if (v > (unsigned long long)LONG_MAX)
			return -1;
		*out = (long)v;
	}
	return 0;
}

int farm_yget_long(const struct farm_ydoc *doc, const struct farm_ynode *n, const char *what,
		   long min, long max, long *out, struct farm_diags *d)
{
	char got[DESC_MAX];
	long v = 0;
	if (farm_yscalar_is_null(n))
		return 0;
	if (n->kind == FARM_YSCALAR && n->plain && parse_long(n->str, n->len, &v) == 0 &&
	    v >= min && v <= max) {
		*out = v;
		return 0;
	}
	describe(n, got, sizeof got);
	ndiag(doc, n, d, n->kind == FARM_YSCALAR && !n->plain && parse_long(n->str, n->len, &v) == 0
			     ? QUOTE_HINT : NULL,
	      "%s must be an integer between %ld and %ld, got %s", what, min, max, got);
	return FARM_EINVAL;
}

static int word_is(const struct farm_ynode *n, const char *const *words)
{
	for (size_t i = 0; words[i]; i++)
		if (n->len == strlen(words[i]) && strcasecmp(n->str, words[i]) == 0)
			return 1;
	return 0;
}

int farm_yget_bool(const struct farm_ydoc *doc, const struct farm_ynode *n, const char *what,
		   int *out, struct farm_diags *d)
{
	static const char *const yes[] = { "yes", "y", "on", NULL };
	static const char *const no[] = { "no", "n", "off", NULL };
	char got[DESC_MAX], hint[160];
	const char *h = NULL;
	if (farm_yscalar_is_null(n))
		return 0;
	if (n->kind == FARM_YSCALAR && n->plain) {
		if (scalar_is(n, "true") || scalar_is(n, "True") || scalar_is(n, "TRUE")) {
			*out = 1;
			return 0;
		}
		if (scalar_is(n, "false") || scalar_is(n, "False") || scalar_is(n, "FALSE")) {
			*out = 0;
			return 0;
		}
	}
	if (n->kind == FARM_YSCALAR && !has_nul(n)) {
		if (word_is(n, yes) || word_is(n, no)) {
			snprintf(hint, sizeof hint,
				 "YAML 1.2 booleans are true and false: write %s instead of %.8s",
				 word_is(n, yes) ? "true" : "false", n->str);
			h = hint;
		} else if (!n->plain && (strcasecmp(n->str, "true") == 0 ||
					 strcasecmp(n->str, "false") == 0)) {
			h = QUOTE_HINT;
		}
	}
	describe(n, got, sizeof got);
	ndiag(doc, n, d, h, "%s must be true or false, got %s", what, got);
	return FARM_EINVAL;
}

/* "[+]digits[.digits]" seconds -> milliseconds (rounded), no locale involved. */
static int parse_seconds(const char *s, size_t len, unsigned long long *ms)
{
	size_t i = 0;
	unsigned long long ip = 0, frac = 0;
	unsigned nd = 0, nf = 0, round_up = 0;
	if (strlen(s) != len)
		return -1;
	if (i < len && s[i] == '+')
		i++;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, nd++) {
		if (ip > 1000000000000ull)
			return -1;
		ip = ip * 10 + (unsigned)(s[i] - '0');
	}
	if (i < len && s[i] == '.') {
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, nf++) {
			if (nf < 3)
				frac = frac * 10 + (unsigned)(s[i] - '0');
			else if (nf == 3)
				round_up = s[i] >= '5';
		}
	}
	if (i != len || (nd == 0 && nf == 0))
		return -1;
	for (unsigned k = nf; k < 3; k++)
		frac *= 10;
	*ms = ip * 1000 + frac + round_up;
	return 0;
}

static const char *fmt_seconds(unsigned ms, char *buf, size_t sz)
{
	if (ms % 1000 == 0) {
		snprintf(buf, sz, "%u", ms / 1000);
	} else {
		snprintf(buf, sz, "%u.%03u", ms / 1000, ms % 1000);
		size_t l = strlen(buf);
		while (l > 0 && buf[l - 1] == '0')
			buf[--l] = '\0';
	}
	return buf;
}

int farm_yget_ms(const struct farm_ydoc *doc, const struct farm_ynode *n, const char *what,
		 unsigned min_ms, unsigned max_ms, unsigned *out, struct farm_diags *d)
{
	char got[DESC_MAX], lo[32], hi[32];
	unsigned long long ms = 0;
	if (farm_yscalar_is_null(n))
		return 0;
	if (n->kind == FARM_YSCALAR && n->plain && parse_seconds(n->str, n->len, &ms) == 0 &&
	    ms >= min_ms && ms <= max_ms) {
		*out = (unsigned)ms;
		return 0;
	}
	describe(n, got, sizeof got);
	ndiag(doc, n, d, n->kind == FARM_YSCALAR && !n->plain && parse_seconds(n->str, n->len, &ms) == 0
			     ? QUOTE_HINT : NULL,
	      "%s must be a number of seconds between %s and %s, got %s", what,
	      fmt_seconds(min_ms, lo, sizeof lo), fmt_seconds(max_ms, hi, sizeof hi), got);
	return FARM_EINVAL;
}

int farm_yget_strlist(const struct farm_ydoc *doc, const struct farm_ynode *n, const char *what,
		      size_t max_items, char ***out, size_t *n_out, struct farm_diags *d)
{
	char got[DESC_MAX];
	char **v = NULL;
	size_t count = 0;
	int rc = 0;
	if (farm_yscalar_is_null(n))
		return 0;
	if (n->kind == FARM_YMAP) {
		ndiag(doc, n, d, "write a string or a list such as [a, b]",
		      "%s must be a string or a list of strings, got a mapping", what);
		return FARM_EINVAL;
	}
	size_t total = n->kind == FARM_YSEQ ? n->n : 1;
	if (max_items && total > max_items) {
		ndiag(doc, n, d, NULL, "%s has %zu items; at most %zu are allowed", what, total,
		      max_items);
		return FARM_EINVAL;
	}
	if (total) {
		v = calloc(total, sizeof *v);
		if (!v) {
			ndiag(doc, n, d, NULL, "out of memory reading %s", what);
			return FARM_ENOMEM;
		}
	}
	for (size_t i = 0; i < total; i++) {
		const struct farm_ynode *it = n->kind == FARM_YSEQ ? n->items[i] : n;
		char where[160];
		if (n->kind == FARM_YSEQ)
			snprintf(where, sizeof where, "%s[%zu]", what, i);
		else
			snprintf(where, sizeof where, "%s", what);
		if (it->kind != FARM_YSCALAR || farm_yscalar_is_null(it) || it->len == 0 ||
		    has_nul(it)) {
			describe(it, got, sizeof got);
			ndiag(doc, it, d, NULL, "%s must be a non-empty string, got %s", where, got);
			if (!rc)
				rc = FARM_EINVAL;
			continue;
		}
		if (rc)
			continue;
		v[count] = strdup(it->str);
		if (!v[count]) {
			ndiag(doc, it, d, NULL, "out of memory reading %s", where);
			rc = FARM_ENOMEM;
			continue;
		}
		count++;
	}
	if (rc) {
		farm_strv_free(v, count);
		return rc;
	}
	*out = v;
	*n_out = count;
	return 0;
}

/* did-you-mean, also catching a known key that prefixes the word
 * ("baudrate" -> "baud") and case slips ("Baud" -> "baud"). */
static const char *suggest(const char *word, const char *const *known)
{
	const char *s = farm_did_you_mean(word, known);
	if (s)
		return s;
	size_t wl = strlen(word);
	for (size_t i = 0; known[i]; i++) {
		size_t kl = strlen(known[i]);
		if (strcasecmp(word, known[i]) == 0)
			return known[i];
		if (kl >= 3 && wl > kl && strncasecmp(word, known[i], kl) == 0)
			return known[i];
		if (wl >= 3 && kl > wl && strncasecmp(known[i], word, wl) == 0)
			return known[i];
	}
	return NULL;
}

static void list_words(const char *const *words, char *buf, size_t sz)
{
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; words[i] && o + 1 < sz; i++) {
		int w = snprintf(buf + o, sz - o, "%s%s", i ? ", " : "", words[i]);
		if (w < 0)
			break;
		o += (size_t)w;
	}
}

size_t farm_ycheck_keys(const struct farm_ydoc *doc, const struct farm_ynode *map,
			const char *const *known, const char *what, struct farm_diags *d)
{
	size_t bad = 0;
	if (!map || map->kind != FARM_YMAP || !known)
		return 0;
	for (size_t i = 0; i < map->n; i++) {
		const struct farm_ynode *k = map->keys[i];
		int found = 0;
		if (!k)
			continue;
		for (size_t j = 0; known[j] && !found; j++)
			found = scalar_is(k, known[j]);
		if (found)
			continue;
		char hint[512], kd[DESC_MAX], list[400];
		const char *s = has_nul(k) ? NULL : suggest(k->str, known);
		if (s) {
			snprintf(hint, sizeof hint, "did you mean \"%s\"?", s);
		} else {
			list_words(known, list, sizeof list);
			snprintf(hint, sizeof hint, "valid keys: %s", list);
		}
		describe(k, kd, sizeof kd);
		ndiag(doc, k, d, hint, "unknown key %s in %s", kd, what);
		bad++;
	}
	return bad;
}

int farm_yrequire(const struct farm_ydoc *doc, const struct farm_ynode *map, const char *key,
		  const char *what, struct farm_diags *d)
{
	char hint[160];
	snprintf(hint, sizeof hint, "add \"%s: ...\" to %s", key, what);
	if (!map) {
		ndiag(doc, NULL, d, hint, "missing required key \"%s\" in %s", key, what);
		return -1;
	}
	if (map->kind != FARM_YMAP)
		return -1;
	size_t kl = strlen(key);
	for (size_t i = 0; i < map->n; i++) {
		const struct farm_ynode *k = map->keys[i];
		if (!k || k->len != kl || memcmp(k->str, key, kl) != 0)
			continue;
		if (farm_yscalar_is_null(map->items[i])) {
			ndiag(doc, k, d, hint, "required key \"%s\" in %s has no value", key, what);
			return -1;
		}
		return 0;
	}
	ndiag(doc, map, d, hint, "missing required key \"%s\" in %s", key, what);
	return -1;
}

void farm_strv_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}
