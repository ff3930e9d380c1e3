
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: gw_ratelimit's decision script on the wire (see the header,
 * and the script's own comment for the arguments and the reply).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_gw_ratelimit_script.h"
#include "ngx_http_gw_ratelimit_lua.h"


static u_char *ngx_http_gw_rl_number(u_char *p, uint64_t n);
static u_char *ngx_http_gw_rl_bulk(u_char *p, u_char *data, size_t len);
static uint32_t ngx_http_gw_rl_hash(u_char *data, size_t len);
static ngx_int_t ngx_http_gw_rl_parse_limits(redisReply **e,
    ngx_http_gw_rl_batch_t *b, ngx_uint_t ref, ngx_uint_t n,
    ngx_http_gw_rl_result_t *res, ngx_uint_t *all);


ngx_str_t  ngx_http_gw_rl_script = {
    sizeof(ngx_http_gw_rl_lua) - 1, (u_char *) ngx_http_gw_rl_lua
};

ngx_str_t  ngx_http_gw_rl_script_sha1 =
    ngx_string(NGX_HTTP_GW_RL_LUA_SHA1);


/*
 * period: seconds; rate: requests per period (1 to 1000000).  The gcra
 * emission interval is rounded up to a whole microsecond: a limit never
 * admits more than its rate.  "buf" holds NGX_HTTP_GW_RL_LIMIT_ARGS bytes.
 */

void
ngx_http_gw_rl_limit_init(ngx_http_gw_rl_limit_t *limit,
    ngx_uint_t algorithm, ngx_uint_t period, ngx_uint_t rate,
    ngx_uint_t burst, u_char *buf)
{
    u_char  *p, num[NGX_INT64_LEN];

    limit->algorithm = algorithm;
    limit->rate = rate;
    limit->burst = burst;
    limit->period = (uint64_t) period * 1000000;
    limit->interval = (limit->period + rate - 1) / rate;
    limit->tolerance = (uint64_t) (burst + 1) * limit->interval;
    limit->capacity = rate + burst;

    p = buf;

    p = ngx_http_gw_rl_bulk(p, num, ngx_http_gw_rl_number(num, algorithm)
                                    - num);

    if (algorithm == NGX_HTTP_GW_RL_GCRA) {
        p = ngx_http_gw_rl_bulk(p, num,
                                ngx_http_gw_rl_number(num, limit->interval)
                                - num);
        p = ngx_http_gw_rl_bulk(p, num,
                                ngx_http_gw_rl_number(num, limit->tolerance)
                                - num);
        p = ngx_http_gw_rl_bulk(p, (u_char *) "0", 1);

    } else {
        p = ngx_http_gw_rl_bulk(p, num,
                                ngx_http_gw_rl_number(num, limit->period)
                                - num);
        p = ngx_http_gw_rl_bulk(p, num,
                                ngx_http_gw_rl_number(num, limit->capacity)
                                - num);
        p = ngx_http_gw_rl_bulk(p, num, ngx_http_gw_rl_number(num, rate)
                                        - num);
    }

    limit->args.data = buf;
    limit->args.len = p - buf;
}


/* "cluster": the batch's keys may be of several hash slots of a node */

void
ngx_http_gw_rl_batch_init(ngx_http_gw_rl_batch_t *b, ngx_uint_t cluster)
{
    b->nlimits = 0;
    b->nkeys = 0;
    b->nreq = 0;
    b->nrefs = 0;
    b->general = 0;
    b->cluster = cluster ? 1 : 0;
    b->last = b->keys;
}


/*
 * Adds a request of n limits ("keys" are their Redis keys, all of hash
 * slot "slot") to the batch; NGX_DECLINED, and nothing added, when it does
 * not fit.  A key that is in the batch already is referenced, not sent
 * again.  "stored" gets where each key is kept (valid as long as the
 * batch).
 */

