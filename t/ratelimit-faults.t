# Copyright (C) nginx-gw authors
# gw_ratelimit when Redis fails: stopped (nothing listens), stuck (accepts,
# never answers), restarted, paused, refusing the password, flushing its
# scripts, or answering garbage; a client that leaves while its decision is
# pending.  No request waits past the deadline, each fail policy holds, the
# worker recovers by itself.
#
# repeat_each(1): the state here is the worker's connection state (backoff,
# the error log throttle), which the blocks exercise with several requests
# of their own, timed where it matters.

use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwRedis;

repeat_each(1);
no_shuffle();

# valgrind makes everything slower; timing bounds scale with it
our $Slow = $ENV{TEST_NGINX_USE_VALGRIND} ? 10 : 1;

# the deadline of the tests that need the first decision of a fresh worker
# (a new connection, AUTH, SCRIPT LOAD) within the default 50 ms
$ENV{TEST_NGINX_GWRL_TIMEOUT} = $Slow > 1 ? '2s' : '50ms';

# Redis servers this file starts, stops and restarts itself
$ENV{TEST_NGINX_GWRL_OWN_PORT} = GwRedis::free_port();
$ENV{TEST_NGINX_GWRL_AUTH_PORT} = GwRedis::free_port();
$ENV{TEST_NGINX_GWRL_HOLE_PORT} = GwRedis::free_port();

GwRedis::start_redis(port => $ENV{TEST_NGINX_GWRL_AUTH_PORT},
                     args => ['--requirepass', 'gw-secret'],
                     password => 'gw-secret');

our $OwnRedis;

sub own_redis_start {
    $OwnRedis = GwRedis::start_redis(port => $ENV{TEST_NGINX_GWRL_OWN_PORT});
}

sub own_redis_kill {
    GwRedis::stop($OwnRedis, 'KILL');
    undef $OwnRedis;
}

sub get {
    my ($path) = @_;
    return GwRedis::http_get($ENV{TEST_NGINX_SERVER_PORT}, $path);
}

GwTest::use_defaults(
    modules => ['ratelimit']
);

run_tests();

__DATA__

=== TEST 1: Redis stopped, fail open: admitted, status ERROR, error logged
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- request
GET /t?c=a
--- error_code: 200
--- response_headers
X-RL: ERROR
!RateLimit
--- response_body
ok
--- error_log eval
qr/\[error\] .*gw_ratelimit: redis "127\.0\.0\.1:\d+": connect failed: Connection refused/
--- no_error_log
[alert]
[crit]



=== TEST 2: Redis stopped: every request answered, never over the limit
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        gw_ratelimit_fail open;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t?c=a", "GET /t?c=a", "GET /t?c=a", "GET /t?c=a"]
--- error_code eval
[200, 200, 200, 200]
--- response_headers eval
["X-RL: ERROR", "X-RL: ERROR", "X-RL: ERROR", "X-RL: ERROR"]
--- no_error_log
[alert]
[crit]



=== TEST 3: Redis stopped, fail closed: 503 with a JSON reason
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        gw_ratelimit_fail closed;
        gw_ratelimit_headers on;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- request
GET /t?c=a
--- error_code: 503
--- response_headers
X-RL: ERROR
Content-Type: application/json
!Retry-After
!RateLimit
!X-RateLimit-Remaining
--- response_body
{"error":"Service Unavailable","reason":"ratelimit_unavailable"}
--- error_log
connect failed: Connection refused



=== TEST 4: fail closed with another status; an empty key needs no Redis
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        gw_ratelimit_fail closed;
        gw_ratelimit_fail_status 429;
        add_header X-RL "[$gw_ratelimit_status]" always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t?c=a", "GET /t"]
--- error_code eval
[429, 200]
--- response_headers eval
["X-RL: [ERROR]", "X-RL: []"]
--- response_body eval
[qq{{"error":"Too Many Requests","reason":"ratelimit_unavailable"}\n},
 "ok\n"]
--- no_error_log
[alert]



