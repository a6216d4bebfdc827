/* mpfarm: MicroPython source checkouts with libgit2 (see git.h for the
 * cache layout and the rules).
 *
 * Every public function takes and drops a libgit2 reference
 * (git_libgit2_init/shutdown are refcounted), so callers need no global
 * init; call them in the worker, after fork(). */
#include "git.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>
#include <openssl/evp.h>

#include "diag.h"

#if defined(__SANITIZE_ADDRESS__)
/* libgit2 1.5 leaks a PCRE2 match block whenever a config regex does not
 * match (git_regexp_match; fixed upstream in libgit2 1.6, PR #6382). Keep
 * LeakSanitizer quiet about that library bug only: mpfarm itself does not
 * use PCRE2. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libpcre2-8.so\n";
}
#endif

#define NAME_LEN_MAX 64        /* <name> part of mirror and checkout dirs */
#define LOCK_WAIT_DEFAULT_MS 600000u
#define POLL_MAX_MS 50         /* longest sleep between lock attempts: cancel latency */
#define SUGGEST_REFS_MAX 20000 /* branch/tag names looked at for a did-you-mean */
#define SUBMODULES_MAX 1024
#define ABBREV_MIN 4           /* shortest abbreviated commit id accepted */
#define TOKEN_USER_DEFAULT "x-access-token"

/* Per-call state shared with libgit2's callbacks. */
struct cb_ctx {
	const struct farm_git_opts *o;
	const char *url;           /* redacted, for labels */
	int ssh;                   /* URL uses ssh transport */
	int tried_agent, tried_token, tried_user;
	int auth_failed;           /* no (more) credentials to offer */
	unsigned last_objects;     /* progress throttle */
	unsigned last_deltas;
};

/* ---- small helpers ---- */

static int is_cancelled(const struct farm_git_opts *o)
{
	return o->cancel && *o->cancel;
}

static void logf_(const struct farm_git_opts *o, const char *fmt, ...) FARM_PRINTF(2, 3);
static void logf_(const struct farm_git_opts *o, const char *fmt, ...)
{
	if (!o->log)
		return;
	char line[FARM_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	o->log(o->cb_p, line);
}

static int is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		      (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return 1;
}

static int is_commit40(const char *s)
{
	return s && strlen(s) == 40 && is_hex(s, 40);
}

/* snprintf into out; FARM_ELIMIT naming what when it does not fit. */
static int pathf(char *out, size_t len, struct farm_err *e, const char *what, const char *fmt, ...)
	FARM_PRINTF(5, 6);
static int pathf(char *out, size_t len, struct farm_err *e, const char *what, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		return farm_err_set(e, FARM_ELIMIT,
				    "%s: path longer than %zu bytes; use a shorter cache directory",
				    what, len - 1);
	return 0;
}

static int is_dir(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int mkdir_ok(const char *path, struct farm_err *e)
{
	if (mkdir(path, 0777) == 0 || (errno == EEXIST && is_dir(path)))
		return 0;
	return farm_err_sys(e, FARM_ESYS, errno, "cache directory %s", path);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		(void)rmdir(path);
	else
		(void)unlink(path);
	return 0;
}

/* Best effort: remove a tree we made (never follows symlinks). */
static void rm_tree(const char *path)
{
	(void)nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Remove dir/prefix* left by a process that died half way. Called with the
 * lock that guards those names held, so nobody is using them. */
static void rm_stale(const char *dir, const char *prefix, const struct farm_git_opts *o)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	size_t pl = strlen(prefix);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, pl) != 0)
			continue;
		char p[FARM_GIT_PATH_MAX];
		int n = snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		if (n < 0 || (size_t)n >= sizeof p)
			continue;
		logf_(o, "removing %s left half-made by an earlier run", p);
		rm_tree(p);
	}
	closedir(d);
}

/* Copy s into out dropping a "scheme://user:password@" userinfo (and the
 * query/fragment of scheme URLs) wherever it appears, and any occurrence of
 * secret; control characters become '?'. Works on free text too (libgit2's
 * messages quote URLs). */
static void redact_text(const char *s, char *out, size_t len, const char *secret)
{
	if (!out || !len)
		return;
	size_t o = 0, sl = secret ? strlen(secret) : 0;
	int in_url = 0; /* inside a scheme URL's authority or path */
	if (!s)
		s = "";
	for (size_t i = 0; s[i] && o + 1 < len;) {
		if (sl >= 4 && !strncmp(s + i, secret, sl)) {
			for (const char *r = "***"; *r && o + 1 < len; r++)
				out[o++] = *r;
			i += sl;
			continue;
		}
		if (!strncmp(s + i, "://", 3)) {
			/* userinfo: everything up to '@' before the first '/', space or quote */
			size_t j = i + 3, at = 0;
			for (; s[j] && s[j] != '/' && s[j] != ' ' && s[j] != '\'' && s[j] != '"'; j++)
				if (s[j] == '@')
					at = j;
			for (size_t k = 0; k < 3 && o + 1 < len; k++)
				out[o++] = s[i + k];
			i = at ? at + 1 : i + 3;
			in_url = 1;
			continue;
		}
		unsigned char c = (unsigned char)s[i];
		if (in_url && (c == '?' || c == '#')) {
			while (s[i] && s[i] != ' ' && s[i] != '\'' && s[i] != '"')
				i++;
			continue;
		}
		if (c == ' ' || c == '\'' || c == '"')
			in_url = 0;
		out[o++] = (c >= 0x20 && c != 0x7f) ? (char)c : '?';
		i++;
	}
	out[o] = '\0';
}

void farm_git_redact(const char *url, char *out, size_t len)
{
	redact_text(url, out, len, NULL);
}

static const char *token_env(void)
{
	const char *t = getenv("MPFARM_GIT_TOKEN");
	return t && t[0] ? t : NULL;
}

