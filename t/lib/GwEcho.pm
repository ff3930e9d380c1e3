# Copyright (C) nginx-gw authors
package GwEcho;

# A real HTTP backend for the suites: it answers every request with the
# request head it received (request line and header lines, verbatim) as a
# text/plain body, so a test sees exactly what nginx sent upstream,
# duplicates and all.  A few received headers are also returned as
# X-Echo-<name> response headers, for $upstream_http_x_echo_* in logs.
#
#   use lib "$FindBin::Bin/lib"; use GwEcho;
#   GwEcho::start();          # sets $ENV{TEST_NGINX_ECHO_PORT}

use strict;
use warnings;

use IO::Socket::INET;
use IO::Select;
use POSIX ();

my ($child, $parent);

sub start {
    my $sock = IO::Socket::INET->new(Listen => 128, LocalAddr => '127.0.0.1',
                                     LocalPort => 0, ReuseAddr => 1)
        or die "GwEcho: listen: $!";

    $parent = $$;
    $child = fork;
    die "GwEcho: fork: $!" unless defined $child;

    if ($child == 0) {
        $SIG{PIPE} = 'IGNORE';
        while (1) {
            my $c = $sock->accept or next;
            eval { serve($c) };
            close $c;
        }
        POSIX::_exit(0);
    }

    $ENV{TEST_NGINX_ECHO_PORT} = $sock->sockport;
    close $sock;

    return $ENV{TEST_NGINX_ECHO_PORT};
}

sub serve {
    my $c = shift;
    my $sel = IO::Select->new($c);
    my $buf = '';

    while ($buf !~ /\r?\n\r?\n/) {
        $sel->can_read(5) or return;
        my $n = sysread $c, $buf, 65536, length $buf;
        return unless $n;
    }

    $buf =~ /^(.*?\r?\n)(\r?\n)/s;
    my $head = $1;
    my $rest = substr $buf, length($1) + length($2);

    if ($head =~ /^content-length:\s*(\d+)/mi) {
        my $left = $1 - length $rest;
        while ($left > 0) {
            $sel->can_read(5) or return;
            my $chunk;
            my $n = sysread $c, $chunk, $left;
            return unless $n;
            $left -= $n;
        }
    }

    my $echo = '';
    for my $name (qw(x-trace-id traceparent tracestate)) {
        if ($head =~ /^\Q$name\E:[ \t]*(.*?)[ \t]*\r?$/mi) {
            my $value = $1;
            (my $h = $name) =~ s/(^|-)(\w)/$1\u$2/g;
            $echo .= "X-Echo-$h: $value\r\n";
        }
    }

    my $body = $head;
    $body =~ s/\r\n/\n/g;

    my $status = $head =~ m{^\S+ /status/(\d{3})} ? $1 : 200;

    print $c "HTTP/1.1 $status Echo\r\nContent-Type: text/plain\r\n"
             . "Content-Length: " . length($body) . "\r\n"
             . "Connection: close\r\n$echo\r\n$body";
}

# A response_body_filters function: the echoed request head reduced to the
# headers matching $HEADERS (names lowercased, sorted by name; duplicates
# keep the order received), with random ids
# replaced by T1, T2... (32 hex digits) and S1, S2... (16 hex digits) in order
# of first appearance, so a test can state exactly what went upstream and
# that two places carry the same id.  Ids listed in @KEEP stay literal.

our $HEADERS = qr/^(?:x-trace-id|traceparent|tracestate|x-gw-[\w-]+)$/i;
our @KEEP;

sub canon {
    my $body = shift // '';
    my %keep = map { $_ => 1 } @KEEP;
    my (%ids, %n, @lines);

    for my $line (split /\n/, $body) {
        $line =~ /^([^:\s]+):[ \t]*(.*?)[ \t]*$/ or next;
        my ($name, $value) = ($1, $2);
        push @lines, [lc $name, $value] if $name =~ $HEADERS;
    }

    # by name (a stable sort keeps duplicates in the order received)
    @lines = sort { $a->[0] cmp $b->[0] } @lines;

    for my $l (@lines) {
        $l->[1] =~ s{\b([0-9a-f]{32}|[0-9a-f]{16})\b}{
            my $id = $1;
            my $k = length($id) == 32 ? 'T' : 'S';
            $keep{$id} ? $id : ($ids{$id} //= $k . ++$n{$k});
        }ge;
    }

    return join '', map { "$_->[0]: $_->[1]\n" } @lines;
}


# The defaults of the gw_trace suites (for GwTest::defaults): GET /t on a
# location that traces and proxies to the echo backend, telling it the
# request's variables in X-Gw-Vars, the echo reduced by canon().

our @TRACE_IDS = qw(4bf92f3577b34da6a3ce929d0e0e4736 00f067aa0ba902b7
                    12345678901234567890123456789012 1234567890123456);

sub trace_defaults {
    @KEEP = @TRACE_IDS;

    return (
        modules => ['trace'],
        request => "GET /t",
        filter  => \&canon,
        config  => <<'_EOC_');
    location /t {
        gw_trace on;
        proxy_set_header X-Gw-Vars
            "tid=$gw_trace_id span=$gw_span_id parent=$gw_parent_span_id sampled=$gw_trace_sampled";
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
_EOC_
}


END {
    local $?;

    if ($child && $parent && $$ == $parent) {
        kill 'KILL', $child;
        waitpid $child, 0;
    }
}

1;
