#include "fwbuild.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ydoc.h"

extern char **environ;

#define KILL_GRACE_MS 5000
#define MAKEFILE_MAX_BYTES (1u << 20)
#define FLASH_ARGS_MAX_BYTES (64u << 10)
#define MAX_SUBMODULES 64

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int farm_fwbuild_spawn(struct farm_fwbuild_proc *p, const char *dir, char *const *argv,
		       const char *log_path, unsigned timeout_ms, struct farm_err *e)
{
	memset(p, 0, sizeof *p);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	if (posix_spawn_file_actions_init(&fa))
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	if (posix_spawnattr_init(&at)) {
		posix_spawn_file_actions_destroy(&fa);
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	}
	sigset_t none, dfl;
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGPIPE);
	int rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	rc = rc ? rc : posix_spawn_file_actions_addopen(&fa, 1, log_path,
							O_WRONLY | O_CREAT | O_APPEND, 0644);
	rc = rc ? rc : posix_spawn_file_actions_adddup2(&fa, 1, 2);
	rc = rc ? rc : posix_spawn_file_actions_addchdir_np(&fa, dir);
	rc = rc ? rc : posix_spawnattr_setpgroup(&at, 0);
	rc = rc ? rc : posix_spawnattr_setsigmask(&at, &none);
	rc = rc ? rc : posix_spawnattr_setsigdefault(&at, &dfl);
	rc = rc ? rc : posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
						     POSIX_SPAWN_SETSIGDEF);
	if (rc == 0)
		rc = posix_spawnp(&p->pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc) {
		p->pid = 0;
		return farm_err_sys(e, FARM_ESYS, rc, "cannot start %s in %s", argv[0], dir);
	}
	p->started_ms = now_ms();
	p->timeout_ms = timeout_ms;
	return 0;
}

int farm_fwbuild_poll(struct farm_fwbuild_proc *p, int *status)
{
	if (!p->pid)
		return 1;
	int ws = 0;
	pid_t r = waitpid(p->pid, &ws, WNOHANG);
	if (r == p->pid) {
		p->pid = 0;
		*status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
		return 1;
	}
	if (r < 0 && errno == ECHILD) { /* reaped elsewhere: it is gone */
		p->pid = 0;
		*status = 128;
		return 1;
	}
	long long t = now_ms();
	if (p->timeout_ms && !p->term_ms && t - p->started_ms >= p->timeout_ms) {
		p->timed_out = 1;
		p->term_ms = t;
		kill(-p->pid, SIGTERM);
	} else if (p->term_ms && t - p->term_ms >= KILL_GRACE_MS) {
		kill(-p->pid, SIGKILL);
	}
	return 0;
}

void farm_fwbuild_kill(struct farm_fwbuild_proc *p)
{
	if (!p->pid)
		return;
	kill(-p->pid, SIGKILL);
	while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
		;
	p->pid = 0;
}

int farm_fwbuild_expand(const char *s, const struct farm_fwbuild_vars *v, char *out, size_t len,
			struct farm_err *e)
{
	size_t k = 0;
	char jobs[16];
	snprintf(jobs, sizeof jobs, "%u", v->jobs ? v->jobs : 1);
	for (const char *p = s; *p;) {
		const char *val = NULL;
		size_t skip = 1;
		if (*p == '{') {
			const char *end = strchr(p, '}');
			size_t nl = end ? (size_t)(end - p - 1) : 0;
			if (end && nl == 4 && !strncmp(p + 1, "port", 4))
				val = v->port;
			else if (end && nl == 5 && !strncmp(p + 1, "board", 5))
				val = v->board;
			else if (end && nl == 7 && !strncmp(p + 1, "variant", 7))
				val = v->variant;
			else if (end && nl == 4 && !strncmp(p + 1, "jobs", 4))
				val = jobs;
			else
				return farm_err_set(e, FARM_EINVAL,
						    "\"%.80s\": unknown placeholder (use {port}, {board}, "
						    "{variant} or {jobs})", s);
			if (!val)
				return farm_err_set(e, FARM_EINVAL,
						    "\"%.80s\" uses {%.*s} but the target has none", s,
						    (int)nl, p + 1);
			skip = nl + 2;
		}
		size_t add = val ? strlen(val) : 1;
		if (k + add >= len)
			return farm_err_set(e, FARM_ELIMIT, "\"%.80s\" is too long once expanded", s);
		memcpy(out + k, val ? val : p, add);
		k += add;
		p += skip;
	}
	out[k] = '\0';
	return 0;
}

