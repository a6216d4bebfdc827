/* mpfarm: Intel HEX (records 00-05) reader and writer.
 *
 * Reading follows /work/shared/protocols/intel-hex.md and python-intelhex's
 * checks, with two deliberate differences, both because flashing half an
 * image must never happen:
 *   - the end-of-file record (01) is required: a file without one is
 *     refused as truncated (python-intelhex accepts it);
 *   - a data record whose 16-bit offset would wrap (AAAA + LL > 0x10000) is
 *     refused instead of being wrapped or counted on;
 *   - data placed while both an extended segment (02) and an extended linear
 *     (04) base are non-zero is refused: python-intelhex uses the last of the
 *     two, binutils adds them, so the tools disagree on where it goes.
 * Lines end in "\n" or "\r\n"; empty lines are skipped; hex digits of either
 * case; records after the 01 record are ignored. */
#include "image.h"

#include <stdio.h>
#include <string.h>

#define MAX_DATA 255
#define MAX_LINE (1 + 2 * (5 + MAX_DATA)) /* ':' LL AAAA TT DD*255 CC */

enum rec_type { REC_DATA = 0, REC_EOF, REC_SEGMENT, REC_START_SEGMENT, REC_LINEAR, REC_START_LINEAR };

struct record {
	unsigned len;  /* LL */
	unsigned off;  /* AAAA */
	unsigned type; /* TT */
	uint8_t data[MAX_DATA];
};

/* State of the reader between records. */
struct reader {
	const char *name;
	size_t line;
	uint32_t seg_base, lin_base; /* from the last 02 and the last 04 record */
	int last_linear;             /* the last of them was a 04 record */
	int seen_start; /* a 03 or 05 record was read */
	struct farm_image *img;
	struct farm_err *e;
};

