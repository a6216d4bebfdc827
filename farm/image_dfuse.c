/* mpfarm: ST DfuSe container reader and writer
 * (/work/shared/protocols/dfu-dfuse.md, UM0391 layout as dfu-util reads it).
 *
 *   prefix   "DfuSe" u8 version(1) u32 image size (file without suffix) u8 targets
 *   target   "Target" u8 alt u32 named char name[255] u32 size u32 elements
 *   element  u32 address u32 size data[size]
 *   suffix   u16 bcdDevice u16 idProduct u16 idVendor u16 bcdDFU(0x011a)
 *            "UFD" u8 length(16) u32 CRC
 *
 * The CRC is CRC-32 (reflected, 0xEDB88320, init 0xffffffff, no final xor)
 * over everything but itself. Everything is little-endian. Only files with
 * exactly one target are accepted: several targets address several
 * alternate settings (memories) of the device, which one image cannot
 * describe. The target size must equal its elements, and nothing may follow
 * the last element but the suffix. */
#include "image.h"
#include "le.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PREFIX_LEN 11
#define TARGET_LEN 274
#define ELEMENT_HEAD 8
#define SUFFIX_LEN 16
#define NAME_LEN 255
#define BCD_DFUSE 0x011a

/* dfu-util's CRC: reflected CRC-32 without the final inversion. */
static uint32_t dfu_crc(const uint8_t *p, size_t n)
{
	uint32_t table[256];
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		table[i] = c;
	}
	uint32_t crc = 0xffffffffu;
	for (size_t i = 0; i < n; i++)
		crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return crc;
}

