
/*
 * Copyright (C) nginx-gw authors
 *
 * ngx_http_gw_batch_module: one request fans out to several services.
 *
 * A location with "gw_batch name uri" lines answers with one JSON object
 * holding, in the configured order, each call's answer under its name.  The
 * calls are subrequests issued together (in memory, in the background, so
 * that none waits for another and the batch can answer before a late one
 * ends).  Each call's answer is checked as JSON (ngx_http_gw_json.c); a call
 * that fails, answers with a status other than 2xx, answers something that
 * is not JSON, or is not done by the deadline (gw_batch_timeout, an nginx
 * timer) becomes an error entry:
 *
 *     {"user":{...},"orders":{"error":"timeout","status":504},...}
 *
 * At the deadline, calls still waiting for an upstream are cancelled (their
 * upstream connection is closed, as when nginx terminates a request); any
 * other late call ends on its own and its answer is dropped.
 *
 * The handler runs in the content phase, after the access phase: the batch
 * is authenticated and rate limited like any other request, once.
 * Subrequests skip the access phase (as in all of nginx) and inherit the
 * main request's headers, so the calls carry its trace ids and whatever
 * proxy_set_header sends from its variables (the verified user id).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gw_json.h"


#define NGX_HTTP_GW_BATCH_MAX_CALLS  16
#define NGX_HTTP_GW_BATCH_MAX_NAME   64

/* the longest error entry: {"error":"invalid JSON","status":999} */
#define NGX_HTTP_GW_BATCH_ERROR_LEN                                           \
    (sizeof("{\"error\":\"\",\"status\":}") - 1 + sizeof("invalid JSON") - 1 \
     + NGX_INT_T_LEN)


typedef struct {
    ngx_str_t                      name;
    ngx_str_t                      uri;
    ngx_str_t                      args;
} ngx_http_gw_batch_call_t;


typedef struct {
    ngx_array_t                   *calls;
    ngx_msec_t                     timeout;
} ngx_http_gw_batch_loc_conf_t;


typedef struct ngx_http_gw_batch_ctx_s  ngx_http_gw_batch_ctx_t;

typedef struct {
    ngx_http_gw_batch_ctx_t       *ctx;
    ngx_http_gw_batch_call_t      *call;
    ngx_http_request_t            *sr;
    ngx_str_t                      body;
    const char                    *error;
    ngx_uint_t                     status;
    unsigned                       done:1;
} ngx_http_gw_batch_result_t;


struct ngx_http_gw_batch_ctx_s {
    ngx_http_request_t            *request;
    ngx_http_gw_batch_result_t    *results;
    ngx_uint_t                     nresults;
    ngx_uint_t                     pending;
    ngx_event_t                    timer;
    unsigned                       answered:1;
};


static ngx_int_t ngx_http_gw_batch_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_gw_batch_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc);
static void ngx_http_gw_batch_wake(ngx_http_request_t *r);
static void ngx_http_gw_batch_timeout(ngx_event_t *ev);
static void ngx_http_gw_batch_answer(ngx_http_request_t *r,
    ngx_http_gw_batch_ctx_t *ctx);
static void ngx_http_gw_batch_cleanup(void *data);

