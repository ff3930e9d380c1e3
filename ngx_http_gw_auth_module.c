
/*
 * Copyright (C) nginx-gw authors
 *
 * JWT (JWS compact serialization) authentication in the access phase,
 * after NGINX Plus auth_jwt.  Every signature is checked with OpenSSL 3
 * EVP against keys parsed once (key files at configuration time, key
 * requests once per fetch); verified tokens are cached per worker.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>


#define NGX_HTTP_GW_AUTH_TOKEN_MAX      8192
#define NGX_HTTP_GW_AUTH_KEYS_SIZE      (256 * 1024)
#define NGX_HTTP_GW_AUTH_KEYS_MAX       64
#define NGX_HTTP_GW_AUTH_KID_MAX        256
#define NGX_HTTP_GW_AUTH_FIELD_MAX      4096
#define NGX_HTTP_GW_AUTH_SOURCES_MAX    8

/* verified-token cache, per worker and key set */
#define NGX_HTTP_GW_AUTH_CACHE_MAX      1024
#define NGX_HTTP_GW_AUTH_CACHE_SIZE     (4 * 1024 * 1024)

/* at most one refetch of a key request per second for an unknown kid */
#define NGX_HTTP_GW_AUTH_REFETCH        1000
/* a key request older than this no longer counts as in flight */
#define NGX_HTTP_GW_AUTH_FETCH_TIMEOUT  60000


#define NGX_HTTP_GW_AUTH_OCT            1
#define NGX_HTTP_GW_AUTH_RSA            2
#define NGX_HTTP_GW_AUTH_EC             3
#define NGX_HTTP_GW_AUTH_OKP            4

#define NGX_HTTP_GW_AUTH_HMAC           1
#define NGX_HTTP_GW_AUTH_PKCS1          2
#define NGX_HTTP_GW_AUTH_PSS            3
#define NGX_HTTP_GW_AUTH_ECDSA          4
#define NGX_HTTP_GW_AUTH_EDDSA          5

#define NGX_HTTP_GW_AUTH_NONE           0
#define NGX_HTTP_GW_AUTH_OK             1
#define NGX_HTTP_GW_AUTH_MISSING        2
#define NGX_HTTP_GW_AUTH_INVALID        3
#define NGX_HTTP_GW_AUTH_EXPIRED        4
#define NGX_HTTP_GW_AUTH_PREMATURE      5
#define NGX_HTTP_GW_AUTH_DENIED         6
#define NGX_HTTP_GW_AUTH_FORBIDDEN      7
#define NGX_HTTP_GW_AUTH_ERROR          8


typedef struct {
    ngx_str_t                      name;     /* JWK "crv" */
    const char                    *group;    /* OpenSSL group name */
    size_t                         size;     /* coordinate size */
} ngx_http_gw_auth_curve_t;


typedef struct {
    ngx_str_t                      name;
    ngx_uint_t                     family;
    ngx_uint_t                     kty;
    const EVP_MD                *(*md)(void);
    size_t                         size;     /* HMAC key, ECDSA coordinate */
    ngx_uint_t                     crv;      /* index + 1 in curves */
} ngx_http_gw_auth_alg_t;


typedef struct {
    ngx_str_t                      kid;
    ngx_uint_t                     kty;
    ngx_uint_t                     crv;
    ngx_http_gw_auth_alg_t        *alg;      /* the JWK's "alg", if any */
    EVP_PKEY                      *pkey;
    ngx_str_t                      secret;
} ngx_http_gw_auth_key_t;


/* a key request: configuration (uri) plus per-worker state */
typedef struct {
    ngx_str_t                      uri;
    ngx_pool_t                    *pool;     /* holds keys */
    ngx_array_t                   *keys;
    ngx_msec_t                     loaded;
    ngx_msec_t                     attempt;
    u_char                         digest[32];
    unsigned                       fetching:1;
    unsigned                       failed:1;
} ngx_http_gw_auth_source_t;


/*
 * The keys of one configuration level (key files parsed at configuration
 * time, key requests) and the per-worker cache of tokens verified with
 * them.  Locations that inherit the key directives share the keyring.
 */
typedef struct {
    ngx_array_t                   *keys;
    ngx_array_t                   *sources;
    ngx_uint_t                     generation;
    ngx_rbtree_t                   rbtree;
    ngx_rbtree_node_t              sentinel;
    ngx_queue_t                    queue;
    ngx_uint_t                     count;
    size_t                         size;
} ngx_http_gw_auth_keyring_t;


/* a verified token; sn.str is the token itself */
typedef struct {
    ngx_str_node_t                 sn;
    ngx_queue_t                    queue;
    ngx_uint_t                     refs;
    ngx_uint_t                     generation;
    time_t                         expire;
    size_t                         size;
    json_t                        *header;
    json_t                        *claims;
    ngx_str_t                      payload;
    double                         exp;
    double                         nbf;
    unsigned                       has_exp:1;
    unsigned                       has_nbf:1;
    unsigned                       cached:1;
} ngx_http_gw_auth_entry_t;


/* a parsed, not yet verified token */
typedef struct {
    ngx_str_t                      input;    /* JWS signing input */
    ngx_str_t                      signature;
    ngx_str_t                      payload;
    ngx_str_t                      kid;
    ngx_http_gw_auth_alg_t        *alg;
    json_t                        *header;
    json_t                        *claims;
    double                         exp;
    double                         nbf;
    size_t                         decoded;
    const char                    *error;
    unsigned                       has_exp:1;
    unsigned                       has_nbf:1;
} ngx_http_gw_auth_token_t;


typedef struct {
    ngx_array_t                   *values;   /* ngx_http_complex_value_t */
    ngx_uint_t                     code;
} ngx_http_gw_auth_require_t;


typedef struct {
    ngx_array_t                   *path;     /* ngx_str_t */
    ngx_uint_t                     header;
} ngx_http_gw_auth_path_t;


typedef struct {
    ngx_http_complex_value_t      *realm;
    ngx_http_complex_value_t      *token;
    ngx_http_gw_auth_keyring_t    *keyring;
    ngx_msec_t                     key_cache;
    time_t                         leeway;
    ngx_array_t                   *require;
} ngx_http_gw_auth_loc_conf_t;


typedef struct {
    ngx_http_request_t            *request;
    ngx_http_request_t            *subrequest;
    ngx_http_gw_auth_entry_t      *entry;
    ngx_buf_t                     *fetch_body;
    ngx_uint_t                     status;
    ngx_uint_t                     source;
    ngx_uint_t                     fetched;  /* sources fetched, bits */
    ngx_uint_t                     fetch_status;
    ngx_int_t                      fetch_rc;
    unsigned                       fetching:1;
    unsigned                       fetch_done:1;
    unsigned                       fetch_error:1;
} ngx_http_gw_auth_ctx_t;


static ngx_int_t ngx_http_gw_auth_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_gw_auth_verify_token(ngx_http_request_t *r,
    ngx_http_gw_auth_ctx_t *ctx, ngx_http_gw_auth_loc_conf_t *alcf,
    ngx_str_t *token);
static ngx_int_t ngx_http_gw_auth_check(ngx_http_request_t *r,
    ngx_http_gw_auth_ctx_t *ctx, ngx_http_gw_auth_loc_conf_t *alcf);
static ngx_int_t ngx_http_gw_auth_reject(ngx_http_request_t *r,
    ngx_http_gw_auth_ctx_t *ctx, ngx_http_gw_auth_loc_conf_t *alcf,
    ngx_uint_t status);
static ngx_int_t ngx_http_gw_auth_send(ngx_http_request_t *r,
    ngx_uint_t code, ngx_uint_t status);
static ngx_int_t ngx_http_gw_auth_get_token(ngx_http_request_t *r,
    ngx_http_gw_auth_loc_conf_t *alcf, ngx_str_t *token);
static ngx_http_gw_auth_ctx_t *ngx_http_gw_auth_get_ctx(
    ngx_http_request_t *r);
static void ngx_http_gw_auth_cleanup(void *data);
static void ngx_http_gw_auth_log_token(ngx_http_request_t *r,
    const char *what, ngx_str_t *token, ngx_http_gw_auth_token_t *t);

static ngx_int_t ngx_http_gw_auth_need_keys(ngx_http_request_t *r,
    ngx_http_gw_auth_ctx_t *ctx, ngx_http_gw_auth_loc_conf_t *alcf);
static ngx_int_t ngx_http_gw_auth_refetch(ngx_http_request_t *r,
    ngx_http_gw_auth_ctx_t *ctx, ngx_http_gw_auth_loc_conf_t *alcf);
static ngx_int_t ngx_http_gw_auth_fetch(ngx_http_request_t *r,
    ngx_http_gw_auth_ctx_t *ctx, ngx_http_gw_auth_source_t *src,
    ngx_uint_t i);
static ngx_int_t ngx_http_gw_auth_fetch_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc);
static void ngx_http_gw_auth_fetched(ngx_http_request_t *r,
    ngx_http_gw_auth_ctx_t *ctx, ngx_http_gw_auth_loc_conf_t *alcf);
static ngx_int_t ngx_http_gw_auth_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);

static ngx_http_gw_auth_entry_t *ngx_http_gw_auth_cache_lookup(
    ngx_http_gw_auth_keyring_t *kr, ngx_str_t *token, uint32_t hash);
static ngx_http_gw_auth_entry_t *ngx_http_gw_auth_cache_insert(
    ngx_http_gw_auth_keyring_t *kr, ngx_str_t *token, uint32_t hash,
    ngx_http_gw_auth_token_t *t, ngx_log_t *log);
static void ngx_http_gw_auth_cache_remove(ngx_http_gw_auth_keyring_t *kr,
    ngx_http_gw_auth_entry_t *e);
static void ngx_http_gw_auth_entry_release(ngx_http_gw_auth_entry_t *e);

static ngx_int_t ngx_http_gw_auth_decode(u_char *dst, size_t *dlen,
    u_char *src, size_t len);
static ngx_int_t ngx_http_gw_auth_parse_token(ngx_str_t *token,
    ngx_pool_t *pool, ngx_http_gw_auth_token_t *t);
static void ngx_http_gw_auth_free_token(ngx_http_gw_auth_token_t *t);
static ngx_int_t ngx_http_gw_auth_verify(ngx_http_gw_auth_token_t *t,
    ngx_array_t **sets, ngx_uint_t nsets, ngx_uint_t *unknown);
static ngx_uint_t ngx_http_gw_auth_key_fits(ngx_http_gw_auth_alg_t *alg,
    ngx_http_gw_auth_key_t *key);
static ngx_int_t ngx_http_gw_auth_verify_key(ngx_http_gw_auth_alg_t *alg,
    ngx_http_gw_auth_key_t *key, ngx_str_t *input, ngx_str_t *sig);
