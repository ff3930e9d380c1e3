
/*
 * Copyright (C) nginx-gw authors
 *
 * ngx_http_gw_metrics_module: Prometheus metrics aggregated across workers.
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
 * series; the creator fills the series in, issues a memory barrier and only
 * then links it into the chain and the family list, so a reader never sees
 * a half-built series.  A scrape reads the counters with plain loads.
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
#include <ngx_http.h>


#define NGX_HTTP_GW_METRICS_VERSION        "0.1.0"

/* bump NGX_HTTP_GW_METRICS_MAGIC whenever the zone layout changes */
#define NGX_HTTP_GW_METRICS_MAGIC          0x67776d01

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

#define NGX_HTTP_GW_METRICS_OVERFLOW       0x01

/* "method" label values: index 0 is every method nginx does not know */
#define NGX_HTTP_GW_METRICS_METHOD_OTHER   0
#define NGX_HTTP_GW_METRICS_METHOD_NONE    0xff

/* longest line parts that are not label values */
#define NGX_HTTP_GW_METRICS_NUMBER_LEN     24
#define NGX_HTTP_GW_METRICS_LE_LEN         32
#define NGX_HTTP_GW_METRICS_LABELS_LEN                                        \
    (sizeof("method=\"\",path=\"\",status=\"\"") - 1                          \
     + sizeof("__overflow__") - 1 + sizeof("__overflow__") - 1                \
     + 2 * NGX_HTTP_GW_METRICS_LABEL_MAX)


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


typedef struct {
    ngx_shm_zone_t                *shm_zone;
    ngx_slab_pool_t               *shpool;
    ngx_http_gw_metrics_shctx_t   *sh;
    ngx_uint_t                     max_series;
    ngx_uint_t                     nbuckets;
    uint64_t                       bounds[NGX_HTTP_GW_METRICS_BUCKETS_MAX];
    ngx_int_t                      auth_index;
    ngx_int_t                      ratelimit_index;
    unsigned                       enabled:1;
    unsigned                       endpoint:1;
} ngx_http_gw_metrics_main_conf_t;


typedef struct {
    ngx_flag_t                     enable;
    ngx_http_complex_value_t      *route;
} ngx_http_gw_metrics_loc_conf_t;


static ngx_int_t ngx_http_gw_metrics_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_gw_metrics_endpoint_handler(ngx_http_request_t *r);
static ngx_uint_t ngx_http_gw_metrics_method(ngx_http_request_t *r);
static ngx_msec_t ngx_http_gw_metrics_upstream_time(ngx_http_request_t *r);
static void ngx_http_gw_metrics_count_variable(ngx_http_request_t *r,
    ngx_http_gw_metrics_shctx_t *sh, ngx_slab_pool_t *shpool,
    ngx_uint_t family, ngx_int_t index);

static ngx_http_gw_metrics_shctx_t *ngx_http_gw_metrics_create_sh(
    ngx_slab_pool_t *shpool, ngx_uint_t nbuckets, uint64_t *bounds,
    ngx_uint_t max_series, size_t size);
static ngx_http_gw_metrics_series_t *ngx_http_gw_metrics_alloc_series(
    ngx_http_gw_metrics_shctx_t *sh, ngx_slab_pool_t *shpool,
    ngx_http_gw_metrics_key_t *key, uint32_t hash);
static ngx_http_gw_metrics_series_t *ngx_http_gw_metrics_get(
    ngx_http_gw_metrics_shctx_t *sh, ngx_slab_pool_t *shpool,
    ngx_http_gw_metrics_key_t *key, ngx_log_t *log);
static uint32_t ngx_http_gw_metrics_hash(ngx_http_gw_metrics_shctx_t *sh,
    ngx_http_gw_metrics_key_t *key);
static void ngx_http_gw_metrics_observe(ngx_http_gw_metrics_shctx_t *sh,
    ngx_http_gw_metrics_series_t *s, uint64_t us);

static size_t ngx_http_gw_metrics_sanitize(u_char *dst, size_t size,
    u_char *src, size_t len);
static u_char *ngx_http_gw_metrics_escape(u_char *dst, u_char *src,
    size_t len);
static ngx_uint_t ngx_http_gw_metrics_negotiate(u_char *p, u_char *last,
    ngx_int_t *om, ngx_int_t *text);
