/* The pub/sub hot path in C: PubSubCore (this file: doorbells, the type,
 * close and construction), the publisher's claim/publish/send
 * (pubsub_pub.c), the subscriber's recv/release and the Sample it hands out
 * (pubsub_sub.c).  Layout: pubsub.h and interproc/_pubsub/.
 *
 * Python validates the geometry once and builds a core over the segment;
 * after that a send or a recv is one C call with no Python frame, as for
 * shm:// channels.  What is slow and rare stays in Python: the futex sleeps
 * with their peer-death checks and the reaping of dead subscribers.  The
 * cores call back into Python (`slow_wait`) only after their spin budget.
 *
 * Waking waiters: subscribers that sleep count themselves in sub_waiters
 * (the publisher checks it after every publish, as before); a subscriber
 * that waits on a descriptor (asyncio) also counts itself there and sets
 * the fdwait word of its entry's doorbell, and the publisher then rings the
 * doorbells that are armed.  Likewise the publisher's own doorbell in the
 * header, rung by a release when the publisher waits for room. */
#include "pubsub.h"

#include <limits.h>

static PyTypeObject Core_Type;

int
ps_closed_check(CoreObject *self, const char *who)
{
    if (self->closed || !self->has_view) {
        PyErr_Format(ip_error(IP_ERR_HANDLE_CLOSED, PyExc_ValueError), "%s is closed", who);
        return -1;
    }
    return 0;
}

/* Remaining seconds to a deadline as a Python float, or None. */
PyObject *
ps_remaining(long long deadline)
{
    if (deadline < 0)
        return Py_NewRef(Py_None);
    long long left = deadline - mono_ns();
    return PyFloat_FromDouble(left > 0 ? left / 1e9 : 0.0);
}

/* -- doorbells ------------------------------------------------------------ */

/* Ring the doorbell in `b` if its owner armed it (always when `force`). */
void
ps_ring(ip_bell_peer *peer, ip_bell_slot *b, uint32_t pid, int force)
{
    if (!force && !(__atomic_load_n(&b->fdwait, __ATOMIC_RELAXED) &&
                    __atomic_exchange_n(&b->fdwait, 0, __ATOMIC_SEQ_CST)))
        return;
    ip_bell_peer_ring(peer, b, pid);
}

/* Ring the armed doorbells of subscribers (all of them when `force`). */
void
ps_ring_subscribers(CoreObject *self, int force)
{
    uint32_t hwm = __atomic_load_n(AT(self, PS_OFF_HWM, uint32_t), __ATOMIC_ACQUIRE);
    if (hwm > self->max_subs)
        hwm = self->max_subs;
    for (uint32_t i = 0; i < hwm; i++) {
        Py_ssize_t e = PS_OFF_TABLE + (Py_ssize_t)i * PS_ENTRY;
        uint32_t pid = __atomic_load_n(AT(self, e + PS_E_PID, uint32_t), __ATOMIC_RELAXED);
        ps_ring(&self->bells[i], AT(self, e + PS_E_BELL, ip_bell_slot), pid, force);
    }
}

/* -- our own doorbell (fileno(), asyncio) -------------------------------------
 *
 * A subscriber's bell sits in its table entry, rung by the publisher after a
 * publish, with the publisher's pidfd in the epoll set; the publisher's sits
 * in the header, rung by a subscriber's release.  The other side looks at
 * the bells only when somebody counts as a sleeper (sub_waiters,
 * pub_waiting: what it checks after every publish/release anyway), so while
 * armed we count ourselves one -- until the next recv, disarm() or close(). */

static ip_bell_slot *
own_slot(CoreObject *self)
{
    return self->is_pub ? AT(self, PS_OFF_PUB_BELL, ip_bell_slot)
                        : AT(self, self->entry + PS_E_BELL, ip_bell_slot);
}

