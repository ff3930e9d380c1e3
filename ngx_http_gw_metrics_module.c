
/*
 * Copyright (C) nginx-gw authors
 *
 * ngx_http_gw_metrics_module: Prometheus metrics aggregated across workers.
 *
 * The module counts each request in the log phase into a shared memory
 * zone and serves the zone from gw_metrics_endpoint: to scrapers in the
 * text format or OpenMetrics, to browsers as a status page that reads the
 * text format itself.  The zone, the label values, the Accept negotiation
 * and the exposition writer live in ngx_http_gw_metrics_core.c, which a
 * fuzzer links without nginx's HTTP code.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gw_conf.h"
#include "ngx_http_gw_metrics_core.h"


/*
 * A worker's memo of the series it counts into, in front of the zone's
 * hash table (a lookup, and the label made valid UTF-8, per series).  A
 * series lives as long as its zone, and a zone as long as the cycle that
 * uses it: a memo lives in its cycle's memory (copied by fork, so each
 * worker fills its own) and dies with it.  It is small and fixed: keys
 * that do not fit take turns, and cost a lookup as before.  An overflow
 * series is never kept, so that each request counted there is counted as
 * dropped.
 *
 * Per location whose route is fixed (the location's name, or a
 * gw_metrics_route without variables), by method and status, in a slot
 * of their own: the series of requests, duration and upstream time.
 */

#define NGX_HTTP_GW_METRICS_MEMO_ROUTE  16

typedef struct {
    ngx_http_gw_metrics_series_t  *requests;
    ngx_http_gw_metrics_series_t  *duration;
    ngx_http_gw_metrics_series_t  *upstream;
    ngx_uint_t                     status;
    ngx_uint_t                     method;
} ngx_http_gw_metrics_memo_t;


/*
 * Per family counted from a variable ($gw_auth_status,
 * $gw_ratelimit_status), a few values as read and their series, searched
 * in turn; when all are taken, a new value replaces the oldest.
 */

#define NGX_HTTP_GW_METRICS_MEMO_VALUES 8
#define NGX_HTTP_GW_METRICS_MEMO_VALUE  23

typedef struct {
    ngx_http_gw_metrics_series_t  *series;
    u_char                         len;
    u_char                         value[NGX_HTTP_GW_METRICS_MEMO_VALUE];
} ngx_http_gw_metrics_vmemo_t;


typedef struct {
    ngx_http_gw_metrics_vmemo_t    value[NGX_HTTP_GW_METRICS_MEMO_VALUES];
    ngx_uint_t                     next;
} ngx_http_gw_metrics_vmemos_t;


typedef struct {
    ngx_shm_zone_t                *shm_zone;
    ngx_slab_pool_t               *shpool;
    ngx_http_gw_metrics_shctx_t   *sh;
    ngx_uint_t                     max_series;
    ngx_uint_t                     nbuckets;
    uint64_t                       bounds[NGX_HTTP_GW_METRICS_BUCKETS_MAX];
    ngx_int_t                      auth_index;
    ngx_int_t                      ratelimit_index;
    ngx_http_gw_metrics_vmemos_t   memo[2];    /* auth, ratelimit */
    unsigned                       enabled:1;
    unsigned                       endpoint:1;
} ngx_http_gw_metrics_main_conf_t;


typedef struct {
    ngx_flag_t                     enable;
    ngx_http_complex_value_t      *route;
    ngx_http_gw_metrics_memo_t    *memo;       /* NULL: the route varies */
} ngx_http_gw_metrics_loc_conf_t;


static ngx_int_t ngx_http_gw_metrics_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_gw_metrics_endpoint_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_gw_metrics_page_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_gw_metrics_send(ngx_http_request_t *r,
    ngx_str_t *out);
static ngx_int_t ngx_http_gw_metrics_header(ngx_http_request_t *r,
    char *name, char *value);
static ngx_uint_t ngx_http_gw_metrics_method(ngx_http_request_t *r);
static ngx_msec_t ngx_http_gw_metrics_upstream_time(ngx_http_request_t *r);
static ngx_int_t ngx_http_gw_metrics_route(ngx_http_request_t *r,
    ngx_http_gw_metrics_loc_conf_t *glcf, ngx_str_t *label);
