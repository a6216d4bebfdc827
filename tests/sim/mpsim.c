/* mpsim: a simulated MicroPython board for mpfarm's tests.
 *
 * Serves one console on a unix stream socket: the friendly REPL, paste mode,
 * the raw REPL and raw-paste mode, byte for byte as the firmware prints them
 * (see /work/shared/protocols/raw-repl.md). Python is not interpreted: a small
 * evaluator runs the subset described in tests/sim/README.md. A "running"
 * program is a timer (time.sleep) or waits for Ctrl-C (while True), so a board
 * costs no CPU while idle or busy. One client at a time; state survives
 * reconnects. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CODE_MAX (64 * 1024)  /* input buffer: raw, raw-paste, paste, friendly line */
#define OUT_MAX (1024 * 1024) /* output the client has not taken yet */
#define OUT_PAUSE (64 * 1024) /* stop reading input above this much output */
#define NVARS 8               /* stored bytes/str variables */
#define DEPTH 4               /* nested exec() */
#define NARGS 32              /* print() arguments */
#define RAW_BANNER "raw REPL; CTRL-B to exit\r\n"
#define IDENTITY "def _mpf_id():"
#define MCU "mpsim with simulated MCU"

enum mode { M_FRIENDLY, M_RAW, M_PASTE, M_RAWPASTE };
enum { S_OK, S_EXC, S_PEND }; /* statement results */
static const char *const mode_names[] = { "friendly", "raw", "paste", "raw-paste" };
static const char *const modules[] = { "sys", "os", "gc", "time", "machine", "micropython", NULL };

static const char *version = "1.22.0";
static int paste_on = 1, old_fw;
static unsigned window = 128;
static FILE *logf_;
static volatile sig_atomic_t stop;
static int cli = -1;
static char outbuf[OUT_MAX], scratch[CODE_MAX];
static size_t out_off, out_len;

static enum mode mode;
static char in[CODE_MAX];
static size_t in_len;
static int in_over;       /* input beyond CODE_MAX was dropped */
static unsigned remain;   /* raw-paste: code bytes until the next 01 */
static unsigned imported; /* a bit per modules[] entry */
static int to_bootloader; /* machine.bootloader() ran: drop the console once the output is out */
static struct var { char name[32]; char *val; size_t len; } vars[NVARS];

struct frame { const char *code; size_t len, pos; int line, at; char *owned; };
static struct {
	int active, pending, forever, depth, syntax;
	long long deadline;
	struct frame f[DEPTH];
	enum mode from;
	char exc[48], msg[200];
} ex; /* the program being run */

struct cur { const char *p, *e; int dry, depth; }; /* dry: syntax check only, no effects */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 1, 2))) static void logev(const char *fmt, ...)
{
	if (!logf_) return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(logf_, fmt, ap);
	va_end(ap);
	fputc('\n', logf_);
	fflush(logf_);
}

/* ---- output ---- */

static void emit(const void *d, size_t n)
{
	if (cli < 0) return;
	if (out_off && out_len + n > OUT_MAX) {
		memmove(outbuf, outbuf + out_off, out_len - out_off);
		out_len -= out_off;
		out_off = 0;
	}
	if (n > OUT_MAX - out_len)
		n = OUT_MAX - out_len; /* a client that never reads loses output */
	memcpy(outbuf + out_len, d, n);
	out_len += n;
}

static void emits(const char *s) { emit(s, strlen(s)); }

/* stdout as the console prints it: \n becomes \r\n */
static void emit_cooked(const char *s, size_t n)
{
	size_t a = 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\n') {
			emit(s + a, i - a);
			emit("\r\n", 2);
			a = i + 1;
		}
	emit(s + a, n - a);
}

static void banner(void)
{
	char b[160];
	snprintf(b, sizeof b, "MicroPython v%s on 2026-01-01; " MCU "\r\n"
		 "Type \"help()\" for more information.\r\n>>> ", version);
	emits(b);
}

static void set_mode(enum mode m)
{
	if (m != mode) logev("mode %s", mode_names[m]);
	mode = m;
}

/* ---- the evaluator: lexing ---- */

