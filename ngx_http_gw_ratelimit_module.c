
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: distributed rate limiting backed by Redis.
 *
 * The access handler computes the request's keys and joins the worker's
 * open batch; at the end of the event loop iteration (a posted event) the
 * batch goes to Redis as one atomic Lua script call (EVALSHA; the script
 * is ngx_http_gw_ratelimit_script.lua, its arguments and reply are
 * ngx_http_gw_ratelimit_script.c's) that decides the requests in order,
 * each as before: all of its limits are checked first and charged only
 * when all of them admit it.  The call travels over the worker's
 * persistent, pipelined hiredis connection (ngx_http_gw_redis.c); the
 * requests wait (NGX_AGAIN) until the reply or the deadline, then the
 * phase engine resumes each.
 * Without Redis a request follows gw_ratelimit_fail: open, closed, or local
 * (the same limits per instance, in shared memory).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_sha1.h>

#include "ngx_http_gw_conf.h"
#include "ngx_http_gw_redis.h"
#include "ngx_http_gw_redis_topology.h"
#include "ngx_http_gw_ratelimit_script.h"


#define NGX_HTTP_GW_RATELIMIT_PASSED      1
#define NGX_HTTP_GW_RATELIMIT_DELAYED     2
#define NGX_HTTP_GW_RATELIMIT_REJECTED    3
#define NGX_HTTP_GW_RATELIMIT_DELAYED_DRY 4
#define NGX_HTTP_GW_RATELIMIT_DRY_RUN     5
#define NGX_HTTP_GW_RATELIMIT_ERROR       6

#define NGX_HTTP_GW_RATELIMIT_FAIL_OPEN   0
#define NGX_HTTP_GW_RATELIMIT_FAIL_CLOSED 1
#define NGX_HTTP_GW_RATELIMIT_FAIL_LOCAL  2

#define NGX_HTTP_GW_RATELIMIT_WAITING     1
#define NGX_HTTP_GW_RATELIMIT_DONE        2
#define NGX_HTTP_GW_RATELIMIT_APPLIED     3

#define NGX_HTTP_GW_RATELIMIT_MAX_NAME    64
#define NGX_HTTP_GW_RATELIMIT_MAX_PREFIX  64
/* longer keys (and keys with a "}") are stored as their SHA-1 */
#define NGX_HTTP_GW_RATELIMIT_MAX_KEY     256
/* "<prefix><zone>:<algorithm>:{<key>}", at most */
#define NGX_HTTP_GW_RATELIMIT_KEY_SIZE                                      \
    (NGX_HTTP_GW_RATELIMIT_MAX_PREFIX + NGX_HTTP_GW_RATELIMIT_MAX_NAME      \
     + sizeof(":g:{}") - 1 + NGX_HTTP_GW_RATELIMIT_MAX_KEY)
#define NGX_HTTP_GW_RATELIMIT_MAX_COUNT   1000000
/* "nodelay": excess requests are never delayed */
#define NGX_HTTP_GW_RATELIMIT_NODELAY     NGX_MAX_INT32_VALUE
/* a sliding window keeps one sorted-set entry per admitted request */
#define NGX_HTTP_GW_RATELIMIT_MAX_LOG     100000

/* batches open or in flight, per worker */
#define NGX_HTTP_GW_RATELIMIT_MAX_BATCHES 1024
/*
 * While this many batches are in flight a new one is held back (unless it
 * is full) until a reply comes: under load batches grow with the round
 * trip instead of the round trips multiplying.
 */
#define NGX_HTTP_GW_RATELIMIT_INFLIGHT    1


typedef struct {
    ngx_str_t                          name;
    ngx_str_t                          prefix;     /* of the Redis keys */
    ngx_http_complex_value_t           key;
    ngx_int_t                          variable;   /* key is just one */
    ngx_uint_t                         algorithm;
    ngx_uint_t                         count;      /* requests per period */
    ngx_uint_t                         period;     /* seconds */
    ngx_uint_t                         burst;
} ngx_http_gw_ratelimit_zone_t;


typedef struct {
    ngx_http_gw_ratelimit_zone_t      *zone;
    ngx_str_t                          name;
    ngx_uint_t                         burst;
    ngx_uint_t                         delay;      /* excess not delayed */
    ngx_uint_t                         capacity;   /* X-RateLimit-Limit */
    ngx_http_gw_rl_limit_t             rl;         /* as the script has it */
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
    ngx_str_t                          name;
} ngx_http_gw_ratelimit_local_t;


/*
 * A local limit's state, starting at ngx_rbtree_node_t.color.  Every node
 * has the same size, whatever its key (the key's SHA-1 identifies it), so
 * the node evicted from a full zone always makes room for a new one.
 */
typedef struct {
    u_char                             color;
    ngx_queue_t                        queue;
    int64_t                            expire;     /* usec */
    int64_t                            tat;        /* gcra */
    int64_t                            window;     /* windows: its number */
    int64_t                            count;      /* admitted in it */
    int64_t                            previous;   /* in the one before */
    u_char                             id[20];     /* SHA-1 of the key */
} ngx_http_gw_ratelimit_node_t;


/* a log line at most once per interval, with the number suppressed */
typedef struct {
    time_t                             sec;
    ngx_uint_t                         suppressed;
} ngx_http_gw_ratelimit_throttle_t;


typedef struct ngx_http_gw_ratelimit_batch_s  ngx_http_gw_ratelimit_batch_t;
typedef struct ngx_http_gw_ratelimit_ctx_s    ngx_http_gw_ratelimit_ctx_t;


/* a Redis server the worker sends batches to, and its open batch */
typedef struct {
    ngx_http_gw_redis_t               *node;
    ngx_http_gw_ratelimit_batch_t     *batch;      /* open, being filled */
    ngx_uint_t                         inflight;   /* sent, not answered */
} ngx_http_gw_ratelimit_route_t;


typedef struct {
    ngx_array_t                        zones;      /* zone pointers */
    ngx_http_gw_redis_conf_t           redis;
    ngx_http_gw_redis_topology_conf_t  topology;
    ngx_str_t                          prefix;
    size_t                             local_size;
    ngx_shm_zone_t                    *shm_zone;
    ngx_uint_t                         local_used;

    /* the worker's own */
    ngx_http_gw_redis_topology_t      *servers;
    ngx_str_t                          token;
    ngx_uint_t                         sequence;
    ngx_uint_t                         nroutes;
    ngx_http_gw_ratelimit_route_t      routes[NGX_HTTP_GW_REDIS_MAX_NODES];
    ngx_queue_t                        waiting;    /* for a server */
    ngx_event_t                        wait;       /* their deadline */
    ngx_event_t                        changed;    /* servers changed */
    ngx_http_gw_ratelimit_batch_t     *free;
    ngx_uint_t                         batches;    /* allocated */
    ngx_event_t                        flush;      /* end of the iteration */
    u_char                            *command;    /* being formatted */
    size_t                             command_size;
    ngx_http_gw_rl_verdicts_t         *verdicts;
} ngx_http_gw_ratelimit_main_conf_t;


typedef struct {
    ngx_array_t                       *limits;     /* NULL: none, or off */
    ngx_uint_t                         status_code;
    ngx_uint_t                         fail_status;
    ngx_uint_t                         fail;
    ngx_uint_t                         log_level;
    ngx_flag_t                         dry_run;
    ngx_flag_t                         headers;
    ngx_uint_t                         delaying;   /* some limit may delay */
} ngx_http_gw_ratelimit_loc_conf_t;


/*
 * The limits of a request whose keys share a hash slot, decided by one
 * script call on one server (outside a cluster, all of them).
 */
typedef struct {
    ngx_http_gw_ratelimit_ctx_t       *ctx;
    ngx_http_gw_ratelimit_batch_t     *batch;      /* NULL: not in one */
    ngx_queue_t                        queue;      /* waiting for a server */
    ngx_uint_t                         slot;       /* hash slot */
    ngx_uint_t                         index;      /* in the batch */
    ngx_uint_t                         ref;        /* its first key there */
    ngx_uint_t                         batch_id;
    ngx_uint_t                         n;
    u_char                             limit[NGX_HTTP_GW_RL_MAX_LIMITS];
    ngx_uint_t                         outcome;
    unsigned                           waiting:1;
} ngx_http_gw_ratelimit_part_t;


struct ngx_http_gw_ratelimit_ctx_s {
    ngx_http_request_t                *request;
    ngx_http_gw_ratelimit_main_conf_t *gmcf;
    ngx_http_gw_ratelimit_loc_conf_t  *glcf;
    ngx_http_gw_ratelimit_part_t      *parts;
    ngx_uint_t                         nparts;
    ngx_uint_t                         pending;    /* parts undecided */
    ngx_msec_t                         start;      /* deadlines from here */
    ngx_http_gw_ratelimit_limit_t    **limits;     /* those applied */
    ngx_str_t                         *keys;       /* of Redis */
    ngx_http_gw_rl_result_t           *results;
    ngx_uint_t                         n;
    ngx_uint_t                         status;
    ngx_uint_t                         state;
    ngx_msec_t                         delay;
    unsigned                           known:1;    /* results are valid */
    unsigned                           rejected:1;
    unsigned                           closed:1;
    unsigned                           headers_done:1;
};


/* the requests (parts) of one event loop iteration for one server */
struct ngx_http_gw_ratelimit_batch_s {
    ngx_http_gw_ratelimit_main_conf_t *gmcf;
    ngx_http_gw_ratelimit_batch_t     *next;       /* free list */
    ngx_http_gw_ratelimit_route_t     *route;
    ngx_http_gw_redis_cmd_t           *cmd;
    ngx_uint_t                         id;
    ngx_msec_t                         start;      /* of its oldest request */
    ngx_uint_t                         redirects;
    unsigned                           eval:1;
    ngx_http_gw_ratelimit_part_t      *req[NGX_HTTP_GW_RL_BATCH];
    ngx_http_gw_rl_batch_t             rl;
};


static ngx_int_t ngx_http_gw_ratelimit_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_gw_ratelimit_start(ngx_http_request_t *r,
    ngx_http_gw_ratelimit_main_conf_t *gmcf,
    ngx_http_gw_ratelimit_loc_conf_t *glcf);
static size_t ngx_http_gw_ratelimit_key_len(ngx_http_gw_ratelimit_zone_t *zone,
    ngx_str_t *raw);
static u_char *ngx_http_gw_ratelimit_key(u_char *p,
    ngx_http_gw_ratelimit_zone_t *zone, ngx_str_t *raw);
static void ngx_http_gw_ratelimit_route(
    ngx_http_gw_ratelimit_main_conf_t *gmcf,
    ngx_http_gw_ratelimit_part_t *part);
static ngx_int_t ngx_http_gw_ratelimit_join(
    ngx_http_gw_ratelimit_main_conf_t *gmcf,
    ngx_http_gw_ratelimit_part_t *part, ngx_http_gw_redis_t *node);
static ngx_http_gw_ratelimit_route_t *ngx_http_gw_ratelimit_route_of(
    ngx_http_gw_ratelimit_main_conf_t *gmcf, ngx_http_gw_redis_t *node);
static ngx_http_gw_ratelimit_batch_t *ngx_http_gw_ratelimit_batch(
    ngx_http_gw_ratelimit_main_conf_t *gmcf,
    ngx_http_gw_ratelimit_route_t *route);
static void ngx_http_gw_ratelimit_flush_handler(ngx_event_t *ev);
static void ngx_http_gw_ratelimit_send(
    ngx_http_gw_ratelimit_main_conf_t *gmcf,
    ngx_http_gw_ratelimit_route_t *route, ngx_uint_t now);
static size_t ngx_http_gw_ratelimit_format(ngx_http_gw_ratelimit_batch_t *b,
    ngx_uint_t eval);
static void ngx_http_gw_ratelimit_reply(void *data, redisReply *reply);
static ngx_uint_t ngx_http_gw_ratelimit_moved(redisReply *reply);
static void ngx_http_gw_ratelimit_finish(ngx_http_gw_ratelimit_batch_t *b,
    ngx_http_gw_rl_verdicts_t *v);
static void ngx_http_gw_ratelimit_part_done(
    ngx_http_gw_ratelimit_part_t *part, ngx_uint_t outcome);
static void ngx_http_gw_ratelimit_refund(
    ngx_http_gw_ratelimit_main_conf_t *gmcf,
    ngx_http_gw_ratelimit_part_t *part);
static void ngx_http_gw_ratelimit_refunded(void *data, redisReply *reply);
static void ngx_http_gw_ratelimit_changed(void *data);
static void ngx_http_gw_ratelimit_wait_handler(ngx_event_t *ev);
static void ngx_http_gw_ratelimit_decide(ngx_http_gw_ratelimit_ctx_t *ctx,
    ngx_uint_t admitted);
static void ngx_http_gw_ratelimit_unavailable(
    ngx_http_gw_ratelimit_ctx_t *ctx);
static ngx_int_t ngx_http_gw_ratelimit_apply(ngx_http_request_t *r,
    ngx_http_gw_ratelimit_ctx_t *ctx);
static ngx_int_t ngx_http_gw_ratelimit_reject(ngx_http_request_t *r,
    ngx_http_gw_ratelimit_ctx_t *ctx, ngx_uint_t status, char *reason);
static void ngx_http_gw_ratelimit_resume(ngx_http_request_t *r);
static void ngx_http_gw_ratelimit_delay(ngx_http_request_t *r);
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
    ngx_http_gw_ratelimit_local_t *local, ngx_str_t *key, int64_t now,
    ngx_http_gw_ratelimit_node_t **held, ngx_uint_t nheld);