void
ps_disarm(CoreObject *self)
{
    if (self->bell_counted && self->has_view) {
        __atomic_fetch_sub(AT(self, self->is_pub ? PS_OFF_PUB_WAITING : PS_OFF_SUB_WAITERS, int64_t),
                           1, __ATOMIC_SEQ_CST);
    }
    self->bell_counted = 0;
}

/* Would recv (subscriber) / send (publisher) not wait?  -1 on error. */
static int
ready_now(CoreObject *self)
{
    if (self->is_pub)
        return ps_pub_room_now(self);
    return load64(self, PS_OFF_PUBLISHED) > self->cursor ||
           __atomic_load_n(AT(self, PS_OFF_CLOSED, uint32_t), __ATOMIC_SEQ_CST) ||
           ip_doorbell_watched_gone(&self->bell);
}

/* Announce (armed, counted), fence, re-check: 1 ready now, 0 poll, -1 error. */
static int
arm(CoreObject *self)
{
    const char *who = self->is_pub ? "publisher" : "subscriber";
    if (ps_closed_check(self, who) < 0)
        return -1;
    if (!ip_doorbell_ok(&self->bell)) {
        uint32_t pub = self->is_pub ? 0 : __atomic_load_n(AT(self, PS_OFF_PUB_PID, uint32_t), __ATOMIC_RELAXED);
        if (ip_doorbell_open(&self->bell, own_slot(self), -1, pub, pub, who) < 0)
            return -1;
    }
    __atomic_store_n(&own_slot(self)->fdwait, 1, __ATOMIC_SEQ_CST);
    if (!self->bell_counted) {
        __atomic_fetch_add(AT(self, self->is_pub ? PS_OFF_PUB_WAITING : PS_OFF_SUB_WAITERS, int64_t),
                           1, __ATOMIC_SEQ_CST);
        self->bell_counted = 1;
    }
    ip_heavy_fence(ip_asym_ok == 1); /* the other side publishes without a full fence */
    return ready_now(self);
}

static PyObject *
core_arm(CoreObject *self, PyObject *unused)
{
    int r = arm(self);
    return r < 0 ? NULL : PyBool_FromLong(r);
}

/* fileno() for select/interproc.wait: drain, arm, and ring our own bell when
 * ready now, so the descriptor is level-triggered for callers that call
 * fileno() before every wait. */
static PyObject *
core_fileno(CoreObject *self, PyObject *unused)
{
    if (ip_doorbell_ok(&self->bell))
        ip_doorbell_drain(&self->bell);
    int r = arm(self);
    if (r < 0)
        return NULL;
    if (r)
        ip_doorbell_ring(&self->bell);
    return PyLong_FromLong(self->bell.ep);
}

static PyObject *
core_disarm(CoreObject *self, PyObject *unused)
{
    ps_disarm(self);
    Py_RETURN_NONE;
}

static PyObject *
core_drain_bell(CoreObject *self, PyObject *unused)
{
    return PyBool_FromLong(ip_doorbell_drain(&self->bell));
}

static PyObject *
core_ready(CoreObject *self, PyObject *unused)
{
    if (ps_closed_check(self, self->is_pub ? "publisher" : "subscriber") < 0)
        return NULL;
    int r = ready_now(self);
    return r < 0 ? NULL : PyBool_FromLong(r);
}

/* -- both ------------------------------------------------------------------- */

void
ps_drop_view(CoreObject *self)
{
    if (self->has_view && self->live == 0) {
        self->has_view = 0;
        PyBuffer_Release(&self->view);
    }
}

static void
close_bells(CoreObject *self)
{
    if (self->bells) {
        for (uint32_t i = 0; i < self->max_subs; i++)
            ip_bell_peer_close(&self->bells[i]);
        PyMem_Free(self->bells);
        self->bells = NULL;
    }
    ip_bell_peer_close(&self->pub_bell);
}

