/* serialsim: simulated USB serial devices for unmodified libserialport.
 *
 *   serialsim [--log FILE] [--dump DIR] [--info FILE]
 *             --device NAME=MODEL[:key=value,...] ... -- CLIENT ARGS...
 *
 * Builds a umockdev testbed holding one USB device per --device (sysfs
 * attributes, an interface, a tty whose /dev node is a pty), answers the
 * client's tty ioctls (termios, modem lines) itself, bridges every pty to a
 * device model (ssim.h, models.c), runs CLIENT under the umockdev preload
 * library and a termios shim, and exits with CLIENT's status after the
 * models have dumped their final state into --dump DIR.
 *
 * --info FILE gets one line per device once the testbed is up:
 *   NAME DEVNODE LOCATION VID:PID SERIAL
 * (DEVNODE "-" when the device has no tty). The event log (--log, default
 * stderr) has one line per event: "<ms since start> <NAME> <text>".
 *
 * Threads: main (spawns and waits for CLIENT), the event loop (pty I/O,
 * pacing, timers, bridges, inotify, plug/unplug), and umockdev's ioctl
 * thread. Device and model state is guarded by one mutex. */
#include <asm/termbits.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <umockdev.h>
#include <unistd.h>

#include "ssim.h"

#ifndef SSIM_SHIM_PATH
#define SSIM_SHIM_PATH "libssim_shim.so"
#endif

#define SSIM_MAX_DEV 16
#define SSIM_QMAX (1u << 20)    /* tx bytes queued per device at most */

extern char **environ;

struct ktermios2 {
	tcflag_t c_iflag, c_oflag, c_cflag, c_lflag;
	cc_t c_line;
	cc_t c_cc[19];
	speed_t c_ispeed, c_ospeed;
};

struct dev {
	char name[32];
	int index;                  /* USB port number on bus 1: location "1-<index>" */
	const struct ssim_model_ops *ops;
	void *m;
	struct ssim_env env;
	struct ssim_usb_id id;
	/* the current enumeration */
	int plugged;
	unsigned devnum;
	char tty[32];               /* "ttyACM0", "" when none */
	char devnode[48];           /* "/dev/ttyACM0" */
	char sys_usb[160], sys_tty[224];
	char byid[256];             /* testbed path of the by-id link, "" if none */
	int master, keep;           /* pty master; a slave fd we hold */
	int wd;                     /* inotify watch on the pty slave */
	UMockdevIoctlBase *ioh;
	/* the port as the client sees it */
	int opens;
	unsigned baud;
	int dtr, rts, brk;
	struct ktermios2 tios;
	/* pacing */
	double rx_t, tx_t;          /* last credit update (s, monotonic); 0 = idle */
	double rx_credit, tx_credit;
	uint8_t *q;
	size_t qlen, qcap;
	unsigned qbaud;
	long long timer_at;
	int bridge_fd;
	unsigned bridge_baud;
	int want_unplug, want_plug;
	struct ssim_usb_id plug_id;
};

