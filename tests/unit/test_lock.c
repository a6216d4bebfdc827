/* Tests for farm/lock.c: board/resource locks across processes.
 * Other processes are forked children; they report through pipes and end
 * with _exit(), never touching CUnit. No test asserts wall-clock speed. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "lock.h"

/* ---- helpers ---- */

static int make_tmp(char *dir, size_t len)
{
	snprintf(dir, len, "/tmp/mpfarm-test-lock-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_tree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int write_file(const char *path, const void *data, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	int rc = write(fd, data, n) == (ssize_t)n ? 0 : -1;
	close(fd);
	return rc;
}

static struct farm_lock_owner owner(const char *run_id, const char *what)
{
	struct farm_lock_owner o;
	memset(&o, 0, sizeof o);
	snprintf(o.run_id, sizeof o.run_id, "%s", run_id);
	snprintf(o.what, sizeof o.what, "%s", what);
	return o;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int read_all(int fd, void *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

struct probe_result {
	int rc;
	struct farm_lock_owner holder;
	char msg[FARM_ERR_MSG_MAX];
};

/* Try the lock from another process; the child releases and exits at once. */
static int probe(const char *dir, const char *id, int wait_ms, struct probe_result *res)
{
	int p[2];
	memset(res, 0, sizeof *res);
	res->rc = 99;
	if (pipe(p) != 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct probe_result r;
		struct farm_err e = {0};
		struct farm_lock *l = NULL;
		struct farm_lock_owner me = owner("probe-run", "probe");
		memset(&r, 0, sizeof r);
		close(p[0]);
		r.rc = farm_lock_acquire(&l, dir, "board", id, &me, wait_ms, NULL, &r.holder, &e);
		memcpy(r.msg, e.msg, sizeof r.msg);
		farm_lock_release(l);
		_exit(write(p[1], &r, sizeof r) == (ssize_t)sizeof r ? 0 : 1);
	}
	close(p[1]);
	int ok = read_all(p[0], res, sizeof *res);
	close(p[0]);
	int st = 0;
	waitpid(pid, &st, 0);
	return ok == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* A child that takes the lock, says so, then on 'r' sleeps 300 ms and
 * releases; on EOF or 'x' it exits without releasing. */
struct holder {
	pid_t pid;
	int cmd;   /* write end: commands to the child */
	int ready; /* read end: the child's acquire result */
};

static int holder_start(struct holder *h, const char *dir, const char *id)
{
	int c[2], r[2];
	if (pipe(c) != 0)
		return -1;
	if (pipe(r) != 0) {
		close(c[0]);
		close(c[1]);
		return -1;
	}
	fflush(NULL);
	h->pid = fork();
	if (h->pid < 0)
		return -1;
	if (h->pid == 0) {
		struct farm_err e = {0};
		struct farm_lock *l = NULL;
		struct farm_lock_owner me = owner("child-run", "board held by a child");
		close(c[1]);
		close(r[0]);
		int rc = farm_lock_acquire(&l, dir, "board", id, &me, 0, NULL, NULL, &e);
		signed char b = (signed char)rc;
		if (write(r[1], &b, 1) != 1 || rc)
			_exit(1);
		char cmd = 0;
		if (read(c[0], &cmd, 1) == 1 && cmd == 'r') {
			sleep_ms(300);
			farm_lock_release(l);
			_exit(0);
		}
		_exit(0); /* exit still holding it: the kernel drops the lock */
	}
	close(c[0]);
	close(r[1]);
	h->cmd = c[1];
	h->ready = r[0];
	signed char b = 99;
	int ok = read_all(h->ready, &b, 1);
	return ok == 0 && b == 0 ? 0 : -1;
}

static void holder_send(struct holder *h, char cmd)
{
	CU_ASSERT_EQUAL(write(h->cmd, &cmd, 1), 1);
}

static int holder_wait(struct holder *h)
{
	int st = 0;
	close(h->cmd);
	close(h->ready);
	waitpid(h->pid, &st, 0);
	return st;
}

/* ---- tests ---- */

static void test_acquire_release_record(void)
{
	char dir[64], path[128];
	struct farm_err e = {0};
	struct farm_lock *l = NULL;
	struct farm_lock_owner me = owner("20261121-1845-ab12", "board pico-1");
	CU_ASSERT_EQUAL_FATAL(make_tmp(dir, sizeof dir), 0);

	CU_ASSERT_EQUAL_FATAL(farm_lock_acquire(&l, dir, "board", "pico-1", &me, 0, NULL, NULL, &e), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	snprintf(path, sizeof path, "%s/board-pico-1.lock", dir);
	CU_ASSERT_STRING_EQUAL(farm_lock_path(l), path);

	struct farm_buf b = {0};
	CU_ASSERT_EQUAL_FATAL(farm_buf_read_file(&b, path, 4096, &e), 0);
	char want[64];
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "mpfarm-lock=1\n"));
	snprintf(want, sizeof want, "\npid=%d\n", (int)getpid());
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, want));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\nrun_id=20261121-1845-ab12\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\nwhat=board pico-1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\nhost="));
	const char *st = strstr(b.data, "\nstarted=");
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	st += 9; /* "2026-11-21T18:45:40Z\n" */
	CU_ASSERT(strlen(st) >= 21 && st[4] == '-' && st[10] == 'T' && st[19] == 'Z' &&
		  st[20] == '\n');
	farm_buf_free(&b);

	farm_lock_release(l);
	farm_lock_release(NULL);
	CU_ASSERT_EQUAL(access(path, F_OK), 0); /* never unlinked */

	/* Free again: reacquire, also with no owner given; resources too. */
	l = NULL;
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "board", "pico-1", NULL, 0, NULL, NULL, &e), 0);
	farm_lock_release(l);
	l = NULL;
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "resource", "probe-0", &me, 0, NULL, NULL, &e), 0);
	snprintf(path, sizeof path, "%s/resource-probe-0.lock", dir);
	CU_ASSERT_STRING_EQUAL(farm_lock_path(l), path);
	farm_lock_release(l);
	rm_tree(dir);
}

