/* mpfarm: which local serial device a board's serial: entry means now.
 *
 * A USB board can be named by a stable link (/dev/serial/by-id/...), by its
 * USB serial number or by its USB socket (location); after a reset it may
 * come back under another /dev/ttyACMn. These functions turn the inventory's
 * words into the device path libserialport can open, looked up again at
 * every (re)open. */
#ifndef FARM_SERIAL_PORT_H
#define FARM_SERIAL_PORT_H

#include <stddef.h>

#include "err.h"
#include "inventory.h"
#include "usbdev.h"

/* Follow symbolic links such as /dev/serial/by-id/... to the /dev/tty*
 * node they name (libserialport reads the port's sysfs entry by its /dev
 * name, so it cannot open the link itself). Relative links are resolved
 * lexically; a path that is no link is copied. Returns 0, or FARM_ELIMIT
 * when out is too small or the links go round. */
int farm_serial_path_canon(char *out, size_t len, const char *path, struct farm_err *e);

/* Whether cfg names a local serial device (path /dev/..., usb_serial or
 * location) rather than a network or unix-socket console. */
int farm_serial_is_local(const struct farm_serial_cfg *cfg);

/* The device path of the board now (out), and its USB device when dev is
 * not NULL and the port is a USB one (else dev->location is ""). The path
 * wins when it exists; usb_serial / location find the port otherwise and
 * when no path is given. FARM_ENOTFOUND when nothing matches (the message
 * names what was looked for), FARM_EINVAL when several devices match. */
int farm_serial_port_find(char *out, size_t len, struct farm_usbdev *dev,
			  const struct farm_serial_cfg *cfg, struct farm_err *e);

#endif
