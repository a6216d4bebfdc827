/* The DFU runner's protocol logic (runners/dfu_proto.c) against the DFU/DfuSe
 * device model of the USB harness (tests/sim/usb/dfu_model.c) in one
 * process: a transport whose control() hands each request to the model on a
 * virtual clock (sleeping advances it, so bwPollTimeout is honoured without
 * waiting). The model's memory, counters and event log are the oracle. Also
 * the memory-layout parser, the erase plan, alt selection, and a scripted
 * device that stays busy (stuck guard, poll deadline). */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfu_model.h"
#include "dfu_proto.h"
#include "dfu_usb.h"
#include "image.h"
#include "runner.h"

/* ---- the model behind the transport ---- */

struct sim {
	struct dfu_model *m;
	long long clock;
	char log[1 << 16];
	size_t log_n;
};

static void sim_log(void *payload, const char *line)
{
	struct sim *s = payload;
	size_t n = strlen(line);
	if (s->log_n + n + 2 > sizeof s->log)
		return;
	memcpy(s->log + s->log_n, line, n);
	s->log[s->log_n + n] = '\n';
	s->log_n += n + 1;
	s->log[s->log_n] = '\0';
}

static int map(int rc)
{
	switch (rc) {
	case -EPIPE:
		return RUNNER_DFU_X_STALL;
	case -ENODEV:
		return RUNNER_DFU_X_GONE;
	case -ETIMEDOUT:
		return RUNNER_DFU_X_TIMEOUT;
	default:
		return RUNNER_DFU_X_IO;
	}
}

static int sim_control(void *h, const struct runner_dfu_setup *su, uint8_t *data, size_t *got,
		       unsigned timeout_ms, char *why, size_t why_len)
{
	struct sim *s = h;
	uint8_t pkt[8] = { su->type, su->request, (uint8_t)su->value, (uint8_t)(su->value >> 8),
			   (uint8_t)su->index, (uint8_t)(su->index >> 8), (uint8_t)su->length,
			   (uint8_t)(su->length >> 8) };
	uint8_t none[1];
	s->clock += 1;
	int n = dfu_model_control(s->m, pkt, data ? data : none, su->length, s->clock);
	if (n == -ETIMEDOUT)
		s->clock += timeout_ms;
	if (n < 0) {
		snprintf(why, why_len, "model: %d", n);
		return map(n);
	}
	*got = (size_t)n;
	return RUNNER_DFU_X_OK;
}

static int sim_set_alt(void *h, uint8_t alt, char *why, size_t why_len)
{
	struct sim *s = h;
	int rc = dfu_model_set_interface(s->m, 0, alt, s->clock);
	if (rc < 0)
		snprintf(why, why_len, "model: %d", rc);
	return rc < 0 ? map(rc) : RUNNER_DFU_X_OK;
}

static int sim_reset(void *h, char *why, size_t why_len)
{
	struct sim *s = h;
	(void)why;
	(void)why_len;
	return dfu_model_reset(s->m, s->clock) < 0 ? RUNNER_DFU_X_GONE : RUNNER_DFU_X_OK;
}

static long long sim_now(void *h)
{
	return ((struct sim *)h)->clock;
}

static void sim_sleep(void *h, unsigned ms)
{
	((struct sim *)h)->clock += ms;
}

static const struct runner_dfu_usb_ops sim_ops = {
	.control = sim_control, .set_alt = sim_set_alt, .reset = sim_reset,
	.now_ms = sim_now, .sleep_ms = sim_sleep,
};

struct rig {
	struct farm_board board;
	struct runner_ctx ctx;
	struct sim sim;
	struct runner_dfu_usb u;
	struct runner_dfu d;
	char dlog[1 << 14];
	size_t dlog_n;
};

static void d_log(void *payload, const char *line)
{
	struct rig *r = payload;
	int w = snprintf(r->dlog + r->dlog_n, sizeof r->dlog - r->dlog_n, "%s\n", line);
	if (w > 0 && (size_t)w < sizeof r->dlog - r->dlog_n)
		r->dlog_n += (size_t)w;
}

/* A model from spec ("dfuse:personality=mboot,...") behind the transport,
 * described as libusb would (alts, functional descriptor from the model's
 * configuration descriptor). */
