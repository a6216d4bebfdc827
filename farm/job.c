#include "job.h"

#include "job_flash.h"
#include "jsonl.h"
#include "lock.h"

#include <errno.h>
#include <stdarg.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "repl.h"
#include "replproto.h"
#include "session.h"
#include "transport.h"

/* Prints "key value" lines; keeps the board's globals clean. */
const char farm_job_identity_code[] =
	"def _mpf_id():\n"
	" import sys\n"
	" i=sys.implementation\n"
	" print('impl',i.name,'.'.join([str(x) for x in i.version[:3]]))\n"
	" print('platform',sys.platform)\n"
	" try:\n"
	"  import os;u=os.uname()\n"
	" except Exception:\n"
	"  return\n"
	" print('build',u.version)\n"
	" print('machine',u.machine)\n"
	"_mpf_id()\n"
	"del _mpf_id\n";

#define MAX_FEATURES 32

struct job_state {
	const struct farm_job *job;
	const struct farm_job_sink *sink;
	struct farm_session *s;
	int gone;                 /* the board stopped answering */
	int busy;                 /* another mpfarm process holds the board */
	const char *gone_type;    /* the error type of tests not run ("board-unreachable", "flash") */
	char firmware[600];       /* identity, for the phase line */
	char gone_why[FARM_ERR_MSG_MAX];
	int flashed;              /* the flash phase wrote the planned image */
	struct { const char *name; int has; } features[MAX_FEATURES];
	size_t n_features;
};

static int interrupted(const struct farm_job *job)
{
	return job->cancel && *job->cancel;
}

static void add_identity(struct job_state *st, const char *out)
{
	const char *p = out;
	char fw[600] = "";
	char line[600];
	while (*p) {
		size_t n = strcspn(p, "\r\n");
		size_t k = n < sizeof line - 1 ? n : sizeof line - 1;
		memcpy(line, p, k);
		line[k] = '\0';
		p += n;
		while (*p == '\r' || *p == '\n')
			p++;
		char *sp = strchr(line, ' ');
		if (!sp)
			continue;
		*sp = '\0';
		const char *val = sp + 1;
		char name[64];
		snprintf(name, sizeof name, "firmware.%.40s", line);
		st->sink->prop(st->sink->payload, name, val);
		if (!strcmp(line, "build"))
			snprintf(fw, sizeof fw, "%s", val);
		else if (!strcmp(line, "impl") && !fw[0])
			snprintf(fw, sizeof fw, "%s", val);
	}
	if (fw[0])
		st->sink->prop(st->sink->payload, "firmware", fw);
	snprintf(st->firmware, sizeof st->firmware, "%s", fw);
}

static void phasef(struct job_state *st, const char *phase, const char *fmt, ...) FARM_PRINTF(3, 4);
static void phasef(struct job_state *st, const char *phase, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	st->sink->phase(st->sink->payload, phase, msg);
}

static void mark_gone(struct job_state *st, const char *why)
{
	st->gone = 1;
	if (!st->gone_type)
		st->gone_type = "board-unreachable";
	snprintf(st->gone_why, sizeof st->gone_why, "%s", why);
}

static int read_identity(struct job_state *st, struct farm_err *e)
{
	struct farm_repl_result r = { 0 };
	int rc = farm_repl_exec(st->s->repl, farm_job_identity_code, sizeof farm_job_identity_code - 1,
				(int)st->job->board->repl.test_timeout_ms, &r, e);
	if (rc == 0 && r.err.len)
		rc = farm_err_set(e, FARM_EPROTO, "identity query raised: %.200s", r.err.data);
	if (rc == 0 && r.out.len)
		add_identity(st, r.out.data);
	farm_repl_result_free(&r);
	return rc;
}

/* Whether the board has a Python feature (probed once per board). */
static int has_feature(struct job_state *st, const char *name, struct farm_err *e)
{
	for (size_t i = 0; i < st->n_features; i++)
		if (!strcmp(st->features[i].name, name))
			return st->features[i].has;
	const char *code = farm_suite_feature_probe(name);
	if (!code)
		return 0;
	struct farm_repl_result r = { 0 };
	int rc = farm_repl_exec(st->s->repl, code, strlen(code),
				(int)st->job->board->repl.test_timeout_ms, &r, e);
	int has = rc == 0 && !r.err.len && r.out.len >= 1 && r.out.data[0] == '1';
	farm_repl_result_free(&r);
	if (rc && rc != FARM_ETIMEDOUT)
		return rc < 0 ? rc : -1;
	if (st->n_features < MAX_FEATURES) {
		st->features[st->n_features].name = name;
		st->features[st->n_features].has = has;
		st->n_features++;
	}
	return has;
}

