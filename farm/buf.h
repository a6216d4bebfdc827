/* mpfarm: growable byte buffer, always NUL-terminated (data may hold NULs). */
#ifndef FARM_BUF_H
#define FARM_BUF_H

#include <stddef.h>
#include "err.h"

struct farm_buf {
	char *data;  /* NULL until the first append; then NUL-terminated */
	size_t len;
	size_t cap;
	size_t limit; /* 0 = unbounded; appends past it fail with FARM_ELIMIT */
};

int farm_buf_append(struct farm_buf *b, const void *p, size_t n);
int farm_buf_puts(struct farm_buf *b, const char *s);
int farm_buf_printf(struct farm_buf *b, const char *fmt, ...) FARM_PRINTF(2, 3);
/* Keep only the last `keep` bytes (for log tails). */
void farm_buf_keep_tail(struct farm_buf *b, size_t keep);
void farm_buf_reset(struct farm_buf *b);
/* Hand the data to the caller (who frees it); b is left empty. Never NULL on success. */
char *farm_buf_steal(struct farm_buf *b);
void farm_buf_free(struct farm_buf *b);
/* Read a whole file, at most max bytes (FARM_ELIMIT beyond). */
int farm_buf_read_file(struct farm_buf *b, const char *path, size_t max, struct farm_err *e);

#endif
