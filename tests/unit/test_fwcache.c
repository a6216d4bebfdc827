/* The firmware cache (farm/fwcache.c) and the build helpers (farm/fwbuild.c). */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fwbuild.h"
#include "fwcache.h"
#include "ydoc.h"

static char tmp_root[256];

static int setup(void)
{
	snprintf(tmp_root, sizeof tmp_root, "/tmp/mpfarm-fwcache-XXXXXX");
	return mkdtemp(tmp_root) ? 0 : -1;
}

static int teardown(void)
{
	char *argv[] = { "rm", "-rf", tmp_root, NULL };
	struct farm_fwbuild_proc p;
	struct farm_err e = { 0 };
	int st = 0;
	if (farm_fwbuild_spawn(&p, "/", argv, "/dev/null", 10000, &e) == 0)
		while (!farm_fwbuild_poll(&p, &st))
			usleep(10000);
	return 0;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

static void cache_dir(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", tmp_root, name);
}

static void store_one(struct farm_fwcache *c, const char *key, const char *text,
		      struct farm_fwcache_entry *ent)
{
	char tmp[FARM_FWCACHE_PATH_MAX];
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(farm_fwcache_tmp_path(c, "t", tmp, sizeof tmp, &e), 0);
	write_file(tmp, text);
	memset(ent, 0, sizeof *ent);
	snprintf(ent->kind, sizeof ent->kind, "fetch");
	snprintf(ent->format, sizeof ent->format, "ihex");
	snprintf(ent->source, sizeof ent->source, "http://example.invalid/fw.hex\nline2");
	CU_ASSERT_EQUAL_FATAL(farm_fwcache_store(c, key, tmp, ent, &e), 0);
	CU_ASSERT_EQUAL(access(tmp, F_OK), -1); /* moved, not copied */
}

static void test_store_lookup(void)
{
	char dir[512], img[FARM_FWCACHE_PATH_MAX];
	cache_dir(dir, sizeof dir, "a");
	struct farm_fwcache c;
	struct farm_err e = { 0 };
	struct farm_fwcache_entry ent, got;
	CU_ASSERT_EQUAL_FATAL(farm_fwcache_open(&c, dir, 0, 1000, NULL, &e), 0);
	CU_ASSERT_EQUAL(farm_fwcache_lookup(&c, "key one", &got, &e), FARM_ENOTFOUND);
	store_one(&c, "key one", ":00000001FF\n", &ent);
	/* sha256 of ":00000001FF\n" */
	CU_ASSERT_STRING_EQUAL(ent.sha256, "9e2df0a1190a1205c098889c455e5b76c4df18b5ccac2b7605da1575f05b64c5");
	CU_ASSERT_EQUAL(ent.size, 12);
	CU_ASSERT_EQUAL_FATAL(farm_fwcache_lookup(&c, "key one", &got, &e), 0);
	CU_ASSERT_STRING_EQUAL(got.sha256, ent.sha256);
	CU_ASSERT_STRING_EQUAL(got.key, "key one");
	CU_ASSERT_STRING_EQUAL(got.format, "ihex");
	/* a newline in a value cannot make a new line in the entry */
	CU_ASSERT_STRING_EQUAL(got.source, "http://example.invalid/fw.hex?line2");
	CU_ASSERT_EQUAL(farm_fwcache_lookup(&c, "key two", &got, &e), FARM_ENOTFOUND);

	/* a damaged image is never used: dropped, and the key is a miss */
	CU_ASSERT_EQUAL(farm_fwcache_image_path(&c, &ent, img, sizeof img), 0);
	write_file(img, ":00000001FE\n");
	CU_ASSERT_EQUAL(farm_fwcache_lookup(&c, "key one", &got, &e), FARM_ENOTFOUND);
	CU_ASSERT_EQUAL(access(img, F_OK), -1);
	farm_fwcache_close(&c);
}

static void test_list_prune(void)
{
	char dir[512], path[FARM_FWCACHE_PATH_MAX];
	cache_dir(dir, sizeof dir, "b");
	struct farm_fwcache c;
	struct farm_err e = { 0 };
	struct farm_fwcache_entry a, b;
	CU_ASSERT_EQUAL_FATAL(farm_fwcache_open(&c, dir, 0, 1000, NULL, &e), 0);
	store_one(&c, "old", "old image", &a);
	store_one(&c, "new", "new image", &b);
	store_one(&c, "same bytes", "new image", &b); /* two keys, one image */
	snprintf(path, sizeof path, "%s/src/mp-0123456789ab", dir);
	CU_ASSERT_EQUAL(mkdir(path, 0755), 0);
	snprintf(path, sizeof path, "%s/src/mp-0123456789ab/file", dir);
	write_file(path, "x");
	struct farm_fwcache_entry *v = NULL;
	size_t n = 0;
	CU_ASSERT_EQUAL_FATAL(farm_fwcache_list(&c, &v, &n, &e), 0);
	CU_ASSERT_EQUAL(n, 3);
	free(v);
	/* "old" and the checkout were last used 10 days ago */
	time_t now = time(NULL);
	struct timespec old[2] = { { now - 10 * 86400, 0 }, { now - 10 * 86400, 0 } };
	snprintf(path, sizeof path, "%s/index/%s", dir, a.keyhash);
	CU_ASSERT_EQUAL(utimensat(AT_FDCWD, path, old, 0), 0);
	snprintf(path, sizeof path, "%s/src/mp-0123456789ab", dir);
	CU_ASSERT_EQUAL(utimensat(AT_FDCWD, path, old, 0), 0);
	farm_fwcache_close(&c);

	/* prune needs the cache to itself: a run holding it shared makes it wait */
	struct farm_fwcache run, pr;
	CU_ASSERT_EQUAL_FATAL(farm_fwcache_open(&run, dir, 0, 1000, NULL, &e), 0);
	CU_ASSERT_EQUAL(farm_fwcache_open(&pr, dir, 1, 200, NULL, &e), FARM_EBUSY);
	farm_fwcache_close(&run);
	CU_ASSERT_EQUAL_FATAL(farm_fwcache_open(&pr, dir, 1, 1000, NULL, &e), 0);
	struct farm_fwcache_prune_stats st;
	CU_ASSERT_EQUAL(farm_fwcache_prune(&pr, 7, now, &st, &e), 0);
	CU_ASSERT_EQUAL(st.entries, 1);
	CU_ASSERT_EQUAL(st.images, 1);
	CU_ASSERT_EQUAL(st.checkouts, 1);
	CU_ASSERT_EQUAL(farm_fwcache_lookup(&pr, "old", &a, &e), FARM_ENOTFOUND);
	CU_ASSERT_EQUAL(farm_fwcache_lookup(&pr, "new", &b, &e), 0);
	CU_ASSERT_EQUAL(farm_fwcache_lookup(&pr, "same bytes", &b, &e), 0);
	CU_ASSERT_EQUAL(access(path, F_OK), -1);
	farm_fwcache_close(&pr);
}

static void test_locks(void)
{
	char dir[512];
	cache_dir(dir, sizeof dir, "c");
	struct farm_fwcache c;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(farm_fwcache_open(&c, dir, 0, 1000, NULL, &e), 0);
	int fd = farm_fwcache_lock(&c, "key-abc", 0, NULL, &e);
	CU_ASSERT_TRUE_FATAL(fd >= 0);
	/* another open file description (another process) must wait */
	CU_ASSERT_EQUAL(farm_fwcache_lock(&c, "key-abc", 100, NULL, &e), FARM_EBUSY);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "key-abc"));
	close(fd);
	fd = farm_fwcache_lock(&c, "key-abc", 0, NULL, &e);
	CU_ASSERT_TRUE(fd >= 0);
	close(fd);
	CU_ASSERT_EQUAL(farm_fwcache_lock(&c, "../escape", 0, NULL, &e), FARM_EINVAL);
	volatile sig_atomic_t cancel = 1;
	fd = farm_fwcache_lock(&c, "key-abc", 0, NULL, &e);
	CU_ASSERT_EQUAL(farm_fwcache_lock(&c, "key-abc", 5000, &cancel, &e), FARM_EINTR);
	close(fd);
	farm_fwcache_close(&c);
}

