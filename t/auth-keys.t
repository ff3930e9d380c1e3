# Copyright (C) nginx-gw authors
# Key files: what is used, skipped or refused, inheritance, and the nginx -t
# errors for bad keys and bad directive arguments.
use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwAuth;

repeat_each(2);

our $Now = time;
our %K = (
    r1  => gw_key('r1', 'rsa'),
    r2  => gw_key('r2', 'rsa'),
    enc => gw_key('enc', 'rsa'),
    p256 => gw_key('p256', 'p256'),
    small => gw_key('small', 'rsa1024'),
);
our %C = (sub => 'alice', exp => $Now + 600);

sub tok { my ($k, $kid) = @_;
          gw_token($K{$k}, 'RS256', \%C, defined $kid ? { kid => $kid } : {}) }

our $Mixed = gw_jwks(
    gw_jwk($K{enc}, kid => 'enc1', use => 'enc'),
    gw_jwk($K{enc}, kid => 'enc2', key_ops => ['encrypt']),
    gw_jwk($K{enc}, kid => 'enc3', alg => 'RSA-OAEP'),
    { kty => 'AKP', kid => 'future', pub => 'AAAA' },
    gw_jwk($K{r1}, kid => 'r1', use => 'sig', key_ops => ['verify']),
);

our $Short_oct = gw_jwks(gw_jwk(gw_key('o16', 'oct16'), kid => 'o'));
our $Small_rsa = gw_jwks(gw_jwk($K{small}, kid => 's'));
our $Bad_n = gw_jwks({ %{ gw_jwk($K{r1}) }, n => 'not base64url!' });
our $Off_curve = gw_jwks({ %{ gw_jwk($K{p256}) },
                           y => gw_jwk($K{p256})->{x} });
our $Wrong_alg = gw_jwks(gw_jwk($K{p256}, alg => 'RS256'));
our $Wrong_crv = gw_jwks(gw_jwk($K{p256}, alg => 'ES384'));
our $Only_enc = gw_jwks(gw_jwk($K{enc}, use => 'enc'));
our $Bad_pem = "-----BEGIN PUBLIC KEY-----\nAAAAnotakey\n-----END PUBLIC KEY-----\n";
our $Private = $K{r1}->export_key_pem('private');

GwTest::use_defaults(
    modules => ['auth'],
    must_die_request => 'GET /t'
);

run_tests();

__DATA__

=== TEST 1: keys not for signatures, unknown kty and alg are skipped
--- user_files eval
">>> jwks.json\n$::Mixed\n"
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_header_kid\n";
    }
--- request eval
["GET /t?t=" . main::tok('r1', 'r1'), "GET /t?t=" . main::tok('enc', 'enc1'),
 "GET /t?t=" . main::tok('enc', 'enc2'), "GET /t?t=" . main::tok('enc', 'enc3'),
 "GET /t?t=" . main::tok('enc')]
--- error_code eval
[200, 401, 401, 401, 401]



=== TEST 2: key files of a location replace the inherited ones
--- user_files eval
">>> r1.pem\n" . GwAuth::gw_pem($::K{r1})
. ">>> r2.pem\n" . GwAuth::gw_pem($::K{r2})
--- config
    gw_auth_jwt "api" token=$arg_t;
    gw_auth_jwt_key_file ../html/r1.pem;

    location /server {
        try_files /.none @ok;
    }

    location /own {
        gw_auth_jwt_key_file ../html/r2.pem;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok\n";
    }
--- request eval
["GET /server?t=" . main::tok('r1'), "GET /server?t=" . main::tok('r2'),
 "GET /own?t=" . main::tok('r1'), "GET /own?t=" . main::tok('r2')]
--- error_code eval
[200, 401, 401, 200]



=== TEST 3: missing key file
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/nonexistent.json;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*key file ".*nonexistent\.json": no such file/



=== TEST 4: not JSON, not PEM
--- user_files
>>> keys.json
{"keys": [
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/keys.json;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid key file ".*keys\.json": invalid JSON/



=== TEST 5: JSON without keys
--- user_files
>>> keys.json
{"foo": 1}
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/keys.json;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid key file ".*keys\.json": no "keys" array/



=== TEST 6: no usable signature key
--- user_files eval
">>> keys.json\n$::Only_enc\n"
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/keys.json;
    }
--- must_die
--- error_log eval
[qr/\[warn\] .*key 1 of ".*keys\.json" skipped for signed tokens: its "use" is "enc"/,
 qr/\[emerg\] .*invalid key file ".*": no usable key for signed tokens/]



=== TEST 7: RSA modulus not base64url: the key is skipped, the file refused
--- user_files eval
">>> keys.json\n$::Bad_n\n"
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/keys.json;
    }
