# Copyright (C) nginx-gw authors
# Compat runner only: blocks the runner must refuse, loudly, instead of
# silently skipping an assertion (upstream Test::Nginx runs them and passes
# or fails vacuously).  t/runner.t expects TEST 1 to pass and exactly one
# failing test, naming the block and the section, for each other block.
use Test::Nginx::Socket 'no_plan';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a good block still runs
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok



=== TEST 2: a typo in a section name
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- respone_body
not checked by anyone



=== TEST 3: an upstream section the compat runner does not implement
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- error_code_like: ^2



=== TEST 4: $TEST_NGINX_* in a section that is not expanded
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t?port=$TEST_NGINX_SERVER_PORT



=== TEST 5: no --- config section
--- request
GET /t
