/* serialsim: USB identity from model arguments (vid=, pid=, serial=,
 * manufacturer=, product=) over a model's defaults. */
#ifndef SSIM_MODEL_IDENT_H
#define SSIM_MODEL_IDENT_H

#include <stdio.h>
#include <string.h>

#include "ssim.h"

static inline void ssim_ident_args(struct ssim_usb_id *id, const char *args)
{
	id->vid = (unsigned)ssim_arg_long(args, "vid", (long)id->vid);
	id->pid = (unsigned)ssim_arg_long(args, "pid", (long)id->pid);
	ssim_arg(args, "serial", id->serial, sizeof id->serial);
	ssim_arg(args, "manufacturer", id->manufacturer, sizeof id->manufacturer);
	ssim_arg(args, "product", id->product, sizeof id->product);
}

#endif
