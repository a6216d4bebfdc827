/* serialsim model "esp": an ESP32 / ESP32-S3 / ESP8266 behind its USB-UART
 * bridge (or the on-chip USB-Serial/JTAG), with the ROM serial download
 * loader (/work/shared/protocols/esp-rom-serial.md) and a flash chip.
 *
 *   esp:chip=esp32|esp32s3|esp8266[,usb=jtag][,flash=4194304][,app=PATH]
 *       [,drop=N][,corrupt=N][,slow_erase=MS][,junk=1][,vid=..,pid=..,serial=..]
 *
 * Boot strap (bridge boards: RTS drives EN, DTR drives GPIO0 through the
 * usual two transistors; a line pulls its pin low only while the other line
 * is not asserted): EN is low while RTS is asserted and DTR is not; GPIO0 is
 * low while DTR is asserted and RTS is not. EN rises through an RC (EN_RC_MS):
 * when it has been high that long the chip samples GPIO0 and boots: download
 * mode if GPIO0 is low, else the application. usb=jtag (303A:1001): no RC,
 * the USB-Serial/JTAG logic: (DTR=0, RTS=1) holds the chip in reset; a reset
 * entered after (DTR=1, RTS=0) was set boots into download mode.
 *
 * Boot logs as the ROMs print them (ESP32: 115200 baud; ESP8266: 74880, so at
 * 115200 a client sees garbage, as on a real board). Download mode: strict
 * SLIP (a bad escape drops the frame), SYNC answered 8 times (value
 * 0x20120707), READ_REG of the chip-detect register, GET_SECURITY_INFO
 * (ESP32-S3 only), SPI_ATTACH, SPI_SET_PARAMS, CHANGE_BAUDRATE (the reply goes
 * out at the old rate, then the UART switches), FLASH_BEGIN/DATA/END,
 * FLASH_DEFL_* (not on the ESP8266 ROM), SPI_FLASH_MD5 (32 hex characters;
 * not on the ESP8266 ROM); unknown commands: status 1, error 0x05. Status
 * bytes: 4 (ESP32, S3) or 2 (ESP8266). The ESP8266 ROM's erase quirk (it
 * erases more than asked; esptool's get_erase_size compensates) is modelled.
 * Flash: a byte array of 0xff, erased in 4 KiB sectors; a write programs
 * bits (old & new) and is read back: a byte that does not come back as
 * written is ROM error 0x08. Bytes received at a baud other than the UART's
 * are garbage (before the first SYNC the ROM auto-bauds instead).
 * A *_DATA block repeating the previous sequence number with the same
 * checksum (the host re-sent a block whose reply it lost) is acknowledged
 * again without being written twice; any other sequence error is 0x06.
 *
 * After a reset into the application: a valid image (0xE9 at the bootloader
 * offset: 0x1000 on ESP32, 0 on S3 and ESP8266) boots and, with app=PATH,
 * the console is bridged to that unix socket (an mpsim board); else the ROM
 * prints "invalid header" once a second, as a blank chip does.
 *
 * Faults: drop=N drops the Nth reply (SYNC answers not counted); corrupt=N
 * makes the Nth received *_DATA frame fail its checksum (as if a byte was hit
 * on the line); slow_erase=MS delays every FLASH_BEGIN reply by MS; junk=1
 * sends a 0x00 before the first reply after each boot (esptool issue 19).
 * dump() writes the flash to DIR/DEV.flash. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "model_ident.h"

#define EN_RC_MS 5
#define SECTOR 0x1000u
#define FRAME_MAX (0x4000u + 64u)

struct esp_chip_model {
	const char *name;
	uint32_t magic;        /* READ_REG 0x40001000 */
	int chip_id;           /* GET_SECURITY_INFO, -1 = unsupported */
	unsigned status_len;
	int enc_word;          /* FLASH_BEGIN takes 5 words */
	int deflate, md5;
	uint32_t app_offset;   /* where the boot image header lives */
	unsigned boot_baud;    /* boot log rate */
	const char *rom_banner;
};

