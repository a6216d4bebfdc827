/* mpfarm: a GDB remote connection over a server's stdin and stdout (OpenOCD's
 * "gdb_port pipe"), like GDB's `target remote | CMD`. The "pipe" is a
 * socketpair, as in GDB's ser-pipe.c: one descriptor for both directions and
 * MSG_NOSIGNAL writes. The transport owns the server process. See probesrv.h. */
#include "probesrv.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLOSE_GRACE_MS 2000 /* the server exits by itself when its GDB pipe closes */
#define CLOSE_TERM_MS 1000
#define EXIT_WAIT_MS 1000   /* after EOF: how long to wait for the exit status */

struct pipe_transport {
	struct farm_transport base;
	int fd;
	pid_t pid;          /* 0 once reaped */
	char what[160];     /* "probe jlink-1: openocd" */
	char *log_path;
	long long log_from;
};

/* The server closed its end: say why. A server that failed (non-zero status,
 * killed) is an I/O error quoting its log; one that is still running or
 * exited cleanly just closed the connection. */
static int peer_gone(struct pipe_transport *p, struct farm_err *e)
{
	int status = -1;
	if (p->pid > 0 && farm_probesrv_child_exited(p->pid, EXIT_WAIT_MS, &status) == 1) {
		p->pid = 0;
		if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
			char how[64], hint[FARM_ERR_MSG_MAX / 2];
			farm_probesrv_describe_status(status, how, sizeof how);
			farm_probesrv_log_hint(p->log_path, p->log_from, hint, sizeof hint);
			return farm_err_set(e, FARM_EIO, "%s %s; %s", p->what, how, hint);
		}
		return farm_err_set(e, FARM_ECLOSED, "%s exited", p->what);
	}
	return farm_err_set(e, FARM_ECLOSED, "%s closed its end of the GDB pipe", p->what);
}

static int pipe_read(struct farm_transport *t, void *buf, size_t len, size_t *got, int timeout_ms,
		     struct farm_err *e)
{
	struct pipe_transport *p = (struct pipe_transport *)t;
	int rc = farm_fd_read(p->fd, buf, len, got, timeout_ms, p->what, e);
	return rc == FARM_ECLOSED ? peer_gone(p, e) : rc;
}

static int pipe_write(struct farm_transport *t, const void *buf, size_t len, int timeout_ms,
		      struct farm_err *e)
{
	struct pipe_transport *p = (struct pipe_transport *)t;
	int rc = farm_fd_write(p->fd, buf, len, timeout_ms, p->what, e);
	return rc == FARM_ECLOSED ? peer_gone(p, e) : rc;
}

static int pipe_flush_input(struct farm_transport *t, struct farm_err *e)
{
	struct pipe_transport *p = (struct pipe_transport *)t;
	int rc = farm_fd_drain(p->fd, p->what, e);
	return rc == FARM_ECLOSED ? peer_gone(p, e) : rc;
}

static void pipe_close(struct farm_transport *t)
{
	struct pipe_transport *p = (struct pipe_transport *)t;
	if (p->fd >= 0)
		close(p->fd); /* EOF on the server's stdin: OpenOCD shuts down */
	if (p->pid > 0)
		farm_probesrv_stop_child(p->pid, CLOSE_GRACE_MS, CLOSE_TERM_MS, NULL);
	free(p->log_path);
	free(p);
}

static const struct farm_transport_ops pipe_ops = {
	.name = "pipe",
	.read = pipe_read,
	.write = pipe_write,
	.flush_input = pipe_flush_input,
	.close = pipe_close,
};

int farm_transport_pipe_open(struct farm_transport **out, int fd, pid_t pid, const char *name,
			     const char *what, const char *log_path, long long log_from,
			     struct farm_err *e)
{
	*out = NULL;
	struct pipe_transport *p = calloc(1, sizeof *p);
	if (!p || (log_path && !(p->log_path = strdup(log_path)))) {
		free(p);
		close(fd);
		if (pid > 0)
			farm_probesrv_stop_child(pid, 0, CLOSE_TERM_MS, NULL);
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	}
	p->base.ops = &pipe_ops;
	snprintf(p->base.url, sizeof p->base.url, "pipe:%s", name);
	snprintf(p->what, sizeof p->what, "%s", what);
	p->fd = fd;
	p->pid = pid;
	p->log_from = log_from;
	*out = &p->base;
	return 0;
}
