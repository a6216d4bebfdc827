#include "fwget.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fetch.h"
#include "firmware.h"
#include "fwbuild.h"
#include "git.h"
#include "image.h"
#include "ydoc.h"

#define LOG_TAIL_BYTES 4000
#define BUILD_DEFAULT_TIMEOUT_MS (30u * 60 * 1000)
#define KEY_LOCK_WAIT_MS (60u * 60 * 1000)
#define POLL_MS 100
#define BUILD_NOTE_MS 10000

/* One distinct download or build, shared by every board that needs it. */
struct fkey {
	enum farm_fwget_kind kind;
	char key[FARM_FWCACHE_TEXT_MAX];
	char keyhash[65];
	const struct farm_fw_target *t;
	const struct farm_board *first;   /* its first board (timeouts, names) */
	char label[160];                  /* for progress lines */
	/* fetch */
	char url[FARM_FETCH_URL_MAX];
	/* build */
	struct repo *repo;
	struct checkout *co;
	char **argv;
	size_t argc;
	char artifact[1024];              /* relative to the checkout */
	const char *port, *bname, *variant;
	struct farm_fwbuild_proc proc;
	int started;
	long long last_note_ms;
	/* outcome */
	int done, failed, cached, infra;
	char message[FARM_ERR_MSG_MAX];
	struct farm_fwcache_entry ent;
	char path[FARM_FWCACHE_PATH_MAX];
	char log_path[FARM_FWCACHE_PATH_MAX];
	double time_s;
	int lock_fd;
};

/* A repository URL at one ref. */
struct repo {
	const char *url;
	const char *ref;
	char mirror[FARM_GIT_PATH_MAX];
	char commit[41];
	int failed, infra;
	char message[FARM_ERR_MSG_MAX];
};

/* One checkout (a commit of a mirror). */
struct checkout {
	struct repo *repo;                /* the first repo (URL) that resolved to it */
	char dir[FARM_GIT_PATH_MAX];
	char **subs;                      /* submodule paths its builds need */
	size_t n_subs;
	int need_mpy_cross;
	int prepared, failed;
	char message[FARM_ERR_MSG_MAX];
};

struct fw_state {
	const struct farm_inventory *inv;
	const struct farm_fwget_opts *o;
	struct farm_fwget *g;
	struct fkey *keys;
	size_t n_keys;
	struct repo *repos;
	size_t n_repos;
	struct checkout *cos;
	size_t n_cos;
	size_t *board_key;                /* board index -> key index, or (size_t)-1 */
	/* progress throttling */
	char prog_step[64];
	int prog_quarter;
};

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cancelled(const struct fw_state *s)
{
	return s->o->cancel && *s->o->cancel;
}

static void note(const struct fw_state *s, const char *label, const char *phase, const char *fmt,
		 ...) FARM_PRINTF(4, 5);
static void note(const struct fw_state *s, const char *label, const char *phase, const char *fmt,
		 ...)
{
	if (!s->o->ui)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	farm_ui_phase(s->o->ui, label, phase, "%s", msg);
}

static void progress(struct fw_state *s, const char *label, const char *step, uint64_t done,
		     uint64_t total)
{
	if (!s->o->ui)
		return;
	if (!s->o->ui->tty && total < 1024)
		return; /* a tiny transfer needs no progress lines in a log */
	int q = total ? (int)(done * 4 / total) : -1;
	char id[64];
	snprintf(id, sizeof id, "%.30s/%.30s", label, step);
	if (s->o->ui->tty || strcmp(id, s->prog_step) || q != s->prog_quarter) {
		snprintf(s->prog_step, sizeof s->prog_step, "%s", id);
		s->prog_quarter = q;
		if (total)
			farm_ui_progress(s->o->ui, label, step, done, total);
	}
}

/* ---- the plan: which key each board needs ---- */

static const char *opt(const struct farm_fw_target *t, const char *k)
{
	return farm_kv_get(t->opts, t->n_opts, k);
}

static unsigned long opt_ul(const struct farm_fw_target *t, const char *k, unsigned long dflt)
{
	const char *v = opt(t, k);
	return v ? strtoul(v, NULL, 10) : dflt;
}

static struct repo *get_repo(struct fw_state *s, const char *url, const char *ref)
{
	for (size_t i = 0; i < s->n_repos; i++)
		if (!strcmp(s->repos[i].url, url) && !strcmp(s->repos[i].ref, ref))
			return &s->repos[i];
	struct repo *r = &s->repos[s->n_repos++];
	memset(r, 0, sizeof *r);
	r->url = url;
	r->ref = ref;
	return r;
}

static struct fkey *get_key(struct fw_state *s, const char *key)
{
	for (size_t i = 0; i < s->n_keys; i++)
		if (!strcmp(s->keys[i].key, key))
			return &s->keys[i];
	struct fkey *k = &s->keys[s->n_keys++];
	memset(k, 0, sizeof *k);
	k->lock_fd = -1;
	snprintf(k->key, sizeof k->key, "%s", key);
	farm_fwcache_keyhash(key, k->keyhash);
	return k;
}

static void fail_key(struct fkey *k, const char *fmt, ...) FARM_PRINTF(2, 3);
static void fail_key(struct fkey *k, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(k->message, sizeof k->message, fmt, ap);
	va_end(ap);
	k->failed = 1;
	k->done = 1;
}

