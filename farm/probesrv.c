/* mpfarm: the GDB server mpfarm starts for a debug probe (OpenOCD, pyOCD). See probesrv.h. */
#include "probesrv.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ARGS 40
#define PYOCD_STARTS 3         /* starts of pyOCD per connect when its port was taken */
#define STOP_TERM_MS 3000      /* farm_probesrv_free: SIGTERM, then this long before SIGKILL */
#define CONNECT_SLICE_MS 500   /* one TCP connect attempt while pyOCD starts */
#define POLL_MS 20             /* between attempts */
#define LOG_SCAN_MAX 16384     /* bytes of a start's output searched / quoted */

enum srv_kind { SRV_OPENOCD, SRV_PYOCD };

struct farm_probesrv {
	enum srv_kind kind;
	char *id;
	char *log_path;                    /* NULL = /dev/null */
	const volatile sig_atomic_t *cancel;
	char *argv[MAX_ARGS + 1];          /* argv[0] is the program as named (server: or default) */
	size_t argc;
	size_t port_arg;                   /* pyOCD: index of the --port value */
	int fixed_port;                    /* pyOCD: gdb_port:, 0 = allocate one */
	pid_t pid;                         /* the running pyOCD, 0 = none */
	int port;
	long long log_from;                /* where the running pyOCD's output starts in the log */
};

/* ------------------------------------------------------------ options */

static const char *opt(const struct farm_probe *p, const char *key)
{
	for (size_t i = 0; i < p->n_opts; i++)
		if (p->opts[i].key && !strcmp(p->opts[i].key, key))
			return p->opts[i].value;
	return NULL;
}

int farm_probesrv_needed(const struct farm_probe *p)
{
	if (!p || !p->kind || (p->connection && p->connection[0]))
		return 0;
	return !strcmp(p->kind, "openocd") || !strcmp(p->kind, "pyocd");
}

static const char *probe_id(const struct farm_probe *p)
{
	return p->id ? p->id : "(unnamed)";
}

/* Checks a value that goes into argv. tcl: OpenOCD reads it inside a Tcl
 * word ("script {PATH}"), where braces and backslashes would end or change it. */
static int check_value(const struct farm_probe *p, const char *key, const char *v, int tcl,
		       const char *server, struct farm_err *e)
{
	if (!v[0])
		return farm_err_set(e, FARM_EINVAL, "probe %s: %s: is empty", probe_id(p), key);
	if (v[0] == '-')
		return farm_err_set(e, FARM_EINVAL,
				    "probe %s: %s: \"%.100s\" starts with '-' and would be read as an "
				    "option by %s",
				    probe_id(p), key, v, server);
	for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
		if (*c < 0x20 || *c == 0x7f)
			return farm_err_set(e, FARM_EINVAL, "probe %s: %s: contains a control character",
					    probe_id(p), key);
		if (tcl && (*c == '{' || *c == '}' || *c == '\\'))
			return farm_err_set(e, FARM_EINVAL,
					    "probe %s: %s: \"%.100s\" contains '%c', which OpenOCD would "
					    "read as Tcl (rename the file)",
					    probe_id(p), key, v, *c);
	}
	return 0;
}

/* OpenOCD's "adapter serial S" is a Tcl command: allow only a plain word. */
static int check_serial_tcl(const struct farm_probe *p, const char *v, struct farm_err *e)
{
	if (!v[0])
		return farm_err_set(e, FARM_EINVAL, "probe %s: serial_number: is empty", probe_id(p));
	for (const char *c = v; *c; c++) {
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		    strchr("._:+-", *c))
			continue;
		return farm_err_set(e, FARM_EINVAL,
				    "probe %s: serial_number: \"%.100s\" has characters mpfarm does not "
				    "pass to OpenOCD (allowed: letters, digits and . _ : + -)",
				    probe_id(p), v);
	}
	return 0;
}

static int parse_uint(const char *v, unsigned long max, unsigned long *out)
{
	if (!v || !*v)
		return -1;
	unsigned long n = 0;
	for (const char *c = v; *c; c++) {
		if (*c < '0' || *c > '9')
			return -1;
		n = n * 10 + (unsigned long)(*c - '0');
		if (n > max)
			return -1;
	}
	*out = n;
	return 0;
}

