# Copyright (C) nginx-gw authors
# Claims and header parameters as variables, gw_auth_jwt_claim_set,
# gw_auth_jwt_header_set, $gw_jwt_payload, gw_auth_jwt_require, the cache.
use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwAuth;

repeat_each(2);

our $Now = time;
our $Rsa = gw_key('rsa', 'rsa');
our $Jwks = gw_jwks(gw_jwk($Rsa, kid => 'r1'));

sub tok {
    my ($claims, $header) = @_;
    return gw_token($Rsa, 'RS256', $claims, { kid => 'r1', %{ $header || {} } });
}

# a payload as raw JSON, to know its exact text and member order
our $Raw = qq({"sub":"alice","num":42,"real":1.5,"t":true,"f":false,)
         . qq("n":null,"arr":["a","b",3],"obj":{"k":"v"},\n)
         . qq("info":{"e-mail":"a\@example.com","job title":"dev",)
         . qq("deep":{"x":[1,2]}},"ctrl":"a\\r\\nb","exp":@{[ $Now + 600 ]}});
our $Formats = tok($Raw, { ext => { level => 'gold' }, typ => 'JWT' });

our $Admin = tok({ sub => 'root', admin => JSON::PP::true(),
                   iss => 'https://idp.example', aud => [ 'web', 'api' ],
                   exp => $Now + 600 });
our $User = tok({ sub => 'joe', admin => JSON::PP::false(),
                  iss => 'https://idp.example', aud => 'web',
                  exp => $Now + 600 });
our $Rogue = tok({ sub => 'eve', admin => JSON::PP::true(),
                   iss => 'https://evil.example', aud => 'api',
                   exp => $Now + 600 });
our $Early = tok({ sub => 'early', nbf => $Now + 600, exp => $Now + 1200 });

GwTest::use_defaults(
    modules => ['auth'],
    user_files => ">>> jwks.json\n$Jwks\n"
);

run_tests();

__DATA__

=== TEST 1: claim values: strings, numbers, booleans, null, arrays, objects
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "sub=$gw_jwt_claim_sub num=$gw_jwt_claim_num real=$gw_jwt_claim_real t=$gw_jwt_claim_t f=[$gw_jwt_claim_f] n=[$gw_jwt_claim_n] arr=$gw_jwt_claim_arr obj=$gw_jwt_claim_obj ctrl=[$gw_jwt_claim_ctrl] none=[$gw_jwt_claim_none]\n";
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer $::Formats"
--- response_body
sub=alice num=42 real=1.5 t=true f=[] n=[] arr=a,b,3 obj={"k":"v"} ctrl=[a  b] none=[]



=== TEST 2: header parameters, gw_auth_jwt_claim_set, gw_auth_jwt_header_set
--- http_config
    gw_auth_jwt_claim_set $email info e-mail;
    gw_auth_jwt_claim_set $job info "job title";
    gw_auth_jwt_claim_set $deep info deep x;
    gw_auth_jwt_claim_set $nothing info missing x;
    gw_auth_jwt_claim_set $notobj sub x;
    gw_auth_jwt_header_set $level ext level;
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "alg=$gw_jwt_header_alg kid=$gw_jwt_header_kid typ=$gw_jwt_header_typ email=$email job=$job deep=$deep nothing=[$nothing] notobj=[$notobj] level=$level\n";
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer $::Formats"
--- response_body
alg=RS256 kid=r1 typ=JWT email=a@example.com job=dev deep=1,2 nothing=[] notobj=[] level=gold



=== TEST 3: $gw_jwt_payload is the payload JSON, control characters as spaces
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "$gw_jwt_payload";
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer $::Formats"
--- response_body eval
(my $p = $::Raw) =~ s/\n/ /g; $p



