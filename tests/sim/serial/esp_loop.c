/* The ESP ROM loader device model (model_esp.c) in process, for unit tests
 * and benchmarks: see esp_loop.h. */
#include "esp_loop.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern const struct ssim_model_ops ssim_model_esp;
static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static long long env_now(void) { return (long long)(now_us() / 1000.0); }

static struct esp_loop *loop_of(struct ssim_env *env) { return env->h; }

static void env_tx(struct ssim_env *env, const void *buf, size_t len, unsigned baud)
{
	struct esp_loop *l = loop_of(env);
	if (l->out_len + len > l->out_cap) {
		size_t cap = (l->out_cap ? l->out_cap * 2 : 65536) + len;
		uint8_t *p = realloc(l->out, cap);
		if (!p)
			return;
		l->out = p;
		l->out_cap = cap;
	}
	memcpy(l->out + l->out_len, buf, len);
	double per = (l->pace && baud) ? 10e6 / baud : 0;
	double t0 = now_us();
	if (l->last_us > t0)
		t0 = l->last_us;
	if (l->n_chunks < sizeof l->chunks / sizeof l->chunks[0]) {
		l->chunks[l->n_chunks++] = (struct esp_loop_chunk){ l->out_len + len, t0 + per, per, l->out_len };
	} else { /* merge into the last one */
		l->chunks[l->n_chunks - 1].end = l->out_len + len;
	}
	l->last_us = t0 + per * (double)len;
	l->out_len += len;
}

static void env_tx_flush(struct ssim_env *env)
{
	struct esp_loop *l = loop_of(env);
	l->out_len = l->out_pos = 0;
	l->n_chunks = 0;
	l->last_us = 0;
}

static void env_log(struct ssim_env *env, const char *fmt, ...)
{
	struct esp_loop *l = loop_of(env);
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	farm_buf_printf(&l->log, "%s\n", line);
}

static void env_set_timer(struct ssim_env *env, long long at) { loop_of(env)->timer_at = at; }
static void env_unplug(struct ssim_env *env) { (void)env; }
static void env_plug(struct ssim_env *env, const struct ssim_usb_id *id)
{
	(void)env;
	(void)id;
}
static int env_bridge(struct ssim_env *env, const char *path, unsigned baud)
{
	(void)baud;
	snprintf(loop_of(env)->bridged, sizeof loop_of(env)->bridged, "%s", path ? path : "");
	return 0;
}
static unsigned env_client_baud(struct ssim_env *env) { return loop_of(env)->baud; }
static int env_client_open(struct ssim_env *env)
{
	(void)env;
	return 1;
}

void esp_loop_run_timers(struct esp_loop *l)
{
	while (l->timer_at && env_now() >= l->timer_at) {
		l->timer_at = 0;
		ssim_model_esp.timer(l->m);
	}
}

/* Bytes of out that have arrived by now. */
static size_t arrived(struct esp_loop *l)
{
	double t = now_us();
	size_t n = l->out_pos;
	for (size_t i = 0; i < l->n_chunks; i++) {
		const struct esp_loop_chunk *c = &l->chunks[i];
		if (c->end <= n)
			continue;
		if (c->per_us == 0 || t >= c->t0 + c->per_us * (double)(c->end - c->first - 1)) {
			n = c->end;
			continue;
		}
		if (t >= c->t0) {
			size_t k = c->first + (size_t)((t - c->t0) / c->per_us) + 1;
			n = k > n ? k : n;
		}
		break;
	}
	return n;
}

static int lp_read(struct farm_transport *t, void *buf, size_t len, size_t *got, int timeout_ms,
		   struct farm_err *e)
{
	struct esp_loop *l = (struct esp_loop *)t;
	(void)e;
	*got = 0;
	double deadline = now_us() + timeout_ms * 1000.0;
	for (;;) {
		esp_loop_run_timers(l);
		size_t avail = arrived(l) - l->out_pos;
		if (avail) {
			size_t n = avail < len ? avail : len;
			memcpy(buf, l->out + l->out_pos, n);
			l->out_pos += n;
			*got = n;
			if (l->out_pos == l->out_len)
				env_tx_flush(&l->env);
			return 0;
		}
		if (now_us() >= deadline)
			return 0;
		usleep(200);
	}
}

