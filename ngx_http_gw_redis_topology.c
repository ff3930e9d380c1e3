
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: which Redis server a command goes to (see the header).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_gw_redis_topology.h"


/* asking sentinels or a cluster again: not more often than this */
#define NGX_HTTP_GW_REDIS_RETRY      100

/* a subscribed sentinel is pinged this often: a silent one is left */
#define NGX_HTTP_GW_REDIS_PING       1000


typedef struct {
    ngx_http_gw_redis_topology_t     *topology;
    ngx_http_gw_redis_t              *redis;
    unsigned                          sentinel:1;
} ngx_http_gw_redis_member_t;


struct ngx_http_gw_redis_topology_s {
    ngx_http_gw_redis_topology_conf_t  *conf;
    ngx_cycle_t                        *cycle;
    ngx_http_gw_redis_changed_pt        changed;
    void                               *data;

    /* the data servers met so far, reused when they come back */
    ngx_uint_t                          nnodes;
    ngx_http_gw_redis_member_t         *node[NGX_HTTP_GW_REDIS_MAX_NODES];

    ngx_http_gw_redis_member_t         *master;   /* single, sentinel */

    /* sentinel */
    ngx_http_gw_redis_member_t        **sentinel;
    ngx_uint_t                          current;  /* the one asked */

    /* cluster: node index + 1 per slot, 0 when not known */
    u_char                             *slot;
    ngx_uint_t                          seed;     /* the next to ask */

    ngx_msec_t                          asked;
    ngx_msec_t                          alive;    /* the sentinel's word */
    ngx_event_t                         retry;    /* ask again */
    ngx_event_t                         tick;     /* ping, refresh */

    unsigned                            asking:1; /* a question in flight */
    unsigned                            subscribed:1;
    unsigned                            exiting:1;
};


static ngx_http_gw_redis_member_t *ngx_http_gw_redis_topology_member(
    ngx_http_gw_redis_topology_t *t, ngx_http_gw_redis_conf_t *conf,
    ngx_http_gw_redis_addr_t *addr, ngx_uint_t sentinel);
static ngx_http_gw_redis_member_t *ngx_http_gw_redis_topology_find(
    ngx_http_gw_redis_topology_t *t, ngx_http_gw_redis_node_addr_t *addr);
static void ngx_http_gw_redis_topology_event(void *data, ngx_uint_t event,
    redisReply *reply);
static void ngx_http_gw_redis_topology_ask(ngx_http_gw_redis_topology_t *t);
static void ngx_http_gw_redis_topology_later(ngx_http_gw_redis_topology_t *t,
    ngx_msec_t delay);
static void ngx_http_gw_redis_topology_retry(ngx_event_t *ev);
static void ngx_http_gw_redis_topology_tick(ngx_event_t *ev);

static void ngx_http_gw_redis_sentinel_ask(ngx_http_gw_redis_topology_t *t);
static void ngx_http_gw_redis_sentinel_master(void *data, redisReply *reply);
static void ngx_http_gw_redis_sentinel_next(ngx_http_gw_redis_topology_t *t);
static void ngx_http_gw_redis_set_master(ngx_http_gw_redis_topology_t *t,
    ngx_http_gw_redis_node_addr_t *addr);

static void ngx_http_gw_redis_cluster_ask(ngx_http_gw_redis_topology_t *t);


static ngx_str_t  ngx_http_gw_redis_switch = ngx_string("+switch-master");
static void ngx_http_gw_redis_cluster_slots(void *data, redisReply *reply);
static void ngx_http_gw_redis_ignore(void *data, redisReply *reply);