static ngx_http_gw_metrics_series_t *ngx_http_gw_metrics_lookup(
    ngx_http_gw_metrics_main_conf_t *gmcf, ngx_http_gw_metrics_key_t *key,
    ngx_http_gw_metrics_series_t **memo, ngx_log_t *log);
static void ngx_http_gw_metrics_count_variable(ngx_http_request_t *r,
    ngx_http_gw_metrics_main_conf_t *gmcf, ngx_uint_t family,
    ngx_int_t index);

static ngx_int_t ngx_http_gw_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
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
    ngx_msec_t                        ums;
    ngx_time_t                       *tp;
    ngx_uint_t                        status, method;
    ngx_msec_int_t                    ms;
    ngx_http_gw_metrics_key_t         key;
    ngx_http_gw_metrics_memo_t       *memo;
    ngx_http_gw_metrics_series_t     *s;
    ngx_http_gw_metrics_loc_conf_t   *glcf;
    ngx_http_gw_metrics_main_conf_t  *gmcf;
    u_char                            label[NGX_HTTP_GW_METRICS_LABEL_MAX];

    glcf = ngx_http_get_module_loc_conf(r, ngx_http_gw_metrics_module);

    if (!glcf->enable) {
        return NGX_OK;
    }

    gmcf = ngx_http_get_module_main_conf(r, ngx_http_gw_metrics_module);

    if (gmcf->sh == NULL) {
        return NGX_OK;
    }

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

    method = ngx_http_gw_metrics_method(r);
    ums = ngx_http_gw_metrics_upstream_time(r);

    memo = NULL;

    if (glcf->memo) {
        memo = &glcf->memo[(status + (status >> 4) + method * 5)
                           & (NGX_HTTP_GW_METRICS_MEMO_ROUTE - 1)];

        if (memo->status != status || memo->method != method) {
            memo->requests = NULL;
            memo->duration = NULL;
            memo->upstream = NULL;
            memo->status = status;
            memo->method = method;
        }
    }

    /* the route label, unless every series is known */

    if (memo == NULL
        || memo->requests == NULL
        || memo->duration == NULL
        || (ums != (ngx_msec_t) -1 && memo->upstream == NULL))
    {
        key.label.data = label;

        if (ngx_http_gw_metrics_route(r, glcf, &key.label) != NGX_OK) {
            return NGX_OK;
        }
    }

    key.family = NGX_HTTP_GW_METRICS_REQUESTS;
    key.method = method;
    key.status = status;

    s = ngx_http_gw_metrics_lookup(gmcf, &key, memo ? &memo->requests : NULL,
                                   r->connection->log);
    (void) ngx_atomic_fetch_add(&s->value[0], 1);

    tp = ngx_timeofday();

    ms = (ngx_msec_int_t)
             ((tp->sec - r->start_sec) * 1000 + (tp->msec - r->start_msec));
    ms = ngx_max(ms, 0);

    key.family = NGX_HTTP_GW_METRICS_DURATION;
    key.status = 0;

    s = ngx_http_gw_metrics_lookup(gmcf, &key, memo ? &memo->duration : NULL,
                                   r->connection->log);
    ngx_http_gw_metrics_observe(gmcf->sh, s, (uint64_t) ms * 1000);

    if (ums != (ngx_msec_t) -1) {
        key.family = NGX_HTTP_GW_METRICS_UPSTREAM;
        key.method = NGX_HTTP_GW_METRICS_METHOD_NONE;

        s = ngx_http_gw_metrics_lookup(gmcf, &key,
                                       memo ? &memo->upstream : NULL,
                                       r->connection->log);
        ngx_http_gw_metrics_observe(gmcf->sh, s, (uint64_t) ums * 1000);
    }

    if (gmcf->auth_index != NGX_ERROR) {
        ngx_http_gw_metrics_count_variable(r, gmcf, NGX_HTTP_GW_METRICS_AUTH,
                                           gmcf->auth_index);
    }

    if (gmcf->ratelimit_index != NGX_ERROR) {
        ngx_http_gw_metrics_count_variable(r, gmcf,
                                           NGX_HTTP_GW_METRICS_RATELIMIT,
                                           gmcf->ratelimit_index);
    }

    return NGX_OK;
}