__attribute__((format(printf, 2, 3))) static int exc_raise(const char *name, const char *fmt, ...)
{
	va_list ap;
	snprintf(ex.exc, sizeof ex.exc, "%s", name);
	va_start(ap, fmt);
	vsnprintf(ex.msg, sizeof ex.msg, fmt, ap);
	va_end(ap);
	ex.syntax = !strcmp(name, "SyntaxError");
	return S_EXC;
}

static int syntax(void) { return exc_raise("SyntaxError", "invalid syntax"); }
static int ovf(void) { return exc_raise("OverflowError", "small int overflow"); }
static int ints_only(void) { return exc_raise("NotImplementedError", "mpsim evaluates integers only"); }
static int isid(int ch) { return isalnum(ch) || ch == '_'; }

static void ws(struct cur *c)
{
	while (c->p < c->e && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static int at_end(struct cur *c)
{
	ws(c);
	return c->p == c->e;
}

static int lit(struct cur *c, const char *s)
{
	size_t n = strlen(s);
	ws(c);
	if ((size_t)(c->e - c->p) < n || memcmp(c->p, s, n)) return 0;
	c->p += n;
	return 1;
}

/* A whole word: not followed by an identifier character. */
static int kw(struct cur *c, const char *s)
{
	struct cur s0 = *c;
	if (lit(c, s) && !(c->p < c->e && isid((unsigned char)*c->p))) return 1;
	*c = s0;
	return 0;
}

static size_t ident(struct cur *c, const char **s)
{
	ws(c);
	*s = c->p;
	if (c->p < c->e && (isalpha((unsigned char)*c->p) || *c->p == '_'))
		while (c->p < c->e && isid((unsigned char)*c->p)) c->p++;
	return (size_t)(c->p - *s);
}

static int is_word(const char *s, size_t n, const char *w) { return strlen(w) == n && !memcmp(s, w, n); }

static int module_of(const char *s, size_t n) /* index in modules[], -1 if unknown */
{
	for (int i = 0; modules[i]; i++)
		if (is_word(s, n, modules[i])) return i;
	return -1;
}

static int is_imported(const char *s, size_t n)
{
	int m = module_of(s, n);
	return m >= 0 && (imported >> m & 1);
}

/* '..' or "..", optionally b-prefixed; *s,*n: the text between the quotes.
 * 1: found, 0: no literal here, -1: unterminated. */
static int strlit(struct cur *c, const char **s, size_t *n, int *bytes)
{
	ws(c);
	const char *p = c->p;
	if ((*bytes = p < c->e && *p == 'b')) p++;
	if (p >= c->e || (*p != '\'' && *p != '"')) return 0;
	char q = *p++;
	for (*s = p; p < c->e && *p != q; p++)
		if (*p == '\\' && p + 1 < c->e) p++;
	if (p >= c->e) return -1;
	*n = (size_t)(p - *s);
	c->p = p + 1;
	return 1;
}

static int hexv(int ch)
{
	int lc = ch | 0x20;
	return isdigit(ch) ? ch - '0' : lc >= 'a' && lc <= 'f' ? lc - 'a' + 10 : -1;
}

/* Escapes \n \t \r \0 \\ \' \" \xNN; d has room for n bytes. */
static size_t unescape(const char *s, size_t n, char *d)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		char x = i + 1 < n && s[i] == '\\' ? s[++i] : 0;
		if (!x) d[k++] = s[i];
		else if (strchr("ntr0", x))
			d[k++] = x == 'n' ? '\n' : x == 't' ? '\t' : x == 'r' ? '\r' : '\0';
		else if (strchr("\\'\"", x)) d[k++] = x;
		else if (x == 'x' && i + 2 < n && hexv((unsigned char)s[i + 1]) >= 0 &&
			 hexv((unsigned char)s[i + 2]) >= 0) {
			d[k++] = (char)(hexv((unsigned char)s[i + 1]) * 16 +
					hexv((unsigned char)s[i + 2]));
			i += 2;
		} else {
			d[k++] = '\\';
			d[k++] = x;
		}
	}
	return k;
}

/* ---- integer expressions: + - * // % ( ), Python's floor semantics ---- */

static int expr(struct cur *c, long long *v);
static int unary(struct cur *c, long long *v);

