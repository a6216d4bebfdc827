/* mpfarm: ESP DTR/RTS reset sequences (see esp_reset.h). The sequences are
 * data: one table of steps per kind, run by one loop. */
#include "esp_reset.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/* One step: set lines (-1 = leave), or sleep. */
enum step_op { SET, SLEEP, SLEEP_DELAY, END };
struct step {
	enum step_op op;
	int dtr, rts;
	unsigned ms;
};

#define S(d, r) { SET, d, r, 0 }
#define DTR(v) { SET, v, -1, 0 }
#define RTS(v) { SET, -1, v, 0 }
#define WAIT(ms) { SLEEP, -1, -1, ms }
#define HOLD { SLEEP_DELAY, -1, -1, 0 }

static const struct step classic[] = {
	DTR(0), RTS(1), WAIT(100), DTR(1), RTS(0), HOLD, DTR(0), { END, 0, 0, 0 },
};
static const struct step unix_tight[] = {
	S(0, 0), S(1, 1), S(0, 1), WAIT(100), S(1, 0), HOLD, S(0, 0), DTR(0), { END, 0, 0, 0 },
};
static const struct step usbjtag[] = {
	RTS(0), DTR(0), WAIT(100), DTR(1), RTS(0), WAIT(100), RTS(1), DTR(0), RTS(1), WAIT(100),
	DTR(0), RTS(0), { END, 0, 0, 0 },
};
static const struct step hard[] = {
	RTS(1), HOLD, RTS(0), { END, 0, 0, 0 },
};

static const struct {
	const char *name;
	const struct step *steps;
	unsigned default_delay_ms;
} kinds[] = {
	[RUNNER_ESP_RESET_CLASSIC] = { "classic", classic, RUNNER_ESP_RESET_DELAY_MS },
	[RUNNER_ESP_RESET_UNIX_TIGHT] = { "unix-tight", unix_tight, RUNNER_ESP_RESET_DELAY_MS },
	[RUNNER_ESP_RESET_USB_JTAG] = { "usb-jtag", usbjtag, 0 },
	[RUNNER_ESP_RESET_HARD] = { "hard", hard, 100 },
};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

const char *runner_esp_reset_name(enum runner_esp_reset_kind kind)
{
	return (unsigned)kind < N_KINDS ? kinds[kind].name : "?";
}

int runner_esp_reset_parse(enum runner_esp_reset_kind *out, const char *name, struct farm_err *e)
{
	for (size_t i = 0; name && i < N_KINDS; i++)
		if (!strcmp(kinds[i].name, name)) {
			*out = (enum runner_esp_reset_kind)i;
			return 0;
		}
	return farm_err_set(e, FARM_EINVAL,
			    "unknown ESP reset '%s': use classic, unix-tight, usb-jtag or hard",
			    name ? name : "");
}

int runner_esp_reset(struct farm_transport *t, enum runner_esp_reset_kind kind, unsigned delay_ms,
		     struct farm_err *e)
{
	if ((unsigned)kind >= N_KINDS)
		return farm_err_set(e, FARM_EINVAL, "unknown ESP reset kind %d", (int)kind);
	if (!delay_ms)
		delay_ms = kinds[kind].default_delay_ms;
	int dtr = -1; /* the DTR we set last, re-sent after every RTS change */
	for (const struct step *s = kinds[kind].steps; s->op != END; s++) {
		int rc = 0;
		switch (s->op) {
		case SET:
			if (s->dtr >= 0)
				dtr = s->dtr;
			rc = farm_transport_set_lines(t, s->dtr, s->rts, e);
			if (rc == 0 && s->dtr < 0 && dtr >= 0)
				rc = farm_transport_set_lines(t, dtr, -1, e);
			break;
		case SLEEP:
			sleep_ms(s->ms);
			break;
		case SLEEP_DELAY:
			sleep_ms(delay_ms);
			break;
		case END:
			break;
		}
		if (rc < 0)
			return farm_err_prefix(e, "%s reset", kinds[kind].name);
	}
	return 0;
}

void runner_esp_reset_schedule(unsigned attempt, int usb_jtag, enum runner_esp_reset_kind *kind,
			       unsigned *delay_ms)
{
	static const enum runner_esp_reset_kind cycle[] = {
		RUNNER_ESP_RESET_UNIX_TIGHT, RUNNER_ESP_RESET_UNIX_TIGHT,
		RUNNER_ESP_RESET_CLASSIC, RUNNER_ESP_RESET_CLASSIC,
	};
	*kind = usb_jtag ? RUNNER_ESP_RESET_USB_JTAG : cycle[attempt % 4];
	*delay_ms = RUNNER_ESP_RESET_DELAY_MS + ((attempt % 2) ? RUNNER_ESP_RESET_EXTRA_DELAY_MS : 0);
}