struct harness {
	pthread_mutex_t lock;
	UMockdevTestbed *tb;
	char *root;
	struct dev dev[SSIM_MAX_DEV];
	int ndev;
	int ino;                    /* inotify fd */
	int wake[2];                /* pipe: wake the loop */
	volatile int stop;
	FILE *log;
	long long t0;
	unsigned n_acm, n_usb, next_devnum;
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void wake(struct harness *h)
{
	char c = 1;
	ssize_t r = write(h->wake[1], &c, 1);
	(void)r;
}

static void hlog(struct harness *h, const struct dev *d, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
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

/* ------------------------------------------------------------ baud rates */

static const struct { unsigned code, rate; } baud_table[] = {
	{B0, 0}, {B50, 50}, {B75, 75}, {B110, 110}, {B134, 134}, {B150, 150}, {B200, 200},
	{B300, 300}, {B600, 600}, {B1200, 1200}, {B1800, 1800}, {B2400, 2400}, {B4800, 4800},
	{B9600, 9600}, {B19200, 19200}, {B38400, 38400}, {B57600, 57600}, {B115200, 115200},
	{B230400, 230400}, {B460800, 460800}, {B500000, 500000}, {B576000, 576000},
	{B921600, 921600}, {B1000000, 1000000}, {B1152000, 1152000}, {B1500000, 1500000},
	{B2000000, 2000000}, {B2500000, 2500000}, {B3000000, 3000000}, {B3500000, 3500000},
	{B4000000, 4000000},
};

static unsigned baud_of(const struct ktermios2 *t)
{
	unsigned code = t->c_cflag & (CBAUD | CBAUDEX);
	if (code == BOTHER)
		return t->c_ospeed;
	for (size_t i = 0; i < sizeof baud_table / sizeof baud_table[0]; i++)
		if (baud_table[i].code == code)
			return baud_table[i].rate;
	return 0;
}

/* ------------------------------------------------------- the model's env */

static struct dev *dev_of(struct ssim_env *env) { return (struct dev *)env->h; }
static struct harness *harness_of(struct dev *d)
{
	return (struct harness *)((char *)(d - d->index) - offsetof(struct harness, dev));
}

static void env_tx(struct ssim_env *env, const void *buf, size_t len, unsigned baud)
{
	struct dev *d = dev_of(env);
	struct harness *h = harness_of(d);
	if (!d->plugged || d->master < 0)
		return;
	if (d->qlen + len > SSIM_QMAX) {
		hlog(h, d, "tx overflow: %zu bytes dropped", len);
		return;
	}
	if (d->qlen + len > d->qcap) {
		size_t cap = d->qcap ? d->qcap : 4096;
		while (cap < d->qlen + len)
			cap *= 2;
		uint8_t *q = realloc(d->q, cap);
		if (!q)
			return;
		d->q = q;
		d->qcap = cap;
	}
	if (d->qlen == 0) {
		d->tx_t = 0;
		d->tx_credit = 0;
	}
	memcpy(d->q + d->qlen, buf, len);
	d->qlen += len;
	d->qbaud = baud;
	wake(h);
}

static void env_tx_flush(struct ssim_env *env)
{
	dev_of(env)->qlen = 0;
}

static void env_log(struct ssim_env *env, const char *fmt, ...)
{
	struct dev *d = dev_of(env);
	char line[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	hlog(harness_of(d), d, "%s", line);
}

static void env_unplug(struct ssim_env *env)
{
	struct dev *d = dev_of(env);
	d->want_unplug = 1;
	d->want_plug = 0;
	wake(harness_of(d));
}

static void env_plug(struct ssim_env *env, const struct ssim_usb_id *id)
{
	struct dev *d = dev_of(env);
	d->plug_id = *id;
	d->want_plug = 1;
	wake(harness_of(d));
}

static void env_set_timer(struct ssim_env *env, long long at_ms)
{
	struct dev *d = dev_of(env);
	d->timer_at = at_ms;
	wake(harness_of(d));
}

static long long env_now_ms(void) { return now_ms(); }

static unsigned env_client_baud(struct ssim_env *env) { return dev_of(env)->baud; }
static int env_client_open(struct ssim_env *env) { return dev_of(env)->opens > 0; }

static int env_bridge(struct ssim_env *env, const char *path, unsigned tx_baud)
{
	struct dev *d = dev_of(env);
	struct harness *h = harness_of(d);
	if (d->bridge_fd >= 0) {
		close(d->bridge_fd);
		d->bridge_fd = -1;
		hlog(h, d, "bridge closed");
	}
	if (!path)
		return 0;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path) {
		hlog(h, d, "bridge: socket path too long: %s", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* The board behind may still be starting: retry for 5 s. */
	for (int i = 0; i < 500; i++) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
			d->bridge_fd = fd;
			d->bridge_baud = tx_baud;
			hlog(h, d, "bridge to %s", path);
			wake(h);
			return 0;
		}
		if (errno != ENOENT && errno != ECONNREFUSED)
			break;
		usleep(10000);
	}
	hlog(h, d, "bridge: cannot connect to %s: %s", path, strerror(errno));
	close(fd);
	return -1;
}

/* ------------------------------------------------------------- the tty side */

static void set_lines(struct harness *h, struct dev *d, int dtr, int rts, const char *why)
{
	if (dtr == d->dtr && rts == d->rts)
		return;
	d->dtr = dtr;
	d->rts = rts;
	hlog(h, d, "lines dtr=%d rts=%d (%s)", dtr, rts, why);
	if (d->ops->lines)
		d->ops->lines(d->m, dtr, rts);
}

static void on_open(struct harness *h, struct dev *d)
{
	d->opens++;
	hlog(h, d, "open (%d)", d->opens);
	if (d->opens == 1) {
		set_lines(h, d, 1, 1, "open");
		if (d->ops->open)
			d->ops->open(d->m);
	}
}

static void on_close(struct harness *h, struct dev *d)
{
	if (d->opens <= 0)
		return;
	d->opens--;
	hlog(h, d, "close (%d)", d->opens);
	if (d->opens == 0) {
		if (d->tios.c_cflag & HUPCL)
			set_lines(h, d, 0, 0, "close with HUPCL");
		if (d->ops->close)
			d->ops->close(d->m);
	}
}

/* Open/close events of the pty slaves, in the order they happened. Called
 * with the lock held, from the loop and before every ioctl is handled, so
 * that a model sees the open before the client's first ioctl. */
static void sync_inotify(struct harness *h)
{
	char buf[4096] __attribute__((aligned(8)));
	for (;;) {
		ssize_t n = read(h->ino, buf, sizeof buf);
		if (n <= 0)
			return;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			for (int i = 0; i < h->ndev; i++) {
				struct dev *d = &h->dev[i];
				if (!d->plugged || d->wd != ev->wd)
					continue;
				if (ev->mask & IN_OPEN)
					on_open(h, d);
				if (ev->mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE))
					on_close(h, d);
			}
			p += sizeof *ev + ev->len;
		}
	}
}

