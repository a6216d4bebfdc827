/* mpfarm: board and resource locks shared by every mpfarm process on a host.
 *
 * Two runs on one runner host must never drive the same board. Each board
 * (and each shared resource: a debug probe, a USB hub, a power switch) is
 * guarded by flock(2) on DIR/<kind>-<id>.lock, e.g. DIR/board-pico-1.lock.
 *
 * Lifetime. An flock belongs to the open file description, not to the process:
 *  - the lock is held for as long as any descriptor sharing that description
 *    is open. A worker forked after farm_lock_acquire() inherits the descriptor
 *    and holds the lock too; the lock is dropped only when the parent and every
 *    such worker have released it or exited. This is what the farm wants: a
 *    worker still driving a board keeps it locked even if the parent gave up.
 *  - the descriptor is O_CLOEXEC, so programs a worker exec()s (flash tools,
 *    emulators) never hold the lock, and a tool left running cannot keep a
 *    board locked.
 *  - the kernel drops the lock when the last holder exits, however it exits
 *    (crash, SIGKILL): a crashed run never leaves a board locked, and there is
 *    no stale-lock recovery to get wrong.
 *  - farm_lock_release() only closes the descriptor, it never calls
 *    flock(LOCK_UN): unlocking the shared description from a forked worker
 *    would silently release the parent's lock as well.
 *  - lock files are never unlinked (unlink-after-unlock races with a process
 *    that has just opened the old file). Do not delete them while runs are
 *    active; they are tiny and reused.
 *  - the same process opening the same lock twice gets FARM_EBUSY the second
 *    time (each acquire is a new open file description).
 *
 * The owner record. After locking, the holder writes a small text record into
 * the file for humans ("who holds pico-1?"):
 *     mpfarm-lock=1
 *     pid=1234
 *     run_id=20261121-1845-ab12
 *     host=ci-3
 *     started=2026-11-21T18:45:40Z
 *     what=board pico-1
 * Values are written on one line each, control characters replaced by '?'.
 * The record is informative only; the flock is the lock. A reader treats it
 * as untrusted input: bounded read, unknown keys ignored, missing keys left
 * empty, overlong values truncated, non-printable bytes replaced by '?'.
 *
 * Sharing between users. The default directory /run/lock/mpfarm is created
 * with mode 01777 so several CI users of one runner share the same locks.
 * Lock files are opened without O_CREAT first and created with O_EXCL only
 * when missing (so fs.protected_regular does not refuse another user's file
 * in a sticky directory); files created in a sticky world-writable directory
 * are made 0666 so the next user can write its owner record. If a lock file
 * can only be opened read-only, the lock still works (flock needs no write
 * access) but the owner record is left as it was. The per-user fallbacks
 * ($XDG_RUNTIME_DIR/mpfarm, /tmp/mpfarm-<uid>) are 0700 and therefore only
 * exclude runs of the same user.
 *
 * Safety. Lock names are checked ([A-Za-z0-9._-]{1,64}) before any path is
 * built. Lock files are opened with O_NOFOLLOW|O_NONBLOCK and must be regular
 * files: a symlink, FIFO or directory planted at the path is refused.
 *
 * Waiting polls flock(LOCK_NB) with short sleeps (at most 50 ms), so a wait
 * is responsive to the cancel flag and needs no signals or timers. Polling is
 * not fair: when several runs wait for one board, any of them may win.
 *
 * No global state: every function works on its arguments only. */
#ifndef FARM_LOCK_H
#define FARM_LOCK_H

#include <signal.h>
#include <stddef.h>
#include "err.h"

#define FARM_LOCK_ID_MAX 64

struct farm_lock; /* one held lock; opaque */

struct farm_lock_owner {
	int pid;           /* <= 0: unknown */
	char run_id[64];
	char host[64];
	char started[32];  /* ISO 8601 UTC, "2026-11-21T18:45:40Z" */
	char what[80];     /* what the holder locked it for, e.g. "board pico-1" */
};

/* The default lock directory: /run/lock/mpfarm if it exists or can be created
 * there and is writable; else $XDG_RUNTIME_DIR/mpfarm (absolute XDG paths
 * only); else /tmp/mpfarm-<uid>. Creates the directory when missing. Writes
 * the chosen path into out. Same as farm_lock_pick_dir(out, len, "/run/lock",
 * getenv("XDG_RUNTIME_DIR"), "/tmp", e). */
int farm_lock_default_dir(char *out, size_t len, struct farm_err *e);

/* The selection logic of farm_lock_default_dir with the three bases given
 * (any may be NULL to skip it); exposed for tests. Candidates, in order:
 *   shared_base/mpfarm       mode 01777 when created; any owner accepted
 *   xdg_base/mpfarm          mode 0700; must be absolute, ours, not g/o-writable
 *   tmp_base/mpfarm-<euid>   mode 0700; ours, not g/o-writable
 * A candidate is used when it is (or could be created as) a real directory,
 * not a symlink, that we can write and search. When none fits: FARM_ENOTFOUND
 * with each candidate's reason in the message. */
int farm_lock_pick_dir(char *out, size_t len, const char *shared_base, const char *xdg_base,
		       const char *tmp_base, struct farm_err *e);

/* Lock DIR/<kind>-<id>.lock. kind is "board", "probe" or "resource"; id matches
 * [A-Za-z0-9._-]{1,64} (anything else: FARM_EINVAL, no path is built). dir
 * must exist (farm_lock_default_dir creates the default one).
 * me: the owner record to write; may be NULL. Empty fields are filled in:
 *   pid <= 0 -> getpid(), host "" -> gethostname(), started "" -> now (UTC).
 * wait_ms: 0 = try once; > 0 = keep trying for up to that long; < 0 invalid.
 * cancel: may be NULL; checked before every attempt and during waits.
 * holder: may be NULL; zeroed, then filled from the record when busy.
 * Returns 0 and *out (release with farm_lock_release); FARM_EBUSY when someone
 * else holds the lock (also after a wait ran out), the message naming the
 * holder; FARM_EINTR when *cancel became non-zero; FARM_EINVAL, FARM_ESYS,
 * FARM_EIO, FARM_ENOMEM otherwise, the message naming the path. */
int farm_lock_acquire(struct farm_lock **out, const char *dir, const char *kind, const char *id,
		      const struct farm_lock_owner *me, int wait_ms,
		      const volatile sig_atomic_t *cancel, struct farm_lock_owner *holder,
		      struct farm_err *e);

/* NULL-safe. Closes this process's descriptor; the lock is gone once no
 * process shares it any more (see "Lifetime" above). Does not unlink. */
void farm_lock_release(struct farm_lock *l);

/* The lock file's path (for messages). */
const char *farm_lock_path(const struct farm_lock *l);

/* 1 if id is a valid lock id ([A-Za-z0-9._-]{1,64}), else 0. */
int farm_lock_id_valid(const char *id);

/* Human text, always NUL-terminated when len > 0:
 *   "pid 1234 (run 20261121-1845-ab12, host ci-3, since 2026-11-21T18:45:40Z)"
 * Missing fields are left out; with no record at all: "an unknown holder". */
void farm_lock_owner_describe(const struct farm_lock_owner *o, char *out, size_t len);

#endif
