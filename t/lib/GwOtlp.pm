# Copyright (C) nginx-gw authors
package GwOtlp;

# The OTLP collector stand-in for the suites (tools/otlp/collector: every
# export decoded by python3-protobuf, independent of the module):
#
#   use GwOtlp; GwOtlp::start();
#
# sets $ENV{TEST_NGINX_OTLP_PORT} (the collector), ..._OTLP_BLACKHOLE_PORT
# (a listener that never answers) and ..._OTLP_DOWN_PORT (nothing listens).
# A block asks for the spans of its endpoint path through nginx:
# "GET /spans?path=/b1/v1/traces&n=1" proxied to the collector.
#
# canon() is a response_body_filters function for a block's responses: in
# the echo of the upstream request (t/lib/GwEcho.pm) it keeps traceparent,
# tracestate and x-trace-id; in the collector's span list it keeps
# everything.  Ids become T1, T2... (32 hex) and S1, S2... (16 hex) in
# order of first appearance across the responses of one block run, so a
# span's id can be matched with what went upstream; a UUID becomes UUID
# and an upstream time N.NNN.  Ids in @GwEcho::KEEP stay literal.

use strict;
use warnings;

use FindBin;
use IO::Socket::INET;
use POSIX ();

my ($pid, $parent);
our $pipe;
my (%ids, %n, $after_spans);

sub start {
    my $top = "$FindBin::Bin/..";

    $parent = $$;
    $pid = open(my $out, '-|');
    die "GwOtlp: fork: $!" unless defined $pid;

    if ($pid == 0) {
        exec '/usr/bin/python3', "$top/tools/otlp/collector", '--blackhole'
            or POSIX::_exit(127);
    }

    my $line = <$out>;
    die "GwOtlp: the collector did not start\n"
        unless defined $line && $line =~ /^collector (\d+) blackhole (\d+)/;

    $ENV{TEST_NGINX_OTLP_PORT} = $1;
    $ENV{TEST_NGINX_OTLP_BLACKHOLE_PORT} = $2;

    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
        or die "GwOtlp: $!";
    $ENV{TEST_NGINX_OTLP_DOWN_PORT} = $s->sockport;
    close $s;

    # keep the pipe open: the collector writes nothing more
    $pipe = $out;
}

sub map_ids {
    my $text = shift;
    no warnings "once";
    my %keep = map { $_ => 1 } @GwEcho::KEEP;

    $text =~ s{\b([0-9a-f]{32}|[0-9a-f]{16})\b}{
        my $id = $1;
        my $k = length($id) == 32 ? 'T' : 'S';
        $keep{$id} ? $id : ($ids{$id} //= $k . ++$n{$k});
    }ge;

    return $text;
}

sub canon {
    my $body = shift // '';

    return $body if $body =~ /^requests: /;

    # the error log: its gw_trace lines, from the level on, ports as PORT
    if ($body =~ m{^\d{4}/\d\d/\d\d }) {
        my @l = map { m{^\S+ \S+ (\[(?!debug)\w+\]) \d+#\d+: (?:\*\d+ )?(gw_trace: .*)$}
                      ? "$1 $2\n" : () } split /\n/, $body;
        s/"127\.0\.0\.1:\d+/"127.0.0.1:PORT/g for @l;
        $after_spans = 1;
        return join '', @l;
    }

    # a block run starts with a response after a span list (or the first)

    if ($after_spans // 1) {
        %ids = ();
        %n = ();
    }

    if ($body !~ /^spans: /) {
        $after_spans = 0;

        my @l = sort map { /^([^:]+):\s*(.*)$/ ? lc($1) . ": $2\n" : () }
                grep { /^(?:traceparent|tracestate|x-trace-id):/i }
                split /\n/, $body;

        return map_ids(join '', @l);
    }

    $after_spans = 1;

    $body =~ s/"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"/"UUID"/g;
    $body =~ s/^(attr gw\.upstream\.response_time: )"\d+\.\d{3}"$/$1"N.NNN"/mg;

    return map_ids($body);
}

# canon() reduced to the span lines matching a pattern (and "spans: N")
sub only {
    my $re = shift;

    return sub {
        my $out = canon(@_);
        return $out unless $out =~ /^spans: /;
        return join '', map { "$_\n" } grep { /^spans: / || $_ =~ $re }
                                         split /\n/, $out;
    };
}

END {
    local $?;

    if ($pid && $parent && $$ == $parent) {
        kill 'TERM', $pid;
        waitpid $pid, 0;
    }
}

1;
