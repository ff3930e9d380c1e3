# Copyright (C) nginx-gw authors
# An undefined $TEST_NGINX_* variable bails out (as upstream).
use Test::Nginx::Socket 'no_plan';

run_tests();

__DATA__

=== TEST 1: undefined variable
--- config
    location = /t {
        return 200 "$TEST_NGINX_GW_NOT_SET_ANYWHERE";
    }
--- request
GET /t
