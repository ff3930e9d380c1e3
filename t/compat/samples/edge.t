# Copyright (C) nginx-gw authors
# Compat runner only: nginx failing to start without --- must_die, and
# nginx dying during a block, are failures; the next block runs normally.
use Test::Nginx::Socket 'no_plan';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a config error without --- must_die
--- config
    location = /t {
        gw_no_such_directive on;
    }
--- request
GET /t



=== TEST 2: nginx dies during the block (as on a segfault)
--- config
    location = /t {
        return 200 "ok\n";
    }
--- init
kill 'SEGV', $Test::Nginx::Util::NginxPid;
select undef, undef, undef, 0.1;
--- request
GET /t
--- error_code:
--- abort



=== TEST 3: the next block runs normally
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok
