
/*
 * Copyright (C) nginx-gw authors
 *
 * libFuzzer harness for the gw_ratelimit handling of Redis replies: the
 * hiredis reader with our bounded reply objects fed hostile bytes (split
 * into two feeds, as replies arrive in pieces), then every reply it yields
 * interpreted as the script's reply to a batch of 1 to 64 requests of 1 to
 * 16 limits each, built with the module's own batch code (and formatted,
 * in a buffer of exactly the size it asks for), and as what a sentinel or
 * a cluster says (a master's address, a failover, MOVED or ASK, CLUSTER
 * SLOTS).
 *
 * Input: byte 0 the number of requests, byte 1 where to split the feed,
 * bytes 2..65 the requests' shapes (low 4 bits: limits - 1; bit 6: its keys
 * are those of the request before, when it has as many; bit 7: it wants
 * the details), bytes 66..81 sixteen limits (low 2 bits: the algorithm,
 * the rest the burst), the rest the bytes from "Redis".
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_gw_redis_reply.h"
#include "ngx_http_gw_ratelimit_script.h"


#define FUZZ_SHAPES  2
#define FUZZ_LIMITS  (FUZZ_SHAPES + NGX_HTTP_GW_RL_BATCH)
#define FUZZ_HEAD    (FUZZ_LIMITS + 16)


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static ngx_http_gw_rl_batch_t     fuzz_batch;
static ngx_http_gw_rl_verdicts_t  fuzz_verdicts;
static ngx_http_gw_rl_limit_t     fuzz_limit[16];
static u_char                     fuzz_args[16][NGX_HTTP_GW_RL_LIMIT_ARGS];


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


/* a believed verdict is consistent and bounded */