static struct rig *rig_new(const char *spec)
{
	struct rig *r = calloc(1, sizeof *r);
	struct dfu_model_config cfg;
	char err[200];
	CU_ASSERT_FATAL(r != NULL);
	CU_ASSERT_FATAL(dfu_model_config_parse(&cfg, spec, err, sizeof err) == 0);
	r->sim.m = dfu_model_new(&cfg, sim_log, &r->sim, err, sizeof err);
	CU_ASSERT_FATAL(r->sim.m != NULL);
	r->sim.clock = 1000;
	r->u.ops = &sim_ops;
	r->u.h = &r->sim;
	struct runner_dfu_info *info = &r->u.info;
	uint8_t desc[512];
	int n = dfu_model_config_descriptor(r->sim.m, desc, sizeof desc);
	CU_ASSERT_FATAL(n > 0);
	CU_ASSERT_FATAL(runner_dfu_func_parse(&info->func, desc, (size_t)n) == 0);
	info->has_func = 1;
	info->protocol = 2;
	info->n_alts = (size_t)cfg.n_alt;
	for (int i = 0; i < cfg.n_alt; i++) {
		info->alts[i].alt = (uint8_t)i;
		snprintf(info->alts[i].name, sizeof info->alts[i].name, "%s", cfg.alt_name[i]);
	}
	snprintf(info->what, sizeof info->what, "%04x:%04x at 1-1 serial %s", cfg.vid, cfg.pid,
		 cfg.serial);
	r->board.id = "b1";
	r->ctx.board = &r->board;
	r->ctx.log = d_log;
	r->ctx.log_payload = r;
	r->d.ctx = &r->ctx;
	return r;
}

static void rig_free(struct rig *r)
{
	if (!r)
		return;
	dfu_model_free(r->sim.m);
	free(r);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 24);
	}
}

/* An image of segments (addr, len) with pseudo-random bytes. */
static struct farm_image *make_image(size_t n, const uint32_t *addr, const uint32_t *len)
{
	struct farm_image *img = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_FATAL(farm_image_new(&img, FARM_IMG_BIN, &e) == 0);
	for (size_t i = 0; i < n; i++) {
		uint8_t *b = malloc(len[i]);
		CU_ASSERT_FATAL(b != NULL);
		fill(b, len[i], (unsigned)i + 7);
		CU_ASSERT_FATAL(farm_image_add(img, addr[i], b, len[i], &e) == 0);
		free(b);
	}
	return img;
}

/* The model's memory holds every image segment. */
static int model_has(struct rig *r, const struct farm_image *img)
{
	for (size_t i = 0; i < img->n_segs; i++) {
		uint8_t *b = malloc(img->segs[i].len);
		int ok = b && dfu_model_read(r->sim.m, r->d.alt, img->segs[i].addr, b, img->segs[i].len) == 0 &&
			 !memcmp(b, img->segs[i].data, img->segs[i].len);
		free(b);
		if (!ok)
			return 0;
	}
	return 1;
}

#define F4 "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg"

/* ---- layout parser ---- */

static void test_layout_f4(void)
{
	struct runner_dfu_layout l;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(runner_dfu_layout_parse(&l, F4, &e), 0);
	CU_ASSERT_STRING_EQUAL(l.name, "Internal Flash");
	CU_ASSERT_EQUAL(l.n, 3);
	CU_ASSERT_EQUAL(l.groups[0].start, 0x08000000);
	CU_ASSERT_EQUAL(l.groups[0].size, 16384);
	CU_ASSERT_EQUAL(l.groups[0].count, 4);
	CU_ASSERT_EQUAL(l.groups[1].start, 0x08010000);
	CU_ASSERT_EQUAL(l.groups[1].size, 65536);
	CU_ASSERT_EQUAL(l.groups[2].start, 0x08020000);
	CU_ASSERT_EQUAL(l.groups[2].size, 131072);
	CU_ASSERT_EQUAL(l.groups[2].count, 7);
	CU_ASSERT_EQUAL(l.groups[2].flags, 7u);
	uint32_t s = 0;
	CU_ASSERT_PTR_EQUAL(runner_dfu_layout_sector(&l, 0x0800c123, &s), &l.groups[0]);
	CU_ASSERT_EQUAL(s, 0x0800c000);
	CU_ASSERT_PTR_EQUAL(runner_dfu_layout_sector(&l, 0x080fffff, &s), &l.groups[2]);
	CU_ASSERT_EQUAL(s, 0x080e0000);
	CU_ASSERT_PTR_NULL(runner_dfu_layout_sector(&l, 0x08100000, &s));
}

