/* mpfarm: helpers shared by the CLI commands. */
#ifndef FARM_CMD_COMMON_H
#define FARM_CMD_COMMON_H

#include <stddef.h>

#include "inventory.h"

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

#endif
