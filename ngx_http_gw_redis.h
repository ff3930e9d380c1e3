
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: hiredis async API driven by nginx events.
 *
 * A connection to one Redis server, per worker process, carries pipelined
 * commands (for gw_ratelimit, one per event loop iteration with the
 * decisions of all its requests).  Every command has a deadline enforced
 * by an nginx timer; a reply that misses it breaks the connection, which is
 * closed (failing every command still in flight) and reconnected later
 * with an exponential backoff.  Replies are dispatched here, not by
 * hiredis, so that a reply nobody asked for is an error instead of an
 * abort() (or, on a subscribed connection, a message for its owner).
 * Which servers to connect to is ngx_http_gw_redis_topology.c's business.
 */


#ifndef _NGX_HTTP_GW_REDIS_H_INCLUDED_
#define _NGX_HTTP_GW_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_gw_redis_reply.h"


/* more than this many commands in flight: fail fast instead of queueing */
#define NGX_HTTP_GW_REDIS_MAX_PENDING    16384

/* bytes of an unfinished reply kept before the peer is deemed hostile */
#define NGX_HTTP_GW_REDIS_MAX_UNPARSED   65536

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

/*
 * What a connection tells its owner: it closed after a failure (reply is
 * NULL; the connection is not to be destroyed from inside this call), or,
 * when it subscribes, a message (reply: the message, freed afterwards).
 */
#define NGX_HTTP_GW_REDIS_CLOSED      1
#define NGX_HTTP_GW_REDIS_MESSAGE     2
#define NGX_HTTP_GW_REDIS_NOT_MASTER  3

typedef void (*ngx_http_gw_redis_event_pt)(void *data, ngx_uint_t event,
    redisReply *reply);


/* how every connection of a setup opens its session */
typedef struct {
    ngx_str_t                     name;        /* as configured, for logs */
    ngx_str_t                     user;
    ngx_str_t                     password;
    ngx_uint_t                    db;
    ngx_msec_t                    timeout;
    ngx_msec_t                    connect_timeout;
    ngx_str_t                     script;      /* SCRIPT LOAD on connect */
    char                         *log_prefix;  /* the caller's, "gw_x: " */
    unsigned                      master:1;    /* check ROLE on connect */
} ngx_http_gw_redis_conf_t;


/* a server: "name" for logs, "host" a numeric IP or a unix socket path */
typedef struct {
    ngx_str_t                     name;
    ngx_str_t                     host;        /* NUL-terminated */
    ngx_int_t                     port;        /* 0: unix socket */
} ngx_http_gw_redis_addr_t;


ngx_http_gw_redis_t *ngx_http_gw_redis_create(ngx_cycle_t *cycle,
    ngx_http_gw_redis_conf_t *conf, ngx_http_gw_redis_addr_t *addr);
void ngx_http_gw_redis_destroy(ngx_http_gw_redis_t *redis);
void ngx_http_gw_redis_set_events(ngx_http_gw_redis_t *redis,
    ngx_http_gw_redis_event_pt handler, void *data, ngx_uint_t subscriber);
void ngx_http_gw_redis_close_now(ngx_http_gw_redis_t *redis);
void ngx_http_gw_redis_fail_now(ngx_http_gw_redis_t *redis);

ngx_uint_t ngx_http_gw_redis_usable(ngx_http_gw_redis_t *redis);
ngx_uint_t ngx_http_gw_redis_connected(ngx_http_gw_redis_t *redis);
ngx_http_gw_redis_addr_t *ngx_http_gw_redis_addr(ngx_http_gw_redis_t *redis);
ngx_http_gw_redis_cmd_t *ngx_http_gw_redis_send(ngx_http_gw_redis_t *redis,
    u_char *command, size_t len, ngx_msec_t timeout,
    ngx_http_gw_redis_handler_pt handler, void *data);
ngx_http_gw_redis_cmd_t *ngx_http_gw_redis_command(ngx_http_gw_redis_t *redis,
    ngx_msec_t timeout, ngx_http_gw_redis_handler_pt handler, void *data,
    int argc, const char **argv, const size_t *argvlen);
ngx_int_t ngx_http_gw_redis_subscribe(ngx_http_gw_redis_t *redis,
    ngx_str_t *channel);
ngx_int_t ngx_http_gw_redis_ping(ngx_http_gw_redis_t *redis);
ngx_int_t ngx_http_gw_redis_resend(ngx_http_gw_redis_cmd_t *cmd,
    u_char *command, size_t len);
void ngx_http_gw_redis_cancel(ngx_http_gw_redis_cmd_t *cmd);

void ngx_cdecl ngx_http_gw_redis_log_error(ngx_http_gw_redis_t *redis,
    ngx_uint_t level, const char *fmt, ...);


#endif /* _NGX_HTTP_GW_REDIS_H_INCLUDED_ */
