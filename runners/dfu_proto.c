/* mpfarm: DFU 1.1 / DfuSe protocol logic over runners/dfu_usb.h (see
 * dfu_proto.h). */
#include "dfu_proto.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "le.h"
#include "runner.h"
#include "transport.h"

#define REQ_OUT 0x21u /* class, interface, host to device */
#define REQ_IN 0xa1u
#define DFUSE_SET_ADDRESS 0x21u
#define DFUSE_ERASE 0x41u
#define STALL_RETRIES 3 /* GETSTATUS stalls tolerated while busy (STM32L4 during erase) */
#define BLOCK_WRAP 0xff00u /* DfuSe block numbers before the address pointer is set again */
#define MANIFEST_DEADLINE_MS 10000u

/* ---- names ---- */

static const char *const state_names[] = {
	"appIDLE", "appDETACH", "dfuIDLE", "dfuDNLOAD-SYNC", "dfuDNBUSY", "dfuDNLOAD-IDLE",
	"dfuMANIFEST-SYNC", "dfuMANIFEST", "dfuMANIFEST-WAIT-RESET", "dfuUPLOAD-IDLE", "dfuERROR",
};

/* What each status means and what to do about it (DFU 1.1 numbering). */
static const struct {
	const char *name, *meaning, *todo;
} statuses[] = {
	{ "OK", "no error", "" },
	{ "errTARGET", "the file is not for this device",
	  "check that the image was built for this board (mcu:, flash.alt)" },
	{ "errFILE", "the device rejected the file", "rebuild the image and flash again" },
	{ "errWRITE", "the device could not write the memory",
	  "the memory may be write-protected: check the option bytes (read-out and write "
	  "protection), then flash again" },
	{ "errERASE", "the erase failed",
	  "the sector may be write-protected: check the option bytes (write protection), then "
	  "flash again" },
	{ "errCHECK_ERASED", "the memory was not erased before writing",
	  "flash again; if it persists the sector is protected" },
	{ "errPROG", "programming failed",
	  "the sector may be write-protected; check the option bytes' write protection "
	  "(STM32CubeProgrammer) and the BOOT0 wiring, then flash again" },
	{ "errVERIFY", "the device read back different data after programming",
	  "the flash may be worn or the supply unstable: flash again, and replace the board if it "
	  "persists" },
	{ "errADDRESS", "the address is outside the device's memory",
	  "check the image's addresses against the memory layout of flash.alt" },
	{ "errNOTDONE", "the download ended before the device expected",
	  "check that the image is whole, then flash again" },
	{ "errFIRMWARE", "the firmware is corrupt and cannot run",
	  "the device stays in DFU mode: flash again" },
	{ "errVENDOR", "a vendor-specific error",
	  "see the bootloader's documentation; reset the board into DFU mode and flash again" },
	{ "errUSBR", "an unexpected USB reset", "check the cable and the hub, then flash again" },
	{ "errPOR", "an unexpected power-on reset", "check the board's supply, then flash again" },
	{ "errUNKNOWN", "an unknown error", "reset the board into DFU mode and flash again" },
	{ "errSTALLEDPKT", "the device did not expect that request",
	  "reset the board into DFU mode and flash again" },
};

const char *runner_dfu_state_name(unsigned state, char *s, size_t len)
{
	if (state < sizeof state_names / sizeof state_names[0])
		return state_names[state];
	snprintf(s, len, "state %u", state);
	return s;
}

const char *runner_dfu_status_name(unsigned status, char *s, size_t len)
{
	if (status < sizeof statuses / sizeof statuses[0])
		return statuses[status].name;
	snprintf(s, len, "status 0x%02x", status);
	return s;
}

/* ---- DfuSe memory layout ---- */

static int layout_err(struct farm_err *e, const char *s, const char *at, const char *what)
{
	return farm_err_set(e, FARM_EINVAL, "memory layout \"%.120s\": column %d: %s", s,
			    (int)(at - s) + 1, what);
}

/* Decimal digits into *v (at most 9 of them). */
static int read_dec(const char **p, uint32_t *v)
{
	const char *q = *p;
	uint32_t n = 0;
	int k = 0;
	while (isdigit((unsigned char)*q) && k < 10) {
		n = n * 10u + (uint32_t)(*q - '0');
		q++;
		k++;
	}
	if (k == 0 || k > 9)
		return -1;
	*v = n;
	*p = q;
	return 0;
}

