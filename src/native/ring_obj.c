/* The shm:// channel object around the record code of ring.c: waits for
 * asyncio, close, construction, attributes, the type, the Loan behind
 * recv_view() and the module glue.  Layout and invariants: ring.h. */
#include "ring.h"

#include <stddef.h>
#include <string.h>
#include <unistd.h>

static PyTypeObject Chan_Type;

/* -- waits for asyncio and friends ---------------------------------------- */

static PyObject *
chan_wait_recv(ChanObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *timeout;
    if (parse_args("wait_recv", args, nargs, kwnames, 0, NULL, &timeout) < 0)
        return NULL;
    if (self->closed || self->broken || rx_ready(self))
        return Py_NewRef(Py_True);
    long long deadline;
    if (deadline_ns(timeout, &deadline) < 0)
        return NULL;
    if (deadline >= 0 && mono_ns() >= deadline)
        return PyBool_FromLong(ip_peer_gone(self));
    self->waiters++;
    int r = ip_chan_wait(self, 0, 0, deadline);
    PyObject *res = r < 0 ? NULL : PyBool_FromLong(self->closed || rx_ready(self) || self->peer_dead);
    self->waiters--;
    if (self->closed)
        chan_drop_view(self);
    return res;
}

static PyObject *
chan_wait_send(ChanObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *nobj, *timeout;
    if (parse_args("wait_send", args, nargs, kwnames, 1, &nobj, &timeout) < 0)
        return NULL;
    Py_ssize_t n = PyNumber_AsSsize_t(nobj, PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 0 || (uint64_t)n > max_message(self))
        return Py_NewRef(Py_True); /* send() itself reports the problem */
    uint64_t need = tx_need(self, (uint64_t)n);
    if (self->closed || self->broken || tx_ready(self, need))
        return Py_NewRef(Py_True);
    long long deadline;
    if (deadline_ns(timeout, &deadline) < 0)
        return NULL;
    if (deadline >= 0 && mono_ns() >= deadline)
        return PyBool_FromLong(ip_peer_gone(self));
    self->waiters++;
    int r = ip_chan_wait(self, 1, need, deadline);
    PyObject *res = r < 0 ? NULL : PyBool_FromLong(self->closed || tx_ready(self, need) || self->peer_dead);
    self->waiters--;
    if (self->closed)
        chan_drop_view(self);
    return res;
}

static PyObject *
chan_interrupt(ChanObject *self, PyObject *unused)
{
    /* Wake this process's own waiters (a cancelled asyncio wait): bump the
     * words they sleep on; the peer treats the extra bump as spurious. */
    __atomic_fetch_add(&self->interrupts, 1, __ATOMIC_SEQ_CST);
    if (self->has_view) {
        ip_chan_wake(&self->rx->data_seq);
        ip_chan_wake(&self->tx->space_seq);
    }
    Py_RETURN_NONE;
}

static PyObject *
chan_close(ChanObject *self, PyObject *unused)
{
    if (!self->closed) {
        __atomic_store_n(&self->closed, 1, __ATOMIC_SEQ_CST);
        /* A forked child that closes (or exits with) an inherited end must
           not tell the peer that the parent's end is gone. */
        if (self->has_view && getpid() == self->owner) {
            __atomic_store_n(self->my_closed, 1, __ATOMIC_SEQ_CST);
            ip_chan_wake(&self->tx->data_seq);  /* a peer waiting for data */
            ip_chan_wake(&self->rx->space_seq); /* a peer waiting for space */
            ip_chan_wake(&self->rx->data_seq);  /* our own threads (they see `closed`) */
            ip_chan_wake(&self->tx->space_seq);
            ip_bell_ring_peer(self);            /* a peer polling its doorbell */
            ip_bell_ring_self(self);            /* our own pollers */
            ip_bell_close(self);
        }
        if (self->pidfd >= 0) {
            close(self->pidfd);
            self->pidfd = -1;
        }
        chan_drop_view(self);
    }
    Py_RETURN_NONE;
}

