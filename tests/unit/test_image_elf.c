/* Tests for farm/image_elf.c: ELF32 and ELF64 executables built in memory
 * (LMA vs VMA, .bss, non-LOAD headers, section headers), every header check,
 * truncation at every byte, and every single-bit flip classified by field.
 * The files are built with <elf.h> structs: the test assumes a little-endian
 * host (it says so and skips otherwise). */
#include <CUnit/CUnit.h>
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

/* ---- a small firmware ELF32 (ARM) ----
 * 0x000 ELF header, 0x034 five program headers, 0x100 text, 0x140 data,
 * 0x150 UICR word / note, 0x160 two section headers; 0x1b0 bytes. */
#define ELF_LEN 0x1b0
#define PH_OFF 0x34
#define N_PH 5

static int little_endian_host(void)
{
	const uint16_t one = 1;
	return *(const uint8_t *)&one == 1;
}

static void make_elf32(uint8_t f[ELF_LEN])
{
	memset(f, 0, ELF_LEN);
	Elf32_Ehdr h = {0};
	memcpy(h.e_ident, ELFMAG, SELFMAG);
	h.e_ident[EI_CLASS] = ELFCLASS32;
	h.e_ident[EI_DATA] = ELFDATA2LSB;
	h.e_ident[EI_VERSION] = EV_CURRENT;
	h.e_type = ET_EXEC;
	h.e_machine = EM_ARM;
	h.e_version = EV_CURRENT;
	h.e_entry = 0x08000009;
	h.e_phoff = PH_OFF;
	h.e_shoff = 0x160;
	h.e_flags = 0x05000200;
	h.e_ehsize = sizeof h;
	h.e_phentsize = sizeof(Elf32_Phdr);
	h.e_phnum = N_PH;
	h.e_shentsize = sizeof(Elf32_Shdr);
	h.e_shnum = 2;
	h.e_shstrndx = 0;
	memcpy(f, &h, sizeof h);
	const Elf32_Phdr ph[N_PH] = {
		/* type, offset, vaddr, paddr, filesz, memsz, flags, align */
		{PT_LOAD, 0x100, 0x08000000, 0x08000000, 0x40, 0x40, PF_R | PF_X, 4},
		{PT_LOAD, 0x140, 0x20000000, 0x08000040, 0x10, 0x30, PF_R | PF_W, 4}, /* .data + .bss */
		{PT_LOAD, 0x150, 0x20000030, 0x20000030, 0, 0x100, PF_R | PF_W, 4},   /* .bss only */
		{PT_NOTE, 0x150, 0, 0, 8, 8, PF_R, 4},
		{PT_LOAD, 0x150, 0x10001000, 0x10001000, 4, 4, PF_R, 4},
	};
	memcpy(f + PH_OFF, ph, sizeof ph);
	for (int i = 0; i < 0x54; i++)
		f[0x100 + i] = (uint8_t)(0x40 + i);
}

static struct farm_image *parse(const uint8_t *d, size_t len, struct farm_err *e)
{
	struct farm_image *img = NULL;
	int rc = farm_image_parse_elf(&img, d, len, "fw.elf", e);
	CU_ASSERT((rc == 0) == (img != NULL));
	return img;
}

static void expect_error(const uint8_t *f, size_t len, int code, const char *msg)
{
	struct farm_err e = {0};
	struct farm_image *img = parse(f, len, &e);
	CU_ASSERT_PTR_NULL(img);
	CU_ASSERT_EQUAL(e.code, code);
	if (strcmp(e.msg, msg) != 0)
		fprintf(stderr, "\n  got:  %s\n  want: %s\n", e.msg, msg);
	CU_ASSERT_STRING_EQUAL(e.msg, msg);
	farm_image_free(img);
}

static int same_image(const struct farm_image *a, const struct farm_image *b)
{
	if (!a || !b || a->n_segs != b->n_segs || a->has_entry != b->has_entry || a->entry != b->entry)
		return 0;
	for (size_t i = 0; i < a->n_segs; i++)
		if (a->segs[i].addr != b->segs[i].addr || a->segs[i].len != b->segs[i].len ||
		    memcmp(a->segs[i].data, b->segs[i].data, a->segs[i].len) != 0)
			return 0;
	return 1;
}

static Elf32_Phdr *ph32(uint8_t *f, int i)
{
	return (Elf32_Phdr *)(f + PH_OFF + i * sizeof(Elf32_Phdr));
}

