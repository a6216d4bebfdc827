/* An in-process loopback to the ESP ROM loader device model (model_esp.c),
 * for unit tests and benchmarks without the serial harness: a
 * struct farm_transport whose write() feeds the model's rx(), whose read()
 * returns what the model sent with tx(), and whose set_lines()/set_baud()
 * reach the model's lines()/baud(). Timers fire on every transport call.
 * With pace = 1 the model's output arrives at its line rate (10 bits per
 * byte at the baud it was sent at) and the client's writes take their line
 * time, as on a real UART. */
#ifndef ESP_LOOP_H
#define ESP_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "ssim.h"
#include "transport.h"

struct esp_loop_chunk {
	size_t end;          /* offset in out just past this chunk */
	double t0, per_us;   /* arrival of its first byte, then per byte */
	size_t first;
};

struct esp_loop {
	struct farm_transport base;
	struct ssim_env env;
	void *m;
	uint8_t *out;
	size_t out_len, out_cap, out_pos;
	struct esp_loop_chunk chunks[4096];
	size_t n_chunks;
	double last_us;
	int pace;              /* deliver at the line rate (bench-like) */
	unsigned baud;
	int dtr, rts;
	int lines_broken;      /* 1: DTR never reaches the board (no GPIO0 strap) */
	long long timer_at;
	struct farm_buf log;
	char bridged[256];
};

/* args: the model's ("chip=esp32,drop=3"); NULL with err on failure. The
 * port starts open (DTR and RTS raised). */
struct esp_loop *esp_loop_new(const char *args, int pace, char *err, size_t errlen);
void esp_loop_free(struct esp_loop *l);
/* Fire the model's timer if it is due. */
void esp_loop_run_timers(struct esp_loop *l);
/* Drop what the model sent and the client has not read. */
void esp_loop_discard(struct esp_loop *l);
/* The model's flash as dump() writes it (caller frees), NULL on failure. */
uint8_t *esp_loop_flash(struct esp_loop *l, size_t *len);
/* Whether the model's event log holds s. */
int esp_loop_log_has(struct esp_loop *l, const char *s);

#endif