/* NULL if the board meets the requirements, else the reason (static buffer in st). */
static const char *unmet(struct job_state *st, const struct farm_test *t, char *why, size_t len,
			 int *err_rc, struct farm_err *e)
{
	const struct farm_board *b = st->job->board;
	*err_rc = 0;
	if (t->req.n_ports) {
		int ok = 0;
		for (size_t i = 0; i < t->req.n_ports; i++)
			if (b->port && !strcmp(b->port, t->req.ports[i]))
				ok = 1;
		if (!ok) {
			snprintf(why, len, "requires port %s%s (board is %s)", t->req.ports[0],
				 t->req.n_ports > 1 ? " or another listed port" : "", b->port ? b->port : "?");
			return why;
		}
	}
	for (size_t i = 0; i < t->req.n_tags; i++)
		if (!farm_board_has_tag(b, t->req.tags[i])) {
			snprintf(why, len, "requires tag %s", t->req.tags[i]);
			return why;
		}
	for (size_t i = 0; i < t->req.n_features; i++) {
		int h = has_feature(st, t->req.features[i], e);
		if (h < 0) {
			*err_rc = h;
			return NULL;
		}
		if (!h) {
			snprintf(why, len, "board lacks feature %s", t->req.features[i]);
			return why;
		}
	}
	return NULL;
}

static size_t trim_final_newline(const char *s, size_t n)
{
	return n && s[n - 1] == '\n' ? n - 1 : n;
}

static void set_detail(struct farm_case *c, const char *expect_label, const char *expect,
		       const struct farm_buf *out, const struct farm_buf *err)
{
	struct farm_buf d = { 0 };
	if (expect_label)
		farm_buf_printf(&d, "%s:\n%s\n", expect_label, expect ? expect : "");
	farm_buf_printf(&d, "actual output:\n%s", out->len ? out->data : "");
	if (out->len && out->data[out->len - 1] != '\n')
		farm_buf_puts(&d, "\n");
	if (err->len)
		farm_buf_printf(&d, "traceback:\n%s", err->data);
	free(c->detail);
	c->detail = farm_buf_steal(&d);
}

/* Judge a completed execution. */
static void judge(const struct farm_test *t, struct farm_case *c, struct farm_buf *out,
		  struct farm_buf *err)
{
	if (out->len)
		out->len = farm_repl_normalize_eol(out->data, out->len);
	if (err->len)
		err->len = farm_repl_normalize_eol(err->data, err->len);
	struct farm_buf all = { 0 };
	farm_buf_append(&all, out->data ? out->data : "", out->len);
	farm_buf_append(&all, err->data ? err->data : "", err->len);
	free(c->output);
	c->output = farm_buf_steal(&all);

