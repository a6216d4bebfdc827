/* The DFU/DfuSe device model (dfu_model.c) in process: the protocol test
 * vectors of /work/shared/protocols/dfu-dfuse.md byte for byte, the state
 * machine, flash rules and every injected fault. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfu_model.h"

#define LOGMAX 8192

struct logbuf {
	char text[LOGMAX];
	size_t len;
};

static void on_log(void *payload, const char *line)
{
	struct logbuf *l = payload;
	int n = snprintf(l->text + l->len, sizeof l->text - l->len, "%s\n", line);
	if (n > 0 && l->len + (size_t)n < sizeof l->text)
		l->len += (size_t)n;
}

/* "A1 03 00 00 00 00 06 00" -> bytes; returns the count. */
static size_t hex(const char *s, uint8_t *out, size_t max)
{
	size_t n = 0;
	while (*s && n < max) {
		unsigned v;
		int used;
		if (sscanf(s, " %2x%n", &v, &used) != 1)
			break;
		out[n++] = (uint8_t)v;
		s += used;
	}
	return n;
}

/* One request: setup as hex, OUT payload as hex (or NULL); IN data lands in in. */
static int ctl(struct dfu_model *m, const char *setup_hex, const char *out_hex, uint8_t *in, long long now)
{
	uint8_t setup[8], buf[4096];
	CU_ASSERT_EQUAL_FATAL(hex(setup_hex, setup, 8), 8);
	memset(buf, 0, sizeof buf);
	if (out_hex)
		hex(out_hex, buf, sizeof buf);
	int r = dfu_model_control(m, setup, buf, sizeof buf, now);
	if (in && r > 0)
		memcpy(in, buf, (size_t)r);
	return r;
}

static struct dfu_model *make(const char *spec, struct logbuf *log)
{
	struct dfu_model_config cfg;
	char err[256] = "";
	int rc = dfu_model_config_parse(&cfg, spec, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "config: %s\n", err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	memset(log, 0, sizeof *log);
	struct dfu_model *m = dfu_model_new(&cfg, on_log, log, err, sizeof err);
	if (!m)
		fprintf(stderr, "model: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	return m;
}

static const char GETSTATUS[] = "A1 03 00 00 00 00 06 00";
static const char CMD5[] = "21 01 00 00 00 00 05 00";

/* Send a DfuSe command and poll it through DNBUSY, as dfu-util does. */
static void command(struct dfu_model *m, const char *payload, long long *now)
{
	uint8_t st[6];
	CU_ASSERT_EQUAL(ctl(m, CMD5, payload, NULL, *now), 5);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, *now), 6);
	CU_ASSERT_EQUAL(st[4], DFU_MODEL_DNBUSY);
	*now += st[1] | st[2] << 8 | st[3] << 16;
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, *now), 6);
	CU_ASSERT_EQUAL(st[0], DFU_MODEL_OK);
	CU_ASSERT_EQUAL(st[4], DFU_MODEL_DNLOAD_IDLE);
}

/* Write one 2048-byte block of value fill at the address pointer; returns
 * the GETSTATUS reply after DNBUSY. */
static void write_block(struct dfu_model *m, uint8_t fill, long long *now, uint8_t st[6])
{
	uint8_t setup[8], buf[2048];
	hex("21 01 02 00 00 00 00 08", setup, 8);
	memset(buf, fill, sizeof buf);
	CU_ASSERT_EQUAL(dfu_model_control(m, setup, buf, sizeof buf, *now), 2048);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, *now), 6);
	CU_ASSERT_EQUAL(st[4], DFU_MODEL_DNBUSY);
	*now += st[1];
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, *now), 6);
}

