
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: W3C Trace Context and plain trace id parsing (see the header).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_gw_trace_context.h"


static ngx_int_t ngx_http_gw_tc_state_key(u_char *p, size_t len);
static ngx_int_t ngx_http_gw_tc_state_value(u_char *p, size_t len);


/*
 * W3C Trace Context traceparent, as a Level 2 intermediary parses it:
 * surrounding blanks ignored; version 2 lowercase hex, "ff" invalid;
 * version 00 exactly 55 characters; a higher version at least 55, with a
 * "-" after the flags when longer, its unknown fields ignored; lowercase
 * hex only; all-zero trace-id or parent-id invalid.
 */

ngx_int_t
ngx_http_gw_tc_parse_traceparent(u_char *p, size_t len,
    ngx_http_gw_tc_parent_t *tp)
{
    u_char  version;

    ngx_http_gw_tc_trim(&p, &len);

    if (len < NGX_HTTP_GW_TC_TRACEPARENT_LEN) {
        return NGX_DECLINED;
    }

    if (ngx_http_gw_tc_hex(p, 1, &version) != NGX_OK
        || version == 0xff
        || p[2] != '-' || p[35] != '-' || p[52] != '-')
    {
        return NGX_DECLINED;
    }

    if (len > NGX_HTTP_GW_TC_TRACEPARENT_LEN
        && (version == 0x00 || p[NGX_HTTP_GW_TC_TRACEPARENT_LEN] != '-'))
    {
        return NGX_DECLINED;
    }

    if (ngx_http_gw_tc_hex(p + 3, 16, tp->trace_id) != NGX_OK
        || ngx_http_gw_tc_hex(p + 36, 8, tp->parent_id) != NGX_OK
        || ngx_http_gw_tc_hex(p + 53, 1, &tp->flags) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_gw_tc_is_zero(tp->trace_id, 16)
        || ngx_http_gw_tc_is_zero(tp->parent_id, 8))
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * tracestate headers combined in order.  Any invalid or duplicate member
 * discards the whole list (invalid state is never propagated); empty
 * members are skipped; the first 32 members are kept; beyond 512
 * characters, members over 128 characters go first, then members from the
 * end, always whole.  The result is joined with "," and no blanks.
 */

ngx_int_t
ngx_http_gw_tc_parse_tracestate(ngx_str_t *values, ngx_uint_t n,
    ngx_http_gw_tc_state_t *ts)
{
    u_char      *p, *last, *start, *end, *eq, *o;
    u_char      *mkey[NGX_HTTP_GW_TC_STATE_MEMBERS];
    size_t       raw, total;
    size_t       klen[NGX_HTTP_GW_TC_STATE_MEMBERS];
    size_t       mlen[NGX_HTTP_GW_TC_STATE_MEMBERS];
    ngx_uint_t   i, j, k, m;
    ngx_uint_t   drop[NGX_HTTP_GW_TC_STATE_MEMBERS];

    ts->nmembers = 0;
    ts->len = 0;

    raw = 0;

    for (i = 0; i < n; i++) {
        raw += values[i].len;
    }

    if (raw > NGX_HTTP_GW_TC_STATE_RAW_MAX) {
        return NGX_DECLINED;
    }

    m = 0;

    for (i = 0; i < n; i++) {

        p = values[i].data;
        last = p + values[i].len;

        while (p <= last) {

            start = p;
            end = ngx_strlchr(p, last, ',');
            if (end == NULL) {
                end = last;
            }

            p = end + 1;

            while (start < end && (*start == ' ' || *start == '\t')) {
                start++;
            }

            while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
                end--;
            }

            if (start == end) {
                continue;
            }

            eq = ngx_strlchr(start, end, '=');
            if (eq == NULL) {
                return NGX_DECLINED;
            }

            if (ngx_http_gw_tc_state_key(start, eq - start) != NGX_OK
                || ngx_http_gw_tc_state_value(eq + 1, end - eq - 1)
                   != NGX_OK)
            {
                return NGX_DECLINED;
            }

            if (m == NGX_HTTP_GW_TC_STATE_MEMBERS) {
                /* capped: whole members beyond the 32nd are dropped */
                continue;
            }

            for (j = 0; j < m; j++) {
                if (klen[j] == (size_t) (eq - start)
                    && ngx_strncmp(mkey[j], start, klen[j]) == 0)
                {
                    return NGX_DECLINED;
                }
            }

            mkey[m] = start;
            klen[m] = eq - start;
            mlen[m] = end - start;
            drop[m] = 0;
            m++;
        }
    }

    total = 0;

    for (j = 0; j < m; j++) {
        total += mlen[j] + (j ? 1 : 0);
    }

    /* first pass drops large members from the end, second pass any */

    for (k = 0; k < 2 && total > NGX_HTTP_GW_TC_STATE_MAX; k++) {

        for (j = m; j-- > 0 && total > NGX_HTTP_GW_TC_STATE_MAX; /* void */)
        {
            if (drop[j]
                || (k == 0 && mlen[j] <= NGX_HTTP_GW_TC_STATE_LARGE))
            {
                continue;
            }

            drop[j] = 1;
            total -= mlen[j] + 1;
        }
    }

    o = ts->data;

    for (j = 0; j < m; j++) {
        if (drop[j]) {
            continue;
        }

        if (o != ts->data) {
            *o++ = ',';
        }

        o = ngx_cpymem(o, mkey[j], mlen[j]);
        ts->nmembers++;
    }

    ts->len = o - ts->data;

    return NGX_OK;
}