/* ------------------------------------------------------------ argv */

static int push(struct farm_probesrv *s, struct farm_err *e, const char *fmt, ...) FARM_PRINTF(3, 4);

static int push(struct farm_probesrv *s, struct farm_err *e, const char *fmt, ...)
{
	if (s->argc >= MAX_ARGS)
		return farm_err_set(e, FARM_ELIMIT, "probe %s: too many server arguments", s->id);
	va_list ap;
	va_start(ap, fmt);
	char *a = NULL;
	int n = vasprintf(&a, fmt, ap);
	va_end(ap);
	if (n < 0)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	s->argv[s->argc++] = a;
	s->argv[s->argc] = NULL;
	return 0;
}

/* interface/NAME.cfg for a bare name, else the path as given. */
static int push_script(struct farm_probesrv *s, const char *dir, const char *v, struct farm_err *e)
{
	int rc = push(s, e, "-f");
	if (rc)
		return rc;
	size_t n = strlen(v);
	int is_name = !strchr(v, '/') && !(n >= 4 && !strcmp(v + n - 4, ".cfg"));
	return is_name ? push(s, e, "%s/%s.cfg", dir, v) : push(s, e, "%s", v);
}

static int build_openocd(struct farm_probesrv *s, const struct farm_probe *p, struct farm_err *e)
{
	const char *iface = opt(p, "interface"), *target = opt(p, "target"), *config = opt(p, "config");
	const char *speed = opt(p, "speed_khz");
	const char *prog = s->argv[0];
	unsigned long khz = 0;
	int rc;
	if (opt(p, "gdb_port"))
		return farm_err_set(e, FARM_EINVAL,
				    "probe %s: gdb_port: has no use here: mpfarm runs OpenOCD with "
				    "\"gdb_port pipe\" (remove it, or give connection: to use a server you run)",
				    s->id);
	if (!config && (!iface || !target))
		return farm_err_set(e, FARM_EINVAL,
				    "probe %s: OpenOCD needs interface: and target: (e.g. stlink and "
				    "stm32f4x), or config: (a configuration file)",
				    s->id);
	if ((iface && (rc = check_value(p, "interface", iface, 1, prog, e))) ||
	    (target && (rc = check_value(p, "target", target, 1, prog, e))) ||
	    (config && (rc = check_value(p, "config", config, 1, prog, e))) ||
	    (p->serial_number && (rc = check_serial_tcl(p, p->serial_number, e))))
		return rc;
	if (speed && parse_uint(speed, 100000, &khz))
		return farm_err_set(e, FARM_EINVAL, "probe %s: speed_khz: \"%.40s\" is not a number of kHz",
				    s->id, speed);
	if ((rc = push(s, e, "-c")) || (rc = push(s, e, "gdb_port pipe")) ||
	    (rc = push(s, e, "-c")) || (rc = push(s, e, "tcl_port disabled")) ||
	    (rc = push(s, e, "-c")) || (rc = push(s, e, "telnet_port disabled")))
		return rc;
	if (iface && (rc = push_script(s, "interface", iface, e)))
		return rc;
	if (target && (rc = push_script(s, "target", target, e)))
		return rc;
	if (config && ((rc = push(s, e, "-f")) || (rc = push(s, e, "%s", config))))
		return rc;
	if (p->serial_number &&
	    ((rc = push(s, e, "-c")) || (rc = push(s, e, "adapter serial %s", p->serial_number))))
		return rc;
	if (speed && ((rc = push(s, e, "-c")) || (rc = push(s, e, "adapter speed %lu", khz))))
		return rc;
	return 0;
}