	if (t->skip_on_output_skip && out->len == 5 && !memcmp(out->data, "SKIP\n", 5) && !err->len) {
		farm_case_set(c, FARM_SKIP, NULL, "the test printed SKIP");
		return;
	}
	char exc[128];
	farm_repl_exc_type(err->data ? err->data : "", err->len, exc, sizeof exc);
	if (t->expect_kind == FARM_EXPECT_ERROR) {
		const char *want = t->expect;
		const char *dot = strrchr(want, '.');
		int ok = exc[0] && (!strcmp(exc, want) || (dot && !strcmp(exc, dot + 1)));
		if (ok)
			farm_case_set(c, FARM_PASS, NULL, "raised %s", exc);
		else {
			if (exc[0])
				farm_case_set(c, FARM_FAIL, "wrong-exception", "expected %s, got %s", want, exc);
			else
				farm_case_set(c, FARM_FAIL, "no-exception", "expected %s, nothing was raised", want);
			set_detail(c, "expected exception", want, out, err);
		}
		return;
	}
	if (err->len) {
		farm_case_set(c, FARM_FAIL, "exception", "raised %s", exc[0] ? exc : "an exception");
		set_detail(c, t->expect_kind == FARM_EXPECT_EXACT ? "expected output" : NULL, t->expect,
			   out, err);
		return;
	}
	if (t->expect_kind == FARM_EXPECT_EXACT) {
		size_t el = strlen(t->expect);
		char *want = strdup(t->expect);
		if (!want) {
			farm_case_set(c, FARM_ERROR, "internal", "out of memory");
			return;
		}
		el = farm_repl_normalize_eol(want, el);
		size_t wl = trim_final_newline(want, el);
		size_t ol = trim_final_newline(out->data ? out->data : "", out->len);
		int ok = wl == ol && (ol == 0 || !memcmp(want, out->data, ol));
		free(want);
		if (ok)
			farm_case_set(c, FARM_PASS, NULL, NULL);
		else {
			farm_case_set(c, FARM_FAIL, "output-mismatch", "output differs from the expected output");
			set_detail(c, "expected output", t->expect, out, err);
		}
		return;
	}
	if (t->expect_kind == FARM_EXPECT_REGEX) {
		regex_t re;
		if (regcomp(&re, t->expect, REG_EXTENDED | REG_NEWLINE | REG_NOSUB) != 0) {
			farm_case_set(c, FARM_ERROR, "bad-regex", "expect_regex does not compile");
			return;
		}
		int m = regexec(&re, out->data ? out->data : "", 0, NULL, 0);
		regfree(&re);
		if (m == 0)
			farm_case_set(c, FARM_PASS, NULL, NULL);
		else {
			farm_case_set(c, FARM_FAIL, "output-mismatch", "output does not match /%s/", t->expect);
			set_detail(c, "expected to match", t->expect, out, err);
		}
		return;
	}
	farm_case_set(c, FARM_PASS, NULL, NULL);
}

static void run_test(struct job_state *st, const struct farm_suite *suite, const struct farm_test *t)
{
	const struct farm_job *job = st->job;
	struct farm_case cs = { .suite = suite->name, .name = t->name };
	struct farm_case *c = &cs;
	if (interrupted(job)) {
		farm_case_set(c, FARM_SKIP, NULL, "run interrupted");
		goto shown;
	}
	if (st->busy) {
		farm_case_set(c, FARM_SKIP, NULL, "%s", st->gone_why);
		goto shown;
	}
	if (st->gone) {
		farm_case_set(c, FARM_ERROR, st->gone_type, "not run: %s", st->gone_why);
		goto shown;
	}
	if (t->skip_reason) {
		farm_case_set(c, FARM_SKIP, NULL, "%s", t->skip_reason);
		goto shown;
	}
	char why[256];
	struct farm_err e = { 0 };
	int err_rc = 0;
	const char *reason = unmet(st, t, why, sizeof why, &err_rc, &e);
	if (err_rc == FARM_EINTR) {
		farm_case_set(c, FARM_SKIP, NULL, "run interrupted");
		goto shown;
	}
	if (err_rc) {
		mark_gone(st, e.msg);
		farm_case_set(c, FARM_ERROR, "board-unreachable", "feature probe failed: %s", e.msg);
		goto shown;
	}
	if (reason) {
		farm_case_set(c, FARM_SKIP, NULL, "%s", reason);
		goto shown;
	}
	size_t mark = st->s->transcript.len;
	struct farm_repl_result r = { 0 };
	unsigned timeout = t->timeout_ms ? t->timeout_ms : job->board->repl.test_timeout_ms;
	int rc = farm_repl_exec(st->s->repl, t->code, t->code_len, (int)timeout, &r, &e);
	c->time_s = r.time_s;
	switch (rc) {
	case 0:
		judge(t, c, &r.out, &r.err);
		break;
	case FARM_ETIMEDOUT:
		farm_case_set(c, FARM_FAIL, "timeout", "timed out after %.1f s (interrupted; board recovered)",
			      timeout / 1000.0);
		set_detail(c, NULL, NULL, &r.out, &r.err);
		break;
	case FARM_EINTR:
		farm_case_set(c, FARM_SKIP, NULL, "run interrupted");
		break;
	case FARM_ELIMIT:
		farm_case_set(c, FARM_ERROR, "upload", "%s", e.msg);
		break;
	case FARM_EPROTO:
		farm_case_set(c, FARM_ERROR, "transport", "%s", e.msg);
		break;
	default:
		mark_gone(st, e.msg);
		farm_case_set(c, FARM_ERROR, "board-unreachable", "%s", e.msg);
		break;
	}
	farm_repl_result_free(&r);
	if (mark <= st->s->transcript.len && st->s->transcript.len > mark)
		st->sink->chunk(st->sink->payload, st->s->transcript.data + mark,
				st->s->transcript.len - mark);
shown:
	st->sink->case_done(st->sink->payload, c);
	free(cs.message);
	free(cs.type);
	free(cs.detail);
	free(cs.output);
}

