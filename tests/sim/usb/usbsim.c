/* usbsim: simulated USB DFU devices for unmodified libusb.
 *
 *   usbsim [--log FILE] [--dump DIR] [--info FILE]
 *          --device NAME=dfuse|dfu[:key=value,...] ... -- CLIENT ARGS...
 *
 * Builds a umockdev testbed holding one USB device per --device (sysfs
 * attributes busnum/devnum/devpath/serial/..., the binary descriptors, a
 * /dev/bus/usb/BBB/DDD node), answers the client's usbdevfs ioctls (URBs,
 * control transfers, claim/release, set interface, reset, discard) through a
 * DFU device model (dfu_model.h), runs CLIENT under the umockdev preload
 * library, and exits with CLIENT's status after dumping every device's memory
 * to DIR/NAME.bin and its final state to DIR/NAME.state.
 *
 * The key=value options are dfu_model_config_parse()'s (location=B-P gives
 * the USB bus and port path, default 1-<n>). A device that leaves DFU mode
 * (DfuSe leave, manifestation, reset) or hits a "gone" fault is unplugged as
 * a real one is: its ioctls fail with ENODEV, a "remove" uevent is sent and
 * it vanishes from sysfs and /dev.
 *
 * --info FILE gets one line per device once the testbed is up:
 *   NAME DEVNODE LOCATION VID:PID SERIAL
 * The event log (--log, default stderr) has one line per event:
 * "<ms since start> <NAME> <text>".
 *
 * The "remove" uevent is built and sent here (send_uevent), not by
 * umockdev_testbed_uevent(): that one needs this process to run under the
 * preload library (it looks the device up with libudev) and aborts when a
 * client closes its monitor while the event is in flight. usbsim itself is
 * therefore never preloaded; only CLIENT is.
 *
 * umockdev's sockets live under its testbed directory (TMPDIR/umockdev.XXXXXX)
 * and a socket path has at most 107 bytes: a relative TMPDIR is made absolute
 * and one too long for the sockets is replaced by /tmp (testbed_tmpdir).
 *
 * Threads: main (spawns and waits for CLIENT), a loop that unplugs devices,
 * and umockdev's ioctl thread. Device state is guarded by one mutex. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <sys/ioctl.h>
#include <linux/usbdevice_fs.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <umockdev.h>
#include <unistd.h>

#include "dfu_model.h"

#define USIM_MAX_DEV 8
#define USIM_MAX_URB 64

extern char **environ;

struct urb {
	UMockdevIoctlData *urb, *buf;
	unsigned long addr;         /* the client's urb address (DISCARDURB names it) */
	int status, actual;
	int done;                   /* 0: never completes (hang) */
};

struct dev {
	char name[32];
	struct harness *h;
	struct dfu_model *m;
	char spec[1024];
	unsigned bus, devnum;
	char location[32];
	char sys[256];              /* /sys/devices/... */
	char node[48];              /* /dev/bus/usb/BBB/DDD */
	UMockdevIoctlBase *ioh;
	int plugged, gone, want_unplug;
	const char *why;            /* why it was unplugged */
	struct urb urbs[USIM_MAX_URB];
	int nurb;
};