static int atom(struct cur *c, long long *v)
{
	const char *id, *attr;
	size_t n;
	*v = 0;
	if (lit(c, "(")) {
		int rc = expr(c, v);
		return rc ? rc : lit(c, ")") ? S_OK : syntax();
	}
	if (c->p < c->e && isdigit((unsigned char)*c->p)) {
		int over = 0;
		while (c->p < c->e && isdigit((unsigned char)*c->p))
			over |= __builtin_mul_overflow(*v, 10, v) |
				__builtin_add_overflow(*v, *c->p++ - '0', v);
		if (c->p < c->e && (isid((unsigned char)*c->p) || *c->p == '.'))
			return c->dry ? syntax() : ints_only();
		return over && !c->dry ? ovf() : S_OK;
	}
	if (!(n = ident(c, &id))) return syntax();
	while (lit(c, ".")) /* NAME.attr.attr */
		if (!ident(c, &attr)) return syntax();
	if (lit(c, "(")) { /* a call: skip the arguments */
		int depth = 1;
		for (char q = 0, ch; c->p < c->e && depth;) {
			ch = *c->p++;
			if (q && ch == '\\' && c->p < c->e) c->p++;
			else if (q || ch == '\'' || ch == '"') q = q ? (ch == q ? 0 : q) : ch;
			else depth += ch == '(' ? 1 : ch == ')' ? -1 : 0;
		}
		if (depth) return syntax();
	}
	if (c->dry) return S_OK;
	return exc_raise("NameError", "name '%.*s' isn't defined", (int)n, id);
}

static int unary(struct cur *c, long long *v)
{
	int rc, neg;
	if (++c->depth > 200) return exc_raise("RuntimeError", "maximum recursion depth exceeded");
	if ((neg = lit(c, "-")) || lit(c, "+")) {
		if (!(rc = unary(c, v)) && neg && !c->dry)
			rc = *v == LLONG_MIN ? ovf() : (*v = -*v, S_OK);
	} else {
		rc = atom(c, v);
	}
	c->depth--;
	return rc;
}

static int term(struct cur *c, long long *v)
{
	int rc = unary(c, v), op;
	long long r;
	while (!rc && (op = lit(c, "//") ? 'f' : lit(c, "/") ? '/' : lit(c, "*") ? '*'
			    : lit(c, "%") ? '%' : 0)) {
		if ((rc = unary(c, &r)) || c->dry) continue;
		if (op == '*') {
			rc = __builtin_mul_overflow(*v, r, v) ? ovf() : S_OK;
			continue;
		}
		if (r == 0) return exc_raise("ZeroDivisionError", "divide by zero");
		if (op == '/') return ints_only();
		if (*v == LLONG_MIN && r == -1) return ovf();
		long long q = *v / r, m = *v % r;
		if (m && ((m < 0) != (r < 0))) q--, m += r;
		*v = op == 'f' ? q : m;
	}
	return rc;
}

static int expr(struct cur *c, long long *v)
{
	int rc = term(c, v), op;
	long long r;
	while (!rc && (op = lit(c, "+") ? '+' : lit(c, "-") ? '-' : 0) && !(rc = term(c, &r)))
		if (!c->dry && (op == '+' ? __builtin_add_overflow(*v, r, v)
					  : __builtin_sub_overflow(*v, r, v)))
			rc = ovf();
	return rc;
}

/* ---- statements ---- */

static int do_print(struct cur *c)
{
	struct { const char *s; size_t n; long long v; int str; } a[NARGS];
	int na = 0, rc, b, k;
	if (!lit(c, ")"))
		for (;; na++) {
			if (na == NARGS || (k = strlit(c, &a[na].s, &a[na].n, &b)) < 0 || (k && b))
				return syntax();
			a[na].str = k;
			if (!k && (rc = expr(c, &a[na].v))) return rc;
			if (lit(c, ")") && ++na) break;
			if (!lit(c, ",")) return syntax();
		}
	if (!at_end(c)) return syntax();
	/* nothing is printed unless every argument evaluated */
	for (int i = 0; i < na && !c->dry; i++) {
		char num[24];
		if (i) emit(" ", 1);
		if (a[i].str) emit_cooked(scratch, unescape(a[i].s, a[i].n, scratch));
		else emit(num, (size_t)snprintf(num, sizeof num, "%lld", a[i].v));
	}
	if (!c->dry) emit("\r\n", 2);
	return S_OK;
}

