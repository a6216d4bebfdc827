/* mpfarm: the small USB transport the DFU protocol code (runners/dfu_proto.h)
 * runs over. One implementation talks to real devices through libusb
 * (runners/dfu_libusb.c); the unit tests put a simulated device model behind
 * the same ops, with fault injection, in one process.
 *
 * A transport is opened on one DFU interface of one device; it describes the
 * interface (its alternate settings and their names, the DFU functional
 * descriptor) in struct runner_dfu_info and carries control transfers on
 * endpoint 0, each with a timeout. */
#ifndef RUNNER_DFU_USB_H
#define RUNNER_DFU_USB_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "usbdev.h"

#define RUNNER_DFU_MAX_ALTS 16
#define RUNNER_DFU_NAME_MAX 256

/* DFU functional descriptor (type 0x21), bmAttributes bits. */
#define RUNNER_DFU_ATTR_CAN_DNLOAD 0x01u
#define RUNNER_DFU_ATTR_CAN_UPLOAD 0x02u
#define RUNNER_DFU_ATTR_MANIFEST_TOLERANT 0x04u
#define RUNNER_DFU_ATTR_WILL_DETACH 0x08u

struct runner_dfu_func {
	uint8_t attributes;             /* RUNNER_DFU_ATTR_* */
	uint16_t detach_timeout_ms;
	uint16_t transfer_size;         /* wTransferSize */
	uint16_t bcd_dfu;               /* 0x0110 DFU 1.1, 0x011a DfuSe */
};

/* The DFU interface as the device describes it. */
struct runner_dfu_info {
	uint8_t intf;                   /* bInterfaceNumber (wIndex of class requests) */
	uint8_t protocol;               /* bInterfaceProtocol: 1 run-time, 2 DFU mode */
	size_t n_alts;
	struct {
		uint8_t alt;            /* bAlternateSetting */
		char name[RUNNER_DFU_NAME_MAX]; /* its iInterface string, "" if none */
	} alts[RUNNER_DFU_MAX_ALTS];
	struct runner_dfu_func func;
	int has_func;                   /* a functional descriptor was found */
	char what[200];                 /* "0483:df11 at 1-1.2 (serial 3677...)" for messages */
};

/* Outcome of one control transfer. */
enum runner_dfu_xfer {
	RUNNER_DFU_X_OK = 0,
	RUNNER_DFU_X_STALL = -1,        /* the device stalled the request (EPIPE) */
	RUNNER_DFU_X_TIMEOUT = -2,      /* no answer within the timeout */
	RUNNER_DFU_X_GONE = -3,         /* the device left the bus */
	RUNNER_DFU_X_IO = -4,           /* any other failure (why says which) */
};

/* One control request: bmRequestType, bRequest, wValue, wIndex, wLength. */
struct runner_dfu_setup {
	uint8_t type, request;
	uint16_t value, index, length;
};

struct runner_dfu_usb_ops {
	/* Mandatory. Carry one control transfer: OUT sends data[0..length),
	 * IN receives up to length bytes into data (*got = how many). Returns
	 * RUNNER_DFU_X_*; why (may be NULL) gets a short cause for X_IO. */
	int (*control)(void *h, const struct runner_dfu_setup *s, uint8_t *data, size_t *got,
		       unsigned timeout_ms, char *why, size_t why_len);
	/* Mandatory. Select the alternate setting (SET_INTERFACE). */
	int (*set_alt)(void *h, uint8_t alt, char *why, size_t why_len);
	/* Optional: the clock and the wait between polls (NULL = the real ones);
	 * a simulated device runs on its own clock. */
	long long (*now_ms)(void *h);
	void (*sleep_ms)(void *h, unsigned ms);
	/* Optional: a USB port reset (plain DFU leaves DFU mode by it). */
	int (*reset)(void *h, char *why, size_t why_len);
	/* Optional: release the interface and the device. */
	void (*close)(void *h);
};

struct runner_dfu_usb {
	const struct runner_dfu_usb_ops *ops;
	void *h;
	struct runner_dfu_info info;
};

/* How to find the device: VID:PID (pid 0 = any of vid) plus USB serial
 * number and/or bus port path ("1-1.2"). */
struct runner_dfu_find {
	unsigned vid, pid;
	const char *serial;             /* NULL = any */
	const char *location;           /* NULL = any */
};

/* The DFU-mode devices present that match: exactly one is *out; none is
 * FARM_ENOTFOUND naming what is there with that VID:PID; several is
 * FARM_EINVAL naming each candidate with its serial number and location. */
int runner_dfu_find_device(struct farm_usbdev *out, const struct runner_dfu_find *f,
			   struct farm_err *e);

/* Open that device through libusb, claim its DFU interface and describe it
 * (alternate setting names, functional descriptor). u->ops is the libusb
 * implementation. runner_dfu_usb_close releases everything (NULL-safe). */
int runner_dfu_libusb_open(struct runner_dfu_usb *u, const struct farm_usbdev *dev,
			   struct farm_err *e);
void runner_dfu_usb_close(struct runner_dfu_usb *u);

/* Parse a DFU functional descriptor out of an interface's extra
 * descriptors (a run of bLength/bDescriptorType records): 0 and *out, or -1
 * when none is there or a record is malformed. */
int runner_dfu_func_parse(struct runner_dfu_func *out, const uint8_t *extra, size_t len);

#endif