static void iso_now(char *buf, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
}

static void open_log(const struct farm_job *job, char *path, size_t len, FILE **log)
{
	*log = NULL;
	path[0] = '\0';
	if (!job->log_dir)
		return;
	snprintf(path, len, "%s/%s.log", job->log_dir, job->board->id);
	*log = fopen(path, "w");
}

/* The board lock: two mpfarm processes never drive one board. */
static struct farm_lock *take_board_lock(struct job_state *st)
{
	const struct farm_job *job = st->job;
	struct farm_lock *lock = NULL;
	struct farm_lock_owner me = { 0 }, holder = { 0 };
	snprintf(me.run_id, sizeof me.run_id, "%s", job->run_id ? job->run_id : "");
	snprintf(me.what, sizeof me.what, "board %s", job->board->id);
	struct farm_err le = { 0 };
	int lrc = farm_lock_acquire(&lock, job->lock_dir, "board", job->board->id, &me,
				    job->wait_lock_ms, job->cancel, &holder, &le);
	if (lrc == FARM_EBUSY) {
		char who[256];
		farm_lock_owner_describe(&holder, who, sizeof who);
		snprintf(st->gone_why, sizeof st->gone_why, "board busy: locked by %s", who);
		st->sink->phase(st->sink->payload, "lock", st->gone_why);
		st->busy = 1;
	} else if (lrc && lrc != FARM_EINTR) {
		phasef(st, "lock", "FAILED: %s", le.msg);
		mark_gone(st, le.msg);
	}
	return lock;
}

static int flashing(const struct farm_job *job)
{
	return job->fw && job->fw->runner && job->fw->image;
}

/* Open the console and read the identity. Returns 0 when the REPL answered. */
static int connect_board(struct job_state *st, struct farm_session_opts *so, int after_flash)
{
	const struct farm_job *job = st->job;
	const struct farm_board *b = job->board;
	void *sp = st->sink->payload;
	struct farm_err ce = { 0 };
	char where[256];
	if (b->emulator.present)
		snprintf(where, sizeof where, "emulated board (qemu microbit) console");
	else if (b->serial.path)
		snprintf(where, sizeof where, "%s", b->serial.path);
	else
		snprintf(where, sizeof where, "the serial port of USB device%s%s%s%s",
			 b->serial.usb_serial ? " serial " : "",
			 b->serial.usb_serial ? b->serial.usb_serial : "",
			 b->serial.location ? " at " : "", b->serial.location ? b->serial.location : "");
	st->sink->phase(sp, "connect", where);
	so->reopen_ms = after_flash ? b->repl.boot_timeout_ms : 0;
	int rc = farm_session_open(&st->s, b, so, &ce);
	if (rc == FARM_EINTR || interrupted(job)) {
		st->sink->phase(sp, "connect", "not started: run interrupted");
		return FARM_EINTR;
	}
	if (rc) {
		phasef(st, "connect", "FAILED: %s", ce.msg);
		if (after_flash) {
			char why[FARM_ERR_MSG_MAX];
			snprintf(why, sizeof why, "flash failed: no REPL after flashing: %.400s", ce.msg);
			st->gone_type = "flash";
			st->sink->prop(sp, "flash.result", "failed");
			st->sink->prop(sp, "flash.error", why);
			mark_gone(st, why);
		} else {
			mark_gone(st, ce.msg);
		}
		return rc;
	}
	phasef(st, "connect", "raw REPL ready in %.2f s", st->s->boot_s);
	char boot[32];
	snprintf(boot, sizeof boot, "%.3f", st->s->boot_s);
	st->sink->prop(sp, "boot_time_s", boot);
	struct farm_err ie = { 0 };
	st->firmware[0] = '\0';
	rc = read_identity(st, &ie);
	if (rc == FARM_EINTR)
		return rc;
	if (rc) {
		phasef(st, "identify", "FAILED: %s", ie.msg);
		if (rc != FARM_EPROTO && rc != FARM_ETIMEDOUT)
			mark_gone(st, ie.msg);
		return rc;
	}
	st->sink->phase(sp, "identify", st->firmware[0] ? st->firmware : "(no identity)");
	return 0;
}