/* the route label: gw_metrics_route, else the location's name */

static ngx_int_t
ngx_http_gw_metrics_route(ngx_http_request_t *r,
    ngx_http_gw_metrics_loc_conf_t *glcf, ngx_str_t *label)
{
    ngx_str_t                  route;
    ngx_http_core_loc_conf_t  *clcf;

    if (glcf->route) {
        if (ngx_http_complex_value(r, glcf->route, &route) != NGX_OK) {
            return NGX_ERROR;
        }

    } else {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
        route = clcf->name;

        if (route.len == 0) {
            /* finished before a location matched: 400, server "return" */
            ngx_str_set(&route, "__none__");
        }
    }

    label->len = ngx_http_gw_metrics_sanitize(label->data,
                                              NGX_HTTP_GW_METRICS_LABEL_MAX,
                                              route.data, route.len);

    return NGX_OK;
}


/* a series from the memo slot "memo" if it has one, else from the zone */

static ngx_http_gw_metrics_series_t *
ngx_http_gw_metrics_lookup(ngx_http_gw_metrics_main_conf_t *gmcf,
    ngx_http_gw_metrics_key_t *key, ngx_http_gw_metrics_series_t **memo,
    ngx_log_t *log)
{
    ngx_http_gw_metrics_series_t  *s;

    if (memo && *memo) {
        return *memo;
    }

    s = ngx_http_gw_metrics_get(gmcf->sh, gmcf->shpool, key, log);

    if (memo && !(s->flags & NGX_HTTP_GW_METRICS_OVERFLOW)) {
        *memo = s;
    }

    return s;
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
    ngx_http_gw_metrics_main_conf_t *gmcf, ngx_uint_t family, ngx_int_t index)
{
    ngx_uint_t                     i;
    ngx_http_variable_value_t     *v;
    ngx_http_gw_metrics_key_t      key;
    ngx_http_gw_metrics_vmemo_t   *vm;
    ngx_http_gw_metrics_vmemos_t  *memo;
    ngx_http_gw_metrics_series_t  *s;
    u_char                         label[NGX_HTTP_GW_METRICS_LABEL_MAX];

    v = ngx_http_get_indexed_variable(r, index);

    /* empty: the module did not evaluate this request */

    if (v == NULL || v->not_found || v->len == 0) {
        return;
    }

    memo = &gmcf->memo[family == NGX_HTTP_GW_METRICS_AUTH ? 0 : 1];

    for (i = 0; i < NGX_HTTP_GW_METRICS_MEMO_VALUES; i++) {
        vm = &memo->value[i];

        if (vm->series == NULL) {
            break;
        }

        if (vm->len == v->len
            && ngx_memcmp(vm->value, v->data, v->len) == 0)
        {
            (void) ngx_atomic_fetch_add(&vm->series->value[0], 1);
            return;
        }
    }

    key.family = family;
    key.method = NGX_HTTP_GW_METRICS_METHOD_NONE;
    key.status = 0;
    key.label.data = label;
    key.label.len = ngx_http_gw_metrics_sanitize(label, sizeof(label),
                                                 v->data, v->len);

    s = ngx_http_gw_metrics_get(gmcf->sh, gmcf->shpool, &key,
                                r->connection->log);
    (void) ngx_atomic_fetch_add(&s->value[0], 1);

    if (v->len > NGX_HTTP_GW_METRICS_MEMO_VALUE
        || (s->flags & NGX_HTTP_GW_METRICS_OVERFLOW))
    {
        return;
    }

    if (i == NGX_HTTP_GW_METRICS_MEMO_VALUES) {
        i = memo->next++ % NGX_HTTP_GW_METRICS_MEMO_VALUES;
    }

    vm = &memo->value[i];

    vm->series = s;
    vm->len = (u_char) v->len;
    ngx_memcpy(vm->value, v->data, v->len);
}


