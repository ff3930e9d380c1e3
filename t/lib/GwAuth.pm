# Copyright (C) nginx-gw authors
package GwAuth;

# Keys and tokens for the gw_auth suites, made at test time by
# implementations independent of the module: Crypt::JWT (JWS, and JWE for
# every alg/enc pair it has), CryptX primitives assembled here for the JWE
# algorithms Crypt::JWT 0.034 lacks (RSA-OAEP-384, RSA-OAEP-512), and
# Debian's python3-jwcrypto for Ed448, which CryptX lacks.

use strict;
use warnings;

use Crypt::AuthEnc::GCM qw(gcm_encrypt_authenticate);
use Crypt::JWT qw(encode_jwt);
use Crypt::Mac::HMAC qw(hmac);
use Crypt::Mode::CBC;
use Crypt::PK::ECC;
use Crypt::PK::Ed25519;
use Crypt::PK::RSA;
use Crypt::PRNG qw(random_bytes);
use JSON::PP;
use MIME::Base64 qw(encode_base64url);

use Exporter 'import';

our @EXPORT = qw(gw_key gw_jwk gw_jwks gw_pem gw_token gw_forge gw_b64
                 gw_json gw_files gw_private_jwk gw_jwe gw_tamper
                 gw_ed448);

my %keys;
my $json = JSON::PP->new->canonical;

# gw_key(name, type): one key per name for the whole .t file.
# types: rsa (2048), rsa1024, p256, p384, p521, ed25519, oct32, oct64
sub gw_key {
    my ($name, $type) = @_;

    return $keys{$name} if $keys{$name};

    my $k;

    if ($type =~ /^rsa(\d*)$/) {
        $k = Crypt::PK::RSA->new;
        $k->generate_key(($1 || 2048) / 8);

    } elsif ($type =~ /^p(256|384|521)$/) {
        $k = Crypt::PK::ECC->new;
        $k->generate_key({ 256 => 'secp256r1', 384 => 'secp384r1',
                           521 => 'secp521r1' }->{$1});

    } elsif ($type eq 'ed25519') {
        $k = Crypt::PK::Ed25519->new;
        $k->generate_key;

    } elsif ($type =~ /^oct(\d+)$/) {
        $k = random_bytes($1);

    } else {
        die "unknown key type $type";
    }

    return $keys{$name} = $k;
}

# the public JWK of a key as a hash, with extra members (kid, alg, use)
sub gw_jwk {
    my ($k, %extra) = @_;

    my $jwk = ref $k ? $json->decode($k->export_key_jwk('public'))
                     : { kty => 'oct', k => encode_base64url($k) };

    return { %$jwk, %extra };
}

sub gw_jwks {
    return $json->encode({ keys => [ @_ ] });
}

sub gw_pem {
    my ($k) = @_;
    return $k->export_key_pem('public');
}

sub gw_json {
    return $json->encode(@_);
}

# a signed token: gw_token(key, alg, {claims}, {extra header members})
sub gw_token {
    my ($k, $alg, $claims, $header) = @_;

    return encode_jwt(payload => $claims, alg => $alg, key => $k,
                      extra_headers => $header || {});
}

# the private JWK of a key (RSA: n, e, d, p, q, dp, dq, qi), or an oct JWK
sub gw_private_jwk {
    my ($k, %extra) = @_;

    my $jwk = ref $k ? $json->decode($k->export_key_jwk('private'))
                     : { kty => 'oct', k => encode_base64url($k) };

    return { %$jwk, %extra };
}

# an encrypted token: gw_jwe(key, alg, enc, payload, {extra header})
# (payload: a hash of claims, or text such as a JWS for nested tokens)
sub gw_jwe {
    my ($k, $alg, $enc, $payload, $header) = @_;

    return gw_jwe_oaep($k, $alg, $enc, $payload, $header)
        if $alg =~ /^RSA-OAEP-(384|512)$/;

    return encode_jwt(payload => $payload, alg => $alg, enc => $enc,
                      key => $k, extra_headers => $header || {});
}

