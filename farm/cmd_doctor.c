/* mpfarm doctor [--sys DIR] [--dev DIR]
 *
 * Checks that this user can open what a farm needs without root: every USB
 * device of a known id (farm/usbids.h: boards, bootloaders, USB-UART
 * bridges, debug probes) through its /dev/bus/usb node, and every serial
 * port such a device offers, read-write. Prints one line per device and, if
 * any cannot be opened, the fix (ci/udev/70-mpfarm.rules, the plugdev and
 * dialout groups, replugging). Exit 0 when all is well, 1 when something
 * is missing. --sys and --dev read another tree (tests use a fake one). */
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "usbdev.h"
#include "usbids.h"

static const char usage[] = "usage: mpfarm doctor [--sys DIR] [--dev DIR]\n";

/* "" when this user can open path read-write; else why ("mode 0600 root:root"). */
static void check_node(const char *path, char *why, size_t len)
{
	struct stat st;
	why[0] = '\0';
	if (stat(path, &st) != 0) {
		snprintf(why, len, "%s is missing", path);
		return;
	}
	if (access(path, R_OK | W_OK) == 0)
		return;
	struct passwd *pw = getpwuid(st.st_uid);
	struct group *gr = getgrgid(st.st_gid);
	char u[32], g[32];
	snprintf(u, sizeof u, "%s", pw ? pw->pw_name : "?");
	snprintf(g, sizeof g, "%s", gr ? gr->gr_name : "?");
	snprintf(why, len, "cannot open %s read-write (mode %04o, owner %s:%s)", path,
		 (unsigned)(st.st_mode & 07777), u, g);
}

int farm_cmd_doctor(const struct farm_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "sys", required_argument, NULL, 's' },
		{ "dev", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sys_root = "/sys", *dev_root = "/dev";
	int c;
	(void)cli;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 's')
			sys_root = optarg;
		else if (c == 'd')
			dev_root = optarg;
		else {
			fputs(usage, stderr);
			return FARM_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fputs(usage, stderr);
		return FARM_EXIT_USAGE;
	}
	struct farm_usbdev *v = NULL;
	size_t n = 0;
	struct farm_err e = { 0 };
	if (farm_usbdev_list_at(sys_root, dev_root, &v, &n, &e) < 0) {
		fprintf(stderr, "mpfarm doctor: %s\n", e.msg);
		return FARM_EXIT_INFRA;
	}
	size_t known = 0, bad = 0;
	for (size_t i = 0; i < n; i++) {
		const struct farm_usbdev *d = &v[i];
		const struct farm_usbid *id = farm_usbid_lookup(d->vid, d->pid, d->serial);
		if (!id)
			continue;
		known++;
		char node[600], why[700], why_tty[700] = "";
		snprintf(node, sizeof node, "%s/bus/usb/%03u/%03u", dev_root, d->busnum, d->devnum);
		check_node(node, why, sizeof why);
		if (d->tty[0])
			check_node(d->tty, why_tty, sizeof why_tty);
		int ok = !why[0] && !why_tty[0];
		bad += !ok;
		printf("%-4s %04x:%04x at %s  %s (%s)%s%s%s%s%s%s\n", ok ? "ok" : "FIX", d->vid, d->pid,
		       d->location, id->name, farm_usbid_role_name(id->role), d->tty[0] ? "  " : "",
		       d->tty, why[0] ? "\n     " : "", why, why_tty[0] ? "\n     " : "", why_tty);
	}
	free(v);
	if (!known)
		printf("no USB device of a known id (boards, bootloaders, bridges, probes) is plugged in\n");
	if (!bad) {
		if (known)
			printf("mpfarm doctor: this user can open all %zu devices\n", known);
		return FARM_EXIT_OK;
	}
	printf("\nmpfarm doctor: this user cannot open %zu of %zu devices. Fix (once per host):\n"
	       "  sudo install -m 644 ci/udev/70-mpfarm.rules /etc/udev/rules.d/\n"
	       "  sudo udevadm control --reload-rules && sudo udevadm trigger\n"
	       "  sudo usermod -aG plugdev,dialout \"$USER\"   (then log in again)\n"
	       "and replug the boards (see ci/udev/README.md).\n", bad, known);
	return FARM_EXIT_FAILED;
}
