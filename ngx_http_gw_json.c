
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: a JSON (RFC 8259) validator for bytes from elsewhere
 *
 *   A state machine over the bytes with an explicit stack of the open
 *   containers (one byte each, NGX_HTTP_GW_JSON_MAX_DEPTH of them): no
 *   allocation, no recursion, one pass.  Strings must be valid UTF-8
 *   (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF)
 *   without control characters; escapes are the eight of RFC 8259 and
 *   \uXXXX.  Numbers follow the grammar, their size is not limited.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_gw_json.h"


static u_char *ngx_http_gw_json_space(u_char *p, u_char *last);
static u_char *ngx_http_gw_json_string(u_char *p, u_char *last);
static u_char *ngx_http_gw_json_utf8(u_char *p, u_char *last);
static u_char *ngx_http_gw_json_number(u_char *p, u_char *last);
static u_char *ngx_http_gw_json_literal(u_char *p, u_char *last);


ngx_int_t
ngx_http_gw_json_validate(u_char *p, size_t len, const char **err,
    size_t *offset)
{
    u_char       *start, *last, *q, closing;
    u_char        stack[NGX_HTTP_GW_JSON_MAX_DEPTH];
    const char   *reason;
    ngx_uint_t    depth;
    enum {
        sw_value = 0,
        sw_after_value,
        sw_member
    } state;

    start = p;
    last = p + len;
    depth = 0;
    state = sw_value;

    for ( ;; ) {

        p = ngx_http_gw_json_space(p, last);

        switch (state) {

        case sw_value:

            if (p == last) {
                reason = "unexpected end";
                goto invalid;
            }

            if (*p == '{' || *p == '[') {

                if (depth == NGX_HTTP_GW_JSON_MAX_DEPTH) {
                    reason = "nested too deep";
                    goto invalid;
                }

                closing = (*p == '{') ? '}' : ']';
                stack[depth++] = closing;

                p = ngx_http_gw_json_space(p + 1, last);

                if (p < last && *p == closing) {
                    p++;
                    depth--;
                    state = sw_after_value;
                    break;
                }

                state = (closing == '}') ? sw_member : sw_value;
                break;
            }

            if (*p == '"') {
                q = ngx_http_gw_json_string(p, last);

            } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
                q = ngx_http_gw_json_number(p, last);

            } else {
                q = ngx_http_gw_json_literal(p, last);
            }

            if (q == NULL) {
                reason = "invalid value";
                goto invalid;
            }

            p = q;
            state = sw_after_value;
            break;

        case sw_after_value:

            if (depth == 0) {

                if (p != last) {
                    reason = "bytes after the value";
                    goto invalid;
                }

                return NGX_OK;
            }

            if (p == last) {
                reason = "unexpected end";
                goto invalid;
            }

            if (*p == ',') {
                p++;
                state = (stack[depth - 1] == '}') ? sw_member : sw_value;
                break;
            }

            if (*p == stack[depth - 1]) {
                p++;
                depth--;
                break;
            }

            reason = "unexpected byte";
            goto invalid;

        case sw_member:

            if (p == last) {
                reason = "unexpected end";
                goto invalid;
            }

            if (*p != '"') {
                reason = "member name expected";
                goto invalid;
            }

            q = ngx_http_gw_json_string(p, last);
            if (q == NULL) {
                reason = "invalid member name";
                goto invalid;
            }

            p = ngx_http_gw_json_space(q, last);

            if (p == last) {
                reason = "unexpected end";
                goto invalid;
            }

            if (*p != ':') {
                reason = "colon expected";
                goto invalid;
            }

            p++;
            state = sw_value;
            break;
        }
    }

invalid:

    if (err) {
        *err = reason;
    }

    if (offset) {
        *offset = p - start;
    }

    return NGX_DECLINED;
}


static u_char *
ngx_http_gw_json_space(u_char *p, u_char *last)
{
    while (p < last
           && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    {
        p++;
    }

    return p;
}


/* p is at the opening quote; returns the byte after the closing one */

static u_char *
ngx_http_gw_json_string(u_char *p, u_char *last)
{
    ngx_uint_t  i;

    for (p++; p < last; /* void */) {

        if (*p == '"') {
            return p + 1;
        }

        if (*p < 0x20) {
            return NULL;
        }

        if (*p >= 0x80) {
            p = ngx_http_gw_json_utf8(p, last);
            if (p == NULL) {
                return NULL;
            }

            continue;
        }

        if (*p != '\\') {
            p++;
            continue;
        }

        if (++p == last) {
            return NULL;
        }

        switch (*p) {

        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p++;
            break;

        case 'u':
            if (last - p < 5) {
                return NULL;
            }

            for (i = 1; i < 5; i++) {
                if (!((p[i] >= '0' && p[i] <= '9')
                      || ((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'f')))
                {
                    return NULL;
                }
            }

            p += 5;
            break;

        default:
            return NULL;
        }
    }

    return NULL;
}


/* one UTF-8 sequence of 2 to 4 bytes at p (RFC 3629, table 3-7 of Unicode) */

static u_char *
ngx_http_gw_json_utf8(u_char *p, u_char *last)
{
    u_char      c, lo, hi;
    ngx_uint_t  n, i;

    c = *p;
    lo = 0x80;
    hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 1;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 2;

        if (c == 0xe0) {
            lo = 0xa0;              /* no overlong forms */

        } else if (c == 0xed) {
            hi = 0x9f;              /* no surrogates */
        }

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 3;

        if (c == 0xf0) {
            lo = 0x90;              /* no overlong forms */

        } else if (c == 0xf4) {
            hi = 0x8f;              /* nothing above U+10FFFF */
        }

    } else {
        return NULL;
    }

    if ((size_t) (last - p) <= n) {
        return NULL;
    }

    if (p[1] < lo || p[1] > hi) {
        return NULL;
    }

    for (i = 2; i <= n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return NULL;
        }
    }

    return p + n + 1;
}


/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */

static u_char *
ngx_http_gw_json_number(u_char *p, u_char *last)
{
    u_char  *q;

    if (*p == '-') {
        p++;
    }

    if (p == last || *p < '0' || *p > '9') {
        return NULL;
    }

    if (*p++ != '0') {
        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < last && *p == '.') {
        q = ++p;

        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }

        if (p == q) {
            return NULL;
        }
    }

    if (p < last && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < last && (*p == '+' || *p == '-')) {
            p++;
        }

        q = p;

        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }

        if (p == q) {
            return NULL;
        }
    }

    return p;
}


static u_char *
ngx_http_gw_json_literal(u_char *p, u_char *last)
{
    size_t  n;

    n = last - p;

    if (n >= 4 && ngx_strncmp(p, "true", 4) == 0) {
        return p + 4;
    }

    if (n >= 5 && ngx_strncmp(p, "false", 5) == 0) {
        return p + 5;
    }

    if (n >= 4 && ngx_strncmp(p, "null", 4) == 0) {
        return p + 4;
    }

    return NULL;
}