int runner_dfu_layout_parse(struct runner_dfu_layout *out, const char *s, struct farm_err *e)
{
	memset(out, 0, sizeof *out);
	if (!s || s[0] != '@')
		return farm_err_set(e, FARM_EINVAL, "memory layout \"%.120s\": does not start with '@' "
				    "(not a DfuSe memory description)", s ? s : "");
	if (strlen(s) > 1024)
		return farm_err_set(e, FARM_ELIMIT, "memory layout is longer than 1024 characters");
	const char *p = s + 1, *slash = strchr(p, '/');
	if (!slash)
		return layout_err(e, s, s + strlen(s), "no '/' before the address");
	size_t nl = (size_t)(slash - p);
	while (nl && p[nl - 1] == ' ')
		nl--;
	snprintf(out->name, sizeof out->name, "%.*s", (int)(nl < sizeof out->name ? nl : sizeof out->name - 1), p);
	p = slash;
	while (*p == '/') {
		p++;
		if (p[0] != '0' || (p[1] != 'x' && p[1] != 'X'))
			return layout_err(e, s, p, "expected an address such as 0x08000000");
		p += 2;
		uint64_t addr = 0;
		int k = 0;
		while (isxdigit((unsigned char)*p) && k < 9) {
			addr = addr * 16u + (uint64_t)(isdigit((unsigned char)*p) ? *p - '0'
							: (tolower((unsigned char)*p) - 'a' + 10));
			p++;
			k++;
		}
		if (k == 0 || k > 8)
			return layout_err(e, s, p, "the address needs 1 to 8 hex digits");
		if (*p != '/')
			return layout_err(e, s, p, "expected '/' after the address");
		p++;
		for (;;) {
			uint32_t count, size;
			const char *at = p;
			if (read_dec(&p, &count) < 0 || count == 0)
				return layout_err(e, s, at, "expected a sector count (1 or more)");
			if (*p != '*')
				return layout_err(e, s, p, "expected '*' after the sector count");
			p++;
			at = p;
			if (read_dec(&p, &size) < 0 || size == 0)
				return layout_err(e, s, at, "expected a sector size (1 or more)");
			if (*p == 'K' || *p == 'M' || *p == 'B' || *p == ' ') {
				uint64_t mult = *p == 'K' ? 1024u : *p == 'M' ? 1048576u : 1u;
				if ((uint64_t)size * mult > 0xffffffffu)
					return layout_err(e, s, p, "sector size too large");
				size = (uint32_t)(size * mult);
				p++;
			}
			if (*p < 'a' || *p > 'g')
				return layout_err(e, s, p, "expected a type letter a..g (readable 1, "
						  "erasable 2, writable 4)");
			unsigned flags = (unsigned)(*p - 'a' + 1) & 7u;
			p++;
			if (addr + (uint64_t)count * size > 0x100000000ull)
				return layout_err(e, s, at, "the sectors run past 0xffffffff");
			if (out->n >= RUNNER_DFU_LAYOUT_MAX)
				return farm_err_set(e, FARM_ELIMIT, "memory layout \"%.120s\": more than %d "
						    "sector groups", s, RUNNER_DFU_LAYOUT_MAX);
			out->groups[out->n++] = (struct runner_dfu_sectors){
				.start = (uint32_t)addr, .size = size, .count = count, .flags = flags
			};
			addr += (uint64_t)count * size;
			while (*p == ' ')
				p++;
			if (*p != ',')
				break;
			p++;
		}
	}
	if (*p)
		return layout_err(e, s, p, "unexpected character");
	if (!out->n)
		return layout_err(e, s, p, "no sectors");
	return 0;
}

const struct runner_dfu_sectors *runner_dfu_layout_sector(const struct runner_dfu_layout *l,
							  uint32_t addr, uint32_t *sector_start)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct runner_dfu_sectors *g = &l->groups[i];
		if (addr >= g->start && (uint64_t)addr < (uint64_t)g->start + (uint64_t)g->count * g->size) {
			*sector_start = g->start + (addr - g->start) / g->size * g->size;
			return g;
		}
	}
	return NULL;
}

int runner_dfu_erase_plan(struct runner_dfu_erase **out, size_t *n,
			  const struct runner_dfu_layout *l, const struct farm_image *img,
			  struct farm_err *e)
{
	struct runner_dfu_erase *v = NULL;
	size_t k = 0, cap = 0;
	*out = NULL;
	*n = 0;
	for (size_t i = 0; i < img->n_segs; i++) {
		uint64_t a = img->segs[i].addr, end = a + img->segs[i].len;
		while (a < end) {
			uint32_t start;
			const struct runner_dfu_sectors *g = runner_dfu_layout_sector(l, (uint32_t)a, &start);
			if (!g || !(g->flags & RUNNER_DFU_MEM_WRITE)) {
				free(v);
				return farm_err_set(e, FARM_EINVAL,
						    "image byte 0x%08x lies %s memory \"%s\"; check the "
						    "image's addresses or flash.alt", (unsigned)a,
						    g ? "in a read-only sector of" : "outside", l->name);
			}
			if ((g->flags & RUNNER_DFU_MEM_ERASE) && (k == 0 || v[k - 1].addr != start)) {
				if (k == cap) {
					size_t nc = cap ? cap * 2 : 16;
					struct runner_dfu_erase *nv = realloc(v, nc * sizeof *nv);
					if (!nv) {
						free(v);
						return farm_err_set(e, FARM_ENOMEM, "out of memory");
					}
					v = nv;
					cap = nc;
				}
				v[k++] = (struct runner_dfu_erase){ start, g->size };
			}
			a = (uint64_t)start + g->size;
		}
	}
	*out = v;
	*n = k;
	return 0;
}

/* ---- session plumbing ---- */

static long long now_ms(struct runner_dfu *d)
{
	return d->u->ops->now_ms ? d->u->ops->now_ms(d->u->h) : farm_now_ms();
}

