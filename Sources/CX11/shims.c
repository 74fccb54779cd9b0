#include "cx11.h"
#include <stdatomic.h>

void cx_x_destroy_image(XImage *image) {
    XDestroyImage(image);
}

static _Atomic int last_error = 0;

static int record_error(Display *display, XErrorEvent *event) {
    (void)display;
    atomic_store(&last_error, event->error_code);
    return 0;
}

void cx_x_install_error_handler(void) {
    XSetErrorHandler(record_error);
}

int cx_x_take_error(void) {
    return atomic_exchange(&last_error, 0);
}

unsigned long cx_x_get_pixel(XImage *image, int x, int y) {
    return XGetPixel(image, x, y);
}