static struct dev *dev_by_node(struct harness *h, const char *node)
{
	for (int i = 0; i < h->ndev; i++)
		if (h->dev[i].plugged && !strcmp(h->dev[i].devnode, node))
			return &h->dev[i];
	return NULL;
}

static void apply_termios(struct harness *h, struct dev *d, const struct ktermios2 *t, int two)
{
	struct ktermios2 n = *t;
	if (!two)
		n.c_ispeed = n.c_ospeed = 0;
	unsigned old = d->baud;
	d->tios = n;
	unsigned b = baud_of(&n);
	if ((n.c_cflag & (CBAUD | CBAUDEX)) == B0) {
		hlog(h, d, "baud 0 (hang up)");
		set_lines(h, d, 0, d->rts, "B0");
		return;
	}
	if (b != old) {
		d->baud = b;
		hlog(h, d, "baud %u", b);
		if (d->ops->baud)
			d->ops->baud(d->m, b);
	}
}

static int resolve(UMockdevIoctlClient *c, size_t len, UMockdevIoctlData **out)
{
	GError *err = NULL;
	UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(c);
	*out = umockdev_ioctl_data_resolve(arg, 0, len, &err);
	if (err) {
		g_error_free(err);
		return -1;
	}
	return *out ? 0 : -1;
}

static void passthrough(UMockdevIoctlClient *c)
{
	int e = 0;
	GError *err = NULL;
	int r = umockdev_ioctl_client_execute(c, &e, &err);
	if (err) {
		g_error_free(err);
		r = -1;
		e = EIO;
	}
	umockdev_ioctl_client_complete(c, r, r < 0 ? e : 0);
}

static gboolean on_ioctl(UMockdevIoctlBase *base, UMockdevIoctlClient *c, gpointer payload)
{
	(void)base;
	struct harness *h = payload;
	unsigned long req = umockdev_ioctl_client_get_request(c);
	const char *node = umockdev_ioctl_client_get_devnode(c);
	UMockdevIoctlData *data = NULL;
	int pass = 0, rc = 0, err = 0;

	pthread_mutex_lock(&h->lock);
	sync_inotify(h);
	struct dev *d = dev_by_node(h, node);
	if (!d) {
		pthread_mutex_unlock(&h->lock);
		umockdev_ioctl_client_complete(c, -1, EIO); /* unplugged under the client */
		return TRUE;
	}
	switch (req) {
	case TCGETS:
	case TCGETS2: {
		size_t len = req == TCGETS ? sizeof(struct termios) : sizeof(struct termios2);
		if (resolve(c, len, &data) < 0) {
			rc = -1, err = EFAULT;
			break;
		}
		memcpy(data->data, &d->tios, len);
		break;
	}
	case TCSETS:
	case TCSETSW:
	case TCSETSF:
	case TCSETS2:
	case TCSETSW2:
	case TCSETSF2: {
		int two = req == TCSETS2 || req == TCSETSW2 || req == TCSETSF2;
		struct ktermios2 t;
		memset(&t, 0, sizeof t);
		if (resolve(c, two ? sizeof(struct termios2) : sizeof(struct termios), &data) < 0) {
			rc = -1, err = EFAULT;
			break;
		}
		memcpy(&t, data->data, two ? sizeof(struct termios2) : sizeof(struct termios));
		apply_termios(h, d, &t, two);
		pass = 1;
		break;
	}
	case TIOCMGET: {
		if (resolve(c, sizeof(int), &data) < 0) {
			rc = -1, err = EFAULT;
			break;
		}
		int bits = TIOCM_CTS | TIOCM_DSR | TIOCM_CD;
		if (d->dtr)
			bits |= TIOCM_DTR;
		if (d->rts)
			bits |= TIOCM_RTS;
		memcpy(data->data, &bits, sizeof bits);
		break;
	}
	case TIOCMSET:
	case TIOCMBIS:
	case TIOCMBIC: {
		if (resolve(c, sizeof(int), &data) < 0) {
			rc = -1, err = EFAULT;
			break;
		}
		int bits;
		memcpy(&bits, data->data, sizeof bits);
		int dtr = d->dtr, rts = d->rts;
		if (req == TIOCMSET) {
			dtr = !!(bits & TIOCM_DTR);
			rts = !!(bits & TIOCM_RTS);
		} else {
			int v = req == TIOCMBIS;
			if (bits & TIOCM_DTR)
				dtr = v;
			if (bits & TIOCM_RTS)
				rts = v;
		}
		set_lines(h, d, dtr, rts, req == TIOCMSET ? "TIOCMSET" : req == TIOCMBIS ? "TIOCMBIS" : "TIOCMBIC");
		break;
	}
	case TIOCSBRK:
	case TIOCCBRK:
		d->brk = req == TIOCSBRK;
		hlog(h, d, "break %s", d->brk ? "on" : "off");
		break;
	case TIOCGSERIAL:
	case TIOCGICOUNT:
		/* Zeroed structures: no 8250 UART, no counters. */
		if (resolve(c, req == TIOCGSERIAL ? 72 : 80, &data) < 0) {
			rc = -1, err = EFAULT;
			break;
		}
		memset(data->data, 0, (size_t)data->data_len);
		break;
	case TIOCSSERIAL:
		break;
	case TCFLSH:
	case TCSBRK:
	case TCSBRKP:
	case TCXONC:
	case TIOCEXCL:
	case TIOCNXCL:
	case FIONREAD:
	case TIOCOUTQ:
	case TIOCGWINSZ:
	case TIOCSWINSZ:
	case FIONBIO:
	case FIOCLEX:
	case FIONCLEX:
		pass = 1;
		break;
	default:
		hlog(h, d, "ioctl 0x%lx not emulated (ENOTTY)", req);
		rc = -1, err = ENOTTY;
		break;
	}
	pthread_mutex_unlock(&h->lock);
	if (pass)
		passthrough(c);
	else
		umockdev_ioctl_client_complete(c, rc, err);
	return TRUE;
}