static void nap(struct runner_dfu *d, unsigned ms)
{
	if (d->u->ops->sleep_ms) {
		d->u->ops->sleep_ms(d->u->h, ms);
		return;
	}
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static unsigned ctl_timeout(const struct runner_dfu *d)
{
	return d->ctl_timeout_ms ? d->ctl_timeout_ms : RUNNER_DFU_CTL_TIMEOUT_MS;
}

static const char *req_name(uint8_t req)
{
	static const char *const names[] = { "DETACH", "DNLOAD", "UPLOAD", "GETSTATUS",
					     "CLRSTATUS", "GETSTATE", "ABORT" };
	return req < sizeof names / sizeof names[0] ? names[req] : "request";
}

/* One class request. Returns RUNNER_DFU_X_*. */
static int xfer(struct runner_dfu *d, uint8_t type, uint8_t req, uint16_t value, uint8_t *data,
		uint16_t len, size_t *got, char *why, size_t why_len)
{
	struct runner_dfu_setup s = { type, req, value, d->u->info.intf, len };
	size_t dummy = 0;
	if (why_len)
		why[0] = '\0';
	return d->u->ops->control(d->u->h, &s, data, got ? got : &dummy, ctl_timeout(d), why, why_len);
}

struct dfu_status {
	unsigned status, poll_ms, state, istring;
};

static int read_status(struct runner_dfu *d, struct dfu_status *st, char *why, size_t why_len)
{
	uint8_t b[6] = { 0 };
	size_t got = 0;
	int x = xfer(d, REQ_IN, RUNNER_DFU_GETSTATUS, 0, b, sizeof b, &got, why, why_len);
	if (x != RUNNER_DFU_X_OK)
		return x;
	if (got < sizeof b) {
		snprintf(why, why_len, "a %zu-byte GETSTATUS reply (6 expected)", got);
		return RUNNER_DFU_X_IO;
	}
	d->polls++;
	st->status = b[0];
	st->poll_ms = (unsigned)b[1] | (unsigned)b[2] << 8 | (unsigned)b[3] << 16;
	st->state = b[4];
	st->istring = b[5];
	d->last_state = st->state;
	d->last_status = st->status;
	return RUNNER_DFU_X_OK;
}

/* Back to dfuIDLE after dfuERROR (CLRSTATUS, then ABORT if that fails);
 * best effort: the error being reported matters more. */
static void clear_error(struct runner_dfu *d)
{
	char why[64];
	if (xfer(d, REQ_OUT, RUNNER_DFU_CLRSTATUS, 0, NULL, 0, NULL, why, sizeof why) != RUNNER_DFU_X_OK)
		(void)xfer(d, REQ_OUT, RUNNER_DFU_ABORT, 0, NULL, 0, NULL, why, sizeof why);
}

/* A device status other than OK while `where` ("at 0x08004000 while writing
 * block 12"). */
static int status_error(struct runner_dfu *d, const struct dfu_status *st, const char *where,
			struct farm_err *e)
{
	char sn[32], tn[32];
	unsigned i = st->status;
	int known = i < sizeof statuses / sizeof statuses[0];
	clear_error(d);
	return farm_err_set(e, FARM_EIO, "board %s: DFU %s %s: %s (device state %s); %s", d->ctx->board->id,
			    runner_dfu_status_name(i, sn, sizeof sn), where,
			    known ? statuses[i].meaning : "an error the DFU standard does not define",
			    runner_dfu_state_name(st->state, tn, sizeof tn),
			    known && i ? statuses[i].todo : "reset the board into DFU mode and flash again");
}

/* A transfer that did not complete. For a stall the device is asked what
 * it thinks (a status other than OK is named and cleared). */
static int xfer_error(struct runner_dfu *d, int x, uint8_t req, const char *where,
		      const char *why, struct farm_err *e)
{
	const char *id = d->ctx->board->id, *rn = req_name(req);
	switch (x) {
	case RUNNER_DFU_X_STALL: {
		struct dfu_status st;
		char w2[64], sn[32], tn[32];
		if (req != RUNNER_DFU_GETSTATUS && read_status(d, &st, w2, sizeof w2) == RUNNER_DFU_X_OK) {
			if (st.status != RUNNER_DFU_STATUS_OK || st.state == RUNNER_DFU_ERROR) {
				unsigned i = st.status;
				int known = i < sizeof statuses / sizeof statuses[0];
				clear_error(d);
				return farm_err_set(e, FARM_EPROTO,
						    "board %s: DFU request %s stalled %s: the device "
						    "reports %s (%s); %s", id, rn, where,
						    runner_dfu_status_name(i, sn, sizeof sn),
						    known ? statuses[i].meaning : "undefined status",
						    known && i ? statuses[i].todo
							       : "reset the board into DFU mode and flash again");
			}
			return farm_err_set(e, FARM_EPROTO,
					    "board %s: DFU request %s stalled %s (device state %s): the "
					    "device refuses it; check that flash.alt names a memory that "
					    "allows this, then reset the board into DFU mode and flash "
					    "again", id, rn, where, runner_dfu_state_name(st.state, tn, sizeof tn));
		}
		return farm_err_set(e, FARM_EPROTO,
				    "board %s: DFU request %s stalled %s: the device refuses it; reset "
				    "the board into DFU mode and flash again", id, rn, where);
	}
	case RUNNER_DFU_X_TIMEOUT:
		return farm_err_set(e, FARM_ETIMEDOUT,
				    "board %s: DFU timeout %s: no answer to %s within %u ms; the "
				    "bootloader hung: reset the board into DFU mode and flash again",
				    id, where, rn, ctl_timeout(d));
	case RUNNER_DFU_X_GONE:
		return farm_err_set(e, FARM_ECLOSED,
				    "board %s: DFU device gone %s: it left the USB bus during %s (reset "
				    "or unplugged); check the cable and the hub's power, put the board "
				    "back into DFU mode and flash again", id, where, rn);
	default:
		return farm_err_set(e, FARM_EIO, "board %s: DFU request %s failed %s: %s; check the "
				    "cable and flash again", id, rn, where, why && why[0] ? why : "I/O error");
	}
}

static int interrupted(struct runner_dfu *d, const char *where, struct farm_err *e)
{
	if (d->ctx->cancel && *d->ctx->cancel)
		return farm_err_set(e, FARM_EINTR, "board %s: DFU interrupted %s", d->ctx->board->id, where);
	return 0;
}

static int is_busy(unsigned state)
{
	return state == RUNNER_DFU_DNBUSY || state == RUNNER_DFU_DNLOAD_SYNC;
}

/* GETSTATUS until the device is no longer busy, sleeping bwPollTimeout
 * between polls, within deadline_ms; a status other than OK is an error. */
static int wait_ready(struct runner_dfu *d, const char *where, unsigned deadline_ms,
		      struct dfu_status *st, struct farm_err *e)
{
	long long end = now_ms(d) + deadline_ms;
	unsigned zero_polls = 0, stalls = 0, last_poll = 0;
	int polled = 0;
	char why[128];
	for (;;) {
		int rc = interrupted(d, where, e);
		if (rc)
			return rc;
		int x = read_status(d, st, why, sizeof why);
		if (x == RUNNER_DFU_X_STALL && polled && stalls < STALL_RETRIES) {
			/* the STM32L4 stalls GETSTATUS while it erases: wait and ask again */
			stalls++;
			d->stall_retries++;
			nap(d, last_poll ? last_poll : 10);
			continue;
		}
		if (x != RUNNER_DFU_X_OK)
			return xfer_error(d, x, RUNNER_DFU_GETSTATUS, where, why, e);
		polled = 1;
		if (st->status != RUNNER_DFU_STATUS_OK || st->state == RUNNER_DFU_ERROR)
			return status_error(d, st, where, e);
		if (!is_busy(st->state))
			return 0;
		d->busy_polls++;
		last_poll = st->poll_ms;
		if (st->poll_ms == 0) {
			if (++zero_polls >= RUNNER_DFU_STUCK_POLLS)
				return farm_err_set(e, FARM_ETIMEDOUT,
						    "board %s: DFU device stuck %s: busy with a zero poll "
						    "timeout %d times in a row; reset the board into DFU mode "
						    "and flash again", d->ctx->board->id, where, RUNNER_DFU_STUCK_POLLS);
		} else {
			zero_polls = 0;
		}
		if (now_ms(d) + st->poll_ms > end)
			return farm_err_set(e, FARM_ETIMEDOUT,
					    "board %s: DFU timeout %s: still busy after %u ms (it asks "
					    "for %u ms more); reset the board into DFU mode and flash "
					    "again", d->ctx->board->id, where, deadline_ms, st->poll_ms);
		nap(d, st->poll_ms);
	}
}

/* DNLOAD block `block` with len bytes, then wait until it is done. */
static int dnload(struct runner_dfu *d, uint16_t block, const uint8_t *data, uint16_t len,
		  const char *where, unsigned deadline_ms, struct farm_err *e)
{
	char why[128];
	int x = xfer(d, REQ_OUT, RUNNER_DFU_DNLOAD, block, (uint8_t *)data, len, NULL, why, sizeof why);
	if (x != RUNNER_DFU_X_OK)
		return xfer_error(d, x, RUNNER_DFU_DNLOAD, where, why, e);
	struct dfu_status st;
	return wait_ready(d, where, deadline_ms, &st, e);
}

static unsigned erase_deadline(const struct runner_dfu *d)
{
	return d->erase_deadline_ms ? d->erase_deadline_ms : RUNNER_DFU_ERASE_DEADLINE_MS;
}

static unsigned write_deadline(const struct runner_dfu *d)
{
	return d->write_deadline_ms ? d->write_deadline_ms : RUNNER_DFU_WRITE_DEADLINE_MS;
}

/* A DfuSe command (DNLOAD block 0): set address or erase. */
static int dfuse_cmd(struct runner_dfu *d, uint8_t cmd, uint32_t addr, const char *where,
		     struct farm_err *e)
{
	uint8_t b[5] = { cmd };
	farm_put_le32(b + 1, addr);
	return dnload(d, 0, b, sizeof b, where, cmd == DFUSE_ERASE ? erase_deadline(d)
								: write_deadline(d), e);
}

static int set_address(struct runner_dfu *d, uint32_t addr, const char *what, struct farm_err *e)
{
	char where[96];
	snprintf(where, sizeof where, "at 0x%08x while setting the address pointer for %s",
		 (unsigned)addr, what);
	return dfuse_cmd(d, DFUSE_SET_ADDRESS, addr, where, e);
}

static int simple_req(struct runner_dfu *d, uint8_t req, const char *where, struct farm_err *e)
{
	char why[128];
	int x = xfer(d, REQ_OUT, req, 0, NULL, 0, NULL, why, sizeof why);
	return x == RUNNER_DFU_X_OK ? 0 : xfer_error(d, x, req, where, why, e);
}

/* ---- alt setting and start ---- */

/* Name of an alt without the leading '@' and up to its layout ('/'). */
static int alt_name_matches(const char *name, const char *want)
{
	if (*name == '@')
		name++;
	if (*want == '@')
		want++;
	size_t n = strlen(want);
	return n && !strncasecmp(name, want, n);
}

int runner_dfu_pick_alt(size_t *index, const struct runner_dfu_info *info, const char *want,
			const struct farm_image *img, struct farm_err *e)
{
	if (!info->n_alts)
		return farm_err_set(e, FARM_ENOTFOUND, "%s has no DFU alternate settings", info->what);
	if (want) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(want, &end, 10);
		int numeric = *want && !*end && !errno && isdigit((unsigned char)*want);
		for (size_t i = 0; i < info->n_alts; i++)
			if (numeric ? info->alts[i].alt == v : alt_name_matches(info->alts[i].name, want)) {
				*index = i;
				return 0;
			}
	} else {
		for (size_t i = 0; img && img->has_dfuse && i < info->n_alts; i++)
			if (info->alts[i].alt == img->dfuse_alt) {
				*index = i;
				return 0;
			}
		for (size_t i = 0; i < info->n_alts; i++)
			if (alt_name_matches(info->alts[i].name, "Internal Flash")) {
				*index = i;
				return 0;
			}
		if (!(img && img->has_dfuse)) {
			*index = 0;
			return 0;
		}
	}
	char list[700] = "";
	size_t k = 0;
	for (size_t i = 0; i < info->n_alts && k < sizeof list; i++) {
		int w = snprintf(list + k, sizeof list - k, "%s%u \"%.80s\"", i ? ", " : "",
				 info->alts[i].alt, info->alts[i].name);
		if (w < 0)
			break;
		k += (size_t)w;
	}
	if (want)
		return farm_err_set(e, FARM_ENOTFOUND, "%s has no DFU alternate setting \"%.60s\" (it "
				    "has %s); set flash.alt to one of them", info->what, want, list);
	return farm_err_set(e, FARM_ENOTFOUND, "%s has no alternate setting %u, which the DfuSe "
			    "image targets (it has %s); set flash.alt", info->what,
			    (unsigned)img->dfuse_alt, list);
}

