/* CUnit: the GDB Remote Serial Protocol client (farm/rsp.c, farm/rsp_proto.c).
 * The pure helpers against the test vectors of shared/protocols/gdb-rsp-flash.md,
 * the memory-map parser against good and hostile XML, and the client against a
 * scripted peer (a fake transport that answers each packet from a table). */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rsp.h"

/* ---------------------------------------------------------------- helpers */

static int framed_is(const char *data, size_t len, const char *want)
{
	struct farm_buf b = { 0 };
	int ok = farm_rsp_frame(&b, data, len) == 0 && b.len == strlen(want) && !memcmp(b.data, want, b.len);
	if (!ok)
		fprintf(stderr, "\nframe: got '%s', want '%s'\n", b.data ? b.data : "(null)", want);
	farm_buf_free(&b);
	return ok;
}

#define FRAMED(s, want) CU_ASSERT(framed_is((s), strlen(s), (want)))

/* ------------------------------------------------------------ framing */

static void test_frame_vectors(void)
{
	FRAMED("qSupported", "$qSupported#37");
	FRAMED("OK", "$OK#9a");
	FRAMED("QStartNoAckMode", "$QStartNoAckMode#b0");
	FRAMED("vFlashDone", "$vFlashDone#ea");
	FRAMED("?", "$?#3f");
	FRAMED("E01", "$E01#a6");
	FRAMED("E.memtype", "$E.memtype#74");
	FRAMED("vAttach;1", "$vAttach;1#37");
	FRAMED("T05", "$T05#b9");
	FRAMED("", "$#00");
	FRAMED("vFlashErase:08000000,4000", "$vFlashErase:08000000,4000#06");
	FRAMED("qXfer:memory-map:read::0,7ff", "$qXfer:memory-map:read::0,7ff#ed");
	FRAMED("l<memory-map/>", "$l<memory-map/>#19");
	FRAMED("X20000000,0:", "$X20000000,0:#70");
	FRAMED("M20000000,4:01020304", "$M20000000,4:01020304#f3");
	FRAMED("m8000000,4", "$m8000000,4#25");
	FRAMED("qRcmd,7265736574", "$qRcmd,7265736574#37");
	FRAMED("qRcmd,72657365742068616c74", "$qRcmd,72657365742068616c74#72");
	FRAMED("qRcmd,73797374656d5f7265736574", "$qRcmd,73797374656d5f7265736574#86");
	FRAMED("qRcmd,7377645f7363616e", "$qRcmd,7377645f7363616e#d5");
	FRAMED("qCRC:8000000,4", "$qCRC:8000000,4#3b");
	FRAMED("C793737cd", "$C793737cd#4e");
}

static const unsigned char vflash_data[] = { 0x01, 0x23, 0x24, 0x7D, 0x2A, 0xFF };
static const unsigned char vflash_wire[] = {
	0x24, 0x76, 0x46, 0x6C, 0x61, 0x73, 0x68, 0x57, 0x72, 0x69, 0x74, 0x65, 0x3A, 0x38, 0x30, 0x30, 0x30,
	0x30, 0x30, 0x30, 0x3A, 0x01, 0x7D, 0x03, 0x7D, 0x04, 0x7D, 0x5D, 0x7D, 0x0A, 0xFF, 0x23, 0x39, 0x64,
};

static void test_escape_vflashwrite_wire(void)
{
	struct farm_buf body = { 0 }, wire = { 0 };
	CU_ASSERT_EQUAL(farm_buf_puts(&body, "vFlashWrite:8000000:"), 0);
	CU_ASSERT_EQUAL(farm_rsp_escape(&body, vflash_data, sizeof vflash_data), 0);
	CU_ASSERT_EQUAL(farm_rsp_frame(&wire, body.data, body.len), 0);
	CU_ASSERT_EQUAL(wire.len, sizeof vflash_wire);
	CU_ASSERT(wire.len == sizeof vflash_wire && !memcmp(wire.data, vflash_wire, wire.len));
	farm_buf_free(&body);
	farm_buf_free(&wire);
}

static void test_escape_all_specials(void)
{
	struct farm_buf b = { 0 };
	const unsigned char in[] = { '#', '$', '}', '*', 'a', 0x00, 0x03, 0x7e };
	CU_ASSERT_EQUAL(farm_rsp_escape(&b, in, sizeof in), 0);
	const char want[] = "}\x03}\x04}]}\x0a" "a\x00\x03\x7e";
	CU_ASSERT_EQUAL(b.len, sizeof want - 1);
	CU_ASSERT(b.len == sizeof want - 1 && !memcmp(b.data, want, b.len));
	/* and back */
	struct farm_buf d = { 0 };
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(farm_rsp_decode(&d, b.data, b.len, &e), 0);
	CU_ASSERT(d.len == sizeof in && !memcmp(d.data, in, sizeof in));
	farm_buf_free(&b);
	farm_buf_free(&d);
}

static int decodes_to(const char *in, size_t inlen, const char *want, size_t wantlen)
{
	struct farm_buf d = { 0 };
	struct farm_err e = { 0 };
	int ok = farm_rsp_decode(&d, in, inlen, &e) == 0 && d.len == wantlen &&
		 (wantlen == 0 || !memcmp(d.data, want, wantlen));
	farm_buf_free(&d);
	return ok;
}

static int decode_code(const char *in, size_t inlen, struct farm_err *e)
{
	struct farm_buf d = { 0 };
	int rc = farm_rsp_decode(&d, in, inlen, e);
	farm_buf_free(&d);
	return rc;
}

static void test_decode_rle(void)
{
	CU_ASSERT(decodes_to("0* ", 3, "0000", 4));
	CU_ASSERT(decodes_to("12* 3", 5, "122223", 6));
	CU_ASSERT(decodes_to("x*\x1e", 3, "xx", 2));     /* count 30: one repeat (GDB's minimum) */
	CU_ASSERT(decodes_to("0*\"", 3, "000000", 6)); /* '"' = 34: five more */
	char many[100];
	memset(many, 'f', sizeof many);
	CU_ASSERT(decodes_to("f*~", 3, many, 1 + 126 - 29));
	/* an escaped byte next to a run */
	CU_ASSERT(decodes_to("}\x03" "a* ", 5, "#aaaa", 5));
	CU_ASSERT(decodes_to("", 0, "", 0));
}

static void test_decode_bad(void)
{
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL(decode_code("abc}", 4, &e), FARM_EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "dangling"));
	CU_ASSERT_EQUAL(decode_code("*  ", 3, &e), FARM_EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "nothing to repeat"));
	CU_ASSERT_EQUAL(decode_code("ab*", 3, &e), FARM_EPROTO);
	CU_ASSERT_EQUAL(decode_code("a*\x10", 3, &e), FARM_EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "bad run length"));
	/* A bomb: each "*~" adds 97 bytes; 4000 of them exceed the reply bound. */
	size_t n = 1 + 2 * 4000;
	char *bomb = malloc(n);
	bomb[0] = '0';
	for (size_t i = 1; i < n; i += 2)
		bomb[i] = '*', bomb[i + 1] = '~';
	CU_ASSERT_EQUAL(decode_code(bomb, n, &e), FARM_ELIMIT);
	free(bomb);
}

