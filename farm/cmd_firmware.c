/* mpfarm firmware: the firmware phase alone (prepare a run's images, warm
 * the cache); mpfarm cache list|prune; the firmware options shared with run. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cmd_common.h"
#include "fetch.h"
#include "firmware.h"
#include "fwcache.h"
#include "fwget.h"
#include "jsonl.h"
#include "junit.h"
#include "result.h"
#include "ydoc.h"

#define CACHE_PRUNE_WAIT_MS (10u * 60 * 1000)

int farm_cmd_fw_option(struct farm_cmd_fw_opts *o, const char *cmd, int c, const char *arg)
{
	char *end = NULL;
	long v;
	switch (c) {
	case 0x101:
		if (!*arg || strlen(arg) > 255) {
			fprintf(stderr, "mpfarm %s: --ref takes a branch, tag, commit or pull/N/head\n", cmd);
			return -1;
		}
		o->ref = arg;
		return 1;
	case 0x102:
		o->cache_dir = arg;
		return 1;
	case 0x103:
		v = strtol(arg, &end, 10);
		if (*end || v < 1 || v > 64) {
			fprintf(stderr, "mpfarm %s: --build-jobs takes 1..64, got \"%s\"\n", cmd, arg);
			return -1;
		}
		o->build_jobs = (unsigned)v;
		return 1;
	case 0x104:
		o->offline = 1;
		return 1;
	default:
		return 0;
	}
}

int farm_cmd_fw_get(struct farm_fwget **got, const char *cmd, const struct farm_inventory *inv,
		    const struct farm_board *const *sel, size_t n, const struct farm_cmd_fw_opts *o,
		    const volatile sig_atomic_t *cancel, const struct farm_ui *ui)
{
	struct farm_err e = { 0 };
	if (farm_fetch_global_init(&e)) {
		fprintf(stderr, "mpfarm %s: %s\n", cmd, e.msg);
		return FARM_EXIT_INFRA;
	}
	struct farm_fwget_opts fo = {
		.cache_dir = o->cache_dir, .ref = o->ref, .build_jobs = o->build_jobs,
		.build_timeout_ms = o->build_timeout_ms, .offline = o->offline, .cancel = cancel,
		.ui = ui,
	};
	int rc = farm_fwget_run(got, inv, sel, n, &fo, &e);
	farm_fetch_global_cleanup();
	if (rc == FARM_EINTR)
		return FARM_EXIT_INTERRUPTED;
	if (rc) {
		fprintf(stderr, "mpfarm %s: firmware phase: %s\n", cmd, e.msg);
		return FARM_EXIT_INFRA;
	}
	const struct farm_fwget *g = *got;
	if (g->n_downloads || g->n_builds || g->n_cached || g->n_failed)
		fprintf(ui->out, "firmware: %zu download%s, %zu build%s, %zu board%s from the cache, "
				 "%zu failed\n", g->n_downloads, g->n_downloads == 1 ? "" : "s",
			g->n_builds, g->n_builds == 1 ? "" : "s", g->n_cached, g->n_cached == 1 ? "" : "s",
			g->n_failed);
	return 0;
}

/* ---- mpfarm firmware ---- */

static void print_board(FILE *out, const struct farm_fwget_board *gb, const struct farm_fw_board *fb)
{
	const char *state = gb->failed ? "FAILED" : fb && fb->error[0] ? "UNUSABLE"
			    : gb->cached ? "cached" : gb->kind == FARM_FWGET_BUILD ? "built" : "fetched";
	fprintf(out, "%-20.20s %-6s %-8s %-12.12s %-12.12s %s\n", gb->board->id,
		gb->kind == FARM_FWGET_BUILD ? "build" : "fetch", state,
		gb->sha256[0] ? gb->sha256 : "-", gb->commit[0] ? gb->commit : "-", gb->source);
	if (gb->failed)
		fprintf(out, "    %s\n", gb->message);
	else if (fb && fb->error[0])
		fprintf(out, "    %s\n", fb->error);
}

