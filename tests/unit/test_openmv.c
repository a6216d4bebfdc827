/* The OpenMV bootloader client (runners/openmv_boot.c) against the serialsim
 * device model (tests/sim/serial/model_openmv.c) in one process: a test
 * transport whose write() feeds the model's rx() and whose read() returns
 * what the model sent, with the model's timers run on the way. The model's
 * event log and its dumped flash are the oracle. Also the protocol notes'
 * test vectors, byte for byte. */
#include <CUnit/CUnit.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "openmv_boot.h"
#include "runner.h"
#include "ssim.h"
#include "transport.h"

/* ---- loopback: transport + model environment ---- */

struct loop {
	struct farm_transport base;
	struct ssim_env env;
	const struct ssim_model_ops *ops;
	void *m;
	uint8_t q[1 << 16];         /* model -> client, not yet read */
	size_t qn;
	uint8_t *sent;              /* everything the client wrote */
	size_t sent_n;
	uint8_t got[4096];          /* everything the client read (first 4 KiB) */
	size_t got_n;
	long long timer_at;
	int gone;                   /* the port the client holds has vanished */
	int plugged;
	struct ssim_usb_id id;      /* last identity plugged */
	unsigned baud;
	char *log;                  /* the model's event log */
	size_t log_n;
};

static long long now_ms(void)
{
	return farm_now_ms();
}

static void env_tx(struct ssim_env *env, const void *buf, size_t len, unsigned baud)
{
	struct loop *l = env->h;
	(void)baud;
	if (len > sizeof l->q - l->qn)
		len = sizeof l->q - l->qn;
	memcpy(l->q + l->qn, buf, len);
	l->qn += len;
}

static void env_tx_flush(struct ssim_env *env)
{
	((struct loop *)env->h)->qn = 0;
}

static void env_log(struct ssim_env *env, const char *fmt, ...)
{
	struct loop *l = env->h;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	size_t n = strlen(line);
	char *p = realloc(l->log, l->log_n + n + 2);
	if (!p)
		return;
	l->log = p;
	memcpy(l->log + l->log_n, line, n);
	l->log[l->log_n + n] = '\n';
	l->log_n += n + 1;
	l->log[l->log_n] = '\0';
}

static void env_unplug(struct ssim_env *env)
{
	struct loop *l = env->h;
	l->gone = 1;
	l->plugged = 0;
}

static void env_plug(struct ssim_env *env, const struct ssim_usb_id *id)
{
	struct loop *l = env->h;
	l->plugged = 1;
	l->id = *id;
}

static void env_set_timer(struct ssim_env *env, long long at)
{
	((struct loop *)env->h)->timer_at = at;
}

static int env_bridge(struct ssim_env *env, const char *path, unsigned baud)
{
	(void)env;
	(void)baud;
	return path ? -1 : 0;
}

static unsigned env_client_baud(struct ssim_env *env)
{
	return ((struct loop *)env->h)->baud;
}

static int env_client_open(struct ssim_env *env)
{
	return !((struct loop *)env->h)->gone;
}

static void run_timers(struct loop *l)
{
	while (l->timer_at && now_ms() >= l->timer_at) {
		l->timer_at = 0;
		l->ops->timer(l->m);
	}
}

static int lb_read(struct farm_transport *t, void *buf, size_t len, size_t *got, int timeout_ms,
		   struct farm_err *e)
{
	struct loop *l = (struct loop *)t;
	long long end = now_ms() + timeout_ms;
	*got = 0;
	for (;;) {
		run_timers(l);
		if (l->qn) {
			size_t n = len < l->qn ? len : l->qn;
			memcpy(buf, l->q, n);
			memmove(l->q, l->q + n, l->qn - n);
			l->qn -= n;
			size_t k = n < sizeof l->got - l->got_n ? n : sizeof l->got - l->got_n;
			memcpy(l->got + l->got_n, buf, k);
			l->got_n += k;
			*got = n;
			return 0;
		}
		if (l->gone)
			return farm_err_set(e, FARM_ECLOSED, "loopback: device unplugged");
		long long now = now_ms();
		if (now >= end)
			return 0;
		long long wake = l->timer_at && l->timer_at < end ? l->timer_at : end;
		struct timespec ts = { 0, (wake - now > 1 ? 1 : wake - now) * 1000000L };
		nanosleep(&ts, NULL);
	}
}

