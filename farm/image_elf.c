/* mpfarm: ELF reader: the bytes a flasher writes.
 *
 * Accepted: little-endian ELF32 or ELF64 executables (ET_EXEC) for ARM,
 * Xtensa or RISC-V. The image is every PT_LOAD program header with file
 * data (p_filesz > 0), placed at its physical address p_paddr (the load
 * address, what objcopy -O binary and flashers use), p_filesz bytes long:
 * p_memsz beyond p_filesz is .bss and is not flashed. The entry point is
 * e_entry when not 0. Every offset and size is checked against the file,
 * with 64-bit arithmetic, and addresses must fit in 32 bits. */
#include "image.h"

#include <elf.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* The fields we use, whatever the class. */
struct ehdr {
	int is64;
	uint32_t type, machine, phentsize, phnum;
	uint64_t entry, phoff;
};

struct phdr {
	uint32_t type;
	uint64_t offset, paddr, filesz, memsz;
};

static uint64_t le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

/* Little-endian field of a struct type T at its offset in p. */
#define FIELD(p, T, f) le((p) + offsetof(T, f), sizeof(((T *)0)->f))

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

static const char *type_name(uint32_t t)
{
	switch (t) {
	case ET_REL: return "a relocatable object file";
	case ET_DYN: return "a shared object or position-independent executable";
	case ET_CORE: return "a core dump";
	}
	return "not an executable";
}

static int read_ehdr(const uint8_t *p, size_t len, const char *name, struct ehdr *h,
		     struct farm_err *e)
{
	if (len < EI_NIDENT || memcmp(p, ELFMAG, SELFMAG) != 0)
		return fail(e, name, "not an ELF file (bad magic)");
	if (p[EI_CLASS] != ELFCLASS32 && p[EI_CLASS] != ELFCLASS64)
		return fail(e, name, "unknown ELF class %u", p[EI_CLASS]);
	if (p[EI_DATA] != ELFDATA2LSB)
		return fail(e, name, "ELF data encoding %u: only little-endian files are supported",
			    p[EI_DATA]);
	if (p[EI_VERSION] != EV_CURRENT)
		return fail(e, name, "ELF version %u, expected %u", p[EI_VERSION], EV_CURRENT);
	h->is64 = p[EI_CLASS] == ELFCLASS64;
	size_t need = h->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
	if (len < need)
		return fail(e, name, "%zu bytes: shorter than the ELF header (%zu bytes)", len, need);
	if (h->is64) {
		h->type = (uint32_t)FIELD(p, Elf64_Ehdr, e_type);
		h->machine = (uint32_t)FIELD(p, Elf64_Ehdr, e_machine);
		h->entry = FIELD(p, Elf64_Ehdr, e_entry);
		h->phoff = FIELD(p, Elf64_Ehdr, e_phoff);
		h->phentsize = (uint32_t)FIELD(p, Elf64_Ehdr, e_phentsize);
		h->phnum = (uint32_t)FIELD(p, Elf64_Ehdr, e_phnum);
	} else {
		h->type = (uint32_t)FIELD(p, Elf32_Ehdr, e_type);
		h->machine = (uint32_t)FIELD(p, Elf32_Ehdr, e_machine);
		h->entry = FIELD(p, Elf32_Ehdr, e_entry);
		h->phoff = FIELD(p, Elf32_Ehdr, e_phoff);
		h->phentsize = (uint32_t)FIELD(p, Elf32_Ehdr, e_phentsize);
		h->phnum = (uint32_t)FIELD(p, Elf32_Ehdr, e_phnum);
	}
	if (h->type != ET_EXEC)
		return fail(e, name, "e_type %u (%s): not a linked firmware image", h->type,
			    type_name(h->type));
	if (h->machine != EM_ARM && h->machine != EM_XTENSA && h->machine != EM_RISCV)
		return fail(e, name, "e_machine %u: not ARM, Xtensa or RISC-V", h->machine);
	if (h->entry > UINT32_MAX)
		return fail(e, name, "entry point 0x%llx lies beyond the 32-bit address space",
			    (unsigned long long)h->entry);
	if (h->phnum == PN_XNUM)
		return fail(e, name, "extended program header numbering (e_phnum 0xffff) is not "
				     "supported");
	if (h->phnum == 0)
		return fail(e, name, "no program headers (not a linked executable?)");
	size_t min = h->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	if (h->phentsize < min)
		return fail(e, name, "program header entry size %u, expected at least %zu", h->phentsize,
			    min);
	uint64_t table = (uint64_t)h->phnum * h->phentsize;
	if (h->phoff > len || table > len - h->phoff)
		return fail(e, name, "program header table [offset 0x%llx, %u entries of %u bytes] runs "
				     "past the end of the file (%zu bytes)",
			    (unsigned long long)h->phoff, h->phnum, h->phentsize, len);
	return 0;
}

