/* mpfarm detect [--json] [--inventory FILE] [--no-repl] [--timeout MS] [--exclude PORT,...]
 *
 * Lists this host's serial ports (libserialport) with their USB identity,
 * the USB location and /dev/serial/by-id link (farm/usbdev.c), what the
 * known-id table says they are (farm/usbids.c), and for MicroPython-looking
 * ports the firmware they run, read over the raw REPL. USB devices mpfarm
 * knows that have no serial port (UF2 and DFU bootloaders) are listed too.
 *
 * Least disruption: a port is opened with DTR and RTS as the driver leaves
 * them. Linux raises both lines in one step on open and drops both in one
 * step on the last close; on the ESP auto-reset circuit (RTS->EN,
 * DTR->GPIO0) both states are idle. Setting the lines ourselves takes one
 * ioctl per line and passes through DTR=0/RTS=1 (EN low: a reset) or
 * DTR=1/RTS=0 (boot strap), which is how tools that toggle lines on open
 * reset ESP boards. Bootloaders, ports the known-id table marks as no
 * console (a probe's GDB server), excluded ports and non-USB ports (a
 * host's own ttyS console) get no bytes at all. A board that does not
 * answer is left alone: no reset, no retries. */
#include <getopt.h>
#include <libserialport.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "cmd_common.h"
#include "job.h"
#include "jsonl.h"
#include "repl.h"
#include "transport.h"
#include "usbdev.h"
#include "usbids.h"

#define DETECT_MAX 256

struct detected {
	char port[256];         /* /dev/ttyACM0, or "" for a USB device without a port */
	int usb;
	struct farm_usbdev dev; /* USB identity (from libserialport, location/by-id from sysfs) */
	int bus, address;
	const struct farm_usbid *known;
	char repl[160];         /* "ok", "skipped: why", "no answer: why" */
	/* Firmware identity, "" when unknown. */
	char impl[64], version[32], platform[32], build[128], machine[128];
};

struct opts {
	int json, no_repl;
	unsigned timeout_ms;
	const char *inventory;
	char **exclude;
	size_t n_exclude;
};

static void copy(char *dst, size_t len, const char *src)
{
	size_t n = src ? strnlen(src, len - 1) : 0;
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7f)
			dst[i] = '?';
}

static int excluded(const struct opts *o, const struct detected *d)
{
	for (size_t i = 0; i < o->n_exclude; i++) {
		const char *x = o->exclude[i];
		if (!strcmp(x, d->port) || (d->dev.by_id[0] && !strcmp(x, d->dev.by_id)) ||
		    (d->dev.location[0] && !strcmp(x, d->dev.location)))
			return 1;
	}
	return 0;
}

/* "impl micropython 1.24.0" lines into d. */
static void parse_identity(struct detected *d, char *out)
{
	for (char *line = out; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		size_t ll = strlen(line);
		if (ll && line[ll - 1] == '\r')
			line[ll - 1] = '\0';
		char *sp = strchr(line, ' ');
		if (sp) {
			*sp = '\0';
			const char *v = sp + 1;
			if (!strcmp(line, "impl")) {
				const char *sp2 = strchr(v, ' ');
				size_t n = sp2 ? (size_t)(sp2 - v) : strlen(v);
				copy(d->impl, n + 1 < sizeof d->impl ? n + 1 : sizeof d->impl, v);
				if (sp2)
					copy(d->version, sizeof d->version, sp2 + 1);
			} else if (!strcmp(line, "platform")) {
				copy(d->platform, sizeof d->platform, v);
			} else if (!strcmp(line, "build")) {
				copy(d->build, sizeof d->build, v);
			} else if (!strcmp(line, "machine")) {
				copy(d->machine, sizeof d->machine, v);
			}
		}
		line = nl ? nl + 1 : NULL;
	}
}