static void test_layout_others(void)
{
	struct runner_dfu_layout l;
	struct farm_err e = { 0 };
	/* F7 (mboot and ROM) */
	CU_ASSERT_EQUAL_FATAL(runner_dfu_layout_parse(&l, "@Internal Flash  /0x08000000/04*032Kg,"
						      "01*128Kg,07*256Kg", &e), 0);
	CU_ASSERT_EQUAL(l.groups[2].start, 0x08040000);
	CU_ASSERT_EQUAL(l.groups[2].size, 256u << 10);
	/* H7: 16 sectors of 128 KiB over both banks */
	CU_ASSERT_EQUAL_FATAL(runner_dfu_layout_parse(&l, "@Internal Flash   /0x08000000/16*128Kg", &e), 0);
	CU_ASSERT_EQUAL(l.n, 1);
	CU_ASSERT_EQUAL(l.groups[0].count, 16);
	/* OTP with bytes (' ' multiplier) and read+write 'e' */
	CU_ASSERT_EQUAL_FATAL(runner_dfu_layout_parse(&l, "@OTP Memory /0x1FFF7800/01*512 e,01*016 e", &e), 0);
	CU_ASSERT_STRING_EQUAL(l.name, "OTP Memory");
	CU_ASSERT_EQUAL(l.groups[0].size, 512);
	CU_ASSERT_EQUAL(l.groups[1].start, 0x1fff7a00);
	CU_ASSERT_EQUAL(l.groups[1].size, 16);
	CU_ASSERT_EQUAL(l.groups[1].flags, RUNNER_DFU_MEM_READ | RUNNER_DFU_MEM_WRITE);
	/* mboot with internal and external (SPI) flash: two address blocks */
	CU_ASSERT_EQUAL_FATAL(runner_dfu_layout_parse(&l, "@Internal Flash /0x08000000/04*016Kg,"
						      "01*064Kg/0x90000000/512*004Kg", &e), 0);
	CU_ASSERT_EQUAL(l.n, 3);
	CU_ASSERT_EQUAL(l.groups[2].start, 0x90000000);
	CU_ASSERT_EQUAL(l.groups[2].count, 512);
	CU_ASSERT_EQUAL(l.groups[2].size, 4096);
	/* 1 MB sectors, 'M' */
	CU_ASSERT_EQUAL_FATAL(runner_dfu_layout_parse(&l, "@Ext /0x60000000/8*1Mg", &e), 0);
	CU_ASSERT_EQUAL(l.groups[0].size, 1u << 20);
}

static void check_bad(const char *s, int code, const char *msg)
{
	struct runner_dfu_layout l;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(runner_dfu_layout_parse(&l, s, &e), code);
	CU_ASSERT_STRING_EQUAL(e.msg, msg);
	if (strcmp(e.msg, msg))
		fprintf(stderr, "\n  got:  %s\n  want: %s\n", e.msg, msg);
}

static void test_layout_malformed(void)
{
	check_bad("Internal Flash /0x08000000/04*016Kg", FARM_EINVAL,
		  "memory layout \"Internal Flash /0x08000000/04*016Kg\": does not start with '@' "
		  "(not a DfuSe memory description)");
	check_bad("@Flash", FARM_EINVAL, "memory layout \"@Flash\": column 7: no '/' before the address");
	check_bad("@F/08000000/04*016Kg", FARM_EINVAL,
		  "memory layout \"@F/08000000/04*016Kg\": column 4: expected an address such as 0x08000000");
	check_bad("@F/0x080000000/04*016Kg", FARM_EINVAL,
		  "memory layout \"@F/0x080000000/04*016Kg\": column 15: the address needs 1 to 8 hex digits");
	check_bad("@F/0x08000000/04016Kg", FARM_EINVAL,
		  "memory layout \"@F/0x08000000/04016Kg\": column 20: expected '*' after the sector count");
	check_bad("@F/0x08000000/00*016Kg", FARM_EINVAL,
		  "memory layout \"@F/0x08000000/00*016Kg\": column 15: expected a sector count (1 or more)");
	check_bad("@F/0x08000000/04*016Kz", FARM_EINVAL,
		  "memory layout \"@F/0x08000000/04*016Kz\": column 22: expected a type letter a..g "
		  "(readable 1, erasable 2, writable 4)");
	check_bad("@F/0xFFFF0000/02*064Kg", FARM_EINVAL,
		  "memory layout \"@F/0xFFFF0000/02*064Kg\": column 18: the sectors run past 0xffffffff");
	check_bad("@F/0x08000000/", FARM_EINVAL,
		  "memory layout \"@F/0x08000000/\": column 15: expected a sector count (1 or more)");
	check_bad("@F/0x08000000/04*016Kg,", FARM_EINVAL,
		  "memory layout \"@F/0x08000000/04*016Kg,\": column 24: expected a sector count (1 or more)");
	check_bad("@F/0x08000000/04*016Kgx", FARM_EINVAL,
		  "memory layout \"@F/0x08000000/04*016Kgx\": column 23: unexpected character");
	check_bad("@F/0x08000000/04*9999999999Kg", FARM_EINVAL,
		  "memory layout \"@F/0x08000000/04*9999999999Kg\": column 18: expected a sector size (1 or more)");
	/* more groups than fit */
	char big[600] = "@F/0x08000000/";
	for (int i = 0; i < 33; i++)
		snprintf(big + strlen(big), sizeof big - strlen(big), "%s1*1Kg", i ? "," : "");
	struct runner_dfu_layout l;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(runner_dfu_layout_parse(&l, big, &e), FARM_ELIMIT);
}

