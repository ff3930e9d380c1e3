
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: Redis replies from a hostile peer.  Reply objects for hiredis's
 * redisReader that refuse anything far larger than a reply we expect (and
 * say why), a sanitizer for the bytes of an error reply that go to a log,
 * and the parsers of what sentinels and clusters say (a master's address,
 * a failover message, a MOVED or ASK redirection, CLUSTER SLOTS).  Nothing
 * here touches nginx's events or requests: a fuzzer links this unit as it
 * is.
 */


#ifndef _NGX_HTTP_GW_REDIS_REPLY_H_INCLUDED_
#define _NGX_HTTP_GW_REDIS_REPLY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>


/* replies nest no deeper than hiredis allows and hold no more than this */
#define NGX_HTTP_GW_REDIS_MAX_ELEMENTS   1024
#define NGX_HTTP_GW_REDIS_MAX_STRING     4096


/*
 * Why the reader failed, when a reply object was refused: set through the
 * reader's privdata (when not NULL).  "what" is a format for one "%L",
 * the refused size; hiredis itself only says "Out of memory".
 */
typedef struct {
    const char                   *what;
    long long                     size;
} ngx_http_gw_redis_refusal_t;


/* a server named by a sentinel or a cluster: a numeric address, a port */
typedef struct {
    ngx_str_t                     host;        /* points into the reply */
    ngx_int_t                     port;
} ngx_http_gw_redis_node_addr_t;


/* a range of hash slots and the master serving it (CLUSTER SLOTS) */
typedef struct {
    ngx_uint_t                    start;
    ngx_uint_t                    end;
    ngx_http_gw_redis_node_addr_t addr;        /* host empty: the one asked */
} ngx_http_gw_redis_slots_t;


#define NGX_HTTP_GW_REDIS_SLOTS      16384
#define NGX_HTTP_GW_REDIS_MAX_RANGES 1024


size_t ngx_http_gw_redis_printable(u_char *dst, size_t size, u_char *src,
    size_t len);
ngx_uint_t ngx_http_gw_redis_numeric_host(u_char *host, size_t len);

ngx_int_t ngx_http_gw_redis_parse_master(redisReply *r,
    ngx_http_gw_redis_node_addr_t *addr);
ngx_int_t ngx_http_gw_redis_parse_switch(redisReply *r, ngx_str_t *master,
    ngx_http_gw_redis_node_addr_t *addr);
ngx_int_t ngx_http_gw_redis_parse_redirect(redisReply *r, ngx_uint_t *ask,
    ngx_uint_t *slot, ngx_http_gw_redis_node_addr_t *addr);
ngx_int_t ngx_http_gw_redis_parse_slots(redisReply *r,
    ngx_http_gw_redis_slots_t *ranges, ngx_uint_t *n);

/* reply objects with bounded sizes, for redisReader */
extern redisReplyObjectFunctions  ngx_http_gw_redis_reply_functions;


#endif /* _NGX_HTTP_GW_REDIS_REPLY_H_INCLUDED_ */
