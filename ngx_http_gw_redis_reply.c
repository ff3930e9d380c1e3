
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: bounded Redis reply objects and log-safe error text.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_gw_redis_reply.h"


static void *ngx_http_gw_redis_create_string(const redisReadTask *task,
    char *str, size_t len);
static void *ngx_http_gw_redis_create_array(const redisReadTask *task,
    int elements);
static void *ngx_http_gw_redis_create_integer(const redisReadTask *task,
    long long value);
static void *ngx_http_gw_redis_create_nil(const redisReadTask *task);
static redisReply *ngx_http_gw_redis_reply_object(int type);
static ngx_int_t ngx_http_gw_redis_link(const redisReadTask *task,
    redisReply *r);
static void ngx_http_gw_redis_refuse(const redisReadTask *task,
    const char *what, long long size);


redisReplyObjectFunctions  ngx_http_gw_redis_reply_functions = {
    ngx_http_gw_redis_create_string,
    ngx_http_gw_redis_create_array,
    ngx_http_gw_redis_create_integer,
    ngx_http_gw_redis_create_nil,
    freeReplyObject
};


/* untrusted bytes for a log line: printable ASCII only, bounded */

size_t
ngx_http_gw_redis_printable(u_char *dst, size_t size, u_char *src,
    size_t len)
{
    size_t  i;

    if (len > size) {
        len = size;
    }

    for (i = 0; i < len; i++) {
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f && src[i] != '"')
                 ? src[i] : '?';
    }

    return len;
}


/*
 * Reply objects for redisReader, layout-compatible with hiredis's own (they
 * are released with freeReplyObject()), but refusing arrays and strings far
 * larger than any reply we expect: returning NULL makes the reader fail.
 */

static redisReply *
ngx_http_gw_redis_reply_object(int type)
{
    redisReply  *r;

    r = calloc(1, sizeof(redisReply));
    if (r == NULL) {
        return NULL;
    }

    r->type = type;

    return r;
}


static ngx_int_t
ngx_http_gw_redis_link(const redisReadTask *task, redisReply *r)
{
    redisReply  *parent;

    if (task->parent == NULL) {
        return NGX_OK;
    }

    parent = task->parent->obj;

    if (parent == NULL
        || parent->type != REDIS_REPLY_ARRAY
        || task->idx < 0
        || (size_t) task->idx >= parent->elements
        || parent->element[task->idx] != NULL)
    {
        ngx_http_gw_redis_refuse(task, "reply refused: an element out of "
                                 "place (%L)", task->idx);
        return NGX_ERROR;
    }

    parent->element[task->idx] = r;

    return NGX_OK;
}


static void *
ngx_http_gw_redis_create_string(const redisReadTask *task, char *str,
    size_t len)
{
    char        *buf;
    redisReply  *r;

    if (len > NGX_HTTP_GW_REDIS_MAX_STRING) {
        ngx_http_gw_redis_refuse(task, "reply refused: a string of %L "
                                 "bytes, more than 4096", (long long) len);
        return NULL;
    }

    if (task->type != REDIS_REPLY_ERROR
        && task->type != REDIS_REPLY_STATUS
        && task->type != REDIS_REPLY_STRING)
    {
        ngx_http_gw_redis_refuse(task, "reply refused: a string of type %L",
                                 task->type);
        return NULL;
    }

    r = ngx_http_gw_redis_reply_object(task->type);
    if (r == NULL) {
        return NULL;
    }

    buf = malloc(len + 1);
    if (buf == NULL) {
        free(r);
        return NULL;
    }

    ngx_memcpy(buf, str, len);
    buf[len] = '\0';

    r->str = buf;
    r->len = len;

    if (ngx_http_gw_redis_link(task, r) != NGX_OK) {
        freeReplyObject(r);
        return NULL;
    }

    return r;
}


static void *
ngx_http_gw_redis_create_array(const redisReadTask *task, int elements)
{
    redisReply  *r;

    if (elements < 0 || elements > NGX_HTTP_GW_REDIS_MAX_ELEMENTS) {
        ngx_http_gw_redis_refuse(task, "reply refused: an array of %L "
                                 "elements, more than 1024", elements);
        return NULL;
    }

    r = ngx_http_gw_redis_reply_object(REDIS_REPLY_ARRAY);
    if (r == NULL) {
        return NULL;
    }

    if (elements > 0) {
        r->element = calloc(elements, sizeof(redisReply *));
        if (r->element == NULL) {
            free(r);
            return NULL;
        }
    }

    r->elements = elements;

    if (ngx_http_gw_redis_link(task, r) != NGX_OK) {
        freeReplyObject(r);
        return NULL;
    }

    return r;
}


static void *
ngx_http_gw_redis_create_integer(const redisReadTask *task, long long value)
{
    redisReply  *r;

    r = ngx_http_gw_redis_reply_object(REDIS_REPLY_INTEGER);
    if (r == NULL) {
        return NULL;
    }

    r->integer = value;

    if (ngx_http_gw_redis_link(task, r) != NGX_OK) {
        freeReplyObject(r);
        return NULL;
    }

    return r;
}


static void *
ngx_http_gw_redis_create_nil(const redisReadTask *task)
{
    redisReply  *r;

    r = ngx_http_gw_redis_reply_object(REDIS_REPLY_NIL);
    if (r == NULL) {
        return NULL;
    }

    if (ngx_http_gw_redis_link(task, r) != NGX_OK) {
        freeReplyObject(r);
        return NULL;
    }

    return r;
}


static void
ngx_http_gw_redis_refuse(const redisReadTask *task, const char *what,
    long long size)
{
    ngx_http_gw_redis_refusal_t  *refusal;

    refusal = task->privdata;

    if (refusal != NULL && refusal->what == NULL) {
        refusal->what = what;
        refusal->size = size;
    }
}
