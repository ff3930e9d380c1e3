
/*
 * Copyright (C) nginx-gw authors
 *
 * libFuzzer harness for the gw_trace parsers of untrusted header values:
 * traceparent, the plain trace id, and tracestate (the input split on
 * newlines into up to 32 header values).  The first byte picks the parser.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_gw_trace_context.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                      *p, *last, *copy, id[16];
    size_t                       i;
    ngx_str_t                    values[NGX_HTTP_GW_TC_STATE_HEADERS];
    ngx_uint_t                   n;
    ngx_http_gw_tc_state_t       ts;
    ngx_http_gw_tc_parent_t      tp;

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

    switch (data[0] % 3) {

    case 0:
        if (ngx_http_gw_tc_parse_traceparent(copy, size, &tp) == NGX_OK) {
            if (ngx_http_gw_tc_is_zero(tp.trace_id, 16)
                || ngx_http_gw_tc_is_zero(tp.parent_id, 8))
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
        n = 0;
        p = copy;
        last = copy + size;

        while (n < NGX_HTTP_GW_TC_STATE_HEADERS) {
            values[n].data = p;

            while (p < last && *p != '\n') {
                p++;
            }

            values[n].len = p - values[n].data;
            n++;

            if (p == last) {
                break;
            }

            p++;
        }

        if (ngx_http_gw_tc_parse_tracestate(values, n, &ts) == NGX_OK) {
            if (ts.len > NGX_HTTP_GW_TC_STATE_MAX
                || ts.nmembers > NGX_HTTP_GW_TC_STATE_MEMBERS)
            {
                abort();
            }

            /* the output must itself be a valid list, and stable */

            values[0].data = ts.data;
            values[0].len = ts.len;

            for (i = 0; i < ts.len; i++) {
                if (ts.data[i] < 0x20 || ts.data[i] > 0x7e) {
                    abort();
                }
            }
        }
        break;
    }

    free(copy);

    return 0;
}
