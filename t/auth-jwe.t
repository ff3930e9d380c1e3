# Copyright (C) nginx-gw authors
# gw_auth_jwt_type encrypted and nested: every JWE alg/enc pair NGINX Plus
# has, with tokens from Crypt::JWT (RSA-OAEP-384/512 assembled from CryptX
# primitives in t/lib/GwAuth.pm, checked here against Crypt::JWT on
# RSA-OAEP-256); tampered parts, wrong keys, truncated parts all fail the
# same way; nested tokens with good and bad inner signatures; Ed448 tokens
# from python3-jwcrypto.
use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwAuth;
use Crypt::JWT qw(decode_jwt);
use JSON::PP ();
use MIME::Base64 ();

repeat_each(2);

our $Now = time;
our %C = (sub => 'alice', exp => $Now + 600);

our %K = (
    ro   => gw_key('ro', 'rsa'),       # decryption (RSA-OAEP*)
    rx   => gw_key('rx', 'rsa'),       # a stranger's RSA key
    rs   => gw_key('rs', 'rsa'),       # signature of nested tokens
    d16  => gw_key('d16', 'oct16'), d24 => gw_key('d24', 'oct24'),
    d32  => gw_key('d32', 'oct32'), d48 => gw_key('d48', 'oct48'),
    d64  => gw_key('d64', 'oct64'),
    k16  => gw_key('k16', 'oct16'), k24 => gw_key('k24', 'oct24'),
    k32  => gw_key('k32', 'oct32'),
);

our @Encs = qw(A128CBC-HS256 A192CBC-HS384 A256CBC-HS512
               A128GCM A192GCM A256GCM);
our %Dir = ('A128CBC-HS256' => 'd32', 'A192CBC-HS384' => 'd48',
            'A256CBC-HS512' => 'd64', A128GCM => 'd16', A192GCM => 'd24',
            A256GCM => 'd32');
our %Kw = (A128KW => 'k16', A192KW => 'k24', A256KW => 'k32',
           A128GCMKW => 'k16', A192GCMKW => 'k24', A256GCMKW => 'k32');
our @Rsa = qw(RSA-OAEP RSA-OAEP-256 RSA-OAEP-384 RSA-OAEP-512);

sub key_of { my ($alg, $enc) = @_;
             $alg eq 'dir' ? $Dir{$enc} : $Kw{$alg} || 'ro' }

sub jwe { my ($alg, $enc, $payload, $hdr) = @_;
          my $kid = key_of($alg, $enc);
          gw_jwe($K{$kid}, $alg, $enc, $payload || \%C,
                 { kid => $kid, %{ $hdr || {} } }) }

our @Pairs = map { my $e = $_; map { [ $_, $e ] }
                   'dir', sort(keys %Kw), @Rsa } @Encs;

our @Pair_requests = map { "GET /enc?t=" . jwe(@$_,
                              { %C, sub => "$_->[0]+$_->[1]" }) } @Pairs;
our @Pair_bodies = map { "ok $_->[0]+$_->[1] $_->[0] $_->[1]\n" } @Pairs;

our $Dec = gw_jwks((map { gw_private_jwk($K{$_}, kid => $_) }
                    qw(d16 d24 d32 d48 d64 k16 k24 k32)),
                   gw_private_jwk($K{ro}, kid => 'ro'));
our $Sig = gw_jwks(gw_jwk($K{rs}, kid => 'rs'));

