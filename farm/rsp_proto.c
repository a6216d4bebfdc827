/* mpfarm: GDB Remote Serial Protocol, the pure helpers (no I/O): framing,
 * binary escaping, decoding of received packets (escapes and run-length
 * encoding), the memory-map XML and the CRC that qCRC computes.
 * Protocol facts: shared/protocols/gdb-rsp-flash.md. */
#include "rsp.h"

#include <stdio.h>
#include <string.h>

static const char hexdig[] = "0123456789abcdef";

static int buf_code(int rc)
{
	return rc == FARM_ELIMIT ? FARM_ELIMIT : FARM_ENOMEM;
}

int farm_rsp_frame(struct farm_buf *out, const void *data, size_t len)
{
	const unsigned char *p = data;
	unsigned sum = 0;
	for (size_t i = 0; i < len; i++)
		sum += p[i];
	char tail[3] = { '#', hexdig[(sum >> 4) & 15], hexdig[sum & 15] };
	int rc = farm_buf_append(out, "$", 1);
	if (!rc && len)
		rc = farm_buf_append(out, data, len);
	if (!rc)
		rc = farm_buf_append(out, tail, sizeof tail);
	return rc ? buf_code(rc) : 0;
}

static int needs_escape(unsigned char c)
{
	return c == '#' || c == '$' || c == '}' || c == '*';
}

int farm_rsp_escape(struct farm_buf *out, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i = 0;
	while (i < len) {
		size_t j = i;
		while (j < len && !needs_escape(p[j]))
			j++;
		if (j > i) {
			int rc = farm_buf_append(out, p + i, j - i);
			if (rc)
				return buf_code(rc);
		}
		if (j == len)
			break;
		char esc[2] = { '}', (char)(p[j] ^ 0x20) };
		int rc = farm_buf_append(out, esc, 2);
		if (rc)
			return buf_code(rc);
		i = j + 1;
	}
	return 0;
}

static int decode_fail(struct farm_err *e, int rc, size_t limit)
{
	if (rc == FARM_ELIMIT)
		return farm_err_set(e, FARM_ELIMIT, "packet longer than %zu bytes once decoded", limit);
	return farm_err_set(e, FARM_ENOMEM, "out of memory decoding a packet");
}

int farm_rsp_decode(struct farm_buf *out, const void *data, size_t len, struct farm_err *e)
{
	const unsigned char *p = data;
	const size_t base = out->len;
	const size_t limit = FARM_RSP_MAX_PACKET;
	size_t i = 0;
	int rc;
	while (i < len) {
		size_t j = i;
		while (j < len && p[j] != '}' && p[j] != '*')
			j++;
		if (j > i) {
			if (out->len - base + (j - i) > limit)
				return decode_fail(e, FARM_ELIMIT, limit);
			if ((rc = farm_buf_append(out, p + i, j - i)))
				return decode_fail(e, rc, limit);
		}
		if (j == len)
			break;
		if (j + 1 >= len)
			return farm_err_set(e, FARM_EPROTO, "dangling '%c' at the end of a packet", p[j]);
		if (p[j] == '}') {
			unsigned char c = p[j + 1] ^ 0x20;
			if (out->len - base + 1 > limit)
				return decode_fail(e, FARM_ELIMIT, limit);
			if ((rc = farm_buf_append(out, &c, 1)))
				return decode_fail(e, rc, limit);
		} else {
			/* Run-length: the previous character repeated (n - 29) more times.
			 * GDB accepts any count character from 30 (one repeat) up. */
			unsigned n = p[j + 1];
			if (out->len == base)
				return farm_err_set(e, FARM_EPROTO,
						    "run-length marker '*' at offset %zu with nothing to repeat", j);
			if (n < 30)
				return farm_err_set(e, FARM_EPROTO,
						    "bad run length 0x%02x after '*' at offset %zu", n, j);
			size_t rep = n - 29;
			if (out->len - base + rep > limit)
				return decode_fail(e, FARM_ELIMIT, limit);
			char run[256];
			memset(run, out->data[out->len - 1], rep);
			if ((rc = farm_buf_append(out, run, rep)))
				return decode_fail(e, rc, limit);
		}
		i = j + 2;
	}
	return 0;
}

