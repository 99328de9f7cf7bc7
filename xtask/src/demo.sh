#!/bin/sh
# lupid demo: a scripted agent tries three allowed and three denied actions
# (exec, open, connect) under one policy. lupid's BPF LSM programs decide,
# and every decision lands in the hash-chained ledger that the demo verifies.
# Runs under busybox sh in the VM, or as root on a host that runs BPF LSM.

set -u
policy=${LUPID_POLICY:-/etc/lupid/p0.lp}
probe=$(command -v lupid-probe) || { echo "demo: lupid-probe not found in PATH"; exit 2; }
unexpected=0

say() {
    echo "demo: $*"
}

if [ ! -f "$policy" ]; then
    say "policy $policy not found; the repository's policies/p0.lp is missing"
    exit 2
fi

# Objects the policy talks about. Existing files are left alone, so a host run
# never replaces a real /usr/bin/curl.
mkdir -p /srv/secrets /home/agent
[ -e /srv/secrets/token ] || echo secret > /srv/secrets/token
[ -e /home/agent/ok.txt ] || echo OK > /home/agent/ok.txt
[ -e /usr/bin/curl ] || cp /bin/busybox /usr/bin/curl

say "starting lupid-agent"
lupid-agent start &
agent_pid=$!
tries=0
until lupid-agent status > /dev/null 2>&1; do
    tries=$((tries + 1))
    if ! kill -0 "$agent_pid" 2> /dev/null; then
        say "lupid-agent exited during startup"
        exit 1
    fi
    if [ "$tries" -ge 120 ]; then
        say "lupid-agent did not answer \`lupid-agent status\` within 120 s"
        kill "$agent_pid"
        exit 1
    fi
    sleep 1
done

say "starting a TCP listener on 127.0.0.1:8080"
lupid-probe listen 127.0.0.1:8080 &
listener_pid=$!
tries=0
until netstat -ltn 2> /dev/null | grep -q '127\.0\.0\.1:8080 '; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then
        say "the listener on 127.0.0.1:8080 did not start within 30 s"
        exit 1
    fi
    sleep 1
done

# attempt EXPECTED PROBE-ARGS...: runs lupid-probe as agent "demo" under the
# policy and compares its result (ok or EPERM) with EXPECTED.
attempt() {
    expected=$1
    shift
    output=$(lupid-agent run --agent demo --policy "$policy" --delegated-by alice -- "$probe" "$@" 2>&1)
    status=$?
    case "$status" in
        0) result=ok ;;
        1) result=EPERM ;;
        *) result="error (exit $status)" ;;
    esac
    if [ "$result" = "$expected" ]; then
        verdict="as the policy says"
    else
        verdict="UNEXPECTED: the policy says $expected"
        unexpected=$((unexpected + 1))
    fi
    printf 'demo: %-32s -> %s (%s)\n' "$*" "$result" "$verdict"
    if [ -n "$output" ]; then
        echo "$output" | sed 's/^/        /'
    fi
}

say "agent demo, delegated by alice, policy $policy"
attempt ok exec /bin/busybox true
attempt EPERM exec /usr/bin/curl
attempt ok open /home/agent/ok.txt read
attempt EPERM open /srv/secrets/token read
attempt ok connect 127.0.0.1:8080
attempt EPERM connect 203.0.113.7:443

say "lupid-agent status"
lupid-agent status

say "stopping lupid-agent"
kill "$listener_pid" 2> /dev/null
kill -TERM "$agent_pid"
wait "$agent_pid"
say "lupid-agent exited with status $?"

say "lupid-ledger verify"
lupid-ledger verify
verify_status=$?

say "the denials in the ledger (lupid-ledger export | grep deny)"
lupid-ledger export | grep '"verdict":"deny"'
say "the last 3 ledger records (lupid-ledger export | tail -n 3)"
lupid-ledger export | tail -n 3

if [ "$unexpected" -ne 0 ] || [ "$verify_status" -ne 0 ]; then
    say "FAILED: $unexpected unexpected decisions, ledger verify exit $verify_status"
    exit 1
fi
say "6 actions decided as the policy says; ledger verified"
