/* mpfarm: raw binary images: one segment at a given base address, and the
 * flattening of any image to a binary with its gaps filled. */
#include "image.h"

#include <string.h>

int farm_image_parse_bin(struct farm_image **out, const void *data, size_t len, uint32_t base,
			 const char *name, struct farm_err *e)
{
	*out = NULL;
	if (len > FARM_IMAGE_MAX_BYTES)
		return farm_err_set(e, FARM_ELIMIT, "%s: file is %zu bytes, larger than the %u-byte limit",
				    name, len, (unsigned)FARM_IMAGE_MAX_BYTES);
	if (len == 0)
		return farm_err_set(e, FARM_EINVAL, "%s: empty file", name);
	struct farm_image *img = NULL;
	int rc = farm_image_new(&img, FARM_IMG_BIN, e);
	if (!rc)
		rc = farm_image_add(img, base, data, len, e);
	if (rc) {
		farm_err_prefix(e, "%s", name);
		farm_image_free(img);
		return rc;
	}
	*out = img;
	return 0;
}

static int put_fill(struct farm_buf *out, uint8_t fill, uint64_t n, struct farm_err *e)
{
	uint8_t chunk[4096];
	memset(chunk, fill, sizeof chunk);
	while (n) {
		size_t k = n < sizeof chunk ? (size_t)n : sizeof chunk;
		int rc = farm_buf_append(out, chunk, k);
		if (rc)
			return farm_err_set(e, rc, "binary output: %s", farm_strerror(rc));
		n -= k;
	}
	return 0;
}

int farm_image_write_bin(const struct farm_image *img, uint8_t fill, struct farm_buf *out,
			 struct farm_err *e)
{
	if (!img->n_segs)
		return farm_err_set(e, FARM_EINVAL, "binary output: the image is empty");
	uint64_t lo = farm_image_lowest(img), hi = farm_image_end(img);
	if (hi - lo > FARM_IMAGE_MAX_BYTES)
		return farm_err_set(e, FARM_ELIMIT,
				    "binary output: the image spans 0x%08llx-0x%08llx (%llu bytes with its "
				    "gaps), more than the %u-byte limit",
				    (unsigned long long)lo, (unsigned long long)(hi - 1),
				    (unsigned long long)(hi - lo), (unsigned)FARM_IMAGE_MAX_BYTES);
	uint64_t at = lo;
	for (size_t s = 0; s < img->n_segs; s++) {
		const struct farm_image_segment *seg = &img->segs[s];
		int rc = put_fill(out, fill, seg->addr - at, e);
		if (rc)
			return rc;
		rc = farm_buf_append(out, seg->data, seg->len);
		if (rc)
			return farm_err_set(e, rc, "binary output: %s", farm_strerror(rc));
		at = (uint64_t)seg->addr + seg->len;
	}
	return 0;
}
