/* mpfarm: USB vendor/product ids mpfarm knows, as one const data table
 * (farm/usbids.c): what a device is (a MicroPython board's own console, a
 * bootloader, a USB-UART bridge, a debug probe), which MicroPython ports it
 * belongs to and which bootloader it is or leads to.
 *
 * Used by `mpfarm detect` to label ports and guess a board's port, and by
 * the flash runners to know which device to wait for after bootloader entry. */
#ifndef FARM_USBIDS_H
#define FARM_USBIDS_H

enum farm_usbid_role {
	FARM_USBID_UNKNOWN = 0,
	FARM_USBID_APP,         /* the firmware's own USB console (MicroPython's CDC) */
	FARM_USBID_BOOTLOADER,  /* a bootloader or ROM loader (no REPL behind it) */
	FARM_USBID_BRIDGE,      /* a USB-UART bridge or a fixed USB-serial peripheral: the
				   identity does not change with the firmware */
	FARM_USBID_PROBE,       /* a debug probe (its serial port, if any, is the target's UART) */
};

enum farm_usbid_boot {
	FARM_USBID_BOOT_NONE = 0,
	FARM_USBID_BOOT_UF2,     /* UF2 mass-storage bootloader (RP2 BOOTSEL also speaks PICOBOOT) */
	FARM_USBID_BOOT_DFU,     /* USB DFU / ST DfuSe (ST ROM, mboot) */
	FARM_USBID_BOOT_ESP_ROM, /* Espressif ROM download mode (serial protocol) */
	FARM_USBID_BOOT_OPENMV,  /* OpenMV's own bootloader protocol */
};

#define FARM_USBID_ANY_PID 0x10000u /* pid of an entry that covers a whole vendor id */

struct farm_usbid {
	unsigned vid, pid;      /* pid FARM_USBID_ANY_PID: any product of the vendor */
	const char *serial;     /* the entry applies only to this iSerial, NULL = any */
	enum farm_usbid_role role;
	const char *ports;      /* MicroPython port(s), comma-separated ("esp32,esp8266"); NULL = any */
	enum farm_usbid_boot boot; /* the bootloader this device is (role BOOTLOADER) or serves (APP,
				      BRIDGE: the loader its board is usually flashed through) */
	const char *name;
	unsigned flags;         /* FARM_USBID_F_* */
};

/* Its first serial port is not a console (a GDB server): `mpfarm detect`
 * sends it no REPL bytes. */
#define FARM_USBID_F_NOT_CONSOLE 1u

/* The entry for a device, most specific first (vid+pid+serial, vid+pid,
 * vid alone); NULL when unknown. serial may be NULL. */
const struct farm_usbid *farm_usbid_lookup(unsigned vid, unsigned pid, const char *serial);
/* The whole table, terminated by an entry with name NULL. */
const struct farm_usbid *farm_usbid_all(void);
/* "app", "bootloader", "usb-uart", "probe", "unknown". */
const char *farm_usbid_role_name(enum farm_usbid_role role);
/* "uf2", "dfu", "esp-rom", "openmv", "none". */
const char *farm_usbid_boot_name(enum farm_usbid_boot boot);
/* Whether `port` is among the entry's ports (an entry with ports NULL
 * serves any). */
int farm_usbid_serves_port(const struct farm_usbid *id, const char *port);
/* The first MicroPython port of the entry into out ("" when none/any). */
void farm_usbid_first_port(const struct farm_usbid *id, char *out, unsigned len);

#endif
