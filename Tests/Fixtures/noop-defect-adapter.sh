#!/bin/sh
# The JavaScript implementation with one catalogued "defect" that changes nothing: an honest
# catalogue must report it missed, whatever checks end UNSUPPORTED or UNTESTED.
here=$(dirname "$0")
case "$1" in
  --list-defects)
    printf 'does-nothing\tClaims to break KSP-9.3 and KSP-3.2 but changes nothing.\n'
    exit 0 ;;
  --defect) shift 2 ;;
esac
exec node "$here/../../Adapters/node/adapter.mjs" "$@"
