/* mpfarm: the runner registry, selection and the wrappers the core calls. */
#include "runner.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

static const struct runner_ops *const registry[] = {
	&runner_gdb_ops,
	&runner_openmv_ops,
	&runner_esptool_ops,
	&runner_dfu_ops,
	&runner_uf2_ops,
	NULL,
};

const struct runner_ops *const *runner_all(void)
{
	return registry;
}

const struct runner_ops *runner_find(const char *name)
{
	for (size_t i = 0; name && registry[i]; i++)
		if (!strcmp(registry[i]->name, name))
			return registry[i];
	return NULL;
}

int runner_available(const struct runner_ops *ops, char *why, size_t len)
{
	if (len)
		why[0] = '\0';
	return ops->available ? ops->available(why, len) : 0;
}

int runner_serves_port(const struct runner_ops *ops, const char *port)
{
	if (!ops->ports)
		return 1;
	for (size_t i = 0; port && ops->ports[i]; i++)
		if (!strcmp(ops->ports[i], port))
			return 1;
	return 0;
}

void runner_format_names(const struct runner_ops *ops, char *out, size_t len)
{
	size_t k = 0;
	if (len)
		out[0] = '\0';
	for (int f = FARM_IMG_IHEX; f <= FARM_IMG_BIN; f++) {
		if (!(ops->formats & RUNNER_FMT(f)) || k >= len)
			continue;
		int w = snprintf(out + k, len - k, "%s%s", k ? ", " : "",
				 farm_image_format_name((enum farm_image_format)f));
		if (w < 0)
			break;
		k += (size_t)w;
	}
}

const char *runner_opt(const struct farm_board *b, const char *key)
{
	return farm_kv_get(b->flash.opts, b->flash.n_opts, key);
}

/* Why ops cannot flash board b with an image of format fmt; "" if it can. */
static void unfit(const struct runner_ops *ops, const struct farm_board *b,
		  enum farm_image_format fmt, char *why, size_t len)
{
	char avail[256];
	why[0] = '\0';
	if (runner_available(ops, avail, sizeof avail) != 0)
		snprintf(why, len, "not available here: %s", avail);
	else if (!runner_serves_port(ops, b->port))
		snprintf(why, len, "does not serve the %s port", b->port ? b->port : "(unset)");
	else if (fmt != FARM_IMG_UNKNOWN && !(ops->formats & RUNNER_FMT(fmt))) {
		char names[128];
		runner_format_names(ops, names, sizeof names);
		snprintf(why, len, "takes %s images, not %s", names, farm_image_format_name(fmt));
	} else if ((ops->caps & RUNNER_CAP_PROBE) && !b->probe && !b->emulator.present)
		snprintf(why, len, "needs a debug probe (probe: in the board's entry)");
	else if (b->emulator.present && !(ops->caps & RUNNER_CAP_EMULATED))
		snprintf(why, len, "cannot flash emulated boards");
	else if ((ops->caps & RUNNER_CAP_NEEDS_MAP) && !farm_flashmap_find(b->mcu))
		snprintf(why, len, "needs the board's MCU family (mcu:)");
}