static int lp_write(struct farm_transport *t, const void *buf, size_t len, int timeout_ms,
		    struct farm_err *e)
{
	struct esp_loop *l = (struct esp_loop *)t;
	(void)timeout_ms;
	(void)e;
	esp_loop_run_timers(l);
	if (l->pace && l->baud)
		usleep((useconds_t)(len * 10e6 / l->baud));
	ssim_model_esp.rx(l->m, buf, len, l->baud);
	return 0;
}

static int lp_set_baud(struct farm_transport *t, int baud, struct farm_err *e)
{
	struct esp_loop *l = (struct esp_loop *)t;
	(void)e;
	esp_loop_run_timers(l);
	l->baud = (unsigned)baud;
	ssim_model_esp.baud(l->m, (unsigned)baud);
	return 0;
}

static int lp_set_lines(struct farm_transport *t, int dtr, int rts, struct farm_err *e)
{
	struct esp_loop *l = (struct esp_loop *)t;
	(void)e;
	esp_loop_run_timers(l);
	if (dtr >= 0 && !l->lines_broken)
		l->dtr = dtr;
	if (rts >= 0)
		l->rts = rts;
	ssim_model_esp.lines(l->m, l->dtr, l->rts);
	return 0;
}

static int lp_flush(struct farm_transport *t, struct farm_err *e)
{
	struct esp_loop *l = (struct esp_loop *)t;
	(void)e;
	esp_loop_run_timers(l);
	l->out_pos = arrived(l);
	if (l->out_pos == l->out_len)
		env_tx_flush(&l->env);
	return 0;
}

static const struct farm_transport_ops loop_ops = {
	.name = "loop", .read = lp_read, .write = lp_write, .set_baud = lp_set_baud,
	.set_lines = lp_set_lines, .flush_input = lp_flush,
};

/* ---- public ---- */

void esp_loop_discard(struct esp_loop *l)
{
	env_tx_flush(&l->env);
}

struct esp_loop *esp_loop_new(const char *args, int pace, char *err, size_t errlen)
{
	struct esp_loop *l = calloc(1, sizeof *l);
	if (!l) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->base.ops = &loop_ops;
	l->pace = pace;
	l->baud = 115200;
	l->env = (struct ssim_env){ .h = l, .tx = env_tx, .tx_flush = env_tx_flush, .log = env_log,
				    .unplug = env_unplug, .plug = env_plug,
				    .set_timer = env_set_timer, .now_ms = env_now,
				    .bridge = env_bridge, .client_baud = env_client_baud,
				    .client_open = env_client_open };
	struct ssim_usb_id id;
	l->m = ssim_model_esp.create(args, &l->env, &id, err, errlen);
	if (!l->m) {
		free(l);
		return NULL;
	}
	/* the port opens: the kernel raises DTR and RTS */
	ssim_model_esp.open(l->m);
	l->dtr = l->rts = 1;
	ssim_model_esp.lines(l->m, 1, 1);
	return l;
}

void esp_loop_free(struct esp_loop *l)
{
	if (!l)
		return;
	ssim_model_esp.destroy(l->m);
	free(l->out);
	farm_buf_free(&l->log);
	free(l);
}

/* The model's flash, dumped as the harness does at exit. */
uint8_t *esp_loop_flash(struct esp_loop *l, size_t *len)
{
	char dir[] = "/tmp/mpfarm-esp-loop-XXXXXX";
	*len = 0;
	if (!mkdtemp(dir))
		return NULL;
	ssim_model_esp.dump(l->m, dir, "esp");
	char path[128];
	snprintf(path, sizeof path, "%s/esp.flash", dir);
	struct farm_buf b = { 0 };
	struct farm_err e = { 0 };
	int rc = farm_buf_read_file(&b, path, 64u << 20, &e);
	unlink(path);
	rmdir(dir);
	if (rc || !b.len) {
		farm_buf_free(&b);
		return NULL;
	}
	*len = b.len;
	return (uint8_t *)farm_buf_steal(&b);
}

int esp_loop_log_has(struct esp_loop *l, const char *s)
{
	return l->log.data && strstr(l->log.data, s) != NULL;
}
