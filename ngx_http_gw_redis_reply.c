
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
static ngx_int_t ngx_http_gw_redis_parse_port(u_char *p, size_t len);
static ngx_int_t ngx_http_gw_redis_host_port(u_char *p, size_t len,
    ngx_http_gw_redis_node_addr_t *addr);
static ngx_uint_t ngx_http_gw_redis_is_string(redisReply *r);


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


/*
 * A host a worker may connect to without a name lookup: an IPv4 address
 * in dotted quads, or an IPv6 address (hex digits and at least two
 * colons, perhaps ending in dotted quads).  Anything else (a name, which
 * would mean a blocking lookup) is refused.
 */

ngx_uint_t
ngx_http_gw_redis_numeric_host(u_char *host, size_t len)
{
    u_char      c;
    size_t      i;
    ngx_uint_t  colons, dots, digits, octet;

    if (len == 0 || len > 45) {
        return 0;
    }

    colons = 0;
    dots = 0;
    digits = 0;
    octet = 0;

    for (i = 0; i < len; i++) {
        c = host[i];

        if (c >= '0' && c <= '9') {
            octet = octet * 10 + (c - '0');

            if (++digits > 4 || (colons == 0 && octet > 255)) {
                return 0;
            }

            continue;
        }

        if (c == '.') {
            if (digits == 0 || digits > 3 || octet > 255 || ++dots > 3) {
                return 0;
            }

            digits = 0;
            octet = 0;
            continue;
        }

        if (c == ':') {
            if (dots) {
                return 0;
            }

            colons++;
            digits = 0;
            octet = 0;
            continue;
        }

        c |= 0x20;

        if (c >= 'a' && c <= 'f' && colons && !dots) {
            if (++digits > 4) {
                return 0;
            }

            continue;
        }

        return 0;
    }

    if (colons) {
        return colons >= 2 && colons <= 7 && (dots == 0 || dots == 3);
    }

    return dots == 3 && digits > 0;
}


/* SENTINEL get-master-addr-by-name: [host, port]; nil for no master */

ngx_int_t
ngx_http_gw_redis_parse_master(redisReply *r,
    ngx_http_gw_redis_node_addr_t *addr)
{
    if (r == NULL) {
        return NGX_ERROR;
    }

    if (r->type == REDIS_REPLY_NIL) {
        return NGX_DECLINED;
    }

    if (r->type != REDIS_REPLY_ARRAY
        || r->elements != 2
        || !ngx_http_gw_redis_is_string(r->element[0])
        || !ngx_http_gw_redis_is_string(r->element[1])
        || !ngx_http_gw_redis_numeric_host((u_char *) r->element[0]->str,
                                           r->element[0]->len))
    {
        return NGX_ERROR;
    }

    addr->port = ngx_http_gw_redis_parse_port((u_char *) r->element[1]->str,
                                              r->element[1]->len);
    if (addr->port == NGX_ERROR) {
        return NGX_ERROR;
    }

    addr->host.data = (u_char *) r->element[0]->str;
    addr->host.len = r->element[0]->len;

    return NGX_OK;
}


/*
 * A message of the "+switch-master" channel: "<master> <old host> <old
 * port> <new host> <new port>".  NGX_OK with the new address when it is
 * about "master", NGX_DECLINED when it is about another one (or another
 * channel), NGX_ERROR when it is not a message of that form.
 */

ngx_int_t
ngx_http_gw_redis_parse_switch(redisReply *r, ngx_str_t *master,
    ngx_http_gw_redis_node_addr_t *addr)
{
    u_char      *p, *last, *field[5];
    size_t       len[5];
    ngx_uint_t   i;
    redisReply  *e;

    if (r == NULL
        || r->type != REDIS_REPLY_ARRAY
        || r->elements != 3
        || !ngx_http_gw_redis_is_string(r->element[0])
        || !ngx_http_gw_redis_is_string(r->element[1])
        || !ngx_http_gw_redis_is_string(r->element[2]))
    {
        return NGX_ERROR;
    }

    e = r->element[0];

    if (e->len != 7 || ngx_strncmp(e->str, "message", 7) != 0) {
        /* a subscription's confirmation, or a pong */
        return NGX_DECLINED;
    }

    e = r->element[1];

    if (e->len != 14 || ngx_strncmp(e->str, "+switch-master", 14) != 0) {
        return NGX_DECLINED;
    }

    e = r->element[2];
    p = (u_char *) e->str;
    last = p + e->len;

    for (i = 0; i < 5; i++) {
        field[i] = p;

        while (p < last && *p != ' ') {
            p++;
        }

        len[i] = p - field[i];

        if (len[i] == 0 || (i < 4 && p == last)) {
            return NGX_ERROR;
        }

        p++;
    }

    if (p < last + 1) {
        /* more than five fields */
        return NGX_ERROR;
    }

    if (len[0] != master->len
        || ngx_strncmp(field[0], master->data, master->len) != 0)
    {
        return NGX_DECLINED;
    }

    if (!ngx_http_gw_redis_numeric_host(field[3], len[3])) {
        return NGX_ERROR;
    }

    addr->port = ngx_http_gw_redis_parse_port(field[4], len[4]);
    if (addr->port == NGX_ERROR) {
        return NGX_ERROR;
    }

    addr->host.data = field[3];
    addr->host.len = len[3];

    return NGX_OK;
}


