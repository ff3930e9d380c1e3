
/*
 * Copyright (C) nginx-gw authors
 *
 * libFuzzer harness for the gw_ratelimit handling of Redis replies: the
 * hiredis reader with our bounded reply objects fed hostile bytes (split
 * into two feeds, as replies arrive in pieces), then every reply it yields
 * interpreted as the script's verdicts on a batch of 1 to 64 requests of 1
 * to 16 limits each.
 *
 * Input: byte 0 the number of requests, byte 1 where to split the feed,
 * bytes 2..65 the requests' shapes (low 4 bits: limits - 1, bit 7: the
 * request wants the details), bytes 66..129 the capacities of the limits
 * (key k has capacity byte 66 + k % 64), the rest the bytes from "Redis".
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_gw_redis_reply.h"
#include "ngx_http_gw_ratelimit_script.h"


#define FUZZ_SHAPES  2
#define FUZZ_CAPS    (FUZZ_SHAPES + NGX_HTTP_GW_RL_BATCH)
#define FUZZ_HEAD    (FUZZ_CAPS + 64)


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static ngx_http_gw_rl_verdicts_t  fuzz_verdicts;


static void
fuzz_check_object(redisReply *r, ngx_uint_t depth)
{
    size_t  i;

    if (depth > 8) {
        abort();
    }

    switch (r->type) {

    case REDIS_REPLY_ARRAY:
        if (r->elements > NGX_HTTP_GW_REDIS_MAX_ELEMENTS) {
            abort();
        }

        for (i = 0; i < r->elements; i++) {
            if (r->element[i] != NULL) {
                fuzz_check_object(r->element[i], depth + 1);
            }
        }

        break;

    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        if (r->len > NGX_HTTP_GW_REDIS_MAX_STRING || r->str[r->len] != '\0') {
            abort();
        }

        break;

    case REDIS_REPLY_INTEGER:
    case REDIS_REPLY_NIL:
        break;

    default:
        abort();
    }
}


/* a believed verdict is consistent with the reply and bounded */

static void
fuzz_check_verdicts(redisReply *reply, ngx_http_gw_rl_verdicts_t *v)
{
    ngx_uint_t                       i, j, k, all;
    redisReply                      *e;
    ngx_http_gw_rl_result_t  *res;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != v->nreq) {
        abort();
    }

    k = 0;

    for (i = 0; i < v->nreq; i++) {
        e = reply->element[i];

        switch (v->outcome[i]) {

        case NGX_HTTP_GW_RL_FAILED:
            if (e->type != REDIS_REPLY_ERROR || v->known[i]
                || v->error == NULL)
            {
                abort();
            }

            break;

        case NGX_HTTP_GW_RL_ADMITTED:
        case NGX_HTTP_GW_RL_DENIED:
            if (e->type == REDIS_REPLY_ERROR) {
                abort();
            }

            if (!v->known[i]) {
                /* only "admitted, no details wanted" comes without results */
                if (v->outcome[i] != NGX_HTTP_GW_RL_ADMITTED
                    || v->details[i] || e->type != REDIS_REPLY_INTEGER)
                {
                    abort();
                }

                break;
            }

            all = 1;

            for (j = 0; j < v->nlimits[i]; j++) {
                res = &v->res[k + j];

                if (res->allowed > 1
                    || res->remaining > v->capacity[k + j]
                    || res->reset > NGX_HTTP_GW_RL_MAX_MSEC
                    || res->retry > NGX_HTTP_GW_RL_MAX_MSEC)
                {
                    abort();
                }

                all &= res->allowed;
            }

            if (all != (v->outcome[i] == NGX_HTTP_GW_RL_ADMITTED)) {
                abort();
            }

            break;

        default:
            abort();
        }

        k += v->nlimits[i];
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void                              *reply;
    size_t                             split, len;
    u_char                             buf[128];
    ngx_uint_t                         i, k, nreq;
    redisReader                       *reader;
    ngx_http_gw_rl_verdicts_t         *v;
    ngx_http_gw_redis_refusal_t        refusal;

    if (size < FUZZ_HEAD) {
        return 0;
    }

    v = &fuzz_verdicts;

    nreq = 1 + data[0] % NGX_HTTP_GW_RL_BATCH;
    split = data[1];
    k = 0;

    for (i = 0; i < nreq; i++) {
        v->nlimits[i] = 1 + (data[FUZZ_SHAPES + i] & 0x0f);
        v->details[i] = (data[FUZZ_SHAPES + i] & 0x80) ? 1 : 0;

        if (k + v->nlimits[i] > NGX_HTTP_GW_RL_BATCH_KEYS) {
            /* a batch closes before this request: it is not in it */
            nreq = i;
            break;
        }

        k += v->nlimits[i];
    }

    for (i = 0; i < k; i++) {
        v->capacity[i] = data[FUZZ_CAPS + i % 64];
    }

    data += FUZZ_HEAD;
    len = size - FUZZ_HEAD;
    split %= len + 1;

    reader = redisReaderCreateWithFunctions(
                                          &ngx_http_gw_redis_reply_functions);
    if (reader == NULL) {
        return 0;
    }

    refusal.what = NULL;
    reader->privdata = &refusal;

    if (redisReaderFeed(reader, (const char *) data, split) != REDIS_OK
        || redisReaderFeed(reader, (const char *) data + split, len - split)
           != REDIS_OK)
    {
        redisReaderFree(reader);
        return 0;
    }

    for ( ;; ) {
        reply = NULL;

        if (redisReaderGetReply(reader, &reply) != REDIS_OK) {
            break;
        }

        if (refusal.what != NULL) {
            /* a refused object fails the reader, never yields a reply */
            abort();
        }

        if (reply == NULL) {
            break;
        }

        fuzz_check_object(reply, 0);

        if (ngx_http_gw_rl_noscript(reply)) {
            if (((redisReply *) reply)->type != REDIS_REPLY_ERROR) {
                abort();
            }
        }

        if (((redisReply *) reply)->type == REDIS_REPLY_ERROR) {
            len = ngx_http_gw_redis_printable(buf, sizeof(buf),
                                       (u_char *) ((redisReply *) reply)->str,
                                       ((redisReply *) reply)->len);

            for (i = 0; i < len; i++) {
                if (buf[i] < 0x20 || buf[i] >= 0x7f || buf[i] == '"') {
                    abort();
                }
            }
        }

        v->nreq = nreq;

        if (ngx_http_gw_rl_parse_batch(reply, v) == NGX_OK) {
            fuzz_check_verdicts(reply, v);
        }

        freeReplyObject(reply);
    }

    redisReaderFree(reader);

    return 0;
}