/* ---- erase plan ---- */

static void test_erase_plan(void)
{
	struct runner_dfu_layout l;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(runner_dfu_layout_parse(&l, F4, &e), 0);
	uint32_t a[] = { 0x08000000, 0x0800c000, 0x08021000 }, n[] = { 0x4001, 0x100, 0x30000 };
	struct farm_image *img = make_image(3, a, n);
	struct runner_dfu_erase *plan = NULL;
	size_t k = 0;
	CU_ASSERT_EQUAL_FATAL(runner_dfu_erase_plan(&plan, &k, &l, img, &e), 0);
	/* 0x08000000 and 0x08004000 (one byte over), 0x0800c000, and the 128 KiB
	 * sectors 0x08020000 and 0x08040000; not 0x08008000 nor the 64 KiB one */
	CU_ASSERT_EQUAL_FATAL(k, 5);
	CU_ASSERT_EQUAL(plan[0].addr, 0x08000000);
	CU_ASSERT_EQUAL(plan[1].addr, 0x08004000);
	CU_ASSERT_EQUAL(plan[2].addr, 0x0800c000);
	CU_ASSERT_EQUAL(plan[3].addr, 0x08020000);
	CU_ASSERT_EQUAL(plan[3].size, 0x20000);
	CU_ASSERT_EQUAL(plan[4].addr, 0x08040000);
	free(plan);
	farm_image_free(img);

	uint32_t a2[] = { 0x080ff000 }, n2[] = { 0x2000 };
	img = make_image(1, a2, n2);
	CU_ASSERT_EQUAL(runner_dfu_erase_plan(&plan, &k, &l, img, &e), FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.msg, "image byte 0x08100000 lies outside memory \"Internal Flash\"; "
			       "check the image's addresses or flash.alt");
	CU_ASSERT_PTR_NULL(plan);
	farm_image_free(img);

	CU_ASSERT_EQUAL_FATAL(runner_dfu_layout_parse(&l, "@OTP /0x1FFF7800/01*512 a", &e), 0);
	uint32_t a3[] = { 0x1fff7810 }, n3[] = { 4 };
	img = make_image(1, a3, n3);
	CU_ASSERT_EQUAL(runner_dfu_erase_plan(&plan, &k, &l, img, &e), FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.msg, "image byte 0x1fff7810 lies in a read-only sector of memory "
			       "\"OTP\"; check the image's addresses or flash.alt");
	farm_image_free(img);
	/* writable, not erasable: written without an erase */
	CU_ASSERT_EQUAL_FATAL(runner_dfu_layout_parse(&l, "@OTP /0x1FFF7800/01*512 e", &e), 0);
	img = make_image(1, a3, n3);
	CU_ASSERT_EQUAL(runner_dfu_erase_plan(&plan, &k, &l, img, &e), 0);
	CU_ASSERT_EQUAL(k, 0);
	free(plan);
	farm_image_free(img);
}

/* ---- alt selection ---- */

static void test_pick_alt(void)
{
	struct runner_dfu_info info = { .n_alts = 3 };
	snprintf(info.what, sizeof info.what, "0483:df11 at 1-1");
	info.alts[0].alt = 0;
	snprintf(info.alts[0].name, sizeof info.alts[0].name, "%s", "@Option Bytes  /0x1FFFC000/01*016 e");
	info.alts[1].alt = 1;
	snprintf(info.alts[1].name, sizeof info.alts[1].name, "%s", F4);
	info.alts[2].alt = 2;
	snprintf(info.alts[2].name, sizeof info.alts[2].name, "%s", "@OTP Memory /0x1FFF7800/01*512 e");
	size_t i = 99;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(runner_dfu_pick_alt(&i, &info, NULL, NULL, &e), 0);
	CU_ASSERT_EQUAL(i, 1); /* "Internal Flash" by default */
	CU_ASSERT_EQUAL(runner_dfu_pick_alt(&i, &info, "@OTP", NULL, &e), 0);
	CU_ASSERT_EQUAL(i, 2);
	CU_ASSERT_EQUAL(runner_dfu_pick_alt(&i, &info, "0", NULL, &e), 0);
	CU_ASSERT_EQUAL(i, 0);
	CU_ASSERT_EQUAL(runner_dfu_pick_alt(&i, &info, "SPI Flash", NULL, &e), FARM_ENOTFOUND);
	CU_ASSERT_STRING_EQUAL(e.msg, "0483:df11 at 1-1 has no DFU alternate setting \"SPI Flash\" (it "
			       "has 0 \"@Option Bytes  /0x1FFFC000/01*016 e\", 1 \"" F4 "\", 2 \"@OTP "
			       "Memory /0x1FFF7800/01*512 e\"); set flash.alt to one of them");
	struct farm_image img = { .has_dfuse = 1, .dfuse_alt = 2 };
	CU_ASSERT_EQUAL(runner_dfu_pick_alt(&i, &info, NULL, &img, &e), 0);
	CU_ASSERT_EQUAL(i, 2); /* the DfuSe image's target */
}