static int plan_fetch(struct fw_state *s, size_t bi, const struct farm_fw_target *t,
		      struct farm_err *e)
{
	const struct farm_board *b = s->g->boards[bi].board;
	struct farm_fwget_board *gb = &s->g->boards[bi];
	char url[FARM_FETCH_URL_MAX], key[FARM_FWCACHE_TEXT_MAX];
	struct farm_fetch_vars v = { b->board, b->port, b->variant, opt(t, "version") };
	struct farm_err xe = { 0 };
	gb->kind = FARM_FWGET_FETCH;
	if (farm_fetch_expand(opt(t, "url"), &v, url, sizeof url, &xe)) {
		gb->failed = 1;
		snprintf(gb->message, sizeof gb->message, "fetch: url: %.480s", xe.msg);
		return 0;
	}
	const char *sha = opt(t, "sha256");
	if (snprintf(key, sizeof key, "fetch url=%s sha256=%s format=%s base=0x%lx", url,
		     sha ? sha : "-", t->format ? t->format : "-", t->has_base ? t->base : 0) >=
	    (int)sizeof key) {
		gb->failed = 1;
		snprintf(gb->message, sizeof gb->message, "fetch: the URL is too long");
		return 0;
	}
	struct fkey *k = get_key(s, key);
	if (!k->t) {
		k->kind = FARM_FWGET_FETCH;
		k->t = t;
		k->first = b;
		snprintf(k->url, sizeof k->url, "%s", url);
		char red[256];
		farm_fetch_redact(url, red, sizeof red);
		const char *base = strrchr(red, '/');
		snprintf(k->label, sizeof k->label, "fetch %.120s", base && base[1] ? base + 1 : red);
	}
	s->board_key[bi] = (size_t)(k - s->keys);
	(void)e;
	return 0;
}

static int plan_build(struct fw_state *s, size_t bi, const struct farm_fw_target *t,
		      struct farm_err *e)
{
	const struct farm_board *b = s->g->boards[bi].board;
	struct farm_fwget_board *gb = &s->g->boards[bi];
	gb->kind = FARM_FWGET_BUILD;
	const char *port = opt(t, "port") ? opt(t, "port") : b->port;
	const char *bname = opt(t, "board") ? opt(t, "board") : b->board;
	const char *variant = opt(t, "variant") ? opt(t, "variant") : b->variant;
	const char *ref = s->o->ref ? s->o->ref : opt(t, "ref");
	if (!port || !bname) {
		gb->failed = 1;
		snprintf(gb->message, sizeof gb->message,
			 "build: the board has no %s: give it in the board or in build:",
			 port ? "board" : "port");
		return 0;
	}
	struct farm_fwbuild_vars v = { port, bname, variant, 0 };
	char artifact[1024], rel[1024];
	const char *art = opt(t, "artifact");
	struct farm_err xe = { 0 };
	if (!art) {
		const char *file = farm_fwbuild_default_artifact(port);
		if (!file) {
			gb->failed = 1;
			snprintf(gb->message, sizeof gb->message,
				 "build: port %s has no default artifact: add artifact: (the image path "
				 "relative to ports/%s)", port, port);
			return 0;
		}
		snprintf(rel, sizeof rel, "build-%s%s%s/%s", bname, variant ? "-" : "",
			 variant ? variant : "", file);
	} else if (farm_fwbuild_expand(art, &v, rel, sizeof rel, &xe)) {
		gb->failed = 1;
		snprintf(gb->message, sizeof gb->message, "build: artifact: %.480s", xe.msg);
		return 0;
	}
	if (snprintf(artifact, sizeof artifact, "ports/%s/%s", port, rel) >= (int)sizeof artifact) {
		gb->failed = 1;
		snprintf(gb->message, sizeof gb->message, "build: the artifact path is too long");
		return 0;
	}
	/* the command as words; {jobs} stays a placeholder in the key */
	struct farm_buf cmd = { 0 };
	if (t->command)
		for (size_t i = 0; i < t->n_command; i++)
			farm_buf_printf(&cmd, "%s%s", i ? " " : "", t->command[i]);
	char key[FARM_FWCACHE_TEXT_MAX], red[512];
	farm_git_redact(opt(t, "repo"), red, sizeof red);
	struct repo *r = get_repo(s, opt(t, "repo"), ref);
	/* the commit is not known yet: the key is completed once it is */
	int n = snprintf(key, sizeof key, "build repo=%s ref=%s port=%s board=%s variant=%s "
			 "command=%s artifact=%s", red, ref, port, bname, variant ? variant : "-",
			 cmd.data ? cmd.data : "(default)", artifact);
	farm_buf_free(&cmd);
	if (n < 0 || (size_t)n >= sizeof key) {
		gb->failed = 1;
		snprintf(gb->message, sizeof gb->message, "build: the target description is too long");
		return 0;
	}
	struct fkey *k = get_key(s, key);
	if (!k->t) {
		k->kind = FARM_FWGET_BUILD;
		k->t = t;
		k->first = b;
		k->repo = r;
		k->port = port;
		k->bname = bname;
		k->variant = variant;
		snprintf(k->artifact, sizeof k->artifact, "%s", artifact);
		snprintf(k->label, sizeof k->label, "build %.40s/%.60s%s%.40s", port, bname,
			 variant ? "-" : "", variant ? variant : "");
	}
	s->board_key[bi] = (size_t)(k - s->keys);
	(void)e;
	return 0;
}

/* ---- fetch ---- */

