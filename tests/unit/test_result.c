/* Tests for farm/result.c: building, totals, verdict names, freeing. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "result.h"

static void test_add_board_copies(void)
{
	struct farm_run_result r = {0};
	char id[] = "pico-1";
	struct farm_board_result *b = farm_run_add_board(&r, id);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	id[0] = 'X';
	CU_ASSERT_STRING_EQUAL(r.boards[0].board_id, "pico-1");
	CU_ASSERT_EQUAL(r.n_boards, 1);
	CU_ASSERT_EQUAL(b->n_cases, 0);
	CU_ASSERT_PTR_NULL(b->hostname);
	CU_ASSERT_PTR_NULL(b->transcript);

	b = farm_run_add_board(&r, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_PTR_NULL(b->board_id);
	CU_ASSERT_EQUAL(r.n_boards, 2);
	CU_ASSERT_PTR_NULL(farm_run_add_board(NULL, "x"));
	farm_run_result_free(&r);
}

static void test_many_boards_and_cases(void)
{
	struct farm_run_result r = {0};
	char name[32];
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof name, "board-%d", i);
		struct farm_board_result *b = farm_run_add_board(&r, name);
		CU_ASSERT_PTR_NOT_NULL_FATAL(b);
		for (int j = 0; j < 40; j++) {
			snprintf(name, sizeof name, "t%d", j);
			struct farm_case *c = farm_board_add_case(b, "basics", name);
			CU_ASSERT_PTR_NOT_NULL_FATAL(c);
			c->time_s = 0.25;
		}
		CU_ASSERT_EQUAL(farm_board_add_prop(b, "port", "rp2"), 0);
	}
	CU_ASSERT_EQUAL(r.n_boards, 50);
	CU_ASSERT_STRING_EQUAL(r.boards[49].board_id, "board-49");
	CU_ASSERT_STRING_EQUAL(r.boards[49].cases[39].name, "t39");
	CU_ASSERT_STRING_EQUAL(r.boards[0].cases[0].suite, "basics");
	struct farm_totals t;
	farm_run_totals(&r, &t);
	CU_ASSERT_EQUAL(t.tests, 2000);
	CU_ASSERT_EQUAL(t.passed, 2000);
	CU_ASSERT_DOUBLE_EQUAL(t.time_s, 500.0, 1e-9);
	farm_run_result_free(&r);
}

static void test_add_prop(void)
{
	struct farm_run_result r = {0};
	struct farm_board_result *b = farm_run_add_board(&r, "esp32");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_EQUAL(farm_board_add_prop(b, "port", "esp32"), 0);
	CU_ASSERT_EQUAL(farm_board_add_prop(b, "serial", NULL), 0);
	CU_ASSERT_EQUAL(farm_board_add_prop(b, NULL, "v"), 0);
	CU_ASSERT_EQUAL(b->n_props, 3);
	CU_ASSERT_STRING_EQUAL(b->props[0].name, "port");
	CU_ASSERT_STRING_EQUAL(b->props[0].value, "esp32");
	CU_ASSERT_PTR_NULL(b->props[1].value);
	CU_ASSERT_PTR_NULL(b->props[2].name);
	CU_ASSERT_EQUAL(farm_board_add_prop(NULL, "a", "b"), FARM_EINVAL);
	farm_run_result_free(&r);
}

static void test_add_case_defaults(void)
{
	struct farm_run_result r = {0};
	struct farm_board_result *b = farm_run_add_board(&r, "pico");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct farm_case *c = farm_board_add_case(b, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(c->verdict, FARM_PASS);
	CU_ASSERT_PTR_NULL(c->suite);
	CU_ASSERT_PTR_NULL(c->name);
	CU_ASSERT_PTR_NULL(c->message);
	CU_ASSERT_PTR_NULL(c->detail);
	CU_ASSERT_EQUAL(c->time_s, 0.0);
	CU_ASSERT_PTR_NULL(farm_board_add_case(NULL, "s", "n"));
	farm_run_result_free(&r);
}

static void test_case_set(void)
{
	struct farm_run_result r = {0};
	struct farm_board_result *b = farm_run_add_board(&r, "pico");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct farm_case *c = farm_board_add_case(b, "basics", "print");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);

	CU_ASSERT_EQUAL(farm_case_set(c, FARM_FAIL, "output-mismatch", "line %d: got %s", 3, "42"), 0);
	CU_ASSERT_EQUAL(c->verdict, FARM_FAIL);
	CU_ASSERT_STRING_EQUAL(c->type, "output-mismatch");
	CU_ASSERT_STRING_EQUAL(c->message, "line 3: got 42");

	/* Replacing frees the old strings (ASan would see a leak otherwise). */
	CU_ASSERT_EQUAL(farm_case_set(c, FARM_SKIP, NULL, "needs %s", "wifi"), 0);
	CU_ASSERT_EQUAL(c->verdict, FARM_SKIP);
	CU_ASSERT_PTR_NULL(c->type);
	CU_ASSERT_STRING_EQUAL(c->message, "needs wifi");

	/* A NULL format clears the message (called through a pointer: the
	 * compiler's format check would reject a NULL literal). */
	int (*set)(struct farm_case *, enum farm_verdict, const char *, const char *, ...) =
		farm_case_set;
	CU_ASSERT_EQUAL(set(c, FARM_PASS, NULL, NULL), 0);
	CU_ASSERT_EQUAL(c->verdict, FARM_PASS);
	CU_ASSERT_PTR_NULL(c->message);

	CU_ASSERT_EQUAL(farm_case_set(c, FARM_ERROR, "timeout", "%s", ""), 0);
	CU_ASSERT_STRING_EQUAL(c->message, "");

	/* A long message is not cut. */
	char big[5000];
	memset(big, 'm', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	CU_ASSERT_EQUAL(farm_case_set(c, FARM_FAIL, "t", "%s", big), 0);
	CU_ASSERT_EQUAL(strlen(c->message), sizeof big - 1);
	CU_ASSERT_EQUAL(farm_case_set(NULL, FARM_FAIL, "t", "x"), FARM_EINVAL);
	farm_run_result_free(&r);
}