/* CRC-32 as OpenOCD's qCRC computes it: MSB first, poly 0x04C11DB7, one nibble at a time. */
static const uint32_t crc_nibble[16] = {
	0x00000000, 0x04c11db7, 0x09823b6e, 0x0d4326d9, 0x130476dc, 0x17c56b6b,
	0x1a864db2, 0x1e475005, 0x2608edb8, 0x22c9f00f, 0x2f8ad6d6, 0x2b4bcb61,
	0x350c9b64, 0x31cd86d3, 0x3c8ea00a, 0x384fbdbd,
};

uint32_t farm_rsp_crc32(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		crc = (crc << 4) ^ crc_nibble[(crc >> 28) ^ (p[i] >> 4)];
		crc = (crc << 4) ^ crc_nibble[(crc >> 28) ^ (p[i] & 15)];
	}
	return crc;
}

/* ---- memory-map XML: a tiny bounded parser for GDB's memory-map DTD ---- */

#define XML_MAX_ATTRS 8
#define XML_MAX_DEPTH 16

struct xml {
	const char *doc, *p, *end;
	struct farm_err *e;
};

struct xattr {
	const char *name, *val;
	size_t nlen, vlen;
};

struct xtag {
	const char *at;   /* the '<' */
	const char *name;
	size_t nlen;
	int closing;      /* </name> */
	int empty;        /* <name/> */
	struct xattr attrs[XML_MAX_ATTRS];
	size_t n_attrs;
};

