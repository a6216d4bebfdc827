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
#include "transport.h"

/* ---- worker side: a sink that writes records to the pipe ---- */

struct pipe_sink {
	int fd;
	int broken; /* the parent went away: stop writing */
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

static void p_end(void *p, double time_s)
{
	char ms[32];
	snprintf(ms, sizeof ms, "%lld", (long long)(time_s * 1000.0 + 0.5));
	struct farm_event_field f[] = { FLD(FARM_F_TIME_MS, ms) };
	emit(p, FARM_EV_END, f, 1);
}

static void worker_main(const struct farm_job *job, int fd)
{
	/* Own process group: a terminal Ctrl-C reaches only the parent, which
	 * tells us to stop with SIGTERM (handled by main's handler: cancel). */
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGINT, SIG_IGN);
	struct pipe_sink ps = { .fd = fd };
	struct farm_job_sink sink = {
		.meta = p_meta, .prop = p_prop, .phase = p_phase, .chunk = p_chunk,
		.case_done = p_case, .transcript = p_transcript, .end = p_end, .payload = &ps,
	};
	struct farm_err e = { 0 };
	farm_job_run(job, &sink, &e);
	close(fd);
	_exit(0); /* no atexit handlers, no stdio buffers of the parent flushed twice */
}

/* ---- parent side ---- */

struct worker {
	pid_t pid;
	int fd;
	int started, finished, ended; /* ended: END record seen */
	struct farm_event_reader rd;
	long long start_ms, kill_at, last_ms;
	int term_sent, killed;
	char phase[32];
	char reason[256]; /* why the parent stopped it */
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
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return farm_err_sys(e, FARM_ESYS, errno, "board %s: pipe", job->board->id);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		int err = errno;
		close(fds[0]);
		close(fds[1]);
		return farm_err_sys(e, FARM_ESYS, err, "board %s: fork", job->board->id);
	}
	if (pid == 0) {
		close(fds[0]);
		worker_main(job, fds[1]);
	}
	setpgid(pid, pid); /* also done by the child: no race on who is first */
	close(fds[1]);
	w->pid = pid;
	w->fd = fds[0];
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
	for (size_t i = 0; i < n; i++) {
		ws[i].fd = -1;
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
		long long now = farm_now_ms();
		for (size_t i = 0; i < n; i++) {
			struct worker *w = &ws[i];
			if (!w->started || w->finished)
				continue;
			unsigned deadline = jobs[i].deadline_ms ? jobs[i].deadline_ms : o->board_timeout_ms;
			if (deadline && !w->term_sent && now - w->start_ms > (long long)deadline) {
				char why[128];
				snprintf(why, sizeof why, "board deadline of %.1f s exceeded during phase %s",
					 deadline / 1000.0, w->phase);
				stop_worker(w, grace, why);
			}
			/* The watchdog: a worker that says nothing for longer than any healthy
			 * step takes is hung (stuck in a driver, stopped, deadlocked). */
			if (jobs[i].stall_ms && !w->term_sent &&
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
