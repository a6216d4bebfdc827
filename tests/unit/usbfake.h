/* Test helper: a fake sysfs + /dev tree for farm/usbdev.c (the kernel's
 * layout: SYS/bus/usb/devices/LOC/{attrs}, LOC:1.N interfaces with
 * tty/ttyACMn or ttyUSBn, DEV/serial/by-id links). Header-only, static. */
#ifndef TEST_USBFAKE_H
#define TEST_USBFAKE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct usbfake {
	char root[256], sys[300], dev[300];
};

static inline int usbfake_mkdirs(const char *path)
{
	char tmp[1024];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0755);
			*p = '/';
		}
	return mkdir(tmp, 0755) == 0 || access(tmp, F_OK) == 0 ? 0 : -1;
}

static inline int usbfake_init(struct usbfake *f)
{
	snprintf(f->root, sizeof f->root, "%s/mpfarm-usbfake-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(f->root))
		return -1;
	snprintf(f->sys, sizeof f->sys, "%s/sys", f->root);
	snprintf(f->dev, sizeof f->dev, "%s/dev", f->root);
	char p[600];
	snprintf(p, sizeof p, "%s/bus/usb/devices", f->sys);
	if (usbfake_mkdirs(p))
		return -1;
	snprintf(p, sizeof p, "%s/serial/by-id", f->dev);
	return usbfake_mkdirs(p);
}

/* Write SYS/bus/usb/devices/REL/NAME with text. */
static inline void usbfake_attr(struct usbfake *f, const char *rel, const char *name, const char *text)
{
	char p[900];
	snprintf(p, sizeof p, "%s/bus/usb/devices/%s", f->sys, rel);
	usbfake_mkdirs(p);
	snprintf(p, sizeof p, "%s/bus/usb/devices/%s/%s", f->sys, rel, name);
	FILE *fp = fopen(p, "w");
	if (fp) {
		fputs(text, fp);
		fclose(fp);
	}
}

/* A USB device at loc with vid/pid (hex text as sysfs writes it). */
static inline void usbfake_device(struct usbfake *f, const char *loc, const char *vid, const char *pid,
			   const char *serial, const char *product, const char *cls, int devnum)
{
	char num[16];
	usbfake_attr(f, loc, "idVendor", vid);
	usbfake_attr(f, loc, "idProduct", pid);
	usbfake_attr(f, loc, "bDeviceClass", cls ? cls : "00\n");
	usbfake_attr(f, loc, "busnum", "1\n");
	snprintf(num, sizeof num, "%d\n", devnum);
	usbfake_attr(f, loc, "devnum", num);
	if (serial)
		usbfake_attr(f, loc, "serial", serial);
	if (product)
		usbfake_attr(f, loc, "product", product);
	usbfake_attr(f, loc, "manufacturer", "Test\n");
}

/* An interface dir LOC/IFACE holding a tty: acm = 1: tty/NAME; else NAME/tty/NAME. */
static inline void usbfake_tty(struct usbfake *f, const char *loc, const char *iface, const char *name, int acm)
{
	char p[900];
	if (acm)
		snprintf(p, sizeof p, "%s/bus/usb/devices/%s/%s/tty/%s", f->sys, loc, iface, name);
	else
		snprintf(p, sizeof p, "%s/bus/usb/devices/%s/%s/%s/tty/%s", f->sys, loc, iface, name, name);
	usbfake_mkdirs(p);
}

static inline void usbfake_byid(struct usbfake *f, const char *link, const char *tty)
{
	char p[900], t[300];
	snprintf(p, sizeof p, "%s/serial/by-id/%s", f->dev, link);
	snprintf(t, sizeof t, "../../%s", tty);
	if (symlink(t, p) != 0)
		perror(p);
}

/* Remove a device dir (rm -r of a small tree). */
static inline void usbfake_rm_rel(const char *path)
{
	char *argv[] = { "rm", "-rf", (char *)path, NULL };
	pid_t pid = fork();
	if (pid == 0) {
		execvp("rm", argv);
		_exit(127);
	}
	int st;
	if (pid > 0)
		waitpid(pid, &st, 0);
}

static inline void usbfake_unplug(struct usbfake *f, const char *loc)
{
	char p[900];
	snprintf(p, sizeof p, "%s/bus/usb/devices/%s", f->sys, loc);
	usbfake_rm_rel(p);
}

static inline void usbfake_free(struct usbfake *f)
{
	usbfake_rm_rel(f->root);
}

#endif
