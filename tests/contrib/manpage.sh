#!/bin/sh
# The man page names every command and every option the binary's --help
# lists: a new option without a line in docs/xthrottle.8 fails here.
#   manpage.sh XTHROTTLE MANPAGE
set -eu
bin=$1 page=$2
# The page as plain words: roff's \- is a -.
text=$(sed 's/\\-/-/g' "$page")
missing=""
check() {
  printf '%s\n' "$text" | grep -q -- "$1" || missing="$missing $1"
}
commands=$("$bin" --help | awk '/^Subcommands:/ {on=1; next} on && NF {print $1}')
[ -n "$commands" ] || { echo "manpage: no commands in $bin --help" >&2; exit 1; }
for c in $commands; do
  check "$c"
  subs=$("$bin" "$c" --help | awk '/^Subcommands:/ {on=1; next} on && NF {print $1}')
  for s in "" $subs; do
    opts=$("$bin" $c $s --help | grep -oE -- '--[a-z][a-z-]*' | sort -u)
    for o in $opts; do
      [ "$o" = --help ] || check "$o"
    done
  done
done
if [ -n "$missing" ]; then
  echo "manpage: $page does not mention:$missing" >&2
  exit 1
fi
echo "every command and option of $bin is in $page"