static const struct esp_chip_model chip_models[] = {
	{ "esp32", 0x00f01d83u, -1, 4, 0, 1, 1, 0x1000, 115200, "ets Jun  8 2016 00:22:57\r\n\r\n" },
	{ "esp32s3", 0x00000009u, 9, 4, 1, 1, 1, 0x0, 115200, "ESP-ROM:esp32s3-20210327\r\n" },
	{ "esp8266", 0xfff0c101u, -1, 2, 0, 0, 0, 0x0, 74880, "\r\n ets Jan  8 2013," },
	{ NULL, 0, 0, 0, 0, 0, 0, 0, 0, NULL },
};

enum mode { M_APP, M_RESET, M_DOWNLOAD, M_INVALID };

struct esp {
	struct ssim_env *env;
	const struct esp_chip_model *chip;
	struct ssim_usb_id id;
	int usb_jtag;
	uint8_t *flash;
	size_t flash_size;
	char app[256];
	enum mode mode;
	int dtr, rts;
	int en_high;
	long long en_rise_at;     /* EN rose, boot when the RC settles; 0 = none */
	int jtag_strap;           /* USB-JTAG: (1,0) seen before the reset */
	int jtag_in_reset;
	unsigned baud;            /* the UART's rate now */
	int synced;
	int junk, junk_pending;
	/* SLIP receiver */
	uint8_t frame[FRAME_MAX];
	size_t flen;
	int in_frame, esc, bad;
	/* flash operation */
	int flashing, defl;
	uint32_t f_addr, f_blocks, f_bs, f_seq, f_ptr, f_last_chk;
	int f_have_last;
	z_stream zs;
	int zs_live;
	/* replies held back (slow erase) */
	uint8_t held[64];
	size_t held_len;
	long long held_at;
	/* invalid-header loop */
	long long invalid_at;
	unsigned invalid_count;
	int bridged;
	/* faults */
	long drop_n, corrupt_n, slow_erase_ms;
	long replies, data_frames;
};

/* ---- MD5 (RFC 1321), small and independent of the client's ---- */
struct md5 {
	uint32_t s[4];
	uint64_t n;
	uint8_t buf[64];
};

static uint32_t rol(uint32_t x, unsigned c) { return (x << c) | (x >> (32 - c)); }

static void md5_block(struct md5 *m, const uint8_t *p)
{
	static const uint32_t K[64] = {
		0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
		0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
		0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
		0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
		0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
		0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
		0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
		0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
		0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
		0xeb86d391,
	};
	static const unsigned R[16] = { 7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21 };
	uint32_t w[16], a = m->s[0], b = m->s[1], c = m->s[2], d = m->s[3];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
		       (uint32_t)p[4 * i + 3] << 24;
	for (unsigned i = 0; i < 64; i++) {
		uint32_t f;
		unsigned g;
		if (i < 16) {
			f = (b & c) | (~b & d);
			g = i;
		} else if (i < 32) {
			f = (d & b) | (~d & c);
			g = (5 * i + 1) % 16;
		} else if (i < 48) {
			f = b ^ c ^ d;
			g = (3 * i + 5) % 16;
		} else {
			f = c ^ (b | ~d);
			g = (7 * i) % 16;
		}
		uint32_t t = d;
		d = c;
		c = b;
		b = b + rol(a + f + K[i] + w[g], R[(i / 16) * 4 + i % 4]);
		a = t;
	}
	m->s[0] += a;
	m->s[1] += b;
	m->s[2] += c;
	m->s[3] += d;
}

static void md5_of(const uint8_t *p, size_t n, uint8_t out[16])
{
	struct md5 m = { { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476 }, 0, { 0 } };
	size_t i = 0;
	for (; i + 64 <= n; i += 64)
		md5_block(&m, p + i);
	uint8_t tail[128] = { 0 };
	size_t r = n - i;
	memcpy(tail, p + i, r);
	tail[r] = 0x80;
	size_t tl = r < 56 ? 64 : 128;
	uint64_t bits = (uint64_t)n * 8;
	for (int k = 0; k < 8; k++)
		tail[tl - 8 + k] = (uint8_t)(bits >> (8 * k));
	md5_block(&m, tail);
	if (tl == 128)
		md5_block(&m, tail + 64);
	for (int k = 0; k < 16; k++)
		out[k] = (uint8_t)(m.s[k / 4] >> (8 * (k % 4)));
}

/* ---- output ---- */
static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Bytes to the client at the UART's rate; garbage when the client listens at
 * another rate (a USB-Serial/JTAG port has no rate). */