static int build_pyocd(struct farm_probesrv *s, const struct farm_probe *p, struct farm_err *e)
{
	const char *target = opt(p, "target"), *config = opt(p, "config");
	const char *speed = opt(p, "speed_khz"), *port = opt(p, "gdb_port");
	const char *prog = s->argv[0];
	unsigned long khz = 0, fixed = 0;
	int rc;
	if (opt(p, "interface"))
		return farm_err_set(e, FARM_EINVAL,
				    "probe %s: interface: is an OpenOCD setting; pyOCD selects the probe by "
				    "its unique ID (give serial_number: and remove interface:)",
				    s->id);
	if ((target && (rc = check_value(p, "target", target, 0, prog, e))) ||
	    (config && (rc = check_value(p, "config", config, 0, prog, e))) ||
	    (p->serial_number && (rc = check_value(p, "serial_number", p->serial_number, 0, prog, e))))
		return rc;
	if (speed && parse_uint(speed, 100000, &khz))
		return farm_err_set(e, FARM_EINVAL, "probe %s: speed_khz: \"%.40s\" is not a number of kHz",
				    s->id, speed);
	if (port && (parse_uint(port, 65535, &fixed) || fixed == 0))
		return farm_err_set(e, FARM_EINVAL, "probe %s: gdb_port: \"%.40s\" is not a TCP port",
				    s->id, port);
	s->fixed_port = (int)fixed;
	if ((rc = push(s, e, "gdbserver")) || (rc = push(s, e, "--port")))
		return rc;
	s->port_arg = s->argc;
	if ((rc = fixed ? push(s, e, "%lu", fixed) : push(s, e, "PORT")))
		return rc;
	if ((rc = push(s, e, "--no-wait")) || (rc = push(s, e, "--persist")) ||
	    (rc = push(s, e, "-O")) || (rc = push(s, e, "semihost_console_type=console")))
		return rc;
	if (p->serial_number &&
	    ((rc = push(s, e, "--uid")) || (rc = push(s, e, "%s", p->serial_number))))
		return rc;
	if (target && ((rc = push(s, e, "--target")) || (rc = push(s, e, "%s", target))))
		return rc;
	if (speed && ((rc = push(s, e, "--frequency")) || (rc = push(s, e, "%lu", khz * 1000))))
		return rc;
	if (config && ((rc = push(s, e, "--config")) || (rc = push(s, e, "%s", config))))
		return rc;
	return 0;
}

const char *const *farm_probesrv_argv(const struct farm_probesrv *s)
{
	return (const char *const *)s->argv;
}

pid_t farm_probesrv_pid(const struct farm_probesrv *s)
{
	return s ? s->pid : 0;
}

void farm_probesrv_free(struct farm_probesrv *s)
{
	if (!s)
		return;
	if (s->pid > 0)
		farm_probesrv_stop_child(s->pid, 0, STOP_TERM_MS, NULL);
	for (size_t i = 0; i < s->argc; i++)
		free(s->argv[i]);
	free(s->id);
	free(s->log_path);
	free(s);
}

int farm_probesrv_new(struct farm_probesrv **out, const struct farm_probe *p, const char *log_path,
		      const volatile sig_atomic_t *cancel, struct farm_err *e)
{
	*out = NULL;
	if (!farm_probesrv_needed(p))
		return farm_err_set(e, FARM_EINVAL,
				    "probe %s: mpfarm starts a GDB server only for probes of kind openocd "
				    "or pyocd without connection:",
				    p ? probe_id(p) : "(none)");
	int rc;
	struct farm_probesrv *s = calloc(1, sizeof *s);
	if (!s)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	s->kind = !strcmp(p->kind, "openocd") ? SRV_OPENOCD : SRV_PYOCD;
	s->cancel = cancel;
	s->id = strdup(probe_id(p));
	s->log_path = log_path ? strdup(log_path) : NULL;
	if (!s->id || (log_path && !s->log_path)) {
		rc = farm_err_set(e, FARM_ENOMEM, "out of memory");
		goto out;
	}
	const char *server = opt(p, "server");
	if (server && (rc = check_value(p, "server", server, 0, "mpfarm", e)))
		goto out;
	if ((rc = push(s, e, "%s", server ? server : s->kind == SRV_OPENOCD ? "openocd" : "pyocd")))
		goto out;
	rc = s->kind == SRV_OPENOCD ? build_openocd(s, p, e) : build_pyocd(s, p, e);
out:
	if (rc) {
		farm_probesrv_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* ------------------------------------------------------------ processes */

static int exited_nowait(pid_t pid)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno == EINTR ? 0 : -1;
	return si.si_pid == pid;
}

static void sleep_ms(long long ms)
{
	if (ms > 0)
		usleep((useconds_t)(ms * 1000));
}

int farm_probesrv_child_exited(pid_t pid, int wait_ms, int *status)
{
	if (status)
		*status = -1;
	if (pid <= 0)
		return -1;
	long long end = farm_now_ms() + (wait_ms > 0 ? wait_ms : 0);
	int r;
	for (;;) {
		r = exited_nowait(pid);
		if (r != 0)
			break;
		long long left = end - farm_now_ms();
		if (left <= 0)
			return 0;
		sleep_ms(left < 10 ? left : 10);
	}
	if (r < 0)
		return -1;
	/* The leader is a zombie: its process group id cannot be reused yet. */
	kill(-pid, SIGKILL);
	int st = -1;
	pid_t w;
	do
		w = waitpid(pid, &st, 0);
	while (w < 0 && errno == EINTR);
	if (w == pid && status)
		*status = st;
	return 1;
}

int farm_probesrv_stop_child(pid_t pid, int grace_ms, int term_ms, int *status)
{
	if (status)
		*status = -1;
	int r = farm_probesrv_child_exited(pid, grace_ms, status);
	if (r != 0)
		return r > 0 ? 0 : -1;
	kill(-pid, SIGTERM);
	kill(pid, SIGTERM); /* in case it left its group */
	if (farm_probesrv_child_exited(pid, term_ms, status) == 0) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		farm_probesrv_child_exited(pid, 2000, status);
	}
	return -1;
}

