
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: hiredis async API driven by nginx events.
 *
 * hiredis connects (non-blocking, to a numeric address or a unix socket, so
 * no name lookup happens in a worker), formats and queues commands, writes
 * them and parses replies.  nginx owns the socket's events and the timers.
 * Replies are dispatched here rather than in redisProcessCallbacks(): in
 * hiredis 0.14 that function assert()s, i.e. aborts the worker, when a
 * reply arrives that no command asked for, which a misbehaving or hostile
 * peer can trigger at will.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_gw_redis.h"


struct ngx_http_gw_redis_cmd_s {
    ngx_http_gw_redis_t          *redis;
    ngx_http_gw_redis_handler_pt  handler;
    void                         *data;        /* NULL: nobody waits */
    ngx_event_t                   timer;
    ngx_http_gw_redis_cmd_t      *next;        /* free list */
    unsigned                      resent:1;
};


struct ngx_http_gw_redis_s {
    ngx_http_gw_redis_conf_t     *conf;
    ngx_http_gw_redis_addr_t      addr;
    ngx_log_t                    *log;

    ngx_http_gw_redis_event_pt    event;       /* the owner's */
    void                         *event_data;
    redisAsyncContext            *ac;
    ngx_connection_t             *connection;
    ngx_event_t                   connect_timer;

    ngx_http_gw_redis_cmd_t      *free;
    ngx_uint_t                    allocated;
    ngx_uint_t                    pending;

    ngx_msec_t                    backoff;
    ngx_msec_t                    retry_at;

    time_t                        log_sec;
    ngx_uint_t                    log_suppressed;

    ngx_http_gw_redis_refusal_t   refusal;     /* why the reader failed */

    unsigned                      connected:1;
    unsigned                      alive:1;     /* a good reply came back */
    unsigned                      dispatching:1;
    unsigned                      writing:1;
    unsigned                      close_requested:1;
    unsigned                      not_master:1;
    unsigned                      subscriber:1;
    unsigned                      exiting:1;
};


static ngx_int_t ngx_http_gw_redis_connect(ngx_http_gw_redis_t *redis);
static void ngx_http_gw_redis_close(ngx_http_gw_redis_t *redis);
static void ngx_http_gw_redis_dispatch(ngx_http_gw_redis_t *redis);
static void ngx_http_gw_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_gw_redis_init_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_gw_redis_role_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_gw_redis_cmd_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_gw_redis_cmd_timeout(ngx_event_t *ev);
static void ngx_http_gw_redis_connect_timeout(ngx_event_t *ev);
static void ngx_http_gw_redis_read_handler(ngx_event_t *rev);
static void ngx_http_gw_redis_write_handler(ngx_event_t *wev);

static void ngx_http_gw_redis_add_read(void *privdata);
static void ngx_http_gw_redis_del_read(void *privdata);
static void ngx_http_gw_redis_add_write(void *privdata);
static void ngx_http_gw_redis_del_write(void *privdata);
static void ngx_http_gw_redis_cleanup(void *privdata);


/*
 * A connection (made when first needed) to "addr", which is copied: a
 * worker makes these when a sentinel or a cluster names a server, so they
 * come from the cycle's pool, a few per server, and are reused.
 */

ngx_http_gw_redis_t *
ngx_http_gw_redis_create(ngx_cycle_t *cycle, ngx_http_gw_redis_conf_t *conf,
    ngx_http_gw_redis_addr_t *addr)
{
    u_char               *p;
    ngx_http_gw_redis_t  *redis;

    redis = ngx_pcalloc(cycle->pool, sizeof(ngx_http_gw_redis_t)
                                     + addr->name.len + addr->host.len + 1);
    if (redis == NULL) {
        return NULL;
    }

    p = (u_char *) (redis + 1);

    redis->addr.name.data = p;
    redis->addr.name.len = addr->name.len;
    p = ngx_cpymem(p, addr->name.data, addr->name.len);

    redis->addr.host.data = p;
    redis->addr.host.len = addr->host.len;
    p = ngx_cpymem(p, addr->host.data, addr->host.len);
    *p = '\0';

    redis->addr.port = addr->port;

    redis->conf = conf;
    redis->log = cycle->log;

    redis->connect_timer.handler = ngx_http_gw_redis_connect_timeout;
    redis->connect_timer.data = redis;
    redis->connect_timer.log = cycle->log;
    redis->connect_timer.cancelable = 1;

    return redis;
}