static void test_same_process_twice_is_busy(void)
{
	char dir[64];
	struct farm_err e = {0};
	struct farm_lock *a = NULL, *b = NULL;
	struct farm_lock_owner me = owner("run-a", "board x"), h;
	CU_ASSERT_EQUAL_FATAL(make_tmp(dir, sizeof dir), 0);

	CU_ASSERT_EQUAL_FATAL(farm_lock_acquire(&a, dir, "board", "x", &me, 0, NULL, NULL, &e), 0);
	CU_ASSERT_EQUAL(farm_lock_acquire(&b, dir, "board", "x", &me, 0, NULL, &h, &e), FARM_EBUSY);
	CU_ASSERT_PTR_NULL(b);
	CU_ASSERT_EQUAL(e.code, FARM_EBUSY);
	CU_ASSERT_EQUAL(h.pid, (int)getpid());
	CU_ASSERT_STRING_EQUAL(h.run_id, "run-a");
	CU_ASSERT_STRING_EQUAL(h.what, "board x");
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "board x is busy"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "run run-a"));
	/* Different ids do not interfere. */
	CU_ASSERT_EQUAL(farm_lock_acquire(&b, dir, "board", "y", &me, 0, NULL, NULL, &e), 0);
	farm_lock_release(b);
	farm_lock_release(a);
	rm_tree(dir);
}

static void test_other_process_sees_busy(void)
{
	char dir[64], want[32];
	struct farm_err e = {0};
	struct farm_lock *l = NULL;
	struct farm_lock_owner me = owner("20261121-1845-ab12", "board pico-2");
	struct probe_result r;
	CU_ASSERT_EQUAL_FATAL(make_tmp(dir, sizeof dir), 0);

	CU_ASSERT_EQUAL_FATAL(farm_lock_acquire(&l, dir, "board", "pico-2", &me, 0, NULL, NULL, &e), 0);
	CU_ASSERT_EQUAL_FATAL(probe(dir, "pico-2", 0, &r), 0);
	CU_ASSERT_EQUAL(r.rc, FARM_EBUSY);
	CU_ASSERT_EQUAL(r.holder.pid, (int)getpid());
	CU_ASSERT_STRING_EQUAL(r.holder.run_id, "20261121-1845-ab12");
	snprintf(want, sizeof want, "pid %d (", (int)getpid());
	CU_ASSERT_PTR_NOT_NULL(strstr(r.msg, want));

	/* Released: the other process gets it. */
	farm_lock_release(l);
	CU_ASSERT_EQUAL_FATAL(probe(dir, "pico-2", 0, &r), 0);
	CU_ASSERT_EQUAL(r.rc, 0);
	rm_tree(dir);
}

static void test_lock_dies_with_process(void)
{
	char dir[64];
	struct farm_err e = {0};
	struct farm_lock *l = NULL;
	struct probe_result r;
	struct holder h;
	CU_ASSERT_EQUAL_FATAL(make_tmp(dir, sizeof dir), 0);

	/* SIGKILLed while holding. */
	CU_ASSERT_EQUAL_FATAL(holder_start(&h, dir, "k"), 0);
	CU_ASSERT_EQUAL(probe(dir, "k", 0, &r), 0);
	CU_ASSERT_EQUAL(r.rc, FARM_EBUSY);
	CU_ASSERT_EQUAL(r.holder.pid, (int)h.pid);
	CU_ASSERT_STRING_EQUAL(r.holder.run_id, "child-run");
	kill(h.pid, SIGKILL);
	int st = holder_wait(&h);
	CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "board", "k", NULL, 0, NULL, NULL, &e), 0);
	farm_lock_release(l);
	l = NULL;

	/* _exit() without releasing. */
	CU_ASSERT_EQUAL_FATAL(holder_start(&h, dir, "k"), 0);
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "board", "k", NULL, 0, NULL, NULL, &e),
			FARM_EBUSY);
	holder_send(&h, 'x');
	st = holder_wait(&h);
	CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "board", "k", NULL, 0, NULL, NULL, &e), 0);
	farm_lock_release(l);
	rm_tree(dir);
}

