
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: W3C Trace Context and plain trace id parsing for
 * ngx_http_gw_trace_module.
 *
 * Functions of bytes only (no request, no ngx_http.h), so that a fuzzer
 * can call them directly: traceparent, tracestate and the plain trace id
 * header (X-Trace-ID) with its mapping onto a W3C trace-id.
 */


#ifndef _NGX_HTTP_GW_TRACE_CONTEXT_H_INCLUDED_
#define _NGX_HTTP_GW_TRACE_CONTEXT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_GW_TC_FLAG_SAMPLED     0x01
#define NGX_HTTP_GW_TC_FLAG_RANDOM      0x02

/* traceparent version 00: "00-" 32 hex "-" 16 hex "-" 2 hex */
#define NGX_HTTP_GW_TC_TRACEPARENT_LEN  55
/* where its trace-id and parent-id start */
#define NGX_HTTP_GW_TC_TRACE_ID_HEX     3
#define NGX_HTTP_GW_TC_PARENT_ID_HEX    36

/* the plain trace id header: 1..128 of [A-Za-z0-9._-] */
#define NGX_HTTP_GW_TC_ID_MAX           128

#define NGX_HTTP_GW_TC_STATE_MEMBERS    32
/* propagated tracestate size, and the member size removed first beyond it */
#define NGX_HTTP_GW_TC_STATE_MAX        512
#define NGX_HTTP_GW_TC_STATE_LARGE      128
/* incoming tracestate parsed (all lines together), the rest is ignored */
#define NGX_HTTP_GW_TC_STATE_RAW_MAX    8192


/*
 * A valid traceparent: the ids, and "text", the header value without its
 * blanks, whose ids are lowercase hex at NGX_HTTP_GW_TC_TRACE_ID_HEX and
 * NGX_HTTP_GW_TC_PARENT_ID_HEX, to be copied rather than encoded again.
 */

typedef struct {
    u_char                      trace_id[16];
    u_char                      parent_id[8];
    u_char                      flags;
    u_char                     *text;
} ngx_http_gw_tc_parent_t;


/*
 * A tracestate list being read: the members point into the header lines,
 * which must outlive ngx_http_gw_tc_tracestate_done(); the result, in
 * data/len (len 0: nothing to propagate), is a copy.
 */

typedef struct {
    u_char                     *member[NGX_HTTP_GW_TC_STATE_MEMBERS];
    size_t                      mlen[NGX_HTTP_GW_TC_STATE_MEMBERS];
    ngx_uint_t                  nmembers;
    size_t                      raw;
    size_t                      len;
    unsigned                    lines:1;
    unsigned                    invalid:1;
    unsigned                    full:1;
    u_char                      data[NGX_HTTP_GW_TC_STATE_MAX];
} ngx_http_gw_tc_state_t;


ngx_int_t ngx_http_gw_tc_parse_traceparent(u_char *p, size_t len,
    ngx_http_gw_tc_parent_t *tp);
void ngx_http_gw_tc_tracestate_init(ngx_http_gw_tc_state_t *ts);
void ngx_http_gw_tc_tracestate_add(ngx_http_gw_tc_state_t *ts, u_char *p,
    size_t len);
ngx_int_t ngx_http_gw_tc_tracestate_done(ngx_http_gw_tc_state_t *ts);
ngx_int_t ngx_http_gw_tc_parse_id(u_char *p, size_t len, u_char *id);
uint64_t ngx_http_gw_tc_ratio_threshold(ngx_uint_t ratio);
ngx_uint_t ngx_http_gw_tc_ratio_sampled(u_char *trace_id, uint64_t threshold);
ngx_int_t ngx_http_gw_tc_hex(u_char *p, size_t n, u_char *bin);
ngx_uint_t ngx_http_gw_tc_is_zero(u_char *p, size_t len);
void ngx_http_gw_tc_trim(u_char **p, size_t *len);


#endif /* _NGX_HTTP_GW_TRACE_CONTEXT_H_INCLUDED_ */
