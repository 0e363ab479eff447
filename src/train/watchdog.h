// watchdog.h: no silent hangs. A thread per rank watches the training loop, which marks each
// phase it enters ("setup", "data", "step", "allreduce", "allgather", "sync", "validation",
// "checkpoint", "shutdown": any static string) with watchdog_phase, a few atomic stores. When one
// phase has not ended (no further mark) within runtime.timeout_s, typically a collective whose
// peer is stopped, dead or unreachable, the watchdog prints one line
//     vlmae: watchdog: rank R of W on HOST: phase 'P' of step S has not completed within T s
//     (runtime.timeout_s); aborting the job (exit status 98)
// and ends the job: MPI_Abort (every rank) when several ranks run, _exit otherwise, with exit
// status WATCHDOG_EXIT (98) so job scripts can tell a hang from a crash or a requeue (99). A
// communicator error reported asynchronously (NCCL: nccl_dist_async_error, polled through
// watchdog_set_comm at every tick) ends the job the same way at once.
//
// The timeout covers one phase, not the run: a healthy run marks a new phase at least once per
// step, and every phase (the first step, a checkpoint write, a validation batch) must fit in it.
// Resolution: the thread ticks every min(1 s, timeout / 4), so it fires between T and T + tick
// after the last mark.
//
// Use (pretrain.c; a training loop of its own needs only the first three lines):
//     Watchdog *wd = watchdog_start(rc.runtime.timeout_s, &d, NULL, NULL);  // NULL when timeout <= 0
//     ... watchdog_phase(wd, "step", step) ...                            // at every phase change
//     watchdog_stop(wd);                                                  // before dist_finalize
// Every function accepts wd == NULL (disabled) and then does nothing.
#ifndef VLMAE_WATCHDOG_H
#define VLMAE_WATCHDOG_H

#include <stddef.h>
#include <stdint.h>

#include "train/dist.h"

#define WATCHDOG_EXIT 98  // the exit status of a job the watchdog ended

typedef struct Watchdog Watchdog;

// Called instead of ending the job (tests): the report line and WATCHDOG_EXIT. The watchdog then
// stops watching; watchdog_fired says so.
typedef void (*WatchdogFire)(void *ctx, const char *report, int status);
// A communicator's asynchronous error state: 0 while healthy; 1 with a one-line reason in msg.
// Called from the watchdog thread, with its own lock held (watchdog_set_comm waits for a call in
// progress).
typedef int (*WatchdogPoll)(void *ctx, char *msg, size_t n);

// Starts watching in phase "setup" (step 0). timeout_s <= 0: no watchdog, returns NULL. d: rank,
// world and how to abort (dist_abort_now); it must outlive the watchdog. fire: NULL in a program.
Watchdog *watchdog_start(double timeout_s, const Dist *d, WatchdogFire fire, void *fire_ctx);
// Enter phase `phase` (a string that outlives the watchdog: a literal) of step `step`; the clock
// of the timeout starts again. phase NULL: idle, nothing is timed until the next mark.
void watchdog_phase(Watchdog *w, const char *phase, int64_t step);
// Poll `poll` (NULL: nothing) at every tick from now on. Clear it before freeing what ctx points
// to: this returns only once no call of the previous function is in progress.
void watchdog_set_comm(Watchdog *w, WatchdogPoll poll, void *ctx);
// 1 when the watchdog has fired (only seen with a fire callback).
int watchdog_fired(const Watchdog *w);
// Stops and joins the thread, frees w.
void watchdog_stop(Watchdog *w);

#endif
