
/*
 * Copyright (C) nginx-gw authors
 *
 * ngx_http_gw_metrics_module's zone of series, label values, Accept
 * negotiation and exposition writer (see ngx_http_gw_metrics_core.h).
 *
 * Every series lives in one shared memory zone.  A series is a label set
 * (family, method, status and one free-form label: the route or a decision
 * result) followed by its atomic counters.  The zone holds a hash table of
 * series chained through "next" and, per family, a list of series in
 * creation order through "link" for the exposition.
 *
 * Series are never moved or freed while the zone lives, so the log phase
 * looks them up without a lock: it walks a hash chain and bumps counters
 * with ngx_atomic_fetch_add().  The slab mutex is taken only to create a
 * series.  The creator fills the series in, counts it, links it into its
 * family list and only then publishes it in the hash table, with a memory
 * barrier before each step, so a reader never sees a half-built series and
 * no request is ever counted into a series the scrape cannot reach.  A
 * creator killed between two steps (nginx then frees the lock) leaves the
 * series as "pending": the next process to take the lock finishes the
 * steps, so the series is neither lost nor created twice.  A scrape reads
 * the counters with plain loads.
 *
 * Histograms keep one counter per bucket (not cumulative) plus the +Inf
 * bucket and the sum of observations in integer microseconds: nginx times
 * requests in milliseconds, so the integer sum is exact and can be updated
 * with the same atomic add as the counters.  The scrape makes the buckets
 * cumulative and prints _count as the +Inf bucket it computed, so the two
 * always agree even while workers keep counting.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_gw_metrics_core.h"


/* longest line parts that are not label values */
#define NGX_HTTP_GW_METRICS_NUMBER_LEN     24
#define NGX_HTTP_GW_METRICS_LE_LEN         32
#define NGX_HTTP_GW_METRICS_LABELS_LEN                                        \
    (sizeof("method=\"\",path=\"\",status=\"\"") - 1                          \
     + sizeof("__overflow__") - 1 + sizeof("__overflow__") - 1                \
     + 2 * NGX_HTTP_GW_METRICS_LABEL_MAX)


static ngx_http_gw_metrics_series_t *ngx_http_gw_metrics_alloc_series(
    ngx_http_gw_metrics_shctx_t *sh, ngx_slab_pool_t *shpool,
    ngx_http_gw_metrics_key_t *key, uint32_t hash);
static void ngx_http_gw_metrics_recover(ngx_http_gw_metrics_shctx_t *sh);
static uint32_t ngx_http_gw_metrics_hash(ngx_http_gw_metrics_shctx_t *sh,
    ngx_http_gw_metrics_key_t *key);

static u_char *ngx_http_gw_metrics_escape(u_char *dst, u_char *src,
    size_t len);
static ngx_int_t ngx_http_gw_metrics_parse_q(u_char *p, u_char *last);

static ngx_uint_t ngx_http_gw_metrics_used(ngx_http_gw_metrics_shctx_t *sh,
    ngx_http_gw_metrics_family_t *f, ngx_http_gw_metrics_series_t *s);
static u_char *ngx_http_gw_metrics_write_meta(u_char *p,
    ngx_http_gw_metrics_family_t *f, ngx_uint_t format);
static u_char *ngx_http_gw_metrics_write_labels(u_char *p,
    ngx_http_gw_metrics_series_t *s);
static u_char *ngx_http_gw_metrics_write_series(u_char *p,
    ngx_http_gw_metrics_shctx_t *sh, ngx_http_gw_metrics_family_t *f,
    ngx_http_gw_metrics_series_t *s, ngx_str_t *le);
static u_char *ngx_http_gw_metrics_write_scalar(u_char *p,
    ngx_http_gw_metrics_family_t *f, ngx_uint_t format, uint64_t value);
static u_char *ngx_http_gw_metrics_write_uint(u_char *p, uint64_t n);
static u_char *ngx_http_gw_metrics_write_seconds(u_char *p, uint64_t us);
static u_char *ngx_http_gw_metrics_write_le(u_char *p, uint64_t us,
    ngx_uint_t format);


static ngx_str_t  ngx_http_gw_metrics_methods[NGX_HTTP_GW_METRICS_NMETHODS] = {
    ngx_string("OTHER"),
    ngx_string("GET"),
    ngx_string("HEAD"),
    ngx_string("POST"),
    ngx_string("PUT"),
    ngx_string("DELETE"),
    ngx_string("MKCOL"),
    ngx_string("COPY"),
    ngx_string("MOVE"),
    ngx_string("OPTIONS"),
    ngx_string("PROPFIND"),
    ngx_string("PROPPATCH"),
    ngx_string("LOCK"),
    ngx_string("UNLOCK"),
    ngx_string("PATCH"),
    ngx_string("TRACE"),
    ngx_string("CONNECT")
};


static ngx_str_t  ngx_http_gw_metrics_overflow = ngx_string("__overflow__");


ngx_http_gw_metrics_family_t  ngx_http_gw_metrics_families[] = {

    { ngx_string("gateway_requests"), NGX_HTTP_GW_METRICS_COUNTER,
      ngx_null_string,
      ngx_string("Requests by method, route and response status.") },

    { ngx_string("gateway_request_duration_seconds"),
      NGX_HTTP_GW_METRICS_HISTOGRAM, ngx_string("seconds"),
      ngx_string("Time from the first byte read from the client to the "
                 "log phase.") },

    { ngx_string("gateway_upstream_response_duration_seconds"),
      NGX_HTTP_GW_METRICS_HISTOGRAM, ngx_string("seconds"),
      ngx_string("Time spent on upstream responses, all tries of a request "
                 "summed.") },

    { ngx_string("gateway_auth_decisions"), NGX_HTTP_GW_METRICS_COUNTER,
      ngx_null_string,
      ngx_string("Authentication decisions by $gw_auth_status.") },

    { ngx_string("gateway_ratelimit_decisions"), NGX_HTTP_GW_METRICS_COUNTER,
      ngx_null_string,
      ngx_string("Rate limit decisions by $gw_ratelimit_status.") }
};


