#include "jsonl.h"

#include "utf8.h"

#include <string.h>
#include <time.h>

int farm_json_string(struct farm_buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	int rc = farm_buf_append(out, "\"", 1);
	for (size_t i = 0; i < len && !rc;) {
		unsigned char c = p[i];
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			rc = farm_buf_append(out, esc, 2);
			i++;
		} else if (c == '\n') {
			rc = farm_buf_append(out, "\\n", 2);
			i++;
		} else if (c == '\r') {
			rc = farm_buf_append(out, "\\r", 2);
			i++;
		} else if (c == '\t') {
			rc = farm_buf_append(out, "\\t", 2);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			rc = farm_buf_printf(out, "\\u%04x", c);
			i++;
		} else {
			uint32_t cp;
			size_t k = c < 0x80 ? 1 : farm_utf8_seq(p + i, len - i, &cp);
			if (k == 0) {
				rc = farm_buf_append(out, "\\ufffd", 6);
				i++;
			} else {
				rc = farm_buf_append(out, p + i, k);
				i += k;
			}
		}
	}
	if (!rc)
		rc = farm_buf_append(out, "\"", 1);
	return rc;
}

static void head(struct farm_buf *b, const char *board, const char *event)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char t[40];
	strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
	farm_buf_printf(b, "{\"time\":\"%s.%03ldZ\",\"board\":", t, ts.tv_nsec / 1000000);
	farm_json_string(b, board, strlen(board));
	farm_buf_printf(b, ",\"event\":\"%s\"", event);
}

static void field(struct farm_buf *b, const char *name, const char *value)
{
	if (!value)
		return;
	farm_buf_printf(b, ",\"%s\":", name);
	farm_json_string(b, value, strlen(value));
}

/* One write per line: lines never interleave. */
static void finish(FILE *f, struct farm_buf *b)
{
	farm_buf_append(b, "}\n", 2);
	if (b->data) {
		fwrite(b->data, 1, b->len, f);
		fflush(f);
	}
	farm_buf_free(b);
}

void farm_jsonl_phase(FILE *f, const char *board, const char *phase, const char *msg)
{
	struct farm_buf b = { 0 };
	head(&b, board, "phase");
	field(&b, "phase", phase);
	field(&b, "message", msg);
	finish(f, &b);
}

void farm_jsonl_progress(FILE *f, const char *board, const char *step, unsigned long long done,
			 unsigned long long total)
{
	struct farm_buf b = { 0 };
	head(&b, board, "progress");
	field(&b, "step", step);
	farm_buf_printf(&b, ",\"done\":%llu,\"total\":%llu", done, total);
	finish(f, &b);
}

void farm_jsonl_prop(FILE *f, const char *board, const char *name, const char *value)
{
	struct farm_buf b = { 0 };
	head(&b, board, "prop");
	field(&b, "name", name);
	field(&b, "value", value);
	finish(f, &b);
}

void farm_jsonl_case(FILE *f, const char *board, const struct farm_case *c)
{
	struct farm_buf b = { 0 };
	head(&b, board, "case");
	field(&b, "suite", c->suite);
	field(&b, "name", c->name);
	field(&b, "verdict", farm_verdict_name(c->verdict));
	farm_buf_printf(&b, ",\"time_ms\":%lld", (long long)(c->time_s * 1000.0 + 0.5));
	field(&b, "type", c->type);
	field(&b, "message", c->message);
	finish(f, &b);
}

void farm_jsonl_end(FILE *f, const char *board, double time_s)
{
	struct farm_buf b = { 0 };
	head(&b, board, "end");
	farm_buf_printf(&b, ",\"time_ms\":%lld", (long long)(time_s * 1000.0 + 0.5));
	finish(f, &b);
}
