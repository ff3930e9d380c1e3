# Copyright (C) nginx-gw authors
# The attack set: every forged, altered, confused or malformed token is
# rejected (401 "invalid"), and the reason is logged without the token.
use Test::Nginx::Socket 'no_plan';
use GwTest;
use Crypt::PK::ECC;
use Crypt::PK::RSA;
use MIME::Base64 qw(encode_base64url decode_base64url);
use GwAuth;

repeat_each(2);

our $Now = time;
our %K = (
    r1 => gw_key('r1', 'rsa'),
    r2 => gw_key('r2', 'rsa'),
    e1 => gw_key('e1', 'p256'),
    h1 => gw_key('h1', 'oct32'),
    evil => gw_key('evil', 'p256'),
    evil384 => gw_key('evil384', 'p384'),
);

our $Jwks = gw_jwks(gw_jwk($K{r1}, kid => 'r1'), gw_jwk($K{r2}, kid => 'r2'),
                    gw_jwk($K{e1}, kid => 'e1'), gw_jwk($K{h1}, kid => 'h1'));

our %C = (sub => 'alice', exp => $Now + 600);

our $Good = gw_token($K{r1}, 'RS256', \%C, { kid => 'r1' });
my ($h, $p, $s) = split /\./, $Good;

sub rs256_sign {
    my ($k, $input) = @_;
    return encode_base64url($k->sign_message($input, 'SHA256', 'v1.5'));
}

# non-canonical base64url: the unused low bits of the last character set
my $alphabet = join '', 'A' .. 'Z', 'a' .. 'z', 0 .. 9, '-', '_';
my $last = index($alphabet, substr($s, -1));
my $noncanon = substr($s, 0, -1) . substr($alphabet, $last | 1, 1);

my $der = Crypt::PK::ECC->new(\ $K{e1}->export_key_der('private'));
my $es_input = encode_base64url('{"alg":"ES256","kid":"e1"}') . '.'
               . encode_base64url('{"sub":"alice"}');

our @Attacks = (
    # [ name, token, expected log fragment ]
    (map { [ "alg $_", gw_forge({ alg => $_, kid => 'r1' }, \%C, ''),
             'no signature' ],
           [ "alg $_ with a signature",
             gw_forge({ alg => $_, kid => 'r1' }, \%C, 'x'),
             'unsupported alg' ] } qw(none None NONE nOnE)),
    [ 'alg rs256 (case)', gw_forge({ alg => 'rs256', kid => 'r1' }, \%C, 'x'),
      'unsupported alg' ],
    [ 'HS256 signed with the RSA public key PEM, kid of the RSA key',
      gw_token(gw_pem($K{r1}), 'HS256', \%C, { kid => 'r1' }),
      'no key for alg' ],
    [ 'HS256 signed with the RSA public key PEM, no kid',
      gw_token(gw_pem($K{r1}), 'HS256', \%C), 'signature mismatch' ],
    [ 'HS256 signed with the RSA modulus bytes',
      gw_token(decode_base64url(gw_jwk($K{r1})->{n}), 'HS256', \%C,
               { kid => 'r1' }), 'no key for alg' ],
    [ 'stripped signature', "$h.$p.", 'no signature' ],
    [ 'signature of another token', "$h.$p."
      . (split /\./, gw_token($K{r1}, 'RS256', { sub => 'bob' },
                              { kid => 'r1' }))[2], 'signature mismatch' ],
    [ 'altered header', gw_b64('{"alg":"RS256","kid":"r1","x":1}')
      . ".$p.$s", 'signature mismatch' ],
    [ 'altered payload', "$h." . gw_b64(gw_json({ %C, sub => 'admin' }))
      . ".$s", 'signature mismatch' ],
    [ 'unknown kid', gw_token($K{r1}, 'RS256', \%C, { kid => 'nope' }),
      'unknown kid' ],
    [ 'signed by r2, kid of r1',
      gw_token($K{r2}, 'RS256', \%C, { kid => 'r1' }), 'signature mismatch' ],
    [ 'PS256 with a signature made for RS256',
      gw_forge({ alg => 'PS256', kid => 'r1' }, \%C, 'x' x 256),
      'signature mismatch' ],
    [ 'embedded jwk, jku and x5u of an attacker key',
      gw_token($K{evil}, 'ES256', \%C,
               { jwk => gw_jwk($K{evil}), jku => 'http://127.0.0.1/k',
                 x5u => 'http://127.0.0.1/c' }), 'signature mismatch' ],
    [ 'ES384 with the kid of a P-256 key',
      gw_token($K{evil384}, 'ES384', \%C, { kid => 'e1' }), 'no key for alg' ],
    [ 'ES256 with a DER signature',
      "$es_input." . encode_base64url($der->sign_message($es_input,
                                                         'SHA256')),
      'signature mismatch' ],
    [ 'duplicate alg in the header',
      do { my $i = encode_base64url('{"alg":"none","alg":"RS256",'
                                    . '"kid":"r1"}') . ".$p";
           "$i." . rs256_sign($K{r1}, $i) }, 'header is not a JSON object' ],
    [ 'crit', gw_token($K{r1}, 'RS256', \%C,
                       { kid => 'r1', crit => ['exp'], exp => 1 }),
      'unsupported crit' ],
    [ 'payload not JSON', gw_token($K{r1}, 'RS256', 'not json',
                                   { kid => 'r1' }),
      'payload is not a JSON object' ],
    [ 'payload a JSON array', gw_token($K{r1}, 'RS256', '[1,2]',
                                       { kid => 'r1' }),
      'payload is not a JSON object' ],
    [ 'header a JSON string', gw_b64('"RS256"') . ".$p.$s",
      'header is not a JSON object' ],
    [ 'exp a string', gw_token($K{r1}, 'RS256', { sub => 'a', exp => 'never' },
                               { kid => 'r1' }), 'invalid exp' ],
    [ 'garbage', 'abc', 'not a JWS or JWE compact serialization' ],
    [ 'two parts', "$h.$p", 'not a JWS or JWE compact serialization' ],
    [ 'five parts (JWE)', "$h.$p.$s.$s.$s",
      'an encrypted token where a signed one is expected' ],
    [ 'six parts', "$h.$p.$s.$s.$s.$s",
      'not a JWS or JWE compact serialization' ],
    [ 'padding', "$h.$p.$s==", 'invalid base64url in signature' ],
    [ 'standard base64 alphabet', "$h.$p.+/+/", 'invalid base64url' ],
    [ 'bad character in the header', "!$h.$p.$s",
      'invalid base64url in header' ],
    [ 'non-canonical base64url', "$h.$p.$noncanon",
      'invalid base64url in signature' ],
    [ 'trailing garbage', "$Good.", 'not a JWS or JWE compact serialization' ],
);

