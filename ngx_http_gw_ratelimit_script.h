
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: gw_ratelimit's decision script on the wire.  The script itself
 * is ngx_http_gw_ratelimit_script.lua (embedded from the generated
 * ngx_http_gw_ratelimit_lua.h); this unit builds a batch of requests into
 * the script's arguments and interprets its reply, every byte of which is
 * checked: the reply comes from the network, and a wrong decision is worse
 * than none.  No nginx request or event here: a fuzzer links this unit as
 * it is.
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
/* distinct limits in a batch: their number fits a byte with room */
#define NGX_HTTP_GW_RL_BATCH_LIMITS  63
/* bytes of the keys of a batch, in the Redis protocol */
#define NGX_HTTP_GW_RL_BATCH_BYTES   8192

/* a request wants its details (RateLimit headers, a possible delay) */
#define NGX_HTTP_GW_RL_DETAILS       0x80

/* the four arguments of a limit, in the Redis protocol, at most */
#define NGX_HTTP_GW_RL_LIMIT_ARGS    (4 * (sizeof("$20\r\n\r\n") - 1 + 20))

/* reset and retry times from Redis are clamped to a day */
#define NGX_HTTP_GW_RL_MAX_MSEC      86400000

/* the outcome of a request in a batch reply */
#define NGX_HTTP_GW_RL_FAILED        0
#define NGX_HTTP_GW_RL_ADMITTED      1
#define NGX_HTTP_GW_RL_DENIED        2


/* a limit as the script (and the local fallback) computes it */
typedef struct {
    ngx_uint_t                   algorithm;
    ngx_uint_t                   rate;        /* requests per period */
    ngx_uint_t                   burst;
    uint64_t                     period;      /* usec */
    uint64_t                     interval;    /* gcra: period / rate */
    uint64_t                     tolerance;   /* gcra: (burst + 1) interval */
    ngx_uint_t                   capacity;    /* windows: rate + burst */
    ngx_str_t                    args;        /* the script's arguments */
} ngx_http_gw_rl_limit_t;


typedef struct {
    ngx_uint_t                   allowed;
    ngx_uint_t                   remaining;
    ngx_msec_t                   reset;
    ngx_msec_t                   retry;
    ngx_uint_t                   excess;      /* thousandths of a request */
} ngx_http_gw_rl_result_t;


/*
 * A batch: its distinct limits and keys, and its requests as lists of
 * references to the keys.  The keys are kept in the Redis protocol, ready
 * to be sent (and sent again with EVAL after NOSCRIPT).
 */
typedef struct {
    ngx_uint_t                   nlimits;
    ngx_http_gw_rl_limit_t      *limit[NGX_HTTP_GW_RL_BATCH_LIMITS];

    ngx_uint_t                   nkeys;
    uint32_t                     key_hash[NGX_HTTP_GW_RL_BATCH_KEYS];
    ngx_str_t                    key[NGX_HTTP_GW_RL_BATCH_KEYS];
    u_char                       key_limit[NGX_HTTP_GW_RL_BATCH_KEYS];
    uint16_t                     key_slot[NGX_HTTP_GW_RL_BATCH_KEYS];

    ngx_uint_t                   nreq;
    u_char                       request[NGX_HTTP_GW_RL_BATCH];
    ngx_uint_t                   nrefs;
    u_char                       ref[NGX_HTTP_GW_RL_BATCH_KEYS];

    unsigned                     general:1;   /* not the simple form */
    unsigned                     cluster:1;   /* keys grouped by slot */

    u_char                      *last;        /* end of the keys */
    u_char                       keys[NGX_HTTP_GW_RL_BATCH_BYTES];
} ngx_http_gw_rl_batch_t;


/*
 * A batch reply interpreted: per request its outcome and whether its
 * results are known, per reference (the requests' keys one after the
 * other) its result.
 */
typedef struct {
    u_char                       outcome[NGX_HTTP_GW_RL_BATCH];
    u_char                       known[NGX_HTTP_GW_RL_BATCH];
    ngx_http_gw_rl_result_t      res[NGX_HTTP_GW_RL_BATCH_KEYS];
    redisReply                  *error;      /* of a failed request */
} ngx_http_gw_rl_verdicts_t;


/* the script's source and its SHA-1, in hex */
extern ngx_str_t  ngx_http_gw_rl_script;
extern ngx_str_t  ngx_http_gw_rl_script_sha1;


void ngx_http_gw_rl_limit_init(ngx_http_gw_rl_limit_t *limit,
    ngx_uint_t algorithm, ngx_uint_t period, ngx_uint_t rate,
    ngx_uint_t burst, u_char *buf);

void ngx_http_gw_rl_batch_init(ngx_http_gw_rl_batch_t *b,
    ngx_uint_t cluster);
ngx_int_t ngx_http_gw_rl_batch_add(ngx_http_gw_rl_batch_t *b,
    ngx_http_gw_rl_limit_t **limits, ngx_str_t *keys, ngx_uint_t n,
    ngx_uint_t slot, ngx_uint_t details, ngx_str_t *stored);
size_t ngx_http_gw_rl_batch_size(ngx_http_gw_rl_batch_t *b, size_t id);
size_t ngx_http_gw_rl_batch_format(ngx_http_gw_rl_batch_t *b, u_char *buf,
    ngx_uint_t eval, ngx_str_t *id);

size_t ngx_http_gw_rl_refund_size(ngx_http_gw_rl_limit_t **limits,
    ngx_str_t *keys, ngx_uint_t n, size_t id);
size_t ngx_http_gw_rl_refund_format(u_char *buf,
    ngx_http_gw_rl_limit_t **limits, ngx_str_t *keys, ngx_uint_t n,
    ngx_uint_t ref, ngx_str_t *id);

ngx_uint_t ngx_http_gw_rl_slot(u_char *key, size_t len);

ngx_int_t ngx_http_gw_rl_parse(redisReply *reply, ngx_http_gw_rl_batch_t *b,
    ngx_http_gw_rl_verdicts_t *v);
ngx_uint_t ngx_http_gw_rl_noscript(redisReply *reply);


#endif /* _NGX_HTTP_GW_RATELIMIT_SCRIPT_H_INCLUDED_ */