static ngx_uint_t ngx_http_gw_ratelimit_local_evict(
    ngx_http_gw_ratelimit_local_t *local, int64_t now, ngx_uint_t live,
    ngx_http_gw_ratelimit_node_t **held, ngx_uint_t nheld);
static void ngx_http_gw_ratelimit_local_eval(
    ngx_http_gw_ratelimit_limit_t *limit, ngx_http_gw_ratelimit_node_t *lr,
    int64_t now, ngx_uint_t charge, ngx_http_gw_rl_result_t *res);
static void ngx_cdecl ngx_http_gw_ratelimit_log_throttled(
    ngx_http_gw_ratelimit_throttle_t *t, time_t interval, ngx_uint_t level,
    ngx_log_t *log, const char *fmt, ...);
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
static ngx_int_t ngx_http_gw_ratelimit_address(ngx_conf_t *cf,
    ngx_str_t *value, in_port_t port, ngx_array_t *addrs);
static char *ngx_http_gw_ratelimit_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gw_ratelimit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_gw_ratelimit_number(ngx_str_t *value,
    ngx_uint_t max);
static ngx_int_t ngx_http_gw_ratelimit_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_gw_ratelimit_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_gw_ratelimit_init_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_gw_ratelimit_init_worker(ngx_cycle_t *cycle,
    ngx_http_gw_ratelimit_main_conf_t *gmcf);
static void ngx_http_gw_ratelimit_exit_process(ngx_cycle_t *cycle);


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
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
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
    ngx_string("DELAYED"),
    ngx_string("REJECTED"),
    ngx_string("DELAYED_DRY_RUN"),
    ngx_string("REJECTED_DRY_RUN"),
    ngx_string("ERROR")
};


static char  ngx_http_gw_ratelimit_algorithm_tags[] = "-gfs";


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