void
ngx_http_gw_redis_set_events(ngx_http_gw_redis_t *redis,
    ngx_http_gw_redis_event_pt handler, void *data, ngx_uint_t subscriber)
{
    redis->event = handler;
    redis->event_data = data;
    redis->subscriber = subscriber ? 1 : 0;
}


ngx_http_gw_redis_addr_t *
ngx_http_gw_redis_addr(ngx_http_gw_redis_t *redis)
{
    return &redis->addr;
}


ngx_uint_t
ngx_http_gw_redis_connected(ngx_http_gw_redis_t *redis)
{
    return redis->ac != NULL && redis->connected;
}


/* closes the connection now: every command in flight fails */

void
ngx_http_gw_redis_close_now(ngx_http_gw_redis_t *redis)
{
    ngx_http_gw_redis_close(redis);
}


/*
 * The server answered what it should not have (its replies may no longer
 * match the commands): closes the connection as a failed one, so the next
 * attempt waits (a peer that answers well-formed commands wrongly does not
 * get a new connection for every batch)
 */

void
ngx_http_gw_redis_fail_now(ngx_http_gw_redis_t *redis)
{
    redis->alive = 0;
    ngx_http_gw_redis_close(redis);
}


/*
 * The connection is not used any more (the worker exits, or the server is
 * gone from the topology): commands in flight are dropped without their
 * handlers running.
 */

void
ngx_http_gw_redis_destroy(ngx_http_gw_redis_t *redis)
{
    redisCallback            *cb;
    ngx_http_gw_redis_cmd_t  *cmd;

    redis->exiting = 1;

    if (redis->ac == NULL) {
        return;
    }

    /* nobody waits for these any more: no handler runs on the way out */

    for (cb = redis->ac->replies.head; cb; cb = cb->next) {
        if (cb->fn != ngx_http_gw_redis_cmd_reply) {
            continue;
        }

        cmd = cb->privdata;
        cmd->data = NULL;

        if (cmd->timer.timer_set) {
            ngx_del_timer(&cmd->timer);
        }
    }

    redisAsyncFree(redis->ac);
}


/*
 * Whether a command sent now would be tried at all: not while backing off
 * after failed connection attempts, nor with too many in flight.
 */

ngx_uint_t
ngx_http_gw_redis_usable(ngx_http_gw_redis_t *redis)
{
    if (redis->exiting || redis->pending >= NGX_HTTP_GW_REDIS_MAX_PENDING) {
        return 0;
    }

    return redis->ac != NULL
           || (ngx_msec_int_t) (redis->retry_at - ngx_current_msec) <= 0;
}


/*
 * "command" is in the Redis protocol already; hiredis copies it into its
 * output buffer, written at the end of this event loop iteration.  The
 * reply is due within "timeout".
 */

ngx_http_gw_redis_cmd_t *
ngx_http_gw_redis_send(ngx_http_gw_redis_t *redis, u_char *command,
    size_t len, ngx_msec_t timeout, ngx_http_gw_redis_handler_pt handler,
    void *data)
{
    ngx_http_gw_redis_cmd_t  *cmd;

    if (redis->exiting) {
        return NULL;
    }

    if (redis->ac == NULL) {

        if ((ngx_msec_int_t) (redis->retry_at - ngx_current_msec) > 0) {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, redis->log, 0,
                           "%sredis \"%V\": backing off",
                           redis->conf->log_prefix, &redis->addr.name);
            return NULL;
        }

        if (ngx_http_gw_redis_connect(redis) != NGX_OK) {
            return NULL;
        }
    }

    if (redis->pending >= NGX_HTTP_GW_REDIS_MAX_PENDING) {
        ngx_http_gw_redis_log_error(redis, NGX_LOG_ERR,
                                    "%ui commands in flight, failing fast",
                                    redis->pending);
        return NULL;
    }

    cmd = redis->free;

    if (cmd != NULL) {
        redis->free = cmd->next;

    } else {
        cmd = ngx_pcalloc(ngx_cycle->pool, sizeof(ngx_http_gw_redis_cmd_t));
        if (cmd == NULL) {
            return NULL;
        }

        cmd->redis = redis;
        cmd->timer.handler = ngx_http_gw_redis_cmd_timeout;
        cmd->timer.data = cmd;
        cmd->timer.log = redis->log;

        redis->allocated++;
    }

    cmd->handler = handler;
    cmd->data = data;
    cmd->next = NULL;
    cmd->resent = 0;

    if (redisAsyncFormattedCommand(redis->ac, ngx_http_gw_redis_cmd_reply, cmd,
                                   (const char *) command, len)
        != REDIS_OK)
    {
        cmd->data = NULL;
        cmd->next = redis->free;
        redis->free = cmd;
        return NULL;
    }

    redis->pending++;

    ngx_add_timer(&cmd->timer, timeout);

    return cmd;
}