--- must_die
--- error_log eval
[qr/\[warn\] .*key 1 of ".*keys\.json" skipped for signed tokens: invalid RSA key/,
 qr/\[emerg\] .*invalid key file ".*keys\.json": no usable key for signed tokens/]



=== TEST 8: RSA key under 2048 bits: skipped, the file refused
--- user_files eval
">>> keys.json\n$::Small_rsa\n"
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/keys.json;
    }
--- must_die
--- error_log eval
[qr/\[warn\] .*key 1 \(kid "s"\) of ".*" skipped for signed tokens: RSA key shorter than 2048 bits/,
 qr/\[emerg\] .*invalid key file ".*": no usable key for signed tokens/]



=== TEST 9: HMAC key shorter than its hash: loads with one warning (Plus does)
--- user_files eval
">>> keys.json\n$::Short_oct\n"
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file ../html/keys.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub\n";
    }
--- request eval
"GET /t?t=" . GwAuth::gw_token(GwAuth::gw_key('o16', 'oct16'), 'HS256', \%::C, { kid => 'o' })
--- response_body
ok alice
--- grep_error_log eval
qr/key 1 \(kid "o"\) of "[^"]*" is an oct key of 16 bytes, shorter than the 32 bytes of its hash/
--- grep_error_log_out eval
["key 1 (kid \"o\") of \"$ENV{TEST_NGINX_SERVROOT}/conf/../html/keys.json\" is an oct key of 16 bytes, shorter than the 32 bytes of its hash\n", ""]
--- no_error_log
[error]
[emerg]



=== TEST 10: EC point not on the curve: skipped, the file refused
--- user_files eval
">>> keys.json\n$::Off_curve\n"
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/keys.json;
    }
--- must_die
--- error_log eval
[qr/\[warn\] .*key 1 of ".*" skipped for signed tokens: invalid public key point/,
 qr/\[emerg\] .*invalid key file ".*": no usable key for signed tokens/]



=== TEST 11: a JWK "alg" of another key type: skipped, the file refused
--- user_files eval
">>> keys.json\n$::Wrong_alg\n"
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/keys.json;
    }
--- must_die
--- error_log eval
[qr/\[warn\] .*skipped for signed tokens: "alg" does not fit the key/,
 qr/\[emerg\] .*invalid key file ".*": no usable key for signed tokens/]



=== TEST 12: a JWK "alg" of another curve: skipped, the file refused
--- user_files eval
">>> keys.json\n$::Wrong_crv\n"
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/keys.json;
    }
--- must_die
--- error_log eval
[qr/\[warn\] .*skipped for signed tokens: "alg" does not fit the key/,
 qr/\[emerg\] .*invalid key file ".*": no usable key for signed tokens/]



=== TEST 13: bad PEM
--- user_files eval
">>> keys.pem\n$::Bad_pem"
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/keys.pem;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid key file ".*keys\.pem": invalid PEM public key/



=== TEST 14: a private key is not taken for signed tokens
--- user_files eval
">>> keys.pem\n$::Private"
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/keys.pem;
    }
--- must_die
--- error_log eval
[qr/\[warn\] .*key 1 of ".*keys\.pem" skipped for signed tokens: a private key/,
 qr/\[emerg\] .*invalid key file ".*keys\.pem": no usable key for signed tokens/]



=== TEST 15: empty key file
--- user_files
>>> keys.pem
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/keys.pem;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid key file ".*keys\.pem": empty/



=== TEST 16: token parameter that is not a variable
--- config
    location /t {
        gw_auth_jwt "api" token=abc;
    }
--- must_die
--- error_log
invalid parameter "token=abc", expected "token=$variable"



=== TEST 17: off with a parameter
--- config
    location /t {
        gw_auth_jwt off token=$arg_t;
    }
--- must_die
--- error_log
"gw_auth_jwt" directive has an invalid parameter with "off"



=== TEST 18: require: a value not starting with a variable, a bad error code
--- config
    location /t {
        gw_auth_jwt_require admin;
    }
