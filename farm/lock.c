/* mpfarm: board and resource locks (flock on files in a lock directory).
 * See lock.h for the lifetime rules and the owner record format. */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RECORD_VERSION_KEY "mpfarm-lock"
#define RECORD_READ_MAX 4096 /* bytes of a lock file we look at */
#define POLL_FIRST_MS 5
#define POLL_MAX_MS 50       /* longest sleep between attempts: cancel latency */
#define OPEN_TRIES 16        /* open/create races before giving up */

struct farm_lock {
	int fd;
	char path[PATH_MAX];
};

static const char *const lock_kinds[] = {"board", "probe", "resource", NULL};

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	/* An interrupting signal ends the sleep early; the caller re-checks cancel. */
	(void)nanosleep(&ts, NULL);
}

/* Copy at most srclen bytes of src (stopping at NUL) into dst, replacing
 * anything but printable ASCII with '?'. Always terminates dst (dstlen > 0). */
static void copy_printable(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t i = 0;
	for (; i + 1 < dstlen && i < srclen && src[i]; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
}

#define COPY_FIELD(dst, src) copy_printable((dst), sizeof(dst), (src), sizeof(src))

/* Append to out at *pos, never past len; keeps out terminated. */
static void append(char *out, size_t len, size_t *pos, const char *fmt, ...) FARM_PRINTF(4, 5);
static void append(char *out, size_t len, size_t *pos, const char *fmt, ...)
{
	if (*pos + 1 >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out + *pos, len - *pos, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	*pos += (size_t)n < len - *pos ? (size_t)n : len - *pos - 1;
}

static int kind_valid(const char *kind)
{
	if (!kind)
		return 0;
	for (size_t i = 0; lock_kinds[i]; i++)
		if (!strcmp(kind, lock_kinds[i]))
			return 1;
	return 0;
}

int farm_lock_id_valid(const char *id)
{
	if (!id)
		return 0;
	size_t n = 0;
	for (; id[n]; n++) {
		char c = id[n];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			 c == '.' || c == '_' || c == '-';
		if (!ok || n >= FARM_LOCK_ID_MAX)
			return 0;
	}
	return n > 0;
}

/* ---- owner record ---- */

static void owner_fill(struct farm_lock_owner *o, const struct farm_lock_owner *me)
{
	memset(o, 0, sizeof *o);
	if (me) {
		o->pid = me->pid;
		COPY_FIELD(o->run_id, me->run_id);
		COPY_FIELD(o->host, me->host);
		COPY_FIELD(o->started, me->started);
		COPY_FIELD(o->what, me->what);
	}
	if (o->pid <= 0)
		o->pid = (int)getpid();
	if (!o->host[0]) {
		char h[256];
		if (gethostname(h, sizeof h) == 0) {
			h[sizeof h - 1] = '\0';
			COPY_FIELD(o->host, h);
		}
	}
	if (!o->started[0]) {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		if (gmtime_r(&ts.tv_sec, &tm))
			strftime(o->started, sizeof o->started, "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
}

/* Write the record over the old one, then cut the file to its length: a
 * reader never sees an empty file in between (a mixed one at worst, which
 * the first-value-wins parser reads as the new owner). */
static int record_write(int fd, const char *path, const struct farm_lock_owner *o,
			struct farm_err *e)
{
	char rec[512];
	int n = snprintf(rec, sizeof rec,
			 RECORD_VERSION_KEY "=1\npid=%d\nrun_id=%s\nhost=%s\nstarted=%s\nwhat=%s\n",
			 o->pid, o->run_id, o->host, o->started, o->what);
	if (n < 0 || (size_t)n >= sizeof rec)
		return farm_err_set(e, FARM_EINVAL, "lock file %s: owner record too long", path);
	size_t done = 0;
	while (done < (size_t)n) {
		ssize_t w = pwrite(fd, rec + done, (size_t)n - done, (off_t)done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return farm_err_sys(e, FARM_EIO, w < 0 ? errno : EIO,
					    "lock file %s: writing the owner record", path);
		done += (size_t)w;
	}
	if (ftruncate(fd, (off_t)n) != 0)
		return farm_err_sys(e, FARM_EIO, errno, "lock file %s: truncating the owner record",
				    path);
	return 0;
}

/* Parse "key=value" lines out of untrusted bytes (may hold NULs, lack
 * newlines, repeat keys). The first value of a key wins. */
static void record_parse(struct farm_lock_owner *o, const char *buf, size_t n, int cut)
{
	memset(o, 0, sizeof *o);
	size_t i = 0;
	while (i < n) {
		const char *line = buf + i;
		const char *nl = memchr(line, '\n', n - i);
		size_t ll = nl ? (size_t)(nl - line) : n - i;
		i += ll + 1;
		if (!nl && cut)
			break; /* the read stopped inside this line: value incomplete */
		if (ll && line[ll - 1] == '\r')
			ll--;
		const char *eq = memchr(line, '=', ll);
		if (!eq)
			continue;
		size_t kl = (size_t)(eq - line);
		const char *v = eq + 1;
		size_t vl = ll - kl - 1;
		char *dst = NULL;
		size_t dl = 0;
		if (kl == 3 && !memcmp(line, "pid", 3)) {
			long long p = 0;
			size_t d = 0;
			for (; d < vl && v[d] >= '0' && v[d] <= '9' && p <= INT_MAX; d++)
				p = p * 10 + (v[d] - '0');
			if (!o->pid && d == vl && d > 0 && p > 0 && p <= INT_MAX)
				o->pid = (int)p;
			continue;
		} else if (kl == 6 && !memcmp(line, "run_id", 6)) {
			dst = o->run_id, dl = sizeof o->run_id;
		} else if (kl == 4 && !memcmp(line, "host", 4)) {
			dst = o->host, dl = sizeof o->host;
		} else if (kl == 7 && !memcmp(line, "started", 7)) {
			dst = o->started, dl = sizeof o->started;
		} else if (kl == 4 && !memcmp(line, "what", 4)) {
			dst = o->what, dl = sizeof o->what;
		}
		if (dst && !dst[0])
			copy_printable(dst, dl, v, vl);
	}
}

/* Best effort: whatever the record says, or nothing. */
static void record_read(int fd, struct farm_lock_owner *o)
{
	char buf[RECORD_READ_MAX];
	size_t got = 0;
	while (got < sizeof buf) {
		ssize_t r = pread(fd, buf + got, sizeof buf - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	record_parse(o, buf, got, got == sizeof buf);
}

void farm_lock_owner_describe(const struct farm_lock_owner *o, char *out, size_t len)
{
	if (!out || !len)
		return;
	out[0] = '\0';
	struct farm_lock_owner s;
	memset(&s, 0, sizeof s);
	if (o) {
		s.pid = o->pid;
		COPY_FIELD(s.run_id, o->run_id);
		COPY_FIELD(s.host, o->host);
		COPY_FIELD(s.started, o->started);
	}
	size_t pos = 0;
	if (s.pid <= 0 && !s.run_id[0] && !s.host[0] && !s.started[0]) {
		append(out, len, &pos, "an unknown holder");
		return;
	}
	if (s.pid > 0)
		append(out, len, &pos, "pid %d", s.pid);
	else
		append(out, len, &pos, "unknown pid");
	const char *sep = " (";
	if (s.run_id[0]) {
		append(out, len, &pos, "%srun %s", sep, s.run_id);
		sep = ", ";
	}
	if (s.host[0]) {
		append(out, len, &pos, "%shost %s", sep, s.host);
		sep = ", ";
	}
	if (s.started[0]) {
		append(out, len, &pos, "%ssince %s", sep, s.started);
		sep = ", ";
	}
	if (sep[0] == ',')
		append(out, len, &pos, ")");
}

/* ---- lock files ---- */

static int dir_is_shared(const char *dir)
{
	struct stat st;
	return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX) &&
	       (st.st_mode & S_IWOTH);
}

/* Open (creating if missing) the lock file without following a symlink and
 * without blocking on a planted FIFO. *writable tells whether the owner
 * record can be written. */
static int lockfile_open(int *fdp, int *writable, const char *path, const char *dir,
			 struct farm_err *e)
{
	const int base = O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
	int fd = -1, err = 0, created = 0, rc = 0;
	struct stat st;

	*fdp = -1;
	*writable = 0;
	for (int tries = 0; tries < OPEN_TRIES; tries++) {
		/* Existing file first, without O_CREAT: fs.protected_regular refuses
		 * O_CREAT on another user's file in a sticky directory. */
		fd = open(path, base | O_RDWR);
		if (fd >= 0) {
			*writable = 1;
			break;
		}
		err = errno;
		if (err == EACCES || err == EROFS) {
			/* flock needs no write access; only the record is lost. */
			fd = open(path, base | O_RDONLY);
			if (fd >= 0)
				break;
			err = errno;
		}
		if (err != ENOENT)
			break;
		fd = open(path, base | O_RDWR | O_CREAT | O_EXCL, 0666);
		if (fd >= 0) {
			*writable = 1;
			created = 1;
			break;
		}
		err = errno;
		if (err != EEXIST)
			break;
	}
	if (fd < 0) {
		if (err == ELOOP)
			rc = farm_err_set(e, FARM_EINVAL,
					  "lock file %s is a symbolic link; refusing to follow it", path);
		else
			rc = farm_err_sys(e, FARM_ESYS, err, "lock file %s", path);
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		rc = farm_err_sys(e, FARM_ESYS, errno, "lock file %s", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = farm_err_set(e, FARM_EINVAL, "lock file %s is not a regular file; refusing it",
				  path);
		goto out;
	}
	/* In a shared directory the next user must be able to write its record,
	 * whatever our umask was. Failing that only costs the record. */
	if (created && dir_is_shared(dir))
		(void)fchmod(fd, 0666);
out:
	if (rc && fd >= 0) {
		close(fd);
		fd = -1;
	}
	*fdp = fd;
	return rc;
}

int farm_lock_acquire(struct farm_lock **out, const char *dir, const char *kind, const char *id,
		      const struct farm_lock_owner *me, int wait_ms,
		      const volatile sig_atomic_t *cancel, struct farm_lock_owner *holder,
		      struct farm_err *e)
{
	struct farm_lock *l = NULL;
	struct farm_lock_owner rec;
	int fd = -1, writable = 0, rc = 0;

	if (holder)
		memset(holder, 0, sizeof *holder);
	if (!out)
		return farm_err_set(e, FARM_EINVAL, "lock: no place for the result");
	*out = NULL;
	if (!kind_valid(kind))
		return farm_err_set(e, FARM_EINVAL, "lock: kind must be \"board\", \"probe\" or \"resource\"");
	if (!farm_lock_id_valid(id))
		return farm_err_set(e, FARM_EINVAL,
				    "lock: invalid %s id (use 1 to %d of A-Z a-z 0-9 . _ -)", kind,
				    FARM_LOCK_ID_MAX);
	if (!dir || !dir[0])
		return farm_err_set(e, FARM_EINVAL, "lock: no lock directory given");
	if (wait_ms < 0)
		return farm_err_set(e, FARM_EINVAL, "lock: negative wait (%d ms)", wait_ms);

	l = calloc(1, sizeof *l);
	if (!l)
		return farm_err_set(e, FARM_ENOMEM, "lock: out of memory");
	l->fd = -1;
	int n = snprintf(l->path, sizeof l->path, "%s/%s-%s.lock", dir, kind, id);
	if (n < 0 || (size_t)n >= sizeof l->path) {
		rc = farm_err_set(e, FARM_EINVAL, "lock: lock directory path too long (%zu bytes)",
				  strlen(dir));
		goto out;
	}
	rc = lockfile_open(&fd, &writable, l->path, dir, e);
	if (rc)
		goto out;

	long long deadline = mono_ms() + wait_ms;
	long step = POLL_FIRST_MS;
	for (;;) {
		if (cancel && *cancel) {
			rc = farm_err_set(e, FARM_EINTR, "%s %s: cancelled while waiting for its lock",
					  kind, id);
			goto out;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			rc = farm_err_sys(e, FARM_ESYS, errno, "lock file %s: flock", l->path);
			goto out;
		}
		long long left = deadline - mono_ms();
		if (left <= 0) {
			char who[256];
			record_read(fd, &rec);
			farm_lock_owner_describe(&rec, who, sizeof who);
			if (holder)
				*holder = rec;
			if (wait_ms)
				rc = farm_err_set(e, FARM_EBUSY,
						  "%s %s is still busy after %d ms: held by %s", kind,
						  id, wait_ms, who);
			else
				rc = farm_err_set(e, FARM_EBUSY, "%s %s is busy: held by %s", kind,
						  id, who);
			goto out;
		}
		sleep_ms(left < step ? (long)left : step);
		step = step * 2 > POLL_MAX_MS ? POLL_MAX_MS : step * 2;
	}

	if (writable) {
		owner_fill(&rec, me);
		rc = record_write(fd, l->path, &rec, e);
		if (rc)
			goto out;
	}
	l->fd = fd;
	fd = -1;
	*out = l;
	l = NULL;
out:
	if (fd >= 0)
		close(fd); /* drops the flock too if we took it */
	free(l);
	return rc;
}

void farm_lock_release(struct farm_lock *l)
{
	if (!l)
		return;
	/* No flock(LOCK_UN): a forked worker shares this open file description
	 * and unlocking it would release the lock for everyone sharing it. */
	if (l->fd >= 0)
		close(l->fd);
	free(l);
}

const char *farm_lock_path(const struct farm_lock *l)
{
	return l ? l->path : "";
}

/* ---- lock directory ---- */

/* 0 if path is (or is now created as) a usable lock directory; otherwise
 * non-zero with the reason in why. */
static int dir_try(const char *path, mode_t mode, int private_dir, char *why, size_t whylen)
{
	int fd = -1, created = 0, rc = -1;
	struct stat st;

	if (mkdir(path, mode) == 0)
		created = 1;
	else if (errno != EEXIST) {
		snprintf(why, whylen, "%s", strerror(errno));
		goto out;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "%s",
			 (errno == ELOOP || errno == ENOTDIR) ? "not a directory (or a symbolic link)"
							       : strerror(errno));
		goto out;
	}
	/* mkdir's mode went through the umask; set the one we mean. */
	if (created && fchmod(fd, mode) != 0) {
		snprintf(why, whylen, "chmod: %s", strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		goto out;
	}
	if (private_dir && st.st_uid != geteuid()) {
		snprintf(why, whylen, "owned by uid %u, not by us", (unsigned)st.st_uid);
		goto out;
	}
	if (private_dir && (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(why, whylen, "writable by others (mode %04o)",
			 (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (faccessat(AT_FDCWD, path, W_OK | X_OK, AT_EACCESS) != 0) {
		snprintf(why, whylen, "not writable: %s", strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

int farm_lock_pick_dir(char *out, size_t len, const char *shared_base, const char *xdg_base,
		       const char *tmp_base, struct farm_err *e)
{
	const struct {
		const char *base;
		mode_t mode;
		int private_dir;
		int with_uid; /* name is mpfarm-<euid> */
	} cands[] = {
		{shared_base, 01777, 0, 0},
		{xdg_base, 0700, 1, 0},
		{tmp_base, 0700, 1, 1},
	};
	char reasons[FARM_ERR_MSG_MAX - 64];
	size_t rpos = 0;
	char path[PATH_MAX];
	char why[128];

	reasons[0] = '\0';
	if (out && len)
		out[0] = '\0';
	if (!out || !len)
		return farm_err_set(e, FARM_EINVAL, "lock directory: no output buffer");
	for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
		const char *b = cands[i].base;
		if (!b || !b[0])
			continue;
		if (b[0] != '/') {
			append(reasons, sizeof reasons, &rpos, "%s%s: not an absolute path",
			       rpos ? "; " : "", b);
			continue;
		}
		int n = cands[i].with_uid
				? snprintf(path, sizeof path, "%s/mpfarm-%u", b, (unsigned)geteuid())
				: snprintf(path, sizeof path, "%s/mpfarm", b);
		if (n < 0 || (size_t)n >= sizeof path) {
			append(reasons, sizeof reasons, &rpos, "%s%.40s...: path too long",
			       rpos ? "; " : "", b);
			continue;
		}
		if (dir_try(path, cands[i].mode, cands[i].private_dir, why, sizeof why) != 0) {
			append(reasons, sizeof reasons, &rpos, "%s%s: %s", rpos ? "; " : "", path, why);
			continue;
		}
		if ((size_t)n >= len)
			return farm_err_set(e, FARM_ELIMIT, "lock directory %s: path too long (%d bytes)",
					    path, n);
		memcpy(out, path, (size_t)n + 1);
		return 0;
	}
	return farm_err_set(e, FARM_ENOTFOUND, "no usable lock directory (%s)",
			    rpos ? reasons : "no candidates");
}

int farm_lock_default_dir(char *out, size_t len, struct farm_err *e)
{
	return farm_lock_pick_dir(out, len, "/run/lock", getenv("XDG_RUNTIME_DIR"), "/tmp", e);
}