static gboolean on_rw(UMockdevIoctlBase *base, UMockdevIoctlClient *c, gpointer payload)
{
	(void)base, (void)c, (void)payload;
	return FALSE; /* the pty does the I/O */
}

/* ---------------------------------------------------------- plug / unplug */

static int add_string(struct harness *h, const char *desc)
{
	GError *err = NULL;
	if (!umockdev_testbed_add_from_string(h->tb, desc, &err)) {
		fprintf(stderr, "serialsim: testbed: %s\n", err ? err->message : "?");
		if (err)
			g_error_free(err);
		return -1;
	}
	return 0;
}

static void sanitize(char *out, size_t len, const char *in)
{
	size_t j = 0;
	for (size_t i = 0; in[i] && j + 1 < len; i++)
		out[j++] = (in[i] == ' ' || in[i] == '/') ? '_' : in[i];
	out[j] = 0;
}

/* Called by the loop without the lock (umockdev calls), then takes it. */
static int do_plug(struct harness *h, struct dev *d, const struct ssim_usb_id *id)
{
	char desc[4096];
	unsigned devnum = ++h->next_devnum;
	char tty[32] = "";
	if (id->has_tty) {
		if (id->usb_uart)
			snprintf(tty, sizeof tty, "ttyUSB%u", h->n_usb++);
		else
			snprintf(tty, sizeof tty, "ttyACM%u", h->n_acm++);
	}
	char sys_usb[160], sys_if[192], sys_tty[224];
	snprintf(sys_usb, sizeof sys_usb, "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-%d", d->index + 1);
	snprintf(sys_if, sizeof sys_if, "%s/1-%d:1.0", sys_usb, d->index + 1);
	if (id->usb_uart)
		snprintf(sys_tty, sizeof sys_tty, "%s/%s/tty/%s", sys_if, tty, tty);
	else
		snprintf(sys_tty, sizeof sys_tty, "%s/tty/%s", sys_if, tty);
	int n = snprintf(desc, sizeof desc,
			 "P: %s\nE: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\nE: DRIVER=usb\n"
			 "A: idVendor=%04x\nA: idProduct=%04x\nA: serial=%s\nA: manufacturer=%s\n"
			 "A: product=%s\nA: busnum=1\nA: devnum=%u\nA: speed=12\nA: bDeviceClass=%s\n"
			 "A: bNumInterfaces= 1\nA: devpath=%d\n\n"
			 "P: %s\nE: SUBSYSTEM=usb\nE: DEVTYPE=usb_interface\n"
			 "A: bInterfaceClass=%s\nA: bInterfaceNumber=00\n\n",
			 sys_usb + 4, id->vid, id->pid, id->serial, id->manufacturer, id->product, devnum,
			 id->usb_uart ? "00" : "ef", d->index + 1, sys_if + 4,
			 id->usb_uart ? "ff" : (id->has_tty ? "02" : "08"));
	if (id->has_tty)
		snprintf(desc + n, sizeof desc - (size_t)n,
			 "P: %s\nN: %s\nE: SUBSYSTEM=tty\nE: DEVNAME=/dev/%s\nA: dev=166:%u\n\n", sys_tty + 4,
			 tty, tty, devnum);
	if (add_string(h, desc) < 0)
		return -1;
	/* The tty's "device" link, as the kernel makes it (the interface, or the
	 * usb-serial port device): libserialport climbs from it to the USB
	 * device's busnum, idVendor, serial... */
	if (id->has_tty)
		umockdev_testbed_set_attribute_link(h->tb, sys_tty, "device", "../..");

	int master = -1, keep = -1, wd = -1;
	UMockdevIoctlBase *ioh = NULL;
	char devnode[48] = "", byid[256] = "";
	if (id->has_tty) {
		snprintf(devnode, sizeof devnode, "/dev/%s", tty);
		master = umockdev_testbed_get_dev_fd(h->tb, devnode);
		char link[512], pts[256];
		snprintf(link, sizeof link, "%s%s", h->root, devnode);
		ssize_t k = readlink(link, pts, sizeof pts - 1);
		if (master < 0 || k <= 0) {
			fprintf(stderr, "serialsim: no pty behind %s\n", devnode);
			return -1;
		}
		pts[k] = 0;
		keep = open(pts, O_RDWR | O_NOCTTY | O_CLOEXEC);
		fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
		wd = inotify_add_watch(h->ino, pts, IN_OPEN | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE);
		ioh = umockdev_ioctl_base_new();
		g_signal_connect(ioh, "handle-ioctl", G_CALLBACK(on_ioctl), h);
		g_signal_connect(ioh, "handle-read", G_CALLBACK(on_rw), h);
		g_signal_connect(ioh, "handle-write", G_CALLBACK(on_rw), h);
		GError *err = NULL;
		if (!umockdev_testbed_attach_ioctl(h->tb, devnode, ioh, &err)) {
			fprintf(stderr, "serialsim: attach ioctl %s: %s\n", devnode, err ? err->message : "?");
			return -1;
		}
		/* /dev/serial/by-id, as udev makes it. */
		char m[64], p[64], s[64];
		sanitize(m, sizeof m, id->manufacturer);
		sanitize(p, sizeof p, id->product);
		sanitize(s, sizeof s, id->serial);
		char dir[512];
		snprintf(dir, sizeof dir, "%s/dev/serial/by-id", h->root);
		g_mkdir_with_parents(dir, 0755);
		snprintf(byid, sizeof byid, "%s/usb-%s_%s_%s-if00%s", dir, m, p, s, id->usb_uart ? "-port0" : "");
		char target[64];
		snprintf(target, sizeof target, "../../%s", tty);
		unlink(byid);
		if (symlink(target, byid) != 0)
			byid[0] = 0;
	}
	pthread_mutex_lock(&h->lock);
	d->id = *id;
	d->devnum = devnum;
	memcpy(d->tty, tty, sizeof d->tty);
	memcpy(d->devnode, devnode, sizeof d->devnode);
	snprintf(d->sys_usb, sizeof d->sys_usb, "%s", sys_usb);
	snprintf(d->sys_tty, sizeof d->sys_tty, "%s", sys_tty);
	memcpy(d->byid, byid, sizeof d->byid);
	d->master = master;
	d->keep = keep;
	d->wd = wd;
	d->ioh = ioh;
	d->opens = 0;
	d->dtr = d->rts = 0;
	d->baud = 9600;
	memset(&d->tios, 0, sizeof d->tios);
	d->tios.c_cflag = B9600 | CS8 | CREAD | HUPCL | CLOCAL;
	d->qlen = 0;
	d->rx_t = 0;
	d->plugged = 1;
	hlog(h, d, "plug %04x:%04x serial=%s location=1-%d %s", id->vid, id->pid, id->serial,
	     d->index + 1, devnode[0] ? devnode : "(no tty)");
	pthread_mutex_unlock(&h->lock);
	return 0;
}

