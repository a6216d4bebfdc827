/* Tests for farm/git.c: mirrors, ref resolution, shared checkouts and
 * submodules, against real repositories made with the git CLI (spawned with
 * argv, HOME pointing into the test's temporary directory). Results are
 * checked with the git CLI where it can see them (mirror refs, HEAD of a
 * checkout, git status), not only through mpfarm's own answers. */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "git.h"

#define ARGS_MAX 24
#define OUT_MAX 4096

/* Fixture made once for the suite (read-only for the tests but "grow",
 * which tests may add commits to). */
static struct {
	char root[256];
	char home[300];
	char src[300];   /* upstream: main (c1 "one", c2 "two"), tag v1.0 at c1, pull/1/head */
	char c1[41], c2[41], cpr[41];
	int cache_n;
} fx;

/* ---- helpers ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static void rm_tree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	size_t n = strlen(text);
	int rc = write(fd, text, n) == (ssize_t)n ? 0 : -1;
	close(fd);
	return rc;
}

static int read_text(const char *path, char *out, size_t len)
{
	struct farm_buf b = {0};
	struct farm_err e = {0};
	int rc = farm_buf_read_file(&b, path, len - 1, &e);
	if (rc == 0)
		snprintf(out, len, "%s", b.data ? b.data : "");
	farm_buf_free(&b);
	return rc;
}

/* Run git with argv (NULL-terminated) in cwd; stdout into out (trailing
 * newline cut). Returns the exit status, or -1. */
