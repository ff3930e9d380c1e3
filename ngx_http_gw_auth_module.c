
/*
 * Copyright (C) nginx-gw authors
 *
 * JWT authentication in the access phase, after NGINX Plus auth_jwt:
 * signed (JWS), encrypted (JWE) and nested tokens.  The JOSE work (keys,
 * signatures, decryption) is ngx_http_gw_jwt.c's; this module has the
 * directives, the phase handler, key files named by variables, key
 * requests, the per-worker verified-token cache and the variables.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gw_jwt.h"


#define NGX_HTTP_GW_AUTH_SOURCES_MAX    8

/* verified-token cache, per worker and key set */
#define NGX_HTTP_GW_AUTH_CACHE_MAX      1024
#define NGX_HTTP_GW_AUTH_CACHE_SIZE     (4 * 1024 * 1024)
/* the bytes at the end of a token that its cache hash covers */
#define NGX_HTTP_GW_AUTH_CACHE_HASHED   64

/* at most one refetch of a key request per second for an unknown kid */
#define NGX_HTTP_GW_AUTH_REFETCH        1000

/* key sources named by variables: per worker, at most this many */
#define NGX_HTTP_GW_AUTH_FILES_MAX      64
#define NGX_HTTP_GW_AUTH_URIS_MAX       16
/* a key file named by a variable is checked at most once a second */
#define NGX_HTTP_GW_AUTH_FILE_CHECK     1000


#define NGX_HTTP_GW_AUTH_NONE           0
#define NGX_HTTP_GW_AUTH_OK             1
#define NGX_HTTP_GW_AUTH_MISSING        2
#define NGX_HTTP_GW_AUTH_INVALID        3
#define NGX_HTTP_GW_AUTH_EXPIRED        4
#define NGX_HTTP_GW_AUTH_PREMATURE      5
#define NGX_HTTP_GW_AUTH_DENIED         6
#define NGX_HTTP_GW_AUTH_FORBIDDEN      7
#define NGX_HTTP_GW_AUTH_ERROR          8


typedef struct ngx_http_gw_auth_ctx_s  ngx_http_gw_auth_ctx_t;


/*
 * A key request's per-worker state: one for a fixed uri, one per uri a
 * variable resolved to.  At most one fetch runs at a time; the requests
 * that need its keys wait in "waiters" until it ends or its deadline.
 */

typedef struct {
    ngx_str_t                      uri;
    ngx_pool_t                    *pool;     /* holds keys */
    ngx_array_t                   *keys;
    ngx_msec_t                     loaded;
    ngx_msec_t                     attempt;
    ngx_uint_t                     generation;
    ngx_uint_t                    *keyring;  /* its generation, if fixed */
    u_char                         digest[32];
    ngx_queue_t                    waiters;
    ngx_queue_t                    lru;      /* of a variable key request */
    ngx_event_t                    deadline;
    ngx_http_request_t            *subrequest;
    ngx_pool_cleanup_t            *carrier;  /* on the fetching request */
    ngx_buf_t                     *body;
    ngx_uint_t                     type;     /* for warnings, of the */
    ngx_uint_t                     strict;   /* location that fetches */
    unsigned                       fetching:1;
    unsigned                       failed:1;
    unsigned                       timedout:1;
    unsigned                       too_large:1;
    unsigned                       dynamic:1;
} ngx_http_gw_auth_source_t;


/* gw_auth_jwt_key_request: a fixed uri or one with variables */

typedef struct {
    ngx_http_complex_value_t      *uri;      /* NULL: fixed */
    ngx_http_gw_auth_source_t      source;   /* fixed */
    ngx_queue_t                    lru;      /* variable: sources */
    ngx_uint_t                     count;
} ngx_http_gw_auth_request_t;


/* gw_auth_jwt_key_file without variables: parsed at configuration */

typedef struct {
    ngx_str_t                      name;
    ngx_uint_t                     first;    /* in keyring->keys */
    ngx_uint_t                     nelts;
} ngx_http_gw_auth_kfile_t;


/* a key file named by a variable, cached per worker */

typedef struct {
    ngx_str_node_t                 sn;       /* sn.str: the full name */
    ngx_queue_t                    queue;
    ngx_pool_t                    *pool;     /* keys */
    ngx_array_t                   *keys;
    ngx_msec_t                     checked;
    time_t                         mtime;
    off_t                          size;
    ngx_file_uniq_t                uniq;
    ngx_uint_t                     generation;
    ngx_uint_t                     warned;
    const char                    *error;
    ngx_err_t                      err;
} ngx_http_gw_auth_file_t;


typedef struct {
    ngx_rbtree_t                   rbtree;
    ngx_rbtree_node_t              sentinel;
    ngx_queue_t                    queue;
    ngx_uint_t                     count;
    ngx_uint_t                     generation;
} ngx_http_gw_auth_main_conf_t;


/*
 * The keys of one configuration level (key files parsed at configuration
 * time, key files named by variables, key requests) and the per-worker
 * cache of tokens verified with them.  Locations that inherit the key
 * directives share the keyring.
 */

typedef struct {
    ngx_array_t                   *keys;     /* ngx_http_gw_jwt_key_t */
    ngx_array_t                   *files;    /* ngx_http_gw_auth_kfile_t */
    ngx_array_t                   *vfiles;   /* ngx_http_complex_value_t */
    ngx_array_t                   *sources;  /* ngx_http_gw_auth_request_t */
    ngx_uint_t                     checked;  /* (type, strict) checked */
    ngx_uint_t                     generation;
    ngx_rbtree_t                   rbtree;
    ngx_rbtree_node_t              sentinel;
    ngx_queue_t                    queue;
    ngx_uint_t                     count;
    size_t                         size;
} ngx_http_gw_auth_keyring_t;


/*
 * A verified token; sn.str is the token itself, followed, when variable
 * key sources took part, by the identity of the key sets used.
 */

typedef struct {
    ngx_str_node_t                 sn;
    ngx_queue_t                    queue;
    ngx_uint_t                     refs;
    ngx_uint_t                     generation;
    time_t                         expire;
    size_t                         size;
    json_t                        *header;
    json_t                        *outer;
    json_t                        *claims;
    ngx_str_t                      payload;
    double                         exp;
    double                         nbf;
    unsigned                       has_exp:1;
    unsigned                       has_nbf:1;
    unsigned                       cached:1;
} ngx_http_gw_auth_entry_t;


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
    ngx_msec_t                     key_timeout;
    time_t                         leeway;
    ngx_uint_t                     type;
    ngx_flag_t                     strict;
    ngx_array_t                   *require;
} ngx_http_gw_auth_loc_conf_t;


struct ngx_http_gw_auth_ctx_s {
    ngx_http_request_t            *request;
    ngx_http_gw_auth_entry_t      *entry;
    ngx_http_gw_auth_source_t     *waiting;
    ngx_queue_t                    wait;
    ngx_event_t                    wake;
    ngx_uint_t                     status;
    ngx_uint_t                     fetched;  /* sources waited for, bits */
};


/* what a request verifies its token with */

typedef struct {
    ngx_array_t                   *sets[2 * NGX_HTTP_GW_AUTH_SOURCES_MAX + 1];
    ngx_http_gw_jwt_keys_t         keys;
    ngx_str_t                      id;       /* of variable key sets */
    const char                    *error;    /* a key file is unusable */
    ngx_str_t                      file;
} ngx_http_gw_auth_keyset_t;


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
    ngx_str_t *token, ngx_http_gw_jwt_t *jwt);
