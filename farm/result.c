/* mpfarm: the results model (see result.h).
 *
 * Arrays grow by exactly one element per append (realloc to n + 1), so a
 * result built partly by hand (members malloc'ed with exactly n elements) can
 * still be appended to and freed here. Runs hold tens of boards and hundreds
 * of cases; the quadratic copying is not measurable at that size. */
#include "result.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copy s into *out; NULL stays NULL. Returns 0 or FARM_ENOMEM. */
static int dup_str(char **out, const char *s)
{
	*out = NULL;
	if (!s)
		return 0;
	size_t n = strlen(s);
	char *p = malloc(n + 1);
	if (!p)
		return FARM_ENOMEM;
	memcpy(p, s, n + 1);
	*out = p;
	return 0;
}

/* Make room for element n of an array of `size`-byte elements holding n;
 * the new element is zeroed. Returns a pointer to it, or NULL. */
static void *append_slot(void **v, size_t n, size_t size)
{
	if (n >= SIZE_MAX / size - 1)
		return NULL;
	char *p = realloc(*v, (n + 1) * size);
	if (!p)
		return NULL;
	*v = p;
	memset(p + n * size, 0, size);
	return p + n * size;
}

struct farm_board_result *farm_run_add_board(struct farm_run_result *r, const char *board_id)
{
	char *id = NULL;
	if (!r || dup_str(&id, board_id))
		return NULL;
	void *v = r->boards;
	struct farm_board_result *b = append_slot(&v, r->n_boards, sizeof *b);
	r->boards = v;
	if (!b) {
		free(id);
		return NULL;
	}
	b->board_id = id;
	r->n_boards++;
	return b;
}

/* Set name=value in a property list (a name set before gets the new value). */
static int prop_set(struct farm_prop **props, size_t *n_props, const char *name, const char *value)
{
	char *n = NULL, *v = NULL;
	int rc = FARM_ENOMEM;
	if (dup_str(&n, name) || dup_str(&v, value))
		goto out;
	for (size_t i = 0; n && i < *n_props; i++)
		if (!strcmp((*props)[i].name, n)) {
			/* a later value replaces the earlier one (e.g. after a reflash) */
			free((*props)[i].value);
			(*props)[i].value = v;
			v = NULL;
			rc = 0;
			goto out;
		}
	void *arr = *props;
	struct farm_prop *p = append_slot(&arr, *n_props, sizeof *p);
	*props = arr;
	if (!p)
		goto out;
	p->name = n;
	p->value = v;
	n = v = NULL;
	(*n_props)++;
	rc = 0;
out:
	free(n);
	free(v);
	return rc;
}

int farm_board_add_prop(struct farm_board_result *b, const char *name, const char *value)
{
	return b ? prop_set(&b->props, &b->n_props, name, value) : FARM_EINVAL;
}

int farm_case_add_prop(struct farm_case *c, const char *name, const char *value)
{
	if (!c)
		return FARM_EINVAL;
	return value ? prop_set(&c->props, &c->n_props, name, value) : 0;
}

struct farm_case *farm_board_add_case(struct farm_board_result *b, const char *suite,
				      const char *name)
{
	char *s = NULL, *n = NULL;
	struct farm_case *c = NULL;
	if (!b || dup_str(&s, suite) || dup_str(&n, name))
		goto out;
	void *arr = b->cases;
	c = append_slot(&arr, b->n_cases, sizeof *c);
	b->cases = arr;
	if (!c)
		goto out;
	c->suite = s;
	c->name = n;
	c->verdict = FARM_PASS;
	s = n = NULL;
	b->n_cases++;
out:
	free(s);
	free(n);
	return c;
}

/* The verdict is set even when copying the message fails: a failure must
 * never be reported as a pass because memory ran out. The previous type and
 * message are replaced only on success. */
int farm_case_set(struct farm_case *c, enum farm_verdict v, const char *type, const char *fmt, ...)
{
	char *t = NULL, *msg = NULL;
	int rc = FARM_EINVAL;
	if (!c)
		goto out;
	c->verdict = v;
	rc = FARM_ENOMEM;
	if (dup_str(&t, type))
		goto out;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(NULL, 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			rc = FARM_EINVAL;
			goto out;
		}
		msg = malloc((size_t)n + 1);
		if (!msg)
			goto out;
		va_start(ap, fmt);
		vsnprintf(msg, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	free(c->type);
	free(c->message);
	c->type = t;
	c->message = msg;
	t = msg = NULL;
	rc = 0;
out:
	free(t);
	free(msg);
	return rc;
}

static void add_verdict(struct farm_totals *t, enum farm_verdict v)
{
	t->tests++;
	switch (v) {
	case FARM_PASS: t->passed++; break;
	case FARM_FAIL: t->failures++; break;
	case FARM_SKIP: t->skipped++; break;
	case FARM_ERROR:
	default: t->errors++; break; /* an unknown verdict is reported as an error */
	}
}

/* Time: the board's own wall time when recorded, else the sum of its cases. */
void farm_board_totals(const struct farm_board_result *b, struct farm_totals *t)
{
	memset(t, 0, sizeof *t);
	if (!b)
		return;
	double sum = 0;
	for (size_t i = 0; i < b->n_cases; i++) {
		add_verdict(t, b->cases[i].verdict);
		if (b->cases[i].time_s > 0)
			sum += b->cases[i].time_s;
	}
	t->time_s = b->time_s > 0 ? b->time_s : sum;
}

void farm_run_totals(const struct farm_run_result *r, struct farm_totals *t)
{
	memset(t, 0, sizeof *t);
	if (!r)
		return;
	for (size_t i = 0; i < r->n_boards; i++) {
		struct farm_totals bt;
		farm_board_totals(&r->boards[i], &bt);
		t->tests += bt.tests;
		t->passed += bt.passed;
		t->failures += bt.failures;
		t->errors += bt.errors;
		t->skipped += bt.skipped;
		t->time_s += bt.time_s;
	}
}

const char *farm_verdict_name(enum farm_verdict v)
{
	switch (v) {
	case FARM_PASS: return "pass";
	case FARM_FAIL: return "fail";
	case FARM_ERROR: return "error";
	case FARM_SKIP: return "skip";
	}
	return "unknown";
}

static void case_free(struct farm_case *c)
{
	free(c->suite);
	free(c->name);
	free(c->message);
	free(c->type);
	free(c->detail);
	free(c->output);
	for (size_t i = 0; i < c->n_props; i++) {
		free(c->props[i].name);
		free(c->props[i].value);
	}
	free(c->props);
}

static void board_free(struct farm_board_result *b)
{
	free(b->board_id);
	free(b->hostname);
	free(b->timestamp);
	for (size_t i = 0; i < b->n_props; i++) {
		free(b->props[i].name);
		free(b->props[i].value);
	}
	free(b->props);
	for (size_t i = 0; i < b->n_cases; i++)
		case_free(&b->cases[i]);
	free(b->cases);
	free(b->transcript);
	free(b->log_path);
}

/* Frees every member and leaves *r empty (safe to free again or reuse). */
void farm_run_result_free(struct farm_run_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_boards; i++)
		board_free(&r->boards[i]);
	free(r->boards);
	free(r->name);
	memset(r, 0, sizeof *r);
}