static void test_expand_and_defaults(void)
{
	struct farm_fwbuild_vars v = { "rp2", "RPI_PICO", NULL, 4 };
	struct farm_err e = { 0 };
	char out[64];
	CU_ASSERT_EQUAL(farm_fwbuild_expand("BOARD={board}", &v, out, sizeof out, &e), 0);
	CU_ASSERT_STRING_EQUAL(out, "BOARD=RPI_PICO");
	CU_ASSERT_EQUAL(farm_fwbuild_expand("-j{jobs} ports/{port}", &v, out, sizeof out, &e), 0);
	CU_ASSERT_STRING_EQUAL(out, "-j4 ports/rp2");
	CU_ASSERT_EQUAL(farm_fwbuild_expand("V={variant}", &v, out, sizeof out, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "{variant}"));
	CU_ASSERT_EQUAL(farm_fwbuild_expand("{home}", &v, out, sizeof out, &e), FARM_EINVAL);
	CU_ASSERT_EQUAL(farm_fwbuild_expand("{board}{board}{board}{board}{board}", &v, out, 20, &e),
			FARM_ELIMIT);
	char **argv = NULL;
	size_t n = 0;
	v.variant = "SPIRAM";
	CU_ASSERT_EQUAL_FATAL(farm_fwbuild_default_argv(&v, &argv, &n, &e), 0);
	CU_ASSERT_EQUAL_FATAL(n, 6);
	CU_ASSERT_STRING_EQUAL(argv[2], "ports/rp2");
	CU_ASSERT_STRING_EQUAL(argv[4], "BOARD_VARIANT=SPIRAM");
	CU_ASSERT_STRING_EQUAL(argv[5], "-j4");
	CU_ASSERT_PTR_NULL(argv[6]);
	farm_strv_free(argv, n);
	CU_ASSERT_STRING_EQUAL(farm_fwbuild_default_artifact("stm32"), "firmware.dfu");
	CU_ASSERT_STRING_EQUAL(farm_fwbuild_default_artifact("esp32"), "flash_args");
	CU_ASSERT_PTR_NULL(farm_fwbuild_default_artifact("unix"));
}

