/* mpfarm: the firmware cache, shared by every mpfarm process of a user.
 *
 * Layout of the cache directory ($XDG_CACHE_HOME/mpfarm, ~/.cache/mpfarm,
 * or --cache-dir):
 *   images/<sha256>.<ext>   content-addressed image files (sha256 of the file)
 *   index/<keyhash>         one entry per build key or download URL: which
 *                           image it gave, where from, when (mtime = last use)
 *   logs/<keyhash>.log      the build or download log of that entry
 *   locks/<name>.lock       flock(2) locks
 *   tmp/                    files being written; renamed into place when whole
 *   git/, src/              source mirrors and checkouts (farm/git.h)
 *   cache.lock              runs hold it shared, prune holds it exclusive
 *
 * Safety with several processes: an image is written into tmp/, fsync()ed and
 * rename()d to its final name; an index entry likewise. A reader checks the
 * image's sha256 against its name before using it, so a damaged file is
 * never flashed (it is dropped and made again). Per-key locks make a second
 * process wait for the first one's build or download and then use its result.
 *
 * No global state; struct farm_fwcache is the caller's. */
#ifndef FARM_FWCACHE_H
#define FARM_FWCACHE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"

#define FARM_FWCACHE_PATH_MAX 4096
#define FARM_FWCACHE_TEXT_MAX 3072

struct farm_fwcache {
	char dir[FARM_FWCACHE_PATH_MAX];
	int run_lock_fd;        /* cache.lock held shared (runs) or exclusive (prune); -1 none */
};

/* One index entry. Text fields are bounded and single-line. */
struct farm_fwcache_entry {
	char keyhash[65];
	char key[FARM_FWCACHE_TEXT_MAX];    /* the human-readable key */
	char kind[16];                      /* "build" or "fetch" */
	char sha256[65];                    /* of the image file */
	char format[16];                    /* image format name ("ihex", "bin", ...) */
	unsigned long base;                 /* load address (format bin) */
	int has_base;
	uint64_t size;
	char source[FARM_FWCACHE_TEXT_MAX]; /* URL or repository (redacted) */
	char ref[256];
	char commit[41];
	time_t created;
	time_t used;                        /* the entry file's mtime */
};

/* The default directory: $XDG_CACHE_HOME/mpfarm (absolute XDG only), else
 * $HOME/.cache/mpfarm. */
int farm_fwcache_default_dir(char *out, size_t len, struct farm_err *e);

/* Open (creating the layout, mode 0700 for a new top directory) and take
 * cache.lock: shared for a run (exclusive = 0), exclusive for prune. Waits up
 * to wait_ms for a prune to finish (or runs, for prune). dir NULL = default. */
int farm_fwcache_open(struct farm_fwcache *c, const char *dir, int exclusive, unsigned wait_ms,
		      const volatile sig_atomic_t *cancel, struct farm_err *e);
void farm_fwcache_close(struct farm_fwcache *c);

/* sha256 hex of a key text (the entry's file name). */
void farm_fwcache_keyhash(const char *key, char out[65]);

/* The entry for key: 0 and *ent when present and its image is whole (sha256
 * checked; a damaged image is removed and FARM_ENOTFOUND returned). Marks the
 * entry used. FARM_ENOTFOUND when absent. */
int farm_fwcache_lookup(struct farm_fwcache *c, const char *key, struct farm_fwcache_entry *ent,
			struct farm_err *e);
/* Whether an image file with this sha256 is in the store (checked); path receives it. */
int farm_fwcache_have_image(struct farm_fwcache *c, const char *sha256, const char *format,
			    char *path, size_t len, struct farm_err *e);

/* A fresh temporary path inside tmp/ (same file system as the store). */
int farm_fwcache_tmp_path(const struct farm_fwcache *c, const char *what, char *out, size_t len,
			  struct farm_err *e);

/* Move the whole file tmp_file (hashed here) into the store and write the
 * entry for key; ent gives kind, format, base, source, ref, commit (its
 * keyhash, key, sha256, size, created and used are filled in). */
int farm_fwcache_store(struct farm_fwcache *c, const char *key, const char *tmp_file,
		       struct farm_fwcache_entry *ent, struct farm_err *e);

/* The image path of an entry. */
int farm_fwcache_image_path(const struct farm_fwcache *c, const struct farm_fwcache_entry *ent,
			    char *out, size_t len);
/* The log path of a key hash (logs/<keyhash>.log). */
int farm_fwcache_log_path(const struct farm_fwcache *c, const char *keyhash, char *out, size_t len);

/* flock on locks/<name>.lock (name: [A-Za-z0-9._-]{1,100}), waiting up to
 * wait_ms. Returns the descriptor (>= 0) or a negative FARM_E* code
 * (FARM_EBUSY when the wait ran out, naming the lock). Close it to release. */
int farm_fwcache_lock(const struct farm_fwcache *c, const char *name, unsigned wait_ms,
		      const volatile sig_atomic_t *cancel, struct farm_err *e);

/* Every entry, sorted by last use (newest first). *out is the caller's (free()). */
int farm_fwcache_list(const struct farm_fwcache *c, struct farm_fwcache_entry **out, size_t *n,
		      struct farm_err *e);

struct farm_fwcache_prune_stats {
	size_t entries, images, checkouts, files;
	uint64_t bytes;
};
/* Remove entries not used since now - keep_days, images no entry refers to,
 * checkouts (src/) not used since then, and tmp/ files older than a day.
 * Mirrors (git/) are kept: they are what makes the next fetch cheap. Needs
 * the cache opened exclusive. */
int farm_fwcache_prune(struct farm_fwcache *c, unsigned keep_days, time_t now,
		       struct farm_fwcache_prune_stats *st, struct farm_err *e);

#endif