struct harness {
	pthread_mutex_t lock;
	UMockdevTestbed *tb;
	struct dev dev[USIM_MAX_DEV];
	int ndev;
	int wake[2];
	volatile int stop;
	FILE *log;
	long long t0;
	unsigned long long seqnum;  /* of the uevents sent */
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hlog(struct harness *h, const struct dev *d, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void hlog(struct harness *h, const struct dev *d, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(h->log, "%lld %s %s\n", now_ms() - h->t0, d ? d->name : "-", line);
	fflush(h->log);
}

static void model_log(void *payload, const char *line)
{
	struct dev *d = payload;
	hlog(d->h, d, "%s", line);
}

static void wake(struct harness *h)
{
	char c = 1;
	ssize_t r = write(h->wake[1], &c, 1);
	(void)r;
}

/* After a request: a device that left DFU mode or is gone gets unplugged. */
static void check_gone(struct dev *d)
{
	struct dfu_model_info st;
	dfu_model_get_info(d->m, &st);
	if ((st.left || st.gone) && !d->gone) {
		d->gone = 1;
		d->want_unplug = 1;
		d->why = st.left ? "left DFU mode" : "gone (fault)";
		wake(d->h);
	}
}

/* -------------------------------------------------------------- ioctls */

static UMockdevIoctlData *resolve(UMockdevIoctlData *parent, size_t off, size_t len)
{
	GError *err = NULL;
	UMockdevIoctlData *d = umockdev_ioctl_data_resolve(parent, off, len, &err);
	if (err) {
		g_error_free(err);
		return NULL;
	}
	return d;
}

static void urb_free(struct urb *u)
{
	if (u->buf)
		umockdev_ioctl_data_unref(u->buf);
	if (u->urb)
		umockdev_ioctl_data_unref(u->urb);
	memset(u, 0, sizeof *u);
}

/* One control transfer through the model. data: the data stage. Returns
 * bytes or a negative errno; IN data is written to *in. */
static int do_control(struct dev *d, const uint8_t setup[8], const uint8_t *out, uint8_t *in)
{
	size_t wlen = setup[6] | (size_t)setup[7] << 8;
	uint8_t buf[65536];
	if (!(setup[0] & 0x80) && wlen)
		memcpy(buf, out, wlen);
	int r = dfu_model_control(d->m, setup, buf, wlen, now_ms());
	if (r > 0 && (setup[0] & 0x80))
		memcpy(in, buf, (size_t)r);
	check_gone(d);
	return r;
}

static int submit_urb(struct dev *d, UMockdevIoctlClient *c, int *err)
{
	UMockdevIoctlData *urbd = resolve(umockdev_ioctl_client_get_arg(c), 0, sizeof(struct usbdevfs_urb));
	if (!urbd)
		return *err = EFAULT, -1;
	struct usbdevfs_urb *u = (struct usbdevfs_urb *)urbd->data;
	if (u->type != USBDEVFS_URB_TYPE_CONTROL || (u->endpoint & 0x7f) != 0 || u->buffer_length < 8 ||
	    u->buffer_length > 8 + 65535 || d->nurb >= USIM_MAX_URB) {
		hlog(d->h, d, "SUBMITURB type %u ep 0x%02x len %d refused (EINVAL)", u->type, u->endpoint,
		     u->buffer_length);
		umockdev_ioctl_data_unref(urbd);
		return *err = EINVAL, -1;
	}
	UMockdevIoctlData *bufd = resolve(urbd, offsetof(struct usbdevfs_urb, buffer), (size_t)u->buffer_length);
	if (!bufd) {
		umockdev_ioctl_data_unref(urbd);
		return *err = EFAULT, -1;
	}
	const uint8_t *setup = bufd->data;
	size_t wlen = setup[6] | (size_t)setup[7] << 8;
	if (8 + wlen > (size_t)u->buffer_length) {
		umockdev_ioctl_data_unref(bufd);
		umockdev_ioctl_data_unref(urbd);
		return *err = EINVAL, -1;
	}
	uint8_t in[65536];
	int r = do_control(d, setup, setup + 8, in);
	if (r == -ENODEV) {
		umockdev_ioctl_data_unref(bufd);
		umockdev_ioctl_data_unref(urbd);
		return *err = ENODEV, -1;
	}
	struct urb *q = &d->urbs[d->nurb++];
	q->urb = urbd;
	q->buf = bufd;
	q->addr = urbd->client_addr;
	q->done = r != -ETIMEDOUT;
	q->status = r < 0 ? r : 0;
	q->actual = r < 0 ? 0 : r;
	if (r > 0 && (setup[0] & 0x80))
		umockdev_ioctl_data_update(bufd, 8, in, r);
	return 0;
}

static int reap_urb(struct dev *d, UMockdevIoctlClient *c, int *err)
{
	int i;
	for (i = 0; i < d->nurb && !d->urbs[i].done; i++)
		;
	if (i == d->nurb)
		return *err = d->gone && !d->nurb ? ENODEV : EAGAIN, -1;
	struct urb *q = &d->urbs[i];
	UMockdevIoctlData *arg = resolve(umockdev_ioctl_client_get_arg(c), 0, sizeof(void *));
	if (!arg)
		return *err = EFAULT, -1;
	umockdev_ioctl_data_update(q->urb, offsetof(struct usbdevfs_urb, status), (guint8 *)&q->status,
				   sizeof q->status);
	umockdev_ioctl_data_update(q->urb, offsetof(struct usbdevfs_urb, actual_length), (guint8 *)&q->actual,
				   sizeof q->actual);
	umockdev_ioctl_data_set_ptr(arg, 0, q->urb);
	umockdev_ioctl_data_unref(arg);
	urb_free(q);
	memmove(&d->urbs[i], &d->urbs[i + 1], (size_t)(d->nurb - i - 1) * sizeof d->urbs[0]);
	d->nurb--;
	memset(&d->urbs[d->nurb], 0, sizeof d->urbs[0]);
	return 0;
}

static int discard_urb(struct dev *d, UMockdevIoctlClient *c, int *err)
{
	UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(c);
	unsigned long addr;
	memcpy(&addr, arg->data, sizeof addr);
	for (int i = 0; i < d->nurb; i++) {
		struct urb *q = &d->urbs[i];
		if (q->addr != addr)
			continue;
		if (q->done)
			return *err = EINVAL, -1; /* completed already: nothing to discard */
		q->done = 1;
		q->status = -ENOENT;
		q->actual = 0;
		hlog(d->h, d, "urb discarded by the host (timeout)");
		return 0;
	}
	return *err = EINVAL, -1;
}

/* The control transfer of USBDEVFS_CONTROL (synchronous). */
static int sync_control(struct dev *d, UMockdevIoctlClient *c, int *err)
{
	UMockdevIoctlData *ctd = resolve(umockdev_ioctl_client_get_arg(c), 0, sizeof(struct usbdevfs_ctrltransfer));
	if (!ctd)
		return *err = EFAULT, -1;
	struct usbdevfs_ctrltransfer ct;
	memcpy(&ct, ctd->data, sizeof ct);
	uint8_t setup[8] = {ct.bRequestType, ct.bRequest, (uint8_t)ct.wValue, (uint8_t)(ct.wValue >> 8),
			    (uint8_t)ct.wIndex, (uint8_t)(ct.wIndex >> 8), (uint8_t)ct.wLength,
			    (uint8_t)(ct.wLength >> 8)};
	UMockdevIoctlData *dd = NULL;
	if (ct.wLength && !(dd = resolve(ctd, offsetof(struct usbdevfs_ctrltransfer, data), ct.wLength))) {
		umockdev_ioctl_data_unref(ctd);
		return *err = EFAULT, -1;
	}
	uint8_t in[65536];
	int r = do_control(d, setup, dd ? dd->data : NULL, in);
	if (r > 0 && (ct.bRequestType & 0x80))
		umockdev_ioctl_data_update(dd, 0, in, r);
	if (dd)
		umockdev_ioctl_data_unref(dd);
	umockdev_ioctl_data_unref(ctd);
	if (r < 0)
		return *err = -r, -1;
	return r;
}

static int u32_arg(UMockdevIoctlClient *c, unsigned *out)
{
	UMockdevIoctlData *a = resolve(umockdev_ioctl_client_get_arg(c), 0, sizeof *out);
	if (!a)
		return -1;
	memcpy(out, a->data, sizeof *out);
	umockdev_ioctl_data_unref(a);
	return 0;
}

static gboolean on_ioctl(UMockdevIoctlBase *base, UMockdevIoctlClient *c, gpointer payload)
{
	(void)base;
	struct dev *d = payload;
	struct harness *h = d->h;
	unsigned long req = umockdev_ioctl_client_get_request(c);
	int rc = 0, err = 0;
	unsigned v;

	pthread_mutex_lock(&h->lock);
	if (d->gone && req != USBDEVFS_REAPURBNDELAY && req != USBDEVFS_REAPURB &&
	    req != USBDEVFS_DISCARDURB) {
		rc = -1, err = ENODEV;
		goto out;
	}
	switch (req) {
	case USBDEVFS_GET_CAPABILITIES: {
		UMockdevIoctlData *a = resolve(umockdev_ioctl_client_get_arg(c), 0, sizeof(uint32_t));
		uint32_t caps = USBDEVFS_CAP_ZERO_PACKET | USBDEVFS_CAP_BULK_CONTINUATION |
				USBDEVFS_CAP_NO_PACKET_SIZE_LIM | USBDEVFS_CAP_REAP_AFTER_DISCONNECT;
		if (!a) {
			rc = -1, err = EFAULT;
			break;
		}
		umockdev_ioctl_data_update(a, 0, (guint8 *)&caps, sizeof caps);
		umockdev_ioctl_data_unref(a);
		break;
	}
	case USBDEVFS_GETDRIVER:
	case USBDEVFS_IOCTL:
		rc = -1, err = ENODATA;    /* no kernel driver bound */
		break;
	case USBDEVFS_CLAIMINTERFACE:
	case USBDEVFS_RELEASEINTERFACE:
		if (u32_arg(c, &v) < 0) {
			rc = -1, err = EFAULT;
			break;
		}
		if (v != 0) {
			rc = -1, err = ENOENT;
			break;
		}
		hlog(h, d, "%s interface %u", req == USBDEVFS_CLAIMINTERFACE ? "claim" : "release", v);
		break;
	case USBDEVFS_DISCONNECT_CLAIM:
		hlog(h, d, "claim interface 0");
		break;
	case USBDEVFS_SETINTERFACE: {
		UMockdevIoctlData *a = resolve(umockdev_ioctl_client_get_arg(c), 0, sizeof(struct usbdevfs_setinterface));
		struct usbdevfs_setinterface si;
		if (!a) {
			rc = -1, err = EFAULT;
			break;
		}
		memcpy(&si, a->data, sizeof si);
		umockdev_ioctl_data_unref(a);
		int r = dfu_model_set_interface(d->m, si.interface, si.altsetting, now_ms());
		check_gone(d);
		if (r < 0)
			rc = -1, err = -r;
		break;
	}
	case USBDEVFS_SETCONFIGURATION:
		if (u32_arg(c, &v) < 0 || v > 1)
			rc = -1, err = EINVAL;
		break;
	case USBDEVFS_RESET: {
		hlog(h, d, "USB reset requested");
		int r = dfu_model_reset(d->m, now_ms());
		check_gone(d);
		if (r < 0)
			rc = -1, err = -r;
		break;
	}
	case USBDEVFS_CLEAR_HALT:
	case USBDEVFS_RESETEP:
		break;
	case USBDEVFS_GET_SPEED:
		rc = 2; /* USB_SPEED_FULL */
		break;
	case USBDEVFS_CONTROL:
		rc = sync_control(d, c, &err);
		break;
	case USBDEVFS_SUBMITURB:
		rc = submit_urb(d, c, &err);
		break;
	case USBDEVFS_REAPURB:
	case USBDEVFS_REAPURBNDELAY:
		rc = reap_urb(d, c, &err);
		break;
	case USBDEVFS_DISCARDURB:
		rc = discard_urb(d, c, &err);
		break;
	default:
		hlog(h, d, "ioctl 0x%lx not emulated (ENOTTY)", req);
		rc = -1, err = ENOTTY;
		break;
	}
out:
	pthread_mutex_unlock(&h->lock);
	umockdev_ioctl_client_complete(c, rc, rc < 0 ? err : 0);
	return TRUE;
}

/* ---------------------------------------------------------- plug / unplug */

static void hexstr(char *out, const uint8_t *b, size_t n)
{
	static const char x[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = x[b[i] >> 4];
		out[2 * i + 1] = x[b[i] & 15];
	}
	out[2 * n] = 0;
}

/* "B-P[.P...]" -> bus number, ok */
static int parse_location(const char *loc, unsigned *bus)
{
	char *end;
	unsigned long b = strtoul(loc, &end, 10);
	if (end == loc || *end != '-' || b == 0 || b > 127)
		return -1;
	for (const char *p = end + 1; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p == '.' && p[1] && p[-1] != '-' && p[-1] != '.')))
			return -1;
	if (!end[1])
		return -1;
	*bus = (unsigned)b;
	return 0;
}

