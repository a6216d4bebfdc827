/* mpfarm: USB devices on this host, read from sysfs (/sys/bus/usb/devices),
 * with the serial port (tty) each one offers. Used to find a board again by
 * its USB serial number or bus port path after it re-enumerates, to wait for
 * a bootloader to appear, and by `mpfarm detect`.
 *
 * Everything is read through plain file calls on /sys and /dev, so the same
 * code runs against umockdev's simulated devices in the tests. */
#ifndef FARM_USBDEV_H
#define FARM_USBDEV_H

#include <signal.h>
#include <stddef.h>

#include "err.h"

#define FARM_USBDEV_MAX 256     /* devices listed at most */

struct farm_usbdev {
	char location[64];      /* bus-port path, the sysfs name: "1-1.2" (stable per socket) */
	unsigned vid, pid;
	unsigned busnum, devnum;
	char serial[128];       /* iSerial string, "" if none */
	char manufacturer[128];
	char product[128];
	char tty[128];          /* "/dev/ttyACM0" of its first serial interface, "" if none */
	char by_id[256];        /* "/dev/serial/by-id/..." link to tty, "" if none */
};

/* Every USB device (hubs and root hubs excluded), sorted by location.
 * *out is allocated; the caller frees it. */
int farm_usbdev_list(struct farm_usbdev **out, size_t *n, struct farm_err *e);

/* What to look for. Unset fields (0 / NULL / "") match anything; at least
 * one of serial, location or vid must be set. */
struct farm_usbdev_match {
	unsigned vid, pid;      /* pid 0 = any pid of vid */
	const char *serial;
	const char *location;
	int need_tty;           /* only devices with a serial port */
};
int farm_usbdev_matches(const struct farm_usbdev *d, const struct farm_usbdev_match *m);

/* Exactly one present device that matches: 0 and *out; FARM_ENOTFOUND when
 * none; FARM_EINVAL naming the candidates when several match. */
int farm_usbdev_find(struct farm_usbdev *out, const struct farm_usbdev_match *m,
		     struct farm_err *e);

/* Poll (every poll_ms, default 250) until exactly one device matches and is
 * still there settle_ms later; FARM_ETIMEDOUT after timeout_ms (the message
 * says what was seen instead), FARM_EINTR when *cancel is set. */
int farm_usbdev_wait(struct farm_usbdev *out, const struct farm_usbdev_match *m,
		     unsigned timeout_ms, unsigned settle_ms, const volatile sig_atomic_t *cancel,
		     struct farm_err *e);

/* The same, reading sysfs under sys_root (normally "/sys") and the serial
 * device links under dev_root (normally "/dev"; tty becomes
 * "DEV_ROOT/ttyACM0"). For tests with a fake tree. */
int farm_usbdev_list_at(const char *sys_root, const char *dev_root, struct farm_usbdev **out,
			size_t *n, struct farm_err *e);
int farm_usbdev_wait_at(const char *sys_root, const char *dev_root, struct farm_usbdev *out,
			const struct farm_usbdev_match *m, unsigned timeout_ms, unsigned settle_ms,
			unsigned poll_ms, const volatile sig_atomic_t *cancel, struct farm_err *e);
/* "2e8a:0005 at 1-1.2 (serial e661..., /dev/ttyACM0)" for messages. */
void farm_usbdev_describe(const struct farm_usbdev *d, char *out, size_t len);

#endif