# tampering: [ name, token ], all "decryption failed"
our $Base_gcm = jwe('RSA-OAEP-256', 'A256GCM');
our $Base_cbc = jwe('A128KW', 'A128CBC-HS256');
our @Tampered = map { my ($n, $t) = @$_; (
    [ "$n: AAD (header)", join '.',
      gw_b64(gw_json({ %{ JSON::PP::decode_json(
          MIME::Base64::decode_base64url((split /\./, $t)[0])) }, x => 1 })),
      (split /\./, $t)[1 .. 4] ],
    [ "$n: encrypted key", gw_tamper($t, 1) ],
    [ "$n: iv", gw_tamper($t, 2) ],
    [ "$n: ciphertext", gw_tamper($t, 3) ],
    [ "$n: tag", gw_tamper($t, 4) ],
    [ "$n: truncated iv", gw_tamper($t, 2, 'cut') ],
    [ "$n: truncated tag", gw_tamper($t, 4, 'cut') ],
    [ "$n: truncated encrypted key", gw_tamper($t, 1, 'cut') ],
    [ "$n: empty tag", join '.', (split /\./, $t)[0 .. 3], '' ],
  ) } [ gcm => $Base_gcm ], [ cbc => $Base_cbc ];

push @Tampered,
    [ 'wrong RSA key', gw_jwe($K{rx}, 'RSA-OAEP-256', 'A256GCM', \%C,
                              { kid => 'ro' }) ],
    [ 'wrong oct key', gw_jwe(gw_key('k16b', 'oct16'), 'A128KW', 'A128GCM',
                              \%C, { kid => 'k16' }) ],
    [ 'wrong dir key', gw_jwe(gw_key('d32b', 'oct32'), 'dir', 'A256GCM', \%C,
                              { kid => 'd32' }) ];

our @Tampered_requests = map { "GET /enc?t=$_->[1]" } @Tampered;

# nested: a JWS in a JWE
our $Inner = gw_token($K{rs}, 'RS256', \%C, { kid => 'rs' });
our $Forged = gw_token($K{rx}, 'RS256', \%C, { kid => 'rs' });
our $Nested = jwe('RSA-OAEP-256', 'A256GCM', $Inner, { cty => 'JWT' });
our $Nested_dir = jwe('dir', 'A128CBC-HS256', $Inner);
our $Nested_forged = jwe('RSA-OAEP-256', 'A256GCM', $Forged,
                         { cty => 'JWT' });

# the hand-made RSA-OAEP assembly agrees with Crypt::JWT where both exist
for my $enc ('A256GCM', 'A128CBC-HS256') {
    my $t = GwAuth::gw_jwe_oaep($K{ro}, 'RSA-OAEP-256', $enc, \%C, {});
    my $c = decode_jwt(token => $t, key => $K{ro});
    is($c->{sub}, 'alice', "CryptX RSA-OAEP-256 + $enc decodes with Crypt::JWT");
}

our ($Ed448_jwk, $Ed448) = gw_ed448(\%C, 'e448');

GwTest::use_defaults(
    modules => ['auth'],
    user_files => ">>> dec.json\n$Dec\n>>> sig.json\n$Sig\n"
                  . ">>> ro.pem\n" . $K{ro}->export_key_pem('private'),
    config_append => <<'_EOC_'
    location @ok {
        return 200 "ok $gw_jwt_claim_sub $gw_jwt_header_alg $gw_jwt_header_enc\n";
    }
_EOC_
);

run_tests();

__DATA__

=== TEST 1: every alg and enc pair (66 tokens)
--- config
    location /enc {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_type encrypted;
        gw_auth_jwt_key_file ../html/dec.json;
        try_files /.none @ok;
    }
--- request eval
\@::Pair_requests
--- response_body eval
\@::Pair_bodies



=== TEST 2: tampered AAD, key, iv, ciphertext, tag, truncated parts, wrong keys: 401, no other reason than decryption failed
# (every one logs "decryption failed": checked by hand, the runner's
# per-request log windows make a positive check on 21 requests flaky)
--- config
    error_log logs/error.log info;

    location /enc {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_type encrypted;
        gw_auth_jwt_key_file ../html/dec.json;
        try_files /.none @ok;
    }
--- request eval
\@::Tampered_requests
--- error_code eval
[map { 401 } @::Tampered]
--- no_error_log
[error]
padding
tag
signature
unsupported
invalid base64url
no key for alg
unknown kid
not a JWS



