
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: the OTLP/HTTP span exporter (see the header).  Log lines carry
 * the caller's prefix, "gw_trace: ".
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_http_gw_otlp_export.h"


/* the size of the buffers spans are encoded into */
#define NGX_HTTP_GW_OTLP_CHUNK          65536


typedef struct {
    ngx_queue_t                      queue;
    ngx_pool_t                      *pool;
    ngx_chain_t                     *out;       /* head, then spans */
    ngx_chain_t                     *spans;
    ngx_chain_t                    **last;
    ngx_buf_t                       *buf;       /* being filled */
    size_t                           bytes;
    ngx_uint_t                       nspans;
    ngx_msec_t                       started;
} ngx_http_gw_otlp_batch_t;


typedef struct {
    ngx_http_gw_otlp_export_conf_t  *conf;
    ngx_log_t                       *log;
    ngx_http_gw_otlp_batch_t        *current;
    ngx_queue_t                      ready;
    ngx_http_gw_otlp_batch_t        *inflight;
    ngx_chain_t                     *out;
    ngx_buf_t                       *in;
    ngx_uint_t                       held;
    ngx_uint_t                       attempts;
    ngx_uint_t                       dropped;
    ngx_uint_t                       unlogged;
    const char                      *reason;
    time_t                           drop_logged;
    time_t                           error_logged;
    ngx_msec_t                       exit_deadline;
    ngx_peer_connection_t            peer;
    ngx_event_t                      tick;
    ngx_event_t                      deadline;
    ngx_event_t                      retry;
    ngx_event_t                      next;
    unsigned                         exiting:1;
} ngx_http_gw_otlp_exporter_t;


static ngx_http_gw_otlp_batch_t *ngx_http_gw_otlp_batch(
    ngx_http_gw_otlp_exporter_t *exp);
static void ngx_http_gw_otlp_close_current(ngx_http_gw_otlp_exporter_t *exp);
static void ngx_http_gw_otlp_kick(ngx_http_gw_otlp_exporter_t *exp);
static void ngx_http_gw_otlp_send(ngx_http_gw_otlp_exporter_t *exp);
static ngx_int_t ngx_http_gw_otlp_head(ngx_http_gw_otlp_exporter_t *exp,
    ngx_http_gw_otlp_batch_t *b);
static void ngx_http_gw_otlp_write_handler(ngx_event_t *wev);
static void ngx_http_gw_otlp_read_handler(ngx_event_t *rev);
static void ngx_http_gw_otlp_dummy_handler(ngx_event_t *ev);
static void ngx_http_gw_otlp_done(ngx_http_gw_otlp_exporter_t *exp,
    ngx_http_gw_otlp_response_t *rsp);
static void ngx_http_gw_otlp_fail(ngx_http_gw_otlp_exporter_t *exp,
    ngx_uint_t retry, ngx_err_t err, const char *reason);
static void ngx_http_gw_otlp_retry(ngx_http_gw_otlp_exporter_t *exp,
    ngx_msec_int_t delay);
static void ngx_http_gw_otlp_finish(ngx_http_gw_otlp_exporter_t *exp,
    const char *dropped);
static void ngx_http_gw_otlp_close(ngx_http_gw_otlp_exporter_t *exp);
static void ngx_http_gw_otlp_drop(ngx_http_gw_otlp_exporter_t *exp,
    ngx_uint_t n, const char *reason);
static void ngx_http_gw_otlp_log_drops(ngx_http_gw_otlp_exporter_t *exp);
static void ngx_http_gw_otlp_arm_tick(ngx_http_gw_otlp_exporter_t *exp);
static void ngx_http_gw_otlp_tick_handler(ngx_event_t *ev);
static void ngx_http_gw_otlp_deadline_handler(ngx_event_t *ev);
static void ngx_http_gw_otlp_retry_handler(ngx_event_t *ev);
static void ngx_http_gw_otlp_next_handler(ngx_event_t *ev);


static ngx_http_gw_otlp_exporter_t  *ngx_http_gw_otlp_exporter;


