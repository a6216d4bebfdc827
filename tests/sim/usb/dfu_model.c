/* dfu_model: a USB DFU 1.1 / ST DfuSe device on endpoint 0 (see dfu_model.h).
 *
 * Memory: every alt setting owns the regions of its DfuSe memory string
 * ("@Internal Flash  /0x08000000/04*016Kg,01*064Kg"), each region a buffer
 * of consecutive segments of pages with readable/erasable/writable flags;
 * a plain DFU alt whose name is no memory string owns plain_size bytes at 0.
 * Flash starts erased (0xFF); a write needs its bytes erased (errWRITE).
 *
 * Requests are checked against the DFU 1.1 state table; a request the state
 * does not allow is STALLed and leaves the device in dfuERROR/errSTALLEDPKT,
 * as STM32 devices do. DNLOAD work runs on the first GETSTATUS, which reports
 * dfuDNBUSY with bwPollTimeout; the next GETSTATUS reports the result. A
 * GETSTATUS sooner than the reported poll timeout is logged as a violation. */
#include "dfu_model.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REGION 8
#define MAX_SEG 16
#define MAX_MEM (16u << 20)      /* bytes of memory per model at most */
#define MEM_READ 1
#define MEM_ERASE 2
#define MEM_WRITE 4

/* DFU class requests */
enum { REQ_DETACH, REQ_DNLOAD, REQ_UPLOAD, REQ_GETSTATUS, REQ_CLRSTATUS, REQ_GETSTATE, REQ_ABORT };

struct seg {
	uint32_t start, page_size, pages;
	int flags;
};

struct region {
	uint32_t addr, len;
	uint8_t *mem;
	int nseg;
	struct seg seg[MAX_SEG];
};

struct alt {
	int nreg;
	struct region reg[MAX_REGION];
};

enum pending { PEND_NONE, PEND_COMMAND, PEND_DATA };

struct dfu_model {
	struct dfu_model_config cfg;
	dfu_model_log_fn log;
	void *payload;
	struct alt alt[DFU_MODEL_MAX_ALT];
	struct dfu_model_info st;
	/* the request DNLOAD stored for the next GETSTATUS */
	int pending;
	uint16_t block;
	uint8_t *buf;
	size_t buf_len;
	int busy_status;            /* result of the work reported after DNBUSY */
	int busy_erase;             /* the work was an erase */
	long long busy_until;       /* stall-erase: GETSTATUS stalls until then */
	int leave_after_status;     /* read unprotect: reset after the report */
	/* the last bwPollTimeout reported, to check the host waited */
	int poll_armed;
	long long poll_from;
	uint32_t poll_ms;
	/* plain DFU streams */
	int dn_fresh;
	uint32_t dn_off, up_off;
};

/* ----------------------------------------------------------------- helpers */