static void log_line(void *p, const char *line)
{
	FILE *f = p;
	if (f)
		fprintf(f, "%s\n", line);
}

struct fetch_cb {
	struct fw_state *s;
	struct fkey *k;
	FILE *log;
};

static void fetch_progress(void *p, uint64_t done, uint64_t total)
{
	struct fetch_cb *c = p;
	progress(c->s, c->k->label, "download", done, total);
}

static void fetch_log(void *p, const char *line)
{
	struct fetch_cb *c = p;
	log_line(c->log, line);
}

/* Check the downloaded file is an image of the expected format. */
static int check_image(const char *path, const struct farm_fw_target *t, char *format, size_t flen,
		       struct farm_err *e)
{
	enum farm_image_format fmt = t->format ? farm_image_format_parse(t->format)
						: FARM_IMG_UNKNOWN;
	struct farm_image *img = NULL;
	if (fmt == FARM_IMG_BIN && !t->has_base)
		return farm_err_set(e, FARM_EINVAL, "a raw binary needs base: in the firmware entry");
	int rc = farm_image_load(&img, path, fmt, (uint32_t)t->base, e);
	if (rc == 0)
		snprintf(format, flen, "%s", farm_image_format_name(img->format));
	farm_image_free(img);
	return rc;
}

static void do_fetch(struct fw_state *s, struct fkey *k)
{
	const struct farm_fw_target *t = k->t;
	struct farm_fwcache *c = &s->g->cache;
	struct farm_err e = { 0 };
	long long t0 = mono_ms();
	char part[FARM_FWCACHE_PATH_MAX], dest[FARM_FWCACHE_PATH_MAX], red[512];
	farm_fetch_redact(k->url, red, sizeof red);
	if (farm_fwcache_log_path(c, k->keyhash, k->log_path, sizeof k->log_path))
		k->log_path[0] = '\0';
	FILE *log = k->log_path[0] ? fopen(k->log_path, "w") : NULL;
	struct fetch_cb cb = { s, k, log };
	int n = snprintf(part, sizeof part, "%s/tmp/%s.part", c->dir, k->keyhash);
	if (n < 0 || (size_t)n >= sizeof part || farm_fwcache_tmp_path(c, "fetch", dest, sizeof dest, &e)) {
		fail_key(k, "fetch %s: cache path too long", red);
		goto out;
	}
	if (s->o->offline) {
		fail_key(k, "fetch %s: not in the cache and --offline forbids downloading", red);
		goto out;
	}
	note(s, k->label, "fetch", "downloading %s", red);
	struct farm_fetch_opts fo = {
		.url = k->url, .part_path = part, .dest_path = dest, .sha256 = opt(t, "sha256"),
		.timeout_s = (unsigned)opt_ul(t, "timeout", 0),
		.retries = (unsigned)opt_ul(t, "retries", 3),
		.max_size = opt_ul(t, "max_size", 0),
		.cancel = s->o->cancel, .progress = fetch_progress, .log = fetch_log, .cb_p = &cb,
	};
	struct farm_fetch_result fr;
	memset(&fr, 0, sizeof fr);
	if (farm_fetch(&fo, &fr, &e)) {
		k->infra = e.code == FARM_ETIMEDOUT || e.code == FARM_EIO || e.code == FARM_ESYS;
		fail_key(k, "fetch: %s", e.msg);
		goto out;
	}
	s->g->n_downloads++;
	char format[16];
	if (check_image(dest, t, format, sizeof format, &e)) {
		unlink(dest);
		fail_key(k, "fetch %s: the download is not a usable image: %s", red, e.msg);
		log_line(log, k->message);
		goto out;
	}
	memset(&k->ent, 0, sizeof k->ent);
	snprintf(k->ent.kind, sizeof k->ent.kind, "fetch");
	snprintf(k->ent.format, sizeof k->ent.format, "%s", format);
	snprintf(k->ent.source, sizeof k->ent.source, "%s", red);
	k->ent.base = t->base;
	k->ent.has_base = t->has_base;
	if (farm_fwcache_store(c, k->key, dest, &k->ent, &e)) {
		unlink(dest);
		fail_key(k, "fetch %s: cannot store the image in the cache: %s", red, e.msg);
		goto out;
	}
	farm_fwcache_image_path(c, &k->ent, k->path, sizeof k->path);
	k->done = 1;
	note(s, k->label, "fetch", "%llu bytes, sha256 %.12s..., %u attempt%s",
	     (unsigned long long)fr.size, k->ent.sha256, fr.attempts, fr.attempts == 1 ? "" : "s");
	log_line(log, "stored in the cache");
out:
	k->time_s = (double)(mono_ms() - t0) / 1000.0;
	if (k->failed)
		note(s, k->label, "fetch", "FAILED: %s", k->message);
	if (log)
		fclose(log);
}

/* ---- git ---- */

struct git_cb {
	struct fw_state *s;
	const char *label;
};

static void git_progress(void *p, const char *what, uint64_t done, uint64_t total)
{
	struct git_cb *c = p;
	progress(c->s, c->label, what, done, total);
}

static void git_log(void *p, const char *line)
{
	struct git_cb *c = p;
	note(c->s, c->label, "git", "%s", line);
}

static void git_opts(struct fw_state *s, struct farm_git_opts *go, struct git_cb *cb)
{
	*go = (struct farm_git_opts){
		.cache_dir = s->g->cache.dir, .offline = s->o->offline, .cancel = s->o->cancel,
		.progress = git_progress, .log = git_log, .cb_p = cb,
	};
}