void farm_probesrv_describe_status(int status, char *out, size_t len)
{
	if (status == -1)
		snprintf(out, len, "exited");
	else if (WIFEXITED(status))
		snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, len, "was killed by signal %d (%s)", WTERMSIG(status),
			 sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
	else
		snprintf(out, len, "stopped (status 0x%x)", (unsigned)status);
}

/* Up to LOG_SCAN_MAX bytes that a start wrote to the log, the last ones. */
static size_t read_log(const char *path, long long from, char *buf, size_t cap)
{
	if (!path || cap == 0)
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return 0;
	size_t got = 0;
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		long long size = (long long)st.st_size;
		long long start = from >= 0 && from <= size ? from : 0;
		if (size - start > (long long)cap - 1)
			start = size - ((long long)cap - 1);
		while (got < cap - 1) {
			ssize_t n = pread(fd, buf + got, cap - 1 - got, (off_t)start + (off_t)got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			got += (size_t)n;
		}
	}
	close(fd);
	buf[got] = '\0';
	return got;
}

static void last_line(const char *buf, size_t n, char *out, size_t len)
{
	out[0] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
			 buf[n - 1] == '\t' || buf[n - 1] == '\0'))
		n--;
	size_t b = n;
	while (b > 0 && buf[b - 1] != '\n')
		b--;
	size_t k = 0;
	for (size_t i = b; i < n && k + 1 < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		out[k++] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
	}
	out[k] = '\0';
}

void farm_probesrv_log_hint(const char *path, long long from, char *out, size_t len)
{
	if (!path) {
		snprintf(out, len, "no server log was kept");
		return;
	}
	char buf[LOG_SCAN_MAX];
	char line[200];
	size_t n = read_log(path, from, buf, sizeof buf);
	last_line(buf, n, line, sizeof line);
	if (line[0])
		snprintf(out, len, "see %s (last line: %s)", path, line);
	else
		snprintf(out, len, "see %s (the server wrote nothing)", path);
}

static int log_says_in_use(const char *path, long long from)
{
	char buf[LOG_SCAN_MAX];
	size_t n = read_log(path, from, buf, sizeof buf);
	static const char *const marks[] = { "Address already in use", "EADDRINUSE", "Errno 98", NULL };
	for (size_t i = 0; marks[i]; i++)
		if (memmem(buf, n, marks[i], strlen(marks[i])))
			return 1;
	return 0;
}

/* The program's path: argv[0] itself when it holds a '/', else the first
 * executable regular file of that name on PATH. */