int farm_cmd_firmware(const struct farm_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "inventory", required_argument, NULL, 'i' },
		{ "boards", required_argument, NULL, 'b' },
		{ "tags", required_argument, NULL, 'T' },
		{ "port", required_argument, NULL, 'P' },
		{ "output", required_argument, NULL, 'o' },
		{ "timeout", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		FARM_CMD_FW_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct farm_cmd_fw_opts fo = { 0 };
	struct farm_cmd_select cs = { 0 };
	const char *inv_path = NULL, *report_dir = NULL;
	int quiet = 0, c, ret = FARM_EXIT_USAGE;
	struct farm_inventory *inv = NULL;
	const struct farm_board **sel = NULL;
	struct farm_fwget *got = NULL;
	struct farm_fwplan *plan = NULL;
	struct farm_run_result result = { 0 };
	optind = 1;
	while ((c = getopt_long(argc, argv, "i:o:t:q", longopts, NULL)) != -1) {
		int r = farm_cmd_fw_option(&fo, "firmware", c, optarg);
		if (r == 1)
			continue;
		if (r < 0)
			goto usage;
		switch (c) {
		case 'i':
			inv_path = optarg;
			break;
		case 'o':
			report_dir = optarg;
			break;
		case 'q':
			quiet = 1;
			break;
		case 't':
			if (farm_cmd_parse_seconds("firmware", "--timeout", optarg, 1, 7 * 86400,
						   &fo.build_timeout_ms))
				goto usage;
			break;
		default:
			if (farm_cmd_select_option(&cs, c, optarg) != 1)
				goto usage;
		}
	}
	if (optind != argc || !inv_path) {
		fprintf(stderr, "mpfarm firmware: -i INVENTORY is required\n");
		goto usage;
	}
	if ((ret = farm_cmd_load_inventory(&inv, inv_path)))
		goto out;
	ret = FARM_EXIT_INFRA;
	size_t n = 0;
	if (!(sel = calloc(inv->n_boards ? inv->n_boards : 1, sizeof *sel)))
		goto out;
	ret = FARM_EXIT_USAGE;
	if (farm_cmd_select_boards("firmware", inv, inv_path, &cs, sel, &n))
		goto out;
	struct farm_ui ui;
	farm_ui_init(&ui, stdout, 0, quiet);
	if ((ret = farm_cmd_fw_get(&got, "firmware", inv, sel, n, &fo, cli->cancel, &ui)))
		goto out;
	/* every image checked against its board, as a run would */
	struct farm_diags d = { 0 };
	struct farm_err e = { 0 };
	struct farm_fwplan_opts po = { .got = got };
	int prc = farm_fwplan_make(&plan, inv, sel, n, &po, &d, &e);
	if (d.n)
		farm_diags_print(&d, stderr);
	farm_diags_free(&d);
	if (prc == FARM_ENOMEM) {
		ret = FARM_EXIT_INFRA;
		goto out;
	}
	size_t failed = 0, infra = 0, shown = 0;
	result.name = strdup(inv->name ? inv->name : "mpfarm");
	for (size_t i = 0; i < got->n_boards; i++) {
		const struct farm_fwget_board *gb = &got->boards[i];
		if (gb->kind == FARM_FWGET_NONE)
			continue;
		const struct farm_fw_board *fb = farm_fwplan_board(plan, gb->board->id);
		if (!shown++ && !quiet)
			fprintf(stdout, "%-20s %-6s %-8s %-12s %-12s %s\n", "BOARD", "KIND", "STATE",
				"SHA256", "COMMIT", "SOURCE");
		if (!quiet || gb->failed)
			print_board(stdout, gb, fb);
		failed += gb->failed || (fb && fb->error[0]);
		infra += gb->failed && gb->infra;
		struct farm_board_result *br = farm_run_add_board(&result, gb->board->id);
		if (!br || farm_fwget_add_case(gb, br)) {
			ret = FARM_EXIT_INFRA;
			goto out;
		}
		if (fb && fb->error[0] && !gb->failed && br->n_cases)
			farm_case_set(&br->cases[br->n_cases - 1], FARM_FAIL, "firmware-unusable", "%s",
				      fb->error);
	}
	if (!shown)
		fprintf(stdout, "no selected board has a fetch: or build: firmware entry\n");
	if (report_dir) {
		char path[4096];
		snprintf(path, sizeof path, "%s/junit.xml", report_dir);
		int mk = farm_cmd_mkdirs(report_dir);
		if (mk || farm_junit_write(path, &result, &e)) {
			fprintf(stderr, "mpfarm firmware: cannot write %s: %s\n", path,
				mk ? "cannot create the directory" : e.msg);
			ret = FARM_EXIT_INFRA;
			goto out;
		}
		fprintf(stdout, "report: %s\n", path);
	}
	ret = prc ? FARM_EXIT_USAGE : infra ? FARM_EXIT_INFRA : failed ? FARM_EXIT_FAILED : FARM_EXIT_OK;
	goto out;
usage:
	fprintf(stderr, "usage: mpfarm firmware -i INVENTORY [--boards ID,...] [--tags TAG,...] "
			"[--port PORT,...]\n"
			"       [--ref REF] [--build-jobs N] [--cache-dir DIR] [--offline] "
			"[--timeout SECS] [-o REPORT_DIR] [-q]\n");
	ret = FARM_EXIT_USAGE;
out:
	farm_run_result_free(&result);
	farm_fwplan_free(plan);
	farm_fwget_free(got);
	free(sel);
	farm_inventory_free(inv);
	farm_cmd_select_free(&cs);
	return ret;
}