/* process-wide families, in exposition order */

#define NGX_HTTP_GW_METRICS_CONN_ACTIVE    0
#define NGX_HTTP_GW_METRICS_CONN_READING   1
#define NGX_HTTP_GW_METRICS_CONN_WRITING   2
#define NGX_HTTP_GW_METRICS_CONN_WAITING   3
#define NGX_HTTP_GW_METRICS_CONN_ACCEPTED  4
#define NGX_HTTP_GW_METRICS_CONN_HANDLED   5
#define NGX_HTTP_GW_METRICS_SERIES         6
#define NGX_HTTP_GW_METRICS_SERIES_MAX     7
#define NGX_HTTP_GW_METRICS_DROPPED        8
#define NGX_HTTP_GW_METRICS_START_TIME     9
#define NGX_HTTP_GW_METRICS_BUILD          10
#define NGX_HTTP_GW_METRICS_NSCALARS       11

static ngx_http_gw_metrics_family_t  ngx_http_gw_metrics_scalars[] = {

    { ngx_string("gateway_connections_active"), NGX_HTTP_GW_METRICS_GAUGE,
      ngx_null_string,
      ngx_string("Client connections open now, waiting ones included.") },

    { ngx_string("gateway_connections_reading"), NGX_HTTP_GW_METRICS_GAUGE,
      ngx_null_string,
      ngx_string("Connections where nginx is reading the request header.") },

    { ngx_string("gateway_connections_writing"), NGX_HTTP_GW_METRICS_GAUGE,
      ngx_null_string,
      ngx_string("Connections with a request being processed.") },

    { ngx_string("gateway_connections_waiting"), NGX_HTTP_GW_METRICS_GAUGE,
      ngx_null_string,
      ngx_string("Idle keepalive connections.") },

    { ngx_string("gateway_connections_accepted"),
      NGX_HTTP_GW_METRICS_COUNTER, ngx_null_string,
      ngx_string("Client connections accepted.") },

    { ngx_string("gateway_connections_handled"), NGX_HTTP_GW_METRICS_COUNTER,
      ngx_null_string,
      ngx_string("Client connections handled.") },

    { ngx_string("gateway_metrics_series"), NGX_HTTP_GW_METRICS_GAUGE,
      ngx_null_string,
      ngx_string("Series stored in the gw_metrics zone.") },

    { ngx_string("gateway_metrics_series_max"), NGX_HTTP_GW_METRICS_GAUGE,
      ngx_null_string,
      ngx_string("Series the gw_metrics zone accepts before overflow.") },

    { ngx_string("gateway_metrics_series_dropped"),
      NGX_HTTP_GW_METRICS_COUNTER, ngx_null_string,
      ngx_string("Observations counted in an __overflow__ series because "
                 "the zone was full.") },

    { ngx_string("gateway_metrics_start_time_seconds"),
      NGX_HTTP_GW_METRICS_GAUGE, ngx_string("seconds"),
      ngx_string("Unix time the series in the zone started counting.") },

    { ngx_string("gateway_build"), NGX_HTTP_GW_METRICS_INFO,
      ngx_null_string,
      ngx_string("nginx-gw metrics module and nginx versions.") }
};


static ngx_str_t  ngx_http_gw_metrics_build_labels =
    ngx_string("version=\"" NGX_HTTP_GW_METRICS_VERSION "\","
               "nginx_version=\"" NGINX_VERSION "\"");



ngx_http_gw_metrics_shctx_t *
ngx_http_gw_metrics_create_sh(ngx_slab_pool_t *shpool, ngx_uint_t nbuckets,
    uint64_t *bounds, ngx_uint_t max_series, size_t size)
{
    ngx_uint_t                     f, n;
    ngx_http_gw_metrics_key_t      key;
    ngx_http_gw_metrics_shctx_t   *sh;
    ngx_http_gw_metrics_series_t  *s;

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_gw_metrics_shctx_t));
    if (sh == NULL) {
        return NULL;
    }

    sh->magic = NGX_HTTP_GW_METRICS_MAGIC;
    sh->seed = (uint32_t) ngx_random();
    sh->nbuckets = nbuckets;
    ngx_memcpy(sh->bounds, bounds, nbuckets * sizeof(uint64_t));
    sh->start_time = ngx_time();
    sh->max_series = max_series;

    /*
     * about two series per chain when the zone is full; from the size, not
     * max_series, which a reload may raise on the same table
     */

    for (n = 16; n < size / NGX_HTTP_GW_METRICS_SERIES_SIZE / 2; n <<= 1) {
        /* void */
    }

    sh->table = ngx_slab_calloc(shpool,
                                n * sizeof(ngx_http_gw_metrics_series_t *));
    if (sh->table == NULL) {
        return NULL;
    }

    sh->mask = n - 1;

    /* the overflow series exist from the start: they never need memory */

    key.status = 0;
    key.label = ngx_http_gw_metrics_overflow;

    for (f = 0; f < NGX_HTTP_GW_METRICS_NFAMILIES; f++) {
        key.family = f;
        key.method = NGX_HTTP_GW_METRICS_METHOD_NONE;

        s = ngx_http_gw_metrics_alloc_series(sh, shpool, &key, 0);
        if (s == NULL) {
            return NULL;
        }

        s->flags = NGX_HTTP_GW_METRICS_OVERFLOW;
        sh->families[f].overflow = s;
    }

    return sh;
}