static PyObject *
core_close(CoreObject *self, PyObject *unused)
{
    if (!self->closed) {
        self->closed = 1;
        if (self->has_view && self->bells) {
            /* The publisher: subscribers drain, then see `closed`. */
            __atomic_store_n(AT(self, PS_OFF_CLOSED, uint32_t), 1, __ATOMIC_SEQ_CST);
            ip_futex(AT(self, PS_OFF_PUBLISHED, uint32_t), FUTEX_WAKE, INT_MAX, NULL);
            ps_ring_subscribers(self, 1);
        }
        if (self->has_view) {
            ps_disarm(self);
            ip_doorbell_ring(&self->bell); /* our own pollers: they find us closed */
            ip_doorbell_close(&self->bell, own_slot(self));
        }
        close_bells(self);
        ps_drop_view(self);
    }
    Py_RETURN_NONE;
}

static int
core_init(CoreObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"buffer", "publisher", "max_subscribers", "slot_size", "slots",
                         "history", "spin", "slow_wait", "entry", "policy", "cursor", NULL};
    PyObject *buffer, *slow;
    int is_pub, policy = PS_BLOCK;
    unsigned int max_subs, slots, history;
    unsigned long long slot_size;
    double spin;
    Py_ssize_t entry = -1;
    long long cursor = 0;
    if (self->has_view || self->bells || self->held) {
        PyErr_SetString(PyExc_TypeError, "PubSubCore is already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OpIKIIdO|$niL", kw, &buffer, &is_pub,
                                     &max_subs, &slot_size, &slots, &history, &spin, &slow,
                                     &entry, &policy, &cursor))
        return -1;
    if (!PyCallable_Check(slow)) {
        PyErr_SetString(PyExc_TypeError, "slow_wait must be callable");
        return -1;
    }
    if (max_subs < 1 || max_subs > 1024 || slot_size < 1 || slot_size > (1ULL << 30) ||
        slots < 2 || slots > (1u << 20) || history >= slots || !(spin >= 0 && spin <= 1) ||
        (policy != PS_BLOCK && policy != PS_DROP_OLDEST)) {
        PyErr_SetString(PyExc_ValueError, "PubSubCore: bad geometry");
        return -1;
    }
    uint64_t stride = PS_SLOT_HEADER + ((slot_size + 63) & ~63ULL);
    uint64_t slots_off = (PS_OFF_TABLE + (uint64_t)max_subs * PS_ENTRY + 63) & ~63ULL;
    if (PyObject_GetBuffer(buffer, &self->view, PyBUF_WRITABLE) < 0)
        return -1;
    if ((uint64_t)self->view.len < slots_off + (uint64_t)slots * stride ||
        ((uintptr_t)self->view.buf & 7) ||
        (!is_pub && (entry < PS_OFF_TABLE || entry >= (Py_ssize_t)(PS_OFF_TABLE + max_subs * PS_ENTRY) ||
                     (entry - PS_OFF_TABLE) % PS_ENTRY))) {
        PyBuffer_Release(&self->view);
        PyErr_SetString(PyExc_ValueError, "PubSubCore: the segment does not match the geometry");
        return -1;
    }
    self->has_view = 1;
    self->base = self->view.buf;
    self->max_subs = max_subs;
    self->slots = slots;
    self->history = history;
    self->slot_size = slot_size;
    self->stride = stride;
    self->slots_off = slots_off;
    self->spin_ns = (long long)(spin * 1e9);
    self->slow_wait = Py_NewRef(slow);
    self->gen = -1;
    ip_asym_register();
    if (is_pub) {
        self->is_pub = 1;
        self->bells = PyMem_Malloc(max_subs * sizeof(ip_bell_peer));
        if (!self->bells) {
            PyErr_NoMemory();
            return -1;
        }
        for (uint32_t i = 0; i < max_subs; i++)
            ip_bell_peer_init(&self->bells[i]);
    } else {
        self->held = PyMem_Calloc(slots, 1);
        if (!self->held) {
            PyErr_NoMemory();
            return -1;
        }
        self->entry = entry;
        self->policy = policy;
        self->cursor = self->read_pos = cursor;
    }
    return 0;
}