static size_t ngx_http_gw_auth_ecdsa_der(u_char *der, u_char *sig,
    size_t n);

static ngx_int_t ngx_http_gw_auth_parse_keys(u_char *data, size_t len,
    ngx_pool_t *pool, ngx_array_t *keys, const char **err);
static ngx_int_t ngx_http_gw_auth_parse_jwk(json_t *jwk, ngx_pool_t *pool,
    ngx_array_t *keys, const char **err);
static ngx_int_t ngx_http_gw_auth_parse_pem(u_char *data, size_t len,
    ngx_pool_t *pool, ngx_array_t *keys, const char **err);
static ngx_int_t ngx_http_gw_auth_jwk_field(json_t *jwk, const char *name,
    ngx_pool_t *pool, ngx_str_t *value);
static EVP_PKEY *ngx_http_gw_auth_rsa_key(ngx_str_t *n, ngx_str_t *e);
static EVP_PKEY *ngx_http_gw_auth_ec_key(ngx_http_gw_auth_curve_t *curve,
    ngx_str_t *x, ngx_str_t *y);
static ngx_int_t ngx_http_gw_auth_add_pkey(ngx_pool_t *pool,
    ngx_http_gw_auth_key_t *key, EVP_PKEY *pkey, const char **err);
static void ngx_http_gw_auth_pkey_cleanup(void *data);
static ngx_http_gw_auth_alg_t *ngx_http_gw_auth_find_alg(u_char *name,
    size_t len);

static ngx_int_t ngx_http_gw_auth_json_value(ngx_pool_t *pool, json_t *j,
    ngx_str_t *value, ngx_uint_t top);
static ngx_int_t ngx_http_gw_auth_sanitize(ngx_pool_t *pool,
    u_char *data, size_t len, ngx_str_t *value);
static ngx_int_t ngx_http_gw_auth_json_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, json_t *j);
static ngx_int_t ngx_http_gw_auth_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_gw_auth_header_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_gw_auth_path_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_gw_auth_payload_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_gw_auth_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static void *ngx_http_gw_auth_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_gw_auth_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_http_gw_auth_keyring_t *ngx_http_gw_auth_keyring(ngx_conf_t *cf,
    ngx_http_gw_auth_loc_conf_t *alcf);
