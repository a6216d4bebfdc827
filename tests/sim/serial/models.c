/* serialsim: the device-model registry and argument helpers. */
#include <stdlib.h>
#include <string.h>

#include "ssim.h"

extern const struct ssim_model_ops ssim_model_mpy;
extern const struct ssim_model_ops ssim_model_rp2040;
extern const struct ssim_model_ops ssim_model_esp;
extern const struct ssim_model_ops ssim_model_openmv;

static const struct ssim_model_ops *const models[] = {
	&ssim_model_mpy,
	&ssim_model_rp2040,
	&ssim_model_esp,
	&ssim_model_openmv,
	NULL,
};

const struct ssim_model_ops *const *ssim_models(void) { return models; }

const struct ssim_model_ops *ssim_model_find(const char *name)
{
	for (const struct ssim_model_ops *const *m = models; *m; m++)
		if (!strcmp((*m)->name, name))
			return *m;
	return NULL;
}

int ssim_arg(const char *args, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);
	for (const char *p = args; p && *p;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n > kl && p[kl] == '=' && !strncmp(p, key, kl)) {
			size_t vl = n - kl - 1;
			if (vl >= len)
				return -1;
			memcpy(out, p + kl + 1, vl);
			out[vl] = 0;
			return 0;
		}
		p = end ? end + 1 : NULL;
	}
	return -1;
}

long ssim_arg_long(const char *args, const char *key, long def)
{
	char v[32], *end;
	if (ssim_arg(args, key, v, sizeof v) < 0)
		return def;
	long x = strtol(v, &end, 0);
	return *end ? def : x;
}
