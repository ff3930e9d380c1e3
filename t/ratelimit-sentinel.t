# Copyright (C) nginx-gw authors
# gw_ratelimit with Redis Sentinel (a master, a replica, three sentinels,
# started once for the file): the master is found through the sentinels,
# the limits are exact across two nginx instances; a forced failover
# (SENTINEL FAILOVER) during traffic is followed (+switch-master), the
# requests in flight get the fail policy within their deadline, and the
# limits are exact after it; a killed master is replaced the same way; a
# name the sentinels do not know, or no sentinel at all, is an error,
# never a wait.  The blocks change the setup: they run in order.

use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwRedis;
use POSIX ();
use Time::HiRes qw(sleep time);

repeat_each(1);
no_shuffle();

our $Slow = $ENV{TEST_NGINX_USE_VALGRIND} ? 10 : 1;

our ($M, $R, @S) = map { GwRedis::free_port() } 1 .. 5;
$ENV{TEST_NGINX_GWRL_S1} = $S[0];
$ENV{TEST_NGINX_GWRL_S2} = $S[1];
$ENV{TEST_NGINX_GWRL_S3} = $S[2];
$ENV{TEST_NGINX_GWRL_PEER_PORT} = GwRedis::free_port();

our %Pid;
$Pid{$M} = GwRedis::start_redis(port => $M);
$Pid{$R} = GwRedis::start_redis(port => $R,
                                args => ['--replicaof', '127.0.0.1', $M]);
GwRedis::start_sentinel(port => $_, master => $M) for @S;

our $Http = <<'END';
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_S1 127.0.0.1:$TEST_NGINX_GWRL_S2
                       127.0.0.1:$TEST_NGINX_GWRL_S3 sentinel=mymaster
                       timeout=300ms;
    gw_ratelimit_zone $arg_c zone=per_client rate=5r/m
                      algorithm=sliding_window;
    gw_ratelimit_fail closed;
    gw_ratelimit_log_level info;
END

our $Locations = <<'END';
    location /c {
        gw_ratelimit zone=per_client;
        add_header X-RL $gw_ratelimit_status always;
        empty_gif;
    }
END

our $Peer;