/*
 * key = simple-key / multi-tenant-key
 * simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-" / "*" / "/" )
 * multi-tenant-key = tenant-id "@" system-id
 * tenant-id = ( lcalpha / DIGIT ) 0*240( lcalpha / DIGIT / "_" / "-" / ... )
 * system-id = lcalpha 0*13( lcalpha / DIGIT / "_" / "-" / "*" / "/" )
 */

static ngx_int_t
ngx_http_gw_tc_state_key(u_char *p, size_t len)
{
    u_char  c, *at;
    size_t  i;

    if (len == 0 || len > 256) {
        return NGX_DECLINED;
    }

    at = NULL;

    for (i = 0; i < len; i++) {
        c = p[i];

        if (c == '@') {
            if (at != NULL) {
                return NGX_DECLINED;
            }

            at = &p[i];
            continue;
        }

        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
            || c == '_' || c == '-' || c == '*' || c == '/')
        {
            continue;
        }

        return NGX_DECLINED;
    }

    if (at == NULL) {
        return (p[0] >= 'a' && p[0] <= 'z') ? NGX_OK : NGX_DECLINED;
    }

    /* tenant-id 1..241 characters, system-id 1..14 starting with a letter */

    if (at == p || at - p > 241) {
        return NGX_DECLINED;
    }

    len -= at - p + 1;

    if (len == 0 || len > 14 || at[1] < 'a' || at[1] > 'z') {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* value = 0*255( %x20 / nblk-chr ) nblk-chr, nblk-chr = %x21-7E but , = */

static ngx_int_t
ngx_http_gw_tc_state_value(u_char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > 256 || p[len - 1] == ' ') {
        return NGX_DECLINED;
    }

    for (i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] > 0x7e || p[i] == ',' || p[i] == '=') {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/*
 * The plain trace id: surrounding blanks ignored, then 1..128 characters
 * of [A-Za-z0-9._-].  A UUID (8-4-4-4-12 hex digits) or 32 hex digits, in
 * either case, is the W3C trace-id itself; any other id maps onto one
 * deterministically (two 64-bit FNV-1a hashes, then mixed), so every
 * gateway that sees the same id names the same trace.  All-zero ids are
 * invalid, as in traceparent.
 */

ngx_int_t
ngx_http_gw_tc_parse_id(u_char *p, size_t len, u_char *id)
{
    u_char    c, hex[32];
    size_t    i, n;
    uint64_t  h1, h2;

    ngx_http_gw_tc_trim(&p, &len);

    if (len == 0 || len > NGX_HTTP_GW_TC_ID_MAX) {
        return NGX_DECLINED;
    }

    for (i = 0; i < len; i++) {
        c = p[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')
        {
            continue;
        }

        return NGX_DECLINED;
    }

    n = 0;

    if (len == 36 && p[8] == '-' && p[13] == '-' && p[18] == '-'
        && p[23] == '-')
    {
        for (i = 0; i < len; i++) {
            if (i != 8 && i != 13 && i != 18 && i != 23) {
                hex[n++] = ngx_tolower(p[i]);
            }
        }

    } else if (len == 32) {
        for (i = 0; i < len; i++) {
            hex[n++] = ngx_tolower(p[i]);
        }
    }

    if (n == 32 && ngx_http_gw_tc_hex(hex, 16, id) == NGX_OK) {
        return ngx_http_gw_tc_is_zero(id, 16) ? NGX_DECLINED : NGX_OK;
    }

    h1 = 0xcbf29ce484222325ULL;
    h2 = 0x84222325cbf29ce4ULL;

    for (i = 0; i < len; i++) {
        h1 = (h1 ^ p[i]) * 0x100000001b3ULL;
        h2 = (h2 ^ p[len - 1 - i]) * 0x100000001b3ULL;
    }

    /* the splitmix64 finalizer spreads the FNV state over all bits */

    for (i = 0; i < 2; i++) {
        h1 ^= h1 >> 30;
        h1 *= 0xbf58476d1ce4e5b9ULL;
        h1 ^= h1 >> 27;
        h1 *= 0x94d049bb133111ebULL;
        h1 ^= h1 >> 31;
        h1 += h2;
        h2 ^= h1;
    }

    for (i = 0; i < 8; i++) {
        id[i] = (u_char) (h1 >> (56 - 8 * i));
        id[8 + i] = (u_char) (h2 >> (56 - 8 * i));
    }

    if (ngx_http_gw_tc_is_zero(id, 16)) {
        id[15] = 1;
    }

    return NGX_OK;
}


/* n bytes from 2n lowercase hex digits */

ngx_int_t
ngx_http_gw_tc_hex(u_char *p, size_t n, u_char *bin)
{
    u_char  c, v;
    size_t  i;

    for (i = 0; i < 2 * n; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            v = c - '0';

        } else if (c >= 'a' && c <= 'f') {
            v = c - 'a' + 10;

        } else {
            return NGX_DECLINED;
        }

        if (i & 1) {
            bin[i / 2] |= v;

        } else {
            bin[i / 2] = (u_char) (v << 4);
        }
    }

    return NGX_OK;
}


ngx_uint_t
ngx_http_gw_tc_is_zero(u_char *p, size_t len)
{
    while (len--) {
        if (*p++) {
            return 0;
        }
    }

    return 1;
}


void
ngx_http_gw_tc_trim(u_char **p, size_t *len)
{
    while (*len && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*len)--;
    }

    while (*len && ((*p)[*len - 1] == ' ' || (*p)[*len - 1] == '\t')) {
        (*len)--;
    }
}