/* ---- mpfarm cache ---- */

static void human_size(uint64_t b, char *out, size_t len)
{
	if (b >= 10u << 20)
		snprintf(out, len, "%.1f MiB", (double)b / (1 << 20));
	else if (b >= 10u << 10)
		snprintf(out, len, "%.1f KiB", (double)b / (1 << 10));
	else
		snprintf(out, len, "%llu B", (unsigned long long)b);
}

static void age(time_t now, time_t t, char *out, size_t len)
{
	long long s = (long long)(now - t);
	if (s < 0)
		s = 0;
	if (s < 3600)
		snprintf(out, len, "%lldm", s / 60);
	else if (s < 2 * 86400)
		snprintf(out, len, "%lldh", s / 3600);
	else
		snprintf(out, len, "%lldd", s / 86400);
}

/* s as a JSON string (farm_json_string: control bytes escaped, bad UTF-8 replaced). */
static void json_str(FILE *f, const char *s)
{
	struct farm_buf b = { 0 };
	if (farm_json_string(&b, s, strlen(s)) == 0 && b.data)
		fwrite(b.data, 1, b.len, f);
	farm_buf_free(&b);
}

static int cache_list(const char *dir, int json)
{
	struct farm_fwcache c;
	struct farm_err e = { 0 };
	struct farm_fwcache_entry *v = NULL;
	size_t n = 0;
	if (farm_fwcache_open(&c, dir, 0, CACHE_PRUNE_WAIT_MS, NULL, &e) ||
	    farm_fwcache_list(&c, &v, &n, &e)) {
		fprintf(stderr, "mpfarm cache: %s\n", e.msg);
		farm_fwcache_close(&c);
		return FARM_EXIT_INFRA;
	}
	time_t now = time(NULL);
	uint64_t total = 0;
	if (json) {
		for (size_t i = 0; i < n; i++) {
			char path[FARM_FWCACHE_PATH_MAX];
			farm_fwcache_image_path(&c, &v[i], path, sizeof path);
			fprintf(stdout, "{\"kind\":");
			json_str(stdout, v[i].kind);
			fprintf(stdout, ",\"sha256\":\"%s\",\"format\":", v[i].sha256);
			json_str(stdout, v[i].format);
			fprintf(stdout, ",\"size\":%llu,\"created\":%lld,\"used\":%lld,\"source\":",
				(unsigned long long)v[i].size, (long long)v[i].created,
				(long long)v[i].used);
			json_str(stdout, v[i].source);
			fprintf(stdout, ",\"ref\":");
			json_str(stdout, v[i].ref);
			fprintf(stdout, ",\"commit\":");
			json_str(stdout, v[i].commit);
			fprintf(stdout, ",\"key\":");
			json_str(stdout, v[i].key);
			fprintf(stdout, ",\"path\":");
			json_str(stdout, path);
			fprintf(stdout, "}\n");
		}
	} else {
		fprintf(stdout, "cache: %s\n", c.dir);
		if (n)
			fprintf(stdout, "%-5s %-12s %-6s %10s %-5s %-5s %s\n", "KIND", "SHA256", "FORMAT",
				"SIZE", "MADE", "USED", "WHAT");
		for (size_t i = 0; i < n; i++) {
			char sz[32], made[32], used[32], what[FARM_FWCACHE_TEXT_MAX + 64];
			human_size(v[i].size, sz, sizeof sz);
			age(now, v[i].created, made, sizeof made);
			age(now, v[i].used, used, sizeof used);
			if (!strcmp(v[i].kind, "build"))
				snprintf(what, sizeof what, "%.300s @ %.12s (%.100s)", v[i].source,
					 v[i].commit, v[i].ref);
			else
				snprintf(what, sizeof what, "%.600s", v[i].source);
			fprintf(stdout, "%-5s %-12.12s %-6s %10s %-5s %-5s %s\n", v[i].kind, v[i].sha256,
				v[i].format, sz, made, used, what);
			total += v[i].size;
		}
		char sz[32];
		human_size(total, sz, sizeof sz);
		fprintf(stdout, "%zu entr%s, %s of images\n", n, n == 1 ? "y" : "ies", sz);
	}
	free(v);
	farm_fwcache_close(&c);
	return FARM_EXIT_OK;
}

