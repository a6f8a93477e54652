/* A shm:// channel side's fileno(): the doorbell of doorbell.c, published
 * at OFF_BELL + 16 * side, rung by the peer's publish() (ring.h) when the
 * fd-waiter word next to the futex waiter flag (data_fdwait or
 * space_fdwait) is set -- in the same cache line, so the fast path gains
 * one L1 load.  The epoll set also holds the peer's pidfd.
 *
 * Arming drains the pipe first and then re-checks, so no wake-up is lost;
 * when the ring is ready at arm time the side rings its own bell, which
 * makes the descriptor behave level-triggered for callers that re-arm
 * (fileno()) before every wait.  The peer's close rings the bell; our own
 * close rings it too. */
#include "ring.h"

static ip_bell_slot *
slot_of(ChanObject *self, int side)
{
    return (ip_bell_slot *)((char *)self->view.buf + OFF_BELL + 16 * side);
}

void
ip_bell_init(ChanObject *self)
{
    ip_doorbell_init(&self->bell);
    ip_bell_peer_init(&self->peer_bell);
}

void
ip_bell_ring_self(ChanObject *self)
{
    ip_doorbell_ring(&self->bell);
}

static uint32_t
peer_pid(ChanObject *self)
{
    /* The ident of the other side: (pid u32, pad, start u64) at 24 / 40. */
    return __atomic_load_n((uint32_t *)((char *)self->view.buf + 24 + 16 * (1 - self->side)),
                           __ATOMIC_RELAXED);
}

void
ip_bell_ring_peer(ChanObject *self)
{
    if (self->has_view)
        ip_bell_peer_ring(&self->peer_bell, slot_of(self, 1 - self->side), peer_pid(self));
}

void
ip_bell_wake(ChanObject *self, uint32_t *flag, uint32_t *word)
{
    if (__atomic_load_n(flag, __ATOMIC_RELAXED))
        ip_chan_wake(word);
    /* One shot: the waiter re-arms before each poll. */
    if (__atomic_load_n(flag + 1, __ATOMIC_RELAXED) &&
        __atomic_exchange_n(flag + 1, 0, __ATOMIC_SEQ_CST))
        ip_bell_ring_peer(self);
}

void
ip_bell_close(ChanObject *self)
{
    ip_doorbell_close(&self->bell, self->has_view ? slot_of(self, self->side) : NULL);
    ip_bell_peer_close(&self->peer_bell);
}

/* Make the doorbell on first use; -1 with an exception set. */
static int
bell_setup(ChanObject *self)
{
    if (ip_doorbell_ok(&self->bell))
        return 0;
    if (self->closed || !self->has_view) {
        PyErr_SetString(PyExc_ValueError, "shm channel is closed");
        return -1;
    }
    return ip_doorbell_open(&self->bell, slot_of(self, self->side), self->pidfd, 0,
                            peer_pid(self), "shm channel");
}

/* Announce, fence, re-check: 1 when ready now, 0 when the caller may poll
 * (the other side then rings us once it publishes). */
static int
arm(ChanObject *self, int for_space, uint64_t need)
{
    uint32_t *fw = for_space ? &self->tx->space_fdwait : &self->rx->data_fdwait;
    __atomic_store_n(fw, 1, __ATOMIC_SEQ_CST);
    ip_heavy_fence(self->asym);
    return self->closed || self->broken ||
           (for_space ? tx_ready(self, need) : rx_ready(self)) || ip_peer_gone(self);
}

/* fileno()'s arming: drain first, then arm, and ring our own bell when
 * ready, so that a poll right after returns at once (level-triggered for
 * callers that re-arm before every wait). */
static int
rearm(ChanObject *self)
{
    ip_doorbell_drain(&self->bell);
    int r = arm(self, 0, 0);
    if (r)
        ip_bell_ring_self(self);
    return r;
}

int
ip_bell_rearm(ChanObject *self)
{
    return ip_doorbell_ok(&self->bell) && !self->closed ? rearm(self) : 0;
}

PyObject *
ip_bell_fileno(ChanObject *self, PyObject *unused)
{
    if (bell_setup(self) < 0)
        return NULL;
    rearm(self);
    return PyLong_FromLong(self->bell.ep);
}

PyObject *
ip_bell_arm_recv(ChanObject *self, PyObject *unused)
{
    if (bell_setup(self) < 0)
        return NULL;
    return PyBool_FromLong(arm(self, 0, 0));
}

PyObject *
ip_bell_arm_send(ChanObject *self, PyObject *arg)
{
    Py_ssize_t n = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (bell_setup(self) < 0)
        return NULL;
    if (n < 0 || (uint64_t)n + 8 > self->cap / 2)
        return Py_NewRef(Py_True); /* send() itself reports the problem */
    return PyBool_FromLong(arm(self, 1, tx_need(self, (uint64_t)n)));
}

PyObject *
ip_bell_drain(ChanObject *self, PyObject *unused)
{
    return PyBool_FromLong(ip_doorbell_drain(&self->bell));
}
