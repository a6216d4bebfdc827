/* mpfarm: UF2 drives (mountinfo, INFO_UF2.TXT, the USB device under a
 * block device) and the checks before a copy; see uf2_drive.h and
 * /work/shared/protocols/uf2.md. */
#include "uf2_drive.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "transport.h"

#define MOUNTINFO "/proc/self/mountinfo"
#define ATTR_MAX 256

/* ---- mountinfo ---- */

static int octal(char c)
{
	return c >= '0' && c <= '7';
}

/* Copy field [s, s+n) into out (cap bytes) undoing \ooo escapes. */
static int unescape(char *out, size_t cap, const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '\\' && i + 3 < n && octal(s[i + 1]) && octal(s[i + 2]) &&
		    octal(s[i + 3])) {
			c = (char)(((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) | (s[i + 3] - '0'));
			i += 3;
		}
		if (k + 1 >= cap)
			return -1;
		out[k++] = c;
	}
	out[k] = '\0';
	return 0;
}

int runner_uf2_mountinfo_line(struct runner_uf2_mount *m, const char *line, struct farm_err *e)
{
	enum { MAXF = 64 };
	const char *f[MAXF];
	size_t fl[MAXF], nf = 0;
	memset(m, 0, sizeof *m);
	size_t len = strnlen(line, RUNNER_UF2_LINE_MAX + 1);
	if (len > RUNNER_UF2_LINE_MAX)
		return farm_err_set(e, FARM_ELIMIT, "mountinfo line longer than %d bytes",
				    RUNNER_UF2_LINE_MAX);
	for (size_t i = 0; i < len;) {
		while (i < len && (line[i] == ' ' || line[i] == '\n'))
			i++;
		if (i >= len)
			break;
		if (nf == MAXF)
			return farm_err_set(e, FARM_ELIMIT, "mountinfo line with more than %d fields", MAXF);
		f[nf] = line + i;
		while (i < len && line[i] != ' ' && line[i] != '\n')
			i++;
		fl[nf] = (size_t)(line + i - f[nf]);
		nf++;
	}
	/* id parent maj:min root point options [optional...] - fstype source superopts */
	size_t dash = 0;
	for (size_t i = 6; i < nf && !dash; i++)
		if (fl[i] == 1 && f[i][0] == '-')
			dash = i;
	if (nf < 10 || !dash || dash + 2 >= nf)
		return farm_err_set(e, FARM_EINVAL, "malformed mountinfo line (%zu fields)", nf);
	char num[32];
	if (fl[0] >= sizeof num || fl[2] >= sizeof num)
		return farm_err_set(e, FARM_EINVAL, "malformed mountinfo line (mount id)");
	memcpy(num, f[0], fl[0]);
	num[fl[0]] = '\0';
	char *end;
	long id = strtol(num, &end, 10);
	if (*end || id < 0 || id > INT_MAX)
		return farm_err_set(e, FARM_EINVAL, "malformed mountinfo line: mount id \"%s\"", num);
	m->id = (int)id;
	memcpy(num, f[2], fl[2]);
	num[fl[2]] = '\0';
	unsigned long maj = strtoul(num, &end, 10), min = 0;
	if (*end == ':')
		min = strtoul(end + 1, &end, 10);
	if (*end || maj > 0xfffff || min > 0xfffff)
		return farm_err_set(e, FARM_EINVAL, "malformed mountinfo line: device \"%s\"", num);
	m->major = (unsigned)maj;
	m->minor = (unsigned)min;
	if (unescape(m->point, sizeof m->point, f[4], fl[4]) ||
	    unescape(m->fstype, sizeof m->fstype, f[dash + 1], fl[dash + 1]) ||
	    unescape(m->source, sizeof m->source, f[dash + 2], fl[dash + 2]))
		return farm_err_set(e, FARM_ELIMIT, "mountinfo line: a field is too long");
	return 0;
}

