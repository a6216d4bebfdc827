#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int farm_err_set(struct farm_err *e, int code, const char *fmt, ...)
{
	if (!e)
		return code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	e->code = code;
	e->sys_errno = 0;
	return code;
}

int farm_err_sys(struct farm_err *e, int code, int errnum, const char *fmt, ...)
{
	if (!e)
		return code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	size_t n = strlen(e->msg);
	if (n < sizeof e->msg - 1)
		snprintf(e->msg + n, sizeof e->msg - n, ": %s", strerror(errnum));
	e->code = code;
	e->sys_errno = errnum;
	return code;
}

int farm_err_prefix(struct farm_err *e, const char *fmt, ...)
{
	if (!e)
		return FARM_EINVAL;
	char head[FARM_ERR_MSG_MAX];
	char old[FARM_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(head, sizeof head, fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof old);
	old[sizeof old - 1] = '\0';
	struct farm_buf_tmp { char s[2 * FARM_ERR_MSG_MAX + 4]; } joined;
	snprintf(joined.s, sizeof joined.s, "%s: %s", head, old);
	memcpy(e->msg, joined.s, sizeof e->msg - 1);
	e->msg[sizeof e->msg - 1] = '\0';
	return e->code;
}

void farm_err_clear(struct farm_err *e)
{
	if (!e)
		return;
	e->code = 0;
	e->sys_errno = 0;
	e->msg[0] = '\0';
}

const char *farm_strerror(int code)
{
	switch (code) {
	case FARM_OK: return "ok";
	case FARM_EINVAL: return "invalid input";
	case FARM_EIO: return "I/O error";
	case FARM_ETIMEDOUT: return "timed out";
	case FARM_ENOMEM: return "out of memory";
	case FARM_EPROTO: return "protocol error";
	case FARM_ENOTFOUND: return "not found";
	case FARM_ESYS: return "system error";
	case FARM_EINTR: return "interrupted";
	case FARM_EUNSUPPORTED: return "unsupported";
	case FARM_ECLOSED: return "connection closed";
	case FARM_ELIMIT: return "limit exceeded";
	case FARM_EBUSY: return "busy";
	}
	return "unknown error";
}
