/* imgtool: a test tool over farm/image.h (not installed).
 *
 *   imgtool info FILE [FORMAT [BASE]]
 *       format, entry, family, sha256 and one "segment ADDR LEN" line each
 *   imgtool segments FILE DIR [FORMAT [BASE]]
 *       writes every segment to DIR/ADDR.bin (ADDR as 8 lower-case hex digits)
 *   imgtool convert FILE OUTFMT OUT [--fill N] [--family N] [--base N] [--format F]
 *       OUTFMT is bin, ihex, uf2 or dfuse
 *
 * Numbers take C syntax (0x...). Exit status: 0 ok, 1 error, 2 usage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "image.h"

static int usage(void)
{
	fprintf(stderr, "usage: imgtool info FILE [FORMAT [BASE]]\n"
			"       imgtool segments FILE DIR [FORMAT [BASE]]\n"
			"       imgtool convert FILE bin|ihex|uf2|dfuse OUT [--fill N] [--family N] "
			"[--base N] [--format F]\n");
	return 2;
}

static int parse_u32(const char *s, uint32_t *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || !end || end == s || *end || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int load(struct farm_image **img, const char *path, const char *fmt_name, const char *base_s)
{
	enum farm_image_format fmt = FARM_IMG_UNKNOWN;
	uint32_t base = 0;
	if (fmt_name && (fmt = farm_image_format_parse(fmt_name)) == FARM_IMG_UNKNOWN) {
		fprintf(stderr, "imgtool: unknown format %s\n", fmt_name);
		return 2;
	}
	if (base_s && parse_u32(base_s, &base)) {
		fprintf(stderr, "imgtool: bad base %s\n", base_s);
		return 2;
	}
	struct farm_err e = {0};
	if (farm_image_load(img, path, fmt, base, &e)) {
		fprintf(stderr, "imgtool: %s\n", e.msg);
		return 1;
	}
	return 0;
}

static int write_out(const char *path, const void *d, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f) {
		fprintf(stderr, "imgtool: %s: %s\n", path, strerror(errno));
		return 1;
	}
	int bad = fwrite(d, 1, n, f) != n;
	bad |= fclose(f) != 0;
	if (bad)
		fprintf(stderr, "imgtool: %s: write failed\n", path);
	return bad;
}

static int cmd_info(const struct farm_image *img)
{
	char sha[65];
	farm_image_sha256(img, sha);
	printf("format %s\n", farm_image_format_name(img->format));
	if (img->has_entry)
		printf("entry 0x%08x\n", img->entry);
	if (img->has_family)
		printf("family 0x%08x\n", img->uf2_family);
	if (img->has_dfuse)
		printf("dfuse %04x:%04x bcd %04x alt %u name %s\n", img->dfu_vid, img->dfu_pid,
		       img->dfu_bcd, img->dfuse_alt, img->dfuse_target_name);
	printf("size %zu\nsha256 %s\n", farm_image_size(img), sha);
	for (size_t i = 0; i < img->n_segs; i++)
		printf("segment 0x%08x %u\n", img->segs[i].addr, img->segs[i].len);
	return 0;
}

static int cmd_segments(const struct farm_image *img, const char *dir)
{
	for (size_t i = 0; i < img->n_segs; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%08x.bin", dir, img->segs[i].addr);
		if (write_out(path, img->segs[i].data, img->segs[i].len))
			return 1;
	}
	return 0;
}

static int cmd_convert(int argc, char **argv)
{
	if (argc < 5)
		return usage();
	const char *in = argv[2], *fmt = argv[3], *out = argv[4];
	const char *in_fmt = NULL, *base = NULL;
	uint32_t fill = 0xff, family = 0;
	for (int i = 5; i < argc; i++) {
		if (i + 1 >= argc)
			return usage();
		if (strcmp(argv[i], "--fill") == 0 && !parse_u32(argv[i + 1], &fill) && fill <= 0xff)
			i++;
		else if (strcmp(argv[i], "--family") == 0 && !parse_u32(argv[i + 1], &family))
			i++;
		else if (strcmp(argv[i], "--base") == 0)
			base = argv[++i];
		else if (strcmp(argv[i], "--format") == 0)
			in_fmt = argv[++i];
		else
			return usage();
	}
	static const char *const outs[] = {"bin", "ihex", "uf2", "dfuse"};
	int kind = -1;
	for (int i = 0; i < 4; i++)
		if (strcmp(fmt, outs[i]) == 0)
			kind = i;
	if (kind < 0)
		return usage();
	struct farm_image *img = NULL;
	int rc = load(&img, in, in_fmt, base);
	if (rc)
		return rc;
	struct farm_buf b = {0};
	struct farm_err e = {0};
	switch (kind) {
	case 0: rc = farm_image_write_bin(img, (uint8_t)fill, &b, &e); break;
	case 1: rc = farm_image_write_ihex(img, &b, &e); break;
	case 2: rc = farm_image_write_uf2(img, family, &b, &e); break;
	default: rc = farm_image_write_dfuse(img, 0x0483, 0xdf11, 0, "ST...", &b, &e); break;
	}
	if (rc) {
		fprintf(stderr, "imgtool: %s\n", e.msg);
		rc = 1;
	} else {
		rc = write_out(out, b.data, b.len);
	}
	farm_buf_free(&b);
	farm_image_free(img);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return usage();
	if (strcmp(argv[1], "convert") == 0)
		return cmd_convert(argc, argv);
	int info = strcmp(argv[1], "info") == 0;
	if (!info && strcmp(argv[1], "segments") != 0)
		return usage();
	int first = info ? 3 : 4; /* optional FORMAT BASE after these */
	if (argc < first || argc > first + 2)
		return usage();
	struct farm_image *img = NULL;
	int rc = load(&img, argv[2], argc > first ? argv[first] : NULL,
		      argc > first + 1 ? argv[first + 1] : NULL);
	if (rc)
		return rc;
	rc = info ? cmd_info(img) : cmd_segments(img, argv[3]);
	farm_image_free(img);
	return rc;
}