static int plug(struct harness *h, struct dev *d)
{
	const struct dfu_model_config *c = dfu_model_get_config(d->m);
	uint8_t desc[18 + 9 + 9 * DFU_MODEL_MAX_ALT + 9];
	int n1 = dfu_model_device_descriptor(d->m, desc, sizeof desc);
	int n2 = dfu_model_config_descriptor(d->m, desc + n1, sizeof desc - (size_t)n1);
	if (n1 < 0 || n2 < 0)
		return -1;
	char hex[2 * sizeof desc + 1];
	hexstr(hex, desc, (size_t)(n1 + n2));
	/* the parent chain of a hub port path: usb1/1-3/1-3.2 */
	char path[256];
	int k = snprintf(path, sizeof path, "/sys/devices/pci0000:00/0000:00:14.0/usb%u", d->bus);
	for (const char *p = d->location; (p = strchr(p, '.')); p++)
		k += snprintf(path + k, sizeof path - (size_t)k, "/%.*s", (int)(p - d->location), d->location);
	snprintf(path + k, sizeof path - (size_t)k, "/%s", d->location);
	snprintf(d->sys, sizeof d->sys, "%s", path);
	snprintf(d->node, sizeof d->node, "/dev/bus/usb/%03u/%03u", d->bus, d->devnum);
	const char *devpath = strchr(d->location, '-') + 1;
	char *s = g_strdup_printf(
		"P: %s\nN: %s=%s\nE: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\nE: DRIVER=usb\nE: DEVNAME=%s\n"
		"E: BUSNUM=%03u\nE: DEVNUM=%03u\nE: PRODUCT=%x/%x/%x\nE: TYPE=0/0/0\n"
		"A: idVendor=%04x\nA: idProduct=%04x\nA: bcdDevice=%04x\nA: serial=%s\nA: manufacturer=%s\n"
		"A: product=%s\nA: busnum=%u\nA: devnum=%u\nA: devpath=%s\nA: speed=12\nA: version= 2.00\n"
		"A: bDeviceClass=00\nA: bDeviceSubClass=00\nA: bDeviceProtocol=00\nA: bMaxPacketSize0=64\n"
		"A: bNumConfigurations=1\nA: bConfigurationValue=1\nA: bNumInterfaces= 1\nA: maxchild=0\n"
		"H: descriptors=%s\n\n",
		path + 4, d->node + 5, hex, d->node, d->bus, d->devnum, c->vid, c->pid, c->bcd_device, c->vid, c->pid,
		c->bcd_device, c->serial, c->manufacturer, c->product, d->bus, d->devnum, devpath, hex);
	GError *err = NULL;
	gboolean ok = umockdev_testbed_add_from_string(h->tb, s, &err);
	g_free(s);
	if (!ok) {
		fprintf(stderr, "usbsim: device %s: testbed: %s\n", d->name, err ? err->message : "?");
		if (err)
			g_error_free(err);
		return -1;
	}
	d->ioh = umockdev_ioctl_base_new();
	g_signal_connect(d->ioh, "handle-ioctl", G_CALLBACK(on_ioctl), d);
	if (!umockdev_testbed_attach_ioctl(h->tb, d->node, d->ioh, &err)) {
		fprintf(stderr, "usbsim: device %s: attach ioctl %s: %s\n", d->name, d->node, err ? err->message : "?");
		if (err)
			g_error_free(err);
		return -1;
	}
	d->plugged = 1;
	hlog(h, d, "plug %04x:%04x serial=%s location=%s %s (%s, %d alt)", c->vid, c->pid, c->serial, d->location,
	     d->node, c->dfuse ? "DfuSe" : "DFU 1.1", c->n_alt);
	return 0;
}