static void test_crc_vectors(void)
{
	const unsigned char v[] = { 1, 2, 3, 4 };
	CU_ASSERT_EQUAL(farm_rsp_crc32(0xffffffff, v, 4), 0x793737CDu);
	CU_ASSERT_EQUAL(farm_rsp_crc32(0xffffffff, "123456789", 9), 0x0376E6E7u);
	uint32_t c = farm_rsp_crc32(0xffffffff, "1234", 4);
	CU_ASSERT_EQUAL(farm_rsp_crc32(c, "56789", 5), 0x0376E6E7u);
	CU_ASSERT_EQUAL(farm_rsp_crc32(0xffffffff, "", 0), 0xffffffffu);
}

/* ------------------------------------------------------------ memory map */

static const char stm32f4_map[] =
	"<?xml version=\"1.0\"?>\n"
	"<!DOCTYPE memory-map PUBLIC \"+//IDN gnu.org//DTD GDB Memory Map V1.0//EN\" "
	"\"http://sourceware.org/gdb/gdb-memory-map.dtd\">\n"
	"<memory-map>\n"
	"<memory type=\"ram\" start=\"0x00000000\" length=\"0x08000000\"/>\n"
	"<memory type=\"flash\" start=\"0x08000000\" length=\"0x10000\">\n"
	"<property name=\"blocksize\">0x4000</property>\n"
	"</memory>\n"
	"<memory type=\"flash\" start=\"0x08010000\" length=\"0x10000\">\n"
	"<property name=\"blocksize\">0x10000</property>\n"
	"</memory>\n"
	"<memory type=\"flash\" start=\"0x08020000\" length=\"0xe0000\">\n"
	"<property name=\"blocksize\">0x20000</property>\n"
	"</memory>\n"
	"<memory type=\"ram\" start=\"0x08100000\" length=\"0xf7f00000\"/>\n"
	"</memory-map>\n";

static int parse_map(const char *xml, size_t len, struct farm_rsp_region *r, size_t max, size_t *n,
		     struct farm_err *e)
{
	return farm_rsp_parse_memory_map(xml, len, r, max, n, e);
}

static void test_map_stm32f4(void)
{
	struct farm_rsp_region r[FARM_RSP_MAX_REGIONS];
	size_t n = 0;
	struct farm_err e = { 0 };
	int rc = parse_map(stm32f4_map, strlen(stm32f4_map), r, FARM_RSP_MAX_REGIONS, &n, &e);
	CU_ASSERT_EQUAL(rc, 0);
	if (rc)
		fprintf(stderr, "\n%s\n", e.msg);
	CU_ASSERT_EQUAL(n, 5);
	if (n != 5)
		return;
	CU_ASSERT(r[0].is_ram && r[0].start == 0 && r[0].length == 0x08000000);
	CU_ASSERT(r[1].is_flash && r[1].start == 0x08000000 && r[1].length == 0x10000 && r[1].blocksize == 0x4000);
	CU_ASSERT(r[2].is_flash && r[2].start == 0x08010000 && r[2].blocksize == 0x10000);
	CU_ASSERT(r[3].is_flash && r[3].start == 0x08020000 && r[3].length == 0xe0000 &&
		  r[3].blocksize == 0x20000);
	CU_ASSERT(r[4].is_ram && r[4].start == 0x08100000 && r[4].length == 0xf7f00000);
	CU_ASSERT(!r[1].is_ram && !r[1].is_rom && r[0].blocksize == 0);
}

static void test_map_variants(void)
{
	struct farm_rsp_region r[8];
	size_t n = 9;
	struct farm_err e = { 0 };
	/* empty root */
	CU_ASSERT_EQUAL(parse_map("<memory-map/>", 13, r, 8, &n, &e), 0);
	CU_ASSERT_EQUAL(n, 0);
	/* single quotes, comments, whitespace, decimal and octal numbers, unknown
	 * elements and properties, out of order, trailing NUL */
	static const char v[] =
		"<!-- by hand -->\n<memory-map >\n"
		"  <memory type='flash' start='0x10000' length='65536'>\n"
		"    <!-- one sector size -->\n"
		"    <property name='erase-value'>0xff</property>\n"
		"    <property name = \"blocksize\" > 1024 </property>\n"
		"    <vendor><nested a='1'/></vendor>\n"
		"  </memory>\n"
		"  <memory type=\"rom\" start=\"0\" length=\"010\"/>\n"
		"  <unknown/>\n"
		"</memory-map>\n";
	n = 0;
	int rc = parse_map(v, sizeof v, r, 8, &n, &e); /* sizeof: the NUL comes along */
	CU_ASSERT_EQUAL(rc, 0);
	if (rc)
		fprintf(stderr, "\n%s\n", e.msg);
	CU_ASSERT_EQUAL(n, 2);
	if (n == 2) {
		CU_ASSERT(r[0].is_rom && r[0].start == 0 && r[0].length == 8);
		CU_ASSERT(r[1].is_flash && r[1].start == 0x10000 && r[1].length == 0x10000 &&
			  r[1].blocksize == 1024);
	}
	/* regions above 4 GiB are dropped, crossing ones clipped */
	static const char big[] = "<memory-map><memory type='ram' start='0x100000000' length='0x1000'/>"
				  "<memory type='ram' start='0xfffff000' length='0x10000'/></memory-map>";
	n = 0;
	CU_ASSERT_EQUAL(parse_map(big, strlen(big), r, 8, &n, &e), 0);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT(n == 1 && r[0].start == 0xfffff000 && r[0].length == 0x1000);
}

static void expect_bad_map(const char *xml, int want_rc, const char *want_msg)
{
	struct farm_rsp_region r[4];
	size_t n = 0;
	struct farm_err e = { 0 };
	int rc = parse_map(xml, strlen(xml), r, 4, &n, &e);
	CU_ASSERT_EQUAL(rc, want_rc);
	if (rc != want_rc || (want_msg && !strstr(e.msg, want_msg)))
		fprintf(stderr, "\nmap %.40s...: rc %d msg '%s' (want %d '%s')\n", xml, rc, e.msg, want_rc,
			want_msg ? want_msg : "");
	if (want_msg)
		CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, want_msg));
}