static void resolve_repos(struct fw_state *s)
{
	for (size_t i = 0; i < s->n_repos && !cancelled(s); i++) {
		struct repo *r = &s->repos[i];
		struct farm_git_opts go;
		char red[512], label[300];
		farm_git_redact(r->url, red, sizeof red);
		const char *base = strrchr(red, '/');
		snprintf(label, sizeof label, "git %.100s@%.100s", base && base[1] ? base + 1 : red,
			 r->ref);
		struct git_cb cb = { s, label };
		git_opts(s, &go, &cb);
		struct farm_git_fetch_stats st;
		memset(&st, 0, sizeof st);
		struct farm_err e = { 0 };
		if (farm_git_mirror(&go, r->url, r->ref, r->mirror, sizeof r->mirror, r->commit, &st,
				    &e)) {
			r->failed = 1;
			r->infra = e.code == FARM_ETIMEDOUT || e.code == FARM_EIO || e.code == FARM_ESYS;
			snprintf(r->message, sizeof r->message, "%s", e.msg);
			note(s, label, "git", "FAILED: %s", e.msg);
			continue;
		}
		note(s, label, "git", "%s is %.12s (%s)", r->ref, r->commit,
		     !st.fetched ? "no fetch needed"
		     : st.objects ? "fetched new objects" : "mirror up to date");
	}
}

/* Complete each build key with its commit; keys of one target that resolve
 * to one commit (two refs, same commit) stay distinct entries but share the
 * cache entry through the completed key text. */
static void complete_build_keys(struct fw_state *s)
{
	for (size_t i = 0; i < s->n_keys; i++) {
		struct fkey *k = &s->keys[i];
		if (k->kind != FARM_FWGET_BUILD)
			continue;
		if (k->repo->failed) {
			k->infra = k->repo->infra;
			fail_key(k, "%s", k->repo->message);
			continue;
		}
		/* "ref=REF" becomes "commit=ID": the cache is keyed by what is built */
		char key[FARM_FWCACHE_TEXT_MAX];
		const char *refp = strstr(k->key, " ref=");
		const char *after = refp ? strstr(refp, " port=") : NULL;
		if (!refp || !after ||
		    snprintf(key, sizeof key, "%.*s commit=%s%s", (int)(refp - k->key), k->key,
			     k->repo->commit, after) >= (int)sizeof key) {
			fail_key(k, "build: the target description is too long");
			continue;
		}
		snprintf(k->key, sizeof k->key, "%s", key);
		farm_fwcache_keyhash(k->key, k->keyhash);
	}
}

static struct checkout *get_checkout(struct fw_state *s, struct repo *r)
{
	for (size_t i = 0; i < s->n_cos; i++)
		if (!strcmp(s->cos[i].repo->mirror, r->mirror) &&
		    !strcmp(s->cos[i].repo->commit, r->commit))
			return &s->cos[i];
	struct checkout *c = &s->cos[s->n_cos++];
	memset(c, 0, sizeof *c);
	c->repo = r;
	return c;
}

static int add_sub(struct checkout *c, const char *path)
{
	for (size_t i = 0; i < c->n_subs; i++)
		if (!strcmp(c->subs[i], path))
			return 0;
	char **nv = realloc(c->subs, (c->n_subs + 1) * sizeof *nv);
	if (!nv)
		return -1;
	c->subs = nv;
	if (!(nv[c->n_subs] = strdup(path)))
		return -1;
	c->n_subs++;
	return 0;
}