/* ------------------------------------------------------------- uevents */

/* The header libudev puts before a uevent's properties (systemd's
 * device-monitor.c, monitor_netlink_header); receivers check prefix, magic
 * and the subsystem/devtype hashes (their socket filter). */
struct uevent_hdr {
	char prefix[8];             /* "libudev" */
	uint32_t magic;             /* 0xfeedcafe, network order */
	uint32_t header_size;
	uint32_t properties_off;
	uint32_t properties_len;
	uint32_t filter_subsystem_hash; /* network order */
	uint32_t filter_devtype_hash;   /* network order */
	uint32_t filter_tag_bloom_hi;
	uint32_t filter_tag_bloom_lo;
};

/* MurmurHash2 (seed = length), as libudev hashes the filter strings. */
static uint32_t murmur2(const char *str)
{
	const uint32_t m = 0x5bd1e995;
	size_t len = strlen(str);
	const unsigned char *p = (const unsigned char *)str;
	uint32_t hash = (uint32_t)len;
	for (; len >= 4; len -= 4, p += 4) {
		uint32_t k;
		memcpy(&k, p, 4);
		k *= m;
		k ^= k >> 24;
		k *= m;
		hash = hash * m ^ k;
	}
	switch (len) {
	case 3:
		hash ^= (uint32_t)p[2] << 16;
		/* fall through */
	case 2:
		hash ^= (uint32_t)p[1] << 8;
		/* fall through */
	case 1:
		hash ^= p[0];
		hash *= m;
	}
	hash ^= hash >> 13;
	hash *= m;
	return hash ^ (hash >> 15);
}