=== TEST 5: Redis stopped, fail local: the same limits per instance
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    gw_ratelimit_zone $arg_c zone=fixed rate=2r/h algorithm=fixed_window;
    gw_ratelimit_zone $arg_c zone=gcra rate=1r/m burst=1;
    gw_ratelimit_zone $arg_c zone=slide rate=2r/m algorithm=sliding_window;
    gw_ratelimit_fail local;
--- config
    location /fixed {
        gw_ratelimit zone=fixed;
        gw_ratelimit_headers on;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /gcra {
        gw_ratelimit zone=gcra nodelay;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /slide {
        gw_ratelimit zone=slide;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /fixed?c=a", "GET /fixed?c=a", "GET /fixed?c=a", "GET /fixed?c=b",
 "GET /gcra?c=a", "GET /gcra?c=a", "GET /gcra?c=a",
 "GET /slide?c=a", "GET /slide?c=a", "GET /slide?c=a"]
--- error_code eval
[200, 200, 429, 200, 200, 200, 429, 200, 200, 429]
--- response_headers eval
["X-RL: ERROR\nX-RateLimit-Limit: 2\nX-RateLimit-Remaining: 1",
 "X-RL: ERROR\nX-RateLimit-Remaining: 0",
 "X-RL: ERROR\nX-RateLimit-Remaining: 0",
 "X-RL: ERROR\nX-RateLimit-Remaining: 1",
 "X-RL: ERROR", "X-RL: ERROR", "X-RL: ERROR\nRetry-After: 60",
 "X-RL: ERROR", "X-RL: ERROR", "X-RL: ERROR"]
--- response_body_like eval
["ok", "ok", '"reason":"rate_limited","policy":"fixed"', "ok",
 "ok", "ok", '"policy":"gcra"', "ok", "ok", '"policy":"slide"']
--- no_error_log
[alert]
[crit]



=== TEST 6: fail closed in dry run: logged, not rejected
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        gw_ratelimit_fail closed;
        gw_ratelimit_dry_run on;
        gw_ratelimit_log_level warn;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- request
GET /t?c=a
--- error_code: 200
--- response_headers
X-RL: ERROR
--- error_log
[warn]
gw_ratelimit: redis unavailable, dry run: not rejected with 503



=== TEST 7: a Redis that accepts and never answers: the deadline holds
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_2 timeout=100ms;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- tcp_listen: $TEST_NGINX_RAND_PORT_2
--- tcp_reply:
--- tcp_no_close
--- request
GET /t?c=a
--- timeout: 3
--- error_code: 200
--- response_headers
X-RL: ERROR
--- error_log eval
qr/gw_ratelimit: redis "127\.0\.0\.1:\d+": no reply within 100 ms, closing the connection/
--- no_error_log
[alert]



=== TEST 8: a stuck Redis, fail closed: 503 at the deadline
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_2 timeout=100ms;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        gw_ratelimit_fail closed;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- tcp_listen: $TEST_NGINX_RAND_PORT_2
--- tcp_reply:
--- tcp_no_close
--- request
GET /t?c=a
--- timeout: 3
--- error_code: 503
--- response_body_like: "reason":"ratelimit_unavailable"
--- error_log
no reply within 100 ms



=== TEST 9: timed: a stuck Redis costs one deadline, then backoff is instant
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_HOLE_PORT timeout=150ms;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
my $hole = GwRedis::black_hole($ENV{TEST_NGINX_GWRL_HOLE_PORT});
my %r = main::get("/t?c=a");
Test::More::is($r{status}, 200, "stuck redis: admitted (fail open)");
Test::More::is($r{headers}{'x-rl'}, "ERROR", "stuck redis: status ERROR");
Test::More::cmp_ok($r{secs}, '>=', 0.14, "waited for the deadline");
Test::More::cmp_ok($r{secs}, '<', 0.6 * $main::Slow, "not much longer");
%r = main::get("/t?c=a");
Test::More::is($r{headers}{'x-rl'}, "ERROR", "backing off: status ERROR");
Test::More::cmp_ok($r{secs}, '<', 0.1 * $main::Slow,
                   "backing off: no wait for redis");
Time::HiRes::sleep(0.3);
%r = main::get("/t?c=a");
Test::More::is($r{headers}{'x-rl'}, "ERROR", "retry: status ERROR");
Test::More::cmp_ok($r{secs}, '>=', 0.14, "retry: connected and waited");
close $hole;
--- request
GET /t
--- error_code: 200
--- error_log
no reply within 150 ms



=== TEST 10: connect() that never completes: connect_timeout
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_HOLE_PORT timeout=2s
                       connect_timeout=150ms;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
my $hole = GwRedis::syn_hole($ENV{TEST_NGINX_GWRL_HOLE_PORT});
my %r = main::get("/t?c=a");
Test::More::is($r{headers}{'x-rl'}, "ERROR", "no connection: ERROR");
Test::More::cmp_ok($r{secs}, '>=', 0.14, "waited for connect_timeout");
Test::More::cmp_ok($r{secs}, '<', 1 * $main::Slow,
                   "not for the 2 s command timeout");
%r = main::get("/t?c=a");
Test::More::cmp_ok($r{secs}, '<', 0.1 * $main::Slow,
                   "backing off: no wait");
close $_ for @$hole;
--- request
GET /t
--- error_code: 200
--- error_log
connect timed out after 150 ms



=== TEST 11: connecting outlasts a request's deadline: that request fails,
the connection attempt goes on
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_HOLE_PORT timeout=100ms
                       connect_timeout=1s;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
my $hole = GwRedis::syn_hole($ENV{TEST_NGINX_GWRL_HOLE_PORT});
my %r = main::get("/t?c=a");
Test::More::is($r{headers}{'x-rl'}, "ERROR", "slow connect: ERROR");
Test::More::cmp_ok($r{secs}, '<', 0.5 * $main::Slow,
                   "after the request's 100 ms, not the 1 s connect");
%r = main::get("/t?c=a");
Test::More::is($r{headers}{'x-rl'}, "ERROR", "still connecting: ERROR");
Time::HiRes::sleep(1.1);
close $_ for @$hole;
--- request
GET /t
--- error_code: 200
--- error_log
not connected within 100 ms



=== TEST 12: Redis restarts: the worker reconnects by itself
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_OWN_PORT timeout=1s;
    gw_ratelimit_zone $arg_c zone=z rate=2r/m algorithm=sliding_window;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
use Time::HiRes qw(sleep time);
main::own_redis_start();
my %r = main::get("/t?c=a");
Test::More::is($r{headers}{'x-rl'}, "PASSED", "redis up: PASSED");
main::own_redis_kill();
%r = main::get("/t?c=a");
Test::More::is($r{status}, 200, "redis killed: admitted");
Test::More::is($r{headers}{'x-rl'}, "ERROR", "redis killed: ERROR");
Test::More::cmp_ok($r{secs}, '<', 0.5 * $main::Slow, "redis killed: quick");
for (1 .. 5) {
    %r = main::get("/t?c=a");
    sleep 0.05;
}
Test::More::is($r{headers}{'x-rl'}, "ERROR", "redis still down: ERROR");
my $t0 = time;
main::own_redis_start();
my $status = "";
while (time - $t0 < 5 * $main::Slow) {
    %r = main::get("/t?c=a");
    $status = $r{headers}{'x-rl'} // '';
    last if $status eq "PASSED";
    sleep 0.05;
}
Test::More::is($status, "PASSED", "redis back: PASSED again");
Test::More::cmp_ok(time - $t0, '<', 1.5 * $main::Slow,
                   "recovered within the backoff cap");
# a fresh Redis counts from zero: one more admitted, then rejected
%r = main::get("/t?c=a");
Test::More::is($r{status}, 200, "the second after the restart: admitted");
%r = main::get("/t?c=a");
Test::More::is($r{status}, 429, "the third: rejected");
--- request
GET /t?c=b
--- error_code: 200
--- response_headers
X-RL: PASSED
--- error_log
connect failed: Connection refused



=== TEST 13: Redis paused past the deadline, then back
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_OWN_PORT timeout=100ms;
    gw_ratelimit_zone $arg_c zone=z rate=10r/m algorithm=sliding_window;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
use Time::HiRes qw(sleep);
main::own_redis_start() unless $main::OwnRedis;
GwRedis::command($ENV{TEST_NGINX_GWRL_OWN_PORT}, 'FLUSHALL');
my %r = main::get("/t?c=p");
# under valgrind the first decision of a fresh worker may miss the deadline
for (2 .. ($main::Slow > 1 ? 10 : 1)) {
    last if $r{headers}{'x-rl'} eq 'PASSED';
    %r = main::get("/t?c=p");
}
Test::More::is($r{headers}{'x-rl'}, "PASSED", "before the pause: PASSED");
GwRedis::command($ENV{TEST_NGINX_GWRL_OWN_PORT}, 'CLIENT', 'PAUSE', 600);
%r = main::get("/t?c=p");
Test::More::is($r{headers}{'x-rl'}, "ERROR", "paused: ERROR");
Test::More::cmp_ok($r{secs}, '<', 0.5 * $main::Slow, "paused: no long wait");
sleep 0.8;
%r = main::get("/t?c=p");
Test::More::is($r{headers}{'x-rl'}, "PASSED", "after the pause: PASSED");
--- request
GET /t?c=q
--- error_code: 200
--- response_headers
X-RL: PASSED
--- error_log
no reply within 100 ms, closing the connection



=== TEST 14: a client leaves while its decision is pending
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_OWN_PORT timeout=2s;
    gw_ratelimit_zone $arg_c zone=z rate=10r/m algorithm=sliding_window;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
use Time::HiRes qw(sleep);
main::own_redis_start() unless $main::OwnRedis;
GwRedis::command($ENV{TEST_NGINX_GWRL_OWN_PORT}, 'FLUSHALL');
my %r = main::get("/t?c=w");
Test::More::is($r{headers}{'x-rl'}, "PASSED", "warm connection: PASSED");
GwRedis::command($ENV{TEST_NGINX_GWRL_OWN_PORT}, 'CLIENT', 'PAUSE', 500);
# three clients give up while Redis holds their replies
GwRedis::http_abort($ENV{TEST_NGINX_SERVER_PORT}, "/t?c=gone$_", 0.05)
    for 1 .. 3;
sleep 0.7;
# the late replies found no request; the worker goes on
%r = main::get("/t?c=w");
Test::More::is($r{headers}{'x-rl'}, "PASSED", "after late replies: PASSED");
my $n = GwRedis::command($ENV{TEST_NGINX_GWRL_OWN_PORT}, 'ZCARD',
                         'gw:rl:z:s:{gone1}');
Test::More::is($n, 1, "the departed request was still counted once");
--- request
GET /t?c=w
--- error_code: 200
--- response_headers
X-RL: PASSED
--- no_error_log
[error]
[alert]
[crit]



=== TEST 15: a client leaves, then its deadline passes (stuck Redis)
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_HOLE_PORT timeout=200ms;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
use Time::HiRes qw(sleep);
my $hole = GwRedis::black_hole($ENV{TEST_NGINX_GWRL_HOLE_PORT});
GwRedis::http_abort($ENV{TEST_NGINX_SERVER_PORT}, "/t?c=gone", 0.05);
sleep 0.4;
my %r = main::get("/t?c=a");
Test::More::is($r{status}, 200, "the worker still answers");
close $hole;
--- request
GET /t
--- error_code: 200
--- error_log
no reply within 200 ms
--- no_error_log
[alert]
[crit]



=== TEST 16: wrong password: ERROR, the AUTH failure logged
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_AUTH_PORT password=wrong
                       timeout=$TEST_NGINX_GWRL_TIMEOUT;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- request
GET /t?c=a
--- error_code: 200
--- response_headers
X-RL: ERROR
--- error_log eval
qr/gw_ratelimit: redis "[^"]+": AUTH failed: "WRONGPASS/
--- no_error_log
gw-secret
wrong"



=== TEST 17: no password for a server that requires one
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_AUTH_PORT
                       timeout=$TEST_NGINX_GWRL_TIMEOUT;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        gw_ratelimit_fail closed;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- request
GET /t?c=a
--- error_code: 503
--- error_log
NOAUTH



=== TEST 18: the right password, db= selects the database
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_AUTH_PORT
                       password=gw-secret db=3
                       timeout=$TEST_NGINX_GWRL_TIMEOUT;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
    gw_ratelimit_log_level warn;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
my $port = $ENV{TEST_NGINX_GWRL_AUTH_PORT};
GwRedis::commands($port, ['AUTH', 'gw-secret'], ['FLUSHALL']);
my %r = main::get("/t?c=db");
Test::More::is($r{headers}{'x-rl'}, "PASSED", "authenticated: PASSED");
my $in3 = GwRedis::commands($port, ['AUTH', 'gw-secret'], ['SELECT', 3],
                            ['EXISTS', 'gw:rl:z:g:{db}']);
my $in0 = GwRedis::commands($port, ['AUTH', 'gw-secret'],
                            ['EXISTS', 'gw:rl:z:g:{db}']);
Test::More::is($in3, 1, "the key is in db 3");
Test::More::is($in0, 0, "not in db 0");
--- request
GET /t?c=db
--- error_code: 429
--- response_headers
X-RL: REJECTED
--- no_error_log
[error]



=== TEST 19: Redis 6 ACL form: user= and password=
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_AUTH_PORT
                       user=gateway password=gw-acl-pass
                       timeout=$TEST_NGINX_GWRL_TIMEOUT;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
GwRedis::commands($ENV{TEST_NGINX_GWRL_AUTH_PORT}, ['AUTH', 'gw-secret'],
                  ['ACL', 'SETUSER', 'gateway', 'reset', 'on', '>gw-acl-pass',
                   '~gw:rl:*', '+@all']);
--- request
GET /t?c=acl
--- error_code: 200
--- response_headers
X-RL: PASSED
--- no_error_log
[error]



=== TEST 20: an ACL user without the right to load scripts: ERROR, logged
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_AUTH_PORT
                       user=weak password=weak-pass
                       timeout=$TEST_NGINX_GWRL_TIMEOUT;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
GwRedis::commands($ENV{TEST_NGINX_GWRL_AUTH_PORT}, ['AUTH', 'gw-secret'],
                  ['ACL', 'SETUSER', 'weak', 'reset', 'on', '>weak-pass',
                   '~*', '+ping']);
--- request
GET /t?c=a
--- error_code: 200
--- response_headers
X-RL: ERROR
--- error_log eval
qr/SCRIPT LOAD failed: "NOPERM/



=== TEST 21: errors are logged at most once a second, not per request
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_AUTH_PORT
                       user=notime password=notime-pass
                       timeout=$TEST_NGINX_GWRL_TIMEOUT;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
use Time::HiRes qw(time);
# may load and run the script, but the script may not call TIME: every
# decision is an error reply, and the connection stays up
GwRedis::commands($ENV{TEST_NGINX_GWRL_AUTH_PORT}, ['AUTH', 'gw-secret'],
                  ['ACL', 'SETUSER', 'notime', 'reset', 'on', '>notime-pass',
                   '~*', '+evalsha', '+eval', '+script|load']);
my $t0 = time;
my $errors = 0;
for (1 .. 30) {
    my %r = main::get("/t?c=a");
    $errors++ if ($r{headers}{'x-rl'} // '') eq 'ERROR';
}
my $secs = time - $t0;
Test::More::is($errors, 30, "30 requests, all ERROR");
my $logged = GwRedis::count_log(qr/script failed/);
Test::More::cmp_ok($logged, '>=', 1, "the error is logged");
Test::More::cmp_ok($logged, '<=', int($secs) + 2,
                   "at most once a second ($logged in $secs s)");
--- request
GET /t?c=a
--- error_code: 200
--- error_log eval
qr/script failed/



=== TEST 22: SCRIPT FLUSH: NOSCRIPT is answered by sending the script
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_zone $arg_c zone=z rate=2r/m algorithm=sliding_window;
    gw_ratelimit_log_level warn;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
my $port = $ENV{TEST_NGINX_REDIS_PORT};
GwRedis::flushall();
my %r = main::get("/t?c=s");
Test::More::is($r{headers}{'x-rl'}, "PASSED", "script loaded: PASSED");
GwRedis::command($port, 'SCRIPT', 'FLUSH');
GwRedis::command($port, 'CONFIG', 'RESETSTAT');
%r = main::get("/t?c=s");
Test::More::is($r{headers}{'x-rl'}, "PASSED", "after SCRIPT FLUSH: PASSED");
my $info = GwRedis::command($port, 'INFO', 'commandstats');
Test::More::like($info, qr/cmdstat_eval:calls=1,/, "sent once with EVAL");
%r = main::get("/t?c=s");
Test::More::is($r{status}, 429, "and counted: the third is rejected");
--- request
GET /t?c=other
--- error_code: 200
--- no_error_log
[error]



=== TEST 23: garbage instead of RESP: ERROR, connection dropped
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_2 timeout=500ms;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- tcp_listen: $TEST_NGINX_RAND_PORT_2
--- tcp_reply eval
"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
--- request
GET /t?c=a
--- error_code: 200
--- response_headers
X-RL: ERROR
--- error_log
invalid reply: Protocol error
--- no_error_log
[alert]



=== TEST 24: more replies than commands: ERROR, no abort()
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_2 timeout=500ms;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- tcp_listen: $TEST_NGINX_RAND_PORT_2
--- tcp_reply eval
"+OK\r\n+OK\r\n+OK\r\n+OK\r\n:1\r\n"
--- pipelined_requests eval
["GET /t?c=a", "GET /t?c=a"]
--- error_code eval
[200, 200]
--- response_headers eval
["X-RL: ERROR", "X-RL: ERROR"]
--- no_error_log
[alert]
[crit]



=== TEST 25: a well-formed but wrong batch reply is not believed
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_2 timeout=500ms;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        gw_ratelimit_fail closed;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- tcp_listen: $TEST_NGINX_RAND_PORT_2
--- tcp_reply eval
# the batch of one request, whose remaining count exceeds the limit
"+OK\r\n*1\r\n*5\r\n:1\r\n:1\r\n:999\r\n:0\r\n:0\r\n"
--- request
GET /t?c=a
--- error_code: 503
--- error_log
unexpected script reply



=== TEST 26: an error reply is logged sanitized and bounded
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_2 timeout=500ms;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- tcp_listen: $TEST_NGINX_RAND_PORT_2
--- tcp_reply eval
"+OK\r\n-ERR evil\x1b[31m\"quote" . ("x" x 300) . "\r\n"
--- request
GET /t?c=a
--- error_code: 200
--- response_headers
X-RL: ERROR
--- error_log eval
qr/script failed: "ERR evil\?\[31m\?quotex{100}/
--- no_error_log eval
[qr/x{200}/, "\x1b"]



=== TEST 27: a huge array or string from the peer is refused, not buffered
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_2 timeout=500ms;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- tcp_listen: $TEST_NGINX_RAND_PORT_2
--- tcp_reply eval
"+OK\r\n*100000000\r\n"
--- request
GET /t?c=a
--- error_code: 200
--- response_headers
X-RL: ERROR
--- error_log eval
qr/\[error\] .*gw_ratelimit: redis "127\.0\.0\.1:\d+": reply refused: an array of 100000000 elements, more than 1024/
--- no_error_log
Out of memory



=== TEST 27b: a string longer than any reply: refused, the cause named
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_2 timeout=500ms;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- tcp_listen: $TEST_NGINX_RAND_PORT_2
--- tcp_reply eval
"+OK\r\n\$5000\r\n" . ("s" x 5000) . "\r\n"
--- request
GET /t?c=a
--- error_code: 200
--- response_headers
X-RL: ERROR
--- error_log
reply refused: a string of 5000 bytes, more than 4096
--- no_error_log
Out of memory



=== TEST 28: an endless bulk string is cut off at 64k
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_2 timeout=500ms;
    gw_ratelimit_zone $arg_c zone=z rate=1r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- tcp_listen: $TEST_NGINX_RAND_PORT_2
--- tcp_reply eval
"+OK\r\n\$1000000000\r\n" . ("z" x 200000)
--- tcp_no_close
--- request
GET /t?c=a
--- error_code: 200
--- response_headers
X-RL: ERROR
--- error_log
reply larger than 65536 bytes
