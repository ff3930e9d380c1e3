
/*
 * Copyright (C) nginx-gw authors
 *
 * libFuzzer harness for ngx_http_gw_metrics_core.c: the label sanitizer,
 * the Accept header negotiation, and the whole path from hostile label
 * bytes through a zone to both expositions, whose output is then checked
 * by an independent reader, with creators "killed" between the steps that
 * make a series visible (the zone must then still be whole).  The first
 * input byte picks the target.
 * Linked with that unit and fuzz/ngx_shim.c only: a call into nginx's
 * HTTP code fails the link.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <ctype.h>

#include "ngx_http_gw_metrics_core.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define FUZZ_UNPOISON(p, n)  ASAN_UNPOISON_MEMORY_REGION(p, n)
#endif
#endif

#ifndef FUZZ_UNPOISON
#define FUZZ_UNPOISON(p, n)
#endif

#define FUZZ_ARENA  (24 * 1024)


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/* UTF-8 as RFC 3629 defines it, written apart from the module's decoder */

static int
fuzz_utf8_ok(const u_char *p, size_t len)
{
    size_t    i, n, k;
    uint32_t  c;

    for (i = 0; i < len; i += n) {

        if (p[i] < 0x80) {
            n = 1;
            continue;
        }

        if (p[i] >= 0xc2 && p[i] <= 0xdf) {
            n = 2;
            c = p[i] & 0x1f;

        } else if (p[i] >= 0xe0 && p[i] <= 0xef) {
            n = 3;
            c = p[i] & 0x0f;

        } else if (p[i] >= 0xf0 && p[i] <= 0xf4) {
            n = 4;
            c = p[i] & 0x07;

        } else {
            return 0;
        }

        if (i + n > len) {
            return 0;
        }

        for (k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return 0;
            }

            c = (c << 6) | (p[i + k] & 0x3f);
        }

        if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000)
            || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        {
            return 0;
        }
    }

    return 1;
}


static void
fuzz_sanitize(const u_char *data, size_t size)
{
    size_t  n, m, max;
    u_char  out[NGX_HTTP_GW_METRICS_LABEL_MAX], again[sizeof(out)];

    max = size ? 1 + data[0] % sizeof(out) : sizeof(out);

    n = ngx_http_gw_metrics_sanitize(out, max, (u_char *) data, size);

    if (n > max || !fuzz_utf8_ok(out, n)) {
        abort();
    }

    /* valid and short enough: untouched */

    if (size <= max && fuzz_utf8_ok(data, size)
        && (n != size || memcmp(out, data, n) != 0))
    {
        abort();
    }

    /* sanitized text is a fixed point */

    m = ngx_http_gw_metrics_sanitize(again, max, out, n);

    if (m != n || memcmp(again, out, n) != 0) {
        abort();
    }
}


static int
fuzz_names(const u_char *data, size_t size, const char *name)
{
    size_t  i, n;

    n = strlen(name);

    for (i = 0; i + n <= size; i++) {
        if (strncasecmp((char *) data + i, name, n) == 0) {
            return 1;
        }
    }

    return 0;
}


static void
fuzz_negotiate(const u_char *data, size_t size)
{
    ngx_uint_t                    format;
    ngx_http_gw_metrics_accept_t  a;

    a.om = -1;
    a.text = -1;
    a.html = -1;

    (void) ngx_http_gw_metrics_negotiate((u_char *) data,
                                         (u_char *) data + size, &a);

    if (a.om < -1 || a.om > 1000 || a.text < -1 || a.text > 1000
        || a.html < -1 || a.html > 1000)
    {
        abort();
    }

    /* OpenMetrics and the page only when asked for by name */

    if (a.om != -1 && !fuzz_names(data, size, "openmetrics-")) {
        abort();
    }

    if (a.html != -1 && !fuzz_names(data, size, "text/html")) {
        abort();
    }

    format = ngx_http_gw_metrics_format(&a);

    switch (format) {

    case NGX_HTTP_GW_METRICS_HTML:
        if (a.html <= 0 || a.html <= a.text || a.html <= a.om) {
            abort();
        }
        break;

    case NGX_HTTP_GW_METRICS_OPENMETRICS:
        if (a.om <= 0 || a.om < a.text || a.html > a.om) {
            abort();
        }
        break;

    case NGX_HTTP_GW_METRICS_TEXT:
        if ((a.om > 0 && a.om >= a.text)
            || (a.html > 0 && a.html > a.text && a.html > a.om))
        {
            abort();
        }
        break;

    default:
        abort();
    }
}


