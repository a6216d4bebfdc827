#include "ui.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define C_RESET "\033[0m"
#define C_RED "\033[31m"
#define C_GREEN "\033[32m"
#define C_YELLOW "\033[33m"
#define C_BOLD "\033[1m"
#define C_DIM "\033[2m"

static const char *col(const struct farm_ui *ui, const char *c)
{
	return ui->color ? c : "";
}

#define LIVE_REDRAW_MS 100

struct live_row {
	char board[41];
	char phase[16];
	char current[61];
	char progress[24];   /* a flash step's percentage, shown instead of the test count */
	size_t total, done, passed, failed, errors, skipped;
	long long start_ms, end_ms;
};

struct farm_ui_live {
	struct live_row *rows;
	size_t n;
	size_t drawn;        /* lines drawn last time (to move back over them) */
	long long last_ms;
	long long t0;
};

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct live_row *live_row(const struct farm_ui *ui, const char *board)
{
	for (size_t i = 0; ui->live && i < ui->live->n; i++)
		if (!strcmp(ui->live->rows[i].board, board))
			return &ui->live->rows[i];
	return NULL;
}

static void live_draw(const struct farm_ui *ui, int force)
{
	struct farm_ui_live *l = ui->live;
	long long now = mono_ms();
	if (!force && now - l->last_ms < LIVE_REDRAW_MS)
		return;
	l->last_ms = now;
	char line[256];
	/* one write per redraw: move up over the old table, rewrite every row */
	size_t cap = (l->n + 2) * (sizeof line + 32);
	char *buf = malloc(cap);
	if (!buf)
		return;
	size_t len = 0;
	if (l->drawn)
		len += (size_t)snprintf(buf + len, cap - len, "\033[%zuA", l->drawn);
	len += (size_t)snprintf(buf + len, cap - len, "\r\033[2K%s%-20s %-10s %9s  %-34s %7s  %s%s\n",
				col(ui, C_BOLD), "board", "phase", "progress", "current", "elapsed",
				"result", col(ui, C_RESET));
	for (size_t i = 0; i < l->n; i++) {
		const struct live_row *r = &l->rows[i];
		double el = r->start_ms ? (double)((r->end_ms ? r->end_ms : now) - r->start_ms) / 1000.0 : 0;
		char prog[24], res[64];
		if (r->progress[0])
			snprintf(prog, sizeof prog, "%s", r->progress);
		else
			snprintf(prog, sizeof prog, "%zu/%zu", r->done, r->total);
		snprintf(res, sizeof res, "%zu ok %zu fail %zu err %zu skip", r->passed, r->failed,
			 r->errors, r->skipped);
		const char *c = r->errors ? col(ui, C_RED C_BOLD) : r->failed ? col(ui, C_RED)
				: r->end_ms ? col(ui, C_GREEN) : "";
		snprintf(line, sizeof line, "%-20.20s %-10.10s %9s  %-34.34s %6.1fs  %s%s%s", r->board,
			 r->end_ms ? "done" : r->phase, prog, r->current, el, c, res, col(ui, C_RESET));
		len += (size_t)snprintf(buf + len, cap - len, "\r\033[2K%s\n", line);
		if (len >= cap)
			len = cap - 1;
	}
	fwrite(buf, 1, len, ui->out);
	fflush(ui->out);
	free(buf);
	l->drawn = l->n + 1;
}

int farm_ui_live_start(struct farm_ui *ui, const char *const *boards, const size_t *tests, size_t n)
{
	if (!ui->tty || ui->quiet || ui->verbose || n == 0)
		return -1;
	struct farm_ui_live *l = calloc(1, sizeof *l);
	if (!l)
		return -1;
	l->rows = calloc(n, sizeof *l->rows);
	if (!l->rows) {
		free(l);
		return -1;
	}
	l->n = n;
	l->t0 = mono_ms();
	for (size_t i = 0; i < n; i++) {
		snprintf(l->rows[i].board, sizeof l->rows[i].board, "%s", boards[i]);
		snprintf(l->rows[i].phase, sizeof l->rows[i].phase, "waiting");
		l->rows[i].total = tests[i];
	}
	ui->live = l;
	live_draw(ui, 1);
	return 0;
}

