# Copyright (C) nginx-gw authors
# deploy/k8s/: every manifest parses and has the structure the article's
# deployment needs (3 replicas, 256Mi/100m requests, 512Mi/500m limits, a
# LoadBalancer Service, a ConfigMap with the gateway config, Redis, probes
# on a health location, Prometheus annotations, a PodDisruptionBudget, a
# graceful preStop that fits terminationGracePeriodSeconds), and the
# ConfigMap's nginx.conf passes nginx -t with the built modules and answers
# the probes and the scrape (paths and addresses adapted for a local run).
# A plain Test::More script: no Test::Nginx blocks.

use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use GwDeploy;
use YAML::XS ();

my $top = "$FindBin::Bin/..";
my $dir = "$top/deploy/k8s";

# --- parse --------------------------------------------------------------

my (@objs, %files);
for my $f (sort glob "$dir/*.yaml") {
    my @docs = eval { YAML::XS::LoadFile($f) };
    (my $base = $f) =~ s{.*/}{};
    ok(!$@ && @docs, "$base parses") or diag $@;
    $files{$base} = 1;
    for my $d (grep { defined } @docs) {
        ok($d->{apiVersion} && $d->{kind}, "$base: apiVersion and kind");
        next if $d->{kind} eq 'Kustomization';
        ok($d->{metadata}{name}, "$base: $d->{kind} has a name");
        is($d->{metadata}{labels}{'app.kubernetes.io/part-of'}, 'nginx-gw',
           "$base: $d->{kind} $d->{metadata}{name} is labelled part-of");
        push @objs, { %$d, _file => $base };
    }
}

sub obj {
    my ($kind, $name) = @_;
    my @o = grep { $_->{kind} eq $kind && $_->{metadata}{name} eq $name }
            @objs;
    is(scalar @o, 1, "one $kind $name") or BAIL_OUT("no $kind $name");
    return $o[0];
}

my ($kust) = YAML::XS::LoadFile("$dir/kustomization.yaml");
is_deeply([sort @{ $kust->{resources} }],
          [sort grep { $_ ne 'kustomization.yaml' } keys %files],
          'kustomization.yaml lists every manifest');

my $cm = obj('ConfigMap', 'api-gateway-config');
my $dep = obj('Deployment', 'api-gateway');
my $svc = obj('Service', 'api-gateway');
my $pdb = obj('PodDisruptionBudget', 'api-gateway');
my $rdep = obj('Deployment', 'redis');
my $rsvc = obj('Service', 'redis');

my $conf = $cm->{data}{'nginx.conf'};
ok($conf && $cm->{data}{'jwks.json'}, 'the ConfigMap holds nginx.conf and jwks.json');

# --- the gateway Deployment ---------------------------------------------

