
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: the JOSE layer of gw_auth (see ngx_http_gw_jwt.h).
 *
 * Every primitive is OpenSSL 3's: EVP signatures, HMAC, AES key wrap,
 * AES-GCM, AES-CBC, RSA-OAEP.  Untrusted bytes are checked strictly
 * (unpadded base64url, JSON objects without duplicate members, exact
 * algorithm names) and a signature is verified from the JOSE header
 * alone, before the claims are parsed.  Decryption follows RFC 7516,
 * 11.5: whatever fails (key unwrap, lengths, tag), the same work is done
 * and the same error returned.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "ngx_http_gw_jwt.h"


#define NGX_HTTP_GW_JWT_FIELD_MAX       4096

#define NGX_HTTP_GW_JWT_OCT             1
#define NGX_HTTP_GW_JWT_RSA             2
#define NGX_HTTP_GW_JWT_EC              3
#define NGX_HTTP_GW_JWT_OKP             4

/* signature families */
#define NGX_HTTP_GW_JWT_HMAC            1
#define NGX_HTTP_GW_JWT_PKCS1           2
#define NGX_HTTP_GW_JWT_PSS             3
#define NGX_HTTP_GW_JWT_ECDSA           4
#define NGX_HTTP_GW_JWT_EDDSA           5

/* key management families */
#define NGX_HTTP_GW_JWT_DIR             6
#define NGX_HTTP_GW_JWT_KW              7
#define NGX_HTTP_GW_JWT_GCMKW           8
#define NGX_HTTP_GW_JWT_OAEP            9

/* content encryption */
#define NGX_HTTP_GW_JWT_GCM             1
#define NGX_HTTP_GW_JWT_CBC             2

/* curves: index + 1 in ngx_http_gw_jwt_curves */
#define NGX_HTTP_GW_JWT_ED25519         4
#define NGX_HTTP_GW_JWT_ED448           5

#define NGX_HTTP_GW_JWT_CEK_MAX         64


typedef struct {
    ngx_str_t                      name;     /* JWK "crv" */
    const char                    *group;    /* OpenSSL group name */
    size_t                         size;     /* coordinate size */
} ngx_http_gw_jwt_curve_t;


struct ngx_http_gw_jwt_alg_s {
    ngx_str_t                      name;
    ngx_uint_t                     family;
    ngx_uint_t                     kty;
    const EVP_MD                *(*md)(void);
    size_t                         size;     /* HMAC hash, ECDSA coordinate,
                                                key wrapping key */
    ngx_uint_t                     crv;      /* 0: any EdDSA curve */
};


typedef struct {
    ngx_str_t                      name;
    ngx_uint_t                     mode;
    size_t                         size;     /* content encryption key */
    const EVP_CIPHER            *(*cipher)(void);
    const EVP_MD                *(*md)(void);
} ngx_http_gw_jwt_enc_t;


/* the parts of a compact serialization, as sent and decoded */

typedef struct {
    ngx_str_t                      raw[5];
    ngx_str_t                      bin[5];
    ngx_uint_t                     n;
} ngx_http_gw_jwt_parts_t;


static ngx_int_t ngx_http_gw_jwt_split(ngx_str_t *token, ngx_pool_t *pool,
    ngx_http_gw_jwt_parts_t *p, const char **err);
static ngx_int_t ngx_http_gw_jwt_header(ngx_str_t *bin, ngx_uint_t sig,
    ngx_http_gw_jwt_t *jwt, ngx_http_gw_jwt_alg_t **alg);
static ngx_int_t ngx_http_gw_jwt_jws(ngx_http_gw_jwt_parts_t *p,
    ngx_http_gw_jwt_keys_t *keys, ngx_http_gw_jwt_t *jwt);
static ngx_int_t ngx_http_gw_jwt_claims(ngx_str_t *payload,
    ngx_http_gw_jwt_t *jwt);
static ngx_int_t ngx_http_gw_jwt_jwe(ngx_http_gw_jwt_parts_t *p,
    ngx_http_gw_jwt_keys_t *keys, ngx_pool_t *pool, ngx_http_gw_jwt_t *jwt,
    ngx_str_t *plain);
static ngx_int_t ngx_http_gw_jwt_unwrap(ngx_http_gw_jwt_alg_t *alg,
    ngx_http_gw_jwt_key_t *key, json_t *header, ngx_str_t *ek, u_char *cek,
    size_t size);
static ngx_int_t ngx_http_gw_jwt_content(ngx_http_gw_jwt_enc_t *enc,
    u_char *cek, ngx_str_t *aad, ngx_str_t *iv, ngx_str_t *ct,
    ngx_str_t *tag, u_char *out, size_t *outlen);
static ngx_int_t ngx_http_gw_jwt_gcm(const EVP_CIPHER *cipher, u_char *key,
    u_char *iv, ngx_str_t *aad, ngx_str_t *in, u_char *tag, u_char *out);
static ngx_uint_t ngx_http_gw_jwt_selected(ngx_http_gw_jwt_key_t *key,
    ngx_str_t *kid, ngx_uint_t named);
static ngx_uint_t ngx_http_gw_jwt_named(ngx_http_gw_jwt_keys_t *keys,
    ngx_str_t *kid);
static ngx_uint_t ngx_http_gw_jwt_sig_fits(ngx_http_gw_jwt_alg_t *alg,
    ngx_http_gw_jwt_key_t *key);
static ngx_uint_t ngx_http_gw_jwt_enc_fits(ngx_http_gw_jwt_alg_t *alg,
    ngx_http_gw_jwt_enc_t *enc, ngx_http_gw_jwt_key_t *key);
static ngx_int_t ngx_http_gw_jwt_verify_key(ngx_http_gw_jwt_alg_t *alg,
    ngx_http_gw_jwt_key_t *key, ngx_str_t *input, ngx_str_t *sig);
static int ngx_http_gw_jwt_ecdsa_der(u_char *sig, size_t n, u_char **der);

static ngx_int_t ngx_http_gw_jwt_b64(u_char *dst, size_t *dlen, u_char *src,
    size_t len);
static ngx_int_t ngx_http_gw_jwt_b64_field(json_t *obj, const char *name,
    u_char *dst, size_t size);

static ngx_int_t ngx_http_gw_jwt_parse_jwk(json_t *jwk, ngx_pool_t *pool,
    ngx_http_gw_jwt_key_t *k);
static ngx_int_t ngx_http_gw_jwt_parse_pem(u_char *data, size_t len,
    ngx_pool_t *pool, ngx_array_t *keys, const char **err);
static ngx_int_t ngx_http_gw_jwt_pem_key(ngx_pool_t *pool, EVP_PKEY *pkey,
    ngx_uint_t private, ngx_http_gw_jwt_key_t *k);
static ngx_int_t ngx_http_gw_jwt_jwk_field(json_t *jwk, const char *name,
    ngx_pool_t *pool, ngx_str_t *value);
static EVP_PKEY *ngx_http_gw_jwt_rsa_key(json_t *jwk, ngx_pool_t *pool,
    ngx_uint_t private);
static EVP_PKEY *ngx_http_gw_jwt_ec_key(ngx_http_gw_jwt_curve_t *curve,
    ngx_str_t *x, ngx_str_t *y);
static ngx_int_t ngx_http_gw_jwt_add_pkey(ngx_pool_t *pool, EVP_PKEY *pkey);
static void ngx_http_gw_jwt_pkey_cleanup(void *data);
static u_char *ngx_http_gw_jwt_find(u_char *p, u_char *last, char *s);
static int ngx_http_gw_jwt_no_password(char *buf, int size, int rwflag,
    void *u);
static ngx_http_gw_jwt_alg_t *ngx_http_gw_jwt_find_alg(u_char *name,
    size_t len);
static ngx_http_gw_jwt_enc_t *ngx_http_gw_jwt_find_enc(u_char *name,
    size_t len);


static ngx_http_gw_jwt_curve_t  ngx_http_gw_jwt_curves[] = {
    { ngx_string("P-256"), "prime256v1", 32 },
    { ngx_string("P-384"), "secp384r1", 48 },
    { ngx_string("P-521"), "secp521r1", 66 },
    { ngx_string("Ed25519"), NULL, 32 },
    { ngx_string("Ed448"), NULL, 57 },
    { ngx_null_string, NULL, 0 }
};


