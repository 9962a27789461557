#!/bin/sh
# `cmake --install` into a staging root (DESTDIR, so nothing lands in the
# real /etc even when the prefix is /usr): the binary, both units naming the
# installed binary, the example config, the man page; and a second install keeps the
# operator's edited config.
#   install.sh BUILD_DIR STAGING PREFIX SYSCONFDIR
set -eu
build=$1 root=$2 prefix=$3 sysconf=$4
rm -rf "$root"
DESTDIR=$root cmake --install "$build" >/dev/null
units=$root$prefix/lib/systemd/system
fail() { echo "contrib.install: $*" >&2; exit 1; }
test -x "$root$prefix/sbin/xthrottle" || fail "no $prefix/sbin/xthrottle"
test -f "$root$prefix/share/man/man8/xthrottle.8" || fail "no man page"
grep -q "^ExecStart=$prefix/sbin/xthrottle serve --config $sysconf/xthrottle/xthrottle.toml" "$units/xthrottle.service" ||
  fail "xthrottle.service does not run the installed binary on the installed config"
grep -q "^RuntimeDirectory=xthrottle$" "$units/xthrottle.service" ||
  fail "xthrottle.service leaves /run read-only: serve --cluster cannot tell status how the fleet is"
grep -q "^ExecStart=$prefix/sbin/xthrottle attach %I$" "$units/xthrottle-attach@.service" ||
  fail "xthrottle-attach@.service does not run the installed binary on the interface's own name (%I: an escaped %i told wg-office as wg\\x2doffice)"
# Enabled before the daemon, an attach made the state with the default
# table, and the daemon, its config asking for another, refused to start.
grep -q "^Wants=.*xthrottle\.service" "$units/xthrottle-attach@.service" ||
  fail "xthrottle-attach@.service does not start the daemon that makes the state"
# Started again by the interface's return (BindsTo stopped it when it went).
grep -q "^WantedBy=.*sys-subsystem-net-devices-%i\.device" "$units/xthrottle-attach@.service" ||
  fail "xthrottle-attach@.service is not run again when its interface comes back"
# The save on stop, given the time a restore is: systemd's 90 s kill it.
grep -q "^TimeoutStopSec=10min$" "$units/xthrottle.service" ||
  fail "xthrottle.service gives its save on stop only systemd's default 90 s"
# A fleet's URL and Redis password from a file of the site's, not the unit.
grep -q "^EnvironmentFile=-$sysconf/xthrottle/environment$" "$units/xthrottle.service" ||
  fail "xthrottle.service reads no environment file"
grep -q "^ExecStart=.* \$XTHROTTLE_SERVE_ARGS$" "$units/xthrottle.service" ||
  fail "xthrottle.service takes no serve options from its environment file"
cmp -s "$root$sysconf/xthrottle/xthrottle.toml.example" "$(dirname "$0")/../../contrib/xthrottle.toml" ||
  fail "no example config"
test -f "$root$sysconf/xthrottle/xthrottle.toml" || fail "no config installed where there was none"
echo "# the operator's rules" >"$root$sysconf/xthrottle/xthrottle.toml"
DESTDIR=$root cmake --install "$build" >/dev/null
grep -q "operator's rules" "$root$sysconf/xthrottle/xthrottle.toml" || fail "a reinstall replaced the operator's config"
echo "installed and reinstalled into $root"
