/* mpfarm: USB devices from sysfs (see usbdev.h).
 *
 * Layout read (the kernel's, and umockdev's in the tests):
 *   SYS/bus/usb/devices/1-1.2/{idVendor,idProduct,serial,manufacturer,
 *                              product,busnum,devnum,bDeviceClass}
 *   SYS/bus/usb/devices/1-1.2/1-1.2:1.0/tty/ttyACM0        (cdc_acm)
 *   SYS/bus/usb/devices/1-1.2/1-1.2:1.0/ttyUSB0[/tty/...]  (usb-serial)
 *   DEV/serial/by-id/usb-...-if00 -> ../../ttyACM0
 * Root hubs (usb1, ...), hubs (class 09) and interfaces (names with ':')
 * are not devices of interest. Only plain open/read/opendir/readlink. */
#include "usbdev.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "transport.h"

#define ATTR_MAX 256            /* bytes read from one sysfs attribute */
#define BYID_MAX 256            /* by-id links considered */

struct byid {
	char link[256];         /* DEV/serial/by-id/NAME */
	char target[64];        /* basename of what it points to: "ttyACM0" */
};

/* Read one attribute file into buf (bounded), trailing whitespace cut,
 * control bytes shown as '?'. 0, or -1 when it cannot be read. */
static int read_attr(const char *dir, const char *name, char *buf, size_t len)
{
	char path[512];
	buf[0] = '\0';
	int w = snprintf(path, sizeof path, "%s/%s", dir, name);
	if (w < 0 || (size_t)w >= sizeof path)
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t got = 0;
	while (got + 1 < len) {
		ssize_t r = read(fd, buf + got, len - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	while (got && (buf[got - 1] == '\n' || buf[got - 1] == ' ' || buf[got - 1] == '\r' ||
		       buf[got - 1] == '\t'))
		buf[--got] = '\0';
	for (size_t i = 0; i < got; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = '?';
	return 0;
}

/* Copy src into dst (len bytes), cut to fit. */
static void copy_str(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static int parse_uint(const char *s, int base, unsigned max, unsigned *out)
{
	if (!*s)
		return -1;
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, base);
	if (errno || *end || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int join(char *out, size_t len, const char *a, const char *b)
{
	int w = snprintf(out, len, "%s/%s", a, b);
	return w < 0 || (size_t)w >= len ? -1 : 0;
}

/* The first entry of dir whose name starts with "tty" (a tty class dir, or
 * a usb-serial interface holding ttyUSB0), into name. */
static int first_tty(const char *dir, int usb_serial_only, char *name, size_t len)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int found = -1;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "tty", 3) != 0 || !strcmp(de->d_name, "tty"))
			continue;
		if (usb_serial_only && strncmp(de->d_name, "ttyUSB", 6) != 0 &&
		    strncmp(de->d_name, "ttyACM", 6) != 0)
			continue;
		if (strlen(de->d_name) >= len)
			continue;
		/* Lowest name wins: deterministic when a dir holds several. */
		if (found == 0 && strverscmp(de->d_name, name) >= 0)
			continue;
		copy_str(name, len, de->d_name);
		found = 0;
	}
	closedir(d);
	return found;
}

/* The interface number of "1-1.2:1.3" (3), for ordering. */
static unsigned iface_number(const char *name)
{
	const char *dot = strrchr(name, '.');
	const char *colon = strchr(name, ':');
	unsigned v = 0;
	if (dot && colon && dot > colon && parse_uint(dot + 1, 10, 255, &v) == 0)
		return v;
	return 256;
}

/* The tty of the device's lowest-numbered interface that has one. */
static void find_tty(const char *devdir, const char *loc, char *tty, size_t len)
{
	tty[0] = '\0';
	DIR *d = opendir(devdir);
	if (!d)
		return;
	size_t loclen = strlen(loc);
	unsigned best = 1000;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, loc, loclen) != 0 || de->d_name[loclen] != ':')
			continue;
		unsigned num = iface_number(de->d_name);
		if (num >= best)
			continue;
		char ifdir[512], ttydir[600], name[64];
		if (join(ifdir, sizeof ifdir, devdir, de->d_name) || join(ttydir, sizeof ttydir, ifdir, "tty"))
			continue;
		if (first_tty(ttydir, 0, name, sizeof name) == 0 ||
		    first_tty(ifdir, 1, name, sizeof name) == 0) {
			copy_str(tty, len, name);
			best = num;
		}
	}
	closedir(d);
}