ngx_int_t
ngx_http_gw_rl_batch_add(ngx_http_gw_rl_batch_t *b,
    ngx_http_gw_rl_limit_t **limits, ngx_str_t *keys, ngx_uint_t n,
    ngx_uint_t slot, ngx_uint_t details, ngx_str_t *stored)
{
    size_t      size;
    uint32_t    hash[NGX_HTTP_GW_RL_MAX_LIMITS];
    ngx_uint_t  i, k, s, nkeys, nlimits, found[NGX_HTTP_GW_RL_MAX_LIMITS];

    if (n == 0 || n > NGX_HTTP_GW_RL_MAX_LIMITS
        || b->nreq == NGX_HTTP_GW_RL_BATCH
        || b->nrefs + n > NGX_HTTP_GW_RL_BATCH_KEYS)
    {
        return NGX_DECLINED;
    }

    /* what the request needs that the batch does not hold yet */

    nkeys = b->nkeys;
    nlimits = b->nlimits;
    size = 0;

    for (i = 0; i < n; i++) {
        hash[i] = ngx_http_gw_rl_hash(keys[i].data, keys[i].len);

        for (k = 0; k < b->nkeys; k++) {
            if (b->key_hash[k] == hash[i]
                && b->key[k].len == keys[i].len
                && ngx_memcmp(b->key[k].data, keys[i].data, keys[i].len)
                   == 0)
            {
                break;
            }
        }

        if (k == b->nkeys) {
            k = nkeys++;
            size += sizeof("$\r\n\r\n") - 1 + NGX_INT_T_LEN + keys[i].len;

            for (s = 0; s < b->nlimits; s++) {
                if (b->limit[s] == limits[i]) {
                    break;
                }
            }

            if (s == b->nlimits) {
                nlimits++;
            }
        }

        found[i] = k;
    }

    if (nkeys > NGX_HTTP_GW_RL_BATCH_KEYS
        || nlimits > NGX_HTTP_GW_RL_BATCH_LIMITS
        || size > (size_t) (b->keys + NGX_HTTP_GW_RL_BATCH_BYTES - b->last))
    {
        return NGX_DECLINED;
    }

    /* it fits */

    for (i = 0; i < n; i++) {
        k = found[i];

        if (k == b->nkeys) {

            /* a new key (a request never has one twice: distinct zones) */

            for (s = 0; s < b->nlimits; s++) {
                if (b->limit[s] == limits[i]) {
                    break;
                }
            }

            if (s == b->nlimits) {
                b->limit[b->nlimits++] = limits[i];
            }

            b->key_limit[k] = (u_char) (s + 1);
            b->key_hash[k] = hash[i];
            b->key_slot[k] = (uint16_t) slot;

            *b->last++ = '$';
            b->last = ngx_http_gw_rl_number(b->last, keys[i].len);
            *b->last++ = CR;
            *b->last++ = LF;

            b->key[k].data = b->last;
            b->key[k].len = keys[i].len;

            b->last = ngx_cpymem(b->last, keys[i].data, keys[i].len);
            *b->last++ = CR;
            *b->last++ = LF;

            b->nkeys++;

        } else {
            b->general = 1;
        }

        stored[i] = b->key[k];
        b->ref[b->nrefs++] = (u_char) k;
    }

    b->request[b->nreq++] = (u_char) n | (details ? NGX_HTTP_GW_RL_DETAILS
                                                  : 0);

    if (n > 1 || details) {
        b->general = 1;
    }

    return NGX_OK;
}


/* the size of the batch's command; "id" the length of its id */

size_t
ngx_http_gw_rl_batch_size(ngx_http_gw_rl_batch_t *b, size_t id)
{
    size_t      size;
    ngx_uint_t  s;

    size = sizeof("*\r\n$4\r\nEVAL\r\n$\r\n\r\n$\r\n\r\n") - 1
           + 3 * NGX_INT_T_LEN + ngx_http_gw_rl_script.len
           + (b->last - b->keys)
           + 5 * (sizeof("$\r\n\r\n") - 1 + NGX_INT_T_LEN)
           + 2 * b->nkeys + b->nreq + b->nrefs + id;

    for (s = 0; s < b->nlimits; s++) {
        size += b->limit[s]->args.len;
    }

    return size;
}