static void out(struct esp *m, const void *buf, size_t len, unsigned baud)
{
	if (m->usb_jtag) {
		m->env->tx(m->env, buf, len, 0);
		return;
	}
	unsigned cb = m->env->client_baud ? m->env->client_baud(m->env) : baud;
	if (cb == baud || cb == 0) {
		m->env->tx(m->env, buf, len, baud);
		return;
	}
	uint8_t g[256];
	const uint8_t *p = buf;
	while (len) {
		size_t n = len < sizeof g ? len : sizeof g;
		for (size_t i = 0; i < n; i++) /* wrong rate: mangled bits, framing errors */
			g[i] = (uint8_t)((p[i] * 0x9du + baud / 300u + i) ^ 0xa5u);
		m->env->tx(m->env, g, n, baud);
		p += n;
		len -= n;
	}
}

static void out_text(struct esp *m, const char *s, unsigned baud)
{
	out(m, s, strlen(s), baud);
}

static void arm_timer(struct esp *m)
{
	long long t = 0;
	long long c[3] = { m->en_rise_at, m->held_at, m->invalid_at };
	for (int i = 0; i < 3; i++)
		if (c[i] && (!t || c[i] < t))
			t = c[i];
	m->env->set_timer(m->env, t);
}

static void slip_send(struct esp *m, const uint8_t *raw, size_t n)
{
	uint8_t w[2 * 64 + 2];
	size_t k = 0;
	if (m->junk_pending) {
		w[k++] = 0x00;
		m->junk_pending = 0;
	}
	w[k++] = 0xc0;
	for (size_t i = 0; i < n && k + 3 < sizeof w; i++) {
		if (raw[i] == 0xc0) {
			w[k++] = 0xdb;
			w[k++] = 0xdc;
		} else if (raw[i] == 0xdb) {
			w[k++] = 0xdb;
			w[k++] = 0xdd;
		} else {
			w[k++] = raw[i];
		}
	}
	w[k++] = 0xc0;
	out(m, w, k, m->baud);
}

/* Build a reply: value, payload, status [status, error(, 0, 0)]. Returns its
 * raw length in raw (at most 64 bytes). */
static size_t build_reply(struct esp *m, uint8_t *raw, uint8_t op, uint32_t value,
			  const void *payload, size_t plen, uint8_t err)
{
	size_t dl = plen + m->chip->status_len;
	raw[0] = 1;
	raw[1] = op;
	raw[2] = (uint8_t)dl;
	raw[3] = (uint8_t)(dl >> 8);
	wr32(raw + 4, value);
	if (plen)
		memcpy(raw + 8, payload, plen);
	memset(raw + 8 + plen, 0, m->chip->status_len);
	raw[8 + plen] = err ? 1 : 0;
	raw[9 + plen] = err;
	return 8 + dl;
}

static void reply(struct esp *m, uint8_t op, uint32_t value, const void *payload, size_t plen,
		  uint8_t err, long delay_ms)
{
	uint8_t raw[64];
	size_t n = build_reply(m, raw, op, value, payload, plen, err);
	if (err)
		m->env->log(m->env, "reply %02x error 0x%02x", op, err);
	if (op != 0x08 && ++m->replies == m->drop_n) {
		m->env->log(m->env, "fault: dropped reply %ld (op %02x)", m->replies, op);
		return;
	}
	if (delay_ms > 0) {
		memcpy(m->held, raw, n);
		m->held_len = n;
		m->held_at = m->env->now_ms() + delay_ms;
		arm_timer(m);
		return;
	}
	slip_send(m, raw, n);
}

/* ---- boot ---- */
static void end_bridge(struct esp *m)
{
	if (m->bridged && m->env->bridge) {
		m->env->bridge(m->env, NULL, 0);
		m->bridged = 0;
	}
}

static void enter_reset(struct esp *m)
{
	if (m->mode != M_RESET)
		m->env->log(m->env, "reset: EN low");
	end_bridge(m);
	m->env->tx_flush(m->env);
	m->mode = M_RESET;
	m->flashing = 0;
	if (m->zs_live) {
		inflateEnd(&m->zs);
		m->zs_live = 0;
	}
	m->en_rise_at = 0;
	m->held_at = 0;
	m->invalid_at = 0;
	arm_timer(m);
}

