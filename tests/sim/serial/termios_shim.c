/* serialsim: glibc's termios calls re-implemented on ioctl().
 *
 * glibc's tcgetattr/tcsetattr/tcflush/tcdrain/tcsendbreak/tcflow issue the
 * syscall directly, and isatty() uses an internal tcgetattr, so umockdev's
 * preload library (which interposes ioctl()) never sees them. Preloaded
 * before libumockdev-preload, these versions call the interposable ioctl(),
 * so a simulated serial device sees every termios change the client makes.
 * Linux x86-64/aarch64 kernel termios layout (struct termios in asm/termbits.h). */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

struct shim_ktermios {
	tcflag_t c_iflag, c_oflag, c_cflag, c_lflag;
	cc_t c_line;
	cc_t c_cc[19];
};

int tcgetattr(int fd, struct termios *t)
{
	struct shim_ktermios k;
	if (ioctl(fd, TCGETS, &k) < 0)
		return -1;
	memset(t, 0, sizeof *t);
	t->c_iflag = k.c_iflag;
	t->c_oflag = k.c_oflag;
	t->c_cflag = k.c_cflag;
	t->c_lflag = k.c_lflag;
	t->c_line = k.c_line;
	memcpy(t->c_cc, k.c_cc, sizeof k.c_cc);
	t->c_ispeed = k.c_cflag & (CBAUD | CBAUDEX);
	t->c_ospeed = k.c_cflag & (CBAUD | CBAUDEX);
	return 0;
}

int tcsetattr(int fd, int act, const struct termios *t)
{
	unsigned long req;
	switch (act) {
	case TCSANOW: req = TCSETS; break;
	case TCSADRAIN: req = TCSETSW; break;
	case TCSAFLUSH: req = TCSETSF; break;
	default: errno = EINVAL; return -1;
	}
	struct shim_ktermios k;
	memset(&k, 0, sizeof k);
	k.c_iflag = t->c_iflag;
	k.c_oflag = t->c_oflag;
	k.c_cflag = t->c_cflag;
	k.c_lflag = t->c_lflag;
	k.c_line = t->c_line;
	memcpy(k.c_cc, t->c_cc, sizeof k.c_cc);
	return ioctl(fd, req, &k);
}

int tcflush(int fd, int queue) { return ioctl(fd, TCFLSH, queue); }
int tcdrain(int fd) { return ioctl(fd, TCSBRK, 1); }
int tcsendbreak(int fd, int duration) { (void)duration; return ioctl(fd, TCSBRK, 0); }
int tcflow(int fd, int action) { return ioctl(fd, TCXONC, action); }

int isatty(int fd)
{
	struct shim_ktermios k;
	if (ioctl(fd, TCGETS, &k) == 0)
		return 1;
	errno = ENOTTY;
	return 0;
}