static int fail(struct reader *r, const char *what)
{
	return farm_err_set(r->e, FARM_EINVAL, "%s: line %zu: %s", r->name, r->line, what);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode one non-empty line (without its line end) into rec, checking the
 * digits, the length and the checksum. */
static int decode(struct reader *r, const char *s, size_t n, struct record *rec)
{
	char msg[160];
	if (s[0] != ':') {
		unsigned char c = (unsigned char)s[0];
		if (c >= 0x20 && c < 0x7f)
			snprintf(msg, sizeof msg, "record does not start with ':' (found '%c')", c);
		else
			snprintf(msg, sizeof msg, "record does not start with ':' (found byte 0x%02x)", c);
		return fail(r, msg);
	}
	if (n > MAX_LINE) {
		snprintf(msg, sizeof msg, "record is %zu characters long, at most %d are possible", n,
			 MAX_LINE);
		return fail(r, msg);
	}
	uint8_t bytes[5 + MAX_DATA];
	size_t nb = 0;
	for (size_t i = 1; i < n; i++) {
		int v = hex_value(s[i]);
		if (v < 0) {
			unsigned char c = (unsigned char)s[i];
			if (c >= 0x20 && c < 0x7f)
				snprintf(msg, sizeof msg, "column %zu: '%c' is not a hex digit", i + 1, c);
			else
				snprintf(msg, sizeof msg, "column %zu: byte 0x%02x is not a hex digit", i + 1,
					 c);
			return fail(r, msg);
		}
		if (i % 2)
			bytes[nb] = (uint8_t)(v << 4);
		else
			bytes[nb++] |= (uint8_t)v;
	}
	if ((n - 1) % 2)
		return fail(r, "odd number of hex digits (record truncated?)");
	if (nb < 5)
		return fail(r, "record shorter than its 5-byte header and checksum");
	rec->len = bytes[0];
	if (nb != rec->len + 5u) {
		snprintf(msg, sizeof msg, "byte count 0x%02x (%u) but the record holds %zu data bytes",
			 rec->len, rec->len, nb - 5);
		return fail(r, msg);
	}
	uint8_t sum = 0;
	for (size_t i = 0; i + 1 < nb; i++)
		sum = (uint8_t)(sum + bytes[i]);
	uint8_t want = (uint8_t)(0x100 - sum);
	if (bytes[nb - 1] != want) {
		snprintf(msg, sizeof msg, "checksum 0x%02x, expected 0x%02x", bytes[nb - 1], want);
		return fail(r, msg);
	}
	rec->off = (unsigned)bytes[1] << 8 | bytes[2];
	rec->type = bytes[3];
	memcpy(rec->data, bytes + 4, rec->len);
	return 0;
}

static uint32_t be(const uint8_t *p, unsigned n)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Apply one decoded record; sets *eof on the end-of-file record. */
static int apply(struct reader *r, const struct record *rec, int *eof)
{
	char msg[200];
	static const char *const names[] = {"data", "end-of-file", "extended segment address",
					    "start segment address", "extended linear address",
					    "start linear address"};
	if (rec->type > REC_START_LINEAR) {
		snprintf(msg, sizeof msg, "unknown record type 0x%02x", rec->type);
		return fail(r, msg);
	}
	unsigned want_len = 0;
	switch (rec->type) {
	case REC_DATA: {
		if (rec->off + rec->len > 0x10000) {
			snprintf(msg, sizeof msg,
				 "data record at offset 0x%04x with %u bytes crosses a 64 KiB boundary "
				 "(its 16-bit offset would wrap)",
				 rec->off, rec->len);
			return fail(r, msg);
		}
		uint32_t base = r->last_linear ? r->lin_base : r->seg_base;
		uint32_t other = r->last_linear ? r->seg_base : r->lin_base;
		if (other && rec->len) {
			snprintf(msg, sizeof msg,
				 "data after both a segment base (02: 0x%08x) and a linear base "
				 "(04: 0x%08x): tools disagree on its address (the last base, or their "
				 "sum); refused",
				 r->seg_base, r->lin_base);
			return fail(r, msg);
		}
		int rc = farm_image_add(r->img, base + rec->off, rec->data, rec->len, r->e);
		if (rc)
			farm_err_prefix(r->e, "%s: line %zu", r->name, r->line);
		return rc;
	}
	case REC_EOF:
		if (rec->len != 0)
			return fail(r, "end-of-file record carries data");
		*eof = 1;
		return 0;
	case REC_SEGMENT:
	case REC_LINEAR: want_len = 2; break;
	case REC_START_SEGMENT:
	case REC_START_LINEAR: want_len = 4; break;
	}
	if (rec->len != want_len || rec->off != 0) {
		snprintf(msg, sizeof msg,
			 "%s record (type 0x%02x) must have %u data bytes and offset 0000, has %u and %04x",
			 names[rec->type], rec->type, want_len, rec->len, rec->off);
		return fail(r, msg);
	}
	uint32_t v = be(rec->data, want_len);
	if (rec->type == REC_SEGMENT || rec->type == REC_LINEAR) {
		r->last_linear = rec->type == REC_LINEAR;
		if (r->last_linear)
			r->lin_base = v << 16;
		else
			r->seg_base = v << 4;
		return 0;
	}
	if (r->seen_start)
		return fail(r, "a second start address record");
	r->seen_start = 1;
	r->img->has_entry = 1;
	/* 03: CS:IP, the real-mode address CS * 16 + IP (as binutils reads it). */
	r->img->entry = rec->type == REC_START_SEGMENT ? (v >> 16) * 16 + (v & 0xffff) : v;
	return 0;
}

int farm_image_parse_ihex(struct farm_image **out, const void *data, size_t len, const char *name,
			  struct farm_err *e)
{
	*out = NULL;
	if (len > FARM_IMAGE_MAX_BYTES)
		return farm_err_set(e, FARM_ELIMIT, "%s: file is %zu bytes, larger than the %u-byte limit",
				    name, len, (unsigned)FARM_IMAGE_MAX_BYTES);
	struct reader r = {.name = name, .e = e};
	int rc = farm_image_new(&r.img, FARM_IMG_IHEX, e);
	if (rc)
		return rc;
	const char *p = data, *end = p + len;
	int eof = 0;
	while (!eof && p < end) {
		r.line++;
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = nl ? nl : end;
		const char *next = nl ? nl + 1 : end;
		if (line_end > p && line_end[-1] == '\r')
			line_end--;
		if (line_end > p) {
			struct record rec;
			rc = decode(&r, p, (size_t)(line_end - p), &rec);
			if (!rc)
				rc = apply(&r, &rec, &eof);
			if (rc)
				goto out;
		}
		p = next;
	}
	if (!eof)
		rc = farm_err_set(e, FARM_EINVAL, "%s: no end-of-file record (file truncated?)", name);
	else if (r.img->n_segs == 0)
		rc = farm_err_set(e, FARM_EINVAL, "%s: no data records", name);
out:
	if (rc)
		farm_image_free(r.img);
	else
		*out = r.img;
	return rc;
}

/* ---- writer ---- */

static int put_record(struct farm_buf *out, unsigned type, unsigned off, const uint8_t *d,
		      unsigned n, struct farm_err *e)
{
	static const char digits[] = "0123456789ABCDEF";
	char line[MAX_LINE + 2];
	uint8_t head[4] = {(uint8_t)n, (uint8_t)(off >> 8), (uint8_t)off, (uint8_t)type};
	uint8_t sum = 0;
	size_t k = 0;
	line[k++] = ':';
	for (unsigned i = 0; i < 4 + n; i++) {
		uint8_t b = i < 4 ? head[i] : d[i - 4];
		sum = (uint8_t)(sum + b);
		line[k++] = digits[b >> 4];
		line[k++] = digits[b & 15];
	}
	sum = (uint8_t)(0x100 - sum);
	line[k++] = digits[sum >> 4];
	line[k++] = digits[sum & 15];
	line[k++] = '\n';
	int rc = farm_buf_append(out, line, k);
	if (rc)
		return farm_err_set(e, rc, "Intel HEX output: %s", farm_strerror(rc));
	return 0;
}

int farm_image_write_ihex(const struct farm_image *img, struct farm_buf *out, struct farm_err *e)
{
	if (!img->n_segs)
		return farm_err_set(e, FARM_EINVAL, "Intel HEX output: the image is empty");
	int rc = 0;
	if (img->has_entry) {
		uint8_t d[4] = {(uint8_t)(img->entry >> 24), (uint8_t)(img->entry >> 16),
				(uint8_t)(img->entry >> 8), (uint8_t)img->entry};
		rc = put_record(out, REC_START_LINEAR, 0, d, 4, e);
	}
	uint32_t upper = 0;
	for (size_t s = 0; !rc && s < img->n_segs; s++) {
		const struct farm_image_segment *seg = &img->segs[s];
		for (uint32_t done = 0; !rc && done < seg->len;) {
			uint32_t addr = seg->addr + done;
			if (addr >> 16 != upper) {
				upper = addr >> 16;
				uint8_t d[2] = {(uint8_t)(upper >> 8), (uint8_t)upper};
				rc = put_record(out, REC_LINEAR, 0, d, 2, e);
				if (rc)
					break;
			}
			uint32_t n = seg->len - done;
			uint32_t to_edge = 0x10000 - (addr & 0xffff);
			n = n < 16 ? n : 16;
			n = n < to_edge ? n : to_edge;
			rc = put_record(out, REC_DATA, addr & 0xffff, seg->data + done, n, e);
			done += n;
		}
	}
	if (!rc)
		rc = put_record(out, REC_EOF, 0, NULL, 0, e);
	return rc;
}
