#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "event.h"
#include "resource.h"
#include "transport.h"

/* ---- worker side: a sink that writes records to the pipe ---- */

struct pipe_sink {
	int fd;
	int ctl;    /* the parent's answers (resource grants) */
	int broken; /* the parent went away: stop writing */
	const volatile sig_atomic_t *cancel;
};

static void emit(struct pipe_sink *ps, uint16_t type, const struct farm_event_field *f, size_t n)
{
	if (ps->broken)
		return;
	if (farm_event_write(ps->fd, type, f, n, NULL))
		ps->broken = 1;
}

static size_t slen(const char *s)
{
	return s ? strlen(s) : 0;
}

#define FLD(tag, s) { tag, (s), slen(s) }

static void p_meta(void *p, const char *ts, const char *host, const char *log)
{
	struct farm_event_field f[] = { FLD(FARM_F_TIMESTAMP, ts), FLD(FARM_F_HOSTNAME, host),
					FLD(FARM_F_LOG, log) };
	emit(p, FARM_EV_META, f, 3);
}

static void p_prop(void *p, const char *name, const char *value)
{
	struct farm_event_field f[] = { FLD(FARM_F_NAME, name), FLD(FARM_F_VALUE, value) };
	emit(p, FARM_EV_PROP, f, 2);
}

static void p_phase(void *p, const char *phase, const char *msg)
{
	struct farm_event_field f[] = { FLD(FARM_F_PHASE, phase), FLD(FARM_F_MESSAGE, msg) };
	emit(p, FARM_EV_PHASE, f, 2);
}

static void p_chunk(void *p, const char *data, size_t len)
{
	struct farm_event_field f[] = { { FARM_F_DATA, data, len } };
	emit(p, FARM_EV_CHUNK, f, 1);
}

static void p_case(void *p, const struct farm_case *c)
{
	char verdict[16], ms[32];
	snprintf(verdict, sizeof verdict, "%d", (int)c->verdict);
	snprintf(ms, sizeof ms, "%lld", (long long)(c->time_s * 1000.0 + 0.5));
	struct farm_event_field f[] = {
		FLD(FARM_F_SUITE, c->suite), FLD(FARM_F_NAME, c->name), FLD(FARM_F_VERDICT, verdict),
		FLD(FARM_F_TIME_MS, ms), FLD(FARM_F_TYPE, c->type), FLD(FARM_F_MESSAGE, c->message),
		FLD(FARM_F_DETAIL, c->detail), FLD(FARM_F_OUTPUT, c->output),
	};
	emit(p, FARM_EV_CASE, f, 8);
}

static void p_transcript(void *p, const char *data, size_t len)
{
	/* bounded by the session's transcript limit, well under FARM_EVENT_MAX */
	struct farm_event_field f[] = { { FARM_F_DATA, data, len } };
	emit(p, FARM_EV_TRANSCRIPT, f, 1);
}

static void p_progress(void *p, const char *step, uint64_t done, uint64_t total)
{
	char d[32], t[32];
	snprintf(d, sizeof d, "%llu", (unsigned long long)done);
	snprintf(t, sizeof t, "%llu", (unsigned long long)total);
	struct farm_event_field f[] = { FLD(FARM_F_PHASE, step), FLD(FARM_F_DONE, d),
					FLD(FARM_F_TOTAL, t) };
	emit(p, FARM_EV_PROGRESS, f, 3);
}

