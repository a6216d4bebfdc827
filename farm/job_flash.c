#include "job_flash.h"
#include "serial_port.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "probesrv.h"
#include "rsp.h"
#include "runner.h"
#include "transport.h"

#define PROGRESS_EVERY_MS 100
#define POWERON_TIMEOUT_MS 10000

int farm_job_emu_reset_run(void *emu, struct farm_err *e)
{
	int rc = farm_emu_reset(emu, e);
	if (rc == 0)
		rc = farm_emu_cont(emu, e);
	return rc;
}

static void log_line(FILE *log, const char *line)
{
	if (!log)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	fprintf(log, "%lld.%03ld * %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000, line);
	fflush(log);
}

static void runner_log(void *payload, const char *line)
{
	log_line(payload, line);
}

int farm_job_emu_poweron(struct farm_emu *emu, const struct farm_board *b, FILE *log,
			 const volatile sig_atomic_t *cancel, struct farm_err *e)
{
	if (b->emulator.blank || !b->emulator.firmware)
		return 0; /* stays halted with an empty flash until it is flashed */
	struct farm_image *img = NULL;
	struct farm_rsp *rsp = NULL;
	char url[64], line[600];
	int rc = farm_image_load(&img, b->emulator.firmware, FARM_IMG_UNKNOWN, 0, e);
	if (rc) {
		farm_err_prefix(e, "emulator.firmware");
		goto out;
	}
	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", farm_emu_gdb_port(emu));
	if ((rc = farm_rsp_connect(&rsp, url, POWERON_TIMEOUT_MS, cancel, e)))
		goto out;
	for (size_t i = 0; i < img->n_segs && rc == 0; i++)
		rc = farm_rsp_write_mem(rsp, img->segs[i].addr, img->segs[i].data, img->segs[i].len,
					NULL, NULL, e);
	farm_rsp_close(rsp);
	if (rc)
		goto out;
	snprintf(line, sizeof line, "emulator: %s preloaded into the flash (%zu bytes)",
		 b->emulator.firmware, farm_image_size(img));
	log_line(log, line);
	rc = farm_job_emu_reset_run(emu, e);
out:
	farm_image_free(img);
	if (rc)
		farm_err_prefix(e, "powering on the emulated board");
	return rc;
}

struct flash_progress {
	const struct farm_job_sink *sink;
	long long last_ms;
	uint64_t last_done;
	char last_step[16];
};

static void on_progress(void *payload, const char *step, uint64_t done, uint64_t total)
{
	struct flash_progress *fp = payload;
	long long now = farm_now_ms();
	int new_step = strcmp(step, fp->last_step) != 0;
	if (!new_step && (done == fp->last_done || (done < total && now - fp->last_ms < PROGRESS_EVERY_MS)))
		return;
	fp->last_ms = now;
	fp->last_done = done;
	snprintf(fp->last_step, sizeof fp->last_step, "%s", step);
	if (fp->sink->progress)
		fp->sink->progress(fp->sink->payload, step, done, total);
}

static void propf(const struct farm_job_sink *sink, const char *name, const char *fmt, ...)
	FARM_PRINTF(3, 4);
static void propf(const struct farm_job_sink *sink, const char *name, const char *fmt, ...)
{
	char v[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v, sizeof v, fmt, ap);
	va_end(ap);
	sink->prop(sink->payload, name, v);
}

static void phasef(const struct farm_job_sink *sink, const char *fmt, ...) FARM_PRINTF(2, 3);
static void phasef(const struct farm_job_sink *sink, const char *fmt, ...)
{
	char v[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v, sizeof v, fmt, ap);
	va_end(ap);
	sink->phase(sink->payload, "flash", v);
}

static int probesrv_connect(void *payload, struct farm_transport **out, int timeout_ms,
			    struct farm_err *e)
{
	return farm_probesrv_connect(payload, out, timeout_ms, e);
}

int farm_job_flash(const struct farm_flash_phase *f, struct farm_err *e)
{
	const struct farm_job *job = f->job;
	const struct farm_board *b = job->board;
	const struct farm_fw_board *fw = job->fw;
	const struct farm_job_sink *sink = f->sink;
	const struct farm_image *img = fw->image->img;
	struct farm_res_held *held = NULL;
	struct runner *r = NULL;
	const struct runner_ops *ops = fw->runner;
	char gdb_url[64];
	int rc;

	/* Shared things (probe, hub) only for as long as this phase needs them. */
	struct farm_res_id ids[FARM_RES_MAX];
	size_t n_ids = farm_res_of_board(b, ids, FARM_RES_MAX);
	if (n_ids) {
		char list[FARM_RES_MAX * (FARM_LOCK_ID_MAX + 14)];
		farm_res_format(ids, n_ids, list, sizeof list);
		phasef(sink, "waiting for %s", list);
		struct farm_lock_owner me = { 0 };
		snprintf(me.run_id, sizeof me.run_id, "%s", job->run_id ? job->run_id : "");
		snprintf(me.what, sizeof me.what, "flashing board %s", b->id);
		long long t0 = farm_now_ms();
		rc = farm_res_hold(&held, job->gate, ids, n_ids, job->lock_dir, &me, job->wait_lock_ms,
				   job->cancel, e);
		if (rc)
			return rc;
		propf(sink, "flash.resource_wait_s", "%.3f", (double)(farm_now_ms() - t0) / 1000.0);
	}

	struct runner_ctx ctx = {
		.board = b,
		.probe = b->probe ? farm_inventory_probe(job->inv, b->probe) : NULL,
		.map = fw->map,
		.log = runner_log,
		.log_payload = f->log,
		.cancel = job->cancel,
		.timeout_ms = b->timeouts.flash_ms,
		.report_dir = job->log_dir,
		.image_path = fw->image->path,
	};
	/* The board's serial port now, for runners that talk to a bootloader
	 * over it (and its USB device, to find the bootloader that replaces it). */
	char port[256];
	struct farm_usbdev usb;
	if (!f->emu && farm_serial_is_local(&b->serial)) {
		struct farm_err why = { 0 };
		if (farm_serial_port_find(port, sizeof port, &usb, &b->serial, &why) == 0) {
			ctx.serial_path = port;
			ctx.usb = usb.location[0] ? &usb : NULL;
			propf(sink, "flash.port", "%s", port);
		} else {
			runner_log(f->log, why.msg); /* the runner says whether it needs it */
		}
	}
	ctx.interactive = job->interactive;
	if (f->emu) {
		snprintf(gdb_url, sizeof gdb_url, "tcp://127.0.0.1:%d", farm_emu_gdb_port(f->emu));
		ctx.gdb_url = gdb_url;
		ctx.board_reset = farm_job_emu_reset_run;
		ctx.reset_payload = f->emu;
	}
	/* A probe whose GDB server mpfarm runs itself (OpenOCD, pyOCD without connection:). */
	struct farm_probesrv *srv = NULL;
	if (ctx.probe && !f->emu && farm_probesrv_needed(ctx.probe)) {
		char srv_log[4200] = "";
		if (job->log_dir)
			snprintf(srv_log, sizeof srv_log, "%s/%s.%s.log", job->log_dir, b->id, ctx.probe->id);
		if ((rc = farm_probesrv_new(&srv, ctx.probe, srv_log[0] ? srv_log : NULL, job->cancel, e)))
			goto out;
		ctx.gdb_connect = probesrv_connect;
		ctx.gdb_payload = srv;
	}
	propf(sink, "flash.method", "%s", ops->name);
	propf(sink, "flash.image", "%s", fw->image->path);
	propf(sink, "flash.sha256", "%s", fw->image->sha256);
	propf(sink, "flash.bytes", "%zu", farm_image_size(img));
	if (fw->image->identity[0])
		propf(sink, "flash.identity", "%s", fw->image->identity);
	if ((rc = runner_new(&r, ops, &ctx, e)))
		goto out;
	phasef(sink, "%s: writing %s (%s, %zu bytes in %zu segments)", ops->name, fw->image->path,
	       farm_image_format_name(img->format), farm_image_size(img), img->n_segs);
	struct flash_progress fp = { .sink = sink };
	long long t0 = farm_now_ms();
	rc = runner_flash(r, img, on_progress, &fp, e);
	double write_s = (double)(farm_now_ms() - t0) / 1000.0;
	if (rc)
		goto out;
	propf(sink, "flash.write_s", "%.3f", write_s);
	if (write_s > 0)
		propf(sink, "flash.bytes_per_s", "%.0f", (double)farm_image_size(img) / write_s);
	const char *verified = "not verified (the runner cannot read back)";
	if (ops->caps & RUNNER_CAP_VERIFY) {
		t0 = farm_now_ms();
		rc = runner_verify(r, img, on_progress, &fp, e);
		if (rc == FARM_EUNSUPPORTED) {
			verified = "not verified (flash.verify: none)";
			rc = 0;
		} else if (rc) {
			goto out;
		} else {
			verified = "verified";
			propf(sink, "flash.verify_s", "%.3f", (double)(farm_now_ms() - t0) / 1000.0);
		}
	}
	phasef(sink, "wrote %zu bytes in %.3f s, %s; starting the new firmware",
	       farm_image_size(img), write_s, verified);
	rc = runner_reset(r, e);
	if (rc == FARM_EUNSUPPORTED) {
		phasef(sink, "the runner cannot reset this board: power-cycle it to start the firmware");
		rc = 0;
	}
out:
	runner_free(r);
	farm_probesrv_free(srv);
	farm_res_release(held);
	if (rc && rc != FARM_EINTR && rc != FARM_EBUSY)
		farm_err_prefix(e, "%s", ops ? ops->name : "flash");
	return rc;
}