/*
 * Reads an exposition the way a scraper would and aborts on anything a
 * Prometheus parser could reject: lines end in LF, the text is UTF-8,
 * samples are name{label="value",...} number, values use only the
 * escapes \\ \" \n, buckets are cumulative and +Inf equals _count.
 */

static void
fuzz_check_output(ngx_str_t *out, ngx_uint_t format)
{
    size_t      nlen;
    u_char     *p, *end, *line, *eol;
    uint64_t    v, last_bucket, inf;
    ngx_uint_t  in_bucket, eof;

    p = out->data;
    end = p + out->len;

    if (out->len == 0 || end[-1] != '\n' || !fuzz_utf8_ok(p, out->len)) {
        abort();
    }

    last_bucket = 0;
    inf = 0;
    in_bucket = 0;
    eof = 0;

    for (line = p; line < end; line = eol + 1) {

        eol = memchr(line, '\n', end - line);

        if (eof) {
            abort();                  /* nothing after # EOF */
        }

        if (*line == '#') {
            if (eol - line == 5 && memcmp(line, "# EOF", 5) == 0) {
                eof = 1;
            }

            continue;
        }

        p = line;

        while (p < eol && (isalnum(*p) || *p == '_' || *p == ':')) {
            p++;
        }

        if (p == line) {
            abort();
        }

        nlen = p - line;

        if (p < eol && *p == '{') {
            p++;

            while (p < eol && *p != '}') {

                while (p < eol && (isalnum(*p) || *p == '_')) {
                    p++;
                }

                if (p + 1 >= eol || p[0] != '=' || p[1] != '"') {
                    abort();
                }

                for (p += 2; p < eol && *p != '"'; p++) {
                    if (*p == '\\') {
                        p++;

                        if (p == eol || (*p != '\\' && *p != '"' && *p != 'n'))
                        {
                            abort();
                        }
                    }
                }

                if (p == eol) {
                    abort();
                }

                p++;

                if (p < eol && *p == ',') {
                    p++;
                }
            }

            if (p == eol) {
                abort();
            }

            p++;
        }

        if (p == eol || *p++ != ' ' || p == eol) {
            abort();
        }

        v = 0;

        for ( /* void */ ; p < eol && *p != '.'; p++) {
            if (*p < '0' || *p > '9') {
                abort();
            }

            v = v * 10 + (*p - '0');
        }

        /*
         * cumulative buckets; "_count" repeats the +Inf bucket.  Names, not
         * label values, tell the kind: ",le=\"+Inf\"" cannot occur inside a
         * value, whose double quotes are escaped.
         */

        if (nlen > 7 && memcmp(line + nlen - 7, "_bucket", 7) == 0) {
            if (in_bucket && v < last_bucket) {
                abort();
            }

            in_bucket = 1;
            last_bucket = v;

            if (memmem(line, eol - line, ",le=\"+Inf\"}", 11) != NULL) {
                inf = v;
                in_bucket = 0;
            }

        } else if (nlen > 6 && memcmp(line + nlen - 6, "_count", 6) == 0) {
            if (v != inf) {
                abort();
            }
        }
    }

    if ((format == NGX_HTTP_GW_METRICS_OPENMETRICS) != eof) {
        abort();
    }
}