static void do_unplug(struct harness *h, struct dev *d)
{
	pthread_mutex_lock(&h->lock);
	if (!d->plugged) {
		pthread_mutex_unlock(&h->lock);
		return;
	}
	sync_inotify(h);
	if (d->opens > 0) {
		/* The client still has it open: its next read or write fails. */
		d->opens = 1;
		on_close(h, d);
	}
	d->plugged = 0;
	d->qlen = 0;
	if (d->wd >= 0)
		inotify_rm_watch(h->ino, d->wd);
	d->wd = -1;
	int master = d->master, keep = d->keep;
	d->master = d->keep = -1;
	UMockdevIoctlBase *ioh = d->ioh;
	d->ioh = NULL;
	char devnode[48], sys_tty[224], sys_usb[160], byid[256];
	memcpy(devnode, d->devnode, sizeof devnode);
	memcpy(sys_tty, d->sys_tty, sizeof sys_tty);
	memcpy(sys_usb, d->sys_usb, sizeof sys_usb);
	memcpy(byid, d->byid, sizeof byid);
	d->devnode[0] = 0;
	hlog(h, d, "unplug %s", devnode[0] ? devnode : "(no tty)");
	pthread_mutex_unlock(&h->lock);

	if (byid[0])
		unlink(byid);
	if (ioh) {
		umockdev_testbed_detach_ioctl(h->tb, devnode, NULL);
		g_object_unref(ioh);
	}
	if (devnode[0]) {
		char node[512], pts[256], map[768];
		snprintf(node, sizeof node, "%s%s", h->root, devnode);
		/* umockdev keeps dev/.ptymap/_dev_pts_N: a later device on the
		 * same (reused) pty number would trip its assertion. */
		ssize_t k = readlink(node, pts, sizeof pts - 1);
		umockdev_testbed_remove_device(h->tb, sys_tty);
		if (k > 0) {
			pts[k] = 0;
			for (char *c = pts; *c; c++)
				*c = *c == '/' ? '_' : *c;
			snprintf(map, sizeof map, "%s/dev/.ptymap/%s", h->root, pts);
			unlink(map);
		}
		unlink(node);
	}
	umockdev_testbed_remove_device(h->tb, sys_usb);
	/* umockdev leaves the bus and class links behind: a dangling
	 * /sys/class/tty link would still be listed, and re-adding the device
	 * at the same location would trip over the bus link. */
	const char *base = strrchr(sys_usb, '/') + 1;
	char link[768];
	snprintf(link, sizeof link, "%s/sys/bus/usb/devices/%s", h->root, base);
	unlink(link);
	snprintf(link, sizeof link, "%s/sys/bus/usb/devices/%s:1.0", h->root, base);
	unlink(link);
	if (devnode[0]) {
		snprintf(link, sizeof link, "%s/sys/class/tty/%s", h->root, devnode + 5);
		unlink(link);
	}
	/* Hang up the client: with no slave held by us and the master gone,
	 * its reads return EOF/EIO as on a vanished USB device. */
	if (keep >= 0)
		close(keep);
	if (master >= 0)
		close(master);
}

