
/*
 * nginx-gw: distributed rate limiting backed by Redis.
 *
 * The access handler evaluates every limit of the location in one atomic
 * Lua script on Redis (EVALSHA, time from Redis TIME): all limits are
 * checked first and charged only when all of them admit the request.  The
 * command travels over the worker's persistent, pipelined hiredis
 * connection (ngx_http_gw_redis.c); the request waits (NGX_AGAIN) until the
 * reply or the deadline, then the phase engine resumes.  Without Redis the
 * request follows gw_ratelimit_fail: open, closed, or local (the same
 * limits per instance, in shared memory).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_sha1.h>

#include "ngx_http_gw_redis.h"


#define NGX_HTTP_GW_RATELIMIT_GCRA        1
#define NGX_HTTP_GW_RATELIMIT_FIXED       2
#define NGX_HTTP_GW_RATELIMIT_SLIDING     3

#define NGX_HTTP_GW_RATELIMIT_PASSED      1
#define NGX_HTTP_GW_RATELIMIT_REJECTED    2
#define NGX_HTTP_GW_RATELIMIT_DRY_RUN     3
#define NGX_HTTP_GW_RATELIMIT_ERROR       4

#define NGX_HTTP_GW_RATELIMIT_FAIL_OPEN   0
#define NGX_HTTP_GW_RATELIMIT_FAIL_CLOSED 1
#define NGX_HTTP_GW_RATELIMIT_FAIL_LOCAL  2

#define NGX_HTTP_GW_RATELIMIT_WAITING     1
#define NGX_HTTP_GW_RATELIMIT_DONE        2
#define NGX_HTTP_GW_RATELIMIT_APPLIED     3

#define NGX_HTTP_GW_RATELIMIT_MAX_LIMITS  16
#define NGX_HTTP_GW_RATELIMIT_MAX_NAME    64
#define NGX_HTTP_GW_RATELIMIT_MAX_PREFIX  64
/* longer keys are stored as their SHA-1 */
#define NGX_HTTP_GW_RATELIMIT_MAX_KEY     256
#define NGX_HTTP_GW_RATELIMIT_MAX_COUNT   1000000
/* a sliding window keeps one sorted-set entry per admitted request */
#define NGX_HTTP_GW_RATELIMIT_MAX_LOG     100000
/* reset and retry times from Redis are clamped to a day */
#define NGX_HTTP_GW_RATELIMIT_MAX_MSEC    86400000


typedef struct {
    ngx_str_t                          name;
    ngx_str_t                          prefix;     /* of the Redis keys */
    ngx_http_complex_value_t           key;
    ngx_uint_t                         algorithm;
    ngx_uint_t                         count;      /* requests per period */
    ngx_uint_t                         period;     /* seconds */
    ngx_uint_t                         burst;
} ngx_http_gw_ratelimit_zone_t;


typedef struct {
    ngx_http_gw_ratelimit_zone_t      *zone;
    ngx_str_t                          name;
    ngx_uint_t                         burst;
    ngx_uint_t                         capacity;   /* X-RateLimit-Limit */
    ngx_str_t                          args[4];    /* for the script */
    u_char                            *file;
    ngx_uint_t                         line;
} ngx_http_gw_ratelimit_limit_t;


typedef struct {
    ngx_rbtree_t                       rbtree;
    ngx_rbtree_node_t                  sentinel;
    ngx_queue_t                        queue;
} ngx_http_gw_ratelimit_shctx_t;


typedef struct {
    ngx_http_gw_ratelimit_shctx_t     *sh;
    ngx_slab_pool_t                   *shpool;
} ngx_http_gw_ratelimit_local_t;


/* a local limit's state, starting at ngx_rbtree_node_t.color */
typedef struct {
    u_char                             color;
    u_char                             pinned;
    u_short                            len;
    ngx_queue_t                        queue;
    int64_t                            expire;     /* usec */
    int64_t                            a;          /* TAT or window */
    int64_t                            b;          /* count in window */
    int64_t                            c;          /* previous window */
    u_char                             data[1];
} ngx_http_gw_ratelimit_node_t;


typedef struct {
    ngx_array_t                        zones;      /* zone pointers */
    ngx_http_gw_redis_conf_t           redis;
    ngx_str_t                          prefix;
    size_t                             local_size;
    ngx_shm_zone_t                    *shm_zone;
    ngx_uint_t                         local_used;
    ngx_str_t                          sha1;       /* of the script */
    ngx_str_t                          token;      /* of this worker */
    ngx_uint_t                         sequence;
    ngx_http_gw_redis_t               *conn;       /* of this worker */
} ngx_http_gw_ratelimit_main_conf_t;


typedef struct {
    ngx_array_t                       *limits;     /* NULL: none, or off */
    ngx_uint_t                         status_code;
    ngx_uint_t                         fail_status;
    ngx_uint_t                         fail;
    ngx_uint_t                         log_level;
    ngx_flag_t                         dry_run;
    ngx_flag_t                         headers;
} ngx_http_gw_ratelimit_loc_conf_t;


typedef struct {
    ngx_uint_t                         allowed;
    ngx_uint_t                         remaining;
    ngx_msec_t                         reset;
    ngx_msec_t                         retry;
} ngx_http_gw_ratelimit_result_t;


typedef struct {
    ngx_http_request_t                *request;
    ngx_http_gw_ratelimit_main_conf_t *gmcf;
    ngx_http_gw_ratelimit_loc_conf_t  *glcf;
    ngx_http_gw_redis_cmd_t           *cmd;
    ngx_http_gw_ratelimit_limit_t    **limits;     /* those applied */
    ngx_str_t                         *keys;
    ngx_http_gw_ratelimit_result_t    *results;
    ngx_uint_t                         n;
    int                                argc;
    const char                       **argv;
    size_t                            *argvlen;
    ngx_uint_t                         status;
    ngx_uint_t                         state;
    unsigned                           known:1;    /* results are valid */
    unsigned                           rejected:1;
    unsigned                           closed:1;
    unsigned                           eval:1;
    unsigned                           headers_done:1;
} ngx_http_gw_ratelimit_ctx_t;


static ngx_int_t ngx_http_gw_ratelimit_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_gw_ratelimit_start(ngx_http_request_t *r,
    ngx_http_gw_ratelimit_main_conf_t *gmcf,
    ngx_http_gw_ratelimit_loc_conf_t *glcf);
static ngx_int_t ngx_http_gw_ratelimit_key(ngx_http_request_t *r,
    ngx_http_gw_ratelimit_zone_t *zone, ngx_str_t *raw, ngx_str_t *key);
static ngx_int_t ngx_http_gw_ratelimit_command(ngx_http_request_t *r,
    ngx_http_gw_ratelimit_ctx_t *ctx);
static void ngx_http_gw_ratelimit_reply(void *data, redisReply *reply);
static ngx_int_t ngx_http_gw_ratelimit_parse_reply(redisReply *reply,
    ngx_uint_t n, const ngx_uint_t *capacity,
    ngx_http_gw_ratelimit_result_t *res, ngx_uint_t *admitted);
static ngx_int_t ngx_http_gw_ratelimit_noscript(redisReply *reply);
static void ngx_http_gw_ratelimit_decide(ngx_http_gw_ratelimit_ctx_t *ctx,
    ngx_uint_t admitted);
static void ngx_http_gw_ratelimit_unavailable(
    ngx_http_gw_ratelimit_ctx_t *ctx);
static ngx_int_t ngx_http_gw_ratelimit_apply(ngx_http_request_t *r,
    ngx_http_gw_ratelimit_ctx_t *ctx);
static ngx_int_t ngx_http_gw_ratelimit_reject(ngx_http_request_t *r,
    ngx_http_gw_ratelimit_ctx_t *ctx, ngx_uint_t status, char *reason);
static void ngx_http_gw_ratelimit_resume(ngx_http_request_t *r);
static void ngx_http_gw_ratelimit_cleanup(void *data);
static ngx_http_gw_ratelimit_ctx_t *ngx_http_gw_ratelimit_get_ctx(
    ngx_http_request_t *r);
static ngx_uint_t ngx_http_gw_ratelimit_tightest(
    ngx_http_gw_ratelimit_ctx_t *ctx);
static ngx_msec_t ngx_http_gw_ratelimit_retry(
    ngx_http_gw_ratelimit_ctx_t *ctx);

static ngx_int_t ngx_http_gw_ratelimit_local(ngx_http_gw_ratelimit_ctx_t *ctx,
    ngx_uint_t *admitted);
static ngx_http_gw_ratelimit_node_t *ngx_http_gw_ratelimit_local_lookup(
    ngx_http_gw_ratelimit_local_t *local, ngx_str_t *key, int64_t now);
static void ngx_http_gw_ratelimit_local_expire(
    ngx_http_gw_ratelimit_local_t *local, int64_t now, ngx_uint_t force);
static void ngx_http_gw_ratelimit_local_eval(
    ngx_http_gw_ratelimit_limit_t *limit, ngx_http_gw_ratelimit_node_t *lr,
    int64_t now, ngx_uint_t charge, ngx_http_gw_ratelimit_result_t *res);
static void ngx_http_gw_ratelimit_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_http_gw_ratelimit_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);

static ngx_int_t ngx_http_gw_ratelimit_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_gw_ratelimit_add_header(ngx_http_request_t *r,
    char *name, ngx_str_t *value);