static void ngx_http_gw_auth_log_safe(ngx_str_t *s, size_t max);

static ngx_int_t ngx_http_gw_auth_keyset(ngx_http_request_t *r,
    ngx_http_gw_auth_ctx_t *ctx, ngx_http_gw_auth_loc_conf_t *alcf,
    ngx_http_gw_auth_keyset_t *ks, ngx_uint_t refetch);
static ngx_int_t ngx_http_gw_auth_add_id(ngx_http_request_t *r,
    ngx_http_gw_auth_keyset_t *ks, void *p, ngx_uint_t generation);
static ngx_http_gw_auth_source_t *ngx_http_gw_auth_source(
    ngx_http_request_t *r, ngx_http_gw_auth_request_t *rq);
static ngx_int_t ngx_http_gw_auth_wait(ngx_http_request_t *r,
    ngx_http_gw_auth_ctx_t *ctx, ngx_http_gw_auth_source_t *src);
static ngx_int_t ngx_http_gw_auth_fetch(ngx_http_request_t *r,
    ngx_http_gw_auth_ctx_t *ctx, ngx_http_gw_auth_loc_conf_t *alcf,
    ngx_http_gw_auth_source_t *src);
static ngx_int_t ngx_http_gw_auth_fetch_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc);
static void ngx_http_gw_auth_fetch_timeout(ngx_event_t *ev);
static void ngx_http_gw_auth_fetch_abort(void *data);
static void ngx_http_gw_auth_fetch_end(ngx_http_gw_auth_source_t *src);
static void ngx_http_gw_auth_wake_waiters(ngx_http_gw_auth_source_t *src);
static void ngx_http_gw_auth_wake(ngx_event_t *ev);
static ngx_int_t ngx_http_gw_auth_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_gw_auth_fetched(ngx_http_request_t *r,
    ngx_http_gw_auth_source_t *src, ngx_uint_t status);
static ngx_uint_t ngx_http_gw_auth_usable(ngx_log_t *log, ngx_conf_t *cf,
    ngx_array_t *keys, ngx_uint_t first, ngx_uint_t n, ngx_str_t *from,
    ngx_uint_t type, ngx_uint_t strict);

static ngx_http_gw_auth_file_t *ngx_http_gw_auth_file(ngx_http_request_t *r,
    ngx_http_gw_auth_loc_conf_t *alcf, ngx_str_t *name);
static void ngx_http_gw_auth_file_load(ngx_http_request_t *r,
    ngx_http_gw_auth_loc_conf_t *alcf, ngx_http_gw_auth_file_t *f);
static ngx_int_t ngx_http_gw_auth_read_file(ngx_str_t *name,
    ngx_pool_t *pool, ngx_str_t *data, ngx_file_info_t *fi, ngx_err_t *err,
    const char **what);
static void ngx_http_gw_auth_file_free(ngx_http_gw_auth_main_conf_t *amcf,
    ngx_http_gw_auth_file_t *f);
static void ngx_http_gw_auth_files_cleanup(void *data);

static ngx_http_gw_auth_entry_t *ngx_http_gw_auth_cache_lookup(
    ngx_http_gw_auth_keyring_t *kr, ngx_str_t *key, uint32_t hash);
static ngx_http_gw_auth_entry_t *ngx_http_gw_auth_cache_insert(
    ngx_http_gw_auth_keyring_t *kr, ngx_str_t *key, uint32_t hash,
    ngx_http_gw_jwt_t *jwt, ngx_log_t *log);
static void ngx_http_gw_auth_cache_remove(ngx_http_gw_auth_keyring_t *kr,
    ngx_http_gw_auth_entry_t *e);
static void ngx_http_gw_auth_entry_release(ngx_http_gw_auth_entry_t *e);

static ngx_int_t ngx_http_gw_auth_json_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, json_t *j);
static json_t *ngx_http_gw_auth_header_get(ngx_http_gw_auth_entry_t *e,
    char *name, size_t len);
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

static void *ngx_http_gw_auth_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_gw_auth_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_gw_auth_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_http_gw_auth_keyring_t *ngx_http_gw_auth_keyring(ngx_conf_t *cf,
    ngx_http_gw_auth_loc_conf_t *alcf);
static void ngx_http_gw_auth_keyring_cleanup(void *data);
static void ngx_http_gw_auth_source_free(ngx_http_gw_auth_source_t *src);
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


static ngx_str_t  ngx_http_gw_auth_types[] = {
    ngx_null_string,
    ngx_string("signed"),
    ngx_string("encrypted"),
    ngx_string("nested")
};


