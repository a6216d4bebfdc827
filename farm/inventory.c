/* mpfarm: load and validate the board inventory (schema: inventories/README.md).
 *
 * Validation walks the whole tree and records every problem it finds; it
 * never stops at the first. Sections are read in dependency order (probes,
 * timeouts, boards, firmware) whatever their order in the file, so references
 * between them can be checked. */
#include "inventory.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ydoc.h"

#define WHAT_MAX 160
#define QUOTE_MAX 96
#define NAME_MAX_LEN 128  /* board, variant, mcu names */
#define TEXT_MAX 4096     /* paths, URLs, commands */
#define LIST_MAX 64       /* tags, resources */

#define ID_HINT "ids are 1-64 characters from A-Z a-z 0-9 . _ -"

static const char *const top_keys[] = { "farm", "timeouts", "probes", "boards", "firmware", NULL };
static const char *const timeout_keys[] = { "boot", "test", "flash", "build", "board", NULL };
static const char *const probe_keys[] = { "id", "kind", "connection", "serial_number", "interface",
					   "target", "config", "speed_khz", "gdb_port", "server", NULL };
static const char *const board_keys[] = { "id", "port", "board", "variant", "mcu", "serial",
					   "tags", "probe", "resources", "flash", "emulator", "repl",
					   "timeouts", NULL };
static const char *const serial_keys[] = { "path", "usb_serial", "location", "baud", "dtr", "rts",
					     NULL };
static const char *const emulator_keys[] = { "kind", "machine", "firmware", "blank", NULL };
static const char *const repl_keys[] = { "chunk", "delay_ms", "window", "timeout", "boot_timeout",
					  "retries", "upload", NULL };
static const char *const target_keys[] = { "boards", "match", "file", "files", "fetch", "build",
					   "format", "base", "identity", NULL };
static const char *const part_keys[] = { "path", "offset", NULL };
static const char *const image_formats[] = { "ihex", "uf2", "dfuse", "elf", "bin", NULL };
static const char *const match_keys[] = { "port", "board", "variant", NULL };
static const char *const fetch_keys[] = { "url", "sha256", "sha256_waived", "timeout", "retries",
					   "max_size", "version", NULL };
static const char *const build_keys[] = { "repo", "ref", "port", "board", "variant", "command",
					   "artifact", "submodules", NULL };

static const char *const ports[] = { "rp2", "stm32", "esp32", "esp8266", "nrf", "samd",
				      "mimxrt", "renesas-ra", "cc3200", "unix", NULL };
static const char *const probe_kinds[] = { "gdb-remote", "openocd", "pyocd", "blackmagic", "qemu",
					    NULL };
static const char *const flash_methods[] = { "gdb", "uf2", "dfu", "esptool", "openmv", "none",
					      NULL };
static const char *const upload_modes[] = { "auto", "raw-paste", "echo-paste", "raw", NULL };
static const char *const emulator_kinds[] = { "qemu", NULL };
static const char *const emulator_machines[] = { "microbit", NULL };

/* did-you-mean over user ids costs O(ids * len^2): only this many per file. */
#define ID_SUGGESTIONS_MAX 64

struct vctx {
	const struct farm_ydoc *doc;
	struct farm_diags *d;
	int oom;
	unsigned id_suggestions; /* did-you-mean searches over ids done so far */
};

/* ------------------------------------------------------------- helpers */

static void problem(struct vctx *c, const struct farm_ynode *at, const char *hint,
		    const char *fmt, ...) FARM_PRINTF(4, 5);
static void problem(struct vctx *c, const struct farm_ynode *at, const char *hint,
		    const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	farm_diags_add(c->d, c->doc->file, at ? at->line : 0, at ? at->col : 0, hint, "%s", msg);
}

/* May we search user ids for a did-you-mean hint? Not past the diagnostic
 * cap (nothing more is shown) nor past ID_SUGGESTIONS_MAX searches. */
static int may_suggest_id(struct vctx *c)
{
	size_t max = c->d->max ? c->d->max : 200;
	if (c->d->n >= max || c->id_suggestions >= ID_SUGGESTIONS_MAX)
		return 0;
	c->id_suggestions++;
	return 1;
}

/* s quoted for a message, control bytes escaped, long text cut. */
static const char *quote(const char *s, char *buf, size_t sz)
{
	size_t o = 0;
	buf[o++] = '"';
	for (size_t i = 0; s[i]; i++) {
		unsigned char ch = (unsigned char)s[i];
		char tmp[8];
		int w = ch < 0x20 || ch == 0x7f ? snprintf(tmp, sizeof tmp, "\\x%02x", ch)
		      : ch == '"' || ch == '\\' ? snprintf(tmp, sizeof tmp, "\\%c", ch)
						: snprintf(tmp, sizeof tmp, "%c", ch);
		if (o + (size_t)w + 5 >= sz || i >= 60) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(buf + o, tmp, (size_t)w);
		o += (size_t)w;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* "base.key" (or "key"); a path too long for buf is cut with "...". */
static const char *join(char *buf, size_t sz, const char *base, const char *key)
{
	int w = base && *base ? snprintf(buf, sz, "%s.%s", base, key) : snprintf(buf, sz, "%s", key);
	if (w < 0 || (size_t)w >= sz) {
		if (sz > 4)
			memcpy(buf + sz - 4, "...", 4);
	}
	return buf;
}

static const struct farm_ynode *present(const struct farm_ynode *map, const char *key)
{
	const struct farm_ynode *n = farm_ymap_get(map, key);
	return farm_yscalar_is_null(n) ? NULL : n;
}

static void list_words(const char *const *words, char *buf, size_t sz)
{
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; words[i] && o + 1 < sz; i++) {
		int w = snprintf(buf + o, sz - o, "%s%s", i ? ", " : "", words[i]);
		if (w < 0)
			break;
		o += (size_t)w;
	}
}

static int in_list(const char *s, const char *const *words)
{
	for (size_t i = 0; words[i]; i++)
		if (strcmp(s, words[i]) == 0)
			return 1;
	return 0;
}

static int id_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > FARM_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == '-'))
			return 0;
	}
	return 1;
}

/* farm_yget_str, noting allocation failure. */
static int get_str(struct vctx *c, const struct farm_ynode *n, const char *what, size_t max,
		   char **out)
{
	int rc = farm_yget_str(c->doc, n, what, max, out, c->d);
	if (rc == FARM_ENOMEM)
		c->oom = 1;
	return rc;
}