/* the worker's own */
static ngx_http_gw_ratelimit_throttle_t  ngx_http_gw_ratelimit_evicted;
static ngx_http_gw_ratelimit_throttle_t  ngx_http_gw_ratelimit_uncounted;


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
    u_char                         *p;
    size_t                          len;
    ngx_str_t                       raw;
    ngx_uint_t                      i, j, m, slot, cluster;
    ngx_pool_cleanup_t             *cln;
    ngx_http_gw_redis_t            *node;
    ngx_http_variable_value_t      *vv;
    ngx_http_gw_ratelimit_ctx_t    *ctx;
    ngx_http_gw_ratelimit_part_t   *part;
    ngx_http_gw_ratelimit_zone_t   *zone;
    ngx_http_gw_ratelimit_limit_t  *limits;

    limits = glcf->limits->elts;
    m = glcf->limits->nelts;

    /* the context and its per-limit arrays in one allocation */

    ctx = ngx_palloc(r->pool, sizeof(ngx_http_gw_ratelimit_ctx_t)
                              + m * (sizeof(ngx_http_gw_ratelimit_part_t)
                                     + sizeof(ngx_http_gw_rl_result_t)
                                     + sizeof(ngx_str_t) + sizeof(void *)));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(ctx, sizeof(ngx_http_gw_ratelimit_ctx_t));

    ctx->parts = (ngx_http_gw_ratelimit_part_t *) (ctx + 1);
    ctx->results = (ngx_http_gw_rl_result_t *) (ctx->parts + m);
    ctx->keys = (ngx_str_t *) (ctx->results + m);
    ctx->limits = (ngx_http_gw_ratelimit_limit_t **) (ctx->keys + m);

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
    ctx->start = ngx_current_msec;

    /* the keys of Redis, from the values of the zones' keys */

    for (i = 0; i < m; i++) {
        zone = limits[i].zone;

        if (zone->variable != NGX_ERROR) {
            vv = ngx_http_get_flushed_variable(r, zone->variable);
            if (vv == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            if (vv->not_found || vv->len == 0) {
                continue;
            }

            raw.len = vv->len;
            raw.data = vv->data;

        } else {
            if (ngx_http_complex_value(r, &zone->key, &raw) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            if (raw.len == 0) {
                continue;
            }
        }

        len = ngx_http_gw_ratelimit_key_len(zone, &raw);

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        (void) ngx_http_gw_ratelimit_key(p, zone, &raw);

        ctx->keys[ctx->n].data = p;
        ctx->keys[ctx->n].len = len;

        /* admitted until told otherwise (a part without details) */

        ngx_memzero(&ctx->results[ctx->n], sizeof(ngx_http_gw_rl_result_t));
        ctx->results[ctx->n].allowed = 1;

        ctx->limits[ctx->n++] = &limits[i];
    }

    if (ctx->n == 0) {
        /* no key, no limit: like limit_req, the status stays empty */
        return NGX_DECLINED;
    }

    if (gmcf->servers == NULL && ngx_process == NGX_PROCESS_SINGLE) {
        /* master_process off and reloaded: init_process does not run */
        (void) ngx_http_gw_ratelimit_init_worker((ngx_cycle_t *) ngx_cycle,
                                                 gmcf);
    }

    /* one server, known and backing off: do not wait */

    if (gmcf->servers == NULL
        || (gmcf->topology.mode != NGX_HTTP_GW_REDIS_CLUSTER
            && (node = ngx_http_gw_redis_topology_node(gmcf->servers, 0))
               != NULL
            && !ngx_http_gw_redis_usable(node)))
    {
        if (gmcf->servers != NULL) {
            /* a sentinel's master gone: perhaps another took over */
            ngx_http_gw_redis_topology_stale(gmcf->servers);
        }

        ngx_http_gw_ratelimit_unavailable(ctx);
        return ngx_http_gw_ratelimit_apply(r, ctx);
    }

    /* the limits by hash slot: a part each (one part outside a cluster) */

    cluster = (gmcf->topology.mode == NGX_HTTP_GW_REDIS_CLUSTER);

    for (i = 0; i < ctx->n; i++) {
        slot = cluster ? ngx_http_gw_rl_slot(ctx->keys[i].data,
                                             ctx->keys[i].len)
                       : 0;

        for (j = 0; j < ctx->nparts; j++) {
            if (ctx->parts[j].slot == slot) {
                break;
            }
        }

        part = &ctx->parts[j];

        if (j == ctx->nparts) {
            ngx_memzero(part, sizeof(ngx_http_gw_ratelimit_part_t));
            part->ctx = ctx;
            part->slot = slot;
            ctx->nparts++;
        }

        part->limit[part->n++] = (u_char) i;
    }

    ctx->state = NGX_HTTP_GW_RATELIMIT_WAITING;
    ctx->pending = ctx->nparts;
    ctx->known = 1;

    /* a part that fails at once may decide the request here */

    for (j = 0; j < ctx->nparts; j++) {
        ngx_http_gw_ratelimit_route(gmcf, &ctx->parts[j]);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gw_ratelimit: waiting for redis, %ui limits, %ui parts, "
                   "state %ui", ctx->n, ctx->nparts, ctx->state);

    if (ctx->state == NGX_HTTP_GW_RATELIMIT_WAITING) {
        r->write_event_handler = ngx_http_request_empty_handler;
    }

    /* notice a client that goes away meanwhile */

    r->read_event_handler = ngx_http_test_reading;

    if (r->connection->read->ready) {
        ngx_post_event(r->connection->read, &ngx_posted_events);

    } else if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_AGAIN;
}


/*
 * "<prefix><zone>:<algorithm>:{<key>}", or "...:{#<sha1 of key>}" for a
 * key longer than 256 bytes or with a "}": zones never share a key, keys
 * are binary-safe and bounded, and the keys of one value (the request's
 * limits on one client) share a Redis Cluster hash slot.
 */

static size_t
ngx_http_gw_ratelimit_key_len(ngx_http_gw_ratelimit_zone_t *zone,
    ngx_str_t *raw)
{
    if (raw->len > NGX_HTTP_GW_RATELIMIT_MAX_KEY
        || ngx_strlchr(raw->data, raw->data + raw->len, '}') != NULL)
    {
        return zone->prefix.len + sizeof("{#}") - 1 + 40;
    }

    return zone->prefix.len + sizeof("{}") - 1 + raw->len;
}


static u_char *
ngx_http_gw_ratelimit_key(u_char *p, ngx_http_gw_ratelimit_zone_t *zone,
    ngx_str_t *raw)
{
    u_char      hash[20];
    ngx_sha1_t  sha1;

    p = ngx_cpymem(p, zone->prefix.data, zone->prefix.len);
    *p++ = '{';

    if (raw->len > NGX_HTTP_GW_RATELIMIT_MAX_KEY
        || ngx_strlchr(raw->data, raw->data + raw->len, '}') != NULL)
    {
        ngx_sha1_init(&sha1);
        ngx_sha1_update(&sha1, raw->data, raw->len);
        ngx_sha1_final(hash, &sha1);

        *p++ = '#';
        p = ngx_hex_dump(p, hash, 20);

    } else {
        p = ngx_cpymem(p, raw->data, raw->len);
    }

    *p++ = '}';

    return p;
}


/*
 * Sends a part towards the server of its hash slot: into that server's
 * open batch; when the server is not known yet, into the queue of the
 * parts waiting for the servers (until their deadline); when it is known
 * not to answer (backing off), to its fail policy at once.
 */

static void
ngx_http_gw_ratelimit_route(ngx_http_gw_ratelimit_main_conf_t *gmcf,
    ngx_http_gw_ratelimit_part_t *part)
{
    ngx_msec_int_t        left;
    ngx_http_gw_redis_t  *node;

    left = part->ctx->start + gmcf->redis.timeout - ngx_current_msec;

    if (left <= 0) {
        ngx_http_gw_ratelimit_part_done(part, NGX_HTTP_GW_RL_FAILED);
        return;
    }

    node = ngx_http_gw_redis_topology_node(gmcf->servers, part->slot);

    if (node == NULL) {
        part->waiting = 1;
        ngx_queue_insert_tail(&gmcf->waiting, &part->queue);

        if (!gmcf->wait.timer_set) {
            ngx_add_timer(&gmcf->wait, (ngx_msec_t) left);
        }

        return;
    }

    if (!ngx_http_gw_redis_usable(node)) {
        /* a master gone: perhaps another took over */
        ngx_http_gw_redis_topology_stale(gmcf->servers);
        ngx_http_gw_ratelimit_part_done(part, NGX_HTTP_GW_RL_FAILED);
        return;
    }

    if (ngx_http_gw_ratelimit_join(gmcf, part, node) != NGX_OK) {
        ngx_http_gw_ratelimit_part_done(part, NGX_HTTP_GW_RL_FAILED);
    }
}


/*
 * Adds a part to the open batch of its server's route (a new one when
 * there is none, or when the part does not fit: then the full one is sent
 * now).
 */

static ngx_int_t
ngx_http_gw_ratelimit_join(ngx_http_gw_ratelimit_main_conf_t *gmcf,
    ngx_http_gw_ratelimit_part_t *part, ngx_http_gw_redis_t *node)
{
    ngx_str_t                       keys[NGX_HTTP_GW_RL_MAX_LIMITS];
    ngx_str_t                       stored[NGX_HTTP_GW_RL_MAX_LIMITS];
    ngx_uint_t                      i, details;
    ngx_http_gw_rl_limit_t         *limits[NGX_HTTP_GW_RL_MAX_LIMITS];
    ngx_http_gw_ratelimit_ctx_t    *ctx;
    ngx_http_gw_ratelimit_route_t  *route;
    ngx_http_gw_ratelimit_batch_t  *b;

    ctx = part->ctx;

    route = ngx_http_gw_ratelimit_route_of(gmcf, node);
    if (route == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < part->n; i++) {
        keys[i] = ctx->keys[part->limit[i]];
        limits[i] = &ctx->limits[part->limit[i]]->rl;
    }

    details = ctx->glcf->headers || ctx->glcf->delaying;

    b = route->batch;

    if (b != NULL
        && ngx_http_gw_rl_batch_add(&b->rl, limits, keys, part->n,
                                    part->slot, details, stored)
           != NGX_OK)
    {
        ngx_http_gw_ratelimit_send(gmcf, route, 1);
        b = NULL;
    }

    if (b == NULL) {
        b = ngx_http_gw_ratelimit_batch(gmcf, route);
        if (b == NULL) {
            return NGX_ERROR;
        }

        /* a request always fits in an empty batch */

        if (ngx_http_gw_rl_batch_add(&b->rl, limits, keys, part->n,
                                     part->slot, details, stored)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if ((ngx_msec_int_t) (ctx->start - b->start) < 0) {
        b->start = ctx->start;
    }

    part->batch = b;
    part->batch_id = b->id;
    part->index = b->rl.nreq - 1;
    part->ref = b->rl.nrefs - part->n;

    b->req[part->index] = part;

    if (b->rl.nreq == NGX_HTTP_GW_RL_BATCH) {
        ngx_http_gw_ratelimit_send(gmcf, route, 1);
    }

    return NGX_OK;
}


/* the route of a server, made when first used */

static ngx_http_gw_ratelimit_route_t *
ngx_http_gw_ratelimit_route_of(ngx_http_gw_ratelimit_main_conf_t *gmcf,
    ngx_http_gw_redis_t *node)
{
    ngx_uint_t                      i;
    ngx_http_gw_ratelimit_route_t  *route;

    for (i = 0; i < gmcf->nroutes; i++) {
        if (gmcf->routes[i].node == node) {
            return &gmcf->routes[i];
        }
    }

    if (gmcf->nroutes == NGX_HTTP_GW_REDIS_MAX_NODES) {
        return NULL;
    }

    route = &gmcf->routes[gmcf->nroutes++];

    route->node = node;
    route->batch = NULL;
    route->inflight = 0;

    return route;
}


/* a new open batch of a route, sent at the end of this iteration */

static ngx_http_gw_ratelimit_batch_t *
ngx_http_gw_ratelimit_batch(ngx_http_gw_ratelimit_main_conf_t *gmcf,
    ngx_http_gw_ratelimit_route_t *route)
{
    ngx_http_gw_ratelimit_batch_t  *b;

    b = gmcf->free;

    if (b != NULL) {
        gmcf->free = b->next;

    } else {
        if (gmcf->batches == NGX_HTTP_GW_RATELIMIT_MAX_BATCHES) {
            ngx_http_gw_redis_log_error(route->node, NGX_LOG_ERR,
                                        "%d batches in flight, failing fast",
                                        NGX_HTTP_GW_RATELIMIT_MAX_BATCHES);
            return NULL;
        }

        b = ngx_palloc(ngx_cycle->pool,
                       sizeof(ngx_http_gw_ratelimit_batch_t));
        if (b == NULL) {
            return NULL;
        }

        b->gmcf = gmcf;
        gmcf->batches++;
    }

    b->next = NULL;
    b->route = route;
    b->cmd = NULL;
    b->id = gmcf->sequence++;
    b->start = ngx_current_msec;
    b->redirects = 0;
    b->eval = 0;

    ngx_http_gw_rl_batch_init(&b->rl, gmcf->topology.mode
                                      == NGX_HTTP_GW_REDIS_CLUSTER);

    route->batch = b;

    if (!gmcf->flush.posted) {
        ngx_post_event(&gmcf->flush, &ngx_posted_events);
    }

    return b;
}


/*
 * The end of the event loop iteration (posted), a reply that lets a held
 * batch go (posted), or the deadline of a held batch (timer): the open
 * batches of every route.
 */

static void
ngx_http_gw_ratelimit_flush_handler(ngx_event_t *ev)
{
    ngx_uint_t                          i;
    ngx_http_gw_ratelimit_main_conf_t  *gmcf;

    gmcf = ev->data;

    ev->timedout = 0;

    for (i = 0; i < gmcf->nroutes; i++) {
        ngx_http_gw_ratelimit_send(gmcf, &gmcf->routes[i], 0);
    }
}


/*
 * Sends the open batch of a route; unless "now", it is held while the
 * route has a batch in flight (until a reply comes, at most until its
 * deadline): under load batches grow with the round trip instead of the
 * round trips multiplying.
 */

static void
ngx_http_gw_ratelimit_send(ngx_http_gw_ratelimit_main_conf_t *gmcf,
    ngx_http_gw_ratelimit_route_t *route, ngx_uint_t now)
{
    size_t                          len;
    ngx_msec_int_t                  timeout;
    ngx_http_gw_redis_cmd_t        *cmd;
    ngx_http_gw_ratelimit_batch_t  *b;

    b = route->batch;

    if (b == NULL) {
        return;
    }

    timeout = b->start + gmcf->redis.timeout - ngx_current_msec;

    if (!now
        && route->inflight >= NGX_HTTP_GW_RATELIMIT_INFLIGHT
        && timeout > 0)
    {
        if (!gmcf->flush.timer_set
            || (ngx_msec_int_t) (gmcf->flush.timer.key - ngx_current_msec)
               > timeout)
        {
            if (gmcf->flush.timer_set) {
                ngx_del_timer(&gmcf->flush);
            }

            ngx_add_timer(&gmcf->flush, (ngx_msec_t) timeout);
        }

        return;
    }

    route->batch = NULL;

    if (timeout <= 0) {
        /* not sent in time: only if replies stopped coming */
        ngx_http_gw_ratelimit_finish(b, NULL);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "gw_ratelimit: sending a batch of %ui requests, %ui keys",
                   b->rl.nreq, b->rl.nkeys);

    len = ngx_http_gw_ratelimit_format(b, 0);

    cmd = (len == 0) ? NULL
                     : ngx_http_gw_redis_send(route->node, gmcf->command, len,
                                              (ngx_msec_t) timeout,
                                              ngx_http_gw_ratelimit_reply, b);

    if (cmd == NULL) {
        /* every request of the batch follows its fail policy */
        ngx_http_gw_ratelimit_finish(b, NULL);
        return;
    }

    b->cmd = cmd;
    route->inflight++;
}


/* the batch as one command, in the worker's command buffer */

static size_t
ngx_http_gw_ratelimit_format(ngx_http_gw_ratelimit_batch_t *b,
    ngx_uint_t eval)
{
    ngx_str_t                           id;
    ngx_http_gw_ratelimit_main_conf_t  *gmcf;
    u_char                              buf[NGX_INT_T_LEN + 64];

    gmcf = b->gmcf;

    /* the id: "<batch number, hex>.<worker token>" */

    id.data = buf;
    id.len = ngx_snprintf(buf, sizeof(buf), "%xi.%V", b->id, &gmcf->token)
             - buf;

    if (ngx_http_gw_rl_batch_size(&b->rl, id.len) > gmcf->command_size) {
        return 0;
    }

    return ngx_http_gw_rl_batch_format(&b->rl, gmcf->command, eval, &id);
}


static void
ngx_http_gw_ratelimit_reply(void *data, redisReply *reply)
{
    ngx_http_gw_ratelimit_batch_t *b = data;

    size_t                              len;
    u_char                              buf[128];
    ngx_uint_t                          asking, i;
    ngx_msec_int_t                      timeout;
    ngx_http_gw_redis_t                *node, *to;
    ngx_http_gw_redis_cmd_t            *cmd;
    ngx_http_gw_rl_verdicts_t          *v;
    ngx_http_gw_ratelimit_part_t       *part;
    ngx_http_gw_ratelimit_route_t      *route;
    ngx_http_gw_ratelimit_main_conf_t  *gmcf;

    gmcf = b->gmcf;
    route = b->route;
    node = route->node;

    /* the script cache was flushed: send the script itself, same deadline */

    if (reply != NULL && !b->eval && ngx_http_gw_rl_noscript(reply)) {
        b->eval = 1;

        len = ngx_http_gw_ratelimit_format(b, 1);

        if (len != 0
            && ngx_http_gw_redis_resend(b->cmd, gmcf->command, len) == NGX_OK)
        {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                           "gw_ratelimit: NOSCRIPT, sent EVAL");
            return;
        }
    }

    /* a held batch may go now, once this hiredis callback is over */

    route->inflight--;

    if (!gmcf->flush.posted) {
        ngx_post_event(&gmcf->flush, &ngx_posted_events);
    }

    if (reply == NULL) {
        ngx_http_gw_ratelimit_finish(b, NULL);
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {

        /* a cluster's MOVED or ASK: the same batch, to the other server */

        to = ngx_http_gw_redis_topology_redirect(gmcf->servers, node, reply,
                                                 &asking);

        timeout = b->start + gmcf->redis.timeout - ngx_current_msec;

        if (to != NULL && b->redirects < 3 && timeout > 0) {
            route = ngx_http_gw_ratelimit_route_of(gmcf, to);
            len = ngx_http_gw_ratelimit_format(b, b->eval);

            if (route != NULL && len != 0
                && (!asking
                    || ngx_http_gw_redis_topology_asking(to) == NGX_OK))
            {
                cmd = ngx_http_gw_redis_send(to, gmcf->command, len,
                                             (ngx_msec_t) timeout,
                                             ngx_http_gw_ratelimit_reply, b);
                if (cmd != NULL) {
                    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                                   "gw_ratelimit: %s, batch sent again",
                                   asking ? "ASK" : "MOVED");

                    b->redirects++;
                    b->route = route;
                    b->cmd = cmd;
                    route->inflight++;
                    return;
                }
            }
        }

        /*
         * A cluster whose slots moved: nothing was charged (the script
         * reads every key before it writes one), so the requests wait for
         * the new map and go again, within their deadlines.
         */

        if (to == NULL
            && gmcf->topology.mode == NGX_HTTP_GW_REDIS_CLUSTER
            && ngx_http_gw_ratelimit_moved(reply))
        {
            for (i = 0; i < b->rl.nreq; i++) {
                part = b->req[i];

                if (part != NULL) {
                    part->batch = NULL;
                    part->waiting = 1;
                    ngx_queue_insert_tail(&gmcf->waiting, &part->queue);
                }
            }

            if (!gmcf->wait.timer_set && timeout > 0) {
                ngx_add_timer(&gmcf->wait, (ngx_msec_t) timeout);
            }

            b->next = gmcf->free;
            gmcf->free = b;
            return;
        }

        len = ngx_http_gw_redis_printable(buf, sizeof(buf),
                                          (u_char *) reply->str, reply->len);
        ngx_http_gw_redis_log_error(node, NGX_LOG_ERR,
                                    "script failed: \"%*s\"", len, buf);
        ngx_http_gw_ratelimit_finish(b, NULL);
        return;
    }

    v = gmcf->verdicts;

    if (ngx_http_gw_rl_parse(reply, &b->rl, v) != NGX_OK) {
        ngx_http_gw_redis_log_error(node, NGX_LOG_ERR,
                                    "unexpected script reply");
        ngx_http_gw_ratelimit_finish(b, NULL);

        /* what comes next may answer other commands: a new connection */
        ngx_http_gw_redis_fail_now(node);
        return;
    }

    if (v->error != NULL) {
        len = ngx_http_gw_redis_printable(buf, sizeof(buf),
                                          (u_char *) v->error->str,
                                          v->error->len);
        ngx_http_gw_redis_log_error(node, NGX_LOG_ERR,
                                    "script failed for a request: \"%*s\"",
                                    len, buf);
    }

    ngx_http_gw_ratelimit_finish(b, v);
}


/* a cluster says keys are elsewhere (the map is being refreshed) */

static ngx_uint_t
ngx_http_gw_ratelimit_moved(redisReply *reply)
{
    return ngx_strstr(reply->str, "non local key") != NULL
           || ngx_strncmp(reply->str, "TRYAGAIN", 8) == 0
           || ngx_strncmp(reply->str, "CLUSTERDOWN", 11) == 0;
}


/*
 * Every part still waiting for the batch gets its verdict (with the
 * verdicts) or fails (without); then the batch is free again.
 */

static void
ngx_http_gw_ratelimit_finish(ngx_http_gw_ratelimit_batch_t *b,
    ngx_http_gw_rl_verdicts_t *v)
{
    ngx_uint_t                          i, j, outcome;
    ngx_http_gw_ratelimit_ctx_t        *ctx;
    ngx_http_gw_ratelimit_part_t       *part;
    ngx_http_gw_ratelimit_main_conf_t  *gmcf;

    gmcf = b->gmcf;

    for (i = 0; i < b->rl.nreq; i++) {
        part = b->req[i];

        if (part == NULL) {
            /* the client went away: a late decision is discarded */
            continue;
        }

        part->batch = NULL;
        ctx = part->ctx;

        outcome = (v == NULL) ? NGX_HTTP_GW_RL_FAILED : v->outcome[i];

        if (outcome != NGX_HTTP_GW_RL_FAILED) {
            if (v->known[i]) {
                for (j = 0; j < part->n; j++) {
                    ctx->results[part->limit[j]] = v->res[part->ref + j];
                }

            } else {
                ctx->known = 0;
            }
        }

        ngx_http_gw_ratelimit_part_done(part, outcome);
    }

    b->next = gmcf->free;
    gmcf->free = b;
}


/*
 * A part is decided.  When the request's last one is, the request gets its
 * decision (or follows its fail policy: when a part failed) and resumes
 * from the posted events queue rather than from inside the hiredis
 * callback; should the request end before that, closing its connection
 * (or stream) deletes the posted event.
 */

static void
ngx_http_gw_ratelimit_part_done(ngx_http_gw_ratelimit_part_t *part,
    ngx_uint_t outcome)
{
    ngx_uint_t                    i, failed, denied;
    ngx_http_request_t           *r;
    ngx_http_gw_ratelimit_ctx_t  *ctx;

    ctx = part->ctx;
    part->outcome = outcome;

    if (--ctx->pending > 0) {
        return;
    }

    failed = 0;
    denied = 0;

    for (i = 0; i < ctx->nparts; i++) {
        if (ctx->parts[i].outcome == NGX_HTTP_GW_RL_FAILED) {
            failed = 1;

        } else if (ctx->parts[i].outcome == NGX_HTTP_GW_RL_DENIED) {
            denied = 1;
        }
    }

    if (failed) {
        ngx_http_gw_ratelimit_unavailable(ctx);

    } else {
        ngx_http_gw_ratelimit_decide(ctx, !denied);
    }

    /* rejected: what the request's other hash slots charged goes back */

    if (denied) {
        for (i = 0; i < ctx->nparts; i++) {
            if (ctx->parts[i].outcome == NGX_HTTP_GW_RL_ADMITTED) {
                ngx_http_gw_ratelimit_refund(ctx->gmcf, &ctx->parts[i]);
            }
        }
    }

    ctx->state = NGX_HTTP_GW_RATELIMIT_DONE;

    r = ctx->request;
    r->write_event_handler = ngx_http_gw_ratelimit_resume;

    ngx_post_event(r->connection->write, &ngx_posted_events);
}


/*
 * The charges of a part of a rejected request, taken back (the request is
 * answered already: nothing waits for this, a failure is logged).
 */

static void
ngx_http_gw_ratelimit_refund(ngx_http_gw_ratelimit_main_conf_t *gmcf,
    ngx_http_gw_ratelimit_part_t *part)
{
    size_t                        len;
    ngx_str_t                     id, keys[NGX_HTTP_GW_RL_MAX_LIMITS];
    ngx_uint_t                    i;
    ngx_http_gw_redis_t          *node;
    ngx_http_gw_rl_limit_t       *limits[NGX_HTTP_GW_RL_MAX_LIMITS];
    ngx_http_gw_ratelimit_ctx_t  *ctx;
    u_char                        buf[NGX_INT_T_LEN + 64];

    ctx = part->ctx;

    node = ngx_http_gw_redis_topology_node(gmcf->servers, part->slot);
    if (node == NULL) {
        return;
    }

    for (i = 0; i < part->n; i++) {
        keys[i] = ctx->keys[part->limit[i]];
        limits[i] = &ctx->limits[part->limit[i]]->rl;
    }

    id.data = buf;
    id.len = ngx_snprintf(buf, sizeof(buf), "%xi.%V", part->batch_id,
                          &gmcf->token)
             - buf;

    if (ngx_http_gw_rl_refund_size(limits, keys, part->n, id.len)
        > gmcf->command_size)
    {
        return;
    }

    len = ngx_http_gw_rl_refund_format(gmcf->command, limits, keys, part->n,
                                       part->ref, &id);

    if (ngx_http_gw_redis_send(node, gmcf->command, len, gmcf->redis.timeout,
                               ngx_http_gw_ratelimit_refunded, node)
        == NULL)
    {
        ngx_http_gw_redis_log_error(node, NGX_LOG_ERR,
                                    "a refund could not be sent");
    }
}


static void
ngx_http_gw_ratelimit_refunded(void *data, redisReply *reply)
{
    ngx_http_gw_redis_t *node = data;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_http_gw_redis_log_error(node, NGX_LOG_ERR, "a refund failed");
    }
}


/* the servers changed (or are known at last): the waiting parts go */

static void
ngx_http_gw_ratelimit_changed(void *data)
{
    ngx_http_gw_ratelimit_main_conf_t *gmcf = data;

    if (!gmcf->changed.posted) {
        ngx_post_event(&gmcf->changed, &ngx_posted_events);
    }
}


static void
ngx_http_gw_ratelimit_wait_handler(ngx_event_t *ev)
{
    ngx_queue_t                        *q, *next;
    ngx_msec_int_t                      left, first;
    ngx_http_gw_ratelimit_part_t       *part;
    ngx_http_gw_ratelimit_main_conf_t  *gmcf;

    gmcf = ev->data;

    ev->timedout = 0;

    if (gmcf->wait.timer_set) {
        ngx_del_timer(&gmcf->wait);
    }

    first = 0;

    for (q = ngx_queue_head(&gmcf->waiting);
         q != ngx_queue_sentinel(&gmcf->waiting);
         q = next)
    {
        next = ngx_queue_next(q);
        part = ngx_queue_data(q, ngx_http_gw_ratelimit_part_t, queue);

        left = part->ctx->start + gmcf->redis.timeout - ngx_current_msec;

        if (left > 0
            && ngx_http_gw_redis_topology_node(gmcf->servers, part->slot)
               == NULL)
        {
            /* still not known */
            if (first == 0 || left < first) {
                first = left;
            }

            continue;
        }

        ngx_queue_remove(q);
        part->waiting = 0;

        /* joins its server's batch now, or fails at its deadline */
        ngx_http_gw_ratelimit_route(gmcf, part);
    }

    if (first > 0) {
        ngx_add_timer(&gmcf->wait, (ngx_msec_t) first);
    }
}


static void
ngx_http_gw_ratelimit_decide(ngx_http_gw_ratelimit_ctx_t *ctx,
    ngx_uint_t admitted)
{
    ngx_uint_t                      i, t, level;
    ngx_msec_t                      delay;
    ngx_http_request_t             *r;
    ngx_http_gw_rl_result_t        *res;
    ngx_http_gw_ratelimit_limit_t  *limit;

    r = ctx->request;
    res = ctx->results;

    if (admitted) {

        /* like limit_req: excess beyond "delay=" waits, at the rate */

        t = ctx->n;
        ctx->delay = 0;

        if (ctx->known && ctx->glcf->delaying) {

            for (i = 0; i < ctx->n; i++) {
                limit = ctx->limits[i];

                if (limit->delay == NGX_HTTP_GW_RATELIMIT_NODELAY
                    || res[i].excess <= limit->delay * 1000)
                {
                    continue;
                }

                delay = (ngx_msec_t) ((res[i].excess - limit->delay * 1000)
                                      * limit->rl.interval / 1000000);

                if (delay > ctx->delay || t == ctx->n) {
                    ctx->delay = delay;
                    t = i;
                }
            }
        }

        if (t == ctx->n) {
            if (ctx->status == 0) {
                ctx->status = NGX_HTTP_GW_RATELIMIT_PASSED;
            }

            return;
        }

        level = ctx->glcf->log_level;
        level = (level == NGX_LOG_INFO) ? NGX_LOG_INFO : level + 1;

        ngx_log_error(level, r->connection->log, 0,
                      "delaying request%s, excess: %ui.%03ui, by zone \"%V\"",
                      ctx->glcf->dry_run ? ", dry run" : "",
                      res[t].excess / 1000, res[t].excess % 1000,
                      &ctx->limits[t]->zone->name);

        if (ctx->glcf->dry_run) {
            ctx->delay = 0;

            if (ctx->status == 0) {
                ctx->status = NGX_HTTP_GW_RATELIMIT_DELAYED_DRY;
            }

            return;
        }

        if (ctx->status == 0) {
            ctx->status = NGX_HTTP_GW_RATELIMIT_DELAYED;
        }

        return;
    }

    for (t = 0; t < ctx->n - 1; t++) {
        if (!res[t].allowed) {
            break;
        }
    }

    /*
     * limit_req's line, which fail2ban's nginx-limit-req filter matches:
     * nothing may come between the zone and nginx's ", client: ..."
     */

    ngx_log_error(ctx->glcf->log_level, r->connection->log, 0,
                  "limiting requests%s, excess: %ui.%03ui by zone \"%V\"",
                  ctx->glcf->dry_run ? ", dry run" : "",
                  res[t].excess / 1000, res[t].excess % 1000,
                  &ctx->limits[t]->zone->name);

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
                          0, "gw_ratelimit: redis unavailable, dry run: not "
                          "rejected with %ui", ctx->glcf->fail_status);
            return;
        }

        ctx->closed = 1;
        return;

    case NGX_HTTP_GW_RATELIMIT_FAIL_LOCAL:

        switch (ngx_http_gw_ratelimit_local(ctx, &admitted)) {

        case NGX_OK:
            ctx->known = 1;
            ngx_http_gw_ratelimit_decide(ctx, admitted);
            return;

        case NGX_DECLINED:
            /* never let a client through uncounted */
            ngx_http_gw_ratelimit_log_throttled(
                &ngx_http_gw_ratelimit_uncounted, 1, NGX_LOG_ERR,
                ctx->request->connection->log,
                "gw_ratelimit: the local zone cannot hold the keys of a "
                "request, rejected with %ui", ctx->glcf->fail_status);

            if (!ctx->glcf->dry_run) {
                ctx->closed = 1;
            }

            return;

        default:
            return;
        }


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

    if (ctx->delay) {

        /* a timer on the connection's write event, as limit_req does */

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gw_ratelimit: delaying %M ms", ctx->delay);

        if (r->connection->read->ready) {
            ngx_post_event(r->connection->read, &ngx_posted_events);

        } else if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        r->read_event_handler = ngx_http_test_reading;
        r->write_event_handler = ngx_http_gw_ratelimit_delay;

        r->connection->write->delayed = 1;
        ngx_add_timer(r->connection->write, ctx->delay);

        ctx->delay = 0;

        return NGX_AGAIN;
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


/* the end of a delay, or a write event before it */

static void
ngx_http_gw_ratelimit_delay(ngx_http_request_t *r)
{
    ngx_event_t  *wev;

    wev = r->connection->write;

    if (wev->delayed) {
        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        }

        return;
    }

    ngx_http_gw_ratelimit_resume(r);
}


