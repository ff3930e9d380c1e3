
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: hiredis async API driven by nginx events.
 *
 * One persistent connection per worker process carries pipelined commands
 * (for gw_ratelimit, one per event loop iteration with the decisions of all
 * its requests).  Every command has a deadline enforced by an
 * nginx timer; a reply that misses it breaks the connection, which is
 * closed (failing every command still in flight) and reconnected later with
 * an exponential backoff.  Replies are dispatched here, not by hiredis, so
 * that a reply nobody asked for is an error instead of an abort().
 */


#ifndef _NGX_HTTP_GW_REDIS_H_INCLUDED_
#define _NGX_HTTP_GW_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>


/* more than this many commands in flight: fail fast instead of queueing */
#define NGX_HTTP_GW_REDIS_MAX_PENDING    16384

/* bytes of an unfinished reply kept before the peer is deemed hostile */
#define NGX_HTTP_GW_REDIS_MAX_UNPARSED   65536

/* replies nest no deeper than this and hold no more elements or bytes */
#define NGX_HTTP_GW_REDIS_MAX_ELEMENTS   1024
#define NGX_HTTP_GW_REDIS_MAX_STRING     4096

#define NGX_HTTP_GW_REDIS_BACKOFF_MIN    50
#define NGX_HTTP_GW_REDIS_BACKOFF_MAX    1000


typedef struct ngx_http_gw_redis_s      ngx_http_gw_redis_t;
typedef struct ngx_http_gw_redis_cmd_s  ngx_http_gw_redis_cmd_t;

/*
 * Called once per command: with the reply (which may be an error reply),
 * or with NULL when Redis is unavailable, the connection broke or the
 * deadline passed.  The reply is freed after the handler returns.
 */
typedef void (*ngx_http_gw_redis_handler_pt)(void *data, redisReply *reply);


typedef struct {
    ngx_str_t                     name;        /* as configured, for logs */
    ngx_str_t                     host;        /* numeric IP or unix path */
    ngx_int_t                     port;        /* 0: unix socket */
    ngx_str_t                     user;
    ngx_str_t                     password;
    ngx_uint_t                    db;
    ngx_msec_t                    timeout;
    ngx_msec_t                    connect_timeout;
    ngx_str_t                     script;      /* SCRIPT LOAD on connect */
} ngx_http_gw_redis_conf_t;


struct ngx_http_gw_redis_cmd_s {
    ngx_http_gw_redis_t          *redis;
    ngx_http_gw_redis_handler_pt  handler;
    void                         *data;        /* NULL: nobody waits */
    ngx_event_t                   timer;
    ngx_http_gw_redis_cmd_t      *next;        /* free list */
    unsigned                      resent:1;
};


struct ngx_http_gw_redis_s {
    ngx_http_gw_redis_conf_t     *conf;
    ngx_log_t                    *log;
    redisAsyncContext            *ac;
    ngx_connection_t             *connection;
    ngx_event_t                   connect_timer;

    ngx_http_gw_redis_cmd_t      *free;
    ngx_uint_t                    allocated;
    ngx_uint_t                    pending;

    ngx_msec_t                    backoff;
    ngx_msec_t                    retry_at;

    time_t                        log_sec;
    ngx_uint_t                    log_suppressed;

    unsigned                      connected:1;
    unsigned                      alive:1;     /* a good reply came back */
    unsigned                      dispatching:1;
    unsigned                      writing:1;
    unsigned                      close_requested:1;
    unsigned                      exiting:1;
};


ngx_http_gw_redis_t *ngx_http_gw_redis_create(ngx_cycle_t *cycle,
    ngx_http_gw_redis_conf_t *conf);
void ngx_http_gw_redis_destroy(ngx_http_gw_redis_t *redis);

ngx_uint_t ngx_http_gw_redis_usable(ngx_http_gw_redis_t *redis);
ngx_http_gw_redis_cmd_t *ngx_http_gw_redis_send(ngx_http_gw_redis_t *redis,
    u_char *command, size_t len, ngx_msec_t timeout,
    ngx_http_gw_redis_handler_pt handler, void *data);
ngx_int_t ngx_http_gw_redis_resend(ngx_http_gw_redis_cmd_t *cmd,
    u_char *command, size_t len);

void ngx_cdecl ngx_http_gw_redis_log_error(ngx_http_gw_redis_t *redis,
    ngx_uint_t level, const char *fmt, ...);
size_t ngx_http_gw_redis_printable(u_char *dst, size_t size, u_char *src,
    size_t len);

/* reply objects with bounded sizes, for redisReader */
extern redisReplyObjectFunctions  ngx_http_gw_redis_reply_functions;


#endif /* _NGX_HTTP_GW_REDIS_H_INCLUDED_ */