static int git_v(const char *cwd, char *out, size_t outlen, const char *const *argv)
{
	int pfd[2];
	if (pipe(pfd) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int dn = open("/dev/null", O_WRONLY);
		dup2(pfd[1], 1);
		if (dn >= 0)
			dup2(dn, 2);
		close(pfd[0]);
		if (cwd && chdir(cwd) != 0)
			_exit(126);
		execvp("git", (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	size_t got = 0;
	char sink[256];
	for (;;) {
		char *dst = out && got + 1 < outlen ? out + got : sink;
		size_t room = out && got + 1 < outlen ? outlen - 1 - got : sizeof sink;
		ssize_t r = read(pfd[0], dst, room);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (dst != sink)
			got += (size_t)r;
	}
	close(pfd[0]);
	if (out && outlen) {
		out[got] = '\0';
		while (got && (out[got - 1] == '\n' || out[got - 1] == '\r'))
			out[--got] = '\0';
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* git(cwd, out, outlen, "arg", ..., NULL) */
static int git(const char *cwd, char *out, size_t outlen, ...)
{
	const char *argv[ARGS_MAX + 2] = {"git"};
	va_list ap;
	va_start(ap, outlen);
	size_t n = 1;
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL && n < ARGS_MAX)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return git_v(cwd, out, outlen, argv);
}

static int commit_file(const char *repo, const char *file, const char *text, const char *msg,
		       char id[41])
{
	char p[512], out[OUT_MAX];
	snprintf(p, sizeof p, "%s/%s", repo, file);
	if (write_file(p, text) != 0 || git(repo, NULL, 0, "add", file, NULL) != 0 ||
	    git(repo, NULL, 0, "commit", "-q", "-m", msg, NULL) != 0 ||
	    git(repo, out, sizeof out, "rev-parse", "HEAD", NULL) != 0 || strlen(out) != 40)
		return -1;
	if (id)
		memcpy(id, out, 41);
	return 0;
}

static int new_repo(const char *path)
{
	return git(NULL, NULL, 0, "init", "-q", "-b", "main", path, NULL);
}

static void new_cache(char *out, size_t len)
{
	snprintf(out, len, "%s/cache-%d", fx.root, ++fx.cache_n);
	mkdir(out, 0777);
}

struct logs {
	struct farm_buf b;
	unsigned progress_calls;
	uint64_t last_done, last_total;
	volatile sig_atomic_t *cancel_on_progress;
};

static void log_cb(void *p, const char *line)
{
	struct logs *l = p;
	farm_buf_printf(&l->b, "%s\n", line);
}

static void progress_cb(void *p, const char *what, uint64_t done, uint64_t total)
{
	(void)what;
	struct logs *l = p;
	l->progress_calls++;
	l->last_done = done;
	l->last_total = total;
	if (l->cancel_on_progress)
		*l->cancel_on_progress = 1;
}

/* What most tests work with: a fresh cache, options logging into l, the
 * last results, and an upstream repository of their own (tc_upstream). */
struct tc {
	char cache[512], up[512], path[FARM_GIT_PATH_MAX], commit[41];
	struct logs l;
	struct farm_err e;
	struct farm_git_fetch_stats st;
	struct farm_git_opts o;
};

static void tc_begin(struct tc *t)
{
	memset(t, 0, sizeof *t);
	new_cache(t->cache, sizeof t->cache);
	t->o.cache_dir = t->cache;
	t->o.log = log_cb;
	t->o.progress = progress_cb;
	t->o.cb_p = &t->l;
}

static void no_proxy_env(void)
{
	static const char *const vars[] = {"http_proxy", "https_proxy", "HTTP_PROXY",
					   "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
		unsetenv(vars[i]);
}

/* farm_git_mirror with t's options, results into t. */
static int tmirror(struct tc *t, const char *url, const char *ref)
{
	return farm_git_mirror(&t->o, url, ref, t->path, sizeof t->path, t->commit, &t->st, &t->e);
}

static void tc_end(struct tc *t)
{
	farm_buf_free(&t->l.b);
}

/* t->up = a new repository ROOT/name with one commit (f.txt "1"), id in first. */
static int tc_upstream(struct tc *t, const char *name, char first[41])
{
	snprintf(t->up, sizeof t->up, "%s/%s", fx.root, name);
	return new_repo(t->up) == 0 && commit_file(t->up, "f.txt", "1\n", "1", first) == 0 ? 0 : -1;
}

static int count_entries(const char *dir, const char *prefix, const char *suffix)
{
	int n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -1;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name), sl = strlen(suffix);
		if (!strncmp(de->d_name, prefix, strlen(prefix)) && l >= sl &&
		    !strcmp(de->d_name + l - sl, suffix))
			n++;
	}
	closedir(d);
	return n;
}

/* As the git CLI sees it: dir's a.txt holds text, HEAD is commit, the tree is clean. */
static void assert_checkout(const char *dir, const char *text, const char *commit)
{
	char p[FARM_GIT_PATH_MAX + 16], got[OUT_MAX];
	snprintf(p, sizeof p, "%s/a.txt", dir);
	CU_ASSERT_EQUAL(read_text(p, got, sizeof got), 0);
	CU_ASSERT_STRING_EQUAL(got, text);
	CU_ASSERT_EQUAL(git(dir, got, sizeof got, "rev-parse", "HEAD", NULL), 0);
	CU_ASSERT_STRING_EQUAL(got, commit);
	CU_ASSERT_EQUAL(git(dir, got, sizeof got, "status", "--porcelain", NULL), 0);
	CU_ASSERT_STRING_EQUAL(got, "");
}

/* ---- suite fixture ---- */

static int suite_init(void)
{
	char out[OUT_MAX];
	snprintf(fx.root, sizeof fx.root, "/tmp/mpfarm-test-git-XXXXXX");
	if (!mkdtemp(fx.root))
		return -1;
	snprintf(fx.home, sizeof fx.home, "%s/home", fx.root);
	if (mkdir(fx.home, 0700) != 0)
		return -1;
	/* libgit2 here and the git CLI in children see only this config */
	setenv("HOME", fx.home, 1);
	setenv("XDG_CONFIG_HOME", fx.home, 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_AUTHOR_NAME", "mpfarm test", 1);
	setenv("GIT_AUTHOR_EMAIL", "test@mpfarm.invalid", 1);
	setenv("GIT_COMMITTER_NAME", "mpfarm test", 1);
	setenv("GIT_COMMITTER_EMAIL", "test@mpfarm.invalid", 1);
	unsetenv("MPFARM_GIT_TOKEN");
	unsetenv("GIT_DIR");
	snprintf(fx.src, sizeof fx.src, "%s/src", fx.root);
	if (new_repo(fx.src) != 0 || commit_file(fx.src, "a.txt", "one\n", "one", fx.c1) != 0 ||
	    git(fx.src, NULL, 0, "tag", "-a", "v1.0", "-m", "release 1.0", NULL) != 0 ||
	    commit_file(fx.src, "a.txt", "two\n", "two", fx.c2) != 0 ||
	    git(fx.src, NULL, 0, "checkout", "-q", "-b", "feature", NULL) != 0 ||
	    commit_file(fx.src, "b.txt", "pr\n", "pr", fx.cpr) != 0 ||
	    git(fx.src, NULL, 0, "update-ref", "refs/pull/1/head", "HEAD", NULL) != 0 ||
	    git(fx.src, NULL, 0, "checkout", "-q", "main", NULL) != 0 ||
	    git(fx.src, NULL, 0, "branch", "-q", "-D", "feature", NULL) != 0 ||
	    git(fx.src, out, sizeof out, "rev-parse", "refs/pull/1/head", NULL) != 0 ||
	    strcmp(out, fx.cpr) != 0)
		return -1;
	return 0;
}

static int suite_clean(void)
{
	if (fx.root[0])
		rm_tree(fx.root);
	return 0;
}

/* ---- tests ---- */

static void test_resolve_refs(void)
{
	char out[OUT_MAX];
	struct tc t;
	tc_begin(&t);

	const struct {
		const char *ref;
		const char *want;
	} cases[] = {
		{"main", fx.c2},
		{"refs/heads/main", fx.c2},
		{"v1.0", fx.c1},      /* annotated tag, peeled to its commit */
		{fx.c1, fx.c1},       /* full id */
		{"pull/1/head", fx.cpr},
		{"refs/pull/1/head", fx.cpr},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = tmirror(&t, fx.src, cases[i].ref);
		CU_ASSERT_EQUAL(rc, 0);
		if (rc)
			fprintf(stderr, "ref %s: %s\n", cases[i].ref, t.e.msg);
		CU_ASSERT_STRING_EQUAL(t.commit, cases[i].want);
	}
	/* abbreviated ids, of a commit and of the PR commit */
	char abbrev[8];
	snprintf(abbrev, sizeof abbrev, "%.7s", fx.c1);
	CU_ASSERT_EQUAL(tmirror(&t, fx.src, abbrev), 0);
	CU_ASSERT_STRING_EQUAL(t.commit, fx.c1);
	snprintf(abbrev, sizeof abbrev, "%.7s", fx.cpr);
	CU_ASSERT_EQUAL(tmirror(&t, fx.src, abbrev), 0);
	CU_ASSERT_STRING_EQUAL(t.commit, fx.cpr);

	/* the mirror is a bare repository in CACHE/git named <name>-<hash16>.git,
	 * and the git CLI sees the branch, the tag and the PR ref in it */
	char gitdir[600];
	snprintf(gitdir, sizeof gitdir, "%s/git/", t.cache);
	CU_ASSERT_EQUAL(strncmp(t.path, gitdir, strlen(gitdir)), 0);
	CU_ASSERT_EQUAL(strlen(t.path), strlen(gitdir) + strlen("src-0123456789abcdef.git"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t.path, "/src-"));
	CU_ASSERT_EQUAL(git(t.path, out, sizeof out, "rev-parse", "--is-bare-repository", NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "true");
	CU_ASSERT_EQUAL(git(t.path, out, sizeof out, "rev-parse", "refs/heads/main", NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, fx.c2);
	CU_ASSERT_EQUAL(git(t.path, out, sizeof out, "rev-parse", "v1.0^{commit}", NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, fx.c1);
	CU_ASSERT_EQUAL(git(t.path, out, sizeof out, "rev-parse", "refs/pull/1/head", NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, fx.cpr);
	/* one mirror only, no temporary directory left */
	snprintf(gitdir, sizeof gitdir, "%s/git", t.cache);
	CU_ASSERT_EQUAL(count_entries(gitdir, "", ".git"), 1);
	CU_ASSERT_EQUAL(count_entries(gitdir, "tmp-", ""), 0);
	/* the log said what was fetched and resolved */
	CU_ASSERT_PTR_NOT_NULL(t.l.b.data && strstr(t.l.b.data, "fetch "));
	CU_ASSERT(t.l.progress_calls > 0);
	tc_end(&t);
}

static void test_fetch_picks_up_new_commits(void)
{
	char out[OUT_MAX];
	char g1[41], g2[41];
	struct tc t;
	tc_begin(&t);
	CU_ASSERT_FATAL(tc_upstream(&t, "grow", g1) == 0);
	CU_ASSERT_FATAL(git(t.up, NULL, 0, "branch", "old", NULL) == 0);

	CU_ASSERT_EQUAL(tmirror(&t, t.up, "main"), 0);
	CU_ASSERT_STRING_EQUAL(t.commit, g1);
	CU_ASSERT_EQUAL(t.st.fetched, 1);
	CU_ASSERT_EQUAL(t.st.objects, 3); /* commit, tree, blob */
	CU_ASSERT(t.st.bytes > 0);

	/* a new commit upstream, and a branch deleted there */
	CU_ASSERT_FATAL(commit_file(t.up, "f.txt", "2\n", "2", g2) == 0);
	CU_ASSERT_FATAL(git(t.up, NULL, 0, "branch", "-q", "-D", "old", NULL) == 0);
	CU_ASSERT_EQUAL(tmirror(&t, t.up, "main"), 0);
	CU_ASSERT_STRING_EQUAL(t.commit, g2);
	CU_ASSERT_EQUAL(t.st.fetched, 1);
	CU_ASSERT_EQUAL(t.st.objects, 3);
	CU_ASSERT_EQUAL(git(t.path, out, sizeof out, "rev-parse", "refs/heads/main", NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, g2);
	/* pruned */
	CU_ASSERT_NOT_EQUAL(
		git(t.path, NULL, 0, "rev-parse", "-q", "--verify", "refs/heads/old", NULL), 0);

	/* nothing new: a fetch, no objects */
	CU_ASSERT_EQUAL(tmirror(&t, t.up, "main"), 0);
	CU_ASSERT_STRING_EQUAL(t.commit, g2);
	CU_ASSERT_EQUAL(t.st.fetched, 1);
	CU_ASSERT_EQUAL(t.st.objects, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.l.b.data, "up to date"));
	tc_end(&t);
}

static void test_commit_id_needs_no_fetch(void)
{
	char gone[512];
	char g1[41];
	struct tc t;
	tc_begin(&t);
	snprintf(gone, sizeof gone, "%s/nofetch-moved", fx.root);
	CU_ASSERT_FATAL(tc_upstream(&t, "nofetch", g1) == 0);
	CU_ASSERT_EQUAL(tmirror(&t, t.up, "main"), 0);
	CU_ASSERT_EQUAL(t.st.fetched, 1);

	/* upstream gone: a commit id in the mirror still resolves, without a fetch */
	CU_ASSERT_FATAL(rename(t.up, gone) == 0);
	memset(&t.st, 0x55, sizeof t.st);
	CU_ASSERT_EQUAL(tmirror(&t, t.up, g1), 0);
	CU_ASSERT_STRING_EQUAL(t.commit, g1);
	CU_ASSERT_EQUAL(t.st.fetched, 0);
	CU_ASSERT_EQUAL(t.st.objects, 0);
	/* a branch needs the fetch, which now fails: unknown repository */
	int rc = tmirror(&t, t.up, "main");
	CU_ASSERT_EQUAL(rc, FARM_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.e.msg, t.up));
	CU_ASSERT_PTR_NOT_NULL(strstr(t.e.msg, "not found"));
	CU_ASSERT_EQUAL(t.commit[0], '\0');
	CU_ASSERT_FATAL(rename(gone, t.up) == 0);
	tc_end(&t);
}

static void test_offline(void)
{
	char g1[41], g2[41];
	struct tc t;
	tc_begin(&t);
	CU_ASSERT_FATAL(tc_upstream(&t, "offline", g1) == 0);

	t.o.offline = 1;
	CU_ASSERT_EQUAL(tmirror(&t, t.up, "main"), FARM_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.e.msg, "offline"));
	char gitdir[600];
	snprintf(gitdir, sizeof gitdir, "%s/git", t.cache);
	CU_ASSERT_EQUAL(count_entries(gitdir, "", ".git"), 0);

	t.o.offline = 0;
	CU_ASSERT_EQUAL(tmirror(&t, t.up, "main"), 0);
	CU_ASSERT_FATAL(commit_file(t.up, "f.txt", "2\n", "2", g2) == 0);
	t.o.offline = 1;
	CU_ASSERT_EQUAL(tmirror(&t, t.up, "main"), 0);
	CU_ASSERT_STRING_EQUAL(t.commit, g1); /* what the mirror holds: nothing fetched */
	CU_ASSERT_EQUAL(t.st.fetched, 0);
	CU_ASSERT_EQUAL(tmirror(&t, t.up, g2), FARM_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.e.msg, g2));
	t.o.offline = 0;
	CU_ASSERT_EQUAL(tmirror(&t, t.up, g2), 0);
	CU_ASSERT_EQUAL(t.st.fetched, 1);
	CU_ASSERT_STRING_EQUAL(t.commit, g2);
	tc_end(&t);
}

static void test_unknown_and_invalid_refs(void)
{
	struct tc t;
	tc_begin(&t);

	CU_ASSERT_EQUAL(tmirror(&t, fx.src, "mian"), FARM_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.e.msg, "\"mian\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(t.e.msg, fx.src));
	CU_ASSERT_PTR_NOT_NULL(strstr(t.e.msg, "did you mean \"main\""));
	CU_ASSERT_EQUAL(t.commit[0], '\0');
	CU_ASSERT_EQUAL(tmirror(&t, fx.src, "v1.1"), FARM_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.e.msg, "did you mean \"v1.0\""));
	CU_ASSERT_EQUAL(tmirror(&t, fx.src, "pull/2/head"), FARM_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.e.msg, "pull/2/head"));
	/* a well-formed id that is nowhere */
	CU_ASSERT_EQUAL(tmirror(&t, fx.src, "0123456789abcdef0123456789abcdef01234567"),
			FARM_ENOTFOUND);
	CU_ASSERT_EQUAL(tmirror(&t, fx.src, "deadbeef"), FARM_ENOTFOUND);

	/* rejected before any work */
	char longref[FARM_GIT_REF_MAX + 8];
	memset(longref, 'a', sizeof longref - 1);
	longref[sizeof longref - 1] = '\0';
	CU_ASSERT_EQUAL(tmirror(&t, fx.src, longref), FARM_ELIMIT);
	CU_ASSERT_EQUAL(tmirror(&t, fx.src, "a..b"), FARM_EINVAL);
	CU_ASSERT_EQUAL(tmirror(&t, fx.src, "-main"), FARM_EINVAL);
	CU_ASSERT_EQUAL(tmirror(&t, fx.src, "ma\nin"), FARM_EINVAL);
	CU_ASSERT_EQUAL(tmirror(&t, fx.src, "main:x"), FARM_EINVAL);
	CU_ASSERT_EQUAL(tmirror(&t, fx.src, ""), FARM_EINVAL);
	CU_ASSERT_EQUAL(tmirror(&t, "-oProxyCommand=x", "main"), FARM_EINVAL);
	CU_ASSERT_EQUAL(tmirror(&t, "x\x01y", "main"), FARM_EINVAL);
	/* a ref of exactly FARM_GIT_REF_MAX - 1 bytes is allowed (and unknown) */
	longref[FARM_GIT_REF_MAX - 1] = '\0';
	CU_ASSERT_EQUAL(tmirror(&t, fx.src, longref), FARM_ENOTFOUND);
	tc_end(&t);
}

static void test_unknown_repository(void)
{
	char url[600];
	struct tc t;
	tc_begin(&t);
	snprintf(url, sizeof url, "%s/no-such-repo.git", fx.root);

	CU_ASSERT_EQUAL(tmirror(&t, url, "main"), FARM_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.e.msg, url));
	CU_ASSERT_PTR_NOT_NULL(strstr(t.e.msg, "not found"));
	/* no mirror (nor a half-made one) left behind for a repository that is not there */
	char gitdir[600];
	snprintf(gitdir, sizeof gitdir, "%s/git", t.cache);
	CU_ASSERT_EQUAL(count_entries(gitdir, "", ".git"), 0);
	CU_ASSERT_EQUAL(count_entries(gitdir, "tmp-", ""), 0);
	tc_end(&t);
}

static void test_checkout_made_once(void)
{
	char mpath[FARM_GIT_PATH_MAX], dir[FARM_GIT_PATH_MAX];
	char dir2[FARM_GIT_PATH_MAX], dir1[FARM_GIT_PATH_MAX], p[FARM_GIT_PATH_MAX + 32];
	char out[OUT_MAX];
	struct tc t;
	tc_begin(&t);

	CU_ASSERT_FATAL(tmirror(&t, fx.src, "main") == 0);
	snprintf(mpath, sizeof mpath, "%s", t.path);
	CU_ASSERT_EQUAL(farm_git_checkout(&t.o, mpath, t.commit, dir, sizeof dir, &t.e), 0);
	char want[600];
	snprintf(want, sizeof want, "%s/src/src-%.12s", t.cache, fx.c2);
	CU_ASSERT_STRING_EQUAL(dir, want);
	assert_checkout(dir, "two\n", fx.c2);
	/* the objects are the mirror's (git clone --shared) */
	snprintf(p, sizeof p, "%s/.git/objects/info/alternates", dir);
	CU_ASSERT_EQUAL(read_text(p, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "/objects"));

	/* reused: same path, the very same directory (a mark survives) */
	snprintf(p, sizeof p, "%s/.git/mpfarm-test-mark", dir);
	CU_ASSERT_FATAL(write_file(p, "x") == 0);
	CU_ASSERT_EQUAL(farm_git_checkout(&t.o, mpath, t.commit, dir2, sizeof dir2, &t.e), 0);
	CU_ASSERT_STRING_EQUAL(dir2, dir);
	CU_ASSERT_EQUAL(access(p, F_OK), 0);

	/* another commit: its own directory */
	CU_ASSERT_EQUAL(farm_git_checkout(&t.o, mpath, fx.c1, dir1, sizeof dir1, &t.e), 0);
	CU_ASSERT_STRING_NOT_EQUAL(dir1, dir);
	assert_checkout(dir1, "one\n", fx.c1);

	/* bad arguments */
	CU_ASSERT_EQUAL(farm_git_checkout(&t.o, mpath, "main", dir1, sizeof dir1, &t.e), FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_git_checkout(&t.o, mpath, fx.c1, dir1, 8, &t.e), FARM_ELIMIT);
	/* a commit the mirror does not have */
	CU_ASSERT_EQUAL(farm_git_checkout(&t.o, mpath, "0123456789abcdef0123456789abcdef01234567",
					  dir1, sizeof dir1, &t.e),
			FARM_ENOTFOUND);
	char srcdir[600];
	snprintf(srcdir, sizeof srcdir, "%s/src", t.cache);
	CU_ASSERT_EQUAL(count_entries(srcdir, "tmp-", ""), 0);
	CU_ASSERT_EQUAL(count_entries(srcdir, "src-0123456789ab", ""), 1); /* its lock file only */
	tc_end(&t);
}

static void test_half_made_checkout_not_used(void)
{
	char mpath[FARM_GIT_PATH_MAX], dir[FARM_GIT_PATH_MAX];
	char tmp[700], p[FARM_GIT_PATH_MAX + 32];
	struct tc t;
	tc_begin(&t);
	CU_ASSERT_FATAL(tmirror(&t, fx.src, "main") == 0);
	snprintf(mpath, sizeof mpath, "%s", t.path);

	/* what a process killed half way leaves: a temporary directory with a
	 * repository and a wrong file in it */
	snprintf(tmp, sizeof tmp, "%s/src", t.cache);
	mkdir(tmp, 0777);
	snprintf(tmp, sizeof tmp, "%s/src/tmp-src-%.12s-AbCdEf", t.cache, fx.c2);
	CU_ASSERT_FATAL(mkdir(tmp, 0777) == 0);
	CU_ASSERT_FATAL(git(tmp, NULL, 0, "init", "-q", NULL) == 0);
	snprintf(p, sizeof p, "%s/a.txt", tmp);
	CU_ASSERT_FATAL(write_file(p, "half\n") == 0);

	CU_ASSERT_EQUAL(farm_git_checkout(&t.o, mpath, t.commit, dir, sizeof dir, &t.e), 0);
	CU_ASSERT_PTR_NULL(strstr(dir, "tmp-"));
	assert_checkout(dir, "two\n", fx.c2);
	CU_ASSERT_NOT_EQUAL(access(tmp, F_OK), 0); /* cleaned up */
	CU_ASSERT_PTR_NOT_NULL(strstr(t.l.b.data, "half-made"));
	tc_end(&t);
}

static void test_submodules(void)
{
	char sup[512], lib[512], lib2[512], mpath[FARM_GIT_PATH_MAX];
	char dir[FARM_GIT_PATH_MAX], p[FARM_GIT_PATH_MAX + 64], q[600], text[OUT_MAX];
	char out[OUT_MAX], mods[OUT_MAX], l1[41], l2[41], r1[41];
	struct tc t;
	tc_begin(&t);

	/* lib: L1 recorded by the superproject, then L2 upstream (must not be used) */
	snprintf(lib, sizeof lib, "%s/lib", fx.root);
	snprintf(lib2, sizeof lib2, "%s/lib2", fx.root);
	snprintf(sup, sizeof sup, "%s/super", fx.root);
	CU_ASSERT_FATAL(new_repo(lib) == 0 && commit_file(lib, "lib.txt", "lib v1\n", "v1", l1) == 0);
	CU_ASSERT_FATAL(new_repo(lib2) == 0 && commit_file(lib2, "r.txt", "rel\n", "r", r1) == 0);
	CU_ASSERT_FATAL(new_repo(sup) == 0 && commit_file(sup, "main.c", "int x;\n", "m", NULL) == 0);
	CU_ASSERT_FATAL(git(sup, NULL, 0, "-c", "protocol.file.allow=always", "submodule", "add", "-q",
			    lib, "lib/sub", NULL) == 0);
	CU_ASSERT_FATAL(git(sup, NULL, 0, "-c", "protocol.file.allow=always", "submodule", "add", "-q",
			    "../lib2", "lib/rel", NULL) == 0);
	CU_ASSERT_FATAL(git(sup, NULL, 0, "commit", "-q", "-m", "subs", NULL) == 0);
	CU_ASSERT_FATAL(commit_file(lib, "lib.txt", "lib v2\n", "v2", l2) == 0);
	snprintf(q, sizeof q, "%s/.gitmodules", sup);
	CU_ASSERT_FATAL(read_text(q, mods, sizeof mods) == 0);
	CU_ASSERT_FATAL(strstr(mods, "../lib2") != NULL);

	CU_ASSERT_FATAL(tmirror(&t, sup, "main") == 0);
	snprintf(mpath, sizeof mpath, "%s", t.path);
	CU_ASSERT_FATAL(farm_git_checkout(&t.o, mpath, t.commit, dir, sizeof dir, &t.e) == 0);
	const char *const both[] = {"lib/sub", "lib/rel"};
	int rc = farm_git_submodules(&t.o, dir, sup, both, 2, &t.e);
	CU_ASSERT_EQUAL(rc, 0);
	if (rc)
		fprintf(stderr, "submodules: %s\n", t.e.msg);
	snprintf(p, sizeof p, "%s/lib/sub/lib.txt", dir);
	CU_ASSERT_EQUAL(read_text(p, text, sizeof text), 0);
	CU_ASSERT_STRING_EQUAL(text, "lib v1\n");
	snprintf(p, sizeof p, "%s/lib/rel/r.txt", dir);
	CU_ASSERT_EQUAL(read_text(p, text, sizeof text), 0);
	CU_ASSERT_STRING_EQUAL(text, "rel\n");
	snprintf(p, sizeof p, "%s/lib/sub", dir);
	CU_ASSERT_EQUAL(git(p, out, sizeof out, "rev-parse", "HEAD", NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, l1);
	/* the superproject's git sees clean submodules at the recorded commits */
	CU_ASSERT_EQUAL(git(dir, out, sizeof out, "status", "--porcelain", NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "");
	CU_ASSERT_EQUAL(git(dir, out, sizeof out, "submodule", "status", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, l1));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, r1));
	CU_ASSERT_PTR_NULL(strchr(out, '+'));
	CU_ASSERT_PTR_NULL(strchr(out, '-'));
	snprintf(p, sizeof p, "%s/.gitmodules", dir);
	CU_ASSERT_EQUAL(read_text(p, text, sizeof text), 0);
	CU_ASSERT_STRING_EQUAL(text, mods);
	/* each from its own mirror under CACHE/git, shared through alternates */
	snprintf(q, sizeof q, "%s/git", t.cache);
	CU_ASSERT_EQUAL(count_entries(q, "lib-", ".git"), 1);
	CU_ASSERT_EQUAL(count_entries(q, "lib2-", ".git"), 1);
	CU_ASSERT_EQUAL(git(dir, out, sizeof out, "config", "submodule.lib/sub.url", NULL), 0);
	CU_ASSERT_EQUAL(strncmp(out, q, strlen(q)), 0);

	/* again: left alone */
	t.l.b.len = 0;
	CU_ASSERT_EQUAL(farm_git_submodules(&t.o, dir, sup, both, 2, &t.e), 0);
	CU_ASSERT_PTR_NOT_NULL(t.l.b.data && strstr(t.l.b.data, "lib/sub: at"));
	CU_ASSERT_PTR_NOT_NULL(t.l.b.data && strstr(t.l.b.data, "already"));

	/* a damaged submodule work tree is made right again */
	snprintf(p, sizeof p, "%s/lib/sub/lib.txt", dir);
	CU_ASSERT_FATAL(write_file(p, "scribbled\n") == 0);
	CU_ASSERT_EQUAL(farm_git_submodules(&t.o, dir, sup, both, 1, &t.e), 0);
	CU_ASSERT_EQUAL(read_text(p, text, sizeof text), 0);
	CU_ASSERT_STRING_EQUAL(text, "lib v1\n");
	CU_ASSERT_EQUAL(git(dir, out, sizeof out, "status", "--porcelain", NULL), 0);
	CU_ASSERT_STRING_EQUAL(out, "");

	/* not a submodule */
	const char *const nope[] = {"lib/nope"};
	CU_ASSERT_EQUAL(farm_git_submodules(&t.o, dir, sup, nope, 1, &t.e), FARM_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.e.msg, "lib/nope"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t.e.msg, "lib/sub"));
	const char *const file[] = {"main.c"};
	CU_ASSERT_EQUAL(farm_git_submodules(&t.o, dir, sup, file, 1, &t.e), FARM_ENOTFOUND);
	const char *const above[] = {"../x"};
	CU_ASSERT_EQUAL(farm_git_submodules(&t.o, dir, sup, above, 1, &t.e), FARM_EINVAL);
	tc_end(&t);
}

static void test_two_processes(void)
{
	char cache[512];
	new_cache(cache, sizeof cache);
	struct {
		int rc;
		char commit[41];
		char msg[FARM_ERR_MSG_MAX];
	} res[2];
	pid_t pids[2];
	int fds[2];
	for (int i = 0; i < 2; i++) {
		int pfd[2];
		CU_ASSERT_FATAL(pipe(pfd) == 0);
		pids[i] = fork();
		CU_ASSERT_FATAL(pids[i] >= 0);
		if (pids[i] == 0) {
			close(pfd[0]);
			memset(&res[0], 0, sizeof res[0]);
			struct farm_git_opts o;
			memset(&o, 0, sizeof o);
			o.cache_dir = cache;
			struct farm_err e = {0};
			struct farm_git_fetch_stats st;
			char path[FARM_GIT_PATH_MAX];
			res[0].rc = farm_git_mirror(&o, fx.src, "main", path, sizeof path, res[0].commit,
						    &st, &e);
			snprintf(res[0].msg, sizeof res[0].msg, "%s", e.msg);
			_exit(write(pfd[1], &res[0], sizeof res[0]) == (ssize_t)sizeof res[0] ? 0 : 1);
		}
		close(pfd[1]);
		fds[i] = pfd[0];
	}
	for (int i = 0; i < 2; i++) {
		memset(&res[i], 0, sizeof res[i]);
		res[i].rc = 99;
		size_t got = 0;
		while (got < sizeof res[i]) {
			ssize_t r = read(fds[i], (char *)&res[i] + got, sizeof res[i] - got);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		close(fds[i]);
		int wst;
		CU_ASSERT_EQUAL(waitpid(pids[i], &wst, 0), pids[i]);
		CU_ASSERT(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
		CU_ASSERT_EQUAL(res[i].rc, 0);
		if (res[i].rc)
			fprintf(stderr, "process %d: %s\n", i, res[i].msg);
		CU_ASSERT_STRING_EQUAL(res[i].commit, fx.c2);
	}
	char gitdir[600];
	snprintf(gitdir, sizeof gitdir, "%s/git", cache);
	CU_ASSERT_EQUAL(count_entries(gitdir, "", ".git"), 1);
	CU_ASSERT_EQUAL(count_entries(gitdir, "tmp-", ""), 0);
}

static void test_lock_busy(void)
{
	char lock[FARM_GIT_PATH_MAX + 8];
	struct tc t;
	tc_begin(&t);
	CU_ASSERT_FATAL(tmirror(&t, fx.src, "main") == 0);
	snprintf(lock, sizeof lock, "%s.lock", t.path);
	int fd = open(lock, O_RDWR | O_CLOEXEC);
	CU_ASSERT_FATAL(fd >= 0);
	/* a separate open file description: held as another process would */
	CU_ASSERT_FATAL(flock(fd, LOCK_EX | LOCK_NB) == 0);
	t.o.lock_wait_ms = 30;
	CU_ASSERT_EQUAL(tmirror(&t, fx.src, "main"), FARM_EBUSY);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.e.msg, "lock"));
	close(fd);
	CU_ASSERT_EQUAL(tmirror(&t, fx.src, "main"), 0);
	tc_end(&t);
}

static void test_redact(void)
{
	char out[256];
	const struct {
		const char *in, *want;
	} cases[] = {
		{"https://user:tok@host/x.git", "https://host/x.git"},
		{"https://tok@host/x.git", "https://host/x.git"},
		{"https://host/x.git?access_token=tok#f", "https://host/x.git"},
		{"ssh://git@host:22/x.git", "ssh://host:22/x.git"},
		{"git@github.com:org/x.git", "git@github.com:org/x.git"},
		{"/srv/git/x.git", "/srv/git/x.git"},
		{"https://host/a@b", "https://host/a@b"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		farm_git_redact(cases[i].in, out, sizeof out);
		CU_ASSERT_STRING_EQUAL(out, cases[i].want);
	}
	farm_git_redact("https://user:tok@host/x.git", out, 10);
	CU_ASSERT_EQUAL(strlen(out), 9);
	CU_ASSERT_PTR_NULL(strstr(out, "tok"));

	/* a failing fetch of a URL with credentials: the message names the URL
	 * without them (port 1 on loopback refuses at once) */
	struct tc t;
	tc_begin(&t);
	no_proxy_env();
	int rc = tmirror(&t, "https://user:s3cretTok@127.0.0.1:1/x.git", "main");
	CU_ASSERT(rc < 0);
	CU_ASSERT_PTR_NULL(strstr(t.e.msg, "s3cretTok"));
	CU_ASSERT_PTR_NULL(strstr(t.e.msg, "user"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t.e.msg, "https://127.0.0.1:1/x.git"));
	CU_ASSERT_PTR_NULL(t.l.b.data ? strstr(t.l.b.data, "s3cretTok") : NULL);
	CU_ASSERT_PTR_NULL(strstr(t.path, "s3cretTok"));
	tc_end(&t);
}

/* An HTTP server on loopback answering every request with 401; for each
 * request it writes 'A' (had an Authorization header) or 'N' to report. */
static pid_t http_401_server(int *port, int report)
{
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 8) != 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &al) != 0)
		return -1;
	*port = ntohs(a.sin_port);
	pid_t pid = fork();
	if (pid != 0) {
		close(ls);
		return pid;
	}
	alarm(20); /* never outlive a broken test */
	for (;;) {
		int c = accept(ls, NULL, NULL);
		if (c < 0)
			_exit(0);
		char req[8192];
		size_t got = 0;
		while (got + 1 < sizeof req && !memmem(req, got, "\r\n\r\n", 4)) {
			ssize_t r = read(c, req + got, sizeof req - 1 - got);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		req[got] = '\0';
		char mark = strcasestr(req, "\nAuthorization:") ? 'A' : 'N';
		static const char resp[] = "HTTP/1.1 401 Unauthorized\r\n"
					   "WWW-Authenticate: Basic realm=\"mpfarm\"\r\n"
					   "Content-Length: 0\r\nConnection: close\r\n\r\n";
		if (write(c, resp, sizeof resp - 1) < 0 || write(report, &mark, 1) != 1)
			_exit(1);
		close(c);
	}
}

static void test_credentials_over_http(void)
{
	struct tc t;
	tc_begin(&t);
	no_proxy_env();
	int pfd[2], port = 0;
	CU_ASSERT_FATAL(pipe(pfd) == 0);
	pid_t srv = http_401_server(&port, pfd[1]);
	CU_ASSERT_FATAL(srv > 0);
	close(pfd[1]);
	char url[128];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/org/repo.git", port);

	/* no token: asked for credentials, none to give: one clear error */
	int rc = tmirror(&t, url, "main");
	CU_ASSERT_EQUAL(rc, FARM_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.e.msg, "credentials"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t.e.msg, url));
	/* a token is never sent over plain http, and a refusal does not loop */
	setenv("MPFARM_GIT_TOKEN", "s3cretTok", 1);
	rc = tmirror(&t, url, "main");
	unsetenv("MPFARM_GIT_TOKEN");
	CU_ASSERT(rc < 0);
	CU_ASSERT_PTR_NULL(strstr(t.e.msg, "s3cretTok"));
	kill(srv, SIGTERM);
	waitpid(srv, NULL, 0);
	char marks[64];
	ssize_t n = read(pfd[0], marks, sizeof marks);
	close(pfd[0]);
	CU_ASSERT(n >= 2 && n <= 4); /* about one request per call */
	CU_ASSERT(n > 0 && !memchr(marks, 'A', (size_t)n));
	tc_end(&t);
}