ngx_int_t
ngx_http_gw_otlp_export_init(ngx_cycle_t *cycle,
    ngx_http_gw_otlp_export_conf_t *conf)
{
    ngx_http_gw_otlp_exporter_t  *exp;

    exp = ngx_pcalloc(cycle->pool, sizeof(ngx_http_gw_otlp_exporter_t));
    if (exp == NULL) {
        return NGX_ERROR;
    }

    exp->conf = conf;
    exp->log = cycle->log;

    ngx_queue_init(&exp->ready);

    exp->in = ngx_create_temp_buf(cycle->pool, NGX_HTTP_GW_OTLP_RESPONSE_MAX);
    if (exp->in == NULL) {
        return NGX_ERROR;
    }

    exp->tick.handler = ngx_http_gw_otlp_tick_handler;
    exp->tick.data = exp;
    exp->tick.log = exp->log;

    /* an export in flight holds a worker that is shutting down */

    exp->deadline.handler = ngx_http_gw_otlp_deadline_handler;
    exp->deadline.data = exp;
    exp->deadline.log = exp->log;

    exp->retry.handler = ngx_http_gw_otlp_retry_handler;
    exp->retry.data = exp;
    exp->retry.log = exp->log;
    exp->retry.cancelable = 1;

    exp->next.handler = ngx_http_gw_otlp_next_handler;
    exp->next.data = exp;
    exp->next.log = exp->log;

    ngx_http_gw_otlp_exporter = exp;

    return NGX_OK;
}


ngx_int_t
ngx_http_gw_otlp_export_span(ngx_http_gw_otlp_span_t *span)
{
    size_t                        size;
    ngx_buf_t                    *buf;
    ngx_chain_t                  *cl;
    ngx_http_gw_otlp_batch_t     *b;
    ngx_http_gw_otlp_exporter_t  *exp;

    exp = ngx_http_gw_otlp_exporter;

    if (exp == NULL) {
        return NGX_DECLINED;
    }

    if (exp->held >= exp->conf->queue_size) {
        ngx_http_gw_otlp_drop(exp, 1, "queue full");
        return NGX_DECLINED;
    }

    b = exp->current;

    if (b == NULL) {
        b = ngx_http_gw_otlp_batch(exp);
        if (b == NULL) {
            ngx_http_gw_otlp_drop(exp, 1, "no memory");
            return NGX_ERROR;
        }

        exp->current = b;
    }

    size = ngx_http_gw_otlp_span_size(span);
    buf = b->buf;

    if (buf == NULL || (size_t) (buf->end - buf->last) < size) {

        buf = ngx_create_temp_buf(b->pool,
                                  ngx_max(size, NGX_HTTP_GW_OTLP_CHUNK));
        cl = ngx_alloc_chain_link(b->pool);

        if (buf == NULL || cl == NULL) {
            ngx_http_gw_otlp_drop(exp, 1, "no memory");
            return NGX_ERROR;
        }

        cl->buf = buf;
        cl->next = NULL;
        *b->last = cl;
        b->last = &cl->next;
        b->buf = buf;
    }

    buf->last = ngx_http_gw_otlp_span_write(buf->last, span);

    b->bytes += size;
    b->nspans++;
    exp->held++;

    if (b->nspans >= exp->conf->batch_size) {
        ngx_http_gw_otlp_close_current(exp);
        ngx_http_gw_otlp_kick(exp);
    }

    ngx_http_gw_otlp_arm_tick(exp);

    return NGX_OK;
}


void
ngx_http_gw_otlp_export_exit(void)
{
    ngx_queue_t                  *q;
    ngx_http_gw_otlp_batch_t     *b;
    ngx_http_gw_otlp_exporter_t  *exp;

    exp = ngx_http_gw_otlp_exporter;

    if (exp == NULL) {
        return;
    }

    ngx_http_gw_otlp_exporter = NULL;

    if (exp->peer.connection != NULL) {
        ngx_close_connection(exp->peer.connection);
        exp->peer.connection = NULL;
    }

    if (exp->held) {
        ngx_log_error(NGX_LOG_WARN, exp->log, 0,
                      "gw_trace: otlp export to \"%V\": %ui spans dropped "
                      "on exit", &exp->conf->name, exp->held);
    }

    ngx_http_gw_otlp_close_current(exp);

    while (!ngx_queue_empty(&exp->ready)) {
        q = ngx_queue_head(&exp->ready);
        ngx_queue_remove(q);

        b = ngx_queue_data(q, ngx_http_gw_otlp_batch_t, queue);
        ngx_destroy_pool(b->pool);
    }

    if (exp->inflight != NULL) {
        ngx_destroy_pool(exp->inflight->pool);
        exp->inflight = NULL;
    }
}


