/* mpfarm: the DFU transport over libusb (runners/dfu_usb.h).
 *
 * The device is found in sysfs (farm/usbdev.h: VID:PID, serial number and
 * bus port path without opening anything), then opened through libusb by
 * its bus number and address; its DFU interface (class FE, subclass 01) is
 * claimed and described: every alternate setting with its iInterface string
 * (the DfuSe memory layout) and the DFU functional descriptor. Each libusb
 * context is private to one open device (no global state). */
#include "dfu_usb.h"

#include <libusb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "le.h"

struct dfu_libusb {
	libusb_context *ctx;
	libusb_device_handle *h;
	int claimed;
	uint8_t intf;
};

static void copy_why(char *why, size_t len, int lu)
{
	if (why && len)
		snprintf(why, len, "%s", libusb_error_name(lu));
}

static int map_err(int lu)
{
	switch (lu) {
	case LIBUSB_ERROR_PIPE:
		return RUNNER_DFU_X_STALL;
	case LIBUSB_ERROR_TIMEOUT:
		return RUNNER_DFU_X_TIMEOUT;
	case LIBUSB_ERROR_NO_DEVICE:
	case LIBUSB_ERROR_NOT_FOUND:
		return RUNNER_DFU_X_GONE;
	default:
		return RUNNER_DFU_X_IO;
	}
}

static int lu_control(void *h, const struct runner_dfu_setup *s, uint8_t *data, size_t *got,
		      unsigned timeout_ms, char *why, size_t why_len)
{
	struct dfu_libusb *l = h;
	uint8_t none[1];
	int n = libusb_control_transfer(l->h, s->type, s->request, s->value, s->index,
					data ? data : none, s->length, timeout_ms);
	if (n < 0) {
		copy_why(why, why_len, n);
		return map_err(n);
	}
	*got = (size_t)n;
	return RUNNER_DFU_X_OK;
}

static int lu_set_alt(void *h, uint8_t alt, char *why, size_t why_len)
{
	struct dfu_libusb *l = h;
	int rc = libusb_set_interface_alt_setting(l->h, l->intf, alt);
	if (rc < 0) {
		copy_why(why, why_len, rc);
		return map_err(rc);
	}
	return RUNNER_DFU_X_OK;
}

static int lu_reset(void *h, char *why, size_t why_len)
{
	struct dfu_libusb *l = h;
	int rc = libusb_reset_device(l->h);
	if (rc < 0 && rc != LIBUSB_ERROR_NOT_FOUND && rc != LIBUSB_ERROR_NO_DEVICE) {
		copy_why(why, why_len, rc);
		return map_err(rc);
	}
	return RUNNER_DFU_X_OK;
}

static void lu_close(void *h)
{
	struct dfu_libusb *l = h;
	if (!l)
		return;
	if (l->claimed)
		libusb_release_interface(l->h, l->intf);
	if (l->h)
		libusb_close(l->h);
	if (l->ctx)
		libusb_exit(l->ctx);
	free(l);
}

static const struct runner_dfu_usb_ops libusb_ops = {
	.control = lu_control,
	.set_alt = lu_set_alt,
	.reset = lu_reset,
	.close = lu_close,
};

int runner_dfu_func_parse(struct runner_dfu_func *out, const uint8_t *extra, size_t len)
{
	size_t off = 0;
	while (off + 2 <= len) {
		uint8_t bl = extra[off], type = extra[off + 1];
		if (bl < 2 || off + bl > len)
			return -1;
		if (type == 0x21 && bl >= 7) {
			out->attributes = extra[off + 2];
			out->detach_timeout_ms = (uint16_t)farm_le16(extra + off + 3);
			out->transfer_size = (uint16_t)farm_le16(extra + off + 5);
			out->bcd_dfu = bl >= 9 ? (uint16_t)farm_le16(extra + off + 7) : 0x0100;
			return 0;
		}
		off += bl;
	}
	return -1;
}

int runner_dfu_find_device(struct farm_usbdev *out, const struct runner_dfu_find *f,
			   struct farm_err *e)
{
	struct farm_usbdev_match m = {
		.vid = f->vid, .pid = f->pid, .serial = f->serial, .location = f->location,
	};
	int rc = farm_usbdev_find(out, &m, e);
	if (rc == FARM_EINVAL) {
		char why[FARM_ERR_MSG_MAX];
		snprintf(why, sizeof why, "%s", e->msg);
		return farm_err_set(e, rc, "DFU device: %.400s (flash.dfu_serial or flash.location)",
				    why);
	}
	if (rc < 0)
		return farm_err_prefix(e, "DFU device");
	return 0;
}

