#include "cmd_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "diag.h"
#include "lock.h"
#include "ydoc.h"

int farm_cmd_load_inventory(struct farm_inventory **out, const char *path)
{
	struct farm_diags d = { 0 };
	struct farm_err e = { 0 };
	int rc = farm_inventory_load(out, path, &d, &e);
	if (rc) {
		if (d.n)
			farm_diags_print(&d, stderr);
		else
			fprintf(stderr, "%s: error: %s\n", path, e.msg);
		fprintf(stderr, "mpfarm: inventory %s is not usable; fix the problems above "
				"(schema: inventories/README.md)\n", path);
	}
	farm_diags_free(&d);
	return rc ? FARM_EXIT_USAGE : 0;
}

int farm_cmd_split_list(const char *s, char ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	size_t cap = 1;
	for (const char *p = s; *p; p++)
		if (*p == ',')
			cap++;
	char **v = calloc(cap + 1, sizeof *v);
	if (!v)
		return -1;
	size_t k = 0;
	const char *p = s;
	while (*p) {
		size_t len = strcspn(p, ",");
		if (len) {
			v[k] = strndup(p, len);
			if (!v[k]) {
				farm_strv_free(v, k);
				return -1;
			}
			k++;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	*out = v;
	*n = k;
	return 0;
}

int farm_cmd_mkdirs(const char *path)
{
	char buf[4096];
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof buf)
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int farm_cmd_parse_seconds(const char *cmd, const char *option, const char *text, double min_s,
			   double max_s, unsigned *ms)
{
	char *end = NULL;
	double secs = strtod(text, &end);
	if (end == text || *end || !(secs >= min_s) || secs > max_s) {
		fprintf(stderr, "mpfarm %s: %s takes seconds (%g..%g), got \"%s\"\n", cmd, option, min_s,
			max_s, text);
		return -1;
	}
	*ms = (unsigned)(secs * 1000.0 + 0.5);
	return 0;
}

int farm_cmd_lock_dir(const char *cmd, const char *option, char *out, size_t len)
{
	const char *env = getenv("MPFARM_LOCK_DIR");
	if (!option && env && *env)
		option = env;
	if (option) {
		snprintf(out, len, "%s", option);
		int lk = farm_cmd_mkdirs(out);
		if (lk) {
			fprintf(stderr, "mpfarm %s: cannot create lock directory %s: %s\n", cmd, out,
				strerror(-lk));
			return FARM_EXIT_INFRA;
		}
		return 0;
	}
	struct farm_err e = { 0 };
	if (farm_lock_default_dir(out, len, &e)) {
		fprintf(stderr, "mpfarm %s: no usable lock directory (%s); give one with --lock-dir or "
				"MPFARM_LOCK_DIR\n", cmd, e.msg);
		return FARM_EXIT_INFRA;
	}
	return 0;
}

int farm_cmd_select_boards(const char *cmd, const struct farm_inventory *inv, const char *inv_path,
			   const struct farm_cmd_select *o, const struct farm_board **sel, size_t *n)
{
	*n = 0;
	for (size_t i = 0; i < o->n_boards; i++) {
		if (farm_inventory_board(inv, o->boards[i]))
			continue;
		const char *ids[257];
		size_t k = 0;
		for (; k < inv->n_boards && k < 256; k++)
			ids[k] = inv->boards[k].id;
		ids[k] = NULL;
		const char *dym = farm_did_you_mean(o->boards[i], ids);
		fprintf(stderr, "mpfarm %s: --boards: no board \"%s\" in %s%s%s%s\n", cmd, o->boards[i],
			inv_path, dym ? " (did you mean \"" : "", dym ? dym : "", dym ? "\"?)" : "");
		return -1;
	}
	for (size_t i = 0; i < inv->n_boards; i++) {
		const struct farm_board *b = &inv->boards[i];
		int ok = 1;
		if (o->n_boards) {
			ok = 0;
			for (size_t k = 0; k < o->n_boards; k++)
				if (!strcmp(o->boards[k], b->id))
					ok = 1;
		}
		for (size_t k = 0; ok && k < o->n_tags; k++)
			if (!farm_board_has_tag(b, o->tags[k]))
				ok = 0;
		if (ok && o->n_ports) {
			ok = 0;
			for (size_t k = 0; k < o->n_ports; k++)
				if (b->port && !strcmp(b->port, o->ports[k]))
					ok = 1;
		}
		if (ok)
			sel[(*n)++] = b;
	}
	return 0;
}

int farm_cmd_select_option(struct farm_cmd_select *s, int c, const char *arg)
{
	char ***v = c == 'b' ? &s->boards : c == 'T' ? &s->tags : c == 'P' ? &s->ports : NULL;
	size_t *n = c == 'b' ? &s->n_boards : c == 'T' ? &s->n_tags : &s->n_ports;
	if (!v)
		return 0;
	farm_strv_free(*v, *n);
	*v = NULL;
	*n = 0;
	return farm_cmd_split_list(arg, v, n) ? -1 : 1;
}

void farm_cmd_select_free(struct farm_cmd_select *s)
{
	farm_strv_free(s->boards, s->n_boards);
	farm_strv_free(s->tags, s->n_tags);
	farm_strv_free(s->ports, s->n_ports);
	memset(s, 0, sizeof *s);
}