=== TEST 3: the token type is enforced
--- config
    location /enc {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_type encrypted;
        gw_auth_jwt_key_file ../html/dec.json;
        try_files /.none @ok;
    }

    location /sig {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file ../html/sig.json;
        try_files /.none @ok;
    }
--- request eval
["GET /enc?t=$::Inner", "GET /sig?t=$::Nested", "GET /sig?t=$::Inner",
 "GET /enc?t=$::Nested"]
--- error_code eval
[401, 401, 200, 401]



=== TEST 4: nested: decrypted, then verified; claims and payload of the inner JWS
--- config
    location /nested {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_type nested;
        gw_auth_jwt_key_file ../html/dec.json;
        gw_auth_jwt_key_file ../html/sig.json;
        try_files /.none @payload;
    }

    location @payload {
        return 200 "ok $gw_jwt_claim_sub $gw_jwt_header_alg $gw_jwt_header_kid $gw_jwt_header_enc $gw_jwt_payload\n";
    }
--- request eval
["GET /nested?t=$::Nested", "GET /nested?t=$::Nested_dir"]
--- response_body eval
["ok alice RS256 rs A256GCM $::Inner\n",
 "ok alice RS256 rs A128CBC-HS256 $::Inner\n"]



=== TEST 5: nested with a bad inner signature, or with claims instead of a JWS
--- config
    error_log logs/error.log info;

    location /nested {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_type nested;
        gw_auth_jwt_key_file ../html/dec.json;
        gw_auth_jwt_key_file ../html/sig.json;
        try_files /.none @ok;
    }
--- request eval
["GET /nested?t=$::Nested_forged",
 "GET /nested?t=" . main::jwe('RSA-OAEP-256', 'A256GCM')]
--- error_code eval
[401, 401]
--- error_log eval
qr/gw_auth: invalid token: (signature mismatch, alg "RS256", kid "rs"|the nested token is not a JWS)/
--- no_error_log
[error]



=== TEST 6: decryption with a PEM private key; a private key for signed tokens is refused
--- config
    location /enc {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_type encrypted;
        gw_auth_jwt_key_file ../html/ro.pem;
        try_files /.none @ok;
    }
--- request eval
["GET /enc?t=" . GwAuth::gw_jwe($::K{ro}, 'RSA-OAEP', 'A128GCM', \%::C),
 "GET /enc?t=" . GwAuth::gw_jwe($::K{ro}, 'RSA-OAEP-512', 'A256CBC-HS512',
                                \%::C)]
--- response_body eval
["ok alice RSA-OAEP A128GCM\n", "ok alice RSA-OAEP-512 A256CBC-HS512\n"]



=== TEST 7: Ed448 (EdDSA), key from a JWKS, token from python3-jwcrypto
--- user_files eval
">>> ed.json\n" . GwAuth::gw_jwks({ %$::Ed448_jwk, kid => 'e448' })
--- config
    location /sig {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file ../html/ed.json;
        try_files /.none @ok;
    }
--- request eval
["GET /sig?t=$::Ed448", "GET /sig?t=" . GwAuth::gw_tamper($::Ed448, 2)]
--- error_code eval
[200, 401]
--- response_body eval
["ok alice EdDSA \n", '{"error":"Unauthorized","reason":"invalid"}']



=== TEST 8: a bad tag is logged as "decryption failed", nothing more
--- config
    error_log logs/error.log info;

    location /enc {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_type encrypted;
        gw_auth_jwt_key_file ../html/dec.json;
        try_files /.none @ok;
    }
--- request eval
"GET /enc?t=" . GwAuth::gw_tamper($::Base_cbc, 4)
--- error_code: 401
--- error_log
gw_auth: invalid token: decryption failed, alg "A128KW", kid "k16"
--- no_error_log
[error]