/* ---- tests ---- */

static void test_elf32(void)
{
	if (!little_endian_host())
		return;
	_Alignas(8) uint8_t f[ELF_LEN];
	make_elf32(f);
	CU_ASSERT_EQUAL(farm_image_detect(f, ELF_LEN, "fw.bin"), FARM_IMG_ELF);
	struct farm_err e = {0};
	struct farm_image *img = parse(f, ELF_LEN, &e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(img);
	CU_ASSERT_EQUAL(img->format, FARM_IMG_ELF);
	/* text and .data's load image are adjacent at their LMAs: one segment;
	 * .bss is not flashed; the note is not loaded */
	CU_ASSERT_EQUAL_FATAL(img->n_segs, 2);
	CU_ASSERT(img->segs[0].addr == 0x08000000 && img->segs[0].len == 0x50);
	CU_ASSERT(img->segs[0].data[0] == 0x40 && img->segs[0].data[0x4f] == 0x8f);
	CU_ASSERT(img->segs[1].addr == 0x10001000 && img->segs[1].len == 4 &&
		  img->segs[1].data[0] == 0x90);
	CU_ASSERT(img->has_entry && img->entry == 0x08000009);
	farm_image_free(img);

	/* no entry point */
	((Elf32_Ehdr *)f)->e_entry = 0;
	img = parse(f, ELF_LEN, &e);
	CU_ASSERT(img && !img->has_entry);
	farm_image_free(img);

	/* Xtensa and RISC-V are flashed too */
	((Elf32_Ehdr *)f)->e_machine = EM_XTENSA;
	img = parse(f, ELF_LEN, &e);
	CU_ASSERT_PTR_NOT_NULL(img);
	farm_image_free(img);
	((Elf32_Ehdr *)f)->e_machine = EM_RISCV;
	img = parse(f, ELF_LEN, &e);
	CU_ASSERT_PTR_NOT_NULL(img);
	farm_image_free(img);
}

static void test_elf64(void)
{
	if (!little_endian_host())
		return;
	uint8_t f[0x200] = {0};
	Elf64_Ehdr h = {0};
	memcpy(h.e_ident, ELFMAG, SELFMAG);
	h.e_ident[EI_CLASS] = ELFCLASS64;
	h.e_ident[EI_DATA] = ELFDATA2LSB;
	h.e_ident[EI_VERSION] = EV_CURRENT;
	h.e_type = ET_EXEC;
	h.e_machine = EM_RISCV;
	h.e_entry = 0x80000000;
	h.e_phoff = sizeof h;
	h.e_phentsize = sizeof(Elf64_Phdr);
	h.e_phnum = 2;
	memcpy(f, &h, sizeof h);
	Elf64_Phdr ph[2] = {
		{PT_LOAD, PF_R | PF_X, 0x180, 0x80000000, 0x80000000, 0x20, 0x20, 8},
		{PT_LOAD, PF_R, 0x1a0, 0x80001000, 0x80001000, 0x10, 0x10, 8},
	};
	memcpy(f + sizeof h, ph, sizeof ph);
	for (int i = 0; i < 0x30; i++)
		f[0x180 + i] = (uint8_t)i;
	struct farm_err e = {0};
	struct farm_image *img = parse(f, sizeof f, &e);
	CU_ASSERT(img && img->n_segs == 2 && img->segs[0].addr == 0x80000000 &&
		  img->segs[1].addr == 0x80001000 && img->segs[1].data[0] == 0x20 && img->entry == 0x80000000);
	farm_image_free(img);

	/* addresses beyond 32 bits */
	ph[1].p_paddr = 0x100000000ull;
	memcpy(f + sizeof h, ph, sizeof ph);
	expect_error(f, sizeof f, FARM_EINVAL,
		     "fw.elf: program header 1: segment [address 0x100000000, size 0x10] lies beyond the "
		     "32-bit address space");
	ph[1].p_paddr = 0xfffffff8;
	memcpy(f + sizeof h, ph, sizeof ph);
	expect_error(f, sizeof f, FARM_EINVAL,
		     "fw.elf: program header 1: segment [address 0xfffffff8, size 0x10] lies beyond the "
		     "32-bit address space");
	ph[1].p_paddr = 0x80001000;
	memcpy(f + sizeof h, ph, sizeof ph);
	h.e_entry = 0x180000000ull;
	memcpy(f, &h, sizeof h);
	expect_error(f, sizeof f, FARM_EINVAL,
		     "fw.elf: entry point 0x180000000 lies beyond the 32-bit address space");
	/* a huge 64-bit offset */
	h.e_entry = 0;
	h.e_phoff = 0xffffffffffffff00ull;
	memcpy(f, &h, sizeof h);
	expect_error(f, sizeof f, FARM_EINVAL,
		     "fw.elf: program header table [offset 0xffffffffffffff00, 2 entries of 56 bytes] "
		     "runs past the end of the file (512 bytes)");
	h.e_phoff = sizeof h;
	memcpy(f, &h, sizeof h);
	ph[0].p_offset = 0xfffffffffffffff0ull;
	memcpy(f + sizeof h, ph, sizeof ph);
	expect_error(f, sizeof f, FARM_EINVAL,
		     "fw.elf: program header 0: segment [offset 0xfffffffffffffff0, size 0x20] runs past "
		     "the end of the file (512 bytes)");
}

static void test_header_errors(void)
{
	if (!little_endian_host())
		return;
	_Alignas(8) uint8_t f[ELF_LEN];
	Elf32_Ehdr *h = (Elf32_Ehdr *)f;
	make_elf32(f);
	expect_error(f, 3, FARM_EINVAL, "fw.elf: not an ELF file (bad magic)");
	expect_error(f, 40, FARM_EINVAL, "fw.elf: 40 bytes: shorter than the ELF header (52 bytes)");
	f[1] = 'e';
	expect_error(f, ELF_LEN, FARM_EINVAL, "fw.elf: not an ELF file (bad magic)");
	make_elf32(f);
	f[EI_CLASS] = 3;
	expect_error(f, ELF_LEN, FARM_EINVAL, "fw.elf: unknown ELF class 3");
	make_elf32(f);
	f[EI_DATA] = ELFDATA2MSB;
	expect_error(f, ELF_LEN, FARM_EINVAL,
		     "fw.elf: ELF data encoding 2: only little-endian files are supported");
	make_elf32(f);
	f[EI_VERSION] = 2;
	expect_error(f, ELF_LEN, FARM_EINVAL, "fw.elf: ELF version 2, expected 1");
	make_elf32(f);
	h->e_type = ET_REL;
	expect_error(f, ELF_LEN, FARM_EINVAL,
		     "fw.elf: e_type 1 (a relocatable object file): not a linked firmware image");
	h->e_type = ET_DYN;
	expect_error(f, ELF_LEN, FARM_EINVAL,
		     "fw.elf: e_type 3 (a shared object or position-independent executable): not a "
		     "linked firmware image");
	make_elf32(f);
	h->e_machine = EM_X86_64;
	expect_error(f, ELF_LEN, FARM_EINVAL, "fw.elf: e_machine 62: not ARM, Xtensa or RISC-V");
	make_elf32(f);
	h->e_phnum = 0;
	expect_error(f, ELF_LEN, FARM_EINVAL, "fw.elf: no program headers (not a linked executable?)");
	h->e_phnum = PN_XNUM;
	expect_error(f, ELF_LEN, FARM_EINVAL,
		     "fw.elf: extended program header numbering (e_phnum 0xffff) is not supported");
	make_elf32(f);
	h->e_phentsize = 16;
	expect_error(f, ELF_LEN, FARM_EINVAL,
		     "fw.elf: program header entry size 16, expected at least 32");
	make_elf32(f);
	expect_error(f, 100, FARM_EINVAL,
		     "fw.elf: program header table [offset 0x34, 5 entries of 32 bytes] runs past the end "
		     "of the file (100 bytes)");
	h->e_phnum = 0xfffe;
	h->e_phentsize = 0xffff;
	expect_error(f, ELF_LEN, FARM_EINVAL,
		     "fw.elf: program header table [offset 0x34, 65534 entries of 65535 bytes] runs past "
		     "the end of the file (432 bytes)");
	make_elf32(f);
	h->e_phoff = 0xffffffff;
	expect_error(f, ELF_LEN, FARM_EINVAL,
		     "fw.elf: program header table [offset 0xffffffff, 5 entries of 32 bytes] runs past "
		     "the end of the file (432 bytes)");
}

static void test_segment_errors(void)
{
	if (!little_endian_host())
		return;
	_Alignas(8) uint8_t f[ELF_LEN];
	make_elf32(f);
	ph32(f, 4)->p_filesz = 0x100;
	ph32(f, 4)->p_memsz = 0x100;
	expect_error(f, ELF_LEN, FARM_EINVAL,
		     "fw.elf: program header 4: segment [offset 0x150, size 0x100] runs past the end of "
		     "the file (432 bytes)");
	make_elf32(f);
	ph32(f, 3)->p_type = PT_LOAD; /* the note, loaded at 0: fine */
	struct farm_err e = {0};
	struct farm_image *img = parse(f, ELF_LEN, &e);
	CU_ASSERT(img && img->n_segs == 3 && img->segs[0].addr == 0);
	farm_image_free(img);
	ph32(f, 3)->p_offset = 0x1000;
	expect_error(f, ELF_LEN, FARM_EINVAL,
		     "fw.elf: program header 3: segment [offset 0x1000, size 0x8] runs past the end of "
		     "the file (432 bytes)");
	make_elf32(f);
	ph32(f, 0)->p_memsz = 0x20;
	expect_error(f, ELF_LEN, FARM_EINVAL,
		     "fw.elf: program header 0: file size 0x40 is larger than the memory size 0x20");
	make_elf32(f);
	ph32(f, 4)->p_paddr = 0x08000010;
	expect_error(f, ELF_LEN, FARM_EINVAL,
		     "fw.elf: program header 4: bytes 0x08000010-0x08000013 overlap bytes "
		     "0x08000000-0x0800004f already in the image");
	make_elf32(f);
	ph32(f, 4)->p_paddr = 0xfffffffe;
	expect_error(f, ELF_LEN, FARM_EINVAL,
		     "fw.elf: program header 4: segment [address 0xfffffffe, size 0x4] lies beyond the "
		     "32-bit address space");
	make_elf32(f);
	for (int i = 0; i < N_PH; i++)
		if (ph32(f, i)->p_type == PT_LOAD)
			ph32(f, i)->p_filesz = 0;
	expect_error(f, ELF_LEN, FARM_EINVAL,
		     "fw.elf: no loadable segment with file data (PT_LOAD with p_filesz > 0)");
}

/* Program headers may share file bytes: the payload bound still holds. */
static void test_payload_limit(void)
{
	if (!little_endian_host())
		return;
	const size_t data = 1u << 20, n = 65;
	size_t len = sizeof(Elf32_Ehdr) + n * sizeof(Elf32_Phdr) + data;
	uint8_t *f = calloc(1, len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	make_elf32(f);
	Elf32_Ehdr *h = (Elf32_Ehdr *)f;
	h->e_phnum = (Elf32_Half)n;
	h->e_shoff = 0;
	h->e_shnum = 0;
	for (size_t i = 0; i < n; i++) {
		Elf32_Phdr p = {PT_LOAD, (Elf32_Off)(len - data), 0, (Elf32_Addr)(i * data),
				(Elf32_Word)data, (Elf32_Word)data, PF_R, 4};
		memcpy(f + PH_OFF + i * sizeof p, &p, sizeof p);
	}
	expect_error(f, len, FARM_ELIMIT, "fw.elf: program header 64: image payload exceeds the "
					  "67108864-byte limit");
	free(f);
}

/* Cut at every byte: refused, unless the cut falls after the last loaded
 * byte (only section headers and padding lost): the same image. */
static void test_truncated_everywhere(void)
{
	if (!little_endian_host())
		return;
	_Alignas(8) uint8_t f[ELF_LEN];
	make_elf32(f);
	struct farm_err e = {0};
	struct farm_image *full = parse(f, ELF_LEN, &e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(full);
	for (size_t cut = 0; cut < ELF_LEN; cut++) {
		struct farm_image *img = parse(f, cut, &e);
		if (cut >= 0x154) { /* past the last loaded byte (notes are not read) */
			CU_ASSERT(same_image(img, full));
		} else {
			CU_ASSERT_PTR_NULL(img);
		}
		farm_image_free(img);
	}
	farm_image_free(full);
}

/* What the (flipped) headers literally say, with bounds checked. */
static struct farm_image *literal(const uint8_t *f, size_t len)
{
	const Elf32_Ehdr *h = (const Elf32_Ehdr *)f;
	struct farm_image *img = NULL;
	struct farm_err e = {0};
	if (farm_image_new(&img, FARM_IMG_ELF, &e))
		return NULL;
	for (unsigned i = 0; i < h->e_phnum; i++) {
		uint64_t at = (uint64_t)h->e_phoff + (uint64_t)i * h->e_phentsize;
		if (at + sizeof(Elf32_Phdr) > len)
			goto bad;
		Elf32_Phdr p;
		memcpy(&p, f + at, sizeof p);
		if (p.p_type != PT_LOAD || p.p_filesz == 0)
			continue;
		if ((uint64_t)p.p_offset + p.p_filesz > len ||
		    farm_image_add(img, p.p_paddr, f + p.p_offset, p.p_filesz, &e))
			goto bad;
	}
	img->has_entry = h->e_entry != 0;
	img->entry = h->e_entry;
	return img;
bad:
	farm_image_free(img);
	return NULL;
}

enum expect { REFUSED, SAME, LITERAL, SAME_OR_REFUSED, DATA };

static enum expect classify(size_t i)
{
	if (i < 7 || (i >= 16 && i < 20))
		return REFUSED; /* magic, class, data, version; e_type, e_machine */
	if (i < 16 || (i >= 20 && i < 24) || (i >= 32 && i < 42) || (i >= 46 && i < 52))
		return SAME; /* OS ABI and padding, e_version, section and flag fields */
	if (i < PH_OFF)
		return LITERAL; /* e_entry, e_phoff, e_phentsize, e_phnum */
	if (i < PH_OFF + N_PH * sizeof(Elf32_Phdr)) {
		size_t o = (i - PH_OFF) % sizeof(Elf32_Phdr);
		if (o >= 8 && o < 12)
			return SAME; /* p_vaddr */
		if (o >= 24)
			return SAME; /* p_flags, p_align */
		if (o >= 20 && o < 24)
			return SAME_OR_REFUSED; /* p_memsz: refused when below p_filesz */
		return LITERAL; /* p_type, p_offset, p_paddr, p_filesz */
	}
	if (i >= 0x100 && i < 0x154)
		return DATA;
	return SAME; /* padding, the note's tail, section headers */
}

static void test_bit_flips(void)
{
	if (!little_endian_host())
		return;
	_Alignas(8) uint8_t f[ELF_LEN];
	make_elf32(f);
	struct farm_err e = {0};
	struct farm_image *full = parse(f, ELF_LEN, &e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(full);
	size_t counts[5] = {0}, refused = 0;
	for (size_t i = 0; i < ELF_LEN; i++)
		for (int bit = 0; bit < 8; bit++) {
			f[i] ^= (uint8_t)(1 << bit);
			struct farm_image *img = parse(f, ELF_LEN, &e), *want = NULL;
			enum expect x = classify(i);
			int ok = 0;
			switch (x) {
			case REFUSED: ok = img == NULL; break;
			case SAME: ok = same_image(img, full); break;
			case SAME_OR_REFUSED: ok = !img || same_image(img, full); break;
			case LITERAL:
				want = literal(f, ELF_LEN);
				ok = !img || same_image(img, want);
				break;
			case DATA:
				want = literal(f, ELF_LEN);
				ok = img && same_image(img, want) && !same_image(img, full);
				break;
			}
			if (!ok)
				fprintf(stderr, "\nflip of bit %d at 0x%zx (class %d): %s\n", bit, i, (int)x,
					img ? "accepted" : e.msg);
			CU_ASSERT(ok);
			counts[x]++;
			refused += img == NULL;
			farm_image_free(want);
			farm_image_free(img);
			f[i] ^= (uint8_t)(1 << bit);
		}
	CU_ASSERT(refused > 0);
	CU_ASSERT(counts[REFUSED] && counts[SAME] && counts[LITERAL] && counts[DATA]);
	farm_image_free(full);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("image_elf", NULL, NULL);
	if (!s)
		return -1;
	const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{"ELF32: LMA, .bss, notes, entry, machines", test_elf32},
		{"ELF64 and 64-bit bounds", test_elf64},
		{"ELF header errors", test_header_errors},
		{"program header errors", test_segment_errors},
		{"payload limit with shared file bytes", test_payload_limit},
		{"truncated at every byte", test_truncated_everywhere},
		{"every single-bit flip, by field", test_bit_flips},
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
