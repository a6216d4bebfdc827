/* mpfarm: the USB ids mpfarm knows (a data table; see usbids.h).
 * Sources: MicroPython's mpconfigport.h/usbd defaults per port, the
 * bootloader-entry protocol notes (RP2 BOOTSEL, ST ROM DFU, Espressif
 * USB-Serial/JTAG, OpenMV), and the vendors' published ids of common
 * USB-UART bridges and debug probes. */
#include "usbids.h"

#include <stdio.h>
#include <string.h>

#define ANY FARM_USBID_ANY_PID

static const struct farm_usbid table[] = {
	/* MicroPython's own ids (vid f055 is pid.codes' MicroPython block). */
	{ 0xF055, 0x9800, NULL, FARM_USBID_APP, "stm32", FARM_USBID_BOOT_DFU,
	  "MicroPython pyboard (CDC+MSC)", 0 },
	{ 0xF055, 0x9801, NULL, FARM_USBID_APP, "stm32", FARM_USBID_BOOT_DFU,
	  "MicroPython pyboard (CDC+HID)", 0 },
	{ 0xF055, 0x9802, NULL, FARM_USBID_APP, "stm32,samd,mimxrt,nrf,renesas-ra",
	  FARM_USBID_BOOT_NONE, "MicroPython board (CDC)", 0 },
	{ 0xF055, 0x9803, NULL, FARM_USBID_APP, "stm32", FARM_USBID_BOOT_DFU,
	  "MicroPython pyboard (MSC)", 0 },
	{ 0xF055, ANY, NULL, FARM_USBID_APP, NULL, FARM_USBID_BOOT_NONE, "MicroPython board", 0 },

	/* Raspberry Pi RP2040 / RP2350. */
	{ 0x2E8A, 0x0003, NULL, FARM_USBID_BOOTLOADER, "rp2", FARM_USBID_BOOT_UF2,
	  "RP2040 BOOTSEL (UF2 drive + PICOBOOT)", 0 },
	{ 0x2E8A, 0x000F, NULL, FARM_USBID_BOOTLOADER, "rp2", FARM_USBID_BOOT_UF2,
	  "RP2350 BOOTSEL (UF2 drive + PICOBOOT)", 0 },
	{ 0x2E8A, 0x0005, NULL, FARM_USBID_APP, "rp2", FARM_USBID_BOOT_UF2,
	  "MicroPython on RP2040/RP2350", 0 },
	{ 0x2E8A, 0x000A, NULL, FARM_USBID_APP, "rp2", FARM_USBID_BOOT_UF2,
	  "Pico SDK stdio USB (C firmware)", 0 },
	{ 0x2E8A, 0x0004, NULL, FARM_USBID_PROBE, NULL, FARM_USBID_BOOT_NONE, "Picoprobe", 0 },
	{ 0x2E8A, 0x000C, NULL, FARM_USBID_PROBE, NULL, FARM_USBID_BOOT_NONE,
	  "Raspberry Pi Debug Probe (CMSIS-DAP + UART)", 0 },
	{ 0x2E8A, ANY, NULL, FARM_USBID_APP, "rp2", FARM_USBID_BOOT_UF2, "RP2 board", 0 },

	/* Espressif. */
	{ 0x303A, 0x1001, NULL, FARM_USBID_BRIDGE, "esp32", FARM_USBID_BOOT_ESP_ROM,
	  "Espressif USB-Serial/JTAG (console and ROM loader)", 0 },
	{ 0x303A, 0x0002, NULL, FARM_USBID_BOOTLOADER, "esp32", FARM_USBID_BOOT_ESP_ROM,
	  "ESP32-S2 ROM download mode (USB-OTG)", 0 },
	{ 0x303A, 0x4001, NULL, FARM_USBID_APP, "esp32", FARM_USBID_BOOT_ESP_ROM,
	  "MicroPython on ESP32-S2/S3 native USB", 0 },
	{ 0x303A, ANY, NULL, FARM_USBID_APP, "esp32", FARM_USBID_BOOT_ESP_ROM,
	  "Espressif native USB board", 0 },

	/* STMicroelectronics. */
	{ 0x0483, 0xDF11, NULL, FARM_USBID_BOOTLOADER, "stm32", FARM_USBID_BOOT_DFU,
	  "STM32 DFU (ST ROM bootloader or mboot)", 0 },
	{ 0x0483, 0x5740, NULL, FARM_USBID_APP, "stm32", FARM_USBID_BOOT_DFU,
	  "STM32 Virtual COM Port", 0 },
	{ 0x0483, 0x3748, NULL, FARM_USBID_PROBE, NULL, FARM_USBID_BOOT_NONE, "ST-LINK/V2", 0 },
	{ 0x0483, 0x374B, NULL, FARM_USBID_PROBE, NULL, FARM_USBID_BOOT_NONE,
	  "ST-LINK/V2-1 (Nucleo/Discovery, with VCP)", 0 },
	{ 0x0483, 0x374E, NULL, FARM_USBID_PROBE, NULL, FARM_USBID_BOOT_NONE, "STLINK-V3", 0 },
	{ 0x0483, 0x374F, NULL, FARM_USBID_PROBE, NULL, FARM_USBID_BOOT_NONE, "STLINK-V3", 0 },
	{ 0x0483, 0x3753, NULL, FARM_USBID_PROBE, NULL, FARM_USBID_BOOT_NONE, "STLINK-V3", 0 },
	{ 0x0483, 0x3754, NULL, FARM_USBID_PROBE, NULL, FARM_USBID_BOOT_NONE, "STLINK-V3", 0 },

	/* OpenMV cameras: the bootloader enumerates with the application's ids
	 * and a fixed serial number. */
	{ 0x1209, 0xABD1, "000000000010", FARM_USBID_BOOTLOADER, "stm32,mimxrt",
	  FARM_USBID_BOOT_OPENMV, "OpenMV bootloader", 0 },
	{ 0x1209, 0xABD1, "000000000011", FARM_USBID_BOOTLOADER, "stm32,mimxrt",
	  FARM_USBID_BOOT_OPENMV, "OpenMV bootloader", 0 },
	{ 0x1209, 0xABD1, NULL, FARM_USBID_APP, "stm32,mimxrt", FARM_USBID_BOOT_OPENMV,
	  "OpenMV camera (MicroPython)", 0 },

	/* Arm Mbed DAPLink: the micro:bit's interface chip; its UART is the
	 * target's console. */
	{ 0x0D28, 0x0204, NULL, FARM_USBID_PROBE, NULL, FARM_USBID_BOOT_NONE,
	  "DAPLink CMSIS-DAP (BBC micro:bit, mbed; UART to the target)", 0 },
	/* Black Magic Probe. */
	{ 0x1D50, 0x6018, NULL, FARM_USBID_PROBE, NULL, FARM_USBID_BOOT_NONE,
	  "Black Magic Probe (GDB server + UART)", FARM_USBID_F_NOT_CONSOLE },
	{ 0x1D50, 0x6017, NULL, FARM_USBID_BOOTLOADER, NULL, FARM_USBID_BOOT_DFU,
	  "Black Magic Probe DFU", 0 },
	/* SEGGER J-Link (OB variants carry a CDC UART). */
	{ 0x1366, ANY, NULL, FARM_USBID_PROBE, NULL, FARM_USBID_BOOT_NONE, "SEGGER J-Link", 0 },

	/* Adafruit UF2 bootloaders (uf2-samdx1 board configs). */
	{ 0x239A, 0x0015, NULL, FARM_USBID_BOOTLOADER, "samd", FARM_USBID_BOOT_UF2,
	  "Adafruit Feather M0 UF2 bootloader", 0 },
	{ 0x239A, 0x000B, NULL, FARM_USBID_BOOTLOADER, "samd", FARM_USBID_BOOT_UF2,
	  "Adafruit Feather M0 UF2 bootloader", 0 },
	{ 0x239A, 0x001B, NULL, FARM_USBID_BOOTLOADER, "samd", FARM_USBID_BOOT_UF2,
	  "Adafruit Feather M0 Express UF2 bootloader", 0 },

	/* USB-UART bridges (ESP dev boards, ESP-Prog, lab adapters). */
	{ 0x10C4, 0xEA60, NULL, FARM_USBID_BRIDGE, NULL, FARM_USBID_BOOT_NONE,
	  "Silicon Labs CP210x USB-UART", 0 },
	{ 0x10C4, 0xEA70, NULL, FARM_USBID_BRIDGE, NULL, FARM_USBID_BOOT_NONE,
	  "Silicon Labs CP2105 dual USB-UART", 0 },
	{ 0x1A86, 0x7523, NULL, FARM_USBID_BRIDGE, NULL, FARM_USBID_BOOT_NONE,
	  "WCH CH340 USB-UART", 0 },
	{ 0x1A86, 0x5523, NULL, FARM_USBID_BRIDGE, NULL, FARM_USBID_BOOT_NONE,
	  "WCH CH341 USB-UART", 0 },
	{ 0x1A86, 0x55D3, NULL, FARM_USBID_BRIDGE, NULL, FARM_USBID_BOOT_NONE,
	  "WCH CH343 USB-UART", 0 },
	{ 0x1A86, 0x55D4, NULL, FARM_USBID_BRIDGE, NULL, FARM_USBID_BOOT_NONE,
	  "WCH CH9102 USB-UART", 0 },
	{ 0x0403, 0x6001, NULL, FARM_USBID_BRIDGE, NULL, FARM_USBID_BOOT_NONE,
	  "FTDI FT232R USB-UART", 0 },
	{ 0x0403, 0x6010, NULL, FARM_USBID_BRIDGE, NULL, FARM_USBID_BOOT_NONE,
	  "FTDI FT2232 (ESP-Prog, JTAG + UART)", 0 },
	{ 0x0403, 0x6011, NULL, FARM_USBID_BRIDGE, NULL, FARM_USBID_BOOT_NONE,
	  "FTDI FT4232 USB-UART", 0 },
	{ 0x0403, 0x6014, NULL, FARM_USBID_BRIDGE, NULL, FARM_USBID_BOOT_NONE,
	  "FTDI FT232H USB-UART", 0 },
	{ 0x0403, 0x6015, NULL, FARM_USBID_BRIDGE, NULL, FARM_USBID_BOOT_NONE,
	  "FTDI FT-X USB-UART", 0 },
	{ 0x067B, 0x2303, NULL, FARM_USBID_BRIDGE, NULL, FARM_USBID_BOOT_NONE,
	  "Prolific PL2303 USB-UART", 0 },

	{ 0, 0, NULL, FARM_USBID_UNKNOWN, NULL, FARM_USBID_BOOT_NONE, NULL, 0 },
};