/* The DFU interface of the configuration: its number and alternate settings. */
static int describe(struct runner_dfu_usb *u, struct dfu_libusb *l,
		    const struct libusb_config_descriptor *cfg, struct farm_err *e)
{
	struct runner_dfu_info *info = &u->info;
	int found = 0;
	for (int i = 0; i < cfg->bNumInterfaces && !found; i++) {
		const struct libusb_interface *itf = &cfg->interface[i];
		for (int a = 0; a < itf->num_altsetting; a++) {
			const struct libusb_interface_descriptor *d = &itf->altsetting[a];
			if (d->bInterfaceClass != 0xfe || d->bInterfaceSubClass != 0x01)
				continue;
			if (found && d->bInterfaceNumber != info->intf)
				continue;
			found = 1;
			info->intf = d->bInterfaceNumber;
			info->protocol = d->bInterfaceProtocol;
			if (!info->has_func &&
			    (runner_dfu_func_parse(&info->func, d->extra, (size_t)(d->extra_length > 0 ? d->extra_length : 0)) == 0 ||
			     runner_dfu_func_parse(&info->func, itf->altsetting[0].extra,
						   (size_t)(itf->altsetting[0].extra_length > 0 ? itf->altsetting[0].extra_length : 0)) == 0))
				info->has_func = 1;
			if (info->n_alts >= RUNNER_DFU_MAX_ALTS)
				continue;
			size_t k = info->n_alts++;
			info->alts[k].alt = d->bAlternateSetting;
			info->alts[k].name[0] = '\0';
			if (d->iInterface) {
				unsigned char s[RUNNER_DFU_NAME_MAX];
				int n = libusb_get_string_descriptor_ascii(l->h, d->iInterface, s, sizeof s - 1);
				if (n > 0) {
					s[n] = '\0';
					snprintf(info->alts[k].name, sizeof info->alts[k].name, "%s", (char *)s);
				}
			}
		}
	}
	if (!found)
		return farm_err_set(e, FARM_ENOTFOUND, "%s has no DFU interface (class FE, subclass "
				    "01): it is not a DFU bootloader; check flash.vid_pid", info->what);
	if (!info->has_func && cfg->extra_length > 0 &&
	    runner_dfu_func_parse(&info->func, cfg->extra, (size_t)cfg->extra_length) == 0)
		info->has_func = 1;
	return 0;
}

int runner_dfu_libusb_open(struct runner_dfu_usb *u, const struct farm_usbdev *dev,
			   struct farm_err *e)
{
	memset(u, 0, sizeof *u);
	char what[160];
	farm_usbdev_describe(dev, what, sizeof what);
	snprintf(u->info.what, sizeof u->info.what, "%s", what);
	struct dfu_libusb *l = calloc(1, sizeof *l);
	libusb_device **list = NULL;
	struct libusb_config_descriptor *cfg = NULL;
	int rc = 0;
	if (!l)
		return farm_err_set(e, FARM_ENOMEM, "out of memory");
	int lr = libusb_init(&l->ctx);
	if (lr < 0) {
		rc = farm_err_set(e, FARM_EIO, "libusb: cannot start: %s", libusb_error_name(lr));
		goto out;
	}
	ssize_t n = libusb_get_device_list(l->ctx, &list);
	if (n < 0) {
		rc = farm_err_set(e, FARM_EIO, "libusb: cannot list USB devices: %s",
				  libusb_error_name((int)n));
		goto out;
	}
	libusb_device *found = NULL;
	for (ssize_t i = 0; i < n; i++)
		if (libusb_get_bus_number(list[i]) == dev->busnum &&
		    libusb_get_device_address(list[i]) == dev->devnum)
			found = list[i];
	if (!found) {
		rc = farm_err_set(e, FARM_ENOTFOUND, "%s (bus %u, address %u) is not visible to libusb: "
				  "it left the bus; put the board back into DFU mode", what,
				  dev->busnum, dev->devnum);
		goto out;
	}
	if ((lr = libusb_open(found, &l->h)) < 0) {
		if (lr == LIBUSB_ERROR_ACCESS)
			rc = farm_err_set(e, FARM_ESYS, "cannot open %s (/dev/bus/usb/%03u/%03u): permission "
					  "denied; install ci/udev/70-mpfarm.rules, add this user to "
					  "plugdev and replug the board (`mpfarm doctor` checks)",
					  what, dev->busnum, dev->devnum);
		else
			rc = farm_err_set(e, FARM_EIO, "cannot open %s: %s", what, libusb_error_name(lr));
		goto out;
	}
	if (libusb_get_active_config_descriptor(found, &cfg) < 0 &&
	    (lr = libusb_get_config_descriptor(found, 0, &cfg)) < 0) {
		rc = farm_err_set(e, FARM_EIO, "cannot read the configuration of %s: %s", what,
				  libusb_error_name(lr));
		goto out;
	}
	if ((rc = describe(u, l, cfg, e)) < 0)
		goto out;
	l->intf = u->info.intf;
	libusb_set_auto_detach_kernel_driver(l->h, 1);
	if ((lr = libusb_claim_interface(l->h, l->intf)) < 0) {
		rc = farm_err_set(e, lr == LIBUSB_ERROR_BUSY ? FARM_EBUSY : FARM_EIO,
				  "cannot claim the DFU interface %u of %s: %s%s", (unsigned)l->intf,
				  what, libusb_error_name(lr),
				  lr == LIBUSB_ERROR_BUSY ? " (another program, dfu-util?, holds it)" : "");
		goto out;
	}
	l->claimed = 1;
	u->ops = &libusb_ops;
	u->h = l;
	l = NULL;
out:
	libusb_free_config_descriptor(cfg);
	if (list)
		libusb_free_device_list(list, 1);
	lu_close(l);
	return rc;
}

void runner_dfu_usb_close(struct runner_dfu_usb *u)
{
	if (!u || !u->ops)
		return;
	if (u->ops->close)
		u->ops->close(u->h);
	u->ops = NULL;
	u->h = NULL;
}
