/* mpfarm: the firmware image model, one for every file format.
 *
 * An image is a list of address-ordered, non-overlapping segments (address,
 * bytes) plus an optional entry point and the format-specific facts some
 * runners need (UF2 family id, DfuSe target). Parsers (image_ihex.c,
 * image_uf2.c, image_dfuse.c, image_elf.c, image_bin.c) treat every input as
 * hostile: every checksum, count and bound is checked and the first problem is
 * reported with where it is ("line 12", "block 7 at offset 3584", ...). A
 * parser never returns a partial image.
 *
 * Writers produce the formats runners send (bin with fill, UF2, DfuSe). */
#ifndef FARM_IMAGE_H
#define FARM_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define FARM_IMAGE_MAX_BYTES (64u << 20)   /* largest input file and largest image payload */
#define FARM_IMAGE_MAX_SEGMENTS 4096

enum farm_image_format {
	FARM_IMG_UNKNOWN = 0,
	FARM_IMG_IHEX,   /* Intel HEX */
	FARM_IMG_UF2,
	FARM_IMG_DFUSE,  /* ST DfuSe container (.dfu with DfuSe prefix) */
	FARM_IMG_ELF,
	FARM_IMG_BIN,    /* raw binary, needs a base address */
};

struct farm_image_segment {
	uint32_t addr;
	uint32_t len;
	uint8_t *data;
};

struct farm_image {
	enum farm_image_format format;  /* what it was parsed from */
	struct farm_image_segment *segs; /* sorted by addr, never overlapping, never empty */
	size_t n_segs;
	int has_entry;
	uint32_t entry;
	int has_family;                 /* UF2 family id present (all blocks agree) */
	uint32_t uf2_family;
	/* DfuSe: the USB ids of the suffix (0xffff = any) and the alternate
	 * setting of the (first) target. */
	int has_dfuse;
	uint16_t dfu_vid, dfu_pid, dfu_bcd;
	uint8_t dfuse_alt;
	char dfuse_target_name[256];
};

/* Name of a format ("ihex", "uf2", "dfuse", "elf", "bin"); "unknown" for 0. */
const char *farm_image_format_name(enum farm_image_format f);
/* Format from its name; FARM_IMG_UNKNOWN if none. */
enum farm_image_format farm_image_format_parse(const char *name);
/* Guess from content (magic numbers, ':' records), then from the file
 * extension; FARM_IMG_UNKNOWN if neither tells. */
enum farm_image_format farm_image_detect(const void *data, size_t len, const char *filename);

/* Parse data (any format but BIN; BIN needs farm_image_parse_bin). name is
 * used in messages ("fw.hex: line 12: ..."). *out is owned by the caller. */
int farm_image_parse(struct farm_image **out, enum farm_image_format fmt, const void *data,
		     size_t len, const char *name, struct farm_err *e);
int farm_image_parse_ihex(struct farm_image **out, const void *data, size_t len, const char *name,
			  struct farm_err *e);
int farm_image_parse_uf2(struct farm_image **out, const void *data, size_t len, const char *name,
			 struct farm_err *e);
int farm_image_parse_dfuse(struct farm_image **out, const void *data, size_t len, const char *name,
			   struct farm_err *e);
int farm_image_parse_elf(struct farm_image **out, const void *data, size_t len, const char *name,
			 struct farm_err *e);
int farm_image_parse_bin(struct farm_image **out, const void *data, size_t len, uint32_t base,
			 const char *name, struct farm_err *e);
/* Read a file (at most FARM_IMAGE_MAX_BYTES) and parse it; fmt UNKNOWN =
 * detect; base is used for BIN only. */
int farm_image_load(struct farm_image **out, const char *path, enum farm_image_format fmt,
		    uint32_t base, struct farm_err *e);
void farm_image_free(struct farm_image *img);

/* Building an image (used by parsers and tests). farm_image_new gives an
 * empty image; farm_image_add copies bytes in, merging adjacent runs and
 * refusing overlaps (FARM_EINVAL naming both ranges) and address overflow past
 * 0xffffffff. Total payload is bounded by FARM_IMAGE_MAX_BYTES and the number
 * of segments by FARM_IMAGE_MAX_SEGMENTS (FARM_ELIMIT). farm_image_add works
 * only on images from farm_image_new (it keeps private bookkeeping). */
int farm_image_new(struct farm_image **out, enum farm_image_format fmt, struct farm_err *e);
int farm_image_add(struct farm_image *img, uint32_t addr, const void *data, size_t len,
		   struct farm_err *e);

/* Totals: payload bytes, lowest address, one past the highest. */
size_t farm_image_size(const struct farm_image *img);
uint32_t farm_image_lowest(const struct farm_image *img);
uint64_t farm_image_end(const struct farm_image *img);
/* SHA-256 over the segments in address order, each as its address (4-byte
 * LE), its length (4-byte LE) and its bytes; lower-case hex, 65 bytes with the
 * NUL. Identifies an image whatever its container format (the entry point
 * and format facts are not included). "" only if OpenSSL fails (no memory). */
void farm_image_sha256(const struct farm_image *img, char hex[65]);

/* Writers. Output is appended to out. */
/* Flatten [lowest, end) with gaps filled with `fill` (0xff for flash). */
int farm_image_write_bin(const struct farm_image *img, uint8_t fill, struct farm_buf *out,
			 struct farm_err *e);
/* UF2 with 256-byte payloads at 256-byte aligned addresses (bytes of a page
 * the image does not cover are 0xff), family id flag set when family != 0. */
int farm_image_write_uf2(const struct farm_image *img, uint32_t family, struct farm_buf *out,
			 struct farm_err *e);
/* DfuSe container: one target (alt), one element per segment, DFU suffix with
 * CRC; bcdDevice is img->dfu_bcd when img->has_dfuse, else 0. */
int farm_image_write_dfuse(const struct farm_image *img, uint16_t vid, uint16_t pid, uint8_t alt,
			   const char *target_name, struct farm_buf *out, struct farm_err *e);
/* Intel HEX, 16 data bytes per record, 04 records on 64 KiB changes, 05 if
 * entry (first, as python-intelhex writes it), then the 01 record. All writers
 * refuse an empty image; write_bin refuses a span over FARM_IMAGE_MAX_BYTES. */
int farm_image_write_ihex(const struct farm_image *img, struct farm_buf *out, struct farm_err *e);

#endif