sub matches {
    my ($sel, $labels) = @_;
    return !grep { ($labels->{$_} // '') ne $sel->{$_} } keys %$sel;
}

my $pod = $dep->{spec}{template};
my $spec = $pod->{spec};
is($dep->{spec}{replicas}, 3, 'the article\'s 3 replicas');
ok(matches($dep->{spec}{selector}{matchLabels}, $pod->{metadata}{labels}),
   'the Deployment selects its pods');
my @ctr = @{ $spec->{containers} };
is(scalar @ctr, 1, 'one container');
my $c = $ctr[0];
is_deeply($c->{resources},
          { requests => { memory => '256Mi', cpu => '100m' },
            limits => { memory => '512Mi', cpu => '500m' } },
          'requests 256Mi/100m, limits 512Mi/500m');

my %cport = map { $_->{name} => $_->{containerPort} } @{ $c->{ports} };
sub port_of {
    my ($ports, $p) = @_;
    return $p =~ /^\d+$/ ? $p : $ports->{$p};
}

# the ports nginx listens on, from the config
my @listen = $conf =~ /^\s*listen\s+(\d+)\s*;/mg;
for my $n (sort keys %cport) {
    ok((grep { $_ == $cport{$n} } @listen),
       "container port $n ($cport{$n}) is a listen port of nginx.conf");
}

my %probe;
for my $kind (qw(readinessProbe livenessProbe)) {
    my $g = $c->{$kind}{httpGet};
    ok($g && $g->{path}, "$kind is an HTTP GET") or next;
    my $port = port_of(\%cport, $g->{port});
    ok($port, "$kind port $g->{port} is a container port");
    $probe{$kind} = [$port, $g->{path}];
}

my $ann = $pod->{metadata}{annotations} || {};
is($ann->{'prometheus.io/scrape'}, 'true', 'prometheus.io/scrape');
ok((grep { $_ == ($ann->{'prometheus.io/port'} // 0) } values %cport),
   'prometheus.io/port is a container port');
like($ann->{'prometheus.io/path'} // '', qr{^/}, 'prometheus.io/path');

ok($spec->{securityContext}{runAsNonRoot}, 'runAsNonRoot');
is($spec->{securityContext}{runAsUser}, 33, 'runs as www-data (33), as the image');

# graceful stop: preStop waits, quits gracefully and waits for nginx; the
# grace period covers the wait and nginx's worker_shutdown_timeout, which
# covers the slowest proxied request of the config
my $pre = join ' ', @{ $c->{lifecycle}{preStop}{exec}{command} || [] };
like($pre, qr/nginx-gw -s quit/, 'preStop: nginx -s quit (through nginx-gw)');
like($pre, qr/while .*nginx\.pid/, 'preStop waits for nginx to exit');
my ($sleep) = $pre =~ /sleep (\d+);/;
my ($wst) = $conf =~ /worker_shutdown_timeout (\d+)s;/;
my ($tries) = $conf =~ /proxy_next_upstream_tries (\d+);/;
my ($ct) = $conf =~ /proxy_connect_timeout (\d+)s;/;
my ($rt) = $conf =~ /proxy_read_timeout (\d+)s;/;
ok(defined $sleep && defined $wst, 'preStop sleep and worker_shutdown_timeout');
cmp_ok($wst, '>=', $tries * ($ct + $rt),
       "worker_shutdown_timeout ${wst}s >= $tries tries x (${ct}s + ${rt}s)");
cmp_ok($spec->{terminationGracePeriodSeconds}, '>', $sleep + $wst,
       "terminationGracePeriodSeconds > ${sleep}s + ${wst}s");

# volumes: the config, and a writable volume for every path nginx writes
my %vol = map { $_->{name} => $_ } @{ $spec->{volumes} };
my %mount = map { $_->{mountPath} => $_ } @{ $c->{volumeMounts} };
my $cfgmount = $mount{'/etc/nginx-gw'};
ok($cfgmount && $cfgmount->{readOnly}
   && $vol{ $cfgmount->{name} }{configMap}{name} eq 'api-gateway-config',
   'the ConfigMap is mounted read-only at /etc/nginx-gw');
ok($c->{securityContext}{readOnlyRootFilesystem}, 'read-only root file system');
my @writes = ($conf =~ m{(?:proxy_cache_path|proxy_temp_path)\s+(/\S+)}g,
              '/var/lib/nginx/proxy', '/run/nginx-gw/nginx.pid');
for my $w (@writes) {
    my ($m) = grep { index($w, "$_/") == 0 } keys %mount;
    ok($m && $vol{ $mount{$m}{name} }{emptyDir},
       "$w is on a writable emptyDir");
}

# --- Service, PodDisruptionBudget, Redis ---------------------------------

is($svc->{spec}{type}, 'LoadBalancer', 'the article\'s LoadBalancer Service');
ok(matches($svc->{spec}{selector}, $pod->{metadata}{labels}),
   'the Service selects the gateway pods');
my ($sp) = @{ $svc->{spec}{ports} };
is($sp->{port}, 80, 'the Service listens on 80');
is(port_of(\%cport, $sp->{targetPort}), 8080,
   'and sends to the gateway port 8080');

ok(matches($pdb->{spec}{selector}{matchLabels}, $pod->{metadata}{labels}),
   'the PodDisruptionBudget selects the gateway pods');
cmp_ok($pdb->{spec}{minAvailable}, '>=', 1, 'minAvailable >= 1');
cmp_ok($pdb->{spec}{minAvailable}, '<', $dep->{spec}{replicas},
       'minAvailable < replicas: a drain can proceed');

my ($rhost, $rport) = $conf =~ /gw_ratelimit_redis\s+([\w.-]+):(\d+)/;
is($rhost, $rsvc->{metadata}{name}, 'gw_ratelimit_redis names the Redis Service');
my $rpod = $rdep->{spec}{template};
my %rcport = map { $_->{name} => $_->{containerPort} }
             @{ $rpod->{spec}{containers}[0]{ports} };
my ($rsp) = @{ $rsvc->{spec}{ports} };
is($rsp->{port}, $rport, "the Redis Service port is $rport");
is(port_of(\%rcport, $rsp->{targetPort}), 6379, 'and reaches redis-server');
ok(matches($rsvc->{spec}{selector}, $rpod->{metadata}{labels}),
   'the Redis Service selects the Redis pod');
is($rdep->{spec}{replicas}, 1, 'one Redis server (the simplest layout of the three)');

# --- the ConfigMap's nginx.conf, run locally -------------------------------

my $tmp = GwDeploy::tmpdir();
chmod 0755, $tmp;
my %map = map { $_ => GwDeploy::free_port() } @listen;
my $redis = $ENV{TEST_NGINX_REDIS_PORT} || 6379;
my $backend = GwDeploy::free_port();
my $local = $conf;
my $n = 0;
$n += $local =~ s{^include /etc/nginx/modules-enabled/\*\.conf;\n}
                 {GwDeploy::load_modules()}me;
$n += $local =~ s/server app:8080;/server 127.0.0.1:$backend;/;
$n += $local =~ s/\bredis:6379\b/127.0.0.1:$redis/;
$n += $local =~ s{/var/cache/nginx-gw/}{$tmp/cache/}g;
$n += $local =~ s{access_log /dev/stdout}{access_log $tmp/access.log};
$n += $local =~ s{error_log stderr}{error_log $tmp/error.log};
$local =~ s/^(\s*listen\s+)(\d+)\s*;/${1}127.0.0.1:$map{$2};/mg;
cmp_ok($n, '>=', 7, 'the config adapted for a local run');
mkdir "$tmp/cache";    # the emptyDir at /var/cache/nginx-gw
GwDeploy::write_file("$tmp/nginx.conf", $local);
GwDeploy::write_file("$tmp/jwks.json", $cm->{data}{'jwks.json'});

# the image's entry point adds these (deploy/container/nginx-gw)
my ($rc, $out) = GwDeploy::nginx_test(
    prefix => $tmp, conf => "$tmp/nginx.conf",
    global => "daemon off; pid $tmp/nginx.pid;");
is($rc, 0, "nginx -t on the ConfigMap's nginx.conf, with the entry point's -g")
    or diag $out;

GwDeploy::start_nginx(prefix => $tmp, conf => "$tmp/nginx.conf",
                      ports => [values %map]);

for my $kind (sort keys %probe) {
    my ($port, $path) = @{ $probe{$kind} };
    my ($st, undef, $body) = GwDeploy::http($map{$port}, $path);
    is($st, 200, "$kind GET :$port$path answers 200");
}
my ($st, $head, $body) = GwDeploy::http($map{ $ann->{'prometheus.io/port'} },
                                        $ann->{'prometheus.io/path'});
is($st, 200, 'the Prometheus annotations name the metrics endpoint');
like($body, qr/^gateway_build_info\{/m, 'which serves gateway metrics');
unlike($body, qr/path="\/healthz"/, 'probes are not counted');
($st) = GwDeploy::http($map{8080}, '/api/users');
is($st, 401, 'an /api/ route without a token: 401');

GwDeploy::stop_nginx($tmp);
my $log = GwDeploy::read_file("$tmp/error.log");
unlike($log, qr/\[(?:alert|crit|emerg)\]/, 'no alert in the error log');

# kubectl (not in Debian) renders the kustomization where it is installed
SKIP: {
    skip 'kubectl is not installed', 1
        unless system('command -v kubectl >/dev/null 2>&1') == 0;
    my $r = qx{kubectl kustomize '$dir' 2>&1};
    is(scalar(() = $r =~ /^kind: /mg), scalar @objs,
       'kubectl kustomize renders every object') or diag $r;
}

done_testing();