static ngx_conf_enum_t  ngx_http_gw_auth_type_enum[] = {
    { ngx_string("signed"), NGX_HTTP_GW_JWT_SIGNED },
    { ngx_string("encrypted"), NGX_HTTP_GW_JWT_ENCRYPTED },
    { ngx_string("nested"), NGX_HTTP_GW_JWT_NESTED },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_gw_auth_commands[] = {

    { ngx_string("gw_auth_jwt"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LMT_CONF
                        |NGX_CONF_TAKE12,
      ngx_http_gw_auth_jwt,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gw_auth_jwt_type"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LMT_CONF
                        |NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_auth_loc_conf_t, type),
      &ngx_http_gw_auth_type_enum },

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

    { ngx_string("gw_auth_jwt_key_request_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_auth_loc_conf_t, key_timeout),
      NULL },

    { ngx_string("gw_auth_jwt_key_strict"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_auth_loc_conf_t, strict),
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

    ngx_http_gw_auth_create_main_conf,     /* create main configuration */
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
        ctx->wake.handler = ngx_http_gw_auth_wake;
        ctx->wake.data = r;
        ctx->wake.log = r->connection->log;

        cln->handler = ngx_http_gw_auth_cleanup;

        ngx_http_set_ctx(r, ctx, ngx_http_gw_auth_module);

    } else if (ctx->waiting) {
        /* woken by something else than the end of the key request */
        return NGX_AGAIN;
    }

    /* evaluated anew in every location, e.g. after an internal redirect */

    ctx->status = NGX_HTTP_GW_AUTH_NONE;

    if (ctx->entry) {
        ngx_http_gw_auth_entry_release(ctx->entry);
        ctx->entry = NULL;
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
    u_char                      *p;
    uint32_t                     hash;
    ngx_int_t                    rc;
    ngx_str_t                    key;
    ngx_http_gw_jwt_t            jwt;
    ngx_http_gw_auth_entry_t    *e;
    ngx_http_gw_auth_keyring_t  *kr;
    ngx_http_gw_auth_keyset_t    ks;

    if (token->len > NGX_HTTP_GW_JWT_TOKEN_MAX) {
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

    rc = ngx_http_gw_auth_keyset(r, ctx, alcf, &ks, 0);

    if (rc == NGX_AGAIN || rc == NGX_ERROR) {
        return rc;
    }

    if (ks.error) {
        /* a key file named by a variable is missing or bad */
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gw_auth: key file \"%V\": %s", &ks.file, ks.error);

        return ngx_http_gw_auth_reject(r, ctx, alcf,
                                       NGX_HTTP_GW_AUTH_INVALID);
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gw_auth: no keys available");

        return ngx_http_gw_auth_reject(r, ctx, alcf, NGX_HTTP_GW_AUTH_ERROR);
    }

    /* the cache key: the token, and which variable key sets verify it */

    key = *token;

    if (ks.id.len) {
        p = ngx_pnalloc(r->pool, token->len + ks.id.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        key.data = p;
        p = ngx_cpymem(p, token->data, token->len);
        ngx_memcpy(p, ks.id.data, ks.id.len);
        key.len = token->len + ks.id.len;
    }

    /*
     * The hash covers the token's last bytes (a signature, or a JWE's tag)
     * and the key set identity; hashing a whole RS256 token cost more than
     * the rest of a cache hit.  The tree is ordered by hash, then by the
     * whole key: tokens with equal hashes make no chain (a lookup takes at
     * most the tree's depth in comparisons, about 20 for 1024 tokens), and
     * only the whole key matches.
     */

    p = key.data + token->len
        - ngx_min(token->len, NGX_HTTP_GW_AUTH_CACHE_HASHED);

    hash = ngx_murmur_hash2(p, key.data + key.len - p);

    e = ngx_http_gw_auth_cache_lookup(kr, &key, hash);

    if (e) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gw_auth: token cache hit");

        ctx->entry = e;
        e->refs++;

        return ngx_http_gw_auth_check(r, ctx, alcf);
    }

    rc = ngx_http_gw_jwt_decode(token, &ks.keys, r->pool, &jwt);

    if (rc == NGX_ERROR) {
        ngx_http_gw_jwt_free(&jwt);
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {

        if (jwt.unknown_kid) {
            /* a key request may know the kid now: refetch, then retry */

            rc = ngx_http_gw_auth_keyset(r, ctx, alcf, &ks, 1);

            if (rc == NGX_AGAIN || rc == NGX_ERROR) {
                ngx_http_gw_jwt_free(&jwt);
                return rc;
            }
        }

        ngx_http_gw_auth_log_token(r, token, &jwt);

        return ngx_http_gw_auth_reject(r, ctx, alcf,
                                       NGX_HTTP_GW_AUTH_INVALID);
    }

    e = ngx_http_gw_auth_cache_insert(kr, &key, hash, &jwt,
                                      r->connection->log);
    if (e == NULL) {
        ngx_http_gw_jwt_free(&jwt);
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
    ctx->fetched = 0;

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

    ctx->fetched = 0;

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

    if (ctx->waiting) {
        ngx_queue_remove(&ctx->wait);
        ctx->waiting = NULL;
    }

    if (ctx->wake.posted) {
        ngx_delete_posted_event(&ctx->wake);
    }

    if (ctx->entry) {
        ngx_http_gw_auth_entry_release(ctx->entry);
        ctx->entry = NULL;
    }
}


/* never the whole token: a short prefix, or the kid and alg */

static void
ngx_http_gw_auth_log_token(ngx_http_request_t *r, ngx_str_t *token,
    ngx_http_gw_jwt_t *jwt)
{
    ngx_str_t  kid, alg, prefix;

    if (jwt->alg.len) {
        kid = jwt->kid;
        alg = jwt->alg;

        ngx_http_gw_auth_log_safe(&kid, 64);
        ngx_http_gw_auth_log_safe(&alg, 32);

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gw_auth: invalid token: %s, alg \"%V\", kid \"%V\"",
                      jwt->error, &alg, &kid);

        ngx_http_gw_jwt_free(jwt);
        return;
    }

    prefix = *token;
    ngx_http_gw_auth_log_safe(&prefix, 12);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "gw_auth: invalid token: %s, token \"%V...\"",
                  jwt->error, &prefix);

    ngx_http_gw_jwt_free(jwt);
}


static void
ngx_http_gw_auth_log_safe(ngx_str_t *s, size_t max)
{
    size_t  i;

    if (s->len > max) {
        s->len = max;
    }

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < 0x20 || s->data[i] >= 0x7f || s->data[i] == '"') {
            s->len = i;
            return;
        }
    }
}


/*
 * The key sets a request verifies with: key files parsed at configuration
 * time, key files named by variables (from the per-worker file cache),
 * key requests (fetched when missing or older than gw_auth_jwt_key_cache;
 * with "refetch", when a token names an unknown kid, at most once a
 * second).  NGX_AGAIN: the request waits for a fetch.  NGX_DECLINED: no
 * keys at all.
 */

static ngx_int_t
ngx_http_gw_auth_keyset(ngx_http_request_t *r, ngx_http_gw_auth_ctx_t *ctx,
    ngx_http_gw_auth_loc_conf_t *alcf, ngx_http_gw_auth_keyset_t *ks,
    ngx_uint_t refetch)
{
    ngx_str_t                    name;
    ngx_uint_t                   i, n, bit, stale, throttled;
    ngx_msec_t                   now;
    ngx_http_gw_auth_file_t     *f;
    ngx_http_gw_auth_request_t  *rq;
    ngx_http_gw_auth_source_t   *src;
    ngx_http_gw_auth_keyring_t  *kr;
    ngx_http_complex_value_t    *cv;

    kr = alcf->keyring;

    ngx_memzero(ks, sizeof(ngx_http_gw_auth_keyset_t));

    ks->keys.sets = ks->sets;
    ks->keys.type = alcf->type;
    ks->keys.strict = alcf->strict;

    n = 0;

    if (kr->keys && kr->keys->nelts) {
        ks->sets[n++] = kr->keys;
    }

    if (kr->vfiles) {
        cv = kr->vfiles->elts;

        for (i = 0; i < kr->vfiles->nelts; i++) {
            if (ngx_http_complex_value(r, &cv[i], &name) != NGX_OK) {
                return NGX_ERROR;
            }

            f = ngx_http_gw_auth_file(r, alcf, &name);
            if (f == NULL) {
                return NGX_ERROR;
            }

            if (f->error) {
                ks->error = f->error;
                ks->file = f->sn.str;
                return NGX_DECLINED;
            }

            ks->sets[n++] = f->keys;

            if (ngx_http_gw_auth_add_id(r, ks, f, f->generation) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    if (kr->sources) {
        now = ngx_current_msec;
        rq = kr->sources->elts;

        for (i = 0; i < kr->sources->nelts; i++) {

            src = ngx_http_gw_auth_source(r, &rq[i]);

            if (src == NULL) {
                if (rq[i].uri == NULL) {
                    return NGX_ERROR;
                }

                /* a bad uri, or every per-worker slot busy: no keys */
                continue;
            }

            bit = (ngx_uint_t) 1 << i;

            if (!(ctx->fetched & bit)) {

                throttled = now - src->attempt < NGX_HTTP_GW_AUTH_REFETCH;

                stale = (src->keys == NULL
                         || now - src->loaded >= alcf->key_cache);

                if (src->fetching) {
                    /*
                     * One fetch per key source and worker: the others
                     * wait for it when they have no keys to use meanwhile
                     * (or, for an unknown kid, need the new ones), until
                     * it ends or its deadline passes.
                     */

                    if (!src->timedout && (src->keys == NULL || refetch)) {
                        ctx->fetched |= bit;
                        return ngx_http_gw_auth_wait(r, ctx, src);
                    }

                } else if ((stale && !(src->failed && throttled))
                           || (refetch && !throttled))
                {
                    if (refetch) {
                        ngx_log_debug1(NGX_LOG_DEBUG_HTTP,
                                       r->connection->log, 0,
                                       "gw_auth: unknown kid, refetching "
                                       "\"%V\"", &src->uri);
                    }

                    ctx->fetched |= bit;
                    return ngx_http_gw_auth_fetch(r, ctx, alcf, src);
                }
            }

            if (src->keys) {
                ks->sets[n++] = src->keys;

                if (src->dynamic
                    && ngx_http_gw_auth_add_id(r, ks, src, src->generation)
                       != NGX_OK)
                {
                    return NGX_ERROR;
                }
            }
        }
    }

    ks->keys.nsets = n;

    if (refetch) {
        /* nothing to refetch: the token stays invalid */
        return NGX_DECLINED;
    }

    return n ? NGX_OK : NGX_DECLINED;
}


/* the identity of a variable key set, part of the token cache key */

static ngx_int_t
ngx_http_gw_auth_add_id(ngx_http_request_t *r, ngx_http_gw_auth_keyset_t *ks,
    void *p, ngx_uint_t generation)
{
    u_char  *d;
    size_t   len;

    len = ks->id.len + 2 + NGX_PTR_SIZE * 2 + NGX_INT_T_LEN;

    d = ngx_pnalloc(r->pool, len);
    if (d == NULL) {
        return NGX_ERROR;
    }

    if (ks->id.len) {
        ngx_memcpy(d, ks->id.data, ks->id.len);
    }

    ks->id.len = ngx_sprintf(d + ks->id.len, "%c%p:%ui", 0, p, generation)
                 - d;
    ks->id.data = d;

    return NGX_OK;
}


/* the per-worker state of a key request, for this request's uri */

static ngx_http_gw_auth_source_t *
ngx_http_gw_auth_source(ngx_http_request_t *r, ngx_http_gw_auth_request_t *rq)
{
    size_t                      i;
    ngx_str_t                   uri;
    ngx_queue_t                *q;
    ngx_http_gw_auth_source_t  *src;

    if (rq->uri == NULL) {
        return &rq->source;
    }

    if (ngx_http_complex_value(r, rq->uri, &uri) != NGX_OK) {
        return NULL;
    }

    if (uri.len == 0 || uri.data[0] != '/' || uri.len > 2048) {
        goto invalid;
    }

    for (i = 0; i < uri.len; i++) {
        if (uri.data[i] <= 0x20 || uri.data[i] == 0x7f) {
            goto invalid;
        }
    }

    for (q = ngx_queue_head(&rq->lru);
         q != ngx_queue_sentinel(&rq->lru);
         q = ngx_queue_next(q))
    {
        src = ngx_queue_data(q, ngx_http_gw_auth_source_t, lru);

        if (src->uri.len == uri.len
            && ngx_memcmp(src->uri.data, uri.data, uri.len) == 0)
        {
            ngx_queue_remove(q);
            ngx_queue_insert_head(&rq->lru, q);
            return src;
        }
    }

    /* a new uri: reuse the least recently used idle state when full */

    src = NULL;

    if (rq->count >= NGX_HTTP_GW_AUTH_URIS_MAX) {
        for (q = ngx_queue_last(&rq->lru);
             q != ngx_queue_sentinel(&rq->lru);
             q = ngx_queue_prev(q))
        {
            src = ngx_queue_data(q, ngx_http_gw_auth_source_t, lru);

            if (!src->fetching && ngx_queue_empty(&src->waiters)) {
                break;
            }

            src = NULL;
        }

        if (src == NULL) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "gw_auth: more than %d key request uris in use, "
                          "\"%V\" not fetched", NGX_HTTP_GW_AUTH_URIS_MAX,
                          &uri);
            return NULL;
        }

        ngx_queue_remove(&src->lru);
        ngx_http_gw_auth_source_free(src);
        ngx_free(src);
        rq->count--;
    }

    src = ngx_alloc(sizeof(ngx_http_gw_auth_source_t) + uri.len,
                    ngx_cycle->log);
    if (src == NULL) {
        return NULL;
    }

    ngx_memzero(src, sizeof(ngx_http_gw_auth_source_t));

    src->uri.data = (u_char *) (src + 1);
    src->uri.len = uri.len;
    ngx_memcpy(src->uri.data, uri.data, uri.len);

    src->dynamic = 1;
    ngx_queue_init(&src->waiters);

    ngx_queue_insert_head(&rq->lru, &src->lru);
    rq->count++;

    return src;

invalid:

    ngx_http_gw_auth_log_safe(&uri, 64);

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "gw_auth: invalid key request uri \"%V...\"", &uri);

    return NULL;
}


static ngx_int_t
ngx_http_gw_auth_wait(ngx_http_request_t *r, ngx_http_gw_auth_ctx_t *ctx,
    ngx_http_gw_auth_source_t *src)
{
    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gw_auth: waiting for keys from \"%V\"", &src->uri);

    ngx_queue_insert_tail(&src->waiters, &ctx->wait);
    ctx->waiting = src;

    return NGX_AGAIN;
}