/*
 * The batch as one command, EVALSHA sha1 nkeys key... limits requests refs
 * id slots [key...] args..., or with eval, EVAL script nkeys ...  "buf"
 * holds at least ngx_http_gw_rl_batch_size() bytes.  In the simple form
 * (every request one limit, a key of its own, no details) the requests and
 * references are left out, and the id is only sent when a sliding window
 * needs it.  In a cluster the keys go by hash slot: those of the first
 * slot declared, the others after the slots' marks.
 */

size_t
ngx_http_gw_rl_batch_format(ngx_http_gw_rl_batch_t *b, u_char *buf,
    ngx_uint_t eval, ngx_str_t *id)
{
    u_char      *p, num[NGX_INT64_LEN];
    ngx_uint_t   i, j, k, s, sliding, declared, identity;
    u_char       order[NGX_HTTP_GW_RL_BATCH_KEYS];   /* new place: old */
    u_char       place[NGX_HTTP_GW_RL_BATCH_KEYS];   /* old: new place */
    u_char       bytes[NGX_HTTP_GW_RL_BATCH_KEYS];

    /* the keys by slot (a stable insertion sort: a few keys) */

    declared = b->nkeys;
    identity = 1;

    for (i = 0; i < b->nkeys; i++) {
        order[i] = (u_char) i;
    }

    if (b->cluster) {
        for (i = 1; i < b->nkeys; i++) {
            k = order[i];

            for (j = i; j > 0 && b->key_slot[order[j - 1]] > b->key_slot[k];
                 j--)
            {
                order[j] = order[j - 1];
                identity = 0;
            }

            order[j] = (u_char) k;
        }

        for (declared = 1; declared < b->nkeys; declared++) {
            if (b->key_slot[order[declared]] != b->key_slot[order[0]]) {
                break;
            }
        }
    }

    for (i = 0; i < b->nkeys; i++) {
        place[order[i]] = (u_char) i;
    }

    p = buf;

    *p++ = '*';
    p = ngx_http_gw_rl_number(p, 3 + declared + 5 + (b->nkeys - declared)
                                 + 4 * b->nlimits);
    *p++ = CR;
    *p++ = LF;

    if (eval) {
        p = ngx_http_gw_rl_bulk(p, (u_char *) "EVAL", 4);
        p = ngx_http_gw_rl_bulk(p, ngx_http_gw_rl_script.data,
                                ngx_http_gw_rl_script.len);

    } else {
        p = ngx_http_gw_rl_bulk(p, (u_char *) "EVALSHA", 7);
        p = ngx_http_gw_rl_bulk(p, ngx_http_gw_rl_script_sha1.data,
                                ngx_http_gw_rl_script_sha1.len);
    }

    p = ngx_http_gw_rl_bulk(p, num, ngx_http_gw_rl_number(num, declared)
                                    - num);

    if (identity && declared == b->nkeys) {
        /* every key, in the protocol already */
        p = ngx_cpymem(p, b->keys, b->last - b->keys);

    } else {
        for (i = 0; i < declared; i++) {
            p = ngx_http_gw_rl_bulk(p, b->key[order[i]].data,
                                    b->key[order[i]].len);
        }
    }

    for (i = 0; i < b->nkeys; i++) {
        bytes[i] = b->key_limit[order[i]];
    }

    p = ngx_http_gw_rl_bulk(p, bytes, b->nkeys);

    if (b->general || !identity) {
        p = ngx_http_gw_rl_bulk(p, b->request, b->nreq);

        for (i = 0; i < b->nrefs; i++) {
            bytes[i] = place[b->ref[i]];
        }

        p = ngx_http_gw_rl_bulk(p, bytes, b->nrefs);

    } else {
        p = ngx_http_gw_rl_bulk(p, NULL, 0);
        p = ngx_http_gw_rl_bulk(p, NULL, 0);
    }

    sliding = 0;

    for (s = 0; s < b->nlimits; s++) {
        if (b->limit[s]->algorithm == NGX_HTTP_GW_RL_SLIDING) {
            sliding = 1;
        }
    }

    p = ngx_http_gw_rl_bulk(p, id->data, sliding ? id->len : 0);

    if (declared < b->nkeys) {
        for (i = 0; i < b->nkeys; i++) {
            bytes[i] = (i == 0 || b->key_slot[order[i]]
                                  != b->key_slot[order[i - 1]]);
        }

        p = ngx_http_gw_rl_bulk(p, bytes, b->nkeys);

        for (i = declared; i < b->nkeys; i++) {
            p = ngx_http_gw_rl_bulk(p, b->key[order[i]].data,
                                    b->key[order[i]].len);
        }

    } else {
        p = ngx_http_gw_rl_bulk(p, NULL, 0);
    }

    for (s = 0; s < b->nlimits; s++) {
        p = ngx_cpymem(p, b->limit[s]->args.data, b->limit[s]->args.len);
    }

    return p - buf;
}


