
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: ngx_http_gw_trace_module
 *
 * X-Trace-ID and W3C Trace Context (Level 2) propagation.
 *
 * Design
 *
 *   One ngx_http_gw_trace_ctx_t per main request holds the ids of the
 *   request: the trace id as logged and forwarded, the 128-bit W3C trace-id,
 *   this hop's span id, the caller's span id, the flags, the outgoing
 *   traceparent and the processed tracestate.  It is built lazily, once, by
 *   whoever needs it first: a variable (also in the log phase of a request
 *   that ended before the rewrite phase, e.g. a 400), the rewrite phase
 *   handler, or the header filter.  Subrequests (auth_request, mirror) use
 *   the main request's context; internal redirects, which clear module
 *   contexts, find it again through a marker pool cleanup, as realip does.
 *
 *   Incoming ids are parsed by functions that take bytes only (no request),
 *   in ngx_http_gw_trace_context.c, so a fuzzer can call them:
 *     ngx_http_gw_tc_parse_traceparent()   traceparent -> ids and flags
 *     ngx_http_gw_tc_tracestate_*()        tracestate lines -> list
 *     ngx_http_gw_tc_parse_id()            X-Trace-ID -> 128-bit id
 *
 *   Propagation: in the rewrite phase of the main request the module writes
 *   the trace id header, traceparent (parent-id = this hop's span) and the
 *   processed tracestate into r->headers_in, replacing whatever the client
 *   sent, so proxy_pass (and fastcgi_pass, grpc_pass...) forward them with
 *   no proxy_set_header; a proxy_set_header for the same name still wins,
 *   as the proxy module skips incoming headers it sets itself.  The header
 *   filter returns the trace id header on the response.
 *
 *   Random ids come from getrandom(2), read 4 KiB at a time per worker.
 *
 *   Span export (gw_trace_otlp): the log phase handler builds one SERVER
 *   span of a sampled main request and hands it to the worker's exporter
 *   (ngx_http_gw_otlp_export.c), which encodes it (ngx_http_gw_otlp.c)
 *   into a batch and sends batches from the event loop; a request never
 *   waits for the collector.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <sys/random.h>

#include "ngx_http_gw_conf.h"
#include "ngx_http_gw_trace_context.h"
#include "ngx_http_gw_otlp.h"
#include "ngx_http_gw_otlp_export.h"


#define NGX_HTTP_GW_TRACE_PROPAGATE     0
#define NGX_HTTP_GW_TRACE_EXTRACT       1
#define NGX_HTTP_GW_TRACE_INJECT        2
#define NGX_HTTP_GW_TRACE_IGNORE        3

#define NGX_HTTP_GW_TRACE_RANDOM_SIZE   4096

/* gw_trace_sample with a variable, not a ratio */
#define NGX_HTTP_GW_TRACE_NO_RATIO      10001

/* span attributes of a location, beyond the built-in ones */
#define NGX_HTTP_GW_TRACE_SPAN_ATTRS    32
#define NGX_HTTP_GW_TRACE_BUILTIN_ATTRS 14


typedef struct {
    ngx_http_gw_otlp_export_conf_t  *otlp;
    ngx_str_t                        service_name;
    ngx_array_t                     *resource;      /* ngx_keyval_t */
    ngx_int_t                        upstream_addr;
    ngx_int_t                        upstream_time;
} ngx_http_gw_trace_main_conf_t;


typedef struct {
    ngx_str_t                        key;
    ngx_http_complex_value_t         value;
} ngx_http_gw_trace_attr_t;


typedef struct {
    ngx_flag_t                  enable;
    ngx_flag_t                  response_header;
    ngx_uint_t                  context;
    ngx_http_complex_value_t   *sample;
    ngx_uint_t                  sample_ratio;   /* 1/10000 */
    uint64_t                    sample_threshold;
    ngx_http_complex_value_t   *route;
    ngx_array_t                *span_attrs;     /* ngx_http_gw_trace_attr_t */
    ngx_str_t                   header;
    ngx_str_t                   header_lc;
    ngx_uint_t                  header_hash;
} ngx_http_gw_trace_loc_conf_t;


typedef struct {
    ngx_str_t                   trace_id;
    ngx_str_t                   tracestate;
    ngx_str_t                   header;
    ngx_str_t                   header_lc;
    ngx_uint_t                  header_hash;
    u_char                      trace_bin[16];
    u_char                      span_bin[8];
    u_char                      parent_bin[8];
    u_char                      trace_hex[32];
    u_char                      span_hex[16];
    u_char                      parent_hex[16];
    u_char                      traceparent[NGX_HTTP_GW_TC_TRACEPARENT_LEN];
    u_char                      flags;
    unsigned                    has_parent:1;
    unsigned                    inject:1;
    unsigned                    applied:1;
    unsigned                    exported:1;
} ngx_http_gw_trace_ctx_t;


/* the trace headers of a request, as found by ngx_http_gw_trace_scan() */
#define NGX_HTTP_GW_TRACE_H_NONE        0
#define NGX_HTTP_GW_TRACE_H_ID          1
#define NGX_HTTP_GW_TRACE_H_PARENT      2
#define NGX_HTTP_GW_TRACE_H_STATE       3


typedef struct {
    ngx_table_elt_t            *first;
    ngx_uint_t                  count;
} ngx_http_gw_trace_found_t;


static ngx_int_t ngx_http_gw_trace_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_gw_trace_header_filter(ngx_http_request_t *r);
static ngx_http_gw_trace_ctx_t *ngx_http_gw_trace_find_ctx(
    ngx_http_request_t *r);
static ngx_http_gw_trace_ctx_t *ngx_http_gw_trace_get_ctx(
    ngx_http_request_t *r);
static ngx_http_gw_trace_ctx_t *ngx_http_gw_trace_create_ctx(
    ngx_http_request_t *r, ngx_http_gw_trace_loc_conf_t *gtcf);
static void ngx_http_gw_trace_cleanup(void *data);
static ngx_int_t ngx_http_gw_trace_sampled(ngx_http_request_t *r,
    ngx_http_gw_trace_loc_conf_t *gtcf);
static ngx_uint_t ngx_http_gw_trace_scan(ngx_http_request_t *r,
    ngx_http_gw_trace_ctx_t *ctx, ngx_http_gw_trace_found_t *found,
    ngx_http_gw_tc_state_t *ts);
static ngx_uint_t ngx_http_gw_trace_header_type(ngx_table_elt_t *h,
    ngx_http_gw_trace_ctx_t *ctx);
static ngx_int_t ngx_http_gw_trace_apply(ngx_http_request_t *r,
    ngx_http_gw_trace_ctx_t *ctx);
static ngx_int_t ngx_http_gw_trace_set_header(ngx_http_request_t *r,
    ngx_table_elt_t *h, ngx_str_t *key, ngx_str_t *lc, ngx_uint_t hash,
    ngx_str_t *value);
static ngx_int_t ngx_http_gw_trace_random(u_char *buf, size_t len);
static ngx_int_t ngx_http_gw_trace_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_gw_trace_span(ngx_http_request_t *r,
    ngx_http_gw_trace_main_conf_t *gtmcf, ngx_http_gw_trace_loc_conf_t *gtcf,
    ngx_http_gw_trace_ctx_t *ctx);
static void ngx_http_gw_trace_attr_str(ngx_http_gw_otlp_attr_t *a, char *key,
    ngx_str_t *value);


static ngx_int_t ngx_http_gw_trace_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_gw_trace_add_variables(ngx_conf_t *cf);
static void *ngx_http_gw_trace_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_gw_trace_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_gw_trace_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_gw_trace_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_gw_trace_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gw_trace_sample(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gw_trace_span_attr(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gw_trace_otlp(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_gw_trace_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_gw_trace_init_process(ngx_cycle_t *cycle);
static void ngx_http_gw_trace_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_gw_trace_context[] = {
    { ngx_string("propagate"), NGX_HTTP_GW_TRACE_PROPAGATE },
    { ngx_string("extract"), NGX_HTTP_GW_TRACE_EXTRACT },
    { ngx_string("inject"), NGX_HTTP_GW_TRACE_INJECT },
    { ngx_string("ignore"), NGX_HTTP_GW_TRACE_IGNORE },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_gw_trace_commands[] = {

    { ngx_string("gw_trace"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_trace_loc_conf_t, enable),
      NULL },

    { ngx_string("gw_trace_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_gw_trace_header,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gw_trace_response_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_trace_loc_conf_t, response_header),
      NULL },

    { ngx_string("gw_trace_context"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_trace_loc_conf_t, context),
      &ngx_http_gw_trace_context },

    { ngx_string("gw_trace_sample"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_gw_trace_sample,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gw_trace_otlp"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_gw_trace_otlp,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gw_trace_service_name"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_gw_trace_main_conf_t, service_name),
      NULL },

    { ngx_string("gw_trace_resource_attr"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_conf_set_keyval_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_gw_trace_main_conf_t, resource),
      NULL },

    { ngx_string("gw_trace_span_attr"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_gw_trace_span_attr,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gw_trace_route"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_trace_loc_conf_t, route),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_gw_trace_module_ctx = {
    ngx_http_gw_trace_add_variables,       /* preconfiguration */
    ngx_http_gw_trace_init,                /* postconfiguration */

    ngx_http_gw_trace_create_main_conf,    /* create main configuration */
    ngx_http_gw_trace_init_main_conf,      /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_gw_trace_create_loc_conf,     /* create location configuration */
    ngx_http_gw_trace_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_gw_trace_module = {
    NGX_MODULE_V1,
    &ngx_http_gw_trace_module_ctx,         /* module context */
    ngx_http_gw_trace_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_gw_trace_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_gw_trace_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


enum {
    NGX_HTTP_GW_TRACE_VAR_ID = 0,
    NGX_HTTP_GW_TRACE_VAR_W3C_ID,
    NGX_HTTP_GW_TRACE_VAR_SPAN,
    NGX_HTTP_GW_TRACE_VAR_PARENT,
    NGX_HTTP_GW_TRACE_VAR_TRACEPARENT,
    NGX_HTTP_GW_TRACE_VAR_TRACESTATE,
    NGX_HTTP_GW_TRACE_VAR_SAMPLED
};


static ngx_http_variable_t  ngx_http_gw_trace_vars[] = {

    { ngx_string("gw_trace_id"), NULL, ngx_http_gw_trace_variable,
      NGX_HTTP_GW_TRACE_VAR_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gw_w3c_trace_id"), NULL, ngx_http_gw_trace_variable,
      NGX_HTTP_GW_TRACE_VAR_W3C_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gw_span_id"), NULL, ngx_http_gw_trace_variable,
      NGX_HTTP_GW_TRACE_VAR_SPAN, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gw_parent_span_id"), NULL, ngx_http_gw_trace_variable,
      NGX_HTTP_GW_TRACE_VAR_PARENT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gw_traceparent"), NULL, ngx_http_gw_trace_variable,
      NGX_HTTP_GW_TRACE_VAR_TRACEPARENT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gw_tracestate"), NULL, ngx_http_gw_trace_variable,
      NGX_HTTP_GW_TRACE_VAR_TRACESTATE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gw_trace_sampled"), NULL, ngx_http_gw_trace_variable,
      NGX_HTTP_GW_TRACE_VAR_SAMPLED, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_gw_traceparent_key = ngx_string("traceparent");
static ngx_str_t  ngx_http_gw_tracestate_key = ngx_string("tracestate");
static ngx_uint_t  ngx_http_gw_traceparent_hash;
static ngx_uint_t  ngx_http_gw_tracestate_hash;

static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;

static u_char      ngx_http_gw_trace_random_buf[NGX_HTTP_GW_TRACE_RANDOM_SIZE];
static ngx_uint_t  ngx_http_gw_trace_random_pos =
                                                NGX_HTTP_GW_TRACE_RANDOM_SIZE;


static ngx_int_t
ngx_http_gw_trace_handler(ngx_http_request_t *r)
{
    ngx_http_gw_trace_ctx_t       *ctx;
    ngx_http_gw_trace_loc_conf_t  *gtcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    gtcf = ngx_http_get_module_loc_conf(r, ngx_http_gw_trace_module);

    if (!gtcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_gw_trace_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->inject && !ctx->applied) {
        if (ngx_http_gw_trace_apply(r, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->applied = 1;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_gw_trace_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t                     i;
    ngx_list_part_t               *part;
    ngx_table_elt_t               *h, *found;
    ngx_http_gw_trace_ctx_t       *ctx;
    ngx_http_gw_trace_loc_conf_t  *gtcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    gtcf = ngx_http_get_module_loc_conf(r, ngx_http_gw_trace_module);

    if (!gtcf->response_header) {
        return ngx_http_next_header_filter(r);
    }

    ctx = gtcf->enable ? ngx_http_gw_trace_get_ctx(r)
                       : ngx_http_gw_trace_find_ctx(r);

    if (ctx == NULL) {
        return ngx_http_next_header_filter(r);
    }

    /* replace a trace id header the upstream sent, do not add a second one */

    found = NULL;
    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0
            || h[i].key.len != ctx->header.len
            || ngx_strncasecmp(h[i].key.data, ctx->header.data,
                               ctx->header.len) != 0)
        {
            continue;
        }

        if (found == NULL) {
            found = &h[i];
            continue;
        }

        h[i].hash = 0;
    }

    if (found == NULL) {
        found = ngx_list_push(&r->headers_out.headers);
        if (found == NULL) {
            return NGX_ERROR;
        }

        found->key = ctx->header;
#if (nginx_version >= 1023000)
        found->next = NULL;
#endif
    }

    found->hash = 1;
    found->value = ctx->trace_id;

    return ngx_http_next_header_filter(r);
}


static ngx_http_gw_trace_ctx_t *
ngx_http_gw_trace_find_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_gw_trace_ctx_t  *ctx;

    r = r->main;

    ctx = ngx_http_get_module_ctx(r, ngx_http_gw_trace_module);
    if (ctx != NULL) {
        return ctx;
    }

    /* an internal redirect cleared r->ctx: the marker cleanup keeps it */

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_gw_trace_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_gw_trace_module);
            return ctx;
        }
    }

    return NULL;
}


static ngx_http_gw_trace_ctx_t *
ngx_http_gw_trace_get_ctx(ngx_http_request_t *r)
{
    ngx_http_gw_trace_ctx_t       *ctx;
    ngx_http_gw_trace_loc_conf_t  *gtcf;

    ctx = ngx_http_gw_trace_find_ctx(r);
    if (ctx != NULL) {
        return ctx;
    }

    gtcf = ngx_http_get_module_loc_conf(r->main, ngx_http_gw_trace_module);

    return ngx_http_gw_trace_create_ctx(r->main, gtcf);
}


static ngx_http_gw_trace_ctx_t *
ngx_http_gw_trace_create_ctx(ngx_http_request_t *r,
    ngx_http_gw_trace_loc_conf_t *gtcf)
{
    u_char                       *p, id[16], rnd[24];
    ngx_int_t                     sampled;
    ngx_uint_t                    nstate, extract, id_valid, tp_valid;
    ngx_pool_cleanup_t           *cln;
    ngx_http_gw_trace_ctx_t      *ctx;
    ngx_http_gw_tc_state_t        ts;
    ngx_http_gw_tc_parent_t       parent;
    ngx_http_gw_trace_found_t     xid, tp, found[4];

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_gw_trace_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    /* the marker handler and r->ctx are set once the context is complete */

    ctx = cln->data;
    ngx_memzero(ctx, sizeof(ngx_http_gw_trace_ctx_t));

    ctx->header = gtcf->header;
    ctx->header_lc = gtcf->header_lc;
    ctx->header_hash = gtcf->header_hash;
    ctx->inject = (gtcf->context == NGX_HTTP_GW_TRACE_PROPAGATE
                   || gtcf->context == NGX_HTTP_GW_TRACE_INJECT);

    extract = (gtcf->context == NGX_HTTP_GW_TRACE_PROPAGATE
               || gtcf->context == NGX_HTTP_GW_TRACE_EXTRACT);

    ngx_memzero(found, sizeof(found));

    if (extract) {
        (void) ngx_http_gw_trace_scan(r, ctx, found, NULL);
    }

    xid = found[NGX_HTTP_GW_TRACE_H_ID];
    tp = found[NGX_HTTP_GW_TRACE_H_PARENT];
    nstate = found[NGX_HTTP_GW_TRACE_H_STATE].count;

    /* more than one traceparent or trace id header: trust neither copy */

    tp_valid = (tp.count == 1
                && ngx_http_gw_tc_parse_traceparent(tp.first->value.data,
                                                    tp.first->value.len,
                                                    &parent)
                   == NGX_OK);

    id_valid = (xid.count == 1
                && ngx_http_gw_tc_parse_id(xid.first->value.data,
                                           xid.first->value.len, id)
                   == NGX_OK);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gw trace: traceparent:%ui valid:%ui id:%ui valid:%ui",
                   tp.count, tp_valid, xid.count, id_valid);

    if (ngx_http_gw_trace_random(rnd, sizeof(rnd)) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, ngx_errno,
                      "gw_trace: getrandom() failed");
        return NULL;
    }

    /* a span id is never all-zero */

    if (ngx_http_gw_tc_is_zero(rnd, 8)) {
        rnd[7] = 1;
    }

    ngx_memcpy(ctx->span_bin, rnd, 8);
    ngx_hex_dump(ctx->span_hex, rnd, 8);

    if (tp_valid) {

        /* traceparent wins; the plain id stays only if it names this trace */

        /* the ids' hex as received: lowercase, validated by the parser */

        ngx_memcpy(ctx->trace_bin, parent.trace_id, 16);
        ngx_memcpy(ctx->trace_hex,
                   parent.text + NGX_HTTP_GW_TC_TRACE_ID_HEX, 32);
        ngx_memcpy(ctx->parent_bin, parent.parent_id, 8);
        ngx_memcpy(ctx->parent_hex,
                   parent.text + NGX_HTTP_GW_TC_PARENT_ID_HEX, 16);
        ctx->has_parent = 1;

        /* version 00 knows the sampled and random flags; others are zeroed */

        ctx->flags = parent.flags
                     & (NGX_HTTP_GW_TC_FLAG_SAMPLED
                        |NGX_HTTP_GW_TC_FLAG_RANDOM);

        if (id_valid && ngx_memcmp(id, parent.trace_id, 16) == 0) {
            ctx->trace_id = xid.first->value;
            ngx_http_gw_tc_trim(&ctx->trace_id.data, &ctx->trace_id.len);

        } else {
            ctx->trace_id.data = ctx->trace_hex;
            ctx->trace_id.len = 32;
        }

        /* tracestate is read only with a valid traceparent */

        if (nstate > 0) {
            ngx_http_gw_tc_tracestate_init(&ts);
            (void) ngx_http_gw_trace_scan(r, ctx, found, &ts);
        }

        if (nstate > 0
            && ngx_http_gw_tc_tracestate_done(&ts) == NGX_OK
            && ts.len > 0)
        {
            p = ngx_pnalloc(r->pool, ts.len);
            if (p == NULL) {
                return NULL;
            }

            ctx->tracestate.len = ts.len;
            ctx->tracestate.data = ngx_cpymem(p, ts.data, ts.len) - ts.len;
        }

    } else {
        ctx->flags = NGX_HTTP_GW_TC_FLAG_SAMPLED;

        if (id_valid) {
            ngx_memcpy(ctx->trace_bin, id, 16);
            ctx->trace_id = xid.first->value;
            ngx_http_gw_tc_trim(&ctx->trace_id.data, &ctx->trace_id.len);

        } else {
            ngx_memcpy(ctx->trace_bin, &rnd[8], 16);

            if (ngx_http_gw_tc_is_zero(ctx->trace_bin, 16)) {
                ctx->trace_bin[15] = 1;
            }

            ctx->flags |= NGX_HTTP_GW_TC_FLAG_RANDOM;
            ctx->trace_id.data = ctx->trace_hex;
            ctx->trace_id.len = 32;
        }

        ngx_hex_dump(ctx->trace_hex, ctx->trace_bin, 16);
    }

    p = ngx_cpymem(ctx->traceparent, "00-", 3);
    p = ngx_cpymem(p, ctx->trace_hex, 32);
    *p++ = '-';
    p = ngx_cpymem(p, ctx->span_hex, 16);
    *p++ = '-';
    (void) ngx_hex_dump(p, &ctx->flags, 1);

    cln->handler = ngx_http_gw_trace_cleanup;
    ngx_http_set_ctx(r, ctx, ngx_http_gw_trace_module);

    /*
     * the sampling decision of a new trace comes last: its variable may
     * depend on $gw_trace_id (split_clients), which is complete by now
     */

    if (!tp_valid && gtcf->sample != NULL) {
        sampled = ngx_http_gw_trace_sampled(r, gtcf);
        if (sampled == NGX_ERROR) {
            return NULL;
        }

    } else if (!tp_valid && gtcf->sample_ratio != NGX_HTTP_GW_TRACE_NO_RATIO) {
        sampled = ngx_http_gw_tc_ratio_sampled(ctx->trace_bin,
                                               gtcf->sample_threshold);

    } else {
        sampled = 1;
    }

    if (!sampled) {
        ctx->flags &= ~NGX_HTTP_GW_TC_FLAG_SAMPLED;
        (void) ngx_hex_dump(p, &ctx->flags, 1);
    }

    return ctx;
}


static void
ngx_http_gw_trace_cleanup(void *data)
{
    /* a marker: finds the context again after an internal redirect */
}


static ngx_int_t
ngx_http_gw_trace_sampled(ngx_http_request_t *r,
    ngx_http_gw_trace_loc_conf_t *gtcf)
{
    ngx_str_t  value;

    if (ngx_http_complex_value(r, gtcf->sample, &value) != NGX_OK) {
        return NGX_ERROR;
    }

    if (value.len == 0
        || (value.len == 1 && value.data[0] == '0')
        || (value.len == 3 && ngx_strncasecmp(value.data, (u_char *) "off", 3)
                              == 0))
    {
        return 0;
    }

    return 1;
}


/*
 * One pass over the request headers: the first element and the count of
 * each trace header, and the number of headers; or, with "ts", the
 * tracestate lines given to the tracestate parser, in order.  A request
 * that failed before its headers were parsed (a 400 on the request line)
 * has an empty list.
 */

static ngx_uint_t
ngx_http_gw_trace_scan(ngx_http_request_t *r, ngx_http_gw_trace_ctx_t *ctx,
    ngx_http_gw_trace_found_t *found, ngx_http_gw_tc_state_t *ts)
{
    ngx_uint_t        i, n, type;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    n = 0;
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        n++;

        type = ngx_http_gw_trace_header_type(&h[i], ctx);

        if (type == NGX_HTTP_GW_TRACE_H_NONE) {
            continue;
        }

        if (ts != NULL) {
            if (type == NGX_HTTP_GW_TRACE_H_STATE) {
                ngx_http_gw_tc_tracestate_add(ts, h[i].value.data,
                                              h[i].value.len);
            }

            continue;
        }

        if (found[type].first == NULL) {
            found[type].first = &h[i];
        }

        found[type].count++;
    }

    return n;
}


static ngx_uint_t
ngx_http_gw_trace_header_type(ngx_table_elt_t *h, ngx_http_gw_trace_ctx_t *ctx)
{
    if (h->hash == ctx->header_hash
        && h->key.len == ctx->header_lc.len
        && ngx_strncmp(h->lowcase_key, ctx->header_lc.data, h->key.len) == 0)
    {
        return NGX_HTTP_GW_TRACE_H_ID;
    }

    if (h->hash == ngx_http_gw_traceparent_hash
        && h->key.len == ngx_http_gw_traceparent_key.len
        && ngx_strncmp(h->lowcase_key, "traceparent", h->key.len) == 0)
    {
        return NGX_HTTP_GW_TRACE_H_PARENT;
    }

    if (h->hash == ngx_http_gw_tracestate_hash
        && h->key.len == ngx_http_gw_tracestate_key.len
        && ngx_strncmp(h->lowcase_key, "tracestate", h->key.len) == 0)
    {
        return NGX_HTTP_GW_TRACE_H_STATE;
    }

    return NGX_HTTP_GW_TRACE_H_NONE;
}


/*
 * Writes the ids into the request headers proxied upstream.  The common
 * case edits or appends list elements in place; duplicates of our headers,
 * or a tracestate to drop, rebuild the list without them (pointers such as
 * r->headers_in.host keep pointing at the old, still valid elements).
 */

static ngx_int_t
ngx_http_gw_trace_apply(ngx_http_request_t *r, ngx_http_gw_trace_ctx_t *ctx)
{
    ngx_str_t                   tpv;
    ngx_uint_t                  i, n, rebuild;
    ngx_list_t                  headers;
    ngx_list_part_t            *part;
    ngx_table_elt_t            *h, *nh;
    ngx_http_gw_trace_found_t   xid, tp, ts, found[4];

    ngx_memzero(found, sizeof(found));

    n = ngx_http_gw_trace_scan(r, ctx, found, NULL);

    xid = found[NGX_HTTP_GW_TRACE_H_ID];
    tp = found[NGX_HTTP_GW_TRACE_H_PARENT];
    ts = found[NGX_HTTP_GW_TRACE_H_STATE];

    rebuild = (xid.count > 1 || tp.count > 1 || ts.count > 1
               || (ts.count && ctx->tracestate.len == 0));

    if (rebuild) {
        headers = r->headers_in.headers;

        if (ngx_list_init(&r->headers_in.headers, r->pool, n + 3,
                          sizeof(ngx_table_elt_t))
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        part = &headers.part;
        h = part->elts;

        for (i = 0; /* void */; i++) {

            if (i >= part->nelts) {
                if (part->next == NULL) {
                    break;
                }

                part = part->next;
                h = part->elts;
                i = 0;
            }

            if (ngx_http_gw_trace_header_type(&h[i], ctx)
                != NGX_HTTP_GW_TRACE_H_NONE)
            {
                continue;
            }

            nh = ngx_list_push(&r->headers_in.headers);
            if (nh == NULL) {
                return NGX_ERROR;
            }

            *nh = h[i];
        }

        xid.first = NULL;
        tp.first = NULL;
        ts.first = NULL;
    }

    tpv.data = ctx->traceparent;
    tpv.len = NGX_HTTP_GW_TC_TRACEPARENT_LEN;

    if (ngx_http_gw_trace_set_header(r, xid.first, &ctx->header,
                                     &ctx->header_lc, ctx->header_hash,
                                     &ctx->trace_id)
        != NGX_OK
        || ngx_http_gw_trace_set_header(r, tp.first,
                                        &ngx_http_gw_traceparent_key,
                                        &ngx_http_gw_traceparent_key,
                                        ngx_http_gw_traceparent_hash, &tpv)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->tracestate.len
        && ngx_http_gw_trace_set_header(r, ts.first,
                                        &ngx_http_gw_tracestate_key,
                                        &ngx_http_gw_tracestate_key,
                                        ngx_http_gw_tracestate_hash,
                                        &ctx->tracestate)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_trace_set_header(ngx_http_request_t *r, ngx_table_elt_t *h,
    ngx_str_t *key, ngx_str_t *lc, ngx_uint_t hash, ngx_str_t *value)
{
    if (h == NULL) {
        h = ngx_list_push(&r->headers_in.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->key = *key;
        h->lowcase_key = lc->data;
        h->hash = hash;
#if (nginx_version >= 1023000)
        h->next = NULL;
#endif
    }

    h->value = *value;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_trace_random(u_char *buf, size_t len)
{
    ssize_t  n;
    size_t   got;

    if (ngx_http_gw_trace_random_pos + len > NGX_HTTP_GW_TRACE_RANDOM_SIZE) {

        for (got = 0; got < NGX_HTTP_GW_TRACE_RANDOM_SIZE; got += n) {
            n = getrandom(ngx_http_gw_trace_random_buf + got,
                          NGX_HTTP_GW_TRACE_RANDOM_SIZE - got, 0);

            if (n == -1) {
                if (ngx_errno == NGX_EINTR) {
                    n = 0;
                    continue;
                }

                return NGX_ERROR;
            }
        }

        ngx_http_gw_trace_random_pos = 0;
    }

    ngx_memcpy(buf, ngx_http_gw_trace_random_buf + ngx_http_gw_trace_random_pos,
               len);

    /* bytes are used once: wipe them */

    ngx_memzero(ngx_http_gw_trace_random_buf + ngx_http_gw_trace_random_pos,
                len);
    ngx_http_gw_trace_random_pos += len;

    return NGX_OK;
}


/*
 * The log phase: one SERVER span per sampled main request, encoded into
 * the worker's export queue.  Nothing here waits for the collector.
 */

static ngx_int_t
ngx_http_gw_trace_log_handler(ngx_http_request_t *r)
{
    ngx_http_gw_trace_ctx_t        *ctx;
    ngx_http_gw_trace_loc_conf_t   *gtcf;
    ngx_http_gw_trace_main_conf_t  *gtmcf;

    gtmcf = ngx_http_get_module_main_conf(r, ngx_http_gw_trace_module);

    if (gtmcf->otlp == NULL || r != r->main) {
        return NGX_OK;
    }

    gtcf = ngx_http_get_module_loc_conf(r, ngx_http_gw_trace_module);

    ctx = gtcf->enable ? ngx_http_gw_trace_get_ctx(r)
                       : ngx_http_gw_trace_find_ctx(r);

    if (ctx == NULL
        || ctx->exported
        || !(ctx->flags & NGX_HTTP_GW_TC_FLAG_SAMPLED))
    {
        return NGX_OK;
    }

    ctx->exported = 1;

    (void) ngx_http_gw_trace_span(r, gtmcf, gtcf, ctx);

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_trace_span(ngx_http_request_t *r,
    ngx_http_gw_trace_main_conf_t *gtmcf, ngx_http_gw_trace_loc_conf_t *gtcf,
    ngx_http_gw_trace_ctx_t *ctx)
{
    u_char                       *p;
    ngx_str_t                     method, route, value;
    ngx_uint_t                    i, n, status, port, known;
    ngx_time_t                   *tp;
    ngx_table_elt_t              *host;
    ngx_http_gw_otlp_span_t       span;
    ngx_http_gw_otlp_attr_t       attrs[NGX_HTTP_GW_TRACE_BUILTIN_ATTRS
                                        + NGX_HTTP_GW_TRACE_SPAN_ATTRS];
    ngx_http_gw_trace_attr_t     *ua;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_core_srv_conf_t     *cscf;
    ngx_http_variable_value_t    *vv;

    ngx_memzero(&span, sizeof(ngx_http_gw_otlp_span_t));

    ngx_memcpy(span.trace_id, ctx->trace_bin, 16);
    ngx_memcpy(span.span_id, ctx->span_bin, 8);

    span.flags = ctx->flags | NGX_HTTP_GW_OTLP_HAS_IS_REMOTE;

    if (ctx->has_parent) {
        ngx_memcpy(span.parent_id, ctx->parent_bin, 8);
        span.has_parent = 1;
        span.flags |= NGX_HTTP_GW_OTLP_IS_REMOTE;
    }

    span.trace_state = ctx->tracestate;
    span.kind = NGX_HTTP_GW_OTLP_KIND_SERVER;

    span.start = (uint64_t) r->start_sec * 1000000000
                 + (uint64_t) r->start_msec * 1000000;

    tp = ngx_timeofday();
    span.end = (uint64_t) tp->sec * 1000000000 + (uint64_t) tp->msec * 1000000;

    if (span.end < span.start) {
        span.end = span.start;
    }

    /* $status */

    if (r->err_status) {
        status = r->err_status;

    } else if (r->headers_out.status) {
        status = r->headers_out.status;

    } else if (r->http_version == NGX_HTTP_VERSION_9) {
        status = 9;

    } else {
        status = 0;
    }

    span.status = (status >= 500) ? NGX_HTTP_GW_OTLP_STATUS_ERROR
                                  : NGX_HTTP_GW_OTLP_STATUS_UNSET;

    n = 0;

    /* the HTTP methods the semantic conventions know, else "_OTHER" */

    known = NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST|NGX_HTTP_PUT
            |NGX_HTTP_DELETE|NGX_HTTP_OPTIONS|NGX_HTTP_PATCH|NGX_HTTP_TRACE
            |NGX_HTTP_CONNECT;

    if ((r->method & known) && r->method_name.len) {
        method = r->method_name;
        ngx_http_gw_trace_attr_str(&attrs[n++], "http.request.method",
                                   &method);

    } else {
        ngx_str_set(&method, "HTTP");
        ngx_str_set(&value, "_OTHER");
        ngx_http_gw_trace_attr_str(&attrs[n++], "http.request.method",
                                   &value);

        if (r->method_name.len) {
            ngx_http_gw_trace_attr_str(&attrs[n++],
                                       "http.request.method_original",
                                       &r->method_name);
        }
    }

    if (r->unparsed_uri.len) {
        value = r->unparsed_uri;
        p = ngx_strlchr(value.data, value.data + value.len, '?');
        if (p != NULL) {
            value.len = p - value.data;
        }

        ngx_http_gw_trace_attr_str(&attrs[n++], "url.path", &value);
    }

#if (NGX_HTTP_SSL)
    if (r->connection->ssl) {
        ngx_str_set(&value, "https");
    } else
#endif
    {
        ngx_str_set(&value, "http");
    }

    ngx_http_gw_trace_attr_str(&attrs[n++], "url.scheme", &value);

    if (gtcf->route != NULL) {
        if (ngx_http_complex_value(r, gtcf->route, &route) != NGX_OK) {
            return NGX_ERROR;
        }

    } else {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
        route = clcf->name;
    }

    if (route.len) {
        ngx_http_gw_trace_attr_str(&attrs[n++], "http.route", &route);
    }

    attrs[n].type = NGX_HTTP_GW_OTLP_INT;
    ngx_str_set(&attrs[n].key, "http.response.status_code");
    attrs[n++].num = status;

    /* server.address and server.port: the Host header, else this server */

    cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);

    value = r->headers_in.server.len ? r->headers_in.server
                                     : cscf->server_name;
    if (value.len) {
        ngx_http_gw_trace_attr_str(&attrs[n++], "server.address", &value);
    }

    port = 0;
    host = r->headers_in.host;

    if (host != NULL) {
        p = ngx_strlchr(host->value.data, host->value.data + host->value.len,
                        ':');

        if (p != NULL && host->value.data[0] != '[') {
            port = ngx_atoi(p + 1, host->value.data + host->value.len - p - 1);

        } else if (p != NULL) {
            p = ngx_strlchr(host->value.data,
                            host->value.data + host->value.len, ']');
            if (p != NULL && p + 1 < host->value.data + host->value.len
                && p[1] == ':')
            {
                port = ngx_atoi(p + 2,
                                host->value.data + host->value.len - p - 2);
            }
        }

        if (port == (ngx_uint_t) NGX_ERROR || port > 65535) {
            port = 0;
        }
    }

    if (port == 0
        && ngx_connection_local_sockaddr(r->connection, NULL, 0) == NGX_OK)
    {
        port = ngx_inet_get_port(r->connection->local_sockaddr);
    }

    if (port) {
        attrs[n].type = NGX_HTTP_GW_OTLP_INT;
        ngx_str_set(&attrs[n].key, "server.port");
        attrs[n++].num = port;
    }

    ngx_http_gw_trace_attr_str(&attrs[n++], "client.address",
                               &r->connection->addr_text);

    if (r->headers_in.user_agent) {
        ngx_http_gw_trace_attr_str(&attrs[n++], "user_agent.original",
                                   &r->headers_in.user_agent->value);
    }

    switch (r->http_version) {
    case NGX_HTTP_VERSION_9:
        ngx_str_set(&value, "0.9");
        break;
    case NGX_HTTP_VERSION_10:
        ngx_str_set(&value, "1.0");
        break;
    case NGX_HTTP_VERSION_20:
        ngx_str_set(&value, "2");
        break;
    default:
        ngx_str_set(&value, "1.1");
        break;
    }

    ngx_http_gw_trace_attr_str(&attrs[n++], "network.protocol.version",
                               &value);

    if (r->upstream_states && r->upstream_states->nelts) {

        vv = ngx_http_get_indexed_variable(r, gtmcf->upstream_addr);
        if (vv != NULL && !vv->not_found && vv->len) {
            value.data = vv->data;
            value.len = vv->len;
            ngx_http_gw_trace_attr_str(&attrs[n++], "gw.upstream.address",
                                       &value);
        }

        vv = ngx_http_get_indexed_variable(r, gtmcf->upstream_time);
        if (vv != NULL && !vv->not_found && vv->len) {
            value.data = vv->data;
            value.len = vv->len;
            ngx_http_gw_trace_attr_str(&attrs[n++],
                                       "gw.upstream.response_time", &value);
        }
    }

    /* configured attributes; an empty value is left out */

    if (gtcf->span_attrs != NULL) {
        ua = gtcf->span_attrs->elts;

        for (i = 0; i < gtcf->span_attrs->nelts; i++) {
            if (ngx_http_complex_value(r, &ua[i].value, &value) != NGX_OK) {
                return NGX_ERROR;
            }

            if (value.len == 0) {
                continue;
            }

            attrs[n].type = NGX_HTTP_GW_OTLP_STRING;
            attrs[n].key = ua[i].key;
            attrs[n++].str = value;
        }
    }

    span.attrs = attrs;
    span.nattrs = n;

    /* the name: "METHOD route", or the method alone */

    span.name.len = method.len + (route.len ? 1 + route.len : 0);
    span.name.data = ngx_pnalloc(r->pool, span.name.len);
    if (span.name.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(span.name.data, method.data, method.len);

    if (route.len) {
        *p++ = ' ';
        ngx_memcpy(p, route.data, route.len);
    }

    return ngx_http_gw_otlp_export_span(&span);
}


static void
ngx_http_gw_trace_attr_str(ngx_http_gw_otlp_attr_t *a, char *key,
    ngx_str_t *value)
{
    a->type = NGX_HTTP_GW_OTLP_STRING;
    a->key.data = (u_char *) key;
    a->key.len = ngx_strlen(key);
    a->str = *value;
}


static ngx_int_t
ngx_http_gw_trace_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_gw_trace_ctx_t       *ctx;
    ngx_http_gw_trace_loc_conf_t  *gtcf;

    ctx = ngx_http_gw_trace_find_ctx(r);

    if (ctx == NULL) {
        gtcf = ngx_http_get_module_loc_conf(r, ngx_http_gw_trace_module);

        if (!gtcf->enable) {
            v->not_found = 1;
            return NGX_OK;
        }

        ctx = ngx_http_gw_trace_get_ctx(r);
        if (ctx == NULL) {
            return NGX_ERROR;
        }
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    switch (data) {

    case NGX_HTTP_GW_TRACE_VAR_ID:
        v->data = ctx->trace_id.data;
        v->len = ctx->trace_id.len;
        break;

    case NGX_HTTP_GW_TRACE_VAR_W3C_ID:
        v->data = ctx->trace_hex;
        v->len = 32;
        break;

    case NGX_HTTP_GW_TRACE_VAR_SPAN:
        v->data = ctx->span_hex;
        v->len = 16;
        break;

    case NGX_HTTP_GW_TRACE_VAR_PARENT:
        v->data = ctx->parent_hex;
        v->len = ctx->has_parent ? 16 : 0;
        break;

    case NGX_HTTP_GW_TRACE_VAR_TRACEPARENT:
        v->data = ctx->traceparent;
        v->len = NGX_HTTP_GW_TC_TRACEPARENT_LEN;
        break;

    case NGX_HTTP_GW_TRACE_VAR_TRACESTATE:
        v->data = ctx->tracestate.data;
        v->len = ctx->tracestate.len;
        break;

    default: /* NGX_HTTP_GW_TRACE_VAR_SAMPLED */
        v->data = (u_char *) ((ctx->flags & NGX_HTTP_GW_TC_FLAG_SAMPLED)
                              ? "1" : "0");
        v->len = 1;
        break;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_trace_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_gw_trace_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static void *
ngx_http_gw_trace_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_gw_trace_main_conf_t  *gtmcf;

    gtmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gw_trace_main_conf_t));
    if (gtmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     gtmcf->otlp = NULL;
     *     gtmcf->service_name = { 0, NULL };
     */

    gtmcf->resource = NGX_CONF_UNSET_PTR;

    return gtmcf;
}


/*
 * With gw_trace_otlp: the Resource (service.name, service.instance.id,
 * gw_trace_resource_attr) and the instrumentation scope, encoded once.
 */

static char *
ngx_http_gw_trace_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_gw_trace_main_conf_t *gtmcf = conf;

    u_char                          *p, rnd[16];
    ngx_str_t                        name, version, instance;
    ngx_uint_t                       i, n, has_instance;
    ngx_keyval_t                    *kv;
    ngx_http_gw_otlp_attr_t         *attrs;
    ngx_http_gw_otlp_export_conf_t  *otlp;

    otlp = gtmcf->otlp;

    if (otlp == NULL) {
        return NGX_CONF_OK;
    }

    if (gtmcf->service_name.data == NULL) {
        ngx_str_set(&gtmcf->service_name, "unknown_service:nginx");
    }

    n = (gtmcf->resource != NGX_CONF_UNSET_PTR) ? gtmcf->resource->nelts : 0;

    attrs = ngx_pcalloc(cf->pool, (n + 2) * sizeof(ngx_http_gw_otlp_attr_t));
    if (attrs == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&attrs[0].key, "service.name");
    attrs[0].str = gtmcf->service_name;

    has_instance = 0;
    kv = (n > 0) ? gtmcf->resource->elts : NULL;

    for (i = 0; i < n; i++) {

        if (kv[i].key.len == 12
            && ngx_strncmp(kv[i].key.data, "service.name", 12) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"service.name\" is set with "
                               "\"gw_trace_service_name\"");
            return NGX_CONF_ERROR;
        }

        if (kv[i].key.len == 19
            && ngx_strncmp(kv[i].key.data, "service.instance.id", 19) == 0)
        {
            has_instance = 1;
        }

        attrs[i + 2].key = kv[i].key;
        attrs[i + 2].str = kv[i].value;
    }

    /* a random UUID (version 4) names this nginx instance by default */

    if (has_instance) {
        attrs++;
        attrs[0] = attrs[-1];

    } else {
        if (ngx_http_gw_trace_random(rnd, 16) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               "getrandom() failed");
            return NGX_CONF_ERROR;
        }

        rnd[6] = (u_char) ((rnd[6] & 0x0f) | 0x40);
        rnd[8] = (u_char) ((rnd[8] & 0x3f) | 0x80);

        instance.len = 36;
        instance.data = ngx_pnalloc(cf->pool, 36);
        if (instance.data == NULL) {
            return NGX_CONF_ERROR;
        }

        p = ngx_hex_dump(instance.data, rnd, 4);
        *p++ = '-';
        p = ngx_hex_dump(p, rnd + 4, 2);
        *p++ = '-';
        p = ngx_hex_dump(p, rnd + 6, 2);
        *p++ = '-';
        p = ngx_hex_dump(p, rnd + 8, 2);
        *p++ = '-';
        (void) ngx_hex_dump(p, rnd + 10, 6);

        ngx_str_set(&attrs[1].key, "service.instance.id");
        attrs[1].str = instance;
        n++;
    }

    n++;

    otlp->resource.len = ngx_http_gw_otlp_resource_size(attrs, n);
    otlp->resource.data = ngx_pnalloc(cf->pool, otlp->resource.len);
    if (otlp->resource.data == NULL) {
        return NGX_CONF_ERROR;
    }

    (void) ngx_http_gw_otlp_resource_write(otlp->resource.data, attrs, n);

    ngx_str_set(&name, "ngx_http_gw_trace_module");
    ngx_str_set(&version, NGINX_VERSION);

    otlp->scope.len = ngx_http_gw_otlp_scope_size(&name, &version);
    otlp->scope.data = ngx_pnalloc(cf->pool, otlp->scope.len);
    if (otlp->scope.data == NULL) {
        return NGX_CONF_ERROR;
    }

    (void) ngx_http_gw_otlp_scope_write(otlp->scope.data, &name, &version);

    ngx_str_set(&name, "upstream_addr");
    gtmcf->upstream_addr = ngx_http_get_variable_index(cf, &name);

    ngx_str_set(&name, "upstream_response_time");
    gtmcf->upstream_time = ngx_http_get_variable_index(cf, &name);

    if (gtmcf->upstream_addr == NGX_ERROR
        || gtmcf->upstream_time == NGX_ERROR)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_gw_trace_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_gw_trace_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gw_trace_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->header = { 0, NULL };
     *     conf->header_lc = { 0, NULL };
     *     conf->header_hash = 0;
     *     conf->sample_threshold = 0;
     */

    conf->enable = NGX_CONF_UNSET;
    conf->response_header = NGX_CONF_UNSET;
    conf->context = NGX_CONF_UNSET_UINT;
    conf->sample = NGX_CONF_UNSET_PTR;
    conf->sample_ratio = NGX_CONF_UNSET_UINT;
    conf->route = NGX_CONF_UNSET_PTR;
    conf->span_attrs = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_http_gw_trace_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_gw_trace_loc_conf_t  *prev = parent;
    ngx_http_gw_trace_loc_conf_t  *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->response_header, prev->response_header, 1);
    ngx_conf_merge_uint_value(conf->context, prev->context,
                              NGX_HTTP_GW_TRACE_PROPAGATE);
    /* gw_trace_sample sets both: a variable or a ratio */

    if (conf->sample == NGX_CONF_UNSET_PTR) {
        conf->sample = (prev->sample == NGX_CONF_UNSET_PTR) ? NULL
                                                            : prev->sample;
        conf->sample_ratio = (prev->sample_ratio == NGX_CONF_UNSET_UINT)
                             ? NGX_HTTP_GW_TRACE_NO_RATIO
                             : prev->sample_ratio;
        conf->sample_threshold = prev->sample_threshold;
    }

    ngx_conf_merge_ptr_value(conf->route, prev->route, NULL);
    ngx_conf_merge_ptr_value(conf->span_attrs, prev->span_attrs, NULL);

    if (conf->header.data == NULL) {
        if (prev->header.data == NULL) {
            ngx_str_set(&prev->header, "X-Trace-ID");
            ngx_str_set(&prev->header_lc, "x-trace-id");
            prev->header_hash = ngx_hash_key(prev->header_lc.data,
                                             prev->header_lc.len);
        }

        conf->header = prev->header;
        conf->header_lc = prev->header_lc;
        conf->header_hash = prev->header_hash;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_gw_trace_header(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gw_trace_loc_conf_t *gtcf = conf;

    u_char     c;
    size_t     i;
    ngx_str_t  *value;

    if (gtcf->header.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].len > 64) {
        goto invalid;
    }

    /* a header name nginx accepts by default: letters, digits, "-" */

    for (i = 0; i < value[1].len; i++) {
        c = value[1].data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-'))
        {
            goto invalid;
        }
    }

    if ((value[1].len == 11
         && ngx_strncasecmp(value[1].data, (u_char *) "traceparent", 11) == 0)
        || (value[1].len == 10
            && ngx_strncasecmp(value[1].data, (u_char *) "tracestate", 10)
               == 0))
    {
        goto invalid;
    }

    gtcf->header = value[1];

    gtcf->header_lc.len = value[1].len;
    gtcf->header_lc.data = ngx_pnalloc(cf->pool, value[1].len);
    if (gtcf->header_lc.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_strlow(gtcf->header_lc.data, value[1].data, value[1].len);
    gtcf->header_hash = ngx_hash_key(gtcf->header_lc.data,
                                     gtcf->header_lc.len);

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid trace header name \"%V\"", &value[1]);

    return NGX_CONF_ERROR;
}


/* gw_trace_sample on | off | $variable | ratio% */

static char *
ngx_http_gw_trace_sample(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gw_trace_loc_conf_t *gtcf = conf;

    ngx_int_t                          ratio;
    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (gtcf->sample != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len > 1 && value[1].data[value[1].len - 1] == '%') {

        /* hundredths of a percent */

        ratio = ngx_atofp(value[1].data, value[1].len - 1, 2);

        if (ratio == NGX_ERROR || ratio > 10000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid sampling ratio \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }

        gtcf->sample = NULL;
        gtcf->sample_ratio = ratio;
        gtcf->sample_threshold = ngx_http_gw_tc_ratio_threshold(ratio);

        return NGX_CONF_OK;
    }

    gtcf->sample = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (gtcf->sample == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = gtcf->sample;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    gtcf->sample_ratio = NGX_HTTP_GW_TRACE_NO_RATIO;

    return NGX_CONF_OK;
}


/* gw_trace_span_attr key value; the attributes of a level replace those
 * inherited, as proxy_set_header does */

static char *
ngx_http_gw_trace_span_attr(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gw_trace_loc_conf_t *gtcf = conf;

    size_t                             i;
    ngx_str_t                         *value;
    ngx_http_gw_trace_attr_t          *attr;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].len > 128) {
        goto invalid;
    }

    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] <= 0x20 || value[1].data[i] >= 0x7f) {
            goto invalid;
        }
    }

    if (gtcf->span_attrs == NGX_CONF_UNSET_PTR) {
        gtcf->span_attrs = ngx_array_create(cf->pool, 4,
                                            sizeof(ngx_http_gw_trace_attr_t));
        if (gtcf->span_attrs == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (gtcf->span_attrs->nelts == NGX_HTTP_GW_TRACE_SPAN_ATTRS) {
        return "is set too many times (at most 32 per level)";
    }

    attr = ngx_array_push(gtcf->span_attrs);
    if (attr == NULL) {
        return NGX_CONF_ERROR;
    }

    attr->key = value[1];

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = &attr->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid span attribute name \"%V\"", &value[1]);

    return NGX_CONF_ERROR;
}


/*
 * gw_trace_otlp [http://]host[:port][/path] [batch_size=n] [queue_size=n]
 *               [interval=time] [timeout=time];
 * the collector's address is resolved here, as an upstream server's is
 */

static char *
ngx_http_gw_trace_otlp(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gw_trace_main_conf_t *gtmcf = conf;

    u_char                          *p;
    size_t                           i;
    ngx_int_t                        n;
    ngx_str_t                       *value, s;
    ngx_url_t                        u;
    ngx_msec_t                       ms;
    ngx_http_gw_otlp_export_conf_t  *otlp;

    if (gtmcf->otlp != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    otlp = ngx_pcalloc(cf->pool, sizeof(ngx_http_gw_otlp_export_conf_t));
    if (otlp == NULL) {
        return NGX_CONF_ERROR;
    }

    otlp->name = value[1];
    otlp->batch_size = 512;
    otlp->queue_size = 2048;
    otlp->interval = 5000;
    otlp->timeout = 5000;

    s = value[1];

    if (s.len >= 8 && ngx_strncasecmp(s.data, (u_char *) "https://", 8) == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "https is not supported in \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (s.len >= 7 && ngx_strncasecmp(s.data, (u_char *) "http://", 7) == 0)
    {
        s.data += 7;
        s.len -= 7;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = s;
    u.default_port = 4318;
    u.uri_part = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"%V\"", u.err, &value[1]);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no address for \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    otlp->addr = &u.addrs[0];

    if (u.uri.len) {
        for (i = 0; i < u.uri.len; i++) {
            if (u.uri.data[i] <= 0x20 || u.uri.data[i] >= 0x7f) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid path in \"%V\"", &value[1]);
                return NGX_CONF_ERROR;
            }
        }

        otlp->uri = u.uri;

    } else {
        ngx_str_set(&otlp->uri, "/v1/traces");
    }

    if (u.family == AF_UNIX) {
        ngx_str_set(&otlp->host, "localhost");

    } else {
        otlp->host.data = ngx_pnalloc(cf->pool, u.host.len + NGX_INT_T_LEN + 1);
        if (otlp->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        p = ngx_sprintf(otlp->host.data, "%V:%d", &u.host, (int) u.port);
        otlp->host.len = p - otlp->host.data;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_http_gw_conf_param(&value[i], "batch_size=", &s)) {
            n = ngx_atoi(s.data, s.len);
            if (n <= 0 || n > 65536) {
                goto invalid;
            }

            otlp->batch_size = n;
            continue;
        }

        if (ngx_http_gw_conf_param(&value[i], "queue_size=", &s)) {
            n = ngx_atoi(s.data, s.len);
            if (n <= 0 || n > 1048576) {
                goto invalid;
            }

            otlp->queue_size = n;
            continue;
        }

        if (ngx_http_gw_conf_param(&value[i], "interval=", &s)) {
            ms = ngx_parse_time(&s, 0);
            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
                goto invalid;
            }

            otlp->interval = ms;
            continue;
        }

        if (ngx_http_gw_conf_param(&value[i], "timeout=", &s)) {
            ms = ngx_parse_time(&s, 0);
            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
                goto invalid;
            }

            otlp->timeout = ms;
            continue;
        }

        return ngx_http_gw_conf_invalid_param(cf, &value[i]);
    }

    if (otlp->queue_size < otlp->batch_size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "queue_size must not be less than batch_size");
        return NGX_CONF_ERROR;
    }

    gtmcf->otlp = otlp;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_gw_trace_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_gw_trace_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_gw_trace_log_handler;

    ngx_http_gw_traceparent_hash = ngx_hash_key(
                                          ngx_http_gw_traceparent_key.data,
                                          ngx_http_gw_traceparent_key.len);
    ngx_http_gw_tracestate_hash = ngx_hash_key(
                                          ngx_http_gw_tracestate_key.data,
                                          ngx_http_gw_tracestate_key.len);

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_gw_trace_header_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_trace_init_process(ngx_cycle_t *cycle)
{
    ngx_http_gw_trace_main_conf_t  *gtmcf;

    /* each worker draws its own random bytes, never the master's */

    ngx_http_gw_trace_random_pos = NGX_HTTP_GW_TRACE_RANDOM_SIZE;

    gtmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                                ngx_http_gw_trace_module);

    if (gtmcf == NULL || gtmcf->otlp == NULL) {
        return NGX_OK;
    }

    return ngx_http_gw_otlp_export_init(cycle, gtmcf->otlp);
}


static void
ngx_http_gw_trace_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_gw_otlp_export_exit();
}
