#include "transport.h"

#include <string.h>
#include <time.h>

#include "inventory.h"

long long farm_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int farm_transport_open(struct farm_transport **out, const char *url,
			const struct farm_serial_cfg *cfg, int timeout_ms, struct farm_err *e)
{
	*out = NULL;
	if (!url || !*url)
		return farm_err_set(e, FARM_EINVAL, "no console path given");
	if (strlen(url) >= sizeof((struct farm_transport *)0)->url)
		return farm_err_set(e, FARM_EINVAL, "console path too long (%zu bytes)", strlen(url));
	int rc;
	if (!strncmp(url, "tcp://", 6) || !strncmp(url, "unix:", 5))
		rc = farm_transport_sock_open(out, url, timeout_ms, e);
	else if (url[0] == '/')
		rc = farm_transport_serial_open(out, url, cfg, e);
	else
		return farm_err_set(e, FARM_EINVAL,
				    "console \"%s\": use a device path (/dev/...), tcp://HOST:PORT or unix:PATH",
				    url);
	if (rc == 0 && *out) {
		size_t n = strlen(url);
		memcpy((*out)->url, url, n + 1);
	}
	return rc;
}

void farm_transport_close(struct farm_transport *t)
{
	if (t)
		t->ops->close(t);
}

int farm_transport_read(struct farm_transport *t, void *buf, size_t len, size_t *got,
			int timeout_ms, struct farm_err *e)
{
	*got = 0;
	return t->ops->read(t, buf, len, got, timeout_ms, e);
}

int farm_transport_write(struct farm_transport *t, const void *buf, size_t len, int timeout_ms,
			 struct farm_err *e)
{
	return t->ops->write(t, buf, len, timeout_ms, e);
}

int farm_transport_set_baud(struct farm_transport *t, int baud, struct farm_err *e)
{
	if (!t->ops->set_baud)
		return 0; /* sockets: the far end owns the line settings */
	return t->ops->set_baud(t, baud, e);
}

int farm_transport_set_lines(struct farm_transport *t, int dtr, int rts, struct farm_err *e)
{
	if (!t->ops->set_lines)
		return 0;
	return t->ops->set_lines(t, dtr, rts, e);
}

int farm_transport_flush_input(struct farm_transport *t, struct farm_err *e)
{
	if (!t->ops->flush_input)
		return 0;
	return t->ops->flush_input(t, e);
}