/* Every DEV/serial/by-id link and the tty it names. */
static size_t scan_byid(const char *dev_root, struct byid *v, size_t max)
{
	char dir[512];
	if (snprintf(dir, sizeof dir, "%s/serial/by-id", dev_root) >= (int)sizeof dir)
		return 0;
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while (n < max && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct byid *b = &v[n];
		if (join(b->link, sizeof b->link, dir, de->d_name))
			continue;
		char target[512];
		ssize_t r = readlink(b->link, target, sizeof target - 1);
		if (r <= 0)
			continue;
		target[r] = '\0';
		const char *base = strrchr(target, '/');
		base = base ? base + 1 : target;
		if (strlen(base) >= sizeof b->target)
			continue;
		copy_str(b->target, sizeof b->target, base);
		n++;
	}
	closedir(d);
	return n;
}

static int cmp_location(const void *a, const void *b)
{
	return strverscmp(((const struct farm_usbdev *)a)->location,
			  ((const struct farm_usbdev *)b)->location);
}

int farm_usbdev_list_at(const char *sys_root, const char *dev_root, struct farm_usbdev **out,
			size_t *n, struct farm_err *e)
{
	*out = NULL;
	*n = 0;
	char dir[512];
	if (snprintf(dir, sizeof dir, "%s/bus/usb/devices", sys_root) >= (int)sizeof dir)
		return farm_err_set(e, FARM_EINVAL, "sysfs root path too long: %.100s", sys_root);
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT) /* no USB bus on this host: no devices */
			return 0;
		return farm_err_sys(e, FARM_ESYS, errno, "cannot list USB devices in %s", dir);
	}
	int rc = 0;
	struct farm_usbdev *v = calloc(FARM_USBDEV_MAX, sizeof *v);
	struct byid *ids = calloc(BYID_MAX, sizeof *ids);
	size_t count = 0, n_ids = 0;
	if (!v || !ids) {
		rc = farm_err_set(e, FARM_ENOMEM, "out of memory listing USB devices");
		goto out;
	}
	n_ids = scan_byid(dev_root, ids, BYID_MAX);
	struct dirent *de;
	while (count < FARM_USBDEV_MAX && (de = readdir(d))) {
		const char *name = de->d_name;
		if (name[0] == '.' || strchr(name, ':') || !strncmp(name, "usb", 3))
			continue;
		struct farm_usbdev *u = &v[count];
		memset(u, 0, sizeof *u);
		char devdir[600], attr[ATTR_MAX];
		if (strlen(name) >= sizeof u->location || join(devdir, sizeof devdir, dir, name))
			continue;
		if (read_attr(devdir, "bDeviceClass", attr, sizeof attr) == 0 && !strcmp(attr, "09"))
			continue;
		if (read_attr(devdir, "idVendor", attr, sizeof attr) || parse_uint(attr, 16, 0xffff, &u->vid))
			continue;
		if (read_attr(devdir, "idProduct", attr, sizeof attr) ||
		    parse_uint(attr, 16, 0xffff, &u->pid))
			continue;
		copy_str(u->location, sizeof u->location, name);
		if (read_attr(devdir, "busnum", attr, sizeof attr) == 0)
			(void)parse_uint(attr, 10, 0xffff, &u->busnum);
		if (read_attr(devdir, "devnum", attr, sizeof attr) == 0)
			(void)parse_uint(attr, 10, 0xffff, &u->devnum);
		read_attr(devdir, "serial", u->serial, sizeof u->serial);
		read_attr(devdir, "manufacturer", u->manufacturer, sizeof u->manufacturer);
		read_attr(devdir, "product", u->product, sizeof u->product);
		char tty[64];
		find_tty(devdir, name, tty, sizeof tty);
		if (tty[0]) {
			snprintf(u->tty, sizeof u->tty, "%s/%s", dev_root, tty);
			/* The first by-id link in name order: stable output. */
			const char *best = NULL;
			for (size_t i = 0; i < n_ids; i++)
				if (!strcmp(ids[i].target, tty) && (!best || strcmp(ids[i].link, best) < 0))
					best = ids[i].link;
			if (best)
				copy_str(u->by_id, sizeof u->by_id, best);
		}
		count++;
	}
	qsort(v, count, sizeof *v, cmp_location);
