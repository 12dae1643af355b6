#!/bin/sh
# A stand-in for mv, mkdir, find, rm and tar on the unpacker's PATH (tests/support/faults.sh).
# FAULT_AT=WHEN:COMMAND:PATTERN (WHEN is before or after) picks the call of COMMAND that has an
# argument matching the glob PATTERN; there the shim runs FAULT_DO (default: SIGKILL every
# process but the driver, and never run the command). Any other call just runs the command.
name=${0##*/}
PATH=${PATH#*/shim:}
hit=
case $FAULT_AT in
*":$name:"*)
    pattern=${FAULT_AT#*":$name:"}
    for a in "$@"; do
        # shellcheck disable=SC2254
        case $a in $pattern) hit=${FAULT_AT%%:*} ;; esac
    done
    ;;
esac
[ "$hit" != before ] || eval "${FAULT_DO:-kill -9 -1; exit 137}"
"$name" "$@"
rc=$?
[ "$hit" != after ] || eval "${FAULT_DO:-kill -9 -1}"
exit $rc
