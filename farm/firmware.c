#include "firmware.h"

#include "probesrv.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int target_lists(const struct farm_fw_target *t, const char *id)
{
	for (size_t i = 0; i < t->n_boards; i++)
		if (!strcmp(t->boards[i], id))
			return 1;
	return 0;
}

static int eq_opt(const char *want, const char *have)
{
	return !want || (have && !strcmp(want, have));
}

const struct farm_fw_target *farm_fw_target_for(const struct farm_inventory *inv,
						const struct farm_board *b)
{
	for (size_t i = 0; i < inv->n_targets; i++)
		if (target_lists(&inv->targets[i], b->id))
			return &inv->targets[i];
	for (size_t i = 0; i < inv->n_targets; i++) {
		const struct farm_fw_target *t = &inv->targets[i];
		if (t->n_boards || !(t->match_port || t->match_board || t->match_variant))
			continue;
		if (eq_opt(t->match_port, b->port) && eq_opt(t->match_board, b->board) &&
		    eq_opt(t->match_variant, b->variant))
			return t;
	}
	return NULL;
}

/* "v" then a version token, " on ", then a YYYY-MM-DD date. */
static size_t identity_at(const uint8_t *p, size_t avail, char *out, size_t len)
{
	size_t i = 0;
	if (avail < 2 || p[0] != 'v' || !isdigit(p[1]))
		return 0;
	while (i < avail && i < 80 && p[i] > ' ' && p[i] < 0x7f && p[i] != ';')
		i++;
	if (i + 4 + 10 > avail || memcmp(p + i, " on ", 4) != 0)
		return 0;
	const uint8_t *d = p + i + 4;
	for (size_t k = 0; k < 10; k++)
		if (k == 4 || k == 7 ? d[k] != '-' : !isdigit(d[k]))
			return 0;
	size_t n = i + 4 + 10;
	if (n >= len)
		return 0;
	memcpy(out, p, n);
	out[n] = '\0';
	return n;
}

void farm_fw_identity_of(const struct farm_image *img, char *out, size_t len)
{
	static const char tag[] = "MicroPython v";
	const size_t tl = sizeof tag - 1;
	if (len)
		out[0] = '\0';
	for (size_t s = 0; img && s < img->n_segs; s++) {
		const uint8_t *d = img->segs[s].data;
		size_t n = img->segs[s].len;
		const uint8_t *p = d;
		while (n - (size_t)(p - d) > tl) {
			const uint8_t *hit = memmem(p, n - (size_t)(p - d), tag, tl);
			if (!hit)
				break;
			const uint8_t *v = hit + tl - 1;
			if (identity_at(v, n - (size_t)(v - d), out, len))
				return;
			p = hit + 1;
		}
	}
}

int farm_fw_identity_matches(const char *expected, const char *reported)
{
	return expected && reported && expected[0] && strstr(reported, expected) != NULL;
}

static void plan_free_images(struct farm_fwplan *p)
{
	for (size_t i = 0; i < p->n_images; i++) {
		free(p->images[i].path);
		farm_image_free(p->images[i].img);
	}
	free(p->images);
}

void farm_fwplan_free(struct farm_fwplan *p)
{
	if (!p)
		return;
	plan_free_images(p);
	free(p->boards);
	free(p);
}

const struct farm_fw_board *farm_fwplan_board(const struct farm_fwplan *p, const char *board_id)
{
	for (size_t i = 0; p && i < p->n_boards; i++)
		if (!strcmp(p->boards[i].board->id, board_id))
			return &p->boards[i];
	return NULL;
}

/* A loaded image of the plan with this path, format and identity, or NULL. */
static const struct farm_fw_image *find_image(const struct farm_fwplan *p, const char *path,
					      enum farm_image_format fmt, const char *identity)
{
	for (size_t i = 0; i < p->n_images; i++)
		if (!strcmp(p->images[i].path, path) &&
		    (fmt == FARM_IMG_UNKNOWN || p->images[i].img->format == fmt) &&
		    (!identity || !strcmp(identity, p->images[i].identity)))
			return &p->images[i];
	return NULL;
}

/* A files: list: each raw binary at its offset, one image (BIN format);
 * its path is "a.bin@0x1000 + b.bin@0x8000 + ...". */
static int load_parts(struct farm_image **out, const struct farm_fw_target *t, struct farm_err *e)
{
	struct farm_image *img = NULL;
	struct farm_buf b = { 0 };
	int rc = farm_image_new(&img, FARM_IMG_BIN, e);
	for (size_t i = 0; rc == 0 && i < t->n_parts; i++) {
		const struct farm_fw_part *part = &t->parts[i];
		farm_buf_reset(&b);
		rc = farm_buf_read_file(&b, part->path, FARM_IMAGE_MAX_BYTES, e);
		if (rc == 0 && b.len == 0)
			rc = farm_err_set(e, FARM_EINVAL, "%s: empty file", part->path);
		else if (rc == 0 && (rc = farm_image_add(img, (uint32_t)part->offset, b.data, b.len,
							 e)))
			farm_err_prefix(e, "%s at 0x%lx", part->path, part->offset);
	}
	farm_buf_free(&b);
	if (rc) {
		farm_image_free(img);
		img = NULL;
	}
	*out = img;
	return rc;
}