/* --reflash=changed: does the board already run the target firmware? */
static int already_runs_target(struct job_state *st, struct farm_session_opts *so)
{
	const struct farm_job *job = st->job;
	const char *want = job->fw->image->identity;
	void *sp = st->sink->payload;
	if (job->board->emulator.present && job->board->emulator.blank)
		return 0; /* nothing in its flash */
	if (!want[0]) {
		st->sink->phase(sp, "identify",
				"the image's identity is unknown (no version banner, no identity: in "
				"the inventory): flashing");
		return 0;
	}
	int rc = connect_board(st, so, 0);
	int same = rc == 0 && farm_fw_identity_matches(want, st->firmware);
	farm_session_close(st->s);
	st->s = NULL;
	if (rc && rc != FARM_EINTR) {
		/* a board that does not answer is flashed: that is what flashing is for */
		st->gone = 0;
		st->gone_type = NULL;
		st->gone_why[0] = '\0';
	}
	if (same)
		phasef(st, "flash", "skipped: the board already runs %s (--reflash=changed)", want);
	else if (rc == 0)
		phasef(st, "identify", "the board runs %s, the target is %s: flashing",
		       st->firmware[0] ? st->firmware : "(unknown)", want);
	return same;
}

static void flash_board(struct job_state *st, struct farm_emu *emu, FILE *log)
{
	void *sp = st->sink->payload;
	struct farm_err fe = { 0 };
	struct farm_flash_phase fph = { .job = st->job, .sink = st->sink, .emu = emu, .log = log };
	int rc = farm_job_flash(&fph, &fe);
	if (rc == 0) {
		st->sink->prop(sp, "flash.result", "flashed");
		st->flashed = 1;
		return;
	}
	if (rc == FARM_EINTR || interrupted(st->job)) {
		st->sink->phase(sp, "flash", "stopped: run interrupted");
		return;
	}
	if (rc == FARM_EBUSY) {
		/* another mpfarm run holds the probe or hub: like a busy board */
		snprintf(st->gone_why, sizeof st->gone_why, "%s", fe.msg);
		st->sink->phase(sp, "flash", fe.msg);
		st->busy = 1;
		return;
	}
	phasef(st, "flash", "FAILED: %s", fe.msg);
	st->sink->prop(sp, "flash.result", "failed");
	st->sink->prop(sp, "flash.error", fe.msg);
	char why[FARM_ERR_MSG_MAX];
	snprintf(why, sizeof why, "flash failed: %.480s", fe.msg);
	st->gone_type = "flash";
	mark_gone(st, why);
}