/* -- construction ------------------------------------------------------------- */

static int
chan_init(ChanObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"buffer", "side", "pidfd", "policy", "spin_us", NULL};
    PyObject *buffer;
    int side, pidfd = -1;
    const char *policy = "hybrid";
    double spin_us = 50.0;
    if (self->has_view) {
        PyErr_SetString(PyExc_TypeError, "ShmChannel is already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Oi|i$sd", kw, &buffer, &side, &pidfd,
                                     &policy, &spin_us))
        return -1;
    if (side != 0 && side != 1) {
        PyErr_Format(PyExc_ValueError, "side must be 0 or 1, not %d", side);
        return -1;
    }
    if (strcmp(policy, "hybrid") == 0)
        self->policy = POLICY_HYBRID;
    else if (strcmp(policy, "spin") == 0)
        self->policy = POLICY_SPIN;
    else if (strcmp(policy, "sleep") == 0)
        self->policy = POLICY_SLEEP;
    else {
        PyErr_Format(PyExc_ValueError,
                     "policy must be 'hybrid', 'spin' or 'sleep', not '%.50s'", policy);
        return -1;
    }
    if (!(spin_us >= 0 && spin_us <= 1e7)) {
        PyErr_Format(PyExc_ValueError, "spin_us must be 0..1e7 microseconds, not %g", spin_us);
        return -1;
    }
    if (PyObject_GetBuffer(buffer, &self->view, PyBUF_WRITABLE) < 0)
        return -1;
    char *base = self->view.buf;
    if (self->view.len < CHAN_DATA || ((uintptr_t)base & 63)) {
        PyErr_Format(err_protocol ? err_protocol : PyExc_ValueError,
                     "shm channel segment of %zd bytes is too small or misaligned",
                     self->view.len);
        PyBuffer_Release(&self->view);
        return -1;
    }
    uint32_t magic = ((uint32_t *)base)[0], version = ((uint32_t *)base)[1];
    uint64_t cap = ((uint64_t *)base)[1];
    const char *bad = NULL;
    if (magic != CHAN_MAGIC)
        bad = "bad magic";
    else if (version != CHAN_VERSION)
        bad = "unknown layout version";
    else if (cap < MIN_CAPACITY || cap > MAX_CAPACITY || cap % 4096 ||
             (uint64_t)self->view.len < CHAN_DATA + 2 * cap)
        bad = "capacity does not match the segment";
    if (bad) {
        PyErr_Format(err_protocol ? err_protocol : PyExc_ValueError,
                     "not a valid shm channel segment (%s)", bad);
        PyBuffer_Release(&self->view);
        return -1;
    }
    self->has_view = 1;
    self->cap = cap;
    self->side = side;
    ring_hdr *r0 = (ring_hdr *)(base + OFF_RING0), *r1 = (ring_hdr *)(base + OFF_RING1);
    self->tx = side == 0 ? r0 : r1;
    self->rx = side == 0 ? r1 : r0;
    self->txdata = base + CHAN_DATA + (side == 0 ? 0 : cap);
    self->rxdata = base + CHAN_DATA + (side == 0 ? cap : 0);
    self->my_closed = (uint32_t *)(base + OFF_CLOSED) + side;
    self->peer_closed = (uint32_t *)(base + OFF_CLOSED) + (1 - side);
    self->peer_asym = (uint32_t *)(base + OFF_ASYM) + (1 - side);
    /* The sleep policy sleeps on every wait: there a membarrier (IPIs to the
     * peer's CPU) would cost more than the fence it saves the peer. */
    self->asym = self->policy != POLICY_SLEEP && ip_asym_register();
    __atomic_store_n((uint32_t *)(base + OFF_ASYM) + side, (uint32_t)self->asym,
                     __ATOMIC_SEQ_CST);
    self->head = __atomic_load_n(&self->tx->head, __ATOMIC_ACQUIRE);
    self->tail_seen = __atomic_load_n(&self->tx->tail, __ATOMIC_ACQUIRE);
    self->rpos = __atomic_load_n(&self->rx->tail, __ATOMIC_ACQUIRE);
    self->head_seen = self->rpos;
    if (self->head - self->tail_seen > cap || (self->head & 7) || (self->rpos & 7))
        self->broken = 1; /* reported by the first send/recv */
    self->pidfd = pidfd >= 0 ? pidfd : -1;
    self->owner = getpid();
    self->peer_dead = pidfd == -2; /* the caller found the peer already gone */
    self->spin_ns = (long long)(spin_us * 1000.0);
    return 0;
}

