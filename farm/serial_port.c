/* mpfarm: which local serial device a board's serial: entry means now. */
#include "serial_port.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CANON_HOPS 8

/* In-place lexical clean-up of an absolute path: "//", "/./", "/x/../". */
static void lexical_clean(char *p)
{
	char *out = p;
	const char *in = p;
	while (*in) {
		while (*in == '/')
			in++;
		const char *seg = in;
		while (*in && *in != '/')
			in++;
		size_t n = (size_t)(in - seg);
		if (n == 0 || (n == 1 && seg[0] == '.'))
			continue;
		if (n == 2 && seg[0] == '.' && seg[1] == '.') {
			while (out > p && *--out != '/')
				;
			continue;
		}
		*out++ = '/';
		memmove(out, seg, n);
		out += n;
	}
	if (out == p)
		*out++ = '/';
	*out = '\0';
}

int farm_serial_path_canon(char *out, size_t len, const char *path, struct farm_err *e)
{
	char cur[512], target[512];
	size_t n = strlen(path);
	if (n >= sizeof cur || n >= len)
		return farm_err_set(e, FARM_ELIMIT, "%s: serial path too long", path);
	memcpy(cur, path, n + 1);
	for (int hop = 0; hop < CANON_HOPS; hop++) {
		/* Stop at the node itself: /dev/ttyACM0 may be a link to a pty
		 * (simulated devices) and libserialport wants the /dev name. */
		const char *base = strrchr(cur, '/');
		if (!strncmp(cur, "/dev/", 5) && base == cur + 4 && !strncmp(base + 1, "tty", 3))
			break;
		ssize_t k = readlink(cur, target, sizeof target - 1);
		if (k < 0)
			break; /* not a link (or not there: the open says so) */
		target[k] = '\0';
		if (target[0] == '/') {
			memcpy(cur, target, (size_t)k + 1);
		} else {
			char *slash = strrchr(cur, '/');
			size_t dir = (size_t)(slash - cur) + 1;
			if (dir + (size_t)k >= sizeof cur)
				return farm_err_set(e, FARM_ELIMIT, "%s: link target too long", path);
			memcpy(cur + dir, target, (size_t)k + 1);
		}
		lexical_clean(cur);
		if (hop == CANON_HOPS - 1)
			return farm_err_set(e, FARM_ELIMIT, "%s: too many links", path);
	}
	n = strlen(cur);
	if (n >= len)
		return farm_err_set(e, FARM_ELIMIT, "%s: serial path too long", path);
	memcpy(out, cur, n + 1);
	return 0;
}

int farm_serial_is_local(const struct farm_serial_cfg *cfg)
{
	if (cfg->path)
		return cfg->path[0] == '/';
	return cfg->usb_serial || cfg->location;
}

int farm_serial_port_find(char *out, size_t len, struct farm_usbdev *dev,
			  const struct farm_serial_cfg *cfg, struct farm_err *e)
{
	struct farm_usbdev found;
	memset(&found, 0, sizeof found);
	if (dev)
		memset(dev, 0, sizeof *dev);
	if (cfg->path) {
		int rc = farm_serial_path_canon(out, len, cfg->path, e);
		if (rc)
			return rc;
		struct stat st;
		int present = stat(cfg->path, &st) == 0;
		if (!present && !cfg->usb_serial && !cfg->location)
			return farm_err_set(e, FARM_ENOTFOUND,
					    "%s: no such serial port (is the board plugged in? check the "
					    "inventory's serial.path)",
					    cfg->path);
		if (present) {
			if (dev) {
				/* Its USB identity, when it is a USB device. */
				struct farm_err ign = {0};
				const char *name = strrchr(out, '/');
				struct farm_usbdev *all = NULL;
				size_t nall = 0;
				if (name && farm_usbdev_list(&all, &nall, &ign) == 0)
					for (size_t i = 0; i < nall; i++)
						if (!strcmp(all[i].tty, out))
							*dev = all[i];
				free(all);
			}
			return 0;
		}
	}
	struct farm_usbdev_match m = {
		.serial = cfg->usb_serial, .location = cfg->location, .need_tty = 1};
	int rc = farm_usbdev_find(&found, &m, e);
	if (rc)
		return rc;
	size_t n = strlen(found.tty);
	if (n >= len)
		return farm_err_set(e, FARM_ELIMIT, "%s: serial path too long", found.tty);
	memcpy(out, found.tty, n + 1);
	if (dev)
		*dev = found;
	return 0;
}