static int xml_fail(struct xml *x, const char *at, const char *what)
{
	char snip[72];
	size_t n = 0;
	if (at) {
		for (const char *s = at; s < x->end && n < sizeof snip - 4; s++) {
			unsigned char c = (unsigned char)*s;
			snip[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : ' ';
			if (c == '>')
				break;
		}
		if (n == sizeof snip - 4)
			snip[n++] = '.', snip[n++] = '.', snip[n++] = '.';
	}
	snip[n] = '\0';
	if (at)
		return farm_err_set(x->e, FARM_EPROTO, "memory map, offset %zu: %s: %s",
				    (size_t)(at - x->doc), snip, what);
	return farm_err_set(x->e, FARM_EPROTO, "memory map: %s", what);
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
	       c == '-' || c == '.' || c == ':';
}

static void skip_space(struct xml *x)
{
	while (x->p < x->end && is_space(*x->p))
		x->p++;
}

static int starts(const struct xml *x, const char *s)
{
	size_t n = strlen(s);
	return (size_t)(x->end - x->p) >= n && !memcmp(x->p, s, n);
}

/* Skip to just past `term`; fails at the end of input. */
static int skip_past(struct xml *x, const char *term, const char *what)
{
	const char *at = x->p;
	size_t n = strlen(term);
	while ((size_t)(x->end - x->p) >= n) {
		if (!memcmp(x->p, term, n)) {
			x->p += n;
			return 0;
		}
		x->p++;
	}
	return xml_fail(x, at, what);
}

/* <!DOCTYPE ...> with an optional [internal subset]. */
static int skip_doctype(struct xml *x)
{
	const char *at = x->p;
	int in_subset = 0;
	char quote = 0;
	for (; x->p < x->end; x->p++) {
		char c = *x->p;
		if (quote) {
			if (c == quote)
				quote = 0;
		} else if (c == '"' || c == '\'') {
			quote = c;
		} else if (c == '[') {
			in_subset = 1;
		} else if (c == ']') {
			in_subset = 0;
		} else if (c == '>' && !in_subset) {
			x->p++;
			return 0;
		}
	}
	return xml_fail(x, at, "unterminated DOCTYPE");
}

/* Skip whitespace, comments and processing instructions; prolog also DOCTYPE. */
static int skip_misc(struct xml *x, int prolog)
{
	for (;;) {
		skip_space(x);
		int rc = 0;
		if (starts(x, "<!--")) {
			rc = skip_past(x, "-->", "unterminated comment");
		} else if (starts(x, "<?")) {
			rc = skip_past(x, "?>", "unterminated processing instruction");
		} else if (prolog && starts(x, "<!DOCTYPE")) {
			rc = skip_doctype(x);
		} else {
			return 0;
		}
		if (rc)
			return rc;
	}
}

/* Parse a tag at x->p (which is '<'). */
static int read_tag(struct xml *x, struct xtag *t)
{
	memset(t, 0, sizeof *t);
	t->at = x->p;
	x->p++;
	if (x->p < x->end && *x->p == '/') {
		t->closing = 1;
		x->p++;
	}
	t->name = x->p;
	while (x->p < x->end && is_name_char(*x->p))
		x->p++;
	t->nlen = (size_t)(x->p - t->name);
	if (x->p >= x->end)
		return xml_fail(x, t->at, "unterminated tag");
	if (t->nlen == 0)
		return xml_fail(x, t->at, "bad tag name");
	for (;;) {
		skip_space(x);
		if (x->p >= x->end)
			return xml_fail(x, t->at, "unterminated tag");
		if (*x->p == '>') {
			x->p++;
			return 0;
		}
		if (*x->p == '/' && !t->closing) {
			if (x->p + 1 >= x->end || x->p[1] != '>')
				return xml_fail(x, t->at, "stray '/' in tag");
			t->empty = 1;
			x->p += 2;
			return 0;
		}
		if (t->closing)
			return xml_fail(x, t->at, "attributes in a closing tag");
		struct xattr a = { .name = x->p };
		while (x->p < x->end && is_name_char(*x->p))
			x->p++;
		a.nlen = (size_t)(x->p - a.name);
		if (a.nlen == 0)
			return xml_fail(x, t->at, "bad attribute");
		skip_space(x);
		if (x->p >= x->end || *x->p != '=')
			return xml_fail(x, t->at, "attribute without '='");
		x->p++;
		skip_space(x);
		if (x->p >= x->end || (*x->p != '"' && *x->p != '\''))
			return xml_fail(x, t->at, "attribute value without quotes");
		char q = *x->p++;
		a.val = x->p;
		while (x->p < x->end && *x->p != q && *x->p != '<')
			x->p++;
		if (x->p >= x->end || *x->p != q)
			return xml_fail(x, t->at, "unterminated attribute value");
		a.vlen = (size_t)(x->p - a.val);
		x->p++;
		if (t->n_attrs == XML_MAX_ATTRS)
			return xml_fail(x, t->at, "more than 8 attributes");
		t->attrs[t->n_attrs++] = a;
	}
}

static int name_is(const char *s, size_t n, const char *want)
{
	return strlen(want) == n && !memcmp(s, want, n);
}

static const struct xattr *attr(const struct xtag *t, const char *name)
{
	for (size_t i = 0; i < t->n_attrs; i++)
		if (name_is(t->attrs[i].name, t->attrs[i].nlen, name))
			return &t->attrs[i];
	return NULL;
}

/* A number as GDB reads it (strtoulst base 0: 0x hex, leading 0 octal,
 * else decimal), surrounding whitespace allowed. Fails on overflow. */
static int parse_num(const char *s, size_t n, uint64_t *out)
{
	while (n && is_space(*s))
		s++, n--;
	while (n && is_space(s[n - 1]))
		n--;
	if (n == 0)
		return -1;
	unsigned base = 10;
	if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		base = 16, s += 2, n -= 2;
	else if (n > 1 && s[0] == '0')
		base = 8, s++, n--;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned d;
		char c = s[i];
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return -1;
		if (d >= base || v > (UINT64_MAX - d) / base)
			return -1;
		v = v * base + d;
	}
	*out = v;
	return 0;
}

