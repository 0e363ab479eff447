# tests/ranks.sh: shell helpers shared by the tests that stop, kill and watch running ranks
# (test_faults.sh, test_watchdog.sh). Sourced, not run: `. "$top_srcdir/tests/ranks.sh"`.
# ok/bad record results in $fail; show prints the tails of log files; wait_for polls a log;
# rank_pid finds the process of one rank of a run.

fail=0
ok() { echo "ok $*"; }
bad() { echo "FAIL $*"; fail=1; }
show() { for f in "$@"; do echo "--- $f"; tail -n 30 "$f"; done; }
# wait_for FILE REGEX: up to 120 s for a line matching REGEX to appear in FILE.
wait_for() {
    i=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        [ $i -le 1200 ] || return 1
        sleep 0.1
    done
}
# PID of rank R of the run whose run directory is D: the vlmae process (not timeout or mpiexec) with
# OMPI_COMM_WORLD_RANK=R (Open MPI); a process started without a launcher is rank 0.
rank_pid() {
    for p in $(pgrep -f "vlmae pretrain .*--run-dir $1( |\$)" || true); do
        case $(readlink "/proc/$p/exe" 2>/dev/null) in */vlmae) ;; *) continue ;; esac
        rk=$(tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
        if [ "${rk:-0}" = "$2" ]; then
            echo "$p"
            return 0
        fi
    done
    return 1
}
