/* CUnit: the uf2 runner's helpers (runners/uf2_drive.h): mountinfo lines
 * (octal escapes, optional fields, malformed and over-long lines), the
 * INFO_UF2.TXT reader (any case, bounded fields), the USB device under a
 * block device on a fake sysfs, finding a drive (Board-ID, Model, mount,
 * USB location; ambiguity and absence with their exact messages, the
 * bounded wait and cancel), the checks before a copy with their exact
 * messages, and .hex/.bin -> UF2 conversion round trips. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "le.h"
#include "transport.h"
#include "uf2_drive.h"

/* ---- a scratch tree ---- */

struct scratch {
	char root[64];
};

static void scratch_init(struct scratch *s)
{
	snprintf(s->root, sizeof s->root, "/tmp/test_uf2-XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(s->root));
}

static void path_of(const struct scratch *s, char *out, size_t cap, const char *rel)
{
	int n = snprintf(out, cap, "%s/%s", s->root, rel);
	CU_ASSERT_TRUE(n > 0 && (size_t)n < cap);
}

static void mkdirs(const struct scratch *s, const char *rel)
{
	char p[512], *q;
	path_of(s, p, sizeof p, rel);
	for (q = p + strlen(s->root) + 1; (q = strchr(q, '/')); q++) {
		*q = '\0';
		mkdir(p, 0755);
		*q = '/';
	}
	mkdir(p, 0755);
}

static void put(const struct scratch *s, const char *rel, const char *text)
{
	char p[512];
	path_of(s, p, sizeof p, rel);
	FILE *f = fopen(p, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

static void scratch_free(struct scratch *s)
{
	char *argv[] = { "rm", "-rf", s->root, NULL };
	pid_t pid = fork();
	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
}

/* ---- mountinfo ---- */

static void test_mountinfo_line(void)
{
	struct runner_uf2_mount m;
	struct farm_err e = { 0 };
	const char *line = "712 29 8:17 / /media/ci/RPI-RP2 rw,nosuid,nodev,relatime shared:389 - "
			   "vfat /dev/sdb1 rw,fmask=0022,dmask=0022\n";
	CU_ASSERT_EQUAL_FATAL(runner_uf2_mountinfo_line(&m, line, &e), 0);
	CU_ASSERT_EQUAL(m.id, 712);
	CU_ASSERT_EQUAL(m.major, 8);
	CU_ASSERT_EQUAL(m.minor, 17);
	CU_ASSERT_STRING_EQUAL(m.point, "/media/ci/RPI-RP2");
	CU_ASSERT_STRING_EQUAL(m.fstype, "vfat");
	CU_ASSERT_STRING_EQUAL(m.source, "/dev/sdb1");

	/* Spaces, tabs, newlines and backslashes in a mount point are octal. */
	line = "40 29 0:41 / /run/media/ci/My\\040Drive\\011x\\134y rw - fuse.uf2sim uf2sim rw\n";
	CU_ASSERT_EQUAL_FATAL(runner_uf2_mountinfo_line(&m, line, &e), 0);
	CU_ASSERT_STRING_EQUAL(m.point, "/run/media/ci/My Drive\tx\\y");
	CU_ASSERT_STRING_EQUAL(m.fstype, "fuse.uf2sim");
	CU_ASSERT_EQUAL(m.major, 0);
	/* No optional fields; a backslash not followed by three octal digits stays. */
	line = "41 29 0:42 / /mnt/a\\9 rw - vfat /dev/sdc1 rw";
	CU_ASSERT_EQUAL_FATAL(runner_uf2_mountinfo_line(&m, line, &e), 0);
	CU_ASSERT_STRING_EQUAL(m.point, "/mnt/a\\9");

	CU_ASSERT_EQUAL(runner_uf2_mountinfo_line(&m, "41 29 0:42 / /mnt rw vfat /dev/x rw", &e),
			FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.msg, "malformed mountinfo line (9 fields)");
	CU_ASSERT_EQUAL(runner_uf2_mountinfo_line(&m, "x 29 0:42 / /mnt rw - vfat /dev/x rw", &e),
			FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.msg, "malformed mountinfo line: mount id \"x\"");
	CU_ASSERT_EQUAL(runner_uf2_mountinfo_line(&m, "1 2 8-1 / /mnt rw - vfat /dev/x rw", &e),
			FARM_EINVAL);

	/* Over-long lines and fields are refused, not truncated. */
	size_t n = RUNNER_UF2_LINE_MAX + 10;
	char *big = malloc(n + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(big, 'a', n);
	big[n] = '\0';
	CU_ASSERT_EQUAL(runner_uf2_mountinfo_line(&m, big, &e), FARM_ELIMIT);
	int k = snprintf(big, n, "1 2 0:1 / /");
	memset(big + k, 'p', RUNNER_UF2_PATH_MAX + 5);
	snprintf(big + k + RUNNER_UF2_PATH_MAX + 5, n - (size_t)k - RUNNER_UF2_PATH_MAX - 5,
		 " rw - vfat /dev/x rw");
	CU_ASSERT_EQUAL(runner_uf2_mountinfo_line(&m, big, &e), FARM_ELIMIT);
	free(big);
}

static void test_mounts_file(void)
{
	struct scratch s;
	char p[512];
	scratch_init(&s);
	put(&s, "mountinfo",
	    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	    "garbage line\n"
	    "712 22 8:17 / /media/RPI-RP2 rw shared:389 - vfat /dev/sdb1 rw\n");
	path_of(&s, p, sizeof p, "mountinfo");
	struct runner_uf2_mount *m = NULL;
	size_t n = 0;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(runner_uf2_mounts(&m, &n, p, &e), 0);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_STRING_EQUAL(m[1].point, "/media/RPI-RP2");
	free(m);
	path_of(&s, p, sizeof p, "absent");
	CU_ASSERT_EQUAL(runner_uf2_mounts(&m, &n, p, &e), FARM_ESYS);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "cannot read the mounted volumes from"));
	scratch_free(&s);
}

/* ---- INFO_UF2.TXT ---- */

static void test_info_parse(void)
{
	struct runner_uf2_info in;
	const char *rp2 = "UF2 Bootloader v3.0\r\nModel: Raspberry Pi RP2\r\nBoard-ID: RPI-RP2\r\n";
	runner_uf2_info_parse(&in, rp2, strlen(rp2));
	CU_ASSERT_STRING_EQUAL(in.version, "UF2 Bootloader v3.0");
	CU_ASSERT_STRING_EQUAL(in.model, "Raspberry Pi RP2");
	CU_ASSERT_STRING_EQUAL(in.board_id, "RPI-RP2");

	/* Keys in any case, other lines ignored, the first value wins, no newline at the end. */
	const char *t = "uf2 bootloader v1.23.1-adafruit.1 lib/nrfx (v2.0.0)\n"
			"model:   Adafruit Feather nRF52840 Express  \n"
			"Date: Mar  5 2023\nMODEL: second\nBOARD-ID: nRF52840-Feather-revD";
	runner_uf2_info_parse(&in, t, strlen(t));
	CU_ASSERT_STRING_EQUAL(in.model, "Adafruit Feather nRF52840 Express");
	CU_ASSERT_STRING_EQUAL(in.board_id, "nRF52840-Feather-revD");
	CU_ASSERT_STRING_EQUAL(in.version, "uf2 bootloader v1.23.1-adafruit.1 lib/nrfx (v2.0.0)");

	/* Missing lines stay empty; control bytes are shown as '?'; long values are cut. */
	char big[600];
	int k = snprintf(big, sizeof big, "Board-ID: a\x01""b\nModel: ");
	memset(big + k, 'M', 400);
	big[k + 400] = '\0';
	runner_uf2_info_parse(&in, big, strlen(big));
	CU_ASSERT_STRING_EQUAL(in.version, "");
	CU_ASSERT_STRING_EQUAL(in.board_id, "a?b");
	CU_ASSERT_EQUAL(strlen(in.model), sizeof in.model - 1);

	/* Only the first RUNNER_UF2_INFO_MAX bytes are looked at. */
	size_t n = RUNNER_UF2_INFO_MAX + 100;
	char *pad = malloc(n + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pad);
	memset(pad, '\n', n);
	memcpy(pad + RUNNER_UF2_INFO_MAX + 10, "Model: late", 11);
	runner_uf2_info_parse(&in, pad, n);
	CU_ASSERT_STRING_EQUAL(in.model, "");
	free(pad);
}

static void test_info_read(void)
{
	struct scratch s;
	char p[512];
	struct runner_uf2_info in;
	struct farm_err e = { 0 };
	scratch_init(&s);
	mkdirs(&s, "drive");
	put(&s, "drive/info_uf2.txt", "UF2 Bootloader v3.0\nModel: M\nBoard-ID: B\n");
	path_of(&s, p, sizeof p, "drive");
	CU_ASSERT_EQUAL_FATAL(runner_uf2_info_read(&in, p, &e), 0);
	CU_ASSERT_STRING_EQUAL(in.board_id, "B");
	mkdirs(&s, "plain");
	path_of(&s, p, sizeof p, "plain");
	CU_ASSERT_EQUAL(runner_uf2_info_read(&in, p, &e), FARM_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "no INFO_UF2.TXT (not a UF2 drive)"));
	scratch_free(&s);
}

/* ---- the USB device under a block device ---- */

static void test_usb_parent(void)
{
	struct scratch s;
	char loc[64], ser[128], target[512], link[512];
	scratch_init(&s);
	const char *usb = "sys/devices/pci0000:00/0000:00:14.0/usb1";
	char dev[400];
	snprintf(dev, sizeof dev, "%s/1-1/1-1.2", usb);
	char blk[512];
	snprintf(blk, sizeof blk, "%s/1-1.2:1.0/host3/target3:0:0/3:0:0:0/block/sdb/sdb1", dev);
	mkdirs(&s, blk);
	mkdirs(&s, "sys/dev/block");
	char a[512];
	snprintf(a, sizeof a, "%s/idVendor", usb);
	put(&s, a, "1d6b\n");
	snprintf(a, sizeof a, "%s/busnum", usb);
	put(&s, a, "1\n");
	snprintf(a, sizeof a, "%s/idVendor", dev);
	put(&s, a, "2e8a\n");
	snprintf(a, sizeof a, "%s/busnum", dev);
	put(&s, a, "1\n");
	snprintf(a, sizeof a, "%s/serial", dev);
	put(&s, a, "E0C9125B0D9B\n");
	path_of(&s, target, sizeof target, blk);
	path_of(&s, link, sizeof link, "sys/dev/block/8:17");
	CU_ASSERT_EQUAL_FATAL(symlink(target, link), 0);
	path_of(&s, a, sizeof a, "sys");
	CU_ASSERT_EQUAL(runner_uf2_usb_parent(loc, sizeof loc, ser, sizeof ser, a, 8, 17), 0);
	CU_ASSERT_STRING_EQUAL(loc, "1-1.2");
	CU_ASSERT_STRING_EQUAL(ser, "E0C9125B0D9B");
	/* Not there, or an anonymous device (FUSE): not on USB. */
	CU_ASSERT_EQUAL(runner_uf2_usb_parent(loc, sizeof loc, ser, sizeof ser, a, 8, 33),
			FARM_ENOTFOUND);
	CU_ASSERT_EQUAL(runner_uf2_usb_parent(loc, sizeof loc, ser, sizeof ser, a, 0, 41),
			FARM_ENOTFOUND);
	CU_ASSERT_STRING_EQUAL(loc, "");
	scratch_free(&s);
}

/* ---- finding the drive ---- */

static struct runner_uf2_drive drive(const char *point, const char *id, const char *model,
				     const char *loc)
{
	struct runner_uf2_drive d;
	memset(&d, 0, sizeof d);
	snprintf(d.m.point, sizeof d.m.point, "%s", point);
	snprintf(d.info.board_id, sizeof d.info.board_id, "%s", id);
	snprintf(d.info.model, sizeof d.info.model, "%s", model);
	snprintf(d.usb_location, sizeof d.usb_location, "%s", loc);
	return d;
}

static void test_pick(void)
{
	struct runner_uf2_drive l[3] = {
		drive("/media/RPI-RP2", "RPI-RP2", "Raspberry Pi RP2", "1-1.2"),
		drive("/media/RPI-RP21", "RPI-RP2", "Raspberry Pi RP2", "1-1.3"),
		drive("/media/FTHR840BOOT", "nRF52840-Feather-revD", "Adafruit Feather nRF52840", ""),
	};
	struct runner_uf2_drive d;
	struct farm_err e = { 0 };
	struct runner_uf2_want w = { .board_id = "RPI-RP2" };
	CU_ASSERT_EQUAL(runner_uf2_pick(&d, l, 3, &w, "pico-1", &e), FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.msg,
			       "board pico-1: 2 UF2 drives match Board-ID RPI-RP2: /media/RPI-RP2 "
			       "(Board-ID: RPI-RP2, Model: Raspberry Pi RP2, USB 1-1.2); "
			       "/media/RPI-RP21 (Board-ID: RPI-RP2, Model: Raspberry Pi RP2, USB "
			       "1-1.3); pin the board's drive with flash: mount: PATH, or the board's "
			       "serial.location / usb_serial");
	/* Pinned by USB location or mount point: one. */
	w.usb_location = "1-1.3";
	CU_ASSERT_EQUAL_FATAL(runner_uf2_pick(&d, l, 3, &w, "pico-1", &e), 0);
	CU_ASSERT_STRING_EQUAL(d.m.point, "/media/RPI-RP21");
	struct runner_uf2_want wm = { .mount = "/media/RPI-RP2" };
	CU_ASSERT_EQUAL_FATAL(runner_uf2_pick(&d, l, 3, &wm, "pico-1", &e), 0);
	CU_ASSERT_STRING_EQUAL(d.info.board_id, "RPI-RP2");
	/* By Model. */
	struct runner_uf2_want wmod = { .model = "Adafruit Feather nRF52840" };
	CU_ASSERT_EQUAL_FATAL(runner_uf2_pick(&d, l, 3, &wmod, "feather", &e), 0);
	CU_ASSERT_STRING_EQUAL(d.m.point, "/media/FTHR840BOOT");
	/* A pin the drive cannot show (not on USB) does not match. */
	struct runner_uf2_want wloc = { .model = "Adafruit Feather nRF52840", .usb_location = "1-4" };
	CU_ASSERT_EQUAL(runner_uf2_pick(&d, l, 3, &wloc, "feather", &e), FARM_ENOTFOUND);
	CU_ASSERT_STRING_EQUAL(e.msg,
			       "board feather: no UF2 drive with Model Adafruit Feather nRF52840, USB "
			       "location 1-4 (UF2 drives mounted: /media/RPI-RP2 (Board-ID: RPI-RP2, "
			       "Model: Raspberry Pi RP2, USB 1-1.2); /media/RPI-RP21 (Board-ID: "
			       "RPI-RP2, Model: Raspberry Pi RP2, USB 1-1.3); /media/FTHR840BOOT "
			       "(Board-ID: nRF52840-Feather-revD, Model: Adafruit Feather nRF52840))");
	/* Nothing mounted. */
	struct runner_uf2_want any = { 0 };
	CU_ASSERT_EQUAL(runner_uf2_pick(&d, NULL, 0, &any, "b", &e), FARM_ENOTFOUND);
	CU_ASSERT_STRING_EQUAL(e.msg, "board b: no UF2 drive with any UF2 drive (UF2 drives "
				      "mounted: none)");
}

/* A fake mountinfo naming scratch directories; only FAT/FUSE mounts are looked into. */
static void test_find_and_wait(void)
{
	struct scratch s;
	char mi[512], text[2048], a[512], b[512], c[512];
	scratch_init(&s);
	mkdirs(&s, "a");
	mkdirs(&s, "b");
	mkdirs(&s, "c");
	put(&s, "a/INFO_UF2.TXT", "UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n");
	put(&s, "b/INFO_UF2.TXT", "UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n");
	put(&s, "c/INFO_UF2.TXT", "UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n");
	path_of(&s, a, sizeof a, "a");
	path_of(&s, b, sizeof b, "b");
	path_of(&s, c, sizeof c, "c");
	snprintf(text, sizeof text,
		 "30 22 0:40 / %s rw - fuse.uf2sim uf2sim rw\n"
		 "31 22 0:41 / %s rw - ext4 /dev/sda2 rw\n"
		 "32 22 0:42 / %s rw - vfat /dev/sdb1 rw\n", a, b, c);
	put(&s, "mountinfo", text);
	path_of(&s, mi, sizeof mi, "mountinfo");
	struct runner_uf2_drive d;
	struct farm_err e = { 0 };
	struct runner_uf2_want w = { .board_id = "RPI-RP2", .mountinfo = mi, .sys_root = s.root };
	CU_ASSERT_EQUAL(runner_uf2_find(&d, &w, "pico", &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "2 UF2 drives match Board-ID RPI-RP2"));
	CU_ASSERT_PTR_NULL(strstr(e.msg, "/b (")); /* an ext4 volume is not looked into */
	w.mount = b; /* unless it is asked for */
	CU_ASSERT_EQUAL_FATAL(runner_uf2_find(&d, &w, "pico", &e), 0);
	CU_ASSERT_EQUAL(d.m.id, 31);
	CU_ASSERT(runner_uf2_mounted(&w, 31, b));
	CU_ASSERT(!runner_uf2_mounted(&w, 31, a));
	w.mount = c;
	CU_ASSERT_EQUAL_FATAL(runner_uf2_wait(&d, &w, "pico", 1000, 10, NULL, &e), 0);
	CU_ASSERT_STRING_EQUAL(d.m.point, c);

	/* A drive that never comes: bounded, with what was seen and what to do. */
	w.mount = NULL;
	w.board_id = "RP2350";
	long long t0 = farm_now_ms();
	CU_ASSERT_EQUAL(runner_uf2_wait(&d, &w, "pico2", 150, 20, NULL, &e), FARM_ETIMEDOUT);
	CU_ASSERT(farm_now_ms() - t0 >= 150);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "board pico2: no UF2 drive with Board-ID RP2350"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "still after 150 ms: put the board in its bootloader"));
	volatile sig_atomic_t cancel = 1;
	CU_ASSERT_EQUAL(runner_uf2_wait(&d, &w, "pico2", 10000, 20, &cancel, &e), FARM_EINTR);
	scratch_free(&s);
}

