#!/usr/bin/env bash
# Runs chatd-bench, and the chatd it starts, inside a virtual machine: a
# Debian guest under qemu whose root may raise the open-file limit. The
# connection scenario needs ≈ 100 000 sockets in one process, more than a
# container with a low hard RLIMIT_NOFILE and no CAP_SYS_RESOURCE allows
# (docs/benchmarks.md, "100 000 idle connections"). Arguments go to
# chatd-bench, e.g.
#   ./scripts/bench-vm.sh --scenario connections --connections 100000
# The table and the progress line come on the terminal (the guest's
# console); the JSON goes to target/bench-vm/bench.json. The exit status is
# chatd-bench's.
#
# Made once and kept under target/bench-vm/: the guest's system
# (debootstrap of the host's Debian release, with its kernel). Each run
# copies the freshly built binaries into it and boots it from a new disk
# image. Environment:
#   CHATD_VM_MEM      guest memory (default 12G)
#   CHATD_VM_CPUS     guest CPUs (default: the host's, nproc)
#   CHATD_VM_ACCEL    kvm or tcg (default kvm when /dev/kvm is usable and the
#                     CPU shows vmx/svm, else tcg, qemu's emulator: 10-50×
#                     slower, so only counts and memory mean anything there)
#   CHATD_VM_TIMEOUT  seconds before the guest is stopped (default 3600)
#   CHATD_VM_MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   CHATD_VM_WATCH    seconds between snapshots of the guest's busiest
#                     processes and memory on the console (default 0: none)
set -euo pipefail
cd "$(dirname "$0")/.."
vm=target/bench-vm

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v mke2fs >/dev/null || [ -x /usr/sbin/mke2fs ] || missing+=(e2fsprogs)
if [ ${#missing[@]} -gt 0 ]; then
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
export PATH="$PATH:/usr/sbin:/sbin"

cargo build --release -p chatd -p chatd-bench

system="$vm/system"
if [ ! -e "$system/.made" ]; then
    suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
    echo "bench-vm: making the guest system ($suite) in $system" >&2
    sudo_if_needed rm -rf "$system"
    mkdir -p "$vm"
    sudo_if_needed debootstrap --variant=minbase --include=linux-image-amd64,iproute2,procps \
        "$suite" "$system" "${CHATD_VM_MIRROR:-http://deb.debian.org/debian}" >"$vm/debootstrap.log" 2>&1 ||
        { tail -20 "$vm/debootstrap.log" >&2; exit 1; }
    sudo_if_needed touch "$system/.made"
fi
kernel=$(ls "$system"/boot/vmlinuz-* | sort -V | tail -1)
initrd=$(ls "$system"/boot/initrd.img-* | sort -V | tail -1)

# What the guest runs as its init: limits up, the bench, then power off.
opt="$system/opt/chatd"
sudo_if_needed mkdir -p "$opt"
sudo_if_needed cp target/release/chatd target/release/chatd-bench "$opt/"
# --json is always given in the guest; chatd-bench refuses it twice.
args=()
for a in "$@"; do [ "$a" = --json ] || args+=("$a"); done
printf '%s\n' "${args[@]}" | sudo_if_needed tee "$opt/args" >/dev/null
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || true)
if [ -n "$commit" ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then commit="$commit-dirty"; fi
echo "$commit" | sudo_if_needed tee "$opt/commit" >/dev/null
echo "${CHATD_VM_WATCH:-0}" | sudo_if_needed tee "$opt/watch" >/dev/null
sudo_if_needed tee "$opt/init" >/dev/null <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sys /sys
mountpoint -q /dev || mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
ip link set lo up
ulimit -Hn 1048576
ulimit -Sn 1048576
sysctl -qw net.core.somaxconn=65535 2>/dev/null
set --
while IFS= read -r a; do [ -n "$a" ] && set -- "$@" "$a"; done </opt/chatd/args
cd /opt/chatd
watch=$(cat /opt/chatd/watch)
if [ "$watch" -gt 0 ]; then
    (while sleep "$watch"; do top -bn1 -w 120 | head -12 >&2; done) &
fi
echo "bench-vm: guest $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {print int($2/1024)" MiB"}' /proc/meminfo), open files $(ulimit -n)" >&2
TMPDIR=/var/tmp CHATD_BENCH_COMMIT=$(cat /opt/chatd/commit) ./chatd-bench --chatd ./chatd --json "$@" >/opt/chatd/bench.json
echo $? >/opt/chatd/status
sync
echo o >/proc/sysrq-trigger
sleep 60
EOF
sudo_if_needed chmod +x "$opt/init"
sudo_if_needed rm -f "$opt/bench.json" "$opt/status"

disk="$vm/disk.ext4"
rm -f "$disk"
truncate -s 8G "$disk"
sudo_if_needed mke2fs -q -t ext4 -d "$system" "$disk"

accel=${CHATD_VM_ACCEL:-}
if [ -z "$accel" ]; then
    if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qE 'vmx|svm' /proc/cpuinfo; then accel=kvm; else accel=tcg; fi
fi
case "$accel" in
kvm) machine=(-enable-kvm -cpu host) ;;
tcg) machine=(-accel tcg,thread=multi -cpu max) ;;
*) echo "bench-vm: CHATD_VM_ACCEL must be kvm or tcg" >&2; exit 2 ;;
esac
cpus=${CHATD_VM_CPUS:-$(nproc)}
mem=${CHATD_VM_MEM:-12G}
echo "bench-vm: booting ($accel, $cpus CPUs, $mem)" >&2
timeout "${CHATD_VM_TIMEOUT:-3600}" qemu-system-x86_64 "${machine[@]}" -smp "$cpus" -m "$mem" \
    -nographic -no-reboot -kernel "$kernel" -initrd "$initrd" \
    -drive "file=$disk,format=raw,if=virtio" \
    -append "root=/dev/vda rw console=ttyS0 quiet loglevel=3 panic=-1 init=/opt/chatd/init" </dev/null

rm -f "$vm/bench.json" "$vm/status"
debugfs -R "dump /opt/chatd/bench.json $vm/bench.json" "$disk" 2>/dev/null
debugfs -R "dump /opt/chatd/status $vm/status" "$disk" 2>/dev/null
rm -f "$disk"
if [ ! -s "$vm/status" ]; then
    echo "bench-vm: the guest stopped before the bench finished" >&2
    exit 1
fi
echo "bench-vm: JSON in $vm/bench.json" >&2
exit "$(cat "$vm/status")"