/*
 * A refund: the keys of one request's part that were charged (a request
 * that another part rejected), "ref" its first key's place in its batch,
 * "id" the batch's id (a sliding window's members are made of both).
 */

size_t
ngx_http_gw_rl_refund_size(ngx_http_gw_rl_limit_t **limits, ngx_str_t *keys,
    ngx_uint_t n, size_t id)
{
    size_t      size;
    ngx_uint_t  i;

    size = sizeof("*\r\n$7\r\nEVALSHA\r\n$40\r\n\r\n$\r\n\r\n") - 1
           + 2 * NGX_INT_T_LEN + 40
           + 2 * (sizeof("$\r\n\r\n") - 1 + NGX_INT_T_LEN) + n;

    for (i = 0; i < n; i++) {
        size += 2 * (sizeof("$\r\n\r\n") - 1 + NGX_INT_T_LEN)
                + keys[i].len + 2 + id + limits[i]->args.len;
    }

    return size;
}


size_t
ngx_http_gw_rl_refund_format(u_char *buf, ngx_http_gw_rl_limit_t **limits,
    ngx_str_t *keys, ngx_uint_t n, ngx_uint_t ref, ngx_str_t *id)
{
    u_char      *p, num[NGX_INT64_LEN], bytes[NGX_HTTP_GW_RL_MAX_LIMITS];
    ngx_uint_t   i, r;

    p = buf;

    *p++ = '*';
    p = ngx_http_gw_rl_number(p, 3 + n + 2 + n + 4 * n);
    *p++ = CR;
    *p++ = LF;

    p = ngx_http_gw_rl_bulk(p, (u_char *) "EVALSHA", 7);
    p = ngx_http_gw_rl_bulk(p, ngx_http_gw_rl_script_sha1.data,
                            ngx_http_gw_rl_script_sha1.len);
    p = ngx_http_gw_rl_bulk(p, num, ngx_http_gw_rl_number(num, n) - num);

    for (i = 0; i < n; i++) {
        p = ngx_http_gw_rl_bulk(p, keys[i].data, keys[i].len);
        bytes[i] = (u_char) (i + 1);
    }

    p = ngx_http_gw_rl_bulk(p, NULL, 0);
    p = ngx_http_gw_rl_bulk(p, bytes, n);

    /* the member the script made: the key's place in refs, from 1 */

    for (i = 0; i < n; i++) {
        if (limits[i]->algorithm != NGX_HTTP_GW_RL_SLIDING) {
            p = ngx_http_gw_rl_bulk(p, NULL, 0);
            continue;
        }

        r = ref + i + 1;

        *p++ = '$';
        p = ngx_http_gw_rl_number(p, 2 + id->len);
        *p++ = CR;
        *p++ = LF;
        *p++ = (u_char) (65 + r / 128);
        *p++ = (u_char) (64 + r % 128);
        p = ngx_cpymem(p, id->data, id->len);
        *p++ = CR;
        *p++ = LF;
    }

    for (i = 0; i < n; i++) {
        p = ngx_cpymem(p, limits[i]->args.data, limits[i]->args.len);
    }

    return p - buf;
}