/* Checkout, submodules and mpy-cross for every commit a pending build needs. */
static void prepare_checkouts(struct fw_state *s, unsigned jobs)
{
	for (size_t i = 0; i < s->n_keys; i++) {
		struct fkey *k = &s->keys[i];
		if (k->kind == FARM_FWGET_BUILD && !k->done)
			k->co = get_checkout(s, k->repo);
	}
	for (size_t ci = 0; ci < s->n_cos && !cancelled(s); ci++) {
		struct checkout *c = &s->cos[ci];
		struct farm_err e = { 0 };
		struct farm_git_opts go;
		char label[160];
		snprintf(label, sizeof label, "checkout %.12s", c->repo->commit);
		struct git_cb cb = { s, label };
		git_opts(s, &go, &cb);
		char lockname[80];
		snprintf(lockname, sizeof lockname, "src-%.40s", c->repo->commit);
		int lfd = farm_fwcache_lock(&s->g->cache, lockname, KEY_LOCK_WAIT_MS, s->o->cancel, &e);
		int rc = lfd < 0 ? lfd : farm_git_checkout(&go, c->repo->mirror, c->repo->commit, c->dir,
							   sizeof c->dir, &e);
		/* the submodules of every port built here */
		for (size_t i = 0; rc == 0 && i < s->n_keys; i++) {
			struct fkey *k = &s->keys[i];
			if (k->co != c)
				continue;
			if (k->t->has_submodules) {
				for (size_t j = 0; rc == 0 && j < k->t->n_submodules; j++)
					if (add_sub(c, k->t->submodules[j]))
						rc = farm_err_set(&e, FARM_ENOMEM, "out of memory");
				continue;
			}
			char mk[FARM_GIT_PATH_MAX + 64], **subs = NULL;
			size_t n = 0;
			snprintf(mk, sizeof mk, "%s/ports/%s/Makefile", c->dir, k->port);
			rc = farm_fwbuild_makefile_submodules(mk, &subs, &n, &e);
			for (size_t j = 0; rc == 0 && j < n; j++)
				if (add_sub(c, subs[j]))
					rc = farm_err_set(&e, FARM_ENOMEM, "out of memory");
			farm_strv_free(subs, n);
			if (!k->t->command)
				c->need_mpy_cross = 1;
		}
		if (rc == 0 && c->n_subs) {
			note(s, label, "git", "submodules: %zu", c->n_subs);
			rc = farm_git_submodules(&go, c->dir, c->repo->url, (const char *const *)c->subs,
						 c->n_subs, &e);
		}
		utimensat(AT_FDCWD, c->dir, NULL, 0); /* last use, for cache prune */
		char mpy[FARM_GIT_PATH_MAX + 64];
		snprintf(mpy, sizeof mpy, "%s/mpy-cross/Makefile", c->dir);
		if (rc == 0 && c->need_mpy_cross && access(mpy, F_OK) == 0) {
			/* MicroPython's first build step, once per checkout */
			char logp[FARM_GIT_PATH_MAX + 64], jarg[16];
			snprintf(logp, sizeof logp, "%s/mpy-cross.log", c->dir);
			snprintf(jarg, sizeof jarg, "-j%u", jobs);
			char *argv[] = { "make", "-C", "mpy-cross", jarg, NULL };
			struct farm_fwbuild_proc p;
			note(s, label, "build", "mpy-cross");
			unsigned tmo = s->o->build_timeout_ms ? s->o->build_timeout_ms
							      : BUILD_DEFAULT_TIMEOUT_MS;
			rc = farm_fwbuild_spawn(&p, c->dir, argv, logp, tmo, &e);
			int st = 0;
			while (rc == 0 && !farm_fwbuild_poll(&p, &st)) {
				if (cancelled(s)) {
					farm_fwbuild_kill(&p);
					rc = farm_err_set(&e, FARM_EINTR, "interrupted");
					break;
				}
				struct timespec ts = { 0, POLL_MS * 1000000L };
				nanosleep(&ts, NULL);
			}
			if (rc == 0 && st) {
				struct farm_buf tail = { 0 };
				farm_fwbuild_log_tail(logp, 600, &tail);
				rc = farm_err_set(&e, FARM_EIO, "make -C mpy-cross %s (exit %d); log %s:\n%s",
						  p.timed_out ? "timed out" : "failed", st, logp,
						  tail.data ? tail.data : "");
				farm_buf_free(&tail);
			}
		}
		if (lfd >= 0)
			close(lfd);
		if (rc) {
			c->failed = 1;
			snprintf(c->message, sizeof c->message, "%s", e.msg);
			note(s, label, "git", "FAILED: %s", e.msg);
		}
		c->prepared = 1;
	}
}

/* ---- builds ---- */

static int build_argv(struct fkey *k, unsigned jobs, struct farm_err *e)
{
	struct farm_fwbuild_vars v = { k->port, k->bname, k->variant, jobs };
	if (!k->t->command)
		return farm_fwbuild_default_argv(&v, &k->argv, &k->argc, e);
	k->argv = calloc(k->t->n_command + 1, sizeof *k->argv);
	if (!k->argv)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	for (size_t i = 0; i < k->t->n_command; i++) {
		char w[4096];
		int rc = farm_fwbuild_expand(k->t->command[i], &v, w, sizeof w, e);
		if (rc)
			return farm_err_prefix(e, "command");
		if (!(k->argv[i] = strdup(w)))
			return farm_err_set(e, FARM_ENOMEM, "out of memory");
		k->argc = i + 1;
	}
	return 0;
}

static int start_build(struct fw_state *s, struct fkey *k, unsigned jobs)
{
	struct farm_err e = { 0 };
	if (k->co->failed) {
		fail_key(k, "%s", k->co->message);
		return 0;
	}
	if (build_argv(k, jobs, &e)) {
		fail_key(k, "build: %s", e.msg);
		return 0;
	}
	if (farm_fwcache_log_path(&s->g->cache, k->keyhash, k->log_path, sizeof k->log_path)) {
		fail_key(k, "build: cache path too long");
		return 0;
	}
	FILE *log = fopen(k->log_path, "w");
	if (log) {
		fprintf(log, "mpfarm: build %s\nmpfarm: in %s:", k->key, k->co->dir);
		for (size_t i = 0; i < k->argc; i++)
			fprintf(log, " %s", k->argv[i]);
		fprintf(log, "\n");
		fclose(log);
	}
	unsigned tmo = s->o->build_timeout_ms ? s->o->build_timeout_ms
		       : k->first->timeouts.build_ms ? k->first->timeouts.build_ms
		       : BUILD_DEFAULT_TIMEOUT_MS;
	if (farm_fwbuild_spawn(&k->proc, k->co->dir, k->argv, k->log_path, tmo, &e)) {
		fail_key(k, "build: %s", e.msg);
		return 0;
	}
	k->started = 1;
	k->last_note_ms = mono_ms();
	note(s, k->label, "build", "started at %.12s (%s ...), log %s", k->repo->commit, k->argv[0],
	     k->log_path);
	return 1;
}

static char *log_tail(const char *path)
{
	struct farm_buf b = { 0 };
	if (!path[0] || farm_fwbuild_log_tail(path, LOG_TAIL_BYTES, &b))
		return NULL;
	return farm_buf_steal(&b);
}

