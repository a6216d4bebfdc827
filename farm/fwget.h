/* mpfarm: the firmware phase. Gets the image of every selected board whose
 * firmware: entry is fetch: or build:, before anything is flashed.
 *
 *   fetch   the URL template is expanded per board; each distinct URL is
 *           downloaded once (farm/fetch.h), its format checked, and stored in
 *           the cache (farm/fwcache.h) under the URL and checksum;
 *   build   each distinct repository is mirrored and each ref resolved to a
 *           commit (farm/git.h; --ref overrides every build ref); boards are
 *           grouped by build key (repository, commit, port, board, variant,
 *           command, artifact): one build per key, up to build_jobs at once,
 *           each its own process with a deadline and a kept log
 *           (farm/fwbuild.h), in one checkout per commit with the submodules
 *           its ports need.
 *
 * A key already in the cache costs no download and no build. A failure
 * belongs to the boards of that key only: they get failed set with the
 * reason; the other boards carry on. */
#ifndef FARM_FWGET_H
#define FARM_FWGET_H

#include <signal.h>
#include <stddef.h>

#include "err.h"
#include "fwcache.h"
#include "inventory.h"
#include "result.h"
#include "ui.h"

enum farm_fwget_kind { FARM_FWGET_NONE, FARM_FWGET_FETCH, FARM_FWGET_BUILD };

struct farm_fwget_board {
	const struct farm_board *board;
	enum farm_fwget_kind kind;  /* NONE: file: entry, no entry, not flashed */
	int failed;
	int infra;                  /* failed for the network, the disk or a timeout */
	char message[FARM_ERR_MSG_MAX]; /* why it failed */
	char path[FARM_FWCACHE_PATH_MAX]; /* the image file in the cache */
	char format[16];
	unsigned long base;
	int has_base;
	char sha256[65];            /* of the image file */
	char commit[41];
	char source[FARM_FWCACHE_TEXT_MAX]; /* URL or repository, redacted */
	char ref[256];
	char log_path[FARM_FWCACHE_PATH_MAX];
	char *log_tail;             /* the end of the build or download log */
	int cached;                 /* nothing was downloaded or built for it */
	double time_s;              /* its key's download or build time */
};

struct farm_fwget {
	struct farm_fwget_board *boards; /* one per board given, same order */
	size_t n_boards;
	struct farm_fwcache cache;  /* held (shared) until farm_fwget_free */
	int cache_open;
	/* totals */
	size_t n_downloads, n_builds, n_cached, n_failed;
};

struct farm_fwget_opts {
	const char *cache_dir;      /* NULL = default */
	const char *ref;            /* --ref: overrides every build: ref */
	unsigned build_jobs;        /* builds at once; 0 = 1 */
	unsigned build_timeout_ms;  /* 0 = the board's timeouts.build, else 30 min */
	int offline;                /* no git fetch; downloads fail unless cached */
	const volatile sig_atomic_t *cancel;
	const struct farm_ui *ui;   /* progress and phase lines; may be NULL */
};

/* Returns 0 (per-board failures are in (*out)->boards), or FARM_EINTR,
 * FARM_ENOMEM, or an error opening the cache. *out is the caller's either way
 * (NULL only on FARM_ENOMEM). */
int farm_fwget_run(struct farm_fwget **out, const struct farm_inventory *inv,
		   const struct farm_board *const *boards, size_t n, const struct farm_fwget_opts *o,
		   struct farm_err *e);
void farm_fwget_free(struct farm_fwget *g);
const struct farm_fwget_board *farm_fwget_board(const struct farm_fwget *g, const char *board_id);

/* The board's "firmware" testcase (name "build" or "fetch"): its properties
 * give the commit, source and image sha256, its <system-out> the log tail; a
 * failure is <failure> (<error> when infra). Nothing for kind NONE. The
 * same facts go into the board's own properties (firmware.*). */
int farm_fwget_add_case(const struct farm_fwget_board *gb, struct farm_board_result *res);

#endif