static void mlog(struct dfu_model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mlog(struct dfu_model *m, const char *fmt, ...)
{
	if (!m->log)
		return;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	m->log(m->payload, line);
}

static void set_err(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...)
{
	if (!err || !len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static const char *const state_names[] = {
	"appIDLE", "appDETACH", "dfuIDLE", "dfuDNLOAD-SYNC", "dfuDNBUSY", "dfuDNLOAD-IDLE",
	"dfuMANIFEST-SYNC", "dfuMANIFEST", "dfuMANIFEST-WAIT-RESET", "dfuUPLOAD-IDLE", "dfuERROR",
};

static const char *const status_names[] = {
	"OK", "errTARGET", "errFILE", "errWRITE", "errERASE", "errCHECK_ERASED", "errPROG", "errVERIFY",
	"errADDRESS", "errNOTDONE", "errFIRMWARE", "errVENDOR", "errUSBR", "errPOR", "errUNKNOWN",
	"errSTALLEDPKT",
};

const char *dfu_model_state_name(int state)
{
	return state >= 0 && state <= DFU_MODEL_ERROR ? state_names[state] : "?";
}

const char *dfu_model_status_name(int status)
{
	return status >= 0 && status <= DFU_MODEL_ERR_STALLEDPKT ? status_names[status] : "?";
}

/* -------------------------------------------------------------- memory map */

/* dfu-util's grammar: @NAME/0xADDR/N*SSm[T][,N*SSmT...][/0xADDR/...] */
static int parse_layout(struct alt *a, const char *s, size_t *total, char *err, size_t errlen)
{
	const char *p = strchr(s, '/');
	if (s[0] != '@' || !p) {
		set_err(err, errlen, "memory string \"%s\" does not start with @NAME/", s);
		return -1;
	}
	while (*p == '/') {
		char *end;
		unsigned long addr = strtoul(p + 1, &end, 0);
		if (end == p + 1 || *end != '/' || addr > 0xffffffffUL) {
			set_err(err, errlen, "memory string \"%s\": bad address at \"%s\"", s, p + 1);
			return -1;
		}
		if (a->nreg >= MAX_REGION) {
			set_err(err, errlen, "memory string \"%s\": more than %d regions", s, MAX_REGION);
			return -1;
		}
		struct region *r = &a->reg[a->nreg++];
		r->addr = (uint32_t)addr;
		p = end + 1;
		for (;;) {
			unsigned long n = strtoul(p, &end, 10);
			if (end == p || *end != '*' || n == 0 || n > 65536)
				goto bad;
			p = end + 1;
			unsigned long size = strtoul(p, &end, 10);
			if (end == p || size == 0)
				goto bad;
			p = end;
			if (*p == 'K')
				size *= 1024, p++;
			else if (*p == 'M')
				size *= 1048576, p++;
			else if (*p == 'B' || *p == ' ')
				p++;
			int flags = MEM_READ | MEM_ERASE | MEM_WRITE;
			if (*p >= 'a' && *p <= 'g')
				flags = (*p++ - 'a' + 1) & 7;
			if (r->nseg >= MAX_SEG || size > MAX_MEM || n * size > MAX_MEM ||
			    *total + r->len + n * size > MAX_MEM) {
				set_err(err, errlen, "memory string \"%s\": more than %u bytes or %d segments", s,
					MAX_MEM, MAX_SEG);
				return -1;
			}
			r->seg[r->nseg++] = (struct seg){.start = r->addr + r->len, .page_size = (uint32_t)size,
							 .pages = (uint32_t)n, .flags = flags};
			r->len += (uint32_t)(n * size);
			if (*p != ',')
				break;
			p++;
		}
		*total += r->len;
		while (*p == ' ')
			p++;
		if (*p && *p != '/')
			goto bad;
	}
	return 0;
bad:
	set_err(err, errlen, "memory string \"%s\": bad segment at \"%s\"", s, p);
	return -1;
}

static struct region *find_region(const struct dfu_model *m, unsigned alt, uint32_t addr, size_t len)
{
	if (alt >= (unsigned)m->cfg.n_alt)
		return NULL;
	const struct alt *a = &m->alt[alt];
	for (int i = 0; i < a->nreg; i++) {
		const struct region *r = &a->reg[i];
		if (addr >= r->addr && (uint64_t)addr + len <= (uint64_t)r->addr + r->len)
			return (struct region *)r;
	}
	return NULL;
}

static const struct seg *find_seg(const struct region *r, uint32_t addr)
{
	for (int i = 0; i < r->nseg; i++) {
		const struct seg *s = &r->seg[i];
		if (addr >= s->start && (uint64_t)addr < (uint64_t)s->start + (uint64_t)s->pages * s->page_size)
			return s;
	}
	return NULL;
}

/* Every segment touched by [addr, addr+len) has all of flags. */
static int range_has(const struct region *r, uint32_t addr, size_t len, int flags)
{
	for (uint64_t a = addr; a < (uint64_t)addr + len;) {
		const struct seg *s = find_seg(r, (uint32_t)a);
		if (!s || (s->flags & flags) != flags)
			return 0;
		a = (uint64_t)s->start + (uint64_t)s->pages * s->page_size;
	}
	return 1;
}

/* ---------------------------------------------------------------- config */

void dfu_model_config_init(struct dfu_model_config *cfg, int dfuse)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->dfuse = dfuse;
	cfg->n_alt = 1;
	cfg->detach_timeout = 255;
	cfg->poll_ms = 1;
	cfg->erase_poll_ms = 5;
	cfg->plain_size = 256 * 1024;
	if (dfuse) {
		cfg->vid = 0x0483, cfg->pid = 0xdf11, cfg->bcd_device = 0x2200;
		snprintf(cfg->manufacturer, sizeof cfg->manufacturer, "STMicroelectronics");
		snprintf(cfg->product, sizeof cfg->product, "STM32  BOOTLOADER");
		snprintf(cfg->serial, sizeof cfg->serial, "3276365E3333");
		snprintf(cfg->alt_name[0], sizeof cfg->alt_name[0],
			 "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg");
		cfg->transfer_size = 2048;
		cfg->attributes = DFU_MODEL_CAN_DNLOAD | DFU_MODEL_CAN_UPLOAD | DFU_MODEL_WILL_DETACH;
	} else {
		cfg->vid = 0x1209, cfg->pid = 0x2003, cfg->bcd_device = 0x0100;
		snprintf(cfg->manufacturer, sizeof cfg->manufacturer, "mpfarm");
		snprintf(cfg->product, sizeof cfg->product, "DFU bootloader");
		snprintf(cfg->serial, sizeof cfg->serial, "0001");
		snprintf(cfg->alt_name[0], sizeof cfg->alt_name[0], "Flash");
		cfg->transfer_size = 1024;
		cfg->attributes = DFU_MODEL_CAN_DNLOAD | DFU_MODEL_CAN_UPLOAD | DFU_MODEL_MANIFEST_TOLERANT;
	}
}

/* A number with an optional K/M suffix, at most max. */
static int parse_num(const char *s, int base, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, base);
	if (end == s || errno || s[0] == '-')
		return -1;
	if (*end == 'K' || *end == 'k')
		v *= 1024, end++;
	else if (*end == 'M')
		v *= 1048576, end++;
	if (*end || v > max)
		return -1;
	*out = v;
	return 0;
}

int dfu_model_faults_parse(struct dfu_model_faults *out, const char *spec, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	const char *p = spec;
	while (*p) {
		const char *e = strchr(p, '+');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char item[96];
		if (n == 0 || n >= sizeof item) {
			set_err(err, errlen, "fault spec \"%s\": empty or too long item", spec);
			return -1;
		}
		memcpy(item, p, n);
		item[n] = 0;
		char *at = strchr(item, '@');
		if (at)
			*at++ = 0;
		unsigned long v = 0, lo = 0, hi = 0;
		int ok = 1;
		if (at && (!strcmp(item, "stall") || !strcmp(item, "gone") || !strcmp(item, "hang"))) {
			ok = !parse_num(at, 0, 1u << 30, &v) && v;
			*(item[0] == 's' ? &out->stall_req : item[0] == 'g' ? &out->gone_after : &out->hang_req) =
				(unsigned)v;
		} else if (!at && !strcmp(item, "stall-erase")) {
			out->stall_erase = 1;
		} else if (!at && !strcmp(item, "errverify")) {
			out->verify = 1;
		} else if (at && !strcmp(item, "errprog")) {
			char *dash = strchr(at, '-');
			if (dash)
				*dash++ = 0;
			ok = dash && !parse_num(at, 0, 0xffffffffUL, &lo) && !parse_num(dash, 0, 0xffffffffUL, &hi) &&
			     lo < hi;
			out->prog = ok;
			out->prog_lo = (uint32_t)lo;
			out->prog_hi = (uint32_t)hi;
		} else {
			ok = 0;
		}
		if (!ok) {
			set_err(err, errlen,
				"fault spec \"%s\": bad item \"%.*s\" (want stall@N, stall-erase, "
				"errprog@0xLO-0xHI, errverify, gone@N, hang@N joined by +)",
				spec, (int)n, p);
			return -1;
		}
		p += n;
		if (*p == '+')
			p++;
	}
	return 0;
}

static int copy_str(char *dst, size_t len, const char *v)
{
	if (strlen(v) >= len)
		return -1;
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

static int apply_key(struct dfu_model_config *c, const char *k, const char *v, int *alts_seen, char *err,
		     size_t errlen)
{
	unsigned long n = 0;
	int bad = 0;
	if (!strcmp(k, "vid") || !strcmp(k, "pid") || !strcmp(k, "bcd")) {
		bad = parse_num(v, 16, 0xffff, &n);
		*(k[0] == 'v' ? &c->vid : k[0] == 'p' ? &c->pid : &c->bcd_device) = (uint16_t)n;
	} else if (!strcmp(k, "serial")) {
		bad = copy_str(c->serial, sizeof c->serial, v);
	} else if (!strcmp(k, "manufacturer")) {
		bad = copy_str(c->manufacturer, sizeof c->manufacturer, v);
	} else if (!strcmp(k, "product")) {
		bad = copy_str(c->product, sizeof c->product, v);
	} else if (!strcmp(k, "location")) {
		bad = copy_str(c->location, sizeof c->location, v);
	} else if (!strcmp(k, "personality")) {
		if (!strcmp(v, "rom"))
			c->personality = DFU_MODEL_ROM;
		else if (!strcmp(v, "mboot"))
			c->personality = DFU_MODEL_MBOOT;
		else
			bad = 1;
	} else if (!strcmp(k, "transfer")) {
		bad = parse_num(v, 0, 4096, &n) || n < 8;
		c->transfer_size = (uint16_t)n;
	} else if (!strcmp(k, "attr")) {
		bad = parse_num(v, 0, 0xff, &n);
		c->attributes = (uint8_t)n;
	} else if (!strcmp(k, "detach")) {
		bad = parse_num(v, 0, 0xffff, &n);
		c->detach_timeout = (uint16_t)n;
	} else if (!strcmp(k, "poll") || !strcmp(k, "erase_poll")) {
		bad = parse_num(v, 0, 0xffffff, &n);
		*(k[0] == 'p' ? &c->poll_ms : &c->erase_poll_ms) = (uint32_t)n;
	} else if (!strcmp(k, "size")) {
		bad = parse_num(v, 0, MAX_MEM, &n) || n == 0;
		c->plain_size = (uint32_t)n;
	} else if (!strcmp(k, "trace")) {
		bad = parse_num(v, 0, 1, &n);
		c->trace = (int)n;
	} else if (!strcmp(k, "alt") || !strcmp(k, "layout")) {
		if (!*alts_seen)
			c->n_alt = 0;
		*alts_seen = 1;
		bad = c->n_alt >= DFU_MODEL_MAX_ALT || copy_str(c->alt_name[c->n_alt], DFU_MODEL_NAME_MAX, v);
		if (!bad)
			c->n_alt++;
	} else if (!strcmp(k, "fault")) {
		return dfu_model_faults_parse(&c->faults, v, err, errlen);
	} else {
		set_err(err, errlen, "unknown key \"%s\"", k);
		return -1;
	}
	if (bad) {
		set_err(err, errlen, "bad value for %s: \"%s\"", k, v);
		return -1;
	}
	return 0;
}

/* A piece "key=value" starts a key when key is [a-z_]+. */
static int starts_key(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && (islower((unsigned char)p[i]) || p[i] == '_'))
		i++;
	return i > 0 && i < n && p[i] == '=';
}

int dfu_model_config_parse(struct dfu_model_config *cfg, const char *spec, char *err, size_t errlen)
{
	const char *colon = strchr(spec, ':');
	size_t kl = colon ? (size_t)(colon - spec) : strlen(spec);
	if (kl == 5 && !strncmp(spec, "dfuse", 5))
		dfu_model_config_init(cfg, 1);
	else if (kl == 3 && !strncmp(spec, "dfu", 3))
		dfu_model_config_init(cfg, 0);
	else {
		set_err(err, errlen, "device kind \"%.*s\": want dfuse or dfu", (int)kl, spec);
		return -1;
	}
	if (!colon)
		return 0;
	int alts_seen = 0;
	const char *p = colon + 1;
	while (*p) {
		/* the value runs to the next ',' that starts a key */
		const char *eq = strchr(p, '=');
		size_t first = strcspn(p, ",");
		if (!starts_key(p, first) || !eq) {
			set_err(err, errlen, "device spec: \"%.*s\" is not key=value", (int)first, p);
			return -1;
		}
		char key[32], val[DFU_MODEL_NAME_MAX + 64];
		size_t klen = (size_t)(eq - p);
		if (klen >= sizeof key) {
			set_err(err, errlen, "device spec: key too long");
			return -1;
		}
		memcpy(key, p, klen);
		key[klen] = 0;
		const char *v = eq + 1, *q = v;
		for (;;) {
			q += strcspn(q, ",");
			if (!*q || starts_key(q + 1, strcspn(q + 1, ",")))
				break;
			q++;
		}
		size_t vl = (size_t)(q - v);
		if (vl >= sizeof val) {
			set_err(err, errlen, "device spec: value of %s too long", key);
			return -1;
		}
		memcpy(val, v, vl);
		val[vl] = 0;
		if (apply_key(cfg, key, val, &alts_seen, err, errlen) < 0)
			return -1;
		p = *q ? q + 1 : q;
	}
	return 0;
}

/* ------------------------------------------------------------ lifecycle */

struct dfu_model *dfu_model_new(const struct dfu_model_config *cfg, dfu_model_log_fn log, void *payload,
				char *err, size_t errlen)
{
	if (cfg->n_alt < 1 || cfg->n_alt > DFU_MODEL_MAX_ALT || cfg->transfer_size < 8) {
		set_err(err, errlen, "need 1..%d alt settings and a transfer size >= 8", DFU_MODEL_MAX_ALT);
		return NULL;
	}
	struct dfu_model *m = calloc(1, sizeof *m);
	if (!m) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	m->cfg = *cfg;
	m->log = log;
	m->payload = payload;
	m->st.state = DFU_MODEL_IDLE;
	m->buf = malloc(cfg->transfer_size);
	if (!m->buf)
		goto nomem;
	size_t total = 0;
	for (int i = 0; i < cfg->n_alt; i++) {
		struct alt *a = &m->alt[i];
		const char *name = cfg->alt_name[i];
		if (name[0] == '@') {
			if (parse_layout(a, name, &total, err, errlen) < 0)
				goto fail;
		} else {
			if (cfg->dfuse) {
				set_err(err, errlen, "DfuSe alt %d: \"%s\" is not a memory string (@NAME/0xADDR/...)",
					i, name);
				goto fail;
			}
			if (total + cfg->plain_size > MAX_MEM || cfg->plain_size == 0) {
				set_err(err, errlen, "plain DFU size %u: want 1..%u bytes in all", cfg->plain_size,
					MAX_MEM);
				goto fail;
			}
			a->nreg = 1;
			a->reg[0].len = cfg->plain_size;
			a->reg[0].nseg = 1;
			a->reg[0].seg[0] = (struct seg){.start = 0, .page_size = cfg->plain_size, .pages = 1,
							.flags = MEM_READ | MEM_ERASE | MEM_WRITE};
			total += cfg->plain_size;
		}
		for (int r = 0; r < a->nreg; r++) {
			a->reg[r].mem = malloc(a->reg[r].len);
			if (!a->reg[r].mem)
				goto nomem;
			memset(a->reg[r].mem, 0xff, a->reg[r].len);
		}
	}
	return m;
nomem:
	set_err(err, errlen, "out of memory");
fail:
	dfu_model_free(m);
	return NULL;
}

void dfu_model_free(struct dfu_model *m)
{
	if (!m)
		return;
	for (int i = 0; i < DFU_MODEL_MAX_ALT; i++)
		for (int r = 0; r < m->alt[i].nreg; r++)
			free(m->alt[i].reg[r].mem);
	free(m->buf);
	free(m);
}

void dfu_model_set_faults(struct dfu_model *m, const struct dfu_model_faults *f)
{
	m->cfg.faults = *f;
}

const struct dfu_model_config *dfu_model_get_config(const struct dfu_model *m) { return &m->cfg; }

/* ----------------------------------------------------------- descriptors */

int dfu_model_device_descriptor(const struct dfu_model *m, uint8_t *buf, size_t len)
{
	if (len < 18)
		return -1;
	const struct dfu_model_config *c = &m->cfg;
	uint8_t d[18] = {18, 1, 0x00, 0x02, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 1, 2, 3, 1};
	put16(d + 8, c->vid);
	put16(d + 10, c->pid);
	put16(d + 12, c->bcd_device);
	memcpy(buf, d, sizeof d);
	return 18;
}

static void functional_descriptor(const struct dfu_model *m, uint8_t *p)
{
	p[0] = 9;
	p[1] = 0x21;
	p[2] = m->cfg.attributes;
	put16(p + 3, m->cfg.detach_timeout);
	put16(p + 5, m->cfg.transfer_size);
	put16(p + 7, m->cfg.dfuse ? 0x011a : 0x0110);
}

int dfu_model_config_descriptor(const struct dfu_model *m, uint8_t *buf, size_t len)
{
	size_t total = 9 + 9 * (size_t)m->cfg.n_alt + 9;
	if (len < total)
		return -1;
	uint8_t *p = buf;
	p[0] = 9, p[1] = 2;
	put16(p + 2, (unsigned)total);
	p[4] = 1, p[5] = 1, p[6] = 0, p[7] = 0x80, p[8] = 50;
	p += 9;
	for (int i = 0; i < m->cfg.n_alt; i++, p += 9) {
		const uint8_t in[9] = {9, 4, 0, (uint8_t)i, 0, 0xfe, 0x01, 0x02, (uint8_t)(4 + i)};
		memcpy(p, in, sizeof in);
	}
	functional_descriptor(m, p);
	return (int)total;
}

static int string_descriptor(const struct dfu_model *m, unsigned index, uint8_t *buf, size_t len)
{
	uint8_t d[255] = {4, 3, 0x09, 0x04}; /* index 0: US English */
	const char *s = NULL;
	if (index == 1)
		s = m->cfg.manufacturer;
	else if (index == 2)
		s = m->cfg.product;
	else if (index == 3)
		s = m->cfg.serial;
	else if (index >= 4 && index < 4 + (unsigned)m->cfg.n_alt)
		s = m->cfg.alt_name[index - 4];
	else if (index != 0)
		return -EPIPE;
	if (s) {
		size_t n = strlen(s) > 126 ? 126 : strlen(s);
		d[0] = (uint8_t)(2 + 2 * n);
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)s[i];
			d[2 + 2 * i] = c < 0x80 ? c : '?';
			d[3 + 2 * i] = 0;
		}
	}
	size_t l = d[0] < len ? d[0] : len;
	memcpy(buf, d, l);
	return (int)l;
}

