
/*
 * libFuzzer harness for the gw_ratelimit handling of Redis replies: the
 * hiredis reader with our bounded reply objects fed hostile bytes (split
 * into two feeds, as replies arrive in pieces), then every reply it yields
 * interpreted as the script's decision for 1 to 16 limits.
 *
 * Input: byte 0 the number of limits, byte 1 where to split the feed,
 * bytes 2..17 the limits' capacities, the rest the bytes from "Redis".
 */


#include "../ngx_http_gw_redis.c"
#include "../ngx_http_gw_ratelimit_module.c"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


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


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void                            *reply;
    size_t                           split, len;
    u_char                           buf[128];
    ngx_uint_t                       i, n, admitted, all;
    ngx_uint_t                       cap[NGX_HTTP_GW_RATELIMIT_MAX_LIMITS];
    redisReader                     *reader;
    ngx_http_gw_ratelimit_result_t   res[NGX_HTTP_GW_RATELIMIT_MAX_LIMITS];

    if (size < 2 + NGX_HTTP_GW_RATELIMIT_MAX_LIMITS) {
        return 0;
    }

    n = 1 + data[0] % NGX_HTTP_GW_RATELIMIT_MAX_LIMITS;
    split = data[1];

    for (i = 0; i < NGX_HTTP_GW_RATELIMIT_MAX_LIMITS; i++) {
        cap[i] = data[2 + i];
    }

    data += 2 + NGX_HTTP_GW_RATELIMIT_MAX_LIMITS;
    len = size - 2 - NGX_HTTP_GW_RATELIMIT_MAX_LIMITS;
    split %= len + 1;

    reader = redisReaderCreateWithFunctions(
                                          &ngx_http_gw_redis_reply_functions);
    if (reader == NULL) {
        return 0;
    }

    if (redisReaderFeed(reader, (const char *) data, split) != REDIS_OK
        || redisReaderFeed(reader, (const char *) data + split, len - split)
           != REDIS_OK)
    {
        redisReaderFree(reader);
        return 0;
    }

    for ( ;; ) {
        reply = NULL;

        if (redisReaderGetReply(reader, &reply) != REDIS_OK
            || reply == NULL)
        {
            break;
        }

        fuzz_check_object(reply, 0);

        if (ngx_http_gw_ratelimit_noscript(reply)) {
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

        if (ngx_http_gw_ratelimit_parse_reply(reply, n, cap, res, &admitted)
            == NGX_OK)
        {
            /* a believed decision is consistent and bounded */

            all = 1;

            for (i = 0; i < n; i++) {
                if (res[i].allowed > 1
                    || res[i].remaining > cap[i]
                    || res[i].reset > NGX_HTTP_GW_RATELIMIT_MAX_MSEC
                    || res[i].retry > NGX_HTTP_GW_RATELIMIT_MAX_MSEC)
                {
                    abort();
                }

                all &= res[i].allowed;
            }

            if (admitted != all) {
                abort();
            }
        }

        freeReplyObject(reply);
    }

    redisReaderFree(reader);

    return 0;
}
