/* mpfarm run -i INVENTORY -s SUITE [-s SUITE...] [-o REPORT_DIR] [--boards ID,...] [--tags T,...] */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_common.h"
#include "firmware.h"
#include "fwget.h"
#include "job.h"
#include "junit.h"
#include "lock.h"
#include "worker.h"
#include "result.h"
#include "suite.h"
#include "ui.h"
#include "ydoc.h"

#define MAX_SUITES 64

struct run_opts {
	const char *inventory;
	const char *suites[MAX_SUITES];
	size_t n_suites;
	const char *report_dir;
	struct farm_cmd_select sel;  /* --boards, --tags, --port */
	unsigned shard_k, shard_n; /* --shard K/N, 0/0 = all */
	int verbose, quiet;
	const char *lock_dir;
	int wait_lock_ms;
	unsigned jobs;
	unsigned board_timeout_ms;
	const char *json_events;
	unsigned t_boot, t_test, t_board, t_stall, t_flash; /* --timeout overrides (ms), 0 = not given */
	const char *reflash;       /* --reflash always|changed|never */
	unsigned t_build;          /* --timeout build=S */
	struct farm_cmd_fw_opts fw; /* --ref, --cache-dir, --build-jobs, --offline */
};

/* --timeout boot=S,test=S,board=S,stall=S (seconds; CLI beats board and inventory). */
static int parse_timeouts(struct run_opts *o, const char *arg)
{
	char **items = NULL;
	size_t n = 0;
	int rc = 0;
	if (farm_cmd_split_list(arg, &items, &n))
		return -1;
	for (size_t i = 0; i < n && !rc; i++) {
		char *eq = strchr(items[i], '=');
		char *end = NULL;
		double secs = eq ? strtod(eq + 1, &end) : -1;
		unsigned *dst = NULL;
		if (eq) {
			*eq = '\0';
			dst = !strcmp(items[i], "boot") ? &o->t_boot : !strcmp(items[i], "test") ? &o->t_test
			      : !strcmp(items[i], "board") ? &o->t_board : !strcmp(items[i], "stall") ? &o->t_stall
			      : !strcmp(items[i], "flash") ? &o->t_flash
			      : !strcmp(items[i], "build") ? &o->t_build : NULL;
		}
		if (!dst || !end || *end || secs < 0.1 || secs > 7 * 86400) {
			fprintf(stderr, "mpfarm run: --timeout takes boot=S,test=S,flash=S,build=S,board=S,stall=S "
					"(seconds, 0.1..604800), got \"%s\"\n", arg);
			rc = -1;
			break;
		}
		*dst = (unsigned)(secs * 1000);
	}
	farm_strv_free(items, n);
	return rc;
}

static int parse_args(struct run_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "inventory", required_argument, NULL, 'i' },
		{ "suite", required_argument, NULL, 's' },
		{ "output", required_argument, NULL, 'o' },
		{ "boards", required_argument, NULL, 'b' },
		{ "tags", required_argument, NULL, 'T' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "lock-dir", required_argument, NULL, 'L' },
		{ "wait-lock", required_argument, NULL, 'W' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "port", required_argument, NULL, 'P' },
		{ "json-events", required_argument, NULL, 'J' },
		{ "timeout", required_argument, NULL, 'O' },
		{ "shard", required_argument, NULL, 'S' },
		{ "board-timeout", required_argument, NULL, 'B' },
		{ "reflash", required_argument, NULL, 'R' },
		FARM_CMD_FW_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "i:s:o:vqj:", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			o->inventory = optarg;
			break;
		case 's':
			if (o->n_suites == MAX_SUITES) {
				fprintf(stderr, "mpfarm run: at most %d suites\n", MAX_SUITES);
				return -1;
			}
			o->suites[o->n_suites++] = optarg;
			break;
		case 'o':
			o->report_dir = optarg;
			break;
		case 'R':
			if (strcmp(optarg, "always") && strcmp(optarg, "changed") && strcmp(optarg, "never")) {
				fprintf(stderr, "mpfarm run: --reflash takes always, changed or never, got \"%s\"\n",
					optarg);
				return -1;
			}
			o->reflash = optarg;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'L':
			o->lock_dir = optarg;
			break;
		case 'J':
			o->json_events = optarg;
			break;
		case 'O':
			if (parse_timeouts(o, optarg))
				return -1;
			break;
		case 'S': {
			unsigned k = 0, nn = 0;
			char tail;
			if (sscanf(optarg, "%u/%u%c", &k, &nn, &tail) != 2 || nn < 1 || nn > 4096 || k < 1 ||
			    k > nn) {
				fprintf(stderr, "mpfarm run: --shard takes K/N with 1 <= K <= N, got \"%s\"\n",
					optarg);
				return -1;
			}
			o->shard_k = k;
			o->shard_n = nn;
			break;
		}
		case 'j': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 4096) {
				fprintf(stderr, "mpfarm run: --jobs takes 1..4096, got \"%s\"\n", optarg);
				return -1;
			}
			o->jobs = (unsigned)v;
			break;
		}
		case 'B':
			if (farm_cmd_parse_seconds("run", "--board-timeout", optarg, 0.1, 7 * 86400,
						   &o->board_timeout_ms))
				return -1;
			break;
		case 'W': {
			unsigned ms;
			if (farm_cmd_parse_seconds("run", "--wait-lock", optarg, 0, 86400, &ms))
				return -1;
			o->wait_lock_ms = (int)ms;
			break;
		}
		default: {
			int r = farm_cmd_select_option(&o->sel, c, optarg);
			if (r == 0)
				r = farm_cmd_fw_option(&o->fw, "run", c, optarg);
			if (r == 1)
				break;
			return -1;
		}
		}
	}
	if (optind != argc) {
		fprintf(stderr, "mpfarm run: unexpected argument \"%s\"\n", argv[optind]);
		return -1;
	}
	if (!o->inventory || !o->n_suites) {
		fprintf(stderr, "mpfarm run: -i INVENTORY and at least one -s SUITE are required\n");
		return -1;
	}
	return 0;
}

