# Copyright (C) nginx-gw authors
package GwDemo;

# The demo's own configuration for the suites: examples/nginx.conf and
# examples/backend.conf, read when a suite starts and rewritten for free
# ports as examples/run-demo does for 127.0.0.1, then cut into the sections
# of a Test::Nginx block.  A demo suite therefore fails when the demo
# regresses: nothing of the gateway's configuration is copied into a .t file.
#
#   use GwDemo;
#   add_block_preprocessor(GwDemo::defaults(backends => {...}));
#
# What becomes what:
#   load_module lines          main_config (the modules of the build dir)
#   error_log's level          log_level (so a test sees what the demo logs;
#                              nginx's default "error" when it sets none)
#   http { ... }               http_config, less default_type (into the
#                              server: Test::Nginx sets its own)
#   the server on 8080         config: its body, less "listen"; the block's
#                              requests go to it (no_root_location)
#   other servers (metrics)    http_config, on free ports ($GwDemo::Port{...})
#   backend.conf's server      http_config, once per backend (app1..app3 and
#                              the canary), on free ports, in the same nginx
#   upstream app1:8080 ...     127.0.0.1:<that backend's port>
#   redis:6379                 the suite's Redis, with a key prefix of its own
#                              and a 1s deadline (shared Redis, valgrind)
#   logs/gateway.log           logs/access.log (--- access_log sees it)
#   cache/...                  logs/cache-... (made per block)
#   jwks.json                  html/jwks.json: $GwDemo::Jwks, from $GwDemo::Key
#
# Options of defaults() / blocks():
#   backends => { '/api/orders' => 'return 503;' }  replaces, in every
#       backend, the body of the location with that exact name (a fault);
#       or { canary => { '/api/orders' => ... } } for one backend only
#   config => "..."        appended to the gateway's server (a helper
#                          location of the test; never a change of the demo)

use strict;
use warnings;

use FindBin;
use IO::Socket::INET;
use GwAuth;
use GwTest;

our $Top = "$FindBin::Bin/..";
our $Key = gw_key('gw-demo', 'rsa');
our $Jwks = gw_jwks(gw_jwk($Key, kid => 'demo', alg => 'RS256'));
our (%Port, %Backend);

my @backends = qw(app1 app2 app3 canary1);

for my $name (@backends, 'metrics') {
    $Port{$name} = free_port();
}

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
        or die "GwDemo: no free port: $!";
    return $s->sockport;
}

sub slurp {
    my $f = shift;
    open my $fh, '<', $f or die "GwDemo: $f: $!";
    local $/;
    return scalar <$fh>;
}

# a demo token: token(sub, extra claims)
sub token {
    my ($sub, %claims) = @_;
    return gw_token($Key, 'RS256', { sub => $sub, exp => time + 3600,
                                     %claims }, { kid => 'demo' });
}

# --- a small reader of nginx configuration text ---------------------------

# The statements of one level: [name, args text, body text or undef, raw].
# Quotes, escapes and comments are respected; bodies are returned verbatim.
sub statements {
    my $text = shift;
    my (@out, $start, $depth, $q, $open);
    my $i = 0;
    my $n = length $text;

    $depth = 0;
    $start = 0;

    while ($i < $n) {
        my $c = substr $text, $i, 1;

        if ($q) {
            if ($c eq '\\') {
                $i += 2;
                next;
            }
            undef $q if $c eq $q;
            $i++;
            next;
        }

        if ($c eq '"' || $c eq "'") {
            $q = $c;

        } elsif ($c eq '#'
                 && ($i == 0 || substr($text, $i - 1, 1) =~ /[\s;{}]/))
        {
            my $e = index $text, "\n", $i;
            $i = $e < 0 ? $n : $e;
            next;

        } elsif ($c eq '{') {
            $open = $i if $depth == 0;
            $depth++;

        } elsif ($c eq '}') {
            $depth--;
            die "GwDemo: unbalanced } in configuration" if $depth < 0;

            if ($depth == 0) {
                push @out, stmt(substr($text, $start, $open - $start),
                                substr($text, $open + 1, $i - $open - 1),
                                substr($text, $start, $i + 1 - $start));
                $start = $i + 1;
            }

        } elsif ($c eq ';' && $depth == 0) {
            push @out, stmt(substr($text, $start, $i - $start), undef,
                            substr($text, $start, $i + 1 - $start));
            $start = $i + 1;
        }

        $i++;
    }

    die "GwDemo: unterminated block in configuration" if $depth;

    return @out;
}