/* Skip the content of an element we do not know, up to its closing tag. */
static int skip_element(struct xml *x, const struct xtag *open)
{
	const char *names[XML_MAX_DEPTH];
	size_t lens[XML_MAX_DEPTH];
	size_t depth = 1;
	names[0] = open->name;
	lens[0] = open->nlen;
	while (depth > 0) {
		while (x->p < x->end && *x->p != '<')
			x->p++;
		if (x->p >= x->end)
			return xml_fail(x, open->at, "unterminated element");
		if (starts(x, "<!--") || starts(x, "<?")) {
			int rc = skip_misc(x, 0);
			if (rc)
				return rc;
			continue;
		}
		struct xtag t;
		int rc = read_tag(x, &t);
		if (rc)
			return rc;
		if (t.closing) {
			if (t.nlen != lens[depth - 1] || memcmp(t.name, names[depth - 1], t.nlen))
				return xml_fail(x, t.at, "mismatched closing tag");
			depth--;
		} else if (!t.empty) {
			if (depth == XML_MAX_DEPTH)
				return xml_fail(x, t.at, "elements nested too deeply");
			names[depth] = t.name;
			lens[depth] = t.nlen;
			depth++;
		}
	}
	return 0;
}

/* Text up to the next '<'. */
static void read_text(struct xml *x, const char **s, size_t *n)
{
	*s = x->p;
	while (x->p < x->end && *x->p != '<')
		x->p++;
	*n = (size_t)(x->p - *s);
}

/* The content of a <memory> element: <property name="blocksize">N</property>. */
static int read_memory_body(struct xml *x, const struct xtag *mem, uint64_t *blocksize)
{
	for (;;) {
		const char *txt;
		size_t tl;
		read_text(x, &txt, &tl);
		int rc = skip_misc(x, 0);
		if (rc)
			return rc;
		if (x->p < x->end && *x->p != '<')
			continue;
		if (x->p >= x->end)
			return xml_fail(x, mem->at, "unterminated <memory> element");
		struct xtag t;
		if ((rc = read_tag(x, &t)))
			return rc;
		if (t.closing) {
			if (!name_is(t.name, t.nlen, "memory"))
				return xml_fail(x, t.at, "mismatched closing tag (expected </memory>)");
			return 0;
		}
		if (!name_is(t.name, t.nlen, "property")) {
			if (!t.empty && (rc = skip_element(x, &t)))
				return rc;
			continue;
		}
		const struct xattr *pn = attr(&t, "name");
		if (!pn)
			return xml_fail(x, t.at, "<property> without name");
		if (t.empty)
			continue;
		const char *val;
		size_t vl;
		read_text(x, &val, &vl);
		struct xtag c;
		if (x->p >= x->end)
			return xml_fail(x, t.at, "unterminated <property>");
		if ((rc = read_tag(x, &c)))
			return rc;
		if (!c.closing || !name_is(c.name, c.nlen, "property"))
			return xml_fail(x, c.at, "expected </property>");
		if (name_is(pn->val, pn->vlen, "blocksize")) {
			if (parse_num(val, vl, blocksize) || *blocksize == 0 || *blocksize > UINT32_MAX)
				return xml_fail(x, t.at, "bad blocksize");
		}
	}
}