static ngx_http_gw_metrics_series_t *
ngx_http_gw_metrics_alloc_series(ngx_http_gw_metrics_shctx_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_gw_metrics_key_t *key, uint32_t hash)
{
    size_t                         size;
    ngx_uint_t                     n;
    ngx_http_gw_metrics_series_t  *s;

    if (ngx_http_gw_metrics_families[key->family].type
        == NGX_HTTP_GW_METRICS_HISTOGRAM)
    {
        n = 1 + sh->nbuckets + 1;

    } else {
        n = 1;
    }

    size = offsetof(ngx_http_gw_metrics_series_t, value)
           + n * sizeof(ngx_atomic_t) + key->label.len;

    s = ngx_slab_alloc_locked(shpool, size);
    if (s == NULL) {
        return NULL;
    }

    ngx_memzero(s, size);

    s->label = (u_char *) &s->value[n];
    s->hash = hash;
    s->status = (uint16_t) key->status;
    s->family = (u_char) key->family;
    s->method = (u_char) key->method;
    s->len = (u_char) key->label.len;

    ngx_memcpy(s->label, key->label.data, key->label.len);

    return s;
}


ngx_http_gw_metrics_series_t *
ngx_http_gw_metrics_get(ngx_http_gw_metrics_shctx_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_gw_metrics_key_t *key, ngx_log_t *log)
{
    uint32_t                       hash;
    ngx_uint_t                     i;
    ngx_http_gw_metrics_list_t    *list;
    ngx_http_gw_metrics_series_t  *s, *head;

    hash = ngx_http_gw_metrics_hash(sh, key);
    i = hash & sh->mask;

    head = ((ngx_http_gw_metrics_series_t * volatile *) sh->table)[i];

    for (s = head; s; s = s->next) {
        if (s->hash == hash
            && s->family == key->family
            && s->method == key->method
            && s->status == key->status
            && s->len == key->label.len
            && ngx_memcmp(s->label, key->label.data, key->label.len) == 0)
        {
            return s;
        }
    }

    list = &sh->families[key->family];

    /*
     * a full zone costs no lock: checked again under it below; unless a
     * killed worker left a series half created, which the lock finishes
     */

    if (*(volatile ngx_atomic_t *) &sh->nseries
        >= *(volatile ngx_atomic_t *) &sh->max_series
        && *(ngx_http_gw_metrics_series_t * volatile *) &sh->pending == NULL)
    {
        goto overflow;
    }

    ngx_shmtx_lock(&shpool->mutex);

    if (sh->pending) {
        ngx_http_gw_metrics_recover(sh);

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "gw_metrics: finished a series that a killed process "
                      "left half created%s", shpool->log_ctx);
    }

    /* another worker may have created it since the lookup */

    for (s = sh->table[i]; s != head; s = s->next) {
        if (s->hash == hash
            && s->family == key->family
            && s->method == key->method
            && s->status == key->status
            && s->len == key->label.len
            && ngx_memcmp(s->label, key->label.data, key->label.len) == 0)
        {
            ngx_shmtx_unlock(&shpool->mutex);
            return s;
        }
    }

    if (sh->nseries >= sh->max_series) {
        ngx_shmtx_unlock(&shpool->mutex);
        goto overflow;
    }

    s = ngx_http_gw_metrics_alloc_series(sh, shpool, key, hash);

    if (s == NULL) {
        /* the memory ran out before the cap: make this the cap */

        sh->max_series = sh->nseries;

        if (!sh->full_logged) {
            sh->full_logged = 1;
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "gw_metrics: ran out of memory at %uA series, "
                          "new series are counted as __overflow__%s",
                          sh->nseries, shpool->log_ctx);
        }

        ngx_shmtx_unlock(&shpool->mutex);
        goto overflow;
    }

    /*
     * Counted, linked into the family list, then published in the hash
     * table: whoever finds the series counts into a series the scrape
     * shows.  Each step can be redone by ngx_http_gw_metrics_recover().
     */

    sh->pending_nseries = sh->nseries + 1;

    ngx_memory_barrier();

    sh->pending = s;

    ngx_memory_barrier();

    sh->nseries = sh->pending_nseries;

    ngx_http_gw_metrics_link(sh, s);
    ngx_http_gw_metrics_publish(sh, s);

    ngx_memory_barrier();

    sh->pending = NULL;

    if (sh->nseries == sh->max_series && !sh->full_logged) {
        sh->full_logged = 1;
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "gw_metrics: reached its limit of %uA series, "
                      "new series are counted as __overflow__%s",
                      sh->max_series, shpool->log_ctx);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return s;

overflow:

    (void) ngx_atomic_fetch_add(&sh->dropped, 1);

    return list->overflow;
}


/*
 * The lock is ours and a series is pending: its creator died (nginx frees
 * a dead process's lock).  Every step it may or may not have taken is
 * redone; each one is idempotent.
 */

static void
ngx_http_gw_metrics_recover(ngx_http_gw_metrics_shctx_t *sh)
{
    ngx_http_gw_metrics_series_t  *s;

    s = sh->pending;

    sh->nseries = sh->pending_nseries;

    ngx_http_gw_metrics_link(sh, s);
    ngx_http_gw_metrics_publish(sh, s);

    ngx_memory_barrier();

    sh->pending = NULL;
}


void
ngx_http_gw_metrics_link(ngx_http_gw_metrics_shctx_t *sh,
    ngx_http_gw_metrics_series_t *s)
{
    ngx_http_gw_metrics_list_t  *list;

    list = &sh->families[s->family];

    if (list->tail == s) {
        return;
    }

    /* the series is complete before a scrape can reach it */

    ngx_memory_barrier();

    if (list->tail) {
        list->tail->link = s;

    } else {
        list->head = s;
    }

    ngx_memory_barrier();

    list->tail = s;
}


void
ngx_http_gw_metrics_publish(ngx_http_gw_metrics_shctx_t *sh,
    ngx_http_gw_metrics_series_t *s)
{
    ngx_uint_t                     i;
    ngx_http_gw_metrics_series_t  *c;

    i = s->hash & sh->mask;

    for (c = sh->table[i]; c; c = c->next) {
        if (c == s) {
            return;
        }
    }

    s->next = sh->table[i];

    /* the series is complete before the log phase can reach it */

    ngx_memory_barrier();

    sh->table[i] = s;
}