/*
 * The state a worker killed while creating "s" leaves behind, after one of
 * the steps of ngx_http_gw_metrics_get(): 1 before counting it, 2 with the
 * family list's last series pointing to it but not yet its tail, 3 before
 * publishing it in the hash table, 4 before clearing "pending".  The next
 * creation must finish it.
 */

static void
fuzz_crash(ngx_http_gw_metrics_shctx_t *sh, ngx_http_gw_metrics_series_t *s,
    ngx_uint_t crash)
{
    ngx_uint_t                     i;
    ngx_http_gw_metrics_list_t    *list;
    ngx_http_gw_metrics_series_t  *prev;

    if (crash < 1 || crash > 4 || (s->flags & NGX_HTTP_GW_METRICS_OVERFLOW)) {
        return;
    }

    list = &sh->families[s->family];

    if (list->tail != s || sh->pending) {
        abort();
    }

    sh->pending = s;
    sh->pending_nseries = sh->nseries;

    if (crash == 4) {
        return;
    }

    /* s was pushed onto the front of its chain */

    i = s->hash & sh->mask;

    if (sh->table[i] != s) {
        abort();
    }

    sh->table[i] = s->next;

    if (crash == 3) {
        return;
    }

    for (prev = list->head; prev && prev->link != s; prev = prev->link) {
        /* void */
    }

    list->tail = prev;

    if (crash == 2) {
        return;
    }

    if (prev) {
        prev->link = NULL;

    } else {
        list->head = NULL;
    }

    sh->nseries--;
}


/*
 * No creation pending, every listed series once in its family list and
 * reachable in its hash chain, no label set twice, the count right.
 */

static void
fuzz_check_zone(ngx_http_gw_metrics_shctx_t *sh)
{
    ngx_uint_t                     f, n;
    ngx_http_gw_metrics_series_t  *s, *t, *c;

    if (sh->pending) {
        abort();
    }

    n = 0;

    for (f = 0; f < NGX_HTTP_GW_METRICS_NFAMILIES; f++) {

        if ((sh->families[f].head == NULL) != (sh->families[f].tail == NULL))
        {
            abort();
        }

        for (s = sh->families[f].head; s; s = s->link) {
            n++;

            if (s->family != f || (s->link == NULL
                                   && s != sh->families[f].tail))
            {
                abort();
            }

            for (c = sh->table[s->hash & sh->mask]; c != s; c = c->next) {
                if (c == NULL) {
                    abort();
                }
            }

            for (t = s->link; t; t = t->link) {
                if (t->method == s->method && t->status == s->status
                    && t->len == s->len
                    && memcmp(t->label, s->label, s->len) == 0)
                {
                    abort();
                }
            }
        }
    }

    if (n != sh->nseries) {
        abort();
    }
}


