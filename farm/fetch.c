/* mpfarm: firmware downloads over HTTP(S) and file:// with libcurl (see fetch.h).
 *
 * One attempt is one curl_easy_perform into the part file, resumed from its
 * current size with a Range request (http only; file:// always copies from
 * byte 0). Its outcome is classified once (classify_*): done, retry later
 * (transient), restart from byte 0 at once (the server ignored or refused the
 * Range), or final. The loop in farm_fetch owns the budgets: retries with
 * doubling backoff, one checksum retry from byte 0, RESTARTS_MAX restarts. */
#include "fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SHOWN_MAX 128          /* a URL in a message: at most this many bytes with the NUL */
#define LOG_LINE_MAX 640
#define BACKOFF_MAX_MS 30000u
#define SLEEP_STEP_MS 50u
#define RESTARTS_MAX 2         /* from-zero restarts for Range trouble per call */
#define PLACEHOLDER_SHOWN 32   /* characters of an unknown placeholder in a message */

static const char expand_hint[] = "use {board}, {port}, {variant} or {version}";

/* ------------------------------------------------------------ small helpers */

static int is_cancelled(const struct farm_fetch_opts *o)
{
	return o->cancel && *o->cancel;
}

static void fetch_log(const struct farm_fetch_opts *o, const char *fmt, ...) FARM_PRINTF(2, 3);

static void fetch_log(const struct farm_fetch_opts *o, const char *fmt, ...)
{
	if (!o->log)
		return;
	char line[LOG_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	o->log(o->cb_p, line);
}

static int has_prefix_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static int is_file_url(const char *url)
{
	return has_prefix_ci(url, "file://");
}

/* The redacted URL shortened for a message: head ... tail (the file name). */
static void shown_url(const char *url, char out[SHOWN_MAX])
{
	char full[FARM_FETCH_URL_MAX];
	farm_fetch_redact(url, full, sizeof full);
	size_t n = strlen(full);
	if (n < SHOWN_MAX) {
		memcpy(out, full, n + 1);
		return;
	}
	size_t head = SHOWN_MAX / 2, tail = SHOWN_MAX - head - 4;
	memcpy(out, full, head);
	memcpy(out + head, "...", 3);
	memcpy(out + head + 3, full + n - tail, tail + 1);
}

/* Sleep ms in small steps; FARM_EINTR as soon as the cancel flag is set. */
static int pause_ms(const struct farm_fetch_opts *o, unsigned ms, const char *shown, struct farm_err *e)
{
	struct timespec now, end;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	for (;;) {
		if (is_cancelled(o))
			return farm_err_set(e, FARM_EINTR, "%s: download interrupted while waiting to retry",
					    shown);
		clock_gettime(CLOCK_MONOTONIC, &now);
		long long left = (long long)(end.tv_sec - now.tv_sec) * 1000 +
				 (end.tv_nsec - now.tv_nsec) / 1000000L;
		if (left <= 0)
			return 0;
		long step = left < SLEEP_STEP_MS ? (long)left : (long)SLEEP_STEP_MS;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = step * 1000000L };
		nanosleep(&ts, NULL);
	}
}

/* Decimal digits in [s, end) after optional spaces; -1 when there are none or too many. */
static int64_t parse_dec(const char *s, const char *end)
{
	while (s < end && *s == ' ')
		s++;
	int64_t v = 0;
	int digits = 0;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (++digits > 18)
			return -1;
		v = v * 10 + (*s - '0');
	}
	return digits ? v : -1;
}

/* ------------------------------------------------------------ public: init, sha256 */

int farm_fetch_global_init(struct farm_err *e)
{
	CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (c != CURLE_OK)
		return farm_err_set(e, FARM_EIO, "libcurl initialisation failed: %s; downloads are not possible",
				    curl_easy_strerror(c));
	return 0;
}

void farm_fetch_global_cleanup(void)
{
	curl_global_cleanup();
}