/* The line of a failed build's log that says why: the last one naming an
 * error, else the last one. */
static void log_error_line(const char *path, char *out, size_t len)
{
	struct farm_buf tail = { 0 };
	out[0] = '\0';
	if (farm_fwbuild_log_tail(path, 4000, &tail) || !tail.data)
		return;
	const char *best = NULL, *last = NULL;
	size_t best_n = 0, last_n = 0;
	for (const char *p = tail.data; *p;) {
		size_t n = strcspn(p, "\r\n");
		if (n && strncmp(p, "make", 4)) {
			last = p;
			last_n = n;
			if (memmem(p, n, "rror", 4))
				best = p, best_n = n;
		}
		p += n;
		p += strspn(p, "\r\n");
	}
	if (!best)
		best = last, best_n = last_n;
	if (best)
		snprintf(out, len, "%.*s", (int)(best_n < len - 1 ? best_n : len - 1), best);
	for (char *q = out; *q; q++)
		if ((unsigned char)*q < 0x20)
			*q = ' ';
	farm_buf_free(&tail);
}

/* Write b into a new file at path. */
static int write_new_file(const char *path, const struct farm_buf *b, struct farm_err *e)
{
	FILE *f = fopen(path, "wbx");
	int rc = 0;
	if (!f || fwrite(b->data, 1, b->len, f) != b->len)
		rc = farm_err_sys(e, FARM_EIO, errno, "cannot write %s", path);
	if (f && fclose(f) && rc == 0)
		rc = farm_err_sys(e, FARM_EIO, errno, "cannot write %s", path);
	return rc;
}

/* The build ended with status st: store its artifact. */
static void finish_build(struct fw_state *s, struct fkey *k, int st)
{
	struct farm_err e = { 0 };
	k->time_s = (double)(mono_ms() - k->proc.started_ms) / 1000.0;
	if (k->proc.timed_out) {
		fail_key(k, "build timed out after %.0f s and was stopped; raise timeouts: build: or "
			    "--timeout build=S (log %s)", k->time_s, k->log_path);
		return;
	}
	if (st) {
		char why[300];
		log_error_line(k->log_path, why, sizeof why);
		fail_key(k, "build failed (exit status %d) after %.0f s%s%s; log %s", st, k->time_s,
			 why[0] ? ": " : "", why, k->log_path);
		return;
	}
	s->g->n_builds++;
	char art[FARM_GIT_PATH_MAX + 1100], tmp[FARM_FWCACHE_PATH_MAX];
	snprintf(art, sizeof art, "%s/%s", k->co->dir, k->artifact);
	struct farm_image *img = NULL;
	unsigned long base = 0;
	int is_set = 0;
	struct farm_buf flat = { 0 };
	int rc = farm_fwbuild_load_artifact(art, &img, &base, &is_set, &e);
	if (rc) {
		fail_key(k, "build finished but its artifact is not usable: %s (set artifact: if the "
			    "image is elsewhere)", e.msg);
		return;
	}
	rc = farm_fwcache_tmp_path(&s->g->cache, "build", tmp, sizeof tmp, &e);
	/* the file to cache: an ESP set merged into one raw image, else the artifact as is */
	if (rc == 0)
		rc = is_set ? farm_image_write_bin(img, 0xff, &flat, &e)
			    : farm_buf_read_file(&flat, art, FARM_IMAGE_MAX_BYTES, &e);
	if (rc == 0)
		rc = write_new_file(tmp, &flat, &e);
	farm_buf_free(&flat);
	memset(&k->ent, 0, sizeof k->ent);
	snprintf(k->ent.kind, sizeof k->ent.kind, "build");
	snprintf(k->ent.format, sizeof k->ent.format, "%s", farm_image_format_name(img->format));
	farm_git_redact(k->repo->url, k->ent.source, sizeof k->ent.source);
	snprintf(k->ent.ref, sizeof k->ent.ref, "%s", k->repo->ref);
	snprintf(k->ent.commit, sizeof k->ent.commit, "%s", k->repo->commit);
	k->ent.base = base;
	k->ent.has_base = img->format == FARM_IMG_BIN;
	farm_image_free(img);
	if (rc == 0)
		rc = farm_fwcache_store(&s->g->cache, k->key, tmp, &k->ent, &e);
	if (rc) {
		unlink(tmp);
		fail_key(k, "build: cannot store the image: %s", e.msg);
		return;
	}
	farm_fwcache_image_path(&s->g->cache, &k->ent, k->path, sizeof k->path);
	k->done = 1;
	note(s, k->label, "build", "done in %.1f s: %s image, sha256 %.12s...", k->time_s,
	     k->ent.format, k->ent.sha256);
}