static ngx_int_t ngx_http_gw_metrics_parse_q(u_char *p, u_char *last);

static ngx_int_t ngx_http_gw_metrics_render(ngx_pool_t *pool,
    ngx_http_gw_metrics_shctx_t *sh, ngx_http_gw_metrics_stats_t *st,
    ngx_uint_t format, ngx_str_t *out);
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

static ngx_int_t ngx_http_gw_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_gw_metrics_compatible(
    ngx_http_gw_metrics_shctx_t *sh, ngx_http_gw_metrics_main_conf_t *gmcf);
static void ngx_http_gw_metrics_choose_tag(ngx_conf_t *cf,
    ngx_http_gw_metrics_main_conf_t *gmcf);
static ngx_int_t ngx_http_gw_metrics_find_variable(ngx_conf_t *cf,
    ngx_str_t *name);

static void *ngx_http_gw_metrics_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_gw_metrics_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_gw_metrics_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_gw_metrics_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_gw_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gw_metrics_buckets(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static int64_t ngx_http_gw_metrics_parse_seconds(u_char *p, size_t len);
static char *ngx_http_gw_metrics_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_gw_metrics_init(ngx_conf_t *cf);


/*
 * Two tags for one zone: nginx reuses a zone on reload only when name, size
 * and tag match.  When the old zone's layout does not match the new
 * configuration (other buckets), the zone gets the other tag, so nginx maps
 * a fresh segment and unmaps the old one once the old workers are gone.
 */
static u_char  ngx_http_gw_metrics_tags[2];


static uint64_t  ngx_http_gw_metrics_default_bounds[] = {
    5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000
};


static ngx_str_t  ngx_http_gw_metrics_methods[] = {
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


static ngx_http_gw_metrics_family_t  ngx_http_gw_metrics_families[] = {

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


static ngx_command_t  ngx_http_gw_metrics_commands[] = {

    { ngx_string("gw_metrics_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE23,
      ngx_http_gw_metrics_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gw_metrics"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_metrics_loc_conf_t, enable),
      NULL },

    { ngx_string("gw_metrics_route"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_metrics_loc_conf_t, route),
      NULL },

    { ngx_string("gw_metrics_buckets"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_gw_metrics_buckets,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gw_metrics_endpoint"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_gw_metrics_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_gw_metrics_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_gw_metrics_init,              /* postconfiguration */

    ngx_http_gw_metrics_create_main_conf,  /* create main configuration */
    ngx_http_gw_metrics_init_main_conf,    /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_gw_metrics_create_loc_conf,   /* create location configuration */
    ngx_http_gw_metrics_merge_loc_conf     /* merge location configuration */
};


ngx_module_t  ngx_http_gw_metrics_module = {
    NGX_MODULE_V1,
    &ngx_http_gw_metrics_module_ctx,       /* module context */
    ngx_http_gw_metrics_commands,          /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_gw_metrics_log_handler(ngx_http_request_t *r)
{
    ngx_str_t                         route;
    ngx_msec_t                        ums;
    ngx_time_t                       *tp;
    ngx_uint_t                        status;
    ngx_msec_int_t                    ms;
    ngx_slab_pool_t                  *shpool;
    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_gw_metrics_key_t         key;
    ngx_http_gw_metrics_shctx_t      *sh;
    ngx_http_gw_metrics_series_t     *s;
    ngx_http_gw_metrics_loc_conf_t   *glcf;
    ngx_http_gw_metrics_main_conf_t  *gmcf;
    u_char                            label[NGX_HTTP_GW_METRICS_LABEL_MAX];

    glcf = ngx_http_get_module_loc_conf(r, ngx_http_gw_metrics_module);

    if (!glcf->enable) {
        return NGX_OK;
    }

    gmcf = ngx_http_get_module_main_conf(r, ngx_http_gw_metrics_module);

    sh = gmcf->sh;
    shpool = gmcf->shpool;

    if (sh == NULL) {
        return NGX_OK;
    }

    if (glcf->route) {
        if (ngx_http_complex_value(r, glcf->route, &route) != NGX_OK) {
            return NGX_OK;
        }

    } else {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
        route = clcf->name;

        if (route.len == 0) {
            /* finished before a location matched: 400, server "return" */
            ngx_str_set(&route, "__none__");
        }
    }

    key.label.data = label;
    key.label.len = ngx_http_gw_metrics_sanitize(label, sizeof(label),
                                                 route.data, route.len);

    if (r->err_status) {
        status = r->err_status;

    } else if (r->headers_out.status) {
        status = r->headers_out.status;

    } else if (r->http_version == NGX_HTTP_VERSION_9) {
        status = 9;

    } else {
        status = 0;
    }

    if (status > 999) {
        status = 0;
    }

    key.family = NGX_HTTP_GW_METRICS_REQUESTS;
    key.method = ngx_http_gw_metrics_method(r);
    key.status = status;

    s = ngx_http_gw_metrics_get(sh, shpool, &key, r->connection->log);
    (void) ngx_atomic_fetch_add(&s->value[0], 1);

    tp = ngx_timeofday();

    ms = (ngx_msec_int_t)
             ((tp->sec - r->start_sec) * 1000 + (tp->msec - r->start_msec));
    ms = ngx_max(ms, 0);

    key.family = NGX_HTTP_GW_METRICS_DURATION;
    key.status = 0;

    s = ngx_http_gw_metrics_get(sh, shpool, &key, r->connection->log);
    ngx_http_gw_metrics_observe(sh, s, (uint64_t) ms * 1000);

    ums = ngx_http_gw_metrics_upstream_time(r);

    if (ums != (ngx_msec_t) -1) {
        key.family = NGX_HTTP_GW_METRICS_UPSTREAM;
        key.method = NGX_HTTP_GW_METRICS_METHOD_NONE;

        s = ngx_http_gw_metrics_get(sh, shpool, &key, r->connection->log);
        ngx_http_gw_metrics_observe(sh, s, (uint64_t) ums * 1000);
    }

    if (gmcf->auth_index != NGX_ERROR) {
        ngx_http_gw_metrics_count_variable(r, sh, shpool,
                                           NGX_HTTP_GW_METRICS_AUTH,
                                           gmcf->auth_index);
    }

    if (gmcf->ratelimit_index != NGX_ERROR) {
        ngx_http_gw_metrics_count_variable(r, sh, shpool,
                                           NGX_HTTP_GW_METRICS_RATELIMIT,
                                           gmcf->ratelimit_index);
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_gw_metrics_method(ngx_http_request_t *r)
{
    ngx_uint_t  i;

    static ngx_uint_t  methods[] = {
        NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_HTTP_POST, NGX_HTTP_PUT,
        NGX_HTTP_DELETE, NGX_HTTP_MKCOL, NGX_HTTP_COPY, NGX_HTTP_MOVE,
        NGX_HTTP_OPTIONS, NGX_HTTP_PROPFIND, NGX_HTTP_PROPPATCH,
        NGX_HTTP_LOCK, NGX_HTTP_UNLOCK, NGX_HTTP_PATCH, NGX_HTTP_TRACE,
#ifdef NGX_HTTP_CONNECT
        NGX_HTTP_CONNECT
#endif
    };

    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (r->method == methods[i]) {
            return i + 1;
        }
    }

    return NGX_HTTP_GW_METRICS_METHOD_OTHER;
}


/*
 * The time of every try (proxy_next_upstream) summed: what the client
 * waited for upstreams.  Entries without a peer separate upstream groups
 * after an internal redirect and carry no time.  (ngx_msec_t) -1 when no
 * try has a response time: not proxied, or served from the cache.
 */

static ngx_msec_t
ngx_http_gw_metrics_upstream_time(ngx_http_request_t *r)
{
    ngx_msec_t                  total;
    ngx_uint_t                  i, found;
    ngx_http_upstream_state_t  *state;

    if (r->upstream_states == NULL || r->upstream_states->nelts == 0) {
        return (ngx_msec_t) -1;
    }

    state = r->upstream_states->elts;
    total = 0;
    found = 0;

    for (i = 0; i < r->upstream_states->nelts; i++) {
        if (state[i].peer == NULL
            || state[i].response_time == (ngx_msec_t) -1)
        {
            continue;
        }

        total += state[i].response_time;
        found = 1;
    }

    return found ? total : (ngx_msec_t) -1;
}


static void
ngx_http_gw_metrics_count_variable(ngx_http_request_t *r,
    ngx_http_gw_metrics_shctx_t *sh, ngx_slab_pool_t *shpool,
    ngx_uint_t family, ngx_int_t index)
{
    ngx_http_variable_value_t     *v;
    ngx_http_gw_metrics_key_t      key;
    ngx_http_gw_metrics_series_t  *s;
    u_char                         label[NGX_HTTP_GW_METRICS_LABEL_MAX];

    v = ngx_http_get_indexed_variable(r, index);

    /* empty: the module did not evaluate this request */

    if (v == NULL || v->not_found || v->len == 0) {
        return;
    }

    key.family = family;
    key.method = NGX_HTTP_GW_METRICS_METHOD_NONE;
    key.status = 0;
    key.label.data = label;
    key.label.len = ngx_http_gw_metrics_sanitize(label, sizeof(label),
                                                 v->data, v->len);

    s = ngx_http_gw_metrics_get(sh, shpool, &key, r->connection->log);
    (void) ngx_atomic_fetch_add(&s->value[0], 1);
}


static ngx_int_t
ngx_http_gw_metrics_endpoint_handler(ngx_http_request_t *r)
{
    ngx_int_t                         rc, om, text;
    ngx_str_t                         out;
    ngx_buf_t                        *b;
    ngx_uint_t                        i, format;
    ngx_chain_t                       cl;
    ngx_list_part_t                  *part;
    ngx_table_elt_t                  *h;
    ngx_http_gw_metrics_stats_t       st;
    ngx_http_gw_metrics_main_conf_t  *gmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    gmcf = ngx_http_get_module_main_conf(r, ngx_http_gw_metrics_module);

    if (gmcf->sh == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* every Accept header line counts, whatever nginx keeps for itself */

    om = -1;
    text = -1;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Accept") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Accept",
                               sizeof("Accept") - 1) == 0)
        {
            (void) ngx_http_gw_metrics_negotiate(h[i].value.data,
                                              h[i].value.data + h[i].value.len,
                                              &om, &text);
        }
    }

    format = (om > 0 && om >= text) ? NGX_HTTP_GW_METRICS_OPENMETRICS
                                    : NGX_HTTP_GW_METRICS_TEXT;

    ngx_memzero(&st, sizeof(ngx_http_gw_metrics_stats_t));

#if (NGX_STAT_STUB)
    st.connections = 1;
    st.active = *ngx_stat_active;
    st.reading = *ngx_stat_reading;
    st.writing = *ngx_stat_writing;
    st.waiting = *ngx_stat_waiting;
    st.accepted = *ngx_stat_accepted;
    st.handled = *ngx_stat_handled;
#endif

    st.auth = (gmcf->auth_index != NGX_ERROR);
    st.ratelimit = (gmcf->ratelimit_index != NGX_ERROR);

    if (ngx_http_gw_metrics_render(r->pool, gmcf->sh, &st, format, &out)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = out.len;

    if (format == NGX_HTTP_GW_METRICS_OPENMETRICS) {
        ngx_str_set(&r->headers_out.content_type,
                    "application/openmetrics-text; version=1.0.0; "
                    "charset=utf-8");

    } else {
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = out.data;
    b->last = out.data + out.len;
    b->memory = (out.len != 0);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    cl.buf = b;
    cl.next = NULL;

    return ngx_http_output_filter(r, &cl);
}


static ngx_http_gw_metrics_shctx_t *
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


static ngx_http_gw_metrics_series_t *
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

    /* a full zone costs no lock: checked again under it below */

    if (*(volatile ngx_atomic_t *) &sh->nseries
        >= *(volatile ngx_atomic_t *) &sh->max_series)
    {
        goto overflow;
    }

    ngx_shmtx_lock(&shpool->mutex);

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
                          "gw_metrics ran out of memory at %uA series, "
                          "new series are counted as __overflow__%s",
                          sh->nseries, shpool->log_ctx);
        }

        ngx_shmtx_unlock(&shpool->mutex);
        goto overflow;
    }

    s->next = sh->table[i];

    /* the series is complete before any other process can reach it */

    ngx_memory_barrier();

    sh->table[i] = s;

    if (list->tail) {
        list->tail->link = s;

    } else {
        list->head = s;
    }

    list->tail = s;

    sh->nseries++;

    if (sh->nseries == sh->max_series && !sh->full_logged) {
        sh->full_logged = 1;
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "gw_metrics reached its limit of %uA series, "
                      "new series are counted as __overflow__%s",
                      sh->max_series, shpool->log_ctx);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return s;

overflow:

    (void) ngx_atomic_fetch_add(&sh->dropped, 1);

    return list->overflow;
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


static void
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

static size_t
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
 * catch-all wildcards) to "text"; both stay -1 when not mentioned.
 * Returns the number of media ranges seen.
 */

static ngx_uint_t
ngx_http_gw_metrics_negotiate(u_char *p, u_char *last, ngx_int_t *om,
    ngx_int_t *text)
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

        if (kind == 1 && q > *om) {
            *om = q;

        } else if (kind == 2 && q > *text) {
            *text = q;
        }
    }

    return ranges;
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

static ngx_int_t
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


static ngx_int_t
ngx_http_gw_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_gw_metrics_main_conf_t  *ogmcf = data;

    size_t                            len;
    ngx_slab_pool_t                  *shpool;
    ngx_http_gw_metrics_shctx_t      *sh;
    ngx_http_gw_metrics_main_conf_t  *gmcf;

    gmcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (ogmcf || shm_zone->shm.exists) {

        /* nginx handed us the old segment: same name, size and tag */

        sh = shpool->data;

        if (ngx_http_gw_metrics_compatible(sh, gmcf) != NGX_OK) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "gw_metrics zone \"%V\" cannot be reused: "
                          "its layout differs", &shm_zone->shm.name);
            return NGX_ERROR;
        }

        gmcf->sh = sh;
        gmcf->shpool = shpool;

        ngx_shmtx_lock(&shpool->mutex);

        sh->max_series = gmcf->max_series;
        sh->full_logged = 0;

        ngx_shmtx_unlock(&shpool->mutex);

        return NGX_OK;
    }

    sh = ngx_http_gw_metrics_create_sh(shpool, gmcf->nbuckets, gmcf->bounds,
                                       gmcf->max_series, shm_zone->shm.size);
    if (sh == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "gw_metrics zone \"%V\" is too small",
                      &shm_zone->shm.name);
        return NGX_ERROR;
    }

    shpool->data = sh;

    gmcf->sh = sh;
    gmcf->shpool = shpool;

    len = sizeof(" in gw_metrics zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in gw_metrics zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* running out is expected under attack: overflow counts it, quietly */

    shpool->log_nomem = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_metrics_compatible(ngx_http_gw_metrics_shctx_t *sh,
    ngx_http_gw_metrics_main_conf_t *gmcf)
{
    if (sh == NULL
        || sh->magic != NGX_HTTP_GW_METRICS_MAGIC
        || sh->nbuckets != gmcf->nbuckets
        || ngx_memcmp(sh->bounds, gmcf->bounds,
                      gmcf->nbuckets * sizeof(uint64_t)) != 0)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * On reload, look at the zone the running configuration uses.  Compatible
 * (same layout, same size): keep its tag, nginx passes the old segment to
 * ngx_http_gw_metrics_init_zone() and every series survives.  Otherwise
 * say why the series start from zero; for other buckets switch the tag so
 * that nginx allocates a new segment (a new size does that by itself).
 */

static void
ngx_http_gw_metrics_choose_tag(ngx_conf_t *cf,
    ngx_http_gw_metrics_main_conf_t *gmcf)
{
    ngx_uint_t        i;
    ngx_cycle_t      *old;
    ngx_shm_zone_t   *zone, *oz;
    ngx_list_part_t  *part;
    ngx_slab_pool_t  *shpool;

    zone = gmcf->shm_zone;
    zone->tag = &ngx_http_gw_metrics_tags[0];

    old = cf->cycle->old_cycle;

    if (old == NULL || ngx_is_init_cycle(old)) {
        return;
    }

    part = &old->shared_memory.part;
    oz = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return;
            }

            part = part->next;
            oz = part->elts;
            i = 0;
        }

        if (oz[i].shm.name.len == zone->shm.name.len
            && ngx_strncmp(oz[i].shm.name.data, zone->shm.name.data,
                           zone->shm.name.len) == 0
            && (oz[i].tag == &ngx_http_gw_metrics_tags[0]
                || oz[i].tag == &ngx_http_gw_metrics_tags[1]))
        {
            break;
        }
    }

    zone->tag = oz[i].tag;

    if (oz[i].shm.size != zone->shm.size) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "gw_metrics zone \"%V\" changed size from %uz to %uz, "
                      "its series start from zero",
                      &zone->shm.name, oz[i].shm.size, zone->shm.size);
        return;
    }

    shpool = (ngx_slab_pool_t *) oz[i].shm.addr;

    if (shpool == NULL
        || ngx_http_gw_metrics_compatible(shpool->data, gmcf) == NGX_OK)
    {
        return;
    }

    zone->tag = (oz[i].tag == &ngx_http_gw_metrics_tags[0])
                ? &ngx_http_gw_metrics_tags[1] : &ngx_http_gw_metrics_tags[0];

    ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                  "gw_metrics zone \"%V\" has other histogram buckets "
                  "than \"gw_metrics_buckets\", its series start from zero",
                  &zone->shm.name);
}


