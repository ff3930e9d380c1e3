
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: a JSON (RFC 8259) validator for bytes from elsewhere, with no
 * allocation, no recursion and a bounded nesting depth.  It never includes
 * ngx_http.h, so a fuzzer can call it directly.
 */


#ifndef _NGX_HTTP_GW_JSON_H_INCLUDED_
#define _NGX_HTTP_GW_JSON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_GW_JSON_MAX_DEPTH  64


/*
 * NGX_OK: p[0..len) is one JSON value, with optional whitespace around it,
 * in valid UTF-8, nested at most NGX_HTTP_GW_JSON_MAX_DEPTH deep.
 * NGX_DECLINED otherwise, with a reason and the offset of the first byte
 * that does not fit (both may be NULL).
 */
ngx_int_t ngx_http_gw_json_validate(u_char *p, size_t len, const char **err,
    size_t *offset);


#endif /* _NGX_HTTP_GW_JSON_H_INCLUDED_ */