static void test_forked_worker_shares_lock(void)
{
	char dir[64];
	struct farm_err e = {0};
	struct farm_lock *l = NULL;
	struct probe_result r;
	int c[2];
	CU_ASSERT_EQUAL_FATAL(make_tmp(dir, sizeof dir), 0);
	CU_ASSERT_EQUAL_FATAL(farm_lock_acquire(&l, dir, "board", "w", NULL, 0, NULL, NULL, &e), 0);

	/* A worker that releases its inherited copy does not free the parent's lock. */
	fflush(NULL);
	pid_t w = fork();
	CU_ASSERT_FATAL(w >= 0);
	if (w == 0) {
		farm_lock_release(l);
		_exit(0);
	}
	waitpid(w, NULL, 0);
	CU_ASSERT_EQUAL(probe(dir, "w", 0, &r), 0);
	CU_ASSERT_EQUAL(r.rc, FARM_EBUSY);

	/* A worker still running keeps the board locked after the parent releases. */
	CU_ASSERT_EQUAL_FATAL(pipe(c), 0);
	fflush(NULL);
	w = fork();
	CU_ASSERT_FATAL(w >= 0);
	if (w == 0) {
		char x;
		close(c[1]);
		while (read(c[0], &x, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(c[0]);
	farm_lock_release(l);
	l = NULL;
	CU_ASSERT_EQUAL(probe(dir, "w", 0, &r), 0);
	CU_ASSERT_EQUAL(r.rc, FARM_EBUSY);
	CU_ASSERT_EQUAL(r.holder.pid, (int)getpid()); /* the record names the acquirer */
	close(c[1]);                                  /* the worker exits */
	waitpid(w, NULL, 0);
	CU_ASSERT_EQUAL(probe(dir, "w", 0, &r), 0);
	CU_ASSERT_EQUAL(r.rc, 0);
	rm_tree(dir);
}

static void test_wait(void)
{
	char dir[64];
	struct farm_err e = {0};
	struct farm_lock *l = NULL;
	struct farm_lock_owner h;
	struct holder ch;
	CU_ASSERT_EQUAL_FATAL(make_tmp(dir, sizeof dir), 0);
	CU_ASSERT_EQUAL_FATAL(holder_start(&ch, dir, "slow"), 0);

	/* The child holds until told; a short wait runs out. */
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "board", "slow", NULL, 100, NULL, &h, &e),
			FARM_EBUSY);
	CU_ASSERT_PTR_NULL(l);
	CU_ASSERT_EQUAL(h.pid, (int)ch.pid);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "board slow is still busy after 100 ms: held by pid"));

	/* Now it releases after ~300 ms; a long wait gets the lock. */
	holder_send(&ch, 'r');
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "board", "slow", NULL, 3000, NULL, &h, &e), 0);
	CU_ASSERT_PTR_NOT_NULL(l);
	CU_ASSERT_EQUAL(h.pid, 0); /* holder is only filled when busy */
	int st = holder_wait(&ch);
	CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	farm_lock_release(l);
	rm_tree(dir);
}

static volatile sig_atomic_t alarm_cancel;

static void on_alarm(int sig)
{
	(void)sig;
	alarm_cancel = 1;
}

static void test_cancel(void)
{
	char dir[64];
	struct farm_err e = {0};
	struct farm_lock *l = NULL;
	struct holder ch;
	volatile sig_atomic_t flag = 1;
	CU_ASSERT_EQUAL_FATAL(make_tmp(dir, sizeof dir), 0);

	/* Already cancelled: no attempt at all, even on a free lock. */
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "board", "c", NULL, 0, &flag, NULL, &e),
			FARM_EINTR);
	CU_ASSERT_PTR_NULL(l);

	CU_ASSERT_EQUAL_FATAL(holder_start(&ch, dir, "c"), 0);
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "board", "c", NULL, 60000, &flag, NULL, &e),
			FARM_EINTR);

	/* Cancelled by a signal handler during a long wait (20 s: a broken
	 * cancel shows as EBUSY after the wait, not as a timing assertion). */
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	CU_ASSERT_EQUAL_FATAL(sigaction(SIGALRM, &sa, &old), 0);
	alarm_cancel = 0;
	struct itimerval it = {.it_value = {.tv_sec = 0, .tv_usec = 150000}};
	CU_ASSERT_EQUAL(setitimer(ITIMER_REAL, &it, NULL), 0);
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "board", "c", NULL, 20000, &alarm_cancel, NULL,
					  &e),
			FARM_EINTR);
	CU_ASSERT_PTR_NULL(l);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "cancelled"));
	struct itimerval off = {0};
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);

	holder_wait(&ch);
	rm_tree(dir);
}

