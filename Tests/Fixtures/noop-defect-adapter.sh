#!/bin/sh
# The JavaScript implementation with one catalogued "defect" that changes nothing: an honest
# catalogue must report it missed, whatever checks end UNSUPPORTED or UNTESTED. With the
# "defect" it also stops declaring flow_control, so that the scenarios needing it end
# UNSUPPORTED (which must never count as a catch).
here=$(dirname "$0")
case "$1" in
  --list-defects)
    printf 'does-nothing\tClaims to break KSP-9.3 and KSP-3.2 but changes nothing.\n'
    exit 0 ;;
  --defect)
    shift 2
    exec node "$here/../../Adapters/node/adapter.mjs" --without-capability flow_control "$@" ;;
esac
exec node "$here/../../Adapters/node/adapter.mjs" "$@"
