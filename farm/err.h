/* mpfarm: error values with a fixed message buffer.
 *
 * A function that can fail returns 0 or a negative FARM_E* code and fills the
 * struct farm_err passed as its last argument. The message is set once, where
 * the failure starts; callers pass the code up unchanged (they may prefix
 * context with farm_err_prefix). Reporting never allocates. */
#ifndef FARM_ERR_H
#define FARM_ERR_H

#include <stddef.h>

enum farm_code {
	FARM_OK = 0,
	FARM_EINVAL = -1,      /* bad input: inventory, suite, firmware, argv */
	FARM_EIO = -2,         /* device or file I/O failed */
	FARM_ETIMEDOUT = -3,   /* a deadline passed */
	FARM_ENOMEM = -4,      /* allocation failed */
	FARM_EPROTO = -5,      /* peer spoke something unexpected */
	FARM_ENOTFOUND = -6,   /* file, board, device not found */
	FARM_ESYS = -7,        /* a system call failed (see sys_errno) */
	FARM_EINTR = -8,       /* run interrupted by a signal */
	FARM_EUNSUPPORTED = -9,/* feature not available here */
	FARM_ECLOSED = -10,    /* peer closed the connection */
	FARM_ELIMIT = -11,     /* an input bound was exceeded */
	FARM_EBUSY = -12,      /* resource held by someone else */
};

#define FARM_ERR_MSG_MAX 512

struct farm_err {
	int code;      /* enum farm_code */
	int sys_errno; /* errno or library code saved at the failure site, 0 if none */
	char msg[FARM_ERR_MSG_MAX];
};

#if defined(__GNUC__)
#define FARM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FARM_PRINTF(a, b)
#endif

/* Set code and message; returns code. e may be NULL. */
int farm_err_set(struct farm_err *e, int code, const char *fmt, ...) FARM_PRINTF(3, 4);
/* As farm_err_set, with errnum saved and ": strerror(errnum)" appended. */
int farm_err_sys(struct farm_err *e, int code, int errnum, const char *fmt, ...) FARM_PRINTF(4, 5);
/* Prepend "context: " to the message; returns e->code. */
int farm_err_prefix(struct farm_err *e, const char *fmt, ...) FARM_PRINTF(2, 3);
void farm_err_clear(struct farm_err *e);
const char *farm_strerror(int code);

#endif