out:
	closedir(d);
	free(ids);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n = count;
	return 0;
}

int farm_usbdev_list(struct farm_usbdev **out, size_t *n, struct farm_err *e)
{
	return farm_usbdev_list_at("/sys", "/dev", out, n, e);
}

int farm_usbdev_matches(const struct farm_usbdev *d, const struct farm_usbdev_match *m)
{
	if (m->vid && d->vid != m->vid)
		return 0;
	if (m->vid && m->pid && d->pid != m->pid)
		return 0;
	if (m->serial && m->serial[0] && strcmp(d->serial, m->serial) != 0)
		return 0;
	if (m->location && m->location[0] && strcmp(d->location, m->location) != 0)
		return 0;
	if (m->need_tty && !d->tty[0])
		return 0;
	return 1;
}

void farm_usbdev_describe(const struct farm_usbdev *d, char *out, size_t len)
{
	snprintf(out, len, "%04x:%04x at %s%s%.60s%s%s%s", d->vid, d->pid, d->location,
		 d->serial[0] ? " serial " : "", d->serial, d->tty[0] ? " (" : "", d->tty,
		 d->tty[0] ? ")" : "");
}

/* "2e8a:0003 serial X at 1-1.2 with a serial port" */
static void describe_match(const struct farm_usbdev_match *m, char *out, size_t len)
{
	char vp[32] = "a USB device";
	if (m->vid && m->pid)
		snprintf(vp, sizeof vp, "%04x:%04x", m->vid, m->pid);
	else if (m->vid)
		snprintf(vp, sizeof vp, "%04x:*", m->vid);
	int has_serial = m->serial && m->serial[0], has_loc = m->location && m->location[0];
	snprintf(out, len, "%s%s%.60s%s%.60s%s", vp, has_serial ? " serial " : "",
		 has_serial ? m->serial : "", has_loc ? " at " : "", has_loc ? m->location : "",
		 m->need_tty ? " with a serial port" : "");
}

static int check_match(const struct farm_usbdev_match *m, struct farm_err *e)
{
	if (!m->vid && !(m->serial && m->serial[0]) && !(m->location && m->location[0]))
		return farm_err_set(e, FARM_EINVAL,
				    "USB device match needs a vendor id, a serial number or a location");
	return 0;
}

/* Which of v match: the count, the first in *first, and a description of
 * what there is instead (or of the candidates when several match). */
static size_t scan_matches(const struct farm_usbdev *v, size_t n, const struct farm_usbdev_match *m,
			   const struct farm_usbdev **first, char *seen, size_t seen_len)
{
	size_t hits = 0, k = 0;
	*first = NULL;
	seen[0] = '\0';
	for (size_t i = 0; i < n; i++)
		if (farm_usbdev_matches(&v[i], m)) {
			if (!hits)
				*first = &v[i];
			hits++;
		}
	for (size_t i = 0; i < n && k + 1 < seen_len; i++) {
		const struct farm_usbdev *d = &v[i];
		int relevant;
		if (hits > 1)
			relevant = farm_usbdev_matches(d, m);
		else if (m->location && m->location[0])
			relevant = !strcmp(d->location, m->location);
		else if (m->serial && m->serial[0])
			relevant = !strcmp(d->serial, m->serial);
		else
			relevant = d->vid == m->vid;
		if (!relevant)
			continue;
		char one[300];
		farm_usbdev_describe(d, one, sizeof one);
		int w = snprintf(seen + k, seen_len - k, "%s%s", k ? "; " : "", one);
		if (w < 0)
			break;
		k += (size_t)w < seen_len - k ? (size_t)w : seen_len - k - 1;
	}
	if (!k)
		snprintf(seen, seen_len, n ? "%zu other USB device%s, none related" : "no USB device at all",
			 n, n == 1 ? "" : "s");
	return hits;
}

