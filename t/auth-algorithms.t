# Copyright (C) nginx-gw authors
# Every supported algorithm with tokens from Crypt::JWT, keys from JWKS and
# PEM files, and the RFC 7515 Appendix A example tokens.
use Test::Nginx::Socket 'no_plan';
use GwTest;
use Crypt::JWT qw(decode_jwt);
use JSON::PP;
use GwAuth;

repeat_each(2);

our $Now = time;

our %K = (
    hs256 => gw_key('hs256', 'oct32'),
    hs384 => gw_key('hs384', 'oct48'),
    hs512 => gw_key('hs512', 'oct64'),
    rsa   => gw_key('rsa', 'rsa'),
    p256  => gw_key('p256', 'p256'),
    p384  => gw_key('p384', 'p384'),
    p521  => gw_key('p521', 'p521'),
    ed    => gw_key('ed', 'ed25519'),
);

our @Algs = (
    [ HS256 => 'hs256' ], [ HS384 => 'hs384' ], [ HS512 => 'hs512' ],
    [ RS256 => 'rsa' ], [ RS384 => 'rsa' ], [ RS512 => 'rsa' ],
    [ PS256 => 'rsa' ], [ PS384 => 'rsa' ], [ PS512 => 'rsa' ],
    [ ES256 => 'p256' ], [ ES384 => 'p384' ], [ ES512 => 'p521' ],
    [ EdDSA => 'ed' ],
);

our $Jwks = gw_jwks(map { gw_jwk($K{$_}, kid => $_) } sort keys %K);

sub tok {
    my ($alg, $key, $kid) = @_;
    return gw_token($K{$key}, $alg, { sub => "user-$alg", exp => $Now + 600 },
                    defined $kid ? { kid => $kid } : {});
}

our @Jwks_requests = map { "GET /t?t=" . tok($_->[0], $_->[1], $_->[1]) }
                     @Algs;
our @Jwks_bodies = map { "ok $_->[0] user-$_->[0]\n" } @Algs;

our @Pem_algs = grep { $_->[1] !~ /^hs/ } @Algs;
our $Pem = join '', map { gw_pem($K{$_}) } qw(rsa p256 p384 p521 ed);
our @Pem_requests = map { "GET /t?t=" . tok($_->[0], $_->[1]) } @Pem_algs;
our @Pem_bodies = map { "ok $_->[0] user-$_->[0]\n" } @Pem_algs;

# RFC 7515, Appendix A.1 - A.3 (exp 1300819380 is in 2011)
our $Payload = 'eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt'
             . 'cGxlLmNvbS9pc19yb290Ijp0cnVlfQ';

our $A1_jwk = '{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T'
            . '-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}';
our $A1 = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.$Payload."
        . 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';

our $A2_jwk = '{"kty":"RSA","e":"AQAB","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAk'
    . 'd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-y'
    . 'RT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bS'
    . 'f63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVM'
    . 'TBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9ia'
    . 'GNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"}';
our $A2 = "eyJhbGciOiJSUzI1NiJ9.$Payload."
    . 'cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuH'
    . 'Im4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFd'
    . 'iuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_e'
    . 'SN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6Ie'
    . 'YI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQ'
    . 'Ge77Rw';

our $A3_jwk = '{"kty":"EC","crv":"P-256",'
    . '"x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",'
    . '"y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}';
our $A3 = "eyJhbGciOiJFUzI1NiJ9.$Payload."
    . 'DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQ'
    . 'xfKTUJqPP3-Kg6NU1Q';

# the vectors, checked by an independent implementation first
for my $v ([ A1 => $A1, $A1_jwk ], [ A2 => $A2, $A2_jwk ],
           [ A3 => $A3, $A3_jwk ])
{
    my $claims = decode_jwt(token => $v->[1], key => decode_json($v->[2]),
                            verify_exp => 0);
    is($claims->{iss}, 'joe', "RFC 7515 $v->[0] verifies with Crypt::JWT");
}

