#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void farm_diags_add(struct farm_diags *d, const char *file, unsigned line, unsigned col,
		    const char *hint, const char *fmt, ...)
{
	size_t max = d->max ? d->max : 200;
	if (d->n >= max) {
		d->n_dropped++;
		return;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		struct farm_diag *v = realloc(d->v, cap * sizeof *v);
		if (!v) {
			d->n_dropped++;
			return;
		}
		d->v = v;
		d->cap = cap;
	}
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct farm_diag *g = &d->v[d->n];
	g->file = strdup(file ? file : "<input>");
	g->msg = strdup(msg);
	g->hint = hint ? strdup(hint) : NULL;
	g->line = line;
	g->col = col;
	if (!g->file || !g->msg || (hint && !g->hint)) {
		free(g->file);
		free(g->msg);
		free(g->hint);
		d->n_dropped++;
		return;
	}
	d->n++;
}

size_t farm_diags_print(const struct farm_diags *d, FILE *out)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct farm_diag *g = &d->v[i];
		if (g->line)
			fprintf(out, "%s:%u:%u: error: %s\n", g->file, g->line, g->col, g->msg);
		else
			fprintf(out, "%s: error: %s\n", g->file, g->msg);
		if (g->hint)
			fprintf(out, "    hint: %s\n", g->hint);
	}
	if (d->n_dropped)
		fprintf(out, "(%zu more problems not shown)\n", d->n_dropped);
	return d->n;
}

void farm_diags_free(struct farm_diags *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].msg);
		free(d->v[i].hint);
	}
	free(d->v);
	d->v = NULL;
	d->n = d->cap = d->n_dropped = 0;
}

unsigned farm_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return 255;
	unsigned row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned prev = row[0];
		row[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			unsigned cur = row[j];
			unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
			unsigned best = prev + cost;
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = cur;
		}
	}
	return row[lb] > 255 ? 255 : row[lb];
}

const char *farm_did_you_mean(const char *word, const char *const *candidates)
{
	size_t len = strlen(word);
	unsigned limit = len / 3 > 2 ? (unsigned)(len / 3) : 2;
	const char *best = NULL;
	unsigned best_d = limit + 1;
	for (size_t i = 0; candidates && candidates[i]; i++) {
		unsigned dd = farm_edit_distance(word, candidates[i]);
		if (dd < best_d) {
			best_d = dd;
			best = candidates[i];
		}
	}
	return best;
}
