#include "czlib.h"

int cx_deflate_init(z_stream *stream, int level) {
    return deflateInit(stream, level);
}

int cx_inflate_init(z_stream *stream) {
    return inflateInit(stream);
}