our @Requests = map { "GET /t?t=$_->[1]" } @Attacks;
our @Codes = map { 401 } @Attacks;
our @Bodies = map { '{"error":"Unauthorized","reason":"invalid"}' } @Attacks;

GwTest::use_defaults(
    modules => ['auth'],
    user_files => ">>> jwks.json\n$Jwks\n"
);

run_tests();

__DATA__

=== TEST 1: the genuine token and its siblings pass
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub\n";
    }
--- request eval
["GET /t?t=$::Good",
 "GET /t?t=" . GwAuth::gw_token($::K{r2}, 'RS256', \%::C),
 "GET /t?t=" . GwAuth::gw_token($::K{r1}, 'RS256', \%::C,
                                { kid => 'r1', jku => 'http://127.0.0.1/',
                                  typ => 'JWT' })]
--- response_body eval
["ok alice\n", "ok alice\n", "ok alice\n"]



=== TEST 2: the attack set
--- config
    error_log logs/error.log info;

    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub\n";
    }
--- pipelined_requests eval
\@::Requests
--- error_code eval
\@::Codes
--- response_body eval
\@::Bodies
--- no_error_log
[error]
ok alice



=== TEST 3: tokens are never logged whole: kid and alg of a parsed token
--- config
    error_log logs/error.log info;

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
"Authorization: Bearer "
. GwAuth::gw_token($::K{r2}, 'RS256', \%::C, { kid => 'r1' })
--- error_code: 401
--- error_log eval
qr/invalid token: signature mismatch, alg "RS256", kid "r1", client/
--- no_error_log eval
[substr(GwAuth::gw_token($::K{r2}, 'RS256', \%::C, { kid => 'r1' }), 0, 20),
 "[error]"]



=== TEST 4: tokens are never logged whole: a short prefix of a malformed one
--- config
    error_log logs/error.log info;

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
"Authorization: Bearer " . substr($::Good, 0, -3) . "*ab"
--- error_code: 401
--- error_log eval
qr/invalid token: invalid base64url in signature, token "eyJ[A-Za-z0-9_-]{9}\.\.\.", client/
--- no_error_log eval
[substr($::Good, 0, 13), "[error]"]



=== TEST 5: the algorithm is bound to the JWK's "alg"
--- user_files eval
">>> jwks.json\n" . GwAuth::gw_jwks(GwAuth::gw_jwk($::K{r1}, kid => 'r1',
                                                  alg => 'RS256'))
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_header_alg\n";
    }
