/* mpfarm: REPL smoke-test suites (YAML, plus directories of MicroPython-style
 * test scripts). Schema: suites/README.md.
 *
 * farm_suite_load validates the whole file, recording every problem in
 * farm_diags; returns FARM_EINVAL if any. Expected outputs of directory tests
 * without a .exp file are produced by the host's python3 and cached. */
#ifndef FARM_SUITE_H
#define FARM_SUITE_H

#include <stddef.h>
#include "diag.h"
#include "err.h"

#define FARM_SUITE_MAX_BYTES (4u << 20)
#define FARM_CODE_MAX_BYTES (64u << 10)  /* one test's code */
#define FARM_EXPECT_MAX_BYTES (1u << 20) /* one .exp file / generated expected output */
#define FARM_SUITE_MAX_TESTS 10000       /* tests in one suite, directory tests included */
#define FARM_SUITE_PYTHON_TIMEOUT_MS 10000 /* default deadline for one host python3 run */

enum farm_expect_kind {
	FARM_EXPECT_ANY,    /* must run without an exception; output not checked */
	FARM_EXPECT_EXACT,  /* output equals expect after normalising line endings */
	FARM_EXPECT_REGEX,  /* POSIX extended regex must match somewhere in the output */
	FARM_EXPECT_ERROR,  /* must raise this exception type (e.g. "ZeroDivisionError") */
};

struct farm_requires {
	char **ports;       /* board.port must be one of these (empty = any) */
	size_t n_ports;
	char **tags;        /* board must carry all of these tags */
	size_t n_tags;
	char **features;    /* Python features probed on the board (see farm_suite_feature_probe) */
	size_t n_features;
};

struct farm_test {
	char *name;
	char *code;         /* NUL-terminated source */
	size_t code_len;
	enum farm_expect_kind expect_kind;
	char *expect;       /* exact text, regex, or exception type; NULL for ANY */
	unsigned timeout_ms;/* 0 = board default */
	struct farm_requires req;
	char *file;         /* where it came from (suite file or script) */
	unsigned line;      /* line in the suite file, 0 for scripts */
	int skip_on_output_skip; /* directory test: output "SKIP" = skipped */
	char *skip_reason;  /* non-NULL: skipped before running (e.g. host python3 failed) */
};

struct farm_suite {
	char *name;
	char *path;
	struct farm_test *tests;
	size_t n_tests;
};

struct farm_suite_opts {
	const char *cache_dir; /* for generated .exp files; NULL = $XDG_CACHE_HOME/mpfarm or ~/.cache/mpfarm */
	const char *python;    /* host interpreter, NULL = "python3" */
	unsigned python_timeout_ms; /* per script; 0 = FARM_SUITE_PYTHON_TIMEOUT_MS */
};

int farm_suite_load(struct farm_suite **out, const char *path, const struct farm_suite_opts *opts,
		    struct farm_diags *d, struct farm_err *e);
void farm_suite_free(struct farm_suite *s);

/* Python snippet that prints exactly "1" on a board that has the feature,
 * or NULL if the name is not a known feature. */
const char *farm_suite_feature_probe(const char *feature);
/* NULL-terminated list of known feature names (for did-you-mean). */
const char *const *farm_suite_feature_names(void);

#endif