static void test_map_hostile(void)
{
	expect_bad_map("", FARM_EPROTO, "expected <memory-map>");
	expect_bad_map("<memory-map>", FARM_EPROTO, "unterminated");
	expect_bad_map("<memory-map><memory type=\"flash\" start=\"0\" length=\"0x400\">", FARM_EPROTO,
		       "unterminated");
	expect_bad_map("<memory-map><memory type=\"ram", FARM_EPROTO, "unterminated");
	expect_bad_map("<memory-map><!-- x", FARM_EPROTO, "unterminated comment");
	expect_bad_map("<!DOCTYPE memory-map [ <!ENTITY x 'y'> ", FARM_EPROTO, "DOCTYPE");
	expect_bad_map("<memory-map><memory type='ram' start='0x1ffffffffffffffff' length='1'/></memory-map>",
		       FARM_EPROTO, "bad start");
	expect_bad_map("<memory-map><memory type='ram' start='0' length='99999999999999999999999'/></memory-map>",
		       FARM_EPROTO, "bad length");
	expect_bad_map("<memory-map><memory type='ram' start='0xffffffffffffffff' length='2'/></memory-map>",
		       FARM_EPROTO, "wraps");
	expect_bad_map("<memory-map><memory type='flash' start='0' length='0x400'/></memory-map>", FARM_EPROTO,
		       "blocksize");
	expect_bad_map("<memory-map><memory type='flash' start='0' length='0x400'>"
		       "<property name='blocksize'>zero</property></memory></memory-map>",
		       FARM_EPROTO, "bad blocksize");
	expect_bad_map("<memory-map><memory type='eeprom' start='0' length='1'/></memory-map>", FARM_EPROTO,
		       "unknown memory type");
	expect_bad_map("<memory-map><memory start='0' length='1'/></memory-map>", FARM_EPROTO, "needs type");
	expect_bad_map("<memory-map><memory type=ram start='0' length='1'/></memory-map>", FARM_EPROTO,
		       "quotes");
	expect_bad_map("<memory-map><memory type='ram' start='0' length='0x100'/>"
		       "<memory type='ram' start='0x80' length='0x100'/></memory-map>",
		       FARM_EPROTO, "overlap");
	expect_bad_map("<memory-map></memory>", FARM_EPROTO, "mismatched");
	expect_bad_map("<target/>", FARM_EPROTO, "not <memory-map>");
	expect_bad_map("<memory-map/><memory-map/>", FARM_EPROTO, "after </memory-map>");
	expect_bad_map("<memory-map><memory type='ram' start='0' length='0'/></memory-map>", FARM_EPROTO,
		       "zero length");
	expect_bad_map("<memory-map><memory a='1' b='1' c='1' d='1' e='1' f='1' g='1' h='1' i='1'/></memory-map>",
		       FARM_EPROTO, "attributes");
	/* the offending element is quoted */
	expect_bad_map("<memory-map>\n<memory type=\"flash\" start=\"0x8000000\" length=\"0x1000\"/></memory-map>",
		       FARM_EPROTO, "<memory type=\"flash\" start=\"0x8000000\"");

	/* too many regions */
	struct farm_buf b = { 0 };
	farm_buf_puts(&b, "<memory-map>");
	for (int i = 0; i < 5; i++)
		farm_buf_printf(&b, "<memory type='ram' start='0x%x' length='0x10'/>", i * 0x10);
	farm_buf_puts(&b, "</memory-map>");
	expect_bad_map(b.data, FARM_ELIMIT, "more than 4 regions");
	farm_buf_free(&b);

	/* nesting bomb inside an unknown element */
	farm_buf_puts(&b, "<memory-map>");
	for (int i = 0; i < 200; i++)
		farm_buf_puts(&b, "<a>");
	expect_bad_map(b.data, FARM_EPROTO, "nested too deeply");
	farm_buf_free(&b);
}

static void test_map_every_truncation(void)
{
	/* Every proper prefix of a valid map is an error, never a crash or a hang. */
	size_t len = strlen(stm32f4_map);
	size_t end_of_root = (size_t)(strstr(stm32f4_map, "</memory-map>") - stm32f4_map) + 13;
	for (size_t k = 0; k < end_of_root; k++) {
		struct farm_rsp_region r[FARM_RSP_MAX_REGIONS];
		size_t n = 0;
		struct farm_err e = { 0 };
		char *copy = malloc(k + 1); /* exact size: ASan sees any overread */
		memcpy(copy, stm32f4_map, k);
		int rc = parse_map(copy, k, r, FARM_RSP_MAX_REGIONS, &n, &e);
		if (rc == 0)
			fprintf(stderr, "\nprefix of %zu bytes accepted\n", k);
		CU_ASSERT_NOT_EQUAL(rc, 0);
		free(copy);
	}
	(void)len;
}

static void test_map_fuzz(void)
{
	/* Random mutations of a valid map: any result, but no crash (ASan/UBSan). */
	size_t len = strlen(stm32f4_map);
	unsigned seed = 12345;
	char *m = malloc(len);
	for (int round = 0; round < 3000; round++) {
		memcpy(m, stm32f4_map, len);
		for (int k = 0; k < 1 + round % 8; k++) {
			seed = seed * 1103515245u + 12345u;
			size_t at = (seed >> 8) % len;
			seed = seed * 1103515245u + 12345u;
			m[at] = (char)("<>/='\"x0 !-?[]"[(seed >> 8) % 14]);
		}
		struct farm_rsp_region r[FARM_RSP_MAX_REGIONS];
		size_t n = 0;
		struct farm_err e = { 0 };
		int rc = parse_map(m, len, r, FARM_RSP_MAX_REGIONS, &n, &e);
		CU_ASSERT(rc == 0 || rc == FARM_EPROTO || rc == FARM_ELIMIT);
		CU_ASSERT(n <= FARM_RSP_MAX_REGIONS);
	}
	free(m);
}

/* ------------------------------------------------- a scripted GDB server */

struct step {
	const char *expect; /* the packet data must start with this (NULL: any) */
	const char *reply;  /* "$data#" gets its checksum added; "#!" a wrong one */
	int close;          /* close the connection instead of answering */
};

struct fake {
	struct farm_transport base;
	const struct step *steps;
	size_t n_steps, next;
	int auto_ok;           /* answer "+$OK" once the script is used up */
	int closed;
	size_t read_chunk;     /* bytes per read (0: all there is) */
	struct farm_buf written;
	size_t scan;
	struct farm_buf in;
	size_t in_pos;
	char *packets[1024];   /* data of each packet the client sent */
	size_t packet_len[1024];
	size_t n_packets;
	size_t frame_max;      /* longest frame seen, $ to checksum */
	int n_plus, n_minus, n_intr;
	char mismatch[256];
	volatile sig_atomic_t *cancel_when_idle; /* set when the client waits for nothing */
};

static void expand(struct farm_buf *out, const char *t)
{
	unsigned sum = 0;
	int in_packet = 0;
	for (const char *p = t; *p; p++) {
		if (*p == '$' || *p == '%') { /* a new start restarts the sum, as a receiver does */
			in_packet = 1;
			sum = 0;
			farm_buf_append(out, p, 1);
		} else if (in_packet && *p == '#') {
			in_packet = 0;
			int wrong = p[1] == '!';
			if (wrong)
				p++;
			farm_buf_printf(out, "#%02x", (sum + (unsigned)wrong) & 0xff);
		} else {
			if (in_packet)
				sum += (unsigned char)*p;
			farm_buf_append(out, p, 1);
		}
	}
}