# The second instance: the same zones through the same sentinels.
sub start_peer { $Peer //= GwRedis::start_peer($Http, $Locations) }

sub alternate {
    my ($path, $n) = @_;
    my @ports = ($ENV{TEST_NGINX_SERVER_PORT}, $ENV{TEST_NGINX_GWRL_PEER_PORT});
    my @st;
    for my $i (0 .. $n - 1) {
        my %r = GwRedis::http_get($ports[$i % 2], $path);
        push @st, $r{status};
    }
    return @st;
}

# the master as the sentinels see it (the first that answers)
sub master {
    for my $s (@S) {
        my $r = eval { GwRedis::command($s, 'SENTINEL',
                                        'get-master-addr-by-name',
                                        'mymaster') };
        return $r->[1] if ref $r eq 'ARRAY';
    }
    return 0;
}

sub flush { GwRedis::command(master(), 'FLUSHALL') }

sub wait_for {
    my ($what, $secs, $test) = @_;
    my $t0 = time;
    while (time - $t0 < $secs) {
        return time - $t0 if $test->();
        sleep 0.05;
    }
    die "$what: not within $secs s";
}

# a replica in sync with its master
sub synced {
    my $port = shift;
    my $info = eval { GwRedis::command($port, 'INFO', 'replication') } // '';
    return $info =~ /master_link_status:up/;
}

# requests of client $c to both instances meanwhile, in a child: returns
# its pid; its statuses and the slow ones go to $file
sub traffic {
    my ($c, $secs, $file) = @_;
    my $pid = fork // die;
    return $pid if $pid;
    my %n;
    my $t0 = time;
    my $i = 0;
    while (time - $t0 < $secs) {
        my $port = $i++ % 2 ? $ENV{TEST_NGINX_GWRL_PEER_PORT}
                            : $ENV{TEST_NGINX_SERVER_PORT};
        my %r = GwRedis::http_get($port, "/c?c=$c");
        $n{$r{status}}++;
        $n{slow}++ if $r{secs} > 0.3 + 0.2 * $Slow;
        sleep 0.02;
    }
    open my $f, '>', $file or die;
    print $f join(' ', map { "$_=$n{$_}" } sort keys %n), "\n";
    close $f;
    POSIX::_exit(0);
}

GwTest::use_defaults(
    modules => ['ratelimit'],
    http_config => $Http,
    config => $Locations,
);

run_tests();

__DATA__

=== TEST 1: the master found through the sentinels; exact across two
instances
--- init
main::wait_for("the replica in sync", 10, sub { main::synced($main::R) });
main::flush();
main::start_peer();
my @bad;
for my $c (map { "client$_" } 1 .. 12) {
    my @st = main::alternate("/c?c=$c", 7);
    push @bad, "$c: @st" unless "@st" eq "200 200 200 200 200 429 429";
}
Test::More::is("@bad", '', "each client: exactly 5 of 7, on both");
Test::More::is(GwRedis::command($main::M, 'ZCARD',
                                'gw:rl:per_client:s:{client1}'),
               5, "counted on the master");
--- request
GET /c?c=client1
--- error_code: 429
--- response_headers
X-RL: REJECTED



=== TEST 2: SENTINEL FAILOVER during traffic: followed, in-flight requests
get the fail policy within the deadline, exact after
--- init
main::flush();
main::start_peer();
my @st = main::alternate("/c?c=before", 6);
Test::More::is("@st", "200 200 200 200 200 429", "5 before the failover");
main::wait_for("the replica in sync", 10, sub { main::synced($main::R) });
my $log = ($ENV{TEST_NGINX_SERVROOT} || 't/servroot') . '/logs/traffic';
my $pid = main::traffic('before', 4, $log);
sleep 0.3;
my $r = GwRedis::command($main::S[0], 'SENTINEL', 'FAILOVER', 'mymaster');
Test::More::is($r, 'OK', "SENTINEL FAILOVER");
my $t = main::wait_for("the new master", 15,
                       sub { main::master() == $main::R });
Test::More::ok(1, sprintf("the sentinels name the replica after %.1f s", $t));
waitpid $pid, 0;
open my $f, '<', $log or die;
my $n = <$f>;
Test::More::unlike($n, qr/\b200=/, "the limited client never admitted: $n");
Test::More::unlike($n, qr/slow=/, "no request past its deadline");
my $probe = 0;
$t = main::wait_for("decisions again on both instances", 5, sub {
    my @st = main::alternate("/c?c=probe" . $probe++, 2);
    "@st" eq "200 200";
});
@st = main::alternate("/c?c=before", 4);
Test::More::is("@st", "429 429 429 429", "still limited after");
@st = main::alternate("/c?c=after", 7);
Test::More::is("@st", "200 200 200 200 200 429 429", "exact after");
Test::More::is(GwRedis::command($main::R, 'ZCARD',
                                'gw:rl:per_client:s:{after}'),
               5, "counted on the new master");
--- request
GET /c?c=after
--- error_code: 429
--- error_log eval
qr/\[notice\] .*gw_ratelimit: redis "mymaster": \+switch-master to 127\.0\.0\.1:\d+/
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 3: the master killed during traffic: requests fail closed at
once meanwhile, then the promoted replica decides, exact
--- init
main::flush();
main::start_peer();
my $old = main::master();
my ($replica) = grep { $_ != $old } $main::M, $main::R;
# the sentinels turn the old master into a replica within 10 s: sooner
GwRedis::command($replica, 'REPLICAOF', '127.0.0.1', $old)
    unless main::synced($replica);
main::wait_for("the replica in sync", 10, sub { main::synced($replica) });
main::wait_for("the sentinels see the replica", 15, sub {
    my $r = GwRedis::command($main::S[0], 'SENTINEL', 'REPLICAS', 'mymaster');
    grep { my %h = @$_; $h{port} == $replica && $h{flags} eq 'slave' } @$r;
});
my @st = main::alternate("/c?c=killed", 6);
Test::More::is("@st", "200 200 200 200 200 429", "5 before the kill");
sleep 0.2;
# the premise: the replica has the writes when its master dies
my $w = main::wait_for("the writes on the replica", 5, sub {
    GwRedis::command($replica, 'ZCARD', 'gw:rl:per_client:s:{killed}') == 5
});
Test::More::ok(1, sprintf("the replica has the writes after %.2f s", $w));
my $log = ($ENV{TEST_NGINX_SERVROOT} || 't/servroot') . '/logs/traffic';
my $pid = main::traffic('other', 2, $log);
GwRedis::stop($main::Pid{$old}, 'KILL');
$main::Pid{$old} = 0;
my $t = main::wait_for("a new master", 20,
                       sub { main::master() == $replica });
Test::More::ok(1, sprintf("the sentinels name the replica after %.1f s", $t));
waitpid $pid, 0;
open my $f, '<', $log or die;
my $n = <$f>;
Test::More::like($n, qr/\b503=/, "fail closed meanwhile: $n");
Test::More::unlike($n, qr/slow=/, "no request past its deadline");
my $probe = 0;
main::wait_for("decisions again on both instances", 5, sub {
    my @st = main::alternate("/c?c=probe" . $probe++, 2);
    "@st" eq "200 200";
});
@st = main::alternate("/c?c=killed", 4);
Test::More::is("@st", "429 429 429 429", "still limited after");
--- request
GET /c?c=killed
--- error_code: 429
--- error_log eval
qr/\[notice\] .*gw_ratelimit: redis "mymaster": the master is 127\.0\.0\.1:\d+/
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 4: a master the sentinels do not know: an error, never a wait
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_S1 sentinel=nosuch
                       timeout=300ms;
    gw_ratelimit_zone $arg_c zone=per_client rate=5r/m;
--- init
my %r = GwRedis::http_get($ENV{TEST_NGINX_SERVER_PORT}, "/c?c=a");
Test::More::ok($r{secs} < 0.5 * $main::Slow, "answered within the deadline");
--- request
GET /c?c=b
--- error_code: 200
--- response_headers
X-RL: ERROR
--- error_log
knows no master named "nosuch"



=== TEST 5: no sentinel answers: an error at once, never a wait
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_1
                       127.0.0.1:$TEST_NGINX_RAND_PORT_2 sentinel=mymaster
                       timeout=300ms;
    gw_ratelimit_zone $arg_c zone=per_client rate=5r/m;
--- init
my %r = GwRedis::http_get($ENV{TEST_NGINX_SERVER_PORT}, "/c?c=a");
Test::More::ok($r{secs} < 0.5 * $main::Slow, "answered within the deadline");
--- request
GET /c?c=b
--- error_code: 200
--- response_headers
X-RL: ERROR
--- error_log
connect failed: Connection refused