/* Set e from a failed libgit2 call: "<what>: <libgit2's message>", redacted. */
static int gerr(struct farm_err *e, int code, int grc, const char *fmt, ...) FARM_PRINTF(4, 5);
static int gerr(struct farm_err *e, int code, int grc, const char *fmt, ...)
{
	char head[FARM_ERR_MSG_MAX], raw[2 * FARM_ERR_MSG_MAX + 8], red[FARM_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(head, sizeof head, fmt, ap);
	va_end(ap);
	const git_error *ge = git_error_last();
	snprintf(raw, sizeof raw, "%s: %s", head,
		 ge && ge->message ? ge->message : "libgit2 gave no reason");
	redact_text(raw, red, sizeof red, token_env());
	farm_err_set(e, code, "%s", red);
	if (e)
		e->sys_errno = grc;
	return code;
}

/* Printable, bounded, no "..", no leading '-'. what names it in messages. */
static int check_text(const char *s, size_t max, const char *what, struct farm_err *e)
{
	if (!s || !s[0])
		return farm_err_set(e, FARM_EINVAL, "git: empty %s", what);
	size_t n = strnlen(s, max + 1);
	if (n > max)
		return farm_err_set(e, FARM_ELIMIT, "git: %s longer than %zu bytes", what, max);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return farm_err_set(e, FARM_EINVAL, "git: %s has a control character at byte %zu",
					    what, i + 1);
	}
	if (s[0] == '-')
		return farm_err_set(e, FARM_EINVAL, "git: %s may not start with '-'", what);
	return 0;
}

static int check_ref(const char *ref, const char *url, struct farm_err *e)
{
	int rc = check_text(ref, FARM_GIT_REF_MAX - 1, "ref", e);
	if (rc)
		return rc;
	char full[FARM_GIT_REF_MAX + 16];
	int valid = 0;
	snprintf(full, sizeof full, "%s%s", strncmp(ref, "refs/", 5) ? "refs/x/" : "", ref);
	git_libgit2_init();
	int bad = strstr(ref, "..") || git_reference_name_is_valid(&valid, full) < 0 || !valid;
	git_error_clear();
	git_libgit2_shutdown();
	if (bad)
		return farm_err_set(e, FARM_EINVAL,
				    "%s: \"%s\" is not a valid ref name (use a branch, tag, commit id "
				    "or pull/N/head)",
				    url, ref);
	return 0;
}

static int uses_ssh(const char *url)
{
	if (!strncmp(url, "ssh://", 6) || !strncmp(url, "git+ssh://", 10) ||
	    !strncmp(url, "ssh+git://", 10))
		return 1;
	/* scp-like user@host:path: a ':' before any '/' and not a scheme */
	const char *colon = strchr(url, ':');
	const char *slash = strchr(url, '/');
	return colon && (!slash || colon < slash) && strncmp(colon, "://", 3) != 0 && colon != url;
}

/* ---- locks ---- */

/* Take an exclusive flock on path (created if missing); returns the fd in
 * *fd. Waits up to o->lock_wait_ms, watching o->cancel. */
static int lock_take(const struct farm_git_opts *o, const char *path, const char *what, int *fd,
		     struct farm_err *e)
{
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0666);
	if (*fd < 0)
		return farm_err_sys(e, FARM_ESYS, errno, "%s: lock file %s", what, path);
	unsigned wait = o->lock_wait_ms ? o->lock_wait_ms : LOCK_WAIT_DEFAULT_MS;
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	long step = 5;
	int said = 0;
	for (;;) {
		if (is_cancelled(o))
			goto cancelled;
		if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			int err = errno;
			close(*fd);
			*fd = -1;
			return farm_err_sys(e, FARM_ESYS, err, "%s: flock %s", what, path);
		}
		if (!said++)
			logf_(o, "%s: waiting for another mpfarm process (lock %s)", what, path);
		clock_gettime(CLOCK_MONOTONIC, &now);
		long long el = (long long)(now.tv_sec - t0.tv_sec) * 1000 +
			       (now.tv_nsec - t0.tv_nsec) / 1000000;
		if (el >= wait) {
			close(*fd);
			*fd = -1;
			return farm_err_set(e, FARM_EBUSY,
					    "%s: still locked by another mpfarm process after %u ms "
					    "(lock %s); wait for it or raise the lock wait",
					    what, wait, path);
		}
		struct timespec ts = {0, step * 1000000L};
		(void)nanosleep(&ts, NULL);
		step = step * 2 > POLL_MAX_MS ? POLL_MAX_MS : step * 2;
	}
cancelled:
	close(*fd);
	*fd = -1;
	return farm_err_set(e, FARM_EINTR, "%s: cancelled while waiting for its lock", what);
}

/* The cache entry CACHE/<sub>/<base><ext>: dir receives CACHE/<sub>
 * (created when missing), path the entry's path (at most out_len - 1 bytes,
 * the caller's buffer), and *lfd the flock of <path>.lock. Both buffers are
 * FARM_GIT_PATH_MAX bytes. */
static int cache_entry_lock(const struct farm_git_opts *o, const char *sub, const char *base,
			    const char *ext, size_t out_len, const char *what, char *dir, char *path,
			    int *lfd, struct farm_err *e)
{
	char lock[FARM_GIT_PATH_MAX];
	int rc;
	if ((rc = pathf(dir, FARM_GIT_PATH_MAX, e, what, "%s/%s", o->cache_dir, sub)) ||
	    (rc = pathf(path, FARM_GIT_PATH_MAX, e, what, "%s/%s%s", dir, base, ext)) ||
	    (rc = pathf(lock, sizeof lock, e, what, "%s.lock", path)))
		return rc;
	if (strlen(path) >= out_len)
		return farm_err_set(e, FARM_ELIMIT, "%s: path %s longer than the caller's buffer",
				    what, path);
	if ((rc = mkdir_ok(dir, e)))
		return rc;
	return lock_take(o, lock, what, lfd, e);
}