static void test_makefile_submodules(void)
{
	char mk[512];
	snprintf(mk, sizeof mk, "%s/Makefile", tmp_root);
	write_file(mk, "# GIT_SUBMODULES += lib/commented\n"
		       "GIT_SUBMODULES += lib/pico-sdk lib/tinyusb # the SDK\n"
		       "GIT_SUBMODULES = lib/mbedtls \\\n"
		       "\tlib/lwip\n"
		       "GIT_SUBMODULES += $(EXTRA) lib/tinyusb\n"
		       "OTHER += lib/no\n");
	char **v = NULL;
	size_t n = 0;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(farm_fwbuild_makefile_submodules(mk, &v, &n, &e), 0);
	CU_ASSERT_EQUAL_FATAL(n, 4);
	CU_ASSERT_STRING_EQUAL(v[0], "lib/pico-sdk");
	CU_ASSERT_STRING_EQUAL(v[1], "lib/tinyusb");
	CU_ASSERT_STRING_EQUAL(v[2], "lib/mbedtls");
	CU_ASSERT_STRING_EQUAL(v[3], "lib/lwip");
	farm_strv_free(v, n);
	snprintf(mk, sizeof mk, "%s/none/Makefile", tmp_root);
	CU_ASSERT_EQUAL(farm_fwbuild_makefile_submodules(mk, &v, &n, &e), 0);
	CU_ASSERT_EQUAL(n, 0);
}

