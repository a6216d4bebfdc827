/* mpfarm: a bounded YAML document tree on top of libyaml's event parser,
 * with positions for diagnostics and small typed accessors used by the
 * inventory and suite validators.
 *
 * Hostile input is bounded: file size (caller), nesting depth, node count,
 * scalar length, and alias expansion (aliases are expanded by copying, every
 * copy counted against the node budget, so "billion laughs" fails fast).
 * Merge keys ("<<: *base" or "<<: [*a, *b]") are resolved at load: keys
 * already present in the mapping win. Tags other than the core schema's are
 * rejected. Duplicate keys in one mapping are a diagnostic. */
#ifndef FARM_YAML_H
#define FARM_YAML_H

#include <stddef.h>
#include "diag.h"
#include "err.h"

#define FARM_YAML_MAX_DEPTH 64
#define FARM_YAML_MAX_NODES 100000
#define FARM_YAML_MAX_SCALAR (1u << 20)

enum farm_ynode_kind { FARM_YSCALAR, FARM_YSEQ, FARM_YMAP };

struct farm_ynode {
	enum farm_ynode_kind kind;
	unsigned line, col;   /* 1-based start position */
	/* scalar */
	char *str;            /* NUL-terminated (may contain NULs: see len) */
	size_t len;
	int plain;            /* 1 if unquoted plain scalar (so null/true/123 typing applies) */
	/* sequence: items[0..n); mapping: keys[i] -> items[i] for i in [0..n) */
	struct farm_ynode **items;
	struct farm_ynode **keys;
	size_t n;
};

struct farm_ydoc {
	struct farm_ynode *root;  /* NULL for an empty document */
	char *file;
	/* private: allocation bookkeeping */
	void *priv;
};

/* Parse buf (one document; more than one is an error). Problems go to d with
 * name:line:col; returns FARM_EINVAL if the text is not usable YAML. */
int farm_ydoc_parse(struct farm_ydoc **out, const char *name, const char *buf, size_t len,
		    struct farm_diags *d, struct farm_err *e);
void farm_ydoc_free(struct farm_ydoc *doc);

/* Accessors; all tolerate NULL nodes.
 * Getters (farm_yget_*): a NULL node (key absent) or a null scalar leaves the
 * outputs untouched and returns 0; a bad value records a diagnostic at the
 * node and returns FARM_EINVAL (FARM_ENOMEM if a copy cannot be allocated).
 * farm_yscalar_is_null(NULL) is 1; farm_ycheck_kind(NULL) returns -1 without
 * a diagnostic (farm_yrequire reports missing keys). */
const struct farm_ynode *farm_ymap_get(const struct farm_ynode *map, const char *key);
int farm_yscalar_is_null(const struct farm_ynode *n);
/* Type checks that record a diagnostic "<what> must be a ..." on mismatch; return 0 if ok. */
int farm_ycheck_kind(const struct farm_ydoc *doc, const struct farm_ynode *n,
		     enum farm_ynode_kind kind, const char *what, struct farm_diags *d);
int farm_yget_str(const struct farm_ydoc *doc, const struct farm_ynode *n, const char *what,
		  size_t max_len, char **out, struct farm_diags *d);      /* strdup'd */
int farm_yget_long(const struct farm_ydoc *doc, const struct farm_ynode *n, const char *what,
		   long min, long max, long *out, struct farm_diags *d);
int farm_yget_bool(const struct farm_ydoc *doc, const struct farm_ynode *n, const char *what,
		   int *out, struct farm_diags *d);
/* Seconds as int or float ("2.5") -> milliseconds, bounded. */
int farm_yget_ms(const struct farm_ydoc *doc, const struct farm_ynode *n, const char *what,
		 unsigned min_ms, unsigned max_ms, unsigned *out, struct farm_diags *d);
/* Scalar or sequence of scalars -> NULL-free string array (strdup'd). */
int farm_yget_strlist(const struct farm_ydoc *doc, const struct farm_ynode *n, const char *what,
		      size_t max_items, char ***out, size_t *n_out, struct farm_diags *d);
/* Report keys of map not in known (NULL-terminated) with a did-you-mean hint.
 * Returns the number of unknown keys. */
size_t farm_ycheck_keys(const struct farm_ydoc *doc, const struct farm_ynode *map,
			const char *const *known, const char *what, struct farm_diags *d);
/* Record "missing required key" at the map's position; returns -1 if missing. */
int farm_yrequire(const struct farm_ydoc *doc, const struct farm_ynode *map, const char *key,
		  const char *what, struct farm_diags *d);

void farm_strv_free(char **v, size_t n);

#endif
