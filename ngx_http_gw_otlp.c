
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: OTLP encoding and the collector's response head (see the
 * header).  Protobuf wire format: a tag is (field << 3 | wire type), wire
 * types 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32; integers are
 * little-endian.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_gw_otlp.h"


#define NGX_HTTP_GW_OTLP_VARINT         0
#define NGX_HTTP_GW_OTLP_FIXED64        1
#define NGX_HTTP_GW_OTLP_LEN            2
#define NGX_HTTP_GW_OTLP_FIXED32        5

#define ngx_http_gw_otlp_tag(field, type)  (u_char) ((field) << 3 | (type))


static size_t ngx_http_gw_otlp_varint_size(uint64_t v);
static u_char *ngx_http_gw_otlp_varint(u_char *p, uint64_t v);
static u_char *ngx_http_gw_otlp_fixed(u_char *p, uint64_t v, ngx_uint_t n);
static size_t ngx_http_gw_otlp_field_size(size_t len);
static u_char *ngx_http_gw_otlp_bytes(u_char *p, ngx_uint_t field,
    u_char *data, size_t len);
static ngx_uint_t ngx_http_gw_otlp_ascii(u_char *p, size_t len);
static size_t ngx_http_gw_otlp_scan(ngx_str_t *s, ngx_uint_t *clean);
static u_char *ngx_http_gw_otlp_string(u_char *p, ngx_uint_t field,
    ngx_str_t *s, size_t len, ngx_uint_t clean);
static size_t ngx_http_gw_otlp_kv_size(ngx_http_gw_otlp_attr_t *a);
static size_t ngx_http_gw_otlp_any_size(ngx_http_gw_otlp_attr_t *a);
static u_char *ngx_http_gw_otlp_kv_write(u_char *p, ngx_uint_t field,
    ngx_http_gw_otlp_attr_t *a);
static size_t ngx_http_gw_otlp_span_body_size(ngx_http_gw_otlp_span_t *span);
static size_t ngx_http_gw_otlp_utf8_seq(u_char *p, u_char *last);


static size_t
ngx_http_gw_otlp_varint_size(uint64_t v)
{
    size_t  n;

    for (n = 1; v >= 0x80; n++) {
        v >>= 7;
    }

    return n;
}


static u_char *
ngx_http_gw_otlp_varint(u_char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (u_char) (v | 0x80);
        v >>= 7;
    }

    *p++ = (u_char) v;

    return p;
}


static u_char *
ngx_http_gw_otlp_fixed(u_char *p, uint64_t v, ngx_uint_t n)
{
    while (n--) {
        *p++ = (u_char) v;
        v >>= 8;
    }

    return p;
}


/* a length-delimited field of a field number below 16: tag, length, data */

static size_t
ngx_http_gw_otlp_field_size(size_t len)
{
    return 1 + ngx_http_gw_otlp_varint_size(len) + len;
}


static u_char *
ngx_http_gw_otlp_bytes(u_char *p, ngx_uint_t field, u_char *data, size_t len)
{
    *p++ = ngx_http_gw_otlp_tag(field, NGX_HTTP_GW_OTLP_LEN);
    p = ngx_http_gw_otlp_varint(p, len);

    return ngx_cpymem(p, data, len);
}


/* whether the bytes are all ASCII, eight at a time */

static ngx_uint_t
ngx_http_gw_otlp_ascii(u_char *p, size_t len)
{
    u_char    *last;
    uint64_t   w, m;

    last = p + len;
    m = 0;

    if (len < 8) {
        while (p < last) {
            m |= *p++;
        }

        return m < 0x80;
    }

    /* whole words, the last one overlapping the one before */

    while (last - p > 8) {
        ngx_memcpy(&w, p, 8);
        m |= w;
        p += 8;
    }

    ngx_memcpy(&w, last - 8, 8);
    m |= w;

    return (m & 0x8080808080808080ULL) == 0;
}


