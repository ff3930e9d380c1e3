
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: W3C Trace Context and plain trace id parsing (see the header).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <openssl/evp.h>

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

    tp->text = p;

    return NGX_OK;
}


/*
 * tracestate, W3C Trace Context Level 2.  Header lines are combined in
 * order, as one list (RFC 9110): ngx_http_gw_tc_tracestate_add() takes
 * one line at a time, ngx_http_gw_tc_tracestate_done() ends the list.
 *
 * Members are trimmed of blanks; empty members are skipped and not
 * counted.  An invalid member (key or value syntax, lengths) or more than
 * 32 members invalidates the whole list, which is then discarded (invalid
 * state is never propagated).  Duplicate keys are valid and kept as sent.
 * Only the first 8192 bytes of the combined value (lines joined with ",")
 * are parsed: a member that does not end within them is ignored, with
 * everything after it, and the members parsed are then truncated like any
 * other list.  Beyond 512 characters, members over 128 characters are
 * removed first, from the end, then other members from the end, always
 * whole.  The result is joined with "," and no blanks.
 */

void
ngx_http_gw_tc_tracestate_init(ngx_http_gw_tc_state_t *ts)
{
    ts->nmembers = 0;
    ts->raw = 0;
    ts->len = 0;
    ts->lines = 0;
    ts->invalid = 0;
    ts->full = 0;
}


void
ngx_http_gw_tc_tracestate_add(ngx_http_gw_tc_state_t *ts, u_char *p,
    size_t len)
{
    u_char  *last, *bound, *start, *end, *eq;
    size_t   avail;

    if (ts->invalid || ts->full) {
        return;
    }

    /* the "," that joins this line to the previous ones */

    if (ts->lines) {
        ts->raw++;
    }

    ts->lines = 1;

    if (ts->raw >= NGX_HTTP_GW_TC_STATE_RAW_MAX) {
        ts->full = 1;
        return;
    }

    avail = NGX_HTTP_GW_TC_STATE_RAW_MAX - ts->raw;
    last = p + len;
    bound = (len > avail) ? p + avail : last;

    ts->raw += len;

    for ( ;; ) {

        start = p;
        end = ngx_strlchr(p, last, ',');
        if (end == NULL) {
            end = last;
        }

        if (end > bound) {
            ts->full = 1;
            return;
        }

        p = end;

        while (start < end && (*start == ' ' || *start == '\t')) {
            start++;
        }

        while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
            end--;
        }

        if (start < end) {

            eq = ngx_strlchr(start, end, '=');

            if (eq == NULL
                || ngx_http_gw_tc_state_key(start, eq - start) != NGX_OK
                || ngx_http_gw_tc_state_value(eq + 1, end - eq - 1)
                   != NGX_OK
                || ts->nmembers == NGX_HTTP_GW_TC_STATE_MEMBERS)
            {
                ts->invalid = 1;
                return;
            }

            ts->member[ts->nmembers] = start;
            ts->mlen[ts->nmembers] = end - start;
            ts->nmembers++;
        }

        if (p == last) {
            break;
        }

        p++;
    }

    if (len > avail) {
        ts->full = 1;
    }
}


ngx_int_t
ngx_http_gw_tc_tracestate_done(ngx_http_gw_tc_state_t *ts)
{
    u_char      *o;
    size_t       total;
    ngx_uint_t   j, k, m, kept;
    u_char       drop[NGX_HTTP_GW_TC_STATE_MEMBERS];

    if (ts->invalid) {
        ts->nmembers = 0;
        ts->len = 0;
        return NGX_DECLINED;
    }

    m = ts->nmembers;
    total = 0;

    for (j = 0; j < m; j++) {
        total += ts->mlen[j] + (j ? 1 : 0);
        drop[j] = 0;
    }

    /* first pass drops large members from the end, second pass any */

    for (k = 0; k < 2 && total > NGX_HTTP_GW_TC_STATE_MAX; k++) {

        for (j = m; j-- > 0 && total > NGX_HTTP_GW_TC_STATE_MAX; /* void */)
        {
            if (drop[j]
                || (k == 0 && ts->mlen[j] <= NGX_HTTP_GW_TC_STATE_LARGE))
            {
                continue;
            }

            drop[j] = 1;
            total -= ts->mlen[j] + 1;
        }
    }

    o = ts->data;
    kept = 0;

    for (j = 0; j < m; j++) {
        if (drop[j]) {
            continue;
        }

        if (o != ts->data) {
            *o++ = ',';
        }

        o = ngx_cpymem(o, ts->member[j], ts->mlen[j]);
        kept++;
    }

    ts->nmembers = kept;
    ts->len = o - ts->data;

    return NGX_OK;
}