/* ---- against the model ---- */

static void begin(struct rig *r, int dfuse, unsigned xfer)
{
	struct farm_err e = { 0 };
	size_t idx = 0;
	CU_ASSERT_EQUAL_FATAL(runner_dfu_pick_alt(&idx, &r->u.info, NULL, NULL, &e), 0);
	int rc = runner_dfu_begin(&r->d, &r->u, idx, dfuse, xfer, &e);
	if (rc)
		fprintf(stderr, "\n  begin: %s\n%s", e.msg, r->sim.log);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
}

struct prog {
	uint64_t erase, write, verify;
};

static void on_progress(void *payload, const char *step, uint64_t done, uint64_t total)
{
	struct prog *p = payload;
	(void)total;
	if (!strcmp(step, "erase"))
		p->erase = done;
	else if (!strcmp(step, "write"))
		p->write = done;
	else if (!strcmp(step, "verify"))
		p->verify = done;
}

static void test_dfuse_flash(void)
{
	struct rig *r = rig_new("dfuse:serial=AAA");
	uint8_t old[64];
	memset(old, 0x5a, sizeof old);
	CU_ASSERT_FATAL(dfu_model_load(r->sim.m, 0, 0x08060000, old, sizeof old) == 0);
	begin(r, -1, 0);
	CU_ASSERT_TRUE(r->d.dfuse);
	CU_ASSERT_EQUAL(r->d.xfer, 2048);
	uint32_t a[] = { 0x08000000, 0x08020000 }, n[] = { 40 * 1024 + 5, 3000 };
	struct farm_image *img = make_image(2, a, n);
	struct farm_err e = { 0 };
	struct prog p = { 0 };
	int rc = runner_dfu_write(&r->d, img, on_progress, &p, &e);
	if (rc)
		fprintf(stderr, "\n  %s\n", e.msg);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL(p.erase, 3 * 16384 + 131072);
	CU_ASSERT_EQUAL(p.write, farm_image_size(img));
	CU_ASSERT_EQUAL(runner_dfu_can_read(&r->d, img, &e), 0);
	CU_ASSERT_EQUAL(runner_dfu_verify(&r->d, img, on_progress, &p, &e), 0);
	CU_ASSERT_EQUAL(p.verify, 3000); /* the last segment's bytes */
	CU_ASSERT_EQUAL(runner_dfu_leave(&r->d, 0x08000000, &e), 0);
	struct dfu_model_info mi;
	dfu_model_get_info(r->sim.m, &mi);
	CU_ASSERT_TRUE(model_has(r, img));
	CU_ASSERT_EQUAL(mi.erases, 4);     /* only the sectors the image covers */
	CU_ASSERT_TRUE(mi.left);
	CU_ASSERT_EQUAL(mi.jump, 0x08000000);
	CU_ASSERT_EQUAL(mi.poll_violations, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r->sim.log, "erase page 0x08008000"));
	CU_ASSERT_PTR_NULL(strstr(r->sim.log, "erase page 0x0800c000"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r->sim.log, "leave -> jump 0x08000000"));
	uint8_t now[64];
	CU_ASSERT_EQUAL(dfu_model_read(r->sim.m, 0, 0x08060000, now, sizeof now), 0);
	CU_ASSERT_EQUAL(memcmp(now, old, sizeof old), 0); /* an uncovered sector kept */
	CU_ASSERT_PTR_NOT_NULL(strstr(r->dlog, "dfu: left DFU mode, jumping to 0x08000000"));
	farm_image_free(img);
	rig_free(r);
}

/* mboot, and a block size other than the device's: the address pointer is
 * set before every block. A read-back that differs is named. */