static int get_descriptor(struct dfu_model *m, unsigned value, uint8_t *data, size_t wlen)
{
	uint8_t d[9 + 9 * DFU_MODEL_MAX_ALT + 9];
	int n;
	switch (value >> 8) {
	case 1:
		n = dfu_model_device_descriptor(m, d, sizeof d);
		break;
	case 2:
		if ((value & 0xff) != 0)
			return -EPIPE;
		n = dfu_model_config_descriptor(m, d, sizeof d);
		break;
	case 3:
		return string_descriptor(m, value & 0xff, data, wlen);
	case 0x21:
		functional_descriptor(m, d);
		n = 9;
		break;
	default:
		return -EPIPE;
	}
	size_t l = (size_t)n < wlen ? (size_t)n : wlen;
	memcpy(data, d, l);
	return (int)l;
}

/* -------------------------------------------------------------- DFU work */

/* A request the state does not allow: STALL, dfuERROR/errSTALLEDPKT. */
static int proto_stall(struct dfu_model *m, const char *what)
{
	mlog(m, "stall (%s in %s)", what, dfu_model_state_name(m->st.state));
	m->st.stalls++;
	m->st.state = DFU_MODEL_ERROR;
	m->st.status = DFU_MODEL_ERR_STALLEDPKT;
	return -EPIPE;
}

