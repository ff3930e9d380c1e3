# Copyright (C) nginx-gw authors
# Key requests under load and abuse, and the order of the token checks
# (regression tests of issue 9's fault review): one fetch per key source
# and worker while requests wait for the first key set; an overall
# deadline however slowly the provider trickles; a signature checked from
# the header alone, before the claims are parsed; DEL in $gw_jwt_payload.
# One run per block (each is a sequence over per-worker state).
use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwAuth;
use GwMetrics ();
use Time::HiRes ();

repeat_each(1);
no_shuffle();

our $Now = time;
our $H = gw_key('h', 'oct32');
our %C = (sub => 'alice', exp => $Now + 600);
our $Tok = gw_token($H, 'HS256', \%C, { kid => 'h' });

# a key set padded to 400 bytes: at limit_rate 150 it takes about 2 s
our $Jwks = gw_jwks(gw_jwk($H, kid => 'h'));
$Jwks .= ' ' x (400 - length $Jwks);
our $Bad = 'x' x 400;

sub origin_hits {
    my ($re) = @_;
    my $f = GwMetrics::servroot() . '/logs/origin.log';
    open my $in, '<', $f or return 0;
    return scalar grep { /$re/ } <$in>;
}

our $Server = <<'_EOC_';
    # the identity provider, slow: 150 bytes a second, or 1
    location /slow/ {
        limit_rate 150;
        alias html/;
        access_log logs/origin.log;
    }

    location /trickle/ {
        limit_rate 1;
        alias html/;
        access_log logs/origin.log;
    }

    location = /_jwks {
        internal;
        proxy_pass_request_headers off;
        proxy_read_timeout 3s;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/slow/jwks.json;
    }

    location = /_bad {
        internal;
        proxy_pass_request_headers off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/slow/bad.json;
    }

    location = /_trickle {
        internal;
        proxy_pass_request_headers off;
        proxy_read_timeout 3s;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/trickle/jwks.json;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub\n";
    }
_EOC_

GwTest::use_defaults(
    modules => ['auth'],
    user_files => ">>> jwks.json\n$Jwks\n>>> bad.json\n$Bad\n",
    config_append => $Server,
    timeout => 10
);

run_tests();

__DATA__

=== TEST 1: 30 requests before the first key set: one fetch, all wait for it
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_request /_jwks;
        gw_auth_jwt_key_cache 1h;
        try_files /.none @ok;
    }
--- init
my $t0 = Time::HiRes::time();
my @r = GwMetrics::parallel_get("/t?t=$::Tok", 30, width => 30);
my $took = Time::HiRes::time() - $t0;
Test::More::is(scalar(grep { $_ eq "200 ok alice\n" } @r), 30,
               "30 answers 200 with the claims: @r[0 .. 2] ...");
Test::More::is(main::origin_hits(qr{GET /slow/jwks.json}), 1,
               "the provider saw one key request");
Test::More::cmp_ok($took, '>', 1, "they waited for the slow fetch");
--- request
GET /t?t=
--- error_code: 401
--- grep_error_log eval
qr/gw_auth: fetching keys from "[^"]+"/
--- grep_error_log_out
gw_auth: fetching keys from "/_jwks"



=== TEST 2: a slow failing provider: one fetch, then one a second at most
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_request /_bad;
        try_files /.none @ok;
    }
--- init
my @r = GwMetrics::parallel_get("/t?t=$::Tok", 20, width => 20);
Test::More::is(scalar(grep { /^500 / } @r), 20, "20 answers 500");
@r = GwMetrics::parallel_get("/t?t=$::Tok", 20, width => 20);
Test::More::is(scalar(grep { /^500 / } @r), 20, "20 more answers 500");
Test::More::cmp_ok(main::origin_hits(qr{GET /slow/bad.json}), '<=', 2,
                   "the provider saw at most two key requests");
--- request
GET /t?t=
--- error_code: 401
--- error_log
gw_auth: invalid keys from "/_bad": no PEM key
--- no_error_log
[alert]
[crit]



=== TEST 3: a trickling provider: answered at the deadline, the fetch ended
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_request /_trickle;
        gw_auth_jwt_key_request_timeout 1s;
        try_files /.none @ok;
    }
--- init
my $t0 = Time::HiRes::time();
my @r = GwMetrics::parallel_get("/t?t=$::Tok", 5, width => 5);
my $took = Time::HiRes::time() - $t0;
Test::More::is(scalar(grep { /^500 / } @r), 5, "5 answers 500");
Test::More::cmp_ok($took, "<", 8, "within the 1 s deadline ($took s), "
                   . "not the provider's 400 s");
Time::HiRes::sleep(0.5);
--- request
GET /t?t=
--- error_code: 401
--- error_log eval
[qr/gw_auth: keys request to "\/_trickle" timed out/,
 qr/gw_auth: keys request to "\/_trickle" failed/]
--- no_error_log
[alert]
[crit]



=== TEST 4: the signature is checked before the claims are parsed
--- user_files eval
">>> h.json\n" . GwAuth::gw_jwks(GwAuth::gw_jwk($::H, kid => 'h')) . "\n"
--- config
    error_log logs/error.log info;

    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file ../html/h.json;
        try_files /.none @ok;
    }
--- request eval
my $other = GwAuth::gw_key('h2', 'oct32');
my %many = map { ("c$_" => $_) } 1 .. 560;
["GET /t?t=" . GwAuth::gw_token($other, 'HS256', 'not json', { kid => 'h' }),
 "GET /t?t=" . GwAuth::gw_token($other, 'HS256', { %::C, %many },
                                { kid => 'h' })]
--- error_code eval
[401, 401]
--- error_log
gw_auth: invalid token: signature mismatch, alg "HS256", kid "h"
--- no_error_log
payload is not a JSON object
[error]



=== TEST 5: DEL in $gw_jwt_payload is a space, as in claim values
--- user_files eval
">>> h.json\n" . GwAuth::gw_jwks(GwAuth::gw_jwk($::H, kid => 'h')) . "\n"
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file ../html/h.json;
        try_files /.none @payload;
    }

    location @payload {
        return 200 "[$gw_jwt_payload] [$gw_jwt_claim_x]\n";
    }
--- request eval
"GET /t?t=" . GwAuth::gw_token($::H, 'HS256', qq({"x":"a\x7fb","sub":"s"}),
                               { kid => 'h' })
--- response_body
[{"x":"a b","sub":"s"}] [a b]