/*
 * The length written for s (as ngx_http_gw_otlp_utf8_len()), and whether
 * those bytes are valid UTF-8 already, to be copied as they are.  Most of
 * what a span holds is short ASCII, which needs no walk.
 */

static size_t
ngx_http_gw_otlp_scan(ngx_str_t *s, ngx_uint_t *clean)
{
    u_char      *p, *last;
    size_t       n, len;
    ngx_uint_t   bad;

    *clean = 1;

    if (s->len <= NGX_HTTP_GW_OTLP_STR_MAX
        && ngx_http_gw_otlp_ascii(s->data, s->len))
    {
        return s->len;
    }

    p = s->data;
    last = s->data + s->len;
    len = 0;

    while (p < last) {
        bad = 0;

        if (*p < 0x80) {
            n = 1;

        } else {
            n = ngx_http_gw_otlp_utf8_seq(p, last);

            if (n == 0) {
                n = 1;
                bad = 1;
            }
        }

        if (len + n > NGX_HTTP_GW_OTLP_STR_MAX) {
            break;
        }

        if (bad) {
            *clean = 0;
        }

        len += n;
        p += n;
    }

    return len;
}


static u_char *
ngx_http_gw_otlp_string(u_char *p, ngx_uint_t field, ngx_str_t *s,
    size_t len, ngx_uint_t clean)
{
    u_char  *src, *last, *end;
    size_t   n;

    *p++ = ngx_http_gw_otlp_tag(field, NGX_HTTP_GW_OTLP_LEN);
    p = ngx_http_gw_otlp_varint(p, len);

    if (clean) {
        return ngx_cpymem(p, s->data, len);
    }

    /* the walk of ngx_http_gw_otlp_utf8_len(), copying */

    src = s->data;
    last = s->data + s->len;
    end = p + len;

    while (p < end) {
        n = ngx_http_gw_otlp_utf8_seq(src, last);

        if (n == 0) {
            *p++ = '?';
            src++;
            continue;
        }

        p = ngx_cpymem(p, src, n);
        src += n;
    }

    return p;
}


static size_t
ngx_http_gw_otlp_any_size(ngx_http_gw_otlp_attr_t *a)
{
    ngx_uint_t  clean;

    /* AnyValue { string_value = 1; int_value = 3; } */

    if (a->type == NGX_HTTP_GW_OTLP_INT) {
        return 1 + ngx_http_gw_otlp_varint_size((uint64_t) a->num);
    }

    a->str_len = ngx_http_gw_otlp_scan(&a->str, &clean);
    a->str_clean = clean;

    return ngx_http_gw_otlp_field_size(a->str_len);
}


static size_t
ngx_http_gw_otlp_kv_size(ngx_http_gw_otlp_attr_t *a)
{
    ngx_uint_t  clean;

    /* KeyValue { key = 1; value = 2; } */

    a->key_len = ngx_http_gw_otlp_scan(&a->key, &clean);
    a->key_clean = clean;

    a->size = ngx_http_gw_otlp_field_size(a->key_len)
              + ngx_http_gw_otlp_field_size(ngx_http_gw_otlp_any_size(a));

    return a->size;
}


static u_char *
ngx_http_gw_otlp_kv_write(u_char *p, ngx_uint_t field,
    ngx_http_gw_otlp_attr_t *a)
{
    *p++ = ngx_http_gw_otlp_tag(field, NGX_HTTP_GW_OTLP_LEN);
    p = ngx_http_gw_otlp_varint(p, a->size);

    p = ngx_http_gw_otlp_string(p, 1, &a->key, a->key_len, a->key_clean);

    *p++ = ngx_http_gw_otlp_tag(2, NGX_HTTP_GW_OTLP_LEN);

    if (a->type == NGX_HTTP_GW_OTLP_INT) {
        p = ngx_http_gw_otlp_varint(p, 1 + ngx_http_gw_otlp_varint_size(
                                                        (uint64_t) a->num));
        *p++ = ngx_http_gw_otlp_tag(3, NGX_HTTP_GW_OTLP_VARINT);
        return ngx_http_gw_otlp_varint(p, (uint64_t) a->num);
    }

    p = ngx_http_gw_otlp_varint(p, ngx_http_gw_otlp_field_size(a->str_len));

    return ngx_http_gw_otlp_string(p, 1, &a->str, a->str_len, a->str_clean);
}