static int find_program(const struct farm_probesrv *s, char *path, size_t len, struct farm_err *e)
{
	const char *prog = s->argv[0];
	const char *dflt = s->kind == SRV_OPENOCD ? "openocd" : "pyocd";
	struct stat st;
	if (strchr(prog, '/')) {
		if (stat(prog, &st) < 0) {
			int err = errno;
			farm_err_set(e, FARM_ENOTFOUND,
				     "probe %s: server %s: %s (fix server: in the probe entry)", s->id, prog,
				     strerror(err));
			if (e)
				e->sys_errno = err;
			return FARM_ENOTFOUND;
		}
		if (!S_ISREG(st.st_mode) || access(prog, X_OK) < 0)
			return farm_err_set(e, FARM_ENOTFOUND,
					    "probe %s: server %s is not an executable file (fix server: in "
					    "the probe entry)",
					    s->id, prog);
		snprintf(path, len, "%s", prog);
		return 0;
	}
	const char *env = getenv("PATH");
	if (!env)
		env = "/usr/local/bin:/usr/bin:/bin";
	int denied = 0;
	for (const char *p = env;;) {
		const char *end = strchr(p, ':');
		size_t dl = end ? (size_t)(end - p) : strlen(p);
		int n = dl ? snprintf(path, len, "%.*s/%s", (int)dl, p, prog)
			   : snprintf(path, len, "./%s", prog);
		if (n > 0 && (size_t)n < len && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(path, X_OK) == 0)
				return 0;
			denied = 1;
		}
		if (!end)
			break;
		p = end + 1;
	}
	path[0] = '\0';
	if (denied)
		return farm_err_set(e, FARM_ENOTFOUND,
				    "probe %s: %s on PATH is not executable (fix its permissions or set "
				    "server: in the probe entry)",
				    s->id, prog);
	if (!strcmp(prog, dflt))
		return farm_err_set(e, FARM_ENOTFOUND,
				    "probe %s: %s not found on PATH (install %s or set server: in the probe "
				    "entry)",
				    s->id, prog, dflt);
	return farm_err_set(e, FARM_ENOTFOUND,
			    "probe %s: %s not found on PATH (install it or fix server: in the probe entry)",
			    s->id, prog);
}

/* Every descriptor from 3 up becomes close-on-exec (the exec-error pipe must
 * stay open until execv). Async-signal-safe. */
static void cloexec_from_3(void)
{
#ifdef CLOSE_RANGE_CLOEXEC
	if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) == 0)
		return;
#endif
	for (int fd = 3; fd < 65536; fd++) {
		int fl = fcntl(fd, F_GETFD);
		if (fl >= 0 && !(fl & FD_CLOEXEC))
			fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
	}
}

/* In the child after fork: only async-signal-safe calls. Never returns. */
static void child_exec(const char *path, char *const argv[], const int fds[3], int errfd,
		       pid_t parent)
{
	int tmp[3];
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	/* Move the three sources above 2 first, so no dup2 clobbers another. */
	for (int i = 0; i < 3; i++)
		if ((tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3)) < 0)
			goto fail;
	for (int i = 0; i < 3; i++)
		if (dup2(tmp[i], i) < 0)
			goto fail;
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	cloexec_from_3();
	execv(path, argv);
fail:;
	int err = errno;
	ssize_t w = write(errfd, &err, sizeof err);
	(void)w;
	_exit(127);
}

/* fork + execv; fds become the child's 0, 1, 2. An exec failure is reported
 * here, through a close-on-exec pipe, not later as a mysterious exit. */
static int spawn(const struct farm_probesrv *s, const char *path, pid_t *out, const int fds[3],
		 struct farm_err *e)
{
	int ep[2];
	if (pipe2(ep, O_CLOEXEC) < 0)
		return farm_err_sys(e, FARM_ESYS, errno, "probe %s: pipe", s->id);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int err = errno;
		close(ep[0]);
		close(ep[1]);
		return farm_err_sys(e, FARM_ESYS, err, "probe %s: fork for %s", s->id, s->argv[0]);
	}
	if (pid == 0)
		child_exec(path, s->argv, fds, ep[1], parent);
	close(ep[1]);
	setpgid(pid, pid); /* also done by the child; whichever runs first */
	int child_errno = 0;
	ssize_t n;
	do
		n = read(ep[0], &child_errno, sizeof child_errno);
	while (n < 0 && errno == EINTR);
	close(ep[0]);
	if (n == (ssize_t)sizeof child_errno) {
		farm_probesrv_child_exited(pid, 2000, NULL);
		return farm_err_sys(e, FARM_ESYS, child_errno, "probe %s: cannot run %s", s->id, path);
	}
	*out = pid;
	return 0;
}

