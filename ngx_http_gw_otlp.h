
/*
 * Copyright (C) nginx-gw authors
 *
 * nginx-gw: OTLP (OpenTelemetry protocol) encoding for
 * ngx_http_gw_trace_module: spans as protobuf, the request framing of an
 * ExportTraceServiceRequest, and the parser of the collector's response
 * head.  Bytes only (no request, no events), so a fuzzer can call it.
 *
 * Field numbers are those of opentelemetry-proto (trace/v1/trace.proto,
 * common/v1/common.proto, resource/v1/resource.proto,
 * collector/trace/v1/trace_service.proto); t/otlp/ has the messages used
 * here, written from them, for the tests' independent decoder.
 *
 * Strings are made valid UTF-8 (protobuf requires it: a byte that is not
 * part of a valid sequence becomes "?") and cut at
 * NGX_HTTP_GW_OTLP_STR_MAX bytes, never inside a character.
 */


#ifndef _NGX_HTTP_GW_OTLP_H_INCLUDED_
#define _NGX_HTTP_GW_OTLP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_GW_OTLP_STR_MAX        1024

#define NGX_HTTP_GW_OTLP_STRING         0
#define NGX_HTTP_GW_OTLP_INT            1

#define NGX_HTTP_GW_OTLP_KIND_SERVER    2

#define NGX_HTTP_GW_OTLP_STATUS_UNSET   0
#define NGX_HTTP_GW_OTLP_STATUS_ERROR   2

/* Span.flags: W3C trace flags, and whether the parent is remote */
#define NGX_HTTP_GW_OTLP_HAS_IS_REMOTE  0x100
#define NGX_HTTP_GW_OTLP_IS_REMOTE      0x200


typedef struct {
    ngx_str_t                   key;
    ngx_uint_t                  type;
    ngx_str_t                   str;
    int64_t                     num;

    /* set by the _size() functions, used by the _write() ones */
    size_t                      key_len;
    size_t                      str_len;
    size_t                      size;
    unsigned                    key_clean:1;
    unsigned                    str_clean:1;
} ngx_http_gw_otlp_attr_t;


typedef struct {
    u_char                      trace_id[16];
    u_char                      span_id[8];
    u_char                      parent_id[8];
    ngx_uint_t                  has_parent;
    uint32_t                    flags;
    ngx_str_t                   trace_state;
    ngx_str_t                   name;
    ngx_uint_t                  kind;
    uint64_t                    start;          /* Unix time, ns */
    uint64_t                    end;
    ngx_uint_t                  status;
    ngx_http_gw_otlp_attr_t    *attrs;
    ngx_uint_t                  nattrs;

    /* set by ngx_http_gw_otlp_span_size() */
    size_t                      name_len;
    size_t                      state_len;
    size_t                      body;
    unsigned                    name_clean:1;
    unsigned                    state_clean:1;
} ngx_http_gw_otlp_span_t;


/* the collector's response head */
typedef struct {
    ngx_uint_t                  status;
    ngx_str_t                   retry_after;    /* empty when absent */
    size_t                      len;            /* bytes of the head */
} ngx_http_gw_otlp_response_t;


/*
 * ScopeSpans.spans entry (tag, length, Span): its size, then (with what
 * the size left in the span) the entry itself; likewise for the
 * Resource and its attributes.
 */
size_t ngx_http_gw_otlp_span_size(ngx_http_gw_otlp_span_t *span);
u_char *ngx_http_gw_otlp_span_write(u_char *p,
    ngx_http_gw_otlp_span_t *span);

/* a Resource or InstrumentationScope body */
size_t ngx_http_gw_otlp_resource_size(ngx_http_gw_otlp_attr_t *attrs,
    ngx_uint_t n);
u_char *ngx_http_gw_otlp_resource_write(u_char *p,
    ngx_http_gw_otlp_attr_t *attrs, ngx_uint_t n);
size_t ngx_http_gw_otlp_scope_size(ngx_str_t *name, ngx_str_t *version);
u_char *ngx_http_gw_otlp_scope_write(u_char *p, ngx_str_t *name,
    ngx_str_t *version);

/*
 * An ExportTraceServiceRequest up to its spans: one ResourceSpans with
 * the Resource and one ScopeSpans with the scope, whose spans (the
 * entries written by ngx_http_gw_otlp_span_write(), "spans" bytes in all)
 * follow.
 */
size_t ngx_http_gw_otlp_request_size(ngx_str_t *resource, ngx_str_t *scope,
    size_t spans);
u_char *ngx_http_gw_otlp_request_write(u_char *p, ngx_str_t *resource,
    ngx_str_t *scope, size_t spans);

/* NGX_OK: a final response head; NGX_AGAIN: more bytes; NGX_ERROR */
ngx_int_t ngx_http_gw_otlp_parse_response(u_char *p, size_t len,
    ngx_http_gw_otlp_response_t *rsp);

/* the length of s as written: valid UTF-8, at most "max" bytes */
size_t ngx_http_gw_otlp_utf8_len(ngx_str_t *s, size_t max);


#endif /* _NGX_HTTP_GW_OTLP_H_INCLUDED_ */