/*
 * The Redis Cluster hash slot of a key: CRC16 (XMODEM) of its hash tag,
 * the bytes between its first "{" and the next "}" when there are any,
 * else of the whole key.
 */

ngx_uint_t
ngx_http_gw_rl_slot(u_char *key, size_t len)
{
    size_t           i, s, e;
    uint16_t         crc;
    ngx_uint_t       n, bit;

    static uint16_t  table[256];

    if (table[1] == 0) {
        for (n = 0; n < 256; n++) {
            crc = (uint16_t) (n << 8);

            for (bit = 0; bit < 8; bit++) {
                crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                     : (uint16_t) (crc << 1);
            }

            table[n] = crc;
        }
    }

    for (s = 0; s < len && key[s] != '{'; s++) { /* void */ }

    if (s < len) {
        for (e = s + 1; e < len && key[e] != '}'; e++) { /* void */ }

        if (e < len && e > s + 1) {
            key += s + 1;
            len = e - s - 1;
        }
    }

    crc = 0;

    for (i = 0; i < len; i++) {
        crc = (uint16_t) ((crc << 8) ^ table[((crc >> 8) ^ key[i]) & 0xff]);
    }

    return crc & 16383;
}


/*
 * Interprets a batch reply: a string of "1"s when every request was
 * admitted and none wants details, else an array: the requests' verdicts,
 * then per failed request an error, per rejected request and per admitted
 * request that wants details five integers per limit.  Any other shape,
 * length, type or value out of bounds: NGX_ERROR (every request of the
 * batch then follows its fail policy).  An error for a request fails that
 * request alone.
 */

ngx_int_t
ngx_http_gw_rl_parse(redisReply *reply, ngx_http_gw_rl_batch_t *b,
    ngx_http_gw_rl_verdicts_t *v)
{
    u_char      *verdict;
    ngx_uint_t   i, n, e, ref, all, wants;
    redisReply  *s;

    v->error = NULL;

    if (reply == NULL || b->nreq == 0 || b->nreq > NGX_HTTP_GW_RL_BATCH) {
        return NGX_ERROR;
    }

    if (reply->type == REDIS_REPLY_STRING) {

        /* all admitted, no details: only possible when none wants them */

        if (reply->len != b->nreq || reply->str == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < b->nreq; i++) {
            if (reply->str[i] != '1'
                || (b->request[i] & NGX_HTTP_GW_RL_DETAILS))
            {
                return NGX_ERROR;
            }

            v->outcome[i] = NGX_HTTP_GW_RL_ADMITTED;
            v->known[i] = 0;
        }

        return NGX_OK;
    }

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 1
        || reply->element == NULL)
    {
        return NGX_ERROR;
    }

    s = reply->element[0];

    if (s == NULL
        || s->type != REDIS_REPLY_STRING
        || s->str == NULL
        || s->len != b->nreq)
    {
        return NGX_ERROR;
    }

    verdict = (u_char *) s->str;
    e = 1;
    ref = 0;

    for (i = 0; i < b->nreq; i++) {
        n = b->request[i] & 0x7f;
        wants = b->request[i] & NGX_HTTP_GW_RL_DETAILS;

        if (n == 0 || n > NGX_HTTP_GW_RL_MAX_LIMITS
            || ref + n > b->nrefs)
        {
            return NGX_ERROR;
        }

        v->known[i] = 0;

        switch (verdict[i]) {

        case 'E':
            if (e >= reply->elements
                || reply->element[e] == NULL
                || reply->element[e]->type != REDIS_REPLY_ERROR)
            {
                return NGX_ERROR;
            }

            if (v->error == NULL) {
                v->error = reply->element[e];
            }

            e++;
            v->outcome[i] = NGX_HTTP_GW_RL_FAILED;
            break;

        case '1':
            v->outcome[i] = NGX_HTTP_GW_RL_ADMITTED;

            if (!wants) {
                break;
            }

            /* fall through */

        case '0':
            if (verdict[i] == '0') {
                v->outcome[i] = NGX_HTTP_GW_RL_DENIED;
            }

            if (e + 5 * n > reply->elements
                || ngx_http_gw_rl_parse_limits(&reply->element[e], b, ref,
                                               n, &v->res[ref], &all)
                   != NGX_OK
                || all != (verdict[i] == '1'))
            {
                return NGX_ERROR;
            }

            e += 5 * n;
            v->known[i] = 1;
            break;

        default:
            return NGX_ERROR;
        }

        ref += n;
    }

    if (e != reply->elements || ref != b->nrefs) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* five integers per limit; "all": whether every limit admits */