/*
 * Span { trace_id = 1; span_id = 2; trace_state = 3; parent_span_id = 4;
 *        name = 5; kind = 6; start_time_unix_nano = 7 (fixed64);
 *        end_time_unix_nano = 8 (fixed64); attributes = 9; status = 15;
 *        flags = 16 (fixed32); }
 * Status { code = 3; }
 */

static size_t
ngx_http_gw_otlp_span_body_size(ngx_http_gw_otlp_span_t *span)
{
    size_t      size;
    ngx_uint_t  i, clean;

    size = ngx_http_gw_otlp_field_size(16) + ngx_http_gw_otlp_field_size(8);

    if (span->trace_state.len) {
        span->state_len = ngx_http_gw_otlp_scan(&span->trace_state, &clean);
        span->state_clean = clean;
        size += ngx_http_gw_otlp_field_size(span->state_len);
    }

    if (span->has_parent) {
        size += ngx_http_gw_otlp_field_size(8);
    }

    span->name_len = ngx_http_gw_otlp_scan(&span->name, &clean);
    span->name_clean = clean;
    size += ngx_http_gw_otlp_field_size(span->name_len);

    size += 1 + ngx_http_gw_otlp_varint_size(span->kind);
    size += 2 * (1 + 8);

    for (i = 0; i < span->nattrs; i++) {
        size += ngx_http_gw_otlp_field_size(
                    ngx_http_gw_otlp_kv_size(&span->attrs[i]));
    }

    if (span->status != NGX_HTTP_GW_OTLP_STATUS_UNSET) {
        size += ngx_http_gw_otlp_field_size(
                    1 + ngx_http_gw_otlp_varint_size(span->status));
    }

    /* field 16 needs a two-byte tag */

    size += 2 + 4;

    return size;
}


size_t
ngx_http_gw_otlp_span_size(ngx_http_gw_otlp_span_t *span)
{
    span->body = ngx_http_gw_otlp_span_body_size(span);

    return ngx_http_gw_otlp_field_size(span->body);
}


u_char *
ngx_http_gw_otlp_span_write(u_char *p, ngx_http_gw_otlp_span_t *span)
{
    ngx_uint_t  i;

    /* ScopeSpans.spans = 2 */

    *p++ = ngx_http_gw_otlp_tag(2, NGX_HTTP_GW_OTLP_LEN);
    p = ngx_http_gw_otlp_varint(p, span->body);

    p = ngx_http_gw_otlp_bytes(p, 1, span->trace_id, 16);
    p = ngx_http_gw_otlp_bytes(p, 2, span->span_id, 8);

    if (span->trace_state.len) {
        p = ngx_http_gw_otlp_string(p, 3, &span->trace_state, span->state_len,
                                    span->state_clean);
    }

    if (span->has_parent) {
        p = ngx_http_gw_otlp_bytes(p, 4, span->parent_id, 8);
    }

    p = ngx_http_gw_otlp_string(p, 5, &span->name, span->name_len,
                                span->name_clean);

    *p++ = ngx_http_gw_otlp_tag(6, NGX_HTTP_GW_OTLP_VARINT);
    p = ngx_http_gw_otlp_varint(p, span->kind);

    *p++ = ngx_http_gw_otlp_tag(7, NGX_HTTP_GW_OTLP_FIXED64);
    p = ngx_http_gw_otlp_fixed(p, span->start, 8);

    *p++ = ngx_http_gw_otlp_tag(8, NGX_HTTP_GW_OTLP_FIXED64);
    p = ngx_http_gw_otlp_fixed(p, span->end, 8);

    for (i = 0; i < span->nattrs; i++) {
        p = ngx_http_gw_otlp_kv_write(p, 9, &span->attrs[i]);
    }

    if (span->status != NGX_HTTP_GW_OTLP_STATUS_UNSET) {
        *p++ = ngx_http_gw_otlp_tag(15, NGX_HTTP_GW_OTLP_LEN);
        p = ngx_http_gw_otlp_varint(p,
                              1 + ngx_http_gw_otlp_varint_size(span->status));
        *p++ = ngx_http_gw_otlp_tag(3, NGX_HTTP_GW_OTLP_VARINT);
        p = ngx_http_gw_otlp_varint(p, span->status);
    }

    /* tag (16 << 3 | 5) as a varint */

    p = ngx_http_gw_otlp_varint(p, 16 << 3 | NGX_HTTP_GW_OTLP_FIXED32);

    return ngx_http_gw_otlp_fixed(p, span->flags, 4);
}