static struct var *find_var(const char *s, size_t n)
{
	for (int i = 0; i < NVARS; i++)
		if (vars[i].val && is_word(s, n, vars[i].name)) return &vars[i];
	return NULL;
}

static int store(const char *nm, size_t nn, const char *s, size_t n)
{
	struct var *v = find_var(nm, nn);
	for (int i = 0; i < NVARS && !v; i++)
		if (!vars[i].val) v = &vars[i];
	char *d = v && nn < sizeof v->name ? malloc(n + 1) : NULL;
	if (!d) return exc_raise("MemoryError", "memory allocation failed");
	free(v->val);
	v->val = d;
	v->len = unescape(s, n, d);
	memcpy(v->name, nm, nn);
	v->name[nn] = '\0';
	return S_OK;
}

/* exec(globals().pop('NAME')): the stored code runs as a nested frame. */
static int do_exec(struct cur *c)
{
	const char *s;
	size_t n;
	int b;
	struct var *v;
	if (!lit(c, "globals().pop(") || strlit(c, &s, &n, &b) <= 0 || !lit(c, ")") || !lit(c, ")") ||
	    !at_end(c))
		return syntax();
	if (c->dry) return S_OK;
	if (ex.depth == DEPTH) return exc_raise("RuntimeError", "maximum recursion depth exceeded");
	if (!(v = find_var(s, n))) return exc_raise("KeyError", "%.*s", (int)n, s);
	ex.f[ex.depth++] = (struct frame){ .code = v->val, .len = v->len, .owned = v->val };
	v->val = NULL;
	return S_OK;
}

/* time.sleep(S) / sleep_ms(MS) / sleep_us(US); 0 if this is not one. */
static int do_sleep(struct cur *c, int *rc)
{
	struct cur s0 = *c;
	const char *m, *f;
	size_t mn = ident(c, &m), fn;
	long long us, v, unit = 0;
	if (is_word(m, mn, "time") && lit(c, ".") && (fn = ident(c, &f)) && lit(c, "("))
		unit = is_word(f, fn, "sleep") ? 1000000 : is_word(f, fn, "sleep_ms") ? 1000
		       : is_word(f, fn, "sleep_us") ? 1 : 0;
	if (!unit) {
		*c = s0;
		return 0;
	}
	if ((*rc = expr(c, &v))) return 1;
	us = v <= 0 ? 0 : v > 1000000000000000LL / unit ? 1000000000000000LL : v * unit;
	if (!lit(c, ")") || !at_end(c)) *rc = syntax();
	else if (c->dry || us <= 0) *rc = S_OK;
	else if (!is_imported("time", 4)) *rc = exc_raise("NameError", "name 'time' isn't defined");
	else ex.deadline = now_ms() + (us + 999) / 1000, *rc = S_PEND;
	return 1;
}

static int is_exc_name(const char *s, size_t n) /* raise accepts ...Error, ...Exception, ... */
{
	static const char *const ends[] = { "Error", "Exception", "Interrupt", "Exit", "Iteration",
					    "Warning", NULL };
	for (int i = 0; ends[i]; i++) {
		size_t k = strlen(ends[i]);
		if (n < 48 && n >= k && !memcmp(s + n - k, ends[i], k)) return 1;
	}
	return 0;
}

static int names_end(struct cur *c) /* NAME[, NAME]... to the end */
{
	const char *id;
	do
		if (!ident(c, &id)) return syntax();
	while (lit(c, ","));
	return at_end(c) ? S_OK : syntax();
}