/*
 * A key request is a background subrequest: the request that starts it
 * carries it, and waits for it like every other request that needs its
 * keys.  The fetch has a deadline of its own (gw_auth_jwt_key_request_
 * timeout): when it passes, the waiting requests are answered with the
 * keys there are, while the subrequest itself runs on until the key
 * location's own timeouts end it, and no other fetch of the source
 * starts meanwhile.
 */

static ngx_int_t
ngx_http_gw_auth_fetch(ngx_http_request_t *r, ngx_http_gw_auth_ctx_t *ctx,
    ngx_http_gw_auth_loc_conf_t *alcf, ngx_http_gw_auth_source_t *src)
{
    ngx_pool_cleanup_t          *cln;
    ngx_http_request_t          *sr;
    ngx_http_post_subrequest_t  *ps;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "gw_auth: fetching keys from \"%V\"", &src->uri);

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_gw_auth_fetch_done;
    ps->data = src;

    cln = ngx_pool_cleanup_add(r->main->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_subrequest(r, &src->uri, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_BACKGROUND
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

    /* the fetch ends if the request carrying it ends first */

    cln->handler = ngx_http_gw_auth_fetch_abort;
    cln->data = src;

    src->carrier = cln;
    src->subrequest = sr;
    src->body = NULL;
    src->fetching = 1;
    src->timedout = 0;
    src->too_large = 0;
    src->attempt = ngx_current_msec;
    src->type = alcf->type;
    src->strict = alcf->strict;

    src->deadline.handler = ngx_http_gw_auth_fetch_timeout;
    src->deadline.data = src;
    src->deadline.log = ngx_cycle->log;
    src->deadline.cancelable = 1;

    ngx_add_timer(&src->deadline, alcf->key_timeout);

    return ngx_http_gw_auth_wait(r, ctx, src);
}


static ngx_int_t
ngx_http_gw_auth_fetch_done(ngx_http_request_t *r, void *data, ngx_int_t rc)
{
    ngx_http_gw_auth_source_t *src = data;

    ngx_uint_t  status;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gw_auth: keys request done s:%ui rc:%i",
                   r->headers_out.status, rc);

    if (src->subrequest != r) {
        return rc;
    }

    if (src->body == NULL && r->out) {
        /* kept by the postpone filter: no body filter call reached us */
        src->body = r->out->buf;
    }

    if (rc == NGX_OK) {
        status = r->headers_out.status;

    } else {
        status = (rc > 0) ? (ngx_uint_t) rc : 0;
    }

    if (ngx_http_gw_auth_fetched(r, src, status) != NGX_OK) {
        src->failed = 1;
    }

    src->carrier->handler = NULL;

    ngx_http_gw_auth_fetch_end(src);

    return rc;
}