/* Optional string under map[key]; empty strings are reported. */
static int opt_str(struct vctx *c, const struct farm_ynode *map, const char *key,
		   const char *where, size_t max, char **out)
{
	char what[WHAT_MAX];
	const struct farm_ynode *n = present(map, key);
	if (!n)
		return 0;
	join(what, sizeof what, where, key);
	if (get_str(c, n, what, max, out))
		return -1;
	if (*out && !**out) {
		problem(c, n, "leave the key out instead", "%s must not be empty", what);
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/* Required non-empty string under map[key]. */
static int req_str(struct vctx *c, const struct farm_ynode *map, const char *key,
		   const char *where, size_t max, char **out)
{
	if (farm_yrequire(c->doc, map, key, where, c->d))
		return -1;
	return opt_str(c, map, key, where, max, out);
}

/* Check that value (read from node n) is one of allowed. */
static int check_enum(struct vctx *c, const struct farm_ynode *n, const char *what,
		      const char *value, const char *const *allowed, const char *noun,
		      const char *extra)
{
	char list[400], hint[600], qv[QUOTE_MAX];
	if (in_list(value, allowed))
		return 0;
	const char *s = farm_did_you_mean(value, allowed);
	list_words(allowed, list, sizeof list);
	if (s)
		snprintf(hint, sizeof hint, "did you mean \"%s\"? (valid %ss: %s)%s%s", s, noun, list,
			 extra ? "; " : "", extra ? extra : "");
	else
		snprintf(hint, sizeof hint, "valid %ss: %s%s%s", noun, list, extra ? "; " : "",
			 extra ? extra : "");
	problem(c, n, hint, "%s: unknown %s %s", what, noun, quote(value, qv, sizeof qv));
	return -1;
}

/* Required or optional id string under map[key]. */
static int get_id(struct vctx *c, const struct farm_ynode *map, const char *key,
		  const char *where, int required, char **out)
{
	char what[WHAT_MAX], qv[QUOTE_MAX];
	int rc = required ? req_str(c, map, key, where, TEXT_MAX, out)
			  : opt_str(c, map, key, where, TEXT_MAX, out);
	if (rc || !*out)
		return rc;
	if (!id_ok(*out)) {
		problem(c, farm_ymap_get(map, key), ID_HINT, "%s %s is not a valid id",
			join(what, sizeof what, where, key), quote(*out, qv, sizeof qv));
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/* The i-th item of a value read with farm_yget_strlist (scalar or list). */
static const struct farm_ynode *list_item(const struct farm_ynode *n, size_t i)
{
	return n->kind == FARM_YSEQ ? n->items[i] : n;
}

static int get_idlist(struct vctx *c, const struct farm_ynode *map, const char *key,
		      const char *where, size_t max, char ***out, size_t *n_out)
{
	char what[WHAT_MAX], qv[QUOTE_MAX];
	const struct farm_ynode *n = present(map, key);
	int rc = 0;
	if (!n)
		return 0;
	join(what, sizeof what, where, key);
	rc = farm_yget_strlist(c->doc, n, what, max, out, n_out, c->d);
	if (rc == FARM_ENOMEM)
		c->oom = 1;
	if (rc)
		return rc;
	for (size_t i = 0; i < *n_out; i++) {
		if (id_ok((*out)[i]))
			continue;
		problem(c, list_item(n, i), ID_HINT, "%s: %s is not a valid id", what,
			quote((*out)[i], qv, sizeof qv));
		rc = -1;
	}
	return rc;
}

/* Take ownership of value. */
static void kv_add(struct vctx *c, struct farm_kv *kv, size_t *n, const char *key, char *value,
		   const struct farm_ynode *at)
{
	char *k = strdup(key);
	if (!k || !value) {
		free(k);
		free(value);
		c->oom = 1;
		return;
	}
	kv[*n].key = k;
	kv[*n].value = value;
	kv[*n].line = at ? at->line : 0;
	kv[*n].col = at ? at->col : 0;
	(*n)++;
}

static void kv_free(struct farm_kv *kv, size_t n)
{
	if (!kv)
		return;
	for (size_t i = 0; i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
}

const char *farm_kv_get(const struct farm_kv *kv, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(kv[i].key, key) == 0)
			return kv[i].value;
	return NULL;
}

static char *dup_long(long v)
{
	char tmp[32];
	snprintf(tmp, sizeof tmp, "%ld", v);
	return strdup(tmp);
}

/* Validated scalar options: every map key with a spec becomes a farm_kv. */
enum opt_type { OPT_STR, OPT_URL, OPT_SHA256, OPT_BOOL, OPT_INT, OPT_PORT };

struct opt_spec {
	const char *key;
	enum opt_type type;
	int required;
	long min, max;
};

static int is_hex64(const char *s)
{
	if (strlen(s) != 64)
		return 0;
	for (size_t i = 0; i < 64; i++) {
		char ch = s[i];
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
			return 0;
	}
	return 1;
}

static int is_http(const char *url)
{
	return strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0;
}

static void load_opts(struct vctx *c, const struct farm_ynode *map, const char *where,
		      const struct opt_spec *spec, struct farm_kv **out, size_t *n_out)
{
	char what[WHAT_MAX], qv[QUOTE_MAX];
	struct farm_kv *kv = NULL;
	size_t n = 0;
	for (size_t s = 0; spec[s].key; s++)
		if (spec[s].required)
			farm_yrequire(c->doc, map, spec[s].key, where, c->d);
	if (!map->n)
		return;
	kv = calloc(map->n, sizeof *kv);
	if (!kv) {
		c->oom = 1;
		return;
	}
	for (size_t i = 0; i < map->n; i++) {
		const struct farm_ynode *k = map->keys[i], *v = map->items[i];
		const struct opt_spec *sp = NULL;
		for (size_t s = 0; spec[s].key && !sp; s++)
			if (k->len == strlen(spec[s].key) && strcmp(k->str, spec[s].key) == 0)
				sp = &spec[s];
		if (!sp || farm_yscalar_is_null(v))
			continue; /* unknown keys are reported by farm_ycheck_keys */
		join(what, sizeof what, where, sp->key);
		char *str = NULL;
		long l = 0;
		int b = 0;
		switch (sp->type) {
		case OPT_STR:
		case OPT_URL:
		case OPT_SHA256:
		case OPT_PORT:
			if (get_str(c, v, what, TEXT_MAX, &str) || !str)
				break;
			if (!*str) {
				problem(c, v, "leave the key out instead", "%s must not be empty", what);
			} else if (sp->type == OPT_URL && !is_http(str) && strncmp(str, "file://", 7) != 0) {
				problem(c, v, "fetch from https://..., http://... or file:///path",
					"%s must be an https://, http:// or file:// URL, got %s", what,
					quote(str, qv, sizeof qv));
			} else if (sp->type == OPT_SHA256 && !is_hex64(str)) {
				problem(c, v, "use the 64 hex digits printed by sha256sum",
					"%s must be 64 hexadecimal digits, got %s", what,
					quote(str, qv, sizeof qv));
			} else if (sp->type == OPT_PORT &&
				   check_enum(c, v, what, str, ports, "port", NULL)) {
				/* reported */
			} else {
				if (sp->type == OPT_SHA256)
					for (char *p = str; *p; p++)
						if (*p >= 'A' && *p <= 'F')
							*p = (char)(*p - 'A' + 'a');
				kv_add(c, kv, &n, sp->key, str, k);
				str = NULL;
			}
			free(str);
			break;
		case OPT_BOOL:
			if (farm_yget_bool(c->doc, v, what, &b, c->d) == 0)
				kv_add(c, kv, &n, sp->key, strdup(b ? "true" : "false"), k);
			break;
		case OPT_INT:
			if (farm_yget_long(c->doc, v, what, sp->min, sp->max, &l, c->d) == 0)
				kv_add(c, kv, &n, sp->key, dup_long(l), k);
			break;
		}
	}
	*out = kv;
	*n_out = n;
}

/* ------------------------------------------------------------- serial */

/* "/dev/...", "tcp://HOST:PORT" or "unix:PATH"; why says what is wrong. */
static int serial_path_ok(const char *p, char *why, size_t sz)
{
	why[0] = '\0';
	if (p[0] == '/')
		return p[1] != '\0';
	if (strncmp(p, "unix:", 5) == 0) {
		if (p[5])
			return 1;
		snprintf(why, sz, "unix: needs a socket path, e.g. unix:/run/mpfarm/board.sock");
		return 0;
	}
	if (strncmp(p, "tcp://", 6) != 0) {
		snprintf(why, sz, "write a device path such as /dev/serial/by-id/usb-..., "
				  "tcp://HOST:PORT or unix:PATH");
		return 0;
	}
	const char *h = p + 6, *port;
	size_t hostlen;
	if (*h == '[') {
		const char *close = strchr(h, ']');
		if (!close || close[1] != ':') {
			snprintf(why, sz, "write an IPv6 address as tcp://[ADDR]:PORT");
			return 0;
		}
		hostlen = (size_t)(close - h - 1);
		port = close + 2;
	} else {
		const char *colon = strrchr(h, ':');
		if (!colon) {
			snprintf(why, sz, "tcp:// needs a port: tcp://HOST:PORT");
			return 0;
		}
		hostlen = (size_t)(colon - h);
		if (memchr(h, ':', hostlen)) {
			snprintf(why, sz, "write an IPv6 address as tcp://[ADDR]:PORT");
			return 0;
		}
		port = colon + 1;
	}
	if (hostlen == 0 || memchr(h, '/', hostlen)) {
		snprintf(why, sz, "tcp:// needs a host name or address: tcp://HOST:PORT");
		return 0;
	}
	long v = 0;
	size_t i = 0;
	for (; port[i] >= '0' && port[i] <= '9' && i < 6; i++)
		v = v * 10 + (port[i] - '0');
	if (i == 0 || port[i] != '\0' || v < 1 || v > 65535) {
		snprintf(why, sz, "the TCP port must be a number from 1 to 65535");
		return 0;
	}
	return 1;
}

static void load_serial_path(struct vctx *c, const struct farm_ynode *n, const char *what,
			     char **out)
{
	char why[160], qv[QUOTE_MAX];
	char *s = NULL;
	if (get_str(c, n, what, TEXT_MAX, &s) || !s)
		return;
	if (!serial_path_ok(s, why, sizeof why)) {
		problem(c, n, why,
			"%s must be a device path (/dev/...), tcp://HOST:PORT or unix:PATH, got %s",
			what, quote(s, qv, sizeof qv));
		free(s);
		return;
	}
	*out = s;
}

/* "1-1.2": bus, '-', then port numbers joined by dots. */
static int location_ok(const char *p)
{
	int digits = 0, dash = 0;
	for (; *p; p++) {
		if (*p >= '0' && *p <= '9') {
			digits++;
		} else if ((*p == '-' && !dash) || (*p == '.' && dash)) {
			if (!digits)
				return 0;
			dash |= *p == '-';
			digits = 0;
		} else {
			return 0;
		}
	}
	return dash && digits;
}

static void load_serial(struct vctx *c, const struct farm_ynode *n, const char *where,
			struct farm_serial_cfg *s)
{
	char what[WHAT_MAX];
	long baud = s->baud;
	join(what, sizeof what, where, "serial");
	if (n->kind == FARM_YSCALAR) {
		load_serial_path(c, n, what, &s->path);
		return;
	}
	if (n->kind != FARM_YMAP) {
		problem(c, n, "write serial: /dev/... or serial: {path: /dev/..., baud: 115200}",
			"%s must be a device path or a mapping, got a list", what);
		return;
	}
	farm_ycheck_keys(c->doc, n, serial_keys, what, c->d);
	char w[WHAT_MAX];
	/* A USB board may be named by its USB serial number or socket (location)
	 * instead of a path: it is looked up when mpfarm opens it, so it is found
	 * again after it re-enumerates under another /dev name. */
	opt_str(c, n, "usb_serial", what, TEXT_MAX, &s->usb_serial);
	if (opt_str(c, n, "location", what, NAME_MAX_LEN, &s->location) == 0 && s->location &&
	    !location_ok(s->location))
		problem(c, farm_ymap_get(n, "location"),
			"write the USB bus-port path as the kernel names it, e.g. 1-1.2 (mpfarm detect "
			"prints it)",
			"%s is not a USB location: \"%s\"", join(w, sizeof w, what, "location"),
			s->location);
	if (farm_ymap_get(n, "path") || (!s->usb_serial && !s->location)) {
		if (farm_yrequire(c->doc, n, "path", what, c->d) == 0) {
			char pw[WHAT_MAX];
			load_serial_path(c, farm_ymap_get(n, "path"), join(pw, sizeof pw, what, "path"),
					 &s->path);
		}
	}
	if (farm_yget_long(c->doc, farm_ymap_get(n, "baud"), join(w, sizeof w, what, "baud"), 50,
			   4000000, &baud, c->d) == 0)
		s->baud = (int)baud;
	farm_yget_bool(c->doc, farm_ymap_get(n, "dtr"), join(w, sizeof w, what, "dtr"), &s->dtr,
		       c->d);
	farm_yget_bool(c->doc, farm_ymap_get(n, "rts"), join(w, sizeof w, what, "rts"), &s->rts,
		       c->d);
}

/* ------------------------------------------------------------- board parts */

static void load_emulator(struct vctx *c, const struct farm_ynode *n, const char *where,
			  struct farm_emulator_cfg *em)
{
	char what[WHAT_MAX], w[WHAT_MAX];
	join(what, sizeof what, where, "emulator");
	em->present = 1; /* even if malformed: do not also ask for serial: */
	em->line = n->line;
	em->col = n->col;
	if (farm_ycheck_kind(c->doc, n, FARM_YMAP, what, c->d))
		return;
	farm_ycheck_keys(c->doc, n, emulator_keys, what, c->d);
	if (req_str(c, n, "kind", what, NAME_MAX_LEN, &em->kind) == 0 && em->kind &&
	    check_enum(c, farm_ymap_get(n, "kind"), join(w, sizeof w, what, "kind"), em->kind,
		       emulator_kinds, "emulator kind", NULL)) {
		free(em->kind);
		em->kind = NULL;
	}
	if (req_str(c, n, "machine", what, NAME_MAX_LEN, &em->machine) == 0 && em->machine &&
	    check_enum(c, farm_ymap_get(n, "machine"), join(w, sizeof w, what, "machine"),
		       em->machine, emulator_machines, "emulated machine",
		       "mpfarm emulates only the BBC micro:bit (machine: microbit) for now")) {
		free(em->machine);
		em->machine = NULL;
	}
	farm_yget_bool(c->doc, farm_ymap_get(n, "blank"), join(w, sizeof w, what, "blank"),
		       &em->blank, c->d);
	opt_str(c, n, "firmware", what, TEXT_MAX, &em->firmware);
	if (em->blank && em->firmware)
		problem(c, farm_ymap_get(n, "firmware"),
			"a blank board has nothing in its flash; drop firmware: or blank:",
			"%s has both blank: true and firmware:", what);
	if (!em->blank && !em->firmware && !(em->firmware = strdup(FARM_MICROBIT_FIRMWARE)))
		c->oom = 1;
}

static void load_flash(struct vctx *c, const struct farm_ynode *n, const char *where,
		       struct farm_flash_cfg *f)
{
	char what[WHAT_MAX], w[WHAT_MAX];
	join(what, sizeof what, where, "flash");
	if (farm_ycheck_kind(c->doc, n, FARM_YMAP, what, c->d))
		return;
	f->line = n->line;
	f->col = n->col;
	if (opt_str(c, n, "method", what, NAME_MAX_LEN, &f->method) == 0 && f->method &&
	    check_enum(c, farm_ymap_get(n, "method"), join(w, sizeof w, what, "method"), f->method,
		       flash_methods, "flash method", NULL)) {
		free(f->method);
		f->method = NULL;
	}
	if (!n->n)
		return;
	f->opts = calloc(n->n, sizeof *f->opts);
	if (!f->opts) {
		c->oom = 1;
		return;
	}
	for (size_t i = 0; i < n->n; i++) {
		const struct farm_ynode *k = n->keys[i], *v = n->items[i];
		char *s = NULL;
		if (strcmp(k->str, "method") == 0 && k->len == 6)
			continue;
		join(w, sizeof w, what, k->str);
		if (v->kind != FARM_YSCALAR) {
			problem(c, v, "flash options are single values (strings or numbers)",
				"%s must be a single value, got %s", w,
				v->kind == FARM_YMAP ? "a mapping" : "a list");
			continue;
		}
		if (farm_yscalar_is_null(v))
			s = strdup("");
		else if (get_str(c, v, w, TEXT_MAX, &s))
			continue;
		kv_add(c, f->opts, &f->n_opts, k->str, s, k);
	}
}

static void load_repl(struct vctx *c, const struct farm_ynode *n, const char *where,
		      struct farm_repl_cfg *r)
{
	char what[WHAT_MAX], w[WHAT_MAX];
	long v;
	join(what, sizeof what, where, "repl");
	if (farm_ycheck_kind(c->doc, n, FARM_YMAP, what, c->d))
		return;
	farm_ycheck_keys(c->doc, n, repl_keys, what, c->d);
	v = r->chunk;
	if (!farm_yget_long(c->doc, farm_ymap_get(n, "chunk"), join(w, sizeof w, what, "chunk"), 1,
			    4096, &v, c->d))
		r->chunk = (unsigned)v;
	v = r->delay_ms;
	if (!farm_yget_long(c->doc, farm_ymap_get(n, "delay_ms"),
			    join(w, sizeof w, what, "delay_ms"), 0, 1000, &v, c->d))
		r->delay_ms = (unsigned)v;
	v = r->window;
	if (!farm_yget_long(c->doc, farm_ymap_get(n, "window"), join(w, sizeof w, what, "window"),
			    1, 4096, &v, c->d))
		r->window = (unsigned)v;
	farm_yget_ms(c->doc, farm_ymap_get(n, "timeout"), join(w, sizeof w, what, "timeout"), 100,
		     3600000, &r->test_timeout_ms, c->d);
	farm_yget_ms(c->doc, farm_ymap_get(n, "boot_timeout"),
		     join(w, sizeof w, what, "boot_timeout"), 100, 3600000, &r->boot_timeout_ms,
		     c->d);
	v = r->retries;
	if (!farm_yget_long(c->doc, farm_ymap_get(n, "retries"), join(w, sizeof w, what, "retries"),
			    0, 10, &v, c->d))
		r->retries = (unsigned)v;
	char *up = NULL;
	if (opt_str(c, n, "upload", what, NAME_MAX_LEN, &up) == 0 && up) {
		if (check_enum(c, farm_ymap_get(n, "upload"), join(w, sizeof w, what, "upload"), up,
			       upload_modes, "upload mode", NULL) == 0 &&
		    strcmp(up, "auto") != 0) {
			r->upload = up; /* "auto" is stored as NULL */
			up = NULL;
		}
	}
	free(up);
}

static void check_probe_ref(struct vctx *c, const struct farm_ynode *n, const char *what,
			    const char *ref, const struct farm_inventory *inv)
{
	char qv[QUOTE_MAX], hint[600], list[400];
	const char **ids = NULL;
	size_t k = 0;
	if (farm_inventory_probe(inv, ref))
		return;
	if (!inv->n_probes || !may_suggest_id(c)) {
		problem(c, n, "define it in the top-level probes: list",
			"%s: probe %s is not defined in probes:", what, quote(ref, qv, sizeof qv));
		return;
	}
	ids = calloc(inv->n_probes + 1, sizeof *ids);
	if (!ids) {
		c->oom = 1;
		return;
	}
	for (size_t i = 0; i < inv->n_probes; i++)
		if (inv->probes[i].id)
			ids[k++] = inv->probes[i].id;
	const char *s = farm_did_you_mean(ref, ids);
	list_words(ids, list, sizeof list);
	if (s)
		snprintf(hint, sizeof hint, "did you mean \"%s\"?", s);
	else
		snprintf(hint, sizeof hint, "defined probes: %s", list);
	problem(c, n, hint, "%s: probe %s is not defined in probes:", what,
		quote(ref, qv, sizeof qv));
	free(ids);
}

static void load_timeouts_node(struct vctx *c, const struct farm_ynode *n, const char *where,
			       struct farm_timeouts *t);

static void load_board(struct vctx *c, const struct farm_ynode *n, size_t idx,
		       struct farm_board *b, const struct farm_inventory *inv)
{
	char where[WHAT_MAX], w[WHAT_MAX];
	const struct farm_ynode *x;
	snprintf(where, sizeof where, "boards[%zu]", idx);
	b->serial.baud = 115200;
	b->serial.dtr = -1;
	b->serial.rts = -1;
	farm_repl_cfg_default(&b->repl);
	b->line = n->line;
	b->col = n->col;
	if (farm_ycheck_kind(c->doc, n, FARM_YMAP, where, c->d))
		return;
	farm_ycheck_keys(c->doc, n, board_keys, where, c->d);
	/* The inventory's timeouts, then the board's own (repl: timeout/boot_timeout win over both). */
	b->timeouts = inv->timeouts;
	load_timeouts_node(c, farm_ymap_get(n, "timeouts"), join(w, sizeof w, where, "timeouts"),
			   &b->timeouts);
	if (b->timeouts.test_ms)
		b->repl.test_timeout_ms = b->timeouts.test_ms;
	if (b->timeouts.boot_ms)
		b->repl.boot_timeout_ms = b->timeouts.boot_ms;

	get_id(c, n, "id", where, 1, &b->id);
	if (req_str(c, n, "port", where, NAME_MAX_LEN, &b->port) == 0 && b->port &&
	    check_enum(c, farm_ymap_get(n, "port"), join(w, sizeof w, where, "port"), b->port, ports,
		       "port", NULL)) {
		free(b->port);
		b->port = NULL;
	}
	req_str(c, n, "board", where, NAME_MAX_LEN, &b->board);
	opt_str(c, n, "variant", where, NAME_MAX_LEN, &b->variant);
	opt_str(c, n, "mcu", where, NAME_MAX_LEN, &b->mcu);

	if ((x = present(n, "emulator")))
		load_emulator(c, x, where, &b->emulator);
	x = present(n, "serial");
	if (x && b->emulator.present)
		problem(c, x, "an emulated board's console is the emulator's; remove serial:",
			"%s has both serial: and emulator:", where);
	if (x)
		load_serial(c, x, where, &b->serial);
	else if (!b->emulator.present)
		problem(c, n, "add serial: /dev/serial/by-id/... (or tcp://HOST:PORT, unix:PATH), "
			      "or emulator: for an emulated board",
			"%s needs serial: (or emulator:)", where);
	if (b->emulator.present && b->emulator.machine && b->port && strcmp(b->port, "nrf") != 0)
		problem(c, farm_ymap_get(n, "port"), "the micro:bit runs MicroPython's nrf port",
			"%s: port must be nrf for the microbit emulator, got \"%s\"", where, b->port);

	get_idlist(c, n, "tags", where, LIST_MAX, &b->tags, &b->n_tags);
	if (get_id(c, n, "probe", where, 0, &b->probe) == 0 && b->probe)
		check_probe_ref(c, farm_ymap_get(n, "probe"), join(w, sizeof w, where, "probe"),
				b->probe, inv);
	get_idlist(c, n, "resources", where, LIST_MAX, &b->resources, &b->n_resources);
	if ((x = present(n, "flash")))
		load_flash(c, x, where, &b->flash);
	if ((x = present(n, "repl")))
		load_repl(c, x, where, &b->repl);
}

/* ------------------------------------------------------------- sections */

static const struct farm_ynode *section_list(struct vctx *c, const struct farm_ynode *root,
					     const char *key, size_t max)
{
	const struct farm_ynode *n = present(root, key);
	if (!n || farm_ycheck_kind(c->doc, n, FARM_YSEQ, key, c->d))
		return NULL;
	if (n->n > max) {
		problem(c, n, "split the farm into several inventories",
			"%s has %zu entries; mpfarm accepts at most %zu", key, n->n, max);
		return NULL;
	}
	return n;
}

/* Report the second and later uses of an id, at the id's value. */
static void check_unique(struct vctx *c, const struct farm_ynode *list, const char *noun,
			 const char *(*id_of)(const struct farm_inventory *, size_t),
			 const struct farm_inventory *inv, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		const char *id = id_of(inv, i);
		if (!id)
			continue;
		for (size_t j = 0; j < i; j++) {
			const char *other = id_of(inv, j);
			if (!other || strcmp(id, other) != 0)
				continue;
			const struct farm_ynode *first = farm_ymap_get(list->items[j], "id");
			char qv[QUOTE_MAX], hint[160];
			snprintf(hint, sizeof hint, "%s ids must be unique; rename one of them", noun);
			problem(c, farm_ymap_get(list->items[i], "id"), hint,
				"duplicate %s id %s (first defined at line %u)", noun,
				quote(id, qv, sizeof qv), first ? first->line : 0);
			break;
		}
	}
}

static const char *board_id_at(const struct farm_inventory *inv, size_t i)
{
	return inv->boards[i].id;
}

static const char *probe_id_at(const struct farm_inventory *inv, size_t i)
{
	return inv->probes[i].id;
}

static void load_probe(struct vctx *c, const struct farm_ynode *n, size_t idx,
		       struct farm_probe *p)
{
	static const struct opt_spec opts[] = {
		{ "interface", OPT_STR, 0, 0, 0 },
		{ "target", OPT_STR, 0, 0, 0 },
		{ "config", OPT_STR, 0, 0, 0 },
		{ "speed_khz", OPT_INT, 0, 1, 100000 },
		{ "gdb_port", OPT_INT, 0, 1, 65535 },
		{ "server", OPT_STR, 0, 0, 0 },
		{ NULL, OPT_STR, 0, 0, 0 },
	};
	char where[WHAT_MAX], w[WHAT_MAX];
	snprintf(where, sizeof where, "probes[%zu]", idx);
	p->line = n->line;
	p->col = n->col;
	if (farm_ycheck_kind(c->doc, n, FARM_YMAP, where, c->d))
		return;
	farm_ycheck_keys(c->doc, n, probe_keys, where, c->d);
	get_id(c, n, "id", where, 1, &p->id);
	if (req_str(c, n, "kind", where, NAME_MAX_LEN, &p->kind) == 0 && p->kind &&
	    check_enum(c, farm_ymap_get(n, "kind"), join(w, sizeof w, where, "kind"), p->kind,
		       probe_kinds, "probe kind", NULL)) {
		free(p->kind);
		p->kind = NULL;
	}
	if (opt_str(c, n, "connection", where, TEXT_MAX, &p->connection) == 0 && p->connection &&
	    strncmp(p->connection, "tcp://", 6) == 0) {
		char why[160], qv[QUOTE_MAX];
		if (!serial_path_ok(p->connection, why, sizeof why)) {
			problem(c, farm_ymap_get(n, "connection"), why, "%s: bad connection %s",
				join(w, sizeof w, where, "connection"),
				quote(p->connection, qv, sizeof qv));
			free(p->connection);
			p->connection = NULL;
		}
	}
	opt_str(c, n, "serial_number", where, NAME_MAX_LEN, &p->serial_number);
	load_opts(c, n, where, opts, &p->opts, &p->n_opts);
}

static void load_probes(struct vctx *c, const struct farm_ynode *root,
			struct farm_inventory *inv)
{
	const struct farm_ynode *list = section_list(c, root, "probes", FARM_INVENTORY_MAX_PROBES);
	if (!list || !list->n)
		return;
	inv->probes = calloc(list->n, sizeof *inv->probes);
	if (!inv->probes) {
		c->oom = 1;
		return;
	}
	inv->n_probes = list->n;
	for (size_t i = 0; i < list->n; i++)
		load_probe(c, list->items[i], i, &inv->probes[i]);
	check_unique(c, list, "probe", probe_id_at, inv, inv->n_probes);
}

/* A timeouts: mapping (top level, or a board's own) into t. */
static void load_timeouts_node(struct vctx *c, const struct farm_ynode *n, const char *where,
			       struct farm_timeouts *t)
{
	const struct {
		const char *key;
		unsigned min_ms, max_ms;
		unsigned *dst;
	} spec[] = {
		{ "boot", 100, 3600000u, &t->boot_ms },
		{ "test", 100, 3600000u, &t->test_ms },
		{ "flash", 1000, 7200000u, &t->flash_ms },
		{ "build", 1000, 86400000u, &t->build_ms },
		{ "board", 1000, 86400000u, &t->board_ms },
	};
	char w[WHAT_MAX];
	if (!n || farm_ycheck_kind(c->doc, n, FARM_YMAP, where, c->d))
		return;
	farm_ycheck_keys(c->doc, n, timeout_keys, where, c->d);
	for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++)
		farm_yget_ms(c->doc, farm_ymap_get(n, spec[i].key), join(w, sizeof w, where, spec[i].key),
			     spec[i].min_ms, spec[i].max_ms, spec[i].dst, c->d);
}

static void load_timeouts(struct vctx *c, const struct farm_ynode *root,
			  struct farm_inventory *inv)
{
	load_timeouts_node(c, present(root, "timeouts"), "timeouts", &inv->timeouts);
}

static void load_boards(struct vctx *c, const struct farm_ynode *root,
			struct farm_inventory *inv)
{
	if (farm_yrequire(c->doc, root, "boards", "the inventory", c->d))
		return;
	const struct farm_ynode *list = section_list(c, root, "boards", FARM_INVENTORY_MAX_BOARDS);
	if (!list)
		return;
	if (!list->n) {
		problem(c, list, "list at least one board: boards: [{id: ..., port: ..., ...}]",
			"boards must list at least one board");
		return;
	}
	inv->boards = calloc(list->n, sizeof *inv->boards);
	if (!inv->boards) {
		c->oom = 1;
		return;
	}
	inv->n_boards = list->n;
	for (size_t i = 0; i < list->n; i++)
		load_board(c, list->items[i], i, &inv->boards[i], inv);
	check_unique(c, list, "board", board_id_at, inv, inv->n_boards);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted board ids (NULL-terminated) for lookups and did-you-mean. */
static const char **board_ids(struct vctx *c, const struct farm_inventory *inv, size_t *n)
{
	const char **ids = calloc(inv->n_boards + 1, sizeof *ids);
	*n = 0;
	if (!ids) {
		c->oom = 1;
		return NULL;
	}
	for (size_t i = 0; i < inv->n_boards; i++)
		if (inv->boards[i].id)
			ids[(*n)++] = inv->boards[i].id;
	qsort(ids, *n, sizeof *ids, cmp_str);
	return ids;
}

/* An address (0x08000000, at most 0xffffffff) under map[key]; 0 when read. */
static int get_addr(struct vctx *c, const struct farm_ynode *map, const char *key,
		    const char *where, unsigned long *out)
{
	char *as = NULL, qv[QUOTE_MAX];
	int rc = -1;
	if (opt_str(c, map, key, where, NAME_MAX_LEN, &as) == 0 && as) {
		char *end = NULL;
		errno = 0;
		unsigned long long v = strtoull(as, &end, 0);
		if (errno || end == as || *end || v > 0xffffffffull || as[0] == '-') {
			problem(c, farm_ymap_get(map, key),
				"write the address as 0x08000000 (at most 0xffffffff)",
				"%s.%s must be an address, got %s", where, key, quote(as, qv, sizeof qv));
		} else {
			*out = (unsigned long)v;
			rc = 0;
		}
	}
	free(as);
	return rc;
}

/* files: [{path: bootloader.bin, offset: 0x1000}, ...]: raw binaries, one
 * image. */
static void load_parts(struct vctx *c, const struct farm_ynode *n, const struct farm_ynode *s,
		       const char *where, struct farm_fw_target *t)
{
	char wi[WHAT_MAX];
	if (present(n, "format") || present(n, "base"))
		problem(c, present(n, "format") ? present(n, "format") : present(n, "base"),
			"files: are raw binaries placed by their offset:; drop format:/base:",
			"%s: format: and base: do not apply to files:", where);
	if (farm_ycheck_kind(c->doc, s, FARM_YSEQ, where, c->d))
		return;
	if (!s->n || s->n > FARM_INVENTORY_MAX_PARTS) {
		problem(c, s, "list 1 to 16 {path: FILE, offset: 0x...} entries",
			"%s has %zu entries", where, s->n);
		return;
	}
	if (!(t->parts = calloc(s->n, sizeof *t->parts))) {
		c->oom = 1;
		return;
	}
	for (size_t i = 0; i < s->n; i++) {
		const struct farm_ynode *item = s->items[i];
		if (snprintf(wi, sizeof wi, "%s[%zu]", where, i) >= (int)sizeof wi)
			wi[sizeof wi - 1] = 0; /* a long location only shortens the message */
		if (farm_ycheck_kind(c->doc, item, FARM_YMAP, wi, c->d))
			continue;
		farm_ycheck_keys(c->doc, item, part_keys, wi, c->d);
		struct farm_fw_part *p = &t->parts[t->n_parts];
		if (req_str(c, item, "path", wi, TEXT_MAX, &p->path) || !p->path)
			continue;
		if (farm_yrequire(c->doc, item, "offset", wi, c->d) ||
		    get_addr(c, item, "offset", wi, &p->offset)) {
			free(p->path);
			p->path = NULL;
			continue;
		}
		p->line = item->line;
		p->col = item->col;
		t->n_parts++;
	}
}

/* A relative path inside the source tree: no "..", not absolute, printable. */
static int tree_path_ok(const char *p)
{
	if (!*p || *p == '/')
		return 0;
	for (const char *q = p; *q; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			return 0;
	for (const char *q = p; q; q = strchr(q, '/')) {
		if (*q == '/')
			q++;
		if (!strncmp(q, "..", 2) && (q[2] == '/' || !q[2]))
			return 0;
	}
	return 1;
}

/* build: command: (argv list, or one string split at blanks: no shell) and
 * submodules: (paths in the tree); artifact: must stay inside the tree. */
static void load_build_lists(struct vctx *c, const struct farm_ynode *s, const char *where,
			     struct farm_fw_target *t)
{
	char what[WHAT_MAX], qv[QUOTE_MAX];
	const struct farm_ynode *cn = present(s, "command"), *sn = present(s, "submodules");
	if (cn) {
		join(what, sizeof what, where, "command");
		char **v = NULL;
		size_t n = 0;
		int rc = farm_yget_strlist(c->doc, cn, what, FARM_INVENTORY_MAX_ARGS, &v, &n, c->d);
		if (rc == FARM_ENOMEM)
			c->oom = 1;
		if (rc == 0 && cn->kind == FARM_YSCALAR && n == 1) {
			/* one string: words split at blanks, never given to a shell */
			char *line = v[0];
			free(v);
			v = NULL;
			n = 0;
			for (char *tok = line; *tok;) {
				while (*tok == ' ' || *tok == '\t')
					tok++;
				if (!*tok)
					break;
				size_t len = strcspn(tok, " \t");
				char **nv = realloc(v, (n + 1) * sizeof *v);
				char *word = nv ? strndup(tok, len) : NULL;
				if (nv)
					v = nv;
				if (!word || n == FARM_INVENTORY_MAX_ARGS) {
					c->oom = !word;
					if (word)
						problem(c, cn, "use fewer arguments", "%s has more than %d words",
							what, FARM_INVENTORY_MAX_ARGS);
					free(word);
					break;
				}
				v[n++] = word;
				tok += len;
			}
			free(line);
		}
		if (rc == 0 && n == 0)
			problem(c, cn, "e.g. command: [make, -C, ports/rp2, BOARD=RPI_PICO]",
				"%s is empty", what);
		t->command = v;
		t->n_command = n;
	}
	if (sn) {
		join(what, sizeof what, where, "submodules");
		int rc = farm_yget_strlist(c->doc, sn, what, FARM_INVENTORY_MAX_ARGS, &t->submodules,
					   &t->n_submodules, c->d);
		if (rc == FARM_ENOMEM)
			c->oom = 1;
		for (size_t i = 0; rc == 0 && i < t->n_submodules; i++)
			if (!tree_path_ok(t->submodules[i]))
				problem(c, list_item(sn, i), "name it as in .gitmodules, e.g. lib/pico-sdk",
					"%s: %s is not a path inside the source tree", what,
					quote(t->submodules[i], qv, sizeof qv));
		t->has_submodules = rc == 0;
	}
	const char *art = farm_kv_get(t->opts, t->n_opts, "artifact");
	if (art && !tree_path_ok(art))
		problem(c, present(s, "artifact"),
			"give a path relative to the port directory, e.g. build-RPI_PICO/firmware.uf2",
			"%s.artifact: %s is not a path inside the source tree", where,
			quote(art, qv, sizeof qv));
}

static void load_target(struct vctx *c, const struct farm_ynode *n, size_t idx,
			struct farm_fw_target *t, const char **ids, size_t n_ids)
{
	static const struct opt_spec fetch_spec[] = {
		{ "url", OPT_URL, 1, 0, 0 },
		{ "sha256", OPT_SHA256, 0, 0, 0 },
		{ "sha256_waived", OPT_BOOL, 0, 0, 0 },
		{ "timeout", OPT_INT, 0, 1, 3600 },
		{ "retries", OPT_INT, 0, 0, 10 },
		{ "max_size", OPT_INT, 0, 1, 1L << 30 },
		{ "version", OPT_STR, 0, 0, 0 },
		{ NULL, OPT_STR, 0, 0, 0 },
	};
	static const struct opt_spec build_spec[] = {
		{ "repo", OPT_STR, 1, 0, 0 },
		{ "ref", OPT_STR, 1, 0, 0 },
		{ "port", OPT_PORT, 0, 0, 0 },
		{ "board", OPT_STR, 0, 0, 0 },
		{ "variant", OPT_STR, 0, 0, 0 },
		{ "artifact", OPT_STR, 0, 0, 0 },
		{ NULL, OPT_STR, 0, 0, 0 },
	};
	static const char *const sources[] = { "file", "fetch", "build", "files", NULL };
	char where[WHAT_MAX], w[WHAT_MAX], qv[QUOTE_MAX];
	snprintf(where, sizeof where, "firmware[%zu]", idx);
	t->line = n->line;
	t->col = n->col;
	if (farm_ycheck_kind(c->doc, n, FARM_YMAP, where, c->d))
		return;
	farm_ycheck_keys(c->doc, n, target_keys, where, c->d);

	/* Which boards: either boards: ids or a match: selector. */
	const struct farm_ynode *bn = present(n, "boards"), *mn = present(n, "match");
	if (bn && mn)
		problem(c, mn, "give boards: (a list of board ids) or match: (port/board/variant)",
			"%s has both boards: and match:; use one", where);
	else if (!bn && !mn)
		problem(c, n, "add boards: [board-id, ...] or match: {port: ..., board: ...}",
			"%s needs boards: or match:", where);
	if (bn && get_idlist(c, n, "boards", where, FARM_INVENTORY_MAX_BOARDS, &t->boards,
			     &t->n_boards) == 0) {
		for (size_t i = 0; i < t->n_boards; i++) {
			const char *id = t->boards[i];
			if (bsearch(&id, ids, n_ids, sizeof *ids, cmp_str))
				continue;
			const char *s = may_suggest_id(c) ? farm_did_you_mean(id, ids) : NULL;
			char hint[160];
			if (s)
				snprintf(hint, sizeof hint, "did you mean \"%s\"?", s);
			else
				snprintf(hint, sizeof hint, "list ids from the boards: section");
			problem(c, list_item(bn, i), hint, "%s.boards: no board has id %s", where,
				quote(id, qv, sizeof qv));
		}
	}
	if (mn && !farm_ycheck_kind(c->doc, mn, FARM_YMAP, join(w, sizeof w, where, "match"),
				    c->d)) {
		farm_ycheck_keys(c->doc, mn, match_keys, w, c->d);
		if (!present(mn, "port") && !present(mn, "board") && !present(mn, "variant"))
			problem(c, mn, "e.g. match: {port: rp2, board: RPI_PICO}",
				"%s must name a port, board or variant", w);
		char wp[WHAT_MAX];
		if (opt_str(c, mn, "port", w, NAME_MAX_LEN, &t->match_port) == 0 && t->match_port &&
		    check_enum(c, farm_ymap_get(mn, "port"), join(wp, sizeof wp, w, "port"),
			       t->match_port, ports, "port", NULL)) {
			free(t->match_port);
			t->match_port = NULL;
		}
		opt_str(c, mn, "board", w, NAME_MAX_LEN, &t->match_board);
		opt_str(c, mn, "variant", w, NAME_MAX_LEN, &t->match_variant);
	}

	/* What the image is: its format, a raw binary's load address, its identity. */
	if (opt_str(c, n, "format", where, NAME_MAX_LEN, &t->format) == 0 && t->format &&
	    check_enum(c, farm_ymap_get(n, "format"), join(w, sizeof w, where, "format"), t->format,
		       image_formats, "image format", NULL)) {
		free(t->format);
		t->format = NULL;
	}
	if (present(n, "base") && get_addr(c, n, "base", where, &t->base) == 0)
		t->has_base = 1;
	opt_str(c, n, "identity", where, 120, &t->identity);

	/* Where the image comes from: exactly one of file:, fetch:, build:. */
	const struct farm_ynode *src[4];
	size_t n_src = 0, first = 4;
	for (size_t i = 0; i < 4; i++) {
		src[i] = present(n, sources[i]);
		if (!src[i])
			continue;
		if (n_src++ == 0) {
			first = i;
			continue;
		}
		problem(c, src[i], "give exactly one of file:, files:, fetch: or build:",
			"%s has both %s: and %s:", where, sources[first], sources[i]);
	}
	if (n_src == 0) {
		problem(c, n,
			"add file: PATH, files: [{path: ..., offset: ...}], fetch: {url: ..., "
			"sha256: ...} or build: {repo: ..., ref: ...}",
			"%s needs one of file:, fetch: or build:", where);
		return;
	}
	const struct farm_ynode *s = src[first];
	join(w, sizeof w, where, sources[first]);
	if (first == 3) {
		t->source = FARM_FW_FILE;
		load_parts(c, n, s, w, t);
		return;
	}
	if (first == 0) {
		t->source = FARM_FW_FILE;
		char *path = NULL;
		if (opt_str(c, n, "file", where, TEXT_MAX, &path) == 0 && path) {
			t->opts = calloc(1, sizeof *t->opts);
			if (!t->opts) {
				free(path);
				c->oom = 1;
				return;
			}
			kv_add(c, t->opts, &t->n_opts, "path", path, s);
		}
		return;
	}
	t->source = first == 1 ? FARM_FW_FETCH : FARM_FW_BUILD;
	if (farm_ycheck_kind(c->doc, s, FARM_YMAP, w, c->d))
		return;
	farm_ycheck_keys(c->doc, s, first == 1 ? fetch_keys : build_keys, w, c->d);
	load_opts(c, s, w, first == 1 ? fetch_spec : build_spec, &t->opts, &t->n_opts);
	if (first == 2) {
		load_build_lists(c, s, w, t);
		return;
	}
	if (first == 1) {
		const char *url = farm_kv_get(t->opts, t->n_opts, "url");
		const char *waived = farm_kv_get(t->opts, t->n_opts, "sha256_waived");
		if (url && is_http(url) && !farm_kv_get(t->opts, t->n_opts, "sha256") &&
		    !(waived && strcmp(waived, "true") == 0))
			problem(c, s,
				"add sha256: <64 hex digits> (sha256sum prints it), or sha256_waived: "
				"true to accept the download unchecked",
				"%s: sha256 is required for an http(s) download", w);
	}
}

static void load_targets(struct vctx *c, const struct farm_ynode *root,
			 struct farm_inventory *inv)
{
	const struct farm_ynode *list =
		section_list(c, root, "firmware", FARM_INVENTORY_MAX_TARGETS);
	size_t n_ids = 0;
	const char **ids = NULL;
	if (!list || !list->n)
		return;
	ids = board_ids(c, inv, &n_ids);
	if (!ids)
		return;
	inv->targets = calloc(list->n, sizeof *inv->targets);
	if (!inv->targets) {
		c->oom = 1;
		goto out;
	}
	inv->n_targets = list->n;
	for (size_t i = 0; i < list->n; i++)
		load_target(c, list->items[i], i, &inv->targets[i], ids, n_ids);
out:
	free(ids);
}

/* Top-level keys starting with "x-" are free for the user (a place to
 * define anchors); everything else must be known. */
static void check_top_keys(struct vctx *c, const struct farm_ynode *root)
{
	size_t nk = sizeof top_keys / sizeof top_keys[0] - 1, k = 0;
	const char **known = calloc(nk + root->n + 1, sizeof *known);
	if (!known) {
		c->oom = 1;
		return;
	}
	for (; k < nk; k++)
		known[k] = top_keys[k];
	for (size_t i = 0; i < root->n; i++)
		if (root->keys[i]->len > 2 && strncmp(root->keys[i]->str, "x-", 2) == 0)
			known[k++] = root->keys[i]->str;
	farm_ycheck_keys(c->doc, root, known, "the inventory", c->d);
	free(known);
}

static void validate(struct vctx *c, struct farm_inventory *inv)
{
	const struct farm_ynode *root = c->doc->root;
	char qv[QUOTE_MAX];
	if (!root) {
		problem(c, NULL, "an inventory needs at least a boards: list; see inventories/README.md",
			"the inventory is empty");
		return;
	}
	if (farm_ycheck_kind(c->doc, root, FARM_YMAP, "the inventory", c->d))
		return;
	check_top_keys(c, root);
	if (opt_str(c, root, "farm", NULL, TEXT_MAX, &inv->name) == 0 && inv->name &&
	    !id_ok(inv->name)) {
		problem(c, farm_ymap_get(root, "farm"), "farm names follow the id rules: " ID_HINT,
			"farm name %s is not valid", quote(inv->name, qv, sizeof qv));
		free(inv->name);
		inv->name = NULL;
	}
	if (!inv->name && !(inv->name = strdup("mpfarm")))
		c->oom = 1;
	load_timeouts(c, root, inv);
	load_probes(c, root, inv);
	load_boards(c, root, inv);
	load_targets(c, root, inv);
}

/* Put the problems found (from index first on) in file order; stable, and
 * the list is short (farm_diags caps it). */
static void sort_diags(struct farm_diags *d, size_t first)
{
	for (size_t i = first + 1; i < d->n; i++) {
		struct farm_diag t = d->v[i];
		size_t j = i;
		while (j > first && (d->v[j - 1].line > t.line ||
				     (d->v[j - 1].line == t.line && d->v[j - 1].col > t.col))) {
			d->v[j] = d->v[j - 1];
			j--;
		}
		d->v[j] = t;
	}
}

/* ------------------------------------------------------------- public */

void farm_repl_cfg_default(struct farm_repl_cfg *c)
{
	memset(c, 0, sizeof *c);
	c->chunk = 32;
	c->delay_ms = 2;
	c->window = 32;
	c->test_timeout_ms = 10000;
	c->boot_timeout_ms = 10000;
	c->retries = 3;
	c->upload = NULL; /* auto */
}

int farm_inventory_load_buf(struct farm_inventory **out, const char *name, const char *buf,
			    size_t len, struct farm_diags *d, struct farm_err *e)
{
	struct farm_diags local = { 0 };
	struct farm_ydoc *doc = NULL;
	struct farm_inventory *inv = NULL;
	int rc;

	*out = NULL;
	if (!name)
		name = "<inventory>";
	if (!d)
		d = &local;
	size_t before = d->n + d->n_dropped;
	rc = farm_ydoc_parse(&doc, name, buf, len, d, e);
	if (rc)
		goto out;
	inv = calloc(1, sizeof *inv);
	if (!inv || !(inv->path = strdup(name))) {
		rc = farm_err_set(e, FARM_ENOMEM, "%s: out of memory", name);
		goto out;
	}
	struct vctx c = { doc, d, 0, 0 };
	validate(&c, inv);
	sort_diags(d, before);
	size_t found = d->n + d->n_dropped - before;
	if (c.oom) {
		rc = farm_err_set(e, FARM_ENOMEM, "%s: out of memory while reading the inventory", name);
		goto out;
	}
	if (found) {
		rc = farm_err_set(e, FARM_EINVAL, "%s: %zu problem%s in the inventory", name, found,
				  found == 1 ? "" : "s");
		goto out;
	}
	*out = inv;
	inv = NULL;
out:
	farm_inventory_free(inv);
	farm_ydoc_free(doc);
	farm_diags_free(&local);
	return rc;
}

int farm_inventory_load(struct farm_inventory **out, const char *path, struct farm_diags *d,
			struct farm_err *e)
{
	struct farm_buf buf = { 0 };
	int rc;
	*out = NULL;
	rc = farm_buf_read_file(&buf, path, FARM_INVENTORY_MAX_BYTES, e);
	if (rc)
		goto out;
	rc = farm_inventory_load_buf(out, path, buf.data, buf.len, d, e);
out:
	farm_buf_free(&buf);
	return rc;
}

static void board_free(struct farm_board *b)
{
	free(b->id);
	free(b->port);
	free(b->board);
	free(b->variant);
	free(b->mcu);
	free(b->serial.path);
	free(b->serial.usb_serial);
	free(b->serial.location);
	farm_strv_free(b->tags, b->n_tags);
	free(b->probe);
	farm_strv_free(b->resources, b->n_resources);
	free(b->flash.method);
	kv_free(b->flash.opts, b->flash.n_opts);
	free(b->emulator.kind);
	free(b->emulator.machine);
	free(b->emulator.firmware);
	free(b->repl.upload);
}

void farm_inventory_free(struct farm_inventory *inv)
{
	if (!inv)
		return;
	for (size_t i = 0; i < inv->n_boards; i++)
		board_free(&inv->boards[i]);
	free(inv->boards);
	for (size_t i = 0; i < inv->n_probes; i++) {
		struct farm_probe *p = &inv->probes[i];
		free(p->id);
		free(p->kind);
		free(p->connection);
		free(p->serial_number);
		kv_free(p->opts, p->n_opts);
	}
	free(inv->probes);
	for (size_t i = 0; i < inv->n_targets; i++) {
		struct farm_fw_target *t = &inv->targets[i];
		farm_strv_free(t->boards, t->n_boards);
		free(t->match_port);
		free(t->match_board);
		free(t->match_variant);
		free(t->format);
		free(t->identity);
		kv_free(t->opts, t->n_opts);
		for (size_t j = 0; j < t->n_parts; j++)
			free(t->parts[j].path);
		free(t->parts);
		farm_strv_free(t->command, t->n_command);
		farm_strv_free(t->submodules, t->n_submodules);
	}
	free(inv->targets);
	free(inv->path);
	free(inv->name);
	free(inv);
}

const struct farm_board *farm_inventory_board(const struct farm_inventory *inv, const char *id)
{
	if (!inv || !id)
		return NULL;
	for (size_t i = 0; i < inv->n_boards; i++)
		if (inv->boards[i].id && strcmp(inv->boards[i].id, id) == 0)
			return &inv->boards[i];
	return NULL;
}

const struct farm_probe *farm_inventory_probe(const struct farm_inventory *inv, const char *id)
{
	if (!inv || !id)
		return NULL;
	for (size_t i = 0; i < inv->n_probes; i++)
		if (inv->probes[i].id && strcmp(inv->probes[i].id, id) == 0)
			return &inv->probes[i];
	return NULL;
}

int farm_board_has_tag(const struct farm_board *b, const char *tag)
{
	if (!b || !tag)
		return 0;
	for (size_t i = 0; i < b->n_tags; i++)
		if (strcmp(b->tags[i], tag) == 0)
			return 1;
	return 0;
}
