# Copyright (C) nginx-gw authors
# gw_ratelimit configuration: what nginx -t refuses, with which message,
# and what it accepts (inheritance, off, several zones, unix sockets).

use Test::Nginx::Socket 'no_plan';
use GwTest;

repeat_each(1);
no_shuffle();

GwTest::use_defaults(
    modules => ['ratelimit']
);

run_tests();

__DATA__

=== TEST 1: unknown zone
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    gw_ratelimit_zone $remote_addr zone=one rate=1r/s;
--- config
    location /t {
        gw_ratelimit zone=two;
    }
--- must_die
--- error_log eval
[qr/\[emerg\] .*unknown gw_ratelimit zone "two" in \S+nginx\.conf:\d+/,
 "[emerg]"]



=== TEST 2: a zone without gw_ratelimit_redis
--- http_config
    gw_ratelimit_zone $remote_addr zone=one rate=1r/s;
--- config
    location /t {
        gw_ratelimit zone=one;
    }
--- must_die
--- error_log
"gw_ratelimit_zone" "one" requires "gw_ratelimit_redis"



=== TEST 3: bad rate: no unit
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    gw_ratelimit_zone $remote_addr zone=one rate=10;
--- config
--- must_die
--- error_log
invalid rate "rate=10"



=== TEST 4: bad rate: zero
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    gw_ratelimit_zone $remote_addr zone=one rate=0r/s;
--- config
--- must_die
--- error_log
invalid rate "rate=0r/s"



=== TEST 5: bad rate: unknown unit, garbage, too large
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    gw_ratelimit_zone $remote_addr zone=one rate=5r/d;
--- config
--- must_die
--- error_log
invalid rate "rate=5r/d"



=== TEST 6: bad rate: not a number
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    gw_ratelimit_zone $remote_addr zone=one rate=1x0r/m;
--- config
--- must_die
--- error_log
invalid rate "rate=1x0r/m"



=== TEST 7: bad rate: above a million
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    gw_ratelimit_zone $remote_addr zone=one rate=1000001r/s;
--- config
--- must_die
--- error_log
invalid rate "rate=1000001r/s"



=== TEST 8: zone without a rate
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    gw_ratelimit_zone $remote_addr zone=one;
--- config
--- must_die
--- error_log
"gw_ratelimit_zone" must have "rate" parameter



=== TEST 9: duplicate zone
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    gw_ratelimit_zone $remote_addr zone=one rate=1r/s;
    gw_ratelimit_zone $http_x_client_id zone=one rate=5r/m;
--- config
--- must_die
--- error_log
duplicate gw_ratelimit zone "one"



=== TEST 10: the same zone twice in a location
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    gw_ratelimit_zone $remote_addr zone=one rate=1r/s;
--- config
    location /t {
        gw_ratelimit zone=one;
        gw_ratelimit zone=one burst=5;
    }
--- must_die
--- error_log
duplicate gw_ratelimit zone "one" in this location



=== TEST 11: bad zone name
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    gw_ratelimit_zone $remote_addr zone=a"b rate=1r/s;
--- config
--- must_die
--- error_log
invalid zone name



=== TEST 12: bad algorithm
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    gw_ratelimit_zone $remote_addr zone=one rate=1r/s algorithm=leaky;
--- config
--- must_die
--- error_log
invalid algorithm "leaky", expected gcra, fixed_window or sliding_window



=== TEST 13: bad burst
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    gw_ratelimit_zone $remote_addr zone=one rate=1r/s burst=-1;
--- config
--- must_die
--- error_log
invalid burst value "burst=-1"



=== TEST 14: a sliding window larger than its bound
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    gw_ratelimit_zone $remote_addr zone=big rate=100000r/s burst=1
                      algorithm=sliding_window;
--- config
    location /t {
        gw_ratelimit zone=big;
    }
--- must_die
--- error_log
a sliding window admits at most 100000 requests per period



=== TEST 15: bad address: invalid port
--- http_config
    gw_ratelimit_redis 127.0.0.1:notaport;