static void test_mboot_override(void)
{
	struct rig *r = rig_new("dfuse:personality=mboot,transfer=1024");
	begin(r, 1, 512);
	CU_ASSERT_EQUAL(r->d.xfer, 512);
	uint32_t a[] = { 0x08004000 }, n[] = { 5000 };
	struct farm_image *img = make_image(1, a, n);
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(runner_dfu_write(&r->d, img, NULL, NULL, &e), 0);
	CU_ASSERT_TRUE(model_has(r, img));
	CU_ASSERT_PTR_NOT_NULL(strstr(r->sim.log, "set address 0x08005200"));
	int rc = runner_dfu_verify(&r->d, img, NULL, NULL, &e);
	if (rc)
		fprintf(stderr, "\n  %s\n%s", e.msg, r->sim.log + (r->sim.log_n > 1500 ? r->sim.log_n - 1500 : 0));
	CU_ASSERT_EQUAL(rc, 0);
	img->segs[0].data[4321] ^= 0x10;
	CU_ASSERT_EQUAL(runner_dfu_verify(&r->d, img, NULL, NULL, &e), FARM_EIO);
	char want[300];
	snprintf(want, sizeof want, "board b1: DFU verify: 0x%08x holds 0x%02x, the image 0x%02x; "
		 "flash again, and replace the board if it persists", 0x08004000 + 4321,
		 img->segs[0].data[4321] ^ 0x10, img->segs[0].data[4321]);
	CU_ASSERT_STRING_EQUAL(e.msg, want);
	farm_image_free(img);
	rig_free(r);
}

static void test_plain(void)
{
	struct rig *r = rig_new("dfu");
	begin(r, -1, 0);
	CU_ASSERT_FALSE(r->d.dfuse);
	uint32_t a[] = { 0x0 }, n[] = { 5000 };
	struct farm_image *img = make_image(1, a, n);
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(runner_dfu_write(&r->d, img, NULL, NULL, &e), 0);
	CU_ASSERT_EQUAL(runner_dfu_can_read(&r->d, img, &e), 0);
	int rc = runner_dfu_verify(&r->d, img, NULL, NULL, &e);
	if (rc)
		fprintf(stderr, "\n  %s\n%s", e.msg, r->sim.log);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_TRUE(model_has(r, img));
	CU_ASSERT_EQUAL(runner_dfu_leave(&r->d, 0, &e), 0);
	struct dfu_model_info mi;
	dfu_model_get_info(r->sim.m, &mi);
	CU_ASSERT_EQUAL(mi.writes, 5);
	CU_ASSERT_EQUAL(mi.resets, 1);
	CU_ASSERT_EQUAL(mi.poll_violations, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r->sim.log, "manifest"));
	farm_image_free(img);
	rig_free(r);
}

/* ---- faults ---- */

/* Flash a 20 KiB image at 0x08000000 with faults; the error, or 0. */
static int flash_with(struct rig *r, const char *faults, struct farm_err *e)
{
	struct dfu_model_faults f;
	char err[200];
	CU_ASSERT_FATAL(dfu_model_faults_parse(&f, faults, err, sizeof err) == 0);
	dfu_model_set_faults(r->sim.m, &f);
	uint32_t a[] = { 0x08000000 }, n[] = { 20 * 1024 };
	struct farm_image *img = make_image(1, a, n);
	int rc = runner_dfu_write(&r->d, img, NULL, NULL, e);
	if (rc == 0)
		rc = runner_dfu_verify(&r->d, img, NULL, NULL, e);
	if (rc == 0)
		rc = runner_dfu_leave(&r->d, 0x08000000, e);
	farm_image_free(img);
	return rc;
}

static void expect_msg(const struct farm_err *e, const char *want)
{
	CU_ASSERT_STRING_EQUAL(e->msg, want);
	if (strcmp(e->msg, want))
		fprintf(stderr, "\n  got:  %s\n  want: %s\n", e->msg, want);
}

static void test_fault_errprog(void)
{
	struct rig *r = rig_new("dfuse");
	begin(r, -1, 0);
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(flash_with(r, "errprog@0x08004000-0x08004800", &e), FARM_EIO);
	expect_msg(&e, "board b1: DFU errPROG at 0x08004000 while writing block 8: programming "
		   "failed (device state dfuERROR); the sector may be write-protected; check the "
		   "option bytes' write protection (STM32CubeProgrammer) and the BOOT0 wiring, then "
		   "flash again");
	struct dfu_model_info mi;
	dfu_model_get_info(r->sim.m, &mi);
	CU_ASSERT_EQUAL(mi.state, DFU_MODEL_IDLE); /* cleared for the next attempt */
	CU_ASSERT_FALSE(mi.left);
	rig_free(r);
}