static void fake_trigger(struct fake *f, const char *data, size_t len)
{
	if (f->next < f->n_steps) {
		const struct step *s = &f->steps[f->next++];
		if (s->expect && (len < strlen(s->expect) || memcmp(data, s->expect, strlen(s->expect))))
			snprintf(f->mismatch, sizeof f->mismatch, "step %zu: got '%.*s', want '%s'", f->next,
				 (int)(len > 60 ? 60 : len), data, s->expect);
		if (s->close)
			f->closed = 1;
		else if (s->reply)
			expand(&f->in, s->reply);
	} else if (f->auto_ok || (len == 1 && data[0] == 'D')) {
		farm_buf_puts(&f->in, "+$OK#9a");
	}
}

static int fake_write(struct farm_transport *t, const void *buf, size_t len, int timeout_ms,
		      struct farm_err *e)
{
	struct fake *f = (struct fake *)t;
	(void)timeout_ms;
	if (f->closed)
		return farm_err_set(e, FARM_ECLOSED, "closed");
	farm_buf_append(&f->written, buf, len);
	while (f->scan < f->written.len) {
		const char *s = f->written.data + f->scan;
		size_t left = f->written.len - f->scan;
		if (s[0] == '+') {
			f->n_plus++, f->scan++;
		} else if (s[0] == '-') {
			f->n_minus++, f->scan++;
		} else if (s[0] == 0x03) {
			f->n_intr++, f->scan++;
			fake_trigger(f, "\x03", 1);
		} else if (s[0] == '$') {
			const char *h = memchr(s, '#', left);
			if (!h || (size_t)(h - s) + 3 > left)
				break;
			size_t dl = (size_t)(h - s) - 1;
			if (f->n_packets < 1024) {
				f->packets[f->n_packets] = malloc(dl + 1);
				memcpy(f->packets[f->n_packets], s + 1, dl);
				f->packets[f->n_packets][dl] = '\0';
				f->packet_len[f->n_packets++] = dl;
			}
			if (dl + 4 > f->frame_max)
				f->frame_max = dl + 4;
			f->scan += dl + 4;
			fake_trigger(f, s + 1, dl);
		} else {
			f->scan++;
		}
	}
	return 0;
}

static int fake_read(struct farm_transport *t, void *buf, size_t len, size_t *got, int timeout_ms,
		     struct farm_err *e)
{
	struct fake *f = (struct fake *)t;
	*got = 0;
	if (f->in_pos < f->in.len) {
		size_t n = f->in.len - f->in_pos;
		if (n > len)
			n = len;
		if (f->read_chunk && n > f->read_chunk)
			n = f->read_chunk;
		memcpy(buf, f->in.data + f->in_pos, n);
		f->in_pos += n;
		*got = n;
		return 0;
	}
	if (f->closed)
		return farm_err_set(e, FARM_ECLOSED, "closed");
	if (f->cancel_when_idle)
		*f->cancel_when_idle = 1;
	usleep((useconds_t)(timeout_ms < 5 ? timeout_ms : 5) * 1000);
	return 0;
}

static void fake_close(struct farm_transport *t)
{
	(void)t; /* the test owns the fake and inspects it afterwards */
}

static const struct farm_transport_ops fake_ops = {
	.name = "fake",
	.read = fake_read,
	.write = fake_write,
	.close = fake_close,
};

static void fake_init(struct fake *f, const struct step *steps, size_t n)
{
	memset(f, 0, sizeof *f);
	f->base.ops = &fake_ops;
	memcpy(f->base.url, "fake://peer", 12);
	f->steps = steps;
	f->n_steps = n;
}

static void fake_free(struct fake *f)
{
	for (size_t i = 0; i < f->n_packets; i++)
		free(f->packets[i]);
	farm_buf_free(&f->written);
	farm_buf_free(&f->in);
}