static ngx_int_t ngx_http_gw_ratelimit_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static void *ngx_http_gw_ratelimit_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_gw_ratelimit_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_gw_ratelimit_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_gw_ratelimit_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_gw_ratelimit_resolve(ngx_conf_t *cf,
    ngx_http_gw_ratelimit_main_conf_t *gmcf, ngx_array_t *limits);
static char *ngx_http_gw_ratelimit_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gw_ratelimit_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gw_ratelimit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_gw_ratelimit_number(ngx_str_t *value, size_t skip,
    ngx_uint_t max);
static ngx_int_t ngx_http_gw_ratelimit_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_gw_ratelimit_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_gw_ratelimit_init_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_gw_ratelimit_init_worker(ngx_cycle_t *cycle,
    ngx_http_gw_ratelimit_main_conf_t *gmcf);
static void ngx_http_gw_ratelimit_exit_process(ngx_cycle_t *cycle);


/*
 * KEYS[i]: the key of limit i.  ARGV[1]: an id unique to the request (the
 * member a sliding window stores).  ARGV[4i-2 .. 4i+1]: algorithm (1 gcra,
 * 2 fixed window, 3 sliding window), period in usec, count per period,
 * burst.  Returns {admitted, then per limit: allowed, remaining, reset in
 * msec (until more quota), retry in msec (until admitted)}.  Every key
 * written gets a TTL; a rejected request writes nothing.
 */

static ngx_str_t  ngx_http_gw_ratelimit_script = ngx_string(
"if redis.replicate_commands then redis.replicate_commands() end\n"
"local f = string.format\n"
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
"local n = #KEYS\n"
"local s = {}\n"
"local admit = 1\n"
"for i = 1, n do\n"
"  local k, j = KEYS[i], 4 * i - 2\n"
"  local a, p = tonumber(ARGV[j]), tonumber(ARGV[j + 1])\n"
"  local c, b = tonumber(ARGV[j + 2]), tonumber(ARGV[j + 3])\n"
"  local e = {a = a, p = p, q = c + b}\n"
"  if a == 1 then\n"
"    e.T = p / c\n"
"    e.cap = (b + 1) * e.T\n"
"    local tat = tonumber(redis.call('GET', k)) or now\n"
"    if tat < now then tat = now end\n"
"    e.tat = tat\n"
"    e.ok = tat + e.T - now <= e.cap + 1\n"
"  elseif a == 2 then\n"
"    e.w = math.floor(now / p)\n"
"    local v = redis.call('HMGET', k, 'w', 'c')\n"
"    e.c = 0\n"
"    if tonumber(v[1]) == e.w then e.c = tonumber(v[2]) or 0 end\n"
"    e.ok = e.c < e.q\n"
"  else\n"
"    e.from = f('%.0f', now - p)\n"
"    e.c = redis.call('ZCOUNT', k, '(' .. e.from, '+inf')\n"
"    e.ok = e.c < e.q\n"
"  end\n"
"  if not e.ok then admit = 0 end\n"
"  s[i] = e\n"
"end\n"
"local r = {admit}\n"
"for i = 1, n do\n"
"  local k, e = KEYS[i], s[i]\n"
"  local rem, reset, retry = 0, 0, 0\n"
"  if e.a == 1 then\n"
"    local tat = e.tat\n"
"    if admit == 1 then\n"
"      tat = tat + e.T\n"
"      redis.call('SET', k, f('%.0f', tat), 'PX',\n"
"                 math.ceil((tat - now) / 1000))\n"
"    end\n"
"    local d = tat - now\n"
"    rem = math.floor((e.cap - d) / e.T + 0.000001)\n"
"    if d > 0 then reset = d - math.floor((d - 1) / e.T) * e.T end\n"
"    if not e.ok then retry = e.tat + e.T - now - e.cap end\n"
"  elseif e.a == 2 then\n"
"    local c = e.c\n"
"    reset = (e.w + 1) * e.p - now\n"
"    if admit == 1 then\n"
"      c = c + 1\n"
"      redis.call('HSET', k, 'w', f('%.0f', e.w), 'c', c)\n"
"      redis.call('PEXPIRE', k, math.ceil(reset / 1000))\n"
"    end\n"
"    rem = e.q - c\n"
"    if not e.ok then retry = reset end\n"
"  else\n"
"    local c = e.c\n"
"    if admit == 1 then\n"
"      redis.call('ZREMRANGEBYSCORE', k, '-inf', e.from)\n"
"      redis.call('ZADD', k, f('%.0f', now), ARGV[1])\n"
"      redis.call('PEXPIRE', k, math.ceil(e.p / 1000))\n"
"      c = c + 1\n"
"    end\n"
"    rem = e.q - c\n"
"    if c > 0 then\n"
"      local o = redis.call('ZRANGEBYSCORE', k, '(' .. e.from, '+inf',\n"
"                           'WITHSCORES', 'LIMIT', 0, 1)\n"
"      reset = tonumber(o[2]) + e.p - now\n"
"    end\n"
"    if not e.ok then\n"
"      local o = redis.call('ZRANGEBYSCORE', k, '(' .. e.from, '+inf',\n"
"                           'WITHSCORES', 'LIMIT', c - e.q, 1)\n"
"      retry = tonumber(o[2]) + e.p - now\n"
"    end\n"
"  end\n"
"  if rem < 0 then rem = 0 end\n"
"  if reset < 0 then reset = 0 end\n"
"  if retry < 0 then retry = 0 end\n"
"  r[#r + 1] = e.ok and 1 or 0\n"
"  r[#r + 1] = rem\n"
"  r[#r + 1] = math.ceil(reset / 1000)\n"
"  r[#r + 1] = math.ceil(retry / 1000)\n"
"end\n"
"return r\n");


static ngx_conf_enum_t  ngx_http_gw_ratelimit_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_gw_ratelimit_fail_policies[] = {
    { ngx_string("open"), NGX_HTTP_GW_RATELIMIT_FAIL_OPEN },
    { ngx_string("closed"), NGX_HTTP_GW_RATELIMIT_FAIL_CLOSED },
    { ngx_string("local"), NGX_HTTP_GW_RATELIMIT_FAIL_LOCAL },
    { ngx_null_string, 0 }
};


static ngx_conf_num_bounds_t  ngx_http_gw_ratelimit_status_bounds = {
    ngx_conf_check_num_bounds, 400, 599
};


