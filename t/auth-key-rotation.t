# Copyright (C) nginx-gw authors
# Key rotation without reload: the key source changes between requests
# (WebDAV PUT/DELETE on the file the key request serves), nginx follows it
# within the documented bounds.  One run per block on purpose
# (repeat_each(1)): each block is a sequence over per-worker state.
use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwAuth;

repeat_each(1);
no_shuffle();

our $Now = time;
our %K = map { $_ => gw_key($_, 'rsa') } qw(k1 k2 k3);

sub tok { gw_token($K{$_[0]}, 'RS256', { sub => "user-$_[0]", exp => $Now + 600 },
                   { kid => $_[0] }) }
sub jwks { gw_jwks(map { gw_jwk($K{$_}, kid => $_) } @_) }

our $Pause = 'x' x 2500;    # >= 1 s at limit_rate 1000 (nginx: 1 s steps)
our $Pause2 = 'x' x 3500;   # >= 2 s

our $Server = <<'_EOC_';
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_request /_jwks;
        gw_auth_jwt_key_cache 2s;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub\n";
    }

    # the identity provider's key set, replaced with PUT, removed with DELETE
    location = /jwks.json {
        dav_methods PUT DELETE;
    }

    location = /_jwks {
        internal;
        proxy_pass_request_headers off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/jwks.json;
    }

    location /pause {
        limit_rate 1000;
        alias html/;
    }
_EOC_

GwTest::use_defaults(
    modules => ['auth'],
    config_prepend => $Server,
    user_files => ">>> jwks.json\n" . jwks('k1') . "\n"
                  . ">>> pause1\n$Pause\n>>> pause2\n$Pause2\n",
    timeout => 20
);

run_tests();

__DATA__

=== TEST 1: rotation: new kid after at most one refetch per second
--- request eval
[
 "GET /t?t=" . main::tok('k1'),            # fetch 1: {k1}
 "PUT /jwks.json\n" . main::jwks('k1', 'k2'),
 "GET /t?t=" . main::tok('k2'),            # unknown kid, < 1 s: no refetch
 "GET /pause/pause1",
 "GET /t?t=" . main::tok('k2'),            # unknown kid: refetch, {k1,k2}
 "GET /t?t=" . main::tok('k3'),            # unknown kid, < 1 s: no refetch
 "PUT /jwks.json\n" . main::jwks('k1', 'k2', 'k3'),
 "GET /t?t=" . main::tok('k3'),            # still no refetch: a storm of
 "GET /t?t=" . main::tok('k3'),            # unknown kids fetches nothing
 "GET /t?t=" . main::tok('k1'),            # k1 still served, from cache
]
--- error_code eval
[200, 204, 401, 200, 200, 401, 204, 401, 401, 200]
--- response_body_like eval
["ok user-k1", "", "invalid", "x+", "ok user-k2", "invalid", "", "invalid",
 "invalid", "ok user-k1"]



=== TEST 2: revocation: a removed key stops working when the cache expires
--- request eval
[
 "GET /t?t=" . main::tok('k1'),            # fetch 1: {k1}, token cached
 "PUT /jwks.json\n" . main::jwks('k2'),    # k1 removed at the source
 "GET /t?t=" . main::tok('k1'),            # keys still fresh: k1 works
 "GET /pause/pause2",                      # > gw_auth_jwt_key_cache 2s
 "GET /t?t=" . main::tok('k1'),            # refetch: {k2}, cache dropped
 "GET /t?t=" . main::tok('k2'),
]
--- error_code eval
[200, 204, 200, 200, 401, 200]
--- response_body_like eval
["ok user-k1", "", "ok user-k1", "x+", "invalid", "ok user-k2"]



=== TEST 3: the key source fails after a success: last keys stay in use
--- config
    location /t0 {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_request /_jwks;
        try_files /.none @ok;
    }
--- request eval
[
 "GET /t0?t=" . main::tok('k1'),           # no key cache: fetch per request
 "DELETE /jwks.json",
 "GET /t0?t=" . main::tok('k1'),           # fetch fails (404): stale keys
]
--- error_code eval
[200, 204, 200]
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 4: one of two key sources fails: logged, the other one's keys work
--- config
    location /t2 {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_request /_jwks;
        gw_auth_jwt_key_request /_gone;
        try_files /.none @ok;
    }

    location = /_gone {
        internal;
        return 404;
    }
--- request eval
"GET /t2?t=" . main::tok('k1')
--- response_body
ok user-k1
--- error_log
gw_auth: keys request to "/_gone" failed, status 404