static void boot(struct esp *m, int download)
{
	const struct esp_chip_model *c = m->chip;
	char log[256];
	m->baud = c->boot_baud == 74880 ? 115200 : c->boot_baud;
	m->synced = 0;
	m->in_frame = 0;
	m->junk_pending = m->junk;
	if (download) {
		m->mode = M_DOWNLOAD;
		m->env->log(m->env, "boot: download mode");
		if (!strcmp(c->name, "esp8266"))
			snprintf(log, sizeof log, "%srst cause:2, boot mode:(1,7)\r\n\r\n"
				 "waiting for host\r\n", c->rom_banner);
		else
			snprintf(log, sizeof log, "%srst:0x1 (POWERON_RESET),boot:0x3 "
				 "(DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\n"
				 "waiting for download\r\n", c->rom_banner);
		out_text(m, log, c->boot_baud);
		return;
	}
	if (!strcmp(c->name, "esp8266"))
		snprintf(log, sizeof log, "%srst cause:2, boot mode:(3,7)\r\n\r\n", c->rom_banner);
	else
		snprintf(log, sizeof log, "%srst:0x1 (POWERON_RESET),boot:0x13 "
			 "(SPI_FAST_FLASH_BOOT)\r\n", c->rom_banner);
	out_text(m, log, c->boot_baud);
	if (c->app_offset < m->flash_size && m->flash[c->app_offset] == 0xe9) {
		m->mode = M_APP;
		m->env->log(m->env, "boot: application (image header at 0x%x)",
			    (unsigned)c->app_offset);
		if (m->app[0] && m->env->bridge) {
			if (m->env->bridge(m->env, m->app, 115200) == 0) {
				m->bridged = 1;
				m->env->log(m->env, "app: console bridged to %s", m->app);
			}
		}
		return;
	}
	m->mode = M_INVALID;
	m->invalid_count = 0;
	m->env->log(m->env, "boot: invalid header at 0x%x (0x%02x)", (unsigned)c->app_offset,
		    c->app_offset < m->flash_size ? m->flash[c->app_offset] : 0xff);
	m->invalid_at = m->env->now_ms() + 1;
	arm_timer(m);
}

static void print_invalid(struct esp *m)
{
	uint32_t hdr = m->chip->app_offset + 4 <= m->flash_size ? rd32(m->flash + m->chip->app_offset)
								   : 0xffffffffu;
	char line[96];
	snprintf(line, sizeof line, "invalid header: 0x%08x\r\n", (unsigned)hdr);
	out_text(m, line, m->chip->boot_baud);
	if (++m->invalid_count < 10)
		m->invalid_at = m->env->now_ms() + 1000;
	else
		m->invalid_at = 0;
}

/* ---- flash ---- */
static void erase(struct esp *m, uint32_t addr, uint32_t size)
{
	uint32_t a = addr / SECTOR * SECTOR;
	uint64_t end = ((uint64_t)addr + size + SECTOR - 1) / SECTOR * SECTOR;
	if (end > m->flash_size)
		end = m->flash_size;
	if (a < end)
		memset(m->flash + a, 0xff, (size_t)(end - a));
	m->env->log(m->env, "erase 0x%x..0x%llx", (unsigned)a, (unsigned long long)end);
}

/* Program bytes at m->f_ptr; 0 or a ROM error code. */
static uint8_t program(struct esp *m, const uint8_t *p, size_t n)
{
	if ((uint64_t)m->f_ptr + n > m->flash_size)
		return 0x08;
	for (size_t i = 0; i < n; i++) {
		uint8_t *f = &m->flash[m->f_ptr + i];
		*f &= p[i];
		if (*f != p[i]) {
			m->env->log(m->env, "flash write error at 0x%x: wrote 0x%02x over erased? "
				    "read back 0x%02x", (unsigned)(m->f_ptr + i), p[i], *f);
			return 0x08;
		}
	}
	m->f_ptr += (uint32_t)n;
	return 0;
}