static void
ngx_http_gw_auth_fetch_timeout(ngx_event_t *ev)
{
    ngx_http_gw_auth_source_t *src = ev->data;

    ngx_connection_t    *c;
    ngx_http_request_t  *sr;

    ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                  "gw_auth: keys request to \"%V\" timed out", &src->uri);

    src->timedout = 1;
    src->failed = 1;

    /*
     * A proxied key request is ended by its own upstream code: shutting
     * the upstream socket down makes the next read see the end of the
     * connection, so the subrequest fails as with a broken connection,
     * however slowly the provider trickles.  (A key location nginx
     * serves itself runs to its end.)
     */

    sr = src->subrequest;

    if (sr && sr->upstream && sr->upstream->peer.connection) {
        c = sr->upstream->peer.connection;

        if (c->fd != (ngx_socket_t) -1) {
            (void) ngx_shutdown_socket(c->fd, SHUT_RDWR);
        }
    }

    ngx_http_gw_auth_wake_waiters(src);
}


/* the request carrying a fetch ended before it: no keys from it */

static void
ngx_http_gw_auth_fetch_abort(void *data)
{
    ngx_http_gw_auth_source_t *src = data;

    src->failed = 1;
    src->attempt = ngx_current_msec;

    ngx_http_gw_auth_fetch_end(src);
}


static void
ngx_http_gw_auth_fetch_end(ngx_http_gw_auth_source_t *src)
{
    src->fetching = 0;
    src->timedout = 0;
    src->subrequest = NULL;
    src->carrier = NULL;
    src->body = NULL;

    if (src->deadline.timer_set) {
        ngx_del_timer(&src->deadline);
    }

    ngx_http_gw_auth_wake_waiters(src);
}


/* the requests waiting for the source's keys go on: with them or without */

static void
ngx_http_gw_auth_wake_waiters(ngx_http_gw_auth_source_t *src)
{
    ngx_queue_t             *q;
    ngx_http_gw_auth_ctx_t  *ctx;

    while (!ngx_queue_empty(&src->waiters)) {
        q = ngx_queue_head(&src->waiters);
        ngx_queue_remove(q);

        ctx = ngx_queue_data(q, ngx_http_gw_auth_ctx_t, wait);
        ctx->waiting = NULL;

        ngx_post_event(&ctx->wake, &ngx_posted_events);
    }
}


static void
ngx_http_gw_auth_wake(ngx_event_t *ev)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ev->data;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0, "gw_auth: resumed");

    r->write_event_handler = ngx_http_core_run_phases;

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


/*
 * The key request's body is collected here, up to the key set size
 * limit, rather than in the subrequest's in-memory buffer, so that
 * subrequest_output_buffer_size does not limit key sets and a too large
 * one is a clean error.  The subrequest is still made "in memory", so
 * its output can never reach the client.
 */

static ngx_int_t
ngx_http_gw_auth_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    size_t                      len, size;
    ngx_buf_t                  *b, *nb;
    ngx_chain_t                *cl;
    ngx_http_gw_auth_source_t  *src;

    if (r == r->main || r->post_subrequest == NULL
        || r->post_subrequest->handler != ngx_http_gw_auth_fetch_done)
    {
        return ngx_http_next_body_filter(r, in);
    }

    src = r->post_subrequest->data;

    if (src->subrequest != r) {
        /* a fetch given up: its late output is dropped */

        for (cl = in; cl; cl = cl->next) {
            cl->buf->pos = cl->buf->last;
            cl->buf->file_pos = cl->buf->file_last;
        }

        return NGX_OK;
    }

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (!ngx_buf_in_memory(b)) {
            if (ngx_buf_size(b)) {
                src->too_large = 1;
            }

            b->file_pos = b->file_last;
            continue;
        }

        len = b->last - b->pos;

        if (len == 0 || src->too_large) {
            b->pos = b->last;
            continue;
        }

        nb = src->body;

        if (nb == NULL || (size_t) (nb->end - nb->last) < len) {
            size = nb ? 2 * (nb->end - nb->start) : 4096;

            if (nb == NULL && r->headers_out.content_length_n > 0
                && r->headers_out.content_length_n
                   <= NGX_HTTP_GW_JWT_KEYS_SIZE)
            {
                size = r->headers_out.content_length_n;
            }

            if (nb) {
                size = ngx_max(size, (size_t) (nb->last - nb->pos) + len);
            }

            size = ngx_max(size, len);

            if (size > NGX_HTTP_GW_JWT_KEYS_SIZE) {
                src->too_large = 1;
                b->pos = b->last;
                continue;
            }

            nb = ngx_create_temp_buf(r->pool, size);
            if (nb == NULL) {
                return NGX_ERROR;
            }

            if (src->body) {
                nb->last = ngx_cpymem(nb->last, src->body->pos,
                                      src->body->last - src->body->pos);
            }

            src->body = nb;
        }

        nb->last = ngx_cpymem(nb->last, b->pos, len);
        b->pos = b->last;
    }

    return NGX_OK;
}


/* a fetch's result: new keys, or an error that keeps the old ones */

static ngx_int_t
ngx_http_gw_auth_fetched(ngx_http_request_t *r,
    ngx_http_gw_auth_source_t *src, ngx_uint_t status)
{
    u_char        digest[32];
    size_t        len;
    ngx_buf_t    *b;
    ngx_pool_t   *pool;
    const char   *err;
    ngx_array_t  *keys;

    if (src->too_large) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gw_auth: keys from \"%V\" too large, limit %uz bytes",
                      &src->uri, (size_t) NGX_HTTP_GW_JWT_KEYS_SIZE);
        return NGX_DECLINED;
    }

    b = src->body;

    if (status != NGX_HTTP_OK || b == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gw_auth: keys request to \"%V\" failed, status %ui",
                      &src->uri, status);
        return NGX_DECLINED;
    }

    len = b->last - b->pos;

    if (len > NGX_HTTP_GW_JWT_KEYS_SIZE) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gw_auth: keys from \"%V\" too large: %uz bytes",
                      &src->uri, len);
        return NGX_DECLINED;
    }

    if (EVP_Digest(b->pos, len, digest, NULL, EVP_sha256(), NULL) != 1) {
        ngx_memzero(digest, sizeof(digest));
    }

    if (src->keys && ngx_memcmp(digest, src->digest, sizeof(digest)) == 0) {
        /* the same document: cached tokens stay valid, no new warnings */
        src->loaded = ngx_current_msec;
        src->failed = 0;
        return NGX_OK;
    }

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    keys = ngx_array_create(pool, 4, sizeof(ngx_http_gw_jwt_key_t));
    if (keys == NULL) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    if (ngx_http_gw_jwt_parse_keys(b->pos, len, pool, keys, &err) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gw_auth: invalid keys from \"%V\": %s",
                      &src->uri, err ? err : "internal error");
        ngx_destroy_pool(pool);
        return NGX_DECLINED;
    }

    if (ngx_http_gw_auth_usable(r->connection->log, NULL, keys, 0,
                                keys->nelts, &src->uri, src->type,
                                src->strict)
        == 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gw_auth: invalid keys from \"%V\": "
                      "no usable key for %V tokens",
                      &src->uri, &ngx_http_gw_auth_types[src->type]);
        ngx_destroy_pool(pool);
        return NGX_DECLINED;
    }

    if (src->pool) {
        ngx_destroy_pool(src->pool);
    }

    src->pool = pool;
    src->keys = keys;
    ngx_memcpy(src->digest, digest, sizeof(digest));

    src->generation++;

    if (src->keyring) {
        /* tokens verified with the keys before are verified anew */
        (*src->keyring)++;
    }

    src->loaded = ngx_current_msec;
    src->failed = 0;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gw_auth: %ui keys loaded from \"%V\"",
                   keys->nelts, &src->uri);

    return NGX_OK;
}


