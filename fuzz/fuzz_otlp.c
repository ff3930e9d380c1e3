
/*
 * Copyright (C) nginx-gw authors
 *
 * libFuzzer harness for ngx_http_gw_otlp.c: the parser of the collector's
 * response head (hostile bytes from the network), and the span encoder
 * fed hostile strings (header values, variables) that must come out as
 * valid UTF-8 of bounded length, in exactly the size it announced.  The
 * first byte picks the part.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_gw_otlp.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
fuzz_response(u_char *p, size_t size)
{
    ngx_int_t                    rc;
    ngx_http_gw_otlp_response_t  rsp;

    rc = ngx_http_gw_otlp_parse_response(p, size, &rsp);

    if (rc == NGX_OK) {
        if (rsp.status < 200 || rsp.status > 599 || rsp.len > size) {
            abort();
        }

        if (rsp.retry_after.len
            && (rsp.retry_after.data < p
                || rsp.retry_after.data + rsp.retry_after.len > p + size))
        {
            abort();
        }

    } else if (rc != NGX_AGAIN && rc != NGX_ERROR) {
        abort();
    }
}


/* RFC 3629, written apart from the encoder's own walk */

static int
fuzz_utf8_valid(u_char *p, size_t len)
{
    size_t    i, k, n;
    uint32_t  c;

    for (i = 0; i < len; i += n) {

        if (p[i] < 0x80) {
            n = 1;
            continue;
        }

        if ((p[i] & 0xe0) == 0xc0) {
            n = 2;
            c = p[i] & 0x1f;

        } else if ((p[i] & 0xf0) == 0xe0) {
            n = 3;
            c = p[i] & 0x0f;

        } else if ((p[i] & 0xf8) == 0xf0) {
            n = 4;
            c = p[i] & 0x07;

        } else {
            return 0;
        }

        if (len - i < n) {
            return 0;
        }

        for (k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return 0;
            }

            c = c << 6 | (p[i + k] & 0x3f);
        }

        if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800)
            || (n == 4 && c < 0x10000) || c > 0x10ffff
            || (c >= 0xd800 && c <= 0xdfff))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * A string's length as the encoder counted it is the reference walk's
 * (ngx_http_gw_otlp_utf8_len()), and a string it copies as it is ("clean")
 * is valid UTF-8 up to that length.
 */

static void
fuzz_string(ngx_str_t *s, size_t len, ngx_uint_t clean)
{
    if (len != ngx_http_gw_otlp_utf8_len(s, NGX_HTTP_GW_OTLP_STR_MAX)
        || (clean && !fuzz_utf8_valid(s->data, len)))
    {
        abort();
    }
}


static void
fuzz_span(u_char *p, size_t size)
{
    u_char                   *out, *last;
    size_t                    n, len, i;
    ngx_str_t                 parts[4];
    ngx_http_gw_otlp_span_t   span;
    ngx_http_gw_otlp_attr_t   attrs[2];

    /* four strings: name, tracestate, an attribute key and its value */

    for (i = 0; i < 4; i++) {
        n = (i < 3 && size) ? p[0] % (size + 1) : size;
        if (i < 3 && size) {
            p++;
            size--;
            n = ngx_min(n, size);
        }

        parts[i].data = p;
        parts[i].len = n;
        p += n;
        size -= n;
    }

    ngx_memzero(&span, sizeof(ngx_http_gw_otlp_span_t));

    span.name = parts[0];
    span.trace_state = parts[1];
    span.kind = NGX_HTTP_GW_OTLP_KIND_SERVER;
    span.status = NGX_HTTP_GW_OTLP_STATUS_ERROR;
    span.has_parent = parts[0].len & 1;
    span.flags = 0x301;
    span.start = (uint64_t) -1;

    attrs[0].type = NGX_HTTP_GW_OTLP_STRING;
    attrs[0].key = parts[2];
    attrs[0].str = parts[3];
    attrs[1].type = NGX_HTTP_GW_OTLP_INT;
    attrs[1].key = parts[3];
    attrs[1].num = (int64_t) parts[3].len - 1000;

    span.attrs = attrs;
    span.nattrs = 2;

    len = ngx_http_gw_otlp_span_size(&span);

    fuzz_string(&span.name, span.name_len, span.name_clean);

    if (span.trace_state.len) {
        fuzz_string(&span.trace_state, span.state_len, span.state_clean);
    }

    fuzz_string(&attrs[0].key, attrs[0].key_len, attrs[0].key_clean);
    fuzz_string(&attrs[0].str, attrs[0].str_len, attrs[0].str_clean);
    fuzz_string(&attrs[1].key, attrs[1].key_len, attrs[1].key_clean);

    /* every string is cut at 1024 bytes: the span size is bounded */

    if (len > 6 * (NGX_HTTP_GW_OTLP_STR_MAX + 16) + 256) {
        abort();
    }

    out = malloc(len);
    if (out == NULL) {
        return;
    }

    last = ngx_http_gw_otlp_span_write(out, &span);

    if ((size_t) (last - out) != len) {
        abort();
    }

    for (i = 0; i < 4; i++) {
        n = ngx_http_gw_otlp_utf8_len(&parts[i], NGX_HTTP_GW_OTLP_STR_MAX);
        if (n > parts[i].len || n > NGX_HTTP_GW_OTLP_STR_MAX) {
            abort();
        }
    }

    free(out);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char  *copy;

    if (size < 1) {
        return 0;
    }

    /* an exact-size heap copy, so reads past the end are caught */

    copy = malloc(size - 1 ? size - 1 : 1);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data + 1, size - 1);

    if (data[0] & 1) {
        fuzz_span(copy, size - 1);

    } else {
        fuzz_response(copy, size - 1);
    }

    free(copy);

    return 0;
}