static void query(const struct farm_cli *cli, const struct opts *o, struct detected *d)
{
	struct farm_err e = { 0 };
	struct farm_transport *t = NULL;
	struct farm_repl *r = NULL;
	struct farm_repl_cfg cfg;
	struct farm_serial_cfg scfg;
	struct farm_repl_result res = { 0 };
	farm_repl_cfg_default(&cfg);
	memset(&scfg, 0, sizeof scfg);
	scfg.baud = 115200;
	scfg.dtr = -1;
	scfg.rts = -1;
	int rc = farm_transport_serial_open(&t, d->port, &scfg, &e);
	if (!rc)
		rc = farm_repl_new(&r, t, &cfg, &e);
	if (!rc) {
		farm_repl_set_cancel(r, cli->cancel);
		rc = farm_repl_enter_raw(r, (int)o->timeout_ms, &e);
	}
	if (!rc)
		rc = farm_repl_exec(r, farm_job_identity_code, strlen(farm_job_identity_code),
				    (int)o->timeout_ms, &res, &e);
	if (!rc && res.err.len)
		rc = farm_err_set(&e, FARM_EPROTO, "identity query raised: %.100s", res.err.data);
	if (!rc) {
		if (res.out.len)
			parse_identity(d, res.out.data);
		snprintf(d->repl, sizeof d->repl, "ok");
	} else {
		snprintf(d->repl, sizeof d->repl, "no answer: %.140s", e.msg);
	}
	if (r && !rc) {
		struct farm_err le = { 0 };
		(void)farm_repl_leave_raw(r, &le); /* back to the friendly prompt */
	}
	farm_repl_result_free(&res);
	farm_repl_free(r);
	farm_transport_close(t);
}

/* Whether d may get REPL bytes; else why not, in d->repl. */
static int may_query(const struct opts *o, struct detected *d)
{
	const char *why = NULL;
	if (o->no_repl)
		why = "--no-repl";
	else if (!d->port[0])
		why = "no serial port";
	else if (excluded(o, d))
		why = "excluded";
	else if (!d->usb)
		why = "not a USB port";
	else if (d->known && d->known->role == FARM_USBID_BOOTLOADER)
		why = "a bootloader";
	else if (d->known && (d->known->flags & FARM_USBID_F_NOT_CONSOLE))
		why = "not a console";
	if (!why)
		return 1;
	snprintf(d->repl, sizeof d->repl, "skipped: %s", why);
	return 0;
}