static void test_fault_stall(void)
{
	/* request 1 is begin's GETSTATUS; then erase 0x08000000 (2 DNLOAD, 3-4
	 * GETSTATUS busy/idle), 0x08004000 (5-7); the address pointer (8-10);
	 * block 0 of the data is request 11 */
	struct rig *r = rig_new("dfuse:trace=1");
	begin(r, -1, 0);
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(flash_with(r, "stall@11", &e), FARM_EPROTO);
	expect_msg(&e, "board b1: DFU request DNLOAD stalled at 0x08000000 while writing block 0 "
		   "(device state dfuDNLOAD-IDLE): the device refuses it; check that flash.alt names "
		   "a memory that allows this, then reset the board into DFU mode and flash again");
	CU_ASSERT_PTR_NOT_NULL(strstr(r->sim.log, "req 11 21 01 0002"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r->sim.log, "stall (fault, request 11)"));
	rig_free(r);
}

static void test_fault_stall_erase(void)
{
	/* the STM32L4 stalls GETSTATUS while erasing: retried, flashing succeeds */
	struct rig *r = rig_new("dfuse");
	begin(r, -1, 0);
	struct farm_err e = { 0 };
	int rc = flash_with(r, "stall-erase", &e);
	if (rc)
		fprintf(stderr, "\n  %s\n%s", e.msg, r->sim.log);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_TRUE(r->d.stall_retries > 0);
	struct dfu_model_info mi;
	dfu_model_get_info(r->sim.m, &mi);
	CU_ASSERT_TRUE(mi.left);
	rig_free(r);
}

static void test_fault_errverify(void)
{
	struct rig *r = rig_new("dfuse");
	begin(r, -1, 0);
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(flash_with(r, "errverify", &e), FARM_EIO);
	expect_msg(&e, "board b1: DFU errVERIFY while leaving DFU mode: the device read back "
		   "different data after programming (device state dfuERROR); the flash may be "
		   "worn or the supply unstable: flash again, and replace the board if it persists");
	struct dfu_model_info mi;
	dfu_model_get_info(r->sim.m, &mi);
	CU_ASSERT_FALSE(mi.left);
	rig_free(r);
}

static void test_fault_gone(void)
{
	struct rig *r = rig_new("dfuse");
	begin(r, -1, 0);
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(flash_with(r, "gone@13", &e), FARM_ECLOSED);
	/* request 14 is the DNLOAD of block 1 (block 0: 11, GETSTATUS busy 12, idle 13) */
	expect_msg(&e, "board b1: DFU device gone at 0x08000800 while writing block 1: it left the "
		   "USB bus during DNLOAD (reset or unplugged); check the cable and the hub's "
		   "power, put the board back into DFU mode and flash again");
	rig_free(r);
}

static void test_fault_timeout(void)
{
	struct rig *r = rig_new("dfuse");
	begin(r, -1, 0);
	r->d.ctl_timeout_ms = 700;
	struct farm_err e = { 0 };
	long long t0 = r->sim.clock;
	CU_ASSERT_EQUAL(flash_with(r, "hang@15", &e), FARM_ETIMEDOUT);
	/* request 15: the first GETSTATUS after block 1 */
	expect_msg(&e, "board b1: DFU timeout at 0x08000800 while writing block 1: no answer to "
		   "GETSTATUS within 700 ms; the bootloader hung: reset the board into DFU mode and "
		   "flash again");
	CU_ASSERT_TRUE(r->sim.clock - t0 < 5000); /* one timeout, not a retry loop */
	rig_free(r);
}

/* ---- a scripted device that never finishes ---- */

struct busy {
	unsigned poll_ms;
	long long clock;
	unsigned getstatus;
};

static int busy_control(void *h, const struct runner_dfu_setup *s, uint8_t *data, size_t *got,
			unsigned timeout_ms, char *why, size_t why_len)
{
	struct busy *b = h;
	(void)timeout_ms;
	(void)why;
	(void)why_len;
	b->clock++;
	*got = 0;
	if (s->request == RUNNER_DFU_GETSTATUS) {
		b->getstatus++;
		uint8_t st = b->getstatus == 1 ? RUNNER_DFU_IDLE : RUNNER_DFU_DNBUSY;
		uint8_t r[6] = { 0, (uint8_t)b->poll_ms, (uint8_t)(b->poll_ms >> 8), 0, st, 0 };
		memcpy(data, r, 6);
		*got = 6;
	}
	return RUNNER_DFU_X_OK;
}

static int busy_alt(void *h, uint8_t alt, char *why, size_t len)
{
	(void)h;
	(void)alt;
	(void)why;
	(void)len;
	return 0;
}

static long long busy_now(void *h)
{
	return ((struct busy *)h)->clock;
}

static void busy_sleep(void *h, unsigned ms)
{
	((struct busy *)h)->clock += ms;
}