--- must_die
--- error_log
invalid value "admin", must start with a variable



=== TEST 19: require: error=500
--- config
    location /t {
        gw_auth_jwt_require $gw_jwt_claim_admin error=500;
    }
--- must_die
--- error_log
invalid parameter "error=500", expected error=401 or error=403



=== TEST 20: claim_set only at the http level, with a $variable
--- config
    location /t {
        gw_auth_jwt_claim_set $x sub;
    }
--- must_die
--- error_log
"gw_auth_jwt_claim_set" directive is not allowed here



=== TEST 21: claim_set without "$"
--- http_config
    gw_auth_jwt_claim_set x sub;
--- config
    location /t {
    }
--- must_die
--- error_log
invalid variable name "x"



=== TEST 22: key request that is not a uri
--- config
    location /t {
        gw_auth_jwt_key_request jwks;
    }
--- must_die
--- error_log
invalid key request uri "jwks"



=== TEST 23: bad time values
--- config
    location /t {
        gw_auth_jwt_leeway soon;
    }
--- must_die
--- error_log
"gw_auth_jwt_leeway" directive invalid value



=== TEST 24: one good key among unusable ones: loads, one [warn] per skipped key
--- user_files eval
">>> keys.json\n" . GwAuth::gw_jwks(
    { %{ GwAuth::gw_jwk($::K{r2}) }, kid => 'badn', n => 'not base64url!' },
    GwAuth::gw_jwk($::K{small}, kid => 'weak'),
    GwAuth::gw_private_jwk($::K{enc}, kid => 'priv'),
    GwAuth::gw_jwk($::K{enc}, kid => 'encuse', use => 'enc'),
    { kty => 'EC', kid => 'k1', crv => 'secp256k1', x => 'AA', y => 'AA' },
    GwAuth::gw_jwk($::K{r1}, kid => 'r1'))
. "\n"
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file ../html/keys.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_header_kid\n";
    }
--- request eval
"GET /t?t=" . main::tok('r1', 'r1')
--- response_body
ok r1
--- grep_error_log eval
qr/key \d \(kid "\w+"\) of "[^"]*" skipped for signed tokens: (invalid RSA key|RSA key shorter than 2048 bits|a private key|its "use" is "enc"|unsupported "crv")/
--- grep_error_log_out eval
my $f = "$ENV{TEST_NGINX_SERVROOT}/conf/../html/keys.json";
["key 1 (kid \"badn\") of \"$f\" skipped for signed tokens: invalid RSA key
key 2 (kid \"weak\") of \"$f\" skipped for signed tokens: RSA key shorter than 2048 bits
key 3 (kid \"priv\") of \"$f\" skipped for signed tokens: a private key
key 4 (kid \"encuse\") of \"$f\" skipped for signed tokens: its \"use\" is \"enc\"
key 5 (kid \"k1\") of \"$f\" skipped for signed tokens: unsupported \"crv\"
", ""]
--- no_error_log
[error]
[emerg]



=== TEST 25: gw_auth_jwt_key_strict refuses a key file of short HMAC keys
--- user_files eval
">>> keys.json\n$::Short_oct\n"
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_key_file ../html/keys.json;
        gw_auth_jwt_key_strict on;
    }
--- must_die
--- error_log eval
[qr/\[warn\] .*key 1 \(kid "o"\) of ".*keys\.json" skipped for signed tokens: oct key shorter than the hash of its alg/,
 qr/\[emerg\] .*invalid key file ".*keys\.json": no usable key for signed tokens/]



=== TEST 26: gw_auth_jwt_type: an unknown type
--- config
    location /t {
        gw_auth_jwt_type jwe;
    }
--- must_die
--- error_log
invalid value "jwe" in



=== TEST 27: a public key where encrypted tokens are expected
--- user_files eval
">>> keys.json\n" . GwAuth::gw_jwks(GwAuth::gw_jwk($::K{r1}, kid => 'r1')) . "\n"
--- config
    location /t {
        gw_auth_jwt "api";
        gw_auth_jwt_type encrypted;
        gw_auth_jwt_key_file ../html/keys.json;
    }
--- must_die
--- error_log eval
[qr/\[warn\] .*key 1 \(kid "r1"\) of ".*" skipped for encrypted tokens: a public key/,
 qr/\[emerg\] .*invalid key file ".*": no usable key for encrypted tokens/]