int farm_job_run(const struct farm_job *job, const struct farm_job_sink *sink, struct farm_err *e)
{
	const struct farm_board *b = job->board;
	struct job_state st = { .job = job, .sink = sink };
	void *sp = sink->payload;
	struct farm_buf transcript = { 0 };
	long long t0 = farm_now_ms();
	char ts[32], host[256] = "localhost";
	iso_now(ts, sizeof ts);
	gethostname(host, sizeof host - 1);
	char log_path[4096];
	FILE *log = NULL;
	open_log(job, log_path, sizeof log_path, &log);
	struct farm_session_opts so = { .emu = job->emu, .cancel = job->cancel, .log = log };
	sink->meta(sp, ts, host, log ? log_path : NULL);
	sink->prop(sp, "port", b->port);
	sink->prop(sp, "board", b->board);
	if (b->variant)
		sink->prop(sp, "variant", b->variant);
	if (b->emulator.present) {
		sink->prop(sp, "emulator", b->emulator.machine ? b->emulator.machine : "microbit");
		sink->prop(sp, "emulator.firmware", b->emulator.firmware ? b->emulator.firmware : "(blank)");
	} else {
		sink->prop(sp, "serial", b->serial.path);
	}

	struct farm_lock *lock = NULL;
	struct farm_emu *emu = NULL;
	if (job->fw && job->fw->error[0]) {
		/* no image for it: the board is left alone, its tests are skipped */
		st.busy = 1;
		snprintf(st.gone_why, sizeof st.gone_why, "no firmware: %.480s", job->fw->error);
		sink->phase(sp, "firmware", st.gone_why);
	}
	if (!interrupted(job) && job->lock_dir && !st.busy)
		lock = take_board_lock(&st);
	int go = !interrupted(job) && !st.busy && !st.gone; /* an interrupted run starts nothing new */
	if (go && b->emulator.present) {
		/* A board that is flashed starts halted; its old firmware, if any, is
		 * written into its flash as it would have been programmed long ago. */
		struct farm_emu_opts eo = job->emu ? *job->emu : (struct farm_emu_opts){ 0 };
		eo.halted = flashing(job) || b->emulator.blank;
		struct farm_err ee = { 0 };
		sink->phase(sp, "emulator", eo.halted ? (b->emulator.blank ? "starting a blank emulated board (qemu microbit)"
							 : "starting an emulated board (qemu microbit) for flashing")
						  : "starting an emulated board (qemu microbit)");
		int rc = farm_emu_start(&emu, &b->emulator, b->id, &eo, &ee);
		if (rc == 0 && eo.halted)
			rc = farm_job_emu_poweron(emu, b, log, job->cancel, &ee);
		if (rc == FARM_EINTR || interrupted(job)) {
			go = 0;
		} else if (rc) {
			phasef(&st, "emulator", "FAILED: %s", ee.msg);
			mark_gone(&st, ee.msg);
			go = 0;
		}
		so.emu_running = emu;
	}
	if (go && flashing(job)) {
		if (!(job->reflash_changed && already_runs_target(&st, &so)))
			flash_board(&st, emu, log);
		else
			sink->prop(sp, "flash.result", "skipped: the board already runs the target firmware");
		go = !interrupted(job) && !st.busy && !st.gone;
	} else if (go && b->emulator.present && b->emulator.blank) {
		mark_gone(&st, "the emulated board is blank and nothing flashed it");
		go = 0;
	}
	if (go && connect_board(&st, &so, st.flashed) == 0 && st.flashed) {
		/* the board must now run what was written */
		const char *want = job->fw->image->identity;
		if (want[0] && !farm_fw_identity_matches(want, st.firmware)) {
			char why[FARM_ERR_MSG_MAX];
			snprintf(why, sizeof why,
				 "flash failed: the board runs \"%.200s\" after flashing, expected \"%.120s\"",
				 st.firmware, want);
			phasef(&st, "identify", "%s", why);
			sink->prop(sp, "flash.result", "failed");
			sink->prop(sp, "flash.error", why);
			st.gone_type = "flash";
			mark_gone(&st, why);
		} else {
			phasef(&st, "identify", "%s", want[0] ? "the new firmware is running"
						: "the image has no known identity: not compared");
		}
	}
	if (!go && interrupted(job) && !st.busy && !st.gone)
		sink->phase(sp, "connect", "not started: run interrupted");

	for (size_t si = 0; si < job->n_suites; si++)
		for (size_t ti = 0; ti < job->suites[si]->n_tests; ti++)
			run_test(&st, job->suites[si], &job->suites[si]->tests[ti]);

	if (st.s) {
		const struct farm_repl_stats *stats = farm_repl_stats(st.s->repl);
		char buf[64];
		snprintf(buf, sizeof buf, "%u", stats->faults);
		sink->prop(sp, "repl.transport_faults", buf);
		snprintf(buf, sizeof buf, "%u", stats->memory_retries);
		sink->prop(sp, "repl.memory_retries", buf);
		snprintf(buf, sizeof buf, "%u", stats->hard_resets);
		sink->prop(sp, "repl.hard_resets", buf);
		sink->prop(sp, "repl.raw_paste",
			   farm_repl_raw_paste_supported(st.s->repl) == 1 ? "yes" : "no");
	}
	farm_session_close_keep(st.s, &transcript);
	farm_emu_stop(emu, 1000);
	farm_lock_release(lock);
	if (log)
		fclose(log);
	sink->transcript(sp, transcript.data ? transcript.data : "", transcript.len);
	farm_buf_free(&transcript);
	sink->end(sp, (double)(farm_now_ms() - t0) / 1000.0);
	if (interrupted(job))
		return farm_err_set(e, FARM_EINTR, "interrupted");
	return 0;
}

