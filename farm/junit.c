/* mpfarm: JUnit XML report writer (see junit.h).
 *
 * The dialect is the common subset read by the Jenkins junit plugin, GitLab's
 * JUnit report artifacts and the GitHub reporters (dorny/test-reporter,
 * mikepenz/action-junit-report, EnricoMi/publish-unit-test-result-action):
 *
 *   - root <testsuites>, one <testsuite> per board, in this child order:
 *     <properties>, <testcase>*, <system-out>;
 *   - testsuite attributes name, tests, failures, errors, skipped, time,
 *     timestamp (ISO 8601 "YYYY-MM-DDTHH:MM:SS", no zone, as the schemas
 *     require), hostname, id (board index), package (farm name, if any);
 *   - a testcase holds its <properties> (if any, as pytest writes them), at
 *     most one of <failure>, <error>, <skipped>, then its own <system-out>;
 *   - times are seconds with a '.' decimal point and three decimals, formatted
 *     from integer milliseconds so LC_NUMERIC cannot turn them into "1,500".
 *
 * <testsuites> also carries skipped=, as junit.h's layout asks: the readers
 * above ignore or accept it, but a strict validation against junit-10.xsd
 * (the xunit plugin's schema) rejects that one attribute.
 *
 * Text is made safe by farm_xml_escape: board output is arbitrary bytes, and
 * a single forbidden byte makes the whole report unreadable to every CI
 * reader, so nothing forbidden is ever emitted and nothing is dropped:
 *
 *   & < > " '            entities (also in text, so "]]>" cannot occur)
 *   TAB LF               kept raw in text, &#9; &#10; in attributes
 *   CR                   &#13; everywhere (a raw CR would be read back as LF)
 *   other C0, DEL        control pictures U+2400+byte, U+2421 ("␄", "␡")
 *   C1 (U+0080..U+009F)  "\u{0085}" (XML 1.0 discourages them, 1.1 restricts)
 *   U+FFFE, U+FFFF       "\u{FFFE}", "\u{FFFF}" (not XML characters)
 *   invalid UTF-8        each byte as "\xNN" (overlongs, surrogates, truncated
 *                        sequences, stray continuation bytes, > U+10FFFF)
 *   valid UTF-8          kept, including 4-byte sequences (emoji)
 *
 * A backslash in the input is not itself escaped: "\x41" in board output
 * reads the same as a rendered invalid byte. The report is for people; the
 * board's log file (a property of its testsuite) holds the exact bytes.
 *
 * Bounds: attribute values built from messages are cut at FARM_JUNIT_ATTR_MAX
 * escaped bytes, on a character boundary, ending in "…". Bodies (failure
 * detail, case output, transcript) keep at most FARM_JUNIT_BODY_MAX input
 * bytes; failure details keep their head, outputs and transcripts their tail
 * (where the traceback is), with a "[truncated N bytes]" note. */
#include "junit.h"
#include "utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRY(expr)                 \
	do {                      \
		rc = (expr);      \
		if (rc)           \
			goto out; \
	} while (0)

/* Longest escaped form of one unit is "\u{FFFE}" (8 bytes). */
#define UNIT_MAX 16
#define ELLIPSIS "\xE2\x80\xA6" /* U+2026 "…" */

static const char hex_digits[] = "0123456789ABCDEF";

/* Bytes that stand for themselves. */
static int is_plain(unsigned char c, int attribute)
{
	if (c >= 0x20 && c < 0x7F)
		return c != '&' && c != '<' && c != '>' && c != '"' && c != '\'';
	return !attribute && (c == '\t' || c == '\n');
}

static size_t put_lit(char *o, const char *lit)
{
	size_t n = strlen(lit);
	memcpy(o, lit, n);
	return n;
}

/* Escape the unit (one byte or one UTF-8 sequence) at s into o; returns the
 * output length and sets *used to the input bytes consumed. */