static ngx_http_gw_jwt_alg_t  ngx_http_gw_jwt_algs[] = {
    { ngx_string("HS256"), NGX_HTTP_GW_JWT_HMAC, NGX_HTTP_GW_JWT_OCT,
      EVP_sha256, 32, 0 },
    { ngx_string("HS384"), NGX_HTTP_GW_JWT_HMAC, NGX_HTTP_GW_JWT_OCT,
      EVP_sha384, 48, 0 },
    { ngx_string("HS512"), NGX_HTTP_GW_JWT_HMAC, NGX_HTTP_GW_JWT_OCT,
      EVP_sha512, 64, 0 },
    { ngx_string("RS256"), NGX_HTTP_GW_JWT_PKCS1, NGX_HTTP_GW_JWT_RSA,
      EVP_sha256, 0, 0 },
    { ngx_string("RS384"), NGX_HTTP_GW_JWT_PKCS1, NGX_HTTP_GW_JWT_RSA,
      EVP_sha384, 0, 0 },
    { ngx_string("RS512"), NGX_HTTP_GW_JWT_PKCS1, NGX_HTTP_GW_JWT_RSA,
      EVP_sha512, 0, 0 },
    { ngx_string("PS256"), NGX_HTTP_GW_JWT_PSS, NGX_HTTP_GW_JWT_RSA,
      EVP_sha256, 0, 0 },
    { ngx_string("PS384"), NGX_HTTP_GW_JWT_PSS, NGX_HTTP_GW_JWT_RSA,
      EVP_sha384, 0, 0 },
    { ngx_string("PS512"), NGX_HTTP_GW_JWT_PSS, NGX_HTTP_GW_JWT_RSA,
      EVP_sha512, 0, 0 },
    { ngx_string("ES256"), NGX_HTTP_GW_JWT_ECDSA, NGX_HTTP_GW_JWT_EC,
      EVP_sha256, 32, 1 },
    { ngx_string("ES384"), NGX_HTTP_GW_JWT_ECDSA, NGX_HTTP_GW_JWT_EC,
      EVP_sha384, 48, 2 },
    { ngx_string("ES512"), NGX_HTTP_GW_JWT_ECDSA, NGX_HTTP_GW_JWT_EC,
      EVP_sha512, 66, 3 },
    { ngx_string("EdDSA"), NGX_HTTP_GW_JWT_EDDSA, NGX_HTTP_GW_JWT_OKP,
      NULL, 0, 0 },

    { ngx_string("dir"), NGX_HTTP_GW_JWT_DIR, NGX_HTTP_GW_JWT_OCT,
      NULL, 0, 0 },
    { ngx_string("A128KW"), NGX_HTTP_GW_JWT_KW, NGX_HTTP_GW_JWT_OCT,
      NULL, 16, 0 },
    { ngx_string("A192KW"), NGX_HTTP_GW_JWT_KW, NGX_HTTP_GW_JWT_OCT,
      NULL, 24, 0 },
    { ngx_string("A256KW"), NGX_HTTP_GW_JWT_KW, NGX_HTTP_GW_JWT_OCT,
      NULL, 32, 0 },
    { ngx_string("A128GCMKW"), NGX_HTTP_GW_JWT_GCMKW, NGX_HTTP_GW_JWT_OCT,
      NULL, 16, 0 },
    { ngx_string("A192GCMKW"), NGX_HTTP_GW_JWT_GCMKW, NGX_HTTP_GW_JWT_OCT,
      NULL, 24, 0 },
    { ngx_string("A256GCMKW"), NGX_HTTP_GW_JWT_GCMKW, NGX_HTTP_GW_JWT_OCT,
      NULL, 32, 0 },
    { ngx_string("RSA-OAEP"), NGX_HTTP_GW_JWT_OAEP, NGX_HTTP_GW_JWT_RSA,
      EVP_sha1, 0, 0 },
    { ngx_string("RSA-OAEP-256"), NGX_HTTP_GW_JWT_OAEP, NGX_HTTP_GW_JWT_RSA,
      EVP_sha256, 0, 0 },
    { ngx_string("RSA-OAEP-384"), NGX_HTTP_GW_JWT_OAEP, NGX_HTTP_GW_JWT_RSA,
      EVP_sha384, 0, 0 },
    { ngx_string("RSA-OAEP-512"), NGX_HTTP_GW_JWT_OAEP, NGX_HTTP_GW_JWT_RSA,
      EVP_sha512, 0, 0 },

    { ngx_null_string, 0, 0, NULL, 0, 0 }
};


static ngx_http_gw_jwt_enc_t  ngx_http_gw_jwt_encs[] = {
    { ngx_string("A128CBC-HS256"), NGX_HTTP_GW_JWT_CBC, 32,
      EVP_aes_128_cbc, EVP_sha256 },
    { ngx_string("A192CBC-HS384"), NGX_HTTP_GW_JWT_CBC, 48,
      EVP_aes_192_cbc, EVP_sha384 },
    { ngx_string("A256CBC-HS512"), NGX_HTTP_GW_JWT_CBC, 64,
      EVP_aes_256_cbc, EVP_sha512 },
    { ngx_string("A128GCM"), NGX_HTTP_GW_JWT_GCM, 16, EVP_aes_128_gcm, NULL },
    { ngx_string("A192GCM"), NGX_HTTP_GW_JWT_GCM, 24, EVP_aes_192_gcm, NULL },
    { ngx_string("A256GCM"), NGX_HTTP_GW_JWT_GCM, 32, EVP_aes_256_gcm, NULL },
    { ngx_null_string, 0, 0, NULL, NULL }
};


#define ngx_http_gw_jwt_is_sig(alg)  ((alg)->family <= NGX_HTTP_GW_JWT_EDDSA)


ngx_int_t
ngx_http_gw_jwt_decode(ngx_str_t *token, ngx_http_gw_jwt_keys_t *keys,
    ngx_pool_t *pool, ngx_http_gw_jwt_t *jwt)
{
    json_t                   *v;
    ngx_int_t                 rc;
    ngx_str_t                 plain, cty;
    ngx_http_gw_jwt_parts_t   p;

    ngx_memzero(jwt, sizeof(ngx_http_gw_jwt_t));

    if (token->len > NGX_HTTP_GW_JWT_TOKEN_MAX) {
        jwt->error = "token too long";
        return NGX_DECLINED;
    }

    rc = ngx_http_gw_jwt_split(token, pool, &p, &jwt->error);

    if (rc != NGX_OK) {
        return rc;
    }

    if (p.n == 3) {
        if (keys->type != NGX_HTTP_GW_JWT_SIGNED) {
            jwt->error = "a signed token where an encrypted one is expected";
            return NGX_DECLINED;
        }

        rc = ngx_http_gw_jwt_jws(&p, keys, jwt);

        if (rc != NGX_OK) {
            goto failed;
        }

        return NGX_OK;
    }

    if (keys->type == NGX_HTTP_GW_JWT_SIGNED) {
        jwt->error = "an encrypted token where a signed one is expected";
        return NGX_DECLINED;
    }

    rc = ngx_http_gw_jwt_jwe(&p, keys, pool, jwt, &plain);

    if (rc != NGX_OK) {
        goto failed;
    }

    if (keys->type == NGX_HTTP_GW_JWT_ENCRYPTED) {
        jwt->header = jwt->outer;
        jwt->outer = NULL;

        jwt->payload = plain;

        rc = ngx_http_gw_jwt_claims(&plain, jwt);

        if (rc != NGX_OK) {
            goto failed;
        }

        return NGX_OK;
    }

    /* nested: the plaintext is a JWS, signed with the signature keys */

    v = json_object_get(jwt->outer, "cty");

    if (v != NULL) {
        if (!json_is_string(v)) {
            jwt->error = "invalid cty";
            rc = NGX_DECLINED;
            goto failed;
        }

        cty.data = (u_char *) json_string_value(v);
        cty.len = json_string_length(v);

        if (cty.len != 3 || ngx_strncasecmp(cty.data, (u_char *) "JWT", 3))
        {
            jwt->error = "cty of a nested token is not JWT";
            rc = NGX_DECLINED;
            goto failed;
        }
    }

    rc = ngx_http_gw_jwt_split(&plain, pool, &p, &jwt->error);

    if (rc == NGX_ERROR) {
        goto failed;
    }

    if (rc != NGX_OK || p.n != 3) {
        jwt->error = "the nested token is not a JWS";
        rc = NGX_DECLINED;
        goto failed;
    }

    rc = ngx_http_gw_jwt_jws(&p, keys, jwt);

    if (rc != NGX_OK) {
        goto failed;
    }

    jwt->payload = plain;

    return NGX_OK;

failed:

    /* the caller logs alg and kid, then calls ngx_http_gw_jwt_free() */

    return rc;
}


void
ngx_http_gw_jwt_free(ngx_http_gw_jwt_t *jwt)
{
    if (jwt->header) {
        json_decref(jwt->header);
        jwt->header = NULL;
    }

    if (jwt->outer) {
        json_decref(jwt->outer);
        jwt->outer = NULL;
    }

    if (jwt->claims) {
        json_decref(jwt->claims);
        jwt->claims = NULL;
    }

    /* alg and kid pointed into a header */
    ngx_str_null(&jwt->alg);
    ngx_str_null(&jwt->kid);
}


/*
 * Splits a compact serialization into its 3 (JWS) or 5 (JWE) parts and
 * decodes them into one buffer.  A JWS needs a header, a payload and a
 * signature; the parts of a JWE other than its header are checked after
 * the same work (ngx_http_gw_jwt_jwe()).
 */

static ngx_int_t
ngx_http_gw_jwt_split(ngx_str_t *token, ngx_pool_t *pool,
    ngx_http_gw_jwt_parts_t *p, const char **err)
{
    u_char      *buf, *s, *last, *dot;
    ngx_uint_t   i;

    static const char  *jws[] = {
        "invalid base64url in header", "invalid base64url in payload",
        "invalid base64url in signature"
    };

    static const char  *jwe[] = {
        "invalid base64url in header", "invalid base64url in encrypted key",
        "invalid base64url in iv", "invalid base64url in ciphertext",
        "invalid base64url in tag"
    };

    ngx_memzero(p, sizeof(ngx_http_gw_jwt_parts_t));

    s = token->data;
    last = s + token->len;

    for (i = 0; i < 5; i++) {
        dot = ngx_strlchr(s, last, '.');

        p->raw[i].data = s;
        p->raw[i].len = (dot ? dot : last) - s;
        p->n++;

        if (dot == NULL) {
            break;
        }

        s = dot + 1;
    }

    if (i == 5 || (p->n != 3 && p->n != 5)) {
        *err = "not a JWS or JWE compact serialization";
        return NGX_DECLINED;
    }

    if (p->raw[0].len == 0 || (p->n == 3 && p->raw[1].len == 0)) {
        *err = "empty header or payload";
        return NGX_DECLINED;
    }

    if (p->n == 3 && p->raw[2].len == 0) {
        *err = "no signature";
        return NGX_DECLINED;
    }

    buf = ngx_pnalloc(pool, token->len + 1);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < p->n; i++) {
        p->bin[i].data = buf;

        if (ngx_http_gw_jwt_b64(buf, &p->bin[i].len, p->raw[i].data,
                                p->raw[i].len)
            != NGX_OK)
        {
            *err = (p->n == 3) ? jws[i] : jwe[i];
            return NGX_DECLINED;
        }

        buf += p->bin[i].len;
    }

    return NGX_OK;
}


