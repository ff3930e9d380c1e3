
/*
 * Copyright (C) nginx-gw authors
 *
 * libFuzzer harness for ngx_http_gw_json_validate() (ngx_http_gw_json.c),
 * the check gw_batch applies to every service's answer.  Besides memory
 * safety it checks the verdict: against jansson as an independent reader
 * (what jansson accepts, within our nesting limit, must be accepted), and
 * against itself (a valid value stays valid inside an array, and never
 * with a byte appended).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <jansson.h>

#include "ngx_http_gw_json.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char      *copy;
    size_t       offset;
    json_t      *json;
    ngx_int_t    rc, wrapped, appended;
    const char  *reason;

    /* exact-size heap copies, so reads past the end are caught */

    copy = malloc(size + 2);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data, size);

    reason = NULL;
    rc = ngx_http_gw_json_validate(copy, size, &reason, &offset);

    if (rc != NGX_OK && (reason == NULL || offset > size)) {
        abort();
    }

    /* jansson stops at a NUL byte outside strings: no oracle then */

    json = memchr(data, '\0', size) ? NULL
           : json_loadb((const char *) data, size, JSON_DECODE_ANY, NULL);

    if (json != NULL) {
        json_decref(json);

        if (rc != NGX_OK && strcmp(reason, "nested too deep") != 0) {
            abort();
        }
    }

    if (rc == NGX_OK) {
        copy[size] = 'x';
        appended = ngx_http_gw_json_validate(copy, size + 1, NULL, NULL);

        memmove(copy + 1, data, size);
        copy[0] = '[';
        copy[size + 1] = ']';
        wrapped = ngx_http_gw_json_validate(copy, size + 2, &reason, NULL);

        if (appended == NGX_OK
            || (wrapped != NGX_OK && strcmp(reason, "nested too deep") != 0))
        {
            abort();
        }
    }

    free(copy);

    return 0;
}