static ngx_http_gw_otlp_batch_t *
ngx_http_gw_otlp_batch(ngx_http_gw_otlp_exporter_t *exp)
{
    ngx_pool_t                *pool;
    ngx_http_gw_otlp_batch_t  *b;

    pool = ngx_create_pool(1024, exp->log);
    if (pool == NULL) {
        return NULL;
    }

    b = ngx_pcalloc(pool, sizeof(ngx_http_gw_otlp_batch_t));
    if (b == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    b->pool = pool;
    b->last = &b->spans;
    b->started = ngx_current_msec;

    return b;
}


static void
ngx_http_gw_otlp_close_current(ngx_http_gw_otlp_exporter_t *exp)
{
    if (exp->current != NULL) {
        ngx_queue_insert_tail(&exp->ready, &exp->current->queue);
        exp->current = NULL;
    }
}


static void
ngx_http_gw_otlp_kick(ngx_http_gw_otlp_exporter_t *exp)
{
    ngx_queue_t               *q;
    ngx_http_gw_otlp_batch_t  *b;

    if (exp->inflight != NULL) {
        return;
    }

    if (exp->exiting) {
        ngx_http_gw_otlp_close_current(exp);

        if ((ngx_msec_int_t) (exp->exit_deadline - ngx_current_msec) <= 0) {

            /* out of time: what is left is dropped */

            while (!ngx_queue_empty(&exp->ready)) {
                q = ngx_queue_head(&exp->ready);
                ngx_queue_remove(q);

                b = ngx_queue_data(q, ngx_http_gw_otlp_batch_t, queue);

                exp->held -= b->nspans;
                ngx_http_gw_otlp_drop(exp, b->nspans, "shutting down");
                ngx_destroy_pool(b->pool);
            }

            return;
        }
    }

    if (ngx_queue_empty(&exp->ready)) {
        return;
    }

    q = ngx_queue_head(&exp->ready);
    ngx_queue_remove(q);

    b = ngx_queue_data(q, ngx_http_gw_otlp_batch_t, queue);

    exp->inflight = b;
    exp->attempts = 0;

    ngx_http_gw_otlp_send(exp);
}


static void
ngx_http_gw_otlp_send(ngx_http_gw_otlp_exporter_t *exp)
{
    ngx_int_t                  rc;
    ngx_msec_t                 timeout;
    ngx_chain_t               *cl;
    ngx_connection_t          *c;
    ngx_peer_connection_t     *pc;
    ngx_http_gw_otlp_batch_t  *b;

    b = exp->inflight;

    if (b->out == NULL && ngx_http_gw_otlp_head(exp, b) != NGX_OK) {
        ngx_http_gw_otlp_finish(exp, "no memory");
        return;
    }

    for (cl = b->out; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->start;
    }

    exp->out = b->out;
    exp->in->pos = exp->in->start;
    exp->in->last = exp->in->start;

    pc = &exp->peer;
    ngx_memzero(pc, sizeof(ngx_peer_connection_t));

    pc->sockaddr = exp->conf->addr->sockaddr;
    pc->socklen = exp->conf->addr->socklen;
    pc->name = &exp->conf->addr->name;
    pc->get = ngx_event_get_peer;
    pc->log = exp->log;

    /* network errors are reported here, with the module's prefix */

    pc->log_error = NGX_ERROR_INFO;

    rc = ngx_event_connect_peer(pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        ngx_http_gw_otlp_fail(exp, 1, ngx_socket_errno, "connect() failed");
        return;
    }

    c = pc->connection;
    c->data = exp;
    c->read->handler = ngx_http_gw_otlp_read_handler;
    c->write->handler = ngx_http_gw_otlp_write_handler;

    timeout = exp->conf->timeout;

    if (exp->exiting) {
        timeout = ngx_min(timeout, exp->exit_deadline - ngx_current_msec);
    }

    ngx_add_timer(&exp->deadline, timeout);

    if (rc == NGX_OK) {
        ngx_http_gw_otlp_write_handler(c->write);
    }
}


static ngx_int_t
ngx_http_gw_otlp_head(ngx_http_gw_otlp_exporter_t *exp,
    ngx_http_gw_otlp_batch_t *b)
{
    size_t                           len, prefix;
    ngx_buf_t                       *buf;
    ngx_chain_t                     *cl;
    ngx_http_gw_otlp_export_conf_t  *conf;

    conf = exp->conf;

    prefix = ngx_http_gw_otlp_request_size(&conf->resource, &conf->scope,
                                           b->bytes);

    len = sizeof("POST  HTTP/1.1" CRLF "Host: " CRLF
                 "Content-Type: application/x-protobuf" CRLF
                 "Content-Length: " CRLF "Connection: close" CRLF CRLF) - 1
          + conf->uri.len + conf->host.len + NGX_SIZE_T_LEN + prefix;

    buf = ngx_create_temp_buf(b->pool, len);
    cl = ngx_alloc_chain_link(b->pool);

    if (buf == NULL || cl == NULL) {
        return NGX_ERROR;
    }

    buf->last = ngx_sprintf(buf->last, "POST %V HTTP/1.1" CRLF "Host: %V" CRLF
                            "Content-Type: application/x-protobuf" CRLF
                            "Content-Length: %uz" CRLF
                            "Connection: close" CRLF CRLF,
                            &conf->uri, &conf->host, prefix + b->bytes);

    buf->last = ngx_http_gw_otlp_request_write(buf->last, &conf->resource,
                                               &conf->scope, b->bytes);

    cl->buf = buf;
    cl->next = b->spans;
    b->out = cl;

    return NGX_OK;
}


static void
ngx_http_gw_otlp_write_handler(ngx_event_t *wev)
{
    ngx_chain_t                  *out;
    ngx_connection_t             *c;
    ngx_http_gw_otlp_exporter_t  *exp;

    c = wev->data;
    exp = c->data;

    out = c->send_chain(c, exp->out, 0);

    if (out == NGX_CHAIN_ERROR) {
        ngx_http_gw_otlp_fail(exp, 1, ngx_socket_errno, "send failed");
        return;
    }

    exp->out = out;

    if (out != NULL) {
        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_http_gw_otlp_fail(exp, 1, 0, "send failed");
        }

        return;
    }

    wev->handler = ngx_http_gw_otlp_dummy_handler;

    ngx_http_gw_otlp_read_handler(c->read);
}