int runner_dfu_begin(struct runner_dfu *d, struct runner_dfu_usb *u, size_t index, int dfuse,
		     unsigned xfer_override, struct farm_err *e)
{
	const struct runner_dfu_info *info = &u->info;
	char why[128], tn[32];
	d->u = u;
	if (index >= info->n_alts)
		return farm_err_set(e, FARM_EINVAL, "board %s: DFU alternate setting index %zu out of "
				    "range", d->ctx->board->id, index);
	d->alt = info->alts[index].alt;
	d->alt_name = info->alts[index].name;
	d->dfuse = dfuse >= 0 ? dfuse : ((info->has_func && info->func.bcd_dfu == 0x011a) ||
					 d->alt_name[0] == '@');
	if (d->dfuse && runner_dfu_layout_parse(&d->layout, d->alt_name, e) < 0)
		return farm_err_prefix(e, "board %s: DFU alternate setting %u of %s", d->ctx->board->id,
				       (unsigned)d->alt, info->what);
	unsigned xs = xfer_override ? xfer_override : info->has_func ? info->func.transfer_size : 0;
	if (xs == 0 || xs > 0xffff)
		return farm_err_set(e, FARM_EPROTO, "board %s: %s gives no usable wTransferSize (%u); "
				    "set flash.transfer_size", d->ctx->board->id, info->what, xs);
	d->xfer = (uint16_t)xs;
	if (u->ops->set_alt(u->h, d->alt, why, sizeof why) != RUNNER_DFU_X_OK)
		return farm_err_set(e, FARM_EIO, "board %s: DFU could not select alternate setting %u "
				    "of %s: %s; check that no other program (dfu-util) holds it",
				    d->ctx->board->id, (unsigned)d->alt, info->what, why);
	struct dfu_status st;
	const char *where = "while preparing the device";
	int x = read_status(d, &st, why, sizeof why);
	if (x != RUNNER_DFU_X_OK)
		return xfer_error(d, x, RUNNER_DFU_GETSTATUS, where, why, e);
	switch (st.state) {
	case RUNNER_DFU_IDLE:
		break;
	case RUNNER_DFU_APP_IDLE:
	case RUNNER_DFU_APP_DETACH:
		return farm_err_set(e, FARM_EPROTO, "board %s: %s runs its application (%s), not its "
				    "DFU bootloader; put it into DFU mode (flash.entry, or BOOT0 + "
				    "reset) and flash again", d->ctx->board->id, info->what,
				    runner_dfu_state_name(st.state, tn, sizeof tn));
	case RUNNER_DFU_ERROR:
		runner_logf(d->ctx, "dfu: the device was in dfuERROR (status %u): CLRSTATUS", st.status);
		if (simple_req(d, RUNNER_DFU_CLRSTATUS, where, e) < 0)
			return FARM_EIO;
		break;
	default:
		runner_logf(d->ctx, "dfu: the device was in %s: ABORT", runner_dfu_state_name(st.state, tn, sizeof tn));
		if (simple_req(d, RUNNER_DFU_ABORT, where, e) < 0)
			return FARM_EIO;
		break;
	}
	if (st.state != RUNNER_DFU_IDLE) {
		if ((x = read_status(d, &st, why, sizeof why)) != RUNNER_DFU_X_OK)
			return xfer_error(d, x, RUNNER_DFU_GETSTATUS, where, why, e);
		if (st.state != RUNNER_DFU_IDLE)
			return farm_err_set(e, FARM_EPROTO, "board %s: %s stays in %s after CLRSTATUS/ABORT; "
					    "reset the board into DFU mode and flash again", d->ctx->board->id,
					    info->what, runner_dfu_state_name(st.state, tn, sizeof tn));
	}
	runner_logf(d->ctx, "dfu: %s, alt %u \"%s\", %s, %u-byte blocks", info->what, (unsigned)d->alt,
	      d->alt_name, d->dfuse ? "DfuSe" : "DFU 1.1", (unsigned)d->xfer);
	return 0;
}

