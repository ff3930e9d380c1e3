# Copyright (C) nginx-gw authors
# All four modules together, in several load_module orders: they meet only
# through variables ($gw_jwt_claim_sub as the rate-limit key and in logs,
# $gw_auth_status and $gw_ratelimit_status counted by gw_metrics,
# $gw_trace_id everywhere), and the outcome must not depend on the order.
# A limit keyed on a claim only ever sees verified claims: a forged token
# naming alice is rejected by gw_auth and charges nothing to alice.

use FindBin;
use lib "$FindBin::Bin/lib";
use GwAuth;
use GwTest;
use Test::Nginx::Socket 'no_plan';

# the metrics zone counts across a block's requests: one round per block
repeat_each(1);
no_shuffle();

our $Now = time;
our $Rsa = gw_key('rsa', 'rsa');
our $Other = gw_key('other', 'rsa');
our $Jwks = gw_jwks(gw_jwk($Rsa, kid => 'k1'));

our $Alice = gw_token($Rsa, 'RS256', { sub => 'alice', exp => $Now + 3600 },
                      { kid => 'k1' });
our $Bob = gw_token($Rsa, 'RS256', { sub => 'bob', exp => $Now + 3600 },
                    { kid => 'k1' });
# claims alice, signed by a key the gateway does not trust
our $Forged = gw_token($Other, 'RS256',
                       { sub => 'alice', exp => $Now + 3600 },
                       { kid => 'k1' });

our @Requests = (
    "GET /api/x",
    "GET /api/x\nAuthorization: Bearer $Alice",
    "GET /api/x\nAuthorization: Bearer $Forged",
    "GET /api/x\nAuthorization: Bearer $Bob",
    "GET /api/x\nAuthorization: Bearer $Alice",
    "GET /api/x\nAuthorization: Bearer $Alice",
);

my $defaults = GwTest::defaults(
    user_files => GwAuth::gw_files('jwks.json' => $Jwks),
    config => <<'_EOC_');
    gw_trace on;
    gw_metrics on;

    location /api/ {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        gw_ratelimit zone=per_user;
        gw_ratelimit_log_level notice;
        access_log logs/access.log interop;

        proxy_set_header X-User-ID $gw_jwt_claim_sub;
        proxy_set_header X-Auth $gw_auth_status;
        proxy_set_header X-Ratelimit $gw_ratelimit_status;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }

    location /backend {
        gw_trace off;
        gw_metrics off;
        return 200 "user=$http_x_user_id auth=$http_x_auth rl=$http_x_ratelimit tid=$http_x_trace_id\n";
    }

    location = /metrics {
        gw_metrics off;
        gw_metrics_endpoint;
    }
_EOC_

# every block: the same requests and the same expectations, only the
# load_module order differs
add_block_preprocessor(sub {
    my $block = shift;

    $defaults->($block);

    # Redis keys of their own for every block and run
    my $prefix = "gw:interop:$$:" . $block->name =~ s/\D+//gr . ":";

    $block->set_value("http_config", <<_EOC_);
    gw_metrics_zone interop 1m;
    log_format interop "\$gw_trace_id \$status user=\$gw_jwt_claim_sub "
                       "auth=\$gw_auth_status rl=\$gw_ratelimit_status";
    # timeout: room for the first decision (connect, NOSCRIPT) under valgrind
    gw_ratelimit_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT prefix=$prefix
                       timeout=1s;
    gw_ratelimit_zone \$gw_jwt_claim_sub zone=per_user rate=2r/m
                      algorithm=sliding_window;
_EOC_

    $block->set_value("request",
                      [ (map { (split /\n/)[0] } @Requests), "GET /metrics" ]);
    $block->set_value("more_headers",
                      [ (map { (split /\n/, $_, 2)[1] // "" } @Requests), "" ]);

    $block->set_value("error_code", [401, 200, 401, 200, 200, 429, 200]);

    $block->set_value("response_headers_like",
                      [ ("X-Trace-ID: ^[0-9a-f]{32}\$") x 6, "" ]);

    # the scrape reduced to the interop families, sorted
    $block->set_value("response_body_filters", [ ([]) x 6, [sub {
        join "", sort grep {
            /^gateway_(auth|ratelimit)_decisions_total\{|^gateway_requests_total\{/
        } split /^/, $_[0] }] ]);

    $block->set_value("response_body", [
        '{"error":"Unauthorized","reason":"missing"}',
        qr/^user=alice auth=ok rl=PASSED tid=[0-9a-f]{32}\n\z/,
        '{"error":"Unauthorized","reason":"invalid"}',
        qr/^user=bob auth=ok rl=PASSED tid=[0-9a-f]{32}\n\z/,
        qr/^user=alice auth=ok rl=PASSED tid=[0-9a-f]{32}\n\z/,
        qr/^\{"error":"Too Many Requests","reason":"rate_limited",/,
        <<'_EOC_' ]);
gateway_auth_decisions_total{result="invalid"} 1
gateway_auth_decisions_total{result="missing"} 1
gateway_auth_decisions_total{result="ok"} 4
gateway_ratelimit_decisions_total{result="PASSED"} 3
gateway_ratelimit_decisions_total{result="REJECTED"} 1
gateway_requests_total{method="GET",path="/api/",status="200"} 3
gateway_requests_total{method="GET",path="/api/",status="401"} 2
gateway_requests_total{method="GET",path="/api/",status="429"} 1
_EOC_

    # logged after each request: the first one's line must be there
    $block->set_value("access_log",
                      qr/^[0-9a-f]{32} 401 user=- auth=missing rl=-$/);
});

run_tests();

__DATA__

=== TEST 1: load order auth, ratelimit, trace, metrics
--- main_config eval
GwTest::load_modules(qw(auth ratelimit trace metrics))



=== TEST 2: load order ratelimit, auth, metrics, trace
--- main_config eval
GwTest::load_modules(qw(ratelimit auth metrics trace))



=== TEST 3: load order metrics, trace, ratelimit, auth
--- main_config eval
GwTest::load_modules(qw(metrics trace ratelimit auth))



=== TEST 4: load order trace, metrics, auth, ratelimit
--- main_config eval
GwTest::load_modules(qw(trace metrics auth ratelimit))