/* the request is going away: a late decision must not find it */

static void
ngx_http_gw_ratelimit_cleanup(void *data)
{
    ngx_http_gw_ratelimit_ctx_t *ctx = data;

    ngx_uint_t                     i;
    ngx_http_gw_ratelimit_part_t  *part;

    for (i = 0; i < ctx->nparts; i++) {
        part = &ctx->parts[i];

        if (part->batch != NULL) {
            part->batch->req[part->index] = NULL;
            part->batch = NULL;
        }

        if (part->waiting) {
            ngx_queue_remove(&part->queue);
            part->waiting = 0;
        }
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
    ngx_http_gw_rl_result_t  *res;

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
 * Nothing of a decision stays in the zone between lock and unlock that
 * another process would have to know about: the nodes the decision holds
 * are only known to it (eviction is told to spare them), so a worker
 * killed inside the lock leaves no trace once the master releases it.
 * NGX_DECLINED: a key could not be counted (the request gets the fail
 * status).
 */

static ngx_int_t
ngx_http_gw_ratelimit_local(ngx_http_gw_ratelimit_ctx_t *ctx,
    ngx_uint_t *admitted)
{
    int64_t                         now;
    ngx_uint_t                      i, all;
    ngx_time_t                     *tp;
    ngx_http_gw_ratelimit_node_t   *lr[NGX_HTTP_GW_RL_MAX_LIMITS];
    ngx_http_gw_ratelimit_local_t  *local;

    if (ctx->gmcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    local = ctx->gmcf->shm_zone->data;

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000000 + (int64_t) tp->msec * 1000;

    ngx_shmtx_lock(&local->shpool->mutex);

    for (i = 0; i < ctx->n; i++) {
        lr[i] = ngx_http_gw_ratelimit_local_lookup(local, &ctx->keys[i], now,
                                                   lr, i);
        if (lr[i] == NULL) {
            ngx_shmtx_unlock(&local->shpool->mutex);
            return NGX_DECLINED;
        }
    }

    all = 1;

    for (i = 0; i < ctx->n; i++) {
        ngx_http_gw_ratelimit_local_eval(ctx->limits[i], lr[i], now, 0,
                                         &ctx->results[i]);

        if (!ctx->results[i].allowed) {
            all = 0;
        }
    }

    if (all) {
        for (i = 0; i < ctx->n; i++) {
            ngx_http_gw_ratelimit_local_eval(ctx->limits[i], lr[i], now, 1,
                                             &ctx->results[i]);
        }
    }

    ngx_shmtx_unlock(&local->shpool->mutex);

    *admitted = all;

    return NGX_OK;
}


/*
 * The node of a key, found or made.  A new node first frees up to two
 * nodes whose state ran out; when the zone is full, the least recently
 * used nodes go (never one of the "held" nodes of the decision in
 * progress) until one fits.  NULL only when nothing can be evicted.
 */

static ngx_http_gw_ratelimit_node_t *
ngx_http_gw_ratelimit_local_lookup(ngx_http_gw_ratelimit_local_t *local,
    ngx_str_t *key, int64_t now, ngx_http_gw_ratelimit_node_t **held,
    ngx_uint_t nheld)
{
    u_char                         id[20];
    uint32_t                       hash;
    ngx_int_t                      rc;
    ngx_sha1_t                     sha1;
    ngx_rbtree_node_t             *node, *sentinel;
    ngx_http_gw_ratelimit_node_t  *lr;

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, key->data, key->len);
    ngx_sha1_final(id, &sha1);

    ngx_memcpy(&hash, id, sizeof(uint32_t));

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

        rc = ngx_memcmp(id, lr->id, 20);

        if (rc == 0) {
            ngx_queue_remove(&lr->queue);
            ngx_queue_insert_head(&local->sh->queue, &lr->queue);
            return lr;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    (void) ngx_http_gw_ratelimit_local_evict(local, now, 0, held, nheld);

    for ( ;; ) {
        node = ngx_slab_alloc_locked(local->shpool,
                                     offsetof(ngx_rbtree_node_t, color)
                                     + sizeof(ngx_http_gw_ratelimit_node_t));
        if (node != NULL) {
            break;
        }

        if (ngx_http_gw_ratelimit_local_evict(local, now, 1, held, nheld)
            == 0)
        {
            return NULL;
        }
    }

    node->key = hash;

    lr = (ngx_http_gw_ratelimit_node_t *) &node->color;

    lr->expire = 0;
    lr->tat = 0;
    lr->window = 0;
    lr->count = 0;
    lr->previous = 0;

    ngx_memcpy(lr->id, id, 20);

    ngx_rbtree_insert(&local->sh->rbtree, node);

    ngx_queue_insert_head(&local->sh->queue, &lr->queue);

    return lr;
}


/*
 * From the least recently used end: without "live", up to two nodes whose
 * state ran out (stopping at the first one still counting); with "live",
 * the least recently used node, counting or not.  Held nodes are skipped.
 * Returns the number of nodes freed.
 */

static ngx_uint_t
ngx_http_gw_ratelimit_local_evict(ngx_http_gw_ratelimit_local_t *local,
    int64_t now, ngx_uint_t live, ngx_http_gw_ratelimit_node_t **held,
    ngx_uint_t nheld)
{
    ngx_uint_t                     i, n;
    ngx_queue_t                   *q, *prev;
    ngx_rbtree_node_t             *node;
    ngx_http_gw_ratelimit_node_t  *lr;

    n = 0;

    for (q = ngx_queue_last(&local->sh->queue);
         q != ngx_queue_sentinel(&local->sh->queue);
         q = prev)
    {
        prev = ngx_queue_prev(q);

        lr = ngx_queue_data(q, ngx_http_gw_ratelimit_node_t, queue);

        for (i = 0; i < nheld; i++) {
            if (held[i] == lr) {
                break;
            }
        }

        if (i < nheld) {
            continue;
        }

        if (!live && lr->expire > now) {
            break;
        }

        if (live && lr->expire > now) {
            ngx_http_gw_ratelimit_log_throttled(&ngx_http_gw_ratelimit_evicted,
                60, NGX_LOG_WARN, ngx_cycle->log,
                "gw_ratelimit: the local zone \"%V\" is full, the least "
                "recently used keys are forgotten before their time; "
                "consider a larger gw_ratelimit_local_size",
                &local->name);
        }

        ngx_queue_remove(q);

        node = (ngx_rbtree_node_t *)
                   ((u_char *) lr - offsetof(ngx_rbtree_node_t, color));

        ngx_rbtree_delete(&local->sh->rbtree, node);

        ngx_slab_free_locked(local->shpool, node);

        n++;

        if (live || n == 2) {
            break;
        }
    }

    return n;
}


/*
 * The script's algorithms, with its names, on a local node (usec); the
 * sliding window is approximated here by weighting the previous fixed
 * window's count, which needs no per-request log in shared memory.
 */

static void
ngx_http_gw_ratelimit_local_eval(ngx_http_gw_ratelimit_limit_t *limit,
    ngx_http_gw_ratelimit_node_t *lr, int64_t now, ngx_uint_t charge,
    ngx_http_gw_rl_result_t *res)
{
    double                   estimate, left, wait;
    int64_t                  tat, interval, tolerance, queued, period;
    int64_t                  window, count, previous, elapsed, capacity, rate;
    ngx_http_gw_rl_limit_t  *rl;

    rl = &limit->rl;

    res->remaining = 0;
    res->reset = 0;
    res->retry = 0;
    res->excess = 0;

    switch (rl->algorithm) {

    case NGX_HTTP_GW_RL_GCRA:
        interval = (int64_t) rl->interval;
        tolerance = (int64_t) rl->tolerance;

        tat = ngx_max(lr->tat, now);

        res->excess = (ngx_uint_t) ((tat - now) * 1000 / interval);
        res->allowed = (tat + interval - now <= tolerance);

        if (!res->allowed) {
            res->retry = (ngx_msec_t) ((tat + interval - now - tolerance
                                        + 999) / 1000);

        } else if (charge) {
            tat += interval;
            lr->tat = tat;
            lr->expire = tat;
        }

        queued = tat - now;
        res->remaining = (ngx_uint_t) ((tolerance - queued) / interval);

        if (queued > 0) {
            res->reset = (ngx_msec_t) ((queued
                                        - (queued - 1) / interval * interval
                                        + 999) / 1000);
        }

        break;

    case NGX_HTTP_GW_RL_FIXED:
        period = (int64_t) rl->period;
        capacity = (int64_t) rl->capacity;
        rate = (int64_t) rl->rate;

        window = now / period;
        count = (lr->window == window) ? lr->count : 0;

        res->excess = (count + 1 > rate) ? (count + 1 - rate) * 1000 : 0;
        res->allowed = (count < capacity);

        if (res->allowed && charge) {
            count++;
            lr->window = window;
            lr->count = count;
            lr->expire = (window + 1) * period;
        }

        res->remaining = (count < capacity) ? capacity - count : 0;
        res->reset = (ngx_msec_t) (((window + 1) * period - now + 999)
                                   / 1000);

        if (!res->allowed) {
            res->retry = res->reset;
        }

        break;

    default: /* NGX_HTTP_GW_RL_SLIDING */
        period = (int64_t) rl->period;
        capacity = (int64_t) rl->capacity;
        rate = (int64_t) rl->rate;

        window = now / period;
        elapsed = now - window * period;

        if (lr->window == window) {
            count = lr->count;
            previous = lr->previous;

        } else if (lr->window == window - 1) {
            count = 0;
            previous = lr->count;

        } else {
            count = 0;
            previous = 0;
        }

        estimate = (double) previous * (period - elapsed) / period + count;

        left = estimate + 1 - rate;
        res->excess = left > 0 ? (ngx_uint_t) (left * 1000) : 0;
        res->allowed = (estimate + 1 <= capacity + 0.000001);

        if (res->allowed && charge) {
            count++;
            estimate += 1;
            lr->window = window;
            lr->count = count;
            lr->previous = previous;
            lr->expire = (window + 2) * period;
        }

        left = capacity - estimate + 0.000001;
        res->remaining = left > 0 ? (ngx_uint_t) left : 0;
        res->reset = (ngx_msec_t) ((period - elapsed + 999) / 1000);

        if (!res->allowed) {
            if (count + 1 <= capacity && previous > 0) {
                wait = (period - elapsed)
                       - (double) (capacity - 1 - count) * period / previous;

            } else {
                wait = (period - elapsed) + period
                       - (count > 0 ? (double) (capacity - 1) * period / count
                                    : 0);
            }

            res->retry = (ngx_msec_t) ((ngx_max(wait, 0) + 999) / 1000);
        }

        break;
    }

    res->excess = ngx_min(res->excess, (rl->burst + 1) * 1000);
    res->reset = ngx_min(res->reset, NGX_HTTP_GW_RL_MAX_MSEC);
    res->retry = ngx_min(res->retry, NGX_HTTP_GW_RL_MAX_MSEC);
}


/* at most one line per interval per worker, however many there would be */

static void ngx_cdecl
ngx_http_gw_ratelimit_log_throttled(ngx_http_gw_ratelimit_throttle_t *t,
    time_t interval, ngx_uint_t level, ngx_log_t *log, const char *fmt, ...)
{
    u_char   *p, *last;
    va_list   args;
    u_char    buf[NGX_MAX_ERROR_STR];

    if (log->log_level < level) {
        return;
    }

    if (t->sec != 0 && ngx_time() - t->sec < interval) {
        t->suppressed++;
        return;
    }

    last = buf + sizeof(buf);

    va_start(args, fmt);
    p = ngx_vslprintf(buf, last, fmt, args);
    va_end(args);

    if (t->suppressed) {
        p = ngx_slprintf(p, last, " (%ui similar messages suppressed)",
                         t->suppressed);
    }

    ngx_log_error(level, log, 0, "%*s", p - buf, buf);

    t->sec = ngx_time();
    t->suppressed = 0;
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

            p = (ngx_memcmp(lrn->id, lrnt->id, 20) < 0)
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
    ngx_http_gw_rl_result_t  *res;

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

        if (zone->algorithm == NGX_HTTP_GW_RL_GCRA) {
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
     *     gmcf->servers = NULL;
     *     gmcf->nroutes = 0;
     *     gmcf->free = NULL;
     *     gmcf->batches = 0;
     *     gmcf->flush = { 0 };
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

    u_char                         *p;
    ngx_uint_t                      i;
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

        zone->prefix.len = gmcf->prefix.len + zone->name.len + 3;
        zone->prefix.data = ngx_pnalloc(cf->pool, zone->prefix.len);
        if (zone->prefix.data == NULL) {
            return NGX_CONF_ERROR;
        }

        p = ngx_cpymem(zone->prefix.data, gmcf->prefix.data,
                       gmcf->prefix.len);
        p = ngx_cpymem(p, zone->name.data, zone->name.len);
        *p++ = ':';
        *p++ = ngx_http_gw_ratelimit_algorithm_tags[zone->algorithm];
        *p = ':';
    }

    gmcf->redis.script = ngx_http_gw_rl_script;
    gmcf->redis.log_prefix = "gw_ratelimit: ";
    gmcf->topology.sentinel.log_prefix = "gw_ratelimit: ";

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

    ngx_uint_t                          i;
    ngx_http_gw_ratelimit_limit_t      *limits;
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

    /* an admitted request is only delayed when its excess can pass delay= */

    limits = conf->limits->elts;

    for (i = 0; i < conf->limits->nelts; i++) {
        if (limits[i].delay != NGX_HTTP_GW_RATELIMIT_NODELAY
            && limits[i].burst > limits[i].delay)
        {
            conf->delaying = 1;
        }
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

        if (zone->algorithm == NGX_HTTP_GW_RL_GCRA) {
            limit[i].capacity = limit[i].burst + 1;

        } else {
            limit[i].capacity = zone->count + limit[i].burst;

            if (zone->algorithm == NGX_HTTP_GW_RL_SLIDING
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

        /* the limit as the script has it, and its arguments */

        p = ngx_pnalloc(cf->pool, NGX_HTTP_GW_RL_LIMIT_ARGS);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_http_gw_rl_limit_init(&limit[i].rl, zone->algorithm,
                                  zone->period, zone->count, limit[i].burst,
                                  p);

        limit[i].zone = zone;
    }

    return NGX_OK;
}


static char *
ngx_http_gw_ratelimit_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gw_ratelimit_main_conf_t *gmcf = conf;

    ngx_str_t                          *value, s;
    ngx_int_t                           n;
    ngx_msec_t                          ms;
    ngx_uint_t                          i, naddrs;
    ngx_http_gw_redis_conf_t           *rc, *sc;
    ngx_http_gw_redis_topology_conf_t  *tc;

    rc = &gmcf->redis;
    tc = &gmcf->topology;
    sc = &tc->sentinel;

    if (rc->name.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    rc->timeout = 50;
    rc->connect_timeout = 100;
    tc->mode = NGX_HTTP_GW_REDIS_SINGLE;
    naddrs = 0;

    /* the parameters first: the mode says what the addresses are */

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_http_gw_conf_param(&value[i], "sentinel=", &s)) {
            if (s.len == 0) {
                goto empty;
            }

            if (tc->mode != NGX_HTTP_GW_REDIS_SINGLE) {
                goto modes;
            }

            tc->mode = NGX_HTTP_GW_REDIS_SENTINEL;
            tc->master = s;
            continue;
        }

        if (ngx_http_gw_conf_param(&value[i], "cluster", NULL)) {
            if (tc->mode != NGX_HTTP_GW_REDIS_SINGLE) {
                goto modes;
            }

            tc->mode = NGX_HTTP_GW_REDIS_CLUSTER;
            continue;
        }

        if (ngx_http_gw_conf_param(&value[i], "password=", &s)) {
            if (s.len == 0) {
                goto empty;
            }

            rc->password = s;
            continue;
        }

        if (ngx_http_gw_conf_param(&value[i], "user=", &s)) {
            if (s.len == 0) {
                goto empty;
            }

            rc->user = s;
            continue;
        }

        if (ngx_http_gw_conf_param(&value[i], "sentinel_password=", &s)) {
            if (s.len == 0) {
                goto empty;
            }

            sc->password = s;
            continue;
        }

        if (ngx_http_gw_conf_param(&value[i], "sentinel_user=", &s)) {
            if (s.len == 0) {
                goto empty;
            }

            sc->user = s;
            continue;
        }

        if (ngx_http_gw_conf_param(&value[i], "db=", &s)) {
            n = ngx_atoi(s.data, s.len);
            if (n == NGX_ERROR || n > 1000000) {
                goto invalid;
            }

            rc->db = n;
            continue;
        }

        if (ngx_http_gw_conf_param(&value[i], "timeout=", &s)) {
            ms = ngx_parse_time(&s, 0);
            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
                goto invalid;
            }

            rc->timeout = ms;
            continue;
        }

        if (ngx_http_gw_conf_param(&value[i], "connect_timeout=", &s)) {
            ms = ngx_parse_time(&s, 0);
            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
                goto invalid;
            }

            rc->connect_timeout = ms;
            continue;
        }

        if (ngx_http_gw_conf_param(&value[i], "prefix=", &s)) {
            if (s.len == 0 || s.len > NGX_HTTP_GW_RATELIMIT_MAX_PREFIX
                || ngx_strlchr(s.data, s.data + s.len, '{') != NULL
                || ngx_strlchr(s.data, s.data + s.len, '}') != NULL)
            {
                goto invalid;
            }

            gmcf->prefix = s;
            continue;
        }

        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')
            != NULL)
        {
            return ngx_http_gw_conf_invalid_param(cf, &value[i]);
        }

        naddrs++;
    }

    if (naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "no redis address");
        return NGX_CONF_ERROR;
    }

    if (naddrs > 1 && tc->mode == NGX_HTTP_GW_REDIS_SINGLE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "several redis addresses need \"sentinel=\" or "
                           "\"cluster\"");
        return NGX_CONF_ERROR;
    }

    if (naddrs > NGX_HTTP_GW_REDIS_MAX_NODES) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "more than %d redis addresses",
                           NGX_HTTP_GW_REDIS_MAX_NODES);
        return NGX_CONF_ERROR;
    }

    if (tc->mode == NGX_HTTP_GW_REDIS_CLUSTER && rc->db != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a redis cluster has no \"db=\"");
        return NGX_CONF_ERROR;
    }

    if (tc->mode != NGX_HTTP_GW_REDIS_SENTINEL
        && (sc->password.len || sc->user.len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sentinel_password=\" and \"sentinel_user=\" "
                           "need \"sentinel=\"");
        return NGX_CONF_ERROR;
    }

    if ((rc->user.len && rc->password.len == 0)
        || (sc->user.len && sc->password.len == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"user=\" requires \"password=\"");
        return NGX_CONF_ERROR;
    }

    /* the addresses: sentinels, a cluster's seeds, or the one server */

    if (ngx_array_init(&tc->addrs, cf->pool, naddrs,
                       sizeof(ngx_http_gw_redis_addr_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')
            != NULL
            || ngx_http_gw_conf_param(&value[i], "cluster", NULL))
        {
            continue;
        }

        if (ngx_http_gw_ratelimit_address(cf, &value[i],
                                          tc->mode == NGX_HTTP_GW_REDIS_SENTINEL
                                          ? 26379 : 6379,
                                          &tc->addrs)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    /* the sessions */

    rc->name = (tc->mode == NGX_HTTP_GW_REDIS_SENTINEL)
               ? tc->master
               : ((ngx_http_gw_redis_addr_t *) tc->addrs.elts)[0].name;
    rc->master = (tc->mode == NGX_HTTP_GW_REDIS_SENTINEL);

    tc->redis = rc;
    tc->refresh = 5000;

    sc->name = rc->name;
    sc->timeout = rc->timeout;
    sc->connect_timeout = rc->connect_timeout;

    return NGX_CONF_OK;

modes:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"sentinel=\" and \"cluster\" are mutually "
                       "exclusive, and each is once");

    return NGX_CONF_ERROR;

invalid:

    /* only parameters that hold no secret get here */

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;

empty:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "empty parameter \"%*s\"",
                       value[i].len, value[i].data);

    return NGX_CONF_ERROR;
}


