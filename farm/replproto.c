#include "replproto.h"

#include <stdio.h>
#include <string.h>

static void bounded_add(struct farm_replp *p, struct farm_buf *b, const char *d, size_t n)
{
	size_t room = b->len < FARM_REPL_OUTPUT_MAX ? FARM_REPL_OUTPUT_MAX - b->len : 0;
	size_t take = n < room ? n : room;
	if (take && farm_buf_append(b, d, take))
		take = 0;
	p->dropped += n - take;
}

void farm_replp_begin(struct farm_replp *p, int expect_ok)
{
	farm_buf_reset(&p->out);
	farm_buf_reset(&p->err);
	p->state = expect_ok ? FARM_REPLP_WAIT_OK : FARM_REPLP_STDOUT;
	p->ok_matched = expect_ok ? 0 : 2; /* 2: the code is running */
	p->dropped = 0;
	p->reason[0] = '\0';
}

static void bad(struct farm_replp *p, const char *why, unsigned char c)
{
	p->state = FARM_REPLP_BAD;
	if (c >= 0x20 && c < 0x7f)
		snprintf(p->reason, sizeof p->reason, "%s (got '%c')", why, c);
	else
		snprintf(p->reason, sizeof p->reason, "%s (got byte 0x%02x)", why, c);
}

size_t farm_replp_feed(struct farm_replp *p, const void *data, size_t len)
{
	const unsigned char *d = data;
	size_t i = 0;
	while (i < len && p->state != FARM_REPLP_DONE && p->state != FARM_REPLP_BAD) {
		switch (p->state) {
		case FARM_REPLP_WAIT_OK:
			if (d[i] != (unsigned char)"OK"[p->ok_matched]) {
				bad(p, "the board did not acknowledge the code with OK", d[i]);
				break;
			}
			i++;
			if (++p->ok_matched == 2)
				p->state = FARM_REPLP_STDOUT;
			break;
		case FARM_REPLP_STDOUT:
		case FARM_REPLP_STDERR: {
			const unsigned char *end = memchr(d + i, 0x04, len - i);
			size_t n = end ? (size_t)(end - (d + i)) : len - i;
			bounded_add(p, p->state == FARM_REPLP_STDOUT ? &p->out : &p->err,
				    (const char *)d + i, n);
			i += n;
			if (end) {
				i++;
				p->state = p->state == FARM_REPLP_STDOUT ? FARM_REPLP_STDERR
									 : FARM_REPLP_PROMPT;
			}
			break;
		}
		case FARM_REPLP_PROMPT:
			if (d[i] != '>') {
				bad(p, "expected the raw REPL prompt '>' after the output", d[i]);
				break;
			}
			i++;
			p->state = FARM_REPLP_DONE;
			break;
		default:
			break;
		}
	}
	return i;
}

void farm_replp_free(struct farm_replp *p)
{
	farm_buf_free(&p->out);
	farm_buf_free(&p->err);
}

int farm_replp_paste_reply(const void *data, size_t len, unsigned *window, size_t *used)
{
	const unsigned char *d = data;
	*used = 0;
	if (len < 2)
		return len == 1 && d[0] != 'R' && d[0] != 'r' ? -2 : -1;
	if (d[0] == 'R' && d[1] == 0x00) {
		*used = 2;
		return 0;
	}
	if (d[0] == 'R' && d[1] == 0x01) {
		if (len < 5)
			return -1;
		if (d[4] != 0x01)
			return -2;
		*window = (unsigned)d[2] | ((unsigned)d[3] << 8);
		if (*window == 0)
			return -2;
		*used = 5;
		return 1;
	}
	if (d[0] == 'r' && d[1] == 'a') {
		/* Old firmware: "raw REPL; CTRL-B to exit\r\n>" restarted by the 01. */
		static const char tail[] = FARM_REPL_RAW_BANNER ">";
		size_t need = sizeof tail - 1;
		size_t have = len < need ? len : need;
		if (memcmp(d, tail, have) != 0)
			return -2;
		if (len < need)
			return -1;
		*used = need;
		return 0;
	}
	return -2;
}

void farm_repl_exc_type(const char *tb, size_t len, char *out, size_t out_len)
{
	if (!out_len)
		return;
	out[0] = '\0';
	/* last non-empty line */
	size_t end = len;
	while (end > 0 && (tb[end - 1] == '\n' || tb[end - 1] == '\r' || tb[end - 1] == ' '))
		end--;
	size_t start = end;
	while (start > 0 && tb[start - 1] != '\n' && tb[start - 1] != '\r')
		start--;
	size_t n = 0;
	while (start + n < end && tb[start + n] != ':' && tb[start + n] != ' ' &&
	       tb[start + n] != '\t')
		n++;
	if (n == 0)
		return;
	/* an identifier, possibly dotted */
	for (size_t k = 0; k < n; k++) {
		char c = tb[start + k];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.'))
			return;
	}
	if (n >= out_len)
		n = out_len - 1;
	memcpy(out, tb + start, n);
	out[n] = '\0';
}

int farm_repl_encode_assign(struct farm_buf *out, const char *name, const char *code, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	int rc = farm_buf_printf(out, "%s=b'", name);
	for (size_t i = 0; i < len && !rc; i++) {
		unsigned char c = (unsigned char)code[i];
		char esc[4];
		if (c == '\n')
			rc = farm_buf_append(out, "\\n", 2);
		else if (c == '\\' || c == '\'') {
			esc[0] = '\\';
			esc[1] = (char)c;
			rc = farm_buf_append(out, esc, 2);
		} else if (c >= 0x20 && c < 0x7f)
			rc = farm_buf_append(out, &code[i], 1);
		else {
			esc[0] = '\\';
			esc[1] = 'x';
			esc[2] = hex[c >> 4];
			esc[3] = hex[c & 15];
			rc = farm_buf_append(out, esc, 4);
		}
	}
	if (!rc)
		rc = farm_buf_append(out, "'", 1);
	return rc;
}

size_t farm_repl_normalize_eol(char *s, size_t len)
{
	size_t w = 0;
	for (size_t r = 0; r < len; r++) {
		if (s[r] == '\r') {
			s[w++] = '\n';
			if (r + 1 < len && s[r + 1] == '\n')
				r++;
		} else {
			s[w++] = s[r];
		}
	}
	if (w < len)
		s[w] = '\0';
	return w;
}

long farm_memfind(const void *hay, size_t hay_len, const void *needle, size_t needle_len)
{
	const void *p = memmem(hay, hay_len, needle, needle_len);
	return p ? (long)((const char *)p - (const char *)hay) : -1;
}