int runner_uf2_mounts(struct runner_uf2_mount **out, size_t *n, const char *path,
		      struct farm_err *e)
{
	*out = NULL;
	*n = 0;
	if (!path)
		path = MOUNTINFO;
	FILE *f = fopen(path, "re");
	if (!f)
		return farm_err_sys(e, FARM_ESYS, errno, "cannot read the mounted volumes from %s", path);
	struct runner_uf2_mount *v = NULL;
	size_t cap = 0, count = 0;
	char *line = NULL;
	size_t lcap = 0;
	ssize_t got;
	int rc = 0;
	while ((got = getline(&line, &lcap, f)) >= 0) {
		if (count == RUNNER_UF2_MOUNTS_MAX) {
			rc = farm_err_set(e, FARM_ELIMIT, "%s lists more than %d mounts", path,
					  RUNNER_UF2_MOUNTS_MAX);
			break;
		}
		struct runner_uf2_mount m;
		struct farm_err skip = { 0 };
		if (runner_uf2_mountinfo_line(&m, line, &skip))
			continue;
		if (count == cap) {
			size_t nc = cap ? cap * 2 : 32;
			struct runner_uf2_mount *nv = realloc(v, nc * sizeof *nv);
			if (!nv) {
				rc = farm_err_set(e, FARM_ENOMEM, "out of memory");
				break;
			}
			v = nv;
			cap = nc;
		}
		v[count++] = m;
	}
	free(line);
	fclose(f);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n = count;
	return 0;
}

/* ---- INFO_UF2.TXT ---- */

static void field(char *out, size_t cap, const char *s, size_t n)
{
	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	size_t k = 0;
	for (size_t i = 0; i < n && k + 1 < cap; i++)
		out[k++] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
	out[k] = '\0';
}

static int starts_ci(const char *s, size_t n, const char *prefix)
{
	size_t p = strlen(prefix);
	return n >= p && !strncasecmp(s, prefix, p);
}

void runner_uf2_info_parse(struct runner_uf2_info *out, const char *text, size_t len)
{
	memset(out, 0, sizeof *out);
	if (len > RUNNER_UF2_INFO_MAX)
		len = RUNNER_UF2_INFO_MAX;
	for (size_t i = 0; i < len;) {
		const char *s = text + i;
		const char *nl = memchr(s, '\n', len - i);
		size_t n = nl ? (size_t)(nl - s) : len - i;
		i += n + 1;
		if (starts_ci(s, n, "UF2 Bootloader") && !out->version[0])
			field(out->version, sizeof out->version, s, n);
		else if (starts_ci(s, n, "Model:") && !out->model[0])
			field(out->model, sizeof out->model, s + 6, n - 6);
		else if (starts_ci(s, n, "Board-ID:") && !out->board_id[0])
			field(out->board_id, sizeof out->board_id, s + 9, n - 9);
	}
}

int runner_uf2_info_read(struct runner_uf2_info *out, const char *dir, struct farm_err *e)
{
	memset(out, 0, sizeof *out);
	DIR *d = opendir(dir);
	if (!d)
		return farm_err_sys(e, FARM_ENOTFOUND, errno, "%s: cannot list", dir);
	char name[256] = "";
	struct dirent *de;
	while ((de = readdir(d)))
		if (!strcasecmp(de->d_name, "INFO_UF2.TXT")) {
			snprintf(name, sizeof name, "%s", de->d_name);
			break;
		}
	closedir(d);
	if (!name[0])
		return farm_err_set(e, FARM_ENOTFOUND, "%s: no INFO_UF2.TXT (not a UF2 drive)", dir);
	char path[RUNNER_UF2_PATH_MAX + 300];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return farm_err_sys(e, FARM_EIO, errno, "%s: cannot open", path);
	char buf[RUNNER_UF2_INFO_MAX];
	size_t have = 0;
	while (have < sizeof buf) {
		ssize_t r = read(fd, buf + have, sizeof buf - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int err = errno;
			close(fd);
			return farm_err_sys(e, FARM_EIO, err, "%s: read failed", path);
		}
		if (r == 0)
			break;
		have += (size_t)r;
	}
	close(fd);
	runner_uf2_info_parse(out, buf, have);
	return 0;
}

