/* CUnit: the raw-REPL byte-level parser and helpers (farm/replproto.c). */
#include <CUnit/CUnit.h>
#include <string.h>

#include "replproto.h"

/* Feed a stream in pieces of `step` bytes; returns total consumed. */
static size_t feed_split(struct farm_replp *p, const char *s, size_t len, size_t step)
{
	size_t used = 0;
	for (size_t off = 0; off < len && p->state != FARM_REPLP_DONE && p->state != FARM_REPLP_BAD;
	     off += step) {
		size_t k = len - off < step ? len - off : step;
		size_t u = farm_replp_feed(p, s + off, k);
		used += u;
		if (u < k)
			break;
	}
	return used;
}

static void test_exec_ok_every_split(void)
{
	static const char stream[] = "OK123\r\n\x04\x04>";
	size_t len = sizeof stream - 1;
	for (size_t step = 1; step <= len; step++) {
		struct farm_replp p = { 0 };
		farm_replp_begin(&p, 1);
		size_t used = feed_split(&p, stream, len, step);
		CU_ASSERT_EQUAL(used, len);
		CU_ASSERT_EQUAL(p.state, FARM_REPLP_DONE);
		CU_ASSERT_EQUAL(p.out.len, 5);
		CU_ASSERT_NSTRING_EQUAL(p.out.data, "123\r\n", 5);
		CU_ASSERT_EQUAL(p.err.len, 0);
		farm_replp_free(&p);
	}
}

static void test_exec_traceback(void)
{
	static const char stream[] = "OK\x04Traceback (most recent call last):\r\n"
				     "  File \"<stdin>\", line 1, in <module>\r\n"
				     "ZeroDivisionError: divide by zero\r\n\x04>";
	struct farm_replp p = { 0 };
	farm_replp_begin(&p, 1);
	farm_replp_feed(&p, stream, sizeof stream - 1);
	CU_ASSERT_EQUAL(p.state, FARM_REPLP_DONE);
	CU_ASSERT_EQUAL(p.out.len, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(p.err.data, "ZeroDivisionError"));
	char type[64];
	farm_repl_exc_type(p.err.data, p.err.len, type, sizeof type);
	CU_ASSERT_STRING_EQUAL(type, "ZeroDivisionError");
	farm_replp_free(&p);
}

static void test_trailing_bytes_not_consumed(void)
{
	/* What follows the prompt belongs to the next exchange. */
	static const char stream[] = "OKx\x04\x04>raw REPL";
	struct farm_replp p = { 0 };
	farm_replp_begin(&p, 1);
	size_t used = farm_replp_feed(&p, stream, sizeof stream - 1);
	CU_ASSERT_EQUAL(used, 6);
	CU_ASSERT_EQUAL(p.state, FARM_REPLP_DONE);
	farm_replp_free(&p);
}

static void test_missing_ok_is_bad(void)
{
	/* A board that rebooted answers with its banner, not OK. */
	static const char stream[] = "MicroPython v1.9.2 on 2017-09-01\r\n>>> ";
	struct farm_replp p = { 0 };
	farm_replp_begin(&p, 1);
	farm_replp_feed(&p, stream, sizeof stream - 1);
	CU_ASSERT_EQUAL(p.state, FARM_REPLP_BAD);
	CU_ASSERT_PTR_NOT_NULL(strstr(p.reason, "OK"));
	farm_replp_free(&p);

	farm_replp_begin(&p, 1);
	farm_replp_feed(&p, "Ox", 2); /* truncated/garbled OK */
	CU_ASSERT_EQUAL(p.state, FARM_REPLP_BAD);
	farm_replp_free(&p);
}

static void test_bad_prompt(void)
{
	struct farm_replp p = { 0 };
	farm_replp_begin(&p, 1);
	farm_replp_feed(&p, "OK\x04\x04?", 5);
	CU_ASSERT_EQUAL(p.state, FARM_REPLP_BAD);
	CU_ASSERT_PTR_NOT_NULL(strstr(p.reason, "0x3f") ? strstr(p.reason, "0x3f") : strstr(p.reason, "'?'"));
	farm_replp_free(&p);
}

static void test_truncated_stays_incomplete(void)
{
	struct farm_replp p = { 0 };
	farm_replp_begin(&p, 1);
	farm_replp_feed(&p, "OKhalf an out", 13);
	CU_ASSERT_EQUAL(p.state, FARM_REPLP_STDOUT);
	farm_replp_feed(&p, "put\x04partial tb", 14);
	CU_ASSERT_EQUAL(p.state, FARM_REPLP_STDERR);
	CU_ASSERT_STRING_EQUAL(p.out.data, "half an output");
	farm_replp_free(&p);
}

static void test_raw_paste_mode_no_ok(void)
{
	struct farm_replp p = { 0 };
	farm_replp_begin(&p, 0);
	static const char stream[] = "123\r\n\x04\x04>";
	farm_replp_feed(&p, stream, sizeof stream - 1);
	CU_ASSERT_EQUAL(p.state, FARM_REPLP_DONE);
	CU_ASSERT_STRING_EQUAL(p.out.data, "123\r\n");
	farm_replp_free(&p);
}

static void test_binary_output_kept(void)
{
	/* Every byte but 04 is payload, including NUL and 0xff. */
	static const char stream[] = "OK\x00\xff\x01\x03\x04\x04>";
	struct farm_replp p = { 0 };
	farm_replp_begin(&p, 1);
	farm_replp_feed(&p, stream, sizeof stream - 1);
	CU_ASSERT_EQUAL(p.state, FARM_REPLP_DONE);
	CU_ASSERT_EQUAL(p.out.len, 4);
	CU_ASSERT_EQUAL((unsigned char)p.out.data[1], 0xff);
	farm_replp_free(&p);
}

