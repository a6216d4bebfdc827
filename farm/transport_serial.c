/* mpfarm: console over a local serial device, through libserialport. */
#include "transport.h"

#include <errno.h>
#include <libserialport.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "inventory.h"
#include "serial_port.h"

struct serial_transport {
	struct farm_transport base;
	struct sp_port *port;
};

static int sp_fail(struct farm_err *e, int code, const char *path, const char *what)
{
	char *msg = sp_last_error_message();
	int errnum = sp_last_error_code();
	farm_err_set(e, code, "%s: %s: %s", path, what, msg ? msg : "unknown error");
	if (e)
		e->sys_errno = errnum;
	sp_free_error_message(msg);
	return code;
}

static int ser_read(struct farm_transport *t, void *buf, size_t len, size_t *got, int timeout_ms,
		    struct farm_err *e)
{
	struct serial_transport *s = (struct serial_transport *)t;
	*got = 0;
	enum sp_return r = sp_blocking_read_next(s->port, buf, len, timeout_ms > 0 ? (unsigned)timeout_ms : 1);
	if (r < 0)
		return sp_fail(e, FARM_EIO, t->url, "read");
	*got = (size_t)r;
	return 0;
}

static int ser_write(struct farm_transport *t, const void *buf, size_t len, int timeout_ms,
		     struct farm_err *e)
{
	struct serial_transport *s = (struct serial_transport *)t;
	enum sp_return r = sp_blocking_write(s->port, buf, len, timeout_ms > 0 ? (unsigned)timeout_ms : 1);
	if (r < 0)
		return sp_fail(e, FARM_EIO, t->url, "write");
	if ((size_t)r != len)
		return farm_err_set(e, FARM_ETIMEDOUT, "%s: write stalled for %d ms (%d of %zu bytes sent)",
				    t->url, timeout_ms, (int)r, len);
	return 0;
}

static int ser_set_baud(struct farm_transport *t, int baud, struct farm_err *e)
{
	struct serial_transport *s = (struct serial_transport *)t;
	if (sp_set_baudrate(s->port, baud) != SP_OK)
		return sp_fail(e, FARM_EIO, t->url, "set baud rate");
	return 0;
}

static int ser_set_lines(struct farm_transport *t, int dtr, int rts, struct farm_err *e)
{
	struct serial_transport *s = (struct serial_transport *)t;
	if (dtr >= 0 && rts >= 0) { /* both in one TIOCMSET: one line-state change (ESP resets) */
		int fd, bits;
		if (sp_get_port_handle(s->port, &fd) != SP_OK)
			return sp_fail(e, FARM_EIO, t->url, "get port handle");
		if (ioctl(fd, TIOCMGET, &bits) < 0)
			return farm_err_sys(e, FARM_EIO, errno, "%s: TIOCMGET", t->url);
		bits = (bits & ~(TIOCM_DTR | TIOCM_RTS)) | (dtr ? TIOCM_DTR : 0) | (rts ? TIOCM_RTS : 0);
		if (ioctl(fd, TIOCMSET, &bits) < 0)
			return farm_err_sys(e, FARM_EIO, errno, "%s: TIOCMSET", t->url);
		return 0;
	}
	if (dtr >= 0 && sp_set_dtr(s->port, dtr ? SP_DTR_ON : SP_DTR_OFF) != SP_OK)
		return sp_fail(e, FARM_EIO, t->url, "set DTR");
	if (rts >= 0 && sp_set_rts(s->port, rts ? SP_RTS_ON : SP_RTS_OFF) != SP_OK)
		return sp_fail(e, FARM_EIO, t->url, "set RTS");
	return 0;
}

static int ser_flush_input(struct farm_transport *t, struct farm_err *e)
{
	struct serial_transport *s = (struct serial_transport *)t;
	if (sp_flush(s->port, SP_BUF_INPUT) != SP_OK)
		return sp_fail(e, FARM_EIO, t->url, "flush");
	return 0;
}

static void ser_close(struct farm_transport *t)
{
	struct serial_transport *s = (struct serial_transport *)t;
	if (s->port) {
		sp_close(s->port);
		sp_free_port(s->port);
	}
	free(s);
}

static const struct farm_transport_ops serial_ops = {
	.name = "serial",
	.read = ser_read,
	.write = ser_write,
	.set_baud = ser_set_baud,
	.set_lines = ser_set_lines,
	.flush_input = ser_flush_input,
	.close = ser_close,
};

int farm_transport_serial_open(struct farm_transport **out, const char *path,
			       const struct farm_serial_cfg *cfg, struct farm_err *e)
{
	*out = NULL;
	struct serial_transport *s = calloc(1, sizeof *s);
	if (!s)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	s->base.ops = &serial_ops;
	size_t n = strlen(path);
	memcpy(s->base.url, path, n < sizeof s->base.url ? n + 1 : 0);
	int rc = 0;
	int baud = cfg && cfg->baud > 0 ? cfg->baud : 115200;
	struct sp_port_config *conf = NULL;
	/* libserialport finds a port's sysfs entry by its /dev name: open
	 * /dev/serial/by-id/... links by the node they point to. */
	char node[256];
	if (farm_serial_path_canon(node, sizeof node, path, NULL) == 0)
		path = node;
	if (sp_get_port_by_name(path, &s->port) != SP_OK) {
		rc = sp_fail(e, FARM_ENOTFOUND, path,
			     "no such serial port (is the board plugged in? check the inventory's serial.path)");
		goto out;
	}
	if (sp_open(s->port, SP_MODE_READ_WRITE) != SP_OK) {
		rc = sp_fail(e, FARM_EIO, path, "cannot open (permissions? another program using it?)");
		sp_free_port(s->port);
		s->port = NULL;
		goto out;
	}
	/* 8N1, no flow control, modem lines as configured. */
	if (sp_new_config(&conf) != SP_OK) {
		rc = sp_fail(e, FARM_ENOMEM, path, "config");
		goto out;
	}
	sp_set_config_baudrate(conf, baud);
	sp_set_config_bits(conf, 8);
	sp_set_config_parity(conf, SP_PARITY_NONE);
	sp_set_config_stopbits(conf, 1);
	sp_set_config_flowcontrol(conf, SP_FLOWCONTROL_NONE);
	if (cfg && cfg->dtr >= 0)
		sp_set_config_dtr(conf, cfg->dtr ? SP_DTR_ON : SP_DTR_OFF);
	if (cfg && cfg->rts >= 0)
		sp_set_config_rts(conf, cfg->rts ? SP_RTS_ON : SP_RTS_OFF);
	if (sp_set_config(s->port, conf) != SP_OK) {
		rc = sp_fail(e, FARM_EIO, path, "cannot configure 8N1");
		goto out;
	}
out:
	sp_free_config(conf);
	if (rc) {
		ser_close(&s->base);
		return rc;
	}
	*out = &s->base;
	return 0;
}