static size_t escape_unit(const unsigned char *s, size_t len, int attribute, char o[UNIT_MAX],
			  size_t *used)
{
	unsigned char c = s[0];
	uint32_t cp = 0;

	*used = 1;
	switch (c) {
	case '&': return put_lit(o, "&amp;");
	case '<': return put_lit(o, "&lt;");
	case '>': return put_lit(o, "&gt;");
	case '"': return put_lit(o, "&quot;");
	case '\'': return put_lit(o, "&apos;");
	case '\r': return put_lit(o, "&#13;");
	case '\t': return attribute ? put_lit(o, "&#9;") : put_lit(o, "\t");
	case '\n': return attribute ? put_lit(o, "&#10;") : put_lit(o, "\n");
	default: break;
	}
	if (c < 0x20 || c == 0x7F) {
		/* U+2400 + c, or U+2421 for DEL: E2 90 80+c / E2 90 A1 */
		o[0] = (char)0xE2;
		o[1] = (char)0x90;
		o[2] = (char)(c == 0x7F ? 0xA1 : 0x80 + c);
		return 3;
	}
	if (c < 0x80) {
		o[0] = (char)c;
		return 1;
	}
	size_t n = farm_utf8_seq(s, len, &cp);
	if (!n) {
		o[0] = '\\';
		o[1] = 'x';
		o[2] = hex_digits[c >> 4];
		o[3] = hex_digits[c & 0xF];
		return 4;
	}
	*used = n;
	if (cp <= 0x9F || cp == 0xFFFE || cp == 0xFFFF) {
		size_t k = put_lit(o, "\\u{");
		for (int shift = 12; shift >= 0; shift -= 4)
			o[k++] = hex_digits[(cp >> shift) & 0xF];
		o[k++] = '}';
		return k;
	}
	memcpy(o, s, n);
	return n;
}

static void truncate_to(struct farm_buf *b, size_t len)
{
	if (b->data && len <= b->len) {
		b->len = len;
		b->data[len] = '\0';
	}
}

int farm_xml_escape(struct farm_buf *out, const char *s, size_t len, int attribute)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t start, i = 0;
	int rc = 0;

	if (!out || (!s && len))
		return FARM_EINVAL;
	start = out->len;
	while (i < len) {
		size_t j = i;
		while (j < len && is_plain(p[j], attribute))
			j++;
		if (j > i) {
			TRY(farm_buf_append(out, p + i, j - i));
			i = j;
			continue;
		}
		char unit[UNIT_MAX];
		size_t used;
		size_t n = escape_unit(p + i, len - i, attribute, unit, &used);
		TRY(farm_buf_append(out, unit, n));
		i += used;
	}
out:
	if (rc)
		truncate_to(out, start);
	return rc;
}

/* Input bytes of the longest unit-aligned prefix of s whose escaped form
 * fits in limit bytes. */
static size_t escaped_prefix(const char *s, size_t len, int attribute, size_t limit)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, outlen = 0;

	while (i < len) {
		char unit[UNIT_MAX];
		size_t used;
		size_t n = escape_unit(p + i, len - i, attribute, unit, &used);
		if (outlen + n > limit)
			break;
		outlen += n;
		i += used;
	}
	return i;
}

/* ` name="value"`, value escaped; NULL value is "". */
static int put_attr(struct farm_buf *out, const char *name, const char *value)
{
	int rc;
	TRY(farm_buf_printf(out, " %s=\"", name));
	if (value)
		TRY(farm_xml_escape(out, value, strlen(value), 1));
	TRY(farm_buf_puts(out, "\""));
out:
	return rc;
}

/* As put_attr, the escaped value cut to FARM_JUNIT_ATTR_MAX bytes ending in "…". */
static int put_attr_bounded(struct farm_buf *out, const char *name, const char *value)
{
	size_t len = value ? strlen(value) : 0;
	size_t keep = escaped_prefix(value, len, 1, FARM_JUNIT_ATTR_MAX);
	int rc;

	if (keep == len)
		return put_attr(out, name, value);
	keep = escaped_prefix(value, len, 1, FARM_JUNIT_ATTR_MAX - (sizeof ELLIPSIS - 1));
	TRY(farm_buf_printf(out, " %s=\"", name));
	TRY(farm_xml_escape(out, value, keep, 1));
	TRY(farm_buf_puts(out, ELLIPSIS "\""));
out:
	return rc;
}

/* Escaped element text, at most FARM_JUNIT_BODY_MAX input bytes of it: the
 * head (keep_tail = 0) or the tail, never splitting a UTF-8 sequence. */