static void test_invalid_ids(void)
{
	char dir[64];
	char long_id[FARM_LOCK_ID_MAX + 2];
	struct farm_err e = {0};
	struct farm_lock *l = (struct farm_lock *)&e; /* must be reset to NULL */
	CU_ASSERT_EQUAL_FATAL(make_tmp(dir, sizeof dir), 0);

	memset(long_id, 'a', FARM_LOCK_ID_MAX + 1);
	long_id[FARM_LOCK_ID_MAX + 1] = '\0';
	const char *bad[] = {"../x", "", long_id, "a/b", "a b", " ", "x\n", "/etc/passwd",
			     "a\\b", "pico*", "é", "a:b", NULL};
	for (size_t i = 0; bad[i]; i++) {
		CU_ASSERT_FALSE(farm_lock_id_valid(bad[i]));
		CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "board", bad[i], NULL, 0, NULL, NULL, &e),
				FARM_EINVAL);
		CU_ASSERT_PTR_NULL(l);
	}
	CU_ASSERT_FALSE(farm_lock_id_valid(NULL));
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "board", NULL, NULL, 0, NULL, NULL, &e),
			FARM_EINVAL);
	/* Kinds, directory, wait, out. */
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "disk", "x", NULL, 0, NULL, NULL, &e), FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "../board", "x", NULL, 0, NULL, NULL, &e),
			FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, NULL, "x", NULL, 0, NULL, NULL, &e), FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, NULL, "board", "x", NULL, 0, NULL, NULL, &e),
			FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, "", "board", "x", NULL, 0, NULL, NULL, &e), FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "board", "x", NULL, -1, NULL, NULL, &e),
			FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_lock_acquire(NULL, dir, "board", "x", NULL, 0, NULL, NULL, &e),
			FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "board", "x", NULL, 0, NULL, NULL, NULL), 0);
	farm_lock_release(l);
	l = NULL;

	/* Nothing but x's lock file was created. */
	char path[128];
	snprintf(path, sizeof path, "%s/board-x.lock", dir);
	CU_ASSERT_EQUAL(access(path, F_OK), 0);
	remove(path);
	CU_ASSERT_EQUAL(rmdir(dir), 0);

	/* The edges of the valid set. */
	CU_ASSERT_EQUAL_FATAL(make_tmp(dir, sizeof dir), 0);
	long_id[FARM_LOCK_ID_MAX] = '\0';
	CU_ASSERT_TRUE(farm_lock_id_valid(long_id));
	CU_ASSERT_TRUE(farm_lock_id_valid("a"));
	CU_ASSERT_TRUE(farm_lock_id_valid("Pico_W-2.rev.B"));
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "board", long_id, NULL, 0, NULL, NULL, &e), 0);
	farm_lock_release(l);
	rm_tree(dir);
}

/* Hold path's flock with a raw descriptor (record left as written) and ask. */
static int busy_holder(const char *dir, const void *content, size_t n, struct farm_lock_owner *h,
		       struct farm_err *e)
{
	char path[128];
	struct farm_lock *l = NULL;
	snprintf(path, sizeof path, "%s/board-g.lock", dir);
	if (write_file(path, content, n, 0644) != 0)
		return 99;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0)
		return 98;
	int rc = farm_lock_acquire(&l, dir, "board", "g", NULL, 0, NULL, h, e);
	farm_lock_release(l);
	close(fd);
	return rc;
}

static int all_printable(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);
	if (n == cap)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

#define CU_ASSERT_OWNER_SANE(h)                                                                   \
	do {                                                                                      \
		CU_ASSERT(all_printable((h).run_id, sizeof(h).run_id));                           \
		CU_ASSERT(all_printable((h).host, sizeof(h).host));                               \
		CU_ASSERT(all_printable((h).started, sizeof(h).started));                         \
		CU_ASSERT(all_printable((h).what, sizeof(h).what));                               \
	} while (0)

