/* CUnit: worker event records (farm/event.c): framing, split reads, truncation, corruption. */
#include <CUnit/CUnit.h>
#include <string.h>

#include "event.h"

static void encode_case(struct farm_buf *b)
{
	struct farm_event_field f[] = {
		{ FARM_F_SUITE, "smoke", 5 }, { FARM_F_NAME, "identity", 8 },
		{ FARM_F_VERDICT, "0", 1 }, { FARM_F_OUTPUT, "a\0\x04z", 4 }, { FARM_F_TYPE, NULL, 0 },
	};
	CU_ASSERT_EQUAL(farm_event_encode(b, FARM_EV_CASE, f, 5), 0);
}

static void test_roundtrip_every_split(void)
{
	struct farm_buf b = { 0 };
	encode_case(&b);
	struct farm_event_field p[] = { { FARM_F_PHASE, "connect", 7 }, { FARM_F_MESSAGE, "", 0 } };
	farm_event_encode(&b, FARM_EV_PHASE, p, 2);
	for (size_t step = 1; step <= b.len; step++) {
		struct farm_event_reader r = { 0 };
		struct farm_event ev;
		int got = 0;
		for (size_t off = 0; off < b.len; off += step) {
			size_t k = b.len - off < step ? b.len - off : step;
			CU_ASSERT_EQUAL(farm_event_feed(&r, b.data + off, k), 0);
			int n;
			while ((n = farm_event_next(&r, &ev)) == 1) {
				if (got == 0) {
					CU_ASSERT_EQUAL(ev.type, FARM_EV_CASE);
					CU_ASSERT_EQUAL(ev.n, 4); /* the NULL field is left out */
					const struct farm_event_field *o = farm_event_get(&ev, FARM_F_OUTPUT);
					CU_ASSERT_PTR_NOT_NULL_FATAL(o);
					CU_ASSERT_EQUAL(o->len, 4);
					CU_ASSERT_EQUAL(memcmp(o->data, "a\0\x04z", 4), 0);
					CU_ASSERT_PTR_NULL(farm_event_get(&ev, FARM_F_TYPE));
				} else {
					CU_ASSERT_EQUAL(ev.type, FARM_EV_PHASE);
					CU_ASSERT_EQUAL(farm_event_get(&ev, FARM_F_MESSAGE)->len, 0);
				}
				got++;
			}
			CU_ASSERT_NOT_EQUAL(n, -1);
		}
		CU_ASSERT_EQUAL(got, 2);
		CU_ASSERT_EQUAL(farm_event_pending(&r), 0);
		farm_event_reader_free(&r);
	}
	farm_buf_free(&b);
}

static void test_truncated_tail(void)
{
	/* a worker that died mid-record: complete records are kept, the tail is pending */
	struct farm_buf b = { 0 };
	encode_case(&b);
	size_t first = b.len;
	encode_case(&b);
	struct farm_event_reader r = { 0 };
	struct farm_event ev;
	farm_event_feed(&r, b.data, b.len - 3);
	CU_ASSERT_EQUAL(farm_event_next(&r, &ev), 1);
	CU_ASSERT_EQUAL(farm_event_next(&r, &ev), 0);
	CU_ASSERT_EQUAL(farm_event_pending(&r), b.len - 3 - first);
	farm_event_reader_free(&r);
	farm_buf_free(&b);
}

static void test_corrupt(void)
{
	struct farm_buf b = { 0 };
	encode_case(&b);
	struct farm_event_reader r = { 0 };
	struct farm_event ev;
	b.data[0] ^= 0xff; /* bad magic */
	farm_event_feed(&r, b.data, b.len);
	CU_ASSERT_EQUAL(farm_event_next(&r, &ev), -1);
	CU_ASSERT_EQUAL(farm_event_next(&r, &ev), -1); /* stays corrupt */
	farm_event_reader_free(&r);

	/* a field longer than its record */
	b.data[0] ^= 0xff;
	b.data[12 + 2] = 0x7f;
	struct farm_event_reader r2 = { 0 };
	farm_event_feed(&r2, b.data, b.len);
	CU_ASSERT_EQUAL(farm_event_next(&r2, &ev), -1);
	farm_event_reader_free(&r2);

	/* an oversized length is refused before waiting for it */
	unsigned char huge[12] = { 0x4d, 0x50, 0x46, 0x45, 1, 0, 4, 0, 0xff, 0xff, 0xff, 0x7f };
	struct farm_event_reader r3 = { 0 };
	farm_event_feed(&r3, huge, sizeof huge);
	CU_ASSERT_EQUAL(farm_event_next(&r3, &ev), -1);
	farm_event_reader_free(&r3);
	farm_buf_free(&b);
}

static void test_unknown_type_and_tags_kept_readable(void)
{
	struct farm_buf b = { 0 };
	struct farm_event_field f[] = { { 999, "x", 1 }, { FARM_F_NAME, "n", 1 } };
	farm_event_encode(&b, 77, f, 2);
	struct farm_event_reader r = { 0 };
	struct farm_event ev;
	farm_event_feed(&r, b.data, b.len);
	CU_ASSERT_EQUAL(farm_event_next(&r, &ev), 1);
	CU_ASSERT_EQUAL(ev.type, 77);
	CU_ASSERT_PTR_NOT_NULL(farm_event_get(&ev, FARM_F_NAME));
	farm_event_reader_free(&r);
	farm_buf_free(&b);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("event", NULL, NULL);
	if (!s)
		return -1;
	CU_add_test(s, "round trip, every split", test_roundtrip_every_split);
	CU_add_test(s, "truncated tail", test_truncated_tail);
	CU_add_test(s, "corrupt streams", test_corrupt);
	CU_add_test(s, "unknown types and tags", test_unknown_type_and_tags_kept_readable);
	return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
