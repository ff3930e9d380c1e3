# Copyright (C) nginx-gw authors
# gw_auth_jwt_key_request: keys fetched through a subrequest, cached per
# worker for gw_auth_jwt_key_cache; errors are 500 and logged.
use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwAuth;

repeat_each(2);

our $Now = time;
our %K = (
    k1 => gw_key('k1', 'rsa'),
    k2 => gw_key('k2', 'p256'),
    k3 => gw_key('k3', 'ed25519'),
);
our %Alg = (k1 => 'RS256', k2 => 'ES256', k3 => 'EdDSA');

sub tok { my ($k) = @_;
          gw_token($K{$k}, $Alg{$k}, { sub => "user-$k", exp => $Now + 600 },
                   { kid => $k }) }

our $Jwks1 = gw_jwks(gw_jwk($K{k1}, kid => 'k1'));

our $Origin = <<'_EOC_';
    # the identity provider: serves html/*.json, refuses forwarded tokens
    location /idp/ {
        if ($http_authorization) {
            return 403;
        }
        alias html/;
    }

    location = /_jwks {
        internal;
        proxy_pass_request_headers off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/idp/jwks.json;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub $gw_auth_status\n";
    }
_EOC_

GwTest::use_defaults(
    modules => ['auth'],
    user_files => ">>> jwks.json\n$Jwks1\n",
    config_append => $Origin
);

run_tests();

__DATA__

=== TEST 1: keys fetched once, then cached for gw_auth_jwt_key_cache
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_request /_jwks;
        gw_auth_jwt_key_cache 1h;
        try_files /.none @ok;
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer " . main::tok('k1')
--- response_body
ok user-k1 ok
--- grep_error_log eval
qr/gw_auth: fetching keys from "[^"]+"/
--- grep_error_log_out eval
["gw_auth: fetching keys from \"/_jwks\"\n", ""]



=== TEST 2: without gw_auth_jwt_key_cache keys are fetched for each request
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_request /_jwks;
        try_files /.none @ok;
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer " . main::tok('k1')
--- response_body
ok user-k1 ok
--- grep_error_log eval
qr/gw_auth: fetching keys from "[^"]+"/
--- grep_error_log_out eval
["gw_auth: fetching keys from \"/_jwks\"\n",
 "gw_auth: fetching keys from \"/_jwks\"\n"]



=== TEST 3: no token, no fetch
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_request /_jwks;
        try_files /.none @ok;
    }
--- request
GET /t
--- error_code: 401
--- no_error_log
fetching keys
[error]



=== TEST 4: two key requests and a key file together
--- user_files eval
">>> jwks.json\n$::Jwks1\n"
. ">>> other.json\n" . GwAuth::gw_jwks(GwAuth::gw_jwk($::K{k2}, kid => 'k2'))
. "\n>>> local.json\n" . GwAuth::gw_jwks(GwAuth::gw_jwk($::K{k3}, kid => 'k3'))
. "\n"
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_request /_jwks;
        gw_auth_jwt_key_request /_other;
        gw_auth_jwt_key_file ../html/local.json;
        gw_auth_jwt_key_cache 1h;
        try_files /.none @ok;
    }

    location = /_other {
        internal;
        proxy_pass_request_headers off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/idp/other.json;
    }
--- request eval
["GET /t?t=" . main::tok('k1'), "GET /t?t=" . main::tok('k2'),
 "GET /t?t=" . main::tok('k3')]
--- response_body eval
["ok user-k1 ok\n", "ok user-k2 ok\n", "ok user-k3 ok\n"]



=== TEST 5: a static file location as key source
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_request /keys/jwks.json;
        gw_auth_jwt_key_cache 10m;
        try_files /.none @ok;
    }

    location /keys/ {
        internal;
        alias html/;
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer " . main::tok('k1')
--- response_body
ok user-k1 ok



=== TEST 6: the key source answers 404: 500, logged, status "error", no
refetch within a second
--- http_config
    log_format gw 'auth=$gw_auth_status';
--- config
    access_log logs/access.log gw;

    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_request /_missing;
        try_files /.none @ok;
    }

    location = /_missing {
        internal;
        proxy_pass_request_headers off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/idp/missing.json;
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer " . main::tok('k1')
--- error_code: 500
--- response_body chomp
{"error":"Internal Server Error","reason":"error"}
--- access_log
auth=error
--- grep_error_log eval
qr/gw_auth: (keys request to "[^"]+" failed, status \d+|no keys available)/
--- grep_error_log_out eval
["gw_auth: keys request to \"/_missing\" failed, status 404\n"
 . "gw_auth: no keys available\n",
 "gw_auth: no keys available\n"]
--- no_error_log
[alert]



=== TEST 7: the key source answers garbage: 500, logged
--- user_files
>>> jwks.json
<html>not a key set</html>
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_request /_jwks;
        try_files /.none @ok;
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer " . main::tok('k1')
--- error_code: 500
--- grep_error_log eval
qr/gw_auth: (invalid keys from "[^"]+": no PEM key|no keys available)/
--- grep_error_log_out eval
["gw_auth: invalid keys from \"/_jwks\": no PEM key\n"
 . "gw_auth: no keys available\n",
 "gw_auth: no keys available\n"]
--- no_error_log
[alert]



=== TEST 8: a key set over 256 KiB: 500, logged
--- user_files eval
">>> jwks.json\n" . GwAuth::gw_jwks({ %{ GwAuth::gw_jwk($::K{k1}, kid => 'k1') },
                                    x5c => [ 'A' x 300000 ] })
. "\n"
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_request /_jwks;
        try_files /.none @ok;
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer " . main::tok('k1')
--- error_code: 500
--- grep_error_log eval
qr/gw_auth: (keys from "[^"]+" too large, limit \d+ bytes|no keys available)/
--- grep_error_log_out eval
["gw_auth: keys from \"/_jwks\" too large, limit 262144 bytes\n"
 . "gw_auth: no keys available\n",
 "gw_auth: no keys available\n"]
--- no_error_log
[alert]



=== TEST 9: 64 keys, far over subrequest_output_buffer_size, are fine
--- user_files eval
">>> jwks.json\n" . GwAuth::gw_jwks(map { GwAuth::gw_jwk($::K{k1}, kid => "k$_") } 1 .. 64)
. "\n"
--- config
    subrequest_output_buffer_size 1k;

    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_request /_jwks;
        try_files /.none @ok;
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer " . main::tok('k1')
--- response_body
ok user-k1 ok



=== TEST 10: 65 keys are too many
--- user_files eval
">>> jwks.json\n" . GwAuth::gw_jwks(map { GwAuth::gw_jwk($::K{k1}, kid => "k$_") } 1 .. 65)
. "\n"
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_request /_jwks;
        try_files /.none @ok;
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer " . main::tok('k1')
--- error_code: 500
--- grep_error_log eval
qr/gw_auth: (invalid keys from "[^"]+": too many keys|no keys available)/
--- grep_error_log_out eval
["gw_auth: invalid keys from \"/_jwks\": too many keys\n"
 . "gw_auth: no keys available\n",
 "gw_auth: no keys available\n"]
--- no_error_log
[alert]



=== TEST 11: the key location redirects internally: the body is still caught
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_request /_moved;
        try_files /.none @ok;
    }

    location = /_moved {
        internal;
        rewrite ^ /_jwks last;
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer " . main::tok('k1')
--- response_body
ok user-k1 ok
