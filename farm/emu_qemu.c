/* mpfarm: QEMU-emulated boards (qemu-system-arm -M microbit). */
#include "emulator.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "transport.h"

struct farm_emu {
	pid_t pid;
	int gdb_fd;        /* our listening socket, shared with QEMU */
	int gdb_port;
	char dir[200];
	char uart[256];    /* socket path */
	char qmp_path[256];
	char console[270]; /* "unix:" + uart */
	char log[256];
	struct farm_qmp *qmp;
};

const char *farm_emu_console_url(const struct farm_emu *emu) { return emu->console; }
int farm_emu_gdb_port(const struct farm_emu *emu) { return emu->gdb_port; }
pid_t farm_emu_pid(const struct farm_emu *emu) { return emu->pid; }
const char *farm_emu_log_path(const struct farm_emu *emu) { return emu->log; }

/* A loopback listening socket on a kernel-chosen port; QEMU inherits it. */
static int bind_gdb(struct farm_emu *emu, struct farm_err *e)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return farm_err_sys(e, FARM_ESYS, errno, "gdb socket");
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 1) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		int err = errno;
		close(fd);
		return farm_err_sys(e, FARM_ESYS, err, "gdb socket on 127.0.0.1");
	}
	emu->gdb_fd = fd;
	emu->gdb_port = ntohs(sa.sin_port);
	return 0;
}

static int make_dir(struct farm_emu *emu, const struct farm_emu_opts *opts, struct farm_err *e)
{
	/* unix socket paths are limited to 107 bytes: a base too long for
	 * "<base>/mpfarm-emu-XXXXXX/uart.sock" falls back to /tmp. */
	const char *base = opts && opts->work_dir ? opts->work_dir : getenv("XDG_RUNTIME_DIR");
	if (!base || !*base || access(base, W_OK) != 0 || strlen(base) > 70)
		base = "/tmp";
	int n = snprintf(emu->dir, sizeof emu->dir, "%s/mpfarm-emu-XXXXXX", base);
	if (n < 0 || (size_t)n >= sizeof emu->dir)
		return farm_err_set(e, FARM_EINVAL, "emulator work dir %s: path too long", base);
	if (!mkdtemp(emu->dir))
		return farm_err_sys(e, FARM_ESYS, errno, "cannot create %s", emu->dir);
	snprintf(emu->uart, sizeof emu->uart, "%s/uart.sock", emu->dir);
	snprintf(emu->qmp_path, sizeof emu->qmp_path, "%s/qmp.sock", emu->dir);
	snprintf(emu->console, sizeof emu->console, "unix:%s", emu->uart);
	snprintf(emu->log, sizeof emu->log, "%s/qemu.log", emu->dir);
	return 0;
}

#define MAX_ARGS 32