int farm_fetch_sha256_file(const char *path, char out[65], struct farm_err *e)
{
	out[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return farm_err_sys(e, errno == ENOENT ? FARM_ENOTFOUND : FARM_EIO, errno, "%s", path);
	int rc = FARM_ENOMEM;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		farm_err_set(e, rc, "%s: cannot start sha256 (OpenSSL)", path);
		goto out;
	}
	unsigned char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = farm_err_sys(e, FARM_EIO, errno, "%s: read", path);
			goto out;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
			rc = farm_err_set(e, FARM_EIO, "%s: sha256 failed (OpenSSL)", path);
			goto out;
		}
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	if (EVP_DigestFinal_ex(ctx, md, &md_len) != 1 || md_len != 32) {
		rc = farm_err_set(e, FARM_EIO, "%s: sha256 failed (OpenSSL)", path);
		goto out;
	}
	for (unsigned int i = 0; i < md_len; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------ public: URL text */

void farm_fetch_redact(const char *url, char *out, size_t len)
{
	if (!out || len == 0)
		return;
	out[0] = '\0';
	if (!url)
		return;
	size_t n = 0; /* up to ?query / #fragment, bounded */
	while (n < FARM_FETCH_URL_MAX && url[n] && url[n] != '?' && url[n] != '#')
		n++;
	size_t skip_from = 0, skip_to = 0; /* user:password@ */
	const char *sep = strstr(url, "://");
	if (sep && (size_t)(sep - url) < n) {
		size_t a = (size_t)(sep - url) + 3;
		for (size_t i = a; i < n && url[i] != '/'; i++)
			if (url[i] == '@') {
				skip_from = a;
				skip_to = i + 1;
			}
	}
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < len; i++) {
		if (i >= skip_from && i < skip_to)
			continue;
		unsigned char c = (unsigned char)url[i];
		out[o++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	out[o] = '\0';
}

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '.' || c == '_' || c == '~';
}

int farm_fetch_expand(const char *tmpl, const struct farm_fetch_vars *v, char *out, size_t len,
		      struct farm_err *e)
{
	if (!tmpl || !out || len == 0)
		return farm_err_set(e, FARM_EINVAL, "URL template: no template or no output buffer");
	out[0] = '\0';
	size_t tlen = strnlen(tmpl, FARM_FETCH_TEMPLATE_MAX + 1);
	if (tlen > FARM_FETCH_TEMPLATE_MAX)
		return farm_err_set(e, FARM_ELIMIT, "URL template longer than %d characters; shorten it",
				    FARM_FETCH_TEMPLATE_MAX);
	static const struct farm_fetch_vars none;
	if (!v)
		v = &none;
	const struct {
		const char *name;
		const char *value;
	} vars[] = { { "board", v->board }, { "port", v->port }, { "variant", v->variant },
		     { "version", v->version } };
	size_t o = 0;
	for (size_t i = 0; i < tlen;) {
		const char *val = NULL;
		size_t vlen = 1, next = i + 1;
		if (tmpl[i] == '}')
			return farm_err_set(e, FARM_EINVAL,
					    "URL template: '}' at character %zu has no '{'; %s, or write %%7D",
					    i + 1, expand_hint);
		if (tmpl[i] == '{') {
			size_t j = i + 1;
			while (j < tlen && tmpl[j] != '}' && tmpl[j] != '{')
				j++;
			if (j >= tlen || tmpl[j] != '}')
				return farm_err_set(e, FARM_EINVAL,
						    "URL template: '{' at character %zu is not closed by '}'; %s",
						    i + 1, expand_hint);
			const char *name = tmpl + i + 1;
			size_t nlen = j - i - 1;
			size_t k = 0;
			while (k < sizeof vars / sizeof vars[0] &&
			       !(strlen(vars[k].name) == nlen && memcmp(vars[k].name, name, nlen) == 0))
				k++;
			if (k == sizeof vars / sizeof vars[0])
				return farm_err_set(e, FARM_EINVAL,
						    "URL template: unknown placeholder {%.*s} at character %zu; %s",
						    (int)(nlen < PLACEHOLDER_SHOWN ? nlen : PLACEHOLDER_SHOWN), name,
						    i + 1, expand_hint);
			if (!vars[k].value)
				return farm_err_set(e, FARM_EINVAL,
						    "URL template: {%s} has no value here; give the board a %s "
						    "or remove {%s} from the URL",
						    vars[k].name, vars[k].name, vars[k].name);
			val = vars[k].value;
			vlen = strnlen(val, FARM_FETCH_URL_MAX + 1);
			next = j + 1;
		}
		for (size_t m = 0; m < vlen; m++) {
			unsigned char c = (unsigned char)(val ? val[m] : tmpl[i]);
			size_t need = !val || is_unreserved(c) ? 1 : 3;
			if (o + need >= len) {
				out[0] = '\0';
				return farm_err_set(e, FARM_ELIMIT,
						    "URL template expands to more than %zu characters; "
						    "shorten the URL or its values",
						    len - 1);
			}
			if (need == 1) {
				out[o++] = (char)c;
			} else {
				static const char hex[] = "0123456789ABCDEF";
				out[o++] = '%';
				out[o++] = hex[c >> 4];
				out[o++] = hex[c & 15];
			}
		}
		i = next;
	}
	out[o] = '\0';
	return 0;
}

/* ------------------------------------------------------------ one attempt */

enum verdict {
	V_DONE,    /* the part file holds the whole body */
	V_RETRY,   /* transient: try again after the backoff */
	V_RESTART, /* Range trouble: truncate the part file and go again at once */
	V_FINAL,   /* give up */
};

struct outcome {
	enum verdict v;
	int code;         /* FARM_E* for V_RETRY and V_FINAL */
	char why[CURL_ERROR_SIZE + 32];
	const char *hint; /* what to do next */
};

struct xfer {
	const struct farm_fetch_opts *o;
	int fd;
	int http;
	uint64_t max_size;
	uint64_t base;        /* bytes in the part file when the attempt started */
	uint64_t got;         /* body bytes written by this attempt */
	long status;          /* of the response being received */
	int64_t range_total;  /* Content-Range ".../TOTAL" of that response, -1 unknown */
	int64_t range_start;  /* Content-Range "bytes START-", -1 unknown */
	uint64_t last_done;
	int too_big, cancelled, bad_status, write_errno;
};

static size_t on_header(char *buf, size_t size, size_t n, void *p)
{
	struct xfer *x = p;
	size_t len = size * n;
	const char *end = buf + len;
	if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
		const char *sp = memchr(buf, ' ', len);
		int64_t st = sp ? parse_dec(sp, end) : -1;
		x->status = st >= 100 && st <= 999 ? (long)st : 0;
		x->range_total = -1;
		x->range_start = -1;
	} else if (len > 14 && strncasecmp(buf, "Content-Range:", 14) == 0) {
		/* bytes START-END/TOTAL or bytes * /TOTAL */
		const char *s = buf + 14;
		while (s < end && *s == ' ')
			s++;
		if ((size_t)(end - s) > 6 && strncasecmp(s, "bytes ", 6) == 0) {
			s += 6;
			const char *slash = memchr(s, '/', (size_t)(end - s));
			x->range_start = parse_dec(s, end);
			x->range_total = slash ? parse_dec(slash + 1, end) : -1;
		}
	}
	return len;
}