/* ----------------------------------------------------------------- the loop */

static void pump_rx(struct dev *d, double t)
{
	/* Bytes leave the client's UART at its baud rate: 10 bits a byte. */
	double rate = d->baud ? d->baud / 10.0 : 1e9;
	if (d->rx_t == 0)
		d->rx_credit = 64;
	else
		d->rx_credit += (t - d->rx_t) * rate;
	/* No bursts after a pause: at most 5 ms of line time (a UART FIFO). */
	if (d->rx_credit > rate * 0.005 + 16)
		d->rx_credit = rate * 0.005 + 16;
	d->rx_t = t;
	size_t want = d->rx_credit >= 1 ? (size_t)d->rx_credit : 0;
	if (want == 0)
		return;
	uint8_t buf[4096];
	if (want > sizeof buf)
		want = sizeof buf;
	ssize_t n = read(d->master, buf, want);
	if (n <= 0)
		return;
	d->rx_credit -= (double)n;
	if (d->bridge_fd >= 0) {
		ssize_t w = write(d->bridge_fd, buf, (size_t)n);
		(void)w;
	} else if (d->ops->rx) {
		d->ops->rx(d->m, buf, (size_t)n, d->baud);
	}
}

static void pump_tx(struct dev *d, double t)
{
	if (!d->qlen)
		return;
	size_t allow = d->qlen;
	if (d->qbaud) {
		double rate = d->qbaud / 10.0;
		if (d->tx_t == 0)
			d->tx_credit = 16;
		else
			d->tx_credit += (t - d->tx_t) * rate;
		if (d->tx_credit > rate * 0.005 + 16)
			d->tx_credit = rate * 0.005 + 16;
		d->tx_t = t;
		allow = d->tx_credit >= 1 ? (size_t)d->tx_credit : 0;
		if (allow > d->qlen)
			allow = d->qlen;
	}
	if (!allow)
		return;
	ssize_t n = write(d->master, d->q, allow);
	if (n <= 0)
		return;
	if (d->qbaud)
		d->tx_credit -= (double)n;
	memmove(d->q, d->q + n, d->qlen - (size_t)n);
	d->qlen -= (size_t)n;
}