static void
chan_dealloc(ChanObject *self)
{
    if (!self->closed && self->has_view)
        chan_close(self, NULL);
    if (self->pidfd >= 0)
        close(self->pidfd);
    ip_bell_close(self);
    if (self->has_view)
        PyBuffer_Release(&self->view);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
chan_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    ChanObject *self = (ChanObject *)type->tp_alloc(type, 0);
    if (self) {
        self->pidfd = -1;
        ip_bell_init(self);
    }
    return (PyObject *)self;
}

static PyObject *
get_capacity(ChanObject *self, void *c)
{
    return PyLong_FromUnsignedLongLong(self->cap);
}

static PyObject *
get_max_message(ChanObject *self, void *c)
{
    return PyLong_FromUnsignedLongLong(self->cap ? max_message(self) : 0);
}

static PyObject *
get_closed(ChanObject *self, void *c)
{
    return PyBool_FromLong(self->closed);
}

static PyObject *
get_peer_closed(ChanObject *self, void *c)
{
    if (!self->has_view)
        return Py_NewRef(Py_True);
    return PyBool_FromLong(__atomic_load_n(self->peer_closed, __ATOMIC_ACQUIRE) ||
                           ip_peer_gone(self));
}

static PyObject *
get_policy(ChanObject *self, void *c)
{
    static const char *names[] = {"hybrid", "spin", "sleep"};
    return PyUnicode_FromString(names[self->policy]);
}

static PyObject *
get_spin_us(ChanObject *self, void *c)
{
    return PyFloat_FromDouble(self->spin_ns / 1000.0);
}

static PyObject *
get_pending(ChanObject *self, void *c)
{
    if (!self->has_view)
        return PyLong_FromLong(0);
    uint64_t d = __atomic_load_n(&self->rx->head, __ATOMIC_ACQUIRE) - self->rpos;
    return PyLong_FromUnsignedLongLong(d > self->cap ? 0 : d);
}

static PyGetSetDef chan_getset[] = {
    {"capacity", (getter)get_capacity, NULL, "Bytes per ring (each direction).", NULL},
    {"max_message", (getter)get_max_message, NULL, "Largest message that fits.", NULL},
    {"closed", (getter)get_closed, NULL, "True after close().", NULL},
    {"peer_closed", (getter)get_peer_closed, NULL, "The peer closed its end or died.", NULL},
    {"policy", (getter)get_policy, NULL, "Wait policy: hybrid, spin or sleep.", NULL},
    {"spin_us", (getter)get_spin_us, NULL, "Spin budget before sleeping (hybrid).", NULL},
    {"pending", (getter)get_pending, NULL, "Bytes published to us and not yet read.", NULL},
    {NULL},
};