/* The image for path (loaded once per path, format and base), or for the
 * target's files: list when it has one. */
static const struct farm_fw_image *get_image(struct farm_fwplan *p, const char *path,
					     enum farm_image_format fmt, unsigned long base,
					     const struct farm_fw_target *t, const char *identity,
					     size_t cap, struct farm_err *e)
{
	struct farm_buf key = { 0 };
	for (size_t i = 0; t && i < t->n_parts; i++)
		if (farm_buf_printf(&key, "%s%s@0x%lx", i ? " + " : "", t->parts[i].path,
				    t->parts[i].offset)) {
			farm_buf_free(&key);
			farm_err_set(e, FARM_ENOMEM, "out of memory");
			return NULL;
		}
	if (key.data)
		path = key.data;
	const struct farm_fw_image *found = find_image(p, path, fmt, identity);
	if (found || p->n_images >= cap) {
		if (!found)
			farm_err_set(e, FARM_ELIMIT, "too many firmware images");
		farm_buf_free(&key);
		return found;
	}
	struct farm_fw_image *im = &p->images[p->n_images];
	memset(im, 0, sizeof *im);
	int rc = key.data ? load_parts(&im->img, t, e)
			  : farm_image_load(&im->img, path, fmt, (uint32_t)base, e);
	if (rc == 0 && !(im->path = strdup(path))) {
		farm_image_free(im->img);
		rc = farm_err_set(e, FARM_ENOMEM, "out of memory");
	}
	farm_buf_free(&key);
	if (rc)
		return NULL;
	farm_image_sha256(im->img, im->sha256);
	if (identity)
		snprintf(im->identity, sizeof im->identity, "%s", identity);
	else
		farm_fw_identity_of(im->img, im->identity, sizeof im->identity);
	p->n_images++;
	return im;
}

static const struct farm_flashmap *board_map(const struct farm_board *b)
{
	if (b->mcu)
		return farm_flashmap_find(b->mcu);
	if (b->emulator.present) /* the emulated BBC micro:bit */
		return farm_flashmap_find("nrf51");
	return NULL;
}

/* Validate the runner's options and configuration without I/O. */
static int dry_configure(const struct runner_ops *ops, const struct farm_board *b,
			 const struct farm_inventory *inv, const struct farm_flashmap *map,
			 struct farm_err *e)
{
	struct runner_ctx ctx = {
		.board = b,
		.probe = b->probe ? farm_inventory_probe(inv, b->probe) : NULL,
		.map = map,
		/* an emulated board's gdbstub, a probe server mpfarm starts: both
		 * exist only once the board's job runs */
		.gdb_url = b->emulator.present ? "tcp://127.0.0.1:1" : NULL,
	};
	if (ctx.probe && !ctx.gdb_url && farm_probesrv_needed(ctx.probe))
		ctx.gdb_url = "pipe:probe-server";
	struct runner *r = NULL;
	int rc = runner_new(&r, ops, &ctx, e);
	runner_free(r);
	return rc;
}

/* A problem of one board: for an image the firmware phase made, the board's
 * own failure (its tests are skipped, the others go on); for a file: image,
 * bad input for the whole plan. */
static void board_problem(struct farm_fw_board *fb, struct farm_diags *d, const char *file,
			  unsigned line, unsigned col, const char *hint, const char *fmt, ...)
	FARM_PRINTF(7, 8);
