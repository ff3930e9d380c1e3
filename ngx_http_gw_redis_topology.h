
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: which Redis server a command goes to.  One server; or the
 * master a set of Redis Sentinels names (found through them, followed on
 * +switch-master, found again when the master fails or says READONLY or
 * LOADING); or the master of a hash slot in a Redis Cluster (the slots'
 * map from CLUSTER SLOTS, refreshed on MOVED, ASK, a lost connection, and
 * periodically).  One connection per server per worker.  Nothing here
 * waits: what is not known yet is asked for, and the caller is told when
 * it changes.
 */


#ifndef _NGX_HTTP_GW_REDIS_TOPOLOGY_H_INCLUDED_
#define _NGX_HTTP_GW_REDIS_TOPOLOGY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_gw_redis.h"


#define NGX_HTTP_GW_REDIS_SINGLE     0
#define NGX_HTTP_GW_REDIS_SENTINEL   1
#define NGX_HTTP_GW_REDIS_CLUSTER    2

/* servers a worker connects to, at most (a cluster's masters, sentinels) */
#define NGX_HTTP_GW_REDIS_MAX_NODES  64


typedef struct ngx_http_gw_redis_topology_s  ngx_http_gw_redis_topology_t;

/* what the caller is told when a server becomes known or changes */
typedef void (*ngx_http_gw_redis_changed_pt)(void *data);


typedef struct {
    ngx_uint_t                    mode;
    ngx_array_t                   addrs;      /* ngx_http_gw_redis_addr_t */
    ngx_str_t                     master;     /* the sentinels' name */
    ngx_http_gw_redis_conf_t     *redis;      /* the data servers' sessions */
    ngx_http_gw_redis_conf_t      sentinel;   /* the sentinels' */
    ngx_msec_t                    refresh;    /* the cluster's map */
} ngx_http_gw_redis_topology_conf_t;


ngx_http_gw_redis_topology_t *ngx_http_gw_redis_topology_create(
    ngx_cycle_t *cycle, ngx_http_gw_redis_topology_conf_t *conf,
    ngx_http_gw_redis_changed_pt changed, void *data);
void ngx_http_gw_redis_topology_destroy(ngx_http_gw_redis_topology_t *t);

ngx_http_gw_redis_t *ngx_http_gw_redis_topology_node(
    ngx_http_gw_redis_topology_t *t, ngx_uint_t slot);
ngx_http_gw_redis_t *ngx_http_gw_redis_topology_redirect(
    ngx_http_gw_redis_topology_t *t, ngx_http_gw_redis_t *node,
    redisReply *reply, ngx_uint_t *asking);
ngx_int_t ngx_http_gw_redis_topology_asking(ngx_http_gw_redis_t *node);
void ngx_http_gw_redis_topology_stale(ngx_http_gw_redis_topology_t *t);


#endif /* _NGX_HTTP_GW_REDIS_TOPOLOGY_H_INCLUDED_ */