#define FASTKW (METH_FASTCALL | METH_KEYWORDS)
static PyMethodDef chan_methods[] = {
    {"send", (PyCFunction)(void (*)(void))chan_send, FASTKW,
     "send(data, timeout=None)\n--\n\nCopy one message into the ring (any contiguous buffer)."},
    {"recv", (PyCFunction)(void (*)(void))chan_recv, FASTKW,
     "recv(timeout=None)\n--\n\nReceive one message as bytes."},
    {"recv_into", (PyCFunction)(void (*)(void))chan_recv_into, FASTKW,
     "recv_into(buffer, timeout=None)\n--\n\nCopy the next message into buffer; returns its size."},
    {"recv_view", (PyCFunction)(void (*)(void))chan_recv_view, FASTKW,
     "recv_view(timeout=None)\n--\n\nA read-only memoryview of the next message in the ring;\n"
     "its space is freed when the view is released."},
    {"wait_recv", (PyCFunction)(void (*)(void))chan_wait_recv, FASTKW,
     "wait_recv(timeout=None)\n--\n\nWait until recv() would not block; False on timeout\n"
     "or interrupt()."},
    {"wait_send", (PyCFunction)(void (*)(void))chan_wait_send, FASTKW,
     "wait_send(nbytes, timeout=None)\n--\n\nWait until send() of nbytes would not block."},
    {"fileno", (PyCFunction)ip_bell_fileno, METH_NOARGS,
     "fileno()\n--\n\nA descriptor that polls readable when recv() may not block, or the\n"
     "peer closed or died (spurious readiness is possible: re-check with a\n"
     "non-blocking recv).  Each call drains and re-arms it: call it before every wait."},
    {"arm_recv", (PyCFunction)ip_bell_arm_recv, METH_NOARGS,
     "arm_recv()\n--\n\nArm fileno() for recv (no draining); True if recv would not block now."},
    {"arm_send", (PyCFunction)ip_bell_arm_send, METH_O,
     "arm_send(nbytes)\n--\n\nArm fileno() for space for nbytes; True if send would not block now."},
    {"drain_bell", (PyCFunction)ip_bell_drain, METH_NOARGS,
     "drain_bell()\n--\n\nEmpty fileno()'s doorbell (before re-checking); True if it had rung."},
    {"interrupt", (PyCFunction)chan_interrupt, METH_NOARGS,
     "interrupt()\n--\n\nWake this process's threads waiting in wait_recv/wait_send."},
    {"close", (PyCFunction)chan_close, METH_NOARGS,
     "close()\n--\n\nMark our end closed and wake the peer."},
    {NULL},
};

static PyTypeObject Chan_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "interproc._native.ShmChannel",
    .tp_basicsize = sizeof(ChanObject),
    .tp_dealloc = (destructor)chan_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "ShmChannel(buffer, side, pidfd=-1, *, policy='hybrid', spin_us=50.0)\n--\n\n"
              "One end of a duplex shared-memory channel laid over `buffer`\n"
              "(the segment's user area).  Side 0 sends on ring 0 and receives on\n"
              "ring 1; side 1 the reverse.  `pidfd` watches the peer process.",
    .tp_methods = chan_methods,
    .tp_getset = chan_getset,
    .tp_init = (initproc)chan_init,
    .tp_new = chan_new,
};

/* -- Loan: the exporter behind recv_view()'s memoryview -------------------- */

static int
loan_getbuffer(LoanObject *self, Py_buffer *view, int flags)
{
    if (self->done) {
        PyErr_SetString(PyExc_BufferError, "this shm channel view was already released");
        return -1;
    }
    if (PyBuffer_FillInfo(view, (PyObject *)self, self->ptr, self->len, 1, flags) < 0)
        return -1;
    self->exports++;
    return 0;
}

static void
loan_return(LoanObject *self)
{
    if (!self->done) {
        self->done = 1;
        ChanObject *chan = self->chan;
        loan_finish(chan, self->seq);
        chan->live_loans--;
        if (chan->closed)
            chan_drop_view(chan);
    }
}

static void
loan_releasebuffer(LoanObject *self, Py_buffer *view)
{
    if (--self->exports == 0)
        loan_return(self);
}

static void
loan_dealloc(LoanObject *self)
{
    loan_return(self);
    Py_DECREF(self->chan);
    PyObject_Free(self);
}