/* never names a variable that does not exist: nginx -t would then fail */

static ngx_int_t
ngx_http_gw_metrics_find_variable(ngx_conf_t *cf, ngx_str_t *name)
{
    ngx_uint_t                  i;
    ngx_hash_key_t             *key;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    if (cmcf->variables_keys == NULL) {
        return NGX_ERROR;
    }

    key = cmcf->variables_keys->keys.elts;

    for (i = 0; i < cmcf->variables_keys->keys.nelts; i++) {
        if (key[i].key.len == name->len
            && ngx_strncasecmp(key[i].key.data, name->data, name->len) == 0)
        {
            return ngx_http_get_variable_index(cf, name);
        }
    }

    return NGX_ERROR;
}


static void *
ngx_http_gw_metrics_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_gw_metrics_main_conf_t  *gmcf;

    gmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gw_metrics_main_conf_t));
    if (gmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     gmcf->shm_zone = NULL;
     *     gmcf->sh = NULL;
     *     gmcf->nbuckets = 0;
     *     gmcf->enabled = 0;
     *     gmcf->endpoint = 0;
     */

    gmcf->max_series = NGX_CONF_UNSET_UINT;
    gmcf->auth_index = NGX_ERROR;
    gmcf->ratelimit_index = NGX_ERROR;

    return gmcf;
}