/*
 * A cluster's redirection: "MOVED <slot> <host>:<port>" (the slot moved
 * for good) or "ASK <slot> <host>:<port>" (it is moving: ask there once,
 * after ASKING).  NGX_DECLINED: another reply.
 */

ngx_int_t
ngx_http_gw_redis_parse_redirect(redisReply *r, ngx_uint_t *ask,
    ngx_uint_t *slot, ngx_http_gw_redis_node_addr_t *addr)
{
    u_char      *p, *last, *s;
    ngx_int_t    n;

    if (r == NULL || r->type != REDIS_REPLY_ERROR || r->str == NULL) {
        return NGX_DECLINED;
    }

    p = (u_char *) r->str;
    last = p + r->len;

    if (r->len > 6 && ngx_strncmp(p, "MOVED ", 6) == 0) {
        *ask = 0;
        p += 6;

    } else if (r->len > 4 && ngx_strncmp(p, "ASK ", 4) == 0) {
        *ask = 1;
        p += 4;

    } else {
        return NGX_DECLINED;
    }

    s = p;

    while (p < last && *p != ' ') {
        p++;
    }

    if (p == last || p == s) {
        return NGX_ERROR;
    }

    n = ngx_atoi(s, p - s);
    if (n == NGX_ERROR || n >= NGX_HTTP_GW_REDIS_SLOTS) {
        return NGX_ERROR;
    }

    *slot = (ngx_uint_t) n;

    p++;

    return ngx_http_gw_redis_host_port(p, last - p, addr);
}


/*
 * CLUSTER SLOTS: [[start, end, [host, port, ...], [replica ...]...], ...]
 * into at most NGX_HTTP_GW_REDIS_MAX_RANGES ranges of masters.  Every
 * range must be valid and none may overlap another (the caller checks
 * that), or the whole reply is refused.
 */

ngx_int_t
ngx_http_gw_redis_parse_slots(redisReply *r,
    ngx_http_gw_redis_slots_t *ranges, ngx_uint_t *n)
{
    size_t       i;
    redisReply  *e, *m;

    if (r == NULL
        || r->type != REDIS_REPLY_ARRAY
        || r->elements == 0
        || r->elements > NGX_HTTP_GW_REDIS_MAX_RANGES)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < r->elements; i++) {
        e = r->element[i];

        if (e == NULL
            || e->type != REDIS_REPLY_ARRAY
            || e->elements < 3
            || e->element[0] == NULL
            || e->element[0]->type != REDIS_REPLY_INTEGER
            || e->element[1] == NULL
            || e->element[1]->type != REDIS_REPLY_INTEGER
            || e->element[0]->integer < 0
            || e->element[0]->integer > e->element[1]->integer
            || e->element[1]->integer >= NGX_HTTP_GW_REDIS_SLOTS)
        {
            return NGX_ERROR;
        }

        m = e->element[2];

        if (m == NULL
            || m->type != REDIS_REPLY_ARRAY
            || m->elements < 2
            || !ngx_http_gw_redis_is_string(m->element[0])
            || m->element[1] == NULL
            || m->element[1]->type != REDIS_REPLY_INTEGER
            || m->element[1]->integer <= 0
            || m->element[1]->integer > 65535)
        {
            return NGX_ERROR;
        }

        /* an empty (or "?") host: the node that answers */

        if (m->element[0]->len != 0
            && !(m->element[0]->len == 1 && m->element[0]->str[0] == '?')
            && !ngx_http_gw_redis_numeric_host((u_char *) m->element[0]->str,
                                               m->element[0]->len))
        {
            return NGX_ERROR;
        }

        ranges[i].start = (ngx_uint_t) e->element[0]->integer;
        ranges[i].end = (ngx_uint_t) e->element[1]->integer;
        ranges[i].addr.host.data = (u_char *) m->element[0]->str;
        ranges[i].addr.host.len = (m->element[0]->len == 1)
                                  ? 0 : m->element[0]->len;
        ranges[i].addr.port = (ngx_int_t) m->element[1]->integer;
    }

    *n = r->elements;

    return NGX_OK;
}


/* "<host>:<port>", the port after the last colon (IPv6 hosts have some) */

static ngx_int_t
ngx_http_gw_redis_host_port(u_char *p, size_t len,
    ngx_http_gw_redis_node_addr_t *addr)
{
    size_t  i;

    for (i = len; i > 0; i--) {
        if (p[i - 1] == ':') {
            break;
        }
    }

    if (i <= 1 || !ngx_http_gw_redis_numeric_host(p, i - 1)) {
        return NGX_ERROR;
    }

    addr->port = ngx_http_gw_redis_parse_port(p + i, len - i);
    if (addr->port == NGX_ERROR) {
        return NGX_ERROR;
    }

    addr->host.data = p;
    addr->host.len = i - 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_redis_parse_port(u_char *p, size_t len)
{
    ngx_int_t  n;

    if (len == 0 || len > 5) {
        return NGX_ERROR;
    }

    n = ngx_atoi(p, len);

    if (n <= 0 || n > 65535) {
        return NGX_ERROR;
    }

    return n;
}


static ngx_uint_t
ngx_http_gw_redis_is_string(redisReply *r)
{
    return r != NULL
           && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
           && r->str != NULL;
}