static void erase_range(struct region *r, const struct seg *s, uint32_t page)
{
	memset(r->mem + (page - r->addr), 0xff, s->page_size);
}

static void mass_erase(struct dfu_model *m)
{
	struct alt *a = &m->alt[m->st.alt];
	for (int i = 0; i < a->nreg; i++)
		for (int k = 0; k < a->reg[i].nseg; k++) {
			const struct seg *s = &a->reg[i].seg[k];
			if (s->flags & MEM_ERASE)
				memset(a->reg[i].mem + (s->start - a->reg[i].addr), 0xff,
				       (size_t)s->pages * s->page_size);
		}
	m->st.erases++;
}

static int run_command(struct dfu_model *m)
{
	const uint8_t *b = m->buf;
	if (b[0] == 0x21) {
		uint32_t addr = le32(b + 1);
		if (!find_region(m, m->st.alt, addr, 0)) {
			mlog(m, "errADDRESS: set address 0x%08x outside alt %u", addr, m->st.alt);
			return DFU_MODEL_ERR_ADDRESS;
		}
		m->st.address = addr;
		mlog(m, "set address 0x%08x", addr);
		return DFU_MODEL_OK;
	}
	if (b[0] == 0x41 && m->buf_len == 1) {
		mlog(m, "mass erase");
		mass_erase(m);
		return DFU_MODEL_OK;
	}
	if (b[0] == 0x41) {
		uint32_t addr = le32(b + 1);
		struct region *r = find_region(m, m->st.alt, addr, 1);
		const struct seg *s = r ? find_seg(r, addr) : NULL;
		if (!s) {
			mlog(m, "errADDRESS: erase page 0x%08x outside alt %u", addr, m->st.alt);
			return DFU_MODEL_ERR_ADDRESS;
		}
		if (!(s->flags & MEM_ERASE)) {
			mlog(m, "errTARGET: page 0x%08x is not erasable", addr);
			return DFU_MODEL_ERR_TARGET;
		}
		uint32_t page = s->start + (addr - s->start) / s->page_size * s->page_size;
		erase_range(r, s, page);
		m->st.erases++;
		mlog(m, "erase page 0x%08x", page);
		return DFU_MODEL_OK;
	}
	/* 0x92 read unprotect: erases everything, then the device resets */
	mlog(m, "read unprotect -> mass erase");
	mass_erase(m);
	m->leave_after_status = 1;
	return DFU_MODEL_OK;
}

