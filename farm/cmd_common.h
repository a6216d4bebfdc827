/* mpfarm: helpers shared by the CLI commands. */
#ifndef FARM_CMD_COMMON_H
#define FARM_CMD_COMMON_H

#include "inventory.h"

/* Load and validate; prints every problem to stderr. Returns 0 or FARM_EXIT_USAGE. */
int farm_cmd_load_inventory(struct farm_inventory **out, const char *path);
/* Split "a,b,c" into a NULL-terminated array of strdup'd items (caller frees with farm_strv_free). */
int farm_cmd_split_list(const char *s, char ***out, size_t *n);
/* mkdir -p, mode 0755. Returns 0 or -errno. */
int farm_cmd_mkdirs(const char *path);

#endif