static void cmd_begin(struct esp *m, uint8_t op, const uint8_t *d, size_t len)
{
	size_t want = m->chip->enc_word ? 20 : 16;
	if (len != want && !(m->chip->enc_word && len == 16)) {
		reply(m, op, 0, NULL, 0, 0x05, 0);
		return;
	}
	if (op == 0x10 && !m->chip->deflate) {
		reply(m, op, 0, NULL, 0, 0x05, 0);
		return;
	}
	uint32_t size = rd32(d), blocks = rd32(d + 4), bs = rd32(d + 8), addr = rd32(d + 12);
	if (bs == 0 || bs > 0x4000 || addr >= m->flash_size) {
		reply(m, op, 0, NULL, 0, 0x06, 0);
		return;
	}
	if (!strcmp(m->chip->name, "esp8266")) {
		/* The ROM erases `size` rounded to sectors, but twice the head when
		 * that stays inside the first 64 KiB block (esptool compensates). */
		uint32_t r = (size + SECTOR - 1) / SECTOR;
		uint32_t head = 16 - (addr / SECTOR) % 16;
		uint32_t n = r <= head ? 2 * r : r + head;
		erase(m, addr, n * SECTOR);
	} else {
		erase(m, addr, size);
	}
	m->flashing = 1;
	m->defl = op == 0x10;
	m->f_addr = addr;
	m->f_blocks = blocks;
	m->f_bs = bs;
	m->f_seq = 0;
	m->f_ptr = addr;
	m->f_have_last = 0;
	if (m->zs_live)
		inflateEnd(&m->zs);
	m->zs_live = 0;
	if (m->defl) {
		memset(&m->zs, 0, sizeof m->zs);
		m->zs_live = inflateInit(&m->zs) == Z_OK;
	}
	m->env->log(m->env, "%s 0x%x size 0x%x blocks %u of 0x%x", m->defl ? "defl_begin" : "begin",
		    (unsigned)addr, (unsigned)size, (unsigned)blocks, (unsigned)bs);
	reply(m, op, 0, NULL, 0, 0, m->slow_erase_ms);
}

static void cmd_data(struct esp *m, uint8_t op, const uint8_t *d, size_t len, uint32_t chk)
{
	long nth = ++m->data_frames;
	if (!m->flashing || (op == 0x11) != m->defl || len < 16) {
		reply(m, op, 0, NULL, 0, 0x06, 0);
		return;
	}
	uint32_t dlen = rd32(d), seq = rd32(d + 4);
	const uint8_t *p = d + 16;
	size_t n = len - 16;
	if (dlen != n) {
		reply(m, op, 0, NULL, 0, 0x05, 0);
		return;
	}
	uint8_t c = 0xef;
	for (size_t i = 0; i < n; i++)
		c ^= p[i];
	if (nth == m->corrupt_n) {
		m->env->log(m->env, "fault: corrupted data frame %ld (seq %u)", nth, (unsigned)seq);
		c ^= 0x5a;
	}
	if (c != chk) {
		m->env->log(m->env, "checksum error seq %u", (unsigned)seq);
		reply(m, op, 0, NULL, 0, 0x07, 0);
		return;
	}
	if (m->f_have_last && seq + 1 == m->f_seq && chk == m->f_last_chk) {
		m->env->log(m->env, "seq %u again: acknowledged, not rewritten", (unsigned)seq);
		reply(m, op, 0, NULL, 0, 0, 0);
		return;
	}
	if (seq != m->f_seq || seq >= m->f_blocks) {
		m->env->log(m->env, "sequence error: got %u, expected %u", (unsigned)seq,
			    (unsigned)m->f_seq);
		reply(m, op, 0, NULL, 0, 0x06, 0);
		return;
	}
	uint8_t err = 0;
	if (!m->defl) {
		if (n != m->f_bs)
			err = 0x05;
		else
			err = program(m, p, n);
	} else if (!m->zs_live) {
		err = 0x0b;
	} else {
		uint8_t buf[4096];
		m->zs.next_in = (Bytef *)(uintptr_t)p;
		m->zs.avail_in = (uInt)n;
		while (!err) {
			m->zs.next_out = buf;
			m->zs.avail_out = sizeof buf;
			int zr = inflate(&m->zs, Z_NO_FLUSH);
			size_t got = sizeof buf - m->zs.avail_out;
			if (got)
				err = program(m, buf, got);
			if (zr == Z_STREAM_END || (zr == Z_BUF_ERROR && !m->zs.avail_in) ||
			    (zr == Z_OK && !m->zs.avail_in && m->zs.avail_out))
				break;
			if (zr == Z_DATA_ERROR)
				err = m->zs.msg && strstr(m->zs.msg, "check") ? 0x0c : 0x0b;
			else if (zr != Z_OK && zr != Z_BUF_ERROR)
				err = 0x0b;
		}
	}
	if (err) {
		reply(m, op, 0, NULL, 0, err, 0);
		return;
	}
	m->f_seq++;
	m->f_last_chk = chk;
	m->f_have_last = 1;
	reply(m, op, 0, NULL, 0, 0, 0);
}

