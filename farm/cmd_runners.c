/* mpfarm runners [--mcus]: the flash runners built into mpfarm (name, ports,
 * image formats, bootloader entry, available here or why not), and the MCU
 * families whose flash maps mpfarm knows. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "entry.h"
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
	/* Columns as wide as their widest cell. */
	int w_ports = 5, w_fmts = 7, w_entry = 16;
	for (const struct runner_ops *const *r = runner_all(); *r; r++) {
		char ports[128], fmts[64];
		join_ports((*r)->ports, ports, sizeof ports);
		runner_format_names(*r, fmts, sizeof fmts);
		int n = (int)strlen(ports), f = (int)strlen(fmts);
		int en = (*r)->entry ? (int)strlen((*r)->entry) : 1;
		w_ports = n > w_ports ? n : w_ports;
		w_fmts = f > w_fmts ? f : w_fmts;
		w_entry = en > w_entry ? en : w_entry;
	}
	printf("%-8s %-*s %-*s %-*s %s\n", "runner", w_ports, "ports", w_fmts, "formats", w_entry,
	       "bootloader entry", "available");
	for (const struct runner_ops *const *r = runner_all(); *r; r++) {
		char ports[128], fmts[64], why[256];
		join_ports((*r)->ports, ports, sizeof ports);
		runner_format_names(*r, fmts, sizeof fmts);
		int ok = runner_available(*r, why, sizeof why) == 0;
		printf("%-8s %-*s %-*s %-*s %s%s\n", (*r)->name, w_ports, ports, w_fmts, fmts, w_entry,
		       (*r)->entry ? (*r)->entry : "-", ok ? "yes" : "no: ", ok ? "" : why);
	}
	printf("(flash.method: none never flashes a board)\n");
	printf("\n%-10s %s\n", "entry", "bootloader entry methods (flash.entry, tried in the listed order)");
	for (const struct entry_ops *const *m = entry_all(); *m; m++)
		printf("%-10s %s\n", (*m)->name, (*m)->summary);
	if (argc == 2) {
		printf("\n%-10s %-12s %-46s %s\n", "mcu", "uf2 family", "flash", "description");
		for (const struct farm_flashmap *const *m = farm_flashmap_all(); *m; m++) {
			/* flash regions, adjacent ones merged: "0x00000000-0x0003ffff 0x10001000-..." */
			char ranges[160] = "", fam[16] = "-";
			size_t k = 0;
			for (size_t i = 0; i < (*m)->n_regions; i++) {
				const struct farm_flash_region *g = &(*m)->regions[i];
				if (g->kind != FARM_REGION_FLASH)
					continue;
				uint64_t lo = g->start, hi = (uint64_t)g->start + g->size;
				while (i + 1 < (*m)->n_regions && (*m)->regions[i + 1].kind == FARM_REGION_FLASH &&
				       (*m)->regions[i + 1].start == hi) {
					i++;
					hi += (*m)->regions[i].size;
				}
				int w = snprintf(ranges + k, sizeof ranges - k, "%s0x%08llx-0x%08llx", k ? " " : "",
						 (unsigned long long)lo, (unsigned long long)(hi - 1));
				if (w < 0 || (size_t)w >= sizeof ranges - k)
					break;
				k += (size_t)w;
			}
			if ((*m)->uf2_family)
				snprintf(fam, sizeof fam, "0x%08x", (*m)->uf2_family);
			printf("%-10s %-12s %-46s %s\n", (*m)->family, fam, ranges,
			       (*m)->description ? (*m)->description : "");
		}
	}
	return FARM_EXIT_OK;
}