/* The written bytes contain this frame (data given without framing). */
static int wrote_frame(const struct fake *f, const char *data, size_t len)
{
	struct farm_buf w = { 0 };
	farm_rsp_frame(&w, data, len);
	int found = memmem(f->written.data, f->written.len, w.data, w.len) != NULL;
	farm_buf_free(&w);
	return found;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A server like QEMU: ack mode, PacketSize 0x1000, no map. */
#define PLAIN_OPEN                                               \
	{ "qSupported", "+$PacketSize=1000;qXfer:features:read+#", 0 }, \
	{ "?", "+$T05thread:01;#", 0 }

static int open_fake(struct fake *f, struct farm_rsp **r, struct farm_err *e)
{
	int rc = farm_rsp_open(r, &f->base, 500, NULL, e);
	if (rc)
		fprintf(stderr, "\nopen: %s\n", e->msg);
	return rc;
}

static void test_client_open_openocd(void)
{
	static const struct step steps[] = {
		{ "qSupported", "+$PacketSize=4000;qXfer:memory-map:read+;qXfer:features:read-;QStartNoAckMode+#", 0 },
		{ "QStartNoAckMode", "+$OK#", 0 },
		{ "?", "$S05#", 0 },
		{ "qXfer:memory-map:read::0,", "$m<memory-map><memory type=\"flash\" start=\"0x0\" length=\"0x40000\">#", 0 },
		{ "qXfer:memory-map:read::3e,", "$l<property name=\"blocksize\">0x400</property></memory></memory-map>#", 0 },
		{ "D", "$OK#", 0 },
	};
	struct fake f;
	fake_init(&f, steps, N(steps));
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	const struct farm_rsp_info *in = farm_rsp_info(r);
	CU_ASSERT_EQUAL(in->packet_size, 0x4000);
	CU_ASSERT_EQUAL(in->no_ack, 1);
	CU_ASSERT_EQUAL(in->has_memory_map, 1);
	CU_ASSERT_EQUAL(in->has_x, -1);
	CU_ASSERT_EQUAL(in->has_qcrc, -1);
	CU_ASSERT_EQUAL(in->n_regions, 1);
	CU_ASSERT(in->regions[0].is_flash && in->regions[0].length == 0x40000 && in->regions[0].blocksize == 0x400);
	int plus_before = f.n_plus;
	farm_rsp_close(r);
	CU_ASSERT_EQUAL(f.next, N(steps)); /* detached */
	CU_ASSERT_EQUAL(f.n_plus, plus_before); /* no acks in no-ack mode */
	CU_ASSERT_EQUAL(f.n_plus, 2);           /* qSupported and QStartNoAckMode replies */
	CU_ASSERT_STRING_EQUAL(f.mismatch, "");
	CU_ASSERT(wrote_frame(&f, "qSupported", 10));
	fake_free(&f);
}

static void test_client_unsolicited_stop(void)
{
	/* QEMU halts a running VM when a client connects and says so at once,
	 * before anything was asked (seen after gdb-multiarch had disconnected). */
	static const struct step steps[] = {
		{ "qSupported", "+$PacketSize=1000;qXfer:features:read+#", 0 },
		{ "?", "+$T05thread:p01.01;#", 0 },
	};
	struct fake f;
	fake_init(&f, steps, N(steps));
	expand(&f.in, "$T02thread:p01.01;#");
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	CU_ASSERT_EQUAL(farm_rsp_info(r)->packet_size, 0x1000);
	CU_ASSERT_STRING_EQUAL(f.mismatch, "");
	farm_rsp_close(r);
	fake_free(&f);
}

static void test_client_detach_multiprocess(void)
{
	/* QEMU stays in multiprocess mode after a GDB session and refuses a plain D. */
	static const struct step steps[] = {
		PLAIN_OPEN,
		{ "D", "+$E22#", 0 },
		{ "D;1", "+$OK#", 0 },
	};
	struct fake f;
	fake_init(&f, steps, N(steps));
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	farm_rsp_close(r);
	CU_ASSERT_EQUAL(f.next, N(steps));
	CU_ASSERT(wrote_frame(&f, "D;1", 3));
	CU_ASSERT_STRING_EQUAL(f.mismatch, "");
	fake_free(&f);
}

static void test_client_vflash_wire(void)
{
	static const struct step steps[] = {
		PLAIN_OPEN,
		{ "vFlashErase:8000000,400", "+$OK#", 0 },
		{ "vFlashWrite:8000000:", "+$OK#", 0 },
		{ "vFlashDone", "+$OK#", 0 },
	};
	struct fake f;
	fake_init(&f, steps, N(steps));
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	CU_ASSERT_EQUAL(farm_rsp_info(r)->packet_size, 0x1000);
	CU_ASSERT_EQUAL(farm_rsp_info(r)->no_ack, 0);
	CU_ASSERT_EQUAL(farm_rsp_flash_erase(r, 0x8000000, 0x400, &e), 0);
	CU_ASSERT_EQUAL(farm_rsp_flash_write(r, 0x8000000, vflash_data, sizeof vflash_data, NULL, NULL, &e), 0);
	CU_ASSERT_EQUAL(farm_rsp_flash_done(r, 1000, &e), 0);
	CU_ASSERT_PTR_NOT_NULL(memmem(f.written.data, f.written.len, vflash_wire, sizeof vflash_wire));
	CU_ASSERT_STRING_EQUAL(f.mismatch, "");
	CU_ASSERT_EQUAL(f.n_plus, 5); /* every reply acknowledged */
	farm_rsp_close(r);
	fake_free(&f);
}

static void test_client_monitor(void)
{
	static const struct step steps[] = {
		PLAIN_OPEN,
		{ "qRcmd,7265736574", "+$O52657365#$O7474696e670a#$OK#", 0 },
		{ "qRcmd,72657365742068616c74", "+$E01#", 0 },
		{ "qRcmd,73797374656d5f7265736574", "+$#", 0 },
		{ "qRcmd,7377645f7363616e", "+$4f4b0a#", 0 }, /* pyOCD style: the output as the reply */
		{ "qRcmd,78", "+$Onot hex#", 0 },
	};
	struct fake f;
	fake_init(&f, steps, N(steps));
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	struct farm_buf out = { 0 };
	CU_ASSERT_EQUAL(farm_rsp_monitor(r, "reset", &out, &e), 0);
	CU_ASSERT_STRING_EQUAL(out.data, "Resetting\n");
	CU_ASSERT(wrote_frame(&f, "qRcmd,7265736574", 16));
	CU_ASSERT_EQUAL(farm_rsp_monitor(r, "reset halt", &out, &e), FARM_EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "monitor command 'reset halt' failed: E01"));
	CU_ASSERT(wrote_frame(&f, "qRcmd,72657365742068616c74", 26));
	CU_ASSERT_EQUAL(farm_rsp_monitor(r, "system_reset", NULL, &e), FARM_EUNSUPPORTED);
	farm_buf_reset(&out);
	CU_ASSERT_EQUAL(farm_rsp_monitor(r, "swd_scan", &out, &e), 0);
	CU_ASSERT_STRING_EQUAL(out.data, "OK\n");
	CU_ASSERT_EQUAL(farm_rsp_monitor(r, "x", &out, &e), FARM_EPROTO);
	CU_ASSERT_STRING_EQUAL(f.mismatch, "");
	farm_buf_free(&out);
	farm_rsp_close(r);
	fake_free(&f);
}

static void test_client_qcrc(void)
{
	static const struct step steps[] = {
		PLAIN_OPEN,
		{ "qCRC:8000000,4", "+$C793737cd#", 0 },
		{ "qCRC:0,4", "+$E03#", 0 },
	};
	struct fake f;
	fake_init(&f, steps, N(steps));
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	uint32_t crc = 0;
	CU_ASSERT_EQUAL(farm_rsp_crc(r, 0x8000000, 4, &crc, &e), 0);
	CU_ASSERT_EQUAL(crc, 0x793737CDu);
	CU_ASSERT_EQUAL(farm_rsp_info(r)->has_qcrc, 1);
	CU_ASSERT(wrote_frame(&f, "qCRC:8000000,4", 14));
	CU_ASSERT_EQUAL(farm_rsp_crc(r, 0, 4, &crc, &e), FARM_EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "qCRC at 0x00000000 (4 bytes): E03"));
	farm_rsp_close(r);
	fake_free(&f);

	/* no qCRC: learnt once, then no more packets */
	static const struct step none[] = { PLAIN_OPEN, { "qCRC:0,400", "+$#", 0 } };
	fake_init(&f, none, N(none));
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	CU_ASSERT_EQUAL(farm_rsp_crc(r, 0, 0x400, &crc, &e), FARM_EUNSUPPORTED);
	CU_ASSERT_EQUAL(farm_rsp_info(r)->has_qcrc, 0);
	size_t sent = f.n_packets;
	CU_ASSERT_EQUAL(farm_rsp_crc(r, 0, 0x400, &crc, &e), FARM_EUNSUPPORTED);
	CU_ASSERT_EQUAL(f.n_packets, sent);
	farm_rsp_close(r);
	fake_free(&f);
}

static void test_client_x_probe_then_m(void)
{
	static const struct step steps[] = {
		PLAIN_OPEN,
		{ "X20000000,0:", "+$#", 0 },
		{ "M20000000,4:01020304", "+$OK#", 0 },
		{ "m8000000,4", "+$0* 1234#", 0 }, /* run-length encoded reply */
		{ "m20000000,4", "+$0102#", 0 },    /* short read: two bytes */
		{ "m20000002,2", "+$0304#", 0 },
		{ "m0,2", "+$E22#", 0 },
		{ "m0,2", "+$0g12#", 0 },
	};
	struct fake f;
	fake_init(&f, steps, N(steps));
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	const unsigned char d[] = { 1, 2, 3, 4 };
	CU_ASSERT_EQUAL(farm_rsp_write_mem(r, 0x20000000, d, 4, NULL, NULL, &e), 0);
	CU_ASSERT_EQUAL(farm_rsp_info(r)->has_x, 0);
	CU_ASSERT(wrote_frame(&f, "X20000000,0:", 12));
	CU_ASSERT(wrote_frame(&f, "M20000000,4:01020304", 20));
	unsigned char got[4];
	CU_ASSERT_EQUAL(farm_rsp_read_mem(r, 0x8000000, got, 4, NULL, NULL, &e), 0);
	CU_ASSERT(got[0] == 0 && got[1] == 0 && got[2] == 0x12 && got[3] == 0x34);
	CU_ASSERT(wrote_frame(&f, "m8000000,4", 10));
	CU_ASSERT_EQUAL(farm_rsp_read_mem(r, 0x20000000, got, 4, NULL, NULL, &e), 0);
	CU_ASSERT(!memcmp(got, d, 4));
	CU_ASSERT_EQUAL(farm_rsp_read_mem(r, 0, got, 2, NULL, NULL, &e), FARM_EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "GDB server fake://peer: m at 0x00000000 (2 bytes): E22"));
	CU_ASSERT_EQUAL(farm_rsp_read_mem(r, 0, got, 2, NULL, NULL, &e), FARM_EPROTO);
	CU_ASSERT_STRING_EQUAL(f.mismatch, "");
	farm_rsp_close(r);
	fake_free(&f);
}

