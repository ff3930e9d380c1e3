# Copyright (C) nginx-gw authors
package GwTest;

# The suites' shared defaults, in one place: every t/*.t installs them with
#
#   GwTest::use_defaults(
#       modules => ['trace'],            # load_module lines, in this order
#       config  => "...",                # default --- config
#       http_config => "...",            # default --- http_config
#       request => "GET /t",             # default --- request
#       user_files => "...",             # default --- user_files
#       init    => "perl code",          # default --- init
#       timeout => 20,                   # default --- timeout
#       filter  => \&GwEcho::canon,      # default --- response_body_filters
#       config_prepend => "...",         # put before every block's config
#       config_append  => "...",         # put after every block's config
#       must_die_request => "GET /t",    # --- request for must_die blocks
#   );
#
# (Test::Nginx's add_block_preprocessor with these defaults; a suite that
# needs more per block calls GwTest::defaults(...), which returns the
# preprocessor, from its own.)
#
# The one error-log rule of the project: a block that declares neither
# --- error_log nor --- no_error_log fails on any [error], [alert], [crit]
# or [emerg] line.  A must_die block's --- error_log lines are expected in
# an [emerg] line: "[emerg]" is added to them, so nginx -t failing for
# another reason than the one the block names still fails the block.

use strict;
use warnings;

our @Fatal = ('[error]', '[alert]', '[crit]', '[emerg]');

sub load_modules {
    return join "\n", map {
        "load_module $ENV{TEST_NGINX_BUILD_DIR}/ngx_http_gw_${_}_module.so;"
    } @_;
}

sub defaults {
    my %o = @_;

    return sub {
        my $block = shift;

        if (!defined $block->main_config && $o{modules}) {
            $block->set_value("main_config", load_modules(@{ $o{modules} }));
        }

        for my $s (qw(config http_config request user_files init timeout)) {
            if (defined $o{$s} && !defined $block->$s) {
                $block->set_value($s, $o{$s});
            }
        }

        if (defined $o{config_prepend} || defined $o{config_append}) {
            $block->set_value("config", ($o{config_prepend} // '')
                                        . ($block->config // '')
                                        . ($o{config_append} // ''));
        }

        if (defined $block->must_die) {
            if (defined $o{must_die_request} && !defined $block->request) {
                $block->set_value("request", $o{must_die_request});
            }

            if (defined $block->error_log && !ref $block->error_log) {
                $block->set_value("error_log",
                                  $block->error_log . "\n[emerg]");
            }
        }

        if (defined $o{filter} && !defined $block->response_body_filters
            && !defined $block->must_die)
        {
            $block->set_value("response_body_filters", $o{filter});
        }

        if (!defined $block->error_log && !defined $block->no_error_log) {
            $block->set_value("no_error_log", join "\n", @Fatal);
        }
    };
}

sub use_defaults {
    my $code = defaults(@_);

    # add_block_preprocessor(&) was imported into the suite's package
    my $add = caller() . '::add_block_preprocessor';

    no strict 'refs';
    &$add($code);
}

1;
