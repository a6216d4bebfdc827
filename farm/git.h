/* mpfarm: MicroPython source checkouts with libgit2.
 *
 * Layout under the cache directory:
 *   CACHE/git/<name>-<hash16>.git   one bare mirror per repository URL
 *                                   (<name>: the URL's last path component,
 *                                   sanitised; <hash16>: sha256 of the URL)
 *   CACHE/git/<...>.lock            flock: one process updates a mirror at a time
 *   CACHE/src/<name>-<commit12>     one clean checkout per commit, shared by
 *                                   every board of that commit
 *   CACHE/src/<...>.lock            flock: one process prepares a checkout at a time
 *
 * A mirror is fetched (never re-cloned) on every farm_git_mirror call:
 * branches and tags (all of refs/heads and refs/tags, pruned), plus the asked
 * ref itself when it is another ref (pull/123/head, refs/merge-requests/7/head).
 * A full 40-digit commit id already in the mirror needs no fetch. With
 * offline set, nothing is fetched and the mirror must already hold the ref.
 *
 * A checkout is made in a temporary directory and renamed into place when
 * complete, so a half-made checkout is never used. Submodules are initialised
 * and updated through libgit2, each from its own mirror in CACHE/git (so a
 * submodule is fetched once for all commits that use it).
 *
 * Credentials: ssh:// and scp-like URLs use ssh-agent; https:// uses
 * $MPFARM_GIT_TOKEN as the password (user $MPFARM_GIT_USER, default
 * "x-access-token") when set. One attempt per credential type (no loop on a
 * rejected credential). Credentials and URL user:password parts are never
 * printed or logged.
 *
 * Notes on this implementation:
 * - <hash16> is taken over the redacted URL, so the same repository reached
 *   with other credentials shares its mirror.
 * - A checkout is a non-bare repository whose objects/info/alternates points
 *   at the mirror's objects (like git clone --shared): never gc a mirror
 *   with the git CLI while checkouts use it. Submodules are repositories in
 *   the checkout's .git/modules/<path> sharing their own mirror's objects the
 *   same way; their URL in the checkout's .git/config points at that mirror
 *   (.gitmodules stays as committed, so the tree is clean).
 * - libgit2 1.5 has no network timeouts: a stalled server is only left when
 *   *cancel is set (checked in the transfer and sideband callbacks, which run
 *   whenever data arrives) or when the OS gives up on the connection.
 * - Progress: what is "fetch URL (N.N MiB)" with done/total in objects, then
 *   "fetch URL: resolving deltas", then "checkout NAME" in files.
 * - Refs are resolved as git does: refs/<ref>, refs/tags/<ref>,
 *   refs/heads/<ref>, then an abbreviated commit id (at least 4 digits).
 *   A bare commit id not reachable from a branch or tag cannot be fetched
 *   (libgit2 1.5 fetches refs only). */
#ifndef FARM_GIT_H
#define FARM_GIT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define FARM_GIT_PATH_MAX 4096
#define FARM_GIT_REF_MAX 256   /* a ref has at most FARM_GIT_REF_MAX - 1 bytes */
#define FARM_GIT_URL_MAX 2048  /* a repository URL has at most FARM_GIT_URL_MAX - 1 bytes */

struct farm_git_opts {
	const char *cache_dir;     /* must exist */
	int offline;               /* fetch nothing */
	const volatile sig_atomic_t *cancel; /* non-zero: stop at once (FARM_EINTR) */
	unsigned lock_wait_ms;     /* wait for another process's lock; 0 = 600000 */
	/* Transfer progress ("fetch URL", objects or bytes); may be NULL. */
	void (*progress)(void *p, const char *what, uint64_t done, uint64_t total);
	/* One line per step ("fetch URL: 1234 objects, 5.6 MiB", "checkout ..."); may be NULL. */
	void (*log)(void *p, const char *line);
	void *cb_p;
};

struct farm_git_fetch_stats {
	int fetched;               /* 0: no fetch was needed (commit id present, or offline) */
	uint64_t objects;          /* objects received */
	uint64_t bytes;            /* bytes received */
};

/* Make or update the mirror of url and resolve ref (a branch, tag, full or
 * abbreviated commit id, pull/N/head or any refs/... name) to a commit id.
 * mirror receives the mirror's path. An unknown repository or ref is
 * FARM_ENOTFOUND naming the URL (redacted) and the ref, with the closest
 * branch or tag names when there are any. */
int farm_git_mirror(const struct farm_git_opts *o, const char *url, const char *ref,
		    char *mirror, size_t mirror_len, char commit[41],
		    struct farm_git_fetch_stats *st, struct farm_err *e);

/* The clean checkout of commit from mirror (made once; reused afterwards).
 * dir receives its path. */
int farm_git_checkout(const struct farm_git_opts *o, const char *mirror, const char *commit,
		      char *dir, size_t dir_len, struct farm_err *e);

/* Initialise and update the submodules at paths[0..n) (paths relative to the
 * checkout, as in .gitmodules) of checkout dir, each at the commit the
 * checkout records, from its own mirror. A path that is not a submodule is
 * FARM_ENOTFOUND. Already-present submodules at the right commit are left
 * alone. Relative submodule URLs ("../foo.git") are resolved against
 * super_url. */
int farm_git_submodules(const struct farm_git_opts *o, const char *dir, const char *super_url,
			const char *const *paths, size_t n, struct farm_err *e);

/* url without user:password@, for messages. */
void farm_git_redact(const char *url, char *out, size_t len);

#endif