static void
ngx_http_gw_otlp_read_handler(ngx_event_t *rev)
{
    ssize_t                       n;
    ngx_int_t                     rc;
    ngx_buf_t                    *in;
    ngx_connection_t             *c;
    ngx_http_gw_otlp_response_t   rsp;
    ngx_http_gw_otlp_exporter_t  *exp;

    c = rev->data;
    exp = c->data;
    in = exp->in;

    for ( ;; ) {

        if (in->last == in->end) {
            ngx_http_gw_otlp_fail(exp, 0, 0, "response head too large");
            return;
        }

        n = c->recv(c, in->last, in->end - in->last);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_http_gw_otlp_fail(exp, 1, 0, "recv failed");
            }

            return;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_http_gw_otlp_fail(exp, 1, n ? ngx_socket_errno : 0,
                                  n ? "recv failed"
                                    : "closed before a response");
            return;
        }

        in->last += n;

        rc = ngx_http_gw_otlp_parse_response(in->pos, in->last - in->pos,
                                             &rsp);

        if (rc == NGX_AGAIN) {
            continue;
        }

        if (rc == NGX_ERROR) {
            ngx_http_gw_otlp_fail(exp, 0, 0, "invalid response");
            return;
        }

        ngx_http_gw_otlp_done(exp, &rsp);
        return;
    }
}


static void
ngx_http_gw_otlp_dummy_handler(ngx_event_t *ev)
{
}


