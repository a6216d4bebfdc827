/* serialsim: simulated USB serial devices seen by the real libserialport
 * (umockdev testbed + a termios shim), each bridged to a device model.
 *
 * The harness (serialsim.c) owns the testbed, the pty masters and one event
 * loop thread. A device model is one const ops table (model_*.c) registered
 * in models.c. Every model call is made with the harness lock held, from
 * the harness's threads; a model never blocks and never sleeps: it asks for
 * a timer instead.
 *
 * What the model sees, in order, as a kernel driver + USB device would:
 *   open()            the client opened the port (the "kernel" has raised
 *                     DTR and RTS; lines() is also called for that change)
 *   baud(b)           every termios speed change (B0 = 0)
 *   lines(dtr, rts)   every modem-line transition (one call per ioctl, so a
 *                     TIOCMSET that changes both lines is one call)
 *   rx(bytes)         bytes the client wrote, delivered at the line rate of
 *                     the client's current baud setting; rx_baud is the baud
 *                     the client had set when the bytes went out
 *   close()           the last client close (HUPCL drops DTR/RTS: lines()
 *                     is called first)
 *   timer()           the deadline set with env->set_timer passed
 * and it answers through env: tx() queues bytes for the client (paced at the
 * model's current tx baud), log() appends to the event log, unplug()/plug()
 * make the device vanish and come back (re-enumeration, maybe as another
 * USB identity). */
#ifndef SSIM_H
#define SSIM_H

#include <stddef.h>
#include <stdint.h>

struct ssim_usb_id {
	unsigned vid, pid;
	char serial[64];
	char manufacturer[64];
	char product[64];
	int has_tty;            /* 0: a USB device with no serial port (UF2 drive, DFU) */
	int usb_uart;           /* 1: a USB-UART bridge (CP210x, CH340: /dev/ttyUSBn);
				   0: a CDC-ACM device (/dev/ttyACMn) */
};

struct ssim_env {
	void *h;                /* harness private */
	/* Bytes to the client, paced at `baud` bits/s (10 bits per byte);
	 * baud 0 = as fast as the pty takes them. */
	void (*tx)(struct ssim_env *env, const void *buf, size_t len, unsigned baud);
	/* Drop queued, not yet delivered tx bytes (a reset). */
	void (*tx_flush)(struct ssim_env *env);
	/* One line in the event log: "<ms since start> <device> <text>". */
	void (*log)(struct ssim_env *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
	/* The device leaves the bus (the client's reads fail, the node goes). */
	void (*unplug)(struct ssim_env *env);
	/* The device (re)appears with identity id (a new tty name when it has one). */
	void (*plug)(struct ssim_env *env, const struct ssim_usb_id *id);
	/* Call timer() at this monotonic time (ms); 0 cancels. One timer per device. */
	void (*set_timer)(struct ssim_env *env, long long at_ms);
	long long (*now_ms)(void);
	/* Bridge the device's data to a unix stream socket (a MicroPython board:
	 * an emulated micro:bit's console, an mpsim board): from now on the
	 * client's bytes go to the socket instead of rx(), and the socket's
	 * output goes to the client (paced at tx_baud, 0 = unpaced). baud(),
	 * lines(), open() and close() still reach the model. NULL ends the
	 * bridge. Returns 0, or -1 when the socket cannot be reached (logged). */
	int (*bridge)(struct ssim_env *env, const char *unix_path, unsigned tx_baud);
	/* The client's current baud rate and whether the port is open. */
	unsigned (*client_baud)(struct ssim_env *env);
	int (*client_open)(struct ssim_env *env);
};

struct ssim_model_ops {
	const char *name;       /* --device NAME:... on the command line */
	const char *help;       /* one line: the model and its options */
	/* args: the text after "NAME:" ("key=value,key=value"), may be "".
	 * Fills *id with the identity the device first enumerates with.
	 * Returns the model state, or NULL with err filled. */
	void *(*create)(const char *args, struct ssim_env *env, struct ssim_usb_id *id, char *err,
			size_t errlen);
	void (*open)(void *m);
	void (*close)(void *m);
	void (*baud)(void *m, unsigned baud);
	void (*lines)(void *m, int dtr, int rts);
	void (*rx)(void *m, const uint8_t *buf, size_t len, unsigned rx_baud);
	void (*timer)(void *m);
	/* At exit: write the final state (flash image, ...) under dir, named
	 * after the device (dir/NAME.flash ...). May be NULL. */
	void (*dump)(void *m, const char *dir, const char *dev);
	void (*destroy)(void *m);
	/* Optional: the board behind env->bridge() closed the connection (it
	 * reset, e.g. machine.bootloader() on an mpsim board). */
	void (*bridge_closed)(void *m);
};

/* models.c: the registry. */
const struct ssim_model_ops *ssim_model_find(const char *name);
const struct ssim_model_ops *const *ssim_models(void);

/* Helpers for models: "key=value,..." lookup (value copied into out). */
int ssim_arg(const char *args, const char *key, char *out, size_t len);
long ssim_arg_long(const char *args, const char *key, long def);

#endif