static int put_body(struct farm_buf *out, const char *s, size_t len, int keep_tail)
{
	const unsigned char *p = (const unsigned char *)s;
	int rc;

	if (len <= FARM_JUNIT_BODY_MAX)
		return farm_xml_escape(out, s, len, 0);
	if (!keep_tail) {
		size_t keep = FARM_JUNIT_BODY_MAX;
		for (int k = 0; k < 3 && keep > 0 && (p[keep] & 0xC0) == 0x80; k++)
			keep--;
		TRY(farm_xml_escape(out, s, keep, 0));
		TRY(farm_buf_printf(out, "\n[truncated %zu bytes]", len - keep));
	} else {
		size_t from = len - FARM_JUNIT_BODY_MAX;
		for (int k = 0; k < 3 && from < len && (p[from] & 0xC0) == 0x80; k++)
			from++;
		TRY(farm_buf_printf(out, "[truncated %zu bytes]\n", from));
		TRY(farm_xml_escape(out, s + from, len - from, 0));
	}
out:
	return rc;
}

/* Seconds with three decimals and a '.', from integer milliseconds. Negative,
 * NaN and zero times are 0.000; absurd ones are capped. */
static void fmt_time(char out[32], double t)
{
	unsigned long long ms = 0;

	if (t > 0) {
		if (t > 1e12)
			t = 1e12;
		ms = (unsigned long long)(t * 1000.0 + 0.5);
	}
	snprintf(out, 32, "%llu.%03llu", ms / 1000, ms % 1000);
}

/* Copy the "YYYY-MM-DDTHH:MM:SS" part of ts into out (20 bytes). Accepted:
 * that form, optionally with fractional seconds and a UTC suffix ("Z",
 * "+00:00", "+0000"); the schemas want no zone. Returns 1, or 0 if ts is
 * none of these (a local offset cannot be dropped without changing the time). */
static int norm_timestamp(char out[20], const char *ts)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	size_t i;

	for (i = 0; i < 19; i++) {
		char c = ts[i];
		if (shape[i] == 'd' ? (c < '0' || c > '9') : c != shape[i])
			return 0;
	}
	const char *rest = ts + 19;
	if (*rest == '.') {
		rest++;
		if (*rest < '0' || *rest > '9')
			return 0;
		while (*rest >= '0' && *rest <= '9')
			rest++;
	}
	if (*rest && strcmp(rest, "Z") && strcmp(rest, "+00:00") && strcmp(rest, "+0000"))
		return 0;
	memcpy(out, ts, 19);
	out[19] = '\0';
	return 1;
}

static int put_property(struct farm_buf *out, const char *indent, const char *name,
			const char *value)
{
	int rc;
	TRY(farm_buf_printf(out, "%s<property", indent));
	TRY(put_attr(out, "name", name ? name : ""));
	TRY(put_attr(out, "value", value ? value : ""));
	TRY(farm_buf_puts(out, "/>\n"));
out:
	return rc;
}

/* <failure>/<error>/<skipped> for a case that did not pass. */
static int put_outcome(struct farm_buf *out, const struct farm_case *c)
{
	const char *tag, *type, *message = c->message;
	char msgbuf[64];
	int rc;

	switch (c->verdict) {
	case FARM_FAIL:
		tag = "failure";
		type = c->type ? c->type : "failure";
		if (!message)
			message = "test failed";
		break;
	case FARM_ERROR:
		tag = "error";
		type = c->type ? c->type : "error";
		if (!message)
			message = "infrastructure error";
		break;
	case FARM_SKIP:
		tag = "skipped";
		type = NULL;
		if (!message)
			message = "skipped";
		break;
	default:
		tag = "error";
		type = "invalid-verdict";
		snprintf(msgbuf, sizeof msgbuf, "mpfarm: invalid verdict %d", (int)c->verdict);
		if (!message)
			message = msgbuf;
		break;
	}
	TRY(farm_buf_printf(out, "      <%s", tag));
	TRY(put_attr_bounded(out, "message", message));
	if (type)
		TRY(put_attr_bounded(out, "type", type));
	if (!c->detail) {
		TRY(farm_buf_puts(out, "/>\n"));
	} else {
		TRY(farm_buf_puts(out, ">"));
		TRY(put_body(out, c->detail, strlen(c->detail), 0));
		TRY(farm_buf_printf(out, "</%s>\n", tag));
	}
out:
	return rc;
}