static void pump_bridge(struct harness *h, struct dev *d)
{
	uint8_t buf[2048];
	ssize_t n = read(d->bridge_fd, buf, sizeof buf);
	if (n > 0) {
		env_tx(&d->env, buf, (size_t)n, d->bridge_baud);
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		hlog(h, d, "bridge: board closed the connection");
		close(d->bridge_fd);
		d->bridge_fd = -1;
		if (d->ops->bridge_closed)
			d->ops->bridge_closed(d->m);
	}
}

static void *loop_main(void *arg)
{
	struct harness *h = arg;
	while (!h->stop) {
		struct pollfd pf[2 + 2 * SSIM_MAX_DEV];
		struct dev *owner[2 + 2 * SSIM_MAX_DEV];
		int kind[2 + 2 * SSIM_MAX_DEV];
		int np = 0, timeout = 100;
		pf[np] = (struct pollfd){.fd = h->wake[0], .events = POLLIN};
		owner[np] = NULL, kind[np++] = 0;
		pf[np] = (struct pollfd){.fd = h->ino, .events = POLLIN};
		owner[np] = NULL, kind[np++] = 1;

		/* Plug requests first, without the lock (umockdev calls). */
		for (int i = 0; i < h->ndev; i++) {
			struct dev *d = &h->dev[i];
			pthread_mutex_lock(&h->lock);
			int up = d->want_unplug, pl = d->want_plug;
			struct ssim_usb_id id = d->plug_id;
			d->want_unplug = 0;
			d->want_plug = 0;
			pthread_mutex_unlock(&h->lock);
			if (up || (pl && d->plugged))
				do_unplug(h, d);
			if (pl)
				do_plug(h, d, &id);
		}

		pthread_mutex_lock(&h->lock);
		long long now = now_ms();
		for (int i = 0; i < h->ndev; i++) {
			struct dev *d = &h->dev[i];
			if (d->timer_at && d->timer_at <= now) {
				d->timer_at = 0;
				if (d->ops->timer)
					d->ops->timer(d->m);
			}
			if (d->timer_at) {
				long long left = d->timer_at - now;
				if (left < timeout)
					timeout = left < 0 ? 0 : (int)left;
			}
			if (d->plugged && d->master >= 0) {
				pf[np] = (struct pollfd){.fd = d->master, .events = POLLIN};
				if (d->qlen) {
					pf[np].events |= POLLOUT;
					if (d->qbaud && timeout > 2)
						timeout = 2;
				}
				owner[np] = d, kind[np++] = 2;
			}
			if (d->bridge_fd >= 0) {
				pf[np] = (struct pollfd){.fd = d->bridge_fd, .events = POLLIN};
				owner[np] = d, kind[np++] = 3;
			}
		}
		pthread_mutex_unlock(&h->lock);

		int r = poll(pf, (nfds_t)np, timeout);
		if (r < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&h->lock);
		double t = now_s();
		for (int i = 0; i < np; i++) {
			if (kind[i] == 0 && (pf[i].revents & POLLIN)) {
				char junk[64];
				while (read(h->wake[0], junk, sizeof junk) > 0)
					;
			} else if (kind[i] == 1) {
				sync_inotify(h);
			} else if (kind[i] == 2 && owner[i]->plugged && owner[i]->master == pf[i].fd) {
				if (pf[i].revents & POLLIN)
					pump_rx(owner[i], t);
				else if (pf[i].revents & POLLHUP)
					owner[i]->rx_t = 0;
				pump_tx(owner[i], t);
			} else if (kind[i] == 3 && owner[i]->bridge_fd == pf[i].fd &&
				   (pf[i].revents & (POLLIN | POLLHUP))) {
				pump_bridge(h, owner[i]);
			}
		}
		pthread_mutex_unlock(&h->lock);
		/* POLLIN is level-triggered on a pty master while rx is paced: don't spin. */
		if (r > 0)
			usleep(200);
	}
	return NULL;
}

/* ------------------------------------------------------------------- main */

static int usage(void)
{
	fprintf(stderr,
		"usage: serialsim [--log FILE] [--dump DIR] [--info FILE]\n"
		"                 --device NAME=MODEL[:key=value,...] ... -- CLIENT ARGS...\n"
		"models:\n");
	for (const struct ssim_model_ops *const *m = ssim_models(); *m; m++)
		fprintf(stderr, "  %-10s %s\n", (*m)->name, (*m)->help);
	return 2;
}

