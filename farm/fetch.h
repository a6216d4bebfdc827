/* mpfarm: firmware downloads over HTTP(S) and file:// (libcurl).
 *
 * One call downloads one URL into part_path, resuming a partial file left by
 * an earlier attempt (or an earlier run) with a Range request, and retrying
 * transient failures (connection errors, timeouts, stalls, 5xx, 429, a body
 * shorter than announced) with exponential backoff. A 404/403/401 or another
 * 4xx is final. The body is bounded by max_size, checked while it arrives.
 * When sha256 is given, the complete file is hashed; a mismatch deletes the
 * partial file, is retried once from byte 0 (a resumed file may have been
 * corrupt), and is then final. Only a file whose checksum matched (or was
 * waived: sha256 NULL) is renamed to dest_path; nothing half-written is ever
 * at dest_path.
 *
 * Messages name the URL with any user:password and query string removed
 * (farm_fetch_redact) and say what to do next. Credentials are never logged.
 *
 * The caller calls curl_global_init() once in main (farm_fetch_global_init)
 * before any thread or worker starts. SIGPIPE must be ignored (main does):
 * with CURLOPT_NOSIGNAL libcurl does not ignore it by itself. Redirects are
 * followed to http/https only (at most FARM_FETCH_REDIRECTS_MAX), never from a
 * server to a file:// URL. */
#ifndef FARM_FETCH_H
#define FARM_FETCH_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define FARM_FETCH_URL_MAX 2048
#define FARM_FETCH_DEFAULT_MAX_BYTES (64ull << 20)
#define FARM_FETCH_TEMPLATE_MAX FARM_FETCH_URL_MAX /* a URL template, in characters */
#define FARM_FETCH_REDIRECTS_MAX 10                /* redirects followed (to http/https only) */

struct farm_fetch_opts {
	const char *url;           /* expanded; http://, https:// or file:// */
	const char *part_path;     /* download here (resumed when present) */
	const char *dest_path;     /* renamed here once complete and checked */
	const char *sha256;        /* 64 lower-case hex digits; NULL = waived */
	unsigned timeout_s;        /* one attempt, whole transfer; 0 = 300 */
	unsigned connect_timeout_s;/* 0 = 20 */
	unsigned stall_s;          /* abort when under 1 byte/s for this long; 0 = 30 */
	unsigned retries;          /* further attempts after the first */
	unsigned backoff_ms;       /* first retry delay, doubled each time, at most 30 s; 0 = 1000 */
	uint64_t max_size;         /* 0 = FARM_FETCH_DEFAULT_MAX_BYTES */
	const volatile sig_atomic_t *cancel; /* non-zero: stop at once (FARM_EINTR) */
	/* Progress in bytes (total 0 = unknown); may be NULL. */
	void (*progress)(void *p, uint64_t done, uint64_t total);
	/* One line per attempt and outcome, for the firmware log; may be NULL. */
	void (*log)(void *p, const char *line);
	void *cb_p;
};

struct farm_fetch_result {
	char sha256[65];           /* of the file at dest_path */
	uint64_t size;
	unsigned attempts;
	long status;               /* last HTTP status (0 for file://) */
	uint64_t resumed_from;     /* bytes already there when the last attempt started */
};

/* Values for the URL template. NULL: the placeholder may not be used. */
struct farm_fetch_vars {
	const char *board, *port, *variant, *version;
};

int farm_fetch_global_init(struct farm_err *e);
void farm_fetch_global_cleanup(void);

/* Download as above. Returns 0, or FARM_ENOTFOUND (404, missing file),
 * FARM_EPROTO (other HTTP error, checksum mismatch), FARM_ETIMEDOUT,
 * FARM_ELIMIT (too large), FARM_EIO, FARM_EINTR, FARM_EINVAL (bad URL). */
int farm_fetch(const struct farm_fetch_opts *o, struct farm_fetch_result *r, struct farm_err *e);

/* Expand {board}, {port}, {variant}, {version} in tmpl into out; values are
 * percent-encoded (RFC 3986 unreserved characters kept). An unknown
 * placeholder, one whose value is NULL, or an unbalanced brace is FARM_EINVAL
 * naming it; a result longer than len - 1 is FARM_ELIMIT. */
int farm_fetch_expand(const char *tmpl, const struct farm_fetch_vars *v, char *out, size_t len,
		      struct farm_err *e);

/* url without user:password@ and without ?query / #fragment, for messages. */
void farm_fetch_redact(const char *url, char *out, size_t len);

/* sha256 of a file, lower-case hex. */
int farm_fetch_sha256_file(const char *path, char out[65], struct farm_err *e);

#endif
