/* serialsim model "rp2040": a Raspberry Pi Pico running MicroPython (USB CDC
 * 2E8A:0005) whose console is a board on a unix socket, with TinyUSB's
 * 1200-baud touch: when the line coding is 1200 bit/s and DTR drops, the
 * firmware calls machine.bootloader() 250 ms later; the port vanishes and,
 * after gap_ms, the BOOTSEL bootloader enumerates at the same USB location as
 * 2E8A:0003 "RP2 Boot" (a mass-storage + PICOBOOT device: no tty).
 *
 *   rp2040:sock=PATH[,serial=..][,gap_ms=300][,flap=1][,back_ms=0]
 *
 * flap=1: the bootloader appears, vanishes for 100 ms and appears again (to
 * exercise a host's stability check). back_ms=N: N ms after the bootloader
 * appeared the board reboots into MicroPython again (a new ttyACM).
 * machine.bootloader() run on the console (the board behind the bridge
 * closes it, as mpsim does) takes the same way out, without the 250 ms. */
#include <stdlib.h>
#include <string.h>

#include "model_ident.h"

enum rp_state { RP_APP, RP_TOUCHED, RP_GONE, RP_FLAP_GONE, RP_FLAP_BACK, RP_BOOT };

struct rp {
	struct ssim_env *env;
	struct ssim_usb_id app, boot;
	char sock[256];
	unsigned gap_ms, back_ms;
	int flap;
	enum rp_state st;
	unsigned baud;
	int bridged;
};

static void *rp_create(const char *args, struct ssim_env *env, struct ssim_usb_id *id, char *err,
		       size_t errlen)
{
	struct rp *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->env = env;
	if (ssim_arg(args, "sock", m->sock, sizeof m->sock) < 0) {
		snprintf(err, errlen, "rp2040: sock=PATH (the board's console socket) is required");
		free(m);
		return NULL;
	}
	m->gap_ms = (unsigned)ssim_arg_long(args, "gap_ms", 300);
	m->back_ms = (unsigned)ssim_arg_long(args, "back_ms", 0);
	m->flap = (int)ssim_arg_long(args, "flap", 0);
	m->app = (struct ssim_usb_id){.vid = 0x2e8a, .pid = 0x0005, .has_tty = 1};
	snprintf(m->app.serial, sizeof m->app.serial, "%s", "E6614103E7425C2F");
	snprintf(m->app.manufacturer, sizeof m->app.manufacturer, "%s", "MicroPython");
	snprintf(m->app.product, sizeof m->app.product, "%s", "Board in FS mode");
	ssim_ident_args(&m->app, args);
	/* The ROM bootloader's serial is derived from the flash chip's id, as
	 * MicroPython's is: the same string. */
	m->boot = (struct ssim_usb_id){.vid = 0x2e8a, .pid = 0x0003, .has_tty = 0};
	memcpy(m->boot.serial, m->app.serial, sizeof m->boot.serial);
	snprintf(m->boot.manufacturer, sizeof m->boot.manufacturer, "%s", "Raspberry Pi");
	snprintf(m->boot.product, sizeof m->boot.product, "%s", "RP2 Boot");
	*id = m->app;
	m->baud = 9600;
	return m;
}

static void rp_open(void *p)
{
	struct rp *m = p;
	if (m->st == RP_APP && !m->bridged)
		m->bridged = m->env->bridge(m->env, m->sock, 0) == 0;
}

static void rp_baud(void *p, unsigned baud) { ((struct rp *)p)->baud = baud; }

static void rp_lines(void *p, int dtr, int rts)
{
	struct rp *m = p;
	(void)rts;
	if (m->st == RP_APP && !dtr && m->baud == 1200) {
		m->env->log(m->env, "touch: 1200 baud and DTR low: bootloader in 250 ms");
		m->st = RP_TOUCHED;
		m->env->set_timer(m->env, m->env->now_ms() + 250);
	}
}

/* The board's program called machine.bootloader() (the console behind the
 * bridge went away): USB disconnects at once. */
static void rp_bridge_closed(void *p)
{
	struct rp *m = p;
	m->bridged = 0;
	if (m->st != RP_APP)
		return;
	m->env->log(m->env, "machine.bootloader() from the REPL");
	m->st = RP_TOUCHED;
	m->env->set_timer(m->env, m->env->now_ms());
}

static void rp_timer(void *p)
{
	struct rp *m = p;
	long long now = m->env->now_ms();
	switch (m->st) {
	case RP_TOUCHED:
		m->env->log(m->env, "machine.bootloader(): USB disconnect");
		m->env->bridge(m->env, NULL, 0);
		m->bridged = 0;
		m->env->unplug(m->env);
		m->st = RP_GONE;
		m->env->set_timer(m->env, now + m->gap_ms);
		break;
	case RP_GONE:
	case RP_FLAP_BACK:
		m->env->log(m->env, "BOOTSEL bootloader enumerates");
		m->env->plug(m->env, &m->boot);
		if (m->flap && m->st == RP_GONE) {
			m->st = RP_FLAP_GONE;
			m->env->set_timer(m->env, now + 100);
		} else {
			m->st = RP_BOOT;
			if (m->back_ms)
				m->env->set_timer(m->env, now + m->back_ms);
		}
		break;
	case RP_FLAP_GONE:
		m->env->log(m->env, "bootloader drops off the bus (flap)");
		m->env->unplug(m->env);
		m->st = RP_FLAP_BACK;
		m->env->set_timer(m->env, now + 100);
		break;
	case RP_BOOT:
		m->env->log(m->env, "reboot into MicroPython");
		m->env->plug(m->env, &m->app);
		m->st = RP_APP;
		break;
	case RP_APP:
		break;
	}
}

static void rp_destroy(void *p) { free(p); }

const struct ssim_model_ops ssim_model_rp2040 = {
	.name = "rp2040",
	.help = "Pico running MicroPython, 1200-baud touch to BOOTSEL: sock=PATH[,gap_ms,flap,back_ms]",
	.create = rp_create,
	.open = rp_open,
	.baud = rp_baud,
	.lines = rp_lines,
	.timer = rp_timer,
	.destroy = rp_destroy,
	.bridge_closed = rp_bridge_closed,
};