int farm_usbdev_find(struct farm_usbdev *out, const struct farm_usbdev_match *m, struct farm_err *e)
{
	int rc = check_match(m, e);
	if (rc)
		return rc;
	struct farm_usbdev *v = NULL;
	size_t n = 0;
	if ((rc = farm_usbdev_list(&v, &n, e)))
		return rc;
	const struct farm_usbdev *first;
	char seen[400], what[200];
	size_t hits = scan_matches(v, n, m, &first, seen, sizeof seen);
	describe_match(m, what, sizeof what);
	if (hits == 1)
		*out = *first;
	else if (!hits)
		rc = farm_err_set(e, FARM_ENOTFOUND, "no %s present (seen: %s)", what, seen);
	else
		rc = farm_err_set(e, FARM_EINVAL, "%zu devices match %s: %s; name one by serial number or location",
				  hits, what, seen);
	free(v);
	return rc;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int farm_usbdev_wait_at(const char *sys_root, const char *dev_root, struct farm_usbdev *out,
			const struct farm_usbdev_match *m, unsigned timeout_ms, unsigned settle_ms,
			unsigned poll_ms, const volatile sig_atomic_t *cancel, struct farm_err *e)
{
	int rc = check_match(m, e);
	if (rc)
		return rc;
	if (!poll_ms)
		poll_ms = 250;
	long long start = farm_now_ms(), deadline = start + timeout_ms, since = -1;
	struct farm_usbdev cand;
	char seen[400] = "nothing yet", what[200];
	memset(&cand, 0, sizeof cand);
	describe_match(m, what, sizeof what);
	for (;;) {
		if (cancel && *cancel)
			return farm_err_set(e, FARM_EINTR, "interrupted while waiting for %s", what);
		struct farm_usbdev *v = NULL;
		size_t n = 0;
		struct farm_err le = { 0 };
		long long now = farm_now_ms();
		if (farm_usbdev_list_at(sys_root, dev_root, &v, &n, &le) == 0) {
			const struct farm_usbdev *first;
			size_t hits = scan_matches(v, n, m, &first, seen, sizeof seen);
			if (hits == 1 && since >= 0 && !strcmp(first->location, cand.location) &&
			    first->busnum == cand.busnum && first->devnum == cand.devnum) {
				cand = *first; /* same device; attributes may have filled in */
			} else if (hits == 1) {
				cand = *first;
				since = now;
			} else {
				since = -1;
			}
			free(v);
		} else {
			copy_str(seen, sizeof seen, le.msg);
			since = -1;
		}
		if (since >= 0 && now - since >= (long long)settle_ms) {
			*out = cand;
			return 0;
		}
		if (now >= deadline) {
			if (since >= 0)
				return farm_err_set(e, FARM_ETIMEDOUT,
						    "%s appeared but did not stay %u ms within %u ms", what,
						    settle_ms, timeout_ms);
			return farm_err_set(e, FARM_ETIMEDOUT, "no %s within %u ms (seen: %s)", what,
					    timeout_ms, seen);
		}
		long long next = now + poll_ms;
		if (since >= 0 && since + settle_ms < next)
			next = since + settle_ms;
		if (next > deadline)
			next = deadline;
		/* Sleep in short slices so a cancel is noticed soon. */
		while (!(cancel && *cancel)) {
			long long left = next - farm_now_ms();
			if (left <= 0)
				break;
			sleep_ms(left > 50 ? 50u : (unsigned)left);
		}
	}
}

int farm_usbdev_wait(struct farm_usbdev *out, const struct farm_usbdev_match *m,
		     unsigned timeout_ms, unsigned settle_ms, const volatile sig_atomic_t *cancel,
		     struct farm_err *e)
{
	return farm_usbdev_wait_at("/sys", "/dev", out, m, timeout_ms, settle_ms, 0, cancel, e);
}
