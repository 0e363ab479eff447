// test_watchdog_timer: the hang watchdog (src/train/watchdog.h) in one process, with a fire
// callback instead of ending the job: a phase that does not end fires after the timeout (not
// before) with rank, host, step, phase and exit status 98 in its report; a loop that keeps
// marking phases, or an idle one, never fires; a communicator error reported by the poll fires
// at once; start/stop joins cleanly (run under the sanitizers by the sanitizer build), and a
// timeout of 0 disables it. The job-level behaviour (2 ranks, SIGSTOP, MPI_Abort, resume) is
// tests/test_watchdog.sh.
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/common.h"
#include "train/watchdog.h"

#include "check.h"

typedef struct {
    atomic_int done;
    int status;
    char report[1024];
} Fired;

static void on_fire(void *ctx, const char *report, int status) {
    Fired *f = ctx;
    snprintf(f->report, sizeof(f->report), "%s", report);
    f->status = status;
    atomic_store(&f->done, 1);
}

static void nap(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

// Waits up to `limit` seconds for the callback; returns the seconds waited, or -1.
static double wait_fired(Fired *f, double limit) {
    double t0 = now_seconds();
    while (!atomic_load(&f->done)) {
        if (now_seconds() - t0 > limit) return -1;
        nap(0.005);
    }
    return now_seconds() - t0;
}

static int poll_calls;
static int failing_comm(void *ctx, char *msg, size_t n) {
    (void)ctx;
    if (++poll_calls < 3) return 0;
    snprintf(msg, n, "NCCL asynchronous error on rank 0 of 1: remote process exited");
    return 1;
}
static int healthy_comm(void *ctx, char *msg, size_t n) {
    (void)ctx, (void)msg, (void)n;
    poll_calls++;
    return 0;
}

int main(void) {
    Dist d = {.rank = 0, .world = 1, .local_rank = 0, .local_world = 1};

    // Disabled: NULL, and every call takes NULL.
    Watchdog *w = watchdog_start(0, &d, NULL, NULL);
    CHECK(w == NULL);
    watchdog_phase(NULL, "step", 1);
    watchdog_set_comm(NULL, healthy_comm, NULL);
    CHECK(!watchdog_fired(NULL));
    watchdog_stop(NULL);
    ok("runtime.timeout_s 0: no watchdog");

    // A healthy loop: a mark every 20 ms for 2.5 s against a 1 s timeout.
    Fired f = {0};
    w = watchdog_start(1.0, &d, on_fire, &f);
    CHECK(w != NULL);
    watchdog_set_comm(w, healthy_comm, NULL);
    const char *phases[] = {"data", "step", "allreduce", "allgather", "step", "sync"};
    for (int i = 0; i < 125; i++) {
        watchdog_phase(w, phases[i % 6], i / 6 + 1);
        nap(0.02);
    }
    CHECK(!watchdog_fired(w) && !atomic_load(&f.done));
    CHECKF(poll_calls >= 5, "the communicator was polled %d times in 2.5 s (tick 0.25 s)", poll_calls);
    // Idle (phase NULL): never timed.
    watchdog_phase(w, NULL, 0);
    nap(1.6);
    CHECK(!watchdog_fired(w));
    watchdog_set_comm(w, NULL, NULL);
    watchdog_stop(w);
    ok("a loop marking its phases, then idle: never fires");

    // A stuck phase: fires after the timeout, not before, naming rank, host, step and phase.
    memset(&f, 0, sizeof(f));
    const double T = 0.5;
    w = watchdog_start(T, &d, on_fire, &f);
    watchdog_phase(w, "allreduce", 7);
    double dt = wait_fired(&f, 5.0);
    CHECKF(dt >= T - 0.01 && dt < T + 0.125 + 1.5, "fired after %.3f s (timeout %.1f s, tick 0.125 s)", dt, T);
    CHECK(watchdog_fired(w) && f.status == WATCHDOG_EXIT && WATCHDOG_EXIT == 98);
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    char want[512];
    snprintf(want, sizeof(want), "rank 0 of 1 on %s: phase 'allreduce' of step 7 has not completed within 0.5 s", host);
    CHECKF(strstr(f.report, want) && strstr(f.report, "exit status 98"), "report: %s", f.report);
    watchdog_phase(w, "step", 8);  // (after firing: marks are harmless)
    watchdog_stop(w);
    ok("a stuck phase fires after the timeout with rank, host, step, phase and exit status 98");

    // A phase that restarts the clock just in time never fires; the last one does.
    memset(&f, 0, sizeof(f));
    w = watchdog_start(1.0, &d, on_fire, &f);
    for (int i = 0; i < 6; i++) {
        watchdog_phase(w, "checkpoint", 40 + i);
        nap(0.5);
    }
    CHECK(!atomic_load(&f.done));
    dt = wait_fired(&f, 5.0);
    CHECKF(dt >= 0.4 && strstr(f.report, "phase 'checkpoint' of step 45"), "after %.3f s: %s", dt, f.report);
    watchdog_stop(w);
    ok("the timeout is per phase: six 0.5 s phases under a 1 s timeout pass, a stuck one fires");

    // An asynchronous communicator error fires at once, whatever the phase's age.
    memset(&f, 0, sizeof(f));
    poll_calls = 0;
    w = watchdog_start(60, &d, on_fire, &f);
    watchdog_phase(w, "allreduce", 3);
    watchdog_set_comm(w, failing_comm, NULL);
    dt = wait_fired(&f, 10.0);
    CHECKF(dt >= 0 && dt < 5 && strstr(f.report, "remote process exited (in phase 'allreduce' of step 3)") &&
           f.status == 98, "after %.3f s: %s", dt, f.report);
    watchdog_stop(w);
    ok("a communicator error reported by the poll ends the job at once");

    // Start and stop at once, many times: the thread is always joined (sanitizers: no leak).
    for (int i = 0; i < 50; i++) {
        w = watchdog_start(1e-3 * (i + 1), &d, on_fire, &f);
        if (i % 2) watchdog_phase(w, "step", i);
        watchdog_stop(w);
    }
    ok("start / stop 50 times");
    return failures ? 1 : 0;
}