--- config
--- must_die
--- error_log
invalid port in redis address "127.0.0.1:notaport"



=== TEST 16: bad address: a host that does not resolve
--- http_config
    gw_ratelimit_redis no-such-host.invalid:6379;
--- config
--- must_die
--- error_log
host not found in redis address "no-such-host.invalid:6379"



=== TEST 17: bad address: a URI
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379/0;
--- config
--- must_die
--- error_log
in redis address "127.0.0.1:6379/0"



=== TEST 18: bad parameters of gw_ratelimit_redis
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379 timeout=0;
--- config
--- must_die
--- error_log
invalid parameter "timeout=0"



=== TEST 19: bad db, empty password, unknown parameter
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379 db=x;
--- config
--- must_die
--- error_log
invalid parameter "db=x"



=== TEST 19b: a mistyped parameter is named, its value (a secret) never
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379 pasword=s3cret-value;
--- config
--- must_die
--- error_log
invalid parameter "pasword="...
--- no_error_log
s3cret-value



=== TEST 19c: an empty password is refused
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379 password=;
--- config
--- must_die
--- error_log
empty parameter "password="



=== TEST 19d: unknown parameters of the other directives: named only
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379;
    gw_ratelimit_zone $arg_c zone=z rate=1r/s token=s3cret-value;
--- config
--- must_die
--- error_log
invalid parameter "token="...
--- no_error_log
s3cret-value



=== TEST 19e: unknown parameter of gw_ratelimit, a word without "="
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379;
    gw_ratelimit_zone $arg_c zone=z rate=1r/s;
--- config
    location /t {
        gw_ratelimit zone=z fast;
    }
--- must_die
--- error_log
invalid parameter "fast"



=== TEST 19f: nodelay and delay= together, a bad delay
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379;
    gw_ratelimit_zone $arg_c zone=z rate=1r/s burst=5;
--- config
    location /t {
        gw_ratelimit zone=z nodelay delay=2;
    }
--- must_die
--- error_log
"nodelay" and "delay=" are mutually exclusive



=== TEST 19g: a delay that is not a number
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379;
    gw_ratelimit_zone $arg_c zone=z rate=1r/s burst=5;
--- config
    location /t {
        gw_ratelimit zone=z delay=x;
    }
--- must_die
--- error_log
invalid delay value "delay=x"



=== TEST 19h: several addresses need sentinel= or cluster
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379 127.0.0.1:6380;
--- config
--- must_die
--- error_log
several redis addresses need "sentinel=" or "cluster"



=== TEST 19i: sentinel= and cluster together
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379 sentinel=m cluster;
--- config
--- must_die
--- error_log
"sentinel=" and "cluster" are mutually exclusive



=== TEST 19j: a cluster has no db=
--- http_config
    gw_ratelimit_redis 127.0.0.1:7000 cluster db=2;
--- config
--- must_die
--- error_log
a redis cluster has no "db="



=== TEST 19k: sentinel_password= without sentinel=
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379 sentinel_password=s3cret-value;
--- config
--- must_die
--- error_log
"sentinel_password=" and "sentinel_user=" need "sentinel="
--- no_error_log
s3cret-value



