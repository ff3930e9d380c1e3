# Copyright (C) nginx-gw authors
package GwTest;

# Shared block preprocessing for the suites (used through
# add_block_preprocessor, so the .t files stay plain Test::Nginx::Socket).
#
#   add_block_preprocessor(GwTest::defaults(
#       modules => ['trace'],            # load_module lines, in this order
#       config  => "...",                # default --- config
#       request => "GET /t",             # default --- request
#       filter  => \&GwEcho::canon,      # default --- response_body_filters
#       user_files => "...",            # default --- user_files
#   ));
#
# Blocks that declare neither error_log nor no_error_log get
# "no_error_log: [error] [alert] [crit] [emerg]", so an unexpected error
# message fails the test.

use strict;
use warnings;

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

        for my $s (qw(config request http_config user_files)) {
            if (defined $o{$s} && !defined $block->$s) {
                $block->set_value($s, $o{$s});
            }
        }

        if (defined $o{filter} && !defined $block->response_body_filters
            && !defined $block->must_die)
        {
            $block->set_value("response_body_filters", $o{filter});
        }

        if (!defined $block->error_log && !defined $block->no_error_log) {
            $block->set_value("no_error_log",
                              "[error]\n[alert]\n[crit]\n[emerg]");
        }
    };
}

1;