/*
 * Counts the keys of keys[first, first + n) usable for tokens of "type";
 * warns about every other one (which and why) and about short oct keys
 * used anyway.  At configuration time through cf, else through log with
 * the module's prefix.
 */

static ngx_uint_t
ngx_http_gw_auth_usable(ngx_log_t *log, ngx_conf_t *cf, ngx_array_t *keys,
    ngx_uint_t first, ngx_uint_t n, ngx_str_t *from, ngx_uint_t type,
    ngx_uint_t strict)
{
    u_char                  buf[NGX_HTTP_GW_JWT_KID_MAX + 64], *p;
    ngx_str_t               kid;
    ngx_uint_t              i, usable;
    const char             *why, *prefix;
    ngx_http_gw_jwt_key_t  *key;

    key = keys->elts;
    usable = 0;
    prefix = cf ? "" : "gw_auth: ";

    if (cf) {
        log = cf->log;
    }

    for (i = first; i < first + n; i++) {

        kid = key[i].kid;
        ngx_http_gw_auth_log_safe(&kid, 64);

        if (kid.len) {
            p = ngx_snprintf(buf, sizeof(buf), "key %ui (kid \"%V\")",
                             key[i].index, &kid);
        } else {
            p = ngx_snprintf(buf, sizeof(buf), "key %ui", key[i].index);
        }

        *p = '\0';

        if (!ngx_http_gw_jwt_key_usable(&key[i], type, strict, &why)) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "%s%s of \"%V\" skipped for %V tokens: %s",
                          prefix, buf, from, &ngx_http_gw_auth_types[type],
                          why);
            continue;
        }

        usable++;

        if (key[i].short_secret && type != NGX_HTTP_GW_JWT_ENCRYPTED
            && key[i].nosig == NULL)
        {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "%s%s of \"%V\" is an oct key of %uz bytes, "
                          "shorter than the %uz bytes of its hash "
                          "(RFC 7518, 3.2); used anyway, "
                          "\"gw_auth_jwt_key_strict on\" refuses it",
                          prefix, buf, from, key[i].secret.len,
                          ngx_http_gw_jwt_key_min(&key[i]));
        }
    }

    return usable;
}


/*
 * A key file named by a variable, from the per-worker cache: within
 * NGX_HTTP_GW_AUTH_FILE_CHECK (or gw_auth_jwt_key_cache, if longer) of
 * the last check, without any system call; then one stat(), and a read
 * only when the file changed.  A missing or bad file is cached as such.
 * At most NGX_HTTP_GW_AUTH_FILES_MAX files per worker, least recently
 * used first out.
 */

static ngx_http_gw_auth_file_t *
ngx_http_gw_auth_file(ngx_http_request_t *r,
    ngx_http_gw_auth_loc_conf_t *alcf, ngx_str_t *name)
{
    uint32_t                       hash;
    ngx_str_t                      full;
    ngx_msec_t                     period;
    ngx_queue_t                   *q;
    ngx_str_node_t                *sn;
    ngx_http_gw_auth_file_t       *f;
    ngx_http_gw_auth_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_gw_auth_module);

    full = *name;

    if (full.len == 0 || full.len > NGX_MAX_PATH
        || ngx_strlchr(full.data, full.data + full.len, '\0') != NULL)
    {
        ngx_str_set(&full, "(invalid name)");
    }

    if (full.data[0] != '/') {
        if (ngx_get_full_name(r->pool, (ngx_str_t *) &ngx_cycle->conf_prefix,
                              &full)
            != NGX_OK)
        {
            return NULL;
        }
    }

    hash = ngx_crc32_long(full.data, full.len);

    sn = ngx_str_rbtree_lookup(&amcf->rbtree, &full, hash);

    if (sn) {
        f = (ngx_http_gw_auth_file_t *) sn;

        ngx_queue_remove(&f->queue);
        ngx_queue_insert_head(&amcf->queue, &f->queue);

        period = ngx_max(alcf->key_cache, NGX_HTTP_GW_AUTH_FILE_CHECK);

        if (ngx_current_msec - f->checked < period) {
            return f;
        }

        ngx_http_gw_auth_file_load(r, alcf, f);

        return f;
    }

    if (amcf->count >= NGX_HTTP_GW_AUTH_FILES_MAX) {
        q = ngx_queue_last(&amcf->queue);
        ngx_http_gw_auth_file_free(amcf,
                        ngx_queue_data(q, ngx_http_gw_auth_file_t, queue));
    }

    f = ngx_alloc(sizeof(ngx_http_gw_auth_file_t) + full.len + 1,
                  ngx_cycle->log);
    if (f == NULL) {
        return NULL;
    }

    ngx_memzero(f, sizeof(ngx_http_gw_auth_file_t));

    f->sn.node.key = hash;
    f->sn.str.data = (u_char *) (f + 1);
    f->sn.str.len = full.len;
    ngx_memcpy(f->sn.str.data, full.data, full.len);
    f->sn.str.data[full.len] = '\0';

    ngx_rbtree_insert(&amcf->rbtree, &f->sn.node);
    ngx_queue_insert_head(&amcf->queue, &f->queue);
    amcf->count++;

    f->generation = ++amcf->generation;

    ngx_http_gw_auth_file_load(r, alcf, f);

    return f;
}