/* Reassemble the data of X/M/vFlashWrite packets and check sizes. */
static void check_chunks(struct fake *f, size_t first, const char *prefix, const unsigned char *want,
			 size_t want_len, uint32_t addr, unsigned packet_size)
{
	size_t pos = 0;
	for (size_t i = first; i < f->n_packets; i++) {
		const char *p = f->packets[i];
		size_t pl = f->packet_len[i];
		size_t hl = strlen(prefix);
		if (pl < hl || memcmp(p, prefix, hl))
			continue;
		CU_ASSERT(pl + 4 <= packet_size);
		char *end;
		unsigned long a = strtoul(p + hl, &end, 16);
		CU_ASSERT_EQUAL(a, addr + pos);
		const char *colon = memchr(p + hl, ':', pl - hl);
		CU_ASSERT_PTR_NOT_NULL_FATAL(colon);
		size_t bl = pl - (size_t)(colon + 1 - p);
		struct farm_buf d = { 0 };
		struct farm_err e = { 0 };
		if (prefix[0] == 'M') {
			for (size_t k = 0; k + 1 < bl; k += 2) {
				char h[3] = { colon[1 + k], colon[2 + k], 0 };
				unsigned char c = (unsigned char)strtoul(h, NULL, 16);
				farm_buf_append(&d, &c, 1);
			}
		} else {
			CU_ASSERT_EQUAL(farm_rsp_decode(&d, colon + 1, bl, &e), 0);
		}
		if (prefix[0] != 'v') {
			unsigned long n = strtoul(end + 1, NULL, 16);
			CU_ASSERT_EQUAL(n, d.len);
		}
		CU_ASSERT(pos + d.len <= want_len);
		if (d.len && pos + d.len <= want_len)
			CU_ASSERT(!memcmp(want + pos, d.data, d.len));
		pos += d.len;
		farm_buf_free(&d);
	}
	CU_ASSERT_EQUAL(pos, want_len);
}

static void progress_count(void *p, uint64_t done, uint64_t total)
{
	uint64_t *last = p;
	CU_ASSERT(done > last[0] && done <= total);
	last[0] = done;
	last[1] = total;
}

static void test_client_chunking(void)
{
	static const struct step steps[] = {
		{ "qSupported", "+$PacketSize=100#", 0 },
		{ "?", "+$S05#", 0 },
		{ "X1000,0:", "+$OK#", 0 },
	};
	struct fake f;
	fake_init(&f, steps, N(steps));
	f.auto_ok = 1;
	f.read_chunk = 3; /* the replies dribble in */
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	size_t len = 3000;
	unsigned char *d = malloc(len);
	for (size_t i = 0; i < len; i++)
		d[i] = (i % 3) ? (unsigned char)"#$}*"[i % 4] : (unsigned char)i;
	uint64_t prog[2] = { 0, 0 };
	size_t first = f.n_packets;
	CU_ASSERT_EQUAL(farm_rsp_write_mem(r, 0x1000, d, len, progress_count, prog, &e), 0);
	CU_ASSERT_EQUAL(farm_rsp_info(r)->has_x, 1);
	CU_ASSERT(prog[0] == len && prog[1] == len);
	check_chunks(&f, first, "X", d, len, 0x1000, 0x100);
	first = f.n_packets;
	CU_ASSERT_EQUAL(farm_rsp_flash_write(r, 0x8000000, d, len, NULL, NULL, &e), 0);
	check_chunks(&f, first, "vFlashWrite:", d, len, 0x8000000, 0x100);
	CU_ASSERT(f.frame_max <= 0x100);
	CU_ASSERT(f.frame_max >= 0x100 - 3); /* and the packets are as large as allowed */
	farm_rsp_close(r);
	fake_free(&f);

	/* M packets: hex, as large as fits */
	static const struct step msteps[] = {
		{ "qSupported", "+$PacketSize=100#", 0 },
		{ "?", "+$S05#", 0 },
		{ "X1000,0:", "+$#", 0 },
	};
	fake_init(&f, msteps, N(msteps));
	f.auto_ok = 1;
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	first = f.n_packets;
	CU_ASSERT_EQUAL(farm_rsp_write_mem(r, 0x1000, d, len, NULL, NULL, &e), 0);
	check_chunks(&f, first, "M", d, len, 0x1000, 0x100);
	CU_ASSERT(f.frame_max <= 0x100 && f.frame_max >= 0x100 - 4);
	farm_rsp_close(r);
	fake_free(&f);
	free(d);
}

static void test_client_nak_resend(void)
{
	static const struct step steps[] = {
		PLAIN_OPEN,
		{ "vFlashDone", "-", 0 },
		{ "vFlashDone", "-", 0 },
		{ "vFlashDone", "+$OK#", 0 },
		{ "vFlashDone", "----", 0 },
		{ "vFlashDone", NULL, 0 },
		{ "vFlashDone", NULL, 0 },
		{ "vFlashDone", NULL, 0 },
	};
	struct fake f;
	fake_init(&f, steps, N(steps));
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	size_t before = f.n_packets;
	CU_ASSERT_EQUAL(farm_rsp_flash_done(r, 1000, &e), 0);
	CU_ASSERT_EQUAL(f.n_packets - before, 3); /* sent, resent twice */
	CU_ASSERT_EQUAL(farm_rsp_flash_done(r, 1000, &e), FARM_EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "vFlashDone rejected 4 times"));
	CU_ASSERT_STRING_EQUAL(f.mismatch, "");
	farm_rsp_close(r);
	fake_free(&f);
}

static void test_client_bad_checksum_reply(void)
{
	static const struct step steps[] = {
		PLAIN_OPEN,
		{ "vFlashErase:0,400", "+$OK#!$OK#", 0 },             /* corrupt, then resent */
		{ "vFlashErase:400,400", "+$OK#!$OK#!$OK#!$OK#!", 0 }, /* never good */
	};
	struct fake f;
	fake_init(&f, steps, N(steps));
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	CU_ASSERT_EQUAL(farm_rsp_flash_erase(r, 0, 0x400, &e), 0);
	CU_ASSERT_EQUAL(f.n_minus, 1);
	CU_ASSERT_EQUAL(farm_rsp_flash_erase(r, 0x400, 0x400, &e), FARM_EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "bad checksum in the reply to vFlashErase at 0x00000400"));
	/* out of step now: later calls fail at once */
	CU_ASSERT_EQUAL(farm_rsp_flash_done(r, 1000, &e), FARM_EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "unusable"));
	farm_rsp_close(r);
	fake_free(&f);
}