static void ngx_http_gw_auth_keyring_cleanup(void *data);
static char *ngx_http_gw_auth_jwt(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gw_auth_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gw_auth_key_request(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gw_auth_require(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gw_auth_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_gw_auth_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_gw_auth_init(ngx_conf_t *cf);


static ngx_http_gw_auth_curve_t  ngx_http_gw_auth_curves[] = {
    { ngx_string("P-256"), "prime256v1", 32 },
    { ngx_string("P-384"), "secp384r1", 48 },
    { ngx_string("P-521"), "secp521r1", 66 },
    { ngx_string("Ed25519"), NULL, 32 },
    { ngx_null_string, NULL, 0 }
};


static ngx_http_gw_auth_alg_t  ngx_http_gw_auth_algs[] = {
    { ngx_string("HS256"), NGX_HTTP_GW_AUTH_HMAC, NGX_HTTP_GW_AUTH_OCT,
      EVP_sha256, 32, 0 },
    { ngx_string("HS384"), NGX_HTTP_GW_AUTH_HMAC, NGX_HTTP_GW_AUTH_OCT,
      EVP_sha384, 48, 0 },
    { ngx_string("HS512"), NGX_HTTP_GW_AUTH_HMAC, NGX_HTTP_GW_AUTH_OCT,
      EVP_sha512, 64, 0 },
    { ngx_string("RS256"), NGX_HTTP_GW_AUTH_PKCS1, NGX_HTTP_GW_AUTH_RSA,
      EVP_sha256, 0, 0 },
    { ngx_string("RS384"), NGX_HTTP_GW_AUTH_PKCS1, NGX_HTTP_GW_AUTH_RSA,
      EVP_sha384, 0, 0 },
    { ngx_string("RS512"), NGX_HTTP_GW_AUTH_PKCS1, NGX_HTTP_GW_AUTH_RSA,
      EVP_sha512, 0, 0 },
    { ngx_string("PS256"), NGX_HTTP_GW_AUTH_PSS, NGX_HTTP_GW_AUTH_RSA,
      EVP_sha256, 0, 0 },
    { ngx_string("PS384"), NGX_HTTP_GW_AUTH_PSS, NGX_HTTP_GW_AUTH_RSA,
      EVP_sha384, 0, 0 },
    { ngx_string("PS512"), NGX_HTTP_GW_AUTH_PSS, NGX_HTTP_GW_AUTH_RSA,
      EVP_sha512, 0, 0 },
    { ngx_string("ES256"), NGX_HTTP_GW_AUTH_ECDSA, NGX_HTTP_GW_AUTH_EC,
      EVP_sha256, 32, 1 },
    { ngx_string("ES384"), NGX_HTTP_GW_AUTH_ECDSA, NGX_HTTP_GW_AUTH_EC,
      EVP_sha384, 48, 2 },
    { ngx_string("ES512"), NGX_HTTP_GW_AUTH_ECDSA, NGX_HTTP_GW_AUTH_EC,
      EVP_sha512, 66, 3 },
    { ngx_string("EdDSA"), NGX_HTTP_GW_AUTH_EDDSA, NGX_HTTP_GW_AUTH_OKP,
      NULL, 64, 4 },
    { ngx_null_string, 0, 0, NULL, 0, 0 }
};


static ngx_str_t  ngx_http_gw_auth_words[] = {
    ngx_null_string,
    ngx_string("ok"),
    ngx_string("missing"),
    ngx_string("invalid"),
    ngx_string("expired"),
    ngx_string("premature"),
    ngx_string("denied"),
    ngx_string("forbidden"),
    ngx_string("error")
};


#define ngx_http_gw_auth_body(error, reason)                                 \
    ngx_string("{\"error\":\"" error "\",\"reason\":\"" reason "\"}")

static ngx_str_t  ngx_http_gw_auth_bodies[] = {
    ngx_null_string,
    ngx_null_string,
    ngx_http_gw_auth_body("Unauthorized", "missing"),
    ngx_http_gw_auth_body("Unauthorized", "invalid"),
    ngx_http_gw_auth_body("Unauthorized", "expired"),
    ngx_http_gw_auth_body("Unauthorized", "premature"),
    ngx_http_gw_auth_body("Unauthorized", "denied"),
    ngx_http_gw_auth_body("Forbidden", "forbidden"),
    ngx_http_gw_auth_body("Internal Server Error", "error")
};


static ngx_command_t  ngx_http_gw_auth_commands[] = {

    { ngx_string("gw_auth_jwt"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LMT_CONF
                        |NGX_CONF_TAKE12,
      ngx_http_gw_auth_jwt,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gw_auth_jwt_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LMT_CONF
                        |NGX_CONF_TAKE1,
      ngx_http_gw_auth_key_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gw_auth_jwt_key_request"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LMT_CONF
                        |NGX_CONF_TAKE1,
      ngx_http_gw_auth_key_request,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gw_auth_jwt_key_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_auth_loc_conf_t, key_cache),
      NULL },

    { ngx_string("gw_auth_jwt_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_auth_loc_conf_t, leeway),
      NULL },

    { ngx_string("gw_auth_jwt_require"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LMT_CONF
                        |NGX_CONF_1MORE,
      ngx_http_gw_auth_require,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gw_auth_jwt_claim_set"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_gw_auth_set,
      0,
      0,
      NULL },

    { ngx_string("gw_auth_jwt_header_set"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_gw_auth_set,
      0,
      1,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_gw_auth_module_ctx = {
    ngx_http_gw_auth_add_variables,        /* preconfiguration */
    ngx_http_gw_auth_init,                 /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_gw_auth_create_loc_conf,      /* create location configuration */
    ngx_http_gw_auth_merge_loc_conf        /* merge location configuration */
};


ngx_module_t  ngx_http_gw_auth_module = {
    NGX_MODULE_V1,
    &ngx_http_gw_auth_module_ctx,          /* module context */
    ngx_http_gw_auth_commands,             /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_output_body_filter_pt  ngx_http_next_body_filter;


static ngx_http_variable_t  ngx_http_gw_auth_vars[] = {

    { ngx_string("gw_jwt_claim_"), NULL,
      ngx_http_gw_auth_claim_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

    { ngx_string("gw_jwt_header_"), NULL,
      ngx_http_gw_auth_header_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

    { ngx_string("gw_jwt_payload"), NULL,
      ngx_http_gw_auth_payload_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gw_auth_status"), NULL,
      ngx_http_gw_auth_status_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_gw_auth_handler(ngx_http_request_t *r)
{
    ngx_str_t                     token;
    ngx_uint_t                    fetched;
    ngx_http_gw_auth_ctx_t       *ctx;
    ngx_pool_cleanup_t           *cln;
    ngx_http_gw_auth_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_gw_auth_module);

    if (alcf->realm == NULL) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_gw_auth_get_ctx(r);

    if (ctx == NULL) {
        cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_gw_auth_ctx_t));
        if (cln == NULL) {
            return NGX_ERROR;
        }

        ctx = cln->data;
        ngx_memzero(ctx, sizeof(ngx_http_gw_auth_ctx_t));

        ctx->request = r;

        cln->handler = ngx_http_gw_auth_cleanup;

        ngx_http_set_ctx(r, ctx, ngx_http_gw_auth_module);
    }

    fetched = 0;

    if (ctx->fetching) {
        if (!ctx->fetch_done) {
            return NGX_AGAIN;
        }

        ctx->fetching = 0;
        ngx_http_gw_auth_fetched(r, ctx, alcf);

        fetched = 1;
    }

    /* evaluated anew in every location, e.g. after an internal redirect */

    if (ctx->entry) {
        ngx_http_gw_auth_entry_release(ctx->entry);
        ctx->entry = NULL;
    }

    ctx->status = NGX_HTTP_GW_AUTH_NONE;

    if (!fetched) {
        ctx->fetched = 0;
    }

    switch (ngx_http_gw_auth_get_token(r, alcf, &token)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gw_auth: no token");

        return ngx_http_gw_auth_reject(r, ctx, alcf,
                                       NGX_HTTP_GW_AUTH_MISSING);

    default: /* NGX_ERROR */
        return NGX_ERROR;
    }

    return ngx_http_gw_auth_verify_token(r, ctx, alcf, &token);
}


static ngx_int_t
ngx_http_gw_auth_verify_token(ngx_http_request_t *r,
    ngx_http_gw_auth_ctx_t *ctx, ngx_http_gw_auth_loc_conf_t *alcf,
    ngx_str_t *token)
{
    uint32_t                     hash;
    ngx_int_t                    rc;
    ngx_uint_t                   i, n, unknown;
    ngx_array_t                 *sets[NGX_HTTP_GW_AUTH_SOURCES_MAX + 1];
    ngx_http_gw_auth_entry_t    *e;
    ngx_http_gw_auth_token_t     t;
    ngx_http_gw_auth_source_t   *src;
    ngx_http_gw_auth_keyring_t  *kr;

    if (token->len > NGX_HTTP_GW_AUTH_TOKEN_MAX) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gw_auth: token too long: %uz bytes", token->len);

        return ngx_http_gw_auth_reject(r, ctx, alcf,
                                       NGX_HTTP_GW_AUTH_INVALID);
    }

    kr = alcf->keyring;

    if (kr == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gw_auth: no gw_auth_jwt_key_file or "
                      "gw_auth_jwt_key_request configured");

        return ngx_http_gw_auth_reject(r, ctx, alcf, NGX_HTTP_GW_AUTH_ERROR);
    }

    rc = ngx_http_gw_auth_need_keys(r, ctx, alcf);

    if (rc == NGX_AGAIN || rc == NGX_ERROR) {
        return rc;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gw_auth: no keys available");

        return ngx_http_gw_auth_reject(r, ctx, alcf, NGX_HTTP_GW_AUTH_ERROR);
    }

    hash = ngx_murmur_hash2(token->data, token->len);

    e = ngx_http_gw_auth_cache_lookup(kr, token, hash);

    if (e) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gw_auth: token cache hit");

        ctx->entry = e;
        e->refs++;

        return ngx_http_gw_auth_check(r, ctx, alcf);
    }

    rc = ngx_http_gw_auth_parse_token(token, r->pool, &t);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_gw_auth_log_token(r, t.error, token, NULL);
        return ngx_http_gw_auth_reject(r, ctx, alcf,
                                       NGX_HTTP_GW_AUTH_INVALID);
    }

    n = 0;

    if (kr->keys) {
        sets[n++] = kr->keys;
    }

    if (kr->sources) {
        src = kr->sources->elts;

        for (i = 0; i < kr->sources->nelts; i++) {
            if (src[i].keys) {
                sets[n++] = src[i].keys;
            }
        }
    }

    rc = ngx_http_gw_auth_verify(&t, sets, n, &unknown);

    if (rc != NGX_OK) {

        if (unknown) {
            rc = ngx_http_gw_auth_refetch(r, ctx, alcf);

            if (rc != NGX_DECLINED) {
                ngx_http_gw_auth_free_token(&t);
                return rc;
            }
        }

        ngx_http_gw_auth_log_token(r, t.error, token, &t);
        ngx_http_gw_auth_free_token(&t);

        return ngx_http_gw_auth_reject(r, ctx, alcf,
                                       NGX_HTTP_GW_AUTH_INVALID);
    }

    e = ngx_http_gw_auth_cache_insert(kr, token, hash, &t,
                                      r->connection->log);
    if (e == NULL) {
        ngx_http_gw_auth_free_token(&t);
        return NGX_ERROR;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gw_auth: token verified");

    ctx->entry = e;
    e->refs++;

    return ngx_http_gw_auth_check(r, ctx, alcf);
}


static ngx_int_t
ngx_http_gw_auth_check(ngx_http_request_t *r, ngx_http_gw_auth_ctx_t *ctx,
    ngx_http_gw_auth_loc_conf_t *alcf)
{
    double                       now;
    ngx_str_t                    val;
    ngx_uint_t                   i, j;
    ngx_time_t                  *tp;
    ngx_http_gw_auth_entry_t    *e;
    ngx_http_complex_value_t    *cv;
    ngx_http_gw_auth_require_t  *rq;

    e = ctx->entry;

    tp = ngx_timeofday();
    now = (double) tp->sec + (double) tp->msec / 1000;

    if (e->has_exp && now >= e->exp + (double) alcf->leeway) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gw_auth: token expired");

        return ngx_http_gw_auth_reject(r, ctx, alcf,
                                       NGX_HTTP_GW_AUTH_EXPIRED);
    }

    if (e->has_nbf && now + (double) alcf->leeway < e->nbf) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gw_auth: token not yet valid");

        return ngx_http_gw_auth_reject(r, ctx, alcf,
                                       NGX_HTTP_GW_AUTH_PREMATURE);
    }

    if (alcf->require) {
        rq = alcf->require->elts;

        for (i = 0; i < alcf->require->nelts; i++) {
            cv = rq[i].values->elts;

            for (j = 0; j < rq[i].values->nelts; j++) {
                if (ngx_http_complex_value(r, &cv[j], &val) != NGX_OK) {
                    return NGX_ERROR;
                }

                if (val.len == 0 || (val.len == 1 && val.data[0] == '0')) {
                    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                                  "gw_auth: requirement \"%V\" not met",
                                  &cv[j].value);

                    return ngx_http_gw_auth_reject(r, ctx, alcf,
                                            rq[i].code == NGX_HTTP_FORBIDDEN
                                            ? NGX_HTTP_GW_AUTH_FORBIDDEN
                                            : NGX_HTTP_GW_AUTH_DENIED);
                }
            }
        }
    }

    ctx->status = NGX_HTTP_GW_AUTH_OK;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_auth_reject(ngx_http_request_t *r, ngx_http_gw_auth_ctx_t *ctx,
    ngx_http_gw_auth_loc_conf_t *alcf, ngx_uint_t status)
{
    size_t            len;
    u_char           *p, *last;
    ngx_str_t         realm;
    ngx_uint_t        code, i;
    ngx_table_elt_t  *h;

    /* claims are only ever exposed for accepted tokens */

    if (ctx->entry) {
        ngx_http_gw_auth_entry_release(ctx->entry);
        ctx->entry = NULL;
    }

    ctx->status = status;

    switch (status) {

    case NGX_HTTP_GW_AUTH_ERROR:
        return ngx_http_gw_auth_send(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     status);

    case NGX_HTTP_GW_AUTH_FORBIDDEN:
        code = NGX_HTTP_FORBIDDEN;
        break;

    default:
        code = NGX_HTTP_UNAUTHORIZED;
    }

    if (ngx_http_complex_value(r, alcf->realm, &realm) != NGX_OK) {
        return NGX_ERROR;
    }

    /* Bearer realm="...", error="insufficient_scope" */

    len = sizeof("Bearer realm=\"\", error=\"insufficient_scope\"") - 1
          + realm.len * 2;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    last = ngx_cpymem(p, "Bearer realm=\"", sizeof("Bearer realm=\"") - 1);

    for (i = 0; i < realm.len; i++) {
        if (realm.data[i] < 0x20 || realm.data[i] == 0x7f) {
            continue;
        }

        if (realm.data[i] == '"' || realm.data[i] == '\\') {
            *last++ = '\\';
        }

        *last++ = realm.data[i];
    }

    *last++ = '"';

    if (code == NGX_HTTP_FORBIDDEN) {
        last = ngx_cpymem(last, ", error=\"insufficient_scope\"",
                          sizeof(", error=\"insufficient_scope\"") - 1);

    } else if (status != NGX_HTTP_GW_AUTH_MISSING) {
        last = ngx_cpymem(last, ", error=\"invalid_token\"",
                          sizeof(", error=\"invalid_token\"") - 1);
    }

    h = r->headers_out.www_authenticate;

    if (h == NULL) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        ngx_str_set(&h->key, "WWW-Authenticate");
#if (nginx_version >= 1023000)
        h->next = NULL;
#endif
        r->headers_out.www_authenticate = h;
    }

    h->hash = 1;
    h->value.data = p;
    h->value.len = last - p;

    return ngx_http_gw_auth_send(r, code, status);
}


/*
 * With "satisfy all" and no error_page for the code, the JSON response
 * is sent from here and the request finalized (NGX_DONE); otherwise the
 * code is returned so that "satisfy any" and error_page work as with
 * auth_basic (nginx then sends its own page or the error_page).
 */

static ngx_int_t
ngx_http_gw_auth_send(ngx_http_request_t *r, ngx_uint_t code,
    ngx_uint_t status)
{
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_str_t                 *body;
    ngx_uint_t                 i;
    ngx_chain_t                out;
    ngx_http_err_page_t       *err_page;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->satisfy != NGX_HTTP_SATISFY_ALL) {
        return code;
    }

    if (clcf->error_pages && !r->error_page && r->uri_changes != 0) {
        err_page = clcf->error_pages->elts;

        for (i = 0; i < clcf->error_pages->nelts; i++) {
            if ((ngx_uint_t) err_page[i].status == code) {
                return code;
            }
        }
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    body = &ngx_http_gw_auth_bodies[status];

    r->headers_out.status = code;
    r->headers_out.content_length_n = body->len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return NGX_DONE;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    ngx_http_finalize_request(r, ngx_http_output_filter(r, &out));

    return NGX_DONE;
}


static ngx_int_t
ngx_http_gw_auth_get_token(ngx_http_request_t *r,
    ngx_http_gw_auth_loc_conf_t *alcf, ngx_str_t *token)
{
    u_char  *p, *last;

    if (alcf->token) {
        if (ngx_http_complex_value(r, alcf->token, token) != NGX_OK) {
            return NGX_ERROR;
        }

        return token->len ? NGX_OK : NGX_DECLINED;
    }

    if (r->headers_in.authorization == NULL) {
        return NGX_DECLINED;
    }

    p = r->headers_in.authorization->value.data;
    last = p + r->headers_in.authorization->value.len;

    if (last - p < (ssize_t) sizeof("Bearer ") - 1
        || ngx_strncasecmp(p, (u_char *) "Bearer", 6) != 0
        || (p[6] != ' ' && p[6] != '\t'))
    {
        return NGX_DECLINED;
    }

    p += 6;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    while (last > p && (last[-1] == ' ' || last[-1] == '\t')) {
        last--;
    }

    token->data = p;
    token->len = last - p;

    return token->len ? NGX_OK : NGX_DECLINED;
}


static ngx_http_gw_auth_ctx_t *
ngx_http_gw_auth_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t      *cln;
    ngx_http_gw_auth_ctx_t  *ctx;

    r = r->main;

    ctx = ngx_http_get_module_ctx(r, ngx_http_gw_auth_module);

    if (ctx == NULL && (r->internal || r->filter_finalize)) {

        /*
         * the module context is cleared on internal redirects
         * (error_page, try_files, rewrite ... last): find it again
         * through the request pool's cleanup list
         */

        for (cln = r->pool->cleanup; cln; cln = cln->next) {
            if (cln->handler == ngx_http_gw_auth_cleanup) {
                ctx = cln->data;

                if (ctx->request == r) {
                    ngx_http_set_ctx(r, ctx, ngx_http_gw_auth_module);
                    return ctx;
                }
            }
        }

        return NULL;
    }

    return ctx;
}


static void
ngx_http_gw_auth_cleanup(void *data)
{
    ngx_http_gw_auth_ctx_t  *ctx = data;

    if (ctx->entry) {
        ngx_http_gw_auth_entry_release(ctx->entry);
        ctx->entry = NULL;
    }
}


/* never the whole token: a short prefix, or the kid and alg */

static void
ngx_http_gw_auth_log_token(ngx_http_request_t *r, const char *what,
    ngx_str_t *token, ngx_http_gw_auth_token_t *t)
{
    size_t      i;
    ngx_str_t   kid, prefix;

    if (t && t->alg) {
        kid = t->kid;

        if (kid.len > 64) {
            kid.len = 64;
        }

        for (i = 0; i < kid.len; i++) {
            if (kid.data[i] < 0x20 || kid.data[i] >= 0x7f
                || kid.data[i] == '"')
            {
                ngx_str_set(&kid, "(unprintable)");
                break;
            }
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gw_auth: invalid token: %s, alg \"%V\", kid \"%V\"",
                      what, &t->alg->name, &kid);
        return;
    }

    prefix.data = token->data;
    prefix.len = ngx_min(token->len, 12);

    for (i = 0; i < prefix.len; i++) {
        if (prefix.data[i] < 0x20 || prefix.data[i] >= 0x7f
            || prefix.data[i] == '"')
        {
            prefix.len = i;
            break;
        }
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "gw_auth: invalid token: %s, token \"%V...\"",
                  what, &prefix);
}


static ngx_int_t
ngx_http_gw_auth_need_keys(ngx_http_request_t *r, ngx_http_gw_auth_ctx_t *ctx,
    ngx_http_gw_auth_loc_conf_t *alcf)
{
    ngx_uint_t                   i, usable, failed, busy;
    ngx_msec_t                   now;
    ngx_http_gw_auth_source_t   *src;
    ngx_http_gw_auth_keyring_t  *kr;

    kr = alcf->keyring;

    usable = (kr->keys && kr->keys->nelts);

    if (kr->sources == NULL) {
        return usable ? NGX_OK : NGX_DECLINED;
    }

    now = ngx_current_msec;
    src = kr->sources->elts;

    for (i = 0; i < kr->sources->nelts; i++) {

        if (!(ctx->fetched & ((ngx_uint_t) 1 << i))) {

            failed = src[i].failed
                     && now - src[i].attempt < NGX_HTTP_GW_AUTH_REFETCH;

            busy = src[i].fetching
                   && now - src[i].attempt < NGX_HTTP_GW_AUTH_FETCH_TIMEOUT;

            if (src[i].keys == NULL) {
                if (!failed) {
                    return ngx_http_gw_auth_fetch(r, ctx, &src[i], i);
                }

            } else if (now - src[i].loaded >= alcf->key_cache
                       && !failed && !busy)
            {
                return ngx_http_gw_auth_fetch(r, ctx, &src[i], i);
            }
        }

        if (src[i].keys) {
            usable = 1;
        }
    }

    return usable ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_http_gw_auth_refetch(ngx_http_request_t *r, ngx_http_gw_auth_ctx_t *ctx,
    ngx_http_gw_auth_loc_conf_t *alcf)
{
    ngx_uint_t                   i;
    ngx_msec_t                   now;
    ngx_http_gw_auth_source_t   *src;
    ngx_http_gw_auth_keyring_t  *kr;

    kr = alcf->keyring;

    if (kr->sources == NULL) {
        return NGX_DECLINED;
    }

    now = ngx_current_msec;
    src = kr->sources->elts;

    for (i = 0; i < kr->sources->nelts; i++) {

        if ((ctx->fetched & ((ngx_uint_t) 1 << i))
            || now - src[i].attempt < NGX_HTTP_GW_AUTH_REFETCH)
        {
            continue;
        }

        if (src[i].fetching
            && now - src[i].attempt < NGX_HTTP_GW_AUTH_FETCH_TIMEOUT)
        {
            continue;
        }

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gw_auth: unknown kid, refetching \"%V\"",
                       &src[i].uri);

        return ngx_http_gw_auth_fetch(r, ctx, &src[i], i);
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_gw_auth_fetch(ngx_http_request_t *r, ngx_http_gw_auth_ctx_t *ctx,
    ngx_http_gw_auth_source_t *src, ngx_uint_t i)
{
    ngx_http_request_t          *sr;
    ngx_http_post_subrequest_t  *ps;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "gw_auth: fetching keys from \"%V\"", &src->uri);

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_gw_auth_fetch_done;
    ps->data = ctx;

    if (ngx_http_subrequest(r, &src->uri, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_WAITED
                            |NGX_HTTP_SUBREQUEST_IN_MEMORY)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * a fake request body avoids attempts to read the client's body and
     * keeps a body file already read from being closed by the upstream
     */

    sr->request_body = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    if (sr->request_body == NULL) {
        return NGX_ERROR;
    }

    sr->header_only = 0;

    src->fetching = 1;
    src->attempt = ngx_current_msec;

    ctx->subrequest = sr;
    ctx->fetching = 1;
    ctx->fetch_done = 0;
    ctx->fetch_error = 0;
    ctx->fetch_body = NULL;
    ctx->source = i;
    ctx->fetched |= (ngx_uint_t) 1 << i;

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_gw_auth_fetch_done(ngx_http_request_t *r, void *data, ngx_int_t rc)
{
    ngx_http_gw_auth_ctx_t  *ctx = data;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gw_auth: keys request done s:%ui rc:%i",
                   r->headers_out.status, rc);

    ctx->fetch_done = 1;
    ctx->fetch_rc = rc;
    ctx->fetch_status = r->headers_out.status;

    if (ctx->fetch_body == NULL && r->out) {
        /* kept by the postpone filter: no body filter call reached us */
        ctx->fetch_body = r->out->buf;
    }

    return rc;
}


/*
 * The key request's body is collected here, up to the key set size
 * limit, rather than in the subrequest's in-memory buffer, so that
 * subrequest_output_buffer_size does not limit key sets and a too large
 * one is a clean 500.  The subrequest is still made "in memory", so its
 * output can never reach the client.
 */

static ngx_int_t
ngx_http_gw_auth_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    size_t                   len, size;
    ngx_buf_t               *b, *nb;
    ngx_chain_t             *cl;
    ngx_http_gw_auth_ctx_t  *ctx;

    if (r == r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    /* while a key request runs, the main request's context is in place */

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_gw_auth_module);

    if (ctx == NULL || !ctx->fetching || ctx->subrequest != r) {
        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (!ngx_buf_in_memory(b)) {
            if (ngx_buf_size(b)) {
                ctx->fetch_error = 1;
            }

            b->file_pos = b->file_last;
            continue;
        }

        len = b->last - b->pos;

        if (len == 0 || ctx->fetch_error) {
            b->pos = b->last;
            continue;
        }

        nb = ctx->fetch_body;

        if (nb == NULL || (size_t) (nb->end - nb->last) < len) {
            size = nb ? 2 * (nb->end - nb->start) : 4096;

            if (nb == NULL && r->headers_out.content_length_n > 0
                && r->headers_out.content_length_n
                   <= NGX_HTTP_GW_AUTH_KEYS_SIZE)
            {
                size = r->headers_out.content_length_n;
            }

            if (nb) {
                size = ngx_max(size, (size_t) (nb->last - nb->pos) + len);
            }

            size = ngx_max(size, len);

            if (size > NGX_HTTP_GW_AUTH_KEYS_SIZE) {
                ctx->fetch_error = 1;
                b->pos = b->last;
                continue;
            }

            nb = ngx_create_temp_buf(r->pool, size);
            if (nb == NULL) {
                return NGX_ERROR;
            }

            if (ctx->fetch_body) {
                nb->last = ngx_cpymem(nb->last, ctx->fetch_body->pos,
                                      ctx->fetch_body->last
                                      - ctx->fetch_body->pos);
            }

            ctx->fetch_body = nb;
        }

        nb->last = ngx_cpymem(nb->last, b->pos, len);
        b->pos = b->last;
    }

    return NGX_OK;
}


static void
ngx_http_gw_auth_fetched(ngx_http_request_t *r, ngx_http_gw_auth_ctx_t *ctx,
    ngx_http_gw_auth_loc_conf_t *alcf)
{
    u_char                       digest[32];
    size_t                       len;
    ngx_buf_t                   *b;
    ngx_pool_t                  *pool;
    const char                  *err;
    ngx_array_t                 *keys;
    ngx_http_gw_auth_source_t   *src;
    ngx_http_gw_auth_keyring_t  *kr;

    kr = alcf->keyring;

    if (kr == NULL || kr->sources == NULL
        || ctx->source >= kr->sources->nelts)
    {
        return;
    }

    src = kr->sources->elts;
    src = &src[ctx->source];

    src->fetching = 0;
    ctx->subrequest = NULL;

    if (ctx->fetch_error) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gw_auth: keys from \"%V\" too large, limit %uz bytes",
                      &src->uri, (size_t) NGX_HTTP_GW_AUTH_KEYS_SIZE);
        goto failed;
    }

    b = ctx->fetch_body;

    if (ctx->fetch_rc != NGX_OK || ctx->fetch_status != NGX_HTTP_OK
        || b == NULL)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gw_auth: keys request to \"%V\" failed, status %ui",
                      &src->uri, ctx->fetch_status);
        goto failed;
    }

    len = b->last - b->pos;

    if (len > NGX_HTTP_GW_AUTH_KEYS_SIZE) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gw_auth: keys from \"%V\" too large: %uz bytes",
                      &src->uri, len);
        goto failed;
    }

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        goto failed;
    }

    keys = ngx_array_create(pool, 4, sizeof(ngx_http_gw_auth_key_t));
    if (keys == NULL) {
        ngx_destroy_pool(pool);
        goto failed;
    }

    if (ngx_http_gw_auth_parse_keys(b->pos, len, pool, keys, &err) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gw_auth: invalid keys from \"%V\": %s",
                      &src->uri, err ? err : "internal error");
        ngx_destroy_pool(pool);
        goto failed;
    }

    if (EVP_Digest(b->pos, len, digest, NULL, EVP_sha256(), NULL) != 1) {
        ERR_clear_error();
        ngx_memzero(digest, sizeof(digest));
    }

    if (src->keys && ngx_memcmp(digest, src->digest, sizeof(digest)) == 0) {
        /* the same document: cached tokens stay valid */
        ngx_destroy_pool(pool);

    } else {
        if (src->pool) {
            ngx_destroy_pool(src->pool);
        }

        src->pool = pool;
        src->keys = keys;
        ngx_memcpy(src->digest, digest, sizeof(digest));

        kr->generation++;

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gw_auth: %ui keys loaded from \"%V\"",
                       keys->nelts, &src->uri);
    }

    src->loaded = ngx_current_msec;
    src->failed = 0;

    return;

