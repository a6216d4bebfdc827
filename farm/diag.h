/* mpfarm: a list of input problems, each at file:line:column with a fix hint.
 * Validators add every problem they find instead of stopping at the first. */
#ifndef FARM_DIAG_H
#define FARM_DIAG_H

#include <stdio.h>
#include "err.h"

struct farm_diag {
	char *file;
	unsigned line; /* 1-based; 0 = whole file */
	unsigned col;  /* 1-based; 0 = unknown */
	char *msg;
	char *hint;    /* may be NULL */
};

struct farm_diags {
	struct farm_diag *v;
	size_t n, cap;
	size_t max; /* stop recording past this many (0 = 200); n_dropped counts the rest */
	size_t n_dropped;
};

/* hint may be NULL. Allocation failure is recorded as a dropped diagnostic. */
void farm_diags_add(struct farm_diags *d, const char *file, unsigned line, unsigned col,
		    const char *hint, const char *fmt, ...) FARM_PRINTF(6, 7);
/* "file:line:col: error: msg\n    hint: ...\n" for each; returns count printed. */
size_t farm_diags_print(const struct farm_diags *d, FILE *out);
void farm_diags_free(struct farm_diags *d);

/* Levenshtein distance, capped at 255 (for did-you-mean hints). */
unsigned farm_edit_distance(const char *a, const char *b);
/* Closest candidate within distance max(2, len/3), or NULL. candidates is NULL-terminated. */
const char *farm_did_you_mean(const char *word, const char *const *candidates);

#endif
