/* mpfarm flash BOARD_ID -i INVENTORY FIRMWARE: flash one board, with a
 * progress bar, then check that it runs the new firmware. The same job as
 * `mpfarm run` (lock, resources, runner, verify, identity), without tests. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_common.h"
#include "firmware.h"
#include "job.h"
#include "lock.h"
#include "result.h"
#include "ui.h"

static const char usage[] =
	"usage: mpfarm flash BOARD_ID -i INVENTORY FIRMWARE [--format ihex|uf2|dfuse|elf|bin]\n"
	"       [--base ADDRESS] [--lock-dir DIR] [--wait-lock SECS] [-q]\n";

static const char *prop(const struct farm_board_result *r, const char *name)
{
	for (size_t i = 0; i < r->n_props; i++)
		if (!strcmp(r->props[i].name, name))
			return r->props[i].value;
	return NULL;
}

int farm_cmd_flash(const struct farm_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "inventory", required_argument, NULL, 'i' },
		{ "format", required_argument, NULL, 'f' },
		{ "base", required_argument, NULL, 'a' },
		{ "lock-dir", required_argument, NULL, 'L' },
		{ "wait-lock", required_argument, NULL, 'W' },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	const char *inv_path = NULL, *lock_opt = NULL;
	struct farm_fwplan_opts po = { 0 };
	unsigned wait_ms = 0;
	int quiet = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "i:q", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			inv_path = optarg;
			break;
		case 'f':
			po.override_format = farm_image_format_parse(optarg);
			if (po.override_format == FARM_IMG_UNKNOWN) {
				fprintf(stderr, "mpfarm flash: unknown image format \"%s\"\n%s", optarg, usage);
				return FARM_EXIT_USAGE;
			}
			break;
		case 'a': {
			char *end = NULL;
			unsigned long long v = strtoull(optarg, &end, 0);
			if (!end || *end || end == optarg || v > 0xffffffffull || optarg[0] == '-') {
				fprintf(stderr, "mpfarm flash: --base takes an address such as 0x08000000\n");
				return FARM_EXIT_USAGE;
			}
			po.override_base = (unsigned long)v;
			break;
		}
		case 'L':
			lock_opt = optarg;
			break;
		case 'W':
			if (farm_cmd_parse_seconds("flash", "--wait-lock", optarg, 0, 86400, &wait_ms))
				return FARM_EXIT_USAGE;
			break;
		case 'q':
			quiet = 1;
			break;
		default:
			fputs(usage, stderr);
			return FARM_EXIT_USAGE;
		}
	}
	if (argc - optind != 2 || !inv_path) {
		fputs(usage, stderr);
		return FARM_EXIT_USAGE;
	}
	const char *board_id = argv[optind];
	po.override_path = argv[optind + 1];
	if (po.override_format == FARM_IMG_BIN && !po.override_base) {
		fprintf(stderr, "mpfarm flash: a raw binary needs --base ADDRESS\n");
		return FARM_EXIT_USAGE;
	}
	struct farm_inventory *inv = NULL;
	int ret = farm_cmd_load_inventory(&inv, inv_path);
	if (ret)
		return ret;
	struct farm_fwplan *plan = NULL;
	struct farm_run_result result = { 0 };
	struct farm_err e = { 0 };
	const struct farm_board *b = farm_inventory_board(inv, board_id);
	if (!b) {
		fprintf(stderr, "mpfarm flash: no board \"%s\" in %s (run 'mpfarm inventory check %s' "
				"to list them)\n", board_id, inv_path, inv_path);
		ret = FARM_EXIT_USAGE;
		goto out;
	}
	struct farm_diags d = { 0 };
	int prc = farm_fwplan_make(&plan, inv, &b, 1, &po, &d, &e);
	if (prc) {
		farm_diags_print(&d, stderr);
		if (!d.n)
			fprintf(stderr, "mpfarm flash: %s\n", e.msg);
		fprintf(stderr, "mpfarm flash: board %s was not touched\n", b->id);
		farm_diags_free(&d);
		ret = prc == FARM_ENOMEM ? FARM_EXIT_INFRA : FARM_EXIT_USAGE;
		goto out;
	}
	farm_diags_free(&d);
	char lock_dir[4096];
	if ((ret = farm_cmd_lock_dir("flash", lock_opt, lock_dir, sizeof lock_dir)))
		goto out;
	struct farm_ui ui;
	farm_ui_init(&ui, stdout, 0, quiet);
	struct farm_board_result *res = farm_run_add_board(&result, b->id);
	if (!res) {
		ret = FARM_EXIT_INFRA;
		goto out;
	}
	char run_id[64];
	snprintf(run_id, sizeof run_id, "flash-%ld", (long)getpid());
	struct farm_job job = {
		.inv = inv, .board = b, .cancel = cli->cancel, .lock_dir = lock_dir,
		.wait_lock_ms = (int)wait_ms, .run_id = run_id, .fw = farm_fwplan_board(plan, b->id),
		/* A person at a terminal can press a board's buttons (flash.entry:
		 * manual); in CI (or under `mpfarm run`) nobody can. */
		.interactive = isatty(0) && isatty(1) && !getenv("CI"),
	};
	struct farm_job_direct direct = { .res = res, .ui = &ui };
	struct farm_job_sink sink;
	farm_job_direct_sink(&sink, &direct);
	farm_job_run(&job, &sink, &e);
	const char *outcome = prop(res, "flash.result");
	const char *fw = prop(res, "firmware");
	if (cli->cancel && *cli->cancel) {
		fprintf(stderr, "mpfarm flash: board %s: interrupted\n", b->id);
		ret = FARM_EXIT_INTERRUPTED;
	} else if (outcome && !strcmp(outcome, "flashed") && fw) {
		printf("board %s: flashed %s; it runs %s\n", b->id, po.override_path, fw);
		ret = FARM_EXIT_OK;
	} else {
		const char *why = prop(res, "flash.error");
		fprintf(stderr, "mpfarm flash: board %s: %s%s%s (log: %s)\n", b->id,
			outcome ? outcome : "not flashed", why ? ": " : "", why ? why : "",
			res->log_path ? res->log_path : "none");
		ret = FARM_EXIT_INFRA;
	}
out:
	farm_run_result_free(&result);
	farm_fwplan_free(plan);
	farm_inventory_free(inv);
	return ret;
}