static int put_case(struct farm_buf *out, const struct farm_case *c, size_t index,
		    const char *board)
{
	char secs[32], fallback[48];
	const char *name = c->name;
	int rc;

	if (!name || !*name) {
		snprintf(fallback, sizeof fallback, "case-%zu", index);
		name = fallback;
	}
	fmt_time(secs, c->time_s);
	TRY(farm_buf_puts(out, "    <testcase classname=\""));
	if (c->suite && *c->suite) {
		TRY(farm_xml_escape(out, c->suite, strlen(c->suite), 1));
		TRY(farm_buf_puts(out, "."));
	}
	TRY(farm_xml_escape(out, board, strlen(board), 1));
	TRY(farm_buf_puts(out, "\""));
	TRY(put_attr(out, "name", name));
	TRY(farm_buf_printf(out, " time=\"%s\"", secs));
	if (c->verdict == FARM_PASS && !c->output && !c->n_props) {
		TRY(farm_buf_puts(out, "/>\n"));
		goto out;
	}
	TRY(farm_buf_puts(out, ">\n"));
	if (c->n_props) {
		/* per-case properties, as pytest's record_property writes them */
		TRY(farm_buf_puts(out, "      <properties>\n"));
		for (size_t i = 0; i < c->n_props; i++)
			TRY(put_property(out, "        ", c->props[i].name, c->props[i].value));
		TRY(farm_buf_puts(out, "      </properties>\n"));
	}
	if (c->verdict != FARM_PASS)
		TRY(put_outcome(out, c));
	if (c->output) {
		TRY(farm_buf_puts(out, "      <system-out>"));
		TRY(put_body(out, c->output, strlen(c->output), 1));
		TRY(farm_buf_puts(out, "</system-out>\n"));
	}
	TRY(farm_buf_puts(out, "    </testcase>\n"));
out:
	return rc;
}

static int put_board(struct farm_buf *out, const struct farm_board_result *b, size_t index,
		     const char *package)
{
	char secs[32], ts[20], fallback[48];
	const char *board = b->board_id;
	struct farm_totals t;
	int ts_ok = 0, rc;

	if (!board || !*board) {
		snprintf(fallback, sizeof fallback, "board-%zu", index);
		board = fallback;
	}
	farm_board_totals(b, &t);
	fmt_time(secs, t.time_s);
	TRY(farm_buf_puts(out, "  <testsuite"));
	TRY(put_attr(out, "name", board));
	TRY(farm_buf_printf(out, " tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\""
			    " time=\"%s\"",
			    t.tests, t.failures, t.errors, t.skipped, secs));
	if (b->timestamp && norm_timestamp(ts, b->timestamp)) {
		ts_ok = 1;
		TRY(farm_buf_printf(out, " timestamp=\"%s\"", ts));
	}
	TRY(put_attr(out, "hostname", b->hostname && *b->hostname ? b->hostname : "localhost"));
	TRY(farm_buf_printf(out, " id=\"%zu\"", index));
	if (package)
		TRY(put_attr(out, "package", package));
	TRY(farm_buf_puts(out, ">\n    <properties>\n"));
	for (size_t i = 0; i < b->n_props; i++)
		TRY(put_property(out, "      ", b->props[i].name, b->props[i].value));
	if (b->log_path)
		TRY(put_property(out, "      ", "log_path", b->log_path));
	if (b->timestamp && !ts_ok) /* not ISO 8601 UTC: keep it, outside the schema */
		TRY(put_property(out, "      ", "timestamp", b->timestamp));
	TRY(farm_buf_puts(out, "    </properties>\n"));
	for (size_t i = 0; i < b->n_cases; i++)
		TRY(put_case(out, &b->cases[i], i, board));
	if (b->transcript) {
		size_t len = b->transcript_len ? b->transcript_len : strlen(b->transcript);
		TRY(farm_buf_puts(out, "    <system-out>"));
		TRY(put_body(out, b->transcript, len, 1));
		TRY(farm_buf_puts(out, "</system-out>\n"));
	}
	TRY(farm_buf_puts(out, "  </testsuite>\n"));
out:
	return rc;
}

