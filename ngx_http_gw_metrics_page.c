
/*
 * Copyright (C) nginx-gw authors
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_gw_metrics_core.h"


ngx_str_t  ngx_http_gw_metrics_page = ngx_string("<!DOCTYPE html>\n");
ngx_str_t  ngx_http_gw_metrics_page_csp = ngx_string("default-src 'none'");
