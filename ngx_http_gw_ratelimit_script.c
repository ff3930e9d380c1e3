
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: gw_ratelimit's script on the wire (see the header).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_gw_ratelimit_script.h"


static ngx_int_t ngx_http_gw_rl_parse_reply(redisReply *reply,
    ngx_uint_t n, ngx_uint_t details, const ngx_uint_t *capacity,
    ngx_http_gw_rl_result_t *res, ngx_uint_t *admitted,
    ngx_uint_t *known);


/*
 * Interprets a batch reply: an array with one element per request, each
 * checked against what the request asked.  Everything is checked: the
 * reply comes from the network, and a wrong decision is worse than none
 * (on NGX_ERROR every request of the batch follows its fail policy).  An
 * error element fails its request alone.
 */

ngx_int_t
ngx_http_gw_rl_parse_batch(redisReply *reply, ngx_http_gw_rl_verdicts_t *v)
{
    ngx_uint_t   i, k, admitted, known;
    redisReply  *e;

    v->error = NULL;

    if (reply == NULL
        || reply->type != REDIS_REPLY_ARRAY
        || v->nreq == 0
        || v->nreq > NGX_HTTP_GW_RL_BATCH
        || reply->elements != v->nreq
        || reply->element == NULL)
    {
        return NGX_ERROR;
    }

    k = 0;

    for (i = 0; i < v->nreq; i++) {
        e = reply->element[i];

        if (v->nlimits[i] == 0
            || v->nlimits[i] > NGX_HTTP_GW_RL_MAX_LIMITS
            || k + v->nlimits[i] > NGX_HTTP_GW_RL_BATCH_KEYS
            || e == NULL)
        {
            return NGX_ERROR;
        }

        if (e->type == REDIS_REPLY_ERROR) {
            v->outcome[i] = NGX_HTTP_GW_RL_FAILED;
            v->known[i] = 0;

            if (v->error == NULL) {
                v->error = e;
            }

        } else {
            if (ngx_http_gw_rl_parse_reply(e, v->nlimits[i],
                                                  v->details[i],
                                                  &v->capacity[k], &v->res[k],
                                                  &admitted, &known)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            v->outcome[i] = admitted ? NGX_HTTP_GW_RL_ADMITTED
                                     : NGX_HTTP_GW_RL_DENIED;
            v->known[i] = (u_char) known;
        }

        k += v->nlimits[i];
    }

    return NGX_OK;
}


/*
 * One request's element: the integer 1 when it was admitted and wanted no
 * details, otherwise {admitted, (allowed, remaining, reset, retry)...}.
 */

static ngx_int_t
ngx_http_gw_rl_parse_reply(redisReply *reply, ngx_uint_t n,
    ngx_uint_t details, const ngx_uint_t *capacity,
    ngx_http_gw_rl_result_t *res, ngx_uint_t *admitted,
    ngx_uint_t *known)
{
    ngx_uint_t   i, k, all;
    long long    v[4];
    redisReply  *e;

    if (n == 0 || n > NGX_HTTP_GW_RL_MAX_LIMITS) {
        return NGX_ERROR;
    }

    if (reply->type == REDIS_REPLY_INTEGER) {
        if (reply->integer != 1 || details) {
            return NGX_ERROR;
        }

        *admitted = 1;
        *known = 0;

        return NGX_OK;
    }

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 1 + 4 * n
        || reply->element == NULL)
    {
        return NGX_ERROR;
    }

    e = reply->element[0];

    if (e == NULL
        || e->type != REDIS_REPLY_INTEGER
        || (e->integer != 0 && e->integer != 1))
    {
        return NGX_ERROR;
    }

    *admitted = (ngx_uint_t) e->integer;
    all = 1;

    for (i = 0; i < n; i++) {

        for (k = 0; k < 4; k++) {
            e = reply->element[1 + 4 * i + k];

            if (e == NULL || e->type != REDIS_REPLY_INTEGER
                || e->integer < 0)
            {
                return NGX_ERROR;
            }

            v[k] = e->integer;
        }

        if (v[0] > 1 || v[1] > (long long) capacity[i]) {
            return NGX_ERROR;
        }

        res[i].allowed = (ngx_uint_t) v[0];
        res[i].remaining = (ngx_uint_t) v[1];
        res[i].reset = (ngx_msec_t) ngx_min(v[2],
                                            NGX_HTTP_GW_RL_MAX_MSEC);
        res[i].retry = (ngx_msec_t) ngx_min(v[3],
                                            NGX_HTTP_GW_RL_MAX_MSEC);

        if (!res[i].allowed) {
            all = 0;
        }
    }

    if (*admitted != all) {
        return NGX_ERROR;
    }

    *known = 1;

    return NGX_OK;
}


ngx_uint_t
ngx_http_gw_rl_noscript(redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR
           && reply->str != NULL
           && reply->len >= sizeof("NOSCRIPT") - 1
           && ngx_strncmp(reply->str, "NOSCRIPT", sizeof("NOSCRIPT") - 1)
              == 0;
}
