/* serialsim model "mpy": a MicroPython board on a USB CDC port whose console
 * is a real board on a unix socket: an emulated micro:bit (QEMU's UART
 * chardev) or an mpsim board.
 *
 *   mpy:sock=PATH[,vid=..,pid=..,serial=..,manufacturer=..,product=..][,baud=B]
 *
 * Defaults: f055:9800 "MicroPython" "Board in FS mode". baud=B paces the
 * board's output at B bits/s (default 0: a USB CDC port has no line rate). */
#include <stdlib.h>
#include <string.h>

#include "model_ident.h"

struct mpy {
	struct ssim_env *env;
	char sock[256];
	unsigned baud;
	int bridged;
};

static void *mpy_create(const char *args, struct ssim_env *env, struct ssim_usb_id *id, char *err,
			size_t errlen)
{
	struct mpy *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->env = env;
	if (ssim_arg(args, "sock", m->sock, sizeof m->sock) < 0) {
		snprintf(err, errlen, "mpy: sock=PATH (the board's console socket) is required");
		free(m);
		return NULL;
	}
	m->baud = (unsigned)ssim_arg_long(args, "baud", 0);
	*id = (struct ssim_usb_id){.vid = 0xf055, .pid = 0x9800, .has_tty = 1};
	snprintf(id->serial, sizeof id->serial, "%s", "335D375F3330");
	snprintf(id->manufacturer, sizeof id->manufacturer, "%s", "MicroPython");
	snprintf(id->product, sizeof id->product, "%s", "Board in FS mode");
	ssim_ident_args(id, args);
	return m;
}

/* The board is always running; its console is reachable while the port is
 * open (a CDC port drops what is sent while nobody listens). */
static void mpy_open(void *p)
{
	struct mpy *m = p;
	if (!m->bridged)
		m->bridged = m->env->bridge(m->env, m->sock, m->baud) == 0;
}

static void mpy_destroy(void *p) { free(p); }

const struct ssim_model_ops ssim_model_mpy = {
	.name = "mpy",
	.help = "MicroPython board bridged to a console socket: sock=PATH[,vid,pid,serial,product]",
	.create = mpy_create,
	.open = mpy_open,
	.destroy = mpy_destroy,
};