ngx_http_gw_redis_topology_t *
ngx_http_gw_redis_topology_create(ngx_cycle_t *cycle,
    ngx_http_gw_redis_topology_conf_t *conf,
    ngx_http_gw_redis_changed_pt changed, void *data)
{
    ngx_uint_t                     i;
    ngx_http_gw_redis_addr_t      *addr;
    ngx_http_gw_redis_topology_t  *t;

    t = ngx_pcalloc(cycle->pool, sizeof(ngx_http_gw_redis_topology_t));
    if (t == NULL) {
        return NULL;
    }

    t->conf = conf;
    t->cycle = cycle;
    t->changed = changed;
    t->data = data;

    t->retry.handler = ngx_http_gw_redis_topology_retry;
    t->retry.data = t;
    t->retry.log = cycle->log;
    t->retry.cancelable = 1;

    t->tick.handler = ngx_http_gw_redis_topology_tick;
    t->tick.data = t;
    t->tick.log = cycle->log;
    t->tick.cancelable = 1;

    addr = conf->addrs.elts;

    switch (conf->mode) {

    case NGX_HTTP_GW_REDIS_SENTINEL:
        t->sentinel = ngx_pcalloc(cycle->pool, conf->addrs.nelts
                                               * sizeof(void *));
        if (t->sentinel == NULL) {
            return NULL;
        }

        for (i = 0; i < conf->addrs.nelts; i++) {
            t->sentinel[i] = ngx_http_gw_redis_topology_member(t,
                                                               &conf->sentinel,
                                                               &addr[i], 1);
            if (t->sentinel[i] == NULL) {
                return NULL;
            }
        }

        /* workers start with different sentinels */
        t->current = ngx_random() % conf->addrs.nelts;

        break;

    case NGX_HTTP_GW_REDIS_CLUSTER:
        t->slot = ngx_pcalloc(cycle->pool, NGX_HTTP_GW_REDIS_SLOTS);
        if (t->slot == NULL) {
            return NULL;
        }

        /* the seeds are the first nodes, asked for the map in turn */

        for (i = 0; i < conf->addrs.nelts; i++) {
            if (ngx_http_gw_redis_topology_member(t, conf->redis, &addr[i], 0)
                == NULL)
            {
                return NULL;
            }
        }

        t->seed = ngx_random() % t->nnodes;

        break;

    default: /* NGX_HTTP_GW_REDIS_SINGLE */
        t->master = ngx_http_gw_redis_topology_member(t, conf->redis,
                                                      &addr[0], 0);
        if (t->master == NULL) {
            return NULL;
        }
    }

    return t;
}


void
ngx_http_gw_redis_topology_destroy(ngx_http_gw_redis_topology_t *t)
{
    ngx_uint_t  i;

    t->exiting = 1;

    if (t->retry.timer_set) {
        ngx_del_timer(&t->retry);
    }

    if (t->tick.timer_set) {
        ngx_del_timer(&t->tick);
    }

    for (i = 0; i < t->nnodes; i++) {
        ngx_http_gw_redis_destroy(t->node[i]->redis);
    }

    if (t->sentinel) {
        for (i = 0; i < t->conf->addrs.nelts; i++) {
            ngx_http_gw_redis_destroy(t->sentinel[i]->redis);
        }
    }
}


/*
 * The connection for a hash slot (outside a cluster, for everything).
 * NULL when it is not known yet: it is being asked for, and the caller's
 * "changed" handler runs when it is known.
 */

ngx_http_gw_redis_t *
ngx_http_gw_redis_topology_node(ngx_http_gw_redis_topology_t *t,
    ngx_uint_t slot)
{
    ngx_uint_t  i;

    if (t->conf->mode == NGX_HTTP_GW_REDIS_CLUSTER) {
        i = t->slot[slot % NGX_HTTP_GW_REDIS_SLOTS];

        if (i != 0) {
            return t->node[i - 1]->redis;
        }

        ngx_http_gw_redis_topology_ask(t);

        return NULL;
    }

    if (t->master != NULL) {
        return t->master->redis;
    }

    ngx_http_gw_redis_topology_ask(t);

    return NULL;
}


/*
 * A server's error reply that says where things are now.  MOVED: the slot
 * belongs to another master (the map is updated, and refreshed soon); ASK:
 * a slot in migration, to be asked once elsewhere after ASKING.  Both
 * return the server to send to.  READONLY, LOADING, MASTERDOWN (a master
 * that is one no more, or not yet), CLUSTERDOWN, TRYAGAIN, a script
 * touching a key not there: the topology is asked for again, and NULL is
 * returned (the command fails).
 */