static int push(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 2) * sizeof *nv);
	if (!nv)
		return -1;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -1;
	nv[++*n] = NULL;
	return 0;
}

int farm_fwbuild_default_argv(const struct farm_fwbuild_vars *v, char ***argv, size_t *n,
			      struct farm_err *e)
{
	char buf[512];
	*argv = NULL;
	*n = 0;
	int bad = push(argv, n, "make") || push(argv, n, "-C");
	snprintf(buf, sizeof buf, "ports/%s", v->port);
	bad = bad || push(argv, n, buf);
	snprintf(buf, sizeof buf, "BOARD=%s", v->board);
	bad = bad || push(argv, n, buf);
	if (v->variant) {
		snprintf(buf, sizeof buf, "BOARD_VARIANT=%s", v->variant);
		bad = bad || push(argv, n, buf);
	}
	snprintf(buf, sizeof buf, "-j%u", v->jobs ? v->jobs : 1);
	bad = bad || push(argv, n, buf);
	if (bad) {
		farm_strv_free(*argv, *n);
		*argv = NULL;
		*n = 0;
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	}
	return 0;
}

static const struct {
	const char *port, *artifact;
} port_artifacts[] = {
	{ "rp2", "firmware.uf2" },        { "samd", "firmware.uf2" },
	{ "stm32", "firmware.dfu" },      { "nrf", "firmware.hex" },
	{ "mimxrt", "firmware.hex" },     { "renesas-ra", "firmware.hex" },
	{ "esp8266", "firmware.bin" },    { "esp32", "flash_args" },
};

const char *farm_fwbuild_default_artifact(const char *port)
{
	for (size_t i = 0; port && i < sizeof port_artifacts / sizeof port_artifacts[0]; i++)
		if (!strcmp(port, port_artifacts[i].port))
			return port_artifacts[i].artifact;
	return NULL;
}