/* a command of argc arguments, formatted by hiredis */

ngx_http_gw_redis_cmd_t *
ngx_http_gw_redis_command(ngx_http_gw_redis_t *redis, ngx_msec_t timeout,
    ngx_http_gw_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    int                       len;
    char                     *command;
    ngx_http_gw_redis_cmd_t  *cmd;

    len = redisFormatCommandArgv(&command, argc, argv, argvlen);
    if (len < 0) {
        return NULL;
    }

    cmd = ngx_http_gw_redis_send(redis, (u_char *) command, (size_t) len,
                                 timeout, handler, data);

    /* hiredis allocates the command with malloc() and copies it */
    free(command);

    return cmd;
}


/*
 * SUBSCRIBE: its confirmation and the channel's messages come as messages
 * to the owner (set_events() with "subscriber"); hiredis keeps what it
 * needs for the channel, and no deadline applies.
 */

ngx_int_t
ngx_http_gw_redis_subscribe(ngx_http_gw_redis_t *redis, ngx_str_t *channel)
{
    size_t       len[2];
    const char  *argv[2];

    if (redis->exiting) {
        return NGX_ERROR;
    }

    if (redis->ac == NULL && ngx_http_gw_redis_connect(redis) != NGX_OK) {
        return NGX_ERROR;
    }

    argv[0] = "SUBSCRIBE";
    len[0] = sizeof("SUBSCRIBE") - 1;
    argv[1] = (const char *) channel->data;
    len[1] = channel->len;

    if (redisAsyncCommandArgv(redis->ac, NULL, NULL, 2, argv, len)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * PING on a subscribed connection: its "pong" comes as a message.  It is
 * written past hiredis's bookkeeping, which in subscribed mode would keep
 * every such command until the connection closes.
 */

ngx_int_t
ngx_http_gw_redis_ping(ngx_http_gw_redis_t *redis)
{
    static char  ping[] = "*1\r\n$4\r\nPING\r\n";

    if (redis->ac == NULL || !redis->connected || redis->exiting) {
        return NGX_ERROR;
    }

    if (redisAppendFormattedCommand(&redis->ac->c, ping, sizeof(ping) - 1)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_gw_redis_add_write(redis);

    return NGX_OK;
}


/* the handler of a command in flight will not run: nobody waits */

void
ngx_http_gw_redis_cancel(ngx_http_gw_redis_cmd_t *cmd)
{
    cmd->data = NULL;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }
}


ngx_int_t
ngx_http_gw_redis_resend(ngx_http_gw_redis_cmd_t *cmd, u_char *command,
    size_t len)
{
    ngx_http_gw_redis_t  *redis;

    redis = cmd->redis;

    if (redis->ac == NULL || redis->close_requested || redis->exiting) {
        return NGX_ERROR;
    }

    if (redisAsyncFormattedCommand(redis->ac, ngx_http_gw_redis_cmd_reply, cmd,
                                   (const char *) command, len)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    /* the deadline stays the one of the first attempt */

    redis->pending++;
    cmd->resent = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gw_redis_connect(ngx_http_gw_redis_t *redis)
{
    int                        argc;
    size_t                     argvlen[3];
    const char                *argv[3];
    ngx_connection_t          *c;
    redisAsyncContext         *ac;
    ngx_http_gw_redis_conf_t  *conf;

    conf = redis->conf;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, redis->log, 0,
                   "%sredis \"%V\": connecting", conf->log_prefix,
                   &redis->addr.name);

    /* host is NUL-terminated: a numeric address or a unix socket path */

    if (redis->addr.port == 0) {
        ac = redisAsyncConnectUnix((const char *) redis->addr.host.data);

    } else {
        ac = redisAsyncConnect((const char *) redis->addr.host.data,
                               (int) redis->addr.port);
    }

    if (ac == NULL) {
        ngx_http_gw_redis_log_error(redis, NGX_LOG_ERR,
                                    "could not allocate a context");
        goto failed;
    }

    if (ac->err) {
        ngx_http_gw_redis_log_error(redis, NGX_LOG_ERR,
                                    "connect failed: %s", ac->errstr);
        redisAsyncFree(ac);
        goto failed;
    }

    c = ngx_get_connection(ac->c.fd, redis->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        goto failed;
    }

    c->data = redis;
    c->log = redis->log;
    c->read->log = redis->log;
    c->write->log = redis->log;
    c->read->handler = ngx_http_gw_redis_read_handler;
    c->write->handler = ngx_http_gw_redis_write_handler;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    redis->ac = ac;
    redis->connection = c;
    redis->connected = 0;
    redis->alive = 0;
    redis->close_requested = 0;
    redis->not_master = 0;

    /* bounded reply objects instead of hiredis's defaults */
    ac->c.reader->fn = &ngx_http_gw_redis_reply_functions;
    ac->c.reader->privdata = &redis->refusal;

    redis->refusal.what = NULL;

    ac->ev.data = redis;
    ac->ev.addRead = ngx_http_gw_redis_add_read;
    ac->ev.delRead = ngx_http_gw_redis_del_read;
    ac->ev.addWrite = ngx_http_gw_redis_add_write;
    ac->ev.delWrite = ngx_http_gw_redis_del_write;
    ac->ev.cleanup = ngx_http_gw_redis_cleanup;

    /*
     * The session setup is pipelined ahead of the first command: replies
     * come back in order, so every later command runs authenticated, in
     * the right database, with the script loaded.
     */

    if (conf->password.len) {
        argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;

        if (conf->user.len) {
            argv[argc] = (const char *) conf->user.data;
            argvlen[argc++] = conf->user.len;
        }

        argv[argc] = (const char *) conf->password.data;
        argvlen[argc++] = conf->password.len;

        (void) redisAsyncCommandArgv(ac, ngx_http_gw_redis_init_reply,
                                     (void *) "AUTH", argc, argv, argvlen);
    }

    if (conf->db) {
        (void) redisAsyncCommand(ac, ngx_http_gw_redis_init_reply,
                                 (void *) "SELECT", "SELECT %d",
                                 (int) conf->db);
    }

    if (conf->master) {
        /* a sentinel's answer may be stale: is it the master indeed? */
        (void) redisAsyncCommand(ac, ngx_http_gw_redis_role_reply, NULL,
                                 "ROLE");
    }

    if (conf->script.len) {
        argv[0] = "SCRIPT";
        argvlen[0] = 6;
        argv[1] = "LOAD";
        argvlen[1] = 4;
        argv[2] = (const char *) conf->script.data;
        argvlen[2] = conf->script.len;

        (void) redisAsyncCommandArgv(ac, ngx_http_gw_redis_init_reply,
                                     (void *) "SCRIPT LOAD", 3, argv,
                                     argvlen);
    }

    /* this also asks for the first write event, which completes connect() */
    (void) redisAsyncSetConnectCallback(ac, ngx_http_gw_redis_on_connect);

    ngx_add_timer(&redis->connect_timer, conf->connect_timeout);

    return NGX_OK;

failed:

    redis->alive = 0;
    redis->backoff = ngx_max(redis->backoff * 2, NGX_HTTP_GW_REDIS_BACKOFF_MIN);
    redis->backoff = ngx_min(redis->backoff, NGX_HTTP_GW_REDIS_BACKOFF_MAX);
    redis->retry_at = ngx_current_msec + redis->backoff;

    return NGX_ERROR;
}


static void
ngx_http_gw_redis_close(ngx_http_gw_redis_t *redis)
{
    if (redis->ac == NULL) {
        return;
    }

    if (redis->dispatching) {
        redis->close_requested = 1;
        return;
    }

    /* runs every pending callback with a NULL reply, then our cleanup */
    redisAsyncFree(redis->ac);
}


static void
ngx_http_gw_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_http_gw_redis_t  *redis;

    redis = ac->ev.data;

    if (status != REDIS_OK) {
        /* hiredis frees the context right after this */
        ngx_http_gw_redis_log_error(redis, NGX_LOG_ERR,
                                    "connect failed: %s", ac->c.errstr);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, redis->log, 0,
                   "%sredis \"%V\": connected",
                   redis->conf->log_prefix, &redis->addr.name);

    redis->connected = 1;

    if (redis->connect_timer.timer_set) {
        ngx_del_timer(&redis->connect_timer);
    }
}


static void
ngx_http_gw_redis_init_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    size_t                n;
    u_char                buf[128];
    redisReply           *r;
    ngx_http_gw_redis_t  *redis;

    r = reply;

    if (r == NULL || r->type != REDIS_REPLY_ERROR) {
        return;
    }

    redis = ac->ev.data;

    n = ngx_http_gw_redis_printable(buf, sizeof(buf), (u_char *) r->str,
                                    r->len);

    ngx_http_gw_redis_log_error(redis, NGX_LOG_ERR,
                                "%s failed: \"%*s\"", (char *) privdata, n,
                                buf);

    redis->close_requested = 1;
}


static void
ngx_http_gw_redis_role_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply           *r, *e;
    ngx_http_gw_redis_t  *redis;

    r = reply;

    if (r == NULL) {
        return;
    }

    redis = ac->ev.data;

    if (r->type == REDIS_REPLY_ARRAY
        && r->elements > 0
        && (e = r->element[0]) != NULL
        && (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS)
        && e->len == 6
        && ngx_strncmp(e->str, "master", 6) == 0)
    {
        return;
    }

    ngx_http_gw_redis_log_error(redis, NGX_LOG_ERR, "not a master");

    redis->not_master = 1;
    redis->close_requested = 1;
}