/* One statement. */
static int stmt(struct cur *c)
{
	const char *id, *s;
	size_t n, sn;
	int rc, b, m;
	long long v;
	struct cur s0;
	if (at_end(c)) return S_OK;
	if (kw(c, "pass")) return at_end(c) ? S_OK : syntax();
	if (kw(c, "del")) return names_end(c);
	if (kw(c, "while")) { /* while True: never ends, waits for Ctrl-C */
		if ((!kw(c, "True") && !kw(c, "1")) || !lit(c, ":")) return syntax();
		ex.forever = !c->dry;
		return c->dry ? S_OK : S_PEND;
	}
	if (kw(c, "import")) {
		s0 = *c;
		if ((rc = names_end(c)) || c->dry) return rc;
		for (*c = s0; (n = ident(c, &id)); lit(c, ",")) {
			if ((m = module_of(id, n)) < 0)
				return exc_raise("ImportError", "no module named '%.*s'", (int)n, id);
			imported |= 1u << m;
		}
		return S_OK;
	}
	if (kw(c, "raise")) {
		s = "", sn = 0;
		if (!(n = ident(c, &id)) || (lit(c, "(") && (strlit(c, &s, &sn, &b) < 0 || !lit(c, ")"))) ||
		    !at_end(c))
			return syntax();
		if (c->dry) return S_OK;
		if (!is_exc_name(id, n))
			return exc_raise("NameError", "name '%.*s' isn't defined", (int)n, id);
		char name[48];
		snprintf(name, sizeof name, "%.*s", (int)n, id);
		sn = unescape(s, sn, scratch);
		return exc_raise(name, "%.*s", (int)sn, scratch);
	}
	s0 = *c;
	if (kw(c, "print") && lit(c, "(")) return do_print(c);
	*c = s0;
	if (kw(c, "exec") && lit(c, "(")) return do_exec(c);
	*c = s0;
	if (do_sleep(c, &rc)) return rc;
	n = ident(c, &id);
	if (is_word(id, n, "machine") && lit(c, ".") && kw(c, "bootloader") && lit(c, "(") &&
	    lit(c, ")") && at_end(c)) { /* machine.bootloader(): the board leaves for its bootloader */
		if (c->dry) return S_OK;
		if (!is_imported("machine", 7)) return exc_raise("NameError", "name 'machine' isn't defined");
		ex.forever = 1;
		to_bootloader = 1;
		return S_PEND;
	}
	if (is_word(id, n, "gc") && lit(c, ".") && kw(c, "collect") && lit(c, "(") && lit(c, ")") &&
	    at_end(c)) /* gc.collect() */
		return c->dry || is_imported("gc", 2) ? S_OK
						       : exc_raise("NameError", "name 'gc' isn't defined");
	*c = s0;
	if ((n = ident(c, &id)) && lit(c, "=") && !(c->p < c->e && *c->p == '=')) {
		if ((rc = strlit(c, &s, &sn, &b)) < 0 || (rc > 0 && !at_end(c))) return syntax();
		if (rc > 0) return c->dry ? S_OK : store(id, n, s, sn);
		if ((rc = expr(c, &v))) /* an integer: evaluated, not kept */
			return rc;
		return at_end(c) ? S_OK : syntax();
	}
	*c = s0;
	if ((rc = strlit(c, &s, &sn, &b)) != 0) return rc < 0 || !at_end(c) ? syntax() : S_OK;
	if ((rc = expr(c, &v)) || !at_end(c)) return rc ? rc : syntax();
	if (!c->dry && ex.from == M_FRIENDLY) { /* the friendly REPL echoes values */
		char num[24];
		emit(num, (size_t)snprintf(num, sizeof num, "%lld\r\n", v));
	}
	return S_OK;
}

/* The next statement (split at newlines and ';' outside quotes, '#' comments
 * dropped); 0 when none is left. f->at gets its line number. */
static int next_stmt(struct frame *f, const char **s, size_t *n)
{
	const char *c = f->code;
	size_t i = f->pos, end;
	char q = 0;
	for (;; i++) {
		if (i >= f->len) return f->pos = i, 0;
		if (c[i] == '\n' || (c[i] == '\r' && !(i + 1 < f->len && c[i + 1] == '\n')))
			f->line++;
		else if (!strchr("; \t\r", c[i])) break;
	}
	for (end = i; end < f->len && c[end] != '\n' && c[end] != '\r'; end++)
		if (q && c[end] == '\\' && end + 1 < f->len && c[end + 1] != '\n' && c[end + 1] != '\r')
			end++;
		else if (q || c[end] == '\'' || c[end] == '"')
			q = q ? (c[end] == q ? 0 : q) : c[end];
		else if (c[end] == ';' || c[end] == '#') break;
	*s = c + i;
	*n = end - i;
	f->at = f->line;
	if (end < f->len && c[end] == '#')
		while (end < f->len && c[end] != '\n' && c[end] != '\r') end++;
	f->pos = end;
	return 1;
}