static int status_ok(long status)
{
	return status == 200 || status == 206;
}

static size_t on_body(char *buf, size_t size, size_t n, void *p)
{
	struct xfer *x = p;
	size_t len = size * n;
	if (is_cancelled(x->o)) {
		x->cancelled = 1;
		return 0;
	}
	if (x->http && !status_ok(x->status)) { /* an error page: not firmware */
		x->bad_status = 1;
		return 0;
	}
	if (x->base + x->got + len > x->max_size) {
		x->too_big = 1;
		return 0;
	}
	for (size_t off = 0; off < len;) {
		ssize_t w = write(x->fd, buf + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			x->write_errno = w < 0 ? errno : EIO;
			return 0;
		}
		off += (size_t)w;
	}
	x->got += len;
	return len;
}

static int on_xferinfo(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct xfer *x = p;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (is_cancelled(x->o)) {
		x->cancelled = 1;
		return 1;
	}
	if (x->http && !status_ok(x->status))
		return 0;
	uint64_t total = x->range_total > 0 ? (uint64_t)x->range_total
			 : dltotal > 0	    ? x->base + (uint64_t)dltotal
					    : 0;
	if (total > x->max_size) {
		x->too_big = 1;
		return 1;
	}
	uint64_t done = x->base + x->got;
	if (x->o->progress && done != x->last_done) {
		x->last_done = done;
		x->o->progress(x->o->cb_p, done, total);
	}
	return 0;
}