static void
ngx_http_gw_redis_cmd_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply               *r;
    ngx_http_gw_redis_t      *redis;
    ngx_http_gw_redis_cmd_t  *cmd;

    cmd = privdata;
    redis = cmd->redis;
    r = reply;

    redis->pending--;

    if (r != NULL && r->type != REDIS_REPLY_ERROR) {
        /* the backoff restarts when a connection that worked closes */
        redis->alive = 1;
    }

    if (cmd->data != NULL) {
        cmd->resent = 0;

        cmd->handler(cmd->data, r);

        if (cmd->resent) {
            return;
        }
    }

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }

    cmd->data = NULL;
    cmd->next = redis->free;
    redis->free = cmd;
}


static void
ngx_http_gw_redis_cmd_timeout(ngx_event_t *ev)
{
    void                     *data;
    ngx_http_gw_redis_t      *redis;
    ngx_http_gw_redis_cmd_t  *cmd;

    cmd = ev->data;
    redis = cmd->redis;

    data = cmd->data;
    cmd->data = NULL;

    if (redis->connected) {
        ngx_http_gw_redis_log_error(redis, NGX_LOG_ERR,
                                    "no reply within %M ms, closing the "
                                    "connection", redis->conf->timeout);

    } else {
        ngx_http_gw_redis_log_error(redis, NGX_LOG_ERR,
                                    "not connected within %M ms",
                                    redis->conf->timeout);
    }

    if (data != NULL) {
        cmd->handler(data, NULL);
    }

    /*
     * A reply that missed its deadline means the connection is stuck or
     * slow: replies still in the pipe would only come later.  Dropping the
     * connection fails what is in flight now, instead of one deadline at a
     * time, and bounds the backlog.  While connect() is in progress the
     * connect timer decides.
     */

    if (redis->connected) {
        ngx_http_gw_redis_close(redis);
    }
}