/*
 * A server's address: "host[:port]" or "unix:/path".  Names are resolved
 * here, in the master, like "upstream" servers: hiredis only ever sees a
 * numeric address, so a worker never waits for DNS.  The first address of
 * a name is used.
 */

static ngx_int_t
ngx_http_gw_ratelimit_address(ngx_conf_t *cf, ngx_str_t *value,
    in_port_t port, ngx_array_t *addrs)
{
    ngx_url_t                  u;
    ngx_http_gw_redis_addr_t  *a;
#if (NGX_HAVE_UNIX_DOMAIN)
    struct sockaddr_un        *saun;
#endif

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *value;
    u.default_port = port;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in redis address \"%V\"", u.err, &u.url);
        }

        return NGX_ERROR;
    }

    if (u.uri.len || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid redis address \"%V\"", &u.url);
        return NGX_ERROR;
    }

    a = ngx_array_push(addrs);
    if (a == NULL) {
        return NGX_ERROR;
    }

    a->name = *value;

    switch (u.addrs[0].sockaddr->sa_family) {

#if (NGX_HAVE_UNIX_DOMAIN)
    case AF_UNIX:
        saun = (struct sockaddr_un *) u.addrs[0].sockaddr;
        a->host.len = ngx_strlen(saun->sun_path);
        a->host.data = ngx_pnalloc(cf->pool, a->host.len + 1);
        if (a->host.data == NULL) {
            return NGX_ERROR;
        }

        ngx_cpystrn(a->host.data, (u_char *) saun->sun_path,
                    a->host.len + 1);
        a->port = 0;
        break;
#endif

    default:
        a->host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
        if (a->host.data == NULL) {
            return NGX_ERROR;
        }

        a->host.len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                                    a->host.data, NGX_SOCKADDR_STRLEN, 0);
        a->host.data[a->host.len] = '\0';
        a->port = ngx_inet_get_port(u.addrs[0].sockaddr);
    }

    return NGX_OK;
}


