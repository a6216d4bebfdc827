/* mpfarm: the GDB server mpfarm starts for a debug probe (OpenOCD, pyOCD).
 *
 * A probe of kind openocd or pyocd without connection: asks mpfarm to run its
 * GDB server. The server is always spawned with an argv (fork + execv of the
 * program found on PATH); no shell ever sees inventory text. The child leads
 * its own process group (a terminal's Ctrl-C reaches mpfarm only, which stops
 * the server itself), dies with its parent (PR_SET_PDEATHSIG(SIGKILL)), has
 * signal mask and dispositions reset, and inherits no file descriptor but its
 * stdin, stdout and stderr (every other descriptor is marked close-on-exec in
 * the child). Its stderr (and stdout when that is not the GDB channel) goes to
 * log_path, appended; each start remembers where its output begins, so errors
 * quote the last line that start wrote. PR_SET_PDEATHSIG follows the thread
 * that forked: connect from a thread that outlives the server (mpfarm's
 * workers are single-threaded).
 *
 * OpenOCD: race-free by construction. Every farm_probesrv_connect spawns one
 * OpenOCD with "-c gdb_port pipe": the GDB remote protocol runs over the
 * server's stdin/stdout, exactly as GDB's `target remote | openocd -c "gdb_port
 * pipe" ...`, so no TCP port exists to race for. tcl_port and telnet_port are
 * disabled, so the server opens no socket at all. Like GDB's ser-pipe.c, the
 * "pipe" is a socketpair(AF_UNIX, SOCK_STREAM): one descriptor for both
 * directions, and writes with MSG_NOSIGNAL (a server that died gives EPIPE,
 * never SIGPIPE). The returned transport owns that OpenOCD: closing it closes
 * the socket (OpenOCD shuts down when its GDB pipe closes), waits up to 2 s,
 * then SIGTERMs and finally SIGKILLs the process group, and reaps it. When the
 * server exits with a failure (no adapter, bad config), the first read or
 * write on the transport fails with FARM_EIO and "probe ID: openocd exited
 * with status N; see LOG (last line: ...)". timeout_ms is not used: the spawn
 * does not wait; the first packet's timeout covers OpenOCD's start-up.
 *   argv: openocd -c "gdb_port pipe" -c "tcl_port disabled" -c "telnet_port disabled"
 *         [-f interface/I.cfg] [-f target/T.cfg] [-f CONFIG]
 *         [-c "adapter serial S"] [-c "adapter speed K"]
 *   interface:/target: without '/' and without ".cfg" name OpenOCD's own
 *   scripts (interface/NAME.cfg, target/NAME.cfg); anything else is a path,
 *   passed as given. Either config:, or interface: and target:, is required.
 *   The probe's serial and speed come after every file so that they override
 *   what the files set (target files set "adapter speed" themselves).
 *   "adapter serial" is OpenOCD >= 0.12 (older releases: hla_serial, jlink
 *   serial, ftdi serial, ... per driver); mpfarm assumes 0.12 or later.
 *   OpenOCD reads -f as `script {PATH}` and -c as Tcl, so values are checked:
 *   paths may not hold braces, backslashes or control characters, a serial
 *   number only letters, digits and ". _ : + -".
 *   gdb_port: is refused (a pipe has no port).
 *
 * pyOCD: started once, by the first connect, and kept (--persist: it serves
 * one GDB client after another) until farm_probesrv_free.
 *   argv: pyocd gdbserver --port N --no-wait --persist -O semihost_console_type=console
 *         [--uid S] [--target T] [--frequency HZ] [--config PATH]
 *   Without --allow-remote pyOCD listens on localhost only. The semihosting
 *   console goes to stdout (the log) instead of a telnet server, so pyOCD opens
 *   no second port; its probe server and the others are off by default.
 *   --no-wait: a missing probe is an immediate error, not an endless wait.
 *   interface: is refused (pyOCD selects the probe by serial_number, its
 *   unique ID). gdb_port: fixes the port instead of allocating one.
 *
 *   The port. pyOCD cannot be handed a listening socket (it binds and listens
 *   itself, to the --port it is given), and its "--port 0" choice is only
 *   reported in an INFO log line whose wording differs between versions and
 *   which log settings can suppress. So mpfarm binds 127.0.0.1:0, reads the
 *   port the kernel chose, closes the socket and starts pyOCD on that port,
 *   then connects with retries until the deadline. This is the best available
 *   here: the kernel picks a port nobody holds at that instant, out of the
 *   ephemeral range, in a randomised order, so concurrent workers do not
 *   collide the way fixed defaults (3333) do.
 *   The residual race is the window between our close() and pyOCD's bind():
 *   python start-up, pyOCD connecting to the probe and the target, which is
 *   seconds. Any process that binds the same port in that window wins it.
 *   Two outcomes, both handled:
 *   1. pyOCD fails to bind and exits: when it exits before listening and its
 *      output since this start says "Address already in use" (or, without a
 *      log, mpfarm cannot bind 127.0.0.1:N itself), mpfarm starts it again on
 *      a new port (at most 3 starts in all).
 *   2. The intruder is itself a listener, so our connect() reaches it while
 *      our pyOCD is still starting. Talking GDB to a foreign server could
 *      program the wrong board, so every connection is checked: the socket
 *      listening on 127.0.0.1:N (from /proc/net/tcp) must be held by a process
 *      of the server's process group (from /proc/PID/fd). If it is not, the
 *      connection is dropped, our server stopped, and a new port tried (a
 *      fixed gdb_port: is an error instead).
 *   Left over: when /proc cannot be read the ownership check is skipped;
 *   and a server that exits before listening for another reason while an
 *   unrelated program happens to hold its port is retried, not reported, up
 *   to the 3 starts.
 *
 * Errors name the probe, the program and what to do, e.g.
 *   "probe jlink-1: openocd not found on PATH (install openocd or set server: in the probe entry)"
 *   "probe st-1: pyocd exited with status 1 before listening; see LOG (last line: ...)"
 */