static void *ngx_http_gw_batch_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_gw_batch_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_gw_batch(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_command_t  ngx_http_gw_batch_commands[] = {

    { ngx_string("gw_batch"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_gw_batch,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gw_batch_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_batch_loc_conf_t, timeout),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_gw_batch_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_gw_batch_create_loc_conf,     /* create location configuration */
    ngx_http_gw_batch_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_gw_batch_module = {
    NGX_MODULE_V1,
    &ngx_http_gw_batch_module_ctx,         /* module context */
    ngx_http_gw_batch_commands,            /* module directives */
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
ngx_http_gw_batch_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_uint_t                     i;
    ngx_pool_cleanup_t            *cln;
    ngx_http_request_t            *sr;
    ngx_http_gw_batch_ctx_t       *ctx;
    ngx_http_gw_batch_call_t      *call;
    ngx_http_gw_batch_result_t    *res;
    ngx_http_post_subrequest_t    *ps;
    ngx_http_gw_batch_loc_conf_t  *gbcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (r != r->main) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gw_batch: a batch cannot run in a subrequest");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    gbcf = ngx_http_get_module_loc_conf(r, ngx_http_gw_batch_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_gw_batch_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->nresults = gbcf->calls->nelts;
    ctx->results = ngx_pcalloc(r->pool, ctx->nresults
                                        * sizeof(ngx_http_gw_batch_result_t));
    ps = ngx_palloc(r->pool, ctx->nresults
                             * sizeof(ngx_http_post_subrequest_t));

    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (ctx->results == NULL || ps == NULL || cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the timer is removed whenever the request ends before it fires */

    ctx->request = r;
    ctx->timer.handler = ngx_http_gw_batch_timeout;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;

    cln->handler = ngx_http_gw_batch_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_gw_batch_module);

    call = gbcf->calls->elts;

    for (i = 0; i < ctx->nresults; i++) {
        res = &ctx->results[i];
        res->ctx = ctx;
        res->call = &call[i];

        ps[i].handler = ngx_http_gw_batch_done;
        ps[i].data = res;

        /*
         * background: the subrequest is not queued behind the others for
         * output, so it never holds the batch's answer back
         */

        if (ngx_http_subrequest(r, &call[i].uri,
                                call[i].args.len ? &call[i].args : NULL,
                                &sr, &ps[i],
                                NGX_HTTP_SUBREQUEST_IN_MEMORY
                                |NGX_HTTP_SUBREQUEST_BACKGROUND)
            != NGX_OK)
        {
            res->done = 1;
            res->error = "failed";
            res->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            continue;
        }

        res->sr = sr;
        ctx->pending++;
    }

    r->main->count++;

    if (ctx->pending == 0) {
        ngx_http_gw_batch_answer(r, ctx);
        return NGX_DONE;
    }

    ngx_add_timer(&ctx->timer, gbcf->timeout);

    r->write_event_handler = ngx_http_gw_batch_wake;

    return NGX_DONE;
}


static ngx_int_t
ngx_http_gw_batch_done(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    size_t                       offset;
    ngx_buf_t                   *b;
    ngx_uint_t                   failed;
    const char                  *reason;
    ngx_connection_t            *c;
    ngx_http_gw_batch_ctx_t     *ctx;
    ngx_http_gw_batch_result_t  *res;

    res = data;
    ctx = res->ctx;

    /* finalization may call this more than once; a late call is dropped */

    if (res->done) {
        return sr->connection->error ? rc : NGX_OK;
    }

    res->done = 1;
    ctx->pending--;

    c = sr->connection;
    failed = (rc == NGX_ERROR);

    if (c->error && !c->read->eof && !c->read->error && !c->write->error
        && !c->timedout)
    {
        /*
         * the call's in-memory output failed (an answer too big for
         * subrequest_output_buffer_size): ngx_http_output_filter() marked
         * the whole connection as failed, though the client socket is
         * fine, and the call may even end with rc 0; only the call failed
         */

        c->error = 0;
        failed = 1;
    }

    if (failed || rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        res->error = "failed";
        res->status = failed ? NGX_HTTP_BAD_GATEWAY : (ngx_uint_t) rc;

    } else if (sr->headers_out.status < NGX_HTTP_OK
               || sr->headers_out.status >= NGX_HTTP_SPECIAL_RESPONSE)
    {
        res->error = "failed";
        res->status = sr->headers_out.status ? sr->headers_out.status
                                             : NGX_HTTP_BAD_GATEWAY;

    } else {
        res->status = sr->headers_out.status;

        b = sr->out ? sr->out->buf : NULL;

        if (b) {
            res->body.data = b->pos;
            res->body.len = b->last - b->pos;

        } else {
            ngx_str_set(&res->body, "");
        }

        if (ngx_http_gw_json_validate(res->body.data, res->body.len,
                                      &reason, &offset)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_WARN, c->log, 0,
                          "gw_batch: \"%V\" answered invalid JSON: %s "
                          "at byte %uz", &res->call->name, reason, offset);

            res->error = "invalid JSON";

        } else {
            /* trailing whitespace would only pad the document */

            while (res->body.len
                   && (res->body.data[res->body.len - 1] == '\n'
                       || res->body.data[res->body.len - 1] == '\r'
                       || res->body.data[res->body.len - 1] == ' '
                       || res->body.data[res->body.len - 1] == '\t'))
            {
                res->body.len--;
            }
        }
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "gw_batch: \"%V\" done: rc:%i status:%ui",
                   &res->call->name, rc, res->status);

    if (ctx->pending == 0 && !ctx->answered) {
        if (ngx_http_post_request(ctx->request, NULL) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    /*
     * the outcome is recorded: a failed call must not take the batch down
     * with it (NGX_ERROR would terminate the main request), unless the
     * client connection itself is gone
     */

    return c->error ? rc : NGX_OK;
}


static void
ngx_http_gw_batch_wake(ngx_http_request_t *r)
{
    ngx_http_gw_batch_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_gw_batch_module);

    if (ctx == NULL || ctx->pending || ctx->answered) {
        return;
    }

    ngx_http_gw_batch_answer(r, ctx);
}


static void
ngx_http_gw_batch_timeout(ngx_event_t *ev)
{
    ngx_uint_t                     i;
    ngx_connection_t              *c;
    ngx_http_request_t            *r, *sr;
    ngx_http_gw_batch_ctx_t       *ctx;
    ngx_http_gw_batch_result_t    *res;
    ngx_http_gw_batch_loc_conf_t  *gbcf;

    ctx = ev->data;
    r = ctx->request;
    c = r->connection;

    gbcf = ngx_http_get_module_loc_conf(r, ngx_http_gw_batch_module);

    for (i = 0; i < ctx->nresults; i++) {
        res = &ctx->results[i];

        if (res->done) {
            continue;
        }

        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "gw_batch: \"%V\" timed out after %Mms",
                      &res->call->name, gbcf->timeout);

        res->done = 1;
        res->error = "timeout";
        res->status = NGX_HTTP_GATEWAY_TIME_OUT;
        ctx->pending--;

        /*
         * cancel a call that waits for its upstream, as nginx does when it
         * terminates a request: the upstream's own cleanup closes the
         * connection and finalizes the subrequest with NGX_DONE (which
         * does not call ngx_http_gw_batch_done() again)
         */

        sr = res->sr;

        if (sr->upstream && sr->upstream->cleanup && *sr->upstream->cleanup) {
            (*sr->upstream->cleanup)(sr);
        }
    }

    ngx_http_gw_batch_answer(r, ctx);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_gw_batch_answer(ngx_http_request_t *r, ngx_http_gw_batch_ctx_t *ctx)
{
    u_char                      *p;
    size_t                       len;
    ngx_int_t                    rc;
    ngx_buf_t                   *b;
    ngx_uint_t                   i;
    ngx_chain_t                  out;
    ngx_http_gw_batch_result_t  *res;

    ctx->answered = 1;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    len = sizeof("{}\n") - 1;

    for (i = 0; i < ctx->nresults; i++) {
        res = &ctx->results[i];

        len += sizeof("\"\":,") - 1 + res->call->name.len;
        len += res->error ? NGX_HTTP_GW_BATCH_ERROR_LEN : res->body.len;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = b->last;
    *p++ = '{';

    for (i = 0; i < ctx->nresults; i++) {
        res = &ctx->results[i];

        if (i) {
            *p++ = ',';
        }

        p = ngx_sprintf(p, "\"%V\":", &res->call->name);

        if (res->error) {
            p = ngx_sprintf(p, "{\"error\":\"%s\",\"status\":%ui}",
                            res->error, res->status);

        } else {
            p = ngx_cpymem(p, res->body.data, res->body.len);
        }
    }

    *p++ = '}';
    *p++ = LF;

    b->last = p;
    b->last_buf = 1;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    out.buf = b;
    out.next = NULL;

    ngx_http_finalize_request(r, ngx_http_output_filter(r, &out));
}


static void
ngx_http_gw_batch_cleanup(void *data)
{
    ngx_http_gw_batch_ctx_t  *ctx = data;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
}


static void *
ngx_http_gw_batch_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_gw_batch_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gw_batch_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->calls = NULL;
     */

    conf->timeout = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_http_gw_batch_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_gw_batch_loc_conf_t  *prev = parent;
    ngx_http_gw_batch_loc_conf_t  *conf = child;

    ngx_conf_merge_msec_value(conf->timeout, prev->timeout, 2000);

    return NGX_CONF_OK;
}


static char *
ngx_http_gw_batch(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gw_batch_loc_conf_t  *gbcf = conf;

    u_char                    *p, *q;
    ngx_str_t                 *value;
    ngx_uint_t                 i;
    ngx_http_gw_batch_call_t  *call;
    ngx_http_core_loc_conf_t  *clcf;

    value = cf->args->elts;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler && clcf->handler != ngx_http_gw_batch_handler) {
        return "conflicts with another content handler in this location";
    }

    if (gbcf->calls == NULL) {
        gbcf->calls = ngx_array_create(cf->pool, 4,
                                       sizeof(ngx_http_gw_batch_call_t));
        if (gbcf->calls == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (gbcf->calls->nelts == NGX_HTTP_GW_BATCH_MAX_CALLS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "more than %d calls in one batch",
                           NGX_HTTP_GW_BATCH_MAX_CALLS);
        return NGX_CONF_ERROR;
    }

    /* the name goes into the JSON document as is: a closed set of bytes */

    if (value[1].len == 0 || value[1].len > NGX_HTTP_GW_BATCH_MAX_NAME) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid batch call name \"%V\": 1 to %d "
                           "characters", &value[1],
                           NGX_HTTP_GW_BATCH_MAX_NAME);
        return NGX_CONF_ERROR;
    }

    for (p = value[1].data; p < value[1].data + value[1].len; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid batch call name \"%V\": letters, "
                               "digits, \"_\" and \"-\" only", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    call = gbcf->calls->elts;

    for (i = 0; i < gbcf->calls->nelts; i++) {
        if (call[i].name.len == value[1].len
            && ngx_strncmp(call[i].name.data, value[1].data, value[1].len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate batch call name \"%V\"",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    /* a fixed local URI: no variables, nothing a client could steer */

    if (value[2].len == 0 || value[2].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid batch call URI \"%V\": it must start "
                           "with \"/\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    for (p = value[2].data; p < value[2].data + value[2].len; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '$' || *p == '#') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid batch call URI \"%V\": no blanks, "
                               "control characters, \"$\" or \"#\"",
                               &value[2]);
            return NGX_CONF_ERROR;
        }
    }

    call = ngx_array_push(gbcf->calls);
    if (call == NULL) {
        return NGX_CONF_ERROR;
    }

    call->name = value[1];
    call->uri = value[2];
    ngx_str_null(&call->args);

    q = ngx_strlchr(value[2].data, value[2].data + value[2].len, '?');

    if (q) {
        call->uri.len = q - value[2].data;
        call->args.data = q + 1;
        call->args.len = value[2].data + value[2].len - (q + 1);
    }

    clcf->handler = ngx_http_gw_batch_handler;

    return NGX_CONF_OK;
}
