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

void
ps_ring(int *cache, uint64_t *cache_ino, ps_bell *b, uint32_t pid, int force)
{
    uint64_t ino = __atomic_load_n(&b->ino, __ATOMIC_ACQUIRE);
    if (ino == 0)
        return;
    if (!force && !(__atomic_load_n(&b->fdwait, __ATOMIC_RELAXED) &&
                    __atomic_exchange_n(&b->fdwait, 0, __ATOMIC_SEQ_CST)))
        return;
    if (*cache >= 0 && *cache_ino != ino) {
        close(*cache);
        *cache = -1;
    }
    if (*cache < 0) {
        *cache = ip_bell_open(pid, __atomic_load_n(&b->fd, __ATOMIC_RELAXED), ino);
        *cache_ino = ino;
        if (*cache < 0)
            return;
    }
    ip_bell_write(*cache);
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
        ps_ring(&self->bells[i], &self->bell_inos[i], AT(self, e + PS_E_BELL, ps_bell), pid, force);
    }
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
            if (self->bells[i] >= 0)
                close(self->bells[i]);
        PyMem_Free(self->bells);
        PyMem_Free(self->bell_inos);
        self->bells = NULL;
        self->bell_inos = NULL;
    }
    if (self->pub_bell >= 0) {
        close(self->pub_bell);
        self->pub_bell = -1;
    }
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
        self->bells = PyMem_Malloc(max_subs * sizeof(int));
        self->bell_inos = PyMem_Calloc(max_subs, sizeof(uint64_t));
        if (!self->bells || !self->bell_inos) {
            PyErr_NoMemory();
            return -1;
        }
        for (uint32_t i = 0; i < max_subs; i++)
            self->bells[i] = -1;
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
    if (self)
        self->pub_bell = -1;
    return (PyObject *)self;
}

static void
core_dealloc(CoreObject *self)
{
    close_bells(self);
    if (self->has_view)
        PyBuffer_Release(&self->view);
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

static PyGetSetDef core_getset[] = {
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