/*
 * The JOSE header: a JSON object with a known "alg" of the expected kind
 * (and a known "enc" for a JWE), no "crit", no "zip", a string "kid".
 * "jku", "x5u", "jwk" and "x5c" are ignored: keys never come from the
 * token itself.
 */

static ngx_int_t
ngx_http_gw_jwt_header(ngx_str_t *bin, ngx_uint_t sig, ngx_http_gw_jwt_t *jwt,
    ngx_http_gw_jwt_alg_t **alg)
{
    json_t        *h, *v;
    json_error_t   jerr;

    h = json_loadb((char *) bin->data, bin->len, JSON_REJECT_DUPLICATES,
                   &jerr);

    if (!json_is_object(h)) {
        json_decref(h);
        jwt->error = "header is not a JSON object";
        return NGX_DECLINED;
    }

    jwt->decoded += bin->len;

    if (sig) {
        if (jwt->header) {
            /* the inner token of a nested one */
            json_decref(jwt->header);
        }

        jwt->header = h;

    } else {
        jwt->outer = h;
    }

    v = json_object_get(h, "alg");

    if (!json_is_string(v)) {
        jwt->error = "no alg";
        return NGX_DECLINED;
    }

    jwt->alg.data = (u_char *) json_string_value(v);
    jwt->alg.len = json_string_length(v);

    /* exact names only: "none", "None", "hs256" ... are all unknown */

    *alg = ngx_http_gw_jwt_find_alg(jwt->alg.data, jwt->alg.len);

    if (*alg == NULL || (ngx_http_gw_jwt_is_sig(*alg) ? 1 : 0) != sig) {
        ngx_str_null(&jwt->alg);
        jwt->error = "unsupported alg";
        return NGX_DECLINED;
    }

    /* no extension is understood, so any "crit" is fatal */

    if (json_object_get(h, "crit") != NULL) {
        jwt->error = "unsupported crit";
        return NGX_DECLINED;
    }

    /* compressed plaintext is refused: no decompression of hostile data */

    if (json_object_get(h, "zip") != NULL) {
        jwt->error = "unsupported zip";
        return NGX_DECLINED;
    }

    ngx_str_null(&jwt->kid);

    v = json_object_get(h, "kid");

    if (v != NULL) {
        if (!json_is_string(v)
            || json_string_length(v) > NGX_HTTP_GW_JWT_KID_MAX)
        {
            jwt->error = "invalid kid";
            return NGX_DECLINED;
        }

        jwt->kid.data = (u_char *) json_string_value(v);
        jwt->kid.len = json_string_length(v);
    }

    return NGX_OK;
}


/*
 * A JWS: the header, then the signature, and only then the claims, so a
 * forged token costs no more JSON parsing than its header.
 */

static ngx_int_t
ngx_http_gw_jwt_jws(ngx_http_gw_jwt_parts_t *p, ngx_http_gw_jwt_keys_t *keys,
    ngx_http_gw_jwt_t *jwt)
{
    ngx_int_t               rc;
    ngx_str_t               input;
    ngx_uint_t              i, j, named, tried, fits, strict_short;
    ngx_http_gw_jwt_alg_t  *alg;
    ngx_http_gw_jwt_key_t  *key;

    rc = ngx_http_gw_jwt_header(&p->bin[0], 1, jwt, &alg);

    if (rc != NGX_OK) {
        return rc;
    }

    /* the signing input: header "." payload, as sent */

    input.data = p->raw[0].data;
    input.len = p->raw[1].data + p->raw[1].len - p->raw[0].data;

    /*
     * A token naming a kid is checked with the keys of that kid only (or,
     * when no key has it, with the keys that have no kid, e.g. PEM keys);
     * a token without kid with every key.  Only keys that fit the alg
     * are tried.
     */

    named = ngx_http_gw_jwt_named(keys, &jwt->kid);

    if (jwt->kid.len && !named) {
        jwt->unknown_kid = 1;
    }

    tried = 0;
    strict_short = 0;

    for (i = 0; i < keys->nsets; i++) {
        key = keys->sets[i]->elts;

        for (j = 0; j < keys->sets[i]->nelts; j++) {

            if (!ngx_http_gw_jwt_selected(&key[j], &jwt->kid, named)) {
                continue;
            }

            fits = ngx_http_gw_jwt_sig_fits(alg, &key[j]);

            if (fits && alg->family == NGX_HTTP_GW_JWT_HMAC && keys->strict
                && key[j].secret.len < alg->size)
            {
                strict_short = 1;
                fits = 0;
            }

            if (!fits) {
                continue;
            }

            tried++;

            rc = ngx_http_gw_jwt_verify_key(alg, &key[j], &input,
                                            &p->bin[2]);

            if (rc == NGX_OK) {
                jwt->payload = p->bin[1];
                return ngx_http_gw_jwt_claims(&p->bin[1], jwt);
            }

            if (rc == NGX_ERROR) {
                return NGX_ERROR;
            }
        }
    }

    if (tried) {
        jwt->error = "signature mismatch";

    } else if (strict_short) {
        jwt->error = "oct key shorter than the hash of the alg "
                     "(RFC 7518, 3.2)";

    } else {
        jwt->error = jwt->unknown_kid ? "unknown kid" : "no key for alg";
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_gw_jwt_claims(ngx_str_t *payload, ngx_http_gw_jwt_t *jwt)
{
    json_t        *v;
    json_error_t   jerr;

    jwt->claims = json_loadb((char *) payload->data, payload->len,
                             JSON_REJECT_DUPLICATES, &jerr);

    if (!json_is_object(jwt->claims)) {
        jwt->error = "payload is not a JSON object";
        return NGX_DECLINED;
    }

    jwt->decoded += payload->len;

    v = json_object_get(jwt->claims, "exp");

    if (v != NULL) {
        if (!json_is_number(v)) {
            jwt->error = "invalid exp";
            return NGX_DECLINED;
        }

        jwt->exp = json_number_value(v);
        jwt->has_exp = 1;
    }

    v = json_object_get(jwt->claims, "nbf");

    if (v != NULL) {
        if (!json_is_number(v)) {
            jwt->error = "invalid nbf";
            return NGX_DECLINED;
        }

        jwt->nbf = json_number_value(v);
        jwt->has_nbf = 1;
    }

    return NGX_OK;
}


/*
 * A JWE: decrypts into *plain (pool memory).  After the header, every
 * failure (a missing or malformed part, a key that does not unwrap, a
 * wrong length, a bad tag) costs the same work and ends in the same
 * error: an unwrapped key that is unusable is replaced by random bytes,
 * parts of a wrong size by zeros, and the content is always decrypted
 * and authenticated (RFC 7516, 11.5; RFC 7518, 5.2.2.2 and 4.2).
 */

static ngx_int_t
ngx_http_gw_jwt_jwe(ngx_http_gw_jwt_parts_t *p, ngx_http_gw_jwt_keys_t *keys,
    ngx_pool_t *pool, ngx_http_gw_jwt_t *jwt, ngx_str_t *plain)
{
    u_char                  cek[NGX_HTTP_GW_JWT_CEK_MAX], *out;
    size_t                  outlen;
    json_t                 *v;
    ngx_int_t               rc;
    ngx_str_t               name;
    ngx_uint_t              i, j, named, tried, bad;
    ngx_http_gw_jwt_enc_t  *enc;
    ngx_http_gw_jwt_alg_t  *alg;
    ngx_http_gw_jwt_key_t  *key;

    rc = ngx_http_gw_jwt_header(&p->bin[0], 0, jwt, &alg);

    if (rc != NGX_OK) {
        return rc;
    }

    v = json_object_get(jwt->outer, "enc");

    if (!json_is_string(v)) {
        jwt->error = "no enc";
        return NGX_DECLINED;
    }

    name.data = (u_char *) json_string_value(v);
    name.len = json_string_length(v);

    enc = ngx_http_gw_jwt_find_enc(name.data, name.len);

    if (enc == NULL) {
        jwt->error = "unsupported enc";
        return NGX_DECLINED;
    }

    /* a part that cannot be right fails, but only after the same work */

    bad = 0;

    if (p->raw[3].len == 0
        || (alg->family == NGX_HTTP_GW_JWT_DIR) != (p->raw[1].len == 0))
    {
        bad = 1;
    }

    out = ngx_pnalloc(pool, p->bin[3].len + 16);
    if (out == NULL) {
        return NGX_ERROR;
    }

    named = ngx_http_gw_jwt_named(keys, &jwt->kid);

    if (jwt->kid.len && !named) {
        jwt->unknown_kid = 1;
    }

    tried = 0;

    for (i = 0; i < keys->nsets; i++) {
        key = keys->sets[i]->elts;

        for (j = 0; j < keys->sets[i]->nelts; j++) {

            if (!ngx_http_gw_jwt_selected(&key[j], &jwt->kid, named)
                || !ngx_http_gw_jwt_enc_fits(alg, enc, &key[j]))
            {
                continue;
            }

            tried++;

            rc = ngx_http_gw_jwt_unwrap(alg, &key[j], jwt->outer, &p->bin[1],
                                        cek, enc->size);

            if (rc == NGX_ERROR) {
                return NGX_ERROR;
            }

            if (rc != NGX_OK) {
                if (RAND_bytes(cek, (int) enc->size) != 1) {
                    ERR_clear_error();
                    return NGX_ERROR;
                }
            }

            if (ngx_http_gw_jwt_content(enc, cek, &p->raw[0], &p->bin[2],
                                        &p->bin[3], &p->bin[4], out, &outlen)
                    == NGX_OK
                && rc == NGX_OK && !bad)
            {
                OPENSSL_cleanse(cek, sizeof(cek));

                plain->data = out;
                plain->len = outlen;

                return NGX_OK;
            }
        }
    }

    OPENSSL_cleanse(cek, sizeof(cek));

    if (tried) {
        jwt->error = "decryption failed";

    } else {
        jwt->error = jwt->unknown_kid ? "unknown kid" : "no key for alg";
    }

    return NGX_DECLINED;
}


/* the content encryption key: NGX_OK, or NGX_DECLINED for any failure */

static ngx_int_t
ngx_http_gw_jwt_unwrap(ngx_http_gw_jwt_alg_t *alg, ngx_http_gw_jwt_key_t *key,
    json_t *header, ngx_str_t *ek, u_char *cek, size_t size)
{
    int                outl, finl;
    u_char             buf[16 * 1024 / 8], iv[12], tag[16];
    size_t             len;
    ngx_str_t          in;
    ngx_int_t          rc;
    EVP_PKEY_CTX      *pctx;
    EVP_CIPHER_CTX    *cctx;
    const EVP_CIPHER  *cipher;

    switch (alg->family) {

    case NGX_HTTP_GW_JWT_DIR:
        ngx_memcpy(cek, key->secret.data, size);
        return (ek->len == 0) ? NGX_OK : NGX_DECLINED;

    case NGX_HTTP_GW_JWT_KW:

        cipher = (alg->size == 16) ? EVP_aes_128_wrap()
                 : (alg->size == 24) ? EVP_aes_192_wrap()
                 : EVP_aes_256_wrap();

        cctx = EVP_CIPHER_CTX_new();
        if (cctx == NULL) {
            ERR_clear_error();
            return NGX_ERROR;
        }

        EVP_CIPHER_CTX_set_flags(cctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);

        rc = NGX_DECLINED;
        outl = 0;
        finl = 0;

        /* RFC 3394: n + 1 blocks wrap n; the wrong size unwraps nothing */

        if (ek->len == size + 8
            && EVP_DecryptInit_ex(cctx, cipher, NULL, key->secret.data, NULL)
               == 1
            && EVP_DecryptUpdate(cctx, buf, &outl, ek->data, (int) ek->len)
               == 1
            && EVP_DecryptFinal_ex(cctx, buf + outl, &finl) == 1
            && (size_t) (outl + finl) == size)
        {
            ngx_memcpy(cek, buf, size);
            rc = NGX_OK;
        }

        EVP_CIPHER_CTX_free(cctx);
        ERR_clear_error();
        OPENSSL_cleanse(buf, sizeof(buf));

        return rc;

    case NGX_HTTP_GW_JWT_GCMKW:

        cipher = (alg->size == 16) ? EVP_aes_128_gcm()
                 : (alg->size == 24) ? EVP_aes_192_gcm()
                 : EVP_aes_256_gcm();

        rc = NGX_OK;

        if (ngx_http_gw_jwt_b64_field(header, "iv", iv, sizeof(iv)) != NGX_OK)
        {
            ngx_memzero(iv, sizeof(iv));
            rc = NGX_DECLINED;
        }

        if (ngx_http_gw_jwt_b64_field(header, "tag", tag, sizeof(tag))
            != NGX_OK)
        {
            ngx_memzero(tag, sizeof(tag));
            rc = NGX_DECLINED;
        }

        in = *ek;

        if (in.len != size) {
            in.len = 0;
            rc = NGX_DECLINED;
        }

        in.data = (in.len == 0) ? buf : ek->data;

        if (ngx_http_gw_jwt_gcm(cipher, key->secret.data, iv, NULL, &in, tag,
                                buf)
            != NGX_OK)
        {
            rc = NGX_DECLINED;
        }

        if (rc == NGX_OK) {
            ngx_memcpy(cek, buf, size);
        }

        OPENSSL_cleanse(buf, sizeof(buf));

        return rc;

    default: /* NGX_HTTP_GW_JWT_OAEP */

        pctx = EVP_PKEY_CTX_new(key->pkey, NULL);
        if (pctx == NULL) {
            ERR_clear_error();
            return NGX_ERROR;
        }

        rc = NGX_DECLINED;
        len = sizeof(buf);

        if (EVP_PKEY_decrypt_init(pctx) == 1
            && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) == 1
            && EVP_PKEY_CTX_set_rsa_oaep_md(pctx, alg->md()) == 1
            && EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, alg->md()) == 1
            && EVP_PKEY_decrypt(pctx, buf, &len, ek->data, ek->len) == 1
            && len == size)
        {
            ngx_memcpy(cek, buf, size);
            rc = NGX_OK;
        }

        EVP_PKEY_CTX_free(pctx);
        ERR_clear_error();
        OPENSSL_cleanse(buf, sizeof(buf));

        return rc;
    }
}