static int add_region(struct xml *x, const struct xtag *t, uint64_t blocksize,
		      struct farm_rsp_region *regions, size_t max, size_t *n)
{
	const struct xattr *ty = attr(t, "type"), *st = attr(t, "start"), *ln = attr(t, "length");
	if (!ty || !st || !ln)
		return xml_fail(x, t->at, "<memory> needs type, start and length");
	struct farm_rsp_region r = { 0 };
	if (name_is(ty->val, ty->vlen, "flash"))
		r.is_flash = 1;
	else if (name_is(ty->val, ty->vlen, "ram"))
		r.is_ram = 1;
	else if (name_is(ty->val, ty->vlen, "rom"))
		r.is_rom = 1;
	else
		return xml_fail(x, t->at, "unknown memory type");
	uint64_t start, length;
	if (parse_num(st->val, st->vlen, &start))
		return xml_fail(x, t->at, "bad start address");
	if (parse_num(ln->val, ln->vlen, &length))
		return xml_fail(x, t->at, "bad length");
	if (length == 0)
		return xml_fail(x, t->at, "zero length");
	if (start + length < start)
		return xml_fail(x, t->at, "address range wraps around");
	if (r.is_flash && blocksize == 0)
		return xml_fail(x, t->at, "flash without a blocksize property");
	const uint64_t top = (uint64_t)UINT32_MAX + 1;
	if (start >= top)
		return 0; /* beyond a 32-bit address space: not ours to write */
	if (start + length > top)
		length = top - start; /* OpenOCD fills up to the end with ram */
	if (length > UINT32_MAX)
		length = UINT32_MAX;
	if (*n == max)
		return farm_err_set(x->e, FARM_ELIMIT, "memory map has more than %zu regions", max);
	r.start = (uint32_t)start;
	r.length = (uint32_t)length;
	r.blocksize = r.is_flash ? (uint32_t)blocksize : 0;
	regions[(*n)++] = r;
	return 0;
}

int farm_rsp_parse_memory_map(const char *xml, size_t len, struct farm_rsp_region *regions,
			      size_t max, size_t *n, struct farm_err *e)
{
	struct xml x = { .doc = xml, .p = xml, .end = xml + len, .e = e };
	*n = 0;
	/* A trailing NUL is allowed (the reply buffer is a C string). */
	while (x.end > x.p && x.end[-1] == '\0')
		x.end--;
	int rc = skip_misc(&x, 1);
	if (rc)
		return rc;
	if (x.p >= x.end || *x.p != '<')
		return xml_fail(&x, x.p < x.end ? x.p : NULL, "expected <memory-map>");
	struct xtag root;
	if ((rc = read_tag(&x, &root)))
		return rc;
	if (root.closing || !name_is(root.name, root.nlen, "memory-map"))
		return xml_fail(&x, root.at, "the root element is not <memory-map>");
	int done = root.empty;
	while (!done) {
		const char *txt;
		size_t tl;
		read_text(&x, &txt, &tl);
		if ((rc = skip_misc(&x, 0)))
			return rc;
		if (x.p < x.end && *x.p != '<')
			continue;
		if (x.p >= x.end)
			return xml_fail(&x, root.at, "unterminated <memory-map>");
		struct xtag t;
		if ((rc = read_tag(&x, &t)))
			return rc;
		if (t.closing) {
			if (!name_is(t.name, t.nlen, "memory-map"))
				return xml_fail(&x, t.at, "mismatched closing tag");
			done = 1;
		} else if (name_is(t.name, t.nlen, "memory")) {
			uint64_t blocksize = 0;
			if (!t.empty && (rc = read_memory_body(&x, &t, &blocksize)))
				return rc;
			if ((rc = add_region(&x, &t, blocksize, regions, max, n)))
				return rc;
		} else if (!t.empty && (rc = skip_element(&x, &t))) {
			return rc;
		}
	}
	if ((rc = skip_misc(&x, 0)))
		return rc;
	if (x.p < x.end)
		return xml_fail(&x, x.p, "content after </memory-map>");
	/* Address order (insertion sort: at most FARM_RSP_MAX_REGIONS), no overlaps. */
	for (size_t i = 1; i < *n; i++) {
		struct farm_rsp_region r = regions[i];
		size_t j = i;
		while (j > 0 && regions[j - 1].start > r.start) {
			regions[j] = regions[j - 1];
			j--;
		}
		regions[j] = r;
	}
	for (size_t i = 1; i < *n; i++) {
		uint64_t prev_end = (uint64_t)regions[i - 1].start + regions[i - 1].length;
		if (prev_end > regions[i].start) {
			uint32_t a = regions[i - 1].start, b = regions[i].start;
			*n = 0;
			return farm_err_set(e, FARM_EPROTO,
					    "memory map: regions at 0x%08x and 0x%08x overlap", a, b);
		}
	}
	return 0;
}
