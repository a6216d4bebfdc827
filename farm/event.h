/* mpfarm: the records a board's worker process streams to the parent.
 *
 * Record (all integers little-endian):
 *   u32 magic "MPFE" (0x4546504d) | u16 version (1) | u16 type | u32 payload length
 *   payload: fields, each u16 tag | u32 length | bytes
 * Every field is a byte string (numbers as decimal text), so adding a field
 * never breaks an older reader: unknown tags and types are skipped. The
 * reader survives short reads and a missing final record (a worker that
 * died): it simply has no more complete records. A record larger than
 * FARM_EVENT_MAX or with a bad magic/version marks the stream corrupt. */
#ifndef FARM_EVENT_H
#define FARM_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define FARM_EVENT_MAGIC 0x4546504du
#define FARM_EVENT_VERSION 1
#define FARM_EVENT_MAX (4u << 20)
#define FARM_EVENT_MAX_FIELDS 16

enum farm_event_type {
	FARM_EV_META = 1,       /* F_TIMESTAMP, F_HOSTNAME, F_LOG */
	FARM_EV_PROP = 2,       /* F_NAME, F_VALUE */
	FARM_EV_PHASE = 3,      /* F_PHASE, F_MESSAGE */
	FARM_EV_CASE = 4,       /* F_SUITE, F_NAME, F_VERDICT, F_TIME_MS, F_TYPE, F_MESSAGE, F_DETAIL, F_OUTPUT */
	FARM_EV_CHUNK = 5,      /* F_DATA: transcript of the test just run (for -v) */
	FARM_EV_TRANSCRIPT = 6, /* F_DATA: the board's whole transcript, sent once at the end */
	FARM_EV_END = 7,        /* F_TIME_MS: the job ran to its end */
	FARM_EV_PROGRESS = 8,   /* F_PHASE (step: "write"...), F_DONE, F_TOTAL (bytes) */
	FARM_EV_RES_REQ = 9,    /* F_VALUE: "probe:ID,resource:ID" wanted; the parent answers
				   on the worker's control pipe with one byte 'G' (granted) */
	FARM_EV_RES_REL = 10,   /* the granted resources are released */
};

enum farm_event_tag {
	FARM_F_TIMESTAMP = 1, FARM_F_HOSTNAME, FARM_F_LOG, FARM_F_NAME, FARM_F_VALUE, FARM_F_PHASE,
	FARM_F_MESSAGE, FARM_F_SUITE, FARM_F_VERDICT, FARM_F_TIME_MS, FARM_F_TYPE, FARM_F_DETAIL,
	FARM_F_OUTPUT, FARM_F_DATA, FARM_F_DONE, FARM_F_TOTAL,
};

struct farm_event_field {
	uint16_t tag;
	const char *data; /* may be NULL: absent */
	size_t len;
};

struct farm_event {
	uint16_t type;
	size_t n;
	struct farm_event_field f[FARM_EVENT_MAX_FIELDS];
};

/* Encode one record into out (appended). Fields with NULL data are left out. */
int farm_event_encode(struct farm_buf *out, uint16_t type, const struct farm_event_field *fields,
		      size_t n);
/* Write one whole record to fd (retries short writes and EINTR). */
int farm_event_write(int fd, uint16_t type, const struct farm_event_field *fields, size_t n,
		     struct farm_err *e);

struct farm_event_reader {
	struct farm_buf buf;
	size_t used;   /* bytes of buf already returned */
	int corrupt;
};

int farm_event_feed(struct farm_event_reader *r, const void *data, size_t len);
/* 1: *ev holds the next record (its data points into the reader, valid until
 * the next call); 0: need more bytes; -1: the stream is corrupt. */
int farm_event_next(struct farm_event_reader *r, struct farm_event *ev);
/* Bytes received but not forming a complete record (a truncated tail). */
size_t farm_event_pending(const struct farm_event_reader *r);
void farm_event_reader_free(struct farm_event_reader *r);

/* The field with this tag, or NULL. */
const struct farm_event_field *farm_event_get(const struct farm_event *ev, uint16_t tag);

#endif
