/* mpfarm: the run's event stream as JSON Lines (--json-events), one object a
 * line: {"time": ISO-8601 UTC, "board": ID, "event": "phase"|"prop"|"progress"|"case"|"end", ...}.
 * Strings are valid JSON whatever the board printed: control bytes become
 * \u00XX and invalid UTF-8 bytes U+FFFD. */
#ifndef FARM_JSONL_H
#define FARM_JSONL_H

#include <stdio.h>

#include "buf.h"
#include "result.h"

/* Append s[0..len) as a quoted JSON string. */
int farm_json_string(struct farm_buf *out, const char *s, size_t len);

void farm_jsonl_phase(FILE *f, const char *board, const char *phase, const char *msg);
void farm_jsonl_prop(FILE *f, const char *board, const char *name, const char *value);
void farm_jsonl_case(FILE *f, const char *board, const struct farm_case *c);
void farm_jsonl_end(FILE *f, const char *board, double time_s);
/* {"event":"progress","step":"write","done":N,"total":N} */
void farm_jsonl_progress(FILE *f, const char *board, const char *step, unsigned long long done,
			 unsigned long long total);

#endif