static void set_outcome(struct outcome *oc, enum verdict v, int code, const char *hint, const char *fmt, ...)
	FARM_PRINTF(5, 6);

static void set_outcome(struct outcome *oc, enum verdict v, int code, const char *hint, const char *fmt, ...)
{
	oc->v = v;
	oc->code = code;
	oc->hint = hint;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(oc->why, sizeof oc->why, fmt, ap);
	va_end(ap);
}

static const char hint_transient[] = "the server or network may be down: try again later or raise retries:";
static const char hint_restart[] = "the server does not resume downloads correctly: check the server";

/* An HTTP error status (>= 400). */
static void classify_status(long st, struct outcome *oc)
{
	if (st == 404 || st == 410)
		set_outcome(oc, V_FINAL, FARM_ENOTFOUND,
			    "check the URL and the values put into it ({board}, {port}, {variant}, {version})",
			    "HTTP %ld (not found)", st);
	else if (st == 401 || st == 403 || st == 407)
		set_outcome(oc, V_FINAL, FARM_EPROTO, "check the URL and that it may be read without a login",
			    "HTTP %ld (access denied)", st);
	else if (st == 408 || st == 429 || st >= 500)
		set_outcome(oc, V_RETRY, FARM_EIO, hint_transient, "HTTP %ld", st);
	else
		set_outcome(oc, V_FINAL, FARM_EPROTO, "check the URL", "HTTP %ld", st);
}

/* A curl failure that our callbacks did not cause. */
static void classify_curl(CURLcode c, const char *errbuf, struct outcome *oc)
{
	const char *msg = errbuf[0] ? errbuf : curl_easy_strerror(c);
	switch (c) {
	case CURLE_OPERATION_TIMEDOUT:
		set_outcome(oc, V_RETRY, FARM_ETIMEDOUT,
			    "the server is slow or stalled: try again later or raise timeout: and retries:", "%s",
			    msg);
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3:
	case CURLE_QUIC_CONNECT_ERROR:
		set_outcome(oc, V_RETRY, FARM_EIO, hint_transient, "%s", msg);
		break;
	case CURLE_FILE_COULDNT_READ_FILE:
	case CURLE_REMOTE_FILE_NOT_FOUND:
		set_outcome(oc, V_FINAL, FARM_ENOTFOUND, "check the path in the URL", "%s", msg);
		break;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		set_outcome(oc, V_FINAL, FARM_EINVAL,
			    "use an http://, https:// or file:// URL (a redirect may only lead to http or https)",
			    "%s", msg);
		break;
	case CURLE_FILESIZE_EXCEEDED:
		set_outcome(oc, V_FINAL, FARM_ELIMIT, "raise max_size: if the file is right", "%s", msg);
		break;
	case CURLE_RANGE_ERROR:
	case CURLE_BAD_DOWNLOAD_RESUME:
		set_outcome(oc, V_RESTART, FARM_EPROTO, hint_restart, "%s", msg);
		break;
	case CURLE_TOO_MANY_REDIRECTS:
		set_outcome(oc, V_FINAL, FARM_EPROTO, "point the URL at the file itself", "%s", msg);
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
		set_outcome(oc, V_FINAL, FARM_EPROTO,
			    "the server's certificate is not trusted here: install its CA or fix the host name",
			    "%s", msg);
		break;
	default:
		set_outcome(oc, V_FINAL, FARM_EIO, "check the URL and the network", "%s", msg);
		break;
	}
}

