/* mpfarm: UF2 reader and writer (/work/shared/protocols/uf2.md).
 *
 * A file is a whole number of 512-byte blocks. Blocks come in sequences
 * (blockNo 0..numBlocks-1, in order); a file may hold several sequences one
 * after the other (concatenated UF2 files). Every block's three magics are
 * checked, payload size <= 476 (452 with the MD5 flag), numbering and totals
 * inside each sequence, and a file ending inside a sequence is truncated.
 *
 * Flags: 0x0001 "not main flash" blocks are numbered but their data skipped;
 * 0x1000 file-container blocks are refused (they carry a file for the
 * device's filesystem, not flash contents); 0x2000 family id: every block
 * must agree (all with the same id or all without) -- except the one
 * "absolute" block picotool puts first in RP2350 files as the RP2350-E10
 * workaround (family 0xe48bff57, block 0 of 2 standing alone, 256 bytes of
 * 0xef), which is recognised and skipped. Multi-family files are refused.
 *
 * The writer emits 256-byte payloads at 256-byte aligned addresses (what
 * the RP2040/RP2350 boot ROMs require); bytes of a page the image does not
 * cover are written as 0xff (erased flash). */
#include "image.h"
#include "le.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define BLOCK 512
#define MAX_PAYLOAD 476
#define MD5_PAYLOAD 452 /* the MD5 record occupies data[452..476) */
#define PAGE 256
#define MAGIC0 0x0A324655u
#define MAGIC1 0x9E5D5157u
#define MAGIC_END 0x0AB16F30u
#define FLAG_NOT_MAIN 0x00000001u
#define FLAG_FILE 0x00001000u
#define FLAG_FAMILY 0x00002000u
#define FLAG_MD5 0x00004000u
#define FAMILY_ABSOLUTE 0xE48BFF57u

struct block {
	uint32_t magic0, magic1, flags, addr, size, no, total, family, magic_end;
	const uint8_t *data;
};

static struct block read_block(const uint8_t *p)
{
	struct block b = {
		.magic0 = farm_le32(p), .magic1 = farm_le32(p + 4), .flags = farm_le32(p + 8),
		.addr = farm_le32(p + 12), .size = farm_le32(p + 16), .no = farm_le32(p + 20),
		.total = farm_le32(p + 24), .family = farm_le32(p + 28), .magic_end = farm_le32(p + 508),
		.data = p + 32,
	};
	return b;
}

/* picotool's RP2350-E10 block: absolute family, block 0 of 2, 256 x 0xef,
 * not followed by its block 1. */
static int is_e10_block(const struct block *b, const uint8_t *next, const uint8_t *end)
{
	if (!(b->flags & FLAG_FAMILY) || b->family != FAMILY_ABSOLUTE || b->no != 0 ||
	    b->total != 2 || b->size != PAGE)
		return 0;
	for (unsigned i = 0; i < PAGE; i++)
		if (b->data[i] != 0xef)
			return 0;
	return next >= end || farm_le32(next + 20) != 1;
}

struct reader {
	const char *name;
	size_t index, offset; /* of the current block */
	int in_seq;           /* inside a sequence: expecting block `expect` of `seq_total` */
	uint32_t expect, seq_total;
	int family_known, has_family;
	uint32_t family;
	struct farm_err *e;
};

