/* dfu_model: a USB DFU 1.1 / ST DfuSe device on endpoint 0, in plain C.
 *
 * No USB stack, no threads, no globals: the caller hands every control
 * transfer (8-byte setup packet + data stage) to dfu_model_control() with the
 * current time, and gets back the bytes transferred or a negative errno, as a
 * kernel's usbdevfs would report it:
 *   -EPIPE     the device stalled the request
 *   -ENODEV    the device is gone (left DFU mode, or a "gone" fault)
 *   -ETIMEDOUT the request never completes (a "hang" fault)
 *   -EINVAL    bad arguments from the caller (short buffer...)
 *
 * Used in process by mpfarm's DFU runner unit tests and behind umockdev by
 * usbsim (the real libusb and dfu-util see it). The model is not thread-safe:
 * the caller serialises calls.
 *
 * Facts it follows: /work/shared/protocols/dfu-dfuse.md ("What a device
 * simulator must do"). */
#ifndef DFU_MODEL_H
#define DFU_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define DFU_MODEL_MAX_ALT 4
#define DFU_MODEL_NAME_MAX 128   /* alt-setting names (DfuSe memory strings) */
#define DFU_MODEL_STR_MAX 64     /* manufacturer, product, serial */

/* DFU states and status codes (DFU 1.1 numbering). */
enum dfu_model_state {
	DFU_MODEL_APP_IDLE = 0,
	DFU_MODEL_APP_DETACH = 1,
	DFU_MODEL_IDLE = 2,
	DFU_MODEL_DNLOAD_SYNC = 3,
	DFU_MODEL_DNBUSY = 4,
	DFU_MODEL_DNLOAD_IDLE = 5,
	DFU_MODEL_MANIFEST_SYNC = 6,
	DFU_MODEL_MANIFEST = 7,
	DFU_MODEL_MANIFEST_WAIT_RESET = 8,
	DFU_MODEL_UPLOAD_IDLE = 9,
	DFU_MODEL_ERROR = 10,
};

enum dfu_model_status {
	DFU_MODEL_OK = 0x00,
	DFU_MODEL_ERR_TARGET = 0x01,
	DFU_MODEL_ERR_FILE = 0x02,
	DFU_MODEL_ERR_WRITE = 0x03,
	DFU_MODEL_ERR_ERASE = 0x04,
	DFU_MODEL_ERR_CHECK_ERASED = 0x05,
	DFU_MODEL_ERR_PROG = 0x06,
	DFU_MODEL_ERR_VERIFY = 0x07,
	DFU_MODEL_ERR_ADDRESS = 0x08,
	DFU_MODEL_ERR_NOTDONE = 0x09,
	DFU_MODEL_ERR_FIRMWARE = 0x0a,
	DFU_MODEL_ERR_VENDOR = 0x0b,
	DFU_MODEL_ERR_USBR = 0x0c,
	DFU_MODEL_ERR_POR = 0x0d,
	DFU_MODEL_ERR_UNKNOWN = 0x0e,
	DFU_MODEL_ERR_STALLEDPKT = 0x0f,
};

/* bmAttributes of the functional descriptor. */
#define DFU_MODEL_CAN_DNLOAD 0x01
#define DFU_MODEL_CAN_UPLOAD 0x02
#define DFU_MODEL_MANIFEST_TOLERANT 0x04
#define DFU_MODEL_WILL_DETACH 0x08

/* How the bootloader behaves where real ones differ. */
enum dfu_model_personality {
	DFU_MODEL_ROM = 0,   /* STM32 system ROM: UPLOAD wValue 0 returns 00 21 41 92;
	                        CLRSTATUS outside dfuERROR stalls */
	DFU_MODEL_MBOOT = 1, /* MicroPython mboot: UPLOAD wValue 0 stalls; CLRSTATUS
	                        is accepted in any state */
};

/* Injected faults. Request numbers count every control transfer the model
 * is given, from 1 (the "trace" option logs them). */
struct dfu_model_faults {
	unsigned stall_req;       /* STALL this request (once); 0 = none */
	int stall_erase;          /* STALL every GETSTATUS while an erase runs
	                             (STM32L4): the erase takes twice the poll
	                             timeout it reports */
	int prog;                 /* errPROG on a write touching [prog_lo, prog_hi) */
	uint32_t prog_lo, prog_hi;
	int verify;               /* errVERIFY at manifestation (no leave) */
	unsigned gone_after;      /* requests after this one get -ENODEV; 0 = never */
	unsigned hang_req;        /* this request and all later ones never
	                             complete (-ETIMEDOUT); 0 = never */
};

struct dfu_model_config {
	uint16_t vid, pid, bcd_device;
	char manufacturer[DFU_MODEL_STR_MAX], product[DFU_MODEL_STR_MAX], serial[DFU_MODEL_STR_MAX];
	char location[32];        /* for the harness ("1-3"); the model ignores it */
	int dfuse;                /* 1: bcdDFU 0x011A + DfuSe commands; 0: plain DFU 1.1 */
	int personality;          /* enum dfu_model_personality */
	int n_alt;                /* 1..DFU_MODEL_MAX_ALT */
	char alt_name[DFU_MODEL_MAX_ALT][DFU_MODEL_NAME_MAX];
	uint16_t transfer_size;   /* wTransferSize */
	uint8_t attributes;       /* bmAttributes (DFU_MODEL_CAN_DNLOAD...) */
	uint16_t detach_timeout;  /* wDetachTimeOut */
	uint32_t poll_ms;         /* bwPollTimeout reported for writes and commands */
	uint32_t erase_poll_ms;   /* bwPollTimeout reported for page/mass erase */
	uint32_t plain_size;      /* plain DFU: bytes behind an alt whose name is not a
	                             DfuSe memory string */
	int trace;                /* log every request ("req N ...") */
	struct dfu_model_faults faults;
};

