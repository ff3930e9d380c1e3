# Copyright (C) nginx-gw authors
# gw_metrics "path" label: the matched location's name by default (prefix,
# exact, regex, named, nested, after internal redirects), never the URI;
# gw_metrics_route with static names and variables; gw_metrics on/off
# inheritance.

use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwMetrics;

repeat_each(2);
no_shuffle();
no_root_location();
no_long_string();

GwTest::use_defaults(
    modules => ['metrics']
);

# "valid" or the errors, then method/path/status = count of every request
# series, sorted, then the number of series in the zone
sub requests {
    return sub {
        my ($body) = @_;
        my ($err, $p) = GwMetrics::check_exposition($body, 'text');
        my $out = @$err ? join('', map { "error: $_\n" } @$err) : "valid\n";
        my @l;

        for my $s (@{ $p->{series} }) {
            next unless $s->[0] eq 'gateway_requests_total';
            push @l, "$s->[1]{method} $s->[1]{path} $s->[1]{status} = "
                     . "$s->[2]\n";
        }

        return $out . join('', sort @l) . "series "
               . GwMetrics::sample($p, 'gateway_metrics_series') . "\n";
    };
}

run_tests();

__DATA__

=== TEST 1: default path label: the location's name, whatever the URI
--- http_config
    gw_metrics_zone gwm 1m;
--- config
    gw_metrics on;
    log_not_found off;
    location /api/users/ { return 200; }
    location = /health { return 200; }
    location ~ ^/orders/(\d+)$ { return 200; }
    location /outer/ {
        location /outer/inner/ { return 200; }
        return 200;
    }
    location /missing { try_files /nonexistent @fallback; }
    location @fallback { return 200 "fallback\n"; }
    location /rw { rewrite ^ /health last; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/api/users/$_") for 1 .. 20;
GwMetrics::http_get("/api/users/$_/orders?x=$_") for 1 .. 5;
GwMetrics::http_get("/health");
GwMetrics::http_get("/orders/$_") for 100 .. 104;
GwMetrics::http_get("/outer/x");
GwMetrics::http_get("/outer/inner/y");
GwMetrics::http_get("/missing");
GwMetrics::http_get("/rw");
GwMetrics::http_get("/nowhere");
--- request
GET /metrics
--- response_body_filters eval
main::requests()
--- response_body
valid
GET /api/users/ 200 = 25
GET /health 200 = 2
GET /outer/ 200 = 1
GET /outer/inner/ 200 = 1
GET @fallback 200 = 1
GET ^/orders/(\d+)$ 200 = 5
GET __none__ 404 = 1
series 14



=== TEST 2: gw_metrics_route per location and per server, gw_metrics off
--- http_config
    gw_metrics_zone gwm 1m;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        gw_metrics on;
        gw_metrics_route vhost2;
        log_not_found off;
        location /a { return 200; }
        location /b { gw_metrics_route b-own; return 200; }
        location /c { gw_metrics off; return 200; }
    }
--- config
    gw_metrics on;
    location /users/ { gw_metrics_route users; return 200; }
    location /skip { gw_metrics off; return 200; }
    location /v2/ {
        gw_metrics off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/;
    }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/users/$_") for 1 .. 3;
GwMetrics::http_get("/skip") for 1 .. 2;
GwMetrics::http_get("/v2/a") for 1 .. 2;
GwMetrics::http_get("/v2/b");
GwMetrics::http_get("/v2/c");
GwMetrics::http_get("/v2/none");
--- request
GET /metrics
--- response_body_filters eval
main::requests()
--- response_body
valid
GET b-own 200 = 1
GET users 200 = 3
GET vhost2 200 = 2
GET vhost2 404 = 1
series 7



=== TEST 3: gw_metrics_route with variables; an empty value is an empty label
--- http_config
    gw_metrics_zone gwm 1m;
    map $arg_tenant $tenant { acme acme; globex globex; default other; }
--- config
    gw_metrics on;
    location /t/ { gw_metrics_route "api_$tenant"; return 200; }
    location /raw/ { gw_metrics_route $arg_r; return 200; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/t/1?tenant=$_") for qw(acme acme globex evil x y);
GwMetrics::http_get("/raw/1?r=$_") for qw(one two two);
GwMetrics::http_get("/raw/1");
--- request
GET /metrics
--- response_body_filters eval
main::requests()
--- response_body
valid
GET  200 = 1
GET api_acme 200 = 2
GET api_globex 200 = 1
GET api_other 200 = 3
GET one 200 = 1
GET two 200 = 2
series 12



=== TEST 4: gw_metrics on at http level, off for one server (5 series: /off/ is proxied)
--- http_config
    gw_metrics_zone gwm 1m;
    gw_metrics on;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        gw_metrics off;
        location / { return 200; }
    }
--- config
    location /on { return 200; }
    location /off/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/;
    }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/on");
GwMetrics::http_get("/off/x") for 1 .. 3;
--- request
GET /metrics
--- response_body_filters eval
main::requests()
--- response_body
valid
GET /off/ 200 = 3
GET /on 200 = 1
series 5