void farm_ui_board_done(const struct farm_ui *ui, const char *board, double time_s)
{
	(void)time_s;
	struct live_row *r = live_row(ui, board);
	if (!r)
		return;
	r->end_ms = mono_ms();
	if (!r->start_ms)
		r->start_ms = r->end_ms;
	r->current[0] = '\0';
	live_draw(ui, 1);
}

void farm_ui_live_stop(struct farm_ui *ui)
{
	if (!ui->live)
		return;
	live_draw(ui, 1);
	free(ui->live->rows);
	free(ui->live);
	ui->live = NULL;
}

void farm_ui_init(struct farm_ui *ui, FILE *out, int verbose, int quiet)
{
	ui->live = NULL;
	ui->out = out;
	ui->verbose = verbose;
	ui->quiet = quiet;
	ui->tty = isatty(fileno(out));
	const char *nc = getenv("NO_COLOR");
	ui->color = ui->tty && !(nc && nc[0]);
}

/* Wall-clock timestamp for CI logs (not on a TTY). */
static void stamp(const struct farm_ui *ui, char *buf, size_t len)
{
	buf[0] = '\0';
	if (ui->tty)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, len, "%02d:%02d:%02d.%03ld ", tm.tm_hour, tm.tm_min, tm.tm_sec,
		 ts.tv_nsec / 1000000);
}

void farm_ui_phase(const struct farm_ui *ui, const char *board, const char *phase, const char *fmt,
		   ...)
{
	if (ui->quiet)
		return;
	char msg[1024], ts[32];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct live_row *r = live_row(ui, board);
	if (r) {
		if (!r->start_ms)
			r->start_ms = mono_ms();
		snprintf(r->phase, sizeof r->phase, "%s", phase);
		snprintf(r->current, sizeof r->current, "%.60s", msg);
		live_draw(ui, 0);
		return;
	}
	stamp(ui, ts, sizeof ts);
	/* one fprintf per line: lines from several writers never interleave mid-line */
	fprintf(ui->out, "%s%s[%s]%s %s: %s\n", ts, col(ui, C_BOLD), board, col(ui, C_RESET), phase,
		msg);
	fflush(ui->out);
}