static void setup_handle(CURL *h, const struct farm_fetch_opts *o, struct xfer *x, char *errbuf)
{
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, o->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https,file");
	/* A redirect never leads to a local file. */
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long)FARM_FETCH_REDIRECTS_MAX);
	curl_easy_setopt(h, CURLOPT_FAILONERROR, 0L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)(o->timeout_s ? o->timeout_s : 300));
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)(o->connect_timeout_s ? o->connect_timeout_s : 20));
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)(o->stall_s ? o->stall_s : 30));
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max_size);
	curl_easy_setopt(h, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)x->base);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "mpfarm/" MPFARM_VERSION);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
}

/* Decide what the finished transfer means. */
static void judge(CURLcode c, const struct xfer *x, const char *errbuf, uint64_t max_size, struct outcome *oc)
{
	if (x->cancelled || c == CURLE_ABORTED_BY_CALLBACK) {
		set_outcome(oc, V_FINAL, FARM_EINTR, "", "interrupted");
	} else if (x->too_big || c == CURLE_FILESIZE_EXCEEDED) {
		set_outcome(oc, V_FINAL, FARM_ELIMIT, "raise max_size: if the file is right",
			    "larger than the limit of %llu bytes", (unsigned long long)max_size);
	} else if (x->write_errno) {
		set_outcome(oc, V_FINAL, FARM_EIO, "check the free space and permissions of the cache directory",
			    "writing the part file: %s", strerror(x->write_errno));
	} else if (x->http && x->status >= 400 && !(x->status == 416 && x->base > 0)) {
		classify_status(x->status, oc);
	} else if (c != CURLE_OK) {
		classify_curl(c, errbuf, oc);
	} else if (x->http && x->status == 416) {
		/* The part file is as long as the file (complete), or longer (stale). */
		if (x->range_total == (int64_t)x->base)
			set_outcome(oc, V_DONE, 0, "", "HTTP 416: the part file is complete already");
		else
			set_outcome(oc, V_RESTART, FARM_EPROTO, hint_restart, "HTTP 416 for Range bytes=%llu-",
				    (unsigned long long)x->base);
	} else if (x->http && !status_ok(x->status)) {
		set_outcome(oc, V_FINAL, FARM_EPROTO, "check the URL", "HTTP %ld is not a file", x->status);
	} else if (x->http && x->status == 206 && x->range_total >= 0 &&
		   (uint64_t)x->range_total != x->base + x->got) {
		set_outcome(oc, V_RESTART, FARM_EPROTO, hint_restart, "Content-Range says %lld bytes, got %llu",
			    (long long)x->range_total, (unsigned long long)(x->base + x->got));
	} else if (x->http) {
		set_outcome(oc, V_DONE, 0, "", "HTTP %ld, %llu bytes", x->status, (unsigned long long)x->got);
	} else {
		set_outcome(oc, V_DONE, 0, "", "%llu bytes", (unsigned long long)x->got);
	}
}

/* One transfer into the part file. Returns non-zero only for a local failure
 * (part file), which is final; the transfer's own result is in *oc. */