static void
fuzz_zone(const u_char *data, size_t size)
{
    u_char                         *arena;
    size_t                          n;
    uint64_t                        bounds[NGX_HTTP_GW_METRICS_BUCKETS_MAX];
    ngx_log_t                       log;
    ngx_str_t                       out;
    ngx_uint_t                      i, nb, f;
    ngx_pool_t                     *pool;
    ngx_slab_pool_t                *shpool;
    ngx_http_gw_metrics_key_t       key;
    ngx_http_gw_metrics_stats_t     st;
    ngx_http_gw_metrics_shctx_t    *sh;
    ngx_http_gw_metrics_series_t   *s;
    ngx_uint_t                      crash;
    ngx_atomic_t                    nseries;
    u_char                          label[NGX_HTTP_GW_METRICS_LABEL_MAX];

    if (size < 2) {
        return;
    }

    /* buckets from the first byte, bound values up to 2^40 us */

    nb = data[0] % (NGX_HTTP_GW_METRICS_BUCKETS_MAX + 1);

    for (i = 0; i < nb; i++) {
        bounds[i] = (i ? bounds[i - 1] : 0) + 1
                    + ((uint64_t) (data[1] * (i + 7)) << (i % 30));
    }

    arena = malloc(FUZZ_ARENA);
    if (arena == NULL) {
        return;
    }

    memset(arena, 0, sizeof(ngx_slab_pool_t));
    shpool = (ngx_slab_pool_t *) arena;
    shpool->start = arena + sizeof(ngx_slab_pool_t);
    shpool->end = arena + FUZZ_ARENA;
    shpool->log_ctx = (u_char *) "";

    memset(&log, 0, sizeof(ngx_log_t));

    sh = ngx_http_gw_metrics_create_sh(shpool, nb, bounds,
                                       1 + data[1] % 64, FUZZ_ARENA);
    if (sh == NULL) {
        goto done;
    }

    /*
     * records: family, method, status (2 bytes), label length, label,
     * observation (3 bytes, microseconds)
     */

    data += 2;
    size -= 2;

    while (size >= 5) {
        key.family = data[0] % NGX_HTTP_GW_METRICS_NFAMILIES;
        crash = data[0] / NGX_HTTP_GW_METRICS_NFAMILIES % 8;
        key.method = data[1] % NGX_HTTP_GW_METRICS_NMETHODS;
        key.status = (data[2] << 8 | data[3]) % 1000;
        n = data[4];

        data += 5;
        size -= 5;

        if (n > size) {
            n = size;
        }

        key.label.data = label;
        key.label.len = ngx_http_gw_metrics_sanitize(label, sizeof(label),
                                                     (u_char *) data, n);
        data += n;
        size -= n;

        nseries = sh->nseries;

        s = ngx_http_gw_metrics_get(sh, shpool, &key, &log);

        if (s == NULL || s->family != key.family) {
            abort();
        }

        if (sh->nseries != nseries) {
            fuzz_crash(sh, s, crash);
        }

        f = ngx_http_gw_metrics_families[key.family].type;

        if (f == NGX_HTTP_GW_METRICS_HISTOGRAM) {
            ngx_http_gw_metrics_observe(sh, s,
                              size >= 3 ? (uint64_t) (data[0] << 16
                                                      | data[1] << 8
                                                      | data[2]) : 0);
        } else {
            (void) ngx_atomic_fetch_add(&s->value[0], 1);
        }

        if (size >= 3) {
            data += 3;
            size -= 3;
        }
    }

    /*
     * a key no record makes (their statuses are below 1000): a miss, so
     * the lock and the recovery of anything still pending
     */

    key.family = NGX_HTTP_GW_METRICS_UPSTREAM;
    key.method = NGX_HTTP_GW_METRICS_METHOD_NONE;
    key.status = 1000;
    ngx_str_set(&key.label, "recover");

    (void) ngx_http_gw_metrics_get(sh, shpool, &key, &log);

    fuzz_check_zone(sh);

    if (sh->nseries > sh->max_series) {
        abort();
    }

    ngx_memzero(&st, sizeof(ngx_http_gw_metrics_stats_t));
    st.auth = 1;
    st.ratelimit = 1;
    st.connections = 1;
    st.accepted = (ngx_atomic_uint_t) -1;

    for (f = 0; f < 2; f++) {
        pool = ngx_create_pool(1024, &log);
        if (pool == NULL) {
            break;
        }

        if (ngx_http_gw_metrics_render(pool, sh, &st, f, &out) != NGX_OK) {
            abort();                  /* only on a sizing bug */
        }

        fuzz_check_output(&out, f);

        ngx_destroy_pool(pool);
    }

done:

    FUZZ_UNPOISON(arena, FUZZ_ARENA);
    free(arena);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ngx_time_t  now;

    if (size == 0) {
        return 0;
    }

    ngx_cached_time = &now;

    switch (data[0] % 3) {

    case 0:
        fuzz_sanitize(data + 1, size - 1);
        break;

    case 1:
        fuzz_negotiate(data + 1, size - 1);
        break;

    default:
        fuzz_zone(data + 1, size - 1);
    }

    return 0;
}
