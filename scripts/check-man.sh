#!/usr/bin/env bash
# Checks man pages: no control characters but tab and newline in the
# source, and `man --warnings` silent when rendering them under LC_ALL=C
# and LC_ALL=C.UTF-8 (troff reports some problems in one locale only).
# Usage: scripts/check-man.sh PAGE...   Exit status 1 on the first problem.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/require.sh
. scripts/require.sh
(($# > 0)) || { echo "usage: $0 PAGE..." >&2; exit 2; }
status=0
for m in "$@"; do
  # Bytes 0x00-0x08, 0x0b-0x1f and 0x7f: a form feed or escape typed into
  # the source shows as garbage (or a warning) in the rendered page.
  if LC_ALL=C grep -qP '[\x00-\x08\x0b-\x1f\x7f]' "$m"; then
    echo "$m: control characters (shown by cat -A):" >&2
    LC_ALL=C grep -nP '[\x00-\x08\x0b-\x1f\x7f]' "$m" | cat -A | head -n 5 >&2
    status=1
  fi
done
if command -v man >/dev/null; then
  for m in "$@"; do
    # A page that only includes another (.so) is rendered with that one.
    first=$(head -n 1 "$m")
    case "$first" in .so\ *) continue ;; esac
    for locale in C C.UTF-8; do
      out=$(LC_ALL=$locale MANWIDTH=80 man --warnings -l "$m" 2>&1 >/dev/null) || out="man failed on $m: $out"
      if [ -n "$out" ]; then
        echo "$m (LC_ALL=$locale): $out" >&2
        status=1
      fi
    done
  done
else
  skip "man pages render without warnings" "man is not installed (apt-get install man-db)"
fi
exit "$status"
