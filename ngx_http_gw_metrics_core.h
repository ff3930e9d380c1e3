
/*
 * Copyright (C) nginx-gw authors
 *
 * ngx_http_gw_metrics_module's zone of series, label values, Accept
 * negotiation and exposition writer: everything that touches bytes from
 * clients, other modules or the zone, with no request in sight.  This unit
 * never includes ngx_http.h, so a fuzzer links it with a few stand-ins for
 * nginx core functions (fuzz/ngx_shim.c) and nothing else.
 */


#ifndef _NGX_HTTP_GW_METRICS_CORE_H_INCLUDED_
#define _NGX_HTTP_GW_METRICS_CORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_GW_METRICS_VERSION        "0.1.0"

/* bump NGX_HTTP_GW_METRICS_MAGIC whenever the zone layout changes */
#define NGX_HTTP_GW_METRICS_MAGIC          0x67776d02

#define NGX_HTTP_GW_METRICS_LABEL_MAX      128
#define NGX_HTTP_GW_METRICS_BUCKETS_MAX    32
#define NGX_HTTP_GW_METRICS_SERIES_SIZE    256
#define NGX_HTTP_GW_METRICS_BOUND_MAX      1000000000000000ULL

#define NGX_HTTP_GW_METRICS_REQUESTS       0
#define NGX_HTTP_GW_METRICS_DURATION       1
#define NGX_HTTP_GW_METRICS_UPSTREAM       2
#define NGX_HTTP_GW_METRICS_AUTH           3
#define NGX_HTTP_GW_METRICS_RATELIMIT      4
#define NGX_HTTP_GW_METRICS_NFAMILIES      5

#define NGX_HTTP_GW_METRICS_COUNTER        0
#define NGX_HTTP_GW_METRICS_GAUGE          1
#define NGX_HTTP_GW_METRICS_HISTOGRAM      2
#define NGX_HTTP_GW_METRICS_INFO           3

#define NGX_HTTP_GW_METRICS_TEXT           0
#define NGX_HTTP_GW_METRICS_OPENMETRICS    1
#define NGX_HTTP_GW_METRICS_HTML           2

#define NGX_HTTP_GW_METRICS_OVERFLOW       0x01

/* "method" label values: index 0 is every method nginx does not know */
#define NGX_HTTP_GW_METRICS_METHOD_OTHER   0
#define NGX_HTTP_GW_METRICS_METHOD_NONE    0xff
#define NGX_HTTP_GW_METRICS_NMETHODS       17


typedef struct ngx_http_gw_metrics_series_s  ngx_http_gw_metrics_series_t;

struct ngx_http_gw_metrics_series_s {
    ngx_http_gw_metrics_series_t  *next;       /* hash chain */
    ngx_http_gw_metrics_series_t  *link;       /* family list */
    u_char                        *label;      /* after the counters */
    uint32_t                       hash;
    uint16_t                       status;
    u_char                         family;
    u_char                         method;
    u_char                         flags;
    u_char                         len;

    /*
     * counters: one for a counter family; for a histogram the sum in
     * microseconds, then a counter per bucket and the +Inf bucket
     */
    ngx_atomic_t                   value[1];
};


typedef struct {
    ngx_http_gw_metrics_series_t  *head;
    ngx_http_gw_metrics_series_t  *tail;
    ngx_http_gw_metrics_series_t  *overflow;
} ngx_http_gw_metrics_list_t;


typedef struct {
    uint32_t                       magic;
    uint32_t                       seed;
    ngx_uint_t                     nbuckets;
    uint64_t                       bounds[NGX_HTTP_GW_METRICS_BUCKETS_MAX];
    time_t                         start_time;
    ngx_uint_t                     mask;
    ngx_http_gw_metrics_series_t **table;
    ngx_atomic_t                   nseries;
    ngx_atomic_t                   max_series;
    ngx_atomic_t                   dropped;
    ngx_uint_t                     full_logged;

    /*
     * the series being created and the count it makes, until it is both
     * in its family list and in the hash table: a creator killed on the
     * way leaves them for the next holder of the lock to finish
     */
    ngx_http_gw_metrics_series_t  *pending;
    ngx_atomic_t                   pending_nseries;

    ngx_http_gw_metrics_list_t     families[NGX_HTTP_GW_METRICS_NFAMILIES];
} ngx_http_gw_metrics_shctx_t;