/* Appends "KEY=VALUE\0"; returns the new length, or sizeof buf's worth on overflow. */
static size_t prop_add(char *buf, size_t size, size_t off, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static size_t prop_add(char *buf, size_t size, size_t off, const char *fmt, ...)
{
	if (off >= size)
		return size;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + off, size - off, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= size - off ? size : off + (size_t)n + 1;
}

/* Sends uevent ACTION for device d to every uevent listener of the testbed
 * (the sockets umockdev's preload library binds as TESTBED/eventN for a
 * client's udev monitor, libusb's hotplug among them). A listener that has
 * gone away meanwhile (ECONNREFUSED, ENOENT) is skipped; its socket file is
 * removed as umockdev does. Logs the number of listeners reached. */
static void send_uevent(struct harness *h, struct dev *d, const char *action)
{
	const struct dfu_model_config *c = dfu_model_get_config(d->m);
	char props[1024];
	size_t n = 0;
	int delivered = 0, gone = 0;
	pthread_mutex_lock(&h->lock);
	unsigned long long seq = ++h->seqnum;
	pthread_mutex_unlock(&h->lock);
	n = prop_add(props, sizeof props, n, "ACTION=%s", action);
	n = prop_add(props, sizeof props, n, "DEVPATH=%s", d->sys + 4); /* without "/sys" */
	n = prop_add(props, sizeof props, n, "SUBSYSTEM=usb");
	n = prop_add(props, sizeof props, n, "DEVNAME=%s", d->node);
	n = prop_add(props, sizeof props, n, "DEVTYPE=usb_device");
	n = prop_add(props, sizeof props, n, "PRODUCT=%x/%x/%x", c->vid, c->pid, c->bcd_device);
	n = prop_add(props, sizeof props, n, "TYPE=0/0/0");
	n = prop_add(props, sizeof props, n, "BUSNUM=%03u", d->bus);
	n = prop_add(props, sizeof props, n, "DEVNUM=%03u", d->devnum);
	n = prop_add(props, sizeof props, n, "SEQNUM=%llu", seq);
	char note[PATH_MAX + 64] = "";
	if (n >= sizeof props) {
		snprintf(note, sizeof note, "; not sent: properties too long");
		goto out;
	}
	struct uevent_hdr hdr = {
		.prefix = "libudev",
		.magic = htonl(0xfeedcafe),
		.header_size = sizeof hdr,
		.properties_off = sizeof hdr,
		.properties_len = (uint32_t)n,
		.filter_subsystem_hash = htonl(murmur2("usb")),
		.filter_devtype_hash = htonl(murmur2("usb_device")),
	};
	struct iovec iov[2] = {{.iov_base = &hdr, .iov_len = sizeof hdr}, {.iov_base = props, .iov_len = n}};

	char *root = umockdev_testbed_get_root_dir(h->tb);
	char pattern[PATH_MAX];
	snprintf(pattern, sizeof pattern, "%s/event[0-9]*", root);
	g_free(root);
	glob_t gl;
	int g = glob(pattern, GLOB_NOSORT, NULL, &gl);
	for (size_t i = 0; g == 0 && i < gl.gl_pathc; i++) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		if (strlen(gl.gl_pathv[i]) >= sizeof sa.sun_path) {
			snprintf(note, sizeof note, "; socket path too long: %s", gl.gl_pathv[i]);
			continue;
		}
		memcpy(sa.sun_path, gl.gl_pathv[i], strlen(gl.gl_pathv[i]) + 1);
		int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(note, sizeof note, "; socket: %s", strerror(errno));
			break;
		}
		struct msghdr msg = {.msg_name = &sa, .msg_namelen = sizeof sa, .msg_iov = iov, .msg_iovlen = 2};
		ssize_t r;
		while ((r = sendmsg(fd, &msg, 0)) < 0 && errno == EINTR)
			;
		if (r >= 0) {
			delivered++;
		} else if (errno == ECONNREFUSED || errno == ENOENT) {
			gone++;     /* the client closed its monitor (or exited) */
			if (errno == ECONNREFUSED)
				unlink(sa.sun_path);
		} else {
			snprintf(note, sizeof note, "; %s: %s", sa.sun_path, strerror(errno));
		}
		close(fd);
	}
	if (g == 0)
		globfree(&gl);
	else if (g != GLOB_NOMATCH)
		snprintf(note, sizeof note, "; cannot list the listeners %s", pattern);
