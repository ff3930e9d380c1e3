# Copyright (C) nginx-gw authors
# gw_ratelimit against the real Redis of t/run-suite: exact admission at the
# limit for each algorithm, burst, several limits (a rejected request is not
# charged), dry run, headers, empty keys, keys from headers and variables.
#
# Redis is flushed before each block (--- init); the keys of most blocks
# end in $connection, so each repetition of a block (a new connection)
# starts from zero while its pipelined requests share one key.

use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwRedis;

repeat_each(2);
no_shuffle();

GwTest::use_defaults(
    modules => ['ratelimit'],
    init => 'GwRedis::flushall();'
);

run_tests();

__DATA__

=== TEST 1: sliding window: exactly the limit is admitted, then 429 JSON
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level warn;
    gw_ratelimit_zone "c:$connection" zone=win5 rate=5r/m
                      algorithm=sliding_window;
--- config
    location /t {
        gw_ratelimit zone=win5;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t", "GET /t", "GET /t", "GET /t", "GET /t", "GET /t", "GET /t"]
--- error_code eval
[200, 200, 200, 200, 200, 429, 429]
--- response_headers eval
["X-RL: PASSED", "X-RL: PASSED", "X-RL: PASSED", "X-RL: PASSED",
 "X-RL: PASSED", "X-RL: REJECTED\nContent-Type: application/json",
 "X-RL: REJECTED\nRetry-After: 60"]
--- response_body eval
["ok\n", "ok\n", "ok\n", "ok\n", "ok\n",
 qq{{"error":"Too Many Requests","reason":"rate_limited","policy":"win5","retry_after":60}\n},
 qq{{"error":"Too Many Requests","reason":"rate_limited","policy":"win5","retry_after":60}\n}]



=== TEST 2: fixed window: exactly the limit per window
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level warn;
    gw_ratelimit_zone "c:$connection" zone=fix3 rate=3r/h
                      algorithm=fixed_window;
--- config
    location /t {
        gw_ratelimit zone=fix3;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t", "GET /t", "GET /t", "GET /t", "GET /t"]
--- error_code eval
[200, 200, 200, 429, 429]
--- response_headers eval
["X-RL: PASSED", "X-RL: PASSED", "X-RL: PASSED", "X-RL: REJECTED",
 "X-RL: REJECTED"]



=== TEST 3: gcra: burst + 1 at once, then 429; a location may lower burst
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level warn;
    gw_ratelimit_zone "c:$connection" zone=g rate=1r/m burst=3;
    gw_ratelimit_zone "c:$connection" zone=g2 rate=1r/m burst=3;
--- config
    location /t {
        gw_ratelimit zone=g nodelay;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /low {
        gw_ratelimit zone=g2 burst=1 nodelay;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t", "GET /t", "GET /t", "GET /t", "GET /t",
 "GET /low", "GET /low", "GET /low"]
--- error_code eval
[200, 200, 200, 200, 429, 200, 200, 429]



=== TEST 4: gcra default algorithm is a rate: burst=0 admits one
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level warn;
    gw_ratelimit_zone "c:$connection" zone=g0 rate=30r/m;
--- config
    location /t {
        gw_ratelimit zone=g0;
        gw_ratelimit_headers on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t", "GET /t"]
--- error_code eval
[200, 429]
--- response_headers eval
[qq{RateLimit-Policy: "g0";q=30;w=60\nRateLimit: "g0";r=0;t=2
X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0\nX-RateLimit-Reset: 2},
 qq{Retry-After: 2\nRateLimit: "g0";r=0;t=2}]



=== TEST 5: several limits: a rejected request is charged to none
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level warn;
    gw_ratelimit_zone "c:$connection" zone=wide rate=5r/m
                      algorithm=sliding_window;
    gw_ratelimit_zone "c:$connection" zone=narrow rate=2r/m
                      algorithm=sliding_window;
--- config
    location /both {
        gw_ratelimit zone=wide;
        gw_ratelimit zone=narrow;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /wide {
        gw_ratelimit zone=wide;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /both", "GET /both", "GET /both", "GET /both",
 "GET /wide", "GET /wide", "GET /wide", "GET /wide"]
--- error_code eval
[200, 200, 429, 429, 200, 200, 200, 429]
--- response_body_like eval
["ok", "ok", '"policy":"narrow"', '"policy":"narrow"',
 "ok", "ok", "ok", '"policy":"wide"']



=== TEST 6: several limits: headers list every policy, X-* the tightest
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level warn;
    gw_ratelimit_zone "c:$connection" zone=a rate=10r/m
                      algorithm=sliding_window;
    gw_ratelimit_zone "c:$connection" zone=b rate=3r/h
                      algorithm=fixed_window;
--- config
    location /t {
        gw_ratelimit zone=a;
        gw_ratelimit zone=b burst=1;
        gw_ratelimit_headers on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t", "GET /t"]
--- error_code eval
[200, 200]
--- response_headers_like eval
[qq{RateLimit-Policy: "a";q=10;w=60, "b";q=4;w=3600
RateLimit: "a";r=9;t=60, "b";r=3;t=\\d+
X-RateLimit-Limit: 4
X-RateLimit-Remaining: 3},
qq{RateLimit: "a";r=8;t=60, "b";r=2;t=\\d+
X-RateLimit-Limit: 4
X-RateLimit-Remaining: 2}]



=== TEST 7: dry run: counted and logged, never rejected, not charged
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level warn;
    gw_ratelimit_zone "c:$connection" zone=dry rate=2r/m
                      algorithm=sliding_window;
--- config
    location /dry {
        gw_ratelimit zone=dry;
        gw_ratelimit_dry_run on;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /real {
        gw_ratelimit zone=dry;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /dry", "GET /dry", "GET /dry", "GET /dry", "GET /real"]
--- error_code eval
[200, 200, 200, 200, 429]
--- response_headers eval
["X-RL: PASSED", "X-RL: PASSED", "X-RL: REJECTED_DRY_RUN",
 "X-RL: REJECTED_DRY_RUN\n!Retry-After", "X-RL: REJECTED"]



=== TEST 8: headers on a proxied response and on the rejection
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level warn;
    gw_ratelimit_zone "c:$connection" zone=per_client rate=2r/m
                      algorithm=sliding_window;
--- config
    location /t {
        gw_ratelimit zone=per_client;
        gw_ratelimit_headers on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        add_header X-Backend yes;
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t", "GET /t", "GET /t"]
--- error_code eval
[200, 200, 429]
--- response_headers eval
[qq{X-Backend: yes
RateLimit-Policy: "per_client";q=2;w=60
RateLimit: "per_client";r=1;t=60
X-RateLimit-Limit: 2
X-RateLimit-Remaining: 1
X-RateLimit-Reset: 60
!Retry-After},
qq{X-Backend: yes
RateLimit: "per_client";r=0;t=60
X-RateLimit-Remaining: 0},
qq{!X-Backend
Content-Type: application/json
Retry-After: 60
RateLimit-Policy: "per_client";q=2;w=60
RateLimit: "per_client";r=0;t=60
X-RateLimit-Limit: 2
X-RateLimit-Remaining: 0
X-RateLimit-Reset: 60}]



=== TEST 9: headers off: no RateLimit fields, Retry-After still on 429
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level warn;
    gw_ratelimit_zone "c:$connection" zone=quiet rate=1r/m
                      algorithm=sliding_window;
--- config
    location /t {
        gw_ratelimit zone=quiet;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t", "GET /t"]
--- error_code eval
[200, 429]
--- response_headers eval
["!RateLimit\n!RateLimit-Policy\n!X-RateLimit-Limit\n!Retry-After",
 "!RateLimit\n!X-RateLimit-Remaining\nRetry-After: 60"]



=== TEST 10: an empty key is not limited (and leaves the status empty)
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level warn;
    map $arg_c $rl_key {
        ""       "";
        default  "$arg_c:$connection";
    }
    gw_ratelimit_zone $rl_key zone=opt rate=1r/m algorithm=sliding_window;
--- config
    location /t {
        gw_ratelimit zone=opt;
        add_header X-RL "[$gw_ratelimit_status]" always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t", "GET /t?c=", "GET /t", "GET /t?c=A", "GET /t?c=A", "GET /t"]
--- error_code eval
[200, 200, 200, 200, 429, 200]
--- response_headers eval
["X-RL: []", "X-RL: []", "X-RL: []", "X-RL: [PASSED]", "X-RL: [REJECTED]",
 "X-RL: []"]



=== TEST 11: key from a request header: each client has its own budget
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level warn;
    gw_ratelimit_zone $http_x_client_id zone=per_client rate=2r/m
                      algorithm=sliding_window;
--- config
    # the front end sets X-Client-ID per request (unique per connection)
    location /t {
        proxy_set_header X-Client-ID "$arg_client-$connection";
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/limited;
    }
    location /limited {
        gw_ratelimit zone=per_client;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t?client=A", "GET /t?client=B", "GET /t?client=A",
 "GET /t?client=B", "GET /t?client=A", "GET /t?client=C",
 "GET /t?client=B"]
--- error_code eval
[200, 200, 200, 200, 429, 200, 429]
--- response_headers eval
["X-RL: PASSED", "X-RL: PASSED", "X-RL: PASSED", "X-RL: PASSED",
 "X-RL: REJECTED", "X-RL: PASSED", "X-RL: REJECTED"]



=== TEST 12: key from a variable combination, binary-safe
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level warn;
    gw_ratelimit_zone "$binary_remote_addr:$arg_m:$connection"
                      zone=bin rate=2r/m algorithm=sliding_window;
--- config
    location /t {
        gw_ratelimit zone=bin;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t", "GET /t", "GET /t?m=1", "GET /t", "GET /t?m=1", "GET /t?m=1"]
--- error_code eval
[200, 200, 200, 429, 200, 429]



=== TEST 13: long keys are stored as their SHA-1, distinct keys stay distinct
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level warn;
    gw_ratelimit_zone "$arg_k:$connection" zone=long rate=1r/m
                      algorithm=fixed_window;
--- config
    location /t {
        gw_ratelimit zone=long;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t?k=" . ("x" x 300), "GET /t?k=" . ("x" x 300) . "y",
 "GET /t?k=" . ("x" x 300), "GET /t?k=" . ("x" x 300) . "y"]
--- error_code eval
[200, 200, 429, 429]



=== TEST 14: the stored keys: prefix, zone, algorithm, {key}; hashed long
keys and keys with a "}"
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s
                       prefix=gwtest:;
    gw_ratelimit_log_level warn;
    gw_ratelimit_zone $arg_k zone=keys rate=5r/m algorithm=sliding_window;
--- config
    location /t {
        gw_ratelimit zone=keys;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
use Test::More;
use Digest::SHA qw(sha1_hex);
GwRedis::flushall();
my $port = $ENV{TEST_NGINX_SERVER_PORT};
my %r = GwRedis::http_get($port, "/t?k=short");
is($r{status}, 200, "short key admitted");
my $long = "L" x 257;
%r = GwRedis::http_get($port, "/t?k=$long");
is($r{status}, 200, "long key admitted");
%r = GwRedis::http_get($port, "/t?k=a}b");
is($r{status}, 200, "a key with a brace admitted");
%r = GwRedis::http_get($port, "/t?k={x");
is($r{status}, 200, "a key with an opening brace admitted");
my $keys = GwRedis::command($ENV{TEST_NGINX_REDIS_PORT}, 'KEYS', 'gwtest:*');
is_deeply([sort @$keys],
          [sort "gwtest:keys:s:{short}", "gwtest:keys:s:{#" . sha1_hex($long)
                . "}", "gwtest:keys:s:{#" . sha1_hex("a}b") . "}",
                "gwtest:keys:s:{{x}"],
          "keys named by prefix, zone, algorithm, {key} or {#its sha1}");
for my $k (@$keys) {
    my $ttl = GwRedis::command($ENV{TEST_NGINX_REDIS_PORT}, 'PTTL', $k);
    ok($ttl > 0 && $ttl <= 60000, "$k has a ttl ($ttl ms)");
}
--- request
GET /t
--- error_code: 200



=== TEST 14b: a gcra key holds its tat (usec), and lives 2 to 4 s past it
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s
                       prefix=gwttl:;
    gw_ratelimit_log_level warn;
    gw_ratelimit_zone $arg_k zone=fast rate=10r/s;
    gw_ratelimit_zone $arg_k zone=slow rate=1r/m;
--- config
    location /fast {
        gw_ratelimit zone=fast;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /slow {
        gw_ratelimit zone=slow;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
use Test::More;
GwRedis::flushall();
my ($port, $rp) = ($ENV{TEST_NGINX_SERVER_PORT}, $ENV{TEST_NGINX_REDIS_PORT});
# Redis's clock before and after each request (nginx may be slow: valgrind)
my $now = sub {
    my $t = GwRedis::command($rp, 'TIME');
    return $t->[0] * 1000000 + $t->[1];
};
my $t0 = $now->();
my %r = GwRedis::http_get($port, "/fast?k=a");
my $t1 = $now->();
is($r{status}, 200, "fast admitted");
# 10r/s: the state runs out after 100 ms, the key stays 2 to 4 s more.
my $tat = GwRedis::command($rp, 'GET', 'gwttl:fast:g:{a}');
ok($tat >= $t0 + 100000 && $tat <= $t1 + 100000, "fast tat: now + 100 ms");
my $ttl = GwRedis::command($rp, 'PTTL', 'gwttl:fast:g:{a}');
ok($ttl > 2000 && $ttl <= 4100, "fast key lives 2 to 4 s ($ttl ms)");
$t0 = $now->();
%r = GwRedis::http_get($port, "/slow?k=a");
$t1 = $now->();
is($r{status}, 200, "slow admitted");
# 1r/m: the state runs out after 60 s; the key 2 to 4 s after that
$tat = GwRedis::command($rp, 'GET', 'gwttl:slow:g:{a}');
ok($tat >= $t0 + 60000000 && $tat <= $t1 + 60000000, "slow tat: now + 60 s");
$ttl = GwRedis::command($rp, 'PTTL', 'gwttl:slow:g:{a}');
ok($ttl > 61000 && $ttl <= 64100, "slow key lives 62 to 64 s ($ttl ms)");
--- request
GET /slow?k=a
--- error_code: 429



=== TEST 15: a rejection is logged at gw_ratelimit_log_level, once
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_zone fixed-key zone=logged rate=1r/m
                      algorithm=sliding_window;
--- config
    location /t {
        gw_ratelimit zone=logged;
        gw_ratelimit_log_level notice;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
GwRedis::flushall();
my %r = GwRedis::http_get($ENV{TEST_NGINX_SERVER_PORT}, "/t");
die "first request: $r{status}" unless $r{status} == 200;
--- request
GET /t
--- error_code: 429
--- grep_error_log eval: qr/\[notice\].*limiting requests, excess: 1\.000 by zone "logged"/
--- grep_error_log_out eval
qr/^(?:\[notice\][^\n]*\n){1}$/
--- no_error_log
[error]



=== TEST 16: a dry-run rejection is logged as such
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_zone fixed-key zone=drylog rate=1r/m
                      algorithm=sliding_window;
--- config
    location /t {
        gw_ratelimit zone=drylog;
        gw_ratelimit_dry_run on;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
GwRedis::flushall();
my %r = GwRedis::http_get($ENV{TEST_NGINX_SERVER_PORT}, "/t");
die "first request: $r{status}" unless $r{status} == 200;
--- request
GET /t
--- error_code: 200
--- response_headers
X-RL: REJECTED_DRY_RUN
--- error_log
limiting requests, dry run, excess: 1.000 by zone "drylog"
