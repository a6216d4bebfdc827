#include "fwcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "fetch.h"

#define ENTRY_MAX_BYTES 16384
#define LOCK_POLL_MS 50

static const char *const subdirs[] = { "images", "index", "logs", "locks", "tmp", "git", "src",
				       NULL };

static int path_join(char *out, size_t len, const char *a, const char *b)
{
	int n = snprintf(out, len, "%s/%s", a, b);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int farm_fwcache_default_dir(char *out, size_t len, struct farm_err *e)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	int n;
	if (xdg && xdg[0] == '/')
		n = snprintf(out, len, "%s/mpfarm", xdg);
	else if (home && home[0] == '/')
		n = snprintf(out, len, "%s/.cache/mpfarm", home);
	else
		return farm_err_set(e, FARM_ENOTFOUND,
				    "no cache directory: neither XDG_CACHE_HOME nor HOME is an absolute "
				    "path; give --cache-dir DIR");
	if (n < 0 || (size_t)n >= len)
		return farm_err_set(e, FARM_ELIMIT, "cache directory path too long; give --cache-dir");
	return 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[FARM_FWCACHE_PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* flock fd with op (LOCK_SH/LOCK_EX), polling up to wait_ms. */
static int flock_wait(int fd, int op, unsigned wait_ms, const volatile sig_atomic_t *cancel,
		      const char *what, struct farm_err *e)
{
	unsigned waited = 0;
	for (;;) {
		if (cancel && *cancel)
			return farm_err_set(e, FARM_EINTR, "interrupted while waiting for %s", what);
		if (flock(fd, op | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return farm_err_sys(e, FARM_ESYS, errno, "flock %s", what);
		if (waited >= wait_ms)
			return farm_err_set(e, FARM_EBUSY,
					    "%s is held by another mpfarm process for more than %u s; "
					    "wait for it to finish or use another --cache-dir",
					    what, wait_ms / 1000);
		sleep_ms(LOCK_POLL_MS);
		waited += LOCK_POLL_MS;
	}
}

int farm_fwcache_open(struct farm_fwcache *c, const char *dir, int exclusive, unsigned wait_ms,
		      const volatile sig_atomic_t *cancel, struct farm_err *e)
{
	char sub[FARM_FWCACHE_PATH_MAX];
	c->run_lock_fd = -1;
	if (dir) {
		if (snprintf(c->dir, sizeof c->dir, "%s", dir) >= (int)sizeof c->dir)
			return farm_err_set(e, FARM_ELIMIT, "--cache-dir path too long");
	} else {
		int rc = farm_fwcache_default_dir(c->dir, sizeof c->dir, e);
		if (rc)
			return rc;
	}
	int rc = mkdir_p(c->dir, 0700);
	if (rc)
		return farm_err_sys(e, FARM_ESYS, -rc, "cannot create the firmware cache %s", c->dir);
	for (size_t i = 0; subdirs[i]; i++) {
		if (path_join(sub, sizeof sub, c->dir, subdirs[i]))
			return farm_err_set(e, FARM_ELIMIT, "cache path too long: %s", c->dir);
		if (mkdir(sub, 0755) && errno != EEXIST)
			return farm_err_sys(e, FARM_ESYS, errno, "cannot create %s", sub);
	}
	if (path_join(sub, sizeof sub, c->dir, "cache.lock"))
		return farm_err_set(e, FARM_ELIMIT, "cache path too long: %s", c->dir);
	int fd = open(sub, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return farm_err_sys(e, FARM_ESYS, errno, "cannot open %s", sub);
	rc = flock_wait(fd, exclusive ? LOCK_EX : LOCK_SH, wait_ms, cancel,
			exclusive ? "the firmware cache (a run uses it)" : "the firmware cache (a prune "
									    "holds it)", e);
	if (rc) {
		close(fd);
		return rc;
	}
	c->run_lock_fd = fd;
	return 0;
}

void farm_fwcache_close(struct farm_fwcache *c)
{
	if (c && c->run_lock_fd >= 0) {
		close(c->run_lock_fd);
		c->run_lock_fd = -1;
	}
}

void farm_fwcache_keyhash(const char *key, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	out[0] = '\0';
	if (!EVP_Digest(key, strlen(key), md, &n, EVP_sha256(), NULL))
		return;
	for (unsigned i = 0; i < n && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int is_hex64(const char *s)
{
	size_t i = 0;
	for (; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return i == 64;
}

static int safe_ext(const char *format)
{
	for (const char *p = format; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
			return 0;
	return format[0] != '\0' && strlen(format) < 16;
}

static int image_file(const struct farm_fwcache *c, const char *sha256, const char *format,
		      char *out, size_t len)
{
	if (!is_hex64(sha256) || !safe_ext(format))
		return -1;
	int n = snprintf(out, len, "%s/images/%s.%s", c->dir, sha256, format);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int farm_fwcache_image_path(const struct farm_fwcache *c, const struct farm_fwcache_entry *ent,
			    char *out, size_t len)
{
	return image_file(c, ent->sha256, ent->format, out, len);
}

int farm_fwcache_log_path(const struct farm_fwcache *c, const char *keyhash, char *out, size_t len)
{
	if (!is_hex64(keyhash))
		return -1;
	int n = snprintf(out, len, "%s/logs/%s.log", c->dir, keyhash);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* One line of text: control characters become '?', bounded. */
static void put_line(FILE *f, const char *k, const char *v)
{
	fprintf(f, "%s=", k);
	for (size_t i = 0; v && v[i] && i < FARM_FWCACHE_TEXT_MAX - 1; i++)
		fputc((unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i], f);
	fputc('\n', f);
}

/* Copy v into dst[len], cut to fit. */
static void copy_field(char *dst, size_t len, const char *v)
{
	size_t n = strnlen(v, len - 1);
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static int parse_entry(const char *text, struct farm_fwcache_entry *ent)
{
	int magic = 0;
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t ll = nl ? (size_t)(nl - p) : strlen(p);
		char line[FARM_FWCACHE_TEXT_MAX + 32];
		if (ll < sizeof line) {
			memcpy(line, p, ll);
			line[ll] = '\0';
			char *eq = strchr(line, '=');
			if (eq) {
				*eq = '\0';
				const char *k = line, *v = eq + 1;
				if (!strcmp(k, "mpfarm-cache"))
					magic = !strcmp(v, "1");
				else if (!strcmp(k, "key"))
					copy_field(ent->key, sizeof ent->key, v);
				else if (!strcmp(k, "kind"))
					copy_field(ent->kind, sizeof ent->kind, v);
				else if (!strcmp(k, "sha256"))
					copy_field(ent->sha256, sizeof ent->sha256, v);
				else if (!strcmp(k, "format"))
					copy_field(ent->format, sizeof ent->format, v);
				else if (!strcmp(k, "base")) {
					char *end = NULL;
					ent->base = strtoul(v, &end, 0);
					ent->has_base = end && end != v && !*end;
				} else if (!strcmp(k, "size"))
					ent->size = strtoull(v, NULL, 10);
				else if (!strcmp(k, "source"))
					copy_field(ent->source, sizeof ent->source, v);
				else if (!strcmp(k, "ref"))
					copy_field(ent->ref, sizeof ent->ref, v);
				else if (!strcmp(k, "commit"))
					copy_field(ent->commit, sizeof ent->commit, v);
				else if (!strcmp(k, "created"))
					ent->created = (time_t)strtoll(v, NULL, 10);
			}
		}
		p += ll;
		if (*p == '\n')
			p++;
	}
	return magic && is_hex64(ent->sha256) && safe_ext(ent->format) ? 0 : -1;
}

static int read_entry(const char *path, struct farm_fwcache_entry *ent)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	char buf[ENTRY_MAX_BYTES + 1];
	ssize_t n = read(fd, buf, ENTRY_MAX_BYTES);
	struct stat st;
	int ok = n > 0 && fstat(fd, &st) == 0;
	close(fd);
	if (!ok)
		return -1;
	buf[n] = '\0';
	memset(ent, 0, sizeof *ent);
	if (parse_entry(buf, ent))
		return -1;
	ent->used = st.st_mtime;
	return 0;
}

static int entry_path(const struct farm_fwcache *c, const char *keyhash, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/index/%s", c->dir, keyhash);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* 1 when the file's sha256 is the one in its name. */
static int image_whole(const char *path, const char *sha256)
{
	char got[65];
	struct farm_err e = { 0 };
	return farm_fetch_sha256_file(path, got, &e) == 0 && !strcmp(got, sha256);
}

int farm_fwcache_have_image(struct farm_fwcache *c, const char *sha256, const char *format,
			    char *path, size_t len, struct farm_err *e)
{
	if (image_file(c, sha256, format, path, len))
		return farm_err_set(e, FARM_EINVAL, "bad image name %.80s.%.16s", sha256, format);
	if (access(path, R_OK))
		return farm_err_set(e, FARM_ENOTFOUND, "not in the cache");
	if (!image_whole(path, sha256)) {
		unlink(path); /* damaged: made again */
		return farm_err_set(e, FARM_ENOTFOUND, "cached image %s was damaged; removed", path);
	}
	return 0;
}

int farm_fwcache_lookup(struct farm_fwcache *c, const char *key, struct farm_fwcache_entry *ent,
			struct farm_err *e)
{
	char kh[65], path[FARM_FWCACHE_PATH_MAX], img[FARM_FWCACHE_PATH_MAX];
	farm_fwcache_keyhash(key, kh);
	if (entry_path(c, kh, path, sizeof path))
		return farm_err_set(e, FARM_ELIMIT, "cache path too long");
	if (read_entry(path, ent) || strcmp(ent->key, key))
		return farm_err_set(e, FARM_ENOTFOUND, "not in the cache");
	copy_field(ent->keyhash, sizeof ent->keyhash, kh);
	int rc = farm_fwcache_have_image(c, ent->sha256, ent->format, img, sizeof img, e);
	if (rc)
		return rc;
	utimensat(AT_FDCWD, path, NULL, 0); /* last use */
	ent->used = time(NULL);
	return 0;
}

int farm_fwcache_tmp_path(const struct farm_fwcache *c, const char *what, char *out, size_t len,
			  struct farm_err *e)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char safe[48];
	size_t k = 0;
	for (size_t i = 0; what && what[i] && k < sizeof safe - 1; i++)
		safe[k++] = (what[i] >= 'a' && what[i] <= 'z') || (what[i] >= '0' && what[i] <= '9')
				    ? what[i] : '-';
	safe[k] = '\0';
	int n = snprintf(out, len, "%s/tmp/%s-%ld-%ld%09ld", c->dir, safe, (long)getpid(),
			 (long)ts.tv_sec, ts.tv_nsec);
	if (n < 0 || (size_t)n >= len)
		return farm_err_set(e, FARM_ELIMIT, "cache path too long");
	return 0;
}

static int fsync_path(const char *path, int dir)
{
	int fd = open(path, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int farm_fwcache_store(struct farm_fwcache *c, const char *key, const char *tmp_file,
		       struct farm_fwcache_entry *ent, struct farm_err *e)
{
	char img[FARM_FWCACHE_PATH_MAX], dir[FARM_FWCACHE_PATH_MAX], tmp[FARM_FWCACHE_PATH_MAX],
		final[FARM_FWCACHE_PATH_MAX];
	struct stat st;
	int rc = farm_fetch_sha256_file(tmp_file, ent->sha256, e);
	if (rc)
		return rc;
	if (stat(tmp_file, &st))
		return farm_err_sys(e, FARM_ESYS, errno, "stat %s", tmp_file);
	if (image_file(c, ent->sha256, ent->format, img, sizeof img))
		return farm_err_set(e, FARM_EINVAL, "bad image format name \"%.16s\"", ent->format);
	if (fsync_path(tmp_file, 0))
		return farm_err_sys(e, FARM_EIO, errno, "fsync %s", tmp_file);
	if (rename(tmp_file, img))
		return farm_err_sys(e, FARM_ESYS, errno, "cannot move %s into the cache", tmp_file);
	ent->size = (uint64_t)st.st_size;
	copy_field(ent->key, sizeof ent->key, key);
	farm_fwcache_keyhash(key, ent->keyhash);
	ent->created = ent->used = time(NULL);

	if (farm_fwcache_tmp_path(c, "entry", tmp, sizeof tmp, e) ||
	    entry_path(c, ent->keyhash, final, sizeof final))
		return farm_err_set(e, FARM_ELIMIT, "cache path too long");
	FILE *f = fopen(tmp, "wx");
	if (!f)
		return farm_err_sys(e, FARM_ESYS, errno, "cannot write %s", tmp);
	char num[32];
	put_line(f, "mpfarm-cache", "1");
	put_line(f, "key", key);
	put_line(f, "kind", ent->kind);
	put_line(f, "sha256", ent->sha256);
	put_line(f, "format", ent->format);
	if (ent->has_base) {
		snprintf(num, sizeof num, "0x%lx", ent->base);
		put_line(f, "base", num);
	}
	snprintf(num, sizeof num, "%llu", (unsigned long long)ent->size);
	put_line(f, "size", num);
	put_line(f, "source", ent->source);
	put_line(f, "ref", ent->ref);
	put_line(f, "commit", ent->commit);
	snprintf(num, sizeof num, "%lld", (long long)ent->created);
	put_line(f, "created", num);
	int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
	bad |= fclose(f) != 0;
	if (bad || rename(tmp, final)) {
		int err = errno;
		unlink(tmp);
		return farm_err_sys(e, FARM_EIO, err, "cannot write the cache entry %s", final);
	}
	if (path_join(dir, sizeof dir, c->dir, "index") == 0)
		fsync_path(dir, 1);
	return 0;
}

static int lock_name_ok(const char *s)
{
	size_t i = 0;
	for (; s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return 0;
	return i > 0 && i <= 100 && s[0] != '.';
}

int farm_fwcache_lock(const struct farm_fwcache *c, const char *name, unsigned wait_ms,
		      const volatile sig_atomic_t *cancel, struct farm_err *e)
{
	char path[FARM_FWCACHE_PATH_MAX], what[160];
	if (!lock_name_ok(name))
		return farm_err_set(e, FARM_EINVAL, "bad cache lock name \"%.40s\"", name);
	int n = snprintf(path, sizeof path, "%s/locks/%s.lock", c->dir, name);
	if (n < 0 || (size_t)n >= sizeof path)
		return farm_err_set(e, FARM_ELIMIT, "cache path too long");
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return farm_err_sys(e, FARM_ESYS, errno, "cannot open %s", path);
	snprintf(what, sizeof what, "cache lock %.120s", name);
	int rc = flock_wait(fd, LOCK_EX, wait_ms, cancel, what, e);
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

static int cmp_used(const void *a, const void *b)
{
	const struct farm_fwcache_entry *x = a, *y = b;
	return x->used < y->used ? 1 : x->used > y->used ? -1 : strcmp(x->keyhash, y->keyhash);
}

int farm_fwcache_list(const struct farm_fwcache *c, struct farm_fwcache_entry **out, size_t *n,
		      struct farm_err *e)
{
	char dir[FARM_FWCACHE_PATH_MAX], path[FARM_FWCACHE_PATH_MAX];
	*out = NULL;
	*n = 0;
	if (path_join(dir, sizeof dir, c->dir, "index"))
		return farm_err_set(e, FARM_ELIMIT, "cache path too long");
	DIR *d = opendir(dir);
	if (!d)
		return farm_err_sys(e, FARM_ESYS, errno, "cannot read %s", dir);
	struct farm_fwcache_entry *v = NULL;
	size_t cap = 0, k = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!is_hex64(de->d_name) || path_join(path, sizeof path, dir, de->d_name))
			continue;
		if (k == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct farm_fwcache_entry *nv = realloc(v, nc * sizeof *nv);
			if (!nv) {
				rc = farm_err_set(e, FARM_ENOMEM, "out of memory");
				break;
			}
			v = nv;
			cap = nc;
		}
		if (read_entry(path, &v[k]) == 0) {
			copy_field(v[k].keyhash, sizeof v[k].keyhash, de->d_name);
			k++;
		}
	}
	closedir(d);
	if (rc) {
		free(v);
		return rc;
	}
	if (k)
		qsort(v, k, sizeof *v, cmp_used);
	*out = v;
	*n = k;
	return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) && errno != ENOENT ? -1 : 0;
}

static int rm_tree(const char *path)
{
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Remove regular files (or trees, when trees) in dir older than cutoff
 * (keep returns 1 for names to keep). */
static void prune_dir(const char *dir, time_t cutoff, int trees,
		      int (*keep)(const char *name, void *p), void *p,
		      struct farm_fwcache_prune_stats *st, size_t *count)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	char path[FARM_FWCACHE_PATH_MAX];
	struct stat sb;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || path_join(path, sizeof path, dir, de->d_name) ||
		    lstat(path, &sb))
			continue;
		if (sb.st_mtime >= cutoff || (keep && keep(de->d_name, p)))
			continue;
		if (S_ISDIR(sb.st_mode)) {
			if (trees && rm_tree(path) == 0)
				(*count)++;
		} else if (S_ISREG(sb.st_mode) && unlink(path) == 0) {
			st->bytes += (uint64_t)sb.st_size;
			(*count)++;
		}
	}
	closedir(d);
}

struct keep_images {
	const struct farm_fwcache_entry *v;
	size_t n;
};

static int image_referenced(const char *name, void *p)
{
	const struct keep_images *k = p;
	for (size_t i = 0; i < k->n; i++)
		if (!strncmp(name, k->v[i].sha256, 64) && name[64] == '.')
			return 1;
	return 0;
}

static int log_referenced(const char *name, void *p)
{
	const struct keep_images *k = p;
	for (size_t i = 0; i < k->n; i++)
		if (!strncmp(name, k->v[i].keyhash, 64) && !strcmp(name + 64, ".log"))
			return 1;
	return 0;
}

static int is_lock_file(const char *name, void *p)
{
	(void)p;
	size_t n = strlen(name);
	return n > 5 && !strcmp(name + n - 5, ".lock");
}

int farm_fwcache_prune(struct farm_fwcache *c, unsigned keep_days, time_t now,
		       struct farm_fwcache_prune_stats *st, struct farm_err *e)
{
	char path[FARM_FWCACHE_PATH_MAX];
	memset(st, 0, sizeof *st);
	time_t cutoff = now - (time_t)keep_days * 86400;
	struct farm_fwcache_entry *v = NULL;
	size_t n = 0;
	int rc = farm_fwcache_list(c, &v, &n, e);
	if (rc)
		return rc;
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i].used >= cutoff) {
			v[kept++] = v[i];
			continue;
		}
		if (entry_path(c, v[i].keyhash, path, sizeof path) == 0 && unlink(path) == 0)
			st->entries++;
		if (farm_fwcache_log_path(c, v[i].keyhash, path, sizeof path) == 0)
			unlink(path);
	}
	/* every image no remaining entry names goes, whatever its age */
	struct keep_images k = { v, kept };
	if (path_join(path, sizeof path, c->dir, "images") == 0)
		prune_dir(path, now + 1, 0, image_referenced, &k, st, &st->images);
	if (path_join(path, sizeof path, c->dir, "src") == 0)
		prune_dir(path, cutoff, 1, is_lock_file, NULL, st, &st->checkouts);
	if (path_join(path, sizeof path, c->dir, "tmp") == 0)
		prune_dir(path, now - 86400, 1, NULL, NULL, st, &st->files);
	if (path_join(path, sizeof path, c->dir, "logs") == 0)
		prune_dir(path, now + 1, 0, log_referenced, &k, st, &st->files);
	free(v);
	return 0;
}