=== TEST 4: claims forwarded to the backend cannot inject headers
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        proxy_set_header X-Ctrl $gw_jwt_claim_ctrl;
        proxy_set_header X-Payload $gw_jwt_payload;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }

    location /backend {
        return 200 "ctrl=[$http_x_ctrl] injected=[$http_b]\n";
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer " . main::tok({ sub => 'x', ctrl => "a\r\nB: 1" })
--- response_body
ctrl=[a  B: 1] injected=[]



=== TEST 5: gw_auth_jwt_require: every value non-empty and not "0"
--- http_config
    map $gw_jwt_claim_iss $iss_ok {
        "https://idp.example"  1;
        default                0;
    }

    map $gw_jwt_claim_aud $aud_api {
        "~(^|,)api(,|$)"  1;
        default           "";
    }
--- config
    gw_auth_jwt "api" token=$arg_t;
    gw_auth_jwt_key_file ../html/jwks.json;

    location /admin {
        gw_auth_jwt_require $iss_ok error=403;
        gw_auth_jwt_require $gw_jwt_claim_admin $aud_api;
        try_files /.none @ok;
    }

    location /any {
        gw_auth_jwt_require $iss_ok;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub $gw_auth_status\n";
    }
--- request eval
["GET /admin?t=$::Admin", "GET /admin?t=$::User", "GET /admin?t=$::Rogue",
 "GET /any?t=$::User", "GET /any?t=$::Rogue"]
--- error_code eval
[200, 401, 403, 200, 401]
--- response_body eval
["ok root ok\n", '{"error":"Unauthorized","reason":"denied"}',
 '{"error":"Forbidden","reason":"forbidden"}', "ok joe ok\n",
 '{"error":"Unauthorized","reason":"denied"}']



=== TEST 6: a failed requirement: 401 invalid_token, no claims exposed
--- http_config
    log_format gw '$gw_auth_status [$gw_jwt_claim_sub]';
--- config
    access_log logs/access.log gw;

    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        gw_auth_jwt_require $gw_jwt_claim_admin;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok\n";
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer $::User"
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="api", error="invalid_token"
--- access_log
denied [-]
--- error_log
gw_auth: requirement "$gw_jwt_claim_admin" not met



=== TEST 7: 403 carries insufficient_scope
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        gw_auth_jwt_require $gw_jwt_claim_admin error=403;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok\n";
    }
--- request
GET /t
--- more_headers eval
"Authorization: Bearer $::User"
--- error_code: 403
--- response_headers
WWW-Authenticate: Bearer realm="api", error="insufficient_scope"
Content-Type: application/json
--- response_body chomp
{"error":"Forbidden","reason":"forbidden"}



=== TEST 8: requirements are inherited unless redefined
--- config
    gw_auth_jwt "api" token=$arg_t;
    gw_auth_jwt_key_file ../html/jwks.json;
    gw_auth_jwt_require $gw_jwt_claim_admin;

    location /inherit {
        try_files /.none @ok;
    }

    location /own {
        gw_auth_jwt_require $gw_jwt_claim_sub;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub\n";
    }
--- request eval
["GET /inherit?t=$::User", "GET /own?t=$::User"]
--- error_code eval
[401, 200]



=== TEST 9: claims reach a later access handler and its subrequest
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/jwks.json;
        auth_request /check;
        try_files /.none @ok;
    }

    location = /check {
        internal;
        if ($gw_jwt_claim_sub != "root") {
            return 403;
        }
        return 204;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub\n";
    }
--- request eval
["GET /t", "GET /t"]
--- more_headers eval
"Authorization: Bearer $::Admin"
--- response_body eval
["ok root\n", "ok root\n"]



=== TEST 10: a repeated token skips verification (per-worker cache)
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
"Authorization: Bearer $::Admin"
--- response_body
ok root
--- grep_error_log eval
qr/gw_auth: token (verified|cache hit)/
--- grep_error_log_out eval
["gw_auth: token verified\n", "gw_auth: token cache hit\n"]



=== TEST 11: a cached token is still checked against each location's requirements
--- config
    gw_auth_jwt "api" token=$arg_t;
    gw_auth_jwt_key_file ../html/jwks.json;

    location /open {
        try_files /.none @ok;
    }

    location /admin {
        gw_auth_jwt_require $gw_jwt_claim_admin;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub\n";
    }
--- request eval
["GET /open?t=$::User", "GET /admin?t=$::User", "GET /open?t=$::User"]
--- error_code eval
[200, 401, 200]



=== TEST 12: a cached token is still checked against nbf (and exp) per location
Valid only in ten minutes: accepted where the leeway is an hour, and cached
there; still rejected where there is no leeway, from the cache.
--- config
    gw_auth_jwt "api" token=$arg_t;
    gw_auth_jwt_key_file ../html/jwks.json;

    location /lenient {
        gw_auth_jwt_leeway 1h;
        try_files /.none @ok;
    }

    location /strict {
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub\n";
    }
--- request eval
["GET /lenient?t=$::Early", "GET /strict?t=$::Early",
 "GET /lenient?t=$::Early", "GET /strict?t=$::Early"]
--- error_code eval
[200, 401, 200, 401]
--- response_body_like eval
['^ok early\n\z', '"reason":"premature"', '^ok early\n\z',
 '"reason":"premature"']
--- grep_error_log eval: qr/gw_auth: token cache hit/
--- grep_error_log_out eval
# per repeat: the first pass verifies once, the second finds every request,
# the rejected ones included, in the cache
[qr/^(?:gw_auth: token cache hit\n)?$/, "gw_auth: token cache hit\n"]