/* A transition or event, one line without newline ("erase page 0x08004000"). */
typedef void (*dfu_model_log_fn)(void *payload, const char *line);

struct dfu_model;

/* Defaults: dfuse = 1 gives an STM32F405 ROM bootloader (0483:DF11, 2048-byte
 * transfers, 1 MiB at 0x08000000 in 16/64/128 KiB pages); dfuse = 0 a plain
 * DFU 1.1 device (1209:2003, 1024-byte transfers, 256 KiB, manifestation
 * tolerant). */
void dfu_model_config_init(struct dfu_model_config *cfg, int dfuse);

/* Parse "KIND[:key=value,...]" with KIND "dfuse" or "dfu" into cfg (which it
 * initialises). Keys: vid, pid, bcd, serial, manufacturer, product, location,
 * personality=rom|mboot, transfer, attr, detach, poll, erase_poll, size,
 * trace=0|1, alt=NAME (repeatable; the first replaces the default), layout=
 * (same as alt), fault=SPEC (see dfu_model_faults_parse). A piece without '='
 * continues the previous value, so memory strings keep their commas.
 * Returns 0, or -1 with a message in err. */
int dfu_model_config_parse(struct dfu_model_config *cfg, const char *spec, char *err, size_t errlen);

/* Parse a fault spec: items joined by '+':
 *   stall@N  stall-erase  errprog@0xLO-0xHI  errverify  gone@N  hang@N
 * into *out (cleared first). Returns 0, or -1 with a message in err. */
int dfu_model_faults_parse(struct dfu_model_faults *out, const char *spec, char *err, size_t errlen);

/* A new device in DFU mode (dfuIDLE, alt 0), flash erased (0xFF). log may be
 * NULL. Returns NULL with a message in err on a bad config (memory string
 * that does not parse, more than 16 MiB of memory, ...). */
struct dfu_model *dfu_model_new(const struct dfu_model_config *cfg, dfu_model_log_fn log, void *payload,
				char *err, size_t errlen);
void dfu_model_free(struct dfu_model *m);

/* Replace the faults (e.g. between phases of a test). */
void dfu_model_set_faults(struct dfu_model *m, const struct dfu_model_faults *f);

/* One control transfer. setup: the 8-byte setup packet (bmRequestType,
 * bRequest, wValue, wIndex, wLength; little endian). data: the data stage,
 * data_len >= wLength bytes (IN: filled by the model; OUT: read). now_ms: the
 * caller's clock (monotonic ms), used to check that the host waited
 * bwPollTimeout. Returns bytes transferred (IN: <= wLength), or -EPIPE,
 * -ENODEV, -ETIMEDOUT, -EINVAL. */
int dfu_model_control(struct dfu_model *m, const uint8_t setup[8], uint8_t *data, size_t data_len,
		      long long now_ms);

/* usbdevfs-level operations the host can do without a control transfer.
 * set_interface: SET_INTERFACE(alt) as USBDEVFS_SETINTERFACE does it (-EINVAL
 * for a bad alt, -ENODEV when gone). reset: a USB port reset; leaves DFU
 * mode from dfuMANIFEST-WAIT-RESET (or dfuMANIFEST on DfuSe), else back to
 * dfuIDLE. */
int dfu_model_set_interface(struct dfu_model *m, unsigned iface, unsigned alt, long long now_ms);
int dfu_model_reset(struct dfu_model *m, long long now_ms);

/* Descriptors built from the config: device (18 bytes), configuration (one
 * interface per alt setting, then the 9-byte DFU functional descriptor).
 * Return the length, or -1 if buf is too short. */
int dfu_model_device_descriptor(const struct dfu_model *m, uint8_t *buf, size_t len);
int dfu_model_config_descriptor(const struct dfu_model *m, uint8_t *buf, size_t len);
const struct dfu_model_config *dfu_model_get_config(const struct dfu_model *m);

/* Memory behind alt setting alt: region r (a "/0xADDR/..." block of its
 * memory string; plain DFU alts have one region at 0). Returns a pointer to
 * its bytes and sets *addr and *len, or NULL when there is no such region. */
const uint8_t *dfu_model_region(const struct dfu_model *m, unsigned alt, unsigned r, uint32_t *addr,
				size_t *len);
/* Copy [addr, addr+len) of alt's memory into buf (0) or -1 if not all inside. */
int dfu_model_read(const struct dfu_model *m, unsigned alt, uint32_t addr, void *buf, size_t len);
/* Preload memory (an existing firmware): no erase check. 0 or -1. */
int dfu_model_load(struct dfu_model *m, unsigned alt, uint32_t addr, const void *buf, size_t len);

struct dfu_model_info {
	int state;                /* enum dfu_model_state */
	int status;               /* enum dfu_model_status */
	unsigned alt;
	uint32_t address;         /* DfuSe address pointer */
	int left;                 /* left DFU mode (leave/manifest/reset) */
	uint32_t jump;            /* DfuSe: where it jumped when it left */
	int gone;                 /* every request now fails with -ENODEV */
	int hung;                 /* a hang fault fired */
	unsigned requests;        /* control transfers seen */
	unsigned erases, writes, uploads, stalls, poll_violations, resets;
};
void dfu_model_get_info(const struct dfu_model *m, struct dfu_model_info *out);
/* "key=value" lines describing the final state (what usbsim dumps). Returns
 * the length written (truncated to len - 1). */
size_t dfu_model_format_state(const struct dfu_model *m, char *buf, size_t len);

const char *dfu_model_state_name(int state);
const char *dfu_model_status_name(int status);

#endif