sub stmt {
    my ($head, $body, $raw) = @_;

    $head =~ s/#[^\n]*//g;
    $head =~ s/^\s+|\s+$//g;
    $raw =~ s/^\s*\n//;

    my ($name, $args) = split /\s+/, $head, 2;

    return [$name, $args // '', $body, $raw];
}

sub find_block {
    my ($stmts, $name, $args) = @_;

    for my $s (@$stmts) {
        return $s if $s->[0] eq $name && defined $s->[2]
                     && (!defined $args || $s->[1] eq $args);
    }

    return undef;
}

# --- the backends ----------------------------------------------------------

sub backends {
    my %o = @_;
    my @main = statements(slurp("$Top/examples/backend.conf"));
    my $http = find_block(\@main, 'http') or die "GwDemo: backend http";
    my (@inner, $server, $out);

    for my $s (statements($http->[2])) {
        if ($s->[0] eq 'server') {
            $server = $s;
        } elsif ($s->[0] =~ /^(?:default_type|access_log)$/) {
            push @inner, "        $s->[3]\n";
        } else {
            $out .= "    $s->[3]\n";
        }
    }

    die "GwDemo: no server in backend.conf" unless $server;

    for my $name (@backends) {
        my $faults = $o{backends} || {};
        my %loc = (%{ ref $faults->{$name} ? $faults->{$name} : {} },
                   map { $_ => $faults->{$_} } grep { m{^[/=~@]} }
                   keys %$faults);
        my $body = '';

        for my $s (statements($server->[2])) {
            if ($s->[0] eq 'location' && exists $loc{$s->[1]}) {
                $body .= "        location $s->[1] { $loc{$s->[1]} }\n";
            } else {
                $body .= "        $s->[3]\n";
            }
        }

        $body =~ s/\@NAME\@/$name/g;
        $body =~ s/\@PORT\@/$Port{$name}/g;

        $out .= "\n    server {\n" . join('', @inner) . $body . "    }\n";
    }

    return $out;
}

# --- the gateway ------------------------------------------------------------

my $blocks_made = 0;

sub blocks {
    my %o = @_;
    my @main = statements(slurp("$Top/examples/nginx.conf"));
    my (@modules, %sec);
    my $level = 'error';    # nginx's own default, when the demo sets none

    for my $s (@main) {
        if ($s->[0] eq 'load_module') {
            $s->[1] =~ m{ngx_http_gw_(\w+)_module\.so$}
                or die "GwDemo: load_module $s->[1]";
            push @modules, $1;

        } elsif ($s->[0] eq 'error_log') {
            $level = (split /\s+/, $s->[1])[1] // 'error';
        }
    }

    my $http = find_block(\@main, 'http') or die "GwDemo: no http block";
    my $prefix = "gw:demo:$$:" . ++$blocks_made . ":";
    my ($http_config, $config, $type) = ('', undef, '');

    for my $s (statements($http->[2])) {
        my $raw = $s->[3];

        if ($s->[0] eq 'default_type') {
            $type = "    $raw\n";
            next;
        }

        if ($s->[0] eq 'server') {
            my ($listen) = grep { $_->[0] eq 'listen' }
                           statements($s->[2]);
            die "GwDemo: a server without listen" unless $listen;

            if ($listen->[1] =~ /^(?:\S*:)?8080\b/) {
                die "GwDemo: two servers on 8080" if defined $config;
                ($config = $s->[2]) =~ s/^[ \t]*listen[^;]*;[ \t]*\n//m;
                next;
            }

            $listen->[1] =~ /^(?:\S*:)?8081\b/
                or die "GwDemo: unknown server port $listen->[1]";
            $raw =~ s/listen[^;]*;/listen 127.0.0.1:$Port{metrics};/;
        }

        $http_config .= "    $raw\n";
    }

    die "GwDemo: no server on 8080" unless defined $config;

    for my $name (@backends) {
        $http_config =~ s/\b\Q$name\E:8080\b/127.0.0.1:$Port{$name}/g;
    }

    $http_config =~ s{\bredis:6379\b}
                     {127.0.0.1:\$TEST_NGINX_REDIS_PORT prefix=$prefix}
        or die "GwDemo: no redis:6379 in the demo";
    # the demo's Redis deadline is for a quiet Redis of its own; the
    # suites' Redis is shared and nginx may run under valgrind
    $http_config =~ s{(gw_ratelimit_redis\s[^;]*\btimeout=)\w+}{${1}1s};
    # no span collector in the suites (t/trace-otlp*.t test the export)
    $http_config =~ s{^\s*gw_trace_otlp\s[^;]*;\n}{}mg
        or die "GwDemo: no gw_trace_otlp in the demo";
    $http_config =~ s{\blogs/gateway\.log\b}{logs/access.log}g;
    $http_config =~ s{\bcache/}{logs/cache-}g;

    $config =~ s{(gw_auth_jwt_key_file\s+)jwks\.json}{$1../html/jwks.json}
        or die "GwDemo: no jwks.json key file in the demo";

    $config = $type . $config . ($o{config} // '');

    $sec{main_config} = GwTest::load_modules(@modules);
    $sec{http_config} = $http_config . backends(%o);
    $sec{config} = $config;
    $sec{user_files} = gw_files('jwks.json' => $Jwks);
    $sec{log_level} = $level;
    $sec{prefix} = $prefix;

    return \%sec;
}

# A block preprocessor: the demo's sections, then the GwTest defaults
# ([error] and worse fail a block).  A block's own --- config,
# --- http_config and --- user_files are ADDED to the demo's (helper
# locations and files of a test, never a change of the demo).  faults => { 'words' => { backends option } }
# applies to the blocks whose name contains the words.
sub defaults {
    my %o = @_;
    my $gwtest = GwTest::defaults();

    return sub {
        my $block = shift;
        my %b = %o;
        my $faults = delete $b{faults} || {};

        for my $words (sort keys %$faults) {
            next unless index($block->name, $words) >= 0;
            $b{backends} = { %{ $b{backends} || {} }, %{ $faults->{$words} } };
        }

        $b{config} = ($b{config} // '') . ($block->config // '');

        my $sec = blocks(%b);

        $sec->{http_config} .= $block->http_config // '';

        $sec->{user_files} = ($block->user_files // '') . $sec->{user_files};

        for my $s (qw(main_config http_config config user_files log_level)) {
            next unless defined $sec->{$s};
            next if $s =~ /^(?:main_config|log_level)$/ && defined $block->$s;
            $block->set_value($s, $sec->{$s});
        }

        $gwtest->($block);
    };
}

1;