static char *
ngx_http_gw_ratelimit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gw_ratelimit_main_conf_t *gmcf = conf;

    u_char                             *p, c;
    ngx_int_t                           n;
    ngx_str_t                          *value, name, s;
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

    /* a key that is one variable is read in place, not copied */

    zone->variable = NGX_ERROR;

    if (value[1].len > 1 && value[1].data[0] == '$') {

        for (j = 1; j < value[1].len; j++) {
            c = value[1].data[j];

            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                  || (c >= '0' && c <= '9') || c == '_'))
            {
                break;
            }
        }

        if (j == value[1].len) {
            name.len = value[1].len - 1;
            name.data = value[1].data + 1;

            zone->variable = ngx_http_get_variable_index(cf, &name);
            if (zone->variable == NGX_ERROR) {
                return NGX_CONF_ERROR;
            }
        }
    }

    zone->algorithm = NGX_HTTP_GW_RL_GCRA;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_http_gw_conf_param(&value[i], "zone=", &name)) {

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

        if (ngx_http_gw_conf_param(&value[i], "rate=", &s)) {

            p = s.data + s.len - 3;

            if (s.len > 3 && ngx_strncmp(p, "r/s", 3) == 0) {
                zone->period = 1;

            } else if (s.len > 3 && ngx_strncmp(p, "r/m", 3) == 0) {
                zone->period = 60;

            } else if (s.len > 3 && ngx_strncmp(p, "r/h", 3) == 0) {
                zone->period = 3600;

            } else {
                goto invalid_rate;
            }

            s.len -= 3;
            n = ngx_http_gw_ratelimit_number(&s,
                                             NGX_HTTP_GW_RATELIMIT_MAX_COUNT);

            if (n == NGX_ERROR || n == 0) {
                goto invalid_rate;
            }

            zone->count = n;
            continue;
        }

        if (ngx_http_gw_conf_param(&value[i], "burst=", &s)) {
            n = ngx_http_gw_ratelimit_number(&s,
                                             NGX_HTTP_GW_RATELIMIT_MAX_COUNT);
            if (n == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid burst value \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            zone->burst = n;
            continue;
        }

        if (ngx_http_gw_conf_param(&value[i], "algorithm=", &name)) {

            if (name.len == 4 && ngx_strncmp(name.data, "gcra", 4) == 0) {
                zone->algorithm = NGX_HTTP_GW_RL_GCRA;

            } else if (name.len == 12
                       && ngx_strncmp(name.data, "fixed_window", 12) == 0)
            {
                zone->algorithm = NGX_HTTP_GW_RL_FIXED;

            } else if (name.len == 14
                       && ngx_strncmp(name.data, "sliding_window", 14) == 0)
            {
                zone->algorithm = NGX_HTTP_GW_RL_SLIDING;

            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid algorithm \"%V\", expected "
                                   "gcra, fixed_window or sliding_window",
                                   &name);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        return ngx_http_gw_conf_invalid_param(cf, &value[i]);
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

    ngx_int_t                       n, v;
    ngx_str_t                      *value, name, s;
    ngx_uint_t                      i, j, delay, nodelay;
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
    delay = NGX_CONF_UNSET_UINT;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_http_gw_conf_param(&value[i], "zone=", &name)) {
            continue;
        }

        nodelay = ngx_http_gw_conf_param(&value[i], "nodelay", NULL);

        if (nodelay || ngx_http_gw_conf_param(&value[i], "delay=", &s)) {
            if (delay != NGX_CONF_UNSET_UINT) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"nodelay\" and \"delay=\" are mutually "
                                   "exclusive, and each is once");
                return NGX_CONF_ERROR;
            }

            if (nodelay) {
                delay = NGX_HTTP_GW_RATELIMIT_NODELAY;
                continue;
            }

            v = ngx_http_gw_ratelimit_number(&s,
                                             NGX_HTTP_GW_RATELIMIT_MAX_COUNT);
            if (v == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid delay value \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            delay = v;
            continue;
        }

        if (ngx_http_gw_conf_param(&value[i], "burst=", &s)) {
            n = ngx_http_gw_ratelimit_number(&s,
                                             NGX_HTTP_GW_RATELIMIT_MAX_COUNT);
            if (n == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid burst value \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        return ngx_http_gw_conf_invalid_param(cf, &value[i]);
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

    if (glcf->limits->nelts == NGX_HTTP_GW_RL_MAX_LIMITS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many gw_ratelimit limits, at most %d",
                           NGX_HTTP_GW_RL_MAX_LIMITS);
        return NGX_CONF_ERROR;
    }

    limit = ngx_array_push(glcf->limits);
    if (limit == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(limit, sizeof(ngx_http_gw_ratelimit_limit_t));

    limit->name = name;
    limit->burst = n;
    limit->delay = (delay == NGX_CONF_UNSET_UINT) ? 0 : delay;
    limit->file = cf->conf_file->file.name.data;
    limit->line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/* a decimal number from 0 to max */

static ngx_int_t
ngx_http_gw_ratelimit_number(ngx_str_t *value, ngx_uint_t max)
{
    ngx_int_t  n;

    n = ngx_atoi(value->data, value->len);

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

    local->name = name;

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

    /* batch ids: unique across workers and instances */

    p = ngx_pnalloc(cycle->pool, 2 * NGX_INT32_LEN + NGX_INT64_LEN + 2);
    if (p == NULL) {
        return NGX_ERROR;
    }

    gmcf->token.data = p;
    gmcf->token.len = ngx_sprintf(p, "%08xD%08xD-%P",
                                  (uint32_t) ngx_random(),
                                  (uint32_t) ngx_random(), ngx_pid)
                      - p;

    /*
     * The longest command: EVAL with the script, every key, every limit,
     * the id (ngx_http_gw_ratelimit_format() checks each batch against
     * this size).
     */

    gmcf->command_size = sizeof("*\r\n$4\r\nEVAL\r\n$\r\n\r\n$\r\n\r\n") - 1
                         + 3 * NGX_INT_T_LEN
                         + ngx_http_gw_rl_script.len
                         + 2 * NGX_HTTP_GW_RL_BATCH_BYTES
                         + 5 * (sizeof("$\r\n\r\n") - 1 + NGX_INT_T_LEN)
                         + 4 * NGX_HTTP_GW_RL_BATCH_KEYS
                         + NGX_INT_T_LEN + 64
                         + NGX_HTTP_GW_RL_BATCH_LIMITS
                           * NGX_HTTP_GW_RL_LIMIT_ARGS;

    gmcf->command = ngx_pnalloc(cycle->pool, gmcf->command_size);
    if (gmcf->command == NULL) {
        return NGX_ERROR;
    }

    gmcf->verdicts = ngx_palloc(cycle->pool,
                                sizeof(ngx_http_gw_rl_verdicts_t));
    if (gmcf->verdicts == NULL) {
        return NGX_ERROR;
    }

    gmcf->flush.handler = ngx_http_gw_ratelimit_flush_handler;
    gmcf->flush.data = gmcf;
    gmcf->flush.log = cycle->log;
    gmcf->flush.cancelable = 1;

    gmcf->wait.handler = ngx_http_gw_ratelimit_wait_handler;
    gmcf->wait.data = gmcf;
    gmcf->wait.log = cycle->log;
    gmcf->wait.cancelable = 1;

    gmcf->changed = gmcf->wait;

    ngx_queue_init(&gmcf->waiting);

    /* connected lazily, by the first request */

    gmcf->servers = ngx_http_gw_redis_topology_create(cycle, &gmcf->topology,
                                                ngx_http_gw_ratelimit_changed,
                                                gmcf);
    if (gmcf->servers == NULL) {
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

    if (gmcf == NULL || gmcf->servers == NULL) {
        return;
    }

    if (gmcf->flush.posted) {
        ngx_delete_posted_event(&gmcf->flush);
    }

    if (gmcf->flush.timer_set) {
        ngx_del_timer(&gmcf->flush);
    }

    if (gmcf->wait.timer_set) {
        ngx_del_timer(&gmcf->wait);
    }

    if (gmcf->changed.posted) {
        ngx_delete_posted_event(&gmcf->changed);
    }

    ngx_http_gw_redis_topology_destroy(gmcf->servers);
    gmcf->servers = NULL;
}