static int collect(struct detected **out, size_t *n_out, struct farm_err *e)
{
	struct sp_port **ports = NULL;
	struct farm_usbdev *devs = NULL;
	size_t n_devs = 0, n = 0;
	*out = NULL;
	*n_out = 0;
	struct detected *v = calloc(DETECT_MAX, sizeof *v);
	if (!v)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	int rc = farm_usbdev_list(&devs, &n_devs, e);
	if (rc)
		goto out;
	enum sp_return sr = sp_list_ports(&ports);
	if (sr != SP_OK) {
		/* libserialport fails on a host with no tty class entries at all. */
		ports = NULL;
	}
	for (size_t i = 0; ports && ports[i] && n < DETECT_MAX; i++) {
		struct detected *d = &v[n];
		const char *name = sp_get_port_name(ports[i]);
		if (!name)
			continue;
		copy(d->port, sizeof d->port, name);
		d->bus = d->address = -1;
		if (sp_get_port_transport(ports[i]) == SP_TRANSPORT_USB) {
			int vid = 0, pid = 0;
			d->usb = 1;
			if (sp_get_port_usb_vid_pid(ports[i], &vid, &pid) == SP_OK) {
				d->dev.vid = (unsigned)vid & 0xffff;
				d->dev.pid = (unsigned)pid & 0xffff;
			}
			copy(d->dev.manufacturer, sizeof d->dev.manufacturer,
			     sp_get_port_usb_manufacturer(ports[i]));
			copy(d->dev.product, sizeof d->dev.product, sp_get_port_usb_product(ports[i]));
			copy(d->dev.serial, sizeof d->dev.serial, sp_get_port_usb_serial(ports[i]));
			if (sp_get_port_usb_bus_address(ports[i], &d->bus, &d->address) != SP_OK)
				d->bus = d->address = -1;
		}
		/* Location and by-id from sysfs: the device whose tty is this port. */
		for (size_t k = 0; k < n_devs; k++)
			if (!strcmp(devs[k].tty, d->port)) {
				/* libserialport's USB details need /sys/class/tty/X/device;
				 * where it gave none, sysfs's own attributes stand in. */
				const struct farm_usbdev *s = &devs[k];
				if (!d->usb || (!d->dev.vid && !d->dev.pid)) {
					d->dev.vid = s->vid;
					d->dev.pid = s->pid;
				}
				if (!d->dev.serial[0])
					copy(d->dev.serial, sizeof d->dev.serial, s->serial);
				if (!d->dev.manufacturer[0])
					copy(d->dev.manufacturer, sizeof d->dev.manufacturer, s->manufacturer);
				if (!d->dev.product[0])
					copy(d->dev.product, sizeof d->dev.product, s->product);
				if (d->bus < 0 || d->address < 0) {
					d->bus = (int)s->busnum;
					d->address = (int)s->devnum;
				}
				copy(d->dev.location, sizeof d->dev.location, s->location);
				copy(d->dev.by_id, sizeof d->dev.by_id, s->by_id);
				d->dev.busnum = s->busnum;
				d->dev.devnum = s->devnum;
				d->usb = 1;
				devs[k].tty[0] = '\0'; /* matched: not listed again below */
				break;
			}
		copy(d->dev.tty, sizeof d->dev.tty, d->port);
		if (d->usb)
			d->known = farm_usbid_lookup(d->dev.vid, d->dev.pid, d->dev.serial);
		n++;
	}
	/* Known USB devices without a serial port: bootloaders, probes. */
	for (size_t k = 0; k < n_devs && n < DETECT_MAX; k++) {
		const struct farm_usbid *id = farm_usbid_lookup(devs[k].vid, devs[k].pid, devs[k].serial);
		if (!id || devs[k].tty[0] || (id->role != FARM_USBID_BOOTLOADER && id->role != FARM_USBID_PROBE))
			continue;
		struct detected *d = &v[n++];
		d->usb = 1;
		d->dev = devs[k];
		d->dev.tty[0] = '\0';
		d->bus = (int)devs[k].busnum;
		d->address = (int)devs[k].devnum;
		d->known = id;
	}
out:
	sp_free_port_list(ports);
	free(devs);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n_out = n;
	return 0;
}

/* The MicroPython port: what the firmware says, else the known-id table. */
static void guess_port(const struct detected *d, char *out, size_t len)
{
	static const struct { const char *platform, *port; } map[] = {
		{ "rp2", "rp2" }, { "esp32", "esp32" }, { "esp8266", "esp8266" },
		{ "pyboard", "stm32" }, { "nrf5", "nrf" }, { "nrf", "nrf" }, { "microbit", "nrf" },
		{ "samd", "samd" }, { "mimxrt", "mimxrt" }, { "renesas-ra", "renesas-ra" },
		{ "WiPy", "cc3200" }, { "linux", "unix" }, { "darwin", "unix" }, { "OpenMV", "stm32" },
	};
	out[0] = '\0';
	for (size_t i = 0; d->platform[0] && i < sizeof map / sizeof map[0]; i++)
		if (!strncmp(d->platform, map[i].platform, strlen(map[i].platform))) {
			snprintf(out, len, "%s", map[i].port);
			return;
		}
	if (d->known)
		farm_usbid_first_port(d->known, out, (unsigned)len);
}

static const char *or_dash(const char *s)
{
	return s && s[0] ? s : "-";
}