static void test_client_noise(void)
{
	/* Stray acks, garbage, a notification, a restarted packet, an upper-case checksum. */
	static const struct step steps[] = {
		{ "qSupported", "++junk\r\n+$PacketSize=400#", 0 },
		{ "?", "+%Stop:T05thread:01;#$S0$S05#", 0 },
		{ "vFlashDone", NULL, 0 },
	};
	struct fake f;
	fake_init(&f, steps, N(steps));
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	CU_ASSERT_EQUAL(farm_rsp_info(r)->packet_size, 0x400);
	farm_buf_puts(&f.in, "+$OK#9A"); /* upper case */
	CU_ASSERT_EQUAL(farm_rsp_flash_done(r, 1000, &e), 0);
	farm_rsp_close(r);
	fake_free(&f);
}

static void test_client_dropped_ack(void)
{
	/* The '+' is lost but the reply arrives: that is an acknowledgement too. */
	static const struct step steps[] = {
		PLAIN_OPEN,
		{ "vFlashDone", "$OK#", 0 },
	};
	struct fake f;
	fake_init(&f, steps, N(steps));
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	CU_ASSERT_EQUAL(farm_rsp_flash_done(r, 1000, &e), 0);
	farm_rsp_close(r);
	fake_free(&f);
}

static void test_client_errors_name_the_packet(void)
{
	static const struct step steps[] = {
		PLAIN_OPEN,
		{ "vFlashWrite:8000:", "+$E.memtype#", 0 },
		{ "vFlashWrite:8000000:", NULL, 1 }, /* the server goes away */
	};
	struct fake f;
	fake_init(&f, steps, N(steps));
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	unsigned char d[1024];
	memset(d, 0x55, sizeof d);
	CU_ASSERT_EQUAL(farm_rsp_flash_write(r, 0x8000, d, sizeof d, NULL, NULL, &e), FARM_EIO);
	CU_ASSERT_STRING_EQUAL(e.msg, "GDB server fake://peer: vFlashWrite at 0x00008000 (1024 bytes): E.memtype");
	CU_ASSERT_EQUAL(farm_rsp_flash_write(r, 0x8000000, d, 16, NULL, NULL, &e), FARM_ECLOSED);
	CU_ASSERT_STRING_EQUAL(e.msg, "GDB server fake://peer closed the connection during vFlashWrite at 0x08000000 (16 bytes)");
	CU_ASSERT_EQUAL(farm_rsp_flash_done(r, 1000, &e), FARM_EIO);
	farm_rsp_close(r); /* no detach attempted on a dead connection */
	fake_free(&f);
}

static void test_client_timeout(void)
{
	static const struct step steps[] = {
		PLAIN_OPEN,
		{ "vFlashDone", NULL, 0 },  /* silence */
	};
	struct fake f;
	fake_init(&f, steps, N(steps));
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	long long t0 = farm_now_ms();
	CU_ASSERT_EQUAL(farm_rsp_flash_done(r, 300, &e), FARM_ETIMEDOUT);
	long long took = farm_now_ms() - t0;
	CU_ASSERT(took >= 290 && took < 1000);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "no acknowledgement of vFlashDone within 300 ms"));
	farm_rsp_close(r);
	fake_free(&f);
}

static void test_client_cancel(void)
{
	static const struct step steps[] = { PLAIN_OPEN, { "vFlashDone", NULL, 0 } };
	struct fake f;
	fake_init(&f, steps, N(steps));
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	volatile sig_atomic_t cancel = 0;
	CU_ASSERT_EQUAL_FATAL(farm_rsp_open(&r, &f.base, 5000, &cancel, &e), 0);
	cancel = 1;
	long long t0 = farm_now_ms();
	CU_ASSERT_EQUAL(farm_rsp_flash_done(r, 5000, &e), FARM_EINTR);
	CU_ASSERT(farm_now_ms() - t0 < 1000);
	farm_rsp_close(r);
	fake_free(&f);

	/* cancelled while waiting for a reply that does not come */
	fake_init(&f, steps, N(steps));
	cancel = 0;
	CU_ASSERT_EQUAL_FATAL(farm_rsp_open(&r, &f.base, 5000, &cancel, &e), 0);
	f.cancel_when_idle = &cancel;
	t0 = farm_now_ms();
	CU_ASSERT_EQUAL(farm_rsp_flash_done(r, 5000, &e), FARM_EINTR);
	CU_ASSERT(farm_now_ms() - t0 < 1000);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "interrupted during vFlashDone"));
	farm_rsp_close(r);
	fake_free(&f);
}