static PyObject *
core_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    CoreObject *self = (CoreObject *)type->tp_alloc(type, 0);
    if (self) {
        ip_bell_peer_init(&self->pub_bell);
        ip_doorbell_init(&self->bell);
    }
    return (PyObject *)self;
}

static void
core_dealloc(CoreObject *self)
{
    close_bells(self);
    if (self->has_view) { /* freed without close(): still leave the segment tidy */
        ps_disarm(self);
        ip_doorbell_close(&self->bell, own_slot(self));
        PyBuffer_Release(&self->view);
    }
    ip_doorbell_close(&self->bell, NULL);
    PyMem_Free(self->held);
    Py_XDECREF(self->slow_wait);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
get_seq(CoreObject *self, void *c)
{
    return PyLong_FromLongLong(self->bells ? self->seq : self->cursor);
}

static PyObject *
get_loaned(CoreObject *self, void *c)
{
    return PyBool_FromLong(self->loaned);
}

static PyObject *
get_received(CoreObject *self, void *c)
{
    return PyLong_FromLongLong(self->received);
}

static PyObject *
get_dropped(CoreObject *self, void *c)
{
    return PyLong_FromLongLong(self->dropped);
}

static PyObject *
get_core_closed(CoreObject *self, void *c)
{
    return PyBool_FromLong(self->closed);
}

static PyObject *
get_bell_fd(CoreObject *self, void *c)
{
    return PyLong_FromLong(self->bell.ep);
}

static PyGetSetDef core_getset[] = {
    {"bell_fd", (getter)get_bell_fd, NULL, "The doorbell's descriptor once arm() made it, else -1.", NULL},
    {"seq", (getter)get_seq, NULL, "Publisher: samples published; subscriber: the next to read.", NULL},
    {"loaned", (getter)get_loaned, NULL, "A slot is lent out (publisher).", NULL},
    {"received", (getter)get_received, NULL, "Samples received (subscriber).", NULL},
    {"dropped", (getter)get_dropped, NULL, "Samples skipped by a lapped drop_oldest subscriber.", NULL},
    {"closed", (getter)get_core_closed, NULL, "True after close().", NULL},
    {NULL},
};

#define FASTKW (METH_FASTCALL | METH_KEYWORDS)
static PyMethodDef core_methods[] = {
    {"send", (PyCFunction)(void (*)(void))ps_pub_send, FASTKW,
     "send(data, timeout=None)\n--\n\nPublish a copy of data (any contiguous buffer)."},
    {"claim", (PyCFunction)(void (*)(void))ps_pub_claim, FASTKW,
     "claim(n, timeout=None)\n--\n\nWait for the next slot and mark it being written: (seq, offset)."},
    {"publish", (PyCFunction)(void (*)(void))ps_pub_publish, METH_FASTCALL,
     "publish(seq, length)\n--\n\nPublish the claimed slot."},
    {"discard", (PyCFunction)ps_pub_discard, METH_NOARGS,
     "discard()\n--\n\nGive the claimed slot back unpublished."},
    {"has_room", (PyCFunction)ps_pub_has_room, METH_O,
     "has_room(seq)\n--\n\nTrue when no block subscriber still needs the slot of sample seq."},
    {"recv", (PyCFunction)(void (*)(void))ps_sub_recv, FASTKW,
     "recv(timeout=None)\n--\n\nThe next sample (a Sample)."},
    {"fileno", (PyCFunction)core_fileno, METH_NOARGS,
     "fileno()\n--\n\nA descriptor that polls readable when recv (subscriber) or send\n"
     "(publisher) may not wait; re-arms it: call it before every wait."},
    {"arm", (PyCFunction)core_arm, METH_NOARGS,
     "arm()\n--\n\nArm the doorbell (no draining); True if ready now.  Counts as a sleeper\n"
     "until disarm(), the next recv or close()."},
    {"disarm", (PyCFunction)core_disarm, METH_NOARGS, "disarm()\n--\n\nStop counting as a sleeper."},
    {"drain_bell", (PyCFunction)core_drain_bell, METH_NOARGS,
     "drain_bell()\n--\n\nEmpty the doorbell (before re-checking); True if it had rung."},
    {"ready", (PyCFunction)core_ready, METH_NOARGS,
     "ready()\n--\n\nTrue when recv (subscriber) or send (publisher) would not wait."},
    {"recv_available", (PyCFunction)ps_sub_recv_available, METH_O,
     "recv_available(max)\n--\n\nA drop_oldest subscriber: the samples already published (up to max), as a list\n"
     "of bytes; [] without waiting when there is none."},
    {"close", (PyCFunction)core_close, METH_NOARGS,
     "close()\n--\n\nPublisher: mark the segment closed and wake subscribers.\n"
     "Both: stop using the segment (its buffer goes when no sample view is left)."},
    {NULL},
};

static PyTypeObject Core_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "interproc._native.PubSubCore",
    .tp_basicsize = sizeof(CoreObject),
    .tp_dealloc = (destructor)core_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "PubSubCore(buffer, publisher, max_subscribers, slot_size, slots, history, spin,\n"
              "           slow_wait, *, entry=-1, policy=0, cursor=0)\n--\n\n"
              "The send/recv hot path of one Publisher or Subscriber over a pub segment.",
    .tp_methods = core_methods,
    .tp_getset = core_getset,
    .tp_init = (initproc)core_init,
    .tp_new = core_new,
};