static int fail(struct farm_err *e, const char *name, const char *fmt, ...) FARM_PRINTF(3, 4);
static int fail(struct farm_err *e, const char *name, const char *fmt, ...)
{
	char what[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return farm_err_set(e, FARM_EINVAL, "%s: %s", name, what);
}

/* The suffix and the prefix: everything but the targets. */
static int check_frame(const uint8_t *p, size_t len, const char *name, struct farm_image *img,
		       struct farm_err *e)
{
	if (len >= 5 && memcmp(p, "DfuSe", 5) != 0)
		return fail(e, name, "no \"DfuSe\" prefix (a plain DFU file has no addresses)");
	if (len < PREFIX_LEN + SUFFIX_LEN)
		return fail(e, name, "%zu bytes: too short for a DfuSe file (truncated?)", len);
	const uint8_t *suf = p + len - SUFFIX_LEN;
	if (memcmp(suf + 8, "UFD", 3) != 0)
		return fail(e, name, "no DFU suffix: \"UFD\" signature missing at offset %zu (truncated?)",
			    len - 8);
	if (suf[11] != SUFFIX_LEN)
		return fail(e, name, "DFU suffix length %u, expected %u", suf[11], SUFFIX_LEN);
	uint32_t crc = dfu_crc(p, len - 4), stored = farm_le32(suf + 12);
	if (crc != stored)
		return fail(e, name, "DFU suffix CRC 0x%08x, computed 0x%08x (file corrupted?)", stored,
			    crc);
	if (farm_le16(suf + 6) != BCD_DFUSE)
		return fail(e, name, "bcdDFU 0x%04x in the suffix, expected 0x%04x for DfuSe",
			    farm_le16(suf + 6), BCD_DFUSE);
	if (p[5] != 1)
		return fail(e, name, "DfuSe version %u, expected 1", p[5]);
	if (farm_le32(p + 6) != len - SUFFIX_LEN)
		return fail(e, name, "image size %u in the prefix, but the file holds %zu bytes before "
				     "its suffix", farm_le32(p + 6), len - SUFFIX_LEN);
	if (p[10] == 0)
		return fail(e, name, "no targets");
	if (p[10] > 1)
		return fail(e, name, "%u targets (alternate settings): several targets are not supported",
			    p[10]);
	img->has_dfuse = 1;
	img->dfu_bcd = (uint16_t)farm_le16(suf);
	img->dfu_pid = (uint16_t)farm_le16(suf + 2);
	img->dfu_vid = (uint16_t)farm_le16(suf + 4);
	return 0;
}

/* The name as text: up to its NUL, at most 254 characters (the writer
 * always leaves a NUL in the 255-byte field), non-printable bytes as '?'. */
static void copy_name(char *dst, const uint8_t *src)
{
	size_t i = 0;
	for (; i < NAME_LEN - 1 && src[i]; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? (char)src[i] : '?';
	dst[i] = '\0';
}

static int read_target(const uint8_t *p, size_t len, const char *name, struct farm_image *img,
		       struct farm_err *e)
{
	size_t body_end = len - SUFFIX_LEN, off = PREFIX_LEN;
	if (body_end - off < TARGET_LEN)
		return fail(e, name, "target 0 (offset %zu): the target prefix runs past the end of the "
				     "image (%zu bytes before the suffix)", off, body_end);
	const uint8_t *t = p + off;
	if (memcmp(t, "Target", 6) != 0)
		return fail(e, name, "target 0 (offset %zu): no \"Target\" signature", off);
	img->dfuse_alt = t[6];
	if (farm_le32(t + 7))
		copy_name(img->dfuse_target_name, t + 11);
	uint32_t size = farm_le32(t + 266), n = farm_le32(t + 270);
	off += TARGET_LEN;
	if (n > (body_end - off) / ELEMENT_HEAD)
		return fail(e, name, "target 0: %u elements cannot fit in the %zu bytes left", n,
			    body_end - off);
	size_t start = off;
	for (uint32_t k = 0; k < n; k++) {
		if (body_end - off < ELEMENT_HEAD)
			return fail(e, name, "target 0 element %u (offset %zu): element header runs past "
					     "the end of the image (%zu bytes before the suffix)",
				    k, off, body_end);
		uint32_t addr = farm_le32(p + off), esize = farm_le32(p + off + 4);
		if (esize > len - off - ELEMENT_HEAD)
			return fail(e, name, "target 0 element %u (offset %zu): size %u runs past the end "
					     "of the file (%zu bytes)", k, off, esize, len);
		if (esize > body_end - off - ELEMENT_HEAD)
			return fail(e, name, "target 0 element %u (offset %zu): size %u runs into the DFU "
					     "suffix at offset %zu", k, off, esize, body_end);
		int rc = farm_image_add(img, addr, p + off + ELEMENT_HEAD, esize, e);
		if (rc) {
			farm_err_prefix(e, "%s: target 0 element %u (offset %zu)", name, k, off);
			return rc;
		}
		off += ELEMENT_HEAD + (size_t)esize;
	}
	if (off - start != size)
		return fail(e, name, "target 0: target size %u, but its %u elements take %zu bytes", size,
			    n, off - start);
	if (off != body_end)
		return fail(e, name, "%zu unexpected bytes after the last target (offset %zu)",
			    body_end - off, off);
	return 0;
}

int farm_image_parse_dfuse(struct farm_image **out, const void *data, size_t len, const char *name,
			   struct farm_err *e)
{
	*out = NULL;
	if (len > FARM_IMAGE_MAX_BYTES)
		return farm_err_set(e, FARM_ELIMIT, "%s: file is %zu bytes, larger than the %u-byte limit",
				    name, len, (unsigned)FARM_IMAGE_MAX_BYTES);
	struct farm_image *img = NULL;
	int rc = farm_image_new(&img, FARM_IMG_DFUSE, e);
	if (rc)
		return rc;
	rc = check_frame(data, len, name, img, e);
	if (!rc)
		rc = read_target(data, len, name, img, e);
	if (!rc && img->n_segs == 0)
		rc = fail(e, name, "no data in any element");
	if (rc)
		farm_image_free(img);
	else
		*out = img;
	return rc;
}

/* ---- writer ---- */

static int put(struct farm_buf *out, const void *p, size_t n, struct farm_err *e)
{
	int rc = farm_buf_append(out, p, n);
	if (rc)
		return farm_err_set(e, rc, "DfuSe output: %s", farm_strerror(rc));
	return 0;
}

int farm_image_write_dfuse(const struct farm_image *img, uint16_t vid, uint16_t pid, uint8_t alt,
			   const char *target_name, struct farm_buf *out, struct farm_err *e)
{
	if (!img->n_segs)
		return farm_err_set(e, FARM_EINVAL, "DfuSe output: the image is empty");
	size_t start = out->len;
	uint64_t tsize = 0;
	for (size_t s = 0; s < img->n_segs; s++)
		tsize += ELEMENT_HEAD + (uint64_t)img->segs[s].len;
	uint64_t image_size = PREFIX_LEN + TARGET_LEN + tsize;
	if (image_size + SUFFIX_LEN > UINT32_MAX)
		return farm_err_set(e, FARM_ELIMIT, "DfuSe output: the image is too large");

	uint8_t prefix[PREFIX_LEN] = {'D', 'f', 'u', 'S', 'e', 1};
	farm_put_le32(prefix + 6, (uint32_t)image_size);
	prefix[10] = 1;
	uint8_t target[TARGET_LEN] = {'T', 'a', 'r', 'g', 'e', 't'};
	target[6] = alt;
	const char *tn = target_name ? target_name : "";
	size_t tn_len = strnlen(tn, NAME_LEN - 1);
	farm_put_le32(target + 7, tn_len ? 1 : 0);
	memcpy(target + 11, tn, tn_len);
	farm_put_le32(target + 266, (uint32_t)tsize);
	farm_put_le32(target + 270, (uint32_t)img->n_segs);
	int rc = put(out, prefix, sizeof prefix, e);
	if (!rc)
		rc = put(out, target, sizeof target, e);
	for (size_t s = 0; !rc && s < img->n_segs; s++) {
		uint8_t head[ELEMENT_HEAD];
		farm_put_le32(head, img->segs[s].addr);
		farm_put_le32(head + 4, img->segs[s].len);
		rc = put(out, head, sizeof head, e);
		if (!rc)
			rc = put(out, img->segs[s].data, img->segs[s].len, e);
	}
	if (rc)
		return rc;
	uint8_t suf[SUFFIX_LEN];
	farm_put_le16(suf, img->has_dfuse ? img->dfu_bcd : 0);
	farm_put_le16(suf + 2, pid);
	farm_put_le16(suf + 4, vid);
	farm_put_le16(suf + 6, BCD_DFUSE);
	memcpy(suf + 8, "UFD", 3);
	suf[11] = SUFFIX_LEN;
	rc = put(out, suf, 12, e);
	if (rc)
		return rc;
	farm_put_le32(suf + 12, dfu_crc((const uint8_t *)out->data + start, out->len - start));
	return put(out, suf + 12, 4, e);
}