static void
ngx_http_gw_otlp_done(ngx_http_gw_otlp_exporter_t *exp,
    ngx_http_gw_otlp_response_t *rsp)
{
    time_t          t;
    ngx_int_t       n;
    ngx_uint_t      status;
    ngx_msec_int_t  delay;

    status = rsp->status;
    delay = -1;

    if (rsp->retry_after.len) {
        n = ngx_atoi(rsp->retry_after.data, rsp->retry_after.len);

        if (n == NGX_ERROR) {
            t = ngx_parse_http_time(rsp->retry_after.data,
                                    rsp->retry_after.len);
            if (t != NGX_ERROR) {
                n = (t > ngx_time()) ? t - ngx_time() : 0;
            }
        }

        if (n != NGX_ERROR) {
            delay = (n > NGX_HTTP_GW_OTLP_RETRY_MAX / 1000)
                    ? NGX_HTTP_GW_OTLP_RETRY_MAX : n * 1000;
        }
    }

    ngx_http_gw_otlp_close(exp);

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, exp->log, 0,
                   "gw_trace: otlp export: %ui, %ui spans",
                   status, exp->inflight->nspans);

    if (status >= 200 && status < 300) {
        ngx_http_gw_otlp_finish(exp, NULL);
        return;
    }

    if (ngx_time() != exp->error_logged) {
        exp->error_logged = ngx_time();
        ngx_log_error(NGX_LOG_ERR, exp->log, 0,
                      "gw_trace: otlp export to \"%V\": the collector "
                      "answered %ui", &exp->conf->name, status);
    }

    if (status == 429 || status == 502 || status == 503 || status == 504) {
        ngx_http_gw_otlp_retry(exp, delay);
        return;
    }

    ngx_http_gw_otlp_finish(exp, "rejected by the collector");
}


static void
ngx_http_gw_otlp_fail(ngx_http_gw_otlp_exporter_t *exp, ngx_uint_t retry,
    ngx_err_t err, const char *reason)
{
    ngx_http_gw_otlp_close(exp);

    if (ngx_time() != exp->error_logged) {
        exp->error_logged = ngx_time();
        ngx_log_error(NGX_LOG_ERR, exp->log, err,
                      "gw_trace: otlp export to \"%V\" failed: %s",
                      &exp->conf->name, reason);
    }

    if (retry) {
        ngx_http_gw_otlp_retry(exp, -1);
        return;
    }

    ngx_http_gw_otlp_finish(exp, reason);
}


static void
ngx_http_gw_otlp_retry(ngx_http_gw_otlp_exporter_t *exp, ngx_msec_int_t delay)
{
    ngx_msec_t  backoff;

    exp->attempts++;

    if (exp->exiting || exp->attempts >= NGX_HTTP_GW_OTLP_ATTEMPTS) {
        ngx_http_gw_otlp_finish(exp, exp->exiting ? "shutting down"
                                                  : "export failed");
        return;
    }

    if (delay < 0) {

        /* exponential backoff, half of it random ("equal jitter") */

        backoff = ngx_min((ngx_msec_t) NGX_HTTP_GW_OTLP_BACKOFF
                          << (exp->attempts - 1),
                          NGX_HTTP_GW_OTLP_BACKOFF_MAX);

        delay = backoff / 2 + (ngx_msec_t) ngx_random() % (backoff / 2 + 1);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, exp->log, 0,
                   "gw_trace: otlp export: attempt %ui, retry in %M",
                   exp->attempts, (ngx_msec_t) delay);

    ngx_add_timer(&exp->retry, (ngx_msec_t) delay);
}


/* the batch in flight is done: sent, or "dropped" for that reason */

static void
ngx_http_gw_otlp_finish(ngx_http_gw_otlp_exporter_t *exp,
    const char *dropped)
{
    ngx_http_gw_otlp_batch_t  *b;

    b = exp->inflight;
    exp->inflight = NULL;

    exp->held -= b->nspans;

    if (dropped != NULL) {
        ngx_http_gw_otlp_drop(exp, b->nspans, dropped);
    }

    ngx_destroy_pool(b->pool);

    /* the next batch from the event loop: no recursion through failures */

    if (!exp->next.posted) {
        ngx_post_event(&exp->next, &ngx_posted_events);
    }
}