static void test_flash_args(void)
{
	char d[512], p[640];
	snprintf(d, sizeof d, "%s/esp", tmp_root);
	mkdir(d, 0755);
	snprintf(p, sizeof p, "%s/boot.bin", d);
	write_file(p, "BOOT");
	snprintf(p, sizeof p, "%s/app.bin", d);
	write_file(p, "APP!");
	snprintf(p, sizeof p, "%s/flash_args", d);
	write_file(p, "--flash_mode dio --flash_size 4MB\n0x1000 boot.bin\n0x1008 app.bin\n");
	struct farm_image *img = NULL;
	unsigned long base = 0;
	int is_set = 0;
	struct farm_err e = { 0 };
	CU_ASSERT_EQUAL_FATAL(farm_fwbuild_load_artifact(p, &img, &base, &is_set, &e), 0);
	CU_ASSERT_TRUE(is_set);
	CU_ASSERT_EQUAL(base, 0x1000);
	CU_ASSERT_EQUAL_FATAL(img->n_segs, 1);
	CU_ASSERT_EQUAL(img->segs[0].addr, 0x1000);
	CU_ASSERT_EQUAL_FATAL(img->segs[0].len, 12);
	CU_ASSERT_EQUAL(memcmp(img->segs[0].data, "BOOT\xff\xff\xff\xff" "APP!", 12), 0);
	farm_image_free(img);
	write_file(p, "0x1000 ../../etc/passwd\n");
	CU_ASSERT_EQUAL(farm_fwbuild_load_artifact(p, &img, &base, &is_set, &e), FARM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "outside the build directory"));
	write_file(p, "--flash_mode dio\n");
	CU_ASSERT_EQUAL(farm_fwbuild_load_artifact(p, &img, &base, &is_set, &e), FARM_EINVAL);
}

/* Processes of process group pg that are not zombies (from /proc). */
static int live_in_group(pid_t pg)
{
	int n = 0;
	char path[300], buf[512];
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t got = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[got] = '\0';
		const char *rp = strrchr(buf, ')');
		char state = 0;
		int ppid = 0, pgrp = 0;
		if (rp && sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pg &&
		    state != 'Z')
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

static void test_spawn_deadline(void)
{
	char log[512];
	snprintf(log, sizeof log, "%s/build.log", tmp_root);
	struct farm_fwbuild_proc p;
	struct farm_err e = { 0 };
	int st = -1;
	char *ok[] = { "sh", "-c", "echo hello; echo oops >&2; exit 3", NULL };
	CU_ASSERT_EQUAL_FATAL(farm_fwbuild_spawn(&p, tmp_root, ok, log, 10000, &e), 0);
	while (!farm_fwbuild_poll(&p, &st))
		usleep(5000);
	CU_ASSERT_EQUAL(st, 3);
	CU_ASSERT_FALSE(p.timed_out);
	struct farm_buf b = { 0 };
	CU_ASSERT_EQUAL(farm_fwbuild_log_tail(log, 100, &b), 0);
	CU_ASSERT_PTR_NOT_NULL(b.data && strstr(b.data, "hello\noops\n") ? b.data : NULL);
	farm_buf_free(&b);
	/* past its deadline: the whole process group is stopped */
	char *slow[] = { "sh", "-c", "sleep 30 & sleep 30", NULL };
	CU_ASSERT_EQUAL_FATAL(farm_fwbuild_spawn(&p, tmp_root, slow, log, 200, &e), 0);
	pid_t pg = p.pid;
	while (!farm_fwbuild_poll(&p, &st))
		usleep(5000);
	CU_ASSERT_TRUE(p.timed_out);
	CU_ASSERT_EQUAL(st, 128 + 15);
	usleep(100000);
	CU_ASSERT_EQUAL(live_in_group(pg), 0); /* nothing of the group is left running */
	char *missing[] = { "mpfarm-no-such-tool", NULL };
	CU_ASSERT_EQUAL(farm_fwbuild_spawn(&p, tmp_root, missing, log, 0, &e), FARM_ESYS);
}

int cu_register(void)
{
	CU_pSuite s = CU_add_suite("fwcache", setup, teardown);
	if (!s)
		return -1;
	CU_add_test(s, "store and lookup", test_store_lookup);
	CU_add_test(s, "list and prune", test_list_prune);
	CU_add_test(s, "locks", test_locks);
	CU_add_test(s, "placeholders and port defaults", test_expand_and_defaults);
	CU_add_test(s, "submodules from a Makefile", test_makefile_submodules);
	CU_add_test(s, "ESP flash_args merged", test_flash_args);
	CU_add_test(s, "build process and deadline", test_spawn_deadline);
	return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