static int cmp_board_id(const void *a, const void *b)
{
	const struct farm_board *x = *(const struct farm_board *const *)a;
	const struct farm_board *y = *(const struct farm_board *const *)b;
	return strcmp(x->id, y->id);
}

/* Boards selected by --boards, --tags, --port (farm_cmd_select_boards) and --shard. */
static int select_boards(const struct farm_inventory *inv, const struct run_opts *o,
			 const struct farm_board **sel, size_t *n, size_t *n_unsharded)
{
	if (farm_cmd_select_boards("run", inv, o->inventory, &o->sel, sel, n))
		return -1;
	*n_unsharded = *n;
	if (o->shard_n) {
		/* Deterministic and balanced: order the selection by board id and deal
		 * it round-robin; shard K keeps every N-th board from the K-th on. The
		 * same inventory and options give every CI job the same split, and
		 * shard sizes differ by at most one. */
		qsort(sel, *n, sizeof *sel, cmp_board_id);
		size_t kept = 0;
		for (size_t i = 0; i < *n; i++)
			if (i % o->shard_n == o->shard_k - 1)
				sel[kept++] = sel[i];
		*n = kept;
	}
	return 0;
}

/* The longest a healthy worker stays silent: the longest test (or the board's
 * default) plus a full recovery (interrupt, soft reset, reset, boot) plus a
 * lock wait, with a margin. */
static unsigned stall_limit(const struct farm_board *b, struct farm_suite *const *suites,
			    size_t n_suites, int wait_lock_ms)
{
	unsigned longest = b->repl.test_timeout_ms;
	for (size_t i = 0; i < n_suites; i++)
		for (size_t t = 0; t < suites[i]->n_tests; t++)
			if (suites[i]->tests[t].timeout_ms > longest)
				longest = suites[i]->tests[t].timeout_ms;
	unsigned long long ms = (unsigned long long)longest + 2ull * b->repl.boot_timeout_ms +
				(unsigned)(wait_lock_ms > 0 ? wait_lock_ms : 0) + 30000u;
	return ms > 0xffffffffu ? 0xffffffffu : (unsigned)ms;
}

static int exit_code(const struct farm_run_result *r, int interrupted)
{
	if (interrupted)
		return FARM_EXIT_INTERRUPTED;
	struct farm_totals t;
	farm_run_totals(r, &t);
	if (t.errors)
		return FARM_EXIT_INFRA;
	if (t.failures)
		return FARM_EXIT_FAILED;
	return FARM_EXIT_OK;
}