static void
ngx_http_gw_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_http_gw_redis_t  *redis;

    redis = ev->data;

    if (redis->ac == NULL || redis->connected) {
        return;
    }

    ngx_http_gw_redis_log_error(redis, NGX_LOG_ERR,
                                "connect timed out after %M ms",
                                redis->conf->connect_timeout);

    ngx_http_gw_redis_close(redis);
}


static void
ngx_http_gw_redis_read_handler(ngx_event_t *rev)
{
    ngx_connection_t     *c;
    redisAsyncContext    *ac;
    ngx_http_gw_redis_t  *redis;

    c = rev->data;
    redis = c->data;
    ac = redis->ac;

    if (!(ac->c.flags & REDIS_CONNECTED)) {
        /* completes (or fails) the connect, may free the context */
        redis->writing = 1;
        redisAsyncHandleWrite(ac);
        redis->writing = 0;
        return;
    }

    if (redisBufferRead(&ac->c) != REDIS_OK) {

        if (redis->pending) {
            ngx_http_gw_redis_log_error(redis, NGX_LOG_ERR,
                                        "connection lost: %s",
                                        ac->c.errstr);

        } else {
            ngx_log_error(NGX_LOG_INFO, redis->log, 0,
                          "%sredis \"%V\": connection closed: %s",
                          redis->conf->log_prefix, &redis->addr.name,
                          ac->c.errstr);
        }

        ngx_http_gw_redis_close(redis);
        return;
    }

    ngx_http_gw_redis_dispatch(redis);
}