/* The server's log, opened for appending; *from = where this start's output begins. */
static int open_log(const struct farm_probesrv *s, int *fd, long long *from, struct farm_err *e)
{
	const char *path = s->log_path ? s->log_path : "/dev/null";
	int flags = O_WRONLY | O_CLOEXEC | O_NOCTTY | (s->log_path ? O_CREAT | O_APPEND : 0);
	*fd = open(path, flags, 0644);
	if (*fd < 0)
		return farm_err_sys(e, FARM_EIO, errno, "probe %s: cannot open the server log %s", s->id,
				    path);
	struct stat st;
	*from = fstat(*fd, &st) == 0 && S_ISREG(st.st_mode) ? (long long)st.st_size : 0;
	return 0;
}

static int cancelled(const struct farm_probesrv *s)
{
	return s->cancel && *s->cancel;
}

/* ------------------------------------------------------------ OpenOCD */

static int connect_openocd(struct farm_probesrv *s, struct farm_transport **out, struct farm_err *e)
{
	int sv[2] = { -1, -1 }, logfd = -1, rc;
	long long from = 0;
	pid_t pid = 0;
	char path[4096];
	if ((rc = find_program(s, path, sizeof path, e)) || (rc = open_log(s, &logfd, &from, e)))
		return rc;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = farm_err_sys(e, FARM_ESYS, errno, "probe %s: socketpair", s->id);
		goto out;
	}
	int fds[3] = { sv[1], sv[1], logfd };
	if ((rc = spawn(s, path, &pid, fds, e)))
		goto out;
	close(sv[1]);
	sv[1] = -1;
	char what[FARM_ID_MAX + 200];
	snprintf(what, sizeof what, "probe %s: %s", s->id, s->argv[0]);
	rc = farm_transport_pipe_open(out, sv[0], pid, s->argv[0], what, s->log_path, from, e);
	sv[0] = -1; /* taken over, also on failure */
out:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	close(logfd);
	return rc;
}

/* ------------------------------------------------------------ pyOCD */

/* A port the kernel considers free right now on 127.0.0.1. */
static int alloc_port(const struct farm_probesrv *s, int *port, struct farm_err *e)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return farm_err_sys(e, FARM_ESYS, errno, "probe %s: socket", s->id);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		int err = errno;
		close(fd);
		return farm_err_sys(e, FARM_ESYS, err, "probe %s: choosing a port on 127.0.0.1", s->id);
	}
	close(fd);
	*port = ntohs(sa.sin_port);
	return 0;
}

/* Whether another socket holds 127.0.0.1:port now (our bind fails). With
 * SO_REUSEADDR, as servers set it, so a connection in TIME_WAIT does not count. */
static int port_is_taken(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int one = 1;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	int taken = bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno == EADDRINUSE;
	close(fd);
	return taken;
}

/* Socket inodes listening on TCP port `port` that a connection to
 * 127.0.0.1:port can reach: an exact 127.0.0.1 listener (which the kernel
 * prefers), else wildcard ones (0.0.0.0, ::, ::ffff:127.0.0.1). Returns the
 * number found (at most max), -1 if /proc/net/tcp cannot be read. */
static int find_listeners(int port, unsigned long *inodes, int max)
{
	char lo4[16], lo6[40];
	snprintf(lo4, sizeof lo4, "%08X", (unsigned)htonl(INADDR_LOOPBACK));
	snprintf(lo6, sizeof lo6, "0000000000000000%08X%s", (unsigned)htonl(0xffffu), lo4);
	static const char *const files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	int n_wild = 0, exact = 0, readable = 0;
	unsigned long exact_ino = 0;
	for (size_t f = 0; f < 2; f++) {
		FILE *fp = fopen(files[f], "re");
		if (!fp)
			continue;
		readable |= f == 0;
		char line[512];
		while (fgets(line, sizeof line, fp)) {
			char addr[40];
			unsigned lport, state;
			unsigned long ino;
			if (sscanf(line, " %*u: %39[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu",
				   addr, &lport, &state, &ino) != 4)
				continue;
			if (state != 0x0A || (int)lport != port)
				continue;
			int zero = strspn(addr, "0") == strlen(addr);
			if (f == 0 && !strcmp(addr, lo4)) {
				exact = 1;
				exact_ino = ino;
			} else if (zero || (f == 1 && !strcasecmp(addr, lo6))) {
				if (n_wild < max)
					inodes[n_wild++] = ino;
			}
		}
		fclose(fp);
	}
	if (!readable)
		return -1;
	if (exact) {
		inodes[0] = exact_ino;
		return 1;
	}
	return n_wild;
}