static void print_table(const struct detected *v, size_t n)
{
	printf("%-14s %-9s %-18s %-9s %-10s %-7s %s\n", "port", "usb", "serial", "location", "role",
	       "mpy", "what / firmware");
	for (size_t i = 0; i < n; i++) {
		const struct detected *d = &v[i];
		char usb[16] = "-", port[32];
		if (d->usb)
			snprintf(usb, sizeof usb, "%04x:%04x", d->dev.vid, d->dev.pid);
		guess_port(d, port, sizeof port);
		const char *role = d->known ? farm_usbid_role_name(d->known->role) : d->usb ? "unknown" : "-";
		printf("%-14s %-9s %-18s %-9s %-10s %-7s ", d->port[0] ? d->port : "(no port)", usb,
		       or_dash(d->dev.serial), or_dash(d->dev.location), role, or_dash(port));
		if (d->impl[0])
			printf("%s %s %s%s%s\n", d->impl, or_dash(d->build[0] ? d->build : d->version),
			       d->machine[0] ? "; " : "", d->machine, "");
		else
			printf("%s%s%s%s\n", d->known ? d->known->name : or_dash(d->dev.product),
			       d->repl[0] ? " [" : "", d->repl, d->repl[0] ? "]" : "");
		if (d->dev.by_id[0])
			printf("%-14s %s\n", "", d->dev.by_id);
	}
	if (!n)
		printf("(no serial ports and no known USB devices found)\n");
}

static void json_field(struct farm_buf *b, const char *key, const char *val, int *first)
{
	farm_buf_printf(b, "%s\"%s\":", *first ? "" : ",", key);
	*first = 0;
	if (val)
		farm_json_string(b, val, strlen(val));
	else
		farm_buf_puts(b, "null");
}

static int print_json(const struct detected *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct detected *d = &v[i];
		struct farm_buf b = { 0 };
		char vid[8] = "", pid[8] = "", port[32];
		int first = 1;
		guess_port(d, port, sizeof port);
		if (d->usb) {
			snprintf(vid, sizeof vid, "%04x", d->dev.vid);
			snprintf(pid, sizeof pid, "%04x", d->dev.pid);
		}
		farm_buf_puts(&b, "{");
		json_field(&b, "port", d->port[0] ? d->port : NULL, &first);
		json_field(&b, "by_id", d->dev.by_id[0] ? d->dev.by_id : NULL, &first);
		json_field(&b, "vid", d->usb ? vid : NULL, &first);
		json_field(&b, "pid", d->usb ? pid : NULL, &first);
		json_field(&b, "serial", d->usb ? d->dev.serial : NULL, &first);
		json_field(&b, "manufacturer", d->usb ? d->dev.manufacturer : NULL, &first);
		json_field(&b, "product", d->usb ? d->dev.product : NULL, &first);
		json_field(&b, "location", d->dev.location[0] ? d->dev.location : NULL, &first);
		farm_buf_printf(&b, ",\"bus\":%d,\"address\":%d", d->bus, d->address);
		json_field(&b, "role", d->known ? farm_usbid_role_name(d->known->role) : "unknown", &first);
		json_field(&b, "known", d->known ? d->known->name : NULL, &first);
		json_field(&b, "bootloader", d->known ? farm_usbid_boot_name(d->known->boot) : NULL, &first);
		json_field(&b, "mpy_port", port[0] ? port : NULL, &first);
		json_field(&b, "repl", d->repl, &first);
		if (d->impl[0]) {
			farm_buf_puts(&b, ",\"firmware\":{");
			first = 1;
			json_field(&b, "impl", d->impl, &first);
			json_field(&b, "version", d->version, &first);
			json_field(&b, "platform", d->platform, &first);
			json_field(&b, "build", d->build, &first);
			json_field(&b, "machine", d->machine, &first);
			farm_buf_puts(&b, "}");
		}
		if (farm_buf_puts(&b, "}\n")) {
			farm_buf_free(&b);
			return -1;
		}
		fwrite(b.data, 1, b.len, stdout);
		farm_buf_free(&b);
	}
	return 0;
}