const struct farm_usbid *farm_usbid_all(void)
{
	return table;
}

const struct farm_usbid *farm_usbid_lookup(unsigned vid, unsigned pid, const char *serial)
{
	/* Pass 0: vid+pid+serial; 1: vid+pid; 2: the vendor's catch-all. */
	for (int pass = 0; pass < 3; pass++)
		for (const struct farm_usbid *u = table; u->name; u++) {
			if (u->vid != vid)
				continue;
			if (pass == 0 && (!u->serial || !serial || strcmp(u->serial, serial) != 0 ||
					  u->pid != pid))
				continue;
			if (pass == 1 && (u->serial || u->pid != pid))
				continue;
			if (pass == 2 && (u->serial || u->pid != FARM_USBID_ANY_PID))
				continue;
			return u;
		}
	return NULL;
}

const char *farm_usbid_role_name(enum farm_usbid_role role)
{
	switch (role) {
	case FARM_USBID_APP:
		return "app";
	case FARM_USBID_BOOTLOADER:
		return "bootloader";
	case FARM_USBID_BRIDGE:
		return "usb-uart";
	case FARM_USBID_PROBE:
		return "probe";
	case FARM_USBID_UNKNOWN:
		break;
	}
	return "unknown";
}

const char *farm_usbid_boot_name(enum farm_usbid_boot boot)
{
	switch (boot) {
	case FARM_USBID_BOOT_UF2:
		return "uf2";
	case FARM_USBID_BOOT_DFU:
		return "dfu";
	case FARM_USBID_BOOT_ESP_ROM:
		return "esp-rom";
	case FARM_USBID_BOOT_OPENMV:
		return "openmv";
	case FARM_USBID_BOOT_NONE:
		break;
	}
	return "none";
}

int farm_usbid_serves_port(const struct farm_usbid *id, const char *port)
{
	if (!id || !port)
		return 0;
	if (!id->ports)
		return 1;
	size_t n = strlen(port);
	for (const char *p = id->ports; *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == n && !strncmp(p, port, n))
			return 1;
		if (!end)
			break;
		p = end + 1;
	}
	return 0;
}

void farm_usbid_first_port(const struct farm_usbid *id, char *out, unsigned len)
{
	if (!len)
		return;
	out[0] = '\0';
	if (!id || !id->ports)
		return;
	size_t n = strcspn(id->ports, ",");
	snprintf(out, len, "%.*s", (int)n, id->ports);
}