static const struct runner_dfu_usb_ops busy_ops = {
	.control = busy_control, .set_alt = busy_alt, .now_ms = busy_now, .sleep_ms = busy_sleep,
};

static int busy_erase(unsigned poll_ms, struct farm_err *e, struct busy *b)
{
	struct runner_dfu_usb u = { .ops = &busy_ops, .h = b };
	u.info.n_alts = 1;
	snprintf(u.info.alts[0].name, sizeof u.info.alts[0].name, "%s", F4);
	u.info.has_func = 1;
	u.info.func = (struct runner_dfu_func){ 0x0b, 255, 2048, 0x011a };
	snprintf(u.info.what, sizeof u.info.what, "stuck device");
	struct farm_board board = { .id = "b2" };
	struct runner_ctx ctx = { .board = &board };
	struct runner_dfu d = { .ctx = &ctx };
	b->poll_ms = poll_ms;
	CU_ASSERT_EQUAL_FATAL(runner_dfu_begin(&d, &u, 0, -1, 0, e), 0);
	uint32_t a[] = { 0x08000000 }, n[] = { 16 };
	struct farm_image *img = make_image(1, a, n);
	int rc = runner_dfu_write(&d, img, NULL, NULL, e);
	farm_image_free(img);
	return rc;
}

static void test_stuck(void)
{
	struct busy b = { 0 };
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(busy_erase(0, &e, &b), FARM_ETIMEDOUT);
	expect_msg(&e, "board b2: DFU device stuck at 0x08000000 while erasing sector 1 of 1: busy "
		   "with a zero poll timeout 100 times in a row; reset the board into DFU mode and "
		   "flash again");
	CU_ASSERT_EQUAL(b.getstatus, 101);
	struct busy b2 = { 0 };
	CU_ASSERT_EQUAL(busy_erase(1000, &e, &b2), FARM_ETIMEDOUT);
	expect_msg(&e, "board b2: DFU timeout at 0x08000000 while erasing sector 1 of 1: still busy "
		   "after 40000 ms (it asks for 1000 ms more); reset the board into DFU mode and "
		   "flash again");
	CU_ASSERT_TRUE(b2.clock >= 40000 - 1000 && b2.clock < 42000);
}

static void test_func_parse(void)
{
	/* an interface descriptor, then the functional descriptor of the notes */
	const uint8_t extra[] = { 9, 4, 0, 0, 0, 0xfe, 1, 2, 4, 9, 0x21, 0x0b, 0xff, 0x00, 0x00, 0x08,
				  0x1a, 0x01 };
	struct runner_dfu_func f;
	CU_ASSERT_EQUAL(runner_dfu_func_parse(&f, extra, sizeof extra), 0);
	CU_ASSERT_EQUAL(f.attributes, 0x0b);
	CU_ASSERT_EQUAL(f.detach_timeout_ms, 255);
	CU_ASSERT_EQUAL(f.transfer_size, 2048);
	CU_ASSERT_EQUAL(f.bcd_dfu, 0x011a);
	CU_ASSERT_EQUAL(runner_dfu_func_parse(&f, extra, 9), -1);
	const uint8_t bad[] = { 9, 4, 0, 0, 0, 0xfe, 1, 2, 4, 0, 0x21 };
	CU_ASSERT_EQUAL(runner_dfu_func_parse(&f, bad, sizeof bad), -1);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("dfu", NULL, NULL);
	if (!s)
		return -1;
	return !CU_add_test(s, "layout F4", test_layout_f4) ||
	       !CU_add_test(s, "layout F7 H7 OTP mboot", test_layout_others) ||
	       !CU_add_test(s, "layout malformed", test_layout_malformed) ||
	       !CU_add_test(s, "erase plan", test_erase_plan) ||
	       !CU_add_test(s, "alt selection", test_pick_alt) ||
	       !CU_add_test(s, "functional descriptor", test_func_parse) ||
	       !CU_add_test(s, "DfuSe flash verify leave", test_dfuse_flash) ||
	       !CU_add_test(s, "mboot, block size override, verify mismatch", test_mboot_override) ||
	       !CU_add_test(s, "plain DFU 1.1", test_plain) ||
	       !CU_add_test(s, "fault errPROG", test_fault_errprog) ||
	       !CU_add_test(s, "fault stall", test_fault_stall) ||
	       !CU_add_test(s, "fault GETSTATUS stall during erase", test_fault_stall_erase) ||
	       !CU_add_test(s, "fault errVERIFY", test_fault_errverify) ||
	       !CU_add_test(s, "fault device gone", test_fault_gone) ||
	       !CU_add_test(s, "fault timeout", test_fault_timeout) ||
	       !CU_add_test(s, "stuck device, poll deadline", test_stuck)
		       ? -1
		       : 0;
}
