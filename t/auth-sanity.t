# Copyright (C) nginx-gw authors
# gw_auth_jwt basics: where the token comes from, the responses, off,
# inheritance, satisfy, error_page, $gw_auth_status.
use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwAuth;

repeat_each(2);

our $Now = time;
our $Rsa = gw_key('rsa', 'rsa');
our $Jwks = gw_jwks(gw_jwk($Rsa, kid => 'r1'));
our $Good = gw_token($Rsa, 'RS256', { sub => 'alice', exp => $Now + 3600 },
                     { kid => 'r1' });
our $Bad = $Good;
$Bad =~ s/\.([^.]+)$/.AAAA$1/;

GwTest::use_defaults(
    modules => ['auth'],
    user_files => ">>> jwks.json\n$Jwks\n"
);

run_tests();

__DATA__

=== TEST 1: no token: 401, JSON body, WWW-Authenticate without error
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_auth_status\n";
    }
--- request
GET /t
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api"
Content-Type: application/json
--- response_body chomp
{"error":"Unauthorized","reason":"missing"}



=== TEST 2: valid token in Authorization: Bearer
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_auth_status $gw_jwt_claim_sub\n";
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer $::Good"
--- response_body
ok ok alice



=== TEST 3: scheme is case-insensitive, spaces around the token
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub\n";
    }
--- request
GET /t
--- more_headers eval
"Authorization: bEaReR    $::Good  "
--- response_body
ok alice



=== TEST 4: another scheme is no token
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok\n";
    }
--- request
GET /t
--- more_headers eval
"Authorization: Basic $::Good"
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api"
--- response_body chomp
{"error":"Unauthorized","reason":"missing"}



=== TEST 5: invalid token: error="invalid_token"
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok\n";
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer $::Bad"
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api", error="invalid_token"
Content-Type: application/json
--- response_body chomp
{"error":"Unauthorized","reason":"invalid"}



=== TEST 6: realm with variables, quotes escaped
--- config
    location /t {
        set $who 'say "hi"';
        gw_auth_jwt "api $who";
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok\n";
    }
--- request
GET /t
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api say \"hi\""



=== TEST 7: token from a cookie
--- config
    location /t {
        gw_auth_jwt "api" token=$cookie_auth;
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub\n";
    }
--- request
GET /t
--- more_headers eval
"Cookie: x=1; auth=$::Good"
--- response_body
ok alice



=== TEST 8: token from a query argument; Authorization ignored then
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_access_token;
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub\n";
    }
--- request eval
["GET /t?access_token=$::Good", "GET /t"]
--- more_headers eval
"Authorization: Bearer $::Good"
--- error_code eval
[200, 401]
--- response_body eval
["ok alice\n", '{"error":"Unauthorized","reason":"missing"}']



=== TEST 9: off cancels an inherited gw_auth_jwt
--- config
    gw_auth_jwt "api";
    gw_auth_jwt_key_file ../html/jwks.json;

    location /open {
        gw_auth_jwt off;
        return 200 "open [$gw_auth_status]\n";
    }

    location /closed {
        try_files /.none @closed;
    }

    location @closed {
        return 200 "closed\n";
    }
--- request eval
["GET /open", "GET /closed"]
--- error_code eval
[200, 401]
--- response_body eval
["open []\n", '{"error":"Unauthorized","reason":"missing"}']



=== TEST 10: keys inherited from the server level
--- config
    gw_auth_jwt_key_file ../html/jwks.json;

    location /t {
        gw_auth_jwt "api";
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub\n";
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer $::Good"
--- response_body
ok alice



=== TEST 11: HEAD gets the status and headers, no body
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok\n";
    }
--- request
HEAD /t
--- error_code: 401
--- response_headers
Content-Type: application/json
--- response_body



=== TEST 12: a request body is discarded, keepalive goes on
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["POST /t\n" . ("x" x 5000), "GET /t"]
--- more_headers
Content-Type: text/plain
--- error_code eval
[401, 401]
--- response_body eval
['{"error":"Unauthorized","reason":"missing"}',
 '{"error":"Unauthorized","reason":"missing"}']



=== TEST 13: satisfy any: an allow rule lets a request without token in
--- config
    location /t {
        satisfy any;
        allow 127.0.0.1;
        deny all;
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok [$gw_auth_status]\n";
    }
--- request
GET /t
--- response_headers
!WWW-Authenticate
--- response_body
ok [missing]



=== TEST 14: satisfy any: a valid token lets a denied address in
--- config
    location /t {
        satisfy any;
        deny all;
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub\n";
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer $::Good"
--- response_body
ok alice



=== TEST 15: satisfy any, all fail: nginx's 401 with our WWW-Authenticate
--- config
    location /t {
        satisfy any;
        deny all;
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok\n";
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer $::Bad"
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api", error="invalid_token"
--- response_body_like: 401 Authorization Required



=== TEST 16: error_page overrides the JSON body; status survives
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        error_page 401 = @denied;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok\n";
    }

    location @denied {
        default_type text/plain;
        return 401 "custom $gw_auth_status\n";
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer $::Bad"
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api", error="invalid_token"
Content-Type: text/plain
--- response_body
custom invalid



=== TEST 17: $gw_auth_status and claims in the access log
--- http_config
    log_format gw 'status=$gw_auth_status sub=$gw_jwt_claim_sub';
--- config
    access_log logs/access.log gw;

    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok\n";
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer $::Good"
--- response_body
ok
--- access_log
status=ok sub=alice



=== TEST 18: variables are empty without authentication, also in the log
--- http_config
    log_format gw 'status=$gw_auth_status sub=$gw_jwt_claim_sub';
--- config
    access_log logs/access.log gw;

    location /t {
        gw_auth_jwt off;
        return 200 "[$gw_jwt_claim_sub][$gw_jwt_header_alg][$gw_jwt_payload][$gw_auth_status]\n";
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer $::Good"
--- response_body
[][][][]
--- access_log
status=- sub=-



=== TEST 19: limit_except: only non-GET methods need a token
--- config
    location /t {
        limit_except GET {
            gw_auth_jwt "writes";
            gw_auth_jwt_key_file ../html/jwks.json;
        }
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok\n";
    }
--- request eval
["GET /t", "DELETE /t"]
--- error_code eval
[200, 401]
--- response_body eval
["ok\n", '{"error":"Unauthorized","reason":"missing"}']



=== TEST 20: claims are forwarded with proxy_set_header
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        proxy_set_header X-User $gw_jwt_claim_sub;
        proxy_set_header Authorization "";
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }

    location /backend {
        return 200 "user=$http_x_user auth=[$http_authorization]\n";
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer $::Good"
--- response_body
user=alice auth=[]



=== TEST 21: keys missing at run time is an error, 500
--- config
    location /t {
        gw_auth_jwt "api";
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok\n";
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer $::Good"
--- error_code: 500
--- response_body chomp
{"error":"Internal Server Error","reason":"error"}
--- error_log
gw_auth: no gw_auth_jwt_key_file or gw_auth_jwt_key_request configured
