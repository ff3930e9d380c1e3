
/*
 * Copyright (C) nginx-gw authors
 *
 * Directive parameters of the form name=value, parsed the same way by
 * every nginx-gw module.  Header only: the modules never link each other,
 * each includes its own copy of these few lines.
 *
 *     for (i = 2; i < cf->args->nelts; i++) {
 *
 *         if (ngx_http_gw_conf_param(&value[i], "zone=", &s)) {
 *             ...
 *             continue;
 *         }
 *
 *         return ngx_http_gw_conf_invalid_param(cf, &value[i]);
 *     }
 */


#ifndef _NGX_HTTP_GW_CONF_H_INCLUDED_
#define _NGX_HTTP_GW_CONF_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * Returns 1 and sets "value" to what follows "name" (which ends in '='
 * for a name=value parameter, or is a whole word such as "nodelay") when
 * "arg" is that parameter; 0 otherwise, leaving "value" as it was (the
 * callers test every parameter against every name).
 */

static ngx_inline ngx_uint_t
ngx_http_gw_conf_param(ngx_str_t *arg, const char *name, ngx_str_t *value)
{
    size_t  len;

    len = ngx_strlen(name);

    if (arg->len < len || ngx_strncmp(arg->data, name, len) != 0) {
        return 0;
    }

    if (name[len - 1] != '=' && arg->len != len) {
        return 0;
    }

    if (value != NULL) {
        value->data = arg->data + len;
        value->len = arg->len - len;
    }

    return 1;
}


/*
 * An unknown parameter is named without its value: a mistyped
 * "pasword=..." must not copy a secret into the error log.
 */

static ngx_inline char *
ngx_http_gw_conf_invalid_param(ngx_conf_t *cf, ngx_str_t *arg)
{
    u_char     *eq;
    ngx_str_t   name;

    eq = ngx_strlchr(arg->data, arg->data + arg->len, '=');

    name.data = arg->data;
    name.len = (eq != NULL) ? (size_t) (eq - arg->data + 1) : arg->len;

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"%s",
                       &name, (eq != NULL) ? "..." : "");

    return NGX_CONF_ERROR;
}


#endif /* _NGX_HTTP_GW_CONF_H_INCLUDED_ */