static void test_totals(void)
{
	struct farm_run_result r = {0};
	struct farm_board_result *a = farm_run_add_board(&r, "a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	static const enum farm_verdict va[] = {FARM_PASS, FARM_PASS, FARM_FAIL, FARM_ERROR, FARM_SKIP};
	for (size_t i = 0; i < sizeof va / sizeof va[0]; i++) {
		struct farm_case *c = farm_board_add_case(a, "s", "n");
		CU_ASSERT_PTR_NOT_NULL_FATAL(c);
		c->verdict = va[i];
		c->time_s = 1.0;
	}
	a->cases[0].time_s = -5; /* negative times do not count */

	struct farm_totals t;
	farm_board_totals(a, &t);
	CU_ASSERT_EQUAL(t.tests, 5);
	CU_ASSERT_EQUAL(t.passed, 2);
	CU_ASSERT_EQUAL(t.failures, 1);
	CU_ASSERT_EQUAL(t.errors, 1);
	CU_ASSERT_EQUAL(t.skipped, 1);
	CU_ASSERT_DOUBLE_EQUAL(t.time_s, 4.0, 1e-9); /* no board time: sum of cases */
	a->time_s = 12.5;
	farm_board_totals(a, &t);
	CU_ASSERT_DOUBLE_EQUAL(t.time_s, 12.5, 1e-9); /* the board's wall time wins */

	struct farm_board_result *b = farm_run_add_board(&r, "b");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	struct farm_case *c = farm_board_add_case(b, "s", "odd");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	c->verdict = (enum farm_verdict)42; /* corrupt: counted as an error */
	farm_board_totals(b, &t);
	CU_ASSERT_EQUAL(t.tests, 1);
	CU_ASSERT_EQUAL(t.errors, 1);

	farm_run_totals(&r, &t);
	CU_ASSERT_EQUAL(t.tests, 6);
	CU_ASSERT_EQUAL(t.passed, 2);
	CU_ASSERT_EQUAL(t.failures, 1);
	CU_ASSERT_EQUAL(t.errors, 2);
	CU_ASSERT_EQUAL(t.skipped, 1);
	CU_ASSERT_EQUAL(t.passed + t.failures + t.errors + t.skipped, t.tests);
	CU_ASSERT_DOUBLE_EQUAL(t.time_s, 12.5, 1e-9);

	farm_board_totals(NULL, &t);
	CU_ASSERT_EQUAL(t.tests, 0);
	farm_run_totals(NULL, &t);
	CU_ASSERT_EQUAL(t.tests, 0);
	farm_run_result_free(&r);
}

static void test_verdict_names(void)
{
	CU_ASSERT_STRING_EQUAL(farm_verdict_name(FARM_PASS), "pass");
	CU_ASSERT_STRING_EQUAL(farm_verdict_name(FARM_FAIL), "fail");
	CU_ASSERT_STRING_EQUAL(farm_verdict_name(FARM_ERROR), "error");
	CU_ASSERT_STRING_EQUAL(farm_verdict_name(FARM_SKIP), "skip");
	CU_ASSERT_STRING_EQUAL(farm_verdict_name((enum farm_verdict)99), "unknown");
}

static void test_free(void)
{
	farm_run_result_free(NULL);

	struct farm_run_result r = {0};
	farm_run_result_free(&r); /* empty */

	/* Members set by hand (malloc'ed) are freed too; r is left empty. */
	r.name = strdup("lab");
	struct farm_board_result *b = farm_run_add_board(&r, "pico");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	b->hostname = strdup("ci");
	b->timestamp = strdup("2026-11-21T18:45:40");
	b->transcript = strdup(">>> 1\r\n");
	b->transcript_len = 7;
	b->log_path = strdup("/tmp/pico.log");
	struct farm_case *c = farm_board_add_case(b, "s", "n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	c->detail = strdup("expected 1");
	c->output = strdup("2");
	farm_run_result_free(&r);
	CU_ASSERT_PTR_NULL(r.boards);
	CU_ASSERT_EQUAL(r.n_boards, 0);
	CU_ASSERT_PTR_NULL(r.name);
	farm_run_result_free(&r); /* twice is safe */

	/* Appending to an array allocated by hand with exactly n elements. */
	struct farm_run_result h = {0};
	h.boards = calloc(1, sizeof *h.boards);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h.boards);
	h.n_boards = 1;
	CU_ASSERT_PTR_NOT_NULL(farm_run_add_board(&h, "second"));
	CU_ASSERT_EQUAL(h.n_boards, 2);
	farm_run_result_free(&h);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("result", NULL, NULL);
	if (!s)
		return -1;
	if (!CU_add_test(s, "add board copies", test_add_board_copies) ||
	    !CU_add_test(s, "many boards and cases", test_many_boards_and_cases) ||
	    !CU_add_test(s, "add prop", test_add_prop) ||
	    !CU_add_test(s, "add case defaults", test_add_case_defaults) ||
	    !CU_add_test(s, "case set", test_case_set) ||
	    !CU_add_test(s, "totals", test_totals) ||
	    !CU_add_test(s, "verdict names", test_verdict_names) ||
	    !CU_add_test(s, "free", test_free))
		return -1;
	return 0;
}