static struct phdr read_phdr(const uint8_t *p, int is64)
{
	struct phdr ph;
	if (is64) {
		ph.type = (uint32_t)FIELD(p, Elf64_Phdr, p_type);
		ph.offset = FIELD(p, Elf64_Phdr, p_offset);
		ph.paddr = FIELD(p, Elf64_Phdr, p_paddr);
		ph.filesz = FIELD(p, Elf64_Phdr, p_filesz);
		ph.memsz = FIELD(p, Elf64_Phdr, p_memsz);
	} else {
		ph.type = (uint32_t)FIELD(p, Elf32_Phdr, p_type);
		ph.offset = FIELD(p, Elf32_Phdr, p_offset);
		ph.paddr = FIELD(p, Elf32_Phdr, p_paddr);
		ph.filesz = FIELD(p, Elf32_Phdr, p_filesz);
		ph.memsz = FIELD(p, Elf32_Phdr, p_memsz);
	}
	return ph;
}

static int add_segment(const uint8_t *p, size_t len, const char *name, uint32_t i,
		       const struct phdr *ph, struct farm_image *img, struct farm_err *e)
{
	if (ph->offset > len || ph->filesz > len - ph->offset)
		return fail(e, name, "program header %u: segment [offset 0x%llx, size 0x%llx] runs past "
				     "the end of the file (%zu bytes)",
			    i, (unsigned long long)ph->offset, (unsigned long long)ph->filesz, len);
	if (ph->filesz > ph->memsz)
		return fail(e, name, "program header %u: file size 0x%llx is larger than the memory size "
				     "0x%llx", i, (unsigned long long)ph->filesz,
			    (unsigned long long)ph->memsz);
	if (ph->paddr > UINT32_MAX || ph->filesz > 0x100000000ull - ph->paddr)
		return fail(e, name, "program header %u: segment [address 0x%llx, size 0x%llx] lies "
				     "beyond the 32-bit address space", i,
			    (unsigned long long)ph->paddr, (unsigned long long)ph->filesz);
	int rc = farm_image_add(img, (uint32_t)ph->paddr, p + ph->offset, (size_t)ph->filesz, e);
	if (rc)
		farm_err_prefix(e, "%s: program header %u", name, i);
	return rc;
}

int farm_image_parse_elf(struct farm_image **out, const void *data, size_t len, const char *name,
			 struct farm_err *e)
{
	*out = NULL;
	if (len > FARM_IMAGE_MAX_BYTES)
		return farm_err_set(e, FARM_ELIMIT, "%s: file is %zu bytes, larger than the %u-byte limit",
				    name, len, (unsigned)FARM_IMAGE_MAX_BYTES);
	const uint8_t *p = data;
	struct ehdr h = {0};
	int rc = read_ehdr(p, len, name, &h, e);
	if (rc)
		return rc;
	struct farm_image *img = NULL;
	rc = farm_image_new(&img, FARM_IMG_ELF, e);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < h.phnum && !rc; i++) {
		struct phdr ph = read_phdr(p + h.phoff + (uint64_t)i * h.phentsize, h.is64);
		if (ph.type == PT_LOAD && ph.filesz > 0)
			rc = add_segment(p, len, name, i, &ph, img, e);
	}
	if (!rc && img->n_segs == 0)
		rc = fail(e, name, "no loadable segment with file data (PT_LOAD with p_filesz > 0)");
	if (rc) {
		farm_image_free(img);
		return rc;
	}
	img->has_entry = h.entry != 0;
	img->entry = (uint32_t)h.entry;
	*out = img;
	return 0;
}