ngx_http_gw_redis_t *
ngx_http_gw_redis_topology_redirect(ngx_http_gw_redis_topology_t *t,
    ngx_http_gw_redis_t *node, redisReply *reply, ngx_uint_t *asking)
{
    static char  *changed[] = { "READONLY", "LOADING", "MASTERDOWN",
                                "CLUSTERDOWN", "TRYAGAIN", "non local key",
                                NULL };

    ngx_int_t                       rc;
    ngx_uint_t                      i, slot;
    ngx_http_gw_redis_member_t     *m;
    ngx_http_gw_redis_node_addr_t   addr;

    *asking = 0;

    if (reply == NULL || reply->type != REDIS_REPLY_ERROR
        || reply->str == NULL)
    {
        return NULL;
    }

    if (t->conf->mode == NGX_HTTP_GW_REDIS_CLUSTER) {

        rc = ngx_http_gw_redis_parse_redirect(reply, asking, &slot, &addr);

        if (rc == NGX_OK) {
            m = ngx_http_gw_redis_topology_find(t, &addr);
            if (m == NULL) {
                return NULL;
            }

            ngx_log_error(NGX_LOG_INFO, t->cycle->log, 0,
                          "%sredis \"%V\": %s slot %ui to %V",
                          t->conf->redis->log_prefix,
                          &ngx_http_gw_redis_addr(node)->name,
                          *asking ? "ASK" : "MOVED", slot,
                          &ngx_http_gw_redis_addr(m->redis)->name);

            if (!*asking) {
                /* this slot at once, the others (moved too?) soon */

                for (i = 0; i < t->nnodes; i++) {
                    if (t->node[i] == m) {
                        t->slot[slot] = (u_char) (i + 1);
                        break;
                    }
                }

                ngx_http_gw_redis_topology_later(t, NGX_HTTP_GW_REDIS_RETRY);
            }

            return m->redis;
        }
    }

    for (i = 0; changed[i]; i++) {
        if (ngx_strstr(reply->str, changed[i]) != NULL) {
            break;
        }
    }

    if (changed[i]) {
        /* the reply itself is not logged: a word of ours says which */

        ngx_http_gw_redis_log_error(node, NGX_LOG_ERR,
                                    "the topology changed (%s), asking again",
                                    changed[i]);

        if (t->conf->mode == NGX_HTTP_GW_REDIS_SENTINEL
            && t->master != NULL && t->master->redis == node)
        {
            /* this master is one no more: let what is in flight fail */
            t->master = NULL;
            ngx_http_gw_redis_close_now(node);
        }

        ngx_http_gw_redis_topology_ask(t);
    }

    return NULL;
}


/*
 * A server the topology names does not answer (the caller's command
 * failed at once): ask again, a master may have moved (not more often
 * than every 100 ms).
 */

void
ngx_http_gw_redis_topology_stale(ngx_http_gw_redis_topology_t *t)
{
    ngx_http_gw_redis_topology_ask(t);
}


/* the next command on the connection may touch a slot being imported */

