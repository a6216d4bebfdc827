#include "session.h"
#include "serial_port.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void log_bytes(void *payload, char dir, const char *data, size_t len)
{
	struct farm_session *s = payload;
	if (dir == 'r') {
		if (s->transcript.len + len > FARM_TRANSCRIPT_MAX) {
			size_t keep = FARM_TRANSCRIPT_MAX / 2;
			if (s->transcript.len > keep) {
				s->transcript_dropped += s->transcript.len - keep;
				farm_buf_keep_tail(&s->transcript, keep);
			}
		}
		if (len <= FARM_TRANSCRIPT_MAX / 2)
			farm_buf_append(&s->transcript, data, len);
		else
			s->transcript_dropped += len;
	}
	if (s->log) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		fprintf(s->log, "%lld.%03ld %c ", (long long)ts.tv_sec, ts.tv_nsec / 1000000,
			dir == 'r' ? '<' : '>');
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)data[i];
			if (c == '\n')
				fputs("\\n", s->log);
			else if (c < 0x20 || c >= 0x7f || c == '\\')
				fprintf(s->log, "\\x%02x", c);
			else
				fputc(c, s->log);
		}
		fputc('\n', s->log);
	}
}

static int reset_emu(void *payload, struct farm_err *e)
{
	struct farm_session *s = payload;
	return farm_emu_reset(s->emu, e);
}

int farm_session_open(struct farm_session **out, const struct farm_board *b,
		      const struct farm_session_opts *opts, struct farm_err *e)
{
	*out = NULL;
	struct farm_session *s = calloc(1, sizeof *s);
	if (!s)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	s->board = b;
	long long t0 = farm_now_ms();
	int rc = 0;
	if (opts && opts->log) {
		s->log = opts->log;
		s->borrowed_log = 1;
	} else if (opts && opts->log_path) {
		s->log = fopen(opts->log_path, "w");
		if (!s->log) {
			rc = farm_err_sys(e, FARM_EIO, errno, "cannot write the board log %s", opts->log_path);
			goto fail;
		}
	}
	const char *url = b->serial.path;
	if (opts && opts->emu_running) {
		s->emu = opts->emu_running;
		url = farm_emu_console_url(s->emu);
	} else if (b->emulator.present) {
		rc = farm_emu_start(&s->emu, &b->emulator, b->id, opts ? opts->emu : NULL, e);
		if (rc)
			goto fail;
		s->own_emu = 1;
		url = farm_emu_console_url(s->emu);
	}
	/* A local USB port is looked up again at every attempt: after a reset it
	 * may come back under another /dev name (found by its by-id link, USB
	 * serial number or location). */
	int local = !s->emu && farm_serial_is_local(&b->serial);
	char port[256];
	if (!url && !local) {
		rc = farm_err_set(e, FARM_EINVAL, "board %s has no serial path", b->id);
		goto fail;
	}
	long long until = t0 + (opts ? opts->reopen_ms : 0);
	for (;;) {
		rc = 0;
		if (local) {
			rc = farm_serial_port_find(port, sizeof port, NULL, &b->serial, e);
			url = port;
		}
		if (rc == 0)
			rc = farm_transport_open(&s->t, url, &b->serial, (int)b->repl.boot_timeout_ms, e);
		if (rc == 0 || rc == FARM_EINVAL || farm_now_ms() >= until)
			break;
		if (opts && opts->cancel && *opts->cancel) {
			rc = farm_err_set(e, FARM_EINTR, "interrupted");
			break;
		}
		struct timespec nap = { 0, 200 * 1000000L }; /* the device is re-enumerating */
		nanosleep(&nap, NULL);
	}
	if (rc)
		goto fail;
	rc = farm_repl_new(&s->repl, s->t, &b->repl, e);
	if (rc)
		goto fail;
	farm_repl_set_log(s->repl, log_bytes, s);
	if (opts)
		farm_repl_set_cancel(s->repl, opts->cancel);
	if (s->emu)
		farm_repl_set_reset(s->repl, reset_emu, s);
	rc = farm_repl_enter_raw(s->repl, (int)b->repl.boot_timeout_ms, e);
	if (rc)
		goto fail;
	s->boot_s = (double)(farm_now_ms() - t0) / 1000.0;
	*out = s;
	return 0;
fail:
	farm_session_close(s);
	return rc;
}

void farm_session_close_keep(struct farm_session *s, struct farm_buf *transcript)
{
	if (!s)
		return;
	if (s->repl) {
		struct farm_err ign = { 0 };
		/* Leave the board at its friendly prompt, as a person would find it. */
		farm_repl_set_cancel(s->repl, NULL); /* this much is done even when interrupted */
		if (s->t)
			farm_repl_leave_raw(s->repl, &ign);
		farm_repl_free(s->repl);
	}
	farm_transport_close(s->t);
	if (s->own_emu)
		farm_emu_stop(s->emu, 1000);
	if (s->log && !s->borrowed_log)
		fclose(s->log);
	if (transcript && s->transcript.len)
		farm_buf_append(transcript, s->transcript.data, s->transcript.len);
	farm_buf_free(&s->transcript);
	free(s);
}

void farm_session_close(struct farm_session *s)
{
	farm_session_close_keep(s, NULL);
}