/* GIT_SUBMODULES += a b (also = and ?=), with backslash continuations. */
int farm_fwbuild_makefile_submodules(const char *path, char ***out, size_t *n, struct farm_err *e)
{
	struct farm_buf b = { 0 };
	*out = NULL;
	*n = 0;
	struct farm_err re = { 0 };
	if (farm_buf_read_file(&b, path, MAKEFILE_MAX_BYTES, &re))
		return re.code == FARM_ENOTFOUND || access(path, F_OK) ? 0 : farm_err_set(e, re.code, "%s", re.msg);
	int rc = 0, cont = 0;
	char *text = b.data ? b.data : "";
	for (char *line = text; line && *line && rc == 0;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		size_t ll = strlen(line);
		int next_cont = ll && line[ll - 1] == '\\';
		if (next_cont)
			line[ll - 1] = ' ';
		char *words = NULL;
		if (cont) {
			words = line;
		} else {
			char *p = line;
			while (*p == ' ' || *p == '\t')
				p++;
			if (!strncmp(p, "GIT_SUBMODULES", 14)) {
				p += 14;
				while (*p == ' ' || *p == '\t')
					p++;
				if (!strncmp(p, "+=", 2) || !strncmp(p, "?=", 2) || !strncmp(p, ":=", 2))
					words = p + 2;
				else if (*p == '=')
					words = p + 1;
			}
		}
		cont = words && next_cont;
		for (char *w = words; w && *w && rc == 0;) {
			w += strspn(w, " \t");
			size_t wl = strcspn(w, " \t#");
			if (!wl)
				break;
			char word[512];
			if (wl < sizeof word && !memchr(w, '$', wl) && *n < MAX_SUBMODULES) {
				memcpy(word, w, wl);
				word[wl] = '\0';
				int dup = 0;
				for (size_t i = 0; i < *n; i++)
					dup |= !strcmp((*out)[i], word);
				if (!dup && push(out, n, word))
					rc = farm_err_set(e, FARM_ENOMEM, "out of memory");
			}
			w += wl;
			if (*w == '#')
				break;
		}
		line = nl ? nl + 1 : NULL;
	}
	farm_buf_free(&b);
	if (rc) {
		farm_strv_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

/* ESP-IDF's flash_args: option lines ("--flash_mode dio ...") and
 * "0xOFFSET relative/path.bin" lines. */
static int load_flash_args(const char *path, struct farm_image **out, unsigned long *base,
			   struct farm_err *e)
{
	struct farm_buf b = { 0 }, part = { 0 }, flat = { 0 };
	struct farm_image *set = NULL, *img = NULL;
	char dir[4096], file[4096 + 512];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof dir, ".");
	int rc = farm_buf_read_file(&b, path, FLASH_ARGS_MAX_BYTES, e);
	if (rc == 0)
		rc = farm_image_new(&set, FARM_IMG_BIN, e);
	size_t lineno = 0, parts = 0;
	for (char *line = b.data; rc == 0 && line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		lineno++;
		char name[512];
		unsigned long off = 0;
		if (sscanf(line, "0x%lx %511s", &off, name) == 2) {
			if (name[0] == '/' || strstr(name, ".."))
				rc = farm_err_set(e, FARM_EINVAL, "%s:%zu: %s is outside the build directory",
						  path, lineno, name);
			else if (snprintf(file, sizeof file, "%s/%s", dir, name) >= (int)sizeof file)
				rc = farm_err_set(e, FARM_ELIMIT, "%s:%zu: path too long", path, lineno);
			else {
				farm_buf_reset(&part);
				rc = farm_buf_read_file(&part, file, FARM_IMAGE_MAX_BYTES, e);
				if (rc == 0 && off > 0xffffffffUL)
					rc = farm_err_set(e, FARM_EINVAL, "%s:%zu: offset too large", path,
							  lineno);
				if (rc == 0 && part.len)
					rc = farm_image_add(set, (uint32_t)off, part.data, part.len, e);
				parts++;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	if (rc == 0 && !parts)
		rc = farm_err_set(e, FARM_EINVAL, "%s: no \"0xOFFSET file.bin\" lines", path);
	/* one raw image from the lowest offset, gaps erased (0xff), as esptool merge_bin */
	if (rc == 0)
		rc = farm_image_write_bin(set, 0xff, &flat, e);
	if (rc == 0)
		rc = farm_image_parse_bin(&img, flat.data, flat.len, farm_image_lowest(set), path, e);
	if (rc == 0)
		*base = farm_image_lowest(set);
	farm_image_free(set);
	farm_buf_free(&b);
	farm_buf_free(&part);
	farm_buf_free(&flat);
	*out = rc ? (farm_image_free(img), NULL) : img;
	return rc;
}

int farm_fwbuild_load_artifact(const char *path, struct farm_image **img, unsigned long *base,
			       int *is_set, struct farm_err *e)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	*is_set = !strcmp(name, "flash_args");
	*base = 0;
	if (*is_set)
		return load_flash_args(path, img, base, e);
	return farm_image_load(img, path, FARM_IMG_UNKNOWN, 0, e);
}

int farm_fwbuild_log_tail(const char *path, size_t max, struct farm_buf *out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	long start = 0;
	if (fseek(f, 0, SEEK_END) == 0) {
		long size = ftell(f);
		start = size > (long)max ? size - (long)max : 0;
	}
	fseek(f, start, SEEK_SET);
	char buf[4096];
	size_t got;
	int first = start > 0;
	while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
		char *p = buf;
		if (first) { /* drop the cut first line */
			char *nl = memchr(buf, '\n', got);
			if (!nl)
				continue;
			got -= (size_t)(nl + 1 - buf);
			p = nl + 1;
			first = 0;
		}
		if (farm_buf_append(out, p, got)) {
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}