static int attempt(CURL *h, const struct farm_fetch_opts *o, uint64_t max_size, int from_zero,
		   struct farm_fetch_result *r, struct outcome *oc, struct farm_err *e)
{
	struct xfer x = { .o = o, .fd = -1, .max_size = max_size, .range_total = -1, .range_start = -1 };
	char errbuf[CURL_ERROR_SIZE];
	errbuf[0] = '\0';
	x.http = !is_file_url(o->url);
	x.fd = open(o->part_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (x.fd < 0)
		return farm_err_sys(e, FARM_EIO, errno, "%s: cannot open the download's part file", o->part_path);
	int rc = 0;
	struct stat st;
	if (fstat(x.fd, &st) != 0) {
		rc = farm_err_sys(e, FARM_EIO, errno, "%s: stat", o->part_path);
		goto out;
	}
	x.base = (uint64_t)st.st_size;
	if (from_zero || !x.http || x.base >= max_size) {
		if (x.base && ftruncate(x.fd, 0) != 0) {
			rc = farm_err_sys(e, FARM_EIO, errno, "%s: truncate", o->part_path);
			goto out;
		}
		x.base = 0;
	}
	if (lseek(x.fd, (off_t)x.base, SEEK_SET) < 0) {
		rc = farm_err_sys(e, FARM_EIO, errno, "%s: seek", o->part_path);
		goto out;
	}
	r->resumed_from = x.base;
	setup_handle(h, o, &x, errbuf);
	CURLcode c = curl_easy_perform(h);
	long status = 0;
	if (x.http && curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status)
		x.status = status;
	r->status = x.http ? x.status : 0;
	judge(c, &x, errbuf, max_size, oc);
	if (fsync(x.fd) != 0 && oc->v == V_DONE) {
		rc = farm_err_sys(e, FARM_EIO, errno, "%s: fsync", o->part_path);
		goto out;
	}
out: {
	int fd = x.fd;
	x.fd = -1;
	if (close(fd) != 0 && !rc)
		rc = farm_err_sys(e, FARM_EIO, errno, "%s: close", o->part_path);
}
	return rc;
}

/* ------------------------------------------------------------ the loop */

static int check_opts(const struct farm_fetch_opts *o, struct farm_err *e)
{
	if (!o || !o->url || !o->part_path || !o->dest_path)
		return farm_err_set(e, FARM_EINVAL, "download: URL, part path and destination are required");
	size_t n = strnlen(o->url, FARM_FETCH_URL_MAX);
	if (n >= FARM_FETCH_URL_MAX)
		return farm_err_set(e, FARM_ELIMIT, "download URL longer than %d characters; shorten it",
				    FARM_FETCH_URL_MAX - 1);
	if (!has_prefix_ci(o->url, "http://") && !has_prefix_ci(o->url, "https://") && !is_file_url(o->url)) {
		char shown[SHOWN_MAX];
		shown_url(o->url, shown);
		return farm_err_set(e, FARM_EINVAL, "%s: not an http://, https:// or file:// URL", shown);
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)o->url[i];
		if (c <= 0x20 || c >= 0x7f) {
			char shown[SHOWN_MAX];
			shown_url(o->url, shown);
			return farm_err_set(e, FARM_EINVAL,
					    "%s: a space or control character at character %zu of the URL; "
					    "percent-encode it",
					    shown, i + 1);
		}
	}
	if (o->sha256) {
		size_t k = 0;
		while (k < 64 && o->sha256[k] && strchr("0123456789abcdefABCDEF", o->sha256[k]))
			k++;
		if (k != 64 || o->sha256[64])
			return farm_err_set(e, FARM_EINVAL,
					    "download sha256 is not 64 hex digits; use what sha256sum prints");
	}
	if (strcmp(o->part_path, o->dest_path) == 0)
		return farm_err_set(e, FARM_EINVAL, "%s: the part file and the destination must differ",
				    o->dest_path);
	return 0;
}

/* Remove the part file after a failure when it is useless (empty) or must not
 * be resumed (too large). */
static void drop_part(const char *path, int always)
{
	struct stat st;
	if (always || (stat(path, &st) == 0 && st.st_size == 0))
		unlink(path);
}