static int write_block(struct dfu_model *m, uint32_t addr)
{
	size_t len = m->buf_len;
	struct region *r = find_region(m, m->st.alt, addr, len);
	if (!r || !range_has(r, addr, len, MEM_WRITE)) {
		mlog(m, "errADDRESS: dnload block %u len %zu at 0x%08x not writable", m->block, len, addr);
		return DFU_MODEL_ERR_ADDRESS;
	}
	const struct dfu_model_faults *f = &m->cfg.faults;
	if (f->prog && addr < f->prog_hi && (uint64_t)addr + len > f->prog_lo) {
		uint32_t at = addr > f->prog_lo ? addr : f->prog_lo;
		mlog(m, "errPROG at 0x%08x (fault)", at);
		return DFU_MODEL_ERR_PROG;
	}
	uint8_t *p = r->mem + (addr - r->addr);
	for (size_t i = 0; i < len; i++) {
		const struct seg *s = find_seg(r, addr + (uint32_t)i);
		if ((s->flags & MEM_ERASE) && p[i] != 0xff) {
			mlog(m, "errWRITE at 0x%08x: page not erased", addr + (uint32_t)i);
			return DFU_MODEL_ERR_WRITE;
		}
	}
	memcpy(p, m->buf, len);
	m->st.writes++;
	mlog(m, "dnload block %u len %zu at 0x%08x", m->block, len, addr);
	return DFU_MODEL_OK;
}

