
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: the OTLP/HTTP span exporter of ngx_http_gw_trace_module, one
 * per worker process, driven by nginx's event loop.
 *
 * Spans are encoded when a request ends (ngx_http_gw_otlp_export_span())
 * into the batch being filled; a batch is sent when it holds batch_size
 * spans or its first span is "interval" old, as one POST of an
 * ExportTraceServiceRequest (application/x-protobuf, HTTP/1.1,
 * "Connection: close") over a non-blocking connection to the collector's
 * address, resolved when the configuration was read.  One export is in
 * flight at a time, with a deadline enforced by an nginx timer.  The
 * batches held (filling, waiting and in flight) never exceed queue_size
 * spans: beyond it new spans are dropped and counted.
 *
 * Retries as OTLP/HTTP says: on 429, 502, 503 and 504, after the
 * Retry-After the collector asked for or an exponential backoff with
 * jitter, and when the connection fails or the deadline passes without a
 * response; at most NGX_HTTP_GW_OTLP_ATTEMPTS attempts.  Any other status
 * is final.  On graceful shutdown what is held is sent at once, each batch
 * once, within a second (or "timeout" when shorter).  Nothing here ever
 * waits for the collector in a request's path: a request only encodes its
 * span.
 */


#ifndef _NGX_HTTP_GW_OTLP_EXPORT_H_INCLUDED_
#define _NGX_HTTP_GW_OTLP_EXPORT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_gw_otlp.h"


#define NGX_HTTP_GW_OTLP_ATTEMPTS       5
#define NGX_HTTP_GW_OTLP_BACKOFF        1000
#define NGX_HTTP_GW_OTLP_BACKOFF_MAX    30000
#define NGX_HTTP_GW_OTLP_RETRY_MAX      60000
/* how often a worker with spans held checks its batch age and shutdown */
#define NGX_HTTP_GW_OTLP_TICK           250
#define NGX_HTTP_GW_OTLP_RESPONSE_MAX   4096
/* a worker shutting down sends what it holds within this, or "timeout" */
#define NGX_HTTP_GW_OTLP_EXIT           1000


typedef struct {
    ngx_str_t                   name;           /* as configured, for logs */
    ngx_addr_t                 *addr;
    ngx_str_t                   host;           /* the Host header */
    ngx_str_t                   uri;
    ngx_uint_t                  batch_size;
    ngx_uint_t                  queue_size;
    ngx_msec_t                  interval;
    ngx_msec_t                  timeout;
    ngx_str_t                   resource;       /* encoded Resource */
    ngx_str_t                   scope;          /* encoded scope */
} ngx_http_gw_otlp_export_conf_t;


ngx_int_t ngx_http_gw_otlp_export_init(ngx_cycle_t *cycle,
    ngx_http_gw_otlp_export_conf_t *conf);
/* NGX_OK: queued; NGX_DECLINED: dropped (counted); NGX_ERROR */
ngx_int_t ngx_http_gw_otlp_export_span(ngx_http_gw_otlp_span_t *span);
/* the worker exits: what is still held is freed (and lost) */
void ngx_http_gw_otlp_export_exit(void);


#endif /* _NGX_HTTP_GW_OTLP_EXPORT_H_INCLUDED_ */