/*
 * Content decryption with authentication: AES-GCM, or AES-CBC with an
 * HMAC tag over AAD || IV || ciphertext || AAD length in bits, checked
 * in constant time before anything is decrypted (RFC 7518, 5.2.2.2).
 */

static ngx_int_t
ngx_http_gw_jwt_content(ngx_http_gw_jwt_enc_t *enc, u_char *cek,
    ngx_str_t *aad, ngx_str_t *iv, ngx_str_t *ct, ngx_str_t *tag,
    u_char *out, size_t *outlen)
{
    int              outl, finl;
    u_char           ivb[16], tagb[32], mac[EVP_MAX_MD_SIZE], al[8];
    size_t           half, i;
    uint64_t         bits;
    EVP_PKEY        *mkey;
    ngx_int_t        rc;
    EVP_MD_CTX      *mctx;
    unsigned int     maclen;
    EVP_CIPHER_CTX  *cctx;

    rc = NGX_OK;

    if (enc->mode == NGX_HTTP_GW_JWT_GCM) {

        if (iv->len == 12) {
            ngx_memcpy(ivb, iv->data, 12);

        } else {
            ngx_memzero(ivb, 12);
            rc = NGX_DECLINED;
        }

        if (tag->len == 16) {
            ngx_memcpy(tagb, tag->data, 16);

        } else {
            ngx_memzero(tagb, 16);
            rc = NGX_DECLINED;
        }

        if (ngx_http_gw_jwt_gcm(enc->cipher(), cek, ivb, aad, ct, tagb, out)
            != NGX_OK)
        {
            rc = NGX_DECLINED;
        }

        *outlen = ct->len;

        return rc;
    }

    /* CBC-HS: MAC key, then encryption key, each half of the CEK */

    half = enc->size / 2;

    if (iv->len == 16) {
        ngx_memcpy(ivb, iv->data, 16);

    } else {
        ngx_memzero(ivb, 16);
        rc = NGX_DECLINED;
    }

    if (tag->len == half) {
        ngx_memcpy(tagb, tag->data, half);

    } else {
        ngx_memzero(tagb, half);
        rc = NGX_DECLINED;
    }

    if (ct->len == 0 || ct->len % 16) {
        rc = NGX_DECLINED;
    }

    bits = (uint64_t) aad->len * 8;

    for (i = 0; i < 8; i++) {
        al[i] = (u_char) (bits >> (56 - 8 * i));
    }

    mkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, NULL, cek, half);
    mctx = EVP_MD_CTX_new();

    maclen = 0;

    if (mkey == NULL || mctx == NULL
        || EVP_DigestSignInit(mctx, NULL, enc->md(), NULL, mkey) != 1
        || EVP_DigestSignUpdate(mctx, aad->data, aad->len) != 1
        || EVP_DigestSignUpdate(mctx, ivb, 16) != 1
        || EVP_DigestSignUpdate(mctx, ct->data, ct->len) != 1
        || EVP_DigestSignUpdate(mctx, al, 8) != 1)
    {
        EVP_MD_CTX_free(mctx);
        EVP_PKEY_free(mkey);
        ERR_clear_error();
        return NGX_ERROR;
    }

    i = sizeof(mac);

    if (EVP_DigestSignFinal(mctx, mac, &i) != 1) {
        EVP_MD_CTX_free(mctx);
        EVP_PKEY_free(mkey);
        ERR_clear_error();
        return NGX_ERROR;
    }

    maclen = (unsigned int) i;

    EVP_MD_CTX_free(mctx);
    EVP_PKEY_free(mkey);

    if (maclen < half || CRYPTO_memcmp(mac, tagb, half) != 0) {
        rc = NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        return NGX_DECLINED;
    }

    cctx = EVP_CIPHER_CTX_new();
    if (cctx == NULL) {
        ERR_clear_error();
        return NGX_ERROR;
    }

    outl = 0;
    finl = 0;

    if (EVP_DecryptInit_ex(cctx, enc->cipher(), NULL, cek + half, ivb) != 1
        || EVP_DecryptUpdate(cctx, out, &outl, ct->data, (int) ct->len) != 1
        || EVP_DecryptFinal_ex(cctx, out + outl, &finl) != 1)
    {
        rc = NGX_DECLINED;
    }

    EVP_CIPHER_CTX_free(cctx);
    ERR_clear_error();

    *outlen = outl + finl;

    return rc;
}