/* a zone another configuration made: can it hold this one's series */

ngx_int_t
ngx_http_gw_metrics_compatible(ngx_http_gw_metrics_shctx_t *sh,
    ngx_uint_t nbuckets, uint64_t *bounds)
{
    if (sh == NULL
        || sh->magic != NGX_HTTP_GW_METRICS_MAGIC
        || sh->nbuckets != nbuckets
        || ngx_memcmp(sh->bounds, bounds, nbuckets * sizeof(uint64_t)) != 0)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* FNV-1a with a per-zone random basis */

static uint32_t
ngx_http_gw_metrics_hash(ngx_http_gw_metrics_shctx_t *sh,
    ngx_http_gw_metrics_key_t *key)
{
    u_char    *p, *last;
    uint32_t   h;

    h = 2166136261u ^ sh->seed;

    h = (h ^ (uint32_t) key->family) * 16777619u;
    h = (h ^ (uint32_t) key->method) * 16777619u;
    h = (h ^ (uint32_t) key->status) * 16777619u;
    h = (h ^ (uint32_t) (key->status >> 8)) * 16777619u;

    last = key->label.data + key->label.len;

    for (p = key->label.data; p < last; p++) {
        h = (h ^ *p) * 16777619u;
    }

    return h;
}


void
ngx_http_gw_metrics_observe(ngx_http_gw_metrics_shctx_t *sh,
    ngx_http_gw_metrics_series_t *s, uint64_t us)
{
    ngx_uint_t  i;

    for (i = 0; i < sh->nbuckets; i++) {
        if (us <= sh->bounds[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&s->value[1 + i], 1);
    (void) ngx_atomic_fetch_add(&s->value[0], (ngx_atomic_int_t) us);
}


/*
 * Label values must be UTF-8 (both formats): every byte that does not
 * start a valid sequence (overlong forms and surrogates included) becomes
 * U+FFFD, and the value is cut at "size" bytes on a character boundary.
 * Bytes from clients and other modules are never trusted to be either.
 */

size_t
ngx_http_gw_metrics_sanitize(u_char *dst, size_t size, u_char *src,
    size_t len)
{
    u_char    *d, *end, *last;
    uint32_t   u, min;
    ngx_uint_t  i, n;

    d = dst;
    end = dst + size;
    last = src + len;

    while (src < last) {

        if (*src < 0x80) {
            if (d == end) {
                break;
            }

            *d++ = *src++;
            continue;
        }

        if ((*src & 0xe0) == 0xc0) {
            n = 2;
            u = *src & 0x1f;
            min = 0x80;

        } else if ((*src & 0xf0) == 0xe0) {
            n = 3;
            u = *src & 0x0f;
            min = 0x800;

        } else if ((*src & 0xf8) == 0xf0) {
            n = 4;
            u = *src & 0x07;
            min = 0x10000;

        } else {
            n = 0;
            u = 0;
            min = 1;
        }

        if (n && (size_t) (last - src) >= n) {

            for (i = 1; i < n; i++) {
                if ((src[i] & 0xc0) != 0x80) {
                    break;
                }

                u = (u << 6) | (src[i] & 0x3f);
            }

            if (i == n && u >= min && u <= 0x10ffff
                && (u < 0xd800 || u > 0xdfff))
            {
                if ((size_t) (end - d) < n) {
                    break;
                }

                d = ngx_cpymem(d, src, n);
                src += n;
                continue;
            }
        }

        if (end - d < 3) {
            break;
        }

        *d++ = 0xef; *d++ = 0xbf; *d++ = 0xbd;
        src++;
    }

    return d - dst;
}


static u_char *
ngx_http_gw_metrics_escape(u_char *dst, u_char *src, size_t len)
{
    u_char  *last;

    for (last = src + len; src < last; src++) {

        switch (*src) {

        case '\\':
            *dst++ = '\\'; *dst++ = '\\';
            break;

        case '"':
            *dst++ = '\\'; *dst++ = '"';
            break;

        case '\n':
            *dst++ = '\\'; *dst++ = 'n';
            break;

        default:
            *dst++ = *src;
        }
    }

    return dst;
}


/*
 * One Accept header value: the best q (0..1000) given to OpenMetrics 1.0
 * (version absent, 1.0.0 or 0.0.1) goes to "om", the best one given to the
 * text format (text/plain without a version or 0.0.4, and the text and
 * catch-all wildcards) to "text", the best one given to text/html by name
 * to "html"; each stays as it was (-1 for none) when not mentioned.
 * Returns the number of media ranges seen.
 */

ngx_uint_t
ngx_http_gw_metrics_negotiate(u_char *p, u_char *last,
    ngx_http_gw_metrics_accept_t *accept)
{
    u_char      *type, *vp, *name;
    size_t       tlen, nlen, vlen;
    ngx_int_t    q, n;
    ngx_uint_t   ranges, kind, version;

    ranges = 0;

    while (p < last) {

        while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        if (p == last) {
            break;
        }

        type = p;

        while (p < last && *p != ';' && *p != ',' && *p != ' '
               && *p != '\t')
        {
            p++;
        }

        tlen = p - type;
        ranges++;

        if (tlen == sizeof("application/openmetrics-text") - 1
            && ngx_strncasecmp(type, (u_char *) "application/openmetrics-text",
                               tlen) == 0)
        {
            kind = 1;

        } else if ((tlen == sizeof("text/plain") - 1
                    && ngx_strncasecmp(type, (u_char *) "text/plain", tlen)
                       == 0)
                   || (tlen == 6
                       && ngx_strncasecmp(type, (u_char *) "text/*", 6) == 0)
                   || (tlen == 3 && ngx_strncmp(type, "*/*", 3) == 0))
        {
            kind = 2;

        } else if (tlen == sizeof("text/html") - 1
                   && ngx_strncasecmp(type, (u_char *) "text/html", tlen)
                      == 0)
        {
            kind = 3;

        } else {
            kind = 0;
        }

        q = 1000;
        version = 1;

        /* parameters: ; name=value, value a token or a quoted string */

        for ( ;; ) {

            while (p < last && (*p == ' ' || *p == '\t')) {
                p++;
            }

            if (p == last || *p != ';') {
                break;
            }

            p++;

            while (p < last && (*p == ' ' || *p == '\t')) {
                p++;
            }

            name = p;

            while (p < last && *p != '=' && *p != ';' && *p != ','
                   && *p != ' ' && *p != '\t')
            {
                p++;
            }

            nlen = p - name;

            while (p < last && (*p == ' ' || *p == '\t')) {
                p++;
            }

            vp = p;
            vlen = 0;

            if (p < last && *p == '=') {
                p++;

                while (p < last && (*p == ' ' || *p == '\t')) {
                    p++;
                }

                if (p < last && *p == '"') {
                    vp = ++p;

                    while (p < last && *p != '"') {
                        if (*p == '\\' && last - p > 1) {
                            p++;
                        }

                        p++;
                    }

                    vlen = p - vp;

                    if (p < last) {
                        p++;
                    }

                } else {
                    vp = p;

                    while (p < last && *p != ';' && *p != ','
                           && *p != ' ' && *p != '\t')
                    {
                        p++;
                    }

                    vlen = p - vp;
                }
            }

            if (nlen == 1 && (*name | 0x20) == 'q') {
                n = ngx_http_gw_metrics_parse_q(vp, vp + vlen);
                q = (n == NGX_ERROR) ? 0 : n;

            } else if (nlen == 7
                       && ngx_strncasecmp(name, (u_char *) "version", 7) == 0)
            {
                if (kind == 1) {
                    version = (vlen == 5
                               && (ngx_strncmp(vp, "1.0.0", 5) == 0
                                   || ngx_strncmp(vp, "0.0.1", 5) == 0));

                } else if (kind == 2) {
                    version = (vlen == 5 && ngx_strncmp(vp, "0.0.4", 5) == 0);
                }
            }
        }

        /* anything else up to the next range is not ours to judge */

        while (p < last && *p != ',') {
            p++;
        }

        if (!version) {
            continue;
        }

        if (kind == 1 && q > accept->om) {
            accept->om = q;

        } else if (kind == 2 && q > accept->text) {
            accept->text = q;

        } else if (kind == 3 && q > accept->html) {
            accept->html = q;
        }
    }

    return ranges;
}


/*
 * OpenMetrics when preferred at least as much as the text format, as
 * Prometheus asks; the status page only when text/html is named and
 * preferred over both, as browsers ask (a wildcard never gets it, so curl
 * and scrapers keep the text formats); else the text format.
 */

ngx_uint_t
ngx_http_gw_metrics_format(ngx_http_gw_metrics_accept_t *accept)
{
    if (accept->html > 0
        && accept->html > accept->om
        && accept->html > accept->text)
    {
        return NGX_HTTP_GW_METRICS_HTML;
    }

    if (accept->om > 0 && accept->om >= accept->text) {
        return NGX_HTTP_GW_METRICS_OPENMETRICS;
    }

    return NGX_HTTP_GW_METRICS_TEXT;
}


/* RFC 9110 qvalue: "0" ["." 0*3DIGIT] / "1" ["." 0*3("0")] */

static ngx_int_t
ngx_http_gw_metrics_parse_q(u_char *p, u_char *last)
{
    ngx_int_t   q;
    ngx_uint_t  digits;

    if (p == last || (*p != '0' && *p != '1')) {
        return NGX_ERROR;
    }

    q = (*p++ - '0') * 1000;

    if (p == last) {
        return q;
    }

    if (*p++ != '.') {
        return NGX_ERROR;
    }

    for (digits = 100; p < last && digits; p++, digits /= 10) {
        if (*p < '0' || *p > '9') {
            return NGX_ERROR;
        }

        q += (*p - '0') * digits;
    }

    if (p != last || q > 1000) {
        return NGX_ERROR;
    }

    return q;
}


/*
 * The exposition, built in one buffer.  A first pass takes a snapshot of
 * the series (they may keep being created meanwhile) and sizes the buffer
 * from their labels, with every number at its widest; the second writes.
 */

ngx_int_t
ngx_http_gw_metrics_render(ngx_pool_t *pool, ngx_http_gw_metrics_shctx_t *sh,
    ngx_http_gw_metrics_stats_t *st, ngx_uint_t format, ngx_str_t *out)
{
    u_char                         *p, *start;
    size_t                          size, line, fixed, lines;
    uint64_t                        values[NGX_HTTP_GW_METRICS_NSCALARS];
    ngx_str_t                       le[NGX_HTTP_GW_METRICS_BUCKETS_MAX + 1];
    ngx_uint_t                      f, i, n, nseries;
    ngx_uint_t                      first[NGX_HTTP_GW_METRICS_NFAMILIES + 1];
    ngx_http_gw_metrics_family_t   *fam;
    ngx_http_gw_metrics_series_t   *s, **snap;
    u_char                          lebuf[(NGX_HTTP_GW_METRICS_BUCKETS_MAX
                                          + 1) * NGX_HTTP_GW_METRICS_LE_LEN];
    u_char                          labels[NGX_HTTP_GW_METRICS_LABELS_LEN];

    /* "le" values, canonical for the format */

    p = lebuf;

    for (i = 0; i < sh->nbuckets; i++) {
        le[i].data = p;
        p = ngx_http_gw_metrics_write_le(p, sh->bounds[i], format);
        le[i].len = p - le[i].data;
    }

    ngx_str_set(&le[i], "+Inf");

    /* the snapshot: the overflow series close their family when used */

    nseries = *(volatile ngx_atomic_t *) &sh->nseries
              + NGX_HTTP_GW_METRICS_NFAMILIES;

    snap = ngx_palloc(pool, nseries * sizeof(ngx_http_gw_metrics_series_t *));
    if (snap == NULL) {
        return NGX_ERROR;
    }

    n = 0;
    size = sizeof("# EOF\n") - 1;

    for (f = 0; f < NGX_HTTP_GW_METRICS_NFAMILIES; f++) {

        first[f] = n;

        if ((f == NGX_HTTP_GW_METRICS_AUTH && !st->auth)
            || (f == NGX_HTTP_GW_METRICS_RATELIMIT && !st->ratelimit))
        {
            continue;
        }

        fam = &ngx_http_gw_metrics_families[f];

        size += 3 * (sizeof("# HELP ") + fam->name.len + sizeof("_total"))
                + fam->help.len + fam->unit.len + sizeof("histogram");

        /* a line without its labels, the number at its widest */

        line = fam->name.len + sizeof("_bucket{,le=\"\"} ") - 1
               + NGX_HTTP_GW_METRICS_NUMBER_LEN + 1;

        if (fam->type == NGX_HTTP_GW_METRICS_HISTOGRAM) {
            lines = sh->nbuckets + 3;
            fixed = lines * line;

            for (i = 0; i <= sh->nbuckets; i++) {
                fixed += le[i].len;
            }

        } else {
            lines = 1;
            fixed = line;
        }

        s = *(ngx_http_gw_metrics_series_t * volatile *)
                &sh->families[f].head;

        for ( /* void */ ; s; s = s->link) {

            /* keep a slot for each overflow series still to come */

            if (n + NGX_HTTP_GW_METRICS_NFAMILIES - f >= nseries) {
                /* created after the snapshot began: next scrape */
                break;
            }

            snap[n++] = s;
        }

        s = sh->families[f].overflow;

        if (ngx_http_gw_metrics_used(sh, fam, s)) {
            snap[n++] = s;
        }

        for (i = first[f]; i < n; i++) {
            p = ngx_http_gw_metrics_write_labels(labels, snap[i]);
            size += fixed + lines * (p - labels);
        }
    }

    first[f] = n;

    /* the process-wide families */

    ngx_memzero(values, sizeof(values));

    values[NGX_HTTP_GW_METRICS_CONN_ACTIVE] = st->active;
    values[NGX_HTTP_GW_METRICS_CONN_READING] = st->reading;
    values[NGX_HTTP_GW_METRICS_CONN_WRITING] = st->writing;
    values[NGX_HTTP_GW_METRICS_CONN_WAITING] = st->waiting;
    values[NGX_HTTP_GW_METRICS_CONN_ACCEPTED] = st->accepted;
    values[NGX_HTTP_GW_METRICS_CONN_HANDLED] = st->handled;
    values[NGX_HTTP_GW_METRICS_SERIES] = sh->nseries;
    values[NGX_HTTP_GW_METRICS_SERIES_MAX] = sh->max_series;
    values[NGX_HTTP_GW_METRICS_DROPPED] = sh->dropped;
    values[NGX_HTTP_GW_METRICS_START_TIME] = (uint64_t) sh->start_time;
    values[NGX_HTTP_GW_METRICS_BUILD] = 1;

    for (i = 0; i < NGX_HTTP_GW_METRICS_NSCALARS; i++) {
        fam = &ngx_http_gw_metrics_scalars[i];

        size += 4 * (sizeof("# HELP ") + fam->name.len + sizeof("_total"))
                + fam->help.len + fam->unit.len + sizeof("histogram")
                + NGX_HTTP_GW_METRICS_NUMBER_LEN + 2;
    }

    size += ngx_http_gw_metrics_build_labels.len + 2;

    start = ngx_pnalloc(pool, size);
    if (start == NULL) {
        return NGX_ERROR;
    }

    p = start;

    for (f = 0; f < NGX_HTTP_GW_METRICS_NFAMILIES; f++) {

        if ((f == NGX_HTTP_GW_METRICS_AUTH && !st->auth)
            || (f == NGX_HTTP_GW_METRICS_RATELIMIT && !st->ratelimit))
        {
            continue;
        }

        fam = &ngx_http_gw_metrics_families[f];

        p = ngx_http_gw_metrics_write_meta(p, fam, format);

        for (i = first[f]; i < first[f + 1]; i++) {
            p = ngx_http_gw_metrics_write_series(p, sh, fam, snap[i], le);
        }
    }

    for (i = 0; i < NGX_HTTP_GW_METRICS_NSCALARS; i++) {

        if (i <= NGX_HTTP_GW_METRICS_CONN_HANDLED && !st->connections) {
            continue;
        }

        p = ngx_http_gw_metrics_write_scalar(p,
                                             &ngx_http_gw_metrics_scalars[i],
                                             format, values[i]);
    }

    if (format == NGX_HTTP_GW_METRICS_OPENMETRICS) {
        p = ngx_cpymem(p, "# EOF\n", sizeof("# EOF\n") - 1);
    }

    if ((size_t) (p - start) > size) {
        /* cannot happen: the sizes above are upper bounds */
        return NGX_ERROR;
    }

    out->data = start;
    out->len = p - start;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_gw_metrics_used(ngx_http_gw_metrics_shctx_t *sh,
    ngx_http_gw_metrics_family_t *f, ngx_http_gw_metrics_series_t *s)
{
    ngx_uint_t  i, n;

    n = (f->type == NGX_HTTP_GW_METRICS_HISTOGRAM) ? sh->nbuckets + 2 : 1;

    for (i = 0; i < n; i++) {
        if (((volatile ngx_atomic_t *) s->value)[i]) {
            return 1;
        }
    }

    return 0;
}


static u_char *
ngx_http_gw_metrics_write_meta(u_char *p, ngx_http_gw_metrics_family_t *f,
    ngx_uint_t format)
{
    ngx_str_t  suffix, type;

    static ngx_str_t  types[] = {
        ngx_string("counter"),
        ngx_string("gauge"),
        ngx_string("histogram"),
        ngx_string("info")
    };

    type = types[f->type];

    if (format == NGX_HTTP_GW_METRICS_OPENMETRICS) {

        /* the family name carries no _total or _info suffix */

        p = ngx_cpymem(p, "# TYPE ", sizeof("# TYPE ") - 1);
        p = ngx_cpymem(p, f->name.data, f->name.len);
        *p++ = ' ';
        p = ngx_cpymem(p, type.data, type.len);
        *p++ = '\n';

        if (f->unit.len) {
            p = ngx_cpymem(p, "# UNIT ", sizeof("# UNIT ") - 1);
            p = ngx_cpymem(p, f->name.data, f->name.len);
            *p++ = ' ';
            p = ngx_cpymem(p, f->unit.data, f->unit.len);
            *p++ = '\n';
        }

        p = ngx_cpymem(p, "# HELP ", sizeof("# HELP ") - 1);
        p = ngx_cpymem(p, f->name.data, f->name.len);
        *p++ = ' ';
        p = ngx_cpymem(p, f->help.data, f->help.len);
        *p++ = '\n';

        return p;
    }

    /* text 0.0.4 names the family after its samples; "info" is a gauge */

    if (f->type == NGX_HTTP_GW_METRICS_COUNTER) {
        ngx_str_set(&suffix, "_total");

    } else if (f->type == NGX_HTTP_GW_METRICS_INFO) {
        ngx_str_set(&suffix, "_info");
        type = types[NGX_HTTP_GW_METRICS_GAUGE];

    } else {
        ngx_str_set(&suffix, "");
    }

    p = ngx_cpymem(p, "# HELP ", sizeof("# HELP ") - 1);
    p = ngx_cpymem(p, f->name.data, f->name.len);
    p = ngx_cpymem(p, suffix.data, suffix.len);
    *p++ = ' ';
    p = ngx_cpymem(p, f->help.data, f->help.len);
    *p++ = '\n';

    p = ngx_cpymem(p, "# TYPE ", sizeof("# TYPE ") - 1);
    p = ngx_cpymem(p, f->name.data, f->name.len);
    p = ngx_cpymem(p, suffix.data, suffix.len);
    *p++ = ' ';
    p = ngx_cpymem(p, type.data, type.len);
    *p++ = '\n';

    return p;
}


/* the labels of a series, without braces: method="GET",path="/api" */

static u_char *
ngx_http_gw_metrics_write_labels(u_char *p, ngx_http_gw_metrics_series_t *s)
{
    ngx_str_t  *method;

    if (s->flags & NGX_HTTP_GW_METRICS_OVERFLOW) {
        method = &ngx_http_gw_metrics_overflow;

    } else if (s->method < sizeof(ngx_http_gw_metrics_methods)
                           / sizeof(ngx_str_t))
    {
        method = &ngx_http_gw_metrics_methods[s->method];

    } else {
        method = &ngx_http_gw_metrics_methods[0];
    }

    switch (s->family) {

    case NGX_HTTP_GW_METRICS_REQUESTS:
    case NGX_HTTP_GW_METRICS_DURATION:
        p = ngx_cpymem(p, "method=\"", sizeof("method=\"") - 1);
        p = ngx_cpymem(p, method->data, method->len);
        p = ngx_cpymem(p, "\",path=\"", sizeof("\",path=\"") - 1);
        p = ngx_http_gw_metrics_escape(p, s->label, s->len);
        *p++ = '"';

        if (s->family == NGX_HTTP_GW_METRICS_DURATION) {
            break;
        }

        p = ngx_cpymem(p, ",status=\"", sizeof(",status=\"") - 1);

        if (s->flags & NGX_HTTP_GW_METRICS_OVERFLOW) {
            p = ngx_cpymem(p, ngx_http_gw_metrics_overflow.data,
                           ngx_http_gw_metrics_overflow.len);

        } else {
            *p++ = (u_char) ('0' + s->status / 100);
            *p++ = (u_char) ('0' + s->status / 10 % 10);
            *p++ = (u_char) ('0' + s->status % 10);
        }

        *p++ = '"';
        break;

    case NGX_HTTP_GW_METRICS_UPSTREAM:
        p = ngx_cpymem(p, "path=\"", sizeof("path=\"") - 1);
        p = ngx_http_gw_metrics_escape(p, s->label, s->len);
        *p++ = '"';
        break;

    default: /* auth, ratelimit */
        p = ngx_cpymem(p, "result=\"", sizeof("result=\"") - 1);
        p = ngx_http_gw_metrics_escape(p, s->label, s->len);
        *p++ = '"';
    }

    return p;
}


static u_char *
ngx_http_gw_metrics_write_series(u_char *p, ngx_http_gw_metrics_shctx_t *sh,
    ngx_http_gw_metrics_family_t *f, ngx_http_gw_metrics_series_t *s,
    ngx_str_t *le)
{
    size_t             len;
    uint64_t           sum, count;
    ngx_uint_t         i;
    volatile ngx_atomic_t  *value;
    u_char             labels[NGX_HTTP_GW_METRICS_LABELS_LEN];

    len = ngx_http_gw_metrics_write_labels(labels, s) - labels;
    value = s->value;

    if (f->type != NGX_HTTP_GW_METRICS_HISTOGRAM) {
        p = ngx_cpymem(p, f->name.data, f->name.len);
        p = ngx_cpymem(p, "_total{", sizeof("_total{") - 1);
        p = ngx_cpymem(p, labels, len);
        *p++ = '}'; *p++ = ' ';
        p = ngx_http_gw_metrics_write_uint(p, value[0]);
        *p++ = '\n';

        return p;
    }

    /* the +Inf bucket is the running total, _count repeats it */

    count = 0;

    for (i = 0; i <= sh->nbuckets; i++) {
        count += value[1 + i];

        p = ngx_cpymem(p, f->name.data, f->name.len);
        p = ngx_cpymem(p, "_bucket{", sizeof("_bucket{") - 1);
        p = ngx_cpymem(p, labels, len);
        p = ngx_cpymem(p, ",le=\"", sizeof(",le=\"") - 1);
        p = ngx_cpymem(p, le[i].data, le[i].len);
        *p++ = '"'; *p++ = '}'; *p++ = ' ';
        p = ngx_http_gw_metrics_write_uint(p, count);
        *p++ = '\n';
    }

    sum = value[0];

    p = ngx_cpymem(p, f->name.data, f->name.len);
    p = ngx_cpymem(p, "_sum{", sizeof("_sum{") - 1);
    p = ngx_cpymem(p, labels, len);
    *p++ = '}'; *p++ = ' ';
    p = ngx_http_gw_metrics_write_seconds(p, sum);
    *p++ = '\n';

    p = ngx_cpymem(p, f->name.data, f->name.len);
    p = ngx_cpymem(p, "_count{", sizeof("_count{") - 1);
    p = ngx_cpymem(p, labels, len);
    *p++ = '}'; *p++ = ' ';
    p = ngx_http_gw_metrics_write_uint(p, count);
    *p++ = '\n';

    return p;
}


static u_char *
ngx_http_gw_metrics_write_scalar(u_char *p, ngx_http_gw_metrics_family_t *f,
    ngx_uint_t format, uint64_t value)
{
    p = ngx_http_gw_metrics_write_meta(p, f, format);
    p = ngx_cpymem(p, f->name.data, f->name.len);

    if (f->type == NGX_HTTP_GW_METRICS_COUNTER) {
        p = ngx_cpymem(p, "_total", sizeof("_total") - 1);

    } else if (f->type == NGX_HTTP_GW_METRICS_INFO) {
        p = ngx_cpymem(p, "_info{", sizeof("_info{") - 1);
        p = ngx_cpymem(p, ngx_http_gw_metrics_build_labels.data,
                       ngx_http_gw_metrics_build_labels.len);
        *p++ = '}';
    }

    *p++ = ' ';
    p = ngx_http_gw_metrics_write_uint(p, value);
    *p++ = '\n';

    return p;
}


static u_char *
ngx_http_gw_metrics_write_uint(u_char *p, uint64_t n)
{
    u_char  *d, tmp[NGX_INT64_LEN];

    d = tmp + sizeof(tmp);

    do {
        *--d = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return ngx_cpymem(p, d, tmp + sizeof(tmp) - d);
}


/* microseconds as seconds, shortest decimal form: 1.5, 0.000123, 12 */

static u_char *
ngx_http_gw_metrics_write_seconds(u_char *p, uint64_t us)
{
    ngx_uint_t  i, frac;
    u_char      digits[6];

    p = ngx_http_gw_metrics_write_uint(p, us / 1000000);

    frac = us % 1000000;

    if (frac == 0) {
        return p;
    }

    for (i = 6; i; i--) {
        digits[i - 1] = (u_char) ('0' + frac % 10);
        frac /= 10;
    }

    for (i = 6; digits[i - 1] == '0'; i--) { /* void */ }

    *p++ = '.';

    return ngx_cpymem(p, digits, i);
}


/*
 * A bucket bound as Go's %g prints it (what Prometheus clients expose in
 * the text format); OpenMetrics wants the same with ".0" appended to
 * integers: 0.005, 1 (1.0), 2.5, 100000 (100000.0), 1e-05, 1e+06.
 */

static u_char *
ngx_http_gw_metrics_write_le(u_char *p, uint64_t us, ngx_uint_t format)
{
    u_char     *d, tmp[NGX_INT64_LEN];
    size_t      nd;
    ngx_int_t   k, exp, dp;

    if (us == 0) {
        return (format == NGX_HTTP_GW_METRICS_OPENMETRICS)
               ? ngx_cpymem(p, "0.0", 3) : ngx_cpymem(p, "0", 1);
    }

    /* the significant digits and a power of ten: us = digits * 10^k */

    for (k = 0; us % 10 == 0; k++) {
        us /= 10;
    }

    d = tmp + sizeof(tmp);

    do {
        *--d = (u_char) ('0' + us % 10);
        us /= 10;
    } while (us);

    nd = tmp + sizeof(tmp) - d;
    dp = (ngx_int_t) nd + k - 6;           /* digits before the point */
    exp = dp - 1;

    if (exp < -4 || exp >= 6) {
        *p++ = d[0];

        if (nd > 1) {
            *p++ = '.';
            p = ngx_cpymem(p, d + 1, nd - 1);
        }

        *p++ = 'e';
        *p++ = (exp < 0) ? '-' : '+';

        if (exp < 0) {
            exp = -exp;
        }

        if (exp < 10) {
            *p++ = '0';
        }

        return ngx_http_gw_metrics_write_uint(p, (uint64_t) exp);
    }

    if (dp <= 0) {
        *p++ = '0';
        *p++ = '.';

        for ( /* void */ ; dp < 0; dp++) {
            *p++ = '0';
        }

        return ngx_cpymem(p, d, nd);
    }

    if ((size_t) dp >= nd) {
        p = ngx_cpymem(p, d, nd);

        for ( /* void */ ; (size_t) dp > nd; dp--) {
            *p++ = '0';
        }

        if (format == NGX_HTTP_GW_METRICS_OPENMETRICS) {
            p = ngx_cpymem(p, ".0", 2);
        }

        return p;
    }

    p = ngx_cpymem(p, d, dp);
    *p++ = '.';

    return ngx_cpymem(p, d + dp, nd - dp);
}

