/* mpfarm: the firmware image model: building (farm_image_new/add), format
 * names and detection, loading a file, totals and the SHA-256 identity.
 * The parsers and writers of each format live in image_<format>.c. */
#include "image.h"
#include "le.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	enum farm_image_format fmt;
	const char *name;
} format_names[] = {
	{FARM_IMG_IHEX, "ihex"}, {FARM_IMG_UF2, "uf2"}, {FARM_IMG_DFUSE, "dfuse"},
	{FARM_IMG_ELF, "elf"},   {FARM_IMG_BIN, "bin"},
};

/* File extensions, consulted only when the content does not tell. */
static const struct {
	const char *ext;
	enum farm_image_format fmt;
} extensions[] = {
	{".hex", FARM_IMG_IHEX}, {".ihex", FARM_IMG_IHEX}, {".uf2", FARM_IMG_UF2},
	{".dfu", FARM_IMG_DFUSE}, {".elf", FARM_IMG_ELF},  {".bin", FARM_IMG_BIN},
};

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

const char *farm_image_format_name(enum farm_image_format f)
{
	for (size_t i = 0; i < N_ELEMS(format_names); i++)
		if (format_names[i].fmt == f)
			return format_names[i].name;
	return "unknown";
}

enum farm_image_format farm_image_format_parse(const char *name)
{
	if (!name)
		return FARM_IMG_UNKNOWN;
	for (size_t i = 0; i < N_ELEMS(format_names); i++)
		if (strcasecmp(format_names[i].name, name) == 0)
			return format_names[i].fmt;
	if (strcasecmp(name, "hex") == 0)
		return FARM_IMG_IHEX;
	if (strcasecmp(name, "dfu") == 0)
		return FARM_IMG_DFUSE;
	return FARM_IMG_UNKNOWN;
}