static int lb_write(struct farm_transport *t, const void *buf, size_t len, int timeout_ms,
		    struct farm_err *e)
{
	struct loop *l = (struct loop *)t;
	(void)timeout_ms;
	run_timers(l);
	if (l->gone)
		return farm_err_set(e, FARM_ECLOSED, "loopback: device unplugged");
	uint8_t *p = realloc(l->sent, l->sent_n + len);
	if (!p)
		return farm_err_set(e, FARM_ENOMEM, "loopback");
	l->sent = p;
	memcpy(l->sent + l->sent_n, buf, len);
	l->sent_n += len;
	l->ops->rx(l->m, buf, len, l->baud);
	return 0;
}

static void lb_close(struct farm_transport *t)
{
	(void)t;
}

static const struct farm_transport_ops lb_ops = {
	.name = "loopback",
	.read = lb_read,
	.write = lb_write,
	.close = lb_close,
};

/* A model behind a fresh loopback, plugged and opened. */
static struct loop *loop_new(const char *args)
{
	struct loop *l = calloc(1, sizeof *l);
	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	l->base.ops = &lb_ops;
	l->env = (struct ssim_env){ .h = l,
				    .tx = env_tx,
				    .tx_flush = env_tx_flush,
				    .log = env_log,
				    .unplug = env_unplug,
				    .plug = env_plug,
				    .set_timer = env_set_timer,
				    .now_ms = now_ms,
				    .bridge = env_bridge,
				    .client_baud = env_client_baud,
				    .client_open = env_client_open };
	l->ops = ssim_model_find("openmv");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l->ops);
	char err[256] = "";
	struct ssim_usb_id id;
	l->m = l->ops->create(args, &l->env, &id, err, sizeof err);
	if (!l->m)
		fprintf(stderr, "model: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(l->m);
	env_plug(&l->env, &id);
	l->baud = 921600;
	l->ops->open(l->m);
	return l;
}

static void loop_free(struct loop *l)
{
	if (!l)
		return;
	l->ops->destroy(l->m);
	free(l->sent);
	free(l->log);
	free(l);
}

static int logged(const struct loop *l, const char *text)
{
	return l->log && strstr(l->log, text) != NULL;
}

/* The model's firmware sectors, through its dump(). */
static uint8_t *dump_flash(struct loop *l, size_t *n)
{
	char dir[] = "/tmp/test_openmv.XXXXXX", path[128];
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	l->ops->dump(l->m, dir, "cam");
	snprintf(path, sizeof path, "%s/cam.flash", dir);
	FILE *f = fopen(path, "rb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	uint8_t *buf = malloc(4u << 20);
	*n = fread(buf, 1, 4u << 20, f);
	fclose(f);
	unlink(path);
	rmdir(dir);
	return buf;
}

static int find(const uint8_t *hay, size_t n, const uint8_t *needle, size_t k)
{
	for (size_t i = 0; i + k <= n; i++)
		if (!memcmp(hay + i, needle, k))
			return (int)i;
	return -1;
}

static struct farm_image *make_image(uint32_t addr, size_t len, unsigned seed)
{
	struct farm_image *img = calloc(1, sizeof *img);
	img->format = FARM_IMG_BIN;
	img->n_segs = 1;
	img->segs = calloc(1, sizeof *img->segs);
	img->segs[0].addr = addr;
	img->segs[0].len = (uint32_t)len;
	img->segs[0].data = malloc(len);
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		img->segs[0].data[i] = (uint8_t)(x >> 16);
	}
	return img;
}

static void cfg_for(struct runner_openmv_cfg *c, const char *layout, int fast)
{
	runner_openmv_cfg_default(c);
	c->layout = runner_openmv_layout_find(layout);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c->layout);
	c->fast = fast;
	c->erase_delay_ms = 60; /* safe mode: shorter than the doc's 2 s to keep the test quick */
}

/* ---- test vectors ---- */