static void
ngx_http_gw_auth_file_load(ngx_http_request_t *r,
    ngx_http_gw_auth_loc_conf_t *alcf, ngx_http_gw_auth_file_t *f)
{
    ngx_err_t                      err;
    ngx_str_t                      data;
    ngx_uint_t                     bit;
    ngx_pool_t                    *pool, *temp;
    const char                    *what;
    ngx_array_t                   *keys;
    ngx_file_info_t                fi;
    ngx_http_gw_auth_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_gw_auth_module);

    f->checked = ngx_current_msec;

    if (f->keys && f->error == NULL
        && ngx_file_info(f->sn.str.data, &fi) != NGX_FILE_ERROR
        && ngx_file_mtime(&fi) == f->mtime
        && ngx_file_size(&fi) == f->size
        && ngx_file_uniq(&fi) == f->uniq)
    {
        /* unchanged: one stat() per period, no read */
        return;
    }

    temp = ngx_create_pool(4096, r->connection->log);
    if (temp == NULL) {
        f->error = "out of memory";
        return;
    }

    pool = NULL;
    err = 0;
    what = NULL;

    if (ngx_http_gw_auth_read_file(&f->sn.str, temp, &data, &fi, &err, &what)
        != NGX_OK)
    {
        goto failed;
    }

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        what = "out of memory";
        goto failed;
    }

    keys = ngx_array_create(pool, 4, sizeof(ngx_http_gw_jwt_key_t));
    if (keys == NULL) {
        what = "out of memory";
        goto failed;
    }

    if (ngx_http_gw_jwt_parse_keys(data.data, data.len, pool, keys, &what)
        != NGX_OK)
    {
        if (what == NULL) {
            what = "out of memory";
        }

        goto failed;
    }

    bit = (ngx_uint_t) 1 << (alcf->type * 2 + alcf->strict);

    if (ngx_http_gw_auth_usable(r->connection->log, NULL, keys, 0,
                                keys->nelts, &f->sn.str, alcf->type,
                                alcf->strict)
        == 0)
    {
        what = "no usable key";
        goto failed;
    }

    if (f->pool) {
        ngx_destroy_pool(f->pool);
    }

    f->pool = pool;
    f->keys = keys;
    f->error = NULL;
    f->warned = bit;
    f->mtime = ngx_file_mtime(&fi);
    f->size = ngx_file_size(&fi);
    f->uniq = ngx_file_uniq(&fi);
    f->generation = ++amcf->generation;

    ngx_destroy_pool(temp);

    return;

failed:

    if (pool) {
        ngx_destroy_pool(pool);
    }

    ngx_destroy_pool(temp);

    /* a bad file is not used, also when an older version was good */

    if (f->pool) {
        ngx_destroy_pool(f->pool);
        f->pool = NULL;
        f->keys = NULL;
    }

    f->err = err;
    f->error = what;
    f->generation = ++amcf->generation;
}


static ngx_int_t
ngx_http_gw_auth_read_file(ngx_str_t *name, ngx_pool_t *pool,
    ngx_str_t *data, ngx_file_info_t *fi, ngx_err_t *err, const char **what)
{
    size_t    size;
    ssize_t   n;
    ngx_fd_t  fd;

    fd = ngx_open_file(name->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        *err = ngx_errno;
        *what = (*err == NGX_ENOENT) ? "no such file" : "cannot be opened";
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, fi) == NGX_FILE_ERROR) {
        *err = ngx_errno;
        *what = "cannot be read";
        goto failed;
    }

    if (ngx_file_size(fi) > NGX_HTTP_GW_JWT_KEYS_SIZE) {
        *what = "too large";
        goto failed;
    }

    size = (size_t) ngx_file_size(fi);

    data->data = ngx_pnalloc(pool, size + 1);
    if (data->data == NULL) {
        *what = "out of memory";
        goto failed;
    }

    n = ngx_read_fd(fd, data->data, size);

    if (n == -1 || (size_t) n != size) {
        *err = (n == -1) ? ngx_errno : 0;
        *what = "cannot be read";
        goto failed;
    }

    data->len = size;

    (void) ngx_close_file(fd);

    return NGX_OK;

failed:

    (void) ngx_close_file(fd);

    return NGX_ERROR;
}


static void
ngx_http_gw_auth_file_free(ngx_http_gw_auth_main_conf_t *amcf,
    ngx_http_gw_auth_file_t *f)
{
    ngx_rbtree_delete(&amcf->rbtree, &f->sn.node);
    ngx_queue_remove(&f->queue);
    amcf->count--;

    if (f->pool) {
        ngx_destroy_pool(f->pool);
    }

    ngx_free(f);
}


static void
ngx_http_gw_auth_files_cleanup(void *data)
{
    ngx_http_gw_auth_main_conf_t *amcf = data;

    while (!ngx_queue_empty(&amcf->queue)) {
        ngx_http_gw_auth_file_free(amcf,
                        ngx_queue_data(ngx_queue_head(&amcf->queue),
                                       ngx_http_gw_auth_file_t, queue));
    }
}


