/* mpfarm: GDB Remote Serial Protocol client (what GDB's `load` does).
 * Protocol facts: shared/protocols/gdb-rsp-flash.md; the pure helpers are in
 * rsp_proto.c.
 *
 * RSP is strictly request/response, so speed comes from cheap round trips:
 * one write per packet, input read in large buffered chunks, and packets as
 * large as the server's PacketSize allows. A framing or timing failure leaves
 * the connection out of step with the server: it is marked broken and every
 * later call fails at once (farm_rsp_close then skips the detach). */
#include "rsp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RX_CAP (64u << 10)
#define MAX_RESENDS 3        /* resends of one packet on '-' */
#define MAX_BAD_REPLIES 3    /* replies with a bad checksum in a row */
#define MIN_PACKET_SIZE 64
#define CANCEL_SLICE_MS 100
#define DETACH_TIMEOUT_MS 1000

struct farm_rsp {
	struct farm_transport *t;
	int timeout_ms;
	const volatile sig_atomic_t *cancel;
	struct farm_rsp_info info;
	void (*log_fn)(void *p, char dir, const char *data, size_t len);
	void *log_p;
	unsigned char *rx; /* buffered input */
	size_t rx_pos, rx_len;
	struct farm_buf tx;   /* the framed packet in flight, kept for resends */
	struct farm_buf body; /* raw body of the packet being received */
	struct farm_buf req;  /* request under construction */
	struct farm_buf rep;  /* decoded reply, for the wrapped calls */
	int awaiting_ack;     /* sent a packet, no '+' (or reply) seen yet */
	int resends;
	int broken;           /* out of step with the server: refuse further packets */
	char broken_why[160];
	char what[160];       /* the packet in flight, for messages */
};

static const char *url_of(const struct farm_rsp *r)
{
	return r->t->url[0] ? r->t->url : "(unnamed transport)";
}

static void set_what(struct farm_rsp *r, const char *fmt, ...) FARM_PRINTF(2, 3);
static void set_what(struct farm_rsp *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->what, sizeof r->what, fmt, ap);
	va_end(ap);
}

/* A reply (or request) shown in a message: printable, at most 64 characters. */
static void show(char *out, size_t cap, const char *data, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len && n + 5 < cap; i++) {
		unsigned char c = (unsigned char)data[i];
		if (i == 64) {
			out[n++] = '.', out[n++] = '.', out[n++] = '.';
			break;
		}
		if (c >= 0x20 && c < 0x7f) {
			out[n++] = (char)c;
		} else {
			int k = snprintf(out + n, cap - n, "\\x%02x", c);
			if (k < 0 || (size_t)k >= cap - n)
				break;
			n += (size_t)k;
		}
	}
	out[n] = '\0';
}

static int mark_broken(struct farm_rsp *r, int rc, struct farm_err *e)
{
	const char *why = e ? e->msg : farm_strerror(rc);
	size_t n = strnlen(why, sizeof r->broken_why - 1);
	r->broken = 1;
	memcpy(r->broken_why, why, n);
	r->broken_why[n] = '\0';
	return rc;
}

static void log_io(struct farm_rsp *r, char dir, const void *data, size_t len)
{
	if (r->log_fn && len)
		r->log_fn(r->log_p, dir, data, len);
}

static int send_raw(struct farm_rsp *r, const void *data, size_t len, struct farm_err *e)
{
	struct farm_err te = { 0 };
	log_io(r, 'w', data, len);
	int rc = farm_transport_write(r->t, data, len, r->timeout_ms, &te);
	if (rc == 0)
		return 0;
	if (rc == FARM_ECLOSED)
		farm_err_set(e, FARM_ECLOSED, "GDB server %s closed the connection during %s", url_of(r),
			     r->what);
	else
		farm_err_set(e, rc, "GDB server %s: sending %s: %s", url_of(r), r->what, te.msg);
	return mark_broken(r, rc, e);
}

