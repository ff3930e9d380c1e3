
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
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <sys/random.h>

#include "ngx_http_gw_trace_context.h"


#define NGX_HTTP_GW_TRACE_PROPAGATE     0
#define NGX_HTTP_GW_TRACE_EXTRACT       1
#define NGX_HTTP_GW_TRACE_INJECT        2
#define NGX_HTTP_GW_TRACE_IGNORE        3

#define NGX_HTTP_GW_TRACE_RANDOM_SIZE   4096


typedef struct {
    ngx_flag_t                  enable;
    ngx_flag_t                  response_header;
    ngx_uint_t                  context;
    ngx_http_complex_value_t   *sample;
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
    u_char                      trace_hex[32];
    u_char                      span_hex[16];
    u_char                      parent_hex[16];
    u_char                      traceparent[NGX_HTTP_GW_TC_TRACEPARENT_LEN];
    u_char                      flags;
    unsigned                    has_parent:1;
    unsigned                    inject:1;
    unsigned                    applied:1;
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


static ngx_int_t ngx_http_gw_trace_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_gw_trace_add_variables(ngx_conf_t *cf);
static void *ngx_http_gw_trace_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_gw_trace_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_gw_trace_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_gw_trace_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_gw_trace_init_process(ngx_cycle_t *cycle);


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
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_trace_loc_conf_t, sample),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_gw_trace_module_ctx = {
    ngx_http_gw_trace_add_variables,       /* preconfiguration */
    ngx_http_gw_trace_init,                /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

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
    NULL,                                  /* exit process */
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

    ngx_hex_dump(ctx->span_hex, rnd, 8);

    if (tp_valid) {

        /* traceparent wins; the plain id stays only if it names this trace */

        ngx_memcpy(ctx->trace_bin, parent.trace_id, 16);
        ngx_hex_dump(ctx->trace_hex, parent.trace_id, 16);
        ngx_hex_dump(ctx->parent_hex, parent.parent_id, 8);
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

        if (!sampled) {
            ctx->flags &= ~NGX_HTTP_GW_TC_FLAG_SAMPLED;
            (void) ngx_hex_dump(p, &ctx->flags, 1);
        }
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
     */

    conf->enable = NGX_CONF_UNSET;
    conf->response_header = NGX_CONF_UNSET;
    conf->context = NGX_CONF_UNSET_UINT;
    conf->sample = NGX_CONF_UNSET_PTR;

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
    ngx_conf_merge_ptr_value(conf->sample, prev->sample, NULL);

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
    /* each worker draws its own random bytes, never the master's */

    ngx_http_gw_trace_random_pos = NGX_HTTP_GW_TRACE_RANDOM_SIZE;

    return NGX_OK;
}