static void board_problem(struct farm_fw_board *fb, struct farm_diags *d, const char *file,
			  unsigned line, unsigned col, const char *hint, const char *fmt, ...)
{
	char msg[FARM_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fb->runner = NULL;
	if (!fb->got) {
		farm_diags_add(d, file, line, col, hint, "%s", msg);
		return;
	}
	if (hint)
		snprintf(fb->error, sizeof fb->error, "%.300s (%.200s)", msg, hint);
	else
		snprintf(fb->error, sizeof fb->error, "%s", msg);
}

static void plan_board(struct farm_fwplan *p, struct farm_fw_board *fb, const struct farm_inventory *inv,
		       const struct farm_fwplan_opts *o, size_t cap, struct farm_diags *d)
{
	const struct farm_board *b = fb->board;
	const char *file = inv->path ? inv->path : "inventory";
	unsigned fl = b->flash.line ? b->flash.line : b->line;
	unsigned fc = b->flash.line ? b->flash.col : b->col;
	struct farm_err e = { 0 };
	if (o && o->no_flash)
		return;
	if (b->flash.method && !strcmp(b->flash.method, "none")) {
		if (o && o->override_path)
			farm_diags_add(d, file, fl, fc, "set flash.method (e.g. gdb) to flash this board",
				       "board %s is never flashed (flash.method: none)", b->id);
		return;
	}
	const char *path = o ? o->override_path : NULL;
	enum farm_image_format fmt = o ? o->override_format : FARM_IMG_UNKNOWN;
	unsigned long base = o ? o->override_base : 0;
	const char *identity = NULL;
	unsigned tl = b->line, tc = b->col;
	if (!path) {
		fb->target = farm_fw_target_for(inv, b);
		const struct farm_fw_target *t = fb->target;
		if (!t) {
			if (b->emulator.present && b->emulator.blank)
				farm_diags_add(d, file, b->line, b->col,
					       "add a firmware: entry for it (e.g. file: "
					       FARM_MICROBIT_FIRMWARE ")",
					       "board %s is a blank emulated board but no firmware: entry "
					       "applies to it", b->id);
			return; /* nothing to flash: test what the board runs */
		}
		tl = t->line;
		tc = t->col;
		identity = t->identity;
		if (t->source != FARM_FW_FILE) {
			fb->got = o && o->got ? farm_fwget_board(o->got, b->id) : NULL;
			if (!fb->got) {
				farm_diags_add(d, file, tl, tc, "use mpfarm run or mpfarm firmware",
					       "board %s: %s: firmware sources need the firmware phase",
					       b->id, t->source == FARM_FW_FETCH ? "fetch" : "build");
				return;
			}
			if (fb->got->failed) {
				snprintf(fb->error, sizeof fb->error, "%s", fb->got->message);
				return;
			}
			path = fb->got->path;
			fmt = farm_image_format_parse(fb->got->format);
			base = fb->got->base;
		} else {
			path = t->n_parts ? "files:" : farm_kv_get(t->opts, t->n_opts, "path");
			if (!path)
				return; /* already reported by the inventory loader */
			fmt = t->format ? farm_image_format_parse(t->format) : FARM_IMG_UNKNOWN;
			base = t->base;
		}
		if (fmt == FARM_IMG_BIN && !t->has_base && !(fb->got && fb->got->has_base)) {
			farm_diags_add(d, file, tl, tc, "add base: 0x... (the load address)",
				       "board %s: a raw binary image needs base:", b->id);
			return;
		}
	}
	fb->image = get_image(p, path, fmt, base, fb->got ? NULL : fb->target, identity, cap, &e);
	if (!fb->image) {
		board_problem(fb, d, file, tl, tc, "fix or replace the image; the board was not touched",
			      "board %s: %s", b->id, e.msg);
		return;
	}
	path = fb->image->path;
	const struct farm_image *img = fb->image->img;
	if (runner_select(&fb->runner, b, img->format, &e)) {
		board_problem(fb, d, file, fl, fc, NULL, "%s", e.msg);
		return;
	}
	if (!fb->runner)
		return;
	fb->map = board_map(b);
	if (b->mcu && !fb->map) {
		farm_diags_add(d, file, b->line, b->col,
			       "see the MCU families in runners/README.md (`mpfarm runners` lists them)",
			       "board %s: unknown mcu \"%s\"", b->id, b->mcu);
		fb->runner = NULL;
		return;
	}
	if (!fb->map) {
		farm_diags_add(d, file, b->line, b->col,
			       "add mcu: (e.g. nrf52, rp2040, stm32f4): mpfarm checks every image "
			       "against the board's flash map before erasing anything",
			       "board %s is flashed but has no mcu:", b->id);
		fb->runner = NULL;
		return;
	}
	if (farm_flashmap_check(fb->map, img, 0, &e)) {
		board_problem(fb, d, file, tl, tc, "the image is not for this board; it was not touched",
			      "board %s: firmware %s does not fit: %s", b->id, path, e.msg);
		return;
	}
	if (img->has_family && fb->map->uf2_family && img->uf2_family != fb->map->uf2_family) {
		board_problem(fb, d, file, tl, tc, "the image is built for another MCU family",
			      "board %s: firmware %s has UF2 family 0x%08x, %s is 0x%08x", b->id,
			      path, img->uf2_family, fb->map->family, fb->map->uf2_family);
		return;
	}
	if (dry_configure(fb->runner, b, inv, fb->map, &e)) {
		farm_diags_add(d, file, fl, fc, NULL, "board %s: %s", b->id, e.msg);
		fb->runner = NULL;
	}
}

int farm_fwplan_make(struct farm_fwplan **out, const struct farm_inventory *inv,
		     const struct farm_board *const *boards, size_t n,
		     const struct farm_fwplan_opts *o, struct farm_diags *d, struct farm_err *e)
{
	*out = NULL;
	struct farm_fwplan *p = calloc(1, sizeof *p);
	if (!p)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	p->boards = calloc(n ? n : 1, sizeof *p->boards);
	p->images = calloc(n ? n : 1, sizeof *p->images);
	if (!p->boards || !p->images) {
		farm_fwplan_free(p);
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	}
	size_t before = d->n + d->n_dropped;
	p->n_boards = n;
	for (size_t i = 0; i < n; i++) {
		p->boards[i].board = boards[i];
		plan_board(p, &p->boards[i], inv, o, n, d);
	}
	*out = p;
	if (d->n + d->n_dropped > before)
		return farm_err_set(e, FARM_EINVAL, "the firmware plan has problems");
	return 0;
}