/* ---- write ---- */

static void progress(runner_dfu_progress_fn fn, void *payload, const char *step, uint64_t done,
		     uint64_t total)
{
	if (fn)
		fn(payload, step, done, total);
}

/* Whether block numbers may run on from one address pointer: the device
 * computes addresses with its own wTransferSize. */
static int sequential(const struct runner_dfu *d)
{
	return d->u->info.has_func && d->u->info.func.transfer_size == d->xfer;
}

static int dfuse_write(struct runner_dfu *d, const struct farm_image *img,
		       runner_dfu_progress_fn fn, void *payload, struct farm_err *e)
{
	struct runner_dfu_erase *plan = NULL;
	size_t n = 0;
	char where[128];
	int rc = runner_dfu_erase_plan(&plan, &n, &d->layout, img, e);
	if (rc < 0)
		return farm_err_prefix(e, "board %s: DFU", d->ctx->board->id);
	uint64_t total = 0, done = 0;
	for (size_t i = 0; i < n; i++)
		total += plan[i].size;
	runner_logf(d->ctx, "dfu: erasing %zu sectors (%llu bytes) the image covers", n, (unsigned long long)total);
	for (size_t i = 0; i < n && rc == 0; i++) {
		snprintf(where, sizeof where, "at 0x%08x while erasing sector %zu of %zu",
			 (unsigned)plan[i].addr, i + 1, n);
		rc = dfuse_cmd(d, DFUSE_ERASE, plan[i].addr, where, e);
		done += plan[i].size;
		if (rc == 0)
			progress(fn, payload, "erase", done, total);
	}
	free(plan);
	if (rc < 0)
		return rc;
	total = farm_image_size(img);
	done = 0;
	unsigned blockno = 0;
	int seq = sequential(d);
	for (size_t i = 0; i < img->n_segs; i++) {
		const struct farm_image_segment *s = &img->segs[i];
		uint32_t block = BLOCK_WRAP; /* set the address first */
		for (uint32_t off = 0; off < s->len; off += d->xfer, blockno++, block++) {
			uint32_t addr = s->addr + off;
			uint16_t len = (uint16_t)(s->len - off < d->xfer ? s->len - off : d->xfer);
			snprintf(where, sizeof where, "block %u", blockno);
			if (!seq || block >= BLOCK_WRAP) {
				if ((rc = set_address(d, addr, where, e)) < 0)
					return rc;
				block = 2;
			}
			snprintf(where, sizeof where, "at 0x%08x while writing block %u", (unsigned)addr,
				 blockno);
			if ((rc = dnload(d, (uint16_t)block, s->data + off, len, where, write_deadline(d), e)) < 0)
				return rc;
			done += len;
			progress(fn, payload, "write", done, total);
		}
	}
	runner_logf(d->ctx, "dfu: wrote %llu bytes in %u blocks", (unsigned long long)total, blockno);
	return 0;
}