static void test_vectors(void)
{
	struct logbuf log;
	struct dfu_model *m = make("dfuse:erase_poll=100,poll=2", &log);
	uint8_t in[64], want[16];
	long long now = 1000;

	/* fresh device: OK, dfuIDLE */
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, in, now), 6);
	CU_ASSERT_EQUAL(memcmp(in, "\x00\x00\x00\x00\x02\x00", 6), 0);
	/* page erase 0x08004000: GETSTATUS "OK, poll 100 ms, dfuDNBUSY" */
	CU_ASSERT_EQUAL(ctl(m, CMD5, "41 00 40 00 08", NULL, now), 5);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, in, now), 6);
	hex("00 64 00 00 04 00", want, sizeof want);
	CU_ASSERT_EQUAL(memcmp(in, want, 6), 0);
	now += 100;
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, in, now), 6);
	CU_ASSERT_EQUAL(in[4], DFU_MODEL_DNLOAD_IDLE);
	CU_ASSERT_PTR_NOT_NULL(strstr(log.text, "erase page 0x08004000\n"));
	/* set address 0x08000000, erase it, data block 2 (2048 bytes) */
	command(m, "21 00 00 00 08", &now);
	CU_ASSERT_PTR_NOT_NULL(strstr(log.text, "set address 0x08000000\n"));
	command(m, "41 00 00 00 08", &now);
	command(m, "21 00 00 00 08", &now);
	write_block(m, 0x5a, &now, in);
	CU_ASSERT_EQUAL(in[0], DFU_MODEL_OK);
	CU_ASSERT_EQUAL(in[4], DFU_MODEL_DNLOAD_IDLE);
	CU_ASSERT_PTR_NOT_NULL(strstr(log.text, "dnload block 2 len 2048 at 0x08000000\n"));
	uint8_t back[2049];
	CU_ASSERT_EQUAL(dfu_model_read(m, 0, 0x08000000, back, sizeof back), 0);
	CU_ASSERT_EQUAL(back[0], 0x5a);
	CU_ASSERT_EQUAL(back[2047], 0x5a);
	CU_ASSERT_EQUAL(back[2048], 0xff);
	/* ABORT -> dfuIDLE; DETACH in DFU mode is accepted and ignored */
	CU_ASSERT_EQUAL(ctl(m, "21 06 00 00 00 00 00 00", NULL, NULL, now), 0);
	CU_ASSERT_EQUAL(ctl(m, "21 00 E8 03 00 00 00 00", NULL, NULL, now), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(log.text, "ABORT\n"));
	/* the same block again: the page is not erased -> errWRITE, dfuERROR */
	command(m, "21 00 00 00 08", &now);
	write_block(m, 0x00, &now, in);
	CU_ASSERT_EQUAL(in[0], DFU_MODEL_ERR_WRITE);
	CU_ASSERT_EQUAL(in[4], DFU_MODEL_ERROR);
	/* CLRSTATUS -> dfuIDLE */
	CU_ASSERT_EQUAL(ctl(m, "21 04 00 00 00 00 00 00", NULL, NULL, now), 0);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, in, now), 6);
	CU_ASSERT_EQUAL(memcmp(in, "\x00\x00\x00\x00\x02\x00", 6), 0);
	/* UPLOAD wValue 0 on the ROM personality: the command list */
	CU_ASSERT_EQUAL(ctl(m, "A1 02 00 00 00 00 10 00", NULL, in, now), 4);
	CU_ASSERT_EQUAL(memcmp(in, "\x00\x21\x41\x92", 4), 0);
	CU_ASSERT_EQUAL(ctl(m, "21 06 00 00 00 00 00 00", NULL, NULL, now), 0);
	/* upload block 2 from 0x08000000 */
	command(m, "21 00 00 00 08", &now);
	CU_ASSERT_EQUAL(ctl(m, "21 06 00 00 00 00 00 00", NULL, NULL, now), 0);
	CU_ASSERT_EQUAL(ctl(m, "A1 02 02 00 00 00 10 00", NULL, in, now), 16);
	CU_ASSERT_EQUAL(in[0], 0x5a);
	CU_ASSERT_EQUAL(ctl(m, "21 06 00 00 00 00 00 00", NULL, NULL, now), 0);
	/* leave: set address, DNLOAD 0 wValue 2, GETSTATUS reports dfuMANIFEST, then gone */
	command(m, "21 00 00 00 08", &now);
	CU_ASSERT_EQUAL(ctl(m, "21 01 02 00 00 00 00 00", NULL, NULL, now), 0);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, in, now), 6);
	CU_ASSERT_EQUAL(in[0], DFU_MODEL_OK);
	CU_ASSERT_EQUAL(in[4], DFU_MODEL_MANIFEST);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, in, now), -ENODEV);
	struct dfu_model_info info;
	dfu_model_get_info(m, &info);
	CU_ASSERT_EQUAL(info.left, 1);
	CU_ASSERT_EQUAL(info.jump, 0x08000000);
	CU_ASSERT_EQUAL(info.poll_violations, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(log.text, "manifest\nleave -> jump 0x08000000\n"));
	char state[512];
	dfu_model_format_state(m, state, sizeof state);
	CU_ASSERT_PTR_NOT_NULL(strstr(state, "left=1\njump=0x08000000\n"));
	dfu_model_free(m);
}