static ngx_int_t
ngx_http_gw_metrics_endpoint_handler(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_str_t                         out;
    ngx_uint_t                        i, format;
    ngx_list_part_t                  *part;
    ngx_table_elt_t                  *h;
    ngx_http_gw_metrics_stats_t       st;
    ngx_http_gw_metrics_accept_t      accept;
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

    accept.om = -1;
    accept.text = -1;
    accept.html = -1;

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
                                              &accept);
        }
    }

    format = ngx_http_gw_metrics_format(&accept);

    /* one URL, several representations: caches must key on Accept */

    if (ngx_http_gw_metrics_header(r, "Vary", "Accept") != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (format == NGX_HTTP_GW_METRICS_HTML) {
        return ngx_http_gw_metrics_page_handler(r);
    }

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

    return ngx_http_gw_metrics_send(r, &out);
}


/*
 * The status page: static, self-contained, and allowed to run nothing but
 * its own inline script and style (their hashes are in the policy) and to
 * fetch nothing but this same location, in the text format.
 */

static ngx_int_t
ngx_http_gw_metrics_page_handler(ngx_http_request_t *r)
{
    ngx_str_set(&r->headers_out.content_type, "text/html; charset=utf-8");

    if (ngx_http_gw_metrics_header(r, "Cache-Control", "no-store") != NGX_OK
        || ngx_http_gw_metrics_header(r, "Content-Security-Policy",
                                 (char *) ngx_http_gw_metrics_page_csp.data)
           != NGX_OK
        || ngx_http_gw_metrics_header(r, "X-Content-Type-Options", "nosniff")
           != NGX_OK
        || ngx_http_gw_metrics_header(r, "Referrer-Policy", "no-referrer")
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_gw_metrics_send(r, &ngx_http_gw_metrics_page);
}


static ngx_int_t
ngx_http_gw_metrics_send(ngx_http_request_t *r, ngx_str_t *out)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   cl;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = out->len;
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

    b->pos = out->data;
    b->last = out->data + out->len;
    b->memory = (out->len != 0);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    cl.buf = b;
    cl.next = NULL;

    return ngx_http_output_filter(r, &cl);
}


/* a response header whose name and value are static strings */

static ngx_int_t
ngx_http_gw_metrics_header(ngx_http_request_t *r, char *name, char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);

    return NGX_OK;
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

        if (ngx_http_gw_metrics_compatible(sh, gmcf->nbuckets,
                                           gmcf->bounds) != NGX_OK) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "gw_metrics: zone \"%V\" cannot be reused: "
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
                      "gw_metrics: zone \"%V\" is too small",
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
                      "gw_metrics: zone \"%V\" changed size from %uz to %uz, "
                      "its series start from zero",
                      &zone->shm.name, oz[i].shm.size, zone->shm.size);
        return;
    }

    shpool = (ngx_slab_pool_t *) oz[i].shm.addr;

    if (shpool == NULL
        || ngx_http_gw_metrics_compatible(shpool->data, gmcf->nbuckets,
                                          gmcf->bounds) == NGX_OK)
    {
        return;
    }

    zone->tag = (oz[i].tag == &ngx_http_gw_metrics_tags[0])
                ? &ngx_http_gw_metrics_tags[1] : &ngx_http_gw_metrics_tags[0];

    ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                  "gw_metrics: zone \"%V\" has other histogram buckets "
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

        if (conf->route == NULL || conf->route->lengths == NULL) {
            conf->memo = ngx_pcalloc(cf->pool,
                                     NGX_HTTP_GW_METRICS_MEMO_ROUTE
                                     * sizeof(ngx_http_gw_metrics_memo_t));
            if (conf->memo == NULL) {
                return NGX_CONF_ERROR;
            }
        }
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

        if (!ngx_http_gw_conf_param(&value[3], "max_series=", &s)) {
            return ngx_http_gw_conf_invalid_param(cf, &value[3]);
        }

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
