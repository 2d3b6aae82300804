# Sourced by the test scripts: what happens when a check cannot run here.
#
#   in_ci          true when CI is set (to anything but empty, 0 or false)
#   skip WHAT WHY  outside CI: prints "WHAT: skipping: WHY", appends the skip
#                  to $PINGMACHINE_SKIP_LOG (when set; scripts/test.sh counts
#                  them at the end) and returns 0, so the caller goes on or
#                  exits 0; under CI: prints "WHAT: FAILED: ..." and exits 1,
#                  because a run that tests less must never pass there.
#
# WHY names what is missing and how to get it ("needs root", "apt-get
# install lintian").

in_ci() {
  case "${CI:-}" in
    "" | 0 | false | FALSE | False) return 1 ;;
    *) return 0 ;;
  esac
}

skip() {
  local what=$1
  shift
  if in_ci; then
    echo "$what: FAILED: cannot run: $* (CI is set, so nothing may skip)" >&2
    exit 1
  fi
  echo "$what: skipping: $*" >&2
  if [ -n "${PINGMACHINE_SKIP_LOG:-}" ]; then
    printf '%s\t%s\n' "$what" "$*" >>"$PINGMACHINE_SKIP_LOG"
  fi
  return 0
}