/* Resource { attributes = 1; } */

size_t
ngx_http_gw_otlp_resource_size(ngx_http_gw_otlp_attr_t *attrs, ngx_uint_t n)
{
    size_t      size;
    ngx_uint_t  i;

    size = 0;

    for (i = 0; i < n; i++) {
        size += ngx_http_gw_otlp_field_size(
                    ngx_http_gw_otlp_kv_size(&attrs[i]));
    }

    return size;
}


u_char *
ngx_http_gw_otlp_resource_write(u_char *p, ngx_http_gw_otlp_attr_t *attrs,
    ngx_uint_t n)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        p = ngx_http_gw_otlp_kv_write(p, 1, &attrs[i]);
    }

    return p;
}


/* InstrumentationScope { name = 1; version = 2; } */

size_t
ngx_http_gw_otlp_scope_size(ngx_str_t *name, ngx_str_t *version)
{
    ngx_uint_t  clean;

    return ngx_http_gw_otlp_field_size(ngx_http_gw_otlp_scan(name, &clean))
           + ngx_http_gw_otlp_field_size(ngx_http_gw_otlp_scan(version,
                                                                &clean));
}


u_char *
ngx_http_gw_otlp_scope_write(u_char *p, ngx_str_t *name, ngx_str_t *version)
{
    size_t      len;
    ngx_uint_t  clean;

    len = ngx_http_gw_otlp_scan(name, &clean);
    p = ngx_http_gw_otlp_string(p, 1, name, len, clean);

    len = ngx_http_gw_otlp_scan(version, &clean);

    return ngx_http_gw_otlp_string(p, 2, version, len, clean);
}


/*
 * ExportTraceServiceRequest { resource_spans = 1; }
 * ResourceSpans { resource = 1; scope_spans = 2; }
 * ScopeSpans { scope = 1; spans = 2; }
 */

size_t
ngx_http_gw_otlp_request_size(ngx_str_t *resource, ngx_str_t *scope,
    size_t spans)
{
    size_t  ss, rs;

    ss = ngx_http_gw_otlp_field_size(scope->len) + spans;
    rs = ngx_http_gw_otlp_field_size(resource->len)
         + ngx_http_gw_otlp_field_size(ss);

    /* without the spans themselves */

    return ngx_http_gw_otlp_field_size(rs) - spans;
}


u_char *
ngx_http_gw_otlp_request_write(u_char *p, ngx_str_t *resource,
    ngx_str_t *scope, size_t spans)
{
    size_t  ss, rs;

    ss = ngx_http_gw_otlp_field_size(scope->len) + spans;
    rs = ngx_http_gw_otlp_field_size(resource->len)
         + ngx_http_gw_otlp_field_size(ss);

    *p++ = ngx_http_gw_otlp_tag(1, NGX_HTTP_GW_OTLP_LEN);
    p = ngx_http_gw_otlp_varint(p, rs);

    p = ngx_http_gw_otlp_bytes(p, 1, resource->data, resource->len);

    *p++ = ngx_http_gw_otlp_tag(2, NGX_HTTP_GW_OTLP_LEN);
    p = ngx_http_gw_otlp_varint(p, ss);

    return ngx_http_gw_otlp_bytes(p, 1, scope->data, scope->len);
}