static void test_descriptors(void)
{
	struct logbuf log;
	struct dfu_model *m = make("dfuse:serial=ABC123,transfer=2048,layout=@Internal Flash  /0x08000000/"
				   "04*016Kg,01*064Kg,07*128Kg,alt=@Option Bytes  /0x1FFFC000/01*016 e",
				   &log);
	const struct dfu_model_config *c = dfu_model_get_config(m);
	CU_ASSERT_EQUAL(c->n_alt, 2);
	CU_ASSERT_STRING_EQUAL(c->alt_name[0], "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg");
	CU_ASSERT_STRING_EQUAL(c->serial, "ABC123");
	uint8_t d[256];
	/* device descriptor 0483:DF11 bcdDevice 2200, strings 1/2/3 */
	CU_ASSERT_EQUAL(ctl(m, "80 06 00 01 00 00 12 00", NULL, d, 0), 18);
	uint8_t want[32];
	hex("12 01 00 02 00 00 00 40 83 04 11 DF 00 22 01 02 03 01", want, sizeof want);
	CU_ASSERT_EQUAL(memcmp(d, want, 18), 0);
	/* configuration: 9 + 2 interfaces + functional descriptor */
	CU_ASSERT_EQUAL(ctl(m, "80 06 00 02 00 00 FF 00", NULL, d, 0), 36);
	CU_ASSERT_EQUAL(d[2], 36);
	hex("09 04 00 01 00 FE 01 02 05", want, sizeof want);
	CU_ASSERT_EQUAL(memcmp(d + 18, want, 9), 0);
	hex("09 21 0B FF 00 00 08 1A 01", want, sizeof want);
	CU_ASSERT_EQUAL(memcmp(d + 27, want, 9), 0);
	/* serial string, UTF-16LE; alt 1 name */
	CU_ASSERT_EQUAL(ctl(m, "80 06 03 03 09 04 FF 00", NULL, d, 0), 14);
	CU_ASSERT_EQUAL(memcmp(d, "\x0e\x03" "A\0B\0C\0" "1\0" "2\0" "3\0", 14), 0);
	CU_ASSERT_EQUAL(ctl(m, "80 06 05 03 09 04 FF 00", NULL, d, 0), 2 + 2 * (int)strlen(c->alt_name[1]));
	CU_ASSERT_EQUAL(ctl(m, "80 06 06 03 09 04 FF 00", NULL, d, 0), -EPIPE);
	/* alt 1 is readable but not erasable nor writable */
	CU_ASSERT_EQUAL(dfu_model_set_interface(m, 0, 1, 0), 0);
	CU_ASSERT_EQUAL(dfu_model_set_interface(m, 0, 2, 0), -EINVAL);
	long long now = 0;
	uint8_t st[6];
	CU_ASSERT_EQUAL(ctl(m, CMD5, "41 00 C0 FF 1F", NULL, now), 5);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now), 6);
	now += 10;
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now), 6);
	CU_ASSERT_EQUAL(st[0], DFU_MODEL_ERR_TARGET);
	uint32_t addr;
	size_t len;
	CU_ASSERT_PTR_NOT_NULL(dfu_model_region(m, 0, 0, &addr, &len));
	CU_ASSERT_EQUAL(addr, 0x08000000);
	CU_ASSERT_EQUAL(len, 1024 * 1024);
	CU_ASSERT_PTR_NOT_NULL(dfu_model_region(m, 1, 0, &addr, &len));
	CU_ASSERT_EQUAL(addr, 0x1fffc000);
	CU_ASSERT_EQUAL(len, 16);
	dfu_model_free(m);

	struct dfu_model_config cfg;
	char err[256];
	CU_ASSERT_EQUAL(dfu_model_config_parse(&cfg, "dfuse:bogus=1", err, sizeof err), -1);
	CU_ASSERT_EQUAL(dfu_model_config_parse(&cfg, "usb:serial=1", err, sizeof err), -1);
	CU_ASSERT_EQUAL(dfu_model_config_parse(&cfg, "dfuse:layout=@x/0x0/01*04Kg", err, sizeof err), 0);
	CU_ASSERT_EQUAL(dfu_model_config_parse(&cfg, "dfuse:alt=Flash", err, sizeof err), 0);
	CU_ASSERT_PTR_NULL(dfu_model_new(&cfg, NULL, NULL, err, sizeof err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a memory string"));
}

static void test_personality(void)
{
	struct logbuf log;
	struct dfu_model *m = make("dfuse:personality=mboot,poll=0", &log);
	uint8_t in[16];
	/* mboot stalls Get Commands and accepts CLRSTATUS in any state */
	CU_ASSERT_EQUAL(ctl(m, "A1 02 00 00 00 00 10 00", NULL, in, 0), -EPIPE);
	CU_ASSERT_EQUAL(ctl(m, "21 04 00 00 00 00 00 00", NULL, NULL, 0), 0);
	CU_ASSERT_EQUAL(ctl(m, "21 04 00 00 00 00 00 00", NULL, NULL, 0), 0);
	dfu_model_free(m);
	/* the ROM stalls CLRSTATUS outside dfuERROR (and goes to dfuERROR) */
	m = make("dfuse", &log);
	CU_ASSERT_EQUAL(ctl(m, "21 04 00 00 00 00 00 00", NULL, NULL, 0), -EPIPE);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, in, 0), 6);
	CU_ASSERT_EQUAL(in[0], DFU_MODEL_ERR_STALLEDPKT);
	CU_ASSERT_EQUAL(in[4], DFU_MODEL_ERROR);
	dfu_model_free(m);
}