sub tamper {
    my ($t) = @_;
    # flip one bit in the middle of the signature
    my ($h, $p, $s) = split /\./, $t;
    my $i = int(length($s) / 2);
    my $c = substr($s, $i, 1);
    substr($s, $i, 1) = $c eq 'A' ? 'B' : 'A';
    return "$h.$p.$s";
}

our @Rfc_requests = map { ("GET /leeway?t=$_", "GET /strict?t=$_",
                           "GET /strict?t=" . tamper($_)) } $A1, $A2, $A3;
our @Rfc_codes = map { (200, 401, 401) } 1 .. 3;
our @Rfc_bodies = map { ("ok joe true\n",
                         '{"error":"Unauthorized","reason":"expired"}',
                         '{"error":"Unauthorized","reason":"invalid"}') }
                  1 .. 3;

GwTest::use_defaults(
    modules => ['auth']
);

run_tests();

__DATA__

=== TEST 1: every algorithm, keys from a JWKS selected by kid
--- user_files eval
">>> jwks.json\n$::Jwks\n"
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file ../html/jwks.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_header_alg $gw_jwt_claim_sub\n";
    }
--- request eval
\@::Jwks_requests
--- response_body eval
\@::Jwks_bodies



=== TEST 2: every public-key algorithm, keys from one PEM file, no kid
--- user_files eval
">>> keys.pem\n$::Pem"
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file ../html/keys.pem;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_header_alg $gw_jwt_claim_sub\n";
    }
--- request eval
\@::Pem_requests
--- response_body eval
\@::Pem_bodies



=== TEST 3: a PEM key (no kid) verifies tokens that carry a kid
--- user_files eval
">>> keys.pem\n" . GwAuth::gw_pem($::K{rsa})
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file ../html/keys.pem;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_header_kid\n";
    }
--- request eval
"GET /t?t=" . main::tok('RS256', 'rsa', 'any-kid')
--- response_body
ok any-kid



=== TEST 4: several key files at one level add up
--- user_files eval
">>> rsa.pem\n" . GwAuth::gw_pem($::K{rsa})
. ">>> ec.json\n" . GwAuth::gw_jwks(GwAuth::gw_jwk($::K{p256}, kid => 'p256'))
--- config
    location /t {
        gw_auth_jwt "api" token=$arg_t;
        gw_auth_jwt_key_file ../html/rsa.pem;
        gw_auth_jwt_key_file ../html/ec.json;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_header_alg\n";
    }
--- request eval
["GET /t?t=" . main::tok('RS256', 'rsa'),
 "GET /t?t=" . main::tok('ES256', 'p256', 'p256')]
--- response_body eval
["ok RS256\n", "ok ES256\n"]



=== TEST 5: RFC 7515 A.1 (HS256), A.2 (RS256), A.3 (ES256)
--- http_config
    gw_auth_jwt_claim_set $is_root "http://example.com/is_root";
--- user_files eval
">>> keys.json\n{\"keys\":[$::A1_jwk,$::A2_jwk,$::A3_jwk]}\n"
--- config
    gw_auth_jwt "rfc" token=$arg_t;
    gw_auth_jwt_key_file ../html/keys.json;

    location /leeway {
        gw_auth_jwt_leeway 100y;
        try_files /.none @ok;
    }

    location /strict {
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_claim_iss $is_root\n";
    }
--- request eval
\@::Rfc_requests
--- error_code eval
\@::Rfc_codes
--- response_body eval
\@::Rfc_bodies



=== TEST 6: RFC 7515 A.1 with its key as a single JWK file
--- user_files eval
">>> a1.json\n$::A1_jwk\n"
--- config
    location /t {
        gw_auth_jwt "rfc" token=$arg_t;
        gw_auth_jwt_key_file ../html/a1.json;
        gw_auth_jwt_leeway 100y;
        try_files /.none @ok;
    }

    location @ok {
        return 200 "ok $gw_jwt_header_typ\n";
    }
--- request eval
"GET /t?t=$::A1"
--- response_body
ok JWT