static ngx_int_t
ngx_http_gw_jwt_gcm(const EVP_CIPHER *cipher, u_char *key, u_char *iv,
    ngx_str_t *aad, ngx_str_t *in, u_char *tag, u_char *out)
{
    int              outl, finl;
    ngx_int_t        rc;
    EVP_CIPHER_CTX  *cctx;

    cctx = EVP_CIPHER_CTX_new();
    if (cctx == NULL) {
        ERR_clear_error();
        return NGX_ERROR;
    }

    rc = NGX_DECLINED;
    outl = 0;

    if (EVP_DecryptInit_ex(cctx, cipher, NULL, NULL, NULL) == 1
        && EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1
        && EVP_DecryptInit_ex(cctx, NULL, NULL, key, iv) == 1
        && (aad == NULL
            || EVP_DecryptUpdate(cctx, NULL, &outl, aad->data,
                                 (int) aad->len) == 1)
        && (in->len == 0
            || EVP_DecryptUpdate(cctx, out, &outl, in->data, (int) in->len)
               == 1)
        && EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1
        && EVP_DecryptFinal_ex(cctx, out + (in->len ? outl : 0), &finl) == 1)
    {
        /* the tag is checked by OpenSSL with CRYPTO_memcmp() */
        rc = NGX_OK;
    }

    EVP_CIPHER_CTX_free(cctx);
    ERR_clear_error();

    return rc;
}


static ngx_uint_t
ngx_http_gw_jwt_named(ngx_http_gw_jwt_keys_t *keys, ngx_str_t *kid)
{
    ngx_uint_t              i, j;
    ngx_http_gw_jwt_key_t  *key;

    if (kid->len == 0) {
        return 0;
    }

    for (i = 0; i < keys->nsets; i++) {
        key = keys->sets[i]->elts;

        for (j = 0; j < keys->sets[i]->nelts; j++) {
            if (key[j].skip == NULL
                && key[j].kid.len == kid->len
                && ngx_memcmp(key[j].kid.data, kid->data, kid->len) == 0)
            {
                return 1;
            }
        }
    }

    return 0;
}


static ngx_uint_t
ngx_http_gw_jwt_selected(ngx_http_gw_jwt_key_t *key, ngx_str_t *kid,
    ngx_uint_t named)
{
    if (key->skip) {
        return 0;
    }

    if (named) {
        return key->kid.len == kid->len
               && ngx_memcmp(key->kid.data, kid->data, kid->len) == 0;
    }

    return !(kid->len && key->kid.len);
}


/* the algorithm is bound to the key: type, curve, size and JWK "alg" */

static ngx_uint_t
ngx_http_gw_jwt_sig_fits(ngx_http_gw_jwt_alg_t *alg,
    ngx_http_gw_jwt_key_t *key)
{
    if (key->nosig || key->kty != alg->kty
        || (key->alg && key->alg != alg))
    {
        return 0;
    }

    switch (alg->family) {

    case NGX_HTTP_GW_JWT_ECDSA:
        return key->crv == alg->crv;

    case NGX_HTTP_GW_JWT_EDDSA:
        return key->crv == NGX_HTTP_GW_JWT_ED25519
               || key->crv == NGX_HTTP_GW_JWT_ED448;

    default: /* HMAC: any length unless strict; RSA of 2048 bits or more */
        return 1;
    }
}


static ngx_uint_t
ngx_http_gw_jwt_enc_fits(ngx_http_gw_jwt_alg_t *alg,
    ngx_http_gw_jwt_enc_t *enc, ngx_http_gw_jwt_key_t *key)
{
    if (key->noenc || key->kty != alg->kty
        || (key->alg && key->alg != alg))
    {
        return 0;
    }

    switch (alg->family) {

    case NGX_HTTP_GW_JWT_DIR:
        return key->secret.len == enc->size;

    case NGX_HTTP_GW_JWT_KW:
    case NGX_HTTP_GW_JWT_GCMKW:
        return key->secret.len == alg->size;

    default: /* OAEP: an RSA private key */
        return 1;
    }
}


static ngx_int_t
ngx_http_gw_jwt_verify_key(ngx_http_gw_jwt_alg_t *alg,
    ngx_http_gw_jwt_key_t *key, ngx_str_t *input, ngx_str_t *sig)
{
    int            ok, n;
    u_char         mac[EVP_MAX_MD_SIZE], *der, *s;
    size_t         len;
    EVP_MD_CTX    *mctx;
    unsigned int   maclen;
    EVP_PKEY_CTX  *pctx;

    s = sig->data;
    len = sig->len;
    der = NULL;

    switch (alg->family) {

    case NGX_HTTP_GW_JWT_HMAC:

        if (HMAC(alg->md(), key->secret.data, (int) key->secret.len,
                 input->data, input->len, mac, &maclen)
            == NULL)
        {
            ERR_clear_error();
            return NGX_ERROR;
        }

        if (maclen != len || CRYPTO_memcmp(mac, s, len) != 0) {
            return NGX_DECLINED;
        }

        return NGX_OK;

    case NGX_HTTP_GW_JWT_ECDSA:

        /* JOSE sends r || s of fixed size; OpenSSL wants DER */

        if (len != 2 * alg->size) {
            return NGX_DECLINED;
        }

        n = ngx_http_gw_jwt_ecdsa_der(s, alg->size, &der);

        if (n <= 0) {
            ERR_clear_error();
            return NGX_ERROR;
        }

        s = der;
        len = n;
        break;

    case NGX_HTTP_GW_JWT_EDDSA:

        if (len != ((key->crv == NGX_HTTP_GW_JWT_ED448) ? 114 : 64)) {
            return NGX_DECLINED;
        }

        break;

    default: /* PKCS1, PSS */

        if (len != (size_t) EVP_PKEY_get_size(key->pkey)) {
            return NGX_DECLINED;
        }
    }

    mctx = EVP_MD_CTX_new();
    if (mctx == NULL) {
        OPENSSL_free(der);
        ERR_clear_error();
        return NGX_ERROR;
    }

    ok = 0;
    pctx = NULL;

    if (EVP_DigestVerifyInit(mctx, &pctx, alg->md ? alg->md() : NULL, NULL,
                             key->pkey)
        != 1)
    {
        goto done;
    }

    if (alg->family == NGX_HTTP_GW_JWT_PSS) {
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1
            || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST)
               != 1
            || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, alg->md()) != 1)
        {
            goto done;
        }
    }

    ok = (EVP_DigestVerify(mctx, s, len, input->data, input->len) == 1);

done:

    EVP_MD_CTX_free(mctx);
    OPENSSL_free(der);

    if (!ok) {
        ERR_clear_error();
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* r || s, each n bytes, as the DER ECDSA-Sig-Value OpenSSL verifies */

static int
ngx_http_gw_jwt_ecdsa_der(u_char *sig, size_t n, u_char **der)
{
    int         len;
    BIGNUM     *r, *s;
    ECDSA_SIG  *es;

    es = ECDSA_SIG_new();
    r = BN_bin2bn(sig, (int) n, NULL);
    s = BN_bin2bn(sig + n, (int) n, NULL);

    if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1)
    {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return -1;
    }

    /* r and s belong to es now */

    *der = NULL;
    len = i2d_ECDSA_SIG(es, der);

    ECDSA_SIG_free(es);

    return len;
}


static ngx_int_t
ngx_http_gw_jwt_b64(u_char *dst, size_t *dlen, u_char *src, size_t len)
{
    size_t         i, rest;
    u_char        *d;
    ngx_uint_t     a, b, c, e;

    static u_char  basis[] = {
        77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
        77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
        77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 62, 77, 77,
        52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 77, 77, 77, 77, 77, 77,
        77,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
        15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 77, 77, 77, 77, 63,
        77, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
        41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 77, 77, 77, 77, 77,

        77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
        77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
        77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
        77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
        77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
        77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
        77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
        77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77
    };

    /*
     * strict base64url without padding (RFC 7515, section 2): any other
     * character, a dangling sixth of a byte or non-zero unused bits in
     * the last character make the input invalid, so that every byte
     * string has exactly one encoding
     */

    if (len % 4 == 1) {
        return NGX_ERROR;
    }

    for (i = 0; i < len; i++) {
        if (basis[src[i]] == 77) {
            return NGX_ERROR;
        }
    }

    d = dst;

    for (i = 0; i + 4 <= len; i += 4) {
        a = basis[src[i]];
        b = basis[src[i + 1]];
        c = basis[src[i + 2]];
        e = basis[src[i + 3]];

        *d++ = (u_char) (a << 2 | b >> 4);
        *d++ = (u_char) (b << 4 | c >> 2);
        *d++ = (u_char) (c << 6 | e);
    }

    rest = len - i;

    if (rest == 2) {
        a = basis[src[i]];
        b = basis[src[i + 1]];

        if (b & 0x0f) {
            return NGX_ERROR;
        }

        *d++ = (u_char) (a << 2 | b >> 4);

    } else if (rest == 3) {
        a = basis[src[i]];
        b = basis[src[i + 1]];
        c = basis[src[i + 2]];

        if (c & 0x03) {
            return NGX_ERROR;
        }

        *d++ = (u_char) (a << 2 | b >> 4);
        *d++ = (u_char) (b << 4 | c >> 2);
    }

    *dlen = d - dst;

    return NGX_OK;
}


/* a base64url header member of exactly "size" bytes */