failed:

    /* keys fetched before, if any, stay in use until a fetch succeeds */

    src->failed = 1;
}


static ngx_http_gw_auth_entry_t *
ngx_http_gw_auth_cache_lookup(ngx_http_gw_auth_keyring_t *kr,
    ngx_str_t *token, uint32_t hash)
{
    ngx_str_node_t            *sn;
    ngx_http_gw_auth_entry_t  *e;

    sn = ngx_str_rbtree_lookup(&kr->rbtree, token, hash);

    if (sn == NULL) {
        return NULL;
    }

    e = (ngx_http_gw_auth_entry_t *) sn;

    if (e->generation != kr->generation
        || (e->expire && ngx_time() >= e->expire))
    {
        ngx_http_gw_auth_cache_remove(kr, e);
        return NULL;
    }

    ngx_queue_remove(&e->queue);
    ngx_queue_insert_head(&kr->queue, &e->queue);

    return e;
}


static ngx_http_gw_auth_entry_t *
ngx_http_gw_auth_cache_insert(ngx_http_gw_auth_keyring_t *kr,
    ngx_str_t *token, uint32_t hash, ngx_http_gw_auth_token_t *t,
    ngx_log_t *log)
{
    size_t                     size;
    u_char                    *p;
    ngx_uint_t                 i;
    ngx_queue_t               *q;
    ngx_http_gw_auth_entry_t  *e;

    size = sizeof(ngx_http_gw_auth_entry_t) + token->len + t->payload.len;

    e = ngx_alloc(size, log);
    if (e == NULL) {
        return NULL;
    }

    ngx_memzero(e, sizeof(ngx_http_gw_auth_entry_t));

    p = (u_char *) (e + 1);

    e->sn.node.key = hash;
    e->sn.str.data = p;
    e->sn.str.len = token->len;
    p = ngx_cpymem(p, token->data, token->len);

    /* JSON whitespace only: control characters never reach variables */

    e->payload.data = p;
    e->payload.len = t->payload.len;

    for (i = 0; i < t->payload.len; i++) {
        p[i] = (t->payload.data[i] < 0x20) ? ' ' : t->payload.data[i];
    }

    e->header = t->header;
    e->claims = t->claims;
    t->header = NULL;
    t->claims = NULL;

    e->exp = t->exp;
    e->nbf = t->nbf;
    e->has_exp = t->has_exp;
    e->has_nbf = t->has_nbf;

    if (t->has_exp) {
        if (t->exp < 1) {
            e->expire = 1;

        } else if (t->exp < 1e15) {
            e->expire = (time_t) t->exp;
        }
    }

    e->generation = kr->generation;

    /* a rough account of what jansson keeps */
    e->size = size + 4 * t->decoded;

    while (!ngx_queue_empty(&kr->queue)
           && (kr->count >= NGX_HTTP_GW_AUTH_CACHE_MAX
               || kr->size + e->size > NGX_HTTP_GW_AUTH_CACHE_SIZE))
    {
        q = ngx_queue_last(&kr->queue);
        ngx_http_gw_auth_cache_remove(kr,
                    ngx_queue_data(q, ngx_http_gw_auth_entry_t, queue));
    }

    ngx_rbtree_insert(&kr->rbtree, &e->sn.node);
    ngx_queue_insert_head(&kr->queue, &e->queue);

    kr->count++;
    kr->size += e->size;
    e->cached = 1;

    return e;
}


