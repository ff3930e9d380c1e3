# Copyright (C) nginx-gw authors
# Variables in gw_auth_jwt_key_file and gw_auth_jwt_key_request (per
# tenant key sets, as NGINX Plus allows): the per-worker key file cache
# (no re-read within gw_auth_jwt_key_cache, a changed file seen after it),
# missing and bad files (401, one log line), the token cache kept apart per
# key set; unusable keys in fetched key sets skipped with a warning.
# One run per block (sequences over per-worker state).
use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwAuth;

repeat_each(1);
no_shuffle();

our $Now = time;
our %K = (ka => gw_key('ka', 'rsa'), kb => gw_key('kb', 'p256'));
our %Alg = (ka => 'RS256', kb => 'ES256');
our %C = (exp => $Now + 600);

sub tok { gw_token($K{$_[0]}, $Alg{$_[0]}, { %C, sub => "user-$_[0]" },
                   { kid => $_[0] }) }
sub jwks { gw_jwks(map { gw_jwk($K{$_}, kid => $_) } @_) }

our $Pause = 'x' x 2500;    # >= 1 s at limit_rate 1000 (nginx: 1 s steps)

our $Server = <<'_EOC_';
    location /pause {
        limit_rate 1000;
        alias html/;
    }

    # the key files, replaced with PUT
    location /keys/ {
        alias html/;
        dav_methods PUT;
    }

    location /idp/ {
        alias html/;
    }

    location ~ ^/_jwks/(\w+)$ {
        internal;
        proxy_pass_request_headers off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/idp/$1.json;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub\n";
    }
_EOC_

GwTest::use_defaults(
    modules => ['auth'],
    user_files => ">>> a.json\n" . jwks('ka') . "\n>>> b.json\n" . jwks('kb')
                  . "\n>>> bad.json\n{\"keys\":[{\"kty\":\"AKP\"}]}\n"
                  . ">>> pause1\n$Pause\n",
    http_config => <<'_EOC_',
    map $arg_tenant $tenant_keys {
        default  ../html/none.json;
        a        ../html/a.json;
        b        ../html/b.json;
        bad      ../html/bad.json;
    }
_EOC_
    config_append => $Server,
    timeout => 10
);

run_tests();

__DATA__

=== TEST 1: per tenant key files; the token cache keeps key sets apart
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file $tenant_keys;
        try_files /.none @ok;
    }
--- request eval
["GET /t?tenant=a&t=" . main::tok('ka'),
 "GET /t?tenant=b&t=" . main::tok('kb'),
 "GET /t?tenant=a&t=" . main::tok('ka'),     # cached for a
 "GET /t?tenant=b&t=" . main::tok('ka'),     # never for b
 "GET /t?tenant=a&t=" . main::tok('kb')]
--- error_code eval
[200, 200, 200, 401, 401]
--- response_body eval
["ok user-ka\n", "ok user-kb\n", "ok user-ka\n",
 '{"error":"Unauthorized","reason":"invalid"}',
 '{"error":"Unauthorized","reason":"invalid"}']



=== TEST 2: a missing key file: 401 and one line naming it
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file $tenant_keys;
        try_files /.none @ok;
    }
--- request eval
"GET /t?tenant=c&t=" . main::tok('ka')
--- error_code: 401
--- grep_error_log eval
qr/gw_auth: key file "[^"]*none\.json": no such file/
--- grep_error_log_out eval
"gw_auth: key file \"$ENV{TEST_NGINX_SERVROOT}/conf/../html/none.json\": no such file\n"
--- no_error_log
[alert]
[crit]



=== TEST 3: a key file without a usable key: 401, its key warned about
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file $tenant_keys;
        try_files /.none @ok;
    }
--- request eval
["GET /t?tenant=bad&t=" . main::tok('ka'),
 "GET /t?tenant=bad&t=" . main::tok('ka')]
--- error_code eval
[401, 401]
--- error_log eval
qr/gw_auth: key file "[^"]*bad\.json": no usable key/
--- no_error_log
[alert]
[crit]



=== TEST 4: a changed key file is not re-read within the period, then is
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file $tenant_keys;
        gw_auth_jwt_key_cache 1s;
        try_files /.none @ok;
    }
--- request eval
[
 "GET /t?tenant=a&t=" . main::tok('ka'),        # read: {ka}
 "PUT /keys/a.json\n" . main::jwks('kb'),       # now {kb}
 "GET /t?tenant=a&t=" . main::tok('kb'),        # within 1 s: still {ka}
 "GET /pause/pause1",
 "GET /t?tenant=a&t=" . main::tok('kb'),        # checked again: {kb}
 "GET /t?tenant=a&t=" . main::tok('ka'),        # and ka is gone
]
--- error_code eval
[200, 204, 401, 200, 200, 401]
--- response_body_like eval
["ok user-ka", "", "invalid", "x+", "ok user-kb", "invalid"]



=== TEST 5: a key request with variables: one key set per uri
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_request /_jwks/$arg_tenant;
        gw_auth_jwt_key_cache 1h;
        try_files /.none @ok;
    }
--- request eval
["GET /t?tenant=a&t=" . main::tok('ka'),
 "GET /t?tenant=b&t=" . main::tok('kb'),
 "GET /t?tenant=b&t=" . main::tok('ka'),
 "GET /t?tenant=a&t=" . main::tok('ka')]
--- error_code eval
[200, 200, 401, 200]



=== TEST 6: fetched key sets: unusable keys skipped with a warning
--- user_files eval
">>> mixed.json\n" . GwAuth::gw_jwks(
    { kty => 'AKP', kid => 'future', pub => 'AAAA' },
    GwAuth::gw_jwk($::K{kb}, kid => 'enc', use => 'enc'),
    GwAuth::gw_jwk($::K{ka}, kid => 'ka'),
    { kty => 'oct', kid => 'short', k => GwAuth::gw_b64('0123456789ab') })
. "\n"
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_request /_jwks/$arg_tenant;
        gw_auth_jwt_key_cache 1h;
        try_files /.none @ok;
    }
--- request eval
"GET /t?tenant=mixed&t=" . main::tok('ka')
--- response_body
ok user-ka
--- grep_error_log eval
qr/gw_auth: key \d+ \(kid "\w+"\) of "[^"]+" (skipped for signed tokens: (unsupported "kty"|its "use" is "enc")|is an oct key of \d+ bytes)/
--- grep_error_log_out
gw_auth: key 1 (kid "future") of "/_jwks/mixed" skipped for signed tokens: unsupported "kty"
gw_auth: key 2 (kid "enc") of "/_jwks/mixed" skipped for signed tokens: its "use" is "enc"
gw_auth: key 4 (kid "short") of "/_jwks/mixed" is an oct key of 12 bytes
--- no_error_log
[error]
[alert]



=== TEST 7: a fetched key set without a usable key: 500, logged
--- user_files eval
">>> none.json\n" . GwAuth::gw_jwks(
    { kty => 'AKP', kid => 'future', pub => 'AAAA' })
. "\n"
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_request /_jwks/$arg_tenant;
        try_files /.none @ok;
    }
--- request eval
"GET /t?tenant=none&t=" . main::tok('ka')
--- error_code: 500
--- error_log
gw_auth: key 1 (kid "future") of "/_jwks/none" skipped for signed tokens: unsupported "kty"
gw_auth: invalid keys from "/_jwks/none": no usable key for signed tokens
--- no_error_log
[alert]
[crit]