static ngx_int_t
ngx_http_gw_jwt_b64_field(json_t *obj, const char *name, u_char *dst,
    size_t size)
{
    u_char   buf[64];
    size_t   len, n;
    json_t  *v;

    v = json_object_get(obj, name);

    if (!json_is_string(v)) {
        return NGX_DECLINED;
    }

    len = json_string_length(v);

    if (len > 4 * sizeof(buf) / 3
        || ngx_http_gw_jwt_b64(buf, &n, (u_char *) json_string_value(v), len)
           != NGX_OK
        || n != size)
    {
        return NGX_DECLINED;
    }

    ngx_memcpy(dst, buf, size);

    return NGX_OK;
}


/*
 * Parses a JWKS document, a single JWK or PEM keys into keys[], one entry
 * per key the document holds, usable or not (see ngx_http_gw_jwt_key_t),
 * registering pool cleanups that free the OpenSSL keys.  NGX_DECLINED
 * with *err set for a document that is not one of these.
 */

ngx_int_t
ngx_http_gw_jwt_parse_keys(u_char *data, size_t len, ngx_pool_t *pool,
    ngx_array_t *keys, const char **err)
{
    size_t                  i, n;
    json_t                 *root, *list;
    ngx_int_t               rc;
    json_error_t            jerr;
    ngx_http_gw_jwt_key_t  *k;

    *err = NULL;

    if (len > NGX_HTTP_GW_JWT_KEYS_SIZE) {
        *err = "too large";
        return NGX_DECLINED;
    }

    for (i = 0; i < len; i++) {
        if (data[i] != ' ' && data[i] != '\t' && data[i] != '\r'
            && data[i] != '\n')
        {
            break;
        }
    }

    if (i == len) {
        *err = "empty";
        return NGX_DECLINED;
    }

    if (data[i] != '{') {
        return ngx_http_gw_jwt_parse_pem(data, len, pool, keys, err);
    }

    root = json_loadb((char *) data, len, JSON_REJECT_DUPLICATES, &jerr);

    if (root == NULL) {
        *err = "invalid JSON";
        return NGX_DECLINED;
    }

    rc = NGX_OK;

    list = json_object_get(root, "keys");

    if (list == NULL && json_object_get(root, "kty") != NULL) {
        /* a single JWK */

        k = ngx_array_push(keys);
        if (k == NULL) {
            rc = NGX_ERROR;
            goto done;
        }

        ngx_memzero(k, sizeof(ngx_http_gw_jwt_key_t));
        k->index = keys->nelts;

        rc = ngx_http_gw_jwt_parse_jwk(root, pool, k);
        goto done;
    }

    if (!json_is_array(list)) {
        *err = "no \"keys\" array";
        rc = NGX_DECLINED;
        goto done;
    }

    n = json_array_size(list);

    if (n > NGX_HTTP_GW_JWT_KEYS_MAX
        || keys->nelts + n > NGX_HTTP_GW_JWT_KEYS_MAX)
    {
        *err = "too many keys";
        rc = NGX_DECLINED;
        goto done;
    }

    if (n == 0) {
        *err = "no keys";
        rc = NGX_DECLINED;
        goto done;
    }

    for (i = 0; i < n; i++) {
        k = ngx_array_push(keys);
        if (k == NULL) {
            rc = NGX_ERROR;
            goto done;
        }

        ngx_memzero(k, sizeof(ngx_http_gw_jwt_key_t));
        k->index = i + 1;

        rc = ngx_http_gw_jwt_parse_jwk(json_array_get(list, i), pool, k);

        if (rc != NGX_OK) {
            goto done;
        }
    }

done:

    json_decref(root);

    return rc;
}


/*
 * One JWK into *k.  A key that cannot be used for anything gets "skip"
 * (RFC 7517: unknown key types and algorithms are ignored, and so is a
 * broken key among good ones), a key unfit for signatures or decryption
 * "nosig" or "noenc".  NGX_ERROR only when memory runs out.
 */

