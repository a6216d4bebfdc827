#include "resource.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_res(const void *a, const void *b)
{
	const struct farm_res_id *x = a, *y = b;
	int k = strcmp(x->kind, y->kind);
	return k ? k : strcmp(x->id, y->id);
}

static size_t add(struct farm_res_id *out, size_t n, size_t max, const char *kind, const char *id)
{
	if (n >= max || !id || !farm_lock_id_valid(id))
		return n;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(out[i].kind, kind) && !strcmp(out[i].id, id))
			return n;
	snprintf(out[n].kind, sizeof out[n].kind, "%s", kind);
	snprintf(out[n].id, sizeof out[n].id, "%s", id);
	return n + 1;
}

size_t farm_res_of_board(const struct farm_board *b, struct farm_res_id *out, size_t max)
{
	size_t n = 0;
	if (b->probe)
		n = add(out, n, max, "probe", b->probe);
	for (size_t i = 0; i < b->n_resources; i++)
		n = add(out, n, max, "resource", b->resources[i]);
	qsort(out, n, sizeof *out, cmp_res);
	return n;
}

void farm_res_format(const struct farm_res_id *ids, size_t n, char *out, size_t len)
{
	size_t k = 0;
	if (len)
		out[0] = '\0';
	for (size_t i = 0; i < n && k < len; i++) {
		int w = snprintf(out + k, len - k, "%s%s:%s", i ? "," : "", ids[i].kind, ids[i].id);
		if (w < 0)
			break;
		k += (size_t)w;
	}
}

int farm_res_parse(const char *text, struct farm_res_id *out, size_t max)
{
	size_t n = 0;
	const char *p = text;
	while (p && *p) {
		size_t len = strcspn(p, ",");
		const char *colon = memchr(p, ':', len);
		if (!colon || n >= max)
			return -1;
		size_t kl = (size_t)(colon - p), il = len - kl - 1;
		if (kl == 0 || kl >= sizeof out[n].kind || il == 0 || il >= sizeof out[n].id)
			return -1;
		memcpy(out[n].kind, p, kl);
		out[n].kind[kl] = '\0';
		memcpy(out[n].id, colon + 1, il);
		out[n].id[il] = '\0';
		if (!farm_lock_id_valid(out[n].id) ||
		    (strcmp(out[n].kind, "probe") && strcmp(out[n].kind, "resource")))
			return -1;
		n++;
		p += len;
		if (*p == ',')
			p++;
	}
	return (int)n;
}

int farm_res_overlap(const struct farm_res_id *a, size_t na, const struct farm_res_id *b, size_t nb)
{
	for (size_t i = 0; i < na; i++)
		for (size_t j = 0; j < nb; j++)
			if (!strcmp(a[i].kind, b[j].kind) && !strcmp(a[i].id, b[j].id))
				return 1;
	return 0;
}

struct farm_res_held {
	const struct farm_res_gate *gate;
	int gated;
	struct farm_lock *locks[FARM_RES_MAX];
	size_t n_locks;
};

void farm_res_release(struct farm_res_held *h)
{
	if (!h)
		return;
	for (size_t i = h->n_locks; i-- > 0;)
		farm_lock_release(h->locks[i]);
	if (h->gated && h->gate && h->gate->release)
		h->gate->release(h->gate->payload);
	free(h);
}

int farm_res_hold(struct farm_res_held **out, const struct farm_res_gate *gate,
		  const struct farm_res_id *ids, size_t n, const char *lock_dir,
		  const struct farm_lock_owner *me, int wait_ms, const volatile sig_atomic_t *cancel,
		  struct farm_err *e)
{
	*out = NULL;
	if (n > FARM_RES_MAX)
		return farm_err_set(e, FARM_ELIMIT, "too many resources (%zu)", n);
	struct farm_res_held *h = calloc(1, sizeof *h);
	if (!h)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	h->gate = gate;
	int rc = 0;
	if (n && gate && gate->acquire) {
		if ((rc = gate->acquire(gate->payload, ids, n, e)))
			goto fail;
		h->gated = 1;
	}
	for (size_t i = 0; lock_dir && i < n; i++) {
		struct farm_lock_owner holder = { 0 };
		rc = farm_lock_acquire(&h->locks[h->n_locks], lock_dir, ids[i].kind, ids[i].id, me,
				       wait_ms, cancel, &holder, e);
		if (rc == FARM_EBUSY) {
			char who[256];
			farm_lock_owner_describe(&holder, who, sizeof who);
			farm_err_set(e, FARM_EBUSY, "%s %s is busy: locked by %s", ids[i].kind, ids[i].id,
				     who);
			goto fail;
		}
		if (rc)
			goto fail;
		h->n_locks++;
	}
	*out = h;
	return 0;
fail:
	farm_res_release(h);
	return rc;
}