static void cmd_md5(struct esp *m, const uint8_t *d, size_t len)
{
	if (!m->chip->md5 || len != 16) {
		reply(m, 0x13, 0, NULL, 0, 0x05, 0);
		return;
	}
	uint32_t addr = rd32(d), size = rd32(d + 4);
	if ((uint64_t)addr + size > m->flash_size) {
		reply(m, 0x13, 0, NULL, 0, 0x09, 0);
		return;
	}
	uint8_t h[16];
	char hex[33];
	md5_of(m->flash + addr, size, h);
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	m->env->log(m->env, "md5 0x%x+0x%x = %s", (unsigned)addr, (unsigned)size, hex);
	reply(m, 0x13, 0, hex, 32, 0, 0);
}

static void command(struct esp *m, const uint8_t *f, size_t n)
{
	if (n < 8 || f[0] != 0)
		return; /* not a request: ignored */
	uint8_t op = f[1];
	size_t len = (size_t)f[2] | (size_t)f[3] << 8;
	uint32_t chk = rd32(f + 4);
	const uint8_t *d = f + 8;
	if (len != n - 8) {
		reply(m, op, 0, NULL, 0, 0x05, 0);
		return;
	}
	static const uint8_t sync_data[4] = { 0x07, 0x07, 0x12, 0x20 };
	switch (op) {
	case 0x08: {
		int ok = len == 36 && !memcmp(d, sync_data, 4);
		for (size_t i = 4; ok && i < 36; i++)
			ok = d[i] == 0x55;
		if (!ok) {
			reply(m, op, 0, NULL, 0, 0x05, 0);
			return;
		}
		if (!m->synced)
			m->env->log(m->env, "sync at %u baud", m->baud);
		m->synced = 1;
		for (int i = 0; i < 8; i++)
			reply(m, op, 0x20120707u, NULL, 0, 0, 0);
		return;
	}
	case 0x0a:
		if (len != 4) {
			reply(m, op, 0, NULL, 0, 0x05, 0);
			return;
		}
		reply(m, op, rd32(d) == 0x40001000u ? m->chip->magic : 0, NULL, 0, 0, 0);
		return;
	case 0x14: {
		if (m->chip->chip_id < 0) {
			reply(m, op, 0, NULL, 0, 0x05, 0);
			return;
		}
		uint8_t info[20] = { 0 };
		wr32(info + 12, (uint32_t)m->chip->chip_id);
		reply(m, op, 0, info, sizeof info, 0, 0);
		return;
	}
	case 0x0d:
		reply(m, op, 0, NULL, 0, (len == 8 || len == 4) ? 0 : 0x05, 0);
		return;
	case 0x0b:
		reply(m, op, 0, NULL, 0, len == 24 ? 0 : 0x05, 0);
		return;
	case 0x0f: {
		if (len != 8) {
			reply(m, op, 0, NULL, 0, 0x05, 0);
			return;
		}
		uint32_t nb = rd32(d);
		reply(m, op, 0, NULL, 0, 0, 0); /* at the old rate ... */
		m->baud = nb;                    /* ... then the UART switches */
		m->env->log(m->env, "change_baudrate %u", (unsigned)nb);
		return;
	}
	case 0x02:
	case 0x10:
		cmd_begin(m, op, d, len);
		return;
	case 0x03:
	case 0x11:
		cmd_data(m, op, d, len, chk);
		return;
	case 0x04:
	case 0x12: {
		int run = len >= 4 && rd32(d) == 0;
		m->flashing = 0;
		reply(m, op, 0, NULL, 0, 0, 0);
		if (run) { /* ROM: leave the loader and boot */
			m->env->log(m->env, "flash_end: reboot");
			boot(m, 0);
		}
		return;
	}
	case 0x13:
		cmd_md5(m, d, len);
		return;
	default:
		reply(m, op, 0, NULL, 0, 0x05, 0);
		return;
	}
}