/* Compile step: the whole frame's syntax, before any of it runs. */
static int check(struct frame *f)
{
	struct frame t = *f;
	const char *s;
	size_t n;
	while (next_stmt(&t, &s, &n)) {
		struct cur c = { s, s + n, 1, 0 };
		if (stmt(&c) != S_OK) return f->at = t.at, S_EXC;
	}
	return S_OK;
}

__attribute__((format(printf, 3, 4))) static size_t addf(char *b, size_t k, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vsnprintf(b + k, 1024 - k, fmt, ap);
	va_end(ap);
	k += r > 0 ? (size_t)r : 0;
	return k < 1024 ? k : 1023;
}

/* The program ended (raised: with ex.exc): the traceback, then the prompt. */
static void finish(int raised)
{
	char tb[1024];
	size_t k = 0;
	if (raised) {
		k = addf(tb, k, "Traceback (most recent call last):\r\n");
		for (int i = 0; i < ex.depth; i++)
			k = addf(tb, k, "  File \"%s\", line %d%s\r\n", i ? "<string>" : "<stdin>",
				 ex.f[i].at, ex.syntax && i == ex.depth - 1 ? "" : ", in <module>");
		k = addf(tb, k, "%s: %s\r\n", ex.exc, ex.msg);
		logev("exec %zu exception %s", in_len, ex.exc);
	} else {
		logev("exec %zu ok", in_len);
	}
	for (int i = 0; i < ex.depth; i++) free(ex.f[i].owned);
	if (ex.from == M_RAW || ex.from == M_RAWPASTE) {
		emit("\x04", 1);
		emit(tb, k);
		emit("\x04>", 2);
		set_mode(M_RAW);
	} else {
		emit(tb, k);
		emits(">>> ");
		set_mode(M_FRIENDLY);
	}
	memset(&ex, 0, sizeof ex);
	in_len = 0;
	in_over = 0;
}

/* mpfarm's identity query: a line that starts with "def _mpf_id():" */
static int has_identity(const char *s, size_t n)
{
	for (const char *p = s; (p = memmem(p, n - (size_t)(p - s), IDENTITY, strlen(IDENTITY))); p++)
		if (p == s || p[-1] == '\n' || p[-1] == '\r') return 1;
	return 0;
}

/* Run (or resume) the program until it ends or waits. */
static void run(void)
{
	const char *s;
	size_t n;
	while (ex.depth) {
		struct frame *f = &ex.f[ex.depth - 1];
		if (!f->line) { /* a new frame */
			f->line = f->at = 1;
			if (has_identity(f->code, f->len)) {
				char b[256];
				snprintf(b, sizeof b, "impl micropython %s\r\nplatform mpsim\r\n"
					 "build MicroPython v%s on 2026-01-01; " MCU "\r\n"
					 "machine " MCU "\r\n", version, version);
				emits(b);
				f->pos = f->len;
			} else if (check(f)) {
				finish(1);
				return;
			}
		}
		if (!next_stmt(f, &s, &n)) {
			free(f->owned);
			ex.depth--;
			continue;
		}
		struct cur c = { s, s + n, 0, 0 };
		int rc = stmt(&c);
		if (rc == S_PEND) {
			ex.pending = 1;
			return;
		}
		if (rc == S_EXC) {
			finish(1);
			return;
		}
	}
	finish(0);
}

/* Run the input buffer; kbd: interrupted before it started. */
static void start_exec(enum mode from, int kbd)
{
	memset(&ex, 0, sizeof ex);
	ex.active = 1;
	ex.from = from;
	ex.depth = 1;
	ex.f[0] = (struct frame){ .code = in, .len = in_len, .line = kbd || in_over, .at = 1 };
	if (kbd) exc_raise("KeyboardInterrupt", "%s", "");
	else if (in_over)
		exc_raise("MemoryError", "memory allocation failed, code over %d bytes", CODE_MAX);
	if (kbd || in_over) finish(1);
	else run();
}

/* ---- the REPL state machine ---- */

static void soft_reset(void)
{
	for (int i = 0; i < NVARS; i++) {
		free(vars[i].val);
		vars[i].val = NULL;
	}
	imported = 0;
	in_len = 0;
	in_over = 0;
	logev("soft-reset");
	emits("MPY: soft reboot\r\n");
	if (mode == M_RAW) emits(RAW_BANNER ">");
	else banner();
}