static void test_vectors_start_query(void)
{
	struct loop *l = loop_new("board=OPENMV4,start=boot");
	struct farm_err e = { 0 };
	const uint8_t start[] = { 0x01, 0x00, 0xcd, 0xab }, v3[] = { 0x03, 0x00, 0xcd, 0xab };
	const uint8_t query[] = { 0x10, 0x00, 0xcd, 0xab };
	const uint8_t h7[] = { 1, 0, 0, 0, 2, 0, 0, 0, 0x0f, 0, 0, 0 };
	uint8_t r[16];
	size_t got = 0;
	CU_ASSERT_EQUAL(farm_transport_write(&l->base, start, 4, 100, &e), 0);
	CU_ASSERT_EQUAL(farm_transport_read(&l->base, r, 4, &got, 100, &e), 0);
	CU_ASSERT_EQUAL(got, 4);
	CU_ASSERT_EQUAL(memcmp(r, v3, 4), 0);
	CU_ASSERT_EQUAL(farm_transport_write(&l->base, query, 4, 100, &e), 0);
	CU_ASSERT_EQUAL(farm_transport_read(&l->base, r, 12, &got, 100, &e), 0);
	CU_ASSERT_EQUAL(got, 12);
	CU_ASSERT_EQUAL(memcmp(r, h7, 12), 0);
	loop_free(l);

	l = loop_new("board=OPENMV3,start=boot");
	const uint8_t f7[] = { 1, 0, 0, 0, 4, 0, 0, 0, 0x0b, 0, 0, 0 };
	CU_ASSERT_EQUAL(farm_transport_write(&l->base, start, 4, 100, &e), 0);
	CU_ASSERT_EQUAL(farm_transport_write(&l->base, query, 4, 100, &e), 0);
	CU_ASSERT_EQUAL(farm_transport_read(&l->base, r, 16, &got, 100, &e), 0);
	CU_ASSERT_EQUAL(got, 16);
	CU_ASSERT_EQUAL(memcmp(r + 4, f7, 12), 0);
	loop_free(l);

	/* QSPIF_LAYOUT on a board with QSPI flash. */
	l = loop_new("board=OPENMV4P,start=boot");
	const uint8_t ql[] = { 0x10, 0x10, 0xcd, 0xab };
	const uint8_t qr[] = { 0, 0, 0, 0, 0xff, 0x01, 0, 0, 0, 0, 0x01, 0 };
	CU_ASSERT_EQUAL(farm_transport_write(&l->base, start, 4, 100, &e), 0);
	CU_ASSERT_EQUAL(farm_transport_write(&l->base, ql, 4, 100, &e), 0);
	CU_ASSERT_EQUAL(farm_transport_read(&l->base, r, 16, &got, 100, &e), 0);
	CU_ASSERT_EQUAL(got, 16);
	CU_ASSERT_EQUAL(memcmp(r + 4, qr, 12), 0);
	loop_free(l);
}

static void test_vector_fast_erase(void)
{
	/* 68-byte fast-mode erase transfer: ERASE 2 + 56 zeros + QUERY; the
	 * query reply comes after the (blocking) erase. */
	struct loop *l = loop_new("board=OPENMV4,start=boot,erase_ms=50");
	struct farm_err e = { 0 };
	uint8_t t[68] = { 0x04, 0x00, 0xcd, 0xab, 0x02, 0x00, 0x00, 0x00 };
	const uint8_t q[] = { 0x10, 0x00, 0xcd, 0xab }, h7[] = { 1, 0, 0, 0, 2, 0, 0, 0, 15, 0, 0, 0 };
	const uint8_t start[] = { 0x01, 0x00, 0xcd, 0xab };
	memcpy(t + 64, q, 4);
	uint8_t r[16];
	size_t got = 0;
	CU_ASSERT_EQUAL(farm_transport_write(&l->base, start, 4, 100, &e), 0);
	CU_ASSERT_EQUAL(farm_transport_read(&l->base, r, 4, &got, 100, &e), 0);
	long long t0 = farm_now_ms();
	CU_ASSERT_EQUAL(farm_transport_write(&l->base, t, sizeof t, 100, &e), 0);
	CU_ASSERT_EQUAL(farm_transport_read(&l->base, r, 12, &got, 10, &e), 0);
	CU_ASSERT_EQUAL(got, 0); /* busy erasing: no reply yet */
	CU_ASSERT_EQUAL(farm_transport_read(&l->base, r, 12, &got, 1000, &e), 0);
	CU_ASSERT_EQUAL(got, 12);
	CU_ASSERT_EQUAL(memcmp(r, h7, 12), 0);
	CU_ASSERT(farm_now_ms() - t0 >= 50);
	CU_ASSERT(logged(l, "ERASE sector 2 (0x08040000, 128 KiB)"));
	CU_ASSERT(!logged(l, "FATAL"));
	loop_free(l);
}

