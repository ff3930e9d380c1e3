
/*
 * Copyright (C) nginx-gw authors
 *
 * Stand-ins for the few nginx core functions the untrusted-input parsers
 * call, so a fuzzer can link a module's parsers without an nginx binary
 * (Debian's nginx-dev ships headers only).  Every pool allocation is its
 * own malloc() so AddressSanitizer sees each buffer's real bounds.
 */


#include <ngx_config.h>
#include <ngx_core.h>


static ngx_time_t          ngx_shim_time;
volatile ngx_time_t       *ngx_cached_time = &ngx_shim_time;


ngx_pool_t *
ngx_create_pool(size_t size, ngx_log_t *log)
{
    ngx_pool_t  *p;

    p = calloc(1, sizeof(ngx_pool_t));
    if (p != NULL) {
        p->log = log;
    }

    return p;
}


void
ngx_destroy_pool(ngx_pool_t *pool)
{
    ngx_pool_large_t    *l, *next;
    ngx_pool_cleanup_t  *c;

    for (c = pool->cleanup; c; c = c->next) {
        if (c->handler) {
            c->handler(c->data);
        }
    }

    for (l = pool->large; l; l = next) {
        next = l->next;
        free(l->alloc);
        free(l);
    }

    for (c = pool->cleanup; c; c = pool->cleanup) {
        pool->cleanup = c->next;
        free(c);
    }

    free(pool);
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    ngx_pool_large_t  *l;

    l = malloc(sizeof(ngx_pool_large_t));
    if (l == NULL) {
        return NULL;
    }

    l->alloc = malloc(size ? size : 1);
    if (l->alloc == NULL) {
        free(l);
        return NULL;
    }

    l->next = pool->large;
    pool->large = l;

    return l->alloc;
}


void *
ngx_palloc(ngx_pool_t *pool, size_t size)
{
    return ngx_pnalloc(pool, size);
}


void *
ngx_pcalloc(ngx_pool_t *pool, size_t size)
{
    void  *p;

    p = ngx_pnalloc(pool, size);
    if (p != NULL) {
        memset(p, 0, size);
    }

    return p;
}


ngx_pool_cleanup_t *
ngx_pool_cleanup_add(ngx_pool_t *p, size_t size)
{
    ngx_pool_cleanup_t  *c;

    c = calloc(1, sizeof(ngx_pool_cleanup_t));
    if (c == NULL) {
        return NULL;
    }

    if (size) {
        c->data = ngx_pcalloc(p, size);
        if (c->data == NULL) {
            free(c);
            return NULL;
        }
    }

    c->next = p->cleanup;
    p->cleanup = c;

    return c;
}


ngx_array_t *
ngx_array_create(ngx_pool_t *p, ngx_uint_t n, size_t size)
{
    ngx_array_t  *a;

    a = ngx_palloc(p, sizeof(ngx_array_t));
    if (a == NULL) {
        return NULL;
    }

    if (ngx_array_init(a, p, n, size) != NGX_OK) {
        return NULL;
    }

    return a;
}


void *
ngx_array_push_n(ngx_array_t *a, ngx_uint_t n)
{
    void        *new;
    ngx_uint_t   nalloc;

    if (a->nelts + n > a->nalloc) {
        nalloc = 2 * ngx_max(n, a->nalloc);

        new = ngx_palloc(a->pool, nalloc * a->size);
        if (new == NULL) {
            return NULL;
        }

        ngx_memcpy(new, a->elts, a->nelts * a->size);
        a->elts = new;
        a->nalloc = nalloc;
    }

    new = (u_char *) a->elts + a->size * a->nelts;
    a->nelts += n;

    return new;
}


void *
ngx_array_push(ngx_array_t *a)
{
    return ngx_array_push_n(a, 1);
}


void
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
}


u_char *
ngx_hex_dump(u_char *dst, u_char *src, size_t len)
{
    static const u_char  hex[] = "0123456789abcdef";

    while (len--) {
        *dst++ = hex[*src >> 4];
        *dst++ = hex[*src++ & 0xf];
    }

    return dst;
}


ngx_int_t
ngx_atoi(u_char *line, size_t n)
{
    ngx_int_t  value;

    if (n == 0) {
        return NGX_ERROR;
    }

    for (value = 0; n--; line++) {
        if (*line < '0' || *line > '9') {
            return NGX_ERROR;
        }

        if (value >= NGX_MAX_INT_T_VALUE / 10) {
            return NGX_ERROR;
        }

        value = value * 10 + (*line - '0');
    }

    return value;
}


ngx_int_t
ngx_strncasecmp(u_char *s1, u_char *s2, size_t n)
{
    return strncasecmp((char *) s1, (char *) s2, n);
}


/*
 * Shared memory: a slab pool is a bump allocator over [start, end) of a
 * buffer the harness owns, so code that fills a zone can also exhaust it.
 * Each object is followed by a poisoned redzone, so AddressSanitizer still
 * sees an overrun from one object into the next.  One thread: the mutex
 * does nothing.
 */

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define NGX_SHIM_POISON(p, n)  ASAN_POISON_MEMORY_REGION(p, n)
#endif
#endif

#ifndef NGX_SHIM_POISON
#define NGX_SHIM_POISON(p, n)
#endif

#define NGX_SHIM_REDZONE  16


void *
ngx_slab_alloc_locked(ngx_slab_pool_t *pool, size_t size)
{
    u_char  *p, *next;

    p = ngx_align_ptr(pool->start, NGX_ALIGNMENT);

    if (p > pool->end || size + NGX_SHIM_REDZONE > (size_t) (pool->end - p))
    {
        return NULL;
    }

    next = ngx_align_ptr(p + size + NGX_SHIM_REDZONE, NGX_ALIGNMENT);

    if (next > pool->end) {
        next = pool->end;
    }

    NGX_SHIM_POISON(p + size, next - (p + size));

    pool->start = next;

    return p;
}


void *
ngx_slab_calloc_locked(ngx_slab_pool_t *pool, size_t size)
{
    void  *p;

    p = ngx_slab_alloc_locked(pool, size);
    if (p != NULL) {
        memset(p, 0, size);
    }

    return p;
}


void *
ngx_slab_calloc(ngx_slab_pool_t *pool, size_t size)
{
    return ngx_slab_calloc_locked(pool, size);
}


void
ngx_shmtx_lock(ngx_shmtx_t *mtx)
{
}


void
ngx_shmtx_unlock(ngx_shmtx_t *mtx)
{
}


/*
 * Only what the parsers format: "%L" (int64_t) and plain characters;
 * anything else is a harness bug and aborts.
 */

u_char * ngx_cdecl
ngx_sprintf(u_char *buf, const char *fmt, ...)
{
    va_list   args;
    int64_t   v;

    va_start(args, fmt);

    while (*fmt) {
        if (fmt[0] == '%' && fmt[1] == 'L') {
            v = va_arg(args, int64_t);
            buf += sprintf((char *) buf, "%lld", (long long) v);
            fmt += 2;
            continue;
        }

        if (*fmt == '%') {
            abort();
        }

        *buf++ = (u_char) *fmt++;
    }

    va_end(args);

    return buf;
}
