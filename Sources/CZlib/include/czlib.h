#ifndef CZLIB_H
#define CZLIB_H

#include <zlib.h>

/* deflateInit and inflateInit are macros that pass the library version. */
int cx_deflate_init(z_stream *stream, int level);
int cx_inflate_init(z_stream *stream);

#endif