static void test_garbled_record(void)
{
	char dir[64], desc[256];
	struct farm_err e = {0};
	struct farm_lock_owner h;
	CU_ASSERT_EQUAL_FATAL(make_tmp(dir, sizeof dir), 0);

	/* Empty file. */
	CU_ASSERT_EQUAL(busy_holder(dir, "", 0, &h, &e), FARM_EBUSY);
	CU_ASSERT_EQUAL(h.pid, 0);
	CU_ASSERT_STRING_EQUAL(h.run_id, "");
	farm_lock_owner_describe(&h, desc, sizeof desc);
	CU_ASSERT_STRING_EQUAL(desc, "an unknown holder");
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "an unknown holder"));

	/* Escapes, overlong values, NULs, junk lines, repeated keys. */
	char junk[1024];
	size_t n = 0;
	n += (size_t)snprintf(junk + n, sizeof junk - n, "pid=42\nrun_id=\x1b[31mred\x07\n");
	n += (size_t)snprintf(junk + n, sizeof junk - n, "host=");
	memset(junk + n, 'h', 300);
	n += 300;
	static const char tail[] = "\nstarted=\0\0\0\nbogus line\n=novalue\npid=7\nrun_id=second\n"
				   "what=\xff\xfe\x80\n";
	memcpy(junk + n, tail, sizeof tail - 1);
	n += sizeof tail - 1;
	CU_ASSERT_EQUAL(busy_holder(dir, junk, n, &h, &e), FARM_EBUSY);
	CU_ASSERT_EQUAL(h.pid, 42);
	CU_ASSERT_STRING_EQUAL(h.run_id, "?[31mred?");
	CU_ASSERT_EQUAL(strlen(h.host), sizeof h.host - 1);
	CU_ASSERT_STRING_EQUAL(h.started, "");
	CU_ASSERT_STRING_EQUAL(h.what, "???");
	CU_ASSERT_OWNER_SANE(h);
	CU_ASSERT_PTR_NULL(strchr(e.msg, '\x1b'));

	/* Bad pids. */
	const char *pids[] = {"pid=99999999999999999999\nrun_id=x\n", "pid=-5\nrun_id=x\n",
			      "pid=12abc\nrun_id=x\n", "pid=\nrun_id=x\n", "pid=2147483648\nrun_id=x\n",
			      "pid= 5\nrun_id=x\n", NULL};
	for (size_t i = 0; pids[i]; i++) {
		CU_ASSERT_EQUAL(busy_holder(dir, pids[i], strlen(pids[i]), &h, &e), FARM_EBUSY);
		CU_ASSERT_EQUAL(h.pid, 0);
		CU_ASSERT_STRING_EQUAL(h.run_id, "x");
	}
	CU_ASSERT_EQUAL(busy_holder(dir, "pid=2147483647\r\nrun_id=r\r\n", 26, &h, &e), FARM_EBUSY);
	CU_ASSERT_EQUAL(h.pid, 2147483647);
	CU_ASSERT_STRING_EQUAL(h.run_id, "r");

	/* Oversized: 1 MiB without a newline; then a good head and 1 MiB of junk. */
	size_t big = 1u << 20;
	char *m = malloc(big + 16);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	memset(m, 'A', big + 16);
	memcpy(m + big, "\npid=5\n", 7);
	CU_ASSERT_EQUAL(busy_holder(dir, m, big + 7, &h, &e), FARM_EBUSY);
	CU_ASSERT_EQUAL(h.pid, 0);
	memcpy(m, "pid=77\nrun_id=big\nhost=", 23);
	CU_ASSERT_EQUAL(busy_holder(dir, m, big, &h, &e), FARM_EBUSY);
	CU_ASSERT_EQUAL(h.pid, 77);
	CU_ASSERT_STRING_EQUAL(h.run_id, "big");
	CU_ASSERT_STRING_EQUAL(h.host, ""); /* cut by the bounded read: dropped */
	CU_ASSERT_OWNER_SANE(h);
	free(m);
	rm_tree(dir);
}

static void test_record_write_sanitized(void)
{
	char dir[64];
	struct farm_err e = {0};
	struct farm_lock *a = NULL, *b = NULL;
	struct farm_lock_owner me = owner("run-1", "x\nrun_id=evil\npid=1"), h;
	CU_ASSERT_EQUAL_FATAL(make_tmp(dir, sizeof dir), 0);
	me.pid = 4242;
	snprintf(me.host, sizeof me.host, "ci-3");
	snprintf(me.started, sizeof me.started, "2026-11-21T18:45:40Z");

	CU_ASSERT_EQUAL_FATAL(farm_lock_acquire(&a, dir, "board", "s", &me, 0, NULL, NULL, &e), 0);
	CU_ASSERT_EQUAL(farm_lock_acquire(&b, dir, "board", "s", NULL, 0, NULL, &h, &e), FARM_EBUSY);
	CU_ASSERT_EQUAL(h.pid, 4242); /* caller-given fields are kept */
	CU_ASSERT_STRING_EQUAL(h.run_id, "run-1");
	CU_ASSERT_STRING_EQUAL(h.host, "ci-3");
	CU_ASSERT_STRING_EQUAL(h.started, "2026-11-21T18:45:40Z");
	CU_ASSERT_STRING_EQUAL(h.what, "x?run_id=evil?pid=1");
	farm_lock_release(a);

	/* A shorter record replaces a longer one completely. */
	struct farm_lock_owner me2 = owner("r2", "");
	a = NULL;
	CU_ASSERT_EQUAL_FATAL(farm_lock_acquire(&a, dir, "board", "s", &me2, 0, NULL, NULL, &e), 0);
	CU_ASSERT_EQUAL(farm_lock_acquire(&b, dir, "board", "s", NULL, 0, NULL, &h, &e), FARM_EBUSY);
	CU_ASSERT_EQUAL(h.pid, (int)getpid());
	CU_ASSERT_STRING_EQUAL(h.run_id, "r2");
	CU_ASSERT_STRING_EQUAL(h.what, "");
	farm_lock_release(a);
	rm_tree(dir);
}

