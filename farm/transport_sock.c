/* mpfarm: console over a stream socket: tcp://HOST:PORT (ser2net raw mode) or unix:PATH. */
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct sock_transport {
	struct farm_transport base;
	int fd;
};

static int sock_read(struct farm_transport *t, void *buf, size_t len, size_t *got, int timeout_ms,
		     struct farm_err *e)
{
	return farm_fd_read(((struct sock_transport *)t)->fd, buf, len, got, timeout_ms, t->url, e);
}

static int sock_write(struct farm_transport *t, const void *buf, size_t len, int timeout_ms,
		      struct farm_err *e)
{
	return farm_fd_write(((struct sock_transport *)t)->fd, buf, len, timeout_ms, t->url, e);
}

static int sock_flush_input(struct farm_transport *t, struct farm_err *e)
{
	return farm_fd_drain(((struct sock_transport *)t)->fd, t->url, e);
}

static void sock_close(struct farm_transport *t)
{
	struct sock_transport *s = (struct sock_transport *)t;
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

static const struct farm_transport_ops sock_ops = {
	.name = "socket",
	.read = sock_read,
	.write = sock_write,
	.flush_input = sock_flush_input,
	.close = sock_close,
};

/* Connect a non-blocking socket within the deadline. Returns 0 or an errno value. */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t len, long long deadline)
{
	if (connect(fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return errno;
	long long left = deadline - farm_now_ms();
	int n = farm_fd_wait(fd, POLLOUT, left > 0 ? (int)left : 0);
	if (n <= 0)
		return n == 0 ? ETIMEDOUT : errno;
	int soerr = 0;
	socklen_t sl = sizeof soerr;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		return errno;
	return soerr;
}

static int open_unix(int *fd_out, const char *path, int timeout_ms, struct farm_err *e)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sun.sun_path)
		return farm_err_set(e, FARM_EINVAL, "unix:%s: socket path longer than %zu bytes", path,
				    sizeof sun.sun_path - 1);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	long long deadline = farm_now_ms() + timeout_ms;
	int err;
	/* An emulator creates its socket shortly after it starts: retry until the deadline. */
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return farm_err_sys(e, FARM_ESYS, errno, "unix:%s: socket", path);
		err = connect_within(fd, (struct sockaddr *)&sun, sizeof sun, deadline);
		if (err == 0) {
			*fd_out = fd;
			return 0;
		}
		close(fd);
		if ((err != ENOENT && err != ECONNREFUSED && err != EAGAIN) || farm_now_ms() >= deadline)
			break;
		usleep(10000);
	}
	return farm_err_sys(e, err == ENOENT ? FARM_ENOTFOUND : FARM_EIO, err,
			    "unix:%s: cannot connect within %d ms", path, timeout_ms);
}

static int open_tcp(int *fd_out, const char *hostport, int timeout_ms, struct farm_err *e)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof host || !colon[1])
		return farm_err_set(e, FARM_EINVAL, "tcp://%s: expected tcp://HOST:PORT", hostport);
	size_t hl = (size_t)(colon - hostport);
	memcpy(host, hostport, hl);
	host[hl] = '\0';
	if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') { /* [::1]:port */
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(host, colon + 1, &hints, &res);
	if (gai != 0)
		return farm_err_set(e, FARM_ENOTFOUND, "tcp://%s: cannot resolve: %s", hostport,
				    gai_strerror(gai));
	long long deadline = farm_now_ms() + timeout_ms;
	int err = ETIMEDOUT;
	int rc = FARM_EIO;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		err = connect_within(fd, ai->ai_addr, ai->ai_addrlen, deadline);
		if (err == 0) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			*fd_out = fd;
			rc = 0;
			break;
		}
		close(fd);
	}
	freeaddrinfo(res);
	if (rc)
		return farm_err_sys(e, err == ETIMEDOUT ? FARM_ETIMEDOUT : FARM_EIO, err,
				    "tcp://%s: cannot connect", hostport);
	return 0;
}

int farm_transport_sock_open(struct farm_transport **out, const char *url, int timeout_ms,
			     struct farm_err *e)
{
	*out = NULL;
	int fd = -1;
	int rc;
	if (!strncmp(url, "unix:", 5))
		rc = open_unix(&fd, url + 5, timeout_ms, e);
	else
		rc = open_tcp(&fd, url + 6, timeout_ms, e);
	if (rc)
		return rc;
	struct sock_transport *s = calloc(1, sizeof *s);
	if (!s) {
		close(fd);
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	}
	s->base.ops = &sock_ops;
	s->fd = fd;
	*out = &s->base;
	return 0;
}
