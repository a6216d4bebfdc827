/* mpfarm: shared resources (a debug probe, a USB hub whose power switching
 * resets all its ports, identical bootloader devices that cannot be told
 * apart), held only around the phases that need them (bootloader entry +
 * flash), while other phases of other boards run in parallel.
 *
 * A board's resources are its probe (automatically, kind "probe") and every
 * id in its resources: list (kind "resource").
 *
 * The rule (no deadlock, no starvation):
 *  1. A phase asks for all the resources it needs at once, never one more
 *     while holding some (no hold-and-wait inside a run).
 *  2. Within one run the parent is the arbiter. Requests queue in arrival
 *     order; a request is granted when none of its resources is held and no
 *     earlier waiting request shares a resource with it. A request therefore
 *     waits only for requests older than itself, each holder's hold is
 *     bounded by its phase deadline and the worker watchdog, and every
 *     request is granted in finite time (FIFO per resource: no starvation).
 *     Requests that share nothing do not wait for each other.
 *  3. Across mpfarm processes on one host, a granted worker then takes the
 *     resources' flock()s (farm/lock.h, kind "probe" or "resource") in one
 *     global order: sorted by kind, then id. A total order means no cycle of
 *     waiters, so no deadlock between runs. flock has no queue, so between
 *     runs fairness is not guaranteed; a run waits at most --wait-lock
 *     seconds per resource and then reports the board's tests as skipped,
 *     naming the holder.
 *  4. Time spent waiting for a resource does not count against the board's
 *     deadline or the watchdog: the parent knows the worker is waiting.
 *  5. Resources are released when the phase ends, however it ends; a worker
 *     that dies releases them with its process (the parent drops its grant,
 *     the kernel its flocks). */
#ifndef FARM_RESOURCE_H
#define FARM_RESOURCE_H

#include <signal.h>
#include <stddef.h>

#include "err.h"
#include "inventory.h"
#include "lock.h"

#define FARM_RES_MAX 65 /* a probe + 64 resources: */

struct farm_res_id {
	char kind[12];                 /* "probe" or "resource" */
	char id[FARM_LOCK_ID_MAX + 1];
};

/* The board's resources, sorted (kind, id) and unique; returns the count. */
size_t farm_res_of_board(const struct farm_board *b, struct farm_res_id *out, size_t max);
/* "probe:jlink-1,resource:hub-3" (for records and messages). */
void farm_res_format(const struct farm_res_id *ids, size_t n, char *out, size_t len);
/* Parse farm_res_format's text; returns the count, or -1 if malformed. */
int farm_res_parse(const char *text, struct farm_res_id *out, size_t max);
/* Whether two sets share a resource. */
int farm_res_overlap(const struct farm_res_id *a, size_t na, const struct farm_res_id *b, size_t nb);

/* The run's arbiter as a worker sees it (farm/worker.c); NULL outside a run. */
struct farm_res_gate {
	/* Block until the parent grants ids (FARM_EINTR if cancelled). */
	int (*acquire)(void *payload, const struct farm_res_id *ids, size_t n, struct farm_err *e);
	void (*release)(void *payload);
	void *payload;
};

struct farm_res_held;

/* Take ids: the gate (if any), then the flocks in order. On FARM_EBUSY the
 * message names the resource and its holder (holder filled if not NULL). */
int farm_res_hold(struct farm_res_held **out, const struct farm_res_gate *gate,
		  const struct farm_res_id *ids, size_t n, const char *lock_dir,
		  const struct farm_lock_owner *me, int wait_ms, const volatile sig_atomic_t *cancel,
		  struct farm_err *e);
/* Drop everything taken (flocks, then the gate). NULL-safe. */
void farm_res_release(struct farm_res_held *h);

#endif