void farm_ui_progress(const struct farm_ui *ui, const char *board, const char *step,
		      unsigned long long done, unsigned long long total)
{
	if (ui->quiet)
		return;
	unsigned pct = total ? (unsigned)(done * 100 / total) : 100;
	struct live_row *r = live_row(ui, board);
	if (r) {
		snprintf(r->progress, sizeof r->progress, "%.6s %u%%", step, pct);
		if (done >= total)
			r->progress[0] = '\0';
		live_draw(ui, 0);
		return;
	}
	char ts[32];
	stamp(ui, ts, sizeof ts);
	if (ui->tty) {
		char bar[31];
		unsigned fill = pct * 30 / 100;
		for (unsigned i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[30] = '\0';
		fprintf(ui->out, "\r\033[2K%s[%s]%s %s [%s] %3u%% %llu/%llu KiB%s", col(ui, C_BOLD), board,
			col(ui, C_RESET), step, bar, pct, done / 1024, (total + 1023) / 1024,
			done >= total ? "\n" : "");
	} else {
		fprintf(ui->out, "%s[%s] %s: %u%% (%llu of %llu bytes)\n", ts, board, step, pct, done,
			total);
	}
	fflush(ui->out);
}

static const char *verdict_color(const struct farm_ui *ui, enum farm_verdict v)
{
	switch (v) {
	case FARM_PASS: return col(ui, C_GREEN);
	case FARM_FAIL: return col(ui, C_RED);
	case FARM_ERROR: return col(ui, C_RED C_BOLD);
	case FARM_SKIP: return col(ui, C_YELLOW);
	}
	return "";
}

void farm_ui_case(const struct farm_ui *ui, const char *board, const struct farm_case *c)
{
	if (ui->quiet)
		return;
	struct live_row *r = live_row(ui, board);
	if (r) {
		r->done++;
		r->passed += c->verdict == FARM_PASS;
		r->failed += c->verdict == FARM_FAIL;
		r->errors += c->verdict == FARM_ERROR;
		r->skipped += c->verdict == FARM_SKIP;
		snprintf(r->phase, sizeof r->phase, "test");
		snprintf(r->current, sizeof r->current, "%s/%s", c->suite ? c->suite : "",
			 c->name ? c->name : "");
		live_draw(ui, 0);
		return;
	}
	char ts[32];
	stamp(ui, ts, sizeof ts);
	const char *label = c->verdict == FARM_PASS ? "PASS" : c->verdict == FARM_FAIL ? "FAIL"
			  : c->verdict == FARM_ERROR ? "ERROR" : "SKIP";
	fprintf(ui->out, "%s%s[%s]%s test %s/%s: %s%s%s (%.2f s)%s%s\n", ts, col(ui, C_BOLD), board,
		col(ui, C_RESET), c->suite ? c->suite : "", c->name ? c->name : "",
		verdict_color(ui, c->verdict), label, col(ui, C_RESET), c->time_s,
		c->message && c->verdict != FARM_PASS ? " - " : "",
		c->message && c->verdict != FARM_PASS ? c->message : "");
	fflush(ui->out);
}

void farm_ui_transcript(const struct farm_ui *ui, const char *board, const char *data, size_t len)
{
	if (!ui->verbose || ui->quiet || !len)
		return;
	char line[512];
	size_t n = 0;
	for (size_t i = 0; i <= len; i++) {
		int end = i == len || data[i] == '\n';
		if (!end) {
			unsigned char c = (unsigned char)data[i];
			if (c == '\r')
				continue;
			if (n + 5 >= sizeof line)
				end = 1;
			else if (c < 0x20 || c == 0x7f)
				n += (size_t)snprintf(line + n, sizeof line - n, "\\x%02x", c);
			else
				line[n++] = (char)c;
		}
		if (end) {
			if (n || i < len)
				fprintf(ui->out, "%s[%s] |%s %.*s\n", col(ui, C_DIM), board, col(ui, C_RESET),
					(int)n, line);
			n = 0;
		}
	}
	fflush(ui->out);
}

void farm_ui_summary(const struct farm_ui *ui, const struct farm_run_result *r)
{
	size_t w = 5;
	for (size_t i = 0; i < r->n_boards; i++) {
		size_t l = strlen(r->boards[i].board_id);
		if (l > w)
			w = l < 40 ? l : 40;
	}
	fprintf(ui->out, "\n%s%-*s  %6s  %6s  %6s  %7s  %8s%s\n", col(ui, C_BOLD), (int)w, "board",
		"passed", "failed", "errors", "skipped", "time", col(ui, C_RESET));
	for (size_t i = 0; i < r->n_boards; i++) {
		struct farm_totals t;
		farm_board_totals(&r->boards[i], &t);
		const char *c = t.errors ? col(ui, C_RED C_BOLD) : t.failures ? col(ui, C_RED)
				: col(ui, C_GREEN);
		fprintf(ui->out, "%s%-*.*s%s  %6zu  %6zu  %6zu  %7zu  %7.1fs\n", c, (int)w, (int)w,
			r->boards[i].board_id, col(ui, C_RESET), t.passed, t.failures, t.errors, t.skipped,
			r->boards[i].time_s);
	}
	/* What went wrong, one line per test, whatever the output mode. */
	int header = 0;
	for (size_t i = 0; i < r->n_boards; i++)
		for (size_t k = 0; k < r->boards[i].n_cases; k++) {
			const struct farm_case *c = &r->boards[i].cases[k];
			if (c->verdict != FARM_FAIL && c->verdict != FARM_ERROR)
				continue;
			if (!header++)
				fprintf(ui->out, "\n%sfailures and errors:%s\n", col(ui, C_BOLD), col(ui, C_RESET));
			fprintf(ui->out, "  [%s] %s/%s: %s%s%s - %s\n", r->boards[i].board_id,
				c->suite ? c->suite : "", c->name ? c->name : "", verdict_color(ui, c->verdict),
				c->verdict == FARM_FAIL ? "FAIL" : "ERROR", col(ui, C_RESET),
				c->message ? c->message : "");
		}
	struct farm_totals all;
	farm_run_totals(r, &all);
	fprintf(ui->out, "%-*s  %6zu  %6zu  %6zu  %7zu  %7.1fs\n", (int)w, "total", all.passed,
		all.failures, all.errors, all.skipped, all.time_s);
	fflush(ui->out);
}
