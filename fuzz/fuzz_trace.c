
/*
 * Copyright (C) nginx-gw authors
 *
 * libFuzzer harness for the gw_trace parsers of untrusted header values
 * (ngx_http_gw_trace_context.c): traceparent, the plain trace id, and
 * tracestate (the input split on newlines into any number of header
 * lines, combined as one list).  The first byte picks the parser, unless
 * GW_FUZZ_TRACESTATE=1 sends every input to the tracestate parser (a long
 * run of that parser alone).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_gw_trace_context.h"


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static int  fuzz_tracestate_only;


static void
fuzz_tracestate(u_char *p, size_t size)
{
    u_char                  *last, *start, *copy;
    size_t                   i;
    ngx_http_gw_tc_state_t   ts, again;

    last = p + size;

    ngx_http_gw_tc_tracestate_init(&ts);

    for ( ;; ) {
        start = p;

        while (p < last && *p != '\n') {
            p++;
        }

        ngx_http_gw_tc_tracestate_add(&ts, start, p - start);

        if (p == last) {
            break;
        }

        p++;
    }

    if (ngx_http_gw_tc_tracestate_done(&ts) != NGX_OK) {
        if (ts.len != 0 || ts.nmembers != 0) {
            abort();
        }

        return;
    }

    if (ts.len > NGX_HTTP_GW_TC_STATE_MAX
        || ts.nmembers > NGX_HTTP_GW_TC_STATE_MEMBERS
        || (ts.len == 0) != (ts.nmembers == 0))
    {
        abort();
    }

    for (i = 0; i < ts.len; i++) {
        if (ts.data[i] < 0x20 || ts.data[i] > 0x7e) {
            abort();
        }
    }

    /* the output is itself a valid list, and parses to itself */

    copy = malloc(ts.len ? ts.len : 1);
    if (copy == NULL) {
        return;
    }

    memcpy(copy, ts.data, ts.len);

    ngx_http_gw_tc_tracestate_init(&again);
    ngx_http_gw_tc_tracestate_add(&again, copy, ts.len);

    if (ngx_http_gw_tc_tracestate_done(&again) != NGX_OK
        || again.len != ts.len
        || again.nmembers != ts.nmembers
        || memcmp(again.data, ts.data, ts.len) != 0)
    {
        abort();
    }

    free(copy);
}


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char  *only;

    only = getenv("GW_FUZZ_TRACESTATE");
    fuzz_tracestate_only = (only != NULL && only[0] == '1');

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                   *copy, id[16], hex[48];
    ngx_http_gw_tc_parent_t   tp;

    if (size < 1) {
        return 0;
    }

    /* an exact-size heap copy, so reads past the end are caught */

    copy = malloc(size - 1 ? size - 1 : 1);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data + 1, size - 1);
    size--;

    switch (fuzz_tracestate_only ? 2 : data[0] % 3) {

    case 0:
        if (ngx_http_gw_tc_parse_traceparent(copy, size, &tp) == NGX_OK) {
            if (ngx_http_gw_tc_is_zero(tp.trace_id, 16)
                || ngx_http_gw_tc_is_zero(tp.parent_id, 8))
            {
                abort();
            }

            /* the hex the module copies is the ids' own lowercase hex */

            ngx_hex_dump(hex, tp.trace_id, 16);
            ngx_hex_dump(hex + 32, tp.parent_id, 8);

            if (tp.text < copy
                || tp.text + NGX_HTTP_GW_TC_TRACEPARENT_LEN > copy + size
                || memcmp(tp.text + NGX_HTTP_GW_TC_TRACE_ID_HEX, hex, 32)
                   != 0
                || memcmp(tp.text + NGX_HTTP_GW_TC_PARENT_ID_HEX, hex + 32,
                          16)
                   != 0)
            {
                abort();
            }
        }
        break;

    case 1:
        if (ngx_http_gw_tc_parse_id(copy, size, id) == NGX_OK) {
            if (ngx_http_gw_tc_is_zero(id, 16)) {
                abort();
            }
        }
        break;

    default:
        fuzz_tracestate(copy, size);
        break;
    }

    free(copy);

    return 0;
}