static ngx_command_t  ngx_http_gw_ratelimit_commands[] = {

    { ngx_string("gw_ratelimit_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_gw_ratelimit_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gw_ratelimit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_gw_ratelimit_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gw_ratelimit_local_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_gw_ratelimit_main_conf_t, local_size),
      NULL },

    { ngx_string("gw_ratelimit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_gw_ratelimit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gw_ratelimit_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_ratelimit_loc_conf_t, status_code),
      &ngx_http_gw_ratelimit_status_bounds },

    { ngx_string("gw_ratelimit_fail_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_ratelimit_loc_conf_t, fail_status),
      &ngx_http_gw_ratelimit_status_bounds },

    { ngx_string("gw_ratelimit_dry_run"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_ratelimit_loc_conf_t, dry_run),
      NULL },

    { ngx_string("gw_ratelimit_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_ratelimit_loc_conf_t, log_level),
      &ngx_http_gw_ratelimit_log_levels },

    { ngx_string("gw_ratelimit_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_ratelimit_loc_conf_t, headers),
      NULL },

    { ngx_string("gw_ratelimit_fail"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gw_ratelimit_loc_conf_t, fail),
      &ngx_http_gw_ratelimit_fail_policies },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_gw_ratelimit_module_ctx = {
    ngx_http_gw_ratelimit_add_variables,   /* preconfiguration */
    ngx_http_gw_ratelimit_init,            /* postconfiguration */

    ngx_http_gw_ratelimit_create_main_conf, /* create main configuration */
    ngx_http_gw_ratelimit_init_main_conf,  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_gw_ratelimit_create_loc_conf, /* create location configuration */
    ngx_http_gw_ratelimit_merge_loc_conf   /* merge location configuration */
};


ngx_module_t  ngx_http_gw_ratelimit_module = {
    NGX_MODULE_V1,
    &ngx_http_gw_ratelimit_module_ctx,     /* module context */
    ngx_http_gw_ratelimit_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_gw_ratelimit_init_process,    /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_gw_ratelimit_exit_process,    /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_gw_ratelimit_vars[] = {

    { ngx_string("gw_ratelimit_status"), NULL,
      ngx_http_gw_ratelimit_status_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_gw_ratelimit_status_names[] = {
    ngx_null_string,
    ngx_string("PASSED"),
    ngx_string("REJECTED"),
    ngx_string("REJECTED_DRY_RUN"),
    ngx_string("ERROR")
};


static char  ngx_http_gw_ratelimit_algorithm_tags[] = "-gfs";


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


static ngx_int_t
ngx_http_gw_ratelimit_handler(ngx_http_request_t *r)
{
    ngx_http_gw_ratelimit_ctx_t        *ctx;
    ngx_http_gw_ratelimit_loc_conf_t   *glcf;
    ngx_http_gw_ratelimit_main_conf_t  *gmcf;

    /* the access phase skips subrequests, the precontent phase does not */

    if (r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_gw_ratelimit_get_ctx(r);

    if (ctx != NULL) {

        switch (ctx->state) {

        case NGX_HTTP_GW_RATELIMIT_DONE:
            return ngx_http_gw_ratelimit_apply(r, ctx);

        case NGX_HTTP_GW_RATELIMIT_WAITING:
            return NGX_AGAIN;

        default:
            /* decided once per request, even across internal redirects */
            return NGX_DECLINED;
        }
    }

    glcf = ngx_http_get_module_loc_conf(r, ngx_http_gw_ratelimit_module);

    if (glcf->limits == NULL) {
        return NGX_DECLINED;
    }

    gmcf = ngx_http_get_module_main_conf(r, ngx_http_gw_ratelimit_module);

    return ngx_http_gw_ratelimit_start(r, gmcf, glcf);
}


static ngx_int_t
ngx_http_gw_ratelimit_start(ngx_http_request_t *r,
    ngx_http_gw_ratelimit_main_conf_t *gmcf,
    ngx_http_gw_ratelimit_loc_conf_t *glcf)
{
    ngx_str_t                       raw;
    ngx_uint_t                      i, n;
    ngx_pool_cleanup_t             *cln;
    ngx_http_gw_redis_cmd_t        *cmd;
    ngx_http_gw_ratelimit_ctx_t    *ctx;
    ngx_http_gw_ratelimit_limit_t  *limits;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_gw_ratelimit_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the cleanup finds the context again after an internal redirect */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_gw_ratelimit_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_gw_ratelimit_module);

    ctx->request = r;
    ctx->gmcf = gmcf;
    ctx->glcf = glcf;
    ctx->state = NGX_HTTP_GW_RATELIMIT_APPLIED;

    limits = glcf->limits->elts;
    n = glcf->limits->nelts;

    ctx->limits = ngx_palloc(r->pool, n * sizeof(void *));
    ctx->keys = ngx_palloc(r->pool, n * sizeof(ngx_str_t));
    ctx->results = ngx_pcalloc(r->pool,
                               n * sizeof(ngx_http_gw_ratelimit_result_t));

    if (ctx->limits == NULL || ctx->keys == NULL || ctx->results == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < n; i++) {

        if (ngx_http_complex_value(r, &limits[i].zone->key, &raw) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (raw.len == 0) {
            continue;
        }

        if (ngx_http_gw_ratelimit_key(r, limits[i].zone, &raw,
                                      &ctx->keys[ctx->n])
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->limits[ctx->n++] = &limits[i];
    }

    if (ctx->n == 0) {
        /* no key, no limit: like limit_req, the status stays empty */
        return NGX_DECLINED;
    }

    if (ngx_http_gw_ratelimit_command(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cmd = NULL;

    if (gmcf->conn == NULL && ngx_process == NGX_PROCESS_SINGLE) {
        /* master_process off and reloaded: init_process does not run */
        (void) ngx_http_gw_ratelimit_init_worker((ngx_cycle_t *) ngx_cycle,
                                                 gmcf);
    }

    if (gmcf->conn != NULL) {
        cmd = ngx_http_gw_redis_send(gmcf->conn, ctx->argc, ctx->argv,
                                     ctx->argvlen, ngx_http_gw_ratelimit_reply,
                                     ctx);
    }

    if (cmd == NULL) {
        /* backing off, too busy or not connectable: do not wait */
        ngx_http_gw_ratelimit_unavailable(ctx);
        return ngx_http_gw_ratelimit_apply(r, ctx);
    }

    ctx->cmd = cmd;
    ctx->state = NGX_HTTP_GW_RATELIMIT_WAITING;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gw_ratelimit: waiting for redis, %ui limits", ctx->n);

    /* notice a client that goes away meanwhile */

    if (r->connection->read->ready) {
        ngx_post_event(r->connection->read, &ngx_posted_events);

    } else if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
        ngx_http_gw_redis_detach(cmd);
        ctx->cmd = NULL;
        ctx->state = NGX_HTTP_GW_RATELIMIT_APPLIED;
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    return NGX_AGAIN;
}


/*
 * "<prefix><zone>:<algorithm>:<key>", or "...<algorithm>#<sha1 of key>" for
 * a long key: zones never share a key, keys are binary-safe and bounded.
 */

static ngx_int_t
ngx_http_gw_ratelimit_key(ngx_http_request_t *r,
    ngx_http_gw_ratelimit_zone_t *zone, ngx_str_t *raw, ngx_str_t *key)
{
    u_char     *p;
    u_char      hash[20];
    ngx_sha1_t  sha1;

    if (raw->len <= NGX_HTTP_GW_RATELIMIT_MAX_KEY) {
        key->len = zone->prefix.len + 1 + raw->len;

    } else {
        key->len = zone->prefix.len + 1 + 40;
    }

    key->data = ngx_pnalloc(r->pool, key->len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(key->data, zone->prefix.data, zone->prefix.len);

    if (raw->len <= NGX_HTTP_GW_RATELIMIT_MAX_KEY) {
        *p++ = ':';
        ngx_memcpy(p, raw->data, raw->len);
        return NGX_OK;
    }

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, raw->data, raw->len);
    ngx_sha1_final(hash, &sha1);

    *p++ = '#';
    ngx_hex_dump(p, hash, 20);

    return NGX_OK;
}


/* EVALSHA sha1 n key... id (algorithm period count burst)... */

static ngx_int_t
ngx_http_gw_ratelimit_command(ngx_http_request_t *r,
    ngx_http_gw_ratelimit_ctx_t *ctx)
{
    u_char                             *p;
    size_t                             *argvlen;
    ngx_uint_t                          i, j, k;
    const char                        **argv;
    ngx_http_gw_ratelimit_main_conf_t  *gmcf;

    gmcf = ctx->gmcf;

    ctx->argc = (int) (4 + 5 * ctx->n);

    argv = ngx_palloc(r->pool, ctx->argc * sizeof(char *));
    argvlen = ngx_palloc(r->pool, ctx->argc * sizeof(size_t));

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN + gmcf->token.len + 1
                             + NGX_ATOMIC_T_LEN);

    if (argv == NULL || argvlen == NULL || p == NULL) {
        return NGX_ERROR;
    }

    argv[0] = "EVALSHA";
    argvlen[0] = sizeof("EVALSHA") - 1;
    argv[1] = (const char *) gmcf->sha1.data;
    argvlen[1] = gmcf->sha1.len;

    argv[2] = (const char *) p;
    argvlen[2] = ngx_sprintf(p, "%ui", ctx->n) - p;
    p += argvlen[2];

    k = 3;

    for (i = 0; i < ctx->n; i++) {
        argv[k] = (const char *) ctx->keys[i].data;
        argvlen[k++] = ctx->keys[i].len;
    }

    argv[k] = (const char *) p;
    argvlen[k++] = ngx_sprintf(p, "%V-%ui", &gmcf->token, gmcf->sequence++)
                   - p;

    for (i = 0; i < ctx->n; i++) {
        for (j = 0; j < 4; j++) {
            argv[k] = (const char *) ctx->limits[i]->args[j].data;
            argvlen[k++] = ctx->limits[i]->args[j].len;
        }
    }

    ctx->argv = argv;
    ctx->argvlen = argvlen;

    return NGX_OK;
}


static void
ngx_http_gw_ratelimit_reply(void *data, redisReply *reply)
{
    ngx_http_gw_ratelimit_ctx_t *ctx = data;

    size_t                          len;
    u_char                          buf[128];
    ngx_uint_t                      i, admitted;
    ngx_uint_t                      capacity[NGX_HTTP_GW_RATELIMIT_MAX_LIMITS];
    ngx_http_request_t             *r;
    ngx_http_gw_redis_t            *conn;
    ngx_http_gw_ratelimit_result_t  res[NGX_HTTP_GW_RATELIMIT_MAX_LIMITS];

    r = ctx->request;
    conn = ctx->gmcf->conn;

    /* the script cache was flushed: send the script itself, same deadline */

    if (reply != NULL
        && ctx->cmd != NULL
        && !ctx->eval
        && ngx_http_gw_ratelimit_noscript(reply))
    {
        ctx->eval = 1;
        ctx->argv[0] = "EVAL";
        ctx->argvlen[0] = sizeof("EVAL") - 1;
        ctx->argv[1] = (const char *) ngx_http_gw_ratelimit_script.data;
        ctx->argvlen[1] = ngx_http_gw_ratelimit_script.len;

        if (ngx_http_gw_redis_resend(ctx->cmd, ctx->argc, ctx->argv,
                                     ctx->argvlen)
            == NGX_OK)
        {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "gw_ratelimit: NOSCRIPT, sent EVAL");
            return;
        }
    }

    ctx->cmd = NULL;

    if (reply == NULL) {
        ngx_http_gw_ratelimit_unavailable(ctx);
        goto done;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        len = ngx_http_gw_redis_printable(buf, sizeof(buf),
                                          (u_char *) reply->str, reply->len);
        ngx_http_gw_redis_log_error(conn, NGX_LOG_ERR,
                                    "gw_ratelimit redis \"%V\": "
                                    "script failed: \"%*s\"",
                                    &conn->conf->name, len, buf);
        ngx_http_gw_ratelimit_unavailable(ctx);
        goto done;
    }

    for (i = 0; i < ctx->n; i++) {
        capacity[i] = ctx->limits[i]->capacity;
    }

    if (ngx_http_gw_ratelimit_parse_reply(reply, ctx->n, capacity, res,
                                          &admitted)
        != NGX_OK)
    {
        ngx_http_gw_redis_log_error(conn, NGX_LOG_ERR,
                                    "gw_ratelimit redis \"%V\": "
                                    "unexpected script reply",
                                    &conn->conf->name);
        ngx_http_gw_ratelimit_unavailable(ctx);
        goto done;
    }

    ngx_memcpy(ctx->results, res,
               ctx->n * sizeof(ngx_http_gw_ratelimit_result_t));
    ctx->known = 1;

    ngx_http_gw_ratelimit_decide(ctx, admitted);

done:

    ctx->state = NGX_HTTP_GW_RATELIMIT_DONE;

    /*
     * Resume from the posted events queue rather than from inside the
     * hiredis callback; should the request end before that, closing its
     * connection (or stream) deletes the posted event.
     */

    r->write_event_handler = ngx_http_gw_ratelimit_resume;

    ngx_post_event(r->connection->write, &ngx_posted_events);
}


/*
 * Interprets the script's reply.  Everything is checked: the reply comes
 * from the network, and a wrong decision is worse than none (the caller
 * then follows the fail policy).
 */

static ngx_int_t
ngx_http_gw_ratelimit_parse_reply(redisReply *reply, ngx_uint_t n,
    const ngx_uint_t *capacity, ngx_http_gw_ratelimit_result_t *res,
    ngx_uint_t *admitted)
{
    ngx_uint_t   i, k, all;
    long long    v[4];
    redisReply  *e;

    if (reply == NULL
        || reply->type != REDIS_REPLY_ARRAY
        || n == 0
        || n > NGX_HTTP_GW_RATELIMIT_MAX_LIMITS
        || reply->elements != 1 + 4 * n
        || reply->element == NULL)
    {
        return NGX_ERROR;
    }

    e = reply->element[0];

    if (e == NULL
        || e->type != REDIS_REPLY_INTEGER
        || (e->integer != 0 && e->integer != 1))
    {
        return NGX_ERROR;
    }

    *admitted = (ngx_uint_t) e->integer;
    all = 1;

    for (i = 0; i < n; i++) {

        for (k = 0; k < 4; k++) {
            e = reply->element[1 + 4 * i + k];

            if (e == NULL || e->type != REDIS_REPLY_INTEGER
                || e->integer < 0)
            {
                return NGX_ERROR;
            }

            v[k] = e->integer;
        }

        if (v[0] > 1 || v[1] > (long long) capacity[i]) {
            return NGX_ERROR;
        }

        res[i].allowed = (ngx_uint_t) v[0];
        res[i].remaining = (ngx_uint_t) v[1];
        res[i].reset = (ngx_msec_t) ngx_min(v[2],
                                            NGX_HTTP_GW_RATELIMIT_MAX_MSEC);
        res[i].retry = (ngx_msec_t) ngx_min(v[3],
                                            NGX_HTTP_GW_RATELIMIT_MAX_MSEC);

        if (!res[i].allowed) {
            all = 0;
        }
    }

    if (*admitted != all) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_ratelimit_noscript(redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR
           && reply->str != NULL
           && reply->len >= sizeof("NOSCRIPT") - 1
           && ngx_strncmp(reply->str, "NOSCRIPT", sizeof("NOSCRIPT") - 1)
              == 0;
}


static void
ngx_http_gw_ratelimit_decide(ngx_http_gw_ratelimit_ctx_t *ctx,
    ngx_uint_t admitted)
{
    ngx_uint_t           i;
    ngx_str_t           *name;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (admitted) {
        if (ctx->status == 0) {
            ctx->status = NGX_HTTP_GW_RATELIMIT_PASSED;
        }

        return;
    }

    name = NULL;

    for (i = 0; i < ctx->n; i++) {
        if (!ctx->results[i].allowed) {
            name = &ctx->limits[i]->zone->name;
            break;
        }
    }

    ngx_log_error(ctx->glcf->log_level, r->connection->log, 0,
                  "limiting requests%s%s by zone \"%V\"",
                  ctx->glcf->dry_run ? ", dry run" : "",
                  ctx->status == NGX_HTTP_GW_RATELIMIT_ERROR
                  ? ", redis unavailable, local limit" : "",
                  name);

    if (ctx->glcf->dry_run) {
        if (ctx->status == 0) {
            ctx->status = NGX_HTTP_GW_RATELIMIT_DRY_RUN;
        }

        return;
    }

    if (ctx->status == 0) {
        ctx->status = NGX_HTTP_GW_RATELIMIT_REJECTED;
    }

    ctx->rejected = 1;
}


/* Redis gave no decision: the request follows gw_ratelimit_fail */

static void
ngx_http_gw_ratelimit_unavailable(ngx_http_gw_ratelimit_ctx_t *ctx)
{
    ngx_uint_t  admitted;

    ctx->status = NGX_HTTP_GW_RATELIMIT_ERROR;
    ctx->known = 0;

    switch (ctx->glcf->fail) {

    case NGX_HTTP_GW_RATELIMIT_FAIL_CLOSED:
        if (ctx->glcf->dry_run) {
            ngx_log_error(ctx->glcf->log_level, ctx->request->connection->log,
                          0, "limiting requests, dry run, redis unavailable");
            return;
        }

        ctx->closed = 1;
        return;

    case NGX_HTTP_GW_RATELIMIT_FAIL_LOCAL:
        if (ngx_http_gw_ratelimit_local(ctx, &admitted) == NGX_OK) {
            ctx->known = 1;
            ngx_http_gw_ratelimit_decide(ctx, admitted);
        }

        return;

    default: /* NGX_HTTP_GW_RATELIMIT_FAIL_OPEN */
        return;
    }
}


static ngx_int_t
ngx_http_gw_ratelimit_apply(ngx_http_request_t *r,
    ngx_http_gw_ratelimit_ctx_t *ctx)
{
    ctx->state = NGX_HTTP_GW_RATELIMIT_APPLIED;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gw_ratelimit: status %V",
                   &ngx_http_gw_ratelimit_status_names[ctx->status]);

    if (ctx->closed) {
        return ngx_http_gw_ratelimit_reject(r, ctx, ctx->glcf->fail_status,
                                            "ratelimit_unavailable");
    }

    if (ctx->rejected) {
        return ngx_http_gw_ratelimit_reject(r, ctx, ctx->glcf->status_code,
                                            "rate_limited");
    }

    /* a limit never grants access: the other access handlers decide */

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_gw_ratelimit_reject(ngx_http_request_t *r,
    ngx_http_gw_ratelimit_ctx_t *ctx, ngx_uint_t status, char *reason)
{
    size_t                     len;
    char                      *text;
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_uint_t                 i;
    ngx_chain_t                out;
    ngx_msec_t                 retry;
    ngx_http_err_page_t       *err_page;
    ngx_http_core_loc_conf_t  *clcf;

    /* an error_page for the status takes over, as for limit_req */

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->error_pages) {
        err_page = clcf->error_pages->elts;

        for (i = 0; i < clcf->error_pages->nelts; i++) {
            if (err_page[i].status == (ngx_int_t) status) {
                return status;
            }
        }
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    switch (status) {
    case NGX_HTTP_BAD_REQUEST:
        text = "Bad Request";
        break;
    case NGX_HTTP_FORBIDDEN:
        text = "Forbidden";
        break;
    case NGX_HTTP_TOO_MANY_REQUESTS:
        text = "Too Many Requests";
        break;
    case NGX_HTTP_SERVICE_UNAVAILABLE:
        text = "Service Unavailable";
        break;
    default:
        text = "Request Rejected";
    }

    len = sizeof("{\"error\":\"\",\"reason\":\"\",\"policy\":\"\","
                 "\"retry_after\":}\n") - 1
          + ngx_strlen(text) + ngx_strlen(reason)
          + NGX_HTTP_GW_RATELIMIT_MAX_NAME + NGX_INT_T_LEN;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "{\"error\":\"%s\",\"reason\":\"%s\"",
                          text, reason);

    if (ctx->rejected) {
        retry = ngx_http_gw_ratelimit_retry(ctx);

        for (i = 0; i < ctx->n; i++) {
            if (!ctx->results[i].allowed) {
                b->last = ngx_sprintf(b->last, ",\"policy\":\"%V\"",
                                      &ctx->limits[i]->zone->name);
                break;
            }
        }

        b->last = ngx_sprintf(b->last, ",\"retry_after\":%M",
                              (retry + 999) / 1000);
    }

    *b->last++ = '}';
    *b->last++ = LF;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    out.buf = b;
    out.next = NULL;

    ngx_http_finalize_request(r, ngx_http_output_filter(r, &out));

    return NGX_DONE;
}


static void
ngx_http_gw_ratelimit_resume(ngx_http_request_t *r)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gw_ratelimit: resume");

    if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_http_core_run_phases(r);
}


/* the request is going away: a late reply must not find it */

static void
ngx_http_gw_ratelimit_cleanup(void *data)
{
    ngx_http_gw_ratelimit_ctx_t *ctx = data;

    if (ctx->cmd != NULL) {
        ngx_http_gw_redis_detach(ctx->cmd);
        ctx->cmd = NULL;
    }
}


static ngx_http_gw_ratelimit_ctx_t *
ngx_http_gw_ratelimit_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t           *cln;
    ngx_http_gw_ratelimit_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_gw_ratelimit_module);

    if (ctx != NULL || !(r->internal || r->filter_finalize)) {
        return ctx;
    }

    /* an internal redirect clears the module contexts: look in the pool */

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_gw_ratelimit_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_gw_ratelimit_module);
            return ctx;
        }
    }

    return NULL;
}


/* the limit closest to rejecting: least remaining, then longest reset */

static ngx_uint_t
ngx_http_gw_ratelimit_tightest(ngx_http_gw_ratelimit_ctx_t *ctx)
{
    ngx_uint_t                       i, t;
    ngx_http_gw_ratelimit_result_t  *res;

    res = ctx->results;
    t = 0;

    for (i = 1; i < ctx->n; i++) {
        if (res[i].remaining < res[t].remaining
            || (res[i].remaining == res[t].remaining
                && res[i].reset > res[t].reset))
        {
            t = i;
        }
    }

    return t;
}


/* every rejecting limit must admit again: the longest wait */

static ngx_msec_t
ngx_http_gw_ratelimit_retry(ngx_http_gw_ratelimit_ctx_t *ctx)
{
    ngx_uint_t  i;
    ngx_msec_t  retry;

    retry = 1000;

    for (i = 0; i < ctx->n; i++) {
        if (!ctx->results[i].allowed) {
            retry = ngx_max(retry, ctx->results[i].retry);
        }
    }

    return retry;
}


/*
 * gw_ratelimit_fail local: the same limits, counted per instance in shared
 * memory.  Check every limit, then charge every limit, under one lock.
 */

static ngx_int_t
ngx_http_gw_ratelimit_local(ngx_http_gw_ratelimit_ctx_t *ctx,
    ngx_uint_t *admitted)
{
    int64_t                         now;
    ngx_uint_t                      i, all;
    ngx_time_t                     *tp;
    ngx_http_gw_ratelimit_node_t   *lr[NGX_HTTP_GW_RATELIMIT_MAX_LIMITS];
    ngx_http_gw_ratelimit_local_t  *local;

    if (ctx->gmcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    local = ctx->gmcf->shm_zone->data;

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000000 + (int64_t) tp->msec * 1000;

    ngx_shmtx_lock(&local->shpool->mutex);

    for (i = 0; i < ctx->n; i++) {
        lr[i] = ngx_http_gw_ratelimit_local_lookup(local, &ctx->keys[i], now);

        if (lr[i] != NULL) {
            lr[i]->pinned = 1;
        }
    }

    all = 1;

    for (i = 0; i < ctx->n; i++) {
        if (lr[i] == NULL) {
            /* the zone is full: this limit cannot count, let it pass */
            ngx_memzero(&ctx->results[i],
                        sizeof(ngx_http_gw_ratelimit_result_t));
            ctx->results[i].allowed = 1;
            ctx->results[i].remaining = ctx->limits[i]->capacity;
            continue;
        }

        ngx_http_gw_ratelimit_local_eval(ctx->limits[i], lr[i], now, 0,
                                         &ctx->results[i]);

        if (!ctx->results[i].allowed) {
            all = 0;
        }
    }

    for (i = 0; i < ctx->n; i++) {
        if (lr[i] == NULL) {
            continue;
        }

        if (all) {
            ngx_http_gw_ratelimit_local_eval(ctx->limits[i], lr[i], now, 1,
                                             &ctx->results[i]);
        }

        lr[i]->pinned = 0;
    }

    ngx_shmtx_unlock(&local->shpool->mutex);

    *admitted = all;

    return NGX_OK;
}


static ngx_http_gw_ratelimit_node_t *
ngx_http_gw_ratelimit_local_lookup(ngx_http_gw_ratelimit_local_t *local,
    ngx_str_t *key, int64_t now)
{
    size_t                         size;
    uint32_t                       hash;
    ngx_int_t                      rc;
    ngx_rbtree_node_t             *node, *sentinel;
    ngx_http_gw_ratelimit_node_t  *lr;

    hash = ngx_crc32_short(key->data, key->len);

    node = local->sh->rbtree.root;
    sentinel = local->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        lr = (ngx_http_gw_ratelimit_node_t *) &node->color;

        rc = ngx_memn2cmp(key->data, lr->data, key->len, (size_t) lr->len);

        if (rc == 0) {
            ngx_queue_remove(&lr->queue);
            ngx_queue_insert_head(&local->sh->queue, &lr->queue);
            return lr;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_http_gw_ratelimit_node_t, data)
           + key->len;

    ngx_http_gw_ratelimit_local_expire(local, now, 0);

    node = ngx_slab_alloc_locked(local->shpool, size);

    if (node == NULL) {
        ngx_http_gw_ratelimit_local_expire(local, now, 1);

        node = ngx_slab_alloc_locked(local->shpool, size);
        if (node == NULL) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "could not allocate node%s",
                          local->shpool->log_ctx);
            return NULL;
        }
    }

    node->key = hash;

    lr = (ngx_http_gw_ratelimit_node_t *) &node->color;

    lr->pinned = 0;
    lr->len = (u_short) key->len;
    lr->expire = 0;
    lr->a = 0;
    lr->b = 0;
    lr->c = 0;

    ngx_memcpy(lr->data, key->data, key->len);

    ngx_rbtree_insert(&local->sh->rbtree, node);

    ngx_queue_insert_head(&local->sh->queue, &lr->queue);

    return lr;
}


/* drop up to two stale nodes, or with force the least recently used one */

static void
ngx_http_gw_ratelimit_local_expire(ngx_http_gw_ratelimit_local_t *local,
    int64_t now, ngx_uint_t force)
{
    ngx_uint_t                     n;
    ngx_queue_t                   *q;
    ngx_rbtree_node_t             *node;
    ngx_http_gw_ratelimit_node_t  *lr;

    for (n = 0; n < 3; n++) {

        if (ngx_queue_empty(&local->sh->queue)) {
            return;
        }

        q = ngx_queue_last(&local->sh->queue);

        lr = ngx_queue_data(q, ngx_http_gw_ratelimit_node_t, queue);

        if (lr->pinned) {
            return;
        }

        if (!(force && n == 0) && lr->expire > now) {
            return;
        }

        ngx_queue_remove(q);

        node = (ngx_rbtree_node_t *)
                   ((u_char *) lr - offsetof(ngx_rbtree_node_t, color));

        ngx_rbtree_delete(&local->sh->rbtree, node);

        ngx_slab_free_locked(local->shpool, node);
    }
}


/*
 * The script's algorithms on a local node (usec); the sliding window is
 * approximated here by weighting the previous fixed window's count, which
 * needs no per-request log in shared memory.
 */

static void
ngx_http_gw_ratelimit_local_eval(ngx_http_gw_ratelimit_limit_t *limit,
    ngx_http_gw_ratelimit_node_t *lr, int64_t now, ngx_uint_t charge,
    ngx_http_gw_ratelimit_result_t *res)
{
    double                         T, cap, tat, d, est, q, left, wait;
    int64_t                        p, w, e, cur, prev;
    ngx_http_gw_ratelimit_zone_t  *zone;

    zone = limit->zone;
    p = (int64_t) zone->period * 1000000;
    q = (double) (zone->count + limit->burst);

    res->remaining = 0;
    res->reset = 0;
    res->retry = 0;

    switch (zone->algorithm) {

    case NGX_HTTP_GW_RATELIMIT_GCRA:
        T = (double) p / zone->count;
        cap = (limit->burst + 1) * T;
        tat = (double) ngx_max(lr->a, now);

        res->allowed = (tat + T - now <= cap + 1);

        if (charge) {
            tat += T;
            lr->a = (int64_t) (tat + 0.5);
            lr->expire = lr->a;
        }

        d = tat - now;

        left = (cap - d) / T + 0.000001;
        res->remaining = left > 0 ? (ngx_uint_t) left : 0;

        if (d > 0) {
            wait = d - (ngx_uint_t) ((d - 1) / T) * T;
            res->reset = (ngx_msec_t) ((wait + 999) / 1000);
        }

        if (!res->allowed) {
            wait = (double) ngx_max(lr->a, now) + T - now - cap;
            res->retry = (ngx_msec_t) ((wait + 999) / 1000);
        }

        break;

    case NGX_HTTP_GW_RATELIMIT_FIXED:
        w = now / p;
        cur = (lr->a == w) ? lr->b : 0;

        res->allowed = (cur < q);

        if (charge) {
            cur++;
            lr->a = w;
            lr->b = cur;
            lr->expire = (w + 1) * p;
        }

        res->remaining = (cur < q) ? (ngx_uint_t) (q - cur) : 0;
        res->reset = (ngx_msec_t) (((w + 1) * p - now + 999) / 1000);

        if (!res->allowed) {
            res->retry = res->reset;
        }

        break;

    default: /* NGX_HTTP_GW_RATELIMIT_SLIDING */
        w = now / p;
        e = now - w * p;

        if (lr->a == w) {
            cur = lr->b;
            prev = lr->c;

        } else if (lr->a == w - 1) {
            cur = 0;
            prev = lr->b;

        } else {
            cur = 0;
            prev = 0;
        }

        est = (double) prev * (p - e) / p + cur;

        res->allowed = (est + 1 <= q + 0.000001);

        if (charge) {
            cur++;
            est += 1;
            lr->a = w;
            lr->b = cur;
            lr->c = prev;
            lr->expire = (w + 2) * p;
        }

        left = q - est + 0.000001;
        res->remaining = left > 0 ? (ngx_uint_t) left : 0;
        res->reset = (ngx_msec_t) ((p - e + 999) / 1000);

        if (!res->allowed) {
            if (cur + 1 <= q && prev > 0) {
                wait = (p - e) - (q - 1 - cur) * p / prev;

            } else {
                wait = (p - e) + p - (cur > 0 ? (q - 1) * p / cur : 0);
            }

            res->retry = (ngx_msec_t) ((ngx_max(wait, 0) + 999) / 1000);
        }

        break;
    }

    res->reset = ngx_min(res->reset, NGX_HTTP_GW_RATELIMIT_MAX_MSEC);
    res->retry = ngx_min(res->retry, NGX_HTTP_GW_RATELIMIT_MAX_MSEC);
}


static void
ngx_http_gw_ratelimit_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t             **p;
    ngx_http_gw_ratelimit_node_t   *lrn, *lrnt;

    for ( ;; ) {

        if (node->key < temp->key) {

            p = &temp->left;

        } else if (node->key > temp->key) {

            p = &temp->right;

        } else { /* node->key == temp->key */

            lrn = (ngx_http_gw_ratelimit_node_t *) &node->color;
            lrnt = (ngx_http_gw_ratelimit_node_t *) &temp->color;

            p = (ngx_memn2cmp(lrn->data, lrnt->data, lrn->len, lrnt->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_int_t
ngx_http_gw_ratelimit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_gw_ratelimit_local_t  *olocal = data;

    size_t                          len;
    ngx_http_gw_ratelimit_local_t  *local;

    local = shm_zone->data;

    if (olocal) {
        local->sh = olocal->sh;
        local->shpool = olocal->shpool;
        return NGX_OK;
    }

    local->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        local->sh = local->shpool->data;
        return NGX_OK;
    }

    local->sh = ngx_slab_alloc(local->shpool,
                               sizeof(ngx_http_gw_ratelimit_shctx_t));
    if (local->sh == NULL) {
        return NGX_ERROR;
    }

    local->shpool->data = local->sh;

    ngx_rbtree_init(&local->sh->rbtree, &local->sh->sentinel,
                    ngx_http_gw_ratelimit_rbtree_insert_value);

    ngx_queue_init(&local->sh->queue);

    len = sizeof(" in gw_ratelimit local zone \"\"") + shm_zone->shm.name.len;

    local->shpool->log_ctx = ngx_slab_alloc(local->shpool, len);
    if (local->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(local->shpool->log_ctx, " in gw_ratelimit local zone \"%V\"%Z",
                &shm_zone->shm.name);

    local->shpool->log_nomem = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_ratelimit_header_filter(ngx_http_request_t *r)
{
    u_char                          *p;
    size_t                           len;
    ngx_str_t                        value;
    ngx_uint_t                       i, t;
    ngx_http_gw_ratelimit_ctx_t     *ctx;
    ngx_http_gw_ratelimit_zone_t    *zone;
    ngx_http_gw_ratelimit_limit_t   *limit;
    ngx_http_gw_ratelimit_result_t  *res;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_gw_ratelimit_get_ctx(r);

    if (ctx == NULL || ctx->headers_done || ctx->n == 0) {
        return ngx_http_next_header_filter(r);
    }

    ctx->headers_done = 1;

    if (ctx->rejected) {
        value.data = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (value.data == NULL) {
            return NGX_ERROR;
        }

        value.len = ngx_sprintf(value.data, "%M",
                                (ngx_http_gw_ratelimit_retry(ctx) + 999)
                                / 1000)
                    - value.data;

        if (ngx_http_gw_ratelimit_add_header(r, "Retry-After", &value)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (!ctx->glcf->headers || !ctx->known) {
        return ngx_http_next_header_filter(r);
    }

    res = ctx->results;

    /* RateLimit-Policy: "zone";q=100;w=60, ... (draft-ietf-httpapi-...) */

    len = ctx->n * (sizeof("\"\";q=;w=;gw-burst=, ") - 1
                    + NGX_HTTP_GW_RATELIMIT_MAX_NAME + 3 * NGX_INT_T_LEN);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    value.data = p;

    for (i = 0; i < ctx->n; i++) {
        limit = ctx->limits[i];
        zone = limit->zone;

        if (i) {
            *p++ = ',';
            *p++ = ' ';
        }

        if (zone->algorithm == NGX_HTTP_GW_RATELIMIT_GCRA) {
            p = ngx_sprintf(p, "\"%V\";q=%ui;w=%ui", &zone->name,
                            zone->count, zone->period);

            if (limit->burst) {
                p = ngx_sprintf(p, ";gw-burst=%ui", limit->burst);
            }

        } else {
            p = ngx_sprintf(p, "\"%V\";q=%ui;w=%ui", &zone->name,
                            limit->capacity, zone->period);
        }
    }

    value.len = p - value.data;

    if (ngx_http_gw_ratelimit_add_header(r, "RateLimit-Policy", &value)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* RateLimit: "zone";r=57;t=12, ... */

    len = ctx->n * (sizeof("\"\";r=;t=, ") - 1
                    + NGX_HTTP_GW_RATELIMIT_MAX_NAME + 2 * NGX_INT_T_LEN);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    value.data = p;

    for (i = 0; i < ctx->n; i++) {
        if (i) {
            *p++ = ',';
            *p++ = ' ';
        }

        p = ngx_sprintf(p, "\"%V\";r=%ui;t=%M", &ctx->limits[i]->zone->name,
                        res[i].remaining, (res[i].reset + 999) / 1000);
    }

    value.len = p - value.data;

    if (ngx_http_gw_ratelimit_add_header(r, "RateLimit", &value) != NGX_OK) {
        return NGX_ERROR;
    }

    /* X-RateLimit-*: the limit closest to rejecting */

    t = ngx_http_gw_ratelimit_tightest(ctx);

    p = ngx_pnalloc(r->pool, 3 * NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    value.data = p;
    p = ngx_sprintf(p, "%ui", ctx->limits[t]->capacity);
    value.len = p - value.data;

    if (ngx_http_gw_ratelimit_add_header(r, "X-RateLimit-Limit", &value)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    value.data = p;
    p = ngx_sprintf(p, "%ui", res[t].remaining);
    value.len = p - value.data;

    if (ngx_http_gw_ratelimit_add_header(r, "X-RateLimit-Remaining", &value)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    value.data = p;
    p = ngx_sprintf(p, "%M", (res[t].reset + 999) / 1000);
    value.len = p - value.data;

    if (ngx_http_gw_ratelimit_add_header(r, "X-RateLimit-Reset", &value)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_gw_ratelimit_add_header(ngx_http_request_t *r, char *name,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.len = ngx_strlen(name);
    h->key.data = (u_char *) name;
    h->value = *value;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_ratelimit_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_gw_ratelimit_ctx_t  *ctx;

    ctx = ngx_http_gw_ratelimit_get_ctx(r->main);

    if (ctx == NULL || ctx->status == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ngx_http_gw_ratelimit_status_names[ctx->status].len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ngx_http_gw_ratelimit_status_names[ctx->status].data;

    return NGX_OK;
}


static void *
ngx_http_gw_ratelimit_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_gw_ratelimit_main_conf_t  *gmcf;

    gmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gw_ratelimit_main_conf_t));
    if (gmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     gmcf->redis = { 0 };
     *     gmcf->prefix = { 0, NULL };
     *     gmcf->shm_zone = NULL;
     *     gmcf->local_used = 0;
     *     gmcf->conn = NULL;
     */

    if (ngx_array_init(&gmcf->zones, cf->pool, 4, sizeof(void *)) != NGX_OK) {
        return NULL;
    }

    gmcf->local_size = NGX_CONF_UNSET_SIZE;

    return gmcf;
}


static char *
ngx_http_gw_ratelimit_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_gw_ratelimit_main_conf_t *gmcf = conf;

    u_char                         *p, hash[20];
    ngx_uint_t                      i;
    ngx_sha1_t                      sha1;
    ngx_http_gw_ratelimit_zone_t  **zones, *zone;

    ngx_conf_init_size_value(gmcf->local_size, 1024 * 1024);

    if (gmcf->local_size < 8 * ngx_pagesize) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"gw_ratelimit_local_size\" must be at least "
                           "%uzk", 8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    if (gmcf->prefix.data == NULL) {
        ngx_str_set(&gmcf->prefix, "gw:rl:");
    }

    zones = gmcf->zones.elts;

    if (gmcf->zones.nelts && gmcf->redis.name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"gw_ratelimit_zone\" \"%V\" requires "
                           "\"gw_ratelimit_redis\"", &zones[0]->name);
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < gmcf->zones.nelts; i++) {
        zone = zones[i];

        zone->prefix.len = gmcf->prefix.len + zone->name.len + 2;
        zone->prefix.data = ngx_pnalloc(cf->pool, zone->prefix.len);
        if (zone->prefix.data == NULL) {
            return NGX_CONF_ERROR;
        }

        p = ngx_cpymem(zone->prefix.data, gmcf->prefix.data,
                       gmcf->prefix.len);
        p = ngx_cpymem(p, zone->name.data, zone->name.len);
        *p++ = ':';
        *p = ngx_http_gw_ratelimit_algorithm_tags[zone->algorithm];
    }

    gmcf->sha1.len = 40;
    gmcf->sha1.data = ngx_pnalloc(cf->pool, 40);
    if (gmcf->sha1.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, ngx_http_gw_ratelimit_script.data,
                    ngx_http_gw_ratelimit_script.len);
    ngx_sha1_final(hash, &sha1);

    ngx_hex_dump(gmcf->sha1.data, hash, 20);

    gmcf->redis.script = ngx_http_gw_ratelimit_script;

    return NGX_CONF_OK;
}


static void *
ngx_http_gw_ratelimit_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_gw_ratelimit_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gw_ratelimit_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->limits = NGX_CONF_UNSET_PTR;
    conf->status_code = NGX_CONF_UNSET_UINT;
    conf->fail_status = NGX_CONF_UNSET_UINT;
    conf->fail = NGX_CONF_UNSET_UINT;
    conf->log_level = NGX_CONF_UNSET_UINT;
    conf->dry_run = NGX_CONF_UNSET;
    conf->headers = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_gw_ratelimit_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_gw_ratelimit_loc_conf_t *prev = parent;
    ngx_http_gw_ratelimit_loc_conf_t *conf = child;

    ngx_http_gw_ratelimit_main_conf_t  *gmcf;

    ngx_conf_merge_ptr_value(conf->limits, prev->limits, NULL);

    ngx_conf_merge_uint_value(conf->status_code, prev->status_code,
                              NGX_HTTP_TOO_MANY_REQUESTS);
    ngx_conf_merge_uint_value(conf->fail_status, prev->fail_status,
                              NGX_HTTP_SERVICE_UNAVAILABLE);
    ngx_conf_merge_uint_value(conf->fail, prev->fail,
                              NGX_HTTP_GW_RATELIMIT_FAIL_OPEN);
    ngx_conf_merge_uint_value(conf->log_level, prev->log_level, NGX_LOG_ERR);
    ngx_conf_merge_value(conf->dry_run, prev->dry_run, 0);
    ngx_conf_merge_value(conf->headers, prev->headers, 0);

    if (conf->limits == NULL) {
        return NGX_CONF_OK;
    }

    gmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gw_ratelimit_module);

    if (ngx_http_gw_ratelimit_resolve(cf, gmcf, conf->limits) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->fail == NGX_HTTP_GW_RATELIMIT_FAIL_LOCAL) {
        gmcf->local_used = 1;
    }

    return NGX_CONF_OK;
}


/* zone names to zones, and the script arguments of every limit */

static ngx_int_t
ngx_http_gw_ratelimit_resolve(ngx_conf_t *cf,
    ngx_http_gw_ratelimit_main_conf_t *gmcf, ngx_array_t *limits)
{
    u_char                         *p;
    ngx_uint_t                      i, j;
    ngx_http_gw_ratelimit_zone_t  **zones, *zone;
    ngx_http_gw_ratelimit_limit_t  *limit;

    limit = limits->elts;
    zones = gmcf->zones.elts;

    for (i = 0; i < limits->nelts; i++) {

        if (limit[i].zone != NULL) {
            continue;
        }

        zone = NULL;

        for (j = 0; j < gmcf->zones.nelts; j++) {
            if (zones[j]->name.len == limit[i].name.len
                && ngx_strncmp(zones[j]->name.data, limit[i].name.data,
                               limit[i].name.len)
                   == 0)
            {
                zone = zones[j];
                break;
            }
        }

        if (zone == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown gw_ratelimit zone \"%V\" in %s:%ui",
                          &limit[i].name, limit[i].file, limit[i].line);
            return NGX_ERROR;
        }

        if (limit[i].burst == NGX_CONF_UNSET_UINT) {
            limit[i].burst = zone->burst;
        }

        if (zone->algorithm == NGX_HTTP_GW_RATELIMIT_GCRA) {
            limit[i].capacity = limit[i].burst + 1;

        } else {
            limit[i].capacity = zone->count + limit[i].burst;

            if (zone->algorithm == NGX_HTTP_GW_RATELIMIT_SLIDING
                && limit[i].capacity > NGX_HTTP_GW_RATELIMIT_MAX_LOG)
            {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "gw_ratelimit zone \"%V\": a sliding window "
                              "admits at most %d requests per period "
                              "(rate plus burst) in %s:%ui", &zone->name,
                              NGX_HTTP_GW_RATELIMIT_MAX_LOG,
                              limit[i].file, limit[i].line);
                return NGX_ERROR;
            }
        }

        p = ngx_pnalloc(cf->pool, 4 * NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        limit[i].args[0].data = p;
        p = ngx_sprintf(p, "%ui", zone->algorithm);
        limit[i].args[0].len = p - limit[i].args[0].data;

        limit[i].args[1].data = p;
        p = ngx_sprintf(p, "%uL", (uint64_t) zone->period * 1000000);
        limit[i].args[1].len = p - limit[i].args[1].data;

        limit[i].args[2].data = p;
        p = ngx_sprintf(p, "%ui", zone->count);
        limit[i].args[2].len = p - limit[i].args[2].data;

        limit[i].args[3].data = p;
        p = ngx_sprintf(p, "%ui", limit[i].burst);
        limit[i].args[3].len = p - limit[i].args[3].data;

        limit[i].zone = zone;
    }

    return NGX_OK;
}


static char *
ngx_http_gw_ratelimit_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gw_ratelimit_main_conf_t *gmcf = conf;

    u_char                    *p;
    ngx_str_t                 *value, s;
    ngx_url_t                  u;
    ngx_int_t                  n;
    ngx_msec_t                 ms;
    ngx_uint_t                 i;
    ngx_http_gw_redis_conf_t  *rc;
#if (NGX_HAVE_UNIX_DOMAIN)
    struct sockaddr_un        *saun;
#endif

    rc = &gmcf->redis;

    if (rc->name.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in redis address \"%V\"", u.err, &u.url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.uri.len || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid redis address \"%V\"", &u.url);
        return NGX_CONF_ERROR;
    }

    /*
     * Names are resolved here, in the master, like "upstream" servers:
     * hiredis only ever sees a numeric address, so a worker never waits
     * for DNS.  The first address is used.
     */

    switch (u.addrs[0].sockaddr->sa_family) {

#if (NGX_HAVE_UNIX_DOMAIN)
    case AF_UNIX:
        saun = (struct sockaddr_un *) u.addrs[0].sockaddr;
        rc->host.len = ngx_strlen(saun->sun_path);
        rc->host.data = ngx_pnalloc(cf->pool, rc->host.len + 1);
        if (rc->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(rc->host.data, (u_char *) saun->sun_path,
                    rc->host.len + 1);
        rc->port = 0;
        break;
#endif

    default:
        rc->host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
        if (rc->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        rc->host.len = ngx_sock_ntop(u.addrs[0].sockaddr,
                                     u.addrs[0].socklen, rc->host.data,
                                     NGX_SOCKADDR_STRLEN, 0);
        rc->host.data[rc->host.len] = '\0';
        rc->port = ngx_inet_get_port(u.addrs[0].sockaddr);
    }

    rc->name = value[1];
    rc->timeout = 50;
    rc->connect_timeout = 100;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            s.len = value[i].len - 9;
            s.data = value[i].data + 9;

            if (s.len == 0) {
                goto invalid;
            }

            rc->password = s;
            continue;
        }

        if (ngx_strncmp(value[i].data, "user=", 5) == 0) {
            s.len = value[i].len - 5;
            s.data = value[i].data + 5;

            if (s.len == 0) {
                goto invalid;
            }

            rc->user = s;
            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_http_gw_ratelimit_number(&value[i], 3, 1000000);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            rc->db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0
            || ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0)
        {
            p = (u_char *) ngx_strchr(value[i].data, '=') + 1;
            s.len = value[i].data + value[i].len - p;
            s.data = p;

            ms = ngx_parse_time(&s, 0);
            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
                goto invalid;
            }

            if (value[i].data[0] == 't') {
                rc->timeout = ms;

            } else {
                rc->connect_timeout = ms;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "prefix=", 7) == 0) {
            s.len = value[i].len - 7;
            s.data = value[i].data + 7;

            if (s.len == 0 || s.len > NGX_HTTP_GW_RATELIMIT_MAX_PREFIX) {
                goto invalid;
            }

            gmcf->prefix = s;
            continue;
        }

        goto invalid;
    }

    if (rc->user.len && rc->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"user=\" requires \"password=\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_gw_ratelimit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gw_ratelimit_main_conf_t *gmcf = conf;

    u_char                             *p, c;
    size_t                              len;
    ngx_int_t                           n;
    ngx_str_t                          *value, name;
    ngx_uint_t                          i, j;
    ngx_http_gw_ratelimit_zone_t       *zone, **zp, **zones;
    ngx_http_compile_complex_value_t    ccv;

    value = cf->args->elts;

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_gw_ratelimit_zone_t));
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = &zone->key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    zone->algorithm = NGX_HTTP_GW_RATELIMIT_GCRA;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            name.len = value[i].len - 5;
            name.data = value[i].data + 5;

            if (name.len == 0 || name.len > NGX_HTTP_GW_RATELIMIT_MAX_NAME) {
                goto invalid_name;
            }

            for (j = 0; j < name.len; j++) {
                c = name.data[j];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                      || (c >= '0' && c <= '9')
                      || c == '_' || c == '-' || c == '.'))
                {
                    goto invalid_name;
                }
            }

            zone->name = name;
            continue;
        }

        if (ngx_strncmp(value[i].data, "rate=", 5) == 0) {

            len = value[i].len;
            p = value[i].data + len - 3;

            if (len > 8 && ngx_strncmp(p, "r/s", 3) == 0) {
                zone->period = 1;

            } else if (len > 8 && ngx_strncmp(p, "r/m", 3) == 0) {
                zone->period = 60;

            } else if (len > 8 && ngx_strncmp(p, "r/h", 3) == 0) {
                zone->period = 3600;

            } else {
                goto invalid_rate;
            }

            value[i].len -= 3;
            n = ngx_http_gw_ratelimit_number(&value[i], 5,
                                             NGX_HTTP_GW_RATELIMIT_MAX_COUNT);
            value[i].len += 3;

            if (n == NGX_ERROR || n == 0) {
                goto invalid_rate;
            }

            zone->count = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            n = ngx_http_gw_ratelimit_number(&value[i], 6,
                                             NGX_HTTP_GW_RATELIMIT_MAX_COUNT);
            if (n == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid burst value \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            zone->burst = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "algorithm=", 10) == 0) {
            name.len = value[i].len - 10;
            name.data = value[i].data + 10;

            if (name.len == 4 && ngx_strncmp(name.data, "gcra", 4) == 0) {
                zone->algorithm = NGX_HTTP_GW_RATELIMIT_GCRA;

            } else if (name.len == 12
                       && ngx_strncmp(name.data, "fixed_window", 12) == 0)
            {
                zone->algorithm = NGX_HTTP_GW_RATELIMIT_FIXED;

            } else if (name.len == 14
                       && ngx_strncmp(name.data, "sliding_window", 14) == 0)
            {
                zone->algorithm = NGX_HTTP_GW_RATELIMIT_SLIDING;

            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid algorithm \"%V\", expected "
                                   "gcra, fixed_window or sliding_window",
                                   &name);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (zone->name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"zone\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (zone->count == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"rate\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    zones = gmcf->zones.elts;

    for (i = 0; i < gmcf->zones.nelts; i++) {
        if (zones[i]->name.len == zone->name.len
            && ngx_strncmp(zones[i]->name.data, zone->name.data,
                           zone->name.len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate gw_ratelimit zone \"%V\"",
                               &zone->name);
            return NGX_CONF_ERROR;
        }
    }

    zp = ngx_array_push(&gmcf->zones);
    if (zp == NULL) {
        return NGX_CONF_ERROR;
    }

    *zp = zone;

    return NGX_CONF_OK;

invalid_name:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid zone name \"%V\": 1 to %d letters, digits, "
                       "\"_\", \"-\" or \".\"", &value[i],
                       NGX_HTTP_GW_RATELIMIT_MAX_NAME);
    return NGX_CONF_ERROR;

invalid_rate:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid rate \"%V\", expected N r/s, r/m or r/h "
                       "(N from 1 to %d)", &value[i],
                       NGX_HTTP_GW_RATELIMIT_MAX_COUNT);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_gw_ratelimit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gw_ratelimit_loc_conf_t *glcf = conf;

    ngx_int_t                       n;
    ngx_str_t                      *value, name;
    ngx_uint_t                      i, j;
    ngx_http_gw_ratelimit_limit_t  *limit, *limits;

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts != 2 || glcf->limits != NGX_CONF_UNSET_PTR) {
            return "is duplicate";
        }

        glcf->limits = NULL;
        return NGX_CONF_OK;
    }

    if (glcf->limits == NULL) {
        return "is duplicate";
    }

    ngx_str_null(&name);
    n = NGX_CONF_UNSET_UINT;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            name.len = value[i].len - 5;
            name.data = value[i].data + 5;
            continue;
        }

        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            n = ngx_http_gw_ratelimit_number(&value[i], 6,
                                             NGX_HTTP_GW_RATELIMIT_MAX_COUNT);
            if (n == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid burst value \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"zone\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (glcf->limits == NGX_CONF_UNSET_PTR) {
        glcf->limits = ngx_array_create(cf->pool, 1,
                                        sizeof(ngx_http_gw_ratelimit_limit_t));
        if (glcf->limits == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    limits = glcf->limits->elts;

    for (j = 0; j < glcf->limits->nelts; j++) {
        if (limits[j].name.len == name.len
            && ngx_strncmp(limits[j].name.data, name.data, name.len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate gw_ratelimit zone \"%V\" "
                               "in this location", &name);
            return NGX_CONF_ERROR;
        }
    }

    if (glcf->limits->nelts == NGX_HTTP_GW_RATELIMIT_MAX_LIMITS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many gw_ratelimit limits, at most %d",
                           NGX_HTTP_GW_RATELIMIT_MAX_LIMITS);
        return NGX_CONF_ERROR;
    }

    limit = ngx_array_push(glcf->limits);
    if (limit == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(limit, sizeof(ngx_http_gw_ratelimit_limit_t));

    limit->name = name;
    limit->burst = n;
    limit->file = cf->conf_file->file.name.data;
    limit->line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/* "name=123" with skip = 5: a decimal number from 0 to max */

static ngx_int_t
ngx_http_gw_ratelimit_number(ngx_str_t *value, size_t skip, ngx_uint_t max)
{
    ngx_int_t  n;

    n = ngx_atoi(value->data + skip, value->len - skip);

    if (n == NGX_ERROR || (ngx_uint_t) n > max) {
        return NGX_ERROR;
    }

    return n;
}


static ngx_int_t
ngx_http_gw_ratelimit_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_gw_ratelimit_vars; v->name.len; v++) {
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
ngx_http_gw_ratelimit_init(ngx_conf_t *cf)
{
    ngx_str_t                           name;
    ngx_array_t                        *a;
    ngx_http_handler_pt                *h;
    ngx_http_core_main_conf_t          *cmcf;
    ngx_http_gw_ratelimit_local_t      *local;
    ngx_http_gw_ratelimit_main_conf_t  *gmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    gmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gw_ratelimit_module);

    /*
     * First in the array, so last to run (nginx runs a phase's handlers
     * from the end): every other access module, gw_auth included, has
     * decided before a request is counted.
     */

    a = &cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers;

    h = ngx_array_push(a);
    if (h == NULL) {
        return NGX_ERROR;
    }

    ngx_memmove((ngx_http_handler_pt *) a->elts + 1, a->elts,
                (a->nelts - 1) * sizeof(ngx_http_handler_pt));

    h = a->elts;
    *h = ngx_http_gw_ratelimit_handler;

    /*
     * With "satisfy any" a module that grants access ends the access phase
     * early; the request is then counted when the precontent phase starts.
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_gw_ratelimit_handler;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_gw_ratelimit_header_filter;

    if (!gmcf->local_used) {
        return NGX_OK;
    }

    local = ngx_pcalloc(cf->pool, sizeof(ngx_http_gw_ratelimit_local_t));
    if (local == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&name, "gw_ratelimit_local");

    gmcf->shm_zone = ngx_shared_memory_add(cf, &name, gmcf->local_size,
                                           &ngx_http_gw_ratelimit_module);
    if (gmcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    gmcf->shm_zone->init = ngx_http_gw_ratelimit_init_zone;
    gmcf->shm_zone->data = local;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_ratelimit_init_process(ngx_cycle_t *cycle)
{
    ngx_http_gw_ratelimit_main_conf_t  *gmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    gmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_gw_ratelimit_module);

    if (gmcf == NULL || gmcf->zones.nelts == 0) {
        return NGX_OK;
    }

    return ngx_http_gw_ratelimit_init_worker(cycle, gmcf);
}


static ngx_int_t
ngx_http_gw_ratelimit_init_worker(ngx_cycle_t *cycle,
    ngx_http_gw_ratelimit_main_conf_t *gmcf)
{
    u_char  *p;

    /* sliding window members: unique across workers and instances */

    p = ngx_pnalloc(cycle->pool, 2 * NGX_INT32_LEN + NGX_INT64_LEN + 2);
    if (p == NULL) {
        return NGX_ERROR;
    }

    gmcf->token.data = p;
    gmcf->token.len = ngx_sprintf(p, "%08xD%08xD-%P",
                                  (uint32_t) ngx_random(),
                                  (uint32_t) ngx_random(), ngx_pid)
                      - p;

    /* connected lazily, by the first request */

    gmcf->conn = ngx_http_gw_redis_create(cycle, &gmcf->redis);
    if (gmcf->conn == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_gw_ratelimit_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_gw_ratelimit_main_conf_t  *gmcf;

    gmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_gw_ratelimit_module);

    if (gmcf == NULL || gmcf->conn == NULL) {
        return;
    }

    ngx_http_gw_redis_destroy(gmcf->conn);
    gmcf->conn = NULL;
}