static void run_builds(struct fw_state *s, unsigned par, unsigned jobs)
{
	size_t next = 0, running = 0;
	for (;;) {
		while (!cancelled(s) && running < par && next < s->n_keys) {
			struct fkey *k = &s->keys[next++];
			if (k->kind != FARM_FWGET_BUILD || k->done)
				continue;
			running += (size_t)start_build(s, k, jobs);
		}
		if (!running)
			break;
		struct timespec ts = { 0, POLL_MS * 1000000L };
		nanosleep(&ts, NULL);
		for (size_t i = 0; i < s->n_keys; i++) {
			struct fkey *k = &s->keys[i];
			if (!k->started || k->done)
				continue;
			int st = 0;
			if (cancelled(s)) {
				farm_fwbuild_kill(&k->proc);
				fail_key(k, "build stopped: run interrupted");
				running--;
				continue;
			}
			if (farm_fwbuild_poll(&k->proc, &st)) {
				running--;
				finish_build(s, k, st);
				if (k->failed)
					note(s, k->label, "build", "FAILED: %s", k->message);
				continue;
			}
			long long t = mono_ms();
			if (t - k->last_note_ms >= BUILD_NOTE_MS) {
				/* a build's progress: time so far and its log's last line */
				k->last_note_ms = t;
				struct farm_buf tail = { 0 };
				farm_fwbuild_log_tail(k->log_path, 200, &tail);
				char *last = tail.data ? tail.data : "";
				size_t l = strlen(last);
				while (l && (last[l - 1] == '\n' || last[l - 1] == '\r'))
					last[--l] = '\0';
				char *nl = strrchr(last, '\n');
				note(s, k->label, "build", "%.0f s: %.160s",
				     (double)(t - k->proc.started_ms) / 1000.0, nl ? nl + 1 : last);
				farm_buf_free(&tail);
			}
		}
	}
}

/* ---- the phase ---- */

/* Take k from the cache when it is there (its image checked); 1 if so. */
static int use_cached(struct fw_state *s, struct fkey *k)
{
	struct farm_err e = { 0 };
	if (farm_fwcache_lookup(&s->g->cache, k->key, &k->ent, &e))
		return 0;
	farm_fwcache_image_path(&s->g->cache, &k->ent, k->path, sizeof k->path);
	if (farm_fwcache_log_path(&s->g->cache, k->keyhash, k->log_path, sizeof k->log_path))
		k->log_path[0] = '\0';
	k->done = k->cached = 1;
	return 1;
}

static void take_key_locks(struct fw_state *s)
{
	/* in key-hash order, so two processes never wait on each other crosswise */
	for (;;) {
		struct fkey *best = NULL;
		for (size_t i = 0; i < s->n_keys; i++) {
			struct fkey *k = &s->keys[i];
			if (k->done || k->lock_fd >= 0 || k->lock_fd == -2)
				continue;
			if (!best || strcmp(k->keyhash, best->keyhash) < 0)
				best = k;
		}
		if (!best || cancelled(s))
			return;
		struct farm_err e = { 0 };
		char name[80];
		snprintf(name, sizeof name, "key-%.64s", best->keyhash);
		int fd = farm_fwcache_lock(&s->g->cache, name, KEY_LOCK_WAIT_MS, s->o->cancel, &e);
		if (fd < 0) {
			best->lock_fd = -2;
			fail_key(best, "%s", e.msg);
			continue;
		}
		best->lock_fd = fd;
		/* another process may have made it while we waited */
		use_cached(s, best);
	}
}

static void lookup_cached(struct fw_state *s, int fetch_only)
{
	for (size_t i = 0; i < s->n_keys; i++) {
		struct fkey *k = &s->keys[i];
		if (k->done || (fetch_only && k->kind != FARM_FWGET_FETCH))
			continue;
		if (use_cached(s, k))
			note(s, k->label, k->kind == FARM_FWGET_FETCH ? "fetch" : "build",
			     "cached: %s image, sha256 %.12s...", k->ent.format, k->ent.sha256);
	}
}

static void fill_boards(struct fw_state *s)
{
	struct farm_fwget *g = s->g;
	for (size_t i = 0; i < g->n_boards; i++) {
		struct farm_fwget_board *b = &g->boards[i];
		if (s->board_key[i] == (size_t)-1) {
			if (b->failed)
				g->n_failed++;
			continue;
		}
		struct fkey *k = &s->keys[s->board_key[i]];
		if (!k->done && !k->failed)
			fail_key(k, "not done: run interrupted");
		b->failed = k->failed;
		b->infra = k->infra;
		snprintf(b->message, sizeof b->message, "%s", k->message);
		snprintf(b->path, sizeof b->path, "%s", k->path);
		snprintf(b->format, sizeof b->format, "%s", k->ent.format);
		b->base = k->ent.base;
		b->has_base = k->ent.has_base;
		snprintf(b->sha256, sizeof b->sha256, "%s", k->ent.sha256);
		if (k->kind == FARM_FWGET_BUILD) {
			snprintf(b->commit, sizeof b->commit, "%s", k->repo->commit);
			farm_git_redact(k->repo->url, b->source, sizeof b->source);
			snprintf(b->ref, sizeof b->ref, "%s", k->repo->ref);
		} else {
			farm_fetch_redact(k->url, b->source, sizeof b->source);
		}
		snprintf(b->log_path, sizeof b->log_path, "%s", k->log_path);
		b->log_tail = log_tail(k->log_path);
		b->cached = k->cached;
		b->time_s = k->cached ? 0 : k->time_s;
		if (b->failed)
			g->n_failed++;
		else if (b->cached)
			g->n_cached++;
	}
}

static unsigned ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
}

