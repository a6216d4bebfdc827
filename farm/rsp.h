/* mpfarm: a GDB Remote Serial Protocol client, the part a flasher needs.
 * Protocol facts: shared/protocols/gdb-rsp-flash.md.
 *
 * Talks to OpenOCD, pyOCD, probe-rs, Black Magic Probe and QEMU's gdbstub
 * over any farm_transport (tcp://HOST:PORT, a serial device for BMP, unix:).
 * Framing ($data#cc), acks and no-ack mode, binary escaping, run-length
 * decoding, qSupported/PacketSize, the memory map (qXfer:memory-map:read),
 * vFlashErase/vFlashWrite/vFlashDone, X (probed) and M writes, m reads,
 * qCRC, and qRcmd ("monitor") commands.
 *
 * Every call has a timeout; a stalled or vanished server gives
 * FARM_ETIMEDOUT or FARM_ECLOSED with a message naming the packet that was
 * in flight. A cancel flag (may be NULL) is honoured between packets and
 * while waiting (FARM_EINTR). */
#ifndef FARM_RSP_H
#define FARM_RSP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "transport.h"

#define FARM_RSP_MAX_PACKET (256u << 10) /* largest reply accepted (after RLE expansion) */
#define FARM_RSP_MAX_REGIONS 64

struct farm_rsp;

/* One region of the server's memory map. */
struct farm_rsp_region {
	uint32_t start, length;
	uint32_t blocksize;  /* flash only */
	int is_flash, is_ram, is_rom;
};

struct farm_rsp_info {
	unsigned packet_size;      /* PacketSize from qSupported (data chars), default 400 */
	int no_ack;                /* QStartNoAckMode negotiated */
	int has_memory_map;        /* qXfer:memory-map:read+ */
	int has_x;                 /* X packets work (probed lazily; -1 unknown) */
	int has_qcrc;              /* -1 unknown, 0 no, 1 yes (probed lazily) */
	struct farm_rsp_region regions[FARM_RSP_MAX_REGIONS];
	size_t n_regions;          /* 0 if no memory map */
};

/* Progress of a long transfer: bytes done of total. */
typedef void (*farm_rsp_progress_fn)(void *payload, uint64_t done, uint64_t total);

/* Takes ownership of t (closed by farm_rsp_close, or at once if open fails). Sends qSupported,
 * negotiates no-ack mode when offered, reads the memory map when offered,
 * and checks the target answers '?'. timeout_ms bounds each packet. A map the
 * server refuses to give (E or empty reply: BMP before vAttach) leaves
 * n_regions 0; a malformed one fails the open. */
int farm_rsp_open(struct farm_rsp **out, struct farm_transport *t, int timeout_ms,
		  const volatile sig_atomic_t *cancel, struct farm_err *e);
/* Connect to url (farm_transport_open) and farm_rsp_open. */
int farm_rsp_connect(struct farm_rsp **out, const char *url, int timeout_ms,
		     const volatile sig_atomic_t *cancel, struct farm_err *e);
/* Detach ('D', best effort) and close. NULL-safe. */
void farm_rsp_close(struct farm_rsp *r);

const struct farm_rsp_info *farm_rsp_info(const struct farm_rsp *r);
/* (Re)read the memory map into the info (qXfer:memory-map:read, m/l chunks,
 * at most FARM_RSP_MAX_PACKET bytes of XML), e.g. after BMP's vAttach. */
int farm_rsp_read_memory_map(struct farm_rsp *r, struct farm_err *e);
/* Per-packet timeout for the calls that follow. */
void farm_rsp_set_timeout(struct farm_rsp *r, int timeout_ms);
/* Optional byte log of both directions (dir 'r' from the server, 'w' to it). */
void farm_rsp_set_log(struct farm_rsp *r, void (*fn)(void *p, char dir, const char *data, size_t len),
		      void *payload);

/* One request/response exchange, for anything not wrapped below. req is the
 * packet data (escaped by the caller if binary). The reply (unescaped, RLE
 * expanded) is appended to reply, which is reset first. */
int farm_rsp_request(struct farm_rsp *r, const void *req, size_t req_len, struct farm_buf *reply,
		     struct farm_err *e);

/* Memory writes: X when the server supports it (probed once with "X addr,0:"),
 * else M; split to fit PacketSize. progress may be NULL. */
int farm_rsp_write_mem(struct farm_rsp *r, uint32_t addr, const void *data, size_t len,
		       farm_rsp_progress_fn progress, void *payload, struct farm_err *e);
int farm_rsp_read_mem(struct farm_rsp *r, uint32_t addr, void *data, size_t len,
		      farm_rsp_progress_fn progress, void *payload, struct farm_err *e);

/* Flash through the server's flash drivers. Erase ranges must be aligned to
 * the map's blocksize (the caller rounds with the map). Writes within one
 * erase/write/done group must be increasing and non-overlapping.
 * flash_done may take minutes (OpenOCD programs here): done_timeout_ms. */
int farm_rsp_flash_erase(struct farm_rsp *r, uint32_t addr, uint32_t len, struct farm_err *e);
int farm_rsp_flash_write(struct farm_rsp *r, uint32_t addr, const void *data, size_t len,
			 farm_rsp_progress_fn progress, void *payload, struct farm_err *e);
int farm_rsp_flash_done(struct farm_rsp *r, int done_timeout_ms, struct farm_err *e);

/* qCRC:addr,len. Returns FARM_EUNSUPPORTED (and remembers it) when the
 * server has no qCRC. */
int farm_rsp_crc(struct farm_rsp *r, uint32_t addr, uint32_t len, uint32_t *crc, struct farm_err *e);
/* The CRC qCRC computes (CRC-32, MSB first, poly 0x04C11DB7, init 0xffffffff, no final xor). */
uint32_t farm_rsp_crc32(uint32_t crc, const void *data, size_t len);

/* qRcmd (monitor command). Console output ('O' packets, hex-decoded, and a
 * final hex reply) is appended to out (may be NULL). An 'E' reply or an
 * empty reply (unsupported) is an error. */
int farm_rsp_monitor(struct farm_rsp *r, const char *cmd, struct farm_buf *out, struct farm_err *e);

/* Halt a running target (0x03) and wait for its stop reply. */
int farm_rsp_interrupt(struct farm_rsp *r, struct farm_err *e);

/* ---- pure helpers (no I/O), for the client, the test server and tests ---- */

/* Append "$" + data + "#cc" to out. data is sent as given (escape first if binary). */
int farm_rsp_frame(struct farm_buf *out, const void *data, size_t len);
/* Append data with '#', '$', '}', '*' escaped (0x7d, byte ^ 0x20). */
int farm_rsp_escape(struct farm_buf *out, const void *data, size_t len);
/* Undo escapes and run-length encoding of a received packet body into out.
 * FARM_EPROTO on a dangling '}' or a bad run length. */
int farm_rsp_decode(struct farm_buf *out, const void *data, size_t len, struct farm_err *e);
/* Parse a memory-map XML document into regions. Bounded; FARM_EPROTO with
 * the offending element on malformed input. */
int farm_rsp_parse_memory_map(const char *xml, size_t len, struct farm_rsp_region *regions,
			      size_t max, size_t *n, struct farm_err *e);

#endif