/* ---- the USB device under a block device ---- */

static int read_attr(char *out, size_t cap, const char *dir, const char *name)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char buf[ATTR_MAX];
	ssize_t r = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (r < 0)
		return -1;
	const char *nl = memchr(buf, '\n', (size_t)r);
	field(out, cap, buf, nl ? (size_t)(nl - buf) : (size_t)r);
	return 0;
}

int runner_uf2_usb_parent(char *location, size_t loc_len, char *serial, size_t ser_len,
			  const char *sys_root, unsigned major, unsigned minor)
{
	char link[256], dir[PATH_MAX], tmp[64];
	if (loc_len)
		location[0] = '\0';
	if (ser_len)
		serial[0] = '\0';
	if (major == 0)
		return FARM_ENOTFOUND; /* anonymous devices (FUSE, tmpfs) have no hardware */
	snprintf(link, sizeof link, "%s/dev/block/%u:%u", sys_root ? sys_root : "/sys", major, minor);
	if (!realpath(link, dir))
		return FARM_ENOTFOUND;
	for (;;) {
		char *slash = strrchr(dir, '/');
		if (!slash || slash == dir)
			return FARM_ENOTFOUND;
		if (read_attr(tmp, sizeof tmp, dir, "idVendor") == 0 &&
		    read_attr(tmp, sizeof tmp, dir, "busnum") == 0) {
			snprintf(location, loc_len, "%s", slash + 1);
			if (read_attr(serial, ser_len, dir, "serial") != 0 && ser_len)
				serial[0] = '\0';
			return 0;
		}
		*slash = '\0';
	}
}

/* ---- finding the drive ---- */

/* Filesystems a UF2 drive shows up as (kernel FAT, user-space FAT/exFAT,
 * FUSE); other mounts are never opened. */
static int drive_fstype(const char *t)
{
	static const char *const ok[] = { "vfat", "msdos", "exfat", "fuseblk", "fuse", NULL };
	for (size_t i = 0; ok[i]; i++)
		if (!strcmp(t, ok[i]))
			return 1;
	return !strncmp(t, "fuse.", 5);
}

int runner_uf2_list(struct runner_uf2_drive **out, size_t *n, const struct runner_uf2_want *w,
		    struct farm_err *e)
{
	struct runner_uf2_mount *m = NULL;
	size_t nm = 0, count = 0;
	*out = NULL;
	*n = 0;
	int rc = runner_uf2_mounts(&m, &nm, w->mountinfo, e);
	if (rc)
		return rc;
	struct runner_uf2_drive *v = nm ? calloc(nm, sizeof *v) : NULL;
	if (nm && !v) {
		free(m);
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < nm; i++) {
		int asked = w->mount && w->mount[0] && !strcmp(w->mount, m[i].point);
		if (!asked && !drive_fstype(m[i].fstype))
			continue;
		struct runner_uf2_drive *d = &v[count];
		struct farm_err skip = { 0 };
		if (runner_uf2_info_read(&d->info, m[i].point, &skip))
			continue;
		d->m = m[i];
		runner_uf2_usb_parent(d->usb_location, sizeof d->usb_location, d->usb_serial,
				      sizeof d->usb_serial, w->sys_root, m[i].major, m[i].minor);
		count++;
	}
	free(m);
	if (!count) {
		free(v);
		v = NULL;
	}
	*out = v;
	*n = count;
	return 0;
}

static int set(const char *s)
{
	return s && s[0];
}

