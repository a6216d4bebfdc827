/* mpfarm: bootloader entry through the board's debug probe: a reset (the
 * job's board reset: the probe's, or QMP for emulated boards). For boards
 * whose bootloader runs after every reset (OpenMV's, a UF2 bootloader with
 * its strap held by the fixture) or whose runner flashes the halted core. */
#include "entry.h"

static int probe_enter(const struct entry_ctx *ctx, const struct entry_want *want,
		       struct entry_result *res, struct farm_err *e)
{
	(void)res;
	if (!ctx->probe_reset)
		return farm_err_set(e, FARM_EUNSUPPORTED,
				    "board %s has no debug probe reset (give it probe: in the inventory, or "
				    "another flash.entry method)",
				    entry_board_id(ctx));
	/* A runner that talks to the bootloader on the same port wants the core
	 * running; one that waits for a USB device too. Halting is for runners
	 * that flash through the probe, which need no entry. */
	int rc = ctx->probe_reset(ctx->probe_payload, 0, e);
	if (rc)
		return farm_err_prefix(e, "probe reset");
	entry_log(ctx, "entry: probe: board reset through its probe%s",
		  want->same_port ? "" : ", waiting for its bootloader");
	return 0;
}

const struct entry_ops entry_probe_ops = {
	.name = "probe",
	.summary = "reset the board through its debug probe",
	.enter = probe_enter,
};