/* Plain DFU: the zero-length download, then wait through manifestation. */
static int plain_manifest(struct runner_dfu *d, uint16_t block, struct farm_err *e)
{
	const char *where = "while ending the download (manifestation)";
	char why[128], tn[32];
	int x = xfer(d, REQ_OUT, RUNNER_DFU_DNLOAD, block, NULL, 0, NULL, why, sizeof why);
	if (x != RUNNER_DFU_X_OK)
		return xfer_error(d, x, RUNNER_DFU_DNLOAD, where, why, e);
	long long end = now_ms(d) + MANIFEST_DEADLINE_MS;
	for (;;) {
		struct dfu_status st;
		x = read_status(d, &st, why, sizeof why);
		if (x == RUNNER_DFU_X_GONE || x == RUNNER_DFU_X_STALL ||
		    (x == RUNNER_DFU_X_IO && !(d->u->info.func.attributes &
					       RUNNER_DFU_ATTR_MANIFEST_TOLERANT))) {
			runner_logf(d->ctx, "dfu: the device left after the download (manifestation)");
			return 0;
		}
		if (x != RUNNER_DFU_X_OK)
			return xfer_error(d, x, RUNNER_DFU_GETSTATUS, where, why, e);
		if (st.status != RUNNER_DFU_STATUS_OK || st.state == RUNNER_DFU_ERROR)
			return status_error(d, &st, where, e);
		if (st.state == RUNNER_DFU_IDLE || st.state == RUNNER_DFU_MANIFEST_WAIT_RESET) {
			runner_logf(d->ctx, "dfu: download complete (%s)", runner_dfu_state_name(st.state, tn, sizeof tn));
			return 0;
		}
		if (now_ms(d) + st.poll_ms > end)
			return farm_err_set(e, FARM_ETIMEDOUT, "board %s: DFU timeout %s: still in %s "
					    "after %u ms; reset the board and check the firmware runs",
					    d->ctx->board->id, where, runner_dfu_state_name(st.state, tn, sizeof tn),
					    MANIFEST_DEADLINE_MS);
		nap(d, st.poll_ms ? st.poll_ms : 10);
	}
}