static int spawn_client(pid_t *pid, char **argv)
{
	const char *shim = getenv("SSIM_SHIM") ? getenv("SSIM_SHIM") : SSIM_SHIM_PATH;
	const char *old = getenv("LD_PRELOAD");
	char pre[2048];
	snprintf(pre, sizeof pre, "%s:libumockdev-preload.so.0%s%s", shim, old && *old ? ":" : "",
		 old ? old : "");
	const char *asan = getenv("ASAN_OPTIONS");
	char asanv[1024];
	snprintf(asanv, sizeof asanv, "%s%sverify_asan_link_order=0", asan ? asan : "",
		 asan && *asan ? ":" : "");
	size_t n = 0;
	while (environ[n])
		n++;
	char **envp = calloc(n + 3, sizeof *envp);
	char *e_pre = g_strdup_printf("LD_PRELOAD=%s", pre);
	char *e_asan = g_strdup_printf("ASAN_OPTIONS=%s", asanv);
	size_t k = 0;
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
		} else if (v && !strcmp(a, "--device") && h->ndev < SSIM_MAX_DEV) {
			struct dev *d = &h->dev[h->ndev];
			const char *eq = strchr(v, '=');
			if (!eq || eq == v || (size_t)(eq - v) >= sizeof d->name)
				return usage();
			memcpy(d->name, v, (size_t)(eq - v));
			char model[32];
			const char *colon = strchr(eq + 1, ':');
			size_t ml = colon ? (size_t)(colon - eq - 1) : strlen(eq + 1);
			if (ml == 0 || ml >= sizeof model)
				return usage();
			memcpy(model, eq + 1, ml);
			model[ml] = 0;
			d->ops = ssim_model_find(model);
			if (!d->ops) {
				fprintf(stderr, "serialsim: unknown model %s\n", model);
				return usage();
			}
			d->index = h->ndev++;
			d->master = d->keep = d->wd = d->bridge_fd = -1;
			d->env = (struct ssim_env){
				.h = d, .tx = env_tx, .tx_flush = env_tx_flush, .log = env_log,
				.unplug = env_unplug, .plug = env_plug, .set_timer = env_set_timer,
				.now_ms = env_now_ms, .bridge = env_bridge, .client_baud = env_client_baud,
				.client_open = env_client_open};
			/* args stay in argv; create() after the testbed exists */
			d->m = (void *)(colon ? colon + 1 : "");
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
	if (pipe2(h->wake, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    (h->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
		perror("serialsim");
		return 2;
	}
	h->tb = umockdev_testbed_new();
	h->root = umockdev_testbed_get_root_dir(h->tb);
	/* A tty that is always there: libserialport's listing fails on an empty
	 * /sys/class/tty (a real machine always has its console). */
	if (add_string(h, "P: /devices/virtual/tty/console\nE: SUBSYSTEM=tty\nE: DEVNAME=/dev/console\n\n") < 0)
		return 2;

	for (int i = 0; i < h->ndev; i++) {
		struct dev *d = &h->dev[i];
		const char *args = d->m;
		char err[256] = "";
		struct ssim_usb_id id;
		memset(&id, 0, sizeof id);
		pthread_mutex_lock(&h->lock);
		d->m = d->ops->create(args, &d->env, &id, err, sizeof err);
		pthread_mutex_unlock(&h->lock);
		if (!d->m) {
			fprintf(stderr, "serialsim: device %s: %s\n", d->name, err);
			return 2;
		}
		if (do_plug(h, d, &id) < 0)
			return 2;
	}
	if (info_path) {
		FILE *f = fopen(info_path, "w");
		if (!f) {
			perror(info_path);
			return 2;
		}
		for (int i = 0; i < h->ndev; i++) {
			struct dev *d = &h->dev[i];
			fprintf(f, "%s %s 1-%d %04x:%04x %s\n", d->name, d->devnode[0] ? d->devnode : "-",
				d->index + 1, d->id.vid, d->id.pid, d->id.serial[0] ? d->id.serial : "-");
		}
		fclose(f);
	}

	pthread_t loop;
	pthread_create(&loop, NULL, loop_main, h);
	pid_t pid;
	int rc = spawn_client(&pid, argv + ci);
	int status = 0, code;
	if (rc != 0) {
		fprintf(stderr, "serialsim: cannot run %s: %s\n", argv[ci], strerror(rc));
		code = 127;
	} else {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	}
	h->stop = 1;
	wake(h);
	pthread_join(loop, NULL);
	pthread_mutex_lock(&h->lock);
	sync_inotify(h);
	hlog(h, NULL, "client exited with %d", code);
	for (int i = 0; i < h->ndev; i++) {
		struct dev *d = &h->dev[i];
		if (dump_dir && d->ops->dump)
			d->ops->dump(d->m, dump_dir, d->name);
		if (d->bridge_fd >= 0)
			close(d->bridge_fd);
		d->bridge_fd = -1;
		d->ops->destroy(d->m);
		free(d->q);
	}
	pthread_mutex_unlock(&h->lock);
	for (int i = 0; i < h->ndev; i++)
		if (h->dev[i].plugged)
			do_unplug(h, &h->dev[i]);
	g_object_unref(h->tb);
	g_free(h->root);
	if (h->log != stderr)
		fclose(h->log);
	return code;
}