int runner_uf2_matches(const struct runner_uf2_drive *d, const struct runner_uf2_want *w)
{
	if (set(w->mount) && strcmp(w->mount, d->m.point))
		return 0;
	if (set(w->board_id) && strcmp(w->board_id, d->info.board_id))
		return 0;
	if (set(w->model) && strcmp(w->model, d->info.model))
		return 0;
	if (set(w->usb_location) && strcmp(w->usb_location, d->usb_location))
		return 0;
	if (set(w->usb_serial) && strcmp(w->usb_serial, d->usb_serial))
		return 0;
	return 1;
}

static void describe(char *out, size_t cap, const struct runner_uf2_drive *d)
{
	snprintf(out, cap, "%s (Board-ID: %s, Model: %s%s%s)", d->m.point,
		 d->info.board_id[0] ? d->info.board_id : "-", d->info.model[0] ? d->info.model : "-",
		 d->usb_location[0] ? ", USB " : "", d->usb_location);
}

/* "Board-ID X, Model Y, USB location L" for messages. */
static void wanted(char *out, size_t cap, const struct runner_uf2_want *w)
{
	size_t k = 0;
	const char *names[] = { "mount ", "Board-ID ", "Model ", "USB location ", "USB serial " };
	const char *vals[] = { w->mount, w->board_id, w->model, w->usb_location, w->usb_serial };
	out[0] = '\0';
	for (size_t i = 0; i < 5; i++) {
		if (!set(vals[i]) || k >= cap)
			continue;
		int r = snprintf(out + k, cap - k, "%s%s%s", k ? ", " : "", names[i], vals[i]);
		if (r > 0)
			k += (size_t)r;
	}
	if (!k)
		snprintf(out, cap, "any UF2 drive");
}

static void list_names(char *out, size_t cap, const struct runner_uf2_drive *l, size_t n,
		       const struct runner_uf2_want *w, int only_matching)
{
	size_t k = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n && k < cap; i++) {
		if (only_matching && !runner_uf2_matches(&l[i], w))
			continue;
		char d[RUNNER_UF2_PATH_MAX + 300];
		describe(d, sizeof d, &l[i]);
		int r = snprintf(out + k, cap - k, "%s%s", k ? "; " : "", d);
		if (r > 0)
			k += (size_t)r;
	}
	if (!k)
		snprintf(out, cap, "none");
}

int runner_uf2_pick(struct runner_uf2_drive *out, const struct runner_uf2_drive *list, size_t n,
		    const struct runner_uf2_want *w, const char *board, struct farm_err *e)
{
	size_t hits = 0, first = 0;
	char want[600], seen[FARM_ERR_MSG_MAX];
	for (size_t i = 0; i < n; i++)
		if (runner_uf2_matches(&list[i], w) && hits++ == 0)
			first = i;
	wanted(want, sizeof want, w);
	if (hits == 1) {
		*out = list[first];
		return 0;
	}
	if (hits == 0) {
		list_names(seen, sizeof seen, list, n, w, 0);
		return farm_err_set(e, FARM_ENOTFOUND, "board %s: no UF2 drive with %s (UF2 drives "
				    "mounted: %.300s)", board, want, seen);
	}
	list_names(seen, sizeof seen, list, n, w, 1);
	return farm_err_set(e, FARM_EINVAL,
			    "board %s: %zu UF2 drives match %s: %.300s; pin the board's drive with "
			    "flash: mount: PATH, or the board's serial.location / usb_serial",
			    board, hits, want, seen);
}

