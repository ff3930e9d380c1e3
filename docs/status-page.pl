#!/usr/bin/perl
# Copyright (C) nginx-gw authors
#
# Writes ngx_http_gw_metrics_page.c from docs/status-page.html: the page as
# one C string, and the Content-Security-Policy that lets it run exactly its
# own inline <style> and <script> (their SHA-256 hashes) and fetch only its
# own URL.  Run by "make status-page" after editing the page;
# t/metrics-status-page.t checks that the module serves this page and
# policy unchanged.

use strict;
use warnings;

use Digest::SHA qw(sha256_base64);

my ($in, $out) = @ARGV;
die "usage: $0 page.html out.c\n" unless $in && $out;

open my $fh, '<:raw', $in or die "$in: $!";
my $html = do { local $/; <$fh> };
close $fh;

sub hash_of {
    my ($tag) = @_;
    my @all = $html =~ m{<$tag>(.*?)</$tag>}gs;
    die "$in: exactly one <$tag> expected\n" unless @all == 1;
    my $h = sha256_base64($all[0]);
    $h .= '=' while length($h) % 4;
    return "'sha256-$h'";
}

my $csp = join '; ', "default-src 'none'", "script-src " . hash_of('script'),
          "style-src " . hash_of('style'), "connect-src 'self'",
          "img-src data:", "base-uri 'none'", "form-action 'none'",
          "frame-ancestors 'none'";

# C string literals of at most 70 source characters each
sub literal {
    my ($s, $indent) = @_;
    my @lines;

    for my $line (split /(?<=\n)/, $s) {
        my $cur = '';
        for my $c (split //, $line) {
            my $e = $c eq "\n" ? '\n' : $c eq '"' ? '\"' : $c eq '\\' ? '\\\\'
                  : $c;
            if (length($cur) + length($e) > 70) {
                push @lines, $cur;
                $cur = '';
            }
            $cur .= $e;
        }
        push @lines, $cur if $cur ne '';
    }

    return join "\n", map { "$indent\"$_\"" } @lines;
}

die "$in: only ASCII, please\n" if $html =~ /[^\x0a\x20-\x7e]/;

my $c = <<"EOF";

/*
 * Copyright (C) nginx-gw authors
 *
 * The gw_metrics status page, served by gw_metrics_endpoint to browsers.
 * Generated from docs/status-page.html by docs/status-page.pl
 * ("make status-page"): edit the page there, not here.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_gw_metrics_core.h"


ngx_str_t  ngx_http_gw_metrics_page = ngx_string(
@{[ literal($html, '    ') ]});


ngx_str_t  ngx_http_gw_metrics_page_csp = ngx_string(
@{[ literal($csp, '    ') ]});
EOF

open my $o, '>', "$out.tmp" or die "$out.tmp: $!";
print $o $c;
close $o or die "$out.tmp: $!";
rename "$out.tmp", $out or die "$out: $!";