out:
	pthread_mutex_lock(&h->lock);
	hlog(h, d, "uevent %s sent to %d listener(s), %d gone%s", action, delivered, gone, note);
	pthread_mutex_unlock(&h->lock);
}

/* Called from the loop without the lock. */
static void unplug(struct harness *h, struct dev *d)
{
	if (!d->plugged)
		return;
	d->plugged = 0;
	/* the kernel's order (device_del): the "remove" uevent, then the sysfs directory goes */
	send_uevent(h, d, "remove");
	umockdev_testbed_remove_device(h->tb, d->sys);
	/* umockdev leaves the bus link behind (a later device at the same location would trip over it) */
	char *root = umockdev_testbed_get_root_dir(h->tb);
	char link[512];
	snprintf(link, sizeof link, "%s/sys/bus/usb/devices/%s", root, d->location);
	unlink(link);
	g_free(root);
	pthread_mutex_lock(&h->lock);
	hlog(h, d, "unplug %s (%s)", d->node, d->why ? d->why : "harness exit");
	pthread_mutex_unlock(&h->lock);
}

static void *loop_main(void *arg)
{
	struct harness *h = arg;
	while (!h->stop) {
		struct pollfd pf = {.fd = h->wake[0], .events = POLLIN};
		if (poll(&pf, 1, 200) > 0) {
			char junk[64];
			while (read(h->wake[0], junk, sizeof junk) > 0)
				;
		}
		for (int i = 0; i < h->ndev; i++) {
			struct dev *d = &h->dev[i];
			pthread_mutex_lock(&h->lock);
			int go = d->want_unplug;
			d->want_unplug = 0;
			pthread_mutex_unlock(&h->lock);
			if (go)
				unplug(h, d);
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------- main */

static int usage(void)
{
	fprintf(stderr,
		"usage: usbsim [--log FILE] [--dump DIR] [--info FILE]\n"
		"              --device NAME=dfuse|dfu[:key=value,...] ... -- CLIENT ARGS...\n"
		"keys: vid pid bcd serial manufacturer product location=B-P personality=rom|mboot\n"
		"      transfer attr detach poll erase_poll size trace=1 alt=NAME|layout=@MEMSTRING (repeat)\n"
		"      fault=stall@N+stall-erase+errprog@0xLO-0xHI+errverify+gone@N+hang@N\n");
	return 2;
}

/* TMPDIR for umockdev's testbed directory: absolute (clients may change
 * directory; umockdev resolves UMOCKDEV_DIR as given) and short enough for
 * the socket paths under it (TESTBED/ioctl/dev/bus/usb/BBB/DDD, TESTBED/eventN:
 * at most 107 bytes). A longer one (a deeply nested build directory) gives way
 * to /tmp. out gets the absolute TMPDIR for the client. */
static int testbed_tmpdir(char *out, size_t size, const char **use)
{
	const char *t = getenv("TMPDIR");
	if (!t || !*t)
		t = "/tmp";
	if (t[0] == '/') {
		snprintf(out, size, "%s", t);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof cwd))
			return -1;
		snprintf(out, size, "%s/%s", cwd, t);
	}
	/* "/umockdev.XXXXXX" + "/ioctl/dev/bus/usb/BBB/DDD", with room to spare */
	*use = strlen(out) + 16 + 32 < sizeof ((struct sockaddr_un *)0)->sun_path ? out : "/tmp";
	return 0;
}

static int spawn_client(pid_t *pid, char **argv)
{
	const char *old = getenv("LD_PRELOAD");
	const char *asan = getenv("ASAN_OPTIONS");
	char *e_pre = g_strdup_printf("LD_PRELOAD=libumockdev-preload.so.0%s%s", old && *old ? ":" : "",
				      old ? old : "");
	char *e_asan = g_strdup_printf("ASAN_OPTIONS=%s%sverify_asan_link_order=0", asan ? asan : "",
				       asan && *asan ? ":" : "");
	size_t n = 0, k = 0;
	while (environ[n])
		n++;
	char **envp = calloc(n + 3, sizeof *envp);
	if (!envp)
		return ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) && strncmp(environ[i], "ASAN_OPTIONS=", 13))
			envp[k++] = environ[i];
	envp[k++] = e_pre;
	envp[k++] = e_asan;
	envp[k] = NULL;
	int rc = posix_spawnp(pid, argv[0], NULL, NULL, argv, envp);
	free(envp);
	g_free(e_pre);
	g_free(e_asan);
	return rc;
}