static ngx_int_t
ngx_http_gw_jwt_parse_jwk(json_t *jwk, ngx_pool_t *pool,
    ngx_http_gw_jwt_key_t *k)
{
    size_t                    i, n;
    json_t                   *v, *op;
    EVP_PKEY                 *pkey;
    ngx_str_t                 kty, crv, x, y;
    ngx_uint_t                c, sig, enc, private;
    const char               *s;
    ngx_http_gw_jwt_curve_t  *curve;

    if (!json_is_object(jwk)) {
        k->skip = "not a JSON object";
        return NGX_OK;
    }

    v = json_object_get(jwk, "kid");

    if (v != NULL) {
        if (!json_is_string(v)
            || json_string_length(v) > NGX_HTTP_GW_JWT_KID_MAX)
        {
            k->skip = "invalid \"kid\"";
            return NGX_OK;
        }

        k->kid.len = json_string_length(v);
        k->kid.data = ngx_pnalloc(pool, k->kid.len + 1);
        if (k->kid.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(k->kid.data, json_string_value(v), k->kid.len + 1);
    }

    v = json_object_get(jwk, "kty");

    if (!json_is_string(v)) {
        k->skip = "no \"kty\"";
        return NGX_OK;
    }

    kty.data = (u_char *) json_string_value(v);
    kty.len = json_string_length(v);

    v = json_object_get(jwk, "use");

    if (v != NULL) {
        if (!json_is_string(v)) {
            k->skip = "invalid \"use\"";
            return NGX_OK;
        }

        s = json_string_value(v);

        if (ngx_strcmp(s, "sig") == 0) {
            k->noenc = "its \"use\" is \"sig\"";

        } else if (ngx_strcmp(s, "enc") == 0) {
            k->nosig = "its \"use\" is \"enc\"";

        } else {
            k->skip = "unknown \"use\"";
            return NGX_OK;
        }
    }

    v = json_object_get(jwk, "key_ops");

    if (v != NULL) {
        if (!json_is_array(v)) {
            k->skip = "invalid \"key_ops\"";
            return NGX_OK;
        }

        sig = 0;
        enc = 0;
        n = json_array_size(v);

        for (i = 0; i < n; i++) {
            op = json_array_get(v, i);

            if (!json_is_string(op)) {
                continue;
            }

            s = json_string_value(op);

            if (ngx_strcmp(s, "verify") == 0) {
                sig = 1;

            } else if (ngx_strcmp(s, "decrypt") == 0
                       || ngx_strcmp(s, "unwrapKey") == 0)
            {
                enc = 1;
            }
        }

        if (!sig && k->nosig == NULL) {
            k->nosig = "its \"key_ops\" lack \"verify\"";
        }

        if (!enc && k->noenc == NULL) {
            k->noenc = "its \"key_ops\" lack \"decrypt\" and \"unwrapKey\"";
        }
    }

    v = json_object_get(jwk, "alg");

    if (v != NULL) {
        if (!json_is_string(v)) {
            k->skip = "invalid \"alg\"";
            return NGX_OK;
        }

        k->alg = ngx_http_gw_jwt_find_alg((u_char *) json_string_value(v),
                                          json_string_length(v));
        if (k->alg == NULL) {
            k->skip = "unsupported \"alg\"";
            return NGX_OK;
        }

        if (ngx_http_gw_jwt_is_sig(k->alg)) {
            if (k->noenc == NULL) {
                k->noenc = "its \"alg\" is a signature algorithm";
            }

        } else if (k->nosig == NULL) {
            k->nosig = "its \"alg\" is an encryption algorithm";
        }
    }

    private = (json_object_get(jwk, "d") != NULL);

    if (kty.len == 3 && ngx_strncmp(kty.data, "oct", 3) == 0) {
        k->kty = NGX_HTTP_GW_JWT_OCT;

        if (ngx_http_gw_jwt_jwk_field(jwk, "k", pool, &k->secret) != NGX_OK
            || k->secret.len == 0)
        {
            k->skip = "invalid \"k\"";
            return NGX_OK;
        }

        /* RFC 7518, section 3.2: a key at least as long as the hash */

        if (k->secret.len < ngx_http_gw_jwt_key_min(k)) {
            k->short_secret = 1;
        }

    } else if (kty.len == 3 && ngx_strncmp(kty.data, "RSA", 3) == 0) {
        k->kty = NGX_HTTP_GW_JWT_RSA;

        pkey = ngx_http_gw_jwt_rsa_key(jwk, pool, private);

        if (pkey == NULL) {
            k->skip = "invalid RSA key";
            return NGX_OK;
        }

        if (ngx_http_gw_jwt_add_pkey(pool, pkey) != NGX_OK) {
            return NGX_ERROR;
        }

        k->pkey = pkey;

        /* RFC 7518, sections 3.3 and 3.5 */

        if (EVP_PKEY_get_bits(pkey) < 2048) {
            k->skip = "RSA key shorter than 2048 bits";
            return NGX_OK;
        }

        if (EVP_PKEY_get_bits(pkey) > 16384) {
            k->skip = "RSA key longer than 16384 bits";
            return NGX_OK;
        }

        if (private) {
            k->nosig = "a private key";

        } else if (k->noenc == NULL) {
            k->noenc = "a public key";
        }

    } else if ((kty.len == 2 && ngx_strncmp(kty.data, "EC", 2) == 0)
               || (kty.len == 3 && ngx_strncmp(kty.data, "OKP", 3) == 0))
    {
        k->kty = (kty.len == 2) ? NGX_HTTP_GW_JWT_EC : NGX_HTTP_GW_JWT_OKP;

        if (private) {
            k->skip = "a private key";
            return NGX_OK;
        }

        v = json_object_get(jwk, "crv");

        if (!json_is_string(v)) {
            k->skip = "no \"crv\"";
            return NGX_OK;
        }

        crv.data = (u_char *) json_string_value(v);
        crv.len = json_string_length(v);

        curve = NULL;

        for (c = 0; ngx_http_gw_jwt_curves[c].name.len; c++) {
            if (ngx_http_gw_jwt_curves[c].name.len == crv.len
                && ngx_strncmp(ngx_http_gw_jwt_curves[c].name.data,
                               crv.data, crv.len) == 0)
            {
                curve = &ngx_http_gw_jwt_curves[c];
                break;
            }
        }

        if (curve == NULL
            || (k->kty == NGX_HTTP_GW_JWT_EC) != (curve->group != NULL))
        {
            k->skip = "unsupported \"crv\"";
            return NGX_OK;
        }

        k->crv = c + 1;

        if (ngx_http_gw_jwt_jwk_field(jwk, "x", pool, &x) != NGX_OK
            || x.len != curve->size)
        {
            k->skip = "invalid \"x\"";
            return NGX_OK;
        }

        if (k->kty == NGX_HTTP_GW_JWT_EC) {
            if (ngx_http_gw_jwt_jwk_field(jwk, "y", pool, &y) != NGX_OK
                || y.len != curve->size)
            {
                k->skip = "invalid \"y\"";
                return NGX_OK;
            }

            pkey = ngx_http_gw_jwt_ec_key(curve, &x, &y);

        } else {
            pkey = EVP_PKEY_new_raw_public_key(
                       (k->crv == NGX_HTTP_GW_JWT_ED448) ? EVP_PKEY_ED448
                                                         : EVP_PKEY_ED25519,
                       NULL, x.data, x.len);
        }

        if (pkey == NULL) {
            ERR_clear_error();
            k->skip = "invalid public key point";
            return NGX_OK;
        }

        if (ngx_http_gw_jwt_add_pkey(pool, pkey) != NGX_OK) {
            return NGX_ERROR;
        }

        k->pkey = pkey;
        k->noenc = "not an RSA or oct key";

    } else {
        k->skip = "unsupported \"kty\"";
        return NGX_OK;
    }

    if (k->alg
        && (k->alg->kty != k->kty
            || (k->alg->crv && k->alg->crv != k->crv)
            || (k->kty == NGX_HTTP_GW_JWT_OKP
                && k->crv != NGX_HTTP_GW_JWT_ED25519
                && k->crv != NGX_HTTP_GW_JWT_ED448)))
    {
        k->skip = "\"alg\" does not fit the key";
        return NGX_OK;
    }

    if (k->alg && (k->alg->family == NGX_HTTP_GW_JWT_KW
                   || k->alg->family == NGX_HTTP_GW_JWT_GCMKW)
        && k->secret.len != k->alg->size)
    {
        k->skip = "oct key size does not fit its \"alg\"";
        return NGX_OK;
    }

    if (k->nosig && k->noenc) {
        k->skip = k->nosig;
    }

    return NGX_OK;
}


/* the shortest oct key for signatures (RFC 7518, 3.2) */

size_t
ngx_http_gw_jwt_key_min(ngx_http_gw_jwt_key_t *key)
{
    if (key->alg && key->alg->family == NGX_HTTP_GW_JWT_HMAC) {
        return key->alg->size;
    }

    return 32;
}


const char *
ngx_http_gw_jwt_key_type(ngx_http_gw_jwt_key_t *key)
{
    static const char  *types[] = { "unknown", "oct", "RSA", "EC", "OKP" };

    return types[key->kty];
}


/*
 * Whether a key serves tokens of "type": 1, or 0 with *why.  Nested
 * tokens use both kinds of keys.
 */

ngx_uint_t
ngx_http_gw_jwt_key_usable(ngx_http_gw_jwt_key_t *key, ngx_uint_t type,
    ngx_uint_t strict, const char **why)
{
    ngx_uint_t   sig, enc;
    const char  *nosig;

    if (key->skip) {
        *why = key->skip;
        return 0;
    }

    nosig = key->nosig;

    if (nosig == NULL && strict && key->short_secret) {
        nosig = "oct key shorter than the hash of its alg (RFC 7518, 3.2)";
    }

    sig = (nosig == NULL);
    enc = (key->noenc == NULL);

    switch (type) {

    case NGX_HTTP_GW_JWT_SIGNED:
        *why = nosig;
        return sig;

    case NGX_HTTP_GW_JWT_ENCRYPTED:
        *why = key->noenc;
        return enc;

    default: /* nested */
        *why = nosig ? nosig : key->noenc;
        return sig || enc;
    }
}


static ngx_int_t
ngx_http_gw_jwt_parse_pem(u_char *data, size_t len, ngx_pool_t *pool,
    ngx_array_t *keys, const char **err)
{
    BIO                    *bio;
    u_char                 *p, *last, *begin, *end, *label;
    size_t                  llen;
    EVP_PKEY               *pkey;
    ngx_int_t               rc;
    ngx_uint_t              private, index;
    ngx_http_gw_jwt_key_t  *k;

    p = data;
    last = data + len;
    index = 0;

    for ( ;; ) {

        begin = ngx_http_gw_jwt_find(p, last, "-----BEGIN ");
        if (begin == NULL) {
            break;
        }

        label = begin + sizeof("-----BEGIN ") - 1;

        end = ngx_http_gw_jwt_find(label, last, "-----");
        if (end == NULL) {
            *err = "invalid PEM";
            return NGX_DECLINED;
        }

        llen = end - label;

        end = ngx_http_gw_jwt_find(end, last, "-----END ");
        if (end == NULL) {
            *err = "invalid PEM";
            return NGX_DECLINED;
        }

        end = ngx_http_gw_jwt_find(end + 9, last, "-----");
        if (end == NULL) {
            *err = "invalid PEM";
            return NGX_DECLINED;
        }

        end += 5;
        p = end;

        if (keys->nelts >= NGX_HTTP_GW_JWT_KEYS_MAX) {
            *err = "too many keys";
            return NGX_DECLINED;
        }

        k = ngx_array_push(keys);
        if (k == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(k, sizeof(ngx_http_gw_jwt_key_t));
        k->index = ++index;

        /* "RSA PUBLIC KEY": CryptX writes SubjectPublicKeyInfo so */

        if (llen >= sizeof("PUBLIC KEY") - 1
            && ngx_strncmp(label + llen - (sizeof("PUBLIC KEY") - 1),
                           "PUBLIC KEY", sizeof("PUBLIC KEY") - 1) == 0)
        {
            private = 0;

        } else if (llen >= sizeof("PRIVATE KEY") - 1
                   && ngx_strncmp(label + llen - (sizeof("PRIVATE KEY") - 1),
                                  "PRIVATE KEY", sizeof("PRIVATE KEY") - 1)
                      == 0
                   && ngx_http_gw_jwt_find(label, label + llen, "ENCRYPTED")
                      == NULL)
        {
            private = 1;

        } else {
            k->skip = "not a PEM public or unencrypted private key";
            continue;
        }

        bio = BIO_new_mem_buf(begin, (int) (end - begin));
        if (bio == NULL) {
            ERR_clear_error();
            return NGX_ERROR;
        }

        if (private) {
            pkey = PEM_read_bio_PrivateKey(bio, NULL,
                                           ngx_http_gw_jwt_no_password,
                                           NULL);
        } else {
            pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        }

        BIO_free(bio);

        if (pkey == NULL) {
            ERR_clear_error();
            *err = private ? "invalid PEM private key"
                           : "invalid PEM public key";
            return NGX_DECLINED;
        }

        if (ngx_http_gw_jwt_add_pkey(pool, pkey) != NGX_OK) {
            return NGX_ERROR;
        }

        rc = ngx_http_gw_jwt_pem_key(pool, pkey, private, k);

        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (index == 0) {
        *err = "no PEM key";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_jwt_pem_key(ngx_pool_t *pool, EVP_PKEY *pkey, ngx_uint_t private,
    ngx_http_gw_jwt_key_t *k)
{
    char        group[32];
    size_t      glen;
    ngx_uint_t  c;

    k->pkey = pkey;

    switch (EVP_PKEY_get_base_id(pkey)) {

    case EVP_PKEY_RSA:
        k->kty = NGX_HTTP_GW_JWT_RSA;

        if (EVP_PKEY_get_bits(pkey) < 2048) {
            k->skip = "RSA key shorter than 2048 bits";

        } else if (EVP_PKEY_get_bits(pkey) > 16384) {
            k->skip = "RSA key longer than 16384 bits";

        } else if (private) {
            k->nosig = "a private key";

        } else {
            k->noenc = "a public key";
        }

        return NGX_OK;

    case EVP_PKEY_EC:
        k->kty = NGX_HTTP_GW_JWT_EC;

        if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
                                           group, sizeof(group), &glen)
            != 1)
        {
            ERR_clear_error();
            glen = 0;
        }

        for (c = 0; ngx_http_gw_jwt_curves[c].group; c++) {
            if (glen == ngx_strlen(ngx_http_gw_jwt_curves[c].group)
                && ngx_strncmp(group, ngx_http_gw_jwt_curves[c].group, glen)
                   == 0)
            {
                k->crv = c + 1;
                break;
            }
        }

        if (k->crv == 0) {
            k->skip = "unsupported EC curve";
        }

        break;

    case EVP_PKEY_ED25519:
        k->kty = NGX_HTTP_GW_JWT_OKP;
        k->crv = NGX_HTTP_GW_JWT_ED25519;
        break;

    case EVP_PKEY_ED448:
        k->kty = NGX_HTTP_GW_JWT_OKP;
        k->crv = NGX_HTTP_GW_JWT_ED448;
        break;

    default:
        k->skip = "unsupported key type";
        return NGX_OK;
    }

    if (private && k->skip == NULL) {
        k->skip = "a private key";
    }

    k->noenc = "not an RSA or oct key";

    return NGX_OK;
}


static u_char *
ngx_http_gw_jwt_find(u_char *p, u_char *last, char *s)
{
    size_t  n;

    n = ngx_strlen(s);

    for ( /* void */ ; p + n <= last; p++) {
        if (ngx_memcmp(p, s, n) == 0) {
            return p;
        }
    }

    return NULL;
}


static int
ngx_http_gw_jwt_no_password(char *buf, int size, int rwflag, void *u)
{
    /* encrypted private keys are not supported: never prompt */
    return -1;
}


static ngx_int_t
ngx_http_gw_jwt_jwk_field(json_t *jwk, const char *name, ngx_pool_t *pool,
    ngx_str_t *value)
{
    size_t   len;
    json_t  *v;

    v = json_object_get(jwk, name);

    if (!json_is_string(v)) {
        return NGX_DECLINED;
    }

    len = json_string_length(v);

    if (len > NGX_HTTP_GW_JWT_FIELD_MAX) {
        return NGX_DECLINED;
    }

    value->data = ngx_pnalloc(pool, len + 1);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_gw_jwt_b64(value->data, &value->len,
                               (u_char *) json_string_value(v), len);
}


/* an RSA JWK: n and e, and for a private key d (and p, q, dp, dq, qi) */

static EVP_PKEY *
ngx_http_gw_jwt_rsa_key(json_t *jwk, ngx_pool_t *pool, ngx_uint_t private)
{
    BIGNUM          *bn[8];
    EVP_PKEY        *pkey;
    ngx_str_t        v;
    ngx_uint_t       i, n;
    OSSL_PARAM      *params;
    EVP_PKEY_CTX    *ctx;
    OSSL_PARAM_BLD  *bld;

    static const char  *fields[] = { "n", "e", "d", "p", "q", "dp", "dq",
                                     "qi" };
    static const char  *names[] = {
        OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D,
        OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2,
        OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2,
        OSSL_PKEY_PARAM_RSA_COEFFICIENT1
    };

    pkey = NULL;
    params = NULL;
    ctx = NULL;

    ngx_memzero(bn, sizeof(bn));

    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL) {
        goto done;
    }

    /* all of the CRT parameters, or none of them */

    n = 2;

    if (private) {
        n = (json_object_get(jwk, "p") != NULL) ? 8 : 3;
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_gw_jwt_jwk_field(jwk, fields[i], pool, &v) != NGX_OK
            || v.len == 0 || (i == 1 && v.len > 8))
        {
            goto done;
        }

        bn[i] = BN_bin2bn(v.data, (int) v.len, NULL);

        if (bn[i] == NULL
            || OSSL_PARAM_BLD_push_BN(bld, names[i], bn[i]) != 1)
        {
            goto done;
        }
    }

    params = OSSL_PARAM_BLD_to_param(bld);
    if (params == NULL) {
        goto done;
    }

    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);

    if (ctx == NULL
        || EVP_PKEY_fromdata_init(ctx) != 1
        || EVP_PKEY_fromdata(ctx, &pkey,
                             private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                             params)
           != 1)
    {
        pkey = NULL;
    }

done:

    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);

    for (i = 0; i < 8; i++) {
        BN_clear_free(bn[i]);
    }

    if (pkey == NULL) {
        ERR_clear_error();
    }

    return pkey;
}