static void
ngx_http_gw_redis_dispatch(ngx_http_gw_redis_t *redis)
{
    void               *reply, *privdata;
    redisReader        *reader;
    redisCallback      *cb;
    redisCallbackFn    *fn;
    redisAsyncContext  *ac;

    ac = redis->ac;
    reader = ac->c.reader;

    redis->dispatching = 1;

    while (!redis->close_requested) {

        reply = NULL;

        if (redisReaderGetReply(reader, &reply) != REDIS_OK) {
            if (redis->refusal.what != NULL) {
                /* the format is one of the reply unit's own */
                ngx_http_gw_redis_log_error(redis, NGX_LOG_ERR,
                                            redis->refusal.what,
                                            redis->refusal.size);

            } else {
                ngx_http_gw_redis_log_error(redis, NGX_LOG_ERR,
                                            "invalid reply: %s",
                                            reader->errstr);
            }

            redis->alive = 0;
            redis->close_requested = 1;
            break;
        }

        if (reply == NULL) {
            break;
        }

        cb = ac->replies.head;

        if (cb == NULL && redis->subscriber && redis->event != NULL) {
            /* a message of a subscription */
            redis->event(redis->event_data, NGX_HTTP_GW_REDIS_MESSAGE,
                         reply);
            freeReplyObject(reply);
            continue;
        }

        if (cb == NULL) {
            ngx_http_gw_redis_log_error(redis, NGX_LOG_ERR,
                                        "reply to no command");
            freeReplyObject(reply);
            redis->alive = 0;
            redis->close_requested = 1;
            break;
        }

        /* hiredis 0.14 allocates its callback entries with malloc() */

        ac->replies.head = cb->next;

        if (cb == ac->replies.tail) {
            ac->replies.tail = NULL;
        }

        fn = cb->fn;
        privdata = cb->privdata;
        free(cb);

        if (fn != NULL) {
            fn(ac, reply, privdata);
        }

        freeReplyObject(reply);
    }

    redis->dispatching = 0;

    if (!redis->close_requested
        && reader->len - reader->pos > NGX_HTTP_GW_REDIS_MAX_UNPARSED)
    {
        ngx_http_gw_redis_log_error(redis, NGX_LOG_ERR,
                                    "reply larger than %d bytes",
                                    NGX_HTTP_GW_REDIS_MAX_UNPARSED);
        redis->alive = 0;
        redis->close_requested = 1;
    }

    if (redis->close_requested) {
        ngx_http_gw_redis_close(redis);
    }
}


static void
ngx_http_gw_redis_write_handler(ngx_event_t *wev)
{
    ngx_connection_t     *c;
    ngx_http_gw_redis_t  *redis;

    c = wev->data;
    redis = c->data;

    /* completes the connect first if needed; may free the context */

    redis->writing = 1;
    redisAsyncHandleWrite(redis->ac);
    redis->writing = 0;
}


/*
 * Level-triggered events: hiredis reads at most 16k per call and cannot
 * say whether it drained the socket, so an edge would be missed.
 */

static void
ngx_http_gw_redis_add_read(void *privdata)
{
    ngx_connection_t     *c;
    ngx_http_gw_redis_t  *redis;

    redis = privdata;
    c = redis->connection;

    if (c == NULL || c->read->active) {
        return;
    }

    if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, redis->log, 0,
                      "%sredis \"%V\": could not add a read event",
                      redis->conf->log_prefix, &redis->addr.name);
    }
}


