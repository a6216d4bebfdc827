/* mpfarm inventory check INVENTORY */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd_common.h"

int farm_cmd_inventory(const struct farm_cli *cli, int argc, char **argv)
{
	(void)cli;
	if (argc != 3 || strcmp(argv[1], "check") != 0) {
		fprintf(stderr, "usage: mpfarm inventory check INVENTORY\n");
		return FARM_EXIT_USAGE;
	}
	struct farm_inventory *inv = NULL;
	int rc = farm_cmd_load_inventory(&inv, argv[2]);
	if (rc)
		return rc;
	printf("%s: ok: farm \"%s\", %zu board%s, %zu probe%s, %zu firmware target%s\n", argv[2],
	       inv->name ? inv->name : "", inv->n_boards, inv->n_boards == 1 ? "" : "s", inv->n_probes,
	       inv->n_probes == 1 ? "" : "s", inv->n_targets, inv->n_targets == 1 ? "" : "s");
	farm_inventory_free(inv);
	return FARM_EXIT_OK;
}
