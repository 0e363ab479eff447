#!/bin/bash
# tests/slurm/start.sh -- start a private single-node Slurm cluster for tests.
#
#   tests/slurm/start.sh DIR        # DIR is created if missing; keep it short (see below)
#   . DIR/env                       # exports SLURM_CONF (and SLURM_TEST_DIR) for sinfo/sbatch/...
#   ...                             # submit jobs: the one partition "debug", one node "localhost"
#   tests/slurm/stop.sh DIR         # cancel jobs, stop the daemons, remove DIR
#
# Everything lives under DIR: a fresh munge key and munged (own --key-file, --socket, --pid-file,
# --log-file, --seed-file), slurm.conf (generated from tests/slurm/slurm.conf.in), the controller's
# state, slurmd's spool, logs and pid files. Nothing under /etc, /var or /run is written, and no
# system Slurm/munge configuration is used (not /etc/munge/munge.key nor a running system munged;
# /etc/slurm/plugstack.conf is replaced by an empty one).
# Ports are random free high ports, so it does not clash with a real Slurm or another test run.
#
# Needs: slurmctld, slurmd (Debian: slurmctld, slurmd, slurm-client or slurm-wlm) and munged
# (Debian: munge). Made for root (SlurmUser=root; a CI container's usual case); as an ordinary
# user SlurmUser becomes that user, which may work for that user's own jobs but is untested.
# No cgroups: proctrack/linuxproc, task/none (see cgroup.conf). Tested with Debian 12's Slurm 22.05.
#
# DIR must be short: munge's and PMIx's Unix sockets live under it and a socket path is limited to
# 107 bytes. Exit status 0 when the node is idle and accepts jobs; otherwise 1 with the daemons' log
# tails on stderr (the daemons that did start are stopped again).
#
# Environment: SLURM_TEST_TIMEOUT (seconds to wait for the node, default 60), SLURM_TEST_CPUS and
# SLURM_TEST_MEMORY (the node's CPUs and RealMemory in MB; default: nproc but at least 2, and
# free -m's total).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
die() { echo "slurm/start.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 DIR"
for prog in slurmctld slurmd munged munge sinfo scontrol; do
    command -v "$prog" >/dev/null 2>&1 ||
        command -v "/usr/sbin/$prog" >/dev/null 2>&1 || die "$prog not found (install slurm-wlm, munge)"
done
PATH=$PATH:/usr/sbin:/sbin

mkdir -p "$1"
DIR=$(cd "$1" && pwd -P)
chmod 0755 "$DIR"          # munged insists that no group/other can write the socket's directories
sock="$DIR/munge/munge.socket.2"
[ ${#sock} -le 100 ] || die "DIR is too long for Unix socket paths ($sock); use a short one, e.g. mktemp -d /tmp/slurm.XXXXXX"

mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool/slurmd-localhost" "$DIR/log" "$DIR/run" "$DIR/tmp"
chmod 0755 "$DIR/munge"      # munged: the socket directory must be searchable by all
chmod 0700 "$DIR/state"

# Never leave half a cluster behind.
started=0
cleanup_on_error() {
    local rc=$?
    if [ $started -eq 0 ]; then
        for f in "$DIR"/log/*.log "$DIR"/log/*.out; do
            [ -s "$f" ] || continue
            echo "---- tail of $f" >&2
            tail -n 25 "$f" >&2
        done
        "$here/stop.sh" --keep "$DIR" >/dev/null 2>&1 || true
    fi
    exit $rc
}
trap cleanup_on_error EXIT

# ---- munge: a fresh key and a private munged ------------------------------------------------------
key="$DIR/munge/munge.key"
if [ ! -s "$key" ]; then
    rm -f "$key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile="$key" >/dev/null
    else
        (umask 077; dd if=/dev/urandom of="$key" bs=1024 count=1 2>/dev/null)
    fi
fi
chmod 0400 "$key"
munged --key-file="$key" --socket="$sock" --pid-file="$DIR/run/munged.pid" \
    --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" \
    >"$DIR/log/munged.out" 2>&1 </dev/null ||
    die "munged failed to start: $(cat "$DIR/log/munged.out")"
munge -n -S "$sock" | unmunge -S "$sock" >/dev/null ||
    die "munge credential round trip through $sock failed"

# ---- ports: two free, random, high TCP ports ---------------------------------------------------------
port_busy() {
    if command -v ss >/dev/null 2>&1; then
        ss -Htln "sport = :$1" 2>/dev/null | grep -q .
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}
pick_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        port_busy "$p" || port_busy $((p + 1)) || { echo "$p"; return; }
    done
    die "no free TCP port found"
}
ctld_port=$(pick_port)
slurmd_port=$((ctld_port + 1))

# ---- slurm.conf --------------------------------------------------------------------------------------
cpus=${SLURM_TEST_CPUS:-$(nproc)}
[ "$cpus" -ge 2 ] || cpus=2   # tests run 2 tasks; config_overrides lets a 1-CPU machine claim 2
mem=${SLURM_TEST_MEMORY:-$(free -m | awk '/^Mem:/ { print $2 }')}
user=$(id -un)
: >"$DIR/plugstack.conf"
sed -e "s|@DIR@|$DIR|g" -e "s|@USER@|$user|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEMORY@|$mem|g" \
    -e "s|@CTLD_PORT@|$ctld_port|g" -e "s|@SLURMD_PORT@|$slurmd_port|g" \
    "$here/slurm.conf.in" >"$DIR/slurm.conf"
cp "$here/cgroup.conf" "$DIR/cgroup.conf"
# Slurm >= 23.02 can switch the cgroup plugin off; older slurmd always loads one (see cgroup.conf).
version=$(slurmd -V 2>/dev/null | awk '{ print $2 }')
major=${version%%.*} rest=${version#*.}
minor=${rest%%.*}
if [ "${major:-0}" -gt 23 ] 2>/dev/null || { [ "${major:-0}" -eq 23 ] && [ "${minor:-0}" -ge 2 ]; } 2>/dev/null; then
    echo "CgroupPlugin=disabled" >>"$DIR/cgroup.conf"
else
    echo "CgroupPlugin=cgroup/v1" >>"$DIR/cgroup.conf"
fi
export SLURM_CONF="$DIR/slurm.conf"
cat >"$DIR/env" <<EOF
export SLURM_CONF='$DIR/slurm.conf'
export SLURM_TEST_DIR='$DIR'
EOF

# ---- the daemons ---------------------------------------------------------------------------------------
# In the foreground (-D) but detached (setsid, no terminal, output to files): their pids are ours.
setsid slurmctld -D -i -f "$SLURM_CONF" </dev/null >"$DIR/log/slurmctld.out" 2>&1 &
echo $! >"$DIR/run/slurmctld.pid"
setsid slurmd -D -N localhost -f "$SLURM_CONF" </dev/null >"$DIR/log/slurmd.out" 2>&1 &
echo $! >"$DIR/run/slurmd.pid"

timeout=${SLURM_TEST_TIMEOUT:-60}
deadline=$((SECONDS + timeout))
state=
while :; do
    for d in slurmctld slurmd; do
        kill -0 "$(cat "$DIR/run/$d.pid")" 2>/dev/null || die "$d exited during start-up"
    done
    state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
    case $state in
        idle) break ;;
        drain*|down*)
            scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true ;;
    esac
    [ $SECONDS -lt $deadline ] || die "node not idle after ${timeout}s (sinfo state: '${state:-none}')"
    sleep 1
done
started=1
echo "slurm/start.sh: cluster vlmaetest up in $DIR (slurmctld port $ctld_port, $cpus CPUs, ${mem} MB); . $DIR/env"