static void test_vector_usbdbg_reset(void)
{
	/* The app: 30 0C 00 00 00 00 at a USBDBG baud rate -> the bootloader. */
	struct loop *l = loop_new("board=OPENMV4,gap_ms=20");
	struct farm_err e = { 0 };
	const uint8_t cmd[] = { 0x30, 0x0c, 0, 0, 0, 0 };
	CU_ASSERT_STRING_EQUAL(l->id.serial, "3473365C3036");
	l->baud = 12000000;
	l->ops->baud(l->m, 12000000);
	CU_ASSERT_EQUAL(farm_transport_write(&l->base, cmd, sizeof cmd, 100, &e), 0);
	CU_ASSERT(logged(l, "app: USBDBG SYS_RESET (30 0C)"));
	CU_ASSERT(l->gone);
	uint8_t r[4];
	size_t got;
	CU_ASSERT_EQUAL(farm_transport_read(&l->base, r, 4, &got, 50, &e), FARM_ECLOSED);
	struct timespec ts = { 0, 40 * 1000000L };
	nanosleep(&ts, NULL);
	run_timers(l);
	CU_ASSERT(l->plugged);
	CU_ASSERT_STRING_EQUAL(l->id.serial, "000000000011");
	CU_ASSERT_EQUAL(l->id.vid, 0x1209);
	CU_ASSERT_EQUAL(l->id.pid, 0xabd1);
	loop_free(l);
}

/* ---- the client against the model ---- */

static void check_flash(struct loop *l, const struct farm_image *img, uint32_t app_base)
{
	size_t n = 0;
	uint8_t *f = dump_flash(l, &n);
	const struct farm_image_segment *s = &img->segs[0];
	CU_ASSERT_FATAL(n >= s->len);
	CU_ASSERT_EQUAL(memcmp(f + (s->addr - app_base), s->data, s->len), 0);
	/* The rest of the last sector written is erased (padding was FF). */
	size_t end = s->addr - app_base + s->len, k = end;
	while (k < n && k < end + 4096 && f[k] == 0xff)
		k++;
	CU_ASSERT_EQUAL(k, end + 4096);
	free(f);
	CU_ASSERT(logged(l, "sector 0 intact; filesystem sectors"));
	CU_ASSERT(!logged(l, "CHANGED"));
	CU_ASSERT(!logged(l, "FATAL"));
	CU_ASSERT(!logged(l, "VIOLATION"));
}

static void flash_one(const char *model_args, const char *layout, int fast, size_t size)
{
	struct loop *l = loop_new(model_args);
	struct runner_openmv_cfg c;
	struct farm_err e = { 0 };
	cfg_for(&c, layout, fast);
	struct farm_image *img = make_image(c.layout->app_base, size, 7);
	int rc = runner_openmv_flash(&l->base, &c, img, NULL, NULL, &e);
	if (rc)
		fprintf(stderr, "flash: %s\nmodel log:\n%s", e.msg, l->log);
	CU_ASSERT_EQUAL(rc, 0);
	check_flash(l, img, c.layout->app_base);
	/* Byte-level vectors of the session: START first, ERASE of the first
	 * firmware sector, 60-byte WRITE packets, RESET last. */
	const uint8_t start[] = { 0x01, 0x00, 0xcd, 0xab }, reset[] = { 0x02, 0x00, 0xcd, 0xab };
	uint8_t erase[8] = { 0x04, 0x00, 0xcd, 0xab, (uint8_t)c.layout->fw_start, 0, 0, 0 };
	uint8_t wr[60] = { 0x08, 0x00, 0xcd, 0xab };
	memcpy(wr + 4, img->segs[0].data, 56);
	CU_ASSERT_EQUAL(memcmp(l->sent, start, 4), 0);
	CU_ASSERT(find(l->sent, l->sent_n, erase, 8) > 0);
	CU_ASSERT(find(l->sent, l->sent_n, wr, sizeof wr) > 0);
	CU_ASSERT_EQUAL(memcmp(l->sent + l->sent_n - 4, reset, 4), 0);
	CU_ASSERT(logged(l, "RESET: programmed"));
	CU_ASSERT(!logged(l, "filesystem)"));
	CU_ASSERT(!logged(l, "ERASE sector 1 "));
	CU_ASSERT(l->gone); /* re-enumerates as the app */
	free(img->segs[0].data);
	free(img->segs);
	free(img);
	loop_free(l);
}

static void test_flash_fast_h7(void)
{
	/* 300000 bytes: sectors 2-4 of an H7, not a multiple of 56 or 64. */
	flash_one("board=OPENMV4,start=boot,erase_ms=30", "OPENMV4", 1, 300000);
}

static void test_flash_safe_f7(void)
{
	flash_one("board=OPENMV3,start=boot,erase_ms=30", "OPENMV3", 0, 40000);
}