static char *
ngx_http_gw_metrics_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_gw_metrics_main_conf_t  *gmcf = conf;

    if (gmcf->nbuckets == 0) {
        gmcf->nbuckets = sizeof(ngx_http_gw_metrics_default_bounds)
                         / sizeof(uint64_t);
        ngx_memcpy(gmcf->bounds, ngx_http_gw_metrics_default_bounds,
                   sizeof(ngx_http_gw_metrics_default_bounds));
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_gw_metrics_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_gw_metrics_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gw_metrics_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->enable = NGX_CONF_UNSET;
    conf->route = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_http_gw_metrics_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_gw_metrics_loc_conf_t *prev = parent;
    ngx_http_gw_metrics_loc_conf_t *conf = child;

    ngx_http_gw_metrics_main_conf_t  *gmcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_ptr_value(conf->route, prev->route, NULL);

    if (conf->enable) {
        gmcf = ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_gw_metrics_module);
        gmcf->enabled = 1;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_gw_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gw_metrics_main_conf_t  *gmcf = conf;

    ssize_t          size;
    ngx_int_t        n;
    ngx_str_t       *value, name, s;
    ngx_uint_t       max;
    ngx_shm_zone_t  *shm_zone;

    if (gmcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    name = value[1];

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small", &value[1]);
        return NGX_CONF_ERROR;
    }

    /* what a series takes on average, short labels and 11 buckets */

    max = size / NGX_HTTP_GW_METRICS_SERIES_SIZE;

    if (cf->args->nelts == 4) {

        if (ngx_strncmp(value[3].data, "max_series=", 11) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[3]);
            return NGX_CONF_ERROR;
        }

        s.data = value[3].data + 11;
        s.len = value[3].len - 11;

        n = ngx_atoi(s.data, s.len);

        if (n <= 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid max_series \"%V\"", &s);
            return NGX_CONF_ERROR;
        }

        if ((ngx_uint_t) n > max) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "max_series=%i needs a zone of at least %uzk",
                               n, (size_t) n * NGX_HTTP_GW_METRICS_SERIES_SIZE
                                  / 1024);
            return NGX_CONF_ERROR;
        }

        max = n;
    }

    gmcf->max_series = max;

    shm_zone = ngx_shared_memory_add(cf, &name, size,
                                     &ngx_http_gw_metrics_tags[0]);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_http_gw_metrics_init_zone;
    shm_zone->data = gmcf;

    gmcf->shm_zone = shm_zone;

    return NGX_CONF_OK;
}


