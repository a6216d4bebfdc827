#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(struct farm_buf *b, size_t extra)
{
	if (b->limit && b->len + extra > b->limit)
		return FARM_ELIMIT;
	if (b->len + extra + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1) {
		if (cap > ((size_t)-1) / 2)
			return FARM_ENOMEM;
		cap *= 2;
	}
	char *p = realloc(b->data, cap);
	if (!p)
		return FARM_ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int farm_buf_append(struct farm_buf *b, const void *p, size_t n)
{
	int rc = grow(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int farm_buf_puts(struct farm_buf *b, const char *s)
{
	return farm_buf_append(b, s, strlen(s));
}

int farm_buf_printf(struct farm_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return FARM_EINVAL;
	int rc = grow(b, (size_t)n);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void farm_buf_keep_tail(struct farm_buf *b, size_t keep)
{
	if (b->len <= keep)
		return;
	memmove(b->data, b->data + (b->len - keep), keep);
	b->len = keep;
	b->data[keep] = '\0';
}

void farm_buf_reset(struct farm_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *farm_buf_steal(struct farm_buf *b)
{
	if (!b->data && grow(b, 0))
		return NULL;
	if (!b->data)
		return NULL;
	b->data[b->len] = '\0';
	char *p = b->data;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void farm_buf_free(struct farm_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int farm_buf_read_file(struct farm_buf *b, const char *path, size_t max, struct farm_err *e)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return farm_err_sys(e, errno == ENOENT ? FARM_ENOTFOUND : FARM_EIO, errno,
				    "%s: cannot open", path);
	char chunk[8192];
	int rc = 0;
	for (;;) {
		size_t n = fread(chunk, 1, sizeof chunk, f);
		if (n == 0) {
			if (ferror(f))
				rc = farm_err_sys(e, FARM_EIO, errno, "%s: read failed", path);
			break;
		}
		if (b->len + n > max) {
			rc = farm_err_set(e, FARM_ELIMIT, "%s: file is larger than the %zu-byte limit", path, max);
			break;
		}
		if (farm_buf_append(b, chunk, n)) {
			rc = farm_err_set(e, FARM_ENOMEM, "%s: out of memory", path);
			break;
		}
	}
	fclose(f);
	if (!rc && !b->data && farm_buf_append(b, "", 0))
		rc = farm_err_set(e, FARM_ENOMEM, "out of memory");
	return rc;
}