ngx_int_t
ngx_http_gw_redis_topology_asking(ngx_http_gw_redis_t *node)
{
    size_t       len;
    const char  *argv;

    argv = "ASKING";
    len = sizeof("ASKING") - 1;

    if (ngx_http_gw_redis_command(node, 1000, ngx_http_gw_redis_ignore, NULL,
                                  1, &argv, &len)
        == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_gw_redis_ignore(void *data, redisReply *reply)
{
}


/*
 * A server of the topology: its connection (made when first needed), its
 * events to us.  Data servers are kept once each, up to a bound.
 */

static ngx_http_gw_redis_member_t *
ngx_http_gw_redis_topology_member(ngx_http_gw_redis_topology_t *t,
    ngx_http_gw_redis_conf_t *conf, ngx_http_gw_redis_addr_t *addr,
    ngx_uint_t sentinel)
{
    ngx_http_gw_redis_member_t  *m;

    if (!sentinel && t->nnodes == NGX_HTTP_GW_REDIS_MAX_NODES) {
        ngx_log_error(NGX_LOG_ERR, t->cycle->log, 0,
                      "%sredis \"%V\": more than %d servers, \"%V\" left "
                      "out", conf->log_prefix, &t->conf->redis->name,
                      NGX_HTTP_GW_REDIS_MAX_NODES, &addr->name);
        return NULL;
    }

    m = ngx_pcalloc(t->cycle->pool, sizeof(ngx_http_gw_redis_member_t));
    if (m == NULL) {
        return NULL;
    }

    m->redis = ngx_http_gw_redis_create(t->cycle, conf, addr);
    if (m->redis == NULL) {
        return NULL;
    }

    m->topology = t;
    m->sentinel = sentinel;

    ngx_http_gw_redis_set_events(m->redis, ngx_http_gw_redis_topology_event,
                                 m, sentinel);

    if (!sentinel) {
        t->node[t->nnodes++] = m;
    }

    return m;
}


/* the data server at an address a sentinel or a node named */

static ngx_http_gw_redis_member_t *
ngx_http_gw_redis_topology_find(ngx_http_gw_redis_topology_t *t,
    ngx_http_gw_redis_node_addr_t *addr)
{
    u_char                     *p;
    ngx_uint_t                  i;
    ngx_http_gw_redis_addr_t    a, *na;
    u_char                      host[NGX_SOCKADDR_STRLEN + 1];
    u_char                      name[NGX_SOCKADDR_STRLEN + 8];

    for (i = 0; i < t->nnodes; i++) {
        na = ngx_http_gw_redis_addr(t->node[i]->redis);

        if (na->port == addr->port
            && na->host.len == addr->host.len
            && ngx_strncmp(na->host.data, addr->host.data, addr->host.len)
               == 0)
        {
            return t->node[i];
        }
    }

    if (addr->host.len > NGX_SOCKADDR_STRLEN) {
        return NULL;
    }

    p = ngx_cpymem(host, addr->host.data, addr->host.len);
    *p = '\0';

    a.host.data = host;
    a.host.len = addr->host.len;
    a.port = addr->port;

    a.name.data = name;
    a.name.len = ngx_sprintf(name, (ngx_strlchr(host, p, ':') != NULL)
                                   ? "[%V]:%i" : "%V:%i",
                             &a.host, a.port)
                 - name;

    return ngx_http_gw_redis_topology_member(t, t->conf->redis, &a, 0);
}


/* what a connection tells: it closed, it is no master, a message */

static void
ngx_http_gw_redis_topology_event(void *data, ngx_uint_t event,
    redisReply *reply)
{
    ngx_http_gw_redis_member_t *m = data;

    ngx_int_t                       rc;
    ngx_http_gw_redis_topology_t   *t;
    ngx_http_gw_redis_node_addr_t   addr;

    t = m->topology;

    if (t->exiting) {
        return;
    }

    if (m->sentinel) {

        if (event == NGX_HTTP_GW_REDIS_MESSAGE) {

            /* the subscription's confirmation, or a pong: alive */

            if (reply->type == REDIS_REPLY_ARRAY
                && reply->elements >= 2
                && reply->element[0] != NULL
                && reply->element[0]->type == REDIS_REPLY_STRING
                && ((reply->element[0]->len == 9
                     && ngx_strncmp(reply->element[0]->str, "subscribe", 9)
                        == 0)
                    || (reply->element[0]->len == 4
                        && ngx_strncmp(reply->element[0]->str, "pong", 4)
                           == 0)))
            {
                t->subscribed = 1;
                t->alive = ngx_current_msec;
                return;
            }

            rc = ngx_http_gw_redis_parse_switch(reply, &t->conf->master,
                                                &addr);

            if (rc == NGX_OK) {
                ngx_log_error(NGX_LOG_NOTICE, t->cycle->log, 0,
                              "%sredis \"%V\": +switch-master to %V:%i",
                              t->conf->redis->log_prefix,
                              &t->conf->redis->name, &addr.host, addr.port);

                ngx_http_gw_redis_set_master(t, &addr);

            } else if (rc == NGX_ERROR) {
                ngx_http_gw_redis_log_error(m->redis, NGX_LOG_ERR,
                                            "unexpected message");
            }

            return;
        }

        /* the sentinel is gone: ask the next one (from a timer) */

        t->subscribed = 0;
        ngx_http_gw_redis_sentinel_next(t);
        ngx_http_gw_redis_topology_later(t, 0);

        return;
    }

    /* a data server: closed after an error, or not a master */

    if (t->conf->mode == NGX_HTTP_GW_REDIS_SENTINEL && t->master == m) {
        if (event == NGX_HTTP_GW_REDIS_NOT_MASTER) {
            /* that sentinel's view is stale: ask another */
            t->master = NULL;
            ngx_http_gw_redis_sentinel_next(t);
        }

        ngx_http_gw_redis_topology_later(t, 0);
        return;
    }

    if (t->conf->mode == NGX_HTTP_GW_REDIS_CLUSTER) {
        ngx_http_gw_redis_topology_later(t, 0);
    }
}


/*
 * Asks the sentinels for the master, or the cluster for its map, unless
 * a question is in flight; not more often than every 100 ms.
 */

static void
ngx_http_gw_redis_topology_ask(ngx_http_gw_redis_topology_t *t)
{
    ngx_msec_int_t  wait;

    if (t->asking || t->exiting
        || t->conf->mode == NGX_HTTP_GW_REDIS_SINGLE)
    {
        return;
    }

    wait = (ngx_msec_int_t) (t->asked + NGX_HTTP_GW_REDIS_RETRY
                             - ngx_current_msec);

    if (t->asked != 0 && wait > 0) {
        ngx_http_gw_redis_topology_later(t, (ngx_msec_t) wait);
        return;
    }

    t->asked = ngx_current_msec;

    if (t->conf->mode == NGX_HTTP_GW_REDIS_SENTINEL) {
        ngx_http_gw_redis_sentinel_ask(t);

    } else {
        ngx_http_gw_redis_cluster_ask(t);
    }
}


/* ask again in "delay" ms (the earliest of the asks pending wins) */

static void
ngx_http_gw_redis_topology_later(ngx_http_gw_redis_topology_t *t,
    ngx_msec_t delay)
{
    if (t->exiting || t->conf->mode == NGX_HTTP_GW_REDIS_SINGLE) {
        return;
    }

    if (t->retry.timer_set) {
        if ((ngx_msec_int_t) (t->retry.timer.key - ngx_current_msec)
            <= (ngx_msec_int_t) delay)
        {
            return;
        }

        ngx_del_timer(&t->retry);
    }

    ngx_add_timer(&t->retry, delay);
}


static void
ngx_http_gw_redis_topology_retry(ngx_event_t *ev)
{
    ngx_http_gw_redis_topology_t  *t;

    t = ev->data;

    ngx_http_gw_redis_topology_ask(t);
}


/*
 * Every second a subscribed sentinel is pinged (a sentinel that stopped
 * answering is left for the next one); a cluster's map is refreshed every
 * "refresh".
 */

static void
ngx_http_gw_redis_topology_tick(ngx_event_t *ev)
{
    ngx_http_gw_redis_t           *s;
    ngx_http_gw_redis_topology_t  *t;

    t = ev->data;

    if (t->exiting) {
        return;
    }

    if (t->conf->mode == NGX_HTTP_GW_REDIS_CLUSTER) {
        ngx_http_gw_redis_topology_ask(t);
        ngx_add_timer(&t->tick, t->conf->refresh);
        return;
    }

    s = t->sentinel[t->current]->redis;

    if (t->subscribed) {

        if ((ngx_msec_int_t) (ngx_current_msec - t->alive)
            > 2 * NGX_HTTP_GW_REDIS_PING + (ngx_msec_int_t)
                                           t->conf->sentinel.timeout)
        {
            ngx_http_gw_redis_log_error(s, NGX_LOG_ERR,
                                        "no pong, leaving the sentinel");

            /* CLOSED comes, and moves on to the next sentinel */
            ngx_http_gw_redis_close_now(s);

        } else {
            (void) ngx_http_gw_redis_ping(s);
        }
    }

    if (t->master == NULL) {
        ngx_http_gw_redis_topology_ask(t);
    }

    ngx_add_timer(&t->tick, NGX_HTTP_GW_REDIS_PING);
}


/*
 * The master's address from the current sentinel, then its +switch-master
 * messages on the same connection (which can ask nothing more once
 * subscribed: a new question starts a new connection).
 */

static void
ngx_http_gw_redis_sentinel_ask(ngx_http_gw_redis_topology_t *t)
{
    size_t                len[3];
    const char           *argv[3];
    ngx_http_gw_redis_t  *s;

    s = t->sentinel[t->current]->redis;

    if (t->subscribed) {
        /* CLOSED comes, and asks the next sentinel: this one, again */
        t->subscribed = 0;
        t->current = (t->current + t->conf->addrs.nelts - 1)
                     % t->conf->addrs.nelts;
        ngx_http_gw_redis_close_now(s);
        return;
    }

    argv[0] = "SENTINEL";
    len[0] = sizeof("SENTINEL") - 1;
    argv[1] = "get-master-addr-by-name";
    len[1] = sizeof("get-master-addr-by-name") - 1;
    argv[2] = (const char *) t->conf->master.data;
    len[2] = t->conf->master.len;

    if (ngx_http_gw_redis_command(s, t->conf->sentinel.timeout,
                                  ngx_http_gw_redis_sentinel_master, t, 3,
                                  argv, len)
        == NULL)
    {
        /* backing off, or unreachable: the next one, a bit later */
        ngx_http_gw_redis_sentinel_next(t);
        ngx_http_gw_redis_topology_later(t, NGX_HTTP_GW_REDIS_RETRY);
        return;
    }

    t->asking = 1;

    (void) ngx_http_gw_redis_subscribe(s, &ngx_http_gw_redis_switch);

    if (!t->tick.timer_set) {
        ngx_add_timer(&t->tick, NGX_HTTP_GW_REDIS_PING);
    }
}


static void
ngx_http_gw_redis_sentinel_master(void *data, redisReply *reply)
{
    ngx_http_gw_redis_topology_t *t = data;

    ngx_int_t                       rc;
    ngx_http_gw_redis_t            *s;
    ngx_http_gw_redis_node_addr_t   addr;

    t->asking = 0;

    if (t->exiting) {
        return;
    }

    s = t->sentinel[t->current]->redis;

    rc = ngx_http_gw_redis_parse_master(reply, &addr);

    if (rc == NGX_OK) {
        ngx_http_gw_redis_set_master(t, &addr);
        return;
    }

    if (reply == NULL) {
        /* the connection broke or timed out: CLOSED moves on */
        return;
    }

    ngx_http_gw_redis_log_error(s, NGX_LOG_ERR, "%s \"%V\"",
                                (rc == NGX_DECLINED)
                                ? "knows no master named"
                                : "unexpected reply about the master",
                                &t->conf->master);

    t->subscribed = 0;
    ngx_http_gw_redis_close_now(s);
}


static void
ngx_http_gw_redis_sentinel_next(ngx_http_gw_redis_topology_t *t)
{
    t->current = (t->current + 1) % t->conf->addrs.nelts;
}


/*
 * A new master: the connection to the old one closes (what is in flight
 * fails, within its deadline), the caller sends to the new one.
 */

static void
ngx_http_gw_redis_set_master(ngx_http_gw_redis_topology_t *t,
    ngx_http_gw_redis_node_addr_t *addr)
{
    ngx_uint_t                   level;
    ngx_http_gw_redis_member_t  *m, *old;

    m = ngx_http_gw_redis_topology_find(t, addr);
    if (m == NULL) {
        return;
    }

    old = t->master;
    t->master = m;

    if (old != NULL && old != m) {
        ngx_http_gw_redis_close_now(old->redis);
    }

    if (old != m) {
        level = (old != NULL) ? NGX_LOG_NOTICE : NGX_LOG_INFO;

        ngx_log_error(level, t->cycle->log, 0,
                      "%sredis \"%V\": the master is %V",
                      t->conf->redis->log_prefix, &t->conf->redis->name,
                      &ngx_http_gw_redis_addr(m->redis)->name);

        t->changed(t->data);
    }
}


/* CLUSTER SLOTS from a node that answers, each in turn */

static void
ngx_http_gw_redis_cluster_ask(ngx_http_gw_redis_topology_t *t)
{
    size_t                       len[2];
    ngx_uint_t                   i, k;
    const char                  *argv[2];
    ngx_http_gw_redis_member_t  *m;

    argv[0] = "CLUSTER";
    len[0] = sizeof("CLUSTER") - 1;
    argv[1] = "SLOTS";
    len[1] = sizeof("SLOTS") - 1;

    if (!t->tick.timer_set) {
        ngx_add_timer(&t->tick, t->conf->refresh);
    }

    /* a connected node first, else one that may be tried */

    for (k = 0; k < 2; k++) {
        for (i = 0; i < t->nnodes; i++) {
            m = t->node[(t->seed + i) % t->nnodes];

            if (k == 0 ? !ngx_http_gw_redis_connected(m->redis)
                       : !ngx_http_gw_redis_usable(m->redis))
            {
                continue;
            }

            t->seed = (t->seed + i + 1) % t->nnodes;

            if (ngx_http_gw_redis_command(m->redis, t->conf->redis->timeout,
                                          ngx_http_gw_redis_cluster_slots, m,
                                          2, argv, len)
                != NULL)
            {
                t->asking = 1;
                return;
            }
        }
    }

    ngx_http_gw_redis_topology_later(t, NGX_HTTP_GW_REDIS_RETRY);
}


static void
ngx_http_gw_redis_cluster_slots(void *data, redisReply *reply)
{
    ngx_http_gw_redis_member_t *asked = data;

    u_char                         *map;
    ngx_uint_t                      i, j, k, n, changed;
    ngx_http_gw_redis_addr_t       *aa;
    ngx_http_gw_redis_member_t     *m;
    ngx_http_gw_redis_topology_t   *t;
    ngx_http_gw_redis_slots_t      *ranges;
    ngx_http_gw_redis_node_addr_t   addr;

    t = asked->topology;
    t->asking = 0;

    if (t->exiting || reply == NULL) {
        /* the connection failed: it tells, another node is asked */
        return;
    }

    ranges = ngx_alloc(NGX_HTTP_GW_REDIS_MAX_RANGES
                       * sizeof(ngx_http_gw_redis_slots_t)
                       + NGX_HTTP_GW_REDIS_SLOTS, t->cycle->log);
    if (ranges == NULL) {
        return;
    }

    map = (u_char *) (ranges + NGX_HTTP_GW_REDIS_MAX_RANGES);
    ngx_memzero(map, NGX_HTTP_GW_REDIS_SLOTS);

    if (ngx_http_gw_redis_parse_slots(reply, ranges, &n) != NGX_OK) {
        ngx_http_gw_redis_log_error(asked->redis, NGX_LOG_ERR,
                                    "unexpected CLUSTER SLOTS reply");
        goto failed;
    }

    for (i = 0; i < n; i++) {
        addr = ranges[i].addr;

        if (addr.host.len == 0) {
            /* the node that answered */
            aa = ngx_http_gw_redis_addr(asked->redis);
            addr.host = aa->host;
        }

        m = ngx_http_gw_redis_topology_find(t, &addr);
        if (m == NULL) {
            goto failed;
        }

        for (k = 0; k < t->nnodes; k++) {
            if (t->node[k] == m) {
                break;
            }
        }

        for (j = ranges[i].start; j <= ranges[i].end; j++) {
            if (map[j] != 0) {
                ngx_http_gw_redis_log_error(asked->redis, NGX_LOG_ERR,
                                            "CLUSTER SLOTS: overlapping "
                                            "ranges");
                goto failed;
            }

            map[j] = (u_char) (k + 1);
        }
    }

    changed = (ngx_memcmp(map, t->slot, NGX_HTTP_GW_REDIS_SLOTS) != 0);

    ngx_memcpy(t->slot, map, NGX_HTTP_GW_REDIS_SLOTS);

    ngx_free(ranges);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, t->cycle->log, 0,
                   "%sredis \"%V\": cluster map%s",
                   t->conf->redis->log_prefix, &t->conf->redis->name,
                   changed ? ", changed" : "");

    /* what waits for it goes again, changed or not */

    t->changed(t->data);

    return;

failed:

    ngx_free(ranges);
    ngx_http_gw_redis_topology_later(t, NGX_HTTP_GW_REDIS_RETRY);
}