static char *
ngx_http_gw_metrics_buckets(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gw_metrics_main_conf_t  *gmcf = conf;

    int64_t      us;
    ngx_str_t   *value;
    ngx_uint_t   i;

    if (gmcf->nbuckets) {
        return "is duplicate";
    }

    if (cf->args->nelts - 1 > NGX_HTTP_GW_METRICS_BUCKETS_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many buckets, %d at most",
                           NGX_HTTP_GW_METRICS_BUCKETS_MAX);
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        us = ngx_http_gw_metrics_parse_seconds(value[i].data, value[i].len);

        if (us < 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid bucket \"%V\": seconds from 0 to "
                               "1000000000 with at most 6 decimals expected",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        if (i > 1 && (uint64_t) us <= gmcf->bounds[i - 2]) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "bucket \"%V\" is not greater than \"%V\", "
                               "buckets must be in increasing order",
                               &value[i], &value[i - 1]);
            return NGX_CONF_ERROR;
        }

        gmcf->bounds[i - 1] = (uint64_t) us;
    }

    gmcf->nbuckets = cf->args->nelts - 1;

    return NGX_CONF_OK;
}


/* "0.005", "1", "2.5": seconds to microseconds, -1 if invalid */

static int64_t
ngx_http_gw_metrics_parse_seconds(u_char *p, size_t len)
{
    u_char    *last;
    uint64_t   us, scale;

    last = p + len;
    us = 0;

    if (p == last || *p < '0' || *p > '9') {
        return -1;
    }

    for ( /* void */ ; p < last && *p >= '0' && *p <= '9'; p++) {
        us = us * 10 + (*p - '0');

        if (us > NGX_HTTP_GW_METRICS_BOUND_MAX / 1000000) {
            return -1;
        }
    }

    us *= 1000000;

    if (p < last) {
        if (*p++ != '.' || p == last) {
            return -1;
        }

        for (scale = 100000; p < last; p++, scale /= 10) {
            if (*p < '0' || *p > '9' || scale == 0) {
                return -1;
            }

            us += (*p - '0') * scale;
        }
    }

    if (us > NGX_HTTP_GW_METRICS_BOUND_MAX) {
        return -1;
    }

    return (int64_t) us;
}