int runner_uf2_find(struct runner_uf2_drive *out, const struct runner_uf2_want *w,
		    const char *board, struct farm_err *e)
{
	struct runner_uf2_drive *l = NULL;
	size_t n = 0;
	int rc = runner_uf2_list(&l, &n, w, e);
	if (rc == 0)
		rc = runner_uf2_pick(out, l, n, w, board, e);
	free(l);
	return rc;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int runner_uf2_wait(struct runner_uf2_drive *out, const struct runner_uf2_want *w,
		    const char *board, unsigned timeout_ms, unsigned poll_ms,
		    const volatile sig_atomic_t *cancel, struct farm_err *e)
{
	long long deadline = farm_now_ms() + timeout_ms;
	if (!poll_ms)
		poll_ms = 100;
	for (;;) {
		if (cancel && *cancel)
			return farm_err_set(e, FARM_EINTR, "board %s: interrupted while waiting for its "
					    "UF2 drive", board);
		int rc = runner_uf2_find(out, w, board, e);
		if (rc != FARM_ENOTFOUND)
			return rc;
		if (farm_now_ms() >= deadline) {
			char msg[FARM_ERR_MSG_MAX];
			snprintf(msg, sizeof msg, "%s", e->msg);
			return farm_err_set(e, FARM_ETIMEDOUT,
					    "%.380s, still after %u ms: put the board in its bootloader "
					    "(double-tap reset, BOOTSEL) or set flash: entry, and check "
					    "that the drive is mounted", msg, timeout_ms);
		}
		sleep_ms(poll_ms);
	}
}

int runner_uf2_mounted(const struct runner_uf2_want *w, int id, const char *point)
{
	struct runner_uf2_mount *m = NULL;
	size_t n = 0;
	struct farm_err e = { 0 };
	if (runner_uf2_mounts(&m, &n, w->mountinfo, &e))
		return 1; /* cannot tell: assume it is */
	int found = 0;
	for (size_t i = 0; i < n && !found; i++)
		found = m[i].id == id && !strcmp(m[i].point, point);
	free(m);
	return found;
}

/* ---- checks ---- */

int runner_uf2_validate(struct farm_image **out, const void *data, size_t len, const char *name,
			const struct farm_flashmap *map, struct farm_err *e)
{
	struct farm_image *img = NULL;
	if (out)
		*out = NULL;
	if (!map)
		return farm_err_set(e, FARM_EINVAL, "%s: the board's MCU family is unknown: set mcu: "
				    "(see `mpfarm runners --mcus`)", name);
	int rc = farm_image_parse_uf2(&img, data, len, name, e);
	if (rc)
		return rc;
	if (map->uf2_family && !img->has_family)
		rc = farm_err_set(e, FARM_EINVAL,
				  "%s: no UF2 family id, the %s bootloader takes family 0x%08x: give "
				  "mpfarm the .hex or .bin (it converts with the family)", name,
				  map->family, map->uf2_family);
	else if (img->has_family && img->uf2_family != map->uf2_family && map->uf2_family)
		rc = farm_err_set(e, FARM_EINVAL,
				  "%s: UF2 family 0x%08x, the board's MCU %s is 0x%08x: the file is for "
				  "another chip; use the build for %s", name, img->uf2_family,
				  map->family, map->uf2_family, map->family);
	else if (img->has_family && !map->uf2_family)
		rc = farm_err_set(e, FARM_EINVAL,
				  "%s: UF2 family 0x%08x, the board's MCU %s has no UF2 family id: the "
				  "file is for another chip; use a UF2 file without a family id, or the "
				  ".hex/.bin", name, img->uf2_family, map->family);
	else if ((rc = farm_flashmap_check(map, img, 0, e)))
		farm_err_prefix(e, "%s", name);
	if (rc || !out)
		farm_image_free(img);
	else
		*out = img;
	return rc;
}

int runner_uf2_convert(struct farm_buf *out, const struct farm_image *img,
		       const struct farm_flashmap *map, struct farm_err *e)
{
	if (!map)
		return farm_err_set(e, FARM_EINVAL, "UF2 conversion: the board's MCU family is "
				    "unknown: set mcu:");
	size_t start = out->len;
	int rc = farm_image_write_uf2(img, map->uf2_family, out, e);
	if (rc == 0)
		rc = runner_uf2_validate(NULL, out->data + start, out->len - start, "converted image",
					 map, e);
	return rc;
}