static int cache_prune(const char *dir, unsigned keep_days, const volatile sig_atomic_t *cancel)
{
	struct farm_fwcache c;
	struct farm_err e = { 0 };
	struct farm_fwcache_prune_stats st;
	if (farm_fwcache_open(&c, dir, 1, CACHE_PRUNE_WAIT_MS, cancel, &e) ||
	    farm_fwcache_prune(&c, keep_days, time(NULL), &st, &e)) {
		fprintf(stderr, "mpfarm cache prune: %s\n", e.msg);
		farm_fwcache_close(&c);
		return e.code == FARM_EINTR ? FARM_EXIT_INTERRUPTED : FARM_EXIT_INFRA;
	}
	char sz[32];
	human_size(st.bytes, sz, sizeof sz);
	fprintf(stdout, "pruned %s: %zu entr%s, %zu image%s, %zu checkout%s, %zu other file%s (%s)\n",
		c.dir, st.entries, st.entries == 1 ? "y" : "ies", st.images, st.images == 1 ? "" : "s",
		st.checkouts, st.checkouts == 1 ? "" : "s", st.files, st.files == 1 ? "" : "s", sz);
	farm_fwcache_close(&c);
	return FARM_EXIT_OK;
}

int farm_cmd_cache(const struct farm_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "cache-dir", required_argument, NULL, 'C' },
		{ "keep-days", required_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL;
	long keep = -1;
	int json = 0, c;
	if (argc < 2 || (strcmp(argv[1], "list") && strcmp(argv[1], "prune")))
		goto usage;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		char *end = NULL;
		switch (c) {
		case 'C':
			dir = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'k':
			keep = strtol(optarg, &end, 10);
			if (*end || keep < 0 || keep > 36500) {
				fprintf(stderr, "mpfarm cache: --keep-days takes 0..36500, got \"%s\"\n",
					optarg);
				return FARM_EXIT_USAGE;
			}
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc)
		goto usage;
	if (!strcmp(argv[1], "list"))
		return cache_list(dir, json);
	if (keep < 0) {
		fprintf(stderr, "mpfarm cache prune: --keep-days N is required (entries unused for N "
				"days go)\n");
		return FARM_EXIT_USAGE;
	}
	return cache_prune(dir, (unsigned)keep, cli->cancel);
usage:
	fprintf(stderr, "usage: mpfarm cache list [--cache-dir DIR] [--json]\n"
			"       mpfarm cache prune --keep-days N [--cache-dir DIR]\n");
	return FARM_EXIT_USAGE;
}