static void rx_byte(struct esp *m, uint8_t b)
{
	if (!m->in_frame) {
		if (b == 0xc0) {
			m->in_frame = 1;
			m->flen = 0;
			m->esc = 0;
			m->bad = 0;
		}
		return; /* the ROM ignores bytes between frames */
	}
	if (m->esc) {
		m->esc = 0;
		if (b != 0xdc && b != 0xdd) {
			m->bad = 1; /* strict: a bad escape spoils the frame */
			return;
		}
		b = b == 0xdc ? 0xc0 : 0xdb;
	} else if (b == 0xdb) {
		m->esc = 1;
		return;
	} else if (b == 0xc0) {
		m->in_frame = 0;
		if (m->bad) {
			m->env->log(m->env, "frame with a bad SLIP escape dropped");
			return;
		}
		if (m->flen)
			command(m, m->frame, m->flen);
		else
			m->in_frame = 1; /* C0 C0: the second starts a frame */
		return;
	}
	if (m->flen >= sizeof m->frame) {
		m->bad = 1;
		return;
	}
	m->frame[m->flen++] = b;
}

/* ---- the model interface ---- */
static void esp_lines(void *mp, int dtr, int rts)
{
	struct esp *m = mp;
	m->env->log(m->env, "lines dtr=%d rts=%d", dtr, rts);
	int pdtr = m->dtr, prts = m->rts;
	m->dtr = dtr;
	m->rts = rts;
	if (m->usb_jtag) {
		if (dtr && !rts)
			m->jtag_strap = 1;
		if (!dtr && rts && pdtr && prts) { /* (1,1) -> (0,1): chip reset */
			m->jtag_in_reset = 1;
			enter_reset(m);
		} else if (!dtr && rts && !m->jtag_in_reset && !(pdtr == 0 && prts == 1)) {
			m->jtag_in_reset = 1; /* a plain RTS pulse (hard reset) */
			m->jtag_strap = 0;
			enter_reset(m);
		} else if (m->jtag_in_reset && !rts) {
			m->jtag_in_reset = 0;
			int dl = m->jtag_strap;
			m->jtag_strap = 0;
			boot(m, dl);
		} else if (!dtr && !rts) {
			m->jtag_strap = 0;
		}
		return;
	}
	int en = !(rts && !dtr);
	if (!en) {
		m->en_high = 0;
		enter_reset(m);
	} else if (!m->en_high) {
		m->en_high = 1;
		m->en_rise_at = m->env->now_ms() + EN_RC_MS;
		arm_timer(m);
	}
}

static void esp_timer(void *mp)
{
	struct esp *m = mp;
	long long now = m->env->now_ms();
	if (m->en_rise_at && now >= m->en_rise_at) {
		m->en_rise_at = 0;
		int gpio0_low = m->dtr && !m->rts;
		boot(m, gpio0_low);
	}
	if (m->held_at && now >= m->held_at) {
		m->held_at = 0;
		slip_send(m, m->held, m->held_len);
	}
	if (m->invalid_at && now >= m->invalid_at && m->mode == M_INVALID)
		print_invalid(m);
	arm_timer(m);
}

static void esp_rx(void *mp, const uint8_t *buf, size_t len, unsigned rx_baud)
{
	struct esp *m = mp;
	if (m->mode != M_DOWNLOAD || m->held_at)
		return; /* in reset, running an app (not bridged), or busy erasing */
	if (!m->usb_jtag && rx_baud != m->baud) {
		if (!m->synced) {
			m->env->log(m->env, "autobaud: %u", rx_baud);
			m->baud = rx_baud;
		} else {
			m->env->log(m->env, "%zu bytes at %u baud, UART at %u: garbage", len, rx_baud,
				    m->baud);
			for (size_t i = 0; i < len; i++)
				rx_byte(m, (uint8_t)(buf[i] * 0x3bu + 0x11u));
			return;
		}
	}
	for (size_t i = 0; i < len; i++)
		rx_byte(m, buf[i]);
}

static void esp_open(void *mp)
{
	struct esp *m = mp;
	m->env->log(m->env, "open");
}

static void esp_close(void *mp)
{
	struct esp *m = mp;
	m->env->log(m->env, "close");
}

