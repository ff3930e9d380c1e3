
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: Redis replies from a hostile peer.  Reply objects for hiredis's
 * redisReader that refuse anything far larger than a reply we expect (and
 * say why), and a sanitizer for the bytes of an error reply that go to a
 * log.  Nothing here touches nginx's events or requests: a fuzzer links
 * this unit as it is.
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


size_t ngx_http_gw_redis_printable(u_char *dst, size_t size, u_char *src,
    size_t len);

/* reply objects with bounded sizes, for redisReader */
extern redisReplyObjectFunctions  ngx_http_gw_redis_reply_functions;


#endif /* _NGX_HTTP_GW_REDIS_REPLY_H_INCLUDED_ */
