#!/bin/busybox sh
# /init of lupid's test VM, written into the initramfs by `cargo xtask`.
# It mounts the filesystems lupid needs, runs what lupid.mode= on the kernel
# command line selects, prints LUPID-VM-EXIT=<status> for xtask to read, and
# powers the VM off.

/bin/busybox --install -s
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

finish() {
    echo "LUPID-VM-EXIT=$1"
    sync
    poweroff -f
    # poweroff -f only returns when reboot(2) failed; panic=-1 then makes the
    # kernel reboot, which -no-reboot turns into a qemu exit.
    exit "$1"
}

fail() {
    echo "init: $*"
    finish 125
}

mount -t proc proc /proc || fail "cannot mount /proc"
mount -t sysfs sysfs /sys || fail "cannot mount /sys"
mount -t devtmpfs devtmpfs /dev || fail "cannot mount /dev"
for dir in /run /tmp /var/lib; do
    mount -t tmpfs tmpfs "$dir" || fail "cannot mount a tmpfs on $dir"
done
chmod 1777 /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup || fail "cannot mount cgroup2 on /sys/fs/cgroup"
mount -t bpf bpf /sys/fs/bpf || fail "cannot mount bpffs on /sys/fs/bpf"
mount -t securityfs securityfs /sys/kernel/security || fail "cannot mount securityfs"

# Modules for kernel options that the Debian config builds as modules, listed
# by xtask in load order (dependencies first). Usually empty.
if [ -s /etc/lupid/modules ]; then
    while read -r module; do
        insmod "$module" || fail "insmod $module failed"
    done < /etc/lupid/modules
fi

hostname lupid-vm
ip link set lo up || fail "cannot bring lo up"
# Both addresses sit on lo so that connect() tests never leave the VM:
# 203.0.113.7 (TEST-NET-3) plays an outside host that policies deny, and
# 169.254.169.254 is the cloud metadata address.
ip addr add 203.0.113.7/32 dev lo || fail "cannot add 203.0.113.7 to lo"
ip addr add 169.254.169.254/32 dev lo || fail "cannot add 169.254.169.254 to lo"

mkdir -p /home/agent
chown -R agent:agent /home/agent

echo "init: kernel $(uname -r)"
echo "init: active LSMs $(cat /sys/kernel/security/lsm)"

mode=test
filter=
skip=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        lupid.mode=*) mode=${arg#lupid.mode=} ;;
        lupid.filter=*) filter=${arg#lupid.filter=} ;;
        lupid.skip=*) skip=${arg#lupid.skip=} ;;
    esac
done

# The VM tests and the probe find lupid's files through these variables.
export LUPID_VM=1 LUPID_BIN_DIR=/usr/local/bin LUPID_POLICY_DIR=/etc/lupid
export RUST_BACKTRACE=1
cd /root || fail "cannot enter /root"

echo "init: lupid.mode=$mode"
case "$mode" in
    test)
        # The VM tests are #[ignore]d so that host runs of `cargo test` skip them.
        # lupid.filter and lupid.skip contain comma-separated name parts. A
        # test runs when its name contains any filter part and no skip part.
        set -- --ignored --test-threads=1
        for part in $(echo "$filter" | tr ',' ' '); do
            set -- "$@" "$part"
        done
        for part in $(echo "$skip" | tr ',' ' '); do
            set -- "$@" --skip "$part"
        done
        /usr/local/bin/lupid-vm-tests "$@"
        status=$?
        ;;
    demo)
        /usr/local/bin/lupid-demo
        status=$?
        ;;
    command)
        sh /etc/lupid/init-command
        status=$?
        ;;
    *)
        echo "init: unknown lupid.mode=$mode; expected test, demo or command"
        status=125
        ;;
esac
finish "$status"