static void test_cancel(void)
{
	char dir[FARM_GIT_PATH_MAX];
	volatile sig_atomic_t flag = 1;
	struct tc t;
	tc_begin(&t);
	t.o.cancel = &flag;
	CU_ASSERT_EQUAL(tmirror(&t, fx.src, "main"), FARM_EINTR);
	CU_ASSERT_EQUAL(farm_git_checkout(&t.o, "/nonexistent.git", fx.c1, dir, sizeof dir, &t.e),
			FARM_EINTR);
	const char *const one[] = {"lib/sub"};
	CU_ASSERT_EQUAL(farm_git_submodules(&t.o, "/nonexistent", NULL, one, 1, &t.e), FARM_EINTR);
	char gitdir[600];
	snprintf(gitdir, sizeof gitdir, "%s/git", t.cache);
	CU_ASSERT_EQUAL(count_entries(gitdir, "", ".git"), 0);

	/* set while objects arrive: the fetch stops, no mirror is left */
	flag = 0;
	t.l.cancel_on_progress = &flag;
	CU_ASSERT_EQUAL(tmirror(&t, fx.src, "main"), FARM_EINTR);
	CU_ASSERT(t.l.progress_calls >= 1);
	CU_ASSERT_EQUAL(count_entries(gitdir, "", ".git"), 0);
	CU_ASSERT_EQUAL(count_entries(gitdir, "tmp-", ""), 0);
	tc_end(&t);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("git", suite_init, suite_clean);
	if (!s)
		return -1;
	const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{"branch, tag, full/abbreviated id, pull/N/head", test_resolve_refs},
		{"fetch picks up new commits, prunes, then nothing", test_fetch_picks_up_new_commits},
		{"commit id in the mirror needs no fetch", test_commit_id_needs_no_fetch},
		{"offline", test_offline},
		{"unknown and invalid refs", test_unknown_and_invalid_refs},
		{"unknown repository", test_unknown_repository},
		{"checkout made once, reused, per commit", test_checkout_made_once},
		{"half-made checkout not used", test_half_made_checkout_not_used},
		{"submodules from their own mirrors", test_submodules},
		{"two processes update one mirror", test_two_processes},
		{"lock held elsewhere is busy", test_lock_busy},
		{"redaction", test_redact},
		{"credentials over http", test_credentials_over_http},
		{"cancel", test_cancel},
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