int farm_fwget_run(struct farm_fwget **out, const struct farm_inventory *inv,
		   const struct farm_board *const *boards, size_t n, const struct farm_fwget_opts *o,
		   struct farm_err *e)
{
	struct farm_fwget *g = calloc(1, sizeof *g);
	*out = g;
	if (!g)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	g->cache.run_lock_fd = -1;
	struct fw_state s = { .inv = inv, .o = o, .g = g };
	g->boards = calloc(n ? n : 1, sizeof *g->boards);
	s.keys = calloc(n ? n : 1, sizeof *s.keys);
	s.repos = calloc(n ? n : 1, sizeof *s.repos);
	s.cos = calloc(n ? n : 1, sizeof *s.cos);
	s.board_key = calloc(n ? n : 1, sizeof *s.board_key);
	int rc = 0;
	if (!g->boards || !s.keys || !s.repos || !s.cos || !s.board_key) {
		rc = farm_err_set(e, FARM_ENOMEM, "out of memory");
		goto out;
	}
	g->n_boards = n;
	size_t wanted = 0;
	for (size_t i = 0; i < n; i++) {
		const struct farm_board *b = boards[i];
		g->boards[i].board = b;
		s.board_key[i] = (size_t)-1;
		if (b->flash.method && !strcmp(b->flash.method, "none"))
			continue;
		const struct farm_fw_target *t = farm_fw_target_for(inv, b);
		if (!t || t->source == FARM_FW_FILE)
			continue;
		wanted++;
		rc = t->source == FARM_FW_FETCH ? plan_fetch(&s, i, t, e) : plan_build(&s, i, t, e);
		if (rc)
			goto out;
	}
	if (!wanted)
		goto out;
	if ((rc = farm_fwcache_open(&g->cache, o->cache_dir, 0, KEY_LOCK_WAIT_MS, o->cancel, e)))
		goto out;
	g->cache_open = 1;
	unsigned par = o->build_jobs ? o->build_jobs : 1;
	size_t n_build_keys = 0;
	for (size_t i = 0; i < s.n_keys; i++)
		n_build_keys += s.keys[i].kind == FARM_FWGET_BUILD;
	unsigned busy = par < n_build_keys ? par : (unsigned)(n_build_keys ? n_build_keys : 1);
	unsigned jobs = ncpu() / busy ? ncpu() / busy : 1;

	lookup_cached(&s, 1);
	resolve_repos(&s);
	complete_build_keys(&s);
	lookup_cached(&s, 0);
	take_key_locks(&s);
	for (size_t i = 0; i < s.n_keys && !cancelled(&s); i++)
		if (s.keys[i].kind == FARM_FWGET_FETCH && !s.keys[i].done)
			do_fetch(&s, &s.keys[i]);
	prepare_checkouts(&s, jobs);
	run_builds(&s, par, jobs);
	fill_boards(&s);
	if (cancelled(&s))
		rc = farm_err_set(e, FARM_EINTR, "interrupted");
out:
	for (size_t i = 0; i < s.n_keys; i++) {
		if (s.keys[i].proc.pid)
			farm_fwbuild_kill(&s.keys[i].proc);
		if (s.keys[i].lock_fd >= 0)
			close(s.keys[i].lock_fd);
		farm_strv_free(s.keys[i].argv, s.keys[i].argc);
	}
	for (size_t i = 0; i < s.n_cos; i++)
		farm_strv_free(s.cos[i].subs, s.cos[i].n_subs);
	free(s.keys);
	free(s.repos);
	free(s.cos);
	free(s.board_key);
	return rc;
}

void farm_fwget_free(struct farm_fwget *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n_boards; i++)
		free(g->boards[i].log_tail);
	free(g->boards);
	farm_fwcache_close(&g->cache);
	free(g);
}

const struct farm_fwget_board *farm_fwget_board(const struct farm_fwget *g, const char *board_id)
{
	for (size_t i = 0; g && i < g->n_boards; i++)
		if (!strcmp(g->boards[i].board->id, board_id))
			return &g->boards[i];
	return NULL;
}

int farm_fwget_add_case(const struct farm_fwget_board *gb, struct farm_board_result *res)
{
	if (!gb || gb->kind == FARM_FWGET_NONE)
		return 0;
	const char *name = gb->kind == FARM_FWGET_BUILD ? "build" : "fetch";
	struct farm_case *c = farm_board_add_case(res, "firmware", name);
	if (!c)
		return FARM_ENOMEM;
	c->time_s = gb->time_s;
	int rc = 0;
	if (gb->failed)
		rc = farm_case_set(c, gb->infra ? FARM_ERROR : FARM_FAIL,
				   gb->infra ? "firmware-unavailable" : "firmware-failed", "%s",
				   gb->message);
	if (rc == 0 && gb->log_tail && !(c->output = strdup(gb->log_tail)))
		rc = FARM_ENOMEM;
	const struct {
		const char *name, *value;
	} props[] = {
		{ "source", gb->source },
		{ "ref", gb->ref[0] ? gb->ref : NULL },
		{ "commit", gb->commit[0] ? gb->commit : NULL },
		{ "sha256", gb->sha256[0] ? gb->sha256 : NULL },
		{ "cached", gb->failed ? NULL : gb->cached ? "yes" : "no" },
		{ "log", gb->log_path[0] ? gb->log_path : NULL },
	};
	for (size_t i = 0; rc == 0 && i < sizeof props / sizeof props[0]; i++) {
		char board_prop[64];
		if (!props[i].value || !props[i].value[0])
			continue;
		snprintf(board_prop, sizeof board_prop, "firmware.%s", props[i].name);
		rc = farm_case_add_prop(c, props[i].name, props[i].value);
		if (rc == 0)
			rc = farm_board_add_prop(res, board_prop, props[i].value);
	}
	return rc;
}