int runner_select(const struct runner_ops **out, const struct farm_board *b,
		  enum farm_image_format fmt, struct farm_err *e)
{
	char why[300];
	*out = NULL;
	const char *method = b->flash.method;
	if (method && !strcmp(method, "none"))
		return 0;
	if (method) {
		const struct runner_ops *ops = runner_find(method);
		if (!ops)
			return farm_err_set(e, FARM_EINVAL,
					    "board %s: flash method %s is not built into this mpfarm "
					    "(see `mpfarm runners`)", b->id, method);
		char avail[256];
		if (runner_available(ops, avail, sizeof avail) != 0)
			return farm_err_set(e, FARM_EUNSUPPORTED,
					    "board %s: flash method %s is not available here: %s", b->id,
					    method, avail);
		unfit(ops, b, fmt, why, sizeof why);
		if (why[0])
			return farm_err_set(e, FARM_EINVAL, "board %s: flash method %s %s", b->id, method,
					    why);
		*out = ops;
		return 0;
	}
	const struct runner_ops *best = NULL;
	char reasons[900] = "";
	size_t k = 0;
	for (size_t i = 0; registry[i]; i++) {
		unfit(registry[i], b, fmt, why, sizeof why);
		if (!why[0]) {
			if (!best || registry[i]->priority > best->priority)
				best = registry[i];
			continue;
		}
		if (k < sizeof reasons) {
			int w = snprintf(reasons + k, sizeof reasons - k, "%s%s %s", k ? "; " : "",
					 registry[i]->name, why);
			if (w > 0)
				k += (size_t)w;
		}
	}
	if (!best)
		return farm_err_set(e, FARM_EINVAL,
				    "board %s: no flash runner fits (%s); set flash.method, or "
				    "flash.method: none to test what the board runs", b->id, reasons);
	*out = best;
	return 0;
}

int runner_check_options(const struct runner_ops *ops, const struct farm_board *b,
			 struct farm_err *e)
{
	static const char *const none[] = { NULL };
	const char *const *known = ops->options ? ops->options : none;
	for (size_t i = 0; i < b->flash.n_opts; i++) {
		const char *key = b->flash.opts[i].key;
		int ok = 0;
		for (size_t j = 0; known[j]; j++)
			if (!strcmp(known[j], key))
				ok = 1;
		if (ok)
			continue;
		const char *s = farm_did_you_mean(key, known);
		return farm_err_set(e, FARM_EINVAL, "unknown flash option \"%s\" for method %s%s%s%s",
				    key, ops->name, s ? " (did you mean \"" : "", s ? s : "",
				    s ? "\"?)" : "");
	}
	return 0;
}

struct runner {
	const struct runner_ops *ops;
	struct runner_ctx ctx;
	int cleaned;
	void *priv;
};

int runner_new(struct runner **out, const struct runner_ops *ops, const struct runner_ctx *ctx,
	       struct farm_err *e)
{
	*out = NULL;
	struct runner *r = calloc(1, sizeof *r);
	if (!r)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	r->ops = ops;
	r->ctx = *ctx;
	if (ops->priv_size && !(r->priv = calloc(1, ops->priv_size))) {
		free(r);
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	}
	int rc = runner_check_options(ops, ctx->board, e);
	if (rc == 0)
		rc = ops->configure(r->priv, &r->ctx, e);
	if (rc) {
		r->cleaned = 1; /* configure does no I/O: nothing to clean up */
		runner_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

const struct runner_ops *runner_ops_of(const struct runner *r)
{
	return r->ops;
}

int runner_flash(struct runner *r, const struct farm_image *img, runner_progress_fn fn,
		 void *payload, struct farm_err *e)
{
	return r->ops->flash(r->priv, img, fn, payload, e);
}

int runner_verify(struct runner *r, const struct farm_image *img, runner_progress_fn fn,
		  void *payload, struct farm_err *e)
{
	if (!r->ops->verify)
		return farm_err_set(e, FARM_EUNSUPPORTED, "runner %s cannot read back", r->ops->name);
	return r->ops->verify(r->priv, img, fn, payload, e);
}

int runner_reset(struct runner *r, struct farm_err *e)
{
	if (r->ops->reset)
		return r->ops->reset(r->priv, e);
	if (r->ctx.board_reset)
		return r->ctx.board_reset(r->ctx.reset_payload, e);
	return farm_err_set(e, FARM_EUNSUPPORTED, "runner %s cannot reset the board", r->ops->name);
}

void runner_free(struct runner *r)
{
	if (!r)
		return;
	if (!r->cleaned && r->ops->cleanup)
		r->ops->cleanup(r->priv);
	free(r->priv);
	free(r);
}

void runner_logf(const struct runner_ctx *ctx, const char *fmt, ...)
{
	if (!ctx || !ctx->log)
		return;
	char line[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	ctx->log(ctx->log_payload, line);
}