/* ---- the direct sink: a board result and the terminal ---- */

static void d_meta(void *p, const char *timestamp, const char *hostname, const char *log_path)
{
	struct farm_job_direct *d = p;
	free(d->res->timestamp);
	free(d->res->hostname);
	free(d->res->log_path);
	d->res->timestamp = timestamp ? strdup(timestamp) : NULL;
	d->res->hostname = hostname ? strdup(hostname) : NULL;
	d->res->log_path = log_path ? strdup(log_path) : NULL;
}

static void d_prop(void *p, const char *name, const char *value)
{
	struct farm_job_direct *d = p;
	farm_board_add_prop(d->res, name, value);
	if (d->json)
		farm_jsonl_prop(d->json, d->res->board_id, name, value);
}

static void d_phase(void *p, const char *phase, const char *msg)
{
	struct farm_job_direct *d = p;
	farm_ui_phase(d->ui, d->res->board_id, phase, "%s", msg);
	if (d->json)
		farm_jsonl_phase(d->json, d->res->board_id, phase, msg);
}

static void d_chunk(void *p, const char *data, size_t len)
{
	struct farm_job_direct *d = p;
	farm_ui_transcript(d->ui, d->res->board_id, data, len);
}

static void d_case(void *p, const struct farm_case *c)
{
	struct farm_job_direct *d = p;
	struct farm_case *n = farm_board_add_case(d->res, c->suite, c->name);
	if (!n)
		return;
	n->verdict = c->verdict;
	n->time_s = c->time_s;
	n->message = c->message ? strdup(c->message) : NULL;
	n->type = c->type ? strdup(c->type) : NULL;
	n->detail = c->detail ? strdup(c->detail) : NULL;
	n->output = c->output ? strdup(c->output) : NULL;
	farm_ui_case(d->ui, d->res->board_id, n);
	if (d->json)
		farm_jsonl_case(d->json, d->res->board_id, n);
}

static void d_transcript(void *p, const char *data, size_t len)
{
	struct farm_job_direct *d = p;
	free(d->res->transcript);
	d->res->transcript = malloc(len + 1);
	d->res->transcript_len = d->res->transcript ? len : 0;
	if (d->res->transcript) {
		memcpy(d->res->transcript, data, len);
		d->res->transcript[len] = '\0';
	}
}

static void d_progress(void *p, const char *step, uint64_t done, uint64_t total)
{
	struct farm_job_direct *d = p;
	int q = total ? (int)(done * 4 / total) : 4;
	if (d->ui->tty || strcmp(step, d->prog_step) != 0 || q != d->prog_quarter) {
		/* a terminal redraws a bar; a log gets a line per quarter */
		snprintf(d->prog_step, sizeof d->prog_step, "%s", step);
		d->prog_quarter = q;
		farm_ui_progress(d->ui, d->res->board_id, step, done, total);
	}
	if (d->json)
		farm_jsonl_progress(d->json, d->res->board_id, step, done, total);
}

static void d_end(void *p, double time_s)
{
	struct farm_job_direct *d = p;
	d->res->time_s = time_s;
	farm_ui_board_done(d->ui, d->res->board_id, time_s);
	if (d->json)
		farm_jsonl_end(d->json, d->res->board_id, time_s);
}

void farm_job_direct_sink(struct farm_job_sink *sink, struct farm_job_direct *d)
{
	sink->meta = d_meta;
	sink->prop = d_prop;
	sink->phase = d_phase;
	sink->chunk = d_chunk;
	sink->case_done = d_case;
	sink->transcript = d_transcript;
	sink->end = d_end;
	sink->progress = d_progress;
	sink->payload = d;
}
