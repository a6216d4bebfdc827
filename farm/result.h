/* mpfarm: results of a run, the input of every report writer.
 * All strings owned by the result; NULL means absent. */
#ifndef FARM_RESULT_H
#define FARM_RESULT_H

#include <stddef.h>
#include "err.h"

enum farm_verdict {
	FARM_PASS,
	FARM_FAIL,   /* wrong output or wrong/missing exception: <failure> */
	FARM_ERROR,  /* infrastructure: board unreachable, timeout, transport fault: <error> */
	FARM_SKIP,   /* not run, with a reason: <skipped> */
};

struct farm_prop {
	char *name;
	char *value;
};

struct farm_case {
	char *suite;       /* suite name (JUnit classname = "<suite>.<board>") */
	char *name;
	enum farm_verdict verdict;
	double time_s;
	char *message;     /* one line: why it failed/errored/skipped */
	char *type;        /* failure/error type, e.g. "output-mismatch", "timeout" */
	char *detail;      /* body: expected vs actual, traceback */
	char *output;      /* what the board printed (stdout + traceback) */
	struct farm_prop *props; /* the case's own properties (e.g. the firmware's commit) */
	size_t n_props;
};

struct farm_board_result {
	char *board_id;
	char *hostname;
	char *timestamp;   /* ISO 8601 UTC start time, "2026-11-21T18:45:40" */
	double time_s;
	struct farm_prop *props; /* port, board, serial, firmware identity, ... */
	size_t n_props;
	struct farm_case *cases;
	size_t n_cases;
	char *transcript;  /* REPL transcript (bytes as received, may hold control bytes) */
	size_t transcript_len;
	char *log_path;    /* the board's full log file, if kept */
};

struct farm_run_result {
	char *name;        /* farm name */
	struct farm_board_result *boards;
	size_t n_boards;
};

struct farm_totals {
	size_t tests, passed, failures, errors, skipped;
	double time_s;
};

/* Appending; each returns 0 or FARM_ENOMEM. Strings are copied (NULL allowed). */
/* A returned board or case pointer is valid until the next add to the same array;
 * the pointer-returning adds return NULL on allocation failure. */
struct farm_board_result *farm_run_add_board(struct farm_run_result *r, const char *board_id);
/* Set a property; a name set before gets the new value (last wins). */
int farm_board_add_prop(struct farm_board_result *b, const char *name, const char *value);
/* Add a property to a case (value NULL: nothing added). */
int farm_case_add_prop(struct farm_case *c, const char *name, const char *value);
struct farm_case *farm_board_add_case(struct farm_board_result *b, const char *suite,
				      const char *name);
/* Set verdict and message (copied; printf-style). */
int farm_case_set(struct farm_case *c, enum farm_verdict v, const char *type, const char *fmt, ...)
	FARM_PRINTF(4, 5);
void farm_board_totals(const struct farm_board_result *b, struct farm_totals *t);
void farm_run_totals(const struct farm_run_result *r, struct farm_totals *t);
const char *farm_verdict_name(enum farm_verdict v);
void farm_run_result_free(struct farm_run_result *r); /* frees the members, not r */

#endif