static void add(unsigned char ch)
{
	if (in_len < CODE_MAX) in[in_len++] = (char)ch;
	else in_over = 1;
}

static void clear(void) { in_len = 0, in_over = 0; }

static void say(const char *text, enum mode m) /* drop the input, print, switch mode */
{
	clear();
	emits(text);
	set_mode(m);
}

static void feed(unsigned char ch)
{
	if (ex.active) { /* a program runs: only Ctrl-C is heard */
		if (ch == 0x03) {
			ex.pending = ex.forever = 0;
			exc_raise("KeyboardInterrupt", "%s", "");
			finish(1);
		}
		return;
	}
	switch (mode) {
	case M_RAWPASTE:
		if (ch == 0x04 || ch == 0x03) { /* end of code (03: interrupted): acknowledge, run */
			emit("\x04", 1);
			start_exec(M_RAWPASTE, ch == 0x03);
			break;
		}
		add(ch);
		if (--remain == 0) { /* a window consumed: grant one more */
			emit("\x01", 1);
			remain = window;
		}
		break;
	case M_RAW:
		if (ch == 0x01 && in_len == 2 && in[0] == 0x05 && !old_fw) { /* raw-paste request */
			unsigned char r[5] = { 'R', 0x01, (unsigned char)(window & 0xff),
					       (unsigned char)(window >> 8), 0x01 };
			int ok = in[1] == 'A' && paste_on;
			emit(ok ? r : (const unsigned char *)"R", ok ? 5 : 2);
			clear();
			remain = window;
			if (ok) set_mode(M_RAWPASTE);
		} else if (ch == 0x01 || ch == 0x03) {
			say(ch == 0x01 ? RAW_BANNER ">" : "", M_RAW);
		} else if (ch == 0x02) {
			say("\r\n", M_FRIENDLY);
			banner();
		} else if (ch == 0x04 && !in_len && !in_over) {
			emits("OK\r\n");
			soft_reset();
		} else if (ch == 0x04) {
			emits("OK");
			start_exec(M_RAW, 0);
		} else {
			add(ch);
		}
		break;
	case M_PASTE:
		if (ch == 0x03) {
			say("\r\n>>> ", M_FRIENDLY);
		} else if (ch == 0x04) {
			emits("\r\n");
			start_exec(M_PASTE, 0);
		} else {
			add(ch);
			if (ch == '\r') emits("\r\n=== ");
			else emit(&ch, 1);
		}
		break;
	case M_FRIENDLY:
		if (ch == 0x01) {
			say("\r\n" RAW_BANNER ">", M_RAW);
		} else if (ch == 0x02 || ch == 0x03) {
			say("\r\n", M_FRIENDLY);
			if (ch == 0x02) banner();
			else emits(">>> ");
		} else if (ch == 0x04 && !in_len) {
			emits("\r\n");
			soft_reset();
		} else if (ch == 0x05) {
			say("\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ", M_PASTE);
		} else if (ch == '\r') {
			emits("\r\n");
			if (in_len || in_over) start_exec(M_FRIENDLY, 0);
			else emits(">>> ");
		} else if (ch >= 0x20 && ch != 0x7f) {
			add(ch);
			emit(&ch, 1);
		}
		break;
	}
}

/* ---- the socket ---- */

static void drop_client(void)
{
	close(cli);
	cli = -1;
	out_off = out_len = 0;
	logev("disconnect");
}

static void flush(void)
{
	while (cli >= 0 && out_off < out_len) {
		ssize_t k = send(cli, outbuf + out_off, out_len - out_off, MSG_NOSIGNAL);
		if (k > 0) out_off += (size_t)k;
		else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
		else if (!(k < 0 && errno == EINTR)) drop_client();
	}
	if (out_off == out_len) out_off = out_len = 0;
}

static void on_signal(int sig) { (void)sig, stop = 1; }

static int usage(int rc)
{
	fprintf(rc ? stderr : stdout, "usage: mpsim --socket PATH [--version 1.22.0] "
		"[--raw-paste on|off] [--window 128] [--log FILE]\n");
	return rc;
}