static EVP_PKEY *
ngx_http_gw_jwt_ec_key(ngx_http_gw_jwt_curve_t *curve, ngx_str_t *x,
    ngx_str_t *y)
{
    u_char         point[1 + 2 * 66];
    size_t         len;
    EVP_PKEY      *pkey;
    OSSL_PARAM     params[3];
    EVP_PKEY_CTX  *ctx, *cctx;

    point[0] = 0x04;
    ngx_memcpy(point + 1, x->data, x->len);
    ngx_memcpy(point + 1 + x->len, y->data, y->len);
    len = 1 + x->len + y->len;

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                 (char *) curve->group, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                                  point, len);
    params[2] = OSSL_PARAM_construct_end();

    pkey = NULL;

    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);

    if (ctx == NULL
        || EVP_PKEY_fromdata_init(ctx) != 1
        || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
    {
        EVP_PKEY_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }

    EVP_PKEY_CTX_free(ctx);

    /* the point must be on the curve */

    cctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);

    if (cctx == NULL || EVP_PKEY_public_check(cctx) != 1) {
        EVP_PKEY_CTX_free(cctx);
        EVP_PKEY_free(pkey);
        ERR_clear_error();
        return NULL;
    }

    EVP_PKEY_CTX_free(cctx);

    return pkey;
}


/* takes pkey over: freed with the pool, or here on errors */

static ngx_int_t
ngx_http_gw_jwt_add_pkey(ngx_pool_t *pool, EVP_PKEY *pkey)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        EVP_PKEY_free(pkey);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_gw_jwt_pkey_cleanup;
    cln->data = pkey;

    return NGX_OK;
}


static void
ngx_http_gw_jwt_pkey_cleanup(void *data)
{
    EVP_PKEY_free(data);
}


static ngx_http_gw_jwt_alg_t *
ngx_http_gw_jwt_find_alg(u_char *name, size_t len)
{
    ngx_http_gw_jwt_alg_t  *alg;

    for (alg = ngx_http_gw_jwt_algs; alg->name.len; alg++) {
        if (alg->name.len == len
            && ngx_strncmp(alg->name.data, name, len) == 0)
        {
            return alg;
        }
    }

    return NULL;
}


static ngx_http_gw_jwt_enc_t *
ngx_http_gw_jwt_find_enc(u_char *name, size_t len)
{
    ngx_http_gw_jwt_enc_t  *enc;

    for (enc = ngx_http_gw_jwt_encs; enc->name.len; enc++) {
        if (enc->name.len == len
            && ngx_strncmp(enc->name.data, name, len) == 0)
        {
            return enc;
        }
    }

    return NULL;
}


/*
 * A JSON value as a variable: strings as they are, numbers in JSON
 * notation, true as "true", false and null as "" (so that they fail
 * gw_auth_jwt_require), arrays as their elements joined with commas,
 * objects as compact JSON.  Control characters become spaces.
 */

ngx_int_t
ngx_http_gw_jwt_value(ngx_pool_t *pool, json_t *j, ngx_str_t *value,
    ngx_uint_t top)
{
    char       *dump;
    size_t      i, n, len;
    u_char     *p;
    ngx_int_t   rc;
    ngx_str_t  *parts;

    switch (json_typeof(j)) {

    case JSON_STRING:
        return ngx_http_gw_jwt_sanitize(pool, (u_char *) json_string_value(j),
                                        json_string_length(j), value);

    case JSON_INTEGER:
        p = ngx_pnalloc(pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        value->data = p;
        value->len = ngx_sprintf(p, "%L", (int64_t) json_integer_value(j))
                     - p;
        return NGX_OK;

    case JSON_TRUE:
        ngx_str_set(value, "true");
        return NGX_OK;

    case JSON_FALSE:
        if (top) {
            ngx_str_null(value);

        } else {
            ngx_str_set(value, "false");
        }

        return NGX_OK;

    case JSON_NULL:
        ngx_str_null(value);
        return NGX_OK;

    case JSON_ARRAY:
        if (!top) {
            break;
        }

        n = json_array_size(j);

        if (n == 0) {
            ngx_str_null(value);
            return NGX_OK;
        }

        parts = ngx_palloc(pool, n * sizeof(ngx_str_t));
        if (parts == NULL) {
            return NGX_ERROR;
        }

        len = n - 1;

        for (i = 0; i < n; i++) {
            if (ngx_http_gw_jwt_value(pool, json_array_get(j, i), &parts[i],
                                      0)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            len += parts[i].len;
        }

        p = ngx_pnalloc(pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        value->data = p;
        value->len = len;

        for (i = 0; i < n; i++) {
            if (i) {
                *p++ = ',';
            }

            p = ngx_cpymem(p, parts[i].data, parts[i].len);
        }

        return NGX_OK;

    default:
        break;
    }

    /* reals, objects, nested arrays */

    dump = json_dumps(j, JSON_COMPACT|JSON_ENCODE_ANY);
    if (dump == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_gw_jwt_sanitize(pool, (u_char *) dump, ngx_strlen(dump),
                                  value);

    if (rc == NGX_OK && value->data == (u_char *) dump) {
        p = ngx_pnalloc(pool, value->len);

        if (p == NULL) {
            rc = NGX_ERROR;

        } else {
            ngx_memcpy(p, dump, value->len);
            value->data = p;
        }
    }

    free(dump);

    return rc;
}


/* the data as is, or a copy where control characters are spaces */

ngx_int_t
ngx_http_gw_jwt_sanitize(ngx_pool_t *pool, u_char *data, size_t len,
    ngx_str_t *value)
{
    size_t   i;
    u_char  *p;

    for (i = 0; i < len; i++) {
        if (data[i] < 0x20 || data[i] == 0x7f) {
            break;
        }
    }

    if (i == len) {
        value->data = data;
        value->len = len;
        return NGX_OK;
    }

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < len; i++) {
        p[i] = (data[i] < 0x20 || data[i] == 0x7f) ? ' ' : data[i];
    }

    value->data = p;
    value->len = len;

    return NGX_OK;
}