static void test_client_hostile_replies(void)
{
	/* A body that never ends: refused at the bound, no unbounded allocation. */
	struct farm_buf huge = { 0 };
	farm_buf_puts(&huge, "+$");
	char chunk[4096];
	memset(chunk, 'a', sizeof chunk);
	while (huge.len < FARM_RSP_MAX_PACKET + 10000)
		farm_buf_append(&huge, chunk, sizeof chunk);
	static const struct step steps[] = { PLAIN_OPEN, { "vFlashDone", NULL, 0 } };
	struct fake f;
	fake_init(&f, steps, N(steps));
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	farm_buf_append(&f.in, huge.data, huge.len);
	CU_ASSERT_EQUAL(farm_rsp_flash_done(r, 5000, &e), FARM_ELIMIT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "longer than"));
	farm_rsp_close(r);
	fake_free(&f);
	farm_buf_free(&huge);

	/* Console output without end. */
	struct farm_buf flood = { 0 };
	farm_buf_puts(&flood, "+");
	char line[2001];
	memset(line, '4', 2000);
	line[2000] = 0;
	for (int i = 0; i < 300; i++)
		farm_buf_printf(&flood, "$O%s#", line);
	struct step mon[] = { PLAIN_OPEN, { "qRcmd", NULL, 0 } };
	struct farm_buf expanded = { 0 };
	expand(&expanded, flood.data);
	fake_init(&f, mon, N(mon));
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	farm_buf_append(&f.in, expanded.data, expanded.len);
	struct farm_buf out = { 0 };
	CU_ASSERT_EQUAL(farm_rsp_monitor(r, "reset", &out, &e), FARM_ELIMIT);
	CU_ASSERT(out.len <= FARM_RSP_MAX_PACKET + 1000);
	farm_buf_free(&out);
	farm_buf_free(&flood);
	farm_buf_free(&expanded);
	farm_rsp_close(r);
	fake_free(&f);

	/* Empty console packets without end. */
	struct farm_buf empties = { 0 };
	for (unsigned i = 0; i < FARM_RSP_MAX_PACKET + 10; i++)
		farm_buf_puts(&empties, "$O#4f");
	fake_init(&f, mon, N(mon));
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	farm_buf_append(&f.in, empties.data, empties.len);
	CU_ASSERT_EQUAL(farm_rsp_monitor(r, "reset", NULL, &e), FARM_ELIMIT);
	farm_buf_free(&empties);
	farm_rsp_close(r);
	fake_free(&f);

	/* A memory map that promises more but sends nothing. */
	static const struct step mm[] = {
		{ "qSupported", "+$PacketSize=400;qXfer:memory-map:read+#", 0 },
		{ "?", "+$S05#", 0 },
		{ "qXfer:memory-map:read::0,", "+$m#", 0 },
	};
	fake_init(&f, mm, N(mm));
	CU_ASSERT_EQUAL(farm_rsp_open(&r, &f.base, 500, NULL, &e), FARM_EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "empty 'm' chunk"));
	fake_free(&f);

	/* A memory map refused (BMP before attach) is not an error. */
	static const struct step mr[] = {
		{ "qSupported", "+$PacketSize=400;qXfer:memory-map:read+#", 0 },
		{ "?", "+$W00#", 0 },
		{ "qXfer:memory-map:read::0,", "+$E01#", 0 },
	};
	fake_init(&f, mr, N(mr));
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	CU_ASSERT_EQUAL(farm_rsp_info(r)->n_regions, 0);
	farm_rsp_close(r);
	fake_free(&f);

	/* A malformed memory map fails the open, naming the element. */
	static const struct step mb[] = {
		{ "qSupported", "+$PacketSize=400;qXfer:memory-map:read+#", 0 },
		{ "?", "+$S05#", 0 },
		{ "qXfer:memory-map:read::0,", "+$l<memory-map><memory type='flash' start='0' length='1'/></memory-map>#", 0 },
	};
	fake_init(&f, mb, N(mb));
	CU_ASSERT_EQUAL(farm_rsp_open(&r, &f.base, 500, NULL, &e), FARM_EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "blocksize"));
	fake_free(&f);

	/* A liveness check answered with nonsense. */
	static const struct step bad_q[] = { { "qSupported", "+$#", 0 }, { "?", "+$OK#", 0 } };
	fake_init(&f, bad_q, N(bad_q));
	CU_ASSERT_EQUAL(farm_rsp_open(&r, &f.base, 500, NULL, &e), FARM_EPROTO);
	fake_free(&f);
}

static void test_client_interrupt(void)
{
	static const struct step steps[] = {
		PLAIN_OPEN,
		{ "\x03", "$O48690a#$T02thread:01;#", 0 }, /* a running target stops */
		{ "\x03", NULL, 0 },                       /* a halted one says nothing (QEMU) */
		{ "?", "+$T05thread:01;#", 0 },
	};
	struct fake f;
	fake_init(&f, steps, N(steps));
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	CU_ASSERT_EQUAL(farm_rsp_interrupt(r, &e), 0);
	farm_rsp_set_timeout(r, 200);
	CU_ASSERT_EQUAL(farm_rsp_interrupt(r, &e), 0);
	CU_ASSERT_EQUAL(f.n_intr, 2);
	CU_ASSERT_STRING_EQUAL(f.mismatch, "");
	farm_rsp_close(r);
	fake_free(&f);
}

struct logged {
	size_t r, w;
};

static void count_log(void *p, char dir, const char *data, size_t len)
{
	struct logged *l = p;
	(void)data;
	if (dir == 'r')
		l->r += len;
	else
		l->w += len;
}

static void test_client_request_and_log(void)
{
	static const struct step steps[] = { PLAIN_OPEN, { "vAttach;1", "+$T05#", 0 } };
	struct fake f;
	fake_init(&f, steps, N(steps));
	struct farm_rsp *r = NULL;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(open_fake(&f, &r, &e), 0);
	struct logged l = { 0, 0 };
	farm_rsp_set_log(r, count_log, &l);
	struct farm_buf reply = { 0 };
	farm_buf_puts(&reply, "stale");
	CU_ASSERT_EQUAL(farm_rsp_request(r, "vAttach;1", 9, &reply, &e), 0);
	CU_ASSERT_STRING_EQUAL(reply.data, "T05");
	CU_ASSERT(wrote_frame(&f, "vAttach;1", 9));
	CU_ASSERT_EQUAL(l.w, strlen("$vAttach;1#37") + 1); /* the packet and our '+' */
	CU_ASSERT_EQUAL(l.r, strlen("+$T05#b9"));
	farm_buf_free(&reply);
	farm_rsp_close(r);
	fake_free(&f);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("rsp_proto", NULL, NULL);
	if (!s)
		return -1;
	if (!CU_add_test(s, "frame vectors", test_frame_vectors) ||
	    !CU_add_test(s, "vFlashWrite wire bytes", test_escape_vflashwrite_wire) ||
	    !CU_add_test(s, "escape all specials", test_escape_all_specials) ||
	    !CU_add_test(s, "decode RLE", test_decode_rle) ||
	    !CU_add_test(s, "decode bad input", test_decode_bad) ||
	    !CU_add_test(s, "CRC vectors", test_crc_vectors) ||
	    !CU_add_test(s, "memory map STM32F4", test_map_stm32f4) ||
	    !CU_add_test(s, "memory map variants", test_map_variants) ||
	    !CU_add_test(s, "memory map hostile", test_map_hostile) ||
	    !CU_add_test(s, "memory map truncations", test_map_every_truncation) ||
	    !CU_add_test(s, "memory map fuzz", test_map_fuzz))
		return -1;
	CU_pSuite c = CU_add_suite("rsp_client", NULL, NULL);
	if (!c)
		return -1;
	if (!CU_add_test(c, "open OpenOCD-like", test_client_open_openocd) ||
	    !CU_add_test(c, "unsolicited stop at connect", test_client_unsolicited_stop) ||
	    !CU_add_test(c, "detach in multiprocess mode", test_client_detach_multiprocess) ||
	    !CU_add_test(c, "vFlash wire", test_client_vflash_wire) ||
	    !CU_add_test(c, "monitor", test_client_monitor) ||
	    !CU_add_test(c, "qCRC", test_client_qcrc) ||
	    !CU_add_test(c, "X probe then M, m reads", test_client_x_probe_then_m) ||
	    !CU_add_test(c, "chunking to PacketSize", test_client_chunking) ||
	    !CU_add_test(c, "nak resend", test_client_nak_resend) ||
	    !CU_add_test(c, "bad checksum reply", test_client_bad_checksum_reply) ||
	    !CU_add_test(c, "noise", test_client_noise) ||
	    !CU_add_test(c, "dropped ack", test_client_dropped_ack) ||
	    !CU_add_test(c, "errors name the packet", test_client_errors_name_the_packet) ||
	    !CU_add_test(c, "timeout", test_client_timeout) ||
	    !CU_add_test(c, "cancel", test_client_cancel) ||
	    !CU_add_test(c, "hostile replies", test_client_hostile_replies) ||
	    !CU_add_test(c, "interrupt", test_client_interrupt) ||
	    !CU_add_test(c, "request and log", test_client_request_and_log))
		return -1;
	return 0;
}