static int plain_write(struct runner_dfu *d, const struct farm_image *img,
		       runner_dfu_progress_fn fn, void *payload, struct farm_err *e)
{
	struct farm_buf flat = { 0 };
	char where[96];
	int rc = farm_image_write_bin(img, 0xff, &flat, e);
	if (rc < 0)
		return farm_err_prefix(e, "board %s: DFU", d->ctx->board->id);
	uint32_t block = 0;
	for (size_t off = 0; off < flat.len; off += d->xfer, block++) {
		uint16_t len = (uint16_t)(flat.len - off < d->xfer ? flat.len - off : d->xfer);
		snprintf(where, sizeof where, "at offset 0x%zx while writing block %u", off, (unsigned)block);
		if ((rc = dnload(d, (uint16_t)block, (const uint8_t *)flat.data + off, len, where,
				 write_deadline(d), e)) < 0)
			goto out;
		progress(fn, payload, "write", off + len, flat.len);
	}
	runner_logf(d->ctx, "dfu: wrote %zu bytes in %u blocks", flat.len, (unsigned)block);
	rc = plain_manifest(d, (uint16_t)block, e);
out:
	farm_buf_free(&flat);
	return rc;
}

int runner_dfu_write(struct runner_dfu *d, const struct farm_image *img,
		     runner_dfu_progress_fn fn, void *payload, struct farm_err *e)
{
	if (d->u->info.has_func && !(d->u->info.func.attributes & RUNNER_DFU_ATTR_CAN_DNLOAD))
		return farm_err_set(e, FARM_EUNSUPPORTED, "board %s: %s does not accept downloads "
				    "(no bitCanDnload in its DFU descriptor); check flash.vid_pid "
				    "names its bootloader", d->ctx->board->id, d->u->info.what);
	return d->dfuse ? dfuse_write(d, img, fn, payload, e) : plain_write(d, img, fn, payload, e);
}

/* ---- read back ---- */

int runner_dfu_can_read(const struct runner_dfu *d, const struct farm_image *img,
			struct farm_err *e)
{
	const struct runner_dfu_info *info = &d->u->info;
	if (info->has_func && !(info->func.attributes & RUNNER_DFU_ATTR_CAN_UPLOAD))
		return farm_err_set(e, FARM_EUNSUPPORTED, "%s does not allow reading back (no "
				    "bitCanUpload)", info->what);
	if (!d->dfuse) {
		if (info->has_func && !(info->func.attributes & RUNNER_DFU_ATTR_MANIFEST_TOLERANT))
			return farm_err_set(e, FARM_EUNSUPPORTED, "%s leaves DFU mode after a download "
					    "(not manifestation tolerant)", info->what);
		return 0;
	}
	for (size_t i = 0; img && i < img->n_segs; i++) {
		uint64_t a = img->segs[i].addr, end = a + img->segs[i].len;
		while (a < end) {
			uint32_t start = (uint32_t)a;
			const struct runner_dfu_sectors *g =
				runner_dfu_layout_sector(&d->layout, (uint32_t)a, &start);
			if (!g || !(g->flags & RUNNER_DFU_MEM_READ))
				return farm_err_set(e, FARM_EUNSUPPORTED, "the sector at 0x%08x of %s is "
						    "not readable", (unsigned)start, d->layout.name);
			a = (uint64_t)start + g->size;
		}
	}
	return 0;
}

static int upload_block(struct runner_dfu *d, uint16_t block, uint8_t *buf, uint16_t len,
			size_t *got, const char *where, struct farm_err *e)
{
	char why[128];
	int x = xfer(d, REQ_IN, RUNNER_DFU_UPLOAD, block, buf, len, got, why, sizeof why);
	if (x != RUNNER_DFU_X_OK)
		return xfer_error(d, x, RUNNER_DFU_UPLOAD, where, why, e);
	return 0;
}

static int dfuse_read(struct runner_dfu *d, uint32_t addr, uint8_t *buf, size_t len,
		      const char *step, runner_dfu_progress_fn fn, void *payload, struct farm_err *e)
{
	char where[96];
	int seq = sequential(d), rc;
	uint32_t block = BLOCK_WRAP;
	for (size_t off = 0; off < len; off += d->xfer, block++) {
		uint32_t a = addr + (uint32_t)off;
		uint16_t n = (uint16_t)(len - off < d->xfer ? len - off : d->xfer);
		if (!seq || block >= BLOCK_WRAP) {
			snprintf(where, sizeof where, "at 0x%08x before reading", (unsigned)a);
			/* out of dfuUPLOAD-IDLE first: DNLOAD is not allowed there */
			if (off && (rc = simple_req(d, RUNNER_DFU_ABORT, where, e)) < 0)
				return rc;
			if ((rc = set_address(d, a, "reading", e)) < 0)
				return rc;
			if ((rc = simple_req(d, RUNNER_DFU_ABORT, where, e)) < 0)
				return rc;
			block = 2;
		}
		snprintf(where, sizeof where, "at 0x%08x while reading back (%s)", (unsigned)a, step);
		size_t got = 0;
		if ((rc = upload_block(d, (uint16_t)block, buf + off, n, &got, where, e)) < 0)
			return rc;
		if (got != n)
			return farm_err_set(e, FARM_EPROTO, "board %s: DFU short read %s: %zu bytes of %u; "
					    "check the memory layout of flash.alt", d->ctx->board->id, where,
					    got, (unsigned)n);
		progress(fn, payload, step, off + n, len);
	}
	return simple_req(d, RUNNER_DFU_ABORT, "after reading", e);
}

