/* mpfarm: helpers shared by the CLI commands. */
#ifndef FARM_CMD_COMMON_H
#define FARM_CMD_COMMON_H

#include <stddef.h>

#include <signal.h>

#include "fwget.h"
#include "inventory.h"
#include "ui.h"

/* Load and validate; prints every problem to stderr. Returns 0 or FARM_EXIT_USAGE. */
int farm_cmd_load_inventory(struct farm_inventory **out, const char *path);
/* Split "a,b,c" into a NULL-terminated array of strdup'd items (caller frees with farm_strv_free). */
int farm_cmd_split_list(const char *s, char ***out, size_t *n);
/* Parse seconds (integer or decimal) into milliseconds within [min_s, max_s].
 * On error prints "mpfarm CMD: OPTION takes seconds (min..max), got ..." and returns -1. */
int farm_cmd_parse_seconds(const char *cmd, const char *option, const char *text, double min_s,
			   double max_s, unsigned *ms);
/* The lock directory: option (may be NULL), else $MPFARM_LOCK_DIR, else
 * farm_lock_default_dir; created when missing. On failure prints
 * "mpfarm CMD: ..." and returns FARM_EXIT_INFRA; else 0. */
int farm_cmd_lock_dir(const char *cmd, const char *option, char *out, size_t len);
/* mkdir -p, mode 0755. Returns 0 or -errno. */
int farm_cmd_mkdirs(const char *path);

/* The selection options --boards, --tags (every tag), --port (any port). */
struct farm_cmd_select {
	char **boards;
	size_t n_boards;
	char **tags;
	size_t n_tags;
	char **ports;
	size_t n_ports;
};
/* getopt's 'b' (--boards), 'T' (--tags), 'P' (--port): 1 taken, 0 not
 * one of them, -1 bad (printed). */
int farm_cmd_select_option(struct farm_cmd_select *s, int c, const char *arg);
void farm_cmd_select_free(struct farm_cmd_select *s);
/* Fill sel (room for every board) with the selected boards in inventory
 * order. An unknown --boards id is printed ("mpfarm CMD: ...") and -1. */
int farm_cmd_select_boards(const char *cmd, const struct farm_inventory *inv, const char *inv_path,
			   const struct farm_cmd_select *o, const struct farm_board **sel, size_t *n);

/* The firmware phase's options, shared by run, flash and firmware:
 * --ref REF, --cache-dir DIR, --build-jobs N, --offline. */
struct farm_cmd_fw_opts {
	const char *ref;
	const char *cache_dir;
	unsigned build_jobs;
	int offline;
	unsigned build_timeout_ms;
};
#define FARM_CMD_FW_LONGOPTS                                      \
	{ "ref", required_argument, NULL, 0x101 },                \
	{ "cache-dir", required_argument, NULL, 0x102 },          \
	{ "build-jobs", required_argument, NULL, 0x103 },         \
	{ "offline", no_argument, NULL, 0x104 }
/* 1 when getopt's c is one of those (taken), 0 when not, -1 for a bad value
 * (printed as "mpfarm CMD: ..."). */
int farm_cmd_fw_option(struct farm_cmd_fw_opts *o, const char *cmd, int c, const char *arg);
/* Run the firmware phase for the selected boards and print its totals.
 * Returns 0 (board failures are in *got) or an exit code: FARM_EXIT_INFRA
 * (cache unusable), FARM_EXIT_INTERRUPTED. */
int farm_cmd_fw_get(struct farm_fwget **got, const char *cmd, const struct farm_inventory *inv,
		    const struct farm_board *const *sel, size_t n, const struct farm_cmd_fw_opts *o,
		    const volatile sig_atomic_t *cancel, const struct farm_ui *ui);

#endif