/* A board id from product + serial: "board-in-fs-mode-e6614c311b7e6f35". */
static void make_id(const struct detected *d, size_t idx, char *out, size_t len)
{
	char raw[300];
	snprintf(raw, sizeof raw, "%.100s-%.120s", d->dev.product[0] ? d->dev.product : "board",
		 d->dev.serial[0] ? d->dev.serial : d->dev.location);
	size_t k = 0;
	int dash = 1;
	for (size_t i = 0; raw[i] && k + 1 < len && k < FARM_ID_MAX; i++) {
		char c = raw[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			out[k++] = c;
			dash = 0;
		} else if (!dash) {
			out[k++] = '-';
			dash = 1;
		}
	}
	while (k && out[k - 1] == '-')
		k--;
	out[k] = '\0';
	if (!k)
		snprintf(out, len, "board-%zu", idx + 1);
}

/* A YAML double-quoted scalar (escaping quotes, backslashes, control bytes). */
static void yaml_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static int write_inventory(const char *path, const struct detected *v, size_t n)
{
	size_t candidates = 0;
	for (size_t i = 0; i < n; i++)
		if (v[i].port[0] && v[i].usb &&
		    (v[i].impl[0] || (v[i].known && v[i].known->role == FARM_USBID_APP)))
			candidates++;
	if (!candidates) {
		fprintf(stderr, "mpfarm detect: no MicroPython board found (none answered on a USB serial "
				"port): %s not written\n", path);
		return FARM_EXIT_INFRA;
	}
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
		fprintf(stderr, "mpfarm detect: --inventory path too long\n");
		return FARM_EXIT_USAGE;
	}
	FILE *f = fopen(tmp, "w");
	if (!f) {
		perror(tmp);
		return FARM_EXIT_INFRA;
	}
	fprintf(f, "# Written by `mpfarm detect --inventory`: a skeleton. Check each board's port and\n"
		   "# board name, add flash:/probe:/tags:, then run `mpfarm inventory check %s`.\n"
		   "farm: detected\n\nboards:\n", path);
	size_t boards = 0;
	char ids[DETECT_MAX][FARM_ID_MAX + 8];
	for (size_t i = 0; i < n; i++) {
		const struct detected *d = &v[i];
		int mpy = d->impl[0] != 0;
		int app = d->known && d->known->role == FARM_USBID_APP;
		if (!d->port[0] || !d->usb || (!mpy && !app)) {
			if (d->port[0] && d->usb)
				fprintf(f, "  # %s (%04x:%04x %s): no MicroPython answered; not listed\n",
					d->port, d->dev.vid, d->dev.pid,
					d->known ? d->known->name : or_dash(d->dev.product));
			continue;
		}
		char id[FARM_ID_MAX + 8], port[32];
		make_id(d, i, id, sizeof id);
		/* Unique ids: a suffix for repeats. */
		for (size_t k = 0; k < boards; k++)
			if (!strcmp(ids[k], id)) {
				char base[56];
				snprintf(base, sizeof base, "%.50s", id);
				snprintf(id, sizeof id, "%s-%u", base, (unsigned)(i + 1) % 1000u);
				k = (size_t)-1;
			}
		snprintf(ids[boards++], sizeof ids[0], "%s", id);
		guess_port(d, port, sizeof port);
		fprintf(f, "  - id: %s\n", id);
		int bridge = d->known && d->known->role == FARM_USBID_BRIDGE;
		if (port[0])
			fprintf(f, "    port: %s%s\n", port, mpy && d->platform[0] && !d->known ? "" :
				"  # from the firmware or the USB id: check");
		else if (bridge)
			fprintf(f, "    port: esp32  # guessed: boards behind a USB-UART bridge are most often ESP32: check\n");
		else
			fprintf(f, "    port: rp2  # unknown: set the MicroPython port\n");
		fprintf(f, "    board: ");
		yaml_str(f, "UNKNOWN");
		fprintf(f, "  # set the MicroPython board name (e.g. RPI_PICO, PYBV11)\n");
		if (d->machine[0]) {
			fprintf(f, "    # runs: %s; ", d->machine);
			for (const char *p = d->build; *p; p++)
				fputc((unsigned char)*p < 0x20 ? '?' : *p, f);
			fputc('\n', f);
		}
		fprintf(f, "    serial:\n      path: ");
		yaml_str(f, d->dev.by_id[0] ? d->dev.by_id : d->port);
		fputc('\n', f);
		if (d->dev.serial[0]) {
			fprintf(f, "      usb_serial: ");
			yaml_str(f, d->dev.serial);
			fputc('\n', f);
		}
		if (d->dev.location[0]) {
			fprintf(f, "      location: ");
			yaml_str(f, d->dev.location);
			fputc('\n', f);
		}
	}
	int bad = ferror(f);
	if (fclose(f) || bad || rename(tmp, path)) {
		perror(path);
		remove(tmp);
		return FARM_EXIT_INFRA;
	}
	fprintf(stderr, "mpfarm detect: wrote %zu board%s to %s\n", boards, boards == 1 ? "" : "s", path);
	return 0;
}