/*
 * key = ( lcalpha / DIGIT ) 0*255( keychar )
 * keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"
 */

static ngx_int_t
ngx_http_gw_tc_state_key(u_char *p, size_t len)
{
    u_char  c;
    size_t  i;

    if (len == 0 || len > 256) {
        return NGX_DECLINED;
    }

    for (i = 0; i < len; i++) {
        c = p[i];

        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            continue;
        }

        if (i > 0
            && (c == '_' || c == '-' || c == '*' || c == '/' || c == '@'))
        {
            continue;
        }

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
 * either case, is the W3C trace-id itself; any other id maps onto the
 * first 16 bytes of the SHA-256 digest of its characters, so every hop
 * that sees the same id names the same trace (README: "the plain id
 * mapping").  All-zero ids are invalid, as in traceparent.
 */

ngx_int_t
ngx_http_gw_tc_parse_id(u_char *p, size_t len, u_char *id)
{
    u_char        c, hex[32], md[EVP_MAX_MD_SIZE];
    size_t        i, n;
    unsigned int  mdlen;

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

    if (EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL) != 1) {
        return NGX_ERROR;
    }

    ngx_memcpy(id, md, 16);

    /* a digest of 16 zero bytes is as invalid as an all-zero id */

    return ngx_http_gw_tc_is_zero(id, 16) ? NGX_DECLINED : NGX_OK;
}


/*
 * Sampling a share of new traces, the same decision on every hop: a trace
 * is sampled when its last 7 bytes, a big-endian number R (the random part
 * of a W3C Level 2 trace-id), are below the threshold
 * floor(ratio * 2^56 / 10000), "ratio" in hundredths of a percent.
 */

uint64_t
ngx_http_gw_tc_ratio_threshold(ngx_uint_t ratio)
{
    uint64_t  q, r;

    q = ((uint64_t) 1 << 56) / 10000;
    r = ((uint64_t) 1 << 56) % 10000;

    return q * ratio + r * ratio / 10000;
}


ngx_uint_t
ngx_http_gw_tc_ratio_sampled(u_char *trace_id, uint64_t threshold)
{
    uint64_t    v;
    ngx_uint_t  i;

    v = 0;

    for (i = 9; i < 16; i++) {
        v = v << 8 | trace_id[i];
    }

    return v < threshold;
}


/*
 * n bytes from 2n lowercase hex digits, by table: every other byte has
 * the high bits set, so one test at the end finds any of them
 */

static u_char  ngx_http_gw_tc_hex_value[256] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,     /* 0-7 */
    0x08, 0x09, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,     /* 8-9 */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0xff,     /* a-f */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
};


ngx_int_t
ngx_http_gw_tc_hex(u_char *p, size_t n, u_char *bin)
{
    u_char  hi, lo, bad;
    size_t  i;

    bad = 0;

    for (i = 0; i < n; i++) {
        hi = ngx_http_gw_tc_hex_value[p[2 * i]];
        lo = ngx_http_gw_tc_hex_value[p[2 * i + 1]];

        bad |= hi | lo;
        bin[i] = (u_char) (hi << 4 | lo);
    }

    return (bad & 0xf0) ? NGX_DECLINED : NGX_OK;
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