/* Make input available in r->rx before the deadline. */
static int fill(struct farm_rsp *r, long long deadline, int wait_ms, struct farm_err *e)
{
	for (;;) {
		if (r->cancel && *r->cancel) {
			farm_err_set(e, FARM_EINTR, "GDB server %s: interrupted during %s", url_of(r), r->what);
			return mark_broken(r, FARM_EINTR, e);
		}
		long long left = deadline - farm_now_ms();
		if (left <= 0) {
			farm_err_set(e, FARM_ETIMEDOUT, "GDB server %s: no %s %s within %d ms", url_of(r),
				     r->awaiting_ack ? "acknowledgement of" : "reply to", r->what, wait_ms);
			return mark_broken(r, FARM_ETIMEDOUT, e);
		}
		int slice = (int)left;
		if (r->cancel && slice > CANCEL_SLICE_MS)
			slice = CANCEL_SLICE_MS;
		struct farm_err te = { 0 };
		size_t got = 0;
		int rc = farm_transport_read(r->t, r->rx, RX_CAP, &got, slice, &te);
		if (rc == FARM_ECLOSED) {
			farm_err_set(e, FARM_ECLOSED, "GDB server %s closed the connection during %s",
				     url_of(r), r->what);
			return mark_broken(r, rc, e);
		}
		if (rc) {
			farm_err_set(e, rc, "GDB server %s: during %s: %s", url_of(r), r->what, te.msg);
			return mark_broken(r, rc, e);
		}
		if (got) {
			log_io(r, 'r', r->rx, got);
			r->rx_pos = 0;
			r->rx_len = got;
			return 0;
		}
	}
}