static void lock_drop(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* ---- names ---- */

/* The last path component of url without ".git", reduced to [A-Za-z0-9._-]. */
static void url_name(const char *url, char *out, size_t len)
{
	size_t n = strlen(url);
	while (n && (url[n - 1] == '/' || url[n - 1] == '?'))
		n--;
	size_t b = n;
	while (b && url[b - 1] != '/' && url[b - 1] != ':')
		b--;
	if (n - b > 4 && !strncmp(url + n - 4, ".git", 4))
		n -= 4;
	size_t o = 0;
	for (size_t i = b; i < n && o + 1 < len && o < NAME_LEN_MAX; i++) {
		char c = url[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			 c == '.' || c == '_' || c == '-';
		out[o++] = ok ? c : '_';
	}
	out[o] = '\0';
	if (!o || out[0] == '.' || out[0] == '-')
		snprintf(out, len, "repo");
}

static int sha256_hex16(const char *s, char out[17], struct farm_err *e)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (!EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL) || mdlen < 8)
		return farm_err_set(e, FARM_EIO, "git: sha256 failed");
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* ---- libgit2 callbacks ---- */

static int cb_credentials(git_credential **out, const char *url, const char *user_from_url,
			  unsigned int allowed, void *payload)
{
	struct cb_ctx *c = payload;
	if (is_cancelled(c->o))
		return GIT_EUSER;
	if ((allowed & GIT_CREDENTIAL_SSH_KEY) && !c->tried_agent) {
		c->tried_agent = 1;
		return git_credential_ssh_key_from_agent(out, user_from_url ? user_from_url : "git");
	}
	if ((allowed & GIT_CREDENTIAL_USERNAME) && !c->tried_user) {
		c->tried_user = 1;
		return git_credential_username_new(out, user_from_url ? user_from_url : "git");
	}
	/* The token only over TLS: never in clear over http://. */
	const char *tok = token_env();
	if ((allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) && tok && !c->tried_token && url &&
	    !strncmp(url, "https://", 8)) {
		c->tried_token = 1;
		const char *u = getenv("MPFARM_GIT_USER");
		return git_credential_userpass_plaintext_new(out, u && u[0] ? u : TOKEN_USER_DEFAULT,
							     tok);
	}
	/* Nothing (more) to offer: stop here rather than let libgit2 ask again. */
	c->auth_failed = 1;
	const char *why;
	if (c->ssh)
		why = "authentication failed: no ssh-agent key was accepted (is SSH_AUTH_SOCK set and "
		      "the key loaded? ssh-add -l)";
	else if (c->tried_token)
		why = "credentials rejected: check MPFARM_GIT_TOKEN (read access) and MPFARM_GIT_USER";
	else
		why = "the server asks for credentials: the repository does not exist, or it is "
		      "private and MPFARM_GIT_TOKEN is not set (or the URL is not https://)";
	git_error_set_str(GIT_ERROR_NET, why);
	return GIT_EAUTH;
}

static int cb_transfer(const git_indexer_progress *s, void *payload)
{
	struct cb_ctx *c = payload;
	if (is_cancelled(c->o))
		return GIT_EUSER;
	if (!c->o->progress)
		return 0;
	char what[FARM_GIT_PATH_MAX];
	if (s->received_objects < s->total_objects || s->total_deltas == 0) {
		unsigned step = s->total_objects / 200 + 1;
		if (s->received_objects != s->total_objects &&
		    s->received_objects - c->last_objects < step && c->last_objects)
			return 0;
		c->last_objects = s->received_objects;
		snprintf(what, sizeof what, "fetch %s (%.1f MiB)", c->url,
			 (double)s->received_bytes / (1024.0 * 1024.0));
		c->o->progress(c->o->cb_p, what, s->received_objects, s->total_objects);
	} else {
		unsigned step = s->total_deltas / 200 + 1;
		if (s->indexed_deltas != s->total_deltas &&
		    s->indexed_deltas - c->last_deltas < step && c->last_deltas)
			return 0;
		c->last_deltas = s->indexed_deltas;
		snprintf(what, sizeof what, "fetch %s: resolving deltas", c->url);
		c->o->progress(c->o->cb_p, what, s->indexed_deltas, s->total_deltas);
	}
	return 0;
}

static int cb_sideband(const char *str, int len, void *payload)
{
	(void)str;
	(void)len;
	struct cb_ctx *c = payload;
	return is_cancelled(c->o) ? GIT_EUSER : 0;
}

struct co_ctx {
	const struct farm_git_opts *o;
	const char *label;
};

static void cb_checkout_progress(const char *path, size_t done, size_t total, void *payload)
{
	(void)path;
	struct co_ctx *c = payload;
	if (c->o->progress && (done == total || done % 64 == 0))
		c->o->progress(c->o->cb_p, c->label, done, total);
}

static int cb_checkout_notify(git_checkout_notify_t why, const char *path, const git_diff_file *b,
			      const git_diff_file *t, const git_diff_file *w, void *payload)
{
	(void)why, (void)path, (void)b, (void)t, (void)w;
	struct co_ctx *c = payload;
	return is_cancelled(c->o) ? GIT_EUSER : 0;
}

/* Forced checkout of commit into repo's work tree, HEAD detached at it. */
static int checkout_commit(const struct farm_git_opts *o, git_repository *r, const git_oid *id,
			   const char *label, const char *where, struct farm_err *e)
{
	git_commit *cm = NULL;
	struct co_ctx cc = {o, label};
	int rc = 0, g;
	if ((g = git_commit_lookup(&cm, r, id)) < 0) {
		rc = gerr(e, g == GIT_ENOTFOUND ? FARM_ENOTFOUND : FARM_EIO, g, "%s", where);
		goto out;
	}
	git_checkout_options co;
	git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
	co.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED;
	co.progress_cb = cb_checkout_progress;
	co.progress_payload = &cc;
	co.notify_flags = GIT_CHECKOUT_NOTIFY_UPDATED;
	co.notify_cb = cb_checkout_notify;
	co.notify_payload = &cc;
	g = git_checkout_tree(r, (const git_object *)cm, &co);
	if (g == 0)
		g = git_repository_set_head_detached(r, id);
	if (g < 0)
		rc = is_cancelled(o) ? farm_err_set(e, FARM_EINTR, "%s: cancelled", where)
				     : gerr(e, FARM_EIO, g, "%s: checkout", where);
out:
	git_commit_free(cm);
	return rc;
}

/* Point repo at the objects of mirror (like git clone --shared). */
static int write_alternates(const char *gitdir, const char *mirror, struct farm_err *e)
{
	char path[FARM_GIT_PATH_MAX], real[PATH_MAX], line[PATH_MAX + 16];
	int rc;
	if (!realpath(mirror, real))
		return farm_err_sys(e, FARM_ENOTFOUND, errno, "mirror %s", mirror);
	rc = pathf(path, sizeof path, e, gitdir, "%s/objects/info", gitdir);
	if (rc)
		return rc;
	if (mkdir(path, 0777) != 0 && errno != EEXIST)
		return farm_err_sys(e, FARM_ESYS, errno, "%s", path);
	rc = pathf(path, sizeof path, e, gitdir, "%s/objects/info/alternates", gitdir);
	if (rc)
		return rc;
	int n = snprintf(line, sizeof line, "%s/objects\n", real);
	if (n < 0 || (size_t)n >= sizeof line)
		return farm_err_set(e, FARM_ELIMIT, "mirror path %s too long", real);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0666);
	if (fd < 0)
		return farm_err_sys(e, FARM_ESYS, errno, "%s", path);
	ssize_t w = write(fd, line, (size_t)n);
	int err = errno;
	if (close(fd) != 0 && w == n) {
		w = -1;
		err = errno;
	}
	if (w != n)
		return farm_err_sys(e, FARM_EIO, w < 0 ? err : EIO, "writing %s", path);
	return 0;
}