static int write_file(const char *dir, const char *name, const char *ext, const void *buf, size_t len)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s%s", dir, name, ext);
	FILE *f = fopen(path, "wb");
	if (!f) {
		perror(path);
		return -1;
	}
	int ok = fwrite(buf, 1, len, f) == len;
	if (fclose(f) != 0 || !ok) {
		perror(path);
		return -1;
	}
	return 0;
}

static void dump(struct dev *d, const char *dir)
{
	const struct dfu_model_config *c = dfu_model_get_config(d->m);
	uint32_t addr;
	size_t len;
	for (int a = 0; a < c->n_alt; a++) {
		const uint8_t *mem = dfu_model_region(d->m, (unsigned)a, 0, &addr, &len);
		char ext[32];
		snprintf(ext, sizeof ext, a ? ".alt%d.bin" : ".bin", a);
		if (mem)
			write_file(dir, d->name, ext, mem, len);
	}
	char st[1024];
	size_t n = dfu_model_format_state(d->m, st, sizeof st);
	n += (size_t)snprintf(st + n, sizeof st - n, "unplugged=%d\nlocation=%s\nserial=%s\nbase=0x%08x\n",
			      !d->plugged, d->location, c->serial,
			      dfu_model_region(d->m, 0, 0, &addr, &len) ? addr : 0);
	write_file(dir, d->name, ".state", st, n < sizeof st ? n : sizeof st - 1);
}

