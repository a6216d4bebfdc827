#include "event.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static void put_u16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t get_u16(const unsigned char *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

int farm_event_encode(struct farm_buf *out, uint16_t type, const struct farm_event_field *fields,
		      size_t n)
{
	size_t payload = 0;
	for (size_t i = 0; i < n; i++)
		if (fields[i].data)
			payload += 6 + fields[i].len;
	if (payload > FARM_EVENT_MAX)
		return FARM_ELIMIT;
	unsigned char hdr[12];
	put_u32(hdr, FARM_EVENT_MAGIC);
	put_u16(hdr + 4, FARM_EVENT_VERSION);
	put_u16(hdr + 6, type);
	put_u32(hdr + 8, (uint32_t)payload);
	int rc = farm_buf_append(out, hdr, sizeof hdr);
	for (size_t i = 0; i < n && !rc; i++) {
		if (!fields[i].data)
			continue;
		unsigned char fh[6];
		put_u16(fh, fields[i].tag);
		put_u32(fh + 2, (uint32_t)fields[i].len);
		rc = farm_buf_append(out, fh, sizeof fh);
		if (!rc)
			rc = farm_buf_append(out, fields[i].data, fields[i].len);
	}
	return rc ? FARM_ENOMEM : 0;
}

int farm_event_write(int fd, uint16_t type, const struct farm_event_field *fields, size_t n,
		     struct farm_err *e)
{
	struct farm_buf b = { 0 };
	int rc = farm_event_encode(&b, type, fields, n);
	if (rc) {
		farm_buf_free(&b);
		return farm_err_set(e, rc, "event record too large");
	}
	size_t off = 0;
	while (off < b.len) {
		ssize_t w = write(fd, b.data + off, b.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = farm_err_sys(e, FARM_EIO, errno, "event pipe");
			break;
		}
		off += (size_t)w;
	}
	farm_buf_free(&b);
	return rc;
}

int farm_event_feed(struct farm_event_reader *r, const void *data, size_t len)
{
	/* Drop what was returned already before growing. */
	if (r->used) {
		memmove(r->buf.data, r->buf.data + r->used, r->buf.len - r->used);
		r->buf.len -= r->used;
		r->used = 0;
	}
	return farm_buf_append(&r->buf, data, len) ? FARM_ENOMEM : 0;
}

int farm_event_next(struct farm_event_reader *r, struct farm_event *ev)
{
	if (r->corrupt)
		return -1;
	const unsigned char *p = (const unsigned char *)r->buf.data + r->used;
	size_t avail = r->buf.len - r->used;
	if (avail < 12)
		return 0;
	uint32_t len = get_u32(p + 8);
	if (get_u32(p) != FARM_EVENT_MAGIC || get_u16(p + 4) != FARM_EVENT_VERSION ||
	    len > FARM_EVENT_MAX) {
		r->corrupt = 1;
		return -1;
	}
	if (avail < 12 + (size_t)len)
		return 0;
	ev->type = get_u16(p + 6);
	ev->n = 0;
	size_t off = 12;
	size_t end = 12 + (size_t)len;
	while (off < end) {
		if (end - off < 6) {
			r->corrupt = 1;
			return -1;
		}
		uint16_t tag = get_u16(p + off);
		uint32_t flen = get_u32(p + off + 2);
		off += 6;
		if (flen > end - off) {
			r->corrupt = 1;
			return -1;
		}
		if (ev->n < FARM_EVENT_MAX_FIELDS) {
			ev->f[ev->n].tag = tag;
			ev->f[ev->n].data = (const char *)p + off;
			ev->f[ev->n].len = flen;
			ev->n++;
		}
		off += flen;
	}
	r->used += end;
	return 1;
}

size_t farm_event_pending(const struct farm_event_reader *r)
{
	return r->buf.len - r->used;
}

void farm_event_reader_free(struct farm_event_reader *r)
{
	farm_buf_free(&r->buf);
	r->used = 0;
}

const struct farm_event_field *farm_event_get(const struct farm_event *ev, uint16_t tag)
{
	for (size_t i = 0; i < ev->n; i++)
		if (ev->f[i].tag == tag)
			return &ev->f[i];
	return NULL;
}