typedef struct {
    ngx_uint_t                     family;
    ngx_uint_t                     method;
    ngx_uint_t                     status;
    ngx_str_t                      label;
} ngx_http_gw_metrics_key_t;


typedef struct {
    ngx_str_t                      name;
    ngx_uint_t                     type;
    ngx_str_t                      unit;
    ngx_str_t                      help;
} ngx_http_gw_metrics_family_t;


/* the best q (0..1000) an Accept header gives each format, -1: none */
typedef struct {
    ngx_int_t                      om;
    ngx_int_t                      text;
    ngx_int_t                      html;
} ngx_http_gw_metrics_accept_t;


/* what a scrape shows besides the zone: filled in by the content handler */
typedef struct {
    ngx_atomic_uint_t              active;
    ngx_atomic_uint_t              reading;
    ngx_atomic_uint_t              writing;
    ngx_atomic_uint_t              waiting;
    ngx_atomic_uint_t              accepted;
    ngx_atomic_uint_t              handled;
    unsigned                       connections:1;
    unsigned                       auth:1;
    unsigned                       ratelimit:1;
} ngx_http_gw_metrics_stats_t;


ngx_http_gw_metrics_shctx_t *ngx_http_gw_metrics_create_sh(
    ngx_slab_pool_t *shpool, ngx_uint_t nbuckets, uint64_t *bounds,
    ngx_uint_t max_series, size_t size);
ngx_int_t ngx_http_gw_metrics_compatible(ngx_http_gw_metrics_shctx_t *sh,
    ngx_uint_t nbuckets, uint64_t *bounds);
ngx_http_gw_metrics_series_t *ngx_http_gw_metrics_get(
    ngx_http_gw_metrics_shctx_t *sh, ngx_slab_pool_t *shpool,
    ngx_http_gw_metrics_key_t *key, ngx_log_t *log);
void ngx_http_gw_metrics_observe(ngx_http_gw_metrics_shctx_t *sh,
    ngx_http_gw_metrics_series_t *s, uint64_t us);

/*
 * The two steps that make a new series visible, apart so that a test can
 * stop a worker between them (gdb breaks on their names): into its family
 * list (the scrape), then into the hash table (the log phase).
 */
void ngx_http_gw_metrics_link(ngx_http_gw_metrics_shctx_t *sh,
    ngx_http_gw_metrics_series_t *s);
void ngx_http_gw_metrics_publish(ngx_http_gw_metrics_shctx_t *sh,
    ngx_http_gw_metrics_series_t *s);

size_t ngx_http_gw_metrics_sanitize(u_char *dst, size_t size, u_char *src,
    size_t len);
ngx_uint_t ngx_http_gw_metrics_negotiate(u_char *p, u_char *last,
    ngx_http_gw_metrics_accept_t *accept);
ngx_uint_t ngx_http_gw_metrics_format(ngx_http_gw_metrics_accept_t *accept);

ngx_int_t ngx_http_gw_metrics_render(ngx_pool_t *pool,
    ngx_http_gw_metrics_shctx_t *sh, ngx_http_gw_metrics_stats_t *st,
    ngx_uint_t format, ngx_str_t *out);


extern ngx_http_gw_metrics_family_t  ngx_http_gw_metrics_families[];

/* the status page (ngx_http_gw_metrics_page.c) and its policy */
extern ngx_str_t  ngx_http_gw_metrics_page;
extern ngx_str_t  ngx_http_gw_metrics_page_csp;


#endif /* _NGX_HTTP_GW_METRICS_CORE_H_INCLUDED_ */