static void test_flash_fast_hs(void)
{
	/* A high-speed build: 512-byte endpoint, 508-byte WRITE records. */
	struct loop *l = loop_new("board=OPENMV2,start=boot,erase_ms=10,hs=1");
	struct runner_openmv_cfg c;
	struct farm_err e = { 0 };
	cfg_for(&c, "OPENMV2", 1);
	c.hs = 1;
	struct farm_image *img = make_image(c.layout->app_base, 70001, 3);
	CU_ASSERT_EQUAL(runner_openmv_flash(&l->base, &c, img, NULL, NULL, &e), 0);
	check_flash(l, img, c.layout->app_base);
	CU_ASSERT(logged(l, "ERASE sector 4 (0x08010000, 64 KiB)"));
	CU_ASSERT(logged(l, "ERASE sector 5 (0x08020000, 128 KiB)"));
	CU_ASSERT(!logged(l, "ERASE sector 6"));
	CU_ASSERT(logged(l, "WRITE 504 bytes"));
	free(img->segs[0].data);
	free(img->segs);
	free(img);
	loop_free(l);
}

static void test_too_large(void)
{
	struct loop *l = loop_new("board=OPENMV4,start=boot");
	struct runner_openmv_cfg c;
	struct farm_err e = { 0 };
	cfg_for(&c, "OPENMV4", 1);
	/* 14 x 128 KiB firmware sectors = 1835008 bytes; one more does not fit. */
	struct farm_image *img = make_image(0x08040000u, 1835009, 1);
	CU_ASSERT_EQUAL(runner_openmv_flash(&l->base, &c, img, NULL, NULL, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "hold 1835008"));
	CU_ASSERT_EQUAL(l->sent_n, 0); /* nothing sent, nothing erased */
	CU_ASSERT(!logged(l, "ERASE"));
	/* Not at the app base. */
	img->segs[0].addr = 0x08020000u;
	img->segs[0].len = 1000;
	CU_ASSERT_EQUAL(runner_openmv_flash(&l->base, &c, img, NULL, NULL, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "from 0x08040000"));
	CU_ASSERT_EQUAL(l->sent_n, 0);
	free(img->segs[0].data);
	free(img->segs);
	free(img);
	loop_free(l);
}

static void test_layout_mismatch(void)
{
	/* An M7 cam flashed with the H7 layout: refused after QUERY, before any erase. */
	struct loop *l = loop_new("board=OPENMV3,start=boot");
	struct runner_openmv_cfg c;
	struct farm_err e = { 0 };
	cfg_for(&c, "OPENMV4", 1);
	struct farm_image *img = make_image(0x08040000u, 1000, 1);
	CU_ASSERT_EQUAL(runner_openmv_flash(&l->base, &c, img, NULL, NULL, &e), FARM_EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "before erasing"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "flash: layout"));
	CU_ASSERT(logged(l, "QUERY"));
	CU_ASSERT(!logged(l, "ERASE"));
	free(img->segs[0].data);
	free(img->segs);
	free(img);
	loop_free(l);
}

static void test_window_missed(void)
{
	struct loop *l = loop_new("board=OPENMV4,start=boot,window_ms=50");
	struct runner_openmv_cfg c;
	struct farm_err e = { 0 };
	cfg_for(&c, "OPENMV4", 1);
	struct farm_image *img = make_image(0x08040000u, 1000, 1);
	struct timespec ts = { 0, 120 * 1000000L };
	nanosleep(&ts, NULL);
	CU_ASSERT_EQUAL(runner_openmv_flash(&l->base, &c, img, NULL, NULL, &e), FARM_ECLOSED);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "START"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "1 s window"));
	CU_ASSERT(logged(l, "no START within 50 ms of the plug: jumping to the app"));
	loop_free(l);

	/* A device that never answers (the app, not the bootloader). */
	l = loop_new("board=OPENMV4");
	c.start_timeout_ms = 100;
	CU_ASSERT_EQUAL(runner_openmv_flash(&l->base, &c, img, NULL, NULL, &e), FARM_ETIMEDOUT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "START: no bootloader version word in 100 ms"));
	free(img->segs[0].data);
	free(img->segs);
	free(img);
	loop_free(l);
}