static void
fuzz_check_verdicts(ngx_http_gw_rl_batch_t *b, ngx_http_gw_rl_verdicts_t *v)
{
    ngx_uint_t                i, j, n, ref, all, cap;
    ngx_http_gw_rl_limit_t   *limit;
    ngx_http_gw_rl_result_t  *res;

    ref = 0;

    for (i = 0; i < b->nreq; i++) {
        n = b->request[i] & 0x7f;

        switch (v->outcome[i]) {

        case NGX_HTTP_GW_RL_FAILED:
            if (v->known[i] || v->error == NULL
                || v->error->type != REDIS_REPLY_ERROR)
            {
                abort();
            }

            break;

        case NGX_HTTP_GW_RL_ADMITTED:
        case NGX_HTTP_GW_RL_DENIED:
            if (!v->known[i]) {
                /* only "admitted, no details wanted" comes without them */
                if (v->outcome[i] != NGX_HTTP_GW_RL_ADMITTED
                    || (b->request[i] & NGX_HTTP_GW_RL_DETAILS))
                {
                    abort();
                }

                break;
            }

            all = 1;

            for (j = 0; j < n; j++) {
                res = &v->res[ref + j];
                limit = b->limit[b->key_limit[b->ref[ref + j]] - 1];
                cap = (limit->algorithm == NGX_HTTP_GW_RL_GCRA)
                      ? limit->burst + 1 : limit->capacity;

                if (res->allowed > 1
                    || res->remaining > cap
                    || res->reset > NGX_HTTP_GW_RL_MAX_MSEC
                    || res->retry > NGX_HTTP_GW_RL_MAX_MSEC
                    || res->excess > (limit->burst + 1) * 1000)
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

        ref += n;
    }

    if (ref != b->nrefs) {
        abort();
    }
}


/* what a sentinel or a cluster says, believed only when well formed */

static void
fuzz_check_topology(redisReply *r)
{
    ngx_str_t                      master = ngx_string("mymaster");
    ngx_uint_t                     i, ask, slot, n;
    ngx_http_gw_redis_node_addr_t  addr;

    static ngx_http_gw_redis_slots_t  ranges[NGX_HTTP_GW_REDIS_MAX_RANGES];

    if (ngx_http_gw_redis_parse_master(r, &addr) == NGX_OK
        && (!ngx_http_gw_redis_numeric_host(addr.host.data, addr.host.len)
            || addr.port <= 0 || addr.port > 65535))
    {
        abort();
    }

    if (ngx_http_gw_redis_parse_switch(r, &master, &addr) == NGX_OK
        && (!ngx_http_gw_redis_numeric_host(addr.host.data, addr.host.len)
            || addr.port <= 0 || addr.port > 65535))
    {
        abort();
    }

    if (ngx_http_gw_redis_parse_redirect(r, &ask, &slot, &addr) == NGX_OK
        && (slot >= NGX_HTTP_GW_REDIS_SLOTS || ask > 1
            || !ngx_http_gw_redis_numeric_host(addr.host.data, addr.host.len)
            || addr.port <= 0 || addr.port > 65535))
    {
        abort();
    }

    if (ngx_http_gw_redis_parse_slots(r, ranges, &n) == NGX_OK) {
        if (n == 0 || n > NGX_HTTP_GW_REDIS_MAX_RANGES) {
            abort();
        }

        for (i = 0; i < n; i++) {
            if (ranges[i].start > ranges[i].end
                || ranges[i].end >= NGX_HTTP_GW_REDIS_SLOTS
                || ranges[i].addr.port <= 0 || ranges[i].addr.port > 65535
                || (ranges[i].addr.host.len
                    && !ngx_http_gw_redis_numeric_host(
                               ranges[i].addr.host.data,
                               ranges[i].addr.host.len)))
            {
                abort();
            }
        }
    }
}


/* the batch in the protocol, in a buffer of the size it asks for */

static void
fuzz_format(void)
{
    u_char     *buf;
    size_t      size, len;
    ngx_str_t   id = ngx_string("1f.0123456789abcdef-42");
    ngx_uint_t  eval;

    for (eval = 0; eval < 2; eval++) {
        size = ngx_http_gw_rl_batch_size(&fuzz_batch, id.len);

        buf = malloc(size);
        if (buf == NULL) {
            return;
        }

        len = ngx_http_gw_rl_batch_format(&fuzz_batch, buf, eval, &id);

        if (len > size || buf[0] != '*') {
            abort();
        }

        free(buf);
    }
}


/* the batch the input describes, with keys "k<n>" */

static void
fuzz_batch_build(const uint8_t *data)
{
    u_char                  *p, buf[NGX_HTTP_GW_RL_MAX_LIMITS][16];
    ngx_str_t                keys[NGX_HTTP_GW_RL_MAX_LIMITS];
    ngx_str_t                stored[NGX_HTTP_GW_RL_MAX_LIMITS];
    ngx_uint_t               i, j, n, prev, key, nreq;
    ngx_http_gw_rl_limit_t  *limits[NGX_HTTP_GW_RL_MAX_LIMITS];

    for (i = 0; i < 16; i++) {
        ngx_http_gw_rl_limit_init(&fuzz_limit[i],
                                  1 + data[FUZZ_LIMITS + i] % 3, 60, 10,
                                  data[FUZZ_LIMITS + i] >> 2, fuzz_args[i]);
    }

    ngx_http_gw_rl_batch_init(&fuzz_batch, data[0] & 0x80);

    nreq = 1 + data[0] % NGX_HTTP_GW_RL_BATCH;
    key = 0;
    prev = 0;

    for (i = 0; i < nreq; i++) {
        n = 1 + (data[FUZZ_SHAPES + i] & 0x0f);

        if (!((data[FUZZ_SHAPES + i] & 0x40) && n <= prev)) {
            key += prev;
        }

        for (j = 0; j < n; j++) {
            /* the limits of a request are distinct, so are their keys */
            limits[j] = &fuzz_limit[(i + j) % 16];

            p = buf[j];
            *p++ = 'k';
            *p++ = (u_char) ('a' + (key + j) % 26);
            *p++ = (u_char) ('a' + (key + j) / 26 % 26);
            *p++ = (u_char) ('a' + (j + i) % 16);

            keys[j].data = buf[j];
            keys[j].len = p - buf[j];
        }

        if (ngx_http_gw_rl_batch_add(&fuzz_batch, limits, keys, n, i % 3,
                                     data[FUZZ_SHAPES + i] & 0x80, stored)
            != NGX_OK)
        {
            /* a batch closes before this request: it is not in it */
            break;
        }

        for (j = 0; j < n; j++) {
            if (stored[j].len != keys[j].len
                || ngx_memcmp(stored[j].data, keys[j].data, keys[j].len)
                   != 0)
            {
                abort();
            }
        }

        prev = n;
    }

    if (fuzz_batch.nreq == 0) {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void                         *reply;
    size_t                        split, len;
    u_char                        buf[128];
    ngx_uint_t                    i;
    redisReply                   *r;
    redisReader                  *reader;
    ngx_http_gw_redis_refusal_t   refusal;

    if (size < FUZZ_HEAD) {
        return 0;
    }

    fuzz_batch_build(data);
    fuzz_format();

    split = data[1];

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

        r = reply;

        fuzz_check_object(r, 0);

        if (ngx_http_gw_rl_noscript(r) && r->type != REDIS_REPLY_ERROR) {
            abort();
        }

        if (r->type == REDIS_REPLY_ERROR) {
            len = ngx_http_gw_redis_printable(buf, sizeof(buf),
                                              (u_char *) r->str, r->len);

            for (i = 0; i < len; i++) {
                if (buf[i] < 0x20 || buf[i] >= 0x7f || buf[i] == '"') {
                    abort();
                }
            }
        }

        fuzz_check_topology(r);

        if (ngx_http_gw_rl_parse(r, &fuzz_batch, &fuzz_verdicts) == NGX_OK) {
            fuzz_check_verdicts(&fuzz_batch, &fuzz_verdicts);
        }

        freeReplyObject(reply);
    }

    redisReaderFree(reader);

    return 0;
}