/* The DNLOAD stored for this GETSTATUS; returns the status to report. */
static int run_pending(struct dfu_model *m)
{
	if (m->pending == PEND_COMMAND)
		return run_command(m);
	if (m->cfg.dfuse)
		return write_block(m, m->st.address + (uint32_t)(m->block - 2) * m->cfg.transfer_size);
	/* plain DFU: a stream into region 0 of the alt, erased when it starts */
	struct region *r = &m->alt[m->st.alt].reg[0];
	if (m->dn_fresh) {
		m->dn_fresh = 0;
		m->dn_off = 0;
		for (int k = 0; k < r->nseg; k++)
			if (r->seg[k].flags & MEM_ERASE)
				memset(r->mem + (r->seg[k].start - r->addr), 0xff,
				       (size_t)r->seg[k].pages * r->seg[k].page_size);
		m->st.erases++;
		mlog(m, "erase all (alt %u, 0x%08x+%u)", m->st.alt, r->addr, r->len);
	}
	int st = write_block(m, r->addr + m->dn_off);
	if (st == DFU_MODEL_OK)
		m->dn_off += (uint32_t)m->buf_len;
	return st;
}

/* how: NULL for a DfuSe jump to the address pointer. */
static void leave(struct dfu_model *m, const char *how)
{
	m->st.left = 1;
	if (!how) {
		m->st.jump = m->st.address;
		mlog(m, "leave -> jump 0x%08x", m->st.jump);
	} else {
		mlog(m, "leave -> %s", how);
	}
}

static int get_status(struct dfu_model *m, uint8_t *data, size_t wlen, long long now)
{
	if (wlen < 6)
		return proto_stall(m, "GETSTATUS wLength < 6");
	const struct dfu_model_faults *f = &m->cfg.faults;
	if (m->st.state == DFU_MODEL_DNBUSY && f->stall_erase && m->busy_erase && now < m->busy_until) {
		m->st.stalls++;
		mlog(m, "stall (fault: GETSTATUS during erase)");
		return -EPIPE;
	}
	if (m->poll_armed && now - m->poll_from < (long long)m->poll_ms) {
		m->st.poll_violations++;
		mlog(m, "poll timeout violated: GETSTATUS after %lld ms, asked %u ms", now - m->poll_from,
		     m->poll_ms);
	}
	m->poll_armed = 0;
	uint32_t poll = 0;
	int report = m->st.state, leave_now = 0;
	switch (m->st.state) {
	case DFU_MODEL_DNLOAD_SYNC:
		m->busy_erase = m->pending == PEND_COMMAND && m->buf[0] != 0x21;
		m->busy_status = run_pending(m);
		m->pending = PEND_NONE;
		poll = m->busy_erase ? m->cfg.erase_poll_ms : m->cfg.poll_ms;
		m->busy_until = now + 2 * (long long)poll;
		report = m->st.state = DFU_MODEL_DNBUSY;
		break;
	case DFU_MODEL_DNBUSY:
		if (m->busy_status != DFU_MODEL_OK) {
			m->st.state = DFU_MODEL_ERROR;
			m->st.status = m->busy_status;
		} else {
			m->st.state = DFU_MODEL_DNLOAD_IDLE;
		}
		report = m->st.state;
		break;
	case DFU_MODEL_MANIFEST_SYNC:
		mlog(m, "manifest");
		if (f->verify && m->cfg.dfuse) {
			mlog(m, "errVERIFY at manifestation (fault)");
			report = m->st.state = DFU_MODEL_ERROR;
			m->st.status = DFU_MODEL_ERR_VERIFY;
			break;
		}
		poll = m->cfg.poll_ms;
		report = m->st.state = DFU_MODEL_MANIFEST;
		leave_now = m->cfg.dfuse;   /* DfuSe: the device jumps right after this report */
		break;
	case DFU_MODEL_MANIFEST:
		/* plain DFU: manifestation is done */
		if (f->verify) {
			mlog(m, "errVERIFY at manifestation (fault)");
			report = m->st.state = DFU_MODEL_ERROR;
			m->st.status = DFU_MODEL_ERR_VERIFY;
		} else if (m->cfg.attributes & DFU_MODEL_MANIFEST_TOLERANT) {
			mlog(m, "manifest done");
			report = m->st.state = DFU_MODEL_IDLE;
		} else {
			report = m->st.state = DFU_MODEL_MANIFEST_WAIT_RESET;
			if (m->cfg.attributes & DFU_MODEL_WILL_DETACH)
				leave_now = 1;
		}
		break;
	default:
		break;
	}
	data[0] = (uint8_t)m->st.status;
	data[1] = (uint8_t)poll;
	data[2] = (uint8_t)(poll >> 8);
	data[3] = (uint8_t)(poll >> 16);
	data[4] = (uint8_t)report;
	data[5] = 0;
	if (poll) {
		m->poll_armed = 1;
		m->poll_from = now;
		m->poll_ms = poll;
	}
	if (m->leave_after_status) {
		m->leave_after_status = 0;
		leave(m, "reset (read unprotect)");
	} else if (leave_now) {
		leave(m, m->cfg.dfuse ? NULL : "detach");
	}
	return 6;
}