int farm_cmd_run(const struct farm_cli *cli, int argc, char **argv)
{
	struct run_opts o = { .report_dir = "reports" };
	struct farm_inventory *inv = NULL;
	struct farm_suite *suites[MAX_SUITES] = { 0 };
	const struct farm_board **sel = NULL;
	struct farm_fwplan *plan = NULL;
	struct farm_fwget *got = NULL;
	struct farm_run_result result = { 0 };
	struct farm_err e = { 0 };
	int ret = FARM_EXIT_USAGE;
	FILE *json = NULL;

	if (parse_args(&o, argc, argv)) {
		fprintf(stderr, "usage: mpfarm run -i INVENTORY -s SUITE [-s SUITE...] [-o REPORT_DIR]\n"
				"       [--boards ID,...] [--tags TAG,...] [--port PORT,...] [--shard K/N]\n"
				"       [--jobs N] [--board-timeout SECS]\n"
				"       [--timeout boot=S,test=S,flash=S,build=S,board=S,stall=S]\n"
				"       [--reflash always|changed|never]\n"
				"       [--ref REF] [--build-jobs N] [--cache-dir DIR] [--offline]\n"
				"       [--json-events FILE|-]\n"
				"       [--lock-dir DIR] [--wait-lock SECS] [-v] [-q]\n");
		goto out;
	}
	if ((ret = farm_cmd_load_inventory(&inv, o.inventory)))
		goto out;
	ret = FARM_EXIT_USAGE;
	struct farm_suite_opts sopts = { 0 };
	for (size_t i = 0; i < o.n_suites; i++) {
		struct farm_diags d = { 0 };
		if (farm_suite_load(&suites[i], o.suites[i], &sopts, &d, &e)) {
			if (d.n)
				farm_diags_print(&d, stderr);
			else
				fprintf(stderr, "%s: error: %s\n", o.suites[i], e.msg);
			fprintf(stderr, "mpfarm: suite %s is not usable; fix the problems above "
					"(schema: suites/README.md)\n", o.suites[i]);
			farm_diags_free(&d);
			goto out;
		}
		farm_diags_free(&d);
	}
	sel = calloc(inv->n_boards ? inv->n_boards : 1, sizeof *sel);
	size_t n_sel = 0;
	if (!sel) {
		ret = FARM_EXIT_INFRA;
		goto out;
	}
	size_t n_unsharded = 0;
	if (select_boards(inv, &o, sel, &n_sel, &n_unsharded))
		goto out;
	if (n_sel == 0) {
		if (n_unsharded) {
			/* an empty shard is not an error: N CI jobs may outnumber the boards */
			printf("shard %u/%u of %s has no board; nothing to do\n", o.shard_k, o.shard_n,
			       o.inventory);
			ret = FARM_EXIT_OK;
			goto out;
		}
		fprintf(stderr, "mpfarm run: no board of %s matches the selection (--boards/--tags/--port)\n",
			o.inventory);
		goto out;
	}
	int no_flash = o.reflash && !strcmp(o.reflash, "never");
	struct farm_ui ui;
	farm_ui_init(&ui, o.json_events && !strcmp(o.json_events, "-") ? stderr : stdout, o.verbose,
		     o.quiet);
	/* The firmware phase: downloads and builds, before any board is touched. */
	if (!no_flash) {
		o.fw.build_timeout_ms = o.t_build;
		int fr = farm_cmd_fw_get(&got, "run", inv, sel, n_sel, &o.fw, cli->cancel, &ui);
		if (fr) {
			ret = fr;
			goto out;
		}
	}
	/* Every image is loaded, checked and matched to its board before any board is touched. */
	{
		struct farm_diags d = { 0 };
		struct farm_fwplan_opts po = { .no_flash = no_flash, .got = got };
		int prc = farm_fwplan_make(&plan, inv, sel, n_sel, &po, &d, &e);
		if (prc) {
			if (d.n)
				farm_diags_print(&d, stderr);
			else
				fprintf(stderr, "mpfarm run: %s\n", e.msg);
			fprintf(stderr, "mpfarm: no board was touched; fix the firmware problems above "
					"(schema: inventories/README.md)\n");
			farm_diags_free(&d);
			ret = prc == FARM_ENOMEM ? FARM_EXIT_INFRA : FARM_EXIT_USAGE;
			goto out;
		}
		farm_diags_free(&d);
	}
	char log_dir[4096];
	snprintf(log_dir, sizeof log_dir, "%s/logs", o.report_dir);
	int mk = farm_cmd_mkdirs(log_dir);
	if (mk) {
		fprintf(stderr, "mpfarm run: cannot create report directory %s: %s\n", log_dir,
			strerror(-mk));
		ret = FARM_EXIT_INFRA;
		goto out;
	}

	/* Board locks: --lock-dir, else $MPFARM_LOCK_DIR, else the default directory. */
	char lock_dir[4096];
	if ((ret = farm_cmd_lock_dir("run", o.lock_dir, lock_dir, sizeof lock_dir)))
		goto out;
	ret = FARM_EXIT_USAGE;
	char run_id[64];
	{
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		char ts[32];
		strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
		snprintf(run_id, sizeof run_id, "%s-%ld", ts, (long)getpid());
	}

	/* --json-events -: the event stream owns stdout, people read stderr */
	int json_stdout = o.json_events && !strcmp(o.json_events, "-");
	if (o.json_events && !json_stdout) {
		json = fopen(o.json_events, "w");
		if (!json) {
			fprintf(stderr, "mpfarm run: cannot write --json-events %s: %s\n", o.json_events,
				strerror(errno));
			ret = FARM_EXIT_INFRA;
			goto out;
		}
	}
	result.name = strdup(inv->name ? inv->name : "mpfarm");
	/* Every selected board gets its entry up front: nothing is lost if we stop early. */
	for (size_t i = 0; i < n_sel; i++)
		if (!farm_run_add_board(&result, sel[i]->id)) {
			ret = FARM_EXIT_INFRA;
			goto out;
		}
	/* each fetched or built board's firmware testcase comes first */
	for (size_t i = 0; i < n_sel; i++)
		if (farm_fwget_add_case(farm_fwget_board(got, sel[i]->id), &result.boards[i])) {
			ret = FARM_EXIT_INFRA;
			goto out;
		}
	int interrupted = 0;
	struct farm_job *jobs = calloc(n_sel, sizeof *jobs);
	if (!jobs) {
		ret = FARM_EXIT_INFRA;
		goto out;
	}
	for (size_t i = 0; i < n_sel; i++) {
		/* CLI timeouts beat the board's and the inventory's */
		struct farm_board *b = (struct farm_board *)sel[i];
		if (o.t_boot)
			b->repl.boot_timeout_ms = o.t_boot;
		if (o.t_test)
			b->repl.test_timeout_ms = o.t_test;
		if (o.t_flash)
			b->timeouts.flash_ms = o.t_flash;
		jobs[i] = (struct farm_job){
			.inv = inv, .board = sel[i], .suites = suites, .n_suites = o.n_suites,
			.log_dir = log_dir, .cancel = cli->cancel,
			.lock_dir = lock_dir, .wait_lock_ms = o.wait_lock_ms, .run_id = run_id,
			.deadline_ms = o.t_board ? o.t_board : o.board_timeout_ms ? o.board_timeout_ms
				     : b->timeouts.board_ms,
			.stall_ms = o.t_stall ? o.t_stall : stall_limit(b, suites, o.n_suites, o.wait_lock_ms),
			.fw = farm_fwplan_board(plan, sel[i]->id),
			.reflash_changed = o.reflash && !strcmp(o.reflash, "changed"),
		};
	}
	struct farm_sched_opts so = {
		.jobs = o.jobs,
		.board_timeout_ms = 30u * 60 * 1000, /* when neither CLI, board nor inventory say */
		.cancel = cli->cancel,
		.ui = &ui,
		.json = json_stdout ? stdout : json,
	};
	/* On a terminal: a live table instead of line output. */
	const char **ids = calloc(n_sel, sizeof *ids);
	size_t *counts = calloc(n_sel, sizeof *counts);
	if (ids && counts) {
		size_t total = 0;
		for (size_t i = 0; i < o.n_suites; i++)
			total += suites[i]->n_tests;
		for (size_t i = 0; i < n_sel; i++) {
			ids[i] = sel[i]->id;
			counts[i] = total;
		}
		farm_ui_live_start(&ui, ids, counts, n_sel);
	}
	free(ids);
	free(counts);
	int sr = farm_sched_run(jobs, n_sel, result.boards, &so, &e);
	farm_ui_live_stop(&ui);
	free(jobs);
	if (sr < 0) {
		fprintf(stderr, "mpfarm run: %s\n", e.msg);
		ret = FARM_EXIT_INFRA;
		goto out;
	}
	if (sr == 1)
		interrupted = 1;
	if (cli->cancel && *cli->cancel)
		interrupted = 1;

	char report[4096];
	snprintf(report, sizeof report, "%s/junit.xml", o.report_dir);
	farm_ui_summary(&ui, &result);
	if (farm_junit_write(report, &result, &e)) {
		fprintf(stderr, "mpfarm run: cannot write the report: %s\n", e.msg);
		ret = FARM_EXIT_INFRA;
		goto out;
	}
	fprintf(ui.out, "report: %s\n", report);
	ret = exit_code(&result, interrupted);
out:
	for (size_t i = 0; i < MAX_SUITES; i++)
		farm_suite_free(suites[i]);
	free(sel);
	farm_fwplan_free(plan);
	farm_fwget_free(got);
	farm_inventory_free(inv);
	farm_run_result_free(&result);
	farm_cmd_select_free(&o.sel);
	if (json)
		fclose(json);
	return ret;
}