--- request eval
["GET /t?t=" . GwAuth::gw_token($::K{r1}, 'RS256', \%::C, { kid => 'r1' }),
 "GET /t?t=" . GwAuth::gw_token($::K{r1}, 'PS256', \%::C, { kid => 'r1' }),
 "GET /t?t=" . GwAuth::gw_token($::K{r1}, 'RS512', \%::C, { kid => 'r1' })]
--- error_code eval
[200, 401, 401]
--- response_body eval
["ok RS256\n", '{"error":"Unauthorized","reason":"invalid"}',
 '{"error":"Unauthorized","reason":"invalid"}']



=== TEST 6: an oversize token is rejected before any parsing
--- http_config
    large_client_header_buffers 4 64k;
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok\n";
    }
--- request eval
["GET /t?t=" . GwAuth::gw_token($::K{r1}, 'RS256',
                                { %::C, pad => 'x' x 5500 }, { kid => 'r1' }),
 "GET /t?t=" . GwAuth::gw_token($::K{r1}, 'RS256',
                                { %::C, pad => 'x' x 6500 }, { kid => 'r1' })]
--- error_code eval
[200, 401]
--- response_body eval
["ok\n", '{"error":"Unauthorized","reason":"invalid"}']



=== TEST 7: an oversize token is logged as such
--- http_config
    large_client_header_buffers 4 64k;
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
"Authorization: Bearer " . GwAuth::gw_token($::K{r1}, 'RS256',
                                { %::C, pad => 'x' x 6500 }, { kid => 'r1' })
--- error_code: 401
--- error_log eval
qr/gw_auth: token too long: \d+ bytes/



=== TEST 8: alg none, as logged
--- config
    location /t {
        gw_auth_jwt "api" token=$http_x_token;
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok\n";
    }
--- request
GET /t
--- more_headers eval
"X-Token: " . GwAuth::gw_forge({ alg => 'none', kid => 'r1' }, \%::C, 'x')
--- error_code: 401
--- error_log
gw_auth: invalid token: unsupported alg



=== TEST 9: HS256 made with the RSA public key as secret, as logged
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
"Authorization: Bearer "
. GwAuth::gw_token(GwAuth::gw_pem($::K{r1}), 'HS256', \%::C, { kid => 'r1' })
--- error_code: 401
--- error_log
gw_auth: invalid token: no key for alg, alg "HS256", kid "r1"



=== TEST 10: expired, not yet valid, leeway, non-integer times
--- config
    gw_auth_jwt "api" token=$arg_t;
    gw_auth_jwt_key_file ../html/jwks.json;

    location /strict {
        try_files /.none @ok;
    }

    location /lenient {
        gw_auth_jwt_leeway 120s;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_auth_status\n";
    }
--- request eval
my $t = sub { "GwAuth::gw_token"->($::K{r1}, 'RS256', { sub => 'a', @_ },
                                   { kid => 'r1' }) };
["GET /strict?t=" . $t->(exp => $::Now - 60),
 "GET /lenient?t=" . $t->(exp => $::Now - 60),
 "GET /lenient?t=" . $t->(exp => $::Now - 600),
 "GET /strict?t=" . $t->(nbf => $::Now + 60),
 "GET /lenient?t=" . $t->(nbf => $::Now + 60),
 "GET /lenient?t=" . $t->(nbf => $::Now + 600),
 "GET /strict?t=" . $t->(exp => $::Now + 60.5, nbf => $::Now - 0.5),
 "GET /strict?t=" . $t->(exp => $::Now - 0.25)]
--- error_code eval
[401, 200, 401, 401, 200, 401, 200, 401]
--- response_body eval
['{"error":"Unauthorized","reason":"expired"}', "ok ok\n",
 '{"error":"Unauthorized","reason":"expired"}',
 '{"error":"Unauthorized","reason":"premature"}', "ok ok\n",
 '{"error":"Unauthorized","reason":"premature"}', "ok ok\n",
 '{"error":"Unauthorized","reason":"expired"}']



=== TEST 11: an HMAC key shorter than the hash: Plus takes it
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub\n";
    }
--- request eval
"GET /t?t=" . GwAuth::gw_token($::K{h1}, 'HS512', \%::C, { kid => 'h1' })
--- response_body
ok alice



=== TEST 12: strict mode refuses it, and says why
--- config
    error_log logs/error.log info;

    location /strict {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file ../html/jwks.json;
        gw_auth_jwt_key_strict on;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_sub\n";
    }
--- request eval
"GET /strict?t=" . GwAuth::gw_token($::K{h1}, 'HS512', \%::C, { kid => 'h1' })
--- error_code: 401
--- error_log eval
qr/invalid token: oct key shorter than the hash of the alg \(RFC 7518, 3.2\), alg "HS512", kid "h1"/
--- no_error_log
[error]
no key for alg