int main(int argc, char **argv)
{
	static struct harness H;
	struct harness *h = &H;
	const char *log_path = NULL, *dump_dir = NULL, *info_path = NULL;
	int ci = 1;
	h->log = stderr;
	pthread_mutex_init(&h->lock, NULL);
	for (; ci < argc; ci++) {
		const char *a = argv[ci], *v = ci + 1 < argc ? argv[ci + 1] : NULL;
		if (!strcmp(a, "--")) {
			ci++;
			break;
		} else if (v && !strcmp(a, "--log")) {
			log_path = v, ci++;
		} else if (v && !strcmp(a, "--dump")) {
			dump_dir = v, ci++;
		} else if (v && !strcmp(a, "--info")) {
			info_path = v, ci++;
		} else if (v && !strcmp(a, "--device") && h->ndev < USIM_MAX_DEV) {
			struct dev *d = &h->dev[h->ndev];
			const char *eq = strchr(v, '=');
			if (!eq || eq == v || (size_t)(eq - v) >= sizeof d->name || strlen(eq + 1) >= sizeof d->spec)
				return usage();
			memcpy(d->name, v, (size_t)(eq - v));
			memcpy(d->spec, eq + 1, strlen(eq + 1) + 1);
			d->h = h;
			h->ndev++;
			ci++;
		} else {
			return usage();
		}
	}
	if (ci >= argc || h->ndev == 0)
		return usage();
	if (log_path && !(h->log = fopen(log_path, "w"))) {
		perror(log_path);
		return 2;
	}
	h->t0 = now_ms();
	signal(SIGPIPE, SIG_IGN);
	if (pipe2(h->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		perror("usbsim");
		return 2;
	}
	unsigned next_devnum[128] = {0};
	for (int i = 0; i < h->ndev; i++) {
		struct dev *d = &h->dev[i];
		struct dfu_model_config cfg;
		char err[256] = "";
		if (dfu_model_config_parse(&cfg, d->spec, err, sizeof err) < 0 ||
		    !(d->m = dfu_model_new(&cfg, model_log, d, err, sizeof err))) {
			fprintf(stderr, "usbsim: device %s: %s\n", d->name, err);
			return 2;
		}
		if (cfg.location[0])
			snprintf(d->location, sizeof d->location, "%s", cfg.location);
		else
			snprintf(d->location, sizeof d->location, "1-%d", i + 1);
		if (parse_location(d->location, &d->bus) < 0) {
			fprintf(stderr, "usbsim: device %s: location \"%s\": want BUS-PORT[.PORT...]\n", d->name,
				d->location);
			return 2;
		}
		for (int j = 0; j < i; j++)
			if (!strcmp(h->dev[j].location, d->location)) {
				fprintf(stderr, "usbsim: devices %s and %s share location %s\n", h->dev[j].name,
					d->name, d->location);
				return 2;
			}
		d->devnum = next_devnum[d->bus] ? ++next_devnum[d->bus] : (next_devnum[d->bus] = 2);
	}
	char tmpdir[PATH_MAX];
	const char *tb_tmp;
	if (testbed_tmpdir(tmpdir, sizeof tmpdir, &tb_tmp) < 0) {
		perror("usbsim: TMPDIR");
		return 2;
	}
	setenv("TMPDIR", tb_tmp, 1);   /* read once, by the testbed's g_dir_make_tmp() */
	h->tb = umockdev_testbed_new();
	setenv("TMPDIR", tmpdir, 1);
	for (int i = 0; i < h->ndev; i++)
		if (plug(h, &h->dev[i]) < 0)
			return 2;
	if (info_path) {
		FILE *f = fopen(info_path, "w");
		if (!f) {
			perror(info_path);
			return 2;
		}
		for (int i = 0; i < h->ndev; i++) {
			const struct dev *d = &h->dev[i];
			const struct dfu_model_config *c = dfu_model_get_config(d->m);
			fprintf(f, "%s %s %s %04x:%04x %s\n", d->name, d->node, d->location, c->vid, c->pid,
				c->serial[0] ? c->serial : "-");
		}
		fclose(f);
	}

	pthread_t loop;
	pthread_create(&loop, NULL, loop_main, h);
	pid_t pid;
	int rc = spawn_client(&pid, argv + ci);
	int status = 0, code;
	if (rc != 0) {
		fprintf(stderr, "usbsim: cannot run %s: %s\n", argv[ci], strerror(rc));
		code = 127;
	} else {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	}
	h->stop = 1;
	wake(h);
	pthread_join(loop, NULL);
	for (int i = 0; i < h->ndev; i++)
		if (h->dev[i].want_unplug)
			unplug(h, &h->dev[i]);
	pthread_mutex_lock(&h->lock);
	hlog(h, NULL, "client exited with %d", code);
	for (int i = 0; i < h->ndev; i++) {
		struct dev *d = &h->dev[i];
		if (dump_dir)
			dump(d, dump_dir);
	}
	pthread_mutex_unlock(&h->lock);
	for (int i = 0; i < h->ndev; i++) {
		struct dev *d = &h->dev[i];
		if (d->ioh) {
			umockdev_testbed_detach_ioctl(h->tb, d->node, NULL);
			g_object_unref(d->ioh);
		}
		for (int k = 0; k < d->nurb; k++)
			urb_free(&d->urbs[k]);
		dfu_model_free(d->m);
	}
	g_object_unref(h->tb);
	if (h->log != stderr)
		fclose(h->log);
	return code;
}