/* 1 if process pid holds socket inode ino, 0 if not, -1 if its fds cannot be read. */
static int pid_holds(pid_t pid, unsigned long ino)
{
	char dir[64], want[64], link[64];
	snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
	snprintf(want, sizeof want, "socket:[%lu]", ino);
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int found = 0;
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		ssize_t n = readlinkat(dirfd(d), de->d_name, link, sizeof link - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		found = !strcmp(link, want);
	}
	closedir(d);
	return found;
}

/* The process group of pid, from /proc/PID/stat, or -1. */
static pid_t pgrp_of(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	const char *p = strrchr(buf, ')'); /* the command name may hold anything */
	int ppid, pgrp;
	char state;
	if (!p || sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) != 3)
		return -1;
	return (pid_t)pgrp;
}

/* 1 if a process of group pgrp holds socket inode ino, 0 if none, -1 unknown. */
static int group_holds(pid_t pgrp, unsigned long ino)
{
	int r = pid_holds(pgrp, ino);
	if (r != 0)
		return r;
	DIR *d = opendir("/proc");
	if (!d)
		return -1;
	int found = 0;
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0 || pid == pgrp || pgrp_of((pid_t)pid) != pgrp)
			continue;
		found = pid_holds((pid_t)pid, ino) == 1;
	}
	closedir(d);
	return found;
}

/* Whether the listener a connection to 127.0.0.1:port reaches belongs to our
 * server's process group: 1 yes, 0 no, -1 cannot tell (no /proc). */
static int listener_is_ours(int port, pid_t pgrp)
{
	unsigned long inodes[8];
	int n = find_listeners(port, inodes, 8);
	if (n < 0)
		return -1;
	if (n == 0)
		return 0;
	for (int i = 0; i < n; i++) {
		int r = group_holds(pgrp, inodes[i]);
		if (r != 1)
			return r;
	}
	return 1;
}

/* Start pyOCD on a new port (or gdb_port:). */
static int start_pyocd(struct farm_probesrv *s, struct farm_err *e)
{
	int port = s->fixed_port, rc, logfd = -1, nullfd = -1;
	char path[4096];
	if ((rc = find_program(s, path, sizeof path, e)) || (!port && (rc = alloc_port(s, &port, e))))
		return rc;
	char buf[16];
	snprintf(buf, sizeof buf, "%d", port);
	char *dup = strdup(buf);
	if (!dup)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	free(s->argv[s->port_arg]);
	s->argv[s->port_arg] = dup;
	if ((rc = open_log(s, &logfd, &s->log_from, e)))
		return rc;
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nullfd < 0) {
		rc = farm_err_sys(e, FARM_ESYS, errno, "probe %s: /dev/null", s->id);
		goto out;
	}
	int fds[3] = { nullfd, logfd, logfd };
	if ((rc = spawn(s, path, &s->pid, fds, e)))
		goto out;
	s->port = port;
out:
	close(logfd);
	if (nullfd >= 0)
		close(nullfd);
	return rc;
}

enum { RETRY_NONE, RETRY_TAKEN, RETRY_FOREIGN };

static void stop_pyocd(struct farm_probesrv *s)
{
	if (s->pid > 0)
		farm_probesrv_stop_child(s->pid, 0, STOP_TERM_MS, NULL);
	s->pid = 0;
}

/* Connect to the running pyOCD, retrying until it listens or the deadline.
 * On failure the server is stopped; *retry says whether another port may help. */