static char *
ngx_http_gw_metrics_endpoint(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_gw_metrics_main_conf_t  *gmcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler == ngx_http_gw_metrics_endpoint_handler) {
        return "is duplicate";
    }

    clcf->handler = ngx_http_gw_metrics_endpoint_handler;

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_gw_metrics_module);
    gmcf->endpoint = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_gw_metrics_init(ngx_conf_t *cf)
{
    ngx_str_t                         name;
    ngx_http_handler_pt              *h;
    ngx_http_core_main_conf_t        *cmcf;
    ngx_http_gw_metrics_main_conf_t  *gmcf;

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_gw_metrics_module);

    if (gmcf->shm_zone == NULL) {

        if (gmcf->enabled || gmcf->endpoint) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"%s\" requires a \"gw_metrics_zone\"",
                          gmcf->endpoint ? "gw_metrics_endpoint"
                                         : "gw_metrics on");
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    ngx_http_gw_metrics_choose_tag(cf, gmcf);

    /* the other gw modules, when loaded: their variables exist by now */

    ngx_str_set(&name, "gw_auth_status");
    gmcf->auth_index = ngx_http_gw_metrics_find_variable(cf, &name);

    ngx_str_set(&name, "gw_ratelimit_status");
    gmcf->ratelimit_index = ngx_http_gw_metrics_find_variable(cf, &name);

    if (!gmcf->enabled) {
        return NGX_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_gw_metrics_log_handler;

    return NGX_OK;
}