static void test_planted_files_refused(void)
{
	char dir[64], path[128], victim[128];
	struct farm_err e = {0};
	struct farm_lock *l = NULL;
	CU_ASSERT_EQUAL_FATAL(make_tmp(dir, sizeof dir), 0);

	/* A symlink to some other file: not followed, the target untouched. */
	snprintf(victim, sizeof victim, "%s/victim", dir);
	CU_ASSERT_EQUAL_FATAL(write_file(victim, "keep", 4, 0644), 0);
	snprintf(path, sizeof path, "%s/board-s.lock", dir);
	CU_ASSERT_EQUAL_FATAL(symlink(victim, path), 0);
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "board", "s", NULL, 0, NULL, NULL, &e),
			FARM_EINVAL);
	CU_ASSERT_PTR_NULL_FATAL(l);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, path));
	struct farm_buf b = {0};
	CU_ASSERT_EQUAL_FATAL(farm_buf_read_file(&b, victim, 64, &e), 0);
	CU_ASSERT_STRING_EQUAL(b.data, "keep");
	farm_buf_free(&b);

	/* A dangling symlink: not created through. */
	snprintf(path, sizeof path, "%s/board-d.lock", dir);
	snprintf(victim, sizeof victim, "%s/created-through-link", dir);
	CU_ASSERT_EQUAL_FATAL(symlink(victim, path), 0);
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "board", "d", NULL, 0, NULL, NULL, &e),
			FARM_EINVAL);
	CU_ASSERT_PTR_NULL_FATAL(l);
	CU_ASSERT_NOT_EQUAL(access(victim, F_OK), 0);

	/* A FIFO: refused without blocking. */
	snprintf(path, sizeof path, "%s/board-f.lock", dir);
	CU_ASSERT_EQUAL_FATAL(mkfifo(path, 0644), 0);
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, dir, "board", "f", NULL, 0, NULL, NULL, &e),
			FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "not a regular file"));

	/* A directory. */
	snprintf(path, sizeof path, "%s/board-dir.lock", dir);
	CU_ASSERT_EQUAL_FATAL(mkdir(path, 0755), 0);
	CU_ASSERT_NOT_EQUAL(farm_lock_acquire(&l, dir, "board", "dir", NULL, 0, NULL, NULL, &e), 0);
	CU_ASSERT_PTR_NULL(l);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, path));

	/* A missing lock directory is an error naming the path, not EBUSY. */
	snprintf(path, sizeof path, "%s/nope", dir);
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, path, "board", "x", NULL, 0, NULL, NULL, &e), FARM_ESYS);
	CU_ASSERT_EQUAL(e.sys_errno, ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "/nope/board-x.lock"));
	rm_tree(dir);
}

/* As root: another user shares a 01777 lock directory with us. */
static void test_shared_dir_between_users(void)
{
	if (geteuid() != 0)
		return; /* needs setuid(); nothing to check otherwise */
	char dir[64], shared[96], path[160];
	struct farm_err e = {0};
	struct farm_lock *l = NULL;
	struct farm_lock_owner me = owner("root-run", "board u"), h;
	struct stat st;
	CU_ASSERT_EQUAL_FATAL(make_tmp(dir, sizeof dir), 0);
	CU_ASSERT_EQUAL_FATAL(chmod(dir, 0755), 0);
	snprintf(shared, sizeof shared, "%s/shared", dir);
	CU_ASSERT_EQUAL_FATAL(mkdir(shared, 0755), 0);
	CU_ASSERT_EQUAL_FATAL(chmod(shared, 01777), 0);

	/* Our file is made 0666 in a shared directory, whatever the umask. */
	mode_t old = umask(022);
	CU_ASSERT_EQUAL(farm_lock_acquire(&l, shared, "board", "u", &me, 0, NULL, NULL, &e), 0);
	umask(old);
	farm_lock_release(l);
	snprintf(path, sizeof path, "%s/board-u.lock", shared);
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0666);
	/* A root-made 0644 file: the other user can still lock it, read-only. */
	snprintf(path, sizeof path, "%s/board-ro.lock", shared);
	CU_ASSERT_EQUAL_FATAL(write_file(path, "pid=1\nrun_id=old\n", 17, 0644), 0);
	CU_ASSERT_EQUAL_FATAL(chmod(path, 0644), 0);

	int p[2];
	CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
	fflush(NULL);
	pid_t c = fork();
	CU_ASSERT_FATAL(c >= 0);
	if (c == 0) {
		struct farm_lock *a = NULL, *b = NULL;
		struct farm_lock_owner you = owner("nobody-run", "");
		close(p[0]);
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(2);
		int rc = farm_lock_acquire(&a, shared, "board", "u", &you, 0, NULL, NULL, &e);
		rc |= farm_lock_acquire(&b, shared, "board", "ro", &you, 0, NULL, NULL, &e);
		char ok = rc ? 'n' : 'y';
		if (write(p[1], &ok, 1) != 1)
			_exit(3);
		for (;;)
			pause(); /* hold both until killed */
	}
	close(p[1]);
	char ok = 0;
	CU_ASSERT_EQUAL(read_all(p[0], &ok, 1), 0);
	CU_ASSERT_EQUAL(ok, 'y');
	close(p[0]);
	if (ok == 'y') {
		CU_ASSERT_EQUAL(farm_lock_acquire(&l, shared, "board", "u", NULL, 0, NULL, &h, &e),
				FARM_EBUSY);
		CU_ASSERT_STRING_EQUAL(h.run_id, "nobody-run"); /* it could write its record */
		CU_ASSERT_EQUAL(h.pid, (int)c);
		CU_ASSERT_EQUAL(farm_lock_acquire(&l, shared, "board", "ro", NULL, 0, NULL, &h, &e),
				FARM_EBUSY); /* locked, though the record is the old one */
		CU_ASSERT_STRING_EQUAL(h.run_id, "old");
	}
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	rm_tree(dir);
}

