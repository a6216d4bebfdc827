/* mpfarm runners [--mcus]: the flash runners built into mpfarm (name, ports,
 * image formats, bootloader entry, available here or why not), and the MCU
 * families whose flash maps mpfarm knows. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "flashmap.h"
#include "runner.h"

static void join_ports(const char *const *ports, char *out, size_t len)
{
	size_t k = 0;
	out[0] = '\0';
	if (!ports) {
		snprintf(out, len, "any");
		return;
	}
	for (size_t i = 0; ports[i] && k < len; i++) {
		int w = snprintf(out + k, len - k, "%s%s", i ? "," : "", ports[i]);
		if (w < 0)
			break;
		k += (size_t)w;
	}
}

int farm_cmd_runners(const struct farm_cli *cli, int argc, char **argv)
{
	(void)cli;
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--mcus") != 0)) {
		fprintf(stderr, "usage: mpfarm runners [--mcus]\n");
		return FARM_EXIT_USAGE;
	}
	printf("%-8s %-34s %-26s %-38s %s\n", "runner", "ports", "formats", "bootloader entry",
	       "available");
	for (const struct runner_ops *const *r = runner_all(); *r; r++) {
		char ports[128], fmts[64], why[256];
		join_ports((*r)->ports, ports, sizeof ports);
		runner_format_names(*r, fmts, sizeof fmts);
		int ok = runner_available(*r, why, sizeof why) == 0;
		printf("%-8s %-34s %-26s %-38s %s%s\n", (*r)->name, ports, fmts,
		       (*r)->entry ? (*r)->entry : "-", ok ? "yes" : "no: ", ok ? "" : why);
	}
	printf("(flash.method: none never flashes a board)\n");
	if (argc == 2) {
		printf("\n%-10s %-24s %-12s %s\n", "mcu", "flash", "uf2 family", "description");
		for (const struct farm_flashmap *const *m = farm_flashmap_all(); *m; m++) {
			uint64_t lo = UINT64_MAX, hi = 0;
			for (size_t i = 0; i < (*m)->n_regions; i++) {
				const struct farm_flash_region *g = &(*m)->regions[i];
				if (g->kind != FARM_REGION_FLASH)
					continue;
				if (g->start < lo)
					lo = g->start;
				if ((uint64_t)g->start + g->size > hi)
					hi = (uint64_t)g->start + g->size;
			}
			char range[40] = "-", fam[16] = "-";
			if (hi)
				snprintf(range, sizeof range, "0x%08llx-0x%08llx", (unsigned long long)lo,
					 (unsigned long long)(hi - 1));
			if ((*m)->uf2_family)
				snprintf(fam, sizeof fam, "0x%08x", (*m)->uf2_family);
			printf("%-10s %-24s %-12s %s\n", (*m)->family, range, fam,
			       (*m)->description ? (*m)->description : "");
		}
	}
	return FARM_EXIT_OK;
}