int main(int argc, char **argv)
{
	const char *path = NULL, *log_path = NULL;
	char *end;
	for (int i = 1; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		long w;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(0);
		if (v && !strcmp(a, "--socket")) path = v;
		else if (v && !strcmp(a, "--version")) version = v;
		else if (v && !strcmp(a, "--raw-paste") && (!strcmp(v, "on") || !strcmp(v, "off")))
			paste_on = !strcmp(v, "on");
		else if (v && !strcmp(a, "--window") && (w = strtol(v, &end, 10)) >= 1 && w <= 65535 &&
			 !*end)
			window = (unsigned)w;
		else if (v && !strcmp(a, "--log")) log_path = v;
		else return usage(2);
	}
	long major = strtol(version, &end, 10), minor = *end == '.' ? strtol(end + 1, &end, 10) : -1;
	if (!path || strlen(version) > 32 || strspn(version, "0123456789.") != strlen(version) ||
	    minor < 0)
		return usage(2);
	old_fw = major < 1 || (major == 1 && minor < 14); /* no raw-paste before 1.14 */

	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	if (strlen(path) >= sizeof sa.sun_path)
		return fprintf(stderr, "mpsim: socket path too long: %s\n", path), 1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &sb) == 0 && !S_ISSOCK(sb.st_mode))
		return fprintf(stderr, "mpsim: %s exists and is not a socket\n", path), 1;
	unlink(path); /* a stale socket */
	if (log_path && !(logf_ = fopen(log_path, "we")))
		return fprintf(stderr, "mpsim: cannot write %s: %s\n", log_path, strerror(errno)), 1;

	/* SIGTERM/SIGINT are only delivered inside ppoll: no race with the loop. */
	sigset_t block, orig;
	struct sigaction act = { .sa_handler = on_signal };
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &orig);
	sigemptyset(&act.sa_mask);
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	signal(SIGPIPE, SIG_IGN);
	pid_t parent = getppid();
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
		stop = 1; /* the parent is already gone */

	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 8) != 0)
		return fprintf(stderr, "mpsim: cannot listen on %s: %s\n", path, strerror(errno)), 1;
	while (!stop) {
		struct pollfd p = { .fd = cli < 0 ? lfd : cli, .events = POLLIN };
		struct timespec ts, *tp = NULL;
		if (cli >= 0)
			p.events = (short)((out_len - out_off < OUT_PAUSE ? POLLIN : 0) |
					   (out_len > out_off ? POLLOUT : 0));
		if (ex.pending && !ex.forever) {
			long long left = ex.deadline - now_ms();
			left = left < 0 ? 0 : left;
			ts.tv_sec = (time_t)(left / 1000);
			ts.tv_nsec = (long)(left % 1000) * 1000000L;
			tp = &ts;
		}
		int n = ppoll(&p, 1, tp, &orig);
		if (n < 0 && errno != EINTR) {
			perror("mpsim: poll");
			break;
		}
		if (ex.pending && !ex.forever && now_ms() >= ex.deadline) { /* a sleep ended */
			ex.pending = 0;
			run();
		}
		if (n > 0 && p.fd == lfd && (p.revents & POLLIN)) {
			if ((cli = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
				logev("connect");
				if (mode == M_FRIENDLY && !ex.active) clear(), banner();
			}
		} else if (n > 0 && p.fd == cli && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
			char buf[4096];
			ssize_t k = recv(cli, buf, sizeof buf, 0);
			for (ssize_t i = 0; i < k; i++) feed((unsigned char)buf[i]);
			if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) drop_client();
		}
		flush();
		if (to_bootloader && out_off == out_len) {
			/* The USB device goes away with the running program; the next
			 * client finds a freshly booted board. */
			to_bootloader = 0;
			logev("bootloader");
			if (cli >= 0) drop_client();
			ex.active = ex.pending = ex.forever = 0;
			mode = M_FRIENDLY;
			for (int i = 0; i < NVARS; i++) free(vars[i].val), vars[i].val = NULL;
			imported = 0, in_len = 0, in_over = 0;
		}
	}
	if (cli >= 0) drop_client();
	close(lfd);
	unlink(path);
	for (int i = 0; i < NVARS; i++) free(vars[i].val);
	for (int i = 0; i < ex.depth; i++) free(ex.f[i].owned);
	if (logf_) fclose(logf_);
	return 0;
}
