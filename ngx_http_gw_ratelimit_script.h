
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: gw_ratelimit's script on the wire.  A batch reply of the
 * decision script interpreted, every byte of it checked: the reply comes
 * from the network, and a wrong decision is worse than none.  No nginx
 * request or event here: a fuzzer links this unit as it is.
 */


#ifndef _NGX_HTTP_GW_RATELIMIT_SCRIPT_H_INCLUDED_
#define _NGX_HTTP_GW_RATELIMIT_SCRIPT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>


/* algorithms, as the script numbers them */
#define NGX_HTTP_GW_RL_GCRA          1
#define NGX_HTTP_GW_RL_FIXED         2
#define NGX_HTTP_GW_RL_SLIDING       3

/* limits of one request */
#define NGX_HTTP_GW_RL_MAX_LIMITS    16

/* one script call decides at most this many requests and keys */
#define NGX_HTTP_GW_RL_BATCH         64
#define NGX_HTTP_GW_RL_BATCH_KEYS    256
/* distinct limits in a batch: their number fits a descriptor byte */
#define NGX_HTTP_GW_RL_BATCH_SPECS   63

/* a key's descriptor byte: its limit in the batch, then these flags */
#define NGX_HTTP_GW_RL_LAST          0x40
#define NGX_HTTP_GW_RL_DETAILS       0x80

/* reset and retry times from Redis are clamped to a day */
#define NGX_HTTP_GW_RL_MAX_MSEC      86400000

/* the outcome of a request in a batch reply */
#define NGX_HTTP_GW_RL_FAILED        0
#define NGX_HTTP_GW_RL_ADMITTED      1
#define NGX_HTTP_GW_RL_DENIED        2


typedef struct {
    ngx_uint_t                   allowed;
    ngx_uint_t                   remaining;
    ngx_msec_t                   reset;
    ngx_msec_t                   retry;
} ngx_http_gw_rl_result_t;


/*
 * A batch reply interpreted.  In: the requests' shapes (number of limits,
 * whether the request wants the details), the keys' capacities (the keys
 * of the requests one after the other).  Out: per request its outcome and
 * whether its results are known, per key its result.
 */
typedef struct {
    ngx_uint_t                   nreq;
    u_char                       nlimits[NGX_HTTP_GW_RL_BATCH];
    u_char                       details[NGX_HTTP_GW_RL_BATCH];
    ngx_uint_t                   capacity[NGX_HTTP_GW_RL_BATCH_KEYS];
    u_char                       outcome[NGX_HTTP_GW_RL_BATCH];
    u_char                       known[NGX_HTTP_GW_RL_BATCH];
    ngx_http_gw_rl_result_t      res[NGX_HTTP_GW_RL_BATCH_KEYS];
    redisReply                  *error;      /* of a failed request */
} ngx_http_gw_rl_verdicts_t;


ngx_int_t ngx_http_gw_rl_parse_batch(redisReply *reply,
    ngx_http_gw_rl_verdicts_t *v);
ngx_uint_t ngx_http_gw_rl_noscript(redisReply *reply);


#endif /* _NGX_HTTP_GW_RATELIMIT_SCRIPT_H_INCLUDED_ */