int farm_junit_render(struct farm_buf *out, const struct farm_run_result *r)
{
	struct farm_totals t;
	char secs[32];
	size_t start;
	int rc;

	if (!out || !r || (r->n_boards && !r->boards))
		return FARM_EINVAL;
	start = out->len;
	farm_run_totals(r, &t);
	fmt_time(secs, t.time_s);
	TRY(farm_buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"));
	TRY(put_attr(out, "name", r->name && *r->name ? r->name : "mpfarm"));
	TRY(farm_buf_printf(out, " tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\""
			    " time=\"%s\">\n",
			    t.tests, t.failures, t.errors, t.skipped, secs));
	for (size_t i = 0; i < r->n_boards; i++)
		TRY(put_board(out, &r->boards[i], i, r->name && *r->name ? r->name : NULL));
	TRY(farm_buf_puts(out, "</testsuites>\n"));
out:
	if (rc)
		truncate_to(out, start);
	return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* fsync the directory holding path, so the rename survives a power cut.
 * Filesystems that cannot sync a directory (EINVAL) are not an error. */
static int sync_dir(const char *path, struct farm_err *e)
{
	const char *slash = strrchr(path, '/');
	char *dir = NULL;
	int fd = -1, rc = 0;

	if (!slash) {
		dir = strdup(".");
	} else {
		size_t n = slash == path ? 1 : (size_t)(slash - path);
		dir = strndup(path, n);
	}
	if (!dir) {
		rc = farm_err_set(e, FARM_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = farm_err_sys(e, FARM_EIO, errno, "%s: written, but cannot open its directory %s",
				  path, dir);
		goto out;
	}
	if (fsync(fd) && errno != EINVAL && errno != ENOTSUP)
		rc = farm_err_sys(e, FARM_EIO, errno, "%s: written, but syncing directory %s failed",
				  path, dir);
out:
	if (fd >= 0)
		close(fd);
	free(dir);
	return rc;
}

int farm_junit_write(const char *path, const struct farm_run_result *r, struct farm_err *e)
{
	struct farm_buf xml = {0};
	char *tmp = NULL;
	int fd = -1, tmp_exists = 0, rc;

	if (!path || !*path || !r) {
		rc = farm_err_set(e, FARM_EINVAL, "JUnit report: no path or no results given");
		goto out;
	}
	rc = farm_junit_render(&xml, r);
	if (rc) {
		rc = farm_err_set(e, rc, "%s: cannot render the JUnit report: %s", path,
				  farm_strerror(rc));
		goto out;
	}
	size_t plen = strlen(path);
	tmp = malloc(plen + sizeof ".XXXXXX");
	if (!tmp) {
		rc = farm_err_set(e, FARM_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".XXXXXX", sizeof ".XXXXXX");
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		rc = farm_err_sys(e, err == ENOENT || err == ENOTDIR ? FARM_ENOTFOUND : FARM_EIO, err,
				  "%s: cannot create a temporary file next to it", path);
		goto out;
	}
	tmp_exists = 1;
	/* mkstemp creates 0600; a report is for everyone to read. */
	if (fchmod(fd, 0644)) {
		rc = farm_err_sys(e, FARM_EIO, errno, "%s: cannot set permissions of %s", path, tmp);
		goto out;
	}
	if (write_all(fd, xml.data, xml.len)) {
		rc = farm_err_sys(e, FARM_EIO, errno, "%s: cannot write %s", path, tmp);
		goto out;
	}
	if (fsync(fd)) {
		rc = farm_err_sys(e, FARM_EIO, errno, "%s: cannot sync %s", path, tmp);
		goto out;
	}
	int cr = close(fd);
	fd = -1;
	if (cr) {
		rc = farm_err_sys(e, FARM_EIO, errno, "%s: cannot close %s", path, tmp);
		goto out;
	}
	if (rename(tmp, path)) {
		rc = farm_err_sys(e, FARM_EIO, errno, "%s: cannot rename %s over it", path, tmp);
		goto out;
	}
	tmp_exists = 0;
	rc = sync_dir(path, e);
out:
	if (fd >= 0)
		close(fd);
	if (tmp_exists)
		unlink(tmp);
	free(tmp);
	farm_buf_free(&xml);
	return rc;
}
