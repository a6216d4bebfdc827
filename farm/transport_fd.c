/* mpfarm: I/O with timeouts on a stream socket, shared by the transports
 * that sit on one (transport_sock.c: TCP and unix consoles and GDB servers;
 * transport_pipe.c: a GDB server's socketpair). */
#include "transport.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

int farm_fd_wait(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	long long deadline = farm_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	for (;;) {
		long long left = deadline - farm_now_ms();
		if (left < 0)
			left = 0;
		int n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR) {
			if (left == 0)
				return 0;
			continue;
		}
		return n;
	}
}

static int closed(int err, const char *what, const char *op, struct farm_err *e)
{
	if (err)
		return farm_err_sys(e, FARM_ECLOSED, err, "%s: %s", what, op);
	return farm_err_set(e, FARM_ECLOSED, "%s: the connection was closed", what);
}

int farm_fd_read(int fd, void *buf, size_t len, size_t *got, int timeout_ms, const char *what,
		 struct farm_err *e)
{
	*got = 0;
	int n = farm_fd_wait(fd, POLLIN, timeout_ms);
	if (n < 0)
		return farm_err_sys(e, FARM_EIO, errno, "%s: poll", what);
	if (n == 0)
		return 0;
	ssize_t r = recv(fd, buf, len, MSG_DONTWAIT);
	if (r == 0)
		return closed(0, what, "read", e);
	if (r < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		if (errno == ECONNRESET)
			return closed(errno, what, "read", e);
		return farm_err_sys(e, FARM_EIO, errno, "%s: read", what);
	}
	*got = (size_t)r;
	return 0;
}

int farm_fd_write(int fd, const void *buf, size_t len, int timeout_ms, const char *what,
		  struct farm_err *e)
{
	const char *p = buf;
	long long deadline = farm_now_ms() + timeout_ms;
	while (len > 0) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			p += w;
			len -= (size_t)w;
			continue;
		}
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
			return closed(errno, what, "write", e);
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return farm_err_sys(e, FARM_EIO, errno, "%s: write", what);
		long long left = deadline - farm_now_ms();
		if (left <= 0)
			return farm_err_set(e, FARM_ETIMEDOUT, "%s: write stalled for %d ms", what,
					    timeout_ms);
		if (farm_fd_wait(fd, POLLOUT, (int)left) < 0)
			return farm_err_sys(e, FARM_EIO, errno, "%s: poll", what);
	}
	return 0;
}

int farm_fd_drain(int fd, const char *what, struct farm_err *e)
{
	char junk[512];
	for (;;) {
		ssize_t r = recv(fd, junk, sizeof junk, MSG_DONTWAIT);
		if (r > 0)
			continue;
		if (r == 0)
			return closed(0, what, "read", e);
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno != EINTR)
			return farm_err_sys(e, FARM_EIO, errno, "%s: read", what);
	}
}