static void test_describe(void)
{
	char out[256];
	struct farm_lock_owner o;
	memset(&o, 0, sizeof o);
	o.pid = 1234;
	snprintf(o.run_id, sizeof o.run_id, "20261121-1845-ab12");
	snprintf(o.host, sizeof o.host, "ci-3");
	snprintf(o.started, sizeof o.started, "2026-11-21T18:45:40Z");
	farm_lock_owner_describe(&o, out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out,
			       "pid 1234 (run 20261121-1845-ab12, host ci-3, since 2026-11-21T18:45:40Z)");

	o.host[0] = '\0';
	farm_lock_owner_describe(&o, out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "pid 1234 (run 20261121-1845-ab12, since 2026-11-21T18:45:40Z)");
	o.run_id[0] = o.started[0] = '\0';
	farm_lock_owner_describe(&o, out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "pid 1234");
	o.pid = 0;
	snprintf(o.host, sizeof o.host, "ci-9");
	farm_lock_owner_describe(&o, out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "unknown pid (host ci-9)");
	farm_lock_owner_describe(NULL, out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "an unknown holder");

	/* Unterminated and hostile fields stay bounded and printable. */
	memset(&o, 'x', sizeof o);
	o.pid = 7;
	o.host[3] = '\x1b';
	farm_lock_owner_describe(&o, out, sizeof out);
	CU_ASSERT(strlen(out) < sizeof out);
	CU_ASSERT_PTR_NULL(strchr(out, '\x1b'));
	CU_ASSERT(all_printable(out, sizeof out));

	/* Small buffers truncate; len 0 writes nothing. */
	o.pid = 123456;
	farm_lock_owner_describe(&o, out, 8);
	CU_ASSERT_STRING_EQUAL(out, "pid 123");
	out[0] = 'Z';
	farm_lock_owner_describe(&o, out, 0);
	CU_ASSERT_EQUAL(out[0], 'Z');
	farm_lock_owner_describe(&o, NULL, 10);
}