/* ---- checks before a copy ---- */

static const struct farm_flashmap *fam(const char *name)
{
	const struct farm_flashmap *m = farm_flashmap_find(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	return m;
}

/* A UF2 of len bytes of pattern at addr with family (0 = none). */
static void make_uf2(struct farm_buf *out, uint32_t addr, size_t len, uint32_t family)
{
	struct farm_image *img = NULL;
	struct farm_err e = { 0 };
	uint8_t *d = malloc(len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	for (size_t i = 0; i < len; i++)
		d[i] = (uint8_t)(i * 7 + 1);
	CU_ASSERT_EQUAL_FATAL(farm_image_new(&img, FARM_IMG_BIN, &e), 0);
	CU_ASSERT_EQUAL_FATAL(farm_image_add(img, addr, d, len, &e), 0);
	CU_ASSERT_EQUAL_FATAL(farm_image_write_uf2(img, family, out, &e), 0);
	farm_image_free(img);
	free(d);
}

static void test_validate(void)
{
	struct farm_buf u = { 0 };
	struct farm_err e = { 0 };
	struct farm_image *img = NULL;
	const struct farm_flashmap *rp2 = fam("rp2040"), *nrf51 = fam("nrf51");

	make_uf2(&u, 0x10000000, 1024, 0xE48BFF56);
	CU_ASSERT_EQUAL_FATAL(runner_uf2_validate(&img, u.data, u.len, "fw.uf2", rp2, &e), 0);
	CU_ASSERT_EQUAL(farm_image_size(img), 1024);
	farm_image_free(img);
	CU_ASSERT_EQUAL(runner_uf2_validate(NULL, u.data, u.len, "fw.uf2", NULL, &e), FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.msg, "fw.uf2: the board's MCU family is unknown: set mcu: (see "
				      "`mpfarm runners --mcus`)");

	/* Block 1's second magic. */
	u.data[512 + 4] ^= 0x01;
	CU_ASSERT_EQUAL(runner_uf2_validate(NULL, u.data, u.len, "fw.uf2", rp2, &e), FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.msg, "fw.uf2: block 1 (offset 512): bad second magic 0x9e5d5156, "
				      "expected 0x9e5d5157");
	u.data[512 + 4] ^= 0x01;
	/* Blocks out of order. */
	uint8_t tmp[512];
	memcpy(tmp, u.data, 512);
	memcpy(u.data, u.data + 512, 512);
	memcpy(u.data + 512, tmp, 512);
	CU_ASSERT_EQUAL(runner_uf2_validate(NULL, u.data, u.len, "fw.uf2", rp2, &e), FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.msg, "fw.uf2: block 0 (offset 0): block number 1 where a sequence "
				      "starts (expected 0): blocks missing or out of order");
	/* Truncated. */
	memcpy(u.data + 512, u.data, 512);
	memcpy(u.data, tmp, 512);
	CU_ASSERT_EQUAL(runner_uf2_validate(NULL, u.data, u.len - 512, "fw.uf2", rp2, &e),
			FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.msg, "fw.uf2: the file ends inside a sequence: block 3 of 4 is "
				      "missing (truncated?)");
	farm_buf_free(&u);

	/* Families. */
	make_uf2(&u, 0x10000000, 512, 0x1B57745F);
	CU_ASSERT_EQUAL(runner_uf2_validate(NULL, u.data, u.len, "nrf52.uf2", rp2, &e), FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.msg, "nrf52.uf2: UF2 family 0x1b57745f, the board's MCU rp2040 is "
				      "0xe48bff56: the file is for another chip; use the build for "
				      "rp2040");
	farm_buf_free(&u);
	make_uf2(&u, 0x10000000, 512, 0);
	CU_ASSERT_EQUAL(runner_uf2_validate(NULL, u.data, u.len, "plain.uf2", rp2, &e), FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.msg, "plain.uf2: no UF2 family id, the rp2040 bootloader takes "
				      "family 0xe48bff56: give mpfarm the .hex or .bin (it converts "
				      "with the family)");
	farm_buf_free(&u);
	make_uf2(&u, 0x0, 512, 0xE48BFF56);
	CU_ASSERT_EQUAL(runner_uf2_validate(NULL, u.data, u.len, "rp2.uf2", nrf51, &e), FARM_EINVAL);
	CU_ASSERT_STRING_EQUAL(e.msg, "rp2.uf2: UF2 family 0xe48bff56, the board's MCU nrf51 has no "
				      "UF2 family id: the file is for another chip; use a UF2 file "
				      "without a family id, or the .hex/.bin");
	farm_buf_free(&u);
	/* Addresses outside the MCU's flash. */
	make_uf2(&u, 0x20000000, 256, 0xE48BFF56);
	CU_ASSERT_EQUAL(runner_uf2_validate(NULL, u.data, u.len, "ram.uf2", rp2, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "ram.uf2: image bytes 0x20000000-0x200000ff lie outside "
					     "rp2040 flash"));
	farm_buf_free(&u);
	make_uf2(&u, 0x0003ff00, 512, 0);
	CU_ASSERT_EQUAL(runner_uf2_validate(NULL, u.data, u.len, "big.uf2", nrf51, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "big.uf2: image bytes 0x00040000-0x000400ff lie outside "
					     "nrf51 flash"));
	farm_buf_free(&u);
}

/* ---- conversion ---- */

static void check_blocks(const struct farm_buf *u, uint32_t family)
{
	size_t n = u->len / 512;
	CU_ASSERT_EQUAL(u->len % 512, 0);
	for (size_t i = 0; i < n; i++) {
		const uint8_t *b = (const uint8_t *)u->data + i * 512;
		CU_ASSERT_EQUAL(farm_le32(b), 0x0A324655u);
		CU_ASSERT_EQUAL(farm_le32(b + 8), family ? 0x2000u : 0u);
		CU_ASSERT_EQUAL(farm_le32(b + 12) % 256, 0);
		CU_ASSERT_EQUAL(farm_le32(b + 16), 256);
		CU_ASSERT_EQUAL(farm_le32(b + 20), i);
		CU_ASSERT_EQUAL(farm_le32(b + 24), n);
		CU_ASSERT_EQUAL(farm_le32(b + 28), family);
		CU_ASSERT_EQUAL(farm_le32(b + 508), 0x0AB16F30u);
	}
}

static void test_convert_hex(void)
{
	/* Two segments as in the micro:bit image: flash and a UICR word. */
	const char *hex = ":020000040000FA\n"
			  ":10000000000400204D0100006D0100006F010000A0\n"
			  ":10001000000000000000000000000000000000E000\n"
			  ":020000041000EA\n"
			  ":0410C000000000002C\n"
			  ":00000001FF\n";
	struct farm_image *img = NULL, *back = NULL;
	struct farm_buf u = { 0 };
	struct farm_err e = { 0 };
	char a[65], b[65];
	CU_ASSERT_EQUAL_FATAL(farm_image_parse_ihex(&img, hex, strlen(hex), "t.hex", &e), 0);
	CU_ASSERT_EQUAL_FATAL(img->n_segs, 2);
	CU_ASSERT_EQUAL_FATAL(runner_uf2_convert(&u, img, fam("nrf51"), &e), 0);
	CU_ASSERT_EQUAL(u.len, 2 * 512);
	check_blocks(&u, 0);
	CU_ASSERT_EQUAL_FATAL(farm_image_parse_uf2(&back, u.data, u.len, "t.uf2", &e), 0);
	/* Pages are padded with 0xff: the image's bytes come back where they were. */
	CU_ASSERT_EQUAL(back->n_segs, 2);
	CU_ASSERT_EQUAL(back->segs[0].addr, 0);
	CU_ASSERT_EQUAL(back->segs[0].len, 256);
	CU_ASSERT_EQUAL(memcmp(back->segs[0].data, img->segs[0].data, img->segs[0].len), 0);
	CU_ASSERT_EQUAL(back->segs[0].data[img->segs[0].len], 0xff);
	CU_ASSERT_EQUAL(back->segs[1].addr, 0x10001000);
	CU_ASSERT_EQUAL(memcmp(back->segs[1].data + 0xc0, img->segs[1].data, 4), 0);
	farm_image_free(back);
	farm_buf_free(&u);

	/* Whole aligned pages come back identical (same SHA-256). */
	farm_image_free(img);
	uint8_t page[4096];
	for (size_t i = 0; i < sizeof page; i++)
		page[i] = (uint8_t)(i ^ 0x5a);
	CU_ASSERT_EQUAL_FATAL(farm_image_parse_bin(&img, page, sizeof page, 0x10000000, "f.bin", &e),
			      0);
	CU_ASSERT_EQUAL_FATAL(runner_uf2_convert(&u, img, fam("rp2040"), &e), 0);
	check_blocks(&u, 0xE48BFF56);
	CU_ASSERT_EQUAL_FATAL(runner_uf2_validate(&back, u.data, u.len, "f.uf2", fam("rp2040"), &e),
			      0);
	farm_image_sha256(img, a);
	farm_image_sha256(back, b);
	CU_ASSERT_STRING_EQUAL(a, b);
	CU_ASSERT_EQUAL(back->uf2_family, 0xE48BFF56);
	farm_image_free(back);
	farm_buf_free(&u);

	/* An image that does not fit the MCU is not converted. */
	CU_ASSERT_EQUAL(runner_uf2_convert(&u, img, fam("nrf51"), &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "converted image: image bytes 0x10000000-"));
	CU_ASSERT_EQUAL(runner_uf2_convert(&u, img, NULL, &e), FARM_EINVAL);
	farm_buf_free(&u);
	farm_image_free(img);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("uf2", NULL, NULL);
	if (!s)
		return -1;
	if (!CU_add_test(s, "mountinfo line", test_mountinfo_line) ||
	    !CU_add_test(s, "mountinfo file", test_mounts_file) ||
	    !CU_add_test(s, "INFO_UF2.TXT parse", test_info_parse) ||
	    !CU_add_test(s, "INFO_UF2.TXT read", test_info_read) ||
	    !CU_add_test(s, "USB parent of a block device", test_usb_parent) ||
	    !CU_add_test(s, "pick: match, pins, ambiguity", test_pick) ||
	    !CU_add_test(s, "find and wait on a fake mountinfo", test_find_and_wait) ||
	    !CU_add_test(s, "validate", test_validate) ||
	    !CU_add_test(s, "convert hex/bin -> UF2", test_convert_hex))
		return -1;
	return 0;
}