/* ---- refs ---- */

static int peel_ref(git_repository *r, const char *name, git_oid *out)
{
	git_reference *ref = NULL;
	git_object *obj = NULL;
	int g = git_reference_lookup(&ref, r, name);
	if (g == 0)
		g = git_reference_peel(&obj, ref, GIT_OBJECT_COMMIT);
	if (g == 0)
		git_oid_cpy(out, git_object_id(obj));
	git_object_free(obj);
	git_reference_free(ref);
	return g;
}

/* 0, GIT_ENOTFOUND or GIT_EAMBIGUOUS (or another libgit2 error). */
static int resolve_ref(git_repository *r, const char *ref, git_oid *out)
{
	size_t n = strlen(ref);
	if (n == 40 && is_hex(ref, 40)) {
		git_commit *c = NULL;
		int g = git_oid_fromstr(out, ref);
		if (g == 0)
			g = git_commit_lookup(&c, r, out);
		git_commit_free(c);
		return g == 0 ? 0 : GIT_ENOTFOUND;
	}
	static const char *const prefixes[] = {"refs/", "refs/tags/", "refs/heads/"};
	char name[FARM_GIT_REF_MAX + 16];
	for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
		if (!strncmp(ref, "refs/", 5) && i > 0)
			break;
		snprintf(name, sizeof name, "%s%s", strncmp(ref, "refs/", 5) ? prefixes[i] : "", ref);
		int g = peel_ref(r, name, out);
		if (g != GIT_ENOTFOUND)
			return g;
	}
	if (n >= ABBREV_MIN && n < 40 && is_hex(ref, n)) {
		git_oid pfx;
		git_object *obj = NULL, *peeled = NULL;
		int g = git_oid_fromstrn(&pfx, ref, n);
		if (g == 0)
			g = git_object_lookup_prefix(&obj, r, &pfx, n, GIT_OBJECT_ANY);
		if (g == 0)
			g = git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT);
		if (g == 0)
			git_oid_cpy(out, git_object_id(peeled));
		git_object_free(peeled);
		git_object_free(obj);
		return g == GIT_EAMBIGUOUS ? g : g ? GIT_ENOTFOUND : 0;
	}
	return GIT_ENOTFOUND;
}

