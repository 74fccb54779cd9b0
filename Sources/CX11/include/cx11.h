#ifndef CX11_H
#define CX11_H

#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <X11/Xatom.h>
#include <X11/extensions/XShm.h>
#include <X11/extensions/XTest.h>
#include <X11/extensions/Xdamage.h>
#include <X11/extensions/Xfixes.h>
#include <sys/ipc.h>
#include <sys/shm.h>

/* Xlib's macros and function-pointer members, as functions Swift can call. */
void cx_x_destroy_image(XImage *image);
unsigned long cx_x_get_pixel(XImage *image, int x, int y);
/* Xlib's default error handler exits the process; this one records the error code instead
   (BadMatch from XShmGetImage, say) for cx_x_take_error. */
void cx_x_install_error_handler(void);
int cx_x_take_error(void);

#endif