/*
 * The collector's response head: "HTTP/1.x NNN ..." and header lines up
 * to an empty line (CRLF or LF), interim 1xx heads skipped.  Only the
 * status and Retry-After are used; the body is never read.
 */

ngx_int_t
ngx_http_gw_otlp_parse_response(u_char *p, size_t len,
    ngx_http_gw_otlp_response_t *rsp)
{
    u_char      *start, *last, *eol, *e, *colon, *v;
    ngx_uint_t   status;

    start = p;
    last = p + len;

    for ( ;; ) {

        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            return NGX_AGAIN;
        }

        e = (eol > p && eol[-1] == '\r') ? eol - 1 : eol;

        if (e - p < 12
            || ngx_strncmp(p, "HTTP/1.", 7) != 0
            || p[7] < '0' || p[7] > '9' || p[8] != ' '
            || p[9] < '1' || p[9] > '5'
            || p[10] < '0' || p[10] > '9'
            || p[11] < '0' || p[11] > '9'
            || (e - p > 12 && p[12] != ' '))
        {
            return NGX_ERROR;
        }

        status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');

        ngx_str_null(&rsp->retry_after);

        for ( ;; ) {
            p = eol + 1;

            eol = ngx_strlchr(p, last, '\n');
            if (eol == NULL) {
                return NGX_AGAIN;
            }

            e = (eol > p && eol[-1] == '\r') ? eol - 1 : eol;

            if (e == p) {
                break;
            }

            colon = ngx_strlchr(p, e, ':');
            if (colon == NULL || colon == p) {
                return NGX_ERROR;
            }

            if (colon - p == 11
                && ngx_strncasecmp(p, (u_char *) "retry-after", 11) == 0)
            {
                v = colon + 1;

                while (v < e && (*v == ' ' || *v == '\t')) {
                    v++;
                }

                while (e > v && (e[-1] == ' ' || e[-1] == '\t')) {
                    e--;
                }

                rsp->retry_after.data = v;
                rsp->retry_after.len = e - v;
            }
        }

        p = eol + 1;

        if (status >= 200) {
            rsp->status = status;
            rsp->len = p - start;
            return NGX_OK;
        }
    }
}


/*
 * The bytes of a valid UTF-8 sequence at p (RFC 3629: no overlong forms,
 * no surrogates, at most U+10FFFF), or 0.
 */

static size_t
ngx_http_gw_otlp_utf8_seq(u_char *p, u_char *last)
{
    u_char  c, lo, hi;
    size_t  n, i;

    c = p[0];

    if (c < 0x80) {
        return 1;
    }

    lo = 0x80;
    hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;

        if (c == 0xe0) {
            lo = 0xa0;

        } else if (c == 0xed) {
            hi = 0x9f;
        }

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;

        if (c == 0xf0) {
            lo = 0x90;

        } else if (c == 0xf4) {
            hi = 0x8f;
        }

    } else {
        return 0;
    }

    if ((size_t) (last - p) < n) {
        return 0;
    }

    if (p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }

    return n;
}


size_t
ngx_http_gw_otlp_utf8_len(ngx_str_t *s, size_t max)
{
    u_char  *p, *last;
    size_t   n, len;

    p = s->data;
    last = s->data + s->len;
    len = 0;

    while (p < last) {
        n = ngx_http_gw_otlp_utf8_seq(p, last);

        if (n == 0) {
            n = 1;              /* written as "?" */
        }

        if (len + n > max) {
            break;
        }

        len += n;
        p += n;
    }

    return len;
}