static void test_device_breaks(void)
{
	/* A bootloader built for 60-byte WRITE data (64-byte records = the
	 * endpoint size): the model halts at the first WRITE; the client's
	 * liveness query says so instead of claiming success. */
	struct loop *l = loop_new("board=OPENMV4,start=boot,chunk=60,erase_ms=5");
	struct runner_openmv_cfg c;
	struct farm_err e = { 0 };
	cfg_for(&c, "OPENMV4", 0);
	c.reply_timeout_ms = 200;
	struct farm_image *img = make_image(0x08040000u, 2000, 1);
	int rc = runner_openmv_flash(&l->base, &c, img, NULL, NULL, &e);
	CU_ASSERT_EQUAL(rc, FARM_ETIMEDOUT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "after the last write"));
	CU_ASSERT(logged(l, "FATAL WRITE record of 64 bytes = the endpoint size"));
	loop_free(l);

	/* Writing without an erase onto an old firmware: a flash error. */
	l = loop_new("board=OPENMV4,start=boot");
	const uint8_t start[] = { 0x01, 0x00, 0xcd, 0xab };
	uint8_t wr[60] = { 0x08, 0x00, 0xcd, 0xab };
	CU_ASSERT_EQUAL(farm_transport_write(&l->base, start, 4, 100, &e), 0);
	CU_ASSERT_EQUAL(farm_transport_write(&l->base, wr, 60, 100, &e), 0);
	CU_ASSERT_EQUAL(farm_transport_write(&l->base, wr, 60, 100, &e), 0);
	CU_ASSERT(logged(l, "FATAL program 0x08040000: byte"));
	free(img->segs[0].data);
	free(img->segs);
	free(img);
	loop_free(l);
}

static void test_plan(void)
{
	const struct runner_openmv_layout *l = runner_openmv_layout_find("openmv4-p");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	CU_ASSERT_STRING_EQUAL(l->name, "OPENMV4P");
	CU_ASSERT_PTR_EQUAL(runner_openmv_layout_for_mcu("stm32f765"), runner_openmv_layout_find("OPENMV3"));
	CU_ASSERT_PTR_NULL(runner_openmv_layout_find("OPENMV9"));
	/* App bases are the addresses of the first firmware sector. */
	const char *names[] = { "OPENMV2", "OPENMV3", "OPENMV4", "OPENMVPT" };
	for (size_t i = 0; i < 4; i++) {
		const struct runner_openmv_layout *x = runner_openmv_layout_find(names[i]);
		CU_ASSERT_EQUAL(runner_openmv_sector_addr(x, x->fw_start), x->app_base);
	}
	struct runner_openmv_plan p;
	struct farm_err e = { 0 };
	unsigned fl[3] = { 1, 2, 15 };
	struct farm_image *img = make_image(0, 131072, 1); /* a .bin without a base */
	CU_ASSERT_EQUAL(runner_openmv_plan(&p, l, fl, img, 0, 64, &e), 0);
	CU_ASSERT_EQUAL(p.base, 0x08040000u);
	CU_ASSERT_EQUAL(p.chunk, 56);
	CU_ASSERT_EQUAL(p.len % 56, 0);
	CU_ASSERT_EQUAL(p.first, 2);
	CU_ASSERT_EQUAL(p.last, 3); /* 131072 padded to 56 spills into sector 3 */
	CU_ASSERT_EQUAL(runner_openmv_plan(&p, l, fl, img, 1, 64, &e), 0);
	CU_ASSERT_EQUAL(p.first, 1); /* erase_fs */
	free(img->segs[0].data);
	free(img->segs);
	free(img);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("openmv", NULL, NULL);
	if (!s)
		return -1;
	if (!CU_add_test(s, "plan", test_plan) ||
	    !CU_add_test(s, "vectors: START, QUERY, QSPIF_LAYOUT", test_vectors_start_query) ||
	    !CU_add_test(s, "vector: fast-mode erase transfer", test_vector_fast_erase) ||
	    !CU_add_test(s, "vector: USBDBG reset", test_vector_usbdbg_reset) ||
	    !CU_add_test(s, "flash fast H7", test_flash_fast_h7) ||
	    !CU_add_test(s, "flash safe F7", test_flash_safe_f7) ||
	    !CU_add_test(s, "flash fast high-speed F4", test_flash_fast_hs) ||
	    !CU_add_test(s, "too large: refused before erase", test_too_large) ||
	    !CU_add_test(s, "layout mismatch", test_layout_mismatch) ||
	    !CU_add_test(s, "window missed", test_window_missed) ||
	    !CU_add_test(s, "device breaks", test_device_breaks))
		return -1;
	return 0;
}
