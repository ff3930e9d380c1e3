# Copyright (C) nginx-gw authors
package GwAuth;

# Keys and tokens for the gw_auth suites, made at test time by an
# implementation independent of the module (CryptX, Crypt::JWT).

use strict;
use warnings;

use Crypt::JWT qw(encode_jwt);
use Crypt::PK::ECC;
use Crypt::PK::Ed25519;
use Crypt::PK::RSA;
use Crypt::PRNG qw(random_bytes);
use JSON::PP;
use MIME::Base64 qw(encode_base64url);

use Exporter 'import';

our @EXPORT = qw(gw_key gw_jwk gw_jwks gw_pem gw_token gw_forge gw_b64
                 gw_json gw_files);

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