static int connect_pyocd_port(struct farm_probesrv *s, struct farm_transport **out,
			      long long deadline, int timeout_ms, int *retry, struct farm_err *e)
{
	char url[64], hint[FARM_ERR_MSG_MAX / 2], how[64];
	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", s->port);
	*retry = RETRY_NONE;
	for (;;) {
		if (cancelled(s)) {
			stop_pyocd(s);
			return farm_err_set(e, FARM_EINTR, "probe %s: interrupted while waiting for %s",
					    s->id, s->argv[0]);
		}
		long long left = deadline - farm_now_ms();
		if (left <= 0)
			break;
		struct farm_transport *t = NULL;
		struct farm_err te = { 0 };
		int rc = farm_transport_sock_open(&t, url, left < CONNECT_SLICE_MS ? (int)left : CONNECT_SLICE_MS,
						  &te);
		if (rc == 0) {
			int ours = listener_is_ours(s->port, s->pid);
			if (ours != 0) { /* 1, or -1: no /proc to ask */
				snprintf(t->url, sizeof t->url, "%s", url);
				*out = t;
				return 0;
			}
			farm_transport_close(t);
			stop_pyocd(s);
			*retry = RETRY_FOREIGN;
			return farm_err_set(e, FARM_EBUSY,
					    "probe %s: 127.0.0.1:%d is served by another program, not the %s "
					    "mpfarm started",
					    s->id, s->port, s->argv[0]);
		}
		int status;
		if (farm_probesrv_child_exited(s->pid, 0, &status) != 0) {
			s->pid = 0;
			/* Its output says so, or (no log, other wording) the port is held now. */
			if (log_says_in_use(s->log_path, s->log_from) || port_is_taken(s->port)) {
				*retry = RETRY_TAKEN;
				return farm_err_set(e, FARM_EBUSY,
						    "probe %s: port %d was taken before %s could listen on it",
						    s->id, s->port, s->argv[0]);
			}
			farm_probesrv_describe_status(status, how, sizeof how);
			farm_probesrv_log_hint(s->log_path, s->log_from, hint, sizeof hint);
			return farm_err_set(e, FARM_EIO, "probe %s: %s %s before listening; %s", s->id,
					    s->argv[0], how, hint);
		}
		left = deadline - farm_now_ms();
		sleep_ms(left < POLL_MS ? left : POLL_MS);
	}
	farm_probesrv_log_hint(s->log_path, s->log_from, hint, sizeof hint);
	stop_pyocd(s);
	return farm_err_set(e, FARM_ETIMEDOUT, "probe %s: %s did not listen on 127.0.0.1:%d within %d ms; %s",
			    s->id, s->argv[0], s->port, timeout_ms, hint);
}

static int connect_pyocd(struct farm_probesrv *s, struct farm_transport **out, int timeout_ms,
			 struct farm_err *e)
{
	long long deadline = farm_now_ms() + timeout_ms;
	int retry, rc;
	if (s->pid > 0 && farm_probesrv_child_exited(s->pid, 0, NULL) != 0)
		s->pid = 0; /* died since the last connect: start it again */
	if (s->pid > 0)
		return connect_pyocd_port(s, out, deadline, timeout_ms, &retry, e);
	for (int start = 1;; start++) {
		if ((rc = start_pyocd(s, e)))
			return rc;
		rc = connect_pyocd_port(s, out, deadline, timeout_ms, &retry, e);
		if (rc == 0 || retry == RETRY_NONE)
			return rc;
		if (s->fixed_port)
			return farm_err_set(e, FARM_EBUSY,
					    "probe %s: gdb_port: %d is in use by another program (choose "
					    "another port, or remove gdb_port: and mpfarm chooses one)",
					    s->id, s->fixed_port);
		if (start == PYOCD_STARTS) {
			char last[300];
			snprintf(last, sizeof last, "%.299s", e ? e->msg : "");
			return farm_err_set(e, FARM_EBUSY,
					    "probe %s: %s lost its port to another program %d times in a "
					    "row; last: %s",
					    s->id, s->argv[0], start, last);
		}
	}
}

int farm_probesrv_connect(struct farm_probesrv *s, struct farm_transport **out, int timeout_ms,
			  struct farm_err *e)
{
	*out = NULL;
	if (cancelled(s))
		return farm_err_set(e, FARM_EINTR, "probe %s: interrupted", s->id);
	if (timeout_ms <= 0)
		timeout_ms = 1;
	return s->kind == SRV_OPENOCD ? connect_openocd(s, out, e) : connect_pyocd(s, out, timeout_ms, e);
}
