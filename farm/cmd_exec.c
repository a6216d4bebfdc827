/* mpfarm exec BOARD_ID -i INVENTORY [-t SECONDS] 'code' */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "cmd_common.h"
#include "lock.h"
#include "session.h"

int farm_cmd_exec(const struct farm_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "inventory", required_argument, NULL, 'i' },
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const char *inv_path = NULL;
	unsigned timeout_ms = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "i:t:", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			inv_path = optarg;
			break;
		case 't':
			if (farm_cmd_parse_seconds("exec", "-t", optarg, 0.1, 86400, &timeout_ms))
				return FARM_EXIT_USAGE;
			break;
		default:
			fprintf(stderr, "usage: mpfarm exec BOARD_ID -i INVENTORY [-t SECONDS] 'python code'\n");
			return FARM_EXIT_USAGE;
		}
	}
	/* GNU getopt moves BOARD_ID and the code behind the options ('--' ends them). */
	if (argc - optind != 2) {
		fprintf(stderr, "usage: mpfarm exec BOARD_ID -i INVENTORY [-t SECONDS] 'python code'\n"
				"(quote the code as one argument; '-' reads it from stdin)\n");
		return FARM_EXIT_USAGE;
	}
	const char *board_id = argv[optind], *code_arg = argv[optind + 1];
	if (!inv_path || !board_id || !code_arg) {
		fprintf(stderr, "usage: mpfarm exec BOARD_ID -i INVENTORY [-t SECONDS] 'python code'\n");
		return FARM_EXIT_USAGE;
	}
	struct farm_buf code = { 0 };
	struct farm_err e = { 0 };
	if (!strcmp(code_arg, "-")) {
		if (farm_buf_read_file(&code, "/dev/stdin", 64u << 10, &e)) {
			fprintf(stderr, "mpfarm exec: %s\n", e.msg);
			return FARM_EXIT_USAGE;
		}
	} else if (farm_buf_puts(&code, code_arg)) {
		return FARM_EXIT_INFRA;
	}
	struct farm_inventory *inv = NULL;
	int rc = farm_cmd_load_inventory(&inv, inv_path);
	if (rc) {
		farm_buf_free(&code);
		return rc;
	}
	int ret = FARM_EXIT_OK;
	struct farm_session *s = NULL;
	struct farm_lock *lock = NULL;
	const struct farm_board *b = farm_inventory_board(inv, board_id);
	if (!b) {
		fprintf(stderr, "mpfarm exec: no board \"%s\" in %s (run 'mpfarm inventory check %s' to list them)\n",
			board_id, inv_path, inv_path);
		ret = FARM_EXIT_USAGE;
		goto out;
	}
	/* Never disturb a board another mpfarm process is driving. */
	char lock_dir[4096];
	if ((ret = farm_cmd_lock_dir("exec", NULL, lock_dir, sizeof lock_dir)))
		goto out;
	struct farm_lock_owner me = { 0 }, holder = { 0 };
	snprintf(me.run_id, sizeof me.run_id, "exec-%ld", (long)getpid());
	snprintf(me.what, sizeof me.what, "exec on board %s", b->id);
	rc = farm_lock_acquire(&lock, lock_dir, "board", b->id, &me, 0, cli->cancel, &holder, &e);
	if (rc) {
		char who[256] = "";
		if (rc == FARM_EBUSY)
			farm_lock_owner_describe(&holder, who, sizeof who);
		fprintf(stderr, "mpfarm exec: board %s is busy: locked by %s\n", b->id,
			rc == FARM_EBUSY ? who : e.msg);
		ret = FARM_EXIT_INFRA;
		goto out;
	}
	struct farm_session_opts so = { .cancel = cli->cancel };
	rc = farm_session_open(&s, b, &so, &e);
	if (rc) {
		fprintf(stderr, "mpfarm exec: board %s: connect: %s\n", b->id, e.msg);
		ret = rc == FARM_EINTR ? FARM_EXIT_INTERRUPTED : FARM_EXIT_INFRA;
		goto out;
	}
	struct farm_repl_result r = { 0 };
	int tmo = timeout_ms ? (int)timeout_ms : (int)b->repl.test_timeout_ms;
	rc = farm_repl_exec(s->repl, code.data, code.len, tmo, &r, &e);
	if (r.out.len) {
		r.out.len = farm_repl_normalize_eol(r.out.data, r.out.len);
		fwrite(r.out.data, 1, r.out.len, stdout);
	}
	if (r.err.len) {
		r.err.len = farm_repl_normalize_eol(r.err.data, r.err.len);
		fwrite(r.err.data, 1, r.err.len, stderr);
		ret = FARM_EXIT_FAILED;
	}
	if (rc) {
		fprintf(stderr, "mpfarm exec: board %s: %s\n", b->id, e.msg);
		ret = rc == FARM_EINTR ? FARM_EXIT_INTERRUPTED
		      : rc == FARM_ETIMEDOUT ? FARM_EXIT_FAILED : FARM_EXIT_INFRA;
	}
	farm_repl_result_free(&r);
out:
	fflush(stdout);
	farm_session_close(s);
	farm_lock_release(lock);
	farm_inventory_free(inv);
	farm_buf_free(&code);
	return ret;
}