static ngx_int_t
ngx_http_gw_rl_parse_limits(redisReply **e, ngx_http_gw_rl_batch_t *b,
    ngx_uint_t ref, ngx_uint_t n, ngx_http_gw_rl_result_t *res,
    ngx_uint_t *all)
{
    ngx_uint_t               i, k, key;
    long long                x[5], cap;
    ngx_http_gw_rl_limit_t  *limit;

    *all = 1;

    for (i = 0; i < n; i++) {

        for (k = 0; k < 5; k++) {
            if (e[5 * i + k] == NULL
                || e[5 * i + k]->type != REDIS_REPLY_INTEGER
                || e[5 * i + k]->integer < 0)
            {
                return NGX_ERROR;
            }

            x[k] = e[5 * i + k]->integer;
        }

        key = b->ref[ref + i];

        if (key >= b->nkeys
            || b->key_limit[key] == 0
            || b->key_limit[key] > b->nlimits)
        {
            return NGX_ERROR;
        }

        limit = b->limit[b->key_limit[key] - 1];

        cap = (limit->algorithm == NGX_HTTP_GW_RL_GCRA)
              ? (long long) limit->burst + 1 : (long long) limit->capacity;

        if (x[0] > 1 || x[1] > cap) {
            return NGX_ERROR;
        }

        res[i].allowed = (ngx_uint_t) x[0];
        res[i].remaining = (ngx_uint_t) x[1];
        res[i].reset = (ngx_msec_t) ngx_min(x[2], NGX_HTTP_GW_RL_MAX_MSEC);
        res[i].retry = (ngx_msec_t) ngx_min(x[3], NGX_HTTP_GW_RL_MAX_MSEC);

        /* a state written with another burst can be further ahead */
        res[i].excess = (ngx_uint_t) ngx_min(x[4],
                                            ((long long) limit->burst + 1)
                                            * 1000);

        if (!res[i].allowed) {
            *all = 0;
        }
    }

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


static u_char *
ngx_http_gw_rl_number(u_char *p, uint64_t n)
{
    u_char  *q, tmp[NGX_INT64_LEN];

    q = tmp + NGX_INT64_LEN;

    do {
        *--q = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return ngx_cpymem(p, q, tmp + NGX_INT64_LEN - q);
}


/* a bulk string of the Redis protocol */

static u_char *
ngx_http_gw_rl_bulk(u_char *p, u_char *data, size_t len)
{
    *p++ = '$';
    p = ngx_http_gw_rl_number(p, len);
    *p++ = CR;
    *p++ = LF;

    if (len) {
        p = ngx_cpymem(p, data, len);
    }

    *p++ = CR;
    *p++ = LF;

    return p;
}


/* FNV-1a: which keys of a batch may be the same */

static uint32_t
ngx_http_gw_rl_hash(u_char *data, size_t len)
{
    size_t    i;
    uint32_t  h;

    h = 2166136261u;

    for (i = 0; i < len; i++) {
        h = (h ^ data[i]) * 16777619u;
    }

    return h;
}
