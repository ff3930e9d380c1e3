# Copyright (C) nginx-gw authors
# gw_ratelimit among nginx's other phases and modules: it runs after every
# other access check (refused requests are not counted; keys from variables
# those checks set), also under "satisfy any", once per request across
# internal redirects, never for subrequests; error_page, request bodies,
# HEAD, the status variable in the access log.

use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwRedis;

repeat_each(2);
no_shuffle();

GwTest::use_defaults(
    modules => ['ratelimit'],
    init => 'GwRedis::flushall();',
    http_config => <<"END");
    gw_ratelimit_redis 127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT} timeout=1s;
    gw_ratelimit_log_level info;
    gw_ratelimit_zone "c:\$connection" zone=two rate=2r/m
                      algorithm=sliding_window;
END


run_tests();

__DATA__

=== TEST 1: requests "deny" refuses are not counted
--- config
    location /denied {
        deny all;
        gw_ratelimit zone=two;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /t {
        gw_ratelimit zone=two;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /denied", "GET /denied", "GET /denied", "GET /t", "GET /t", "GET /t"]
--- error_code eval
[403, 403, 403, 200, 200, 429]
--- no_error_log
[alert]
[crit]



=== TEST 2: auth_request: refused requests are not counted; the key comes
from a variable the access check set
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level info;
    gw_ratelimit_zone "$auth_user:$connection" zone=per_user rate=2r/m
                      algorithm=sliding_window;
    map $http_x_original_uri $wanted_user {
        "~user=(?<u>[a-z]+)"  $u;
        default               "";
    }
--- config
    location /t {
        auth_request /auth;
        auth_request_set $auth_user $upstream_http_x_user;
        gw_ratelimit zone=per_user;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location = /auth {
        internal;
        proxy_set_header X-Original-URI $request_uri;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/check;
        proxy_pass_request_body off;
    }
    location = /check {
        if ($wanted_user = "") {
            return 401;
        }
        add_header X-User $wanted_user;
        return 204;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t", "GET /t", "GET /t?user=alice", "GET /t?user=bob",
 "GET /t?user=alice", "GET /t?user=alice", "GET /t?user=bob"]
--- error_code eval
[401, 401, 200, 200, 200, 429, 200]
--- response_headers eval
["!X-RL", "!X-RL", "X-RL: PASSED", "X-RL: PASSED", "X-RL: PASSED",
 "X-RL: REJECTED", "X-RL: PASSED"]



=== TEST 3: satisfy any: access granted by "allow" is still limited
--- config
    location /t {
        satisfy any;
        allow 127.0.0.1;
        deny all;
        auth_basic "closed";
        auth_basic_user_file /dev/null;
        gw_ratelimit zone=two;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t", "GET /t", "GET /t"]
--- error_code eval
[200, 200, 429]
--- response_headers eval
["X-RL: PASSED", "X-RL: PASSED", "X-RL: REJECTED"]



=== TEST 4: internal redirects are not counted twice
--- config
    location /t {
        gw_ratelimit zone=two;
        try_files /no/such/file @named;
    }
    location @named {
        gw_ratelimit zone=two;
        add_header X-RL $gw_ratelimit_status always;
        rewrite ^ /backend break;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t", "GET /t", "GET /t"]
--- error_code eval
[200, 200, 429]
--- response_headers eval
["X-RL: PASSED", "X-RL: PASSED", ""]



=== TEST 5: an error_page for the status replaces the JSON body, headers
stay
--- config
    location /t {
        gw_ratelimit zone=two;
        gw_ratelimit_headers on;
        error_page 429 /too_many;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location = /too_many {
        internal;
        gw_ratelimit zone=two;
        default_type text/plain;
        return 429 "slow down\n";
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t", "GET /t", "GET /t"]
--- error_code eval
[200, 200, 429]
--- response_headers eval
["", "", qq{Content-Type: text/plain\nRetry-After: 60
RateLimit: "two";r=0;t=60\nX-RateLimit-Remaining: 0}]
--- response_body eval
["ok\n", "ok\n", "slow down\n"]



=== TEST 6: subrequests are not limited
--- config
    location /t {
        auth_request /sub;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location = /sub {
        internal;
        gw_ratelimit zone=two;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t", "GET /t", "GET /t", "GET /t"]
--- error_code eval
[200, 200, 200, 200]



=== TEST 7: a rejected request's body is discarded, keep-alive goes on
--- config
    location /t {
        gw_ratelimit zone=two;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["POST /t\nfirst body", "POST /t\nsecond body",
 "POST /t\n" . ("x" x 5000), "GET /t"]
--- error_code eval
[200, 200, 429, 429]
--- response_body_like eval
["ok", "ok", "rate_limited", "rate_limited"]



=== TEST 8: HEAD: a rejection without a body
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level info;
    gw_ratelimit_zone fixed-key zone=head rate=1r/m
                      algorithm=sliding_window;
--- config
    location /t {
        gw_ratelimit zone=head;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
GwRedis::flushall();
GwRedis::http_get($ENV{TEST_NGINX_SERVER_PORT}, "/t");
--- request
HEAD /t
--- error_code: 429
--- response_headers
Content-Type: application/json
Retry-After: 60
--- response_body



=== TEST 9: $gw_ratelimit_status in the access log
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level info;
    gw_ratelimit_zone fixed-key zone=logged rate=1r/m
                      algorithm=sliding_window;
    log_format rl "$request_uri rl=$gw_ratelimit_status";
--- config
    access_log logs/access.log rl;
    location /t {
        gw_ratelimit zone=logged;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        access_log off;
        return 200 "ok\n";
    }
--- init
GwRedis::flushall();
GwRedis::http_get($ENV{TEST_NGINX_SERVER_PORT}, "/t?first");
--- request
GET /t?second
--- error_code: 429
--- access_log
/t?second rl=REJECTED
