/* mpfarm: a minimal QMP client: greeting, qmp_capabilities, one command at a time. */
#include "emulator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "replproto.h"
#include "transport.h"

struct farm_qmp {
	struct farm_transport *t;
	struct farm_buf rx;
	char path[256];
};

/* Read one JSON line (QMP ends each message with CRLF) into line. */
static int read_line(struct farm_qmp *q, struct farm_buf *line, long long deadline,
		     struct farm_err *e)
{
	for (;;) {
		long nl = q->rx.len ? farm_memfind(q->rx.data, q->rx.len, "\n", 1) : -1;
		if (nl >= 0) {
			farm_buf_reset(line);
			if (farm_buf_append(line, q->rx.data, (size_t)nl))
				return farm_err_set(e, FARM_ENOMEM, "out of memory");
			memmove(q->rx.data, q->rx.data + nl + 1, q->rx.len - (size_t)nl - 1);
			q->rx.len -= (size_t)nl + 1;
			q->rx.data[q->rx.len] = '\0';
			return 0;
		}
		if (q->rx.len > 65536)
			return farm_err_set(e, FARM_EPROTO, "QMP %s: oversized message", q->path);
		long long left = deadline - farm_now_ms();
		if (left <= 0)
			return farm_err_set(e, FARM_ETIMEDOUT, "QMP %s: no answer in time", q->path);
		char buf[1024];
		size_t got = 0;
		int rc = farm_transport_read(q->t, buf, sizeof buf, &got, (int)left, e);
		if (rc)
			return rc;
		if (got && farm_buf_append(&q->rx, buf, got))
			return farm_err_set(e, FARM_ENOMEM, "out of memory");
	}
}

/* Wait for a "return" (0) or "error" (FARM_EPROTO) message; skip events. */
static int wait_return(struct farm_qmp *q, const char *what, long long deadline, struct farm_err *e)
{
	struct farm_buf line = { 0 };
	int rc;
	for (;;) {
		rc = read_line(q, &line, deadline, e);
		if (rc)
			break;
		if (strstr(line.data, "\"return\"")) {
			rc = 0;
			break;
		}
		if (strstr(line.data, "\"error\"")) {
			rc = farm_err_set(e, FARM_EPROTO, "QMP %s failed: %.200s", what, line.data);
			break;
		}
		/* {"event": ...} or the greeting: keep reading */
	}
	farm_buf_free(&line);
	return rc;
}

int farm_qmp_connect(struct farm_qmp **out, const char *path, int timeout_ms, struct farm_err *e)
{
	*out = NULL;
	struct farm_qmp *q = calloc(1, sizeof *q);
	if (!q)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	snprintf(q->path, sizeof q->path, "%s", path);
	char url[300];
	snprintf(url, sizeof url, "unix:%s", path);
	long long deadline = farm_now_ms() + timeout_ms;
	int rc = farm_transport_open(&q->t, url, NULL, timeout_ms, e);
	if (rc)
		goto fail;
	struct farm_buf line = { 0 };
	rc = read_line(q, &line, deadline, e); /* greeting {"QMP": ...} */
	if (!rc && !strstr(line.data, "\"QMP\""))
		rc = farm_err_set(e, FARM_EPROTO, "QMP %s: unexpected greeting", path);
	farm_buf_free(&line);
	if (rc)
		goto fail;
	rc = farm_qmp_execute(q, "qmp_capabilities", (int)(deadline - farm_now_ms()), e);
	if (rc)
		goto fail;
	*out = q;
	return 0;
fail:
	farm_qmp_close(q);
	return rc;
}

int farm_qmp_execute(struct farm_qmp *q, const char *cmd, int timeout_ms, struct farm_err *e)
{
	char msg[128];
	int n = snprintf(msg, sizeof msg, "{\"execute\": \"%s\"}\r\n", cmd);
	if (n < 0 || (size_t)n >= sizeof msg)
		return farm_err_set(e, FARM_EINVAL, "QMP command too long");
	long long deadline = farm_now_ms() + (timeout_ms > 0 ? timeout_ms : 1);
	int rc = farm_transport_write(q->t, msg, (size_t)n, timeout_ms > 0 ? timeout_ms : 1, e);
	if (rc)
		return rc;
	return wait_return(q, cmd, deadline, e);
}

void farm_qmp_close(struct farm_qmp *q)
{
	if (!q)
		return;
	farm_transport_close(q->t);
	farm_buf_free(&q->rx);
	free(q);
}