static void test_output_bounded(void)
{
	struct farm_replp p = { 0 };
	farm_replp_begin(&p, 1);
	farm_replp_feed(&p, "OK", 2);
	static char chunk[65536];
	memset(chunk, 'x', sizeof chunk);
	for (int i = 0; i < 20; i++) /* 1.25 MiB */
		farm_replp_feed(&p, chunk, sizeof chunk);
	farm_replp_feed(&p, "\x04\x04>", 3);
	CU_ASSERT_EQUAL(p.state, FARM_REPLP_DONE);
	CU_ASSERT_EQUAL(p.out.len, FARM_REPL_OUTPUT_MAX);
	CU_ASSERT_EQUAL(p.dropped, 20 * sizeof chunk - FARM_REPL_OUTPUT_MAX);
	farm_replp_free(&p);
}

static void test_paste_reply(void)
{
	unsigned w = 0;
	size_t used = 0;
	CU_ASSERT_EQUAL(farm_replp_paste_reply("R\x01\x80\x00\x01", 5, &w, &used), 1);
	CU_ASSERT_EQUAL(w, 128);
	CU_ASSERT_EQUAL(used, 5);
	CU_ASSERT_EQUAL(farm_replp_paste_reply("R\x01\x20", 3, &w, &used), -1);
	CU_ASSERT_EQUAL(farm_replp_paste_reply("R\x01\x20\x00\x07", 5, &w, &used), -2);
	CU_ASSERT_EQUAL(farm_replp_paste_reply("R\x00", 2, &w, &used), 0);
	CU_ASSERT_EQUAL(used, 2);
	/* old firmware: "ra" + rest of the banner */
	static const char old[] = "raw REPL; CTRL-B to exit\r\n>";
	CU_ASSERT_EQUAL(farm_replp_paste_reply(old, 10, &w, &used), -1);
	CU_ASSERT_EQUAL(farm_replp_paste_reply(old, sizeof old - 1, &w, &used), 0);
	CU_ASSERT_EQUAL(used, sizeof old - 1);
	CU_ASSERT_EQUAL(farm_replp_paste_reply("ra garbage", 10, &w, &used), -2);
	CU_ASSERT_EQUAL(farm_replp_paste_reply("X", 1, &w, &used), -2);
	CU_ASSERT_EQUAL(farm_replp_paste_reply("", 0, &w, &used), -1);
	CU_ASSERT_EQUAL(farm_replp_paste_reply("R\x01\x00\x00\x01", 5, &w, &used), -2);
}

static void test_exc_type(void)
{
	char t[64];
	farm_repl_exc_type("KeyboardInterrupt: \r\n", 21, t, sizeof t);
	CU_ASSERT_STRING_EQUAL(t, "KeyboardInterrupt");
	farm_repl_exc_type("Traceback\nKeyboardInterrupt\n", 28, t, sizeof t);
	CU_ASSERT_STRING_EQUAL(t, "KeyboardInterrupt");
	farm_repl_exc_type("", 0, t, sizeof t);
	CU_ASSERT_STRING_EQUAL(t, "");
	farm_repl_exc_type("x\nnot an exception line!\n", 25, t, sizeof t);
	CU_ASSERT_STRING_EQUAL(t, "not");
	const char *tb = "Traceback\n  File \"x\"\nucollections.OrderedError: bad\n";
	farm_repl_exc_type(tb, strlen(tb), t, sizeof t);
	CU_ASSERT_STRING_EQUAL(t, "ucollections.OrderedError");
	farm_repl_exc_type("(1, 2): weird\n", 14, t, sizeof t);
	CU_ASSERT_STRING_EQUAL(t, "");
}

static void test_encode_assign(void)
{
	struct farm_buf b = { 0 };
	static const char code[] = "print('a\\b')\n\t\x01\xc3\xa9";
	CU_ASSERT_EQUAL(farm_repl_encode_assign(&b, "_m", code, sizeof code - 1), 0);
	CU_ASSERT_STRING_EQUAL(b.data, "_m=b'print(\\'a\\\\b\\')\\n\\x09\\x01\\xc3\\xa9'");
	for (size_t i = 0; i < b.len; i++)
		CU_ASSERT(b.data[i] >= 0x20 && b.data[i] < 0x7f);
	farm_buf_free(&b);
}

static void test_normalize_eol(void)
{
	char s[] = "a\r\nb\rc\n\r\n";
	size_t n = farm_repl_normalize_eol(s, strlen(s));
	CU_ASSERT_EQUAL(n, 7);
	CU_ASSERT_NSTRING_EQUAL(s, "a\nb\nc\n\n", 7);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("replproto", NULL, NULL);
	if (!s)
		return -1;
	CU_add_test(s, "exec ok, every split", test_exec_ok_every_split);
	CU_add_test(s, "exec traceback", test_exec_traceback);
	CU_add_test(s, "trailing bytes not consumed", test_trailing_bytes_not_consumed);
	CU_add_test(s, "missing OK is malformed", test_missing_ok_is_bad);
	CU_add_test(s, "bad prompt", test_bad_prompt);
	CU_add_test(s, "truncated stays incomplete", test_truncated_stays_incomplete);
	CU_add_test(s, "raw-paste output without OK", test_raw_paste_mode_no_ok);
	CU_add_test(s, "binary output kept", test_binary_output_kept);
	CU_add_test(s, "output bounded", test_output_bounded);
	CU_add_test(s, "raw-paste reply", test_paste_reply);
	CU_add_test(s, "exception type", test_exc_type);
	CU_add_test(s, "paste literal encoding", test_encode_assign);
	CU_add_test(s, "line endings", test_normalize_eol);
	return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