static PyBufferProcs loan_as_buffer = {
    (getbufferproc)loan_getbuffer,
    (releasebufferproc)loan_releasebuffer,
};

PyTypeObject ip_loan_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "interproc._native.ShmLoan",
    .tp_basicsize = sizeof(LoanObject),
    .tp_dealloc = (destructor)loan_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A message lent out of a shm channel ring (see ShmChannel.recv_view).",
    .tp_as_buffer = &loan_as_buffer,
};

/* -- module glue ------------------------------------------------------------- */

static PyObject *
ring_set_errors(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    /* Kept for callers of the old name: the same as set_errors() without
     * handle_closed (which then stays unset: closed is used). */
    static char *kw[] = {"closed", "timeout", "protocol", "too_large", NULL};
    PyObject *c, *t, *p, *l;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$OOOO", kw, &c, &t, &p, &l))
        return NULL;
    ip_state *st = ip_get_state();
    PyObject *all[] = {c, t, p, l};
    for (int i = 0; i < 4; i++) {
        if (!PyExceptionClass_Check(all[i])) {
            PyErr_SetString(PyExc_TypeError, "ring_set_errors() takes exception classes");
            return NULL;
        }
    }
    if (!st)
        Py_RETURN_NONE;
    Py_XSETREF(st->closed, Py_NewRef(c));
    Py_XSETREF(st->timeout, Py_NewRef(t));
    Py_XSETREF(st->protocol, Py_NewRef(p));
    Py_XSETREF(st->too_large, Py_NewRef(l));
    Py_RETURN_NONE;
}

PyMethodDef ip_ring_methods[] = {
    {"ring_set_errors", (PyCFunction)(void (*)(void))ring_set_errors,
     METH_VARARGS | METH_KEYWORDS,
     "ring_set_errors($module, *, closed, timeout, protocol, too_large)\n--\n\n"
     "Older spelling of set_errors() (without handle_closed)."},
    {NULL, NULL, 0, NULL},
};

int
ip_ring_init(PyObject *module)
{
    if (PyType_Ready(&Chan_Type) < 0 || PyType_Ready(&ip_loan_type) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "ShmChannel", (PyObject *)&Chan_Type) < 0)
        return -1;
    if (PyModule_AddIntConstant(module, "CHAN_DATA_OFFSET", CHAN_DATA) < 0 ||
        PyModule_AddIntConstant(module, "CHAN_MAGIC", CHAN_MAGIC) < 0 ||
        PyModule_AddIntConstant(module, "CHAN_VERSION", CHAN_VERSION) < 0 ||
        PyModule_AddIntConstant(module, "CHAN_MIN_CAPACITY", MIN_CAPACITY) < 0 ||
        PyModule_AddIntConstant(module, "CHAN_MAX_CAPACITY", (long)MAX_CAPACITY) < 0)
        return -1;
    /* The control block and ring header layout (ring.h), for Python's
     * connection set-up, listener close and `interproc ls`. */
    ip_layout_entry k[] = {
        {"OFF_MAGIC", 0}, {"OFF_VERSION", 4}, {"OFF_CAPACITY", 8}, {"OFF_FLAGS", 16},
        {"OFF_SIDE_A", 24}, {"OFF_SIDE_B", 40}, {"OFF_CLOSED", OFF_CLOSED}, {"OFF_ASYM", OFF_ASYM},
        {"OFF_BELL", OFF_BELL}, {"OFF_RING0", OFF_RING0}, {"OFF_RING1", OFF_RING1},
        {"OFF_DATA", CHAN_DATA},
        {"RING_HEAD", offsetof(ring_hdr, head)}, {"RING_TAIL", offsetof(ring_hdr, tail)},
        {"RING_DATA_SEQ", offsetof(ring_hdr, data_seq)},
        {"RING_SPACE_SEQ", offsetof(ring_hdr, space_seq)},
    };
    return ip_add_layout(module, "CHAN_LAYOUT", k, sizeof k / sizeof k[0]);
}
