# All modules together, in several load_module orders: they meet only
# through variables ($gw_jwt_claim_sub as the rate-limit key and in logs,
# $gw_auth_status and $gw_ratelimit_status counted by gw_metrics,
# $gw_trace_id everywhere), and the outcome must not depend on the order.

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
);

my $defaults = GwTest::defaults(
    user_files => GwAuth::gw_files('jwks.json' => $Jwks),
    config => <<'_EOC_');
    gw_trace on;
    gw_metrics on;

    location /api/ {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        access_log logs/access.log interop;

        proxy_set_header X-User-ID $gw_jwt_claim_sub;
        proxy_set_header X-Auth $gw_auth_status;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }

    location /backend {
        gw_trace off;
        gw_metrics off;
        return 200 "user=$http_x_user_id auth=$http_x_auth tid=$http_x_trace_id\n";
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

    $block->set_value("http_config", <<'_EOC_');
    gw_metrics_zone interop 1m;
    log_format interop "$gw_trace_id $status user=$gw_jwt_claim_sub "
                       "auth=$gw_auth_status";
_EOC_

    $block->set_value("request",
                      [ (map { (split /\n/)[0] } @Requests), "GET /metrics" ]);
    $block->set_value("more_headers",
                      [ (map { (split /\n/, $_, 2)[1] // "" } @Requests), "" ]);

    $block->set_value("error_code", [401, 200, 401, 200, 200, 200]);

    $block->set_value("response_headers_like",
                      [ ("X-Trace-ID: ^[0-9a-f]{32}\$") x 5, "" ]);

    # the scrape reduced to the interop families, sorted
    $block->set_value("response_body_filters", [ [], [], [], [], [], [sub {
        join "", sort grep { /^gateway_(auth_decisions|requests)_total\{/ }
                      split /^/, $_[0] }] ]);

    $block->set_value("response_body", [
        '{"error":"Unauthorized","reason":"missing"}',
        qr/^user=alice auth=ok tid=[0-9a-f]{32}\n\z/,
        '{"error":"Unauthorized","reason":"invalid"}',
        qr/^user=bob auth=ok tid=[0-9a-f]{32}\n\z/,
        qr/^user=alice auth=ok tid=[0-9a-f]{32}\n\z/,
        <<'_EOC_' ]);
gateway_auth_decisions_total{result="invalid"} 1
gateway_auth_decisions_total{result="missing"} 1
gateway_auth_decisions_total{result="ok"} 3
gateway_requests_total{method="GET",path="/api/",status="200"} 3
gateway_requests_total{method="GET",path="/api/",status="401"} 2
_EOC_

    # logged after each request: the first one's line must be there
    $block->set_value("access_log",
                      qr/^[0-9a-f]{32} 401 user=- auth=missing$/);
});

run_tests();

__DATA__

=== TEST 1: load order auth, trace, metrics
--- main_config eval
GwTest::load_modules(qw(auth trace metrics))



=== TEST 2: load order metrics, trace, auth
--- main_config eval
GwTest::load_modules(qw(metrics trace auth))



=== TEST 3: load order trace, metrics, auth
--- main_config eval
GwTest::load_modules(qw(trace metrics auth))



=== TEST 4: load order auth, metrics, trace
--- main_config eval
GwTest::load_modules(qw(auth metrics trace))