static int is_hex_digit(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

enum farm_image_format farm_image_detect(const void *data, size_t len, const char *filename)
{
	const unsigned char *p = data;
	static const unsigned char uf2_magic[8] = {0x55, 0x46, 0x32, 0x0a, 0x57, 0x51, 0x5d, 0x9e};
	if (p && len >= sizeof uf2_magic && memcmp(p, uf2_magic, sizeof uf2_magic) == 0)
		return FARM_IMG_UF2;
	if (p && len >= 5 && memcmp(p, "DfuSe", 5) == 0)
		return FARM_IMG_DFUSE;
	if (p && len >= 4 && memcmp(p, "\x7f" "ELF", 4) == 0)
		return FARM_IMG_ELF;
	if (p && len >= 3 && p[0] == ':' && is_hex_digit(p[1]) && is_hex_digit(p[2]))
		return FARM_IMG_IHEX;
	const char *dot = filename ? strrchr(filename, '.') : NULL;
	if (dot && !strchr(dot, '/'))
		for (size_t i = 0; i < N_ELEMS(extensions); i++)
			if (strcasecmp(dot, extensions[i].ext) == 0)
				return extensions[i].fmt;
	return FARM_IMG_UNKNOWN;
}

int farm_image_parse(struct farm_image **out, enum farm_image_format fmt, const void *data,
		     size_t len, const char *name, struct farm_err *e)
{
	*out = NULL;
	switch (fmt) {
	case FARM_IMG_IHEX: return farm_image_parse_ihex(out, data, len, name, e);
	case FARM_IMG_UF2: return farm_image_parse_uf2(out, data, len, name, e);
	case FARM_IMG_DFUSE: return farm_image_parse_dfuse(out, data, len, name, e);
	case FARM_IMG_ELF: return farm_image_parse_elf(out, data, len, name, e);
	case FARM_IMG_BIN:
		return farm_err_set(e, FARM_EINVAL, "%s: a raw binary needs a base address", name);
	case FARM_IMG_UNKNOWN: break;
	}
	return farm_err_set(e, FARM_EINVAL, "%s: unknown image format", name);
}

int farm_image_load(struct farm_image **out, const char *path, enum farm_image_format fmt,
		    uint32_t base, struct farm_err *e)
{
	*out = NULL;
	struct farm_buf b = {0};
	int rc = farm_buf_read_file(&b, path, FARM_IMAGE_MAX_BYTES, e);
	if (rc)
		goto out;
	if (fmt == FARM_IMG_UNKNOWN)
		fmt = farm_image_detect(b.data, b.len, path);
	if (fmt == FARM_IMG_UNKNOWN)
		rc = farm_err_set(e, FARM_EINVAL,
				  "%s: unknown image format (not UF2, DfuSe, ELF or Intel HEX by content; "
				  "extension not .hex .ihex .uf2 .dfu .elf .bin)",
				  path);
	else if (fmt == FARM_IMG_BIN)
		rc = farm_image_parse_bin(out, b.data, b.len, base, path, e);
	else
		rc = farm_image_parse(out, fmt, b.data, b.len, path, e);
out:
	farm_buf_free(&b);
	return rc;
}

void farm_image_free(struct farm_image *img)
{
	if (!img)
		return;
	for (size_t i = 0; i < img->n_segs; i++)
		free(img->segs[i].data);
	free(img->segs);
	free(img);
}

/* An image built here carries its running payload total behind the public
 * struct (its first member, so free(img) releases both). */
struct image_priv {
	struct farm_image pub;
	size_t payload;
};

static struct image_priv *priv_of(struct farm_image *img)
{
	return (struct image_priv *)img;
}

int farm_image_new(struct farm_image **out, enum farm_image_format fmt, struct farm_err *e)
{
	struct image_priv *p = calloc(1, sizeof *p);
	*out = NULL;
	if (!p)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	p->pub.format = fmt;
	*out = &p->pub;
	return 0;
}

/* Allocation size for n bytes (segment data) or n entries (segment array):
 * a power of two, so appends are amortised O(1) without storing capacities.
 * Every array farm_image_add touches was allocated with this size. */
static size_t cap_for(size_t n)
{
	size_t c = 64;
	while (c < n)
		c <<= 1;
	return c;
}

static int grow_data(struct farm_image_segment *s, size_t new_len, struct farm_err *e)
{
	size_t want = cap_for(new_len);
	if (s->data && want == cap_for(s->len))
		return 0;
	uint8_t *p = realloc(s->data, want);
	if (!p)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	s->data = p;
	return 0;
}

/* Index of the first segment ending after addr (n_segs if none). */
static size_t first_ending_after(const struct farm_image *img, uint32_t addr)
{
	size_t lo = 0, hi = img->n_segs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct farm_image_segment *s = &img->segs[mid];
		if ((uint64_t)s->addr + s->len <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int insert_segment(struct farm_image *img, size_t at, uint32_t addr, const void *data,
			  size_t len, struct farm_err *e)
{
	if (img->n_segs >= FARM_IMAGE_MAX_SEGMENTS)
		return farm_err_set(e, FARM_ELIMIT, "more than %u separate segments",
				    (unsigned)FARM_IMAGE_MAX_SEGMENTS);
	if (!img->segs || cap_for(img->n_segs + 1) != cap_for(img->n_segs)) {
		void *p = realloc(img->segs, cap_for(img->n_segs + 1) * sizeof *img->segs);
		if (!p)
			return farm_err_set(e, FARM_ENOMEM, "out of memory");
		img->segs = p;
	}
	struct farm_image_segment s = {.addr = addr, .len = 0, .data = NULL};
	if (grow_data(&s, len, e))
		return FARM_ENOMEM;
	memcpy(s.data, data, len);
	s.len = (uint32_t)len;
	memmove(&img->segs[at + 1], &img->segs[at], (img->n_segs - at) * sizeof *img->segs);
	img->segs[at] = s;
	img->n_segs++;
	return 0;
}

/* farm_image_add once the bounds are known to hold: overlap check, then
 * insert or merge with the neighbours. */
static int add_checked(struct farm_image *img, uint32_t addr, const void *data, size_t len,
		       struct farm_err *e)
{
	uint64_t end = (uint64_t)addr + len;
	size_t i = first_ending_after(img, addr);
	if (i < img->n_segs && img->segs[i].addr < end) {
		const struct farm_image_segment *o = &img->segs[i];
		return farm_err_set(e, FARM_EINVAL,
				    "bytes 0x%08x-0x%08x overlap bytes 0x%08x-0x%08x already in the image",
				    addr, (uint32_t)(end - 1), o->addr, (uint32_t)(o->addr + o->len - 1));
	}
	struct farm_image_segment *left = NULL, *right = NULL;
	if (i > 0 && (uint64_t)img->segs[i - 1].addr + img->segs[i - 1].len == addr)
		left = &img->segs[i - 1];
	if (i < img->n_segs && img->segs[i].addr == end)
		right = &img->segs[i];
	if (!left && !right)
		return insert_segment(img, i, addr, data, len, e);
	if (left) {
		size_t extra = right ? right->len : 0;
		if (grow_data(left, left->len + len + extra, e))
			return FARM_ENOMEM;
		memcpy(left->data + left->len, data, len);
		if (right) {
			memcpy(left->data + left->len + len, right->data, right->len);
			free(right->data);
			memmove(right, right + 1, (img->n_segs - i - 1) * sizeof *right);
			img->n_segs--;
		}
		left->len += (uint32_t)(len + extra);
		return 0;
	}
	/* Only a right neighbour: prepend into a fresh buffer. */
	struct farm_image_segment s = {.addr = addr, .len = 0, .data = NULL};
	if (grow_data(&s, len + right->len, e))
		return FARM_ENOMEM;
	memcpy(s.data, data, len);
	memcpy(s.data + len, right->data, right->len);
	s.len = (uint32_t)(len + right->len);
	free(right->data);
	*right = s;
	return 0;
}

int farm_image_add(struct farm_image *img, uint32_t addr, const void *data, size_t len,
		   struct farm_err *e)
{
	if (len == 0)
		return 0;
	struct image_priv *pv = priv_of(img);
	if (len > FARM_IMAGE_MAX_BYTES || pv->payload + len > FARM_IMAGE_MAX_BYTES)
		return farm_err_set(e, FARM_ELIMIT, "image payload exceeds the %u-byte limit",
				    (unsigned)FARM_IMAGE_MAX_BYTES);
	uint64_t end = (uint64_t)addr + len;
	if (end > 0x100000000ull)
		return farm_err_set(e, FARM_EINVAL, "%zu bytes at 0x%08x run past address 0xffffffff",
				    len, addr);
	int rc = add_checked(img, addr, data, len, e);
	if (rc == 0)
		pv->payload += len;
	return rc;
}

size_t farm_image_size(const struct farm_image *img)
{
	size_t n = 0;
	for (size_t i = 0; img && i < img->n_segs; i++)
		n += img->segs[i].len;
	return n;
}

uint32_t farm_image_lowest(const struct farm_image *img)
{
	return img && img->n_segs ? img->segs[0].addr : 0;
}

uint64_t farm_image_end(const struct farm_image *img)
{
	if (!img || !img->n_segs)
		return 0;
	const struct farm_image_segment *s = &img->segs[img->n_segs - 1];
	return (uint64_t)s->addr + s->len;
}

void farm_image_sha256(const struct farm_image *img, char hex[65])
{
	hex[0] = '\0';
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (size_t i = 0; ok && img && i < img->n_segs; i++) {
		uint8_t head[8];
		farm_put_le32(head, img->segs[i].addr);
		farm_put_le32(head + 4, img->segs[i].len);
		ok = EVP_DigestUpdate(ctx, head, sizeof head) &&
		     EVP_DigestUpdate(ctx, img->segs[i].data, img->segs[i].len);
	}
	ok = ok && EVP_DigestFinal_ex(ctx, md, &md_len) && md_len == 32;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return;
	static const char digits[] = "0123456789abcdef";
	for (unsigned int i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
}
