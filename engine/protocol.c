/* engine/protocol.c: frame and field encoding of engine/protocol.h, compiled into the engine and the
 * extension alike. */
#include "engine/protocol.h"

#include <string.h>

void pgi_reader_init(PgiReader *r, const void *data, size_t len)
{
    r->pos = (const uint8_t *) data;
    r->end = r->pos + len;
}

bool pgi_next_field(PgiReader *r, uint16_t *tag, const uint8_t **data, uint32_t *len)
{
    uint32_t n;

    if ((size_t) (r->end - r->pos) < PGI_FIELD_HEADER)
        return false;
    memcpy(tag, r->pos, 2);
    memcpy(&n, r->pos + 2, 4);
    if ((size_t) (r->end - r->pos) - PGI_FIELD_HEADER < n)
        return false;
    *data = r->pos + PGI_FIELD_HEADER;
    *len = n;
    r->pos += PGI_FIELD_HEADER + (size_t) n;
    return true;
}

bool pgi_reader_ok(const PgiReader *r)
{
    return r->pos == r->end;
}

void pgi_put_field_header(uint8_t *dst, uint16_t tag, uint32_t len)
{
    memcpy(dst, &tag, 2);
    memcpy(dst + 2, &len, 4);
}

void pgi_put_frame_header(uint8_t *dst, uint8_t type, uint32_t body_len)
{
    uint32_t n = body_len + 1;

    memcpy(dst, &n, 4);
    dst[4] = type;
}

bool pgi_get_frame_header(const uint8_t *src, uint8_t *type, uint32_t *body_len)
{
    uint32_t n;

    memcpy(&n, src, 4);
    *type = src[4];
    *body_len = n == 0 ? 0 : n - 1;
    return n != 0 && n - 1 <= PGI_MAX_FRAME;
}

bool pgi_field_i64(const uint8_t *data, uint32_t len, int64_t *out)
{
    if (len != 8)
        return false;
    memcpy(out, data, 8);
    return true;
}

bool pgi_field_f64(const uint8_t *data, uint32_t len, double *out)
{
    if (len != 8)
        return false;
    memcpy(out, data, 8);
    return true;
}