static int dnload(struct dfu_model *m, unsigned value, const uint8_t *data, size_t wlen)
{
	int st = m->st.state;
	if (st != DFU_MODEL_IDLE && st != DFU_MODEL_DNLOAD_IDLE)
		return proto_stall(m, "DNLOAD");
	if (!(m->cfg.attributes & DFU_MODEL_CAN_DNLOAD))
		return proto_stall(m, "DNLOAD without CanDnload");
	if (wlen > m->cfg.transfer_size)
		return proto_stall(m, "DNLOAD longer than wTransferSize");
	if (wlen == 0) {
		if (st == DFU_MODEL_IDLE && !m->cfg.dfuse)
			return proto_stall(m, "empty DNLOAD");
		m->st.state = DFU_MODEL_MANIFEST_SYNC;
		return 0;
	}
	if (m->cfg.dfuse) {
		if (value == 0) {
			int ok = (data[0] == 0x21 && wlen == 5) || (data[0] == 0x41 && (wlen == 5 || wlen == 1)) ||
				 (data[0] == 0x92 && wlen == 1);
			if (!ok)
				return proto_stall(m, "unknown DfuSe command");
			m->pending = PEND_COMMAND;
		} else if (value == 1) {
			return proto_stall(m, "DNLOAD wValue 1");
		} else {
			m->pending = PEND_DATA;
		}
	} else {
		if (st == DFU_MODEL_IDLE)
			m->dn_fresh = 1;
		m->pending = PEND_DATA;
	}
	memcpy(m->buf, data, wlen);
	m->buf_len = wlen;
	m->block = (uint16_t)value;
	m->st.state = DFU_MODEL_DNLOAD_SYNC;
	return (int)wlen;
}

static int upload(struct dfu_model *m, unsigned value, uint8_t *data, size_t wlen)
{
	int st = m->st.state;
	if (st != DFU_MODEL_IDLE && st != DFU_MODEL_UPLOAD_IDLE)
		return proto_stall(m, "UPLOAD");
	if (!(m->cfg.attributes & DFU_MODEL_CAN_UPLOAD))
		return proto_stall(m, "UPLOAD without CanUpload");
	if (wlen > m->cfg.transfer_size)
		return proto_stall(m, "UPLOAD longer than wTransferSize");
	struct region *r;
	uint32_t addr;
	size_t n;
	if (m->cfg.dfuse) {
		if (value == 0) {
			if (m->cfg.personality == DFU_MODEL_MBOOT)
				return proto_stall(m, "UPLOAD wValue 0 (get commands)");
			const uint8_t cmds[4] = {0x00, 0x21, 0x41, 0x92};
			n = wlen < sizeof cmds ? wlen : sizeof cmds;
			memcpy(data, cmds, n);
			mlog(m, "upload get commands");
			m->st.state = DFU_MODEL_UPLOAD_IDLE;
			return (int)n;
		}
		if (value == 1)
			return proto_stall(m, "UPLOAD wValue 1");
		addr = m->st.address + (uint32_t)(value - 2) * m->cfg.transfer_size;
		r = find_region(m, m->st.alt, addr, 1);
		if (!r) {
			mlog(m, "errADDRESS: upload at 0x%08x", addr);
			proto_stall(m, "UPLOAD outside memory");
			m->st.status = DFU_MODEL_ERR_ADDRESS;
			return -EPIPE;
		}
	} else {
		r = &m->alt[m->st.alt].reg[0];
		if (st == DFU_MODEL_IDLE)
			m->up_off = 0;
		addr = r->addr + m->up_off;
	}
	n = r->addr + r->len - addr;
	if (n > wlen)
		n = wlen;
	if (!range_has(r, addr, n, MEM_READ)) {
		mlog(m, "errTARGET: upload at 0x%08x not readable", addr);
		proto_stall(m, "UPLOAD of unreadable memory");
		m->st.status = DFU_MODEL_ERR_TARGET;
		return -EPIPE;
	}
	memcpy(data, r->mem + (addr - r->addr), n);
	m->up_off += (uint32_t)n;
	m->st.uploads++;
	mlog(m, "upload block %u len %zu at 0x%08x", value, n, addr);
	m->st.state = n < wlen ? DFU_MODEL_IDLE : DFU_MODEL_UPLOAD_IDLE;
	return (int)n;
}

static int class_request(struct dfu_model *m, unsigned req, unsigned value, uint8_t *data, size_t wlen,
			 long long now)
{
	int st = m->st.state, mboot = m->cfg.personality == DFU_MODEL_MBOOT;
	if (m->st.state == DFU_MODEL_DNBUSY && req != REQ_GETSTATUS)
		return proto_stall(m, "request while busy");
	switch (req) {
	case REQ_DETACH:
		mlog(m, "DETACH (ignored in DFU mode)");
		return 0;
	case REQ_DNLOAD:
		return dnload(m, value, data, wlen);
	case REQ_UPLOAD:
		return upload(m, value, data, wlen);
	case REQ_GETSTATUS:
		return get_status(m, data, wlen, now);
	case REQ_CLRSTATUS:
		if (st != DFU_MODEL_ERROR && !mboot)
			return proto_stall(m, "CLRSTATUS");
		mlog(m, "CLRSTATUS");
		m->st.state = DFU_MODEL_IDLE;
		m->st.status = DFU_MODEL_OK;
		return 0;
	case REQ_GETSTATE:
		if (wlen < 1)
			return proto_stall(m, "GETSTATE wLength 0");
		data[0] = (uint8_t)st;
		return 1;
	case REQ_ABORT:
		if (st != DFU_MODEL_IDLE && st != DFU_MODEL_DNLOAD_IDLE && st != DFU_MODEL_UPLOAD_IDLE && !mboot)
			return proto_stall(m, "ABORT");
		mlog(m, "ABORT");
		m->st.state = DFU_MODEL_IDLE;
		m->st.status = DFU_MODEL_OK;
		m->pending = PEND_NONE;
		return 0;
	default:
		return proto_stall(m, "unknown class request");
	}
}