/* The run's resource arbiter, seen from the worker: ask, then wait for 'G'. */
static int gate_acquire(void *p, const struct farm_res_id *ids, size_t n, struct farm_err *e)
{
	struct pipe_sink *ps = p;
	char list[FARM_RES_MAX * (FARM_LOCK_ID_MAX + 14)];
	farm_res_format(ids, n, list, sizeof list);
	struct farm_event_field f[] = { FLD(FARM_F_VALUE, list) };
	emit(ps, FARM_EV_RES_REQ, f, 1);
	if (ps->broken)
		return farm_err_set(e, FARM_EIO, "the parent process went away");
	for (;;) {
		if (ps->cancel && *ps->cancel)
			return farm_err_set(e, FARM_EINTR, "interrupted while waiting for %s", list);
		struct pollfd pf = { .fd = ps->ctl, .events = POLLIN };
		int r = poll(&pf, 1, 200);
		if (r < 0 && errno != EINTR)
			return farm_err_sys(e, FARM_ESYS, errno, "waiting for %s", list);
		if (r <= 0)
			continue;
		char c;
		ssize_t k = read(ps->ctl, &c, 1);
		if (k == 1 && c == 'G')
			return 0;
		if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN))
			return farm_err_set(e, FARM_EIO, "the parent process went away");
	}
}

static void gate_release(void *p)
{
	emit(p, FARM_EV_RES_REL, NULL, 0);
}

static void p_end(void *p, double time_s)
{
	char ms[32];
	snprintf(ms, sizeof ms, "%lld", (long long)(time_s * 1000.0 + 0.5));
	struct farm_event_field f[] = { FLD(FARM_F_TIME_MS, ms) };
	emit(p, FARM_EV_END, f, 1);
}

static void worker_main(const struct farm_job *job, int fd, int ctl)
{
	/* Own process group: a terminal Ctrl-C reaches only the parent, which
	 * tells us to stop with SIGTERM (handled by main's handler: cancel). */
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGINT, SIG_IGN);
	struct pipe_sink ps = { .fd = fd, .ctl = ctl, .cancel = job->cancel };
	struct farm_job_sink sink = {
		.meta = p_meta, .prop = p_prop, .phase = p_phase, .chunk = p_chunk,
		.case_done = p_case, .transcript = p_transcript, .end = p_end,
		.progress = p_progress, .payload = &ps,
	};
	struct farm_res_gate gate = { .acquire = gate_acquire, .release = gate_release, .payload = &ps };
	struct farm_job mine = *job;
	mine.gate = &gate;
	struct farm_err e = { 0 };
	farm_job_run(&mine, &sink, &e);
	close(fd);
	close(ctl);
	_exit(0); /* no atexit handlers, no stdio buffers of the parent flushed twice */
}

/* ---- parent side ---- */

struct worker {
	pid_t pid;
	int fd;
	int started, finished, ended; /* ended: END record seen */
	struct farm_event_reader rd;
	long long start_ms, kill_at, last_ms;
	long long phase_ms;  /* when the current phase began (flash deadline) */
	int term_sent, killed;
	char phase[32];
	char reason[256]; /* why the parent stopped it */
	int ctl;          /* write end of the worker's control pipe */
	/* resources (farm/resource.h): what it asked for, and since when */
	struct farm_res_id res[FARM_RES_MAX];
	size_t n_res;
	int res_waiting, res_holding;
	unsigned long long res_seq;
	long long res_since;
	struct farm_job_direct d;
	struct farm_job_sink sink;
};

static char *fdup(const struct farm_event *ev, uint16_t tag)
{
	const struct farm_event_field *f = farm_event_get(ev, tag);
	return f ? strndup(f->data, f->len) : NULL;
}

static long long fnum(const struct farm_event *ev, uint16_t tag)
{
	char *s = fdup(ev, tag);
	long long v = s ? strtoll(s, NULL, 10) : 0;
	free(s);
	return v;
}