static int fail(struct reader *r, const char *fmt, ...) FARM_PRINTF(2, 3);
static int fail(struct reader *r, const char *fmt, ...)
{
	char what[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return farm_err_set(r->e, FARM_EINVAL, "%s: block %zu (offset %zu): %s", r->name, r->index,
			    r->offset, what);
}

static int check_header(struct reader *r, const struct block *b)
{
	if (b->magic0 != MAGIC0)
		return fail(r, "bad first magic 0x%08x, expected 0x%08x", b->magic0, MAGIC0);
	if (b->magic1 != MAGIC1)
		return fail(r, "bad second magic 0x%08x, expected 0x%08x", b->magic1, MAGIC1);
	if (b->magic_end != MAGIC_END)
		return fail(r, "bad final magic 0x%08x, expected 0x%08x", b->magic_end, MAGIC_END);
	if (b->flags & FLAG_FILE)
		return fail(r, "file-container block (flags 0x%08x): not a flash image", b->flags);
	if (b->size > MAX_PAYLOAD)
		return fail(r, "payload size %u, at most %u", b->size, MAX_PAYLOAD);
	if ((b->flags & FLAG_MD5) && b->size > MD5_PAYLOAD)
		return fail(r, "payload size %u overlaps the MD5 record (flag 0x4000: at most %u)",
			    b->size, MD5_PAYLOAD);
	return 0;
}

static int check_numbering(struct reader *r, const struct block *b)
{
	if (b->total == 0)
		return fail(r, "total number of blocks is 0");
	if (!r->in_seq) {
		if (b->no != 0)
			return fail(r, "block number %u where a sequence starts (expected 0): "
				       "blocks missing or out of order", b->no);
		r->in_seq = 1;
		r->expect = 0;
		r->seq_total = b->total;
	} else {
		if (b->total != r->seq_total)
			return fail(r, "total number of blocks %u, the sequence started with %u",
				    b->total, r->seq_total);
		if (b->no != r->expect)
			return fail(r, "block number %u, expected %u: blocks missing or out of order",
				    b->no, r->expect);
	}
	if (++r->expect == r->seq_total)
		r->in_seq = 0;
	return 0;
}

static int check_family(struct reader *r, const struct block *b)
{
	int has = (b->flags & FLAG_FAMILY) != 0;
	uint32_t fam = has ? b->family : 0;
	if (!r->family_known) {
		r->family_known = 1;
		r->has_family = has;
		r->family = fam;
		return 0;
	}
	if (has == r->has_family && fam == r->family)
		return 0;
	if (!has)
		return fail(r, "no family id, earlier blocks have 0x%08x", r->family);
	if (!r->has_family)
		return fail(r, "family id 0x%08x, earlier blocks have none", fam);
	return fail(r, "family id 0x%08x, earlier blocks have 0x%08x (multi-family UF2 files are "
		       "not supported)", fam, r->family);
}

int farm_image_parse_uf2(struct farm_image **out, const void *data, size_t len, const char *name,
			 struct farm_err *e)
{
	*out = NULL;
	if (len > FARM_IMAGE_MAX_BYTES)
		return farm_err_set(e, FARM_ELIMIT, "%s: file is %zu bytes, larger than the %u-byte limit",
				    name, len, (unsigned)FARM_IMAGE_MAX_BYTES);
	if (len == 0)
		return farm_err_set(e, FARM_EINVAL, "%s: empty file", name);
	if (len % BLOCK)
		return farm_err_set(e, FARM_EINVAL,
				    "%s: file size %zu is not a multiple of 512 bytes (truncated?)", name, len);
	struct farm_image *img = NULL;
	int rc = farm_image_new(&img, FARM_IMG_UF2, e);
	if (rc)
		return rc;
	const uint8_t *base = data, *end = base + len;
	struct reader r = {.name = name, .e = e};
	for (r.index = 0; r.index < len / BLOCK; r.index++) {
		r.offset = r.index * BLOCK;
		const uint8_t *p = base + r.offset;
		struct block b = read_block(p);
		rc = check_header(&r, &b);
		if (rc)
			goto out;
		if (!r.in_seq && is_e10_block(&b, p + BLOCK, end))
			continue;
		rc = check_numbering(&r, &b);
		if (!rc)
			rc = check_family(&r, &b);
		if (rc)
			goto out;
		if (b.flags & FLAG_NOT_MAIN)
			continue;
		rc = farm_image_add(img, b.addr, b.data, b.size, e);
		if (rc) {
			farm_err_prefix(e, "%s: block %zu (offset %zu)", name, r.index, r.offset);
			goto out;
		}
	}
	if (r.in_seq)
		rc = farm_err_set(e, FARM_EINVAL,
				  "%s: the file ends inside a sequence: block %u of %u is missing (truncated?)",
				  name, r.expect, r.seq_total);
	else if (img->n_segs == 0)
		rc = farm_err_set(e, FARM_EINVAL, "%s: no main-flash data", name);
	img->has_family = r.has_family;
	img->uf2_family = r.family;
out:
	if (rc)
		farm_image_free(img);
	else
		*out = img;
	return rc;
}

/* ---- writer ---- */

static uint32_t page_of(uint32_t addr)
{
	return addr & ~(uint32_t)(PAGE - 1);
}

/* Pages holding image bytes; a page shared by two segments counts once. */
static uint64_t count_pages(const struct farm_image *img)
{
	uint64_t n = 0, last = UINT64_MAX;
	for (size_t s = 0; s < img->n_segs; s++) {
		const struct farm_image_segment *seg = &img->segs[s];
		uint64_t first = page_of(seg->addr), end_page = page_of(seg->addr + seg->len - 1);
		n += (end_page - first) / PAGE + 1;
		if (first == last)
			n--;
		last = end_page;
	}
	return n;
}

/* Fill one page from segment s on (no earlier segment reaches this page). */
static void fill_page(const struct farm_image *img, size_t s, uint32_t page, uint8_t *buf)
{
	memset(buf, 0xff, PAGE);
	for (; s < img->n_segs && img->segs[s].addr < (uint64_t)page + PAGE; s++) {
		const struct farm_image_segment *seg = &img->segs[s];
		uint64_t lo = seg->addr > page ? seg->addr : page;
		uint64_t hi = (uint64_t)seg->addr + seg->len;
		if (hi > (uint64_t)page + PAGE)
			hi = (uint64_t)page + PAGE;
		if (lo < hi)
			memcpy(buf + (lo - page), seg->data + (lo - seg->addr), (size_t)(hi - lo));
	}
}

int farm_image_write_uf2(const struct farm_image *img, uint32_t family, struct farm_buf *out,
			 struct farm_err *e)
{
	if (!img->n_segs)
		return farm_err_set(e, FARM_EINVAL, "UF2 output: the image is empty");
	uint64_t total = count_pages(img);
	uint8_t blk[BLOCK];
	uint32_t no = 0;
	uint64_t last = UINT64_MAX;
	for (size_t s = 0; s < img->n_segs; s++) {
		const struct farm_image_segment *seg = &img->segs[s];
		uint64_t end_page = page_of(seg->addr + seg->len - 1);
		for (uint64_t page = page_of(seg->addr); page <= end_page; page += PAGE) {
			if (page == last)
				continue;
			last = page;
			memset(blk, 0, sizeof blk);
			farm_put_le32(blk, MAGIC0);
			farm_put_le32(blk + 4, MAGIC1);
			farm_put_le32(blk + 8, family ? FLAG_FAMILY : 0);
			farm_put_le32(blk + 12, (uint32_t)page);
			farm_put_le32(blk + 16, PAGE);
			farm_put_le32(blk + 20, no++);
			farm_put_le32(blk + 24, (uint32_t)total);
			farm_put_le32(blk + 28, family);
			fill_page(img, s, (uint32_t)page, blk + 32);
			farm_put_le32(blk + 508, MAGIC_END);
			int rc = farm_buf_append(out, blk, sizeof blk);
			if (rc)
				return farm_err_set(e, rc, "UF2 output: %s", farm_strerror(rc));
		}
	}
	return 0;
}
