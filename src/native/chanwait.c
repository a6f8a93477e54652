/* Waiting on a shm:// ring: spin (first holding the GIL, then not, with
 * sched_yield), then sleep on a futex in slices, checking the peer's
 * pidfd and signals between slices.  See ring.h for the layout. */
#include "ring.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <poll.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Asymmetric Dekker fences.  Publishing an index and then checking the
 * other side's "I am going to sleep" flag needs a StoreLoad barrier; an
 * mfence/xchg on the line the peer is polling costs ~100 ns per message and
 * halved the one-way message rate.  Instead the side about to sleep (the
 * rare, slow path) issues membarrier(GLOBAL_EXPEDITED), which runs a full
 * barrier on every CPU executing a registered process, and the hot path uses
 * a compiler barrier only.  Used when both processes registered (a flag per
 * side in the control block); otherwise seq_cst fences on both paths. */
int ip_asym_ok = -1;

int
ip_asym_register(void)
{
    if (ip_asym_ok < 0) {
        long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
        ip_asym_ok = q >= 0 && (q & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
                  syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
    }
    return ip_asym_ok;
}

/* The slow side's barrier: after storing its waiter flag, before re-checking. */
void
ip_heavy_fence(int asym)
{
    if (!asym || syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) != 0)
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

int
ip_peer_gone(ChanObject *self)
{
    if (self->peer_dead)
        return 1;
    if (self->pidfd >= 0) {
        struct pollfd p = {self->pidfd, POLLIN, 0};
        if (poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)))
            self->peer_dead = 1;
    }
    return self->peer_dead;
}

/* Block without the GIL until ready, the deadline, a signal (W_CHECK), time
 * for a periodic check (W_CHECK), or the peer's death (W_DEAD). */
static int
block(ChanObject *self, int for_space, uint64_t need, long long deadline,
      long long spin_until, uint32_t intr)
{
    long long chunk_start = mono_ns();
    uint32_t *word = for_space ? &self->tx->space_seq : &self->rx->data_seq;
    uint32_t *flag = for_space ? &self->tx->space_wait : &self->rx->data_wait;
    for (;;) {
        if (ready(self, for_space, need, intr))
            return W_READY;
        long long now = mono_ns();
        if (deadline >= 0 && now >= deadline)
            return W_TIMEOUT;
        if (self->policy == POLICY_SPIN || now < spin_until) {
            for (int i = 0; i < 64; i++) {
                ip_cpu_relax();
                if (ready(self, for_space, need, intr))
                    return W_READY;
            }
            /* The peer may be waiting for *our* CPU (two busy processes on
             * one core, or a loaded machine): spinning would then burn the
             * whole budget before the peer runs.  A yield costs ~0.2 us
             * when nobody else is runnable and hands over the CPU when the
             * peer is. */
            sched_yield();
            if (self->policy == POLICY_SPIN && now - chunk_start > SPIN_CHECK_NS)
                return ip_peer_gone(self) ? W_DEAD : W_CHECK;
            continue;
        }
        /* Sleep.  Dekker with the producer of the event: we publish the
         * waiter flag then re-check; it publishes its index then checks the
         * flag.  Both sides use seq_cst, so at least one sees the other. */
        uint32_t seq = __atomic_load_n(word, __ATOMIC_ACQUIRE);
        __atomic_store_n(flag, 1, __ATOMIC_SEQ_CST);
        ip_heavy_fence(self->asym);
        if (ready(self, for_space, need, intr)) {
            __atomic_store_n(flag, 0, __ATOMIC_RELAXED);
            return W_READY;
        }
        long long span = SLICE_NS;
        if (deadline >= 0 && deadline - now < span)
            span = deadline - now;
        struct timespec ts = {span / 1000000000LL, span % 1000000000LL};
        long rc = ip_futex(word, FUTEX_WAIT, seq, &ts);
        int err = errno;
        __atomic_store_n(flag, 0, __ATOMIC_RELAXED);
        /* Back to Python after a signal, and after every slice: a signal
         * delivered to another thread interrupts nothing here, yet its
         * handler must run (Ctrl-C) within a slice. */
        if (rc < 0 && err == ETIMEDOUT && ip_peer_gone(self))
            return W_DEAD;
        if (rc < 0 && (err == EINTR || err == ETIMEDOUT))
            return W_CHECK;
    }
}

/* Wait until a send of `need` bytes / a recv would not block.  Returns 1 when
 * ready (including closed / dead peer: the caller reports those), 0 on
 * timeout, -1 with an exception set. */
int
ip_chan_wait(ChanObject *self, int for_space, uint64_t need, long long deadline)
{
    uint32_t intr = __atomic_load_n(&self->interrupts, __ATOMIC_ACQUIRE);
    long long start = mono_ns();
    long long spin_until = self->policy == POLICY_SLEEP ? 0 : start + self->spin_ns;
    /* A prompt peer answers within a few microseconds: poll that long with
     * the GIL held, because handing the GIL over and back costs about as
     * much as the whole round trip.  Longer waits release it. */
    long long gil_until = start + (self->spin_ns < GIL_SPIN_NS ? self->spin_ns : GIL_SPIN_NS);
    if (self->policy != POLICY_SLEEP) {
        for (;;) {
            for (int i = 0; i < 32; i++) {
                if (ready(self, for_space, need, intr))
                    return 1;
                ip_cpu_relax();
            }
            long long now = mono_ns();
            if (now >= gil_until || (deadline >= 0 && now >= deadline))
                break;
        }
    }
    for (;;) {
        int r;
        Py_BEGIN_ALLOW_THREADS
        r = block(self, for_space, need, deadline, spin_until, intr);
        Py_END_ALLOW_THREADS
        if (r == W_READY || r == W_DEAD)
            return 1;
        if (r == W_TIMEOUT)
            return 0;
        if (PyErr_CheckSignals() < 0)
            return -1;
        if (self->closed)
            return 1;
    }
}

void
ip_chan_wake(uint32_t *word)
{
    __atomic_fetch_add(word, 1, __ATOMIC_SEQ_CST);
    ip_futex(word, FUTEX_WAKE, INT_MAX, NULL);
}