static int next_byte(struct farm_rsp *r, long long deadline, int wait_ms, int *c,
		     struct farm_err *e)
{
	if (r->rx_pos == r->rx_len) {
		int rc = fill(r, deadline, wait_ms, e);
		if (rc)
			return rc;
	}
	*c = r->rx[r->rx_pos++];
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int too_long(struct farm_rsp *r, struct farm_err *e)
{
	farm_err_set(e, FARM_ELIMIT, "GDB server %s: reply to %s is longer than %u bytes", url_of(r),
		     r->what, FARM_RSP_MAX_PACKET);
	return mark_broken(r, FARM_ELIMIT, e);
}

/* Read up to and including '#' into r->body (or just discard, for
 * notifications). Returns 1 in *restart when a new '$' began mid-packet. */
static int read_body(struct farm_rsp *r, long long deadline, int wait_ms, int keep, int *restart,
		     struct farm_err *e)
{
	size_t seen = 0;
	*restart = 0;
	for (;;) {
		if (r->rx_pos == r->rx_len) {
			int rc = fill(r, deadline, wait_ms, e);
			if (rc)
				return rc;
		}
		const unsigned char *s = r->rx + r->rx_pos;
		size_t n = r->rx_len - r->rx_pos, k = 0;
		while (k < n && s[k] != '#' && s[k] != '$')
			k++;
		if (seen + k > FARM_RSP_MAX_PACKET)
			return too_long(r, e);
		if (keep && k && farm_buf_append(&r->body, s, k)) {
			farm_err_set(e, FARM_ENOMEM, "out of memory reading a GDB reply");
			return mark_broken(r, FARM_ENOMEM, e);
		}
		seen += k;
		r->rx_pos += k;
		if (k < n) {
			r->rx_pos++;
			if (s[k] == '$')
				*restart = 1;
			return 0;
		}
	}
}

/* Wait for the next packet from the server and leave its raw body in
 * r->body. Handles acks of our packet ('+', '-' = resend), skips stray
 * bytes and notifications (%...#cc), asks for a resend of a reply with a
 * bad checksum, and acknowledges good replies. */
static int read_packet(struct farm_rsp *r, long long deadline, int wait_ms, struct farm_err *e)
{
	int bad = 0;
	int rc, c;
	for (;;) {
		if ((rc = next_byte(r, deadline, wait_ms, &c, e)))
			return rc;
		if (c == '+') {
			r->awaiting_ack = 0;
			continue;
		}
		if (c == '-') {
			if (!r->awaiting_ack || r->info.no_ack)
				continue; /* stray */
			if (++r->resends > MAX_RESENDS) {
				farm_err_set(e, FARM_EPROTO,
					     "GDB server %s: %s rejected %d times (bad checksum on the line?)",
					     url_of(r), r->what, r->resends);
				return mark_broken(r, FARM_EPROTO, e);
			}
			if ((rc = send_raw(r, r->tx.data, r->tx.len, e)))
				return rc;
			continue;
		}
		if (c == '%') {
			int restart;
			if ((rc = read_body(r, deadline, wait_ms, 0, &restart, e)))
				return rc;
			if (restart)
				goto packet;
			for (int i = 0; i < 2; i++)
				if ((rc = next_byte(r, deadline, wait_ms, &c, e)))
					return rc;
			continue;
		}
		if (c != '$')
			continue; /* leading garbage */
	packet:
		/* A reply implies the server got our packet even if its '+' was lost. */
		r->awaiting_ack = 0;
		farm_buf_reset(&r->body);
		int restart;
		if ((rc = read_body(r, deadline, wait_ms, 1, &restart, e)))
			return rc;
		if (restart)
			goto packet;
		int c1, c0;
		if ((rc = next_byte(r, deadline, wait_ms, &c1, e)) ||
		    (rc = next_byte(r, deadline, wait_ms, &c0, e)))
			return rc;
		unsigned sum = 0;
		for (size_t i = 0; i < r->body.len; i++)
			sum += (unsigned char)r->body.data[i];
		int h1 = hexval(c1), h0 = hexval(c0);
		if (h1 >= 0 && h0 >= 0 && (unsigned)(h1 * 16 + h0) == (sum & 0xff)) {
			if (!r->info.no_ack && (rc = send_raw(r, "+", 1, e)))
				return rc;
			return 0;
		}
		if (r->info.no_ack || ++bad > MAX_BAD_REPLIES) {
			farm_err_set(e, FARM_EPROTO, "GDB server %s: bad checksum in the reply to %s",
				     url_of(r), r->what);
			return mark_broken(r, FARM_EPROTO, e);
		}
		if ((rc = send_raw(r, "-", 1, e)))
			return rc;
	}
}

static int check_usable(struct farm_rsp *r, struct farm_err *e)
{
	if (r->broken)
		return farm_err_set(e, FARM_EIO,
				    "GDB server %s: connection unusable after an earlier failure (%s)",
				    url_of(r), r->broken_why);
	if (r->cancel && *r->cancel) {
		farm_err_set(e, FARM_EINTR, "GDB server %s: interrupted before %s", url_of(r), r->what);
		return FARM_EINTR; /* nothing in flight: still in step */
	}
	return 0;
}

/* Send one packet (data as given) and leave the decoded reply in out. */
static int exchange(struct farm_rsp *r, const void *data, size_t len, struct farm_buf *out,
		    int timeout_ms, struct farm_err *e)
{
	int rc = check_usable(r, e);
	if (rc)
		return rc;
	farm_buf_reset(&r->tx);
	if (farm_rsp_frame(&r->tx, data, len))
		return farm_err_set(e, FARM_ENOMEM, "out of memory framing %s", r->what);
	if ((rc = send_raw(r, r->tx.data, r->tx.len, e)))
		return rc;
	r->awaiting_ack = !r->info.no_ack;
	r->resends = 0;
	if ((rc = read_packet(r, farm_now_ms() + timeout_ms, timeout_ms, e)))
		return rc;
	farm_buf_reset(out);
	struct farm_err de = { 0 };
	if ((rc = farm_rsp_decode(out, r->body.data, r->body.len, &de))) {
		farm_err_set(e, rc, "GDB server %s: reply to %s: %s", url_of(r), r->what, de.msg);
		return rc; /* the packet itself was well framed: still in step */
	}
	return 0;
}

/* Read one more packet answering the same request into r->rep. */
static int next_reply(struct farm_rsp *r, int timeout_ms, struct farm_err *e)
{
	int rc = read_packet(r, farm_now_ms() + timeout_ms, timeout_ms, e);
	if (rc)
		return rc;
	farm_buf_reset(&r->rep);
	struct farm_err de = { 0 };
	if ((rc = farm_rsp_decode(&r->rep, r->body.data, r->body.len, &de)))
		return farm_err_set(e, rc, "GDB server %s: reply to %s: %s", url_of(r), r->what, de.msg);
	return 0;
}

/* "S05", "T05thread:01;": a stop reply, which no query is answered with. */
static int is_unsolicited_stop(const struct farm_buf *b)
{
	return b->len >= 3 && (b->data[0] == 'S' || b->data[0] == 'T') && hexval(b->data[1]) >= 0 &&
	       hexval(b->data[2]) >= 0 && (b->len == 3 || b->data[0] == 'T');
}

static int reply_is(const struct farm_buf *b, const char *s)
{
	return b->len == strlen(s) && !memcmp(b->data, s, b->len);
}

static int is_error_reply(const struct farm_buf *b)
{
	return b->len >= 1 && b->data[0] == 'E' &&
	       ((b->len == 3 && hexval(b->data[1]) >= 0 && hexval(b->data[2]) >= 0) ||
		(b->len >= 2 && b->data[1] == '.'));
}

/* The reply to r->what was not what we wanted: name both. */
static int bad_reply(struct farm_rsp *r, const struct farm_buf *b, struct farm_err *e)
{
	char shown[300];
	if (b->len == 0)
		return farm_err_set(e, FARM_EUNSUPPORTED,
				    "GDB server %s: %s: not supported by the server (empty reply)",
				    url_of(r), r->what);
	show(shown, sizeof shown, b->data, b->len);
	if (is_error_reply(b))
		return farm_err_set(e, FARM_EIO, "GDB server %s: %s: %s", url_of(r), r->what, shown);
	return farm_err_set(e, FARM_EPROTO, "GDB server %s: %s: unexpected reply '%s'", url_of(r),
			    r->what, shown);
}

static int expect_ok(struct farm_rsp *r, int timeout_ms, struct farm_err *e)
{
	int rc = exchange(r, r->req.data, r->req.len, &r->rep, timeout_ms, e);
	if (rc)
		return rc;
	if (!reply_is(&r->rep, "OK"))
		return bad_reply(r, &r->rep, e);
	return 0;
}

static int build_fail(struct farm_rsp *r, struct farm_err *e)
{
	return farm_err_set(e, FARM_ENOMEM, "out of memory building %s", r->what);
}

/* ---- connection ---- */

static void parse_supported(struct farm_rsp *r, const char *s, size_t len, int *offers_noack)
{
	size_t i = 0;
	while (i < len) {
		size_t j = i;
		while (j < len && s[j] != ';')
			j++;
		const char *f = s + i;
		size_t n = j - i;
		if (n > 11 && !memcmp(f, "PacketSize=", 11)) {
			unsigned long long v = 0;
			size_t k = 11;
			for (; k < n && hexval(f[k]) >= 0; k++)
				if (v < (1ull << 40))
					v = v * 16 + (unsigned)hexval(f[k]);
			if (k == n && k > 11)
				r->info.packet_size = v > FARM_RSP_MAX_PACKET ? FARM_RSP_MAX_PACKET : (unsigned)v;
		} else if (n == 22 && !memcmp(f, "qXfer:memory-map:read+", 22)) {
			r->info.has_memory_map = 1;
		} else if (n == 16 && !memcmp(f, "QStartNoAckMode+", 16)) {
			*offers_noack = 1;
		}
		i = j + 1;
	}
}

int farm_rsp_read_memory_map(struct farm_rsp *r, struct farm_err *e)
{
	struct farm_buf xml = { 0 };
	int rc = 0;
	r->info.n_regions = 0;
	for (;;) {
		/* Ask for as much as fits a reply; escaping may grow it, servers cope. */
		unsigned want = r->info.packet_size > 16 ? r->info.packet_size - 16 : 16;
		set_what(r, "qXfer:memory-map:read at offset %zu", xml.len);
		farm_buf_reset(&r->req);
		if (farm_buf_printf(&r->req, "qXfer:memory-map:read::%zx,%x", xml.len, want)) {
			rc = build_fail(r, e);
			goto out;
		}
		if ((rc = exchange(r, r->req.data, r->req.len, &r->rep, r->timeout_ms, e)))
			goto out;
		if (r->rep.len == 0 || (r->rep.data[0] != 'm' && r->rep.data[0] != 'l')) {
			rc = bad_reply(r, &r->rep, e);
			goto out;
		}
		if (xml.len + r->rep.len - 1 > FARM_RSP_MAX_PACKET) {
			rc = farm_err_set(e, FARM_ELIMIT, "GDB server %s: memory map longer than %u bytes",
					  url_of(r), FARM_RSP_MAX_PACKET);
			goto out;
		}
		if (r->rep.len > 1 && farm_buf_append(&xml, r->rep.data + 1, r->rep.len - 1)) {
			rc = build_fail(r, e);
			goto out;
		}
		if (r->rep.data[0] == 'l')
			break;
		if (r->rep.len == 1) { /* "m" with no data would never end */
			rc = farm_err_set(e, FARM_EPROTO,
					  "GDB server %s: %s: empty 'm' chunk (more data promised, none sent)",
					  url_of(r), r->what);
			goto out;
		}
	}
	rc = farm_rsp_parse_memory_map(xml.data ? xml.data : "", xml.len, r->info.regions,
				       FARM_RSP_MAX_REGIONS, &r->info.n_regions, e);
	if (rc)
		farm_err_prefix(e, "GDB server %s", url_of(r));
out:
	farm_buf_free(&xml);
	return rc;
}

int farm_rsp_open(struct farm_rsp **out, struct farm_transport *t, int timeout_ms,
		  const volatile sig_atomic_t *cancel, struct farm_err *e)
{
	*out = NULL;
	int rc = 0;
	struct farm_rsp *r = calloc(1, sizeof *r);
	if (!r || !(r->rx = malloc(RX_CAP))) {
		free(r);
		farm_transport_close(t);
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	}
	r->t = t;
	r->timeout_ms = timeout_ms;
	r->cancel = cancel;
	r->info.packet_size = 400;
	r->info.has_x = -1;
	r->info.has_qcrc = -1;

	int offers_noack = 0;
	set_what(r, "qSupported");
	if ((rc = exchange(r, "qSupported", 10, &r->rep, timeout_ms, e)))
		goto out;
	/* A stop packet may be waiting from before we asked: QEMU halts a running
	 * VM when a client connects and tells it so. It is not our reply. */
	for (int k = 0; k < 4 && is_unsolicited_stop(&r->rep); k++)
		if ((rc = next_reply(r, timeout_ms, e)))
			goto out;
	if (!is_error_reply(&r->rep))
		parse_supported(r, r->rep.data ? r->rep.data : "", r->rep.len, &offers_noack);
	if (r->info.packet_size < MIN_PACKET_SIZE) {
		rc = farm_err_set(e, FARM_EPROTO, "GDB server %s: PacketSize=%x is too small", url_of(r),
				  r->info.packet_size);
		goto out;
	}
	if (offers_noack) {
		set_what(r, "QStartNoAckMode");
		if ((rc = exchange(r, "QStartNoAckMode", 15, &r->rep, timeout_ms, e)))
			goto out;
		if (reply_is(&r->rep, "OK"))
			r->info.no_ack = 1; /* our '+' for this OK was the last one */
	}
	set_what(r, "'?' (liveness check)");
	if ((rc = exchange(r, "?", 1, &r->rep, timeout_ms, e)))
		goto out;
	if (r->rep.len == 0 || !strchr("STWX", r->rep.data[0])) {
		rc = bad_reply(r, &r->rep, e);
		goto out;
	}
	if (r->info.has_memory_map) {
		rc = farm_rsp_read_memory_map(r, e);
		if (rc == FARM_EIO || rc == FARM_EUNSUPPORTED)
			rc = 0; /* no map yet (BMP before attach): the caller may read it later */
		if (rc)
			goto out;
	}
out:
	if (rc) {
		r->broken = 1; /* no detach from a half-open session */
		farm_rsp_close(r);
		return rc;
	}
	*out = r;
	return 0;
}

int farm_rsp_connect(struct farm_rsp **out, const char *url, int timeout_ms,
		     const volatile sig_atomic_t *cancel, struct farm_err *e)
{
	*out = NULL;
	struct farm_transport *t = NULL;
	int rc = farm_transport_open(&t, url, NULL, timeout_ms, e);
	if (rc) {
		farm_err_prefix(e, "GDB server %s", url);
		return rc;
	}
	return farm_rsp_open(out, t, timeout_ms, cancel, e);
}

void farm_rsp_close(struct farm_rsp *r)
{
	if (!r)
		return;
	if (!r->broken && !(r->cancel && *r->cancel)) {
		struct farm_err ignored = { 0 };
		set_what(r, "D (detach)");
		int t = r->timeout_ms < DETACH_TIMEOUT_MS ? r->timeout_ms : DETACH_TIMEOUT_MS;
		/* A server left in multiprocess mode by an earlier GDB session (QEMU
		 * never clears it) refuses a plain 'D' with E22 and keeps the target
		 * halted: detach from process 1 explicitly then. */
		if (exchange(r, "D", 1, &r->rep, t, &ignored) == 0 && is_error_reply(&r->rep))
			exchange(r, "D;1", 3, &r->rep, t, &ignored);
	}
	farm_transport_close(r->t);
	free(r->rx);
	farm_buf_free(&r->tx);
	farm_buf_free(&r->body);
	farm_buf_free(&r->req);
	farm_buf_free(&r->rep);
	free(r);
}

const struct farm_rsp_info *farm_rsp_info(const struct farm_rsp *r)
{
	return &r->info;
}

void farm_rsp_set_timeout(struct farm_rsp *r, int timeout_ms)
{
	r->timeout_ms = timeout_ms;
}

void farm_rsp_set_log(struct farm_rsp *r, void (*fn)(void *p, char dir, const char *data, size_t len),
		      void *payload)
{
	r->log_fn = fn;
	r->log_p = payload;
}

int farm_rsp_request(struct farm_rsp *r, const void *req, size_t req_len, struct farm_buf *reply,
		     struct farm_err *e)
{
	char shown[80];
	show(shown, sizeof shown, req, req_len < 40 ? req_len : 40);
	set_what(r, "packet '%s%s'", shown, req_len > 40 ? "..." : "");
	return exchange(r, req, req_len, reply, r->timeout_ms, e);
}

/* ---- memory ---- */

/* Largest packet data we send: GDB keeps the whole frame ($...#cc) within
 * PacketSize, and so do we (QEMU's buffer holds PacketSize - 1 characters). */
static size_t data_budget(const struct farm_rsp *r)
{
	return r->info.packet_size - 4;
}

static size_t hex_digits(uint64_t v)
{
	size_t n = 1;
	while (v >>= 4)
		n++;
	return n;
}

/* How many bytes of data, escaped, fit in budget characters. */
static size_t fit_escaped(const unsigned char *p, size_t len, size_t budget)
{
	size_t n = 0, used = 0;
	while (n < len) {
		unsigned char c = p[n];
		size_t w = (c == '#' || c == '$' || c == '}' || c == '*') ? 2 : 1;
		if (used + w > budget)
			break;
		used += w;
		n++;
	}
	return n;
}

static int check_range(struct farm_rsp *r, const char *op, uint32_t addr, size_t len,
		       struct farm_err *e)
{
	if ((uint64_t)addr + len > (uint64_t)UINT32_MAX + 1)
		return farm_err_set(e, FARM_EINVAL,
				    "GDB server %s: %s of %zu bytes at 0x%08x runs past the 32-bit address space",
				    url_of(r), op, len, addr);
	return 0;
}

static int probe_x(struct farm_rsp *r, uint32_t addr, struct farm_err *e)
{
	set_what(r, "X probe at 0x%08x", addr);
	farm_buf_reset(&r->req);
	if (farm_buf_printf(&r->req, "X%x,0:", addr))
		return build_fail(r, e);
	int rc = exchange(r, r->req.data, r->req.len, &r->rep, r->timeout_ms, e);
	if (rc)
		return rc;
	/* As GDB: an empty reply means no X; anything else means X works. */
	r->info.has_x = r->rep.len ? 1 : 0;
	return 0;
}

static const char hexdig[] = "0123456789abcdef";

int farm_rsp_write_mem(struct farm_rsp *r, uint32_t addr, const void *data, size_t len,
		       farm_rsp_progress_fn progress, void *payload, struct farm_err *e)
{
	const unsigned char *p = data;
	int rc = check_range(r, "write", addr, len, e);
	if (rc || len == 0)
		return rc;
	if (r->info.has_x < 0 && (rc = probe_x(r, addr, e)))
		return rc;
	size_t off = 0;
	while (off < len) {
		uint32_t a = addr + (uint32_t)off;
		/* "X" or "M", address, ",", length (at most the budget), ":" */
		size_t header = 3 + hex_digits(a) + hex_digits(data_budget(r));
		size_t budget = data_budget(r) - header;
		size_t n;
		farm_buf_reset(&r->req);
		if (r->info.has_x) {
			n = fit_escaped(p + off, len - off, budget);
			set_what(r, "X at 0x%08x (%zu bytes)", a, n);
			if (farm_buf_printf(&r->req, "X%x,%zx:", a, n) ||
			    farm_rsp_escape(&r->req, p + off, n))
				return build_fail(r, e);
		} else {
			n = budget / 2;
			if (n > len - off)
				n = len - off;
			set_what(r, "M at 0x%08x (%zu bytes)", a, n);
			if (farm_buf_printf(&r->req, "M%x,%zx:", a, n))
				return build_fail(r, e);
			char chunk[512];
			for (size_t i = 0; i < n;) {
				size_t k = 0;
				for (; k + 2 <= sizeof chunk && i < n; i++) {
					chunk[k++] = hexdig[p[off + i] >> 4];
					chunk[k++] = hexdig[p[off + i] & 15];
				}
				if (farm_buf_append(&r->req, chunk, k))
					return build_fail(r, e);
			}
		}
		if ((rc = expect_ok(r, r->timeout_ms, e)))
			return rc;
		off += n;
		if (progress)
			progress(payload, off, len);
	}
	return 0;
}

int farm_rsp_read_mem(struct farm_rsp *r, uint32_t addr, void *data, size_t len,
		      farm_rsp_progress_fn progress, void *payload, struct farm_err *e)
{
	unsigned char *p = data;
	int rc = check_range(r, "read", addr, len, e);
	if (rc)
		return rc;
	size_t max = r->info.packet_size / 2;
	size_t off = 0;
	while (off < len) {
		uint32_t a = addr + (uint32_t)off;
		size_t n = len - off < max ? len - off : max;
		set_what(r, "m at 0x%08x (%zu bytes)", a, n);
		farm_buf_reset(&r->req);
		if (farm_buf_printf(&r->req, "m%x,%zx", a, n))
			return build_fail(r, e);
		if ((rc = exchange(r, r->req.data, r->req.len, &r->rep, r->timeout_ms, e)))
			return rc;
		const char *s = r->rep.data;
		size_t sl = r->rep.len;
		/* A short reply is a partial read (servers cap replies): go on from there. */
		if (sl == 0 || is_error_reply(&r->rep))
			return bad_reply(r, &r->rep, e);
		if (sl % 2 || sl / 2 > n)
			return farm_err_set(e, FARM_EPROTO,
					    "GDB server %s: %s: reply of %zu hex digits does not fit", url_of(r),
					    r->what, sl);
		for (size_t i = 0; i < sl / 2; i++) {
			int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
			if (hi < 0 || lo < 0) {
				char shown[100];
				show(shown, sizeof shown, s, sl);
				return farm_err_set(e, FARM_EPROTO,
						    "GDB server %s: %s: reply is not hex: '%s'", url_of(r),
						    r->what, shown);
			}
			p[off + i] = (unsigned char)(hi * 16 + lo);
		}
		off += sl / 2;
		if (progress)
			progress(payload, off, len);
	}
	return 0;
}

/* ---- flash ---- */

int farm_rsp_flash_erase(struct farm_rsp *r, uint32_t addr, uint32_t len, struct farm_err *e)
{
	int rc = check_range(r, "flash erase", addr, len, e);
	if (rc)
		return rc;
	set_what(r, "vFlashErase at 0x%08x (%u bytes)", addr, len);
	farm_buf_reset(&r->req);
	if (farm_buf_printf(&r->req, "vFlashErase:%x,%x", addr, len))
		return build_fail(r, e);
	return expect_ok(r, r->timeout_ms, e);
}

int farm_rsp_flash_write(struct farm_rsp *r, uint32_t addr, const void *data, size_t len,
			 farm_rsp_progress_fn progress, void *payload, struct farm_err *e)
{
	const unsigned char *p = data;
	int rc = check_range(r, "flash write", addr, len, e);
	if (rc)
		return rc;
	size_t off = 0;
	while (off < len) {
		uint32_t a = addr + (uint32_t)off;
		size_t budget = data_budget(r) - (13 + hex_digits(a)); /* "vFlashWrite:" addr ":" */
		size_t n = fit_escaped(p + off, len - off, budget);
		set_what(r, "vFlashWrite at 0x%08x (%zu bytes)", a, n);
		farm_buf_reset(&r->req);
		if (farm_buf_printf(&r->req, "vFlashWrite:%x:", a) || farm_rsp_escape(&r->req, p + off, n))
			return build_fail(r, e);
		if ((rc = expect_ok(r, r->timeout_ms, e)))
			return rc;
		off += n;
		if (progress)
			progress(payload, off, len);
	}
	return 0;
}

int farm_rsp_flash_done(struct farm_rsp *r, int done_timeout_ms, struct farm_err *e)
{
	set_what(r, "vFlashDone");
	farm_buf_reset(&r->req);
	if (farm_buf_puts(&r->req, "vFlashDone"))
		return build_fail(r, e);
	return expect_ok(r, done_timeout_ms, e);
}

int farm_rsp_crc(struct farm_rsp *r, uint32_t addr, uint32_t len, uint32_t *crc, struct farm_err *e)
{
	*crc = 0;
	if (r->info.has_qcrc == 0)
		return farm_err_set(e, FARM_EUNSUPPORTED, "GDB server %s: no qCRC support", url_of(r));
	int rc = check_range(r, "qCRC", addr, len, e);
	if (rc)
		return rc;
	set_what(r, "qCRC at 0x%08x (%u bytes)", addr, len);
	farm_buf_reset(&r->req);
	if (farm_buf_printf(&r->req, "qCRC:%x,%x", addr, len))
		return build_fail(r, e);
	if ((rc = exchange(r, r->req.data, r->req.len, &r->rep, r->timeout_ms, e)))
		return rc;
	if (r->rep.len == 0) {
		r->info.has_qcrc = 0;
		return farm_err_set(e, FARM_EUNSUPPORTED, "GDB server %s: no qCRC support", url_of(r));
	}
	if (r->rep.data[0] != 'C' || r->rep.len < 2 || r->rep.len > 9)
		return bad_reply(r, &r->rep, e);
	uint32_t v = 0;
	for (size_t i = 1; i < r->rep.len; i++) {
		int d = hexval((unsigned char)r->rep.data[i]);
		if (d < 0)
			return bad_reply(r, &r->rep, e);
		v = v * 16 + (uint32_t)d;
	}
	r->info.has_qcrc = 1;
	*crc = v;
	return 0;
}

/* Append hex text (as in 'O' packets and qRcmd replies) decoded to out. */
static int append_hex_text(struct farm_buf *out, const char *s, size_t n)
{
	if (n % 2)
		return FARM_EPROTO;
	for (size_t i = 0; i < n; i += 2) {
		int hi = hexval((unsigned char)s[i]), lo = hexval((unsigned char)s[i + 1]);
		if (hi < 0 || lo < 0)
			return FARM_EPROTO;
	}
	if (!out)
		return 0;
	char chunk[256];
	for (size_t i = 0; i < n;) {
		size_t k = 0;
		for (; k < sizeof chunk && i < n; i += 2)
			chunk[k++] = (char)(hexval((unsigned char)s[i]) * 16 + hexval((unsigned char)s[i + 1]));
		if (farm_buf_append(out, chunk, k))
			return FARM_ENOMEM;
	}
	return 0;
}

int farm_rsp_monitor(struct farm_rsp *r, const char *cmd, struct farm_buf *out, struct farm_err *e)
{
	size_t cl = strlen(cmd);
	set_what(r, "monitor command '%.100s'", cmd);
	farm_buf_reset(&r->req);
	if (farm_buf_puts(&r->req, "qRcmd,"))
		return build_fail(r, e);
	for (size_t i = 0; i < cl; i++) {
		char h[2] = { hexdig[(unsigned char)cmd[i] >> 4], hexdig[(unsigned char)cmd[i] & 15] };
		if (farm_buf_append(&r->req, h, 2))
			return build_fail(r, e);
	}
	int rc = exchange(r, r->req.data, r->req.len, &r->rep, r->timeout_ms, e);
	size_t console = 0;
	while (rc == 0) {
		const char *s = r->rep.data;
		size_t n = r->rep.len;
		if (n == 0)
			return farm_err_set(e, FARM_EUNSUPPORTED,
					    "GDB server %s: monitor commands are not supported (empty reply to '%.100s')",
					    url_of(r), cmd);
		if (reply_is(&r->rep, "OK"))
			return 0;
		if (is_error_reply(&r->rep)) {
			char shown[100];
			show(shown, sizeof shown, s, n);
			return farm_err_set(e, FARM_EIO, "GDB server %s: monitor command '%.100s' failed: %s",
					    url_of(r), cmd, shown);
		}
		int is_console = s[0] == 'O';
		if (is_console) {
			s++, n--;
			console += n / 2 + 1; /* + 1: endless empty 'O' packets end too */
			if (console > FARM_RSP_MAX_PACKET)
				return farm_err_set(e, FARM_ELIMIT,
						    "GDB server %s: %s: more than %u bytes of output",
						    url_of(r), r->what, FARM_RSP_MAX_PACKET);
		}
		int hr = append_hex_text(out, s, n);
		if (hr == FARM_ENOMEM)
			return farm_err_set(e, FARM_ENOMEM, "out of memory");
		if (hr)
			return bad_reply(r, &r->rep, e);
		if (!is_console)
			return 0; /* a final hex reply (OpenOCD, pyOCD) */
		/* More to come: the next packet answers the same request. */
		rc = next_reply(r, r->timeout_ms, e);
	}
	return rc;
}

static int is_stop_reply(const struct farm_buf *b)
{
	return b->len > 0 && strchr("STWX", b->data[0]) != NULL;
}

int farm_rsp_interrupt(struct farm_rsp *r, struct farm_err *e)
{
	int rc = check_usable(r, e);
	if (rc)
		return rc;
	set_what(r, "interrupt (0x03)");
	if ((rc = send_raw(r, "\x03", 1, e)))
		return rc;
	r->awaiting_ack = 0;
	long long deadline = farm_now_ms() + r->timeout_ms;
	struct farm_err te = { 0 };
	for (;;) {
		rc = read_packet(r, deadline, r->timeout_ms, &te);
		if (rc)
			break;
		farm_buf_reset(&r->rep);
		if (farm_rsp_decode(&r->rep, r->body.data, r->body.len, &te) == 0 && is_stop_reply(&r->rep))
			return 0;
		/* console output or a late reply: keep waiting for the stop packet */
	}
	if (rc != FARM_ETIMEDOUT) {
		if (e)
			*e = te;
		return rc;
	}
	/* A halted target does not answer 0x03 (QEMU): ask for its state. */
	r->broken = 0;
	set_what(r, "'?' after an unanswered interrupt");
	if ((rc = exchange(r, "?", 1, &r->rep, r->timeout_ms, e)))
		return rc;
	if (!is_stop_reply(&r->rep))
		return bad_reply(r, &r->rep, e);
	return 0;
}