static void
ngx_http_gw_redis_del_read(void *privdata)
{
    ngx_connection_t     *c;
    ngx_http_gw_redis_t  *redis;

    redis = privdata;
    c = redis->connection;

    if (c != NULL && c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_gw_redis_add_write(void *privdata)
{
    ngx_connection_t     *c;
    ngx_http_gw_redis_t  *redis;

    redis = privdata;
    c = redis->connection;

    if (c == NULL || c->write->active) {
        return;
    }

    /*
     * A new command on a connected socket: write at the end of this event
     * loop iteration, with whatever else the iteration queued, rather than
     * wait for the iteration that reports the socket writable.  Only while
     * connecting, or when the socket did not take everything, is a write
     * event needed.
     */

    if (redis->connected && !redis->writing) {
        if (!c->write->posted) {
            ngx_post_event(c->write, &ngx_posted_events);
        }

        return;
    }

    if (ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, redis->log, 0,
                      "%sredis \"%V\": could not add a write event",
                      redis->conf->log_prefix, &redis->addr.name);
    }
}


static void
ngx_http_gw_redis_del_write(void *privdata)
{
    ngx_connection_t     *c;
    ngx_http_gw_redis_t  *redis;

    redis = privdata;
    c = redis->connection;

    if (c != NULL && c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


/*
 * hiredis is freeing the context (error, connect failure, or our own
 * redisAsyncFree()); it closes the socket right after this returns.
 */

static void
ngx_http_gw_redis_cleanup(void *privdata)
{
    ngx_connection_t     *c;
    ngx_http_gw_redis_t  *redis;

    redis = privdata;
    c = redis->connection;

    if (c != NULL) {
        if (c->read->active) {
            (void) ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
        }

        if (c->write->active) {
            (void) ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
        }

        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        if (c->write->posted) {
            ngx_delete_posted_event(c->write);
        }

        ngx_free_connection(c);

        c->fd = (ngx_socket_t) -1;

        redis->connection = NULL;
    }

    if (redis->connect_timer.timer_set) {
        ngx_del_timer(&redis->connect_timer);
    }

    redis->ac = NULL;
    redis->connected = 0;
    redis->close_requested = 0;

    if (redis->alive) {
        /* the connection worked: the next command reconnects at once */
        redis->backoff = 0;
        redis->retry_at = ngx_current_msec;

    } else {
        redis->backoff = ngx_max(redis->backoff * 2,
                                 NGX_HTTP_GW_REDIS_BACKOFF_MIN);
        redis->backoff = ngx_min(redis->backoff,
                                 NGX_HTTP_GW_REDIS_BACKOFF_MAX);
        redis->retry_at = ngx_current_msec + redis->backoff;
    }

    redis->alive = 0;

    /* the owner learns of it (not of our own destroy()) */

    if (!redis->exiting && redis->event != NULL) {
        redis->event(redis->event_data,
                     redis->not_master ? NGX_HTTP_GW_REDIS_NOT_MASTER
                                       : NGX_HTTP_GW_REDIS_CLOSED,
                     NULL);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, redis->log, 0,
                   "%sredis \"%V\": disconnected, retry in %M ms",
                   redis->conf->log_prefix, &redis->addr.name,
                   redis->retry_at - ngx_current_msec);
}


/* at most one message a second per worker, however many requests fail */

void ngx_cdecl
ngx_http_gw_redis_log_error(ngx_http_gw_redis_t *redis, ngx_uint_t level,
    const char *fmt, ...)
{
    u_char   *p, *last;
    va_list   args;
    u_char    buf[NGX_MAX_ERROR_STR];

    if (redis->log->log_level < level) {
        return;
    }

    if (redis->log_sec == ngx_time()) {
        redis->log_suppressed++;
        return;
    }

    last = buf + sizeof(buf);

    p = ngx_slprintf(buf, last, "%sredis \"%V\": ", redis->conf->log_prefix,
                     &redis->addr.name);

    va_start(args, fmt);
    p = ngx_vslprintf(p, last, fmt, args);
    va_end(args);

    if (redis->log_suppressed) {
        p = ngx_slprintf(p, last, " (%ui similar messages suppressed)",
                         redis->log_suppressed);
    }

    ngx_log_error(level, redis->log, 0, "%*s", p - buf, buf);

    redis->log_sec = ngx_time();
    redis->log_suppressed = 0;
}