# RSA-OAEP-384 / -512 (SHA-2 for OAEP and MGF1): CryptX's RSA, AES-GCM,
# AES-CBC and HMAC, put together as RFC 7516 5.1 and RFC 7518 5.2 say
sub gw_jwe_oaep {
    my ($k, $alg, $enc, $payload, $header) = @_;

    my ($bits) = $alg =~ /(\d+)$/;
    $payload = $json->encode($payload) if ref $payload;

    my %size = ('A128CBC-HS256' => 32, 'A192CBC-HS384' => 48,
                'A256CBC-HS512' => 64, A128GCM => 16, A192GCM => 24,
                A256GCM => 32);
    my $cek = random_bytes($size{$enc});
    my $ek = $k->encrypt($cek, 'oaep', "SHA$bits", '');

    my $h = encode_base64url($json->encode({ %{ $header || {} },
                                             alg => $alg, enc => $enc }));
    my ($iv, $ct, $tag);

    if ($enc =~ /GCM$/) {
        $iv = random_bytes(12);
        ($ct, $tag) = gcm_encrypt_authenticate('AES', $cek, $iv, $h,
                                               $payload);
    } else {
        my $half = length($cek) / 2;
        my ($mac_key, $enc_key) = (substr($cek, 0, $half),
                                   substr($cek, $half));
        my ($hash) = $enc =~ /HS(\d+)$/;
        $iv = random_bytes(16);
        $ct = Crypt::Mode::CBC->new('AES', 1)->encrypt($payload, $enc_key,
                                                       $iv);
        my $al = pack('N2', 0, length($h) * 8);
        $tag = substr(hmac("SHA$hash", $mac_key, $h . $iv . $ct . $al),
                      0, $half);
    }

    return join '.', $h, map { encode_base64url($_) } $ek, $iv, $ct, $tag;
}

# flips one bit in the middle of part n (0-based) of a compact token, the
# base64url still valid; with "cut", drops the part's last byte instead
sub gw_tamper {
    my ($token, $n, $cut) = @_;

    my @p = split /\./, $token, -1;
    my $b = MIME::Base64::decode_base64url($p[$n]);

    if ($cut) {
        chop $b;
    } else {
        my $i = int(length($b) / 2);
        substr($b, $i, 1) = chr(ord(substr($b, $i, 1)) ^ 0x10);
    }

    $p[$n] = encode_base64url($b);

    return join '.', @p;
}

# an Ed448 key and a token signed with it, by python3-jwcrypto: returns
# (public JWK as a hash, token)
sub gw_ed448 {
    my ($claims, $kid) = @_;

    my $c = $json->encode($claims);
    my $py = join "\n",
        'import sys',
        'from jwcrypto import jwk, jwt',
        'k = jwk.JWK.generate(kty="OKP", crv="Ed448", kid=sys.argv[2])',
        't = jwt.JWT(header={"alg": "EdDSA", "kid": sys.argv[2]},',
        '            claims=sys.argv[1])',
        't.make_signed_token(k)',
        'print(k.export_public())',
        'print(t.serialize())';

    # Debian's python3, where python3-jwcrypto is installed
    open my $p, '-|', '/usr/bin/python3', '-c', $py, $c, $kid
        or die "python3: $!";
    chomp(my @out = <$p>);
    close $p or die "python3-jwcrypto failed (is it installed?)";

    return ($json->decode($out[0]), $out[1]);
}

sub gw_b64 {
    return encode_base64url($_[0]);
}

# a hand-made token: header and payload given as JSON text or hashes
sub gw_forge {
    my ($header, $payload, $sig) = @_;

    $header = $json->encode($header) if ref $header;
    $payload = $json->encode($payload) if ref $payload;

    return join '.', encode_base64url($header), encode_base64url($payload),
                     encode_base64url(defined $sig ? $sig : '');
}

# user_files text for (name => content, ...)
sub gw_files {
    my %f = @_;
    return join '', map { ">>> $_\n$f{$_}\n" } sort keys %f;
}

1;
