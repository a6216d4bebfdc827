/* mpfarm: a board's console, reached through a small transport interface.
 *
 * URL forms (farm_transport_open):
 *   /dev/...            local serial device through libserialport (8N1, no flow control)
 *   tcp://HOST:PORT     network serial (ser2net raw mode)
 *   unix:PATH           unix stream socket (emulated boards)
 * Every call takes a timeout in milliseconds; none blocks longer. */
#ifndef FARM_TRANSPORT_H
#define FARM_TRANSPORT_H

#include <stddef.h>
#include "err.h"

struct farm_transport;

struct farm_transport_ops {
	const char *name;
	/* Mandatory. Reads up to len bytes; returns 0 with *got == 0 when nothing
	 * arrived before the timeout; FARM_ECLOSED when the peer went away. */
	int (*read)(struct farm_transport *t, void *buf, size_t len, size_t *got, int timeout_ms,
		    struct farm_err *e);
	/* Mandatory. Writes all len bytes or fails (FARM_ETIMEDOUT if the peer stalls). */
	int (*write)(struct farm_transport *t, const void *buf, size_t len, int timeout_ms,
		     struct farm_err *e);
	/* Optional (NULL = medium has none): baud rate, modem lines (-1 = leave). */
	int (*set_baud)(struct farm_transport *t, int baud, struct farm_err *e);
	int (*set_lines)(struct farm_transport *t, int dtr, int rts, struct farm_err *e);
	/* Optional: discard pending input. */
	int (*flush_input)(struct farm_transport *t, struct farm_err *e);
	/* Mandatory: release everything, including t itself. */
	void (*close)(struct farm_transport *t);
};

struct farm_transport {
	const struct farm_transport_ops *ops;
	char url[512];
};

struct farm_serial_cfg;

/* cfg may be NULL (defaults: 115200, lines left alone). */
int farm_transport_open(struct farm_transport **out, const char *url,
			const struct farm_serial_cfg *cfg, int timeout_ms, struct farm_err *e);
void farm_transport_close(struct farm_transport *t); /* NULL-safe */

/* Thin wrappers that check optional slots. */
int farm_transport_read(struct farm_transport *t, void *buf, size_t len, size_t *got,
			int timeout_ms, struct farm_err *e);
int farm_transport_write(struct farm_transport *t, const void *buf, size_t len, int timeout_ms,
			 struct farm_err *e);
int farm_transport_set_baud(struct farm_transport *t, int baud, struct farm_err *e);
int farm_transport_set_lines(struct farm_transport *t, int dtr, int rts, struct farm_err *e);
int farm_transport_flush_input(struct farm_transport *t, struct farm_err *e);

/* Backends (one file each). */
int farm_transport_sock_open(struct farm_transport **out, const char *url, int timeout_ms,
			     struct farm_err *e);
int farm_transport_serial_open(struct farm_transport **out, const char *path,
			       const struct farm_serial_cfg *cfg, struct farm_err *e);

/* I/O with timeouts on a stream socket (transport_fd.c), for backends that
 * sit on one. farm_fd_wait: poll() one fd, retrying EINTR within the
 * deadline; >0 ready, 0 timeout, <0 error (errno). The others return 0,
 * FARM_ECLOSED when the peer went away (EOF, EPIPE, ECONNRESET), FARM_EIO or
 * FARM_ETIMEDOUT; messages start with `what`. farm_fd_read gives *got == 0
 * on a timeout; farm_fd_drain discards pending input. */
int farm_fd_wait(int fd, short events, int timeout_ms);
int farm_fd_read(int fd, void *buf, size_t len, size_t *got, int timeout_ms, const char *what,
		 struct farm_err *e);
int farm_fd_write(int fd, const void *buf, size_t len, int timeout_ms, const char *what,
		  struct farm_err *e);
int farm_fd_drain(int fd, const char *what, struct farm_err *e);

/* Monotonic clock in milliseconds. */
long long farm_now_ms(void);

#endif