static int spawn(struct farm_emu *emu, const struct farm_emulator_cfg *cfg,
		 const struct farm_emu_opts *opts, struct farm_err *e)
{
	char chardev_uart[320], chardev_gdb[96], qmp[300], loader[1100];
	const char *argv[MAX_ARGS];
	int n = 0;
	const char *qemu = opts && opts->qemu ? opts->qemu : "qemu-system-arm";
	const char *fw = cfg->firmware ? cfg->firmware : FARM_MICROBIT_FIRMWARE;
	snprintf(chardev_uart, sizeof chardev_uart, "socket,id=uart0,path=%s,server=on,wait=off",
		 emu->uart);
	snprintf(chardev_gdb, sizeof chardev_gdb, "socket,id=gdb0,fd=%d,server=on,wait=off,nodelay=on",
		 emu->gdb_fd);
	snprintf(qmp, sizeof qmp, "unix:%s,server=on,wait=off", emu->qmp_path);
	/* QEMU's option syntax splits at commas; a literal comma is written twice. */
	size_t k = (size_t)snprintf(loader, sizeof loader, "loader,file=");
	for (const char *p = fw; *p; p++) {
		if (k + 3 >= sizeof loader)
			return farm_err_set(e, FARM_EINVAL, "firmware path too long");
		if (*p == ',')
			loader[k++] = ',';
		loader[k++] = *p;
	}
	loader[k] = '\0';
	argv[n++] = qemu;
	argv[n++] = "-M";
	argv[n++] = cfg->machine ? cfg->machine : "microbit";
	argv[n++] = "-nographic";
	argv[n++] = "-monitor";
	argv[n++] = "none";
	argv[n++] = "-nodefaults";
	argv[n++] = "-chardev";
	argv[n++] = chardev_uart;
	argv[n++] = "-serial";
	argv[n++] = "chardev:uart0";
	argv[n++] = "-chardev";
	argv[n++] = chardev_gdb;
	argv[n++] = "-gdb";
	argv[n++] = "chardev:gdb0";
	argv[n++] = "-qmp";
	argv[n++] = qmp;
	if ((opts && opts->halted) || cfg->blank) {
		argv[n++] = "-S";
	} else {
		argv[n++] = "-device";
		argv[n++] = loader;
	}
	argv[n] = NULL;

	int logfd = open(emu->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (logfd < 0)
		return farm_err_sys(e, FARM_ESYS, errno, "cannot create %s", emu->log);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int err = errno;
		close(logfd);
		return farm_err_sys(e, FARM_ESYS, err, "fork for %s", qemu);
	}
	if (pid == 0) {
		/* Child: own process group (a terminal Ctrl-C goes to mpfarm, which
		 * stops us cleanly), die with the parent, inherit the gdb socket. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0) {
			dup2(devnull, 0);
			close(devnull);
		}
		dup2(logfd, 1);
		dup2(logfd, 2);
		int fl = fcntl(emu->gdb_fd, F_GETFD);
		if (fl >= 0)
			fcntl(emu->gdb_fd, F_SETFD, fl & ~FD_CLOEXEC);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execvp(qemu, (char *const *)argv);
		dprintf(2, "mpfarm: cannot run %s: %s\n", qemu, strerror(errno));
		_exit(127);
	}
	close(logfd);
	emu->pid = pid;
	return 0;
}

/* The last line of QEMU's log, for error messages. */
static void log_tail(const struct farm_emu *emu, char *out, size_t len)
{
	out[0] = '\0';
	FILE *f = fopen(emu->log, "r");
	if (!f)
		return;
	char line[256];
	while (fgets(line, sizeof line, f))
		if (line[0] && line[0] != '\n')
			snprintf(out, len, "%.190s", line);
	fclose(f);
	size_t n = strlen(out);
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
}

int farm_emu_start(struct farm_emu **out, const struct farm_emulator_cfg *cfg, const char *board_id,
		   const struct farm_emu_opts *opts, struct farm_err *e)
{
	*out = NULL;
	int timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 5000;
	if (cfg->kind && strcmp(cfg->kind, "qemu") != 0)
		return farm_err_set(e, FARM_EUNSUPPORTED, "board %s: emulator kind \"%s\" is not supported (use qemu)",
				    board_id, cfg->kind);
	const char *fw = cfg->firmware ? cfg->firmware : FARM_MICROBIT_FIRMWARE;
	if (!(opts && opts->halted) && !cfg->blank && access(fw, R_OK) != 0)
		return farm_err_sys(e, FARM_ENOTFOUND, errno,
				    "board %s: emulator firmware %s is not readable (install "
				    "firmware-microbit-micropython or set emulator.firmware)",
				    board_id, fw);
	struct farm_emu *emu = calloc(1, sizeof *emu);
	if (!emu)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	emu->gdb_fd = -1;
	int rc = make_dir(emu, opts, e);
	if (!rc)
		rc = bind_gdb(emu, e);
	if (!rc)
		rc = spawn(emu, cfg, opts, e);
	if (!rc) {
		rc = farm_qmp_connect(&emu->qmp, emu->qmp_path, timeout, e);
		if (rc) {
			/* QEMU probably failed to start: say why. */
			int status;
			char tail[200];
			usleep(50000);
			log_tail(emu, tail, sizeof tail);
			if (waitpid(emu->pid, &status, WNOHANG) == emu->pid) {
				emu->pid = 0;
				rc = farm_err_set(e, FARM_EIO, "board %s: qemu exited at start: %s", board_id,
						  tail[0] ? tail : "(no message)");
			} else {
				farm_err_prefix(e, "board %s: QMP", board_id);
			}
		}
	}
	if (rc) {
		farm_emu_stop(emu, 500);
		return rc;
	}
	*out = emu;
	return 0;
}

int farm_emu_reset(struct farm_emu *emu, struct farm_err *e)
{
	if (!emu->qmp)
		return farm_err_set(e, FARM_EIO, "emulator has no QMP connection");
	return farm_qmp_execute(emu->qmp, "system_reset", 3000, e);
}

int farm_emu_cont(struct farm_emu *emu, struct farm_err *e)
{
	if (!emu->qmp)
		return farm_err_set(e, FARM_EIO, "emulator has no QMP connection");
	return farm_qmp_execute(emu->qmp, "cont", 3000, e);
}

static int wait_exit(pid_t pid, int ms)
{
	long long end = farm_now_ms() + ms;
	for (;;) {
		int status;
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD))
			return 1;
		if (farm_now_ms() >= end)
			return 0;
		usleep(5000);
	}
}

int farm_emu_stop(struct farm_emu *emu, int grace_ms)
{
	if (!emu)
		return 0;
	int clean = 0;
	if (emu->pid > 0) {
		if (emu->qmp) {
			struct farm_err ign = { 0 };
			/* quit may close the socket before answering: ignore the reply */
			farm_qmp_execute(emu->qmp, "quit", grace_ms, &ign);
		}
		clean = wait_exit(emu->pid, grace_ms);
		if (!clean) {
			kill(-emu->pid, SIGKILL);
			kill(emu->pid, SIGKILL);
			wait_exit(emu->pid, 2000);
		}
	}
	farm_qmp_close(emu->qmp);
	if (emu->gdb_fd >= 0)
		close(emu->gdb_fd);
	if (emu->dir[0]) {
		unlink(emu->uart);
		unlink(emu->qmp_path);
		unlink(emu->log);
		rmdir(emu->dir);
	}
	free(emu);
	return clean ? 0 : -1;
}
