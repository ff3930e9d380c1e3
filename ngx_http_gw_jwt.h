
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: the JOSE layer of gw_auth.  Keys (JWKS, JWK, PEM) to OpenSSL
 * EVP_PKEYs and secrets, and tokens (JWS, JWE, nested JWT, compact
 * serialization) to verified header and claims, with OpenSSL 3 only.
 * Nothing here knows an nginx request: every function is callable from a
 * fuzzer, and nothing here logs (the module logs what it is told, with
 * its own prefix).
 */


#ifndef _NGX_HTTP_GW_JWT_H_INCLUDED_
#define _NGX_HTTP_GW_JWT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <jansson.h>
#include <openssl/evp.h>


#define NGX_HTTP_GW_JWT_TOKEN_MAX       8192
#define NGX_HTTP_GW_JWT_KEYS_SIZE       (256 * 1024)
#define NGX_HTTP_GW_JWT_KEYS_MAX        64
#define NGX_HTTP_GW_JWT_KID_MAX         256

/* token types (gw_auth_jwt_type) */
#define NGX_HTTP_GW_JWT_SIGNED          1
#define NGX_HTTP_GW_JWT_ENCRYPTED       2
#define NGX_HTTP_GW_JWT_NESTED          3


typedef struct ngx_http_gw_jwt_alg_s  ngx_http_gw_jwt_alg_t;


/*
 * One key of a key document.  Every key the document names is listed,
 * also those that cannot be used: "skip" then says why.  A usable key
 * may still be unfit for one use: "nosig" (verifying signatures) or
 * "noenc" (decrypting) says why.  "size" is the secret's length for oct
 * keys; "short" is set for an oct key shorter than the hash of its "alg"
 * (or of HS256 without "alg"), RFC 7518, 3.2.
 */

typedef struct {
    ngx_str_t                      kid;
    ngx_uint_t                     index;    /* position, from 1 */
    ngx_uint_t                     kty;
    ngx_uint_t                     crv;
    ngx_http_gw_jwt_alg_t         *alg;      /* the JWK's "alg", if any */
    EVP_PKEY                      *pkey;
    ngx_str_t                      secret;
    const char                    *skip;
    const char                    *nosig;
    const char                    *noenc;
    unsigned                       short_secret:1;
} ngx_http_gw_jwt_key_t;


/* what the token's keys are checked against */

typedef struct {
    ngx_array_t                  **sets;     /* of ngx_http_gw_jwt_key_t */
    ngx_uint_t                     nsets;
    ngx_uint_t                     type;     /* NGX_HTTP_GW_JWT_SIGNED ... */
    ngx_uint_t                     strict;   /* no short oct keys */
} ngx_http_gw_jwt_keys_t;


/*
 * A decoded token.  After NGX_OK: the JOSE header of the token that
 * carries the claims (the inner one of a nested token), the JWE header
 * of an encrypted or nested token in "outer", the claims, the payload as
 * Plus's $jwt_payload has it (the claims JSON; the inner JWS of a nested
 * token), exp and nbf.  After NGX_DECLINED: "error", and "alg" / "kid"
 * of the token when its header could be read.  Whatever the result, the
 * caller releases it with ngx_http_gw_jwt_free().
 */

typedef struct {
    json_t                        *header;
    json_t                        *outer;
    json_t                        *claims;
    ngx_str_t                      payload;
    ngx_str_t                      alg;
    ngx_str_t                      kid;
    double                         exp;
    double                         nbf;
    size_t                         decoded;  /* bytes of JSON parsed */
    const char                    *error;
    unsigned                       has_exp:1;
    unsigned                       has_nbf:1;
    unsigned                       unknown_kid:1;
} ngx_http_gw_jwt_t;


ngx_int_t ngx_http_gw_jwt_parse_keys(u_char *data, size_t len,
    ngx_pool_t *pool, ngx_array_t *keys, const char **err);
ngx_uint_t ngx_http_gw_jwt_key_usable(ngx_http_gw_jwt_key_t *key,
    ngx_uint_t type, ngx_uint_t strict, const char **why);
const char *ngx_http_gw_jwt_key_type(ngx_http_gw_jwt_key_t *key);
size_t ngx_http_gw_jwt_key_min(ngx_http_gw_jwt_key_t *key);

ngx_int_t ngx_http_gw_jwt_decode(ngx_str_t *token,
    ngx_http_gw_jwt_keys_t *keys, ngx_pool_t *pool, ngx_http_gw_jwt_t *jwt);
void ngx_http_gw_jwt_free(ngx_http_gw_jwt_t *jwt);

ngx_int_t ngx_http_gw_jwt_value(ngx_pool_t *pool, json_t *j,
    ngx_str_t *value, ngx_uint_t top);
ngx_int_t ngx_http_gw_jwt_sanitize(ngx_pool_t *pool, u_char *data,
    size_t len, ngx_str_t *value);


#endif /* _NGX_HTTP_GW_JWT_H_INCLUDED_ */