=== TEST 19l: a prefix with a brace (the keys' hash tag is theirs)
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379 "prefix={x}:";
--- config
--- must_die
--- error_log
invalid parameter "prefix={x}:"



=== TEST 19m: sentinels and a cluster are accepted (names resolved here)
--- http_config
    gw_ratelimit_redis localhost:26379 127.0.0.1:26380 sentinel=mymaster
                       password=s3cret sentinel_password=other
                       sentinel_user=gw-sentinel user=gw db=1;
    gw_ratelimit_zone $arg_c zone=z rate=1r/s;
--- config
    location /t {
        gw_ratelimit zone=z;
        return 200;
    }
--- request
GET /t
--- error_code: 200
--- no_error_log
[emerg]



=== TEST 20: user= without password=
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379 user=gw;
--- config
--- must_die
--- error_log
"user=" requires "password="



=== TEST 21: gw_ratelimit_redis twice
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379;
    gw_ratelimit_redis 127.0.0.1:6380;
--- config
--- must_die
--- error_log
"gw_ratelimit_redis" directive is duplicate



=== TEST 22: gw_ratelimit_redis outside http
--- config
    location /t {
        gw_ratelimit_redis 127.0.0.1:6379;
    }
--- must_die
--- error_log
"gw_ratelimit_redis" directive is not allowed here



=== TEST 23: bad status
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379;
--- config
    gw_ratelimit_status 200;
--- must_die
--- error_log
value must be between 400 and 599



=== TEST 24: bad fail policy and log level
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379;
--- config
    gw_ratelimit_fail maybe;
--- must_die
--- error_log
invalid value "maybe"



=== TEST 25: gw_ratelimit without zone=
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379;
--- config
    location /t {
        gw_ratelimit burst=5;
    }
--- must_die
--- error_log
"gw_ratelimit" must have "zone" parameter



=== TEST 26: off mixed with limits in one location
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379;
    gw_ratelimit_zone $remote_addr zone=one rate=1r/s;
--- config
    location /t {
        gw_ratelimit zone=one;
        gw_ratelimit off;
    }
--- must_die
--- error_log
"gw_ratelimit" directive is duplicate



=== TEST 27: more than 16 limits in a location
--- http_config eval
"gw_ratelimit_redis 127.0.0.1:6379;\n"
. CORE::join("", map { "gw_ratelimit_zone \$remote_addr zone=z$_ rate=1r/s;\n" }
           1 .. 17)
--- config eval
"location /t {\n"
. CORE::join("", map { "gw_ratelimit zone=z$_;\n" } 1 .. 17)
. "}\n"
--- must_die
--- error_log
too many gw_ratelimit limits, at most 16



=== TEST 28: gw_ratelimit_local_size too small
--- http_config
    gw_ratelimit_redis 127.0.0.1:6379;
    gw_ratelimit_local_size 1k;
--- config
--- must_die
--- error_log
"gw_ratelimit_local_size" must be at least 32k



=== TEST 29: a good configuration: names resolved, unix socket, every option
--- http_config
    gw_ratelimit_redis localhost:$TEST_NGINX_REDIS_PORT user=default
                       password=x db=2 timeout=20ms connect_timeout=1s
                       prefix=app1:;
    gw_ratelimit_zone $http_x_client_id zone=per_client rate=100r/m
                      algorithm=sliding_window;
    gw_ratelimit_zone $binary_remote_addr zone=per_ip rate=20r/s burst=40;
    gw_ratelimit_zone "$host:$uri" zone=per_uri rate=1000r/h
                      algorithm=fixed_window;
    gw_ratelimit_local_size 64k;
    gw_ratelimit zone=per_ip;
    gw_ratelimit_fail local;
--- config
    gw_ratelimit_status 503;
    gw_ratelimit_fail_status 500;
    gw_ratelimit_dry_run off;
    gw_ratelimit_log_level notice;
    gw_ratelimit_headers on;
    location /t {
        gw_ratelimit zone=per_client;
        gw_ratelimit zone=per_uri burst=10 delay=4;
        return 200 "ok\n";
    }
    location /off {
        gw_ratelimit off;
        return 200 "off\n";
    }
--- request
GET /off
--- response_body
off



=== TEST 30: a unix socket address
--- http_config
    gw_ratelimit_redis unix:/tmp/gw-no-such-redis.sock;
    gw_ratelimit_zone $remote_addr zone=one rate=1r/s;
--- config
    location /t {
        gw_ratelimit zone=one;
        add_header X-RL $gw_ratelimit_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_headers
X-RL: ERROR
--- error_log
gw_ratelimit: redis "unix:/tmp/gw-no-such-redis.sock": connect failed



=== TEST 31: the module without any zone costs nothing and breaks nothing
--- http_config
--- config
    location /t {
        add_header X-RL "[$gw_ratelimit_status]" always;
        return 200 "ok\n";
    }
--- request
GET /t
--- response_headers
X-RL: []
--- response_body
ok
