// watchdog.c: the hang watchdog (see watchdog.h).
//
// The loop's side is three atomic stores per mark (phase, step, then a generation counter with
// release order). The watchdog thread never trusts a clock of the loop: it samples the
// generation at every tick and times how long it has seen the same one, so a mark costs no clock
// read and a torn read can only make it late, never early.
//
// Ending the job: MPI runs MPI_THREAD_FUNNELED, and MPI_Abort from this thread is outside that
// contract; but it is the one call meant to end everything from any state, and Open MPI 4.1 does
// so with the main thread blocked in a collective (tests/test_watchdog.sh). Should a runtime
// hang in it or be slow to act (under load Open MPI took over 20 s to kill a rank, which meanwhile
// went on and finished the checkpoint it had been stuck in), a SIGALRM backstop _exits this
// process BACKSTOP_S seconds later (its launcher then ends the others, as after any rank that
// dies). A rank declared hung must not go on working.
#include "train/watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/common.h"

// After the abort is asked for, the process ends within this many seconds whatever MPI does.
#define BACKSTOP_S 3

struct Watchdog {
    double timeout_s, tick_s;
    const Dist *d;
    char host[256];
    _Atomic(const char *) phase;  // NULL: idle
    _Atomic int_least64_t step;
    atomic_uint_least64_t gen;    // bumped by every mark
    atomic_int fired;
    WatchdogFire fire;
    void *fire_ctx;
    pthread_t th;
    pthread_mutex_t mu;  // guards stop, poll, poll_ctx; held by the thread while it polls
    pthread_cond_t cv;
    int stop;
    WatchdogPoll poll;
    void *poll_ctx;
};

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void backstop(int sig) {
    (void)sig;
    _exit(WATCHDOG_EXIT);
}

// The report is written with one write(2): the blocked main thread may hold stdio's locks.
static void end_job(Watchdog *w, const char *report) {
    atomic_store(&w->fired, 1);
    if (w->fire) {
        w->fire(w->fire_ctx, report, WATCHDOG_EXIT);
        return;
    }
    size_t len = strlen(report), off = 0;
    while (off < len) {
        ssize_t k = write(STDERR_FILENO, report + off, len - off);
        if (k <= 0 && errno != EINTR) break;
        if (k > 0) off += (size_t)k;
    }
    // The job is ending: the Slurm stop signals (SIGTERM, SIGUSR1: checkpoint and requeue) no
    // longer apply, and Open MPI's abort sends SIGTERM first, which would wake a sleeping main
    // thread and let the rank declared hung finish what it was stuck in. Ignore them.
    signal(SIGTERM, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    // Should MPI_Abort itself hang (a runtime that cannot reach its daemon), end this process.
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = backstop;
    sigaction(SIGALRM, &sa, NULL);
    alarm(BACKSTOP_S);
    dist_abort_now(w->d, WATCHDOG_EXIT);
}

static void *watch(void *arg) {
    Watchdog *w = arg;
    char report[1024], msg[512];
    pthread_mutex_lock(&w->mu);
    uint_least64_t seen = atomic_load_explicit(&w->gen, memory_order_acquire);
    double since = mono_now(), last = since;
    while (!w->stop) {
        double wake = mono_now() + w->tick_s;
        struct timespec ts = {(time_t)wake, (long)((wake - (double)(time_t)wake) * 1e9)};
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        while (!w->stop && pthread_cond_timedwait(&w->cv, &w->mu, &ts) != ETIMEDOUT) {
        }
        if (w->stop) break;
        const char *ph = atomic_load_explicit(&w->phase, memory_order_relaxed);
        int64_t step = (int64_t)atomic_load_explicit(&w->step, memory_order_relaxed);
        if (w->poll && w->poll(w->poll_ctx, msg, sizeof(msg))) {
            snprintf(report, sizeof(report), "vlmae: watchdog: rank %d of %d on %s: %s (in phase '%s' of step %lld); "
                     "aborting the job (exit status %d)\n", w->d->rank, w->d->world, w->host, msg,
                     ph ? ph : "idle", (long long)step, WATCHDOG_EXIT);
            pthread_mutex_unlock(&w->mu);
            end_job(w, report);
            return NULL;
        }
        uint_least64_t g = atomic_load_explicit(&w->gen, memory_order_acquire);
        double now = mono_now(), gap = now - last;
        last = now;
        // A new mark since the last tick, or idle: the clock starts again. So it does when this
        // thread itself did not run for half the timeout (the process was stopped, SIGSTOP, or
        // starved): the phase then lost that time too, and the ranks it waits for are not to blame.
        if (g != seen || !ph || gap > w->timeout_s / 2 + w->tick_s) {
            seen = g, since = now;
            continue;
        }
        if (now - since < w->timeout_s) continue;
        ph = atomic_load_explicit(&w->phase, memory_order_relaxed);
        step = (int64_t)atomic_load_explicit(&w->step, memory_order_relaxed);
        if (atomic_load_explicit(&w->gen, memory_order_acquire) != g || !ph) continue;  // a mark just landed
        snprintf(report, sizeof(report), "vlmae: watchdog: rank %d of %d on %s: phase '%s' of step %lld has not "
                 "completed within %g s (runtime.timeout_s); aborting the job (exit status %d)\n",
                 w->d->rank, w->d->world, w->host, ph, (long long)step, w->timeout_s, WATCHDOG_EXIT);
        pthread_mutex_unlock(&w->mu);
        end_job(w, report);
        return NULL;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

Watchdog *watchdog_start(double timeout_s, const Dist *d, WatchdogFire fire, void *fire_ctx) {
    if (!(timeout_s > 0)) return NULL;
    Watchdog *w = callocCheck(1, sizeof(Watchdog));
    w->timeout_s = timeout_s;
    w->tick_s = timeout_s / 4 < 1.0 ? timeout_s / 4 : 1.0;
    if (w->tick_s < 0.01) w->tick_s = 0.01;
    w->d = d, w->fire = fire, w->fire_ctx = fire_ctx;
    snprintf(w->host, sizeof(w->host), "?");
    gethostname(w->host, sizeof(w->host) - 1);
    w->host[sizeof(w->host) - 1] = 0;
    atomic_init(&w->phase, "setup");
    atomic_init(&w->step, 0);
    atomic_init(&w->gen, 0);
    atomic_init(&w->fired, 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&w->mu, NULL);
    // The thread takes no signal meant for the program (SIGUSR1, SIGTERM: the main loop's flag).
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->th, NULL, watch, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        fprintf(stderr, "vlmae: warning: cannot start the watchdog thread (%s): hangs will not be detected\n",
                strerror(rc));
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    return w;
}

void watchdog_phase(Watchdog *w, const char *phase, int64_t step) {
    if (!w) return;
    atomic_store_explicit(&w->phase, phase, memory_order_relaxed);
    atomic_store_explicit(&w->step, step, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->gen, 1, memory_order_release);
}

void watchdog_set_comm(Watchdog *w, WatchdogPoll poll, void *ctx) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->poll = poll, w->poll_ctx = ctx;
    pthread_mutex_unlock(&w->mu);
}

int watchdog_fired(const Watchdog *w) { return w ? atomic_load((atomic_int *)&w->fired) : 0; }

void watchdog_stop(Watchdog *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
