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

void farm_ui_init(struct farm_ui *ui, FILE *out, int verbose, int quiet)
{
	ui->out = out;
	ui->verbose = verbose;
	ui->quiet = quiet;
	ui->tty = isatty(fileno(out));
	const char *nc = getenv("NO_COLOR");
	ui->color = ui->tty && !(nc && nc[0]);
}

static const char *col(const struct farm_ui *ui, const char *c)
{
	return ui->color ? c : "";
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
	stamp(ui, ts, sizeof ts);
	/* one fprintf per line: lines from several writers never interleave mid-line */
	fprintf(ui->out, "%s%s[%s]%s %s: %s\n", ts, col(ui, C_BOLD), board, col(ui, C_RESET), phase,
		msg);
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
	struct farm_totals all;
	farm_run_totals(r, &all);
	fprintf(ui->out, "%-*s  %6zu  %6zu  %6zu  %7zu  %7.1fs\n", (int)w, "total", all.passed,
		all.failures, all.errors, all.skipped, all.time_s);
	fflush(ui->out);
}