/* The closest branch or tag name to ref in r, copied into out ("" if none). */
static void suggest_ref(git_repository *r, const char *ref, char *out, size_t len)
{
	out[0] = '\0';
	const char *want = ref;
	if (!strncmp(want, "refs/heads/", 11))
		want += 11;
	else if (!strncmp(want, "refs/tags/", 10))
		want += 10;
	char **names = NULL;
	size_t n = 0;
	static const char *const globs[] = {"refs/heads/*", "refs/tags/*"};
	for (size_t gi = 0; gi < 2; gi++) {
		git_reference_iterator *it = NULL;
		const char *name;
		if (git_reference_iterator_glob_new(&it, r, globs[gi]) < 0)
			continue;
		while (n < SUGGEST_REFS_MAX && git_reference_next_name(&name, it) == 0) {
			char **nn = realloc(names, (n + 2) * sizeof *names);
			if (!nn)
				break;
			names = nn;
			names[n] = strdup(name + (gi ? 10 : 11));
			if (!names[n])
				break;
			names[++n] = NULL;
		}
		git_reference_iterator_free(it);
	}
	if (names) {
		const char *best = farm_did_you_mean(want, (const char *const *)names);
		if (best)
			snprintf(out, len, "%s", best);
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
	git_error_clear();
}

/* ---- fetch ---- */

/* The extra refspec for refs outside heads and tags (pull/N/head,
 * refs/merge-requests/N/head, ...), or "" when the globs cover ref. */
static void extra_refspec(const char *ref, char *out, size_t len)
{
	out[0] = '\0';
	if (!strncmp(ref, "refs/", 5)) {
		if (strncmp(ref, "refs/heads/", 11) && strncmp(ref, "refs/tags/", 10))
			snprintf(out, len, "+%s:%s", ref, ref);
	} else if (!strncmp(ref, "pull/", 5) || !strncmp(ref, "merge-requests/", 15)) {
		snprintf(out, len, "+refs/%s:refs/%s", ref, ref);
	}
}

static int fetch_err(struct farm_err *e, const struct cb_ctx *c, int g, const char *url)
{
	if (is_cancelled(c->o))
		return farm_err_set(e, FARM_EINTR, "fetch %s: cancelled", url);
	const git_error *ge = git_error_last();
	const char *m = ge && ge->message ? ge->message : "";
	if (c->auth_failed)
		/* no credential offered at all: most likely no such repository */
		return gerr(e, c->tried_agent || c->tried_token ? FARM_EIO : FARM_ENOTFOUND, g,
			    "fetch %s", url);
	if (g == GIT_EAUTH)
		return gerr(e, FARM_EIO, g, "fetch %s", url);
	if (g == GIT_ECERTIFICATE)
		return gerr(e, FARM_EIO, g, "fetch %s (server certificate rejected)", url);
	if (g == GIT_ENOTFOUND || strcasestr(m, "not found") || strstr(m, " 404") ||
	    strcasestr(m, "no such file") || strcasestr(m, "does not appear to be a git") ||
	    strcasestr(m, "could not find repository"))
		return gerr(e, FARM_ENOTFOUND, g,
			    "repository %s not found (check the URL in the inventory)", url);
	return gerr(e, FARM_EIO, g,
		    "fetch %s failed (check the network or the URL, or run offline with the "
		    "cached mirror)",
		    url);
}

static int do_fetch(const struct farm_git_opts *o, git_repository *r, const char *url,
		    const char *url_red, const char *ref, struct farm_git_fetch_stats *st,
		    struct farm_err *e)
{
	git_remote *rem = NULL;
	struct cb_ctx c = {.o = o, .url = url_red, .ssh = uses_ssh(url)};
	char extra[FARM_GIT_REF_MAX * 2 + 32];
	char *specs[3] = {"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*", extra};
	int rc = 0, g;

	extra_refspec(ref, extra, sizeof extra);
	struct stat sst;
	if (!strstr(url, "://") && !c.ssh && (stat(url, &sst) != 0 || !S_ISDIR(sst.st_mode))) {
		/* libgit2 takes a missing local path for an unknown protocol */
		rc = farm_err_sys(e, FARM_ENOTFOUND, ENOENT,
				  "repository %s not found (check the URL in the inventory)", url_red);
		goto out;
	}
	git_strarray sa = {specs, extra[0] ? 3 : 2};
	if ((g = git_remote_create_anonymous(&rem, r, url)) < 0) {
		rc = gerr(e, FARM_EINVAL, g, "repository URL %s", url_red);
		goto out;
	}
	git_fetch_options fo;
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	fo.prune = GIT_FETCH_PRUNE;
	fo.update_fetchhead = 0;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE; /* the refspec takes them all */
	fo.proxy_opts.type = GIT_PROXY_AUTO;
	fo.callbacks.credentials = cb_credentials;
	fo.callbacks.transfer_progress = cb_transfer;
	fo.callbacks.sideband_progress = cb_sideband;
	fo.callbacks.payload = &c;
	logf_(o, "fetch %s", url_red);
	g = git_remote_fetch(rem, &sa, &fo, NULL);
	if (g < 0) {
		rc = fetch_err(e, &c, g, url_red);
		goto out;
	}
	const git_indexer_progress *s = git_remote_stats(rem);
	st->fetched = 1;
	st->objects = s->received_objects;
	st->bytes = s->received_bytes;
	if (s->received_objects)
		logf_(o, "fetch %s: %u objects, %.1f MiB", url_red, s->received_objects,
		      (double)s->received_bytes / (1024.0 * 1024.0));
	else
		logf_(o, "fetch %s: up to date", url_red);
out:
	git_remote_free(rem);
	return rc;
}

/* A new repository in dir/tmp-<base>-XXXXXX (path in tmp, FARM_GIT_PATH_MAX
 * bytes; "" when none was made), after removing the ones a dead process
 * left. Called with the lock of <base> held. */
static int tmp_repo_new(const struct farm_git_opts *o, const char *dir, const char *base,
			int bare, const char *what, char *tmp, git_repository **r,
			struct farm_err *e)
{
	char prefix[NAME_LEN_MAX + 40];
	int rc, g;
	tmp[0] = '\0';
	snprintf(prefix, sizeof prefix, "tmp-%s-", base);
	rm_stale(dir, prefix, o);
	if ((rc = pathf(tmp, FARM_GIT_PATH_MAX, e, what, "%s/%sXXXXXX", dir, prefix)))
		return rc;
	if (!mkdtemp(tmp)) {
		rc = farm_err_sys(e, FARM_ESYS, errno, "%s: mkdtemp %s", what, tmp);
		tmp[0] = '\0';
		return rc;
	}
	if ((g = git_repository_init(r, tmp, (unsigned)bare)) < 0)
		return gerr(e, FARM_EIO, g, "%s: init %s", what, tmp);
	return 0;
}

/* ---- public: mirror ---- */

static int check_opts(const struct farm_git_opts *o, struct farm_err *e)
{
	if (!o || !o->cache_dir || !o->cache_dir[0])
		return farm_err_set(e, FARM_EINVAL, "git: no cache directory given");
	if (strnlen(o->cache_dir, FARM_GIT_PATH_MAX) >= FARM_GIT_PATH_MAX - 128)
		return farm_err_set(e, FARM_ELIMIT, "git: cache directory path too long");
	if (is_cancelled(o))
		return farm_err_set(e, FARM_EINTR, "git: cancelled");
	return 0;
}

/* Open mirror (or make it in a temporary directory when missing and fetch
 * into it), fetch unless not needed, resolve ref. Called with the lock held. */
static int mirror_locked(const struct farm_git_opts *o, const char *url, const char *url_red,
			 const char *ref, const char *gitdir, const char *base, const char *path,
			 git_oid *id, struct farm_git_fetch_stats *st, struct farm_err *e)
{
	git_repository *r = NULL;
	char tmp[FARM_GIT_PATH_MAX];
	int rc = 0, g, exists = is_dir(path);

	tmp[0] = '\0';
	if (!exists && o->offline) {
		rc = farm_err_set(e, FARM_ENOTFOUND,
				  "%s: no mirror in the cache (%s) and offline; run once online first",
				  url_red, path);
		goto out;
	}
	if (exists) {
		if ((g = git_repository_open_bare(&r, path)) < 0) {
			rc = gerr(e, FARM_EIO, g, "mirror %s of %s is damaged (remove it to start afresh)",
				  path, url_red);
			goto out;
		}
		if (o->offline || (is_commit40(ref) && resolve_ref(r, ref, id) == 0))
			goto resolve; /* nothing to fetch */
	} else {
		char what[FARM_GIT_URL_MAX + 16];
		snprintf(what, sizeof what, "mirror of %s", url_red);
		if ((rc = tmp_repo_new(o, gitdir, base, 1, what, tmp, &r, e)))
			goto out;
		git_config *cfg = NULL;
		if (git_repository_config(&cfg, r) == 0) {
			(void)git_config_set_string(cfg, "mpfarm.url", url_red);
			git_config_free(cfg);
		}
		logf_(o, "new mirror of %s: %s", url_red, path);
	}
	if ((rc = do_fetch(o, r, url, url_red, ref, st, e)))
		goto out;
	if (!exists) {
		git_repository_free(r);
		r = NULL;
		if (rename(tmp, path) != 0) {
			rc = farm_err_sys(e, FARM_ESYS, errno, "mirror of %s: rename %s", url_red, tmp);
			goto out;
		}
		tmp[0] = '\0';
		if ((g = git_repository_open_bare(&r, path)) < 0) {
			rc = gerr(e, FARM_EIO, g, "mirror %s", path);
			goto out;
		}
	}
resolve:
	g = resolve_ref(r, ref, id);
	if (g == GIT_EAMBIGUOUS) {
		rc = farm_err_set(e, FARM_EINVAL,
				  "%s: abbreviated commit id \"%s\" is ambiguous; give more digits",
				  url_red, ref);
	} else if (g == GIT_ENOTFOUND) {
		char hint[FARM_GIT_REF_MAX + 40] = "";
		char best[FARM_GIT_REF_MAX];
		suggest_ref(r, ref, best, sizeof best);
		if (best[0])
			snprintf(hint, sizeof hint, " (did you mean \"%s\"?)", best);
		if (is_commit40(ref))
			rc = farm_err_set(e, FARM_ENOTFOUND,
					  "%s: commit %s not found%s (it must be reachable from a "
					  "branch or tag%s)",
					  url_red, ref, hint, o->offline ? "; offline: nothing fetched" : "");
		else
			rc = farm_err_set(e, FARM_ENOTFOUND,
					  "%s: no branch, tag or commit \"%s\"%s%s; check the ref in the "
					  "inventory",
					  url_red, ref, hint,
					  o->offline ? " (offline: the cached mirror was not fetched)" : "");
	} else if (g < 0) {
		rc = gerr(e, FARM_EIO, g, "%s: resolving \"%s\"", url_red, ref);
	}
out:
	git_repository_free(r);
	if (tmp[0])
		rm_tree(tmp);
	return rc;
}

int farm_git_mirror(const struct farm_git_opts *o, const char *url, const char *ref,
		    char *mirror, size_t mirror_len, char commit[41],
		    struct farm_git_fetch_stats *st, struct farm_err *e)
{
	char url_red[FARM_GIT_URL_MAX], base[NAME_LEN_MAX + 24], hash[17], name[NAME_LEN_MAX + 1];
	char gitdir[FARM_GIT_PATH_MAX], path[FARM_GIT_PATH_MAX];
	struct farm_git_fetch_stats dummy;
	git_oid id;
	int rc, lfd = -1;

	if (!st)
		st = &dummy;
	memset(st, 0, sizeof *st);
	if (mirror && mirror_len)
		mirror[0] = '\0';
	if (commit)
		commit[0] = '\0';
	if ((rc = check_opts(o, e)))
		return rc;
	if (!mirror || !mirror_len || !commit)
		return farm_err_set(e, FARM_EINVAL, "git: no place for the result");
	if ((rc = check_text(url, FARM_GIT_URL_MAX - 1, "repository URL", e)))
		return rc;
	farm_git_redact(url, url_red, sizeof url_red);
	if ((rc = check_ref(ref, url_red, e)))
		return rc;

	git_libgit2_init();
	url_name(url_red, name, sizeof name);
	if ((rc = sha256_hex16(url_red, hash, e)))
		goto out;
	snprintf(base, sizeof base, "%s-%s", name, hash);
	char what[FARM_GIT_URL_MAX + 16];
	snprintf(what, sizeof what, "mirror of %s", url_red);
	if ((rc = cache_entry_lock(o, "git", base, ".git", mirror_len, what, gitdir, path, &lfd, e)))
		goto out;
	rc = mirror_locked(o, url, url_red, ref, gitdir, base, path, &id, st, e);
	if (rc)
		goto out;
	git_oid_tostr(commit, 41, &id);
	memcpy(mirror, path, strlen(path) + 1);
	logf_(o, "%s: %s is %.12s%s", url_red, ref, commit,
	      st->fetched ? "" : (o->offline ? " (offline)" : " (no fetch needed)"));
out:
	lock_drop(lfd);
	git_libgit2_shutdown();
	return rc;
}

/* ---- public: checkout ---- */

/* <name> of a mirror path ".../<name>-<hash16>.git". */
static void mirror_name(const char *mirror, char *out, size_t len)
{
	char tmp[NAME_LEN_MAX + 24 + 8];
	size_t n = strlen(mirror);
	while (n > 1 && mirror[n - 1] == '/')
		n--;
	size_t b = n;
	while (b && mirror[b - 1] != '/')
		b--;
	snprintf(tmp, sizeof tmp, "%.*s", (int)(n - b), mirror + b);
	size_t tl = strlen(tmp);
	if (tl > 4 && !strcmp(tmp + tl - 4, ".git"))
		tmp[tl -= 4] = '\0';
	if (tl > 17 && tmp[tl - 17] == '-' && is_hex(tmp + tl - 16, 16))
		tmp[tl - 17] = '\0';
	url_name(tmp, out, len);
}

/* An existing checkout must be at commit (a 48-bit prefix clash, or a
 * damaged directory, would be). */
static int checkout_verify(const char *dir, const git_oid *id, struct farm_err *e)
{
	git_repository *r = NULL;
	git_oid head;
	int g = git_repository_open(&r, dir);
	if (g == 0)
		g = git_reference_name_to_id(&head, r, "HEAD");
	git_repository_free(r);
	if (g < 0)
		return gerr(e, FARM_EIO, g, "checkout %s is damaged (remove it to start afresh)", dir);
	if (!git_oid_equal(&head, id))
		return farm_err_set(e, FARM_EIO,
				    "checkout %s is not at the expected commit (remove it to start "
				    "afresh)",
				    dir);
	return 0;
}

static int checkout_locked(const struct farm_git_opts *o, const char *mirror, const git_oid *id,
			   const char *srcdir, const char *base, const char *final,
			   struct farm_err *e)
{
	git_repository *r = NULL;
	char tmp[FARM_GIT_PATH_MAX], gitdir[FARM_GIT_PATH_MAX], label[FARM_GIT_PATH_MAX];
	int rc = 0, g;

	tmp[0] = '\0';
	if (is_dir(final))
		return checkout_verify(final, id, e);
	char what[FARM_GIT_PATH_MAX + 16];
	snprintf(what, sizeof what, "checkout %s", final);
	if ((rc = tmp_repo_new(o, srcdir, base, 0, what, tmp, &r, e)))
		goto out;
	git_repository_free(r);
	r = NULL;
	if ((rc = pathf(gitdir, sizeof gitdir, e, final, "%s/.git", tmp)) ||
	    (rc = write_alternates(gitdir, mirror, e)))
		goto out;
	if ((g = git_repository_open(&r, tmp)) < 0) {
		rc = gerr(e, FARM_EIO, g, "checkout %s: open", final);
		goto out;
	}
	snprintf(label, sizeof label, "checkout %s", base);
	char where[FARM_GIT_PATH_MAX + 64];
	snprintf(where, sizeof where, "checkout %s from mirror %s", base, mirror);
	if ((rc = checkout_commit(o, r, id, label, where, e)))
		goto out;
	git_repository_free(r);
	r = NULL;
	if (rename(tmp, final) != 0) {
		rc = farm_err_sys(e, FARM_ESYS, errno, "checkout %s: rename", final);
		goto out;
	}
	tmp[0] = '\0';
	logf_(o, "checkout %s: ready", final);
out:
	git_repository_free(r);
	if (tmp[0])
		rm_tree(tmp);
	return rc;
}

int farm_git_checkout(const struct farm_git_opts *o, const char *mirror, const char *commit,
		      char *dir, size_t dir_len, struct farm_err *e)
{
	char name[NAME_LEN_MAX + 1], base[NAME_LEN_MAX + 16];
	char srcdir[FARM_GIT_PATH_MAX], final[FARM_GIT_PATH_MAX];
	git_oid id;
	int rc, lfd = -1;

	if (dir && dir_len)
		dir[0] = '\0';
	if ((rc = check_opts(o, e)))
		return rc;
	if (!dir || !dir_len)
		return farm_err_set(e, FARM_EINVAL, "git: no place for the result");
	if ((rc = check_text(mirror, FARM_GIT_PATH_MAX - 1, "mirror path", e)))
		return rc;
	if (!is_commit40(commit))
		return farm_err_set(e, FARM_EINVAL, "checkout: \"%.60s\" is not a 40-digit commit id",
				    commit ? commit : "");
	git_libgit2_init();
	if (git_oid_fromstr(&id, commit) < 0) {
		rc = farm_err_set(e, FARM_EINVAL, "checkout: bad commit id %s", commit);
		goto out;
	}
	mirror_name(mirror, name, sizeof name);
	snprintf(base, sizeof base, "%s-%.12s", name, commit);
	for (char *p = base; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	char what[FARM_GIT_PATH_MAX + 16];
	snprintf(what, sizeof what, "checkout %s", base);
	if ((rc = cache_entry_lock(o, "src", base, "", dir_len, what, srcdir, final, &lfd, e)))
		goto out;
	if ((rc = checkout_locked(o, mirror, &id, srcdir, base, final, e)))
		goto out;
	memcpy(dir, final, strlen(final) + 1);
out:
	lock_drop(lfd);
	git_libgit2_shutdown();
	return rc;
}

/* ---- public: submodules ---- */

/* A relative submodule URL ("./x", "../x") against the superproject's URL,
 * as git resolves it. */
static int resolve_url(const char *super, const char *rel, char *out, size_t len,
		       struct farm_err *e)
{
	size_t n = strnlen(super, len);
	if (n >= len)
		return farm_err_set(e, FARM_ELIMIT, "submodule URL: superproject URL too long");
	memcpy(out, super, n);
	out[n] = '\0';
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
	size_t root = 0; /* first byte of the path part, which "../" may not climb above */
	const char *sch = strstr(out, "://");
	if (sch) {
		const char *sl = strchr(sch + 3, '/');
		root = sl ? (size_t)(sl - out) : n;
	} else if (uses_ssh(out)) {
		root = (size_t)(strchr(out, ':') - out) + 1;
	}
	for (;;) {
		if (!strncmp(rel, "./", 2)) {
			rel += 2;
		} else if (!strncmp(rel, "../", 3)) {
			rel += 3;
			size_t k = n;
			while (k > root && out[k - 1] != '/')
				k--;
			if (k == root && n == root)
				return farm_err_set(e, FARM_EINVAL,
						    "submodule URL climbs above the superproject's "
						    "host");
			n = k > root ? k - 1 : root;
			out[n] = '\0';
		} else {
			break;
		}
	}
	const char *sep = (n && (out[n - 1] == '/' || out[n - 1] == ':')) ? "" : "/";
	int w = snprintf(out + n, len - n, "%s%s", sep, rel);
	if (w < 0 || (size_t)w >= len - n)
		return farm_err_set(e, FARM_ELIMIT, "submodule URL too long");
	return 0;
}

/* The submodule is checked out at want with a clean work tree (untracked
 * files aside). */
static int sub_is_ready(git_repository *r, git_submodule *sm, const git_oid *want)
{
	git_repository *sub = NULL;
	git_oid head;
	unsigned int st = 0;
	int ok = git_submodule_open(&sub, sm) == 0 &&
		 git_reference_name_to_id(&head, sub, "HEAD") == 0 && git_oid_equal(&head, want) &&
		 git_submodule_status(&st, r, git_submodule_name(sm), GIT_SUBMODULE_IGNORE_UNTRACKED) ==
			 0 &&
		 !(st & (GIT_SUBMODULE_STATUS_WD_INDEX_MODIFIED | GIT_SUBMODULE_STATUS_WD_WD_MODIFIED |
			 GIT_SUBMODULE_STATUS_WD_MODIFIED | GIT_SUBMODULE_STATUS_WD_UNINITIALIZED));
	git_repository_free(sub);
	git_error_clear();
	return ok;
}

static int collect_sub_path(git_submodule *sm, const char *name, void *payload)
{
	(void)name;
	char **list = payload;
	const char *p = git_submodule_path(sm);
	size_t have = strlen(list[0]), cap = FARM_ERR_MSG_MAX / 2;
	if (p && have + strlen(p) + 3 < cap)
		snprintf(list[0] + have, cap - have, "%s%s", have ? ", " : "", p);
	return 0;
}

static int sub_not_found(git_repository *r, const char *dir, const char *path, struct farm_err *e)
{
	char names[FARM_ERR_MSG_MAX / 2] = "";
	char *list[1] = {names};
	(void)git_submodule_foreach(r, collect_sub_path, list);
	git_error_clear();
	return farm_err_set(e, FARM_ENOTFOUND,
			    "%s is not a submodule of checkout %s (its submodules: %s); check the "
			    "port's submodule list",
			    path, dir, names[0] ? names : "none");
}

static int check_sub_path(const char *p, struct farm_err *e)
{
	int rc = check_text(p, FARM_GIT_PATH_MAX / 2, "submodule path", e);
	if (rc)
		return rc;
	if (p[0] == '/' || !strcmp(p, "..") || !strncmp(p, "../", 3) || strstr(p, "/../") ||
	    (strlen(p) >= 3 && !strcmp(p + strlen(p) - 3, "/..")))
		return farm_err_set(e, FARM_EINVAL,
				    "submodule path \"%s\" must be relative and stay inside the "
				    "checkout",
				    p);
	return 0;
}

/* Make the submodule sm of r a repository sharing mirror's objects, checked
 * out at want. Anything a failed earlier attempt left is removed first. */
static int sub_make(const struct farm_git_opts *o, git_repository *r, git_submodule *sm,
		    const char *dir, const char *mirror, const git_oid *want, struct farm_err *e)
{
	git_repository *sub = NULL;
	git_config *cfg = NULL, *local = NULL;
	const char *path = git_submodule_path(sm), *name = git_submodule_name(sm);
	char p[FARM_GIT_PATH_MAX], key[FARM_GIT_PATH_MAX], gitdir[FARM_GIT_PATH_MAX];
	char label[FARM_GIT_PATH_MAX], where[FARM_GIT_PATH_MAX];
	int rc = 0, g;

	/* leftovers of an earlier attempt (libgit2 keeps the repository in
	 * .git/modules/<path>) */
	if ((rc = check_sub_path(path, e)) || (rc = check_sub_path(name, e)))
		goto out;
	const char *const leftovers[] = {path, name};
	for (size_t i = 0; i < 2; i++) {
		if ((rc = pathf(p, sizeof p, e, path, "%s/.git/modules/%s", dir, leftovers[i])))
			goto out;
		if (is_dir(p))
			rm_tree(p);
	}
	if ((rc = pathf(p, sizeof p, e, path, "%s/%s", dir, path)))
		goto out;
	rm_tree(p);
	if ((g = git_submodule_init(sm, 1)) < 0) {
		rc = gerr(e, FARM_EIO, g, "submodule %s: init", path);
		goto out;
	}
	/* The URL in .git/config, not .gitmodules: the tree stays clean. */
	if ((rc = pathf(key, sizeof key, e, path, "submodule.%s.url", name)))
		goto out;
	if ((g = git_repository_config(&cfg, r)) < 0 ||
	    (g = git_config_open_level(&local, cfg, GIT_CONFIG_LEVEL_LOCAL)) < 0 ||
	    (g = git_config_set_string(local, key, mirror)) < 0) {
		rc = gerr(e, FARM_EIO, g, "submodule %s: setting its URL in %s/.git/config", path, dir);
		goto out;
	}
	if ((g = git_submodule_repo_init(&sub, sm, 1)) < 0) {
		rc = gerr(e, FARM_EIO, g, "submodule %s: creating its repository", path);
		goto out;
	}
	snprintf(gitdir, sizeof gitdir, "%s", git_repository_path(sub));
	git_repository_free(sub);
	sub = NULL;
	if ((rc = write_alternates(gitdir, mirror, e)))
		goto out;
	if ((g = git_submodule_open(&sub, sm)) < 0) {
		rc = gerr(e, FARM_EIO, g, "submodule %s: open", path);
		goto out;
	}
	snprintf(label, sizeof label, "checkout %s", path);
	if (snprintf(where, sizeof where, "submodule %.200s from mirror %s", path, mirror) < 0)
		where[0] = '\0';
	rc = checkout_commit(o, sub, want, label, where, e);
out:
	git_repository_free(sub);
	git_config_free(local);
	git_config_free(cfg);
	return rc;
}

static int sub_one(const struct farm_git_opts *o, git_repository *r, const char *dir,
		   const char *super_url, const char *path, struct farm_err *e)
{
	git_submodule *sm = NULL;
	char hex[41], got[41], url[FARM_GIT_URL_MAX], url_red[FARM_GIT_URL_MAX];
	char mirror[FARM_GIT_PATH_MAX];
	int rc = 0, g;

	if (is_cancelled(o))
		return farm_err_set(e, FARM_EINTR, "submodule %s: cancelled", path);
	g = git_submodule_lookup(&sm, r, path);
	if (g == GIT_ENOTFOUND || (g == 0 && strcmp(git_submodule_path(sm), path) != 0)) {
		rc = sub_not_found(r, dir, path, e);
		goto out;
	}
	if (g < 0) {
		rc = gerr(e, g == GIT_EEXISTS ? FARM_ENOTFOUND : FARM_EIO, g, "submodule %s of %s",
			  path, dir);
		goto out;
	}
	const git_oid *want = git_submodule_head_id(sm);
	if (!want) {
		rc = farm_err_set(e, FARM_ENOTFOUND,
				  "submodule %s is in .gitmodules but checkout %s records no commit "
				  "for it",
				  path, dir);
		goto out;
	}
	git_oid_tostr(hex, sizeof hex, want);
	if (sub_is_ready(r, sm, want)) {
		logf_(o, "submodule %s: at %.12s already", path, hex);
		goto out;
	}
	const char *su = git_submodule_url(sm);
	if (!su || !su[0]) {
		rc = farm_err_set(e, FARM_EINVAL, "submodule %s: no url in .gitmodules", path);
		goto out;
	}
	if (!strncmp(su, "./", 2) || !strncmp(su, "../", 3)) {
		if (!super_url || !super_url[0]) {
			rc = farm_err_set(e, FARM_EINVAL,
					  "submodule %s: relative URL %s needs the superproject's URL",
					  path, su);
			goto out;
		}
		if ((rc = resolve_url(super_url, su, url, sizeof url, e)))
			goto out;
	} else {
		if ((rc = check_text(su, FARM_GIT_URL_MAX - 1, "submodule URL", e)))
			goto out;
		snprintf(url, sizeof url, "%s", su);
	}
	farm_git_redact(url, url_red, sizeof url_red);
	if ((rc = farm_git_mirror(o, url, hex, mirror, sizeof mirror, got, NULL, e))) {
		farm_err_prefix(e, "submodule %s", path);
		goto out;
	}
	if ((rc = sub_make(o, r, sm, dir, mirror, want, e)))
		goto out;
	logf_(o, "submodule %s: %s at %.12s", path, url_red, hex);
out:
	git_submodule_free(sm);
	return rc;
}

int farm_git_submodules(const struct farm_git_opts *o, const char *dir, const char *super_url,
			const char *const *paths, size_t n, struct farm_err *e)
{
	git_repository *r = NULL;
	char lock[FARM_GIT_PATH_MAX];
	int rc, g, lfd = -1;

	if ((rc = check_opts(o, e)))
		return rc;
	if ((rc = check_text(dir, FARM_GIT_PATH_MAX - 16, "checkout directory", e)))
		return rc;
	if (n && !paths)
		return farm_err_set(e, FARM_EINVAL, "submodules: no paths given");
	if (n > SUBMODULES_MAX)
		return farm_err_set(e, FARM_ELIMIT, "submodules: more than %d asked for",
				    SUBMODULES_MAX);
	for (size_t i = 0; i < n; i++)
		if ((rc = check_sub_path(paths[i], e)))
			return rc;
	if (super_url && (rc = check_text(super_url, FARM_GIT_URL_MAX - 1, "repository URL", e)))
		return rc;
	if (!n)
		return 0;
	git_libgit2_init();
	if ((rc = pathf(lock, sizeof lock, e, dir, "%s.lock", dir)))
		goto out;
	char what[FARM_GIT_PATH_MAX + 16];
	snprintf(what, sizeof what, "submodules of %s", dir);
	if ((rc = lock_take(o, lock, what, &lfd, e)))
		goto out;
	if ((g = git_repository_open(&r, dir)) < 0) {
		rc = gerr(e, g == GIT_ENOTFOUND ? FARM_ENOTFOUND : FARM_EIO, g, "checkout %s", dir);
		goto out;
	}
	for (size_t i = 0; i < n && !rc; i++)
		rc = sub_one(o, r, dir, super_url, paths[i], e);
out:
	git_repository_free(r);
	lock_drop(lfd);
	git_libgit2_shutdown();
	return rc;
}