static void test_plain(void)
{
	struct logbuf log;
	struct dfu_model *m = make("dfu:size=4K,transfer=1024,poll=3", &log);
	uint8_t st[6], blk[1024], setup[8];
	long long now = 0;
	for (unsigned b = 0; b < 3; b++) {
		memset(blk, (int)(b + 1), sizeof blk);
		uint8_t s[8] = {0x21, 0x01, (uint8_t)b, 0, 0, 0, 0x00, 0x04};
		CU_ASSERT_EQUAL(dfu_model_control(m, s, blk, sizeof blk, now), 1024);
		CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now), 6);
		CU_ASSERT_EQUAL(st[4], DFU_MODEL_DNBUSY);
		CU_ASSERT_EQUAL(st[1], 3);
		now += 3;
		CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now), 6);
		CU_ASSERT_EQUAL(st[4], DFU_MODEL_DNLOAD_IDLE);
	}
	/* end of download: MANIFEST-SYNC -> MANIFEST -> (tolerant) dfuIDLE */
	CU_ASSERT_EQUAL(ctl(m, "21 01 03 00 00 00 00 00", NULL, NULL, now), 0);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now), 6);
	CU_ASSERT_EQUAL(st[4], DFU_MODEL_MANIFEST);
	now += 3;
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now), 6);
	CU_ASSERT_EQUAL(st[4], DFU_MODEL_IDLE);
	CU_ASSERT_PTR_NOT_NULL(strstr(log.text, "erase all"));
	CU_ASSERT_PTR_NOT_NULL(strstr(log.text, "dnload block 2 len 1024 at 0x00000800\nmanifest\nmanifest done\n"));
	/* upload: the whole 4 KiB, then a short (empty) block */
	uint8_t up[1024];
	hex("A1 02 00 00 00 00 00 04", setup, 8);
	for (unsigned b = 0; b < 4; b++) {
		setup[2] = (uint8_t)b;
		CU_ASSERT_EQUAL(dfu_model_control(m, setup, up, sizeof up, now), 1024);
		CU_ASSERT_EQUAL(up[0], b < 3 ? b + 1 : 0xff);
	}
	setup[2] = 4;
	CU_ASSERT_EQUAL(dfu_model_control(m, setup, up, sizeof up, now), 0);
	CU_ASSERT_EQUAL(ctl(m, "A1 05 00 00 00 00 01 00", NULL, st, now), 1);
	CU_ASSERT_EQUAL(st[0], DFU_MODEL_IDLE);
	struct dfu_model_info info;
	dfu_model_get_info(m, &info);
	CU_ASSERT_EQUAL(info.left, 0);
	CU_ASSERT_EQUAL(info.writes, 3);
	dfu_model_free(m);

	/* not manifestation tolerant: MANIFEST-WAIT-RESET until a USB reset */
	m = make("dfu:size=4K,attr=0x03,poll=0", &log);
	memset(blk, 7, sizeof blk);
	uint8_t s0[8] = {0x21, 0x01, 0, 0, 0, 0, 0x00, 0x04};
	CU_ASSERT_EQUAL(dfu_model_control(m, s0, blk, sizeof blk, 0), 1024);
	ctl(m, GETSTATUS, NULL, st, 0);
	ctl(m, GETSTATUS, NULL, st, 0);
	CU_ASSERT_EQUAL(ctl(m, "21 01 01 00 00 00 00 00", NULL, NULL, 0), 0);
	ctl(m, GETSTATUS, NULL, st, 0);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, 0), 6);
	CU_ASSERT_EQUAL(st[4], DFU_MODEL_MANIFEST_WAIT_RESET);
	CU_ASSERT_EQUAL(dfu_model_reset(m, 0), 0);
	dfu_model_get_info(m, &info);
	CU_ASSERT_EQUAL(info.left, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(log.text, "leave -> reset"));
	dfu_model_free(m);
}