static void replay(struct worker *w, const struct farm_event *ev)
{
	const struct farm_job_sink *k = &w->sink;
	switch (ev->type) {
	case FARM_EV_META: {
		char *ts = fdup(ev, FARM_F_TIMESTAMP), *host = fdup(ev, FARM_F_HOSTNAME),
		     *log = fdup(ev, FARM_F_LOG);
		k->meta(k->payload, ts, host, log);
		free(ts);
		free(host);
		free(log);
		break;
	}
	case FARM_EV_PROP: {
		char *n = fdup(ev, FARM_F_NAME), *v = fdup(ev, FARM_F_VALUE);
		if (n)
			k->prop(k->payload, n, v);
		free(n);
		free(v);
		break;
	}
	case FARM_EV_PHASE: {
		char *ph = fdup(ev, FARM_F_PHASE), *m = fdup(ev, FARM_F_MESSAGE);
		if (ph) {
			if (strcmp(w->phase, ph) != 0)
				w->phase_ms = farm_now_ms();
			snprintf(w->phase, sizeof w->phase, "%s", ph);
			k->phase(k->payload, ph, m ? m : "");
		}
		free(ph);
		free(m);
		break;
	}
	case FARM_EV_CHUNK:
	case FARM_EV_TRANSCRIPT: {
		const struct farm_event_field *f = farm_event_get(ev, FARM_F_DATA);
		if (f)
			(ev->type == FARM_EV_CHUNK ? k->chunk : k->transcript)(k->payload, f->data, f->len);
		break;
	}
	case FARM_EV_CASE: {
		struct farm_case c = { 0 };
		c.suite = fdup(ev, FARM_F_SUITE);
		c.name = fdup(ev, FARM_F_NAME);
		long long v = fnum(ev, FARM_F_VERDICT);
		c.verdict = v >= FARM_PASS && v <= FARM_SKIP ? (enum farm_verdict)v : FARM_ERROR;
		c.time_s = (double)fnum(ev, FARM_F_TIME_MS) / 1000.0;
		c.type = fdup(ev, FARM_F_TYPE);
		c.message = fdup(ev, FARM_F_MESSAGE);
		c.detail = fdup(ev, FARM_F_DETAIL);
		c.output = fdup(ev, FARM_F_OUTPUT);
		snprintf(w->phase, sizeof w->phase, "test");
		if (w->reason[0] && c.verdict == FARM_SKIP && c.message &&
		    !strcmp(c.message, "run interrupted")) {
			/* stopped by the parent for a deadline, not by the user */
			farm_case_set(&c, FARM_ERROR, "deadline", "%s", w->reason);
		}
		if (c.suite && c.name)
			k->case_done(k->payload, &c);
		free(c.suite);
		free(c.name);
		free(c.type);
		free(c.message);
		free(c.detail);
		free(c.output);
		break;
	}
	case FARM_EV_PROGRESS: {
		char *st = fdup(ev, FARM_F_PHASE);
		long long done = fnum(ev, FARM_F_DONE), total = fnum(ev, FARM_F_TOTAL);
		if (st && k->progress && done >= 0 && total >= 0)
			k->progress(k->payload, st, (uint64_t)done, (uint64_t)total);
		free(st);
		break;
	}
	case FARM_EV_RES_REQ: {
		char *v = fdup(ev, FARM_F_VALUE);
		int n = v ? farm_res_parse(v, w->res, FARM_RES_MAX) : -1;
		free(v);
		if (n < 0 || w->res_waiting || w->res_holding) {
			snprintf(w->reason, sizeof w->reason,
				 "bad resource request from the worker during phase %s", w->phase);
			break;
		}
		w->n_res = (size_t)n;
		w->res_waiting = 1;
		w->res_since = farm_now_ms();
		break;
	}
	case FARM_EV_RES_REL:
		w->res_holding = 0;
		w->n_res = 0;
		break;
	case FARM_EV_END:
		w->ended = 1;
		k->end(k->payload, (double)fnum(ev, FARM_F_TIME_MS) / 1000.0);
		break;
	default:
		break; /* a newer record type: skipped */
	}
}

static int has_case(const struct farm_board_result *r, const char *suite, const char *name)
{
	for (size_t i = 0; i < r->n_cases; i++)
		if (!strcmp(r->cases[i].suite, suite) && !strcmp(r->cases[i].name, name))
			return 1;
	return 0;
}