#ifndef FARM_PROBESRV_H
#define FARM_PROBESRV_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "inventory.h"
#include "transport.h"

struct farm_probesrv;

/* Whether mpfarm starts a GDB server for this probe: kind openocd or pyocd and
 * no connection:. */
int farm_probesrv_needed(const struct farm_probe *p);

/* No process yet; checks the probe's options (no I/O). log_path: where the
 * server's stdout/stderr go, appended (may be NULL = /dev/null; errors then
 * cannot quote the server). cancel (may be NULL) is polled while waiting for
 * the server; it gives FARM_EINTR. */
int farm_probesrv_new(struct farm_probesrv **out, const struct farm_probe *p, const char *log_path,
		      const volatile sig_atomic_t *cancel, struct farm_err *e);

/* A fresh GDB remote connection through the server (starting it when needed);
 * timeout_ms bounds the whole call, including a pyOCD start, which takes
 * seconds with real hardware (give it 10000 or more). The caller closes the
 * transport. pyOCD serves one client at a time: close the previous transport
 * before connecting again. A pyOCD that died since the last connect is started
 * again. */
int farm_probesrv_connect(struct farm_probesrv *s, struct farm_transport **out, int timeout_ms,
			  struct farm_err *e);

/* The argv that would be / was used (for logs and tests); NULL-terminated,
 * owned by s. pyOCD's port reads "PORT" until the server has been started. */
const char *const *farm_probesrv_argv(const struct farm_probesrv *s);

/* The running pyOCD server's process id, 0 when none (OpenOCD processes belong
 * to their transports). For logs and tests. */
pid_t farm_probesrv_pid(const struct farm_probesrv *s);

/* Stop the server (SIGTERM to its process group, grace, SIGKILL), reap it,
 * free s. NULL-safe. OpenOCD transports still open stay valid (each owns its
 * process); a pyOCD connection breaks. */
void farm_probesrv_free(struct farm_probesrv *s);

/* ---- shared with farm/transport_pipe.c ---- */

/* Whether child pid (leader of its own process group) has exited, waiting up
 * to wait_ms for it. When it has: the rest of its group is SIGKILLed (while
 * the zombie leader keeps the group id from being reused), it is reaped, and
 * *status (may be NULL) gets its wait status. Returns 1 (exited and reaped),
 * 0 (still running) or -1 (not a child of ours, or already reaped). */
int farm_probesrv_child_exited(pid_t pid, int wait_ms, int *status);

/* Stop such a child and reap it: wait up to grace_ms for it to exit by
 * itself, then SIGTERM the group and wait up to term_ms, then SIGKILL the
 * group (bounded wait: a process stuck in the kernel is left as it is).
 * *status (may be NULL) gets the wait status, or -1 if it was not reaped.
 * Returns 0 if the child exited by itself within grace_ms, else -1. */
int farm_probesrv_stop_child(pid_t pid, int grace_ms, int term_ms, int *status);

/* "exited with status 1", "was killed by signal 9" for a wait status. */
void farm_probesrv_describe_status(int status, char *out, size_t len);

/* Where to look, for error messages: "see PATH (last line: ...)" with the last
 * non-empty line written to path at or after offset from, "see PATH (the
 * server wrote nothing)", or "no server log was kept" when path is NULL. */
void farm_probesrv_log_hint(const char *path, long long from, char *out, size_t len);

/* farm/transport_pipe.c: a GDB remote connection over a server's stdin and
 * stdout. fd is our end of the socketpair (taken over, also on failure); pid
 * the server, leader of its process group, stopped and reaped by close. The
 * url is "pipe:" + name; what ("probe jlink-1: openocd"), log_path (may be
 * NULL) and log_from describe the server in errors. */
int farm_transport_pipe_open(struct farm_transport **out, int fd, pid_t pid, const char *name,
			     const char *what, const char *log_path, long long log_from,
			     struct farm_err *e);

#endif
