# Copyright (C) nginx-gw authors
# Run with TEST_NGINX_LOAD_MODULES=/nonexistent/ngx_gw_missing_module.so:
# the load_module line goes first in nginx.conf, so nginx must die on it.
use Test::Nginx::Socket 'no_plan';

run_tests();

__DATA__

=== TEST 1: load_module from TEST_NGINX_LOAD_MODULES
--- config
--- must_die
--- error_log eval
qr{dlopen\(\) "/nonexistent/ngx_gw_missing_module\.so" failed}