static void
ngx_http_gw_otlp_close(ngx_http_gw_otlp_exporter_t *exp)
{
    if (exp->peer.connection != NULL) {
        ngx_close_connection(exp->peer.connection);
        exp->peer.connection = NULL;
    }

    if (exp->deadline.timer_set) {
        ngx_del_timer(&exp->deadline);
    }
}


/* dropped spans are counted, and logged at most once a second */

static void
ngx_http_gw_otlp_drop(ngx_http_gw_otlp_exporter_t *exp, ngx_uint_t n,
    const char *reason)
{
    exp->dropped += n;
    exp->unlogged += n;
    exp->reason = reason;

    if (ngx_time() != exp->drop_logged) {
        ngx_http_gw_otlp_log_drops(exp);
        return;
    }

    ngx_http_gw_otlp_arm_tick(exp);
}


static void
ngx_http_gw_otlp_log_drops(ngx_http_gw_otlp_exporter_t *exp)
{
    ngx_log_error(NGX_LOG_WARN, exp->log, 0,
                  "gw_trace: otlp export to \"%V\": %ui spans dropped "
                  "(%s), %ui since the worker started",
                  &exp->conf->name, exp->unlogged, exp->reason,
                  exp->dropped);

    exp->unlogged = 0;
    exp->drop_logged = ngx_time();
}


/*
 * While spans are held the tick holds a worker that shuts down until they
 * are sent: it is what notices the shutdown (ngx_exiting).
 */

static void
ngx_http_gw_otlp_arm_tick(ngx_http_gw_otlp_exporter_t *exp)
{
    if (exp->held == 0 && exp->unlogged == 0) {
        return;
    }

    exp->tick.cancelable = (exp->held == 0);

    if (!exp->tick.timer_set) {
        ngx_add_timer(&exp->tick, ngx_min(NGX_HTTP_GW_OTLP_TICK,
                                          exp->conf->interval));
    }
}


static void
ngx_http_gw_otlp_tick_handler(ngx_event_t *ev)
{
    ngx_http_gw_otlp_exporter_t  *exp;

    exp = ev->data;

    if (ngx_exiting && !exp->exiting) {
        exp->exiting = 1;
        exp->exit_deadline = ngx_current_msec
                             + ngx_min(exp->conf->timeout,
                                       NGX_HTTP_GW_OTLP_EXIT);

        ngx_http_gw_otlp_close_current(exp);

        if (exp->retry.timer_set) {
            ngx_del_timer(&exp->retry);
            ngx_http_gw_otlp_send(exp);

        } else if (exp->deadline.timer_set) {

            /* the export in flight gets no more time than the rest */

            ngx_add_timer(&exp->deadline, exp->exit_deadline
                                          - ngx_current_msec);

        } else {
            ngx_http_gw_otlp_kick(exp);
        }

    } else if (exp->current != NULL
               && ngx_current_msec - exp->current->started
                  >= exp->conf->interval)
    {
        ngx_http_gw_otlp_close_current(exp);
        ngx_http_gw_otlp_kick(exp);

    } else if (exp->exiting) {
        ngx_http_gw_otlp_kick(exp);
    }

    if (exp->unlogged && ngx_time() != exp->drop_logged) {
        ngx_http_gw_otlp_log_drops(exp);
    }

    ngx_http_gw_otlp_arm_tick(exp);
}


static void
ngx_http_gw_otlp_deadline_handler(ngx_event_t *ev)
{
    ngx_http_gw_otlp_exporter_t  *exp;

    exp = ev->data;

    ngx_http_gw_otlp_fail(exp, 1, 0, "timed out");
}


static void
ngx_http_gw_otlp_retry_handler(ngx_event_t *ev)
{
    ngx_http_gw_otlp_exporter_t  *exp;

    exp = ev->data;

    ngx_http_gw_otlp_send(exp);
}


static void
ngx_http_gw_otlp_next_handler(ngx_event_t *ev)
{
    ngx_http_gw_otlp_kick(ev->data);
}