static int standard_request(struct dfu_model *m, unsigned type, unsigned req, unsigned value, unsigned index,
			    uint8_t *data, size_t wlen, long long now)
{
	switch (req) {
	case 0: /* GET_STATUS */
		if (!(type & 0x80) || wlen < 2)
			return -EPIPE;
		data[0] = data[1] = 0;
		return 2;
	case 6: /* GET_DESCRIPTOR */
		if (!(type & 0x80))
			return -EPIPE;
		return get_descriptor(m, value, data, wlen);
	case 8: /* GET_CONFIGURATION */
		if (wlen < 1)
			return -EPIPE;
		data[0] = 1;
		return 1;
	case 9: /* SET_CONFIGURATION */
		return value <= 1 ? 0 : -EPIPE;
	case 10: /* GET_INTERFACE */
		if (wlen < 1 || index != 0)
			return -EPIPE;
		data[0] = (uint8_t)m->st.alt;
		return 1;
	case 11: /* SET_INTERFACE */
	{
		int r = dfu_model_set_interface(m, index, value, now);
		return r == -EINVAL ? -EPIPE : r;
	}
	default:
		return -EPIPE;
	}
}

int dfu_model_control(struct dfu_model *m, const uint8_t setup[8], uint8_t *data, size_t data_len,
		      long long now_ms)
{
	unsigned type = setup[0], req = setup[1];
	unsigned value = setup[2] | (unsigned)setup[3] << 8, index = setup[4] | (unsigned)setup[5] << 8;
	size_t wlen = setup[6] | (size_t)setup[7] << 8;
	if (wlen > data_len || (wlen && !data))
		return -EINVAL;
	if (m->st.left || m->st.gone)
		return -ENODEV;
	if (m->st.hung)
		return -ETIMEDOUT;
	unsigned n = ++m->st.requests;
	const struct dfu_model_faults *f = &m->cfg.faults;
	if (m->cfg.trace)
		mlog(m, "req %u %02x %02x %04x %04x %04zx", n, type, req, value, index, wlen);
	if (f->gone_after && n > f->gone_after) {
		m->st.gone = 1;
		mlog(m, "device gone (fault, request %u)", n);
		return -ENODEV;
	}
	if (f->hang_req && n >= f->hang_req) {
		m->st.hung = 1;
		mlog(m, "hang (fault, request %u never completes)", n);
		return -ETIMEDOUT;
	}
	if (f->stall_req == n) {
		m->st.stalls++;
		mlog(m, "stall (fault, request %u)", n);
		return -EPIPE;
	}
	if ((type & 0x60) == 0x00)
		return standard_request(m, type, req, value, index, data, wlen, now_ms);
	if ((type & 0x7f) != 0x21 || index != 0 || ((type & 0x80) != 0) != (req == REQ_UPLOAD ||
									  req == REQ_GETSTATUS || req == REQ_GETSTATE))
		return proto_stall(m, "malformed class request");
	return class_request(m, req, value, data, wlen, now_ms);
}

int dfu_model_set_interface(struct dfu_model *m, unsigned iface, unsigned alt, long long now_ms)
{
	(void)now_ms;
	if (m->st.left || m->st.gone)
		return -ENODEV;
	if (iface != 0 || alt >= (unsigned)m->cfg.n_alt)
		return -EINVAL;
	m->st.alt = alt;
	m->dn_off = m->up_off = 0;
	mlog(m, "alt %u", alt);
	return 0;
}

int dfu_model_reset(struct dfu_model *m, long long now_ms)
{
	(void)now_ms;
	if (m->st.left || m->st.gone)
		return -ENODEV;
	m->st.resets++;
	if (m->st.state == DFU_MODEL_MANIFEST_WAIT_RESET || m->st.state == DFU_MODEL_MANIFEST) {
		leave(m, "reset");
		return 0;
	}
	mlog(m, "USB reset");
	m->st.state = DFU_MODEL_IDLE;
	m->st.status = DFU_MODEL_OK;
	m->pending = PEND_NONE;
	m->poll_armed = 0;
	m->st.hung = 0;
	return 0;
}

/* ------------------------------------------------------------- accessors */

const uint8_t *dfu_model_region(const struct dfu_model *m, unsigned alt, unsigned r, uint32_t *addr,
				size_t *len)
{
	if (alt >= (unsigned)m->cfg.n_alt || r >= (unsigned)m->alt[alt].nreg)
		return NULL;
	*addr = m->alt[alt].reg[r].addr;
	*len = m->alt[alt].reg[r].len;
	return m->alt[alt].reg[r].mem;
}

int dfu_model_read(const struct dfu_model *m, unsigned alt, uint32_t addr, void *buf, size_t len)
{
	const struct region *r = find_region(m, alt, addr, len);
	if (!r)
		return -1;
	memcpy(buf, r->mem + (addr - r->addr), len);
	return 0;
}

int dfu_model_load(struct dfu_model *m, unsigned alt, uint32_t addr, const void *buf, size_t len)
{
	struct region *r = find_region(m, alt, addr, len);
	if (!r)
		return -1;
	memcpy(r->mem + (addr - r->addr), buf, len);
	return 0;
}

void dfu_model_get_info(const struct dfu_model *m, struct dfu_model_info *out) { *out = m->st; }

size_t dfu_model_format_state(const struct dfu_model *m, char *buf, size_t len)
{
	const struct dfu_model_info *s = &m->st;
	int n = snprintf(buf, len,
			 "state=%s\nstatus=%s\nalt=%u\naddress=0x%08x\nleft=%d\njump=0x%08x\ngone=%d\nhung=%d\n"
			 "requests=%u\nerases=%u\nwrites=%u\nuploads=%u\nstalls=%u\npoll_violations=%u\n"
			 "resets=%u\n",
			 dfu_model_state_name(s->state), dfu_model_status_name(s->status), s->alt, s->address,
			 s->left, s->jump, s->gone, s->hung, s->requests, s->erases, s->writes, s->uploads,
			 s->stalls, s->poll_violations, s->resets);
	if (n < 0)
		return 0;
	return (size_t)n < len ? (size_t)n : (len ? len - 1 : 0);
}