#define DETECT_USAGE \
	"usage: mpfarm detect [--json] [--inventory FILE] [--no-repl] [--timeout MS] [--exclude PORT,...]\n"

int farm_cmd_detect(const struct farm_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "inventory", required_argument, NULL, 'i' },
		{ "no-repl", no_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "exclude", required_argument, NULL, 'x' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .timeout_ms = 2000 };
	int c, ret = FARM_EXIT_OK;
	optind = 1;
	while ((c = getopt_long(argc, argv, "ji:nt:x:", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o.json = 1;
			break;
		case 'i':
			o.inventory = optarg;
			break;
		case 'n':
			o.no_repl = 1;
			break;
		case 't': {
			char *end;
			unsigned long ms = strtoul(optarg, &end, 10);
			if (*end || !optarg[0] || ms < 100 || ms > 600000) {
				fprintf(stderr, "mpfarm detect: --timeout takes milliseconds (100..600000), got \"%s\"\n",
					optarg);
				ret = FARM_EXIT_USAGE;
				goto out;
			}
			o.timeout_ms = (unsigned)ms;
			break;
		}
		case 'x': {
			char **more = NULL;
			size_t nm = 0;
			if (farm_cmd_split_list(optarg, &more, &nm)) {
				ret = FARM_EXIT_USAGE;
				goto out;
			}
			char **all = realloc(o.exclude, (o.n_exclude + nm + 1) * sizeof *all);
			if (!all) {
				for (size_t i = 0; i < nm; i++)
					free(more[i]);
				free(more);
				ret = FARM_EXIT_INFRA;
				goto out;
			}
			memcpy(all + o.n_exclude, more, nm * sizeof *more);
			o.n_exclude += nm;
			all[o.n_exclude] = NULL;
			o.exclude = all;
			free(more);
			break;
		}
		default:
			fprintf(stderr, DETECT_USAGE);
			ret = FARM_EXIT_USAGE;
			goto out;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "mpfarm detect: unexpected argument \"%s\"\n" DETECT_USAGE, argv[optind]);
		ret = FARM_EXIT_USAGE;
		goto out;
	}
	struct detected *v = NULL;
	size_t n = 0;
	struct farm_err e = { 0 };
	if (collect(&v, &n, &e)) {
		fprintf(stderr, "mpfarm detect: %s\n", e.msg);
		ret = FARM_EXIT_INFRA;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (cli->cancel && *cli->cancel) {
			ret = FARM_EXIT_INTERRUPTED;
			break;
		}
		if (may_query(&o, &v[i]))
			query(cli, &o, &v[i]);
	}
	if (ret == FARM_EXIT_OK) {
		if (o.json ? print_json(v, n) : (print_table(v, n), 0))
			ret = FARM_EXIT_INFRA;
		fflush(stdout);
		if (!ret && o.inventory)
			ret = write_inventory(o.inventory, v, n);
	}
	free(v);
out:
	for (size_t i = 0; i < o.n_exclude; i++)
		free(o.exclude[i]);
	free(o.exclude);
	return ret;
}