int farm_fetch(const struct farm_fetch_opts *o, struct farm_fetch_result *r, struct farm_err *e)
{
	struct farm_fetch_result local;
	if (!r)
		r = &local;
	memset(r, 0, sizeof *r);
	int rc = check_opts(o, e);
	if (rc)
		return rc;
	char shown[SHOWN_MAX];
	shown_url(o->url, shown);
	uint64_t max_size = o->max_size ? o->max_size : FARM_FETCH_DEFAULT_MAX_BYTES;
	unsigned retries_left = o->retries;
	unsigned delay = o->backoff_ms ? o->backoff_ms : 1000;
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	int sum_retry_left = 1, restarts_left = RESTARTS_MAX, from_zero = 0;
	CURL *h = curl_easy_init();
	if (!h)
		return farm_err_set(e, FARM_ENOMEM, "%s: cannot create a libcurl handle", shown);
	for (;;) {
		if (is_cancelled(o)) {
			rc = farm_err_set(e, FARM_EINTR, "%s: download interrupted", shown);
			goto out;
		}
		r->attempts++;
		struct outcome oc;
		memset(&oc, 0, sizeof oc);
		rc = attempt(h, o, max_size, from_zero, r, &oc, e);
		if (rc)
			goto out;
		from_zero = 0;
		if (r->resumed_from)
			fetch_log(o, "%s: attempt %u resumed at byte %llu: %s", shown, r->attempts,
				  (unsigned long long)r->resumed_from, oc.why);
		else
			fetch_log(o, "%s: attempt %u: %s", shown, r->attempts, oc.why);
		if (oc.v == V_RESTART && restarts_left > 0) {
			restarts_left--;
			fetch_log(o, "%s: the server did not resume; downloading again from byte 0", shown);
			from_zero = 1;
			continue;
		}
		if (oc.v == V_RETRY && retries_left > 0) {
			retries_left--;
			fetch_log(o, "%s: retrying in %u ms", shown, delay);
			rc = pause_ms(o, delay, shown, e);
			if (rc)
				goto out;
			delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
			continue;
		}
		if (oc.v != V_DONE) {
			int code = oc.v == V_RESTART ? FARM_EPROTO : oc.code;
			drop_part(o->part_path, code == FARM_ELIMIT);
			if (code == FARM_EINTR)
				rc = farm_err_set(e, code, "%s: download interrupted (attempt %u)", shown,
						  r->attempts);
			else
				rc = farm_err_set(e, code, "%s: %s (%u attempt%s); %s", shown, oc.why, r->attempts,
						  r->attempts == 1 ? "" : "s",
						  oc.hint && oc.hint[0] ? oc.hint : "check the server");
			goto out;
		}
		rc = farm_fetch_sha256_file(o->part_path, r->sha256, e);
		if (rc)
			goto out;
		if (o->sha256 && strcasecmp(o->sha256, r->sha256) != 0) {
			unlink(o->part_path);
			if (sum_retry_left > 0) {
				sum_retry_left--;
				fetch_log(o, "%s: sha256 %s, expected %s; downloading again from byte 0", shown,
					  r->sha256, o->sha256);
				from_zero = 1;
				continue;
			}
			rc = farm_err_set(e, FARM_EPROTO,
					  "%s: sha256 mismatch after %u attempts: expected %s, got %s; the file at "
					  "the URL changed or the inventory's sha256 is wrong: check and update it",
					  shown, r->attempts, o->sha256, r->sha256);
			r->sha256[0] = '\0';
			goto out;
		}
		struct stat st;
		if (stat(o->part_path, &st) != 0) {
			rc = farm_err_sys(e, FARM_EIO, errno, "%s: stat", o->part_path);
			goto out;
		}
		r->size = (uint64_t)st.st_size;
		if (rename(o->part_path, o->dest_path) != 0) {
			rc = farm_err_sys(e, FARM_EIO, errno, "%s: cannot rename the download to %s", o->part_path,
					  o->dest_path);
			goto out;
		}
		fetch_log(o, "%s: %llu bytes, sha256 %s%s", shown, (unsigned long long)r->size, r->sha256,
			  o->sha256 ? " (as expected)" : " (not checked: waived)");
		rc = 0;
		goto out;
	}
out:
	curl_easy_cleanup(h);
	return rc;
}