static int mode_of(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static void test_pick_dir(void)
{
	char t[64], a[160], b[160], c[160], out[256], want[256];
	struct farm_err e = {0};
	CU_ASSERT_EQUAL_FATAL(make_tmp(t, sizeof t), 0);

	/* The shared base works: created 01777 despite the umask, then reused. */
	snprintf(a, sizeof a, "%s/runlock", t);
	CU_ASSERT_EQUAL_FATAL(mkdir(a, 0755), 0);
	mode_t old = umask(022);
	CU_ASSERT_EQUAL(farm_lock_pick_dir(out, sizeof out, a, "/unused", "/unused", &e), 0);
	umask(old);
	snprintf(want, sizeof want, "%s/mpfarm", a);
	CU_ASSERT_STRING_EQUAL(out, want);
	CU_ASSERT_EQUAL(mode_of(want), 01777);
	CU_ASSERT_EQUAL(farm_lock_pick_dir(out, sizeof out, a, NULL, NULL, &e), 0);
	CU_ASSERT_STRING_EQUAL(out, want);

	/* Shared base missing (not writable, not there): XDG, 0700. */
	snprintf(a, sizeof a, "%s/no-such-run-lock", t);
	snprintf(b, sizeof b, "%s/xdg", t);
	CU_ASSERT_EQUAL_FATAL(mkdir(b, 0700), 0);
	CU_ASSERT_EQUAL(farm_lock_pick_dir(out, sizeof out, a, b, "/unused", &e), 0);
	snprintf(want, sizeof want, "%s/mpfarm", b);
	CU_ASSERT_STRING_EQUAL(out, want);
	CU_ASSERT_EQUAL(mode_of(want), 0700);

	/* Shared base is a file, no XDG: /tmp-like base, mpfarm-<uid>, 0700. */
	snprintf(a, sizeof a, "%s/file", t);
	CU_ASSERT_EQUAL_FATAL(write_file(a, "x", 1, 0644), 0);
	snprintf(c, sizeof c, "%s/tmpb", t);
	CU_ASSERT_EQUAL_FATAL(mkdir(c, 01777), 0);
	CU_ASSERT_EQUAL(farm_lock_pick_dir(out, sizeof out, a, NULL, c, &e), 0);
	snprintf(want, sizeof want, "%s/mpfarm-%u", c, (unsigned)geteuid());
	CU_ASSERT_STRING_EQUAL(out, want);
	CU_ASSERT_EQUAL(mode_of(want), 0700);
	/* A relative XDG is skipped too. */
	CU_ASSERT_EQUAL(farm_lock_pick_dir(out, sizeof out, "", "relative/xdg", c, &e), 0);
	CU_ASSERT_STRING_EQUAL(out, want);

	/* Private candidates must be ours and not writable by others. */
	snprintf(b, sizeof b, "%s/xdg2", t);
	CU_ASSERT_EQUAL_FATAL(mkdir(b, 0700), 0);
	snprintf(want, sizeof want, "%s/mpfarm", b);
	CU_ASSERT_EQUAL_FATAL(mkdir(want, 0700), 0);
	CU_ASSERT_EQUAL_FATAL(chmod(want, 0777), 0);
	CU_ASSERT_EQUAL(farm_lock_pick_dir(out, sizeof out, NULL, b, NULL, &e), FARM_ENOTFOUND);
	CU_ASSERT_STRING_EQUAL(out, "");
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, want));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "writable by others"));
	if (geteuid() == 0) {
		CU_ASSERT_EQUAL(chmod(want, 0700), 0);
		CU_ASSERT_EQUAL(chown(want, 12345, 12345), 0);
		CU_ASSERT_EQUAL(farm_lock_pick_dir(out, sizeof out, NULL, b, NULL, &e), FARM_ENOTFOUND);
		CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "owned by uid 12345"));
		/* The shared directory may belong to another user of the runner. */
		CU_ASSERT_EQUAL(farm_lock_pick_dir(out, sizeof out, b, NULL, NULL, &e), 0);
		CU_ASSERT_STRING_EQUAL(out, want);
	}

	/* Symlinked candidates are refused, shared or private. */
	snprintf(a, sizeof a, "%s/evil", t);
	CU_ASSERT_EQUAL_FATAL(mkdir(a, 0700), 0);
	snprintf(want, sizeof want, "%s/mpfarm", a);
	snprintf(c, sizeof c, "%s/xdg/mpfarm", t);
	CU_ASSERT_EQUAL_FATAL(symlink(c, want), 0);
	CU_ASSERT_EQUAL(farm_lock_pick_dir(out, sizeof out, a, a, NULL, &e), FARM_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "symbolic link"));

	/* Every reason is reported; nothing at all; a short output buffer. */
	snprintf(a, sizeof a, "%s/no-such-run-lock", t);
	CU_ASSERT_EQUAL(farm_lock_pick_dir(out, sizeof out, a, "rel", a, &e), FARM_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "no-such-run-lock/mpfarm:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "rel: not an absolute path"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "no-such-run-lock/mpfarm-"));
	CU_ASSERT_EQUAL(farm_lock_pick_dir(out, sizeof out, NULL, NULL, NULL, &e), FARM_ENOTFOUND);
	snprintf(b, sizeof b, "%s/xdg", t);
	CU_ASSERT_EQUAL(farm_lock_pick_dir(out, 8, NULL, b, NULL, &e), FARM_ELIMIT);
	CU_ASSERT_EQUAL(farm_lock_pick_dir(NULL, 0, NULL, b, NULL, &e), FARM_EINVAL);
	rm_tree(t);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("lock", NULL, NULL);
	if (!s)
		return -1;
	const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{"acquire, release, owner record", test_acquire_release_record},
		{"second open in one process is busy", test_same_process_twice_is_busy},
		{"another process sees busy and the holder", test_other_process_sees_busy},
		{"lock dies with its process", test_lock_dies_with_process},
		{"forked worker shares the lock", test_forked_worker_shares_lock},
		{"wait for a lock", test_wait},
		{"cancel", test_cancel},
		{"invalid ids, kinds and arguments", test_invalid_ids},
		{"garbled and oversized owner records", test_garbled_record},
		{"owner record written sanitized", test_record_write_sanitized},
		{"planted symlink, fifo, directory", test_planted_files_refused},
		{"shared directory between users", test_shared_dir_between_users},
		{"describe owner", test_describe},
		{"lock directory selection", test_pick_dir},
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