static ngx_http_gw_auth_entry_t *
ngx_http_gw_auth_cache_lookup(ngx_http_gw_auth_keyring_t *kr,
    ngx_str_t *key, uint32_t hash)
{
    ngx_str_node_t            *sn;
    ngx_http_gw_auth_entry_t  *e;

    sn = ngx_str_rbtree_lookup(&kr->rbtree, key, hash);

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
    ngx_str_t *key, uint32_t hash, ngx_http_gw_jwt_t *t, ngx_log_t *log)
{
    size_t                     size;
    u_char                    *p;
    ngx_uint_t                 i;
    ngx_queue_t               *q;
    ngx_http_gw_auth_entry_t  *e;

    size = sizeof(ngx_http_gw_auth_entry_t) + key->len + t->payload.len;

    e = ngx_alloc(size, log);
    if (e == NULL) {
        return NULL;
    }

    ngx_memzero(e, sizeof(ngx_http_gw_auth_entry_t));

    p = (u_char *) (e + 1);

    e->sn.node.key = hash;
    e->sn.str.data = p;
    e->sn.str.len = key->len;
    p = ngx_cpymem(p, key->data, key->len);

    /*
     * control characters (JSON whitespace, and DEL, which JSON allows
     * unescaped) never reach variables, as with the claim variables
     */

    e->payload.data = p;
    e->payload.len = t->payload.len;

    for (i = 0; i < t->payload.len; i++) {
        p[i] = (t->payload.data[i] < 0x20 || t->payload.data[i] == 0x7f)
               ? ' ' : t->payload.data[i];
    }

    e->header = t->header;
    e->outer = t->outer;
    e->claims = t->claims;
    t->header = NULL;
    t->outer = NULL;
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
    json_decref(e->outer);
    json_decref(e->claims);
    ngx_free(e);
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

    if (ngx_http_gw_jwt_value(r->pool, j, &value, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    v->len = value.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = value.data;

    return NGX_OK;
}


/*
 * A JOSE header member: of the token that carries the claims, then, for
 * nested tokens, of the JWE around it (e.g. "enc").
 */

static json_t *
ngx_http_gw_auth_header_get(ngx_http_gw_auth_entry_t *e, char *name,
    size_t len)
{
    json_t  *j;

    j = json_object_getn(e->header, name, len);

    if (j == NULL && e->outer) {
        j = json_object_getn(e->outer, name, len);
    }

    return j;
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
                      ngx_http_gw_auth_header_get(ctx->entry,
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

    name = path->path->elts;

    if (path->header) {
        j = ngx_http_gw_auth_header_get(ctx->entry, (char *) name[0].data,
                                        name[0].len);
        i = 1;

    } else {
        j = ctx->entry->claims;
        i = 0;
    }

    for ( /* void */ ; j && i < path->path->nelts; i++) {
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


static void *ngx_http_gw_auth_create_main_conf(ngx_conf_t *cf)
{
    ngx_pool_cleanup_t            *cln;
    ngx_http_gw_auth_main_conf_t  *amcf;

    amcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gw_auth_main_conf_t));
    if (amcf == NULL) {
        return NULL;
    }

    ngx_rbtree_init(&amcf->rbtree, &amcf->sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&amcf->queue);

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_gw_auth_files_cleanup;
    cln->data = amcf;

    return amcf;
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
    conf->key_timeout = NGX_CONF_UNSET_MSEC;
    conf->leeway = NGX_CONF_UNSET;
    conf->type = NGX_CONF_UNSET_UINT;
    conf->strict = NGX_CONF_UNSET;
    conf->require = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_http_gw_auth_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_gw_auth_loc_conf_t *prev = parent;
    ngx_http_gw_auth_loc_conf_t *conf = child;

    ngx_uint_t                   i, bit;
    ngx_http_gw_auth_kfile_t    *kf;
    ngx_http_gw_auth_keyring_t  *kr;

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
    ngx_conf_merge_msec_value(conf->key_timeout, prev->key_timeout, 5000);
    ngx_conf_merge_sec_value(conf->leeway, prev->leeway, 0);
    ngx_conf_merge_uint_value(conf->type, prev->type,
                              NGX_HTTP_GW_JWT_SIGNED);
    ngx_conf_merge_value(conf->strict, prev->strict, 0);
    ngx_conf_merge_ptr_value(conf->require, prev->require, NULL);

    kr = conf->keyring;

    if (conf->realm == NULL || kr == NULL || kr->files == NULL) {
        return NGX_CONF_OK;
    }

    /*
     * Key files are checked against the tokens they serve once the
     * location's gw_auth_jwt_type and gw_auth_jwt_key_strict are known:
     * unusable keys are warned about (once per keyring, type and
     * strictness), a file without a usable key is refused.
     */

    bit = (ngx_uint_t) 1 << (conf->type * 2 + conf->strict);

    if (kr->checked & bit) {
        return NGX_CONF_OK;
    }

    kr->checked |= bit;

    kf = kr->files->elts;

    for (i = 0; i < kr->files->nelts; i++) {
        if (ngx_http_gw_auth_usable(NULL, cf, kr->keys, kf[i].first,
                                    kf[i].nelts, &kf[i].name, conf->type,
                                    conf->strict)
            == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid key file \"%V\": "
                               "no usable key for %V tokens",
                               &kf[i].name,
                               &ngx_http_gw_auth_types[conf->type]);
            return NGX_CONF_ERROR;
        }
    }

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

    ngx_uint_t                   i;
    ngx_queue_t                 *q;
    ngx_http_gw_auth_source_t   *src;
    ngx_http_gw_auth_request_t  *rq;

    while (!ngx_queue_empty(&kr->queue)) {
        q = ngx_queue_head(&kr->queue);
        ngx_http_gw_auth_cache_remove(kr,
                    ngx_queue_data(q, ngx_http_gw_auth_entry_t, queue));
    }

    if (kr->sources == NULL) {
        return;
    }

    rq = kr->sources->elts;

    for (i = 0; i < kr->sources->nelts; i++) {
        ngx_http_gw_auth_source_free(&rq[i].source);

        if (rq[i].uri == NULL) {
            continue;
        }

        while (!ngx_queue_empty(&rq[i].lru)) {
            q = ngx_queue_head(&rq[i].lru);
            ngx_queue_remove(q);

            src = ngx_queue_data(q, ngx_http_gw_auth_source_t, lru);
            ngx_http_gw_auth_source_free(src);
            ngx_free(src);
        }
    }
}


static void
ngx_http_gw_auth_source_free(ngx_http_gw_auth_source_t *src)
{
    if (src->deadline.timer_set) {
        ngx_del_timer(&src->deadline);
    }

    if (src->carrier) {
        src->carrier->handler = NULL;
        src->carrier = NULL;
    }

    if (src->pool) {
        ngx_destroy_pool(src->pool);
        src->pool = NULL;
        src->keys = NULL;
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

    ngx_str_t                          *value, file, data;
    ngx_err_t                           err;
    ngx_uint_t                          first;
    const char                         *what;
    ngx_file_info_t                     fi;
    ngx_http_complex_value_t           *cv;
    ngx_http_gw_auth_kfile_t           *kf;
    ngx_http_gw_auth_keyring_t         *kr;
    ngx_http_compile_complex_value_t    ccv;

    value = cf->args->elts;
    file = value[1];

    kr = ngx_http_gw_auth_keyring(cf, alcf);
    if (kr == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_script_variables_count(&file)) {

        /* read at run time, through the per-worker file cache */

        if (kr->vfiles == NULL) {
            kr->vfiles = ngx_array_create(cf->pool, 1,
                                          sizeof(ngx_http_complex_value_t));
            if (kr->vfiles == NULL) {
                return NGX_CONF_ERROR;
            }
        }

        if (kr->vfiles->nelts >= NGX_HTTP_GW_AUTH_SOURCES_MAX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "too many key files with variables, at most %d",
                               NGX_HTTP_GW_AUTH_SOURCES_MAX);
            return NGX_CONF_ERROR;
        }

        cv = ngx_array_push(kr->vfiles);
        if (cv == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &value[1];
        ccv.complex_value = cv;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (kr->keys == NULL) {
        kr->keys = ngx_array_create(cf->pool, 4,
                                    sizeof(ngx_http_gw_jwt_key_t));
        kr->files = ngx_array_create(cf->pool, 1,
                                     sizeof(ngx_http_gw_auth_kfile_t));
        if (kr->keys == NULL || kr->files == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    err = 0;
    what = NULL;

    if (ngx_http_gw_auth_read_file(&file, cf->temp_pool, &data, &fi, &err,
                                   &what)
        != NGX_OK)
    {
        if (err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, err,
                               "key file \"%V\": %s", &file, what);
        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid key file \"%V\": %s", &file, what);
        }

        return NGX_CONF_ERROR;
    }

    first = kr->keys->nelts;

    switch (ngx_http_gw_jwt_parse_keys(data.data, data.len, cf->pool,
                                       kr->keys, &what))
    {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid key file \"%V\": %s", &file, what);
        return NGX_CONF_ERROR;

    default:
        return NGX_CONF_ERROR;
    }

    kf = ngx_array_push(kr->files);
    if (kf == NULL) {
        return NGX_CONF_ERROR;
    }

    kf->name = file;
    kf->first = first;
    kf->nelts = kr->keys->nelts - first;

    return NGX_CONF_OK;
}


static char *
ngx_http_gw_auth_key_request(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gw_auth_loc_conf_t *alcf = conf;

    ngx_str_t                          *value;
    ngx_http_gw_auth_request_t         *rq;
    ngx_http_gw_auth_keyring_t         *kr;
    ngx_http_compile_complex_value_t    ccv;

    value = cf->args->elts;

    if (value[1].len == 0
        || (value[1].data[0] != '/' && value[1].data[0] != '$'))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid key request uri \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    kr = ngx_http_gw_auth_keyring(cf, alcf);
    if (kr == NULL) {
        return NGX_CONF_ERROR;
    }

    if (kr->sources == NULL) {
        /* never reallocated: the elements hold queue heads */
        kr->sources = ngx_array_create(cf->pool,
                                       NGX_HTTP_GW_AUTH_SOURCES_MAX,
                                       sizeof(ngx_http_gw_auth_request_t));
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

    rq = ngx_array_push(kr->sources);
    if (rq == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(rq, sizeof(ngx_http_gw_auth_request_t));

    ngx_queue_init(&rq->source.waiters);
    ngx_queue_init(&rq->lru);

    if (ngx_http_script_variables_count(&value[1]) == 0) {
        rq->source.uri = value[1];
        rq->source.keyring = &kr->generation;
        return NGX_CONF_OK;
    }

    rq->uri = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (rq->uri == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = rq->uri;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    rq->source.uri = value[1];

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