/* Every test the worker did not report gets a verdict: nothing is lost. */
static void complete(const struct farm_job *job, struct worker *w, int interrupted, const char *why)
{
	struct farm_board_result *r = w->d.res;
	for (size_t si = 0; si < job->n_suites; si++) {
		const struct farm_suite *s = job->suites[si];
		for (size_t ti = 0; ti < s->n_tests; ti++) {
			if (has_case(r, s->name, s->tests[ti].name))
				continue;
			struct farm_case c = { .suite = s->name, .name = s->tests[ti].name };
			if (interrupted)
				farm_case_set(&c, FARM_SKIP, NULL, "run interrupted");
			else
				farm_case_set(&c, FARM_ERROR, "worker", "%s", why);
			w->sink.case_done(w->sink.payload, &c);
			free(c.message);
			free(c.type);
		}
	}
}

static int start_worker(const struct farm_job *job, struct worker *w, struct farm_err *e)
{
	int fds[2], ctl[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return farm_err_sys(e, FARM_ESYS, errno, "board %s: pipe", job->board->id);
	if (pipe2(ctl, O_CLOEXEC) < 0) {
		int err = errno;
		close(fds[0]);
		close(fds[1]);
		return farm_err_sys(e, FARM_ESYS, err, "board %s: pipe", job->board->id);
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		int err = errno;
		close(fds[0]);
		close(fds[1]);
		close(ctl[0]);
		close(ctl[1]);
		return farm_err_sys(e, FARM_ESYS, err, "board %s: fork", job->board->id);
	}
	if (pid == 0) {
		close(fds[0]);
		close(ctl[1]);
		worker_main(job, fds[1], ctl[0]);
	}
	setpgid(pid, pid); /* also done by the child: no race on who is first */
	close(fds[1]);
	close(ctl[0]);
	fcntl(ctl[1], F_SETFL, O_NONBLOCK);
	w->pid = pid;
	w->fd = fds[0];
	w->ctl = ctl[1];
	w->started = 1;
	w->start_ms = w->last_ms = farm_now_ms();
	snprintf(w->phase, sizeof w->phase, "start");
	return 0;
}

static void stop_worker(struct worker *w, unsigned grace_ms, const char *why)
{
	if (w->term_sent || w->finished)
		return;
	snprintf(w->reason, sizeof w->reason, "%s", why);
	kill(-w->pid, SIGTERM);
	w->term_sent = 1;
	w->kill_at = farm_now_ms() + grace_ms;
}

static void reap(const struct farm_job *job, struct worker *w, int interrupted)
{
	int status = 0;
	pid_t r;
	do
		r = waitpid(w->pid, &status, 0);
	while (r < 0 && errno == EINTR);
	/* whatever the worker left in its process group goes too */
	kill(-w->pid, SIGKILL);
	char why[400];
	if (w->reason[0])
		snprintf(why, sizeof why, "%s", w->reason);
	else if (r == w->pid && WIFSIGNALED(status))
		snprintf(why, sizeof why, "worker process killed by signal %d (%s) during phase %s",
			 WTERMSIG(status), strsignal(WTERMSIG(status)), w->phase);
	else if (r == w->pid && WIFEXITED(status) && !w->ended)
		snprintf(why, sizeof why, "worker process exited (status %d) without its results, during phase %s",
			 WEXITSTATUS(status), w->phase);
	else
		snprintf(why, sizeof why, "worker process ended during phase %s", w->phase);
	if (!w->ended) {
		farm_ui_phase(w->d.ui, job->board->id, w->phase, "ABORTED: %s", why);
		if (farm_event_pending(&w->rd))
			farm_ui_phase(w->d.ui, job->board->id, w->phase,
				      "(%zu bytes of a truncated record dropped)", farm_event_pending(&w->rd));
	}
	complete(job, w, interrupted, why);
	close(w->fd);
	w->fd = -1;
	close(w->ctl);
	w->ctl = -1;
	w->res_waiting = w->res_holding = 0; /* a dead worker's resources are free again */
	w->n_res = 0;
	w->finished = 1;
	farm_event_reader_free(&w->rd);
}

static void drain_fd(struct worker *w, int *eof)
{
	char buf[65536];
	*eof = 0;
	ssize_t n = read(w->fd, buf, sizeof buf);
	if (n == 0) {
		*eof = 1;
		return;
	}
	if (n < 0) {
		if (errno != EINTR && errno != EAGAIN)
			*eof = 1;
		return;
	}
	w->last_ms = farm_now_ms();
	if (farm_event_feed(&w->rd, buf, (size_t)n))
		return;
	struct farm_event ev;
	int k;
	while ((k = farm_event_next(&w->rd, &ev)) == 1)
		replay(w, &ev);
	if (k < 0) {
		snprintf(w->reason, sizeof w->reason, "corrupt record from the worker during phase %s",
			 w->phase);
		*eof = 1;
	}
}

/* Grant resource requests (the rule in farm/resource.h): in arrival order, a
 * request is granted when nothing it needs is held and no older waiting
 * request needs any of it. */
static void arbitrate(struct worker *ws, size_t n, unsigned long long *seq)
{
	for (size_t i = 0; i < n; i++)
		if (ws[i].res_waiting && !ws[i].res_seq)
			ws[i].res_seq = ++*seq;
	for (;;) {
		struct worker *grant = NULL;
		/* the oldest waiting request that nothing blocks */
		for (size_t i = 0; i < n; i++) {
			struct worker *w = &ws[i];
			if (!w->res_waiting || w->finished)
				continue;
			int blocked = 0;
			for (size_t j = 0; j < n && !blocked; j++) {
				const struct worker *o = &ws[j];
				if (o == w || o->finished)
					continue;
				int older_waiting = o->res_waiting && o->res_seq < w->res_seq;
				if ((o->res_holding || older_waiting) &&
				    farm_res_overlap(w->res, w->n_res, o->res, o->n_res))
					blocked = 1;
			}
			if (!blocked && (!grant || w->res_seq < grant->res_seq))
				grant = w;
		}
		if (!grant)
			return;
		long long now = farm_now_ms();
		grant->res_waiting = 0;
		grant->res_holding = 1;
		grant->res_seq = 0;
		/* waiting for a resource does not count against the deadline or the watchdog */
		grant->start_ms += now - grant->res_since;
		grant->phase_ms += now - grant->res_since;
		grant->last_ms = now;
		char g = 'G';
		if (write(grant->ctl, &g, 1) != 1) {
			/* the worker is gone; its reap frees the grant */
		}
	}
}

int farm_sched_run(const struct farm_job *jobs, size_t n, struct farm_board_result *results,
		   const struct farm_sched_opts *o, struct farm_err *e)
{
	struct worker *ws = calloc(n ? n : 1, sizeof *ws);
	struct pollfd *pfd = calloc(n ? n : 1, sizeof *pfd);
	size_t *idx = calloc(n ? n : 1, sizeof *idx);
	if (!ws || !pfd || !idx) {
		free(ws);
		free(pfd);
		free(idx);
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	}
	unsigned grace = o->grace_ms ? o->grace_ms : 5000;
	unsigned limit = o->jobs ? o->jobs : (unsigned)n;
	size_t next = 0, running = 0, finished = 0;
	int interrupted = 0, hard = 0, rc = 0;
	unsigned long long seq = 0;
	for (size_t i = 0; i < n; i++) {
		ws[i].fd = -1;
		ws[i].ctl = -1;
		ws[i].d.res = &results[i];
		ws[i].d.ui = o->ui;
		ws[i].d.json = o->json;
		farm_job_direct_sink(&ws[i].sink, &ws[i].d);
	}
	while (finished < n) {
		if (o->cancel && *o->cancel && !interrupted) {
			interrupted = 1;
			for (size_t i = 0; i < n; i++)
				if (ws[i].started && !ws[i].finished) {
					/* stop cleanly first; the worker reports its own skips */
					kill(-ws[i].pid, SIGTERM);
					ws[i].term_sent = 1;
					ws[i].kill_at = farm_now_ms() + grace;
				}
		}
		if (interrupted && *o->cancel >= 2 && !hard) {
			/* a second interrupt: no more waiting for clean stops */
			hard = 1;
			for (size_t i = 0; i < n; i++)
				if (ws[i].started && !ws[i].finished && !ws[i].killed) {
					kill(-ws[i].pid, SIGKILL);
					ws[i].killed = 1;
				}
		}
		if (interrupted) {
			/* start nothing new */
			for (; next < n; next++) {
				ws[next].finished = 1;
				finished++;
				farm_ui_phase(o->ui, jobs[next].board->id, "start", "not started: run interrupted");
				complete(&jobs[next], &ws[next], 1, NULL);
			}
		}
		while (!interrupted && running < limit && next < n) {
			if ((rc = start_worker(&jobs[next], &ws[next], e)) != 0) {
				/* cannot fork: the board's tests are errors, the rest go on */
				ws[next].finished = 1;
				complete(&jobs[next], &ws[next], 0, e->msg);
				finished++;
				next++;
				continue;
			}
			running++;
			next++;
		}
		size_t np = 0;
		for (size_t i = 0; i < n; i++)
			if (ws[i].started && !ws[i].finished) {
				pfd[np].fd = ws[i].fd;
				pfd[np].events = POLLIN;
				pfd[np].revents = 0;
				idx[np++] = i;
			}
		if (np == 0)
			continue;
		int pr = poll(pfd, np, 100);
		if (pr < 0 && errno != EINTR) {
			rc = farm_err_sys(e, FARM_ESYS, errno, "poll");
			break;
		}
		for (size_t k = 0; pr > 0 && k < np; k++) {
			if (!pfd[k].revents)
				continue;
			struct worker *w = &ws[idx[k]];
			int eof = 0;
			drain_fd(w, &eof);
			if (eof) {
				reap(&jobs[idx[k]], w, interrupted);
				running--;
				finished++;
			}
		}
		arbitrate(ws, n, &seq);
		long long now = farm_now_ms();
		for (size_t i = 0; i < n; i++) {
			struct worker *w = &ws[i];
			if (!w->started || w->finished)
				continue;
			if (w->res_waiting) {
				/* queued for a shared resource: the holder's deadline bounds the wait */
				w->last_ms = now;
				if (w->term_sent && !w->killed && now >= w->kill_at) {
					kill(-w->pid, SIGKILL);
					w->killed = 1;
				}
				continue;
			}
			unsigned deadline = jobs[i].deadline_ms ? jobs[i].deadline_ms : o->board_timeout_ms;
			if (deadline && !w->term_sent && now - w->start_ms > (long long)deadline) {
				char why[128];
				snprintf(why, sizeof why, "board deadline of %.1f s exceeded during phase %s",
					 deadline / 1000.0, w->phase);
				stop_worker(w, grace, why);
			}
			unsigned fdl = jobs[i].board->timeouts.flash_ms ? jobs[i].board->timeouts.flash_ms
								       : FARM_FLASH_DEADLINE_MS;
			if (!w->term_sent && !strcmp(w->phase, "flash") && now - w->phase_ms > (long long)fdl) {
				char why[128];
				snprintf(why, sizeof why, "flash deadline of %.1f s exceeded", fdl / 1000.0);
				stop_worker(w, grace, why);
			}
			/* The watchdog: a worker that says nothing for longer than any healthy
			 * step takes is hung (stuck in a driver, stopped, deadlocked). */
			/* (a server may program the whole image silently at vFlashDone:
			 * the flash deadline, not the watchdog, bounds the flash phase) */
			if (jobs[i].stall_ms && !w->term_sent && strcmp(w->phase, "flash") != 0 &&
			    now - w->last_ms > (long long)jobs[i].stall_ms) {
				char why[160];
				snprintf(why, sizeof why,
					 "no progress for %.1f s during phase %s: the worker hung and was stopped",
					 jobs[i].stall_ms / 1000.0, w->phase);
				stop_worker(w, grace, why);
			}
			if (w->term_sent && !w->killed && now >= w->kill_at) {
				kill(-w->pid, SIGKILL);
				w->killed = 1;
			}
		}
	}
	free(ws);
	free(pfd);
	free(idx);
	if (rc < 0 && finished < n)
		return rc;
	return interrupted;
}