static int plain_read(struct runner_dfu *d, uint8_t *buf, size_t len, size_t *got_total,
		      const char *step, runner_dfu_progress_fn fn, void *payload, struct farm_err *e)
{
	char where[96];
	size_t off = 0;
	int rc;
	for (uint32_t block = 0; off < len; block++) {
		uint16_t n = (uint16_t)(len - off < d->xfer ? len - off : d->xfer);
		size_t got = 0;
		snprintf(where, sizeof where, "at offset 0x%zx while reading back (%s)", off, step);
		if ((rc = upload_block(d, (uint16_t)block, buf + off, n, &got, where, e)) < 0)
			return rc;
		off += got;
		progress(fn, payload, step, off, len);
		if (got < n)
			break; /* the device has no more */
	}
	*got_total = off;
	return off == len ? simple_req(d, RUNNER_DFU_ABORT, "after reading", e) : 0;
}

int runner_dfu_read(struct runner_dfu *d, uint32_t addr, uint8_t *buf, size_t len, size_t *got,
		    const char *step, runner_dfu_progress_fn fn, void *payload, struct farm_err *e)
{
	*got = 0;
	if (!d->dfuse)
		return plain_read(d, buf, len, got, step, fn, payload, e);
	int rc = dfuse_read(d, addr, buf, len, step, fn, payload, e);
	if (rc == 0)
		*got = len;
	return rc;
}

static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
	size_t i = 0;
	while (i < n && a[i] == b[i])
		i++;
	return i;
}

int runner_dfu_verify(struct runner_dfu *d, const struct farm_image *img,
		      runner_dfu_progress_fn fn, void *payload, struct farm_err *e)
{
	struct farm_buf flat = { 0 };
	uint8_t *buf = NULL;
	int rc = 0;
	if (!d->dfuse) {
		if ((rc = farm_image_write_bin(img, 0xff, &flat, e)) < 0)
			return farm_err_prefix(e, "board %s: DFU", d->ctx->board->id);
		size_t got = 0;
		if (!(buf = malloc(flat.len ? flat.len : 1))) {
			rc = farm_err_set(e, FARM_ENOMEM, "out of memory");
			goto out;
		}
		if ((rc = runner_dfu_read(d, 0, buf, flat.len, &got, "verify", fn, payload, e)) < 0)
			goto out;
		size_t k = first_diff(buf, (const uint8_t *)flat.data, got);
		if (got < flat.len && k == got)
			rc = farm_err_set(e, FARM_EIO, "board %s: DFU verify: the device returned %zu "
					  "bytes, the image has %zu; flash again", d->ctx->board->id, got, flat.len);
		else if (k < got)
			rc = farm_err_set(e, FARM_EIO, "board %s: DFU verify: offset 0x%zx holds 0x%02x, "
					  "the image 0x%02x; flash again, and replace the board if it "
					  "persists", d->ctx->board->id, k, buf[k], ((const uint8_t *)flat.data)[k]);
		goto out;
	}
	for (size_t i = 0; i < img->n_segs && rc == 0; i++) {
		const struct farm_image_segment *s = &img->segs[i];
		uint8_t *nb = realloc(buf, s->len);
		size_t got = 0;
		if (!nb) {
			rc = farm_err_set(e, FARM_ENOMEM, "out of memory");
			break;
		}
		buf = nb;
		if ((rc = runner_dfu_read(d, s->addr, buf, s->len, &got, "verify", fn, payload, e)) < 0)
			break;
		size_t k = first_diff(buf, s->data, s->len);
		if (k < s->len)
			rc = farm_err_set(e, FARM_EIO, "board %s: DFU verify: 0x%08x holds 0x%02x, the "
					  "image 0x%02x; flash again, and replace the board if it "
					  "persists", d->ctx->board->id, (unsigned)(s->addr + k), buf[k], s->data[k]);
	}
	if (rc == 0)
		runner_logf(d->ctx, "dfu: read back %zu bytes: identical", farm_image_size(img));
out:
	free(buf);
	farm_buf_free(&flat);
	return rc;
}

/* ---- leave ---- */

int runner_dfu_leave(struct runner_dfu *d, uint32_t jump_addr, struct farm_err *e)
{
	char why[128];
	if (!d->dfuse) {
		if (!d->u->ops->reset)
			return 0;
		int x = d->u->ops->reset(d->u->h, why, sizeof why);
		runner_logf(d->ctx, "dfu: USB reset to start the firmware%s%s", x ? ": " : "", x ? why : "");
		return 0;
	}
	int rc = set_address(d, jump_addr, "leaving DFU mode", e);
	if (rc < 0)
		return rc;
	const char *where = "while leaving DFU mode";
	int x = xfer(d, REQ_OUT, RUNNER_DFU_DNLOAD, 2, NULL, 0, NULL, why, sizeof why);
	if (x != RUNNER_DFU_X_OK)
		return xfer_error(d, x, RUNNER_DFU_DNLOAD, where, why, e);
	struct dfu_status st;
	x = read_status(d, &st, why, sizeof why);
	if (x == RUNNER_DFU_X_OK && (st.status != RUNNER_DFU_STATUS_OK || st.state == RUNNER_DFU_ERROR))
		return status_error(d, &st, where, e);
	/* The device often resets before it answers: that is the normal end. */
	runner_logf(d->ctx, "dfu: left DFU mode, jumping to 0x%08x%s", (unsigned)jump_addr,
	      x == RUNNER_DFU_X_OK ? "" : " (the device went away at once)");
	return 0;
}