static void esp_baud(void *mp, unsigned b)
{
	struct esp *m = mp;
	m->env->log(m->env, "client baud %u", b);
}

static void esp_dump(void *mp, const char *dir, const char *dev)
{
	struct esp *m = mp;
	char path[1024];
	snprintf(path, sizeof path, "%s/%s.flash", dir, dev);
	FILE *f = fopen(path, "wb");
	if (!f)
		return;
	if (fwrite(m->flash, 1, m->flash_size, f) != m->flash_size)
		m->env->log(m->env, "dump: short write to %s", path);
	fclose(f);
}

static void esp_destroy(void *mp)
{
	struct esp *m = mp;
	if (!m)
		return;
	if (m->zs_live)
		inflateEnd(&m->zs);
	free(m->flash);
	free(m);
}

static void *esp_create(const char *args, struct ssim_env *env, struct ssim_usb_id *id, char *err,
			size_t errlen)
{
	char chip[32] = "esp32", usb[16] = "";
	ssim_arg(args, "chip", chip, sizeof chip);
	ssim_arg(args, "usb", usb, sizeof usb);
	const struct esp_chip_model *c = NULL;
	for (size_t i = 0; chip_models[i].name; i++)
		if (!strcmp(chip_models[i].name, chip))
			c = &chip_models[i];
	if (!c) {
		snprintf(err, errlen, "esp: chip=%s: use esp32, esp32s3 or esp8266", chip);
		return NULL;
	}
	long fs = ssim_arg_long(args, "flash", 4L << 20);
	if (fs < 0x10000 || fs > (64L << 20) || fs % SECTOR) {
		snprintf(err, errlen, "esp: flash=%ld: 64 KiB..64 MiB in whole 4 KiB sectors", fs);
		return NULL;
	}
	struct esp *m = calloc(1, sizeof *m);
	if (!m || !(m->flash = malloc((size_t)fs))) {
		free(m);
		snprintf(err, errlen, "esp: out of memory");
		return NULL;
	}
	memset(m->flash, 0xff, (size_t)fs);
	m->flash_size = (size_t)fs;
	m->env = env;
	m->chip = c;
	m->usb_jtag = !strcmp(usb, "jtag");
	ssim_arg(args, "app", m->app, sizeof m->app);
	m->drop_n = ssim_arg_long(args, "drop", 0);
	m->corrupt_n = ssim_arg_long(args, "corrupt", 0);
	m->slow_erase_ms = ssim_arg_long(args, "slow_erase", 0);
	m->junk = (int)ssim_arg_long(args, "junk", 0);
	if (m->usb_jtag) {
		m->id = (struct ssim_usb_id){ .vid = 0x303a, .pid = 0x1001, .has_tty = 1 };
		snprintf(m->id.manufacturer, sizeof m->id.manufacturer, "Espressif");
		snprintf(m->id.product, sizeof m->id.product, "USB JTAG/serial debug unit");
		snprintf(m->id.serial, sizeof m->id.serial, "F4:12:FA:00:00:01");
	} else {
		m->id = (struct ssim_usb_id){ .vid = 0x10c4, .pid = 0xea60, .has_tty = 1,
					      .usb_uart = 1 };
		snprintf(m->id.manufacturer, sizeof m->id.manufacturer, "Silicon Labs");
		snprintf(m->id.product, sizeof m->id.product, "CP2102 USB to UART Bridge Controller");
		snprintf(m->id.serial, sizeof m->id.serial, "0001");
	}
	ssim_ident_args(&m->id, args);
	*id = m->id;
	/* Powered up with the lines idle: the chip runs what its flash holds. */
	m->en_high = 1;
	m->baud = 115200;
	m->mode = M_APP;
	return m;
}

const struct ssim_model_ops ssim_model_esp = {
	.name = "esp",
	.help = "ESP32/ESP32-S3/ESP8266 ROM loader: chip=esp32|esp32s3|esp8266, usb=jtag, "
		"flash=BYTES, app=SOCK, drop=N, corrupt=N, slow_erase=MS, junk=1",
	.create = esp_create,
	.open = esp_open,
	.close = esp_close,
	.baud = esp_baud,
	.lines = esp_lines,
	.rx = esp_rx,
	.timer = esp_timer,
	.dump = esp_dump,
	.destroy = esp_destroy,
};