static void test_faults(void)
{
	struct logbuf log;
	uint8_t st[6];
	struct dfu_model_info info;
	long long now = 0;
	struct dfu_model_faults f;
	char err[256];

	CU_ASSERT_EQUAL(dfu_model_faults_parse(&f, "stall@3+gone@9+errprog@0x100-0x200", err, sizeof err), 0);
	CU_ASSERT_EQUAL(f.stall_req, 3);
	CU_ASSERT_EQUAL(f.gone_after, 9);
	CU_ASSERT_EQUAL(f.prog_lo, 0x100);
	CU_ASSERT_EQUAL(f.prog_hi, 0x200);
	CU_ASSERT_EQUAL(dfu_model_faults_parse(&f, "stall", err, sizeof err), -1);
	CU_ASSERT_EQUAL(dfu_model_faults_parse(&f, "errprog@0x200-0x100", err, sizeof err), -1);

	/* stall request 2 (once), device gone after request 4 */
	struct dfu_model *m = make("dfuse:fault=stall@2+gone@4", &log);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now), 6);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now), -EPIPE);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now), 6);
	CU_ASSERT_EQUAL(st[4], DFU_MODEL_IDLE);   /* a transfer-level stall keeps the state */
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now), 6);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now), -ENODEV);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now), -ENODEV);
	CU_ASSERT_EQUAL(dfu_model_reset(m, now), -ENODEV);
	dfu_model_get_info(m, &info);
	CU_ASSERT_EQUAL(info.gone, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(log.text, "stall (fault, request 2)"));
	dfu_model_free(m);

	/* hang: request 2 and later never complete */
	m = make("dfuse:fault=hang@2", &log);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now), 6);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now), -ETIMEDOUT);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now), -ETIMEDOUT);
	dfu_model_free(m);

	/* errPROG on a range; errVERIFY at manifestation (no leave) */
	m = make("dfuse:poll=1,erase_poll=1,fault=errprog@0x08000800-0x08000900+errverify", &log);
	command(m, "41 00 00 00 08", &now);
	command(m, "21 00 00 00 08", &now);
	write_block(m, 1, &now, st);
	CU_ASSERT_EQUAL(st[0], DFU_MODEL_OK);
	command(m, "21 00 08 00 08", &now);
	write_block(m, 1, &now, st);
	CU_ASSERT_EQUAL(st[0], DFU_MODEL_ERR_PROG);
	CU_ASSERT_EQUAL(st[4], DFU_MODEL_ERROR);
	CU_ASSERT_PTR_NOT_NULL(strstr(log.text, "errPROG at 0x08000800"));
	CU_ASSERT_EQUAL(ctl(m, "21 04 00 00 00 00 00 00", NULL, NULL, now), 0);
	CU_ASSERT_EQUAL(ctl(m, "21 01 02 00 00 00 00 00", NULL, NULL, now), 0);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now), 6);
	CU_ASSERT_EQUAL(st[0], DFU_MODEL_ERR_VERIFY);
	CU_ASSERT_EQUAL(st[4], DFU_MODEL_ERROR);
	dfu_model_get_info(m, &info);
	CU_ASSERT_EQUAL(info.left, 0);
	dfu_model_free(m);

	/* STM32L4: GETSTATUS stalls while the erase runs (twice the reported
	 * poll timeout); a host polling too soon is logged */
	m = make("dfuse:erase_poll=10,fault=stall-erase", &log);
	now = 0;
	CU_ASSERT_EQUAL(ctl(m, CMD5, "41 00 00 00 08", NULL, now), 5);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now), 6);
	CU_ASSERT_EQUAL(st[4], DFU_MODEL_DNBUSY);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now + 10), -EPIPE);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now + 20), 6);
	CU_ASSERT_EQUAL(st[4], DFU_MODEL_DNLOAD_IDLE);
	CU_ASSERT_EQUAL(ctl(m, CMD5, "41 00 40 00 08", NULL, now + 30), 5);
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now + 30), 6);
	dfu_model_set_faults(m, &(struct dfu_model_faults){0});
	CU_ASSERT_EQUAL(ctl(m, GETSTATUS, NULL, st, now + 33), 6);
	dfu_model_get_info(m, &info);
	CU_ASSERT_EQUAL(info.poll_violations, 1);
	CU_ASSERT_EQUAL(info.stalls, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(log.text, "poll timeout violated: GETSTATUS after 3 ms, asked 10 ms"));
	dfu_model_free(m);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("dfu_model", NULL, NULL);
	if (!s)
		return -1;
	if (!CU_add_test(s, "protocol test vectors", test_vectors) ||
	    !CU_add_test(s, "descriptors and config", test_descriptors) ||
	    !CU_add_test(s, "rom and mboot personalities", test_personality) ||
	    !CU_add_test(s, "plain DFU download, manifest, upload", test_plain) ||
	    !CU_add_test(s, "faults", test_faults))
		return -1;
	return 0;
}