static void
ngx_http_gw_auth_cache_remove(ngx_http_gw_auth_keyring_t *kr,
    ngx_http_gw_auth_entry_t *e)
{
    ngx_rbtree_delete(&kr->rbtree, &e->sn.node);
    ngx_queue_remove(&e->queue);

    kr->count--;
    kr->size -= e->size;
    e->cached = 0;

    if (e->refs == 0) {
        ngx_http_gw_auth_entry_release(e);
    }
}


/* drops a request's reference, or frees an entry no longer cached */

static void
ngx_http_gw_auth_entry_release(ngx_http_gw_auth_entry_t *e)
{
    if (e->refs) {
        e->refs--;
    }

    if (e->refs || e->cached) {
        return;
    }

    json_decref(e->header);
    json_decref(e->claims);
    ngx_free(e);
}


static ngx_int_t
ngx_http_gw_auth_decode(u_char *dst, size_t *dlen, u_char *src, size_t len)
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


/*
 * Parses a JWS compact serialization: splits it, decodes the three parts
 * and the JSON header and payload.  No signature check here.  Returns
 * NGX_DECLINED with t->error set for any malformed token; the caller
 * frees t with ngx_http_gw_auth_free_token() after NGX_OK.
 */

static ngx_int_t
ngx_http_gw_auth_parse_token(ngx_str_t *token, ngx_pool_t *pool,
    ngx_http_gw_auth_token_t *t)
{
    u_char        *buf, *p, *dot1, *dot2, *last;
    size_t         len;
    json_t        *v;
    ngx_str_t      hdr;
    json_error_t   jerr;

    ngx_memzero(t, sizeof(ngx_http_gw_auth_token_t));

    if (token->len > NGX_HTTP_GW_AUTH_TOKEN_MAX) {
        t->error = "token too long";
        return NGX_DECLINED;
    }

    p = token->data;
    last = p + token->len;

    dot1 = ngx_strlchr(p, last, '.');
    dot2 = dot1 ? ngx_strlchr(dot1 + 1, last, '.') : NULL;

    if (dot2 == NULL || ngx_strlchr(dot2 + 1, last, '.') != NULL) {
        t->error = "not a JWS compact serialization";
        return NGX_DECLINED;
    }

    if (dot1 == p || dot2 == dot1 + 1) {
        t->error = "empty header or payload";
        return NGX_DECLINED;
    }

    if (dot2 + 1 == last) {
        t->error = "no signature";
        return NGX_DECLINED;
    }

    buf = ngx_pnalloc(pool, token->len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    hdr.data = buf;

    if (ngx_http_gw_auth_decode(hdr.data, &hdr.len, p, dot1 - p) != NGX_OK) {
        t->error = "invalid base64url in header";
        return NGX_DECLINED;
    }

    t->payload.data = hdr.data + hdr.len;

    if (ngx_http_gw_auth_decode(t->payload.data, &t->payload.len, dot1 + 1,
                                dot2 - dot1 - 1)
        != NGX_OK)
    {
        t->error = "invalid base64url in payload";
        return NGX_DECLINED;
    }

    t->signature.data = t->payload.data + t->payload.len;

    if (ngx_http_gw_auth_decode(t->signature.data, &t->signature.len,
                                dot2 + 1, last - dot2 - 1)
        != NGX_OK)
    {
        t->error = "invalid base64url in signature";
        return NGX_DECLINED;
    }

    t->input.data = p;
    t->input.len = dot2 - p;
    t->decoded = hdr.len + t->payload.len;

    t->header = json_loadb((char *) hdr.data, hdr.len, JSON_REJECT_DUPLICATES,
                           &jerr);

    if (!json_is_object(t->header)) {
        t->error = "header is not a JSON object";
        goto invalid;
    }

    v = json_object_get(t->header, "alg");

    if (!json_is_string(v)) {
        t->error = "no alg";
        goto invalid;
    }

    /* exact names only: "none", "None", "hs256" ... are all unknown */

    t->alg = ngx_http_gw_auth_find_alg((u_char *) json_string_value(v),
                                       json_string_length(v));
    if (t->alg == NULL) {
        t->error = "unsupported alg";
        goto invalid;
    }

    /* no JWS extension is understood, so any "crit" is fatal */

    if (json_object_get(t->header, "crit") != NULL) {
        t->error = "unsupported crit";
        goto invalid;
    }

    /*
     * "jku", "x5u", "jwk" and "x5c" are ignored: keys are never taken
     * from the token itself
     */

    v = json_object_get(t->header, "kid");

    if (v != NULL) {
        if (!json_is_string(v)
            || json_string_length(v) > NGX_HTTP_GW_AUTH_KID_MAX)
        {
            t->error = "invalid kid";
            goto invalid;
        }

        t->kid.data = (u_char *) json_string_value(v);
        t->kid.len = json_string_length(v);
    }

    t->claims = json_loadb((char *) t->payload.data, t->payload.len,
                           JSON_REJECT_DUPLICATES, &jerr);

    if (!json_is_object(t->claims)) {
        t->error = "payload is not a JSON object";
        goto invalid;
    }

    v = json_object_get(t->claims, "exp");

    if (v != NULL) {
        if (!json_is_number(v)) {
            t->error = "invalid exp";
            goto invalid;
        }

        t->exp = json_number_value(v);
        t->has_exp = 1;
    }

    v = json_object_get(t->claims, "nbf");

    if (v != NULL) {
        if (!json_is_number(v)) {
            t->error = "invalid nbf";
            goto invalid;
        }

        t->nbf = json_number_value(v);
        t->has_nbf = 1;
    }

    len = t->signature.len;

    if (len == 0) {
        t->error = "no signature";
        goto invalid;
    }

    return NGX_OK;

invalid:

    ngx_http_gw_auth_free_token(t);

    return NGX_DECLINED;
}


static void
ngx_http_gw_auth_free_token(ngx_http_gw_auth_token_t *t)
{
    if (t->header) {
        json_decref(t->header);
        t->header = NULL;
    }

    if (t->claims) {
        json_decref(t->claims);
        t->claims = NULL;
    }

    /* kid pointed into the header */
    t->kid.len = 0;
}


/*
 * A token naming a kid is checked with the keys of that kid only (or,
 * when no key has it, with the keys that have no kid, e.g. PEM keys);
 * a token without kid with every key.  Only keys that fit the token's
 * alg are tried.  *unknown is set when no key has the token's kid.
 */

static ngx_int_t
ngx_http_gw_auth_verify(ngx_http_gw_auth_token_t *t, ngx_array_t **sets,
    ngx_uint_t nsets, ngx_uint_t *unknown)
{
    ngx_uint_t               i, j, named, tried;
    ngx_http_gw_auth_key_t  *key;

    *unknown = 0;
    named = 0;

    if (t->kid.len) {
        for (i = 0; i < nsets; i++) {
            key = sets[i]->elts;

            for (j = 0; j < sets[i]->nelts; j++) {
                if (key[j].kid.len == t->kid.len
                    && ngx_memcmp(key[j].kid.data, t->kid.data, t->kid.len)
                       == 0)
                {
                    named = 1;
                }
            }
        }

        *unknown = !named;
    }

    tried = 0;

    for (i = 0; i < nsets; i++) {
        key = sets[i]->elts;

        for (j = 0; j < sets[i]->nelts; j++) {

            if (named) {
                if (key[j].kid.len != t->kid.len
                    || ngx_memcmp(key[j].kid.data, t->kid.data, t->kid.len)
                       != 0)
                {
                    continue;
                }

            } else if (t->kid.len && key[j].kid.len) {
                continue;
            }

            if (!ngx_http_gw_auth_key_fits(t->alg, &key[j])) {
                continue;
            }

            tried++;

            if (ngx_http_gw_auth_verify_key(t->alg, &key[j], &t->input,
                                            &t->signature)
                == NGX_OK)
            {
                return NGX_OK;
            }
        }
    }

    t->error = tried ? "signature mismatch"
                     : (*unknown ? "unknown kid" : "no key for alg");

    return NGX_DECLINED;
}


/* the algorithm is bound to the key: type, curve, size and JWK "alg" */

static ngx_uint_t
ngx_http_gw_auth_key_fits(ngx_http_gw_auth_alg_t *alg,
    ngx_http_gw_auth_key_t *key)
{
    if (key->alg && key->alg != alg) {
        return 0;
    }

    if (key->kty != alg->kty) {
        return 0;
    }

    switch (alg->family) {

    case NGX_HTTP_GW_AUTH_HMAC:
        return key->secret.len >= alg->size;

    case NGX_HTTP_GW_AUTH_ECDSA:
    case NGX_HTTP_GW_AUTH_EDDSA:
        return key->crv == alg->crv;

    default: /* PKCS1, PSS: RSA of 2048 bits or more */
        return 1;
    }
}


static ngx_int_t
ngx_http_gw_auth_verify_key(ngx_http_gw_auth_alg_t *alg,
    ngx_http_gw_auth_key_t *key, ngx_str_t *input, ngx_str_t *sig)
{
    int            ok;
    u_char         mac[EVP_MAX_MD_SIZE], der[160];
    size_t         len;
    u_char        *s;
    unsigned int   maclen;
    EVP_MD_CTX    *mctx;
    EVP_PKEY_CTX  *pctx;

    s = sig->data;
    len = sig->len;

    switch (alg->family) {

    case NGX_HTTP_GW_AUTH_HMAC:

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

    case NGX_HTTP_GW_AUTH_ECDSA:

        /* JOSE sends r || s of fixed size; OpenSSL wants DER */

        if (len != 2 * alg->size) {
            return NGX_DECLINED;
        }

        len = ngx_http_gw_auth_ecdsa_der(der, s, alg->size);
        s = der;
        break;

    case NGX_HTTP_GW_AUTH_EDDSA:

        if (len != alg->size) {
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

    if (alg->family == NGX_HTTP_GW_AUTH_PSS) {
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

    if (!ok) {
        ERR_clear_error();
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* r || s, each n bytes, as a DER SEQUENCE of two INTEGERs */

static size_t
ngx_http_gw_auth_ecdsa_der(u_char *der, u_char *sig, size_t n)
{
    size_t   i, len[2], skip[2], pad[2], body;
    u_char  *p, *v;

    for (i = 0; i < 2; i++) {
        v = sig + i * n;

        for (skip[i] = 0; skip[i] < n - 1 && v[skip[i]] == 0; skip[i]++) {
            /* void */
        }

        pad[i] = (v[skip[i]] & 0x80) ? 1 : 0;
        len[i] = n - skip[i] + pad[i];
    }

    body = 2 + len[0] + 2 + len[1];

    p = der;
    *p++ = 0x30;

    if (body > 127) {
        *p++ = 0x81;
    }

    *p++ = (u_char) body;

    for (i = 0; i < 2; i++) {
        *p++ = 0x02;
        *p++ = (u_char) len[i];

        if (pad[i]) {
            *p++ = 0;
        }

        p = ngx_cpymem(p, sig + i * n + skip[i], n - skip[i]);
    }

    return p - der;
}


/*
 * Parses a JWKS document, a single JWK or PEM public keys into keys[],
 * registering pool cleanups that free the OpenSSL keys.  NGX_DECLINED
 * with *err set for bad input.
 */

static ngx_int_t
ngx_http_gw_auth_parse_keys(u_char *data, size_t len, ngx_pool_t *pool,
    ngx_array_t *keys, const char **err)
{
    size_t         i;
    json_t        *root, *list, *jwk;
    ngx_int_t      rc;
    ngx_uint_t     n, first;
    json_error_t   jerr;

    *err = NULL;

    if (len > NGX_HTTP_GW_AUTH_KEYS_SIZE) {
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
        return ngx_http_gw_auth_parse_pem(data, len, pool, keys, err);
    }

    root = json_loadb((char *) data, len, JSON_REJECT_DUPLICATES, &jerr);

    if (root == NULL) {
        *err = "invalid JSON";
        return NGX_DECLINED;
    }

    first = keys->nelts;
    rc = NGX_OK;

    list = json_object_get(root, "keys");

    if (list == NULL && json_object_get(root, "kty") != NULL) {
        /* a single JWK */
        rc = ngx_http_gw_auth_parse_jwk(root, pool, keys, err);
        goto done;
    }

    if (!json_is_array(list)) {
        *err = "no \"keys\" array";
        rc = NGX_DECLINED;
        goto done;
    }

    n = json_array_size(list);

    if (n > NGX_HTTP_GW_AUTH_KEYS_MAX) {
        *err = "too many keys";
        rc = NGX_DECLINED;
        goto done;
    }

    for (i = 0; i < n; i++) {
        jwk = json_array_get(list, i);

        rc = ngx_http_gw_auth_parse_jwk(jwk, pool, keys, err);

        if (rc != NGX_OK) {
            goto done;
        }
    }

done:

    json_decref(root);

    if (rc == NGX_OK && keys->nelts == first) {
        *err = "no usable signature keys";
        rc = NGX_DECLINED;
    }

    return rc;
}


/*
 * One JWK.  Keys that are not for signatures ("use", "key_ops"), of an
 * unknown "kty" or "alg" are skipped, as RFC 7517 asks; a known key that
 * is malformed is an error.
 */

static ngx_int_t
ngx_http_gw_auth_parse_jwk(json_t *jwk, ngx_pool_t *pool, ngx_array_t *keys,
    const char **err)
{
    size_t                     i, n;
    json_t                    *v, *op;
    EVP_PKEY                  *pkey;
    ngx_str_t                  kty, crv, x, y, rsa_e;
    ngx_uint_t                 c, verify;
    ngx_http_gw_auth_key_t    *key, k;
    ngx_http_gw_auth_curve_t  *curve;

    if (!json_is_object(jwk)) {
        *err = "a key is not a JSON object";
        return NGX_DECLINED;
    }

    ngx_memzero(&k, sizeof(ngx_http_gw_auth_key_t));

    v = json_object_get(jwk, "kty");

    if (!json_is_string(v)) {
        *err = "a key has no \"kty\"";
        return NGX_DECLINED;
    }

    kty.data = (u_char *) json_string_value(v);
    kty.len = json_string_length(v);

    v = json_object_get(jwk, "use");

    if (v != NULL) {
        if (!json_is_string(v)) {
            *err = "invalid \"use\"";
            return NGX_DECLINED;
        }

        if (ngx_strcmp(json_string_value(v), "sig") != 0) {
            return NGX_OK;
        }
    }

    v = json_object_get(jwk, "key_ops");

    if (v != NULL) {
        if (!json_is_array(v)) {
            *err = "invalid \"key_ops\"";
            return NGX_DECLINED;
        }

        verify = 0;
        n = json_array_size(v);

        for (i = 0; i < n; i++) {
            op = json_array_get(v, i);

            if (json_is_string(op)
                && ngx_strcmp(json_string_value(op), "verify") == 0)
            {
                verify = 1;
            }
        }

        if (!verify) {
            return NGX_OK;
        }
    }

    v = json_object_get(jwk, "alg");

    if (v != NULL) {
        if (!json_is_string(v)) {
            *err = "invalid \"alg\"";
            return NGX_DECLINED;
        }

        k.alg = ngx_http_gw_auth_find_alg((u_char *) json_string_value(v),
                                          json_string_length(v));
        if (k.alg == NULL) {
            /* e.g. RSA-OAEP: not a signature key */
            return NGX_OK;
        }
    }

    v = json_object_get(jwk, "kid");

    if (v != NULL) {
        if (!json_is_string(v)
            || json_string_length(v) > NGX_HTTP_GW_AUTH_KID_MAX)
        {
            *err = "invalid \"kid\"";
            return NGX_DECLINED;
        }

        k.kid.len = json_string_length(v);
        k.kid.data = ngx_pnalloc(pool, k.kid.len + 1);
        if (k.kid.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(k.kid.data, json_string_value(v), k.kid.len + 1);
    }

    if (kty.len == 3 && ngx_strncmp(kty.data, "oct", 3) == 0) {
        k.kty = NGX_HTTP_GW_AUTH_OCT;

        if (ngx_http_gw_auth_jwk_field(jwk, "k", pool, &k.secret) != NGX_OK
            || k.secret.len == 0)
        {
            *err = "invalid \"k\" of an oct key";
            return NGX_DECLINED;
        }

        /* RFC 7518, section 3.2: a key at least as long as the hash */

        if (k.secret.len < 32
            || (k.alg && k.secret.len < k.alg->size))
        {
            *err = "oct key is shorter than its hash (RFC 7518, 3.2)";
            return NGX_DECLINED;
        }

    } else if (kty.len == 3 && ngx_strncmp(kty.data, "RSA", 3) == 0) {
        k.kty = NGX_HTTP_GW_AUTH_RSA;

        if (ngx_http_gw_auth_jwk_field(jwk, "n", pool, &x) != NGX_OK
            || ngx_http_gw_auth_jwk_field(jwk, "e", pool, &rsa_e) != NGX_OK
            || x.len == 0 || rsa_e.len == 0 || rsa_e.len > 8)
        {
            *err = "invalid \"n\" or \"e\" of an RSA key";
            return NGX_DECLINED;
        }

        pkey = ngx_http_gw_auth_rsa_key(&x, &rsa_e);

        if (pkey == NULL) {
            *err = "invalid RSA key";
            return NGX_DECLINED;
        }

        if (ngx_http_gw_auth_add_pkey(pool, &k, pkey, err) != NGX_OK) {
            return *err ? NGX_DECLINED : NGX_ERROR;
        }

    } else if ((kty.len == 2 && ngx_strncmp(kty.data, "EC", 2) == 0)
               || (kty.len == 3 && ngx_strncmp(kty.data, "OKP", 3) == 0))
    {
        k.kty = (kty.len == 2) ? NGX_HTTP_GW_AUTH_EC : NGX_HTTP_GW_AUTH_OKP;

        v = json_object_get(jwk, "crv");

        if (!json_is_string(v)) {
            *err = "no \"crv\"";
            return NGX_DECLINED;
        }

        crv.data = (u_char *) json_string_value(v);
        crv.len = json_string_length(v);

        curve = NULL;

        for (c = 0; ngx_http_gw_auth_curves[c].name.len; c++) {
            if (ngx_http_gw_auth_curves[c].name.len == crv.len
                && ngx_strncmp(ngx_http_gw_auth_curves[c].name.data,
                               crv.data, crv.len) == 0)
            {
                curve = &ngx_http_gw_auth_curves[c];
                break;
            }
        }

        if (curve == NULL
            || (k.kty == NGX_HTTP_GW_AUTH_EC) != (curve->group != NULL))
        {
            *err = "unsupported \"crv\"";
            return NGX_DECLINED;
        }

        k.crv = c + 1;

        if (ngx_http_gw_auth_jwk_field(jwk, "x", pool, &x) != NGX_OK
            || x.len != curve->size)
        {
            *err = "invalid \"x\"";
            return NGX_DECLINED;
        }

        if (k.kty == NGX_HTTP_GW_AUTH_EC) {
            if (ngx_http_gw_auth_jwk_field(jwk, "y", pool, &y) != NGX_OK
                || y.len != curve->size)
            {
                *err = "invalid \"y\"";
                return NGX_DECLINED;
            }

            pkey = ngx_http_gw_auth_ec_key(curve, &x, &y);

        } else {
            pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL,
                                               x.data, x.len);
        }

        if (pkey == NULL) {
            ERR_clear_error();
            *err = "invalid public key point";
            return NGX_DECLINED;
        }

        if (ngx_http_gw_auth_add_pkey(pool, &k, pkey, err) != NGX_OK) {
            return *err ? NGX_DECLINED : NGX_ERROR;
        }

    } else {
        /* an unknown key type */
        return NGX_OK;
    }

    if (k.alg && (k.alg->kty != k.kty || (k.alg->crv && k.alg->crv != k.crv)))
    {
        *err = "\"alg\" does not fit the key";
        return NGX_DECLINED;
    }

    if (keys->nelts >= NGX_HTTP_GW_AUTH_KEYS_MAX) {
        *err = "too many keys";
        return NGX_DECLINED;
    }

    key = ngx_array_push(keys);
    if (key == NULL) {
        return NGX_ERROR;
    }

    *key = k;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_auth_parse_pem(u_char *data, size_t len, ngx_pool_t *pool,
    ngx_array_t *keys, const char **err)
{
    int                      type;
    BIO                     *bio;
    long                     n;
    char                     group[32], *p;
    size_t                   i, glen;
    EVP_PKEY                *pkey;
    ngx_uint_t               c, first;
    ngx_http_gw_auth_key_t  *key, k;

    if (len > INT_MAX) {
        *err = "too large";
        return NGX_DECLINED;
    }

    bio = BIO_new_mem_buf(data, (int) len);
    if (bio == NULL) {
        ERR_clear_error();
        return NGX_ERROR;
    }

    first = keys->nelts;

    for ( ;; ) {

        /* stop when no PEM block is left */

        n = BIO_get_mem_data(bio, &p);

        for (i = 0; n > 0 && i + 10 < (size_t) n; i++) {
            if (ngx_strncmp(p + i, "-----BEGIN", 10) == 0) {
                break;
            }
        }

        if (n <= 0 || i + 10 >= (size_t) n) {
            break;
        }

        pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);

        if (pkey == NULL) {
            ERR_clear_error();
            *err = "invalid PEM public key";
            goto failed;
        }

        ngx_memzero(&k, sizeof(ngx_http_gw_auth_key_t));

        type = EVP_PKEY_get_base_id(pkey);

        switch (type) {

        case EVP_PKEY_RSA:
            k.kty = NGX_HTTP_GW_AUTH_RSA;
            break;

        case EVP_PKEY_EC:
            k.kty = NGX_HTTP_GW_AUTH_EC;

            if (EVP_PKEY_get_utf8_string_param(pkey,
                                               OSSL_PKEY_PARAM_GROUP_NAME,
                                               group, sizeof(group), &glen)
                != 1)
            {
                ERR_clear_error();
                glen = 0;
            }

            for (c = 0; ngx_http_gw_auth_curves[c].group; c++) {
                if (glen == ngx_strlen(ngx_http_gw_auth_curves[c].group)
                    && ngx_strncmp(group, ngx_http_gw_auth_curves[c].group,
                                   glen) == 0)
                {
                    k.crv = c + 1;
                    break;
                }
            }

            if (k.crv == 0) {
                EVP_PKEY_free(pkey);
                *err = "unsupported EC curve";
                goto failed;
            }

            break;

        case EVP_PKEY_ED25519:
            k.kty = NGX_HTTP_GW_AUTH_OKP;
            k.crv = 4;
            break;

        default:
            EVP_PKEY_free(pkey);
            *err = "unsupported key type";
            goto failed;
        }

        if (ngx_http_gw_auth_add_pkey(pool, &k, pkey, err) != NGX_OK) {
            goto failed;
        }

        if (keys->nelts >= NGX_HTTP_GW_AUTH_KEYS_MAX) {
            *err = "too many keys";
            goto failed;
        }

        key = ngx_array_push(keys);
        if (key == NULL) {
            goto failed;
        }

        *key = k;
    }

    BIO_free(bio);

    if (keys->nelts == first) {
        *err = "no PEM public key";
        return NGX_DECLINED;
    }

    return NGX_OK;

failed:

    BIO_free(bio);

    return *err ? NGX_DECLINED : NGX_ERROR;
}


static ngx_int_t
ngx_http_gw_auth_jwk_field(json_t *jwk, const char *name, ngx_pool_t *pool,
    ngx_str_t *value)
{
    size_t   len;
    json_t  *v;

    v = json_object_get(jwk, name);

    if (!json_is_string(v)) {
        return NGX_DECLINED;
    }

    len = json_string_length(v);

    if (len > NGX_HTTP_GW_AUTH_FIELD_MAX) {
        return NGX_DECLINED;
    }

    value->data = ngx_pnalloc(pool, len + 1);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_gw_auth_decode(value->data, &value->len,
                                   (u_char *) json_string_value(v), len);
}


static EVP_PKEY *
ngx_http_gw_auth_rsa_key(ngx_str_t *n, ngx_str_t *e)
{
    BIGNUM          *bn, *be;
    EVP_PKEY        *pkey;
    OSSL_PARAM      *params;
    EVP_PKEY_CTX    *ctx;
    OSSL_PARAM_BLD  *bld;

    pkey = NULL;
    params = NULL;
    ctx = NULL;

    bn = BN_bin2bn(n->data, (int) n->len, NULL);
    be = BN_bin2bn(e->data, (int) e->len, NULL);
    bld = OSSL_PARAM_BLD_new();

    if (bn == NULL || be == NULL || bld == NULL) {
        goto done;
    }

    if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) != 1
        || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) != 1)
    {
        goto done;
    }

    params = OSSL_PARAM_BLD_to_param(bld);
    if (params == NULL) {
        goto done;
    }

    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);

    if (ctx == NULL
        || EVP_PKEY_fromdata_init(ctx) != 1
        || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
    {
        pkey = NULL;
    }

done:

    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);

    if (pkey == NULL) {
        ERR_clear_error();
    }

    return pkey;
}


static EVP_PKEY *
ngx_http_gw_auth_ec_key(ngx_http_gw_auth_curve_t *curve, ngx_str_t *x,
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
ngx_http_gw_auth_add_pkey(ngx_pool_t *pool, ngx_http_gw_auth_key_t *key,
    EVP_PKEY *pkey, const char **err)
{
    int                  bits;
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        EVP_PKEY_free(pkey);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_gw_auth_pkey_cleanup;
    cln->data = pkey;

    if (key->kty == NGX_HTTP_GW_AUTH_RSA) {
        bits = EVP_PKEY_get_bits(pkey);

        /* RFC 7518, sections 3.3 and 3.5 */

        if (bits < 2048) {
            *err = "RSA key is shorter than 2048 bits";
            return NGX_DECLINED;
        }

        if (bits > 16384) {
            *err = "RSA key is longer than 16384 bits";
            return NGX_DECLINED;
        }
    }

    key->pkey = pkey;

    return NGX_OK;
}


static void
ngx_http_gw_auth_pkey_cleanup(void *data)
{
    EVP_PKEY_free(data);
}


static ngx_http_gw_auth_alg_t *
ngx_http_gw_auth_find_alg(u_char *name, size_t len)
{
    ngx_http_gw_auth_alg_t  *alg;

    for (alg = ngx_http_gw_auth_algs; alg->name.len; alg++) {
        if (alg->name.len == len
            && ngx_strncmp(alg->name.data, name, len) == 0)
        {
            return alg;
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

static ngx_int_t
ngx_http_gw_auth_json_value(ngx_pool_t *pool, json_t *j, ngx_str_t *value,
    ngx_uint_t top)
{
    char       *dump;
    size_t      i, n, len;
    u_char     *p;
    ngx_int_t   rc;
    ngx_str_t  *parts;

    switch (json_typeof(j)) {

    case JSON_STRING:
        return ngx_http_gw_auth_sanitize(pool, (u_char *) json_string_value(j),
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
            if (ngx_http_gw_auth_json_value(pool, json_array_get(j, i),
                                            &parts[i], 0)
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

    rc = ngx_http_gw_auth_sanitize(pool, (u_char *) dump, ngx_strlen(dump),
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

static ngx_int_t
ngx_http_gw_auth_sanitize(ngx_pool_t *pool, u_char *data, size_t len,
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


static ngx_int_t
ngx_http_gw_auth_json_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, json_t *j)
{
    ngx_str_t  value;

    if (j == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (ngx_http_gw_auth_json_value(r->pool, j, &value, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    v->len = value.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = value.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_auth_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t *name = (ngx_str_t *) data;

    size_t                   prefix;
    ngx_http_gw_auth_ctx_t  *ctx;

    ctx = ngx_http_gw_auth_get_ctx(r);
    prefix = sizeof("gw_jwt_claim_") - 1;

    if (ctx == NULL || ctx->entry == NULL || name->len <= prefix) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_http_gw_auth_json_variable(r, v,
                      json_object_getn(ctx->entry->claims,
                                       (char *) name->data + prefix,
                                       name->len - prefix));
}


static ngx_int_t
ngx_http_gw_auth_header_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t *name = (ngx_str_t *) data;

    size_t                   prefix;
    ngx_http_gw_auth_ctx_t  *ctx;

    ctx = ngx_http_gw_auth_get_ctx(r);
    prefix = sizeof("gw_jwt_header_") - 1;

    if (ctx == NULL || ctx->entry == NULL || name->len <= prefix) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_http_gw_auth_json_variable(r, v,
                      json_object_getn(ctx->entry->header,
                                       (char *) name->data + prefix,
                                       name->len - prefix));
}


static ngx_int_t
ngx_http_gw_auth_path_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_gw_auth_path_t *path = (ngx_http_gw_auth_path_t *) data;

    json_t                  *j;
    ngx_str_t               *name;
    ngx_uint_t               i;
    ngx_http_gw_auth_ctx_t  *ctx;

    ctx = ngx_http_gw_auth_get_ctx(r);

    if (ctx == NULL || ctx->entry == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    j = path->header ? ctx->entry->header : ctx->entry->claims;
    name = path->path->elts;

    for (i = 0; j && i < path->path->nelts; i++) {
        j = json_is_object(j) ? json_object_getn(j, (char *) name[i].data,
                                                 name[i].len)
                              : NULL;
    }

    return ngx_http_gw_auth_json_variable(r, v, j);
}


static ngx_int_t
ngx_http_gw_auth_payload_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_gw_auth_ctx_t  *ctx;

    ctx = ngx_http_gw_auth_get_ctx(r);

    if (ctx == NULL || ctx->entry == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ctx->entry->payload.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ctx->entry->payload.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_auth_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_gw_auth_ctx_t  *ctx;

    ctx = ngx_http_gw_auth_get_ctx(r);

    if (ctx == NULL || ctx->status == NGX_HTTP_GW_AUTH_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ngx_http_gw_auth_words[ctx->status].len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ngx_http_gw_auth_words[ctx->status].data;

    return NGX_OK;
}


static void *
ngx_http_gw_auth_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_gw_auth_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gw_auth_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->token = NULL;
     *     conf->keyring = NULL;
     */

    conf->realm = NGX_CONF_UNSET_PTR;
    conf->key_cache = NGX_CONF_UNSET_MSEC;
    conf->leeway = NGX_CONF_UNSET;
    conf->require = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_http_gw_auth_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_gw_auth_loc_conf_t *prev = parent;
    ngx_http_gw_auth_loc_conf_t *conf = child;

    if (conf->realm == NGX_CONF_UNSET_PTR) {
        conf->realm = (prev->realm == NGX_CONF_UNSET_PTR) ? NULL
                                                           : prev->realm;
        conf->token = prev->token;
    }

    /* key files and key requests are inherited together, as one set */

    if (conf->keyring == NULL) {
        conf->keyring = prev->keyring;
    }

    ngx_conf_merge_msec_value(conf->key_cache, prev->key_cache, 0);
    ngx_conf_merge_sec_value(conf->leeway, prev->leeway, 0);
    ngx_conf_merge_ptr_value(conf->require, prev->require, NULL);

    return NGX_CONF_OK;
}


static ngx_http_gw_auth_keyring_t *
ngx_http_gw_auth_keyring(ngx_conf_t *cf, ngx_http_gw_auth_loc_conf_t *alcf)
{
    ngx_pool_cleanup_t          *cln;
    ngx_http_gw_auth_keyring_t  *kr;

    if (alcf->keyring) {
        return alcf->keyring;
    }

    kr = ngx_pcalloc(cf->pool, sizeof(ngx_http_gw_auth_keyring_t));
    if (kr == NULL) {
        return NULL;
    }

    ngx_rbtree_init(&kr->rbtree, &kr->sentinel, ngx_str_rbtree_insert_value);
    ngx_queue_init(&kr->queue);

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_gw_auth_keyring_cleanup;
    cln->data = kr;

    alcf->keyring = kr;

    return kr;
}


static void
ngx_http_gw_auth_keyring_cleanup(void *data)
{
    ngx_http_gw_auth_keyring_t *kr = data;

    ngx_uint_t                  i;
    ngx_queue_t                *q;
    ngx_http_gw_auth_source_t  *src;

    while (!ngx_queue_empty(&kr->queue)) {
        q = ngx_queue_head(&kr->queue);
        ngx_http_gw_auth_cache_remove(kr,
                    ngx_queue_data(q, ngx_http_gw_auth_entry_t, queue));
    }

    if (kr->sources == NULL) {
        return;
    }

    src = kr->sources->elts;

    for (i = 0; i < kr->sources->nelts; i++) {
        if (src[i].pool) {
            ngx_destroy_pool(src[i].pool);
            src[i].pool = NULL;
            src[i].keys = NULL;
        }
    }
}


static char *
ngx_http_gw_auth_jwt(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gw_auth_loc_conf_t *alcf = conf;

    ngx_str_t                         *value, token;
    ngx_http_compile_complex_value_t   ccv;

    if (alcf->realm != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts != 2) {
            return "has an invalid parameter with \"off\"";
        }

        alcf->realm = NULL;
        alcf->token = NULL;

        return NGX_CONF_OK;
    }

    alcf->realm = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (alcf->realm == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = alcf->realm;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    alcf->token = NULL;

    if (cf->args->nelts == 2) {
        return NGX_CONF_OK;
    }

    if (value[2].len <= sizeof("token=$") - 1
        || ngx_strncmp(value[2].data, "token=$", sizeof("token=$") - 1) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\", "
                           "expected \"token=$variable\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    token.data = value[2].data + sizeof("token=") - 1;
    token.len = value[2].len - (sizeof("token=") - 1);

    alcf->token = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (alcf->token == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &token;
    ccv.complex_value = alcf->token;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_gw_auth_key_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gw_auth_loc_conf_t *alcf = conf;

    u_char                      *buf;
    size_t                       size;
    ssize_t                      n;
    ngx_fd_t                     fd;
    ngx_str_t                   *value, file;
    const char                  *err;
    ngx_file_info_t              fi;
    ngx_http_gw_auth_keyring_t  *kr;

    value = cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    kr = ngx_http_gw_auth_keyring(cf, alcf);
    if (kr == NULL) {
        return NGX_CONF_ERROR;
    }

    if (kr->keys == NULL) {
        kr->keys = ngx_array_create(cf->pool, 4,
                                    sizeof(ngx_http_gw_auth_key_t));
        if (kr->keys == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    fd = ngx_open_file(file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%s\" failed", file.data);
        return NGX_CONF_ERROR;
    }

    buf = NULL;
    size = 0;
    err = NULL;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%s\" failed", file.data);
        goto failed;
    }

    if (ngx_file_size(&fi) > NGX_HTTP_GW_AUTH_KEYS_SIZE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "key file \"%s\" is too large", file.data);
        goto failed;
    }

    size = (size_t) ngx_file_size(&fi);

    buf = ngx_pnalloc(cf->temp_pool, size + 1);
    if (buf == NULL) {
        goto failed;
    }

    n = ngx_read_fd(fd, buf, size);

    if (n == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_read_fd_n " \"%s\" failed", file.data);
        goto failed;
    }

    if ((size_t) n != size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           ngx_read_fd_n " \"%s\" returned only %z bytes",
                           file.data, n);
        goto failed;
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%s\" failed", file.data);
    }

    switch (ngx_http_gw_auth_parse_keys(buf, size, cf->pool, kr->keys, &err))
    {

    case NGX_OK:
        return NGX_CONF_OK;

    case NGX_DECLINED:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid key file \"%s\": %s", file.data, err);
        return NGX_CONF_ERROR;

    default:
        return NGX_CONF_ERROR;
    }

failed:

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%s\" failed", file.data);
    }

    return NGX_CONF_ERROR;
}


static char *
ngx_http_gw_auth_key_request(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gw_auth_loc_conf_t *alcf = conf;

    ngx_str_t                   *value;
    ngx_http_gw_auth_source_t   *src;
    ngx_http_gw_auth_keyring_t  *kr;

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid key request uri \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    kr = ngx_http_gw_auth_keyring(cf, alcf);
    if (kr == NULL) {
        return NGX_CONF_ERROR;
    }

    if (kr->sources == NULL) {
        kr->sources = ngx_array_create(cf->pool, 1,
                                       sizeof(ngx_http_gw_auth_source_t));
        if (kr->sources == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (kr->sources->nelts >= NGX_HTTP_GW_AUTH_SOURCES_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many key requests, at most %d",
                           NGX_HTTP_GW_AUTH_SOURCES_MAX);
        return NGX_CONF_ERROR;
    }

    src = ngx_array_push(kr->sources);
    if (src == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(src, sizeof(ngx_http_gw_auth_source_t));

    src->uri = value[1];

    return NGX_CONF_OK;
}


static char *
ngx_http_gw_auth_require(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gw_auth_loc_conf_t *alcf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_complex_value_t          *cv;
    ngx_http_gw_auth_require_t        *rq;
    ngx_http_compile_complex_value_t   ccv;

    if (alcf->require == NGX_CONF_UNSET_PTR) {
        alcf->require = ngx_array_create(cf->pool, 2,
                                         sizeof(ngx_http_gw_auth_require_t));
        if (alcf->require == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    rq = ngx_array_push(alcf->require);
    if (rq == NULL) {
        return NGX_CONF_ERROR;
    }

    rq->code = NGX_HTTP_UNAUTHORIZED;
    rq->values = ngx_array_create(cf->pool, cf->args->nelts,
                                  sizeof(ngx_http_complex_value_t));
    if (rq->values == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "error=", 6) == 0) {

            if (i != cf->args->nelts - 1 || i == 1) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"%V\" must follow the values",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            if (ngx_strcmp(value[i].data, "error=401") == 0) {
                rq->code = NGX_HTTP_UNAUTHORIZED;

            } else if (ngx_strcmp(value[i].data, "error=403") == 0) {
                rq->code = NGX_HTTP_FORBIDDEN;

            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\", "
                                   "expected error=401 or error=403",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            break;
        }

        if (value[i].data[0] != '$') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\", "
                               "must start with a variable", &value[i]);
            return NGX_CONF_ERROR;
        }

        cv = ngx_array_push(rq->values);
        if (cv == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &value[i];
        ccv.complex_value = cv;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* gw_auth_jwt_claim_set and gw_auth_jwt_header_set */

static char *
ngx_http_gw_auth_set(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t                *value, *name;
    ngx_uint_t                i;
    ngx_http_variable_t      *v;
    ngx_http_gw_auth_path_t  *path;

    value = cf->args->elts;

    if (value[1].len < 2 || value[1].data[0] != '$') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid variable name \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    value[1].len--;
    value[1].data++;

    v = ngx_http_add_variable(cf, &value[1], NGX_HTTP_VAR_NOCACHEABLE);
    if (v == NULL) {
        return NGX_CONF_ERROR;
    }

    path = ngx_palloc(cf->pool, sizeof(ngx_http_gw_auth_path_t));
    if (path == NULL) {
        return NGX_CONF_ERROR;
    }

    path->header = cmd->offset;
    path->path = ngx_array_create(cf->pool, cf->args->nelts - 2,
                                  sizeof(ngx_str_t));
    if (path->path == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {
        name = ngx_array_push(path->path);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        *name = value[i];
    }

    v->get_handler = ngx_http_gw_auth_path_variable;
    v->data = (uintptr_t) path;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_gw_auth_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_gw_auth_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_auth_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_gw_auth_handler;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_gw_auth_body_filter;

    return NGX_OK;
}
