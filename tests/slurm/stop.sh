#!/bin/bash
# tests/slurm/stop.sh [--keep] DIR -- stop the private cluster that tests/slurm/start.sh DIR started:
# cancel its jobs, stop slurmd, slurmctld and munged (only the processes named by DIR/run/*.pid),
# then remove DIR (kept with --keep, or when SLURM_TEST_KEEP is set, for reading its logs).
# Safe to call twice or on a half-started cluster.
set -u

keep=${SLURM_TEST_KEEP:-}
if [ "${1:-}" = --keep ]; then keep=1; shift; fi
[ $# -eq 1 ] || { echo "usage: $0 [--keep] DIR" >&2; exit 2; }
[ -d "$1" ] || exit 0
DIR=$(cd "$1" && pwd -P)
PATH=$PATH:/usr/sbin:/sbin
export SLURM_CONF="$DIR/slurm.conf"

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { [ -s "$DIR/run/$1.pid" ] && cat "$DIR/run/$1.pid"; }

# Cancel every job first, so that slurmd's step daemons end their tasks before slurmd goes.
ctld=$(pid_of slurmctld || true)
if alive "$ctld" && [ -f "$SLURM_CONF" ]; then
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        for _ in $(seq 20); do
            [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi

# TERM, wait up to 10 s, then KILL. slurmd before slurmctld, munged last (both use it).
for d in slurmd slurmctld munged; do
    pid=$(pid_of "$d" || true)
    alive "$pid" || continue
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do
        alive "$pid" || break
        sleep 0.1
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
done
rm -f "$DIR"/run/*.pid

if [ -z "$keep" ]; then
    rm -rf "$DIR"
fi
exit 0