/* -- module glue ---------------------------------------------------------------- */

int
ip_pubsub_init(PyObject *module)
{
    if (PyType_Ready(&Core_Type) < 0 || PyType_Ready(&ps_sample_type) < 0 ||
        PyType_Ready(&ps_slotview_type) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "PubSubCore", (PyObject *)&Core_Type) < 0 ||
        PyModule_AddObjectRef(module, "PubSubSample", (PyObject *)&ps_sample_type) < 0)
        return -1;
    /* The layout, written once (pubsub.h): Python reads it from here. */
    ip_layout_entry k[] = {
        {"OFF_PUBLISHED", PS_OFF_PUBLISHED}, {"OFF_SUB_WAITERS", PS_OFF_SUB_WAITERS},
        {"OFF_CLOSED", PS_OFF_CLOSED}, {"OFF_PUB_PID", PS_OFF_PUB_PID},
        {"OFF_HWM", PS_OFF_HWM}, {"OFF_SPACE", PS_OFF_SPACE},
        {"OFF_PUB_WAITING", PS_OFF_PUB_WAITING}, {"OFF_GEN", PS_OFF_GEN},
        {"OFF_PUB_BELL", PS_OFF_PUB_BELL}, {"OFF_TABLE", PS_OFF_TABLE},
        {"ENTRY", PS_ENTRY}, {"E_WORD", PS_E_WORD}, {"E_PID", PS_E_PID},
        {"E_POLICY", PS_E_POLICY}, {"E_START", PS_E_START},
        {"E_READ", PS_E_READ}, {"E_DROPPED", PS_E_DROPPED},
        {"E_RECEIVED", PS_E_RECEIVED}, {"E_BELL", PS_E_BELL},
        {"SLOT_HEADER", PS_SLOT_HEADER}, {"WRITING", PS_WRITING},
    };
    return ip_add_layout(module, "PUBSUB_LAYOUT", k, sizeof k / sizeof k[0]);
}

static PyObject *
heavy_fence(PyObject *mod, PyObject *unused)
{
    ip_heavy_fence(ip_asym_register() == 1);
    Py_RETURN_NONE;
}

PyMethodDef ip_pubsub_core_methods[] = {
    {"heavy_fence", heavy_fence, METH_NOARGS,
     "heavy_fence($module)\n--\n\n"
     "The sleeping side's barrier of an asymmetric Dekker handshake: after\n"
     "announcing a waiter and before re-checking (membarrier, or a full fence)."},
    {NULL, NULL, 0, NULL},
};
