/* pub/sub: the subscriber's half of the C core (recv, release) and the
 * Sample it hands out.  See pubsub_core.c for the whole picture. */
#include "pubsub.h"

#include <limits.h>
#include <sched.h>
#include <structmember.h>

/* -- subscriber ------------------------------------------------------------- */

static PyObject *
bad_slot(CoreObject *self, const char *fmt, long long a, long long b)
{
    PyErr_Format(ip_error(IP_ERR_PROTOCOL, PyExc_ValueError), fmt, a, b);
    return NULL;
}

/* Steals `buf` and `slot` (NULL for a copy). */
static PyObject *
new_sample(CoreObject *self, int64_t seq, PyObject *buf, SlotViewObject *slot)
{
    SampleObject *s = PyObject_New(SampleObject, &ps_sample_type);
    if (!s) {
        Py_DECREF(buf);
        Py_XDECREF((PyObject *)slot);
        return NULL;
    }
    s->core = (CoreObject *)Py_NewRef(self);
    s->seq = seq;
    s->buf = buf;
    s->slot = slot;
    return (PyObject *)s;
}

/* Block policy: the slot is ours until released; hand out a view. */
static PyObject *
take(CoreObject *self, int64_t r, int64_t published)
{
    Py_ssize_t off = (Py_ssize_t)(self->slots_off + (uint64_t)(r % self->slots) * self->stride);
    int64_t seq = load64(self, off), n = load64(self, off + 8);
    if (seq != r || published - r > (int64_t)self->slots)
        return bad_slot(self, "publisher: expected sample %lld in its slot, found %lld; "
                        "the segment is corrupted", r, seq);
    if (n < 0 || (uint64_t)n > self->slot_size)
        return bad_slot(self, "publisher: a sample claims %lld bytes in a %lld-byte slot; "
                        "the segment is corrupted", n, (long long)self->slot_size);
    SlotViewObject *v = PyObject_New(SlotViewObject, &ps_slotview_type);
    if (!v)
        return NULL;
    v->core = (CoreObject *)Py_NewRef(self);
    v->ptr = self->base + off + PS_SLOT_HEADER;
    v->len = (Py_ssize_t)n;
    v->exports = v->done = 0;
    self->live++;
    PyObject *mv = PyMemoryView_FromObject((PyObject *)v);
    if (!mv) {
        Py_DECREF(v);
        return NULL;
    }
    self->cursor = r + 1;
    self->held[r % self->slots] = 1;
    self->received++;
    return new_sample(self, r, mv, v);
}

/* drop_oldest: copy the sample out under the seqlock; Py_None to retry. */
static PyObject *
copy_out(CoreObject *self, int64_t r, int64_t published)
{
    int64_t oldest = published - ((int64_t)self->slots - 1);
    if (r < oldest) {
        self->dropped += oldest - r;
        r = self->cursor = oldest;
        __atomic_store_n(AT(self, self->entry + PS_E_DROPPED, int64_t), self->dropped,
                         __ATOMIC_SEQ_CST);
    }
    Py_ssize_t off = (Py_ssize_t)(self->slots_off + (uint64_t)(r % self->slots) * self->stride);
    int64_t seq = load64(self, off), n = load64(self, off + 8);
    if (seq != r) {
        if (seq == PS_WRITING || (seq > r && (seq - r) % (int64_t)self->slots == 0))
            return Py_NewRef(Py_None); /* overwritten since we read `published` */
        return bad_slot(self, "publisher: slot of sample %lld holds sample %lld; "
                        "the segment is corrupted", r, seq);
    }
    if (n < 0 || (uint64_t)n > self->slot_size)
        return bad_slot(self, "publisher: a sample claims %lld bytes in a %lld-byte slot; "
                        "the segment is corrupted", n, (long long)self->slot_size);
    PyObject *data = PyBytes_FromStringAndSize(self->base + off + PS_SLOT_HEADER, n);
    if (!data)
        return NULL;
    /* The seq_cst load orders the copy before it: if the seq is unchanged,
     * the publisher did not touch the slot meanwhile. */
    if (load64(self, off) != r) {
        Py_DECREF(data);
        return Py_NewRef(Py_None);
    }
    self->cursor = r + 1;
    self->received++;
    __atomic_store_n(AT(self, self->entry + PS_E_READ, int64_t), r + 1, __ATOMIC_RELEASE);
    PyObject *mv = PyMemoryView_FromObject(data);
    Py_DECREF(data);
    return mv ? new_sample(self, r, mv, NULL) : NULL;
}

/* Spin until published > r: first holding the GIL (a prompt publisher
 * answers within a few microseconds and handing the GIL over costs about as
 * much), then without it, yielding now and then.  Returns the last value. */
static int64_t
spin_for(CoreObject *self, int64_t r)
{
    int64_t v;
    long long start = mono_ns();
    long long gil_ns = self->spin_ns < 4000 ? self->spin_ns : 4000;
    for (unsigned i = 1;; i++) {
        v = load64(self, PS_OFF_PUBLISHED);
        if (v > r || ((i & 31) == 0 && mono_ns() - start >= gil_ns))
            break;
        ip_cpu_relax();
    }
    if (v > r || self->spin_ns <= gil_ns)
        return v;
    Py_BEGIN_ALLOW_THREADS
    for (unsigned i = 1;; i++) {
        ip_cpu_relax();
        v = load64(self, PS_OFF_PUBLISHED);
        if (v > r)
            break;
        if ((i & 63) == 0) {
            /* The peer may be waiting for our CPU: let it run. */
            sched_yield();
            if (mono_ns() - start >= self->spin_ns)
                break;
        }
    }
    Py_END_ALLOW_THREADS
    return v;
}

PyObject *
ps_sub_recv(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *timeout;
    if (ip_parse_timeout_args("recv", args, nargs, kwnames, 0, NULL, &timeout) < 0)
        return NULL;
    long long deadline = -1;
    if (timeout != Py_None && ip_deadline_ns(timeout, &deadline) < 0)
        return NULL; /* a bad timeout is an error even when no wait is needed */
    if (self->bell_counted)
        ps_disarm(self); /* armed by fileno() for a wait that is over */
    for (;;) {
        if (ps_closed_check(self, "subscriber") < 0)
            return NULL;
        int64_t r = self->cursor;
        int64_t published = load64(self, PS_OFF_PUBLISHED);
        if (published <= r) {
            if ((deadline < 0 || mono_ns() < deadline) && spin_for(self, r) > r)
                continue;
            /* Python sleeps on the futex and raises Timeout/ChannelClosed. */
            PyObject *left = ps_remaining(deadline);
            if (!left)
                return NULL;
            PyObject *res = PyObject_CallFunction(self->slow_wait, "LO", (long long)r, left);
            Py_DECREF(left);
            if (!res)
                return NULL;
            Py_DECREF(res);
            continue;
        }
        if (self->policy == PS_BLOCK)
            return take(self, r, published);
        PyObject *s = copy_out(self, r, published);
        if (s != Py_None)
            return s;
        Py_DECREF(s);
    }
}

/* Give sample `seq` back (block policy): advance the stored read position
 * past every released sample and wake the publisher if it waits. */
void
ps_sub_release(CoreObject *self, int64_t seq)
{
    if (self->policy != PS_BLOCK || self->closed || !self->has_view ||
        seq < self->read_pos || seq >= self->cursor)
        return;
    self->held[seq % self->slots] = 0;
    if (seq != self->read_pos)
        return; /* an older sample is still held */
    while (self->read_pos < self->cursor && !self->held[self->read_pos % self->slots])
        self->read_pos++;
    /* Dekker with a publisher waiting for room: asymmetric as in publish(). */
    if (ip_asym_ok == 1) {
        __atomic_store_n(AT(self, self->entry + PS_E_READ, int64_t), self->read_pos, __ATOMIC_RELEASE);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    } else {
        __atomic_store_n(AT(self, self->entry + PS_E_READ, int64_t), self->read_pos, __ATOMIC_SEQ_CST);
    }
    if (load64(self, PS_OFF_PUB_WAITING) != 0) {
        __atomic_fetch_add(AT(self, PS_OFF_SPACE, uint32_t), 1, __ATOMIC_SEQ_CST);
        ip_futex(AT(self, PS_OFF_SPACE, uint32_t), FUTEX_WAKE, INT_MAX, NULL);
        uint32_t pid = __atomic_load_n(AT(self, PS_OFF_PUB_PID, uint32_t), __ATOMIC_RELAXED);
        ps_ring(&self->pub_bell, AT(self, PS_OFF_PUB_BELL, ip_bell_slot), pid, 0);
    }
}

/* -- SlotView: the exporter behind a block sample's memoryview --------------- */

static int
slotview_getbuffer(SlotViewObject *self, Py_buffer *view, int flags)
{
    if (self->done) {
        PyErr_SetString(PyExc_BufferError, "this sample was already released");
        return -1;
    }
    if (PyBuffer_FillInfo(view, (PyObject *)self, self->ptr, self->len, 1, flags) < 0)
        return -1;
    self->exports++;
    return 0;
}

static void
slotview_releasebuffer(SlotViewObject *self, Py_buffer *view)
{
    self->exports--;
}

static void
slotview_dealloc(SlotViewObject *self)
{
    CoreObject *core = self->core;
    core->live--;
    if (core->closed)
        ps_drop_view(core);
    Py_DECREF(core);
    PyObject_Free(self);
}

static PyBufferProcs slotview_as_buffer = {
    (getbufferproc)slotview_getbuffer,
    (releasebufferproc)slotview_releasebuffer,
};

PyTypeObject ps_slotview_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "interproc._native.PubSubSlotView",
    .tp_basicsize = sizeof(SlotViewObject),
    .tp_dealloc = (destructor)slotview_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A slot lent to a block subscriber (see Sample.buf).",
    .tp_as_buffer = &slotview_as_buffer,
};

/* -- Sample ------------------------------------------------------------------ */

/* How many views of the slot are alive besides buf itself.  A memoryview
 * made from buf (numpy's frombuffer, a slice, memoryview(buf)) shares buf's
 * managed buffer and is invisible to the slot's own export count; a buffer
 * taken from buf (a C consumer) counts in buf's exports; a view of the slot
 * taken through buf.obj counts in the slot's.  Read without releasing
 * anything, so a refused release leaves the sample exactly as it was. */
static Py_ssize_t
other_views(SampleObject *self)
{
    PyMemoryViewObject *mv = (PyMemoryViewObject *)self->buf;
    _PyManagedBufferObject *mbuf = mv->mbuf;
    int mv_live = !(mv->flags & _Py_MEMORYVIEW_RELEASED); /* the user may have released buf */
    int mbuf_live = !(mbuf->flags & _Py_MANAGED_BUFFER_RELEASED);
    return mv->exports + (mbuf->exports - mv_live) + (self->slot->exports - mbuf_live);
}

/* Give the slot back.  With `strict` (release() and the end of a with
 * block), a view still alive over the slot -- a numpy array made from buf,
 * a slice of it -- is a BufferError and nothing changes: the sample stays
 * held and buf usable, so the view never shows a rewritten slot.  Without
 * it (the sample is being freed) the slot is given back regardless; the
 * views left keep the mapping alive (core->live), so they stay readable. */
static int
sample_release_impl(SampleObject *self, int strict)
{
    CoreObject *core = self->core;
    if (!core)
        return 0;
    if (strict && self->slot && other_views(self) > 0) {
        PyErr_Format(PyExc_BufferError,
                     "sample #%lld's buf is still exported (a numpy array or other view over it is "
                     "alive): delete it before releasing the sample; the slot stays held until then",
                     (long long)self->seq);
        return -1;
    }
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    if (self->slot)
        self->slot->done = 1; /* no new exports of the slot (through a saved buf.obj) */
    /* Fails only if views are left, which we checked or do not care about. */
    static PyObject *name_release;
    if (!name_release)
        name_release = PyUnicode_InternFromString("release");
    PyObject *r = name_release ? PyObject_CallMethodNoArgs(self->buf, name_release) : NULL;
    Py_XDECREF(r);
    PyErr_Clear();
    /* Last: buf's managed buffer may hold the slot's only other reference. */
    Py_CLEAR(self->slot);
    PyErr_Restore(et, ev, tb);
    self->core = NULL;
    ps_sub_release(core, self->seq);
    Py_DECREF(core);
    return 0;
}

static PyObject *
sample_release(SampleObject *self, PyObject *unused)
{
    if (sample_release_impl(self, 1) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
sample_exit(SampleObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (sample_release_impl(self, 1) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
sample_enter(SampleObject *self, PyObject *unused)
{
    return Py_NewRef(self);
}

static PyObject *
sample_tobytes(SampleObject *self, PyObject *unused)
{
    return PyObject_CallMethod(self->buf, "tobytes", NULL);
}

static PyObject *
sample_get_released(SampleObject *self, void *c)
{
    return PyBool_FromLong(self->core == NULL);
}

static Py_ssize_t
sample_len(SampleObject *self)
{
    return PyObject_Length(self->buf);
}

static PyObject *
sample_getitem(SampleObject *self, PyObject *key)
{
    return PyObject_GetItem(self->buf, key);
}

static PyObject *
sample_richcompare(SampleObject *self, PyObject *other, int op)
{
    if ((op == Py_EQ || op == Py_NE) &&
        (PyBytes_Check(other) || PyByteArray_Check(other) || PyMemoryView_Check(other)))
        return PyObject_RichCompare(self->buf, other, op);
    Py_RETURN_NOTIMPLEMENTED;
}

static PyObject *
sample_repr(SampleObject *self)
{
    if (!self->core)
        return PyUnicode_FromFormat("<Sample #%lld released>", (long long)self->seq);
    return PyUnicode_FromFormat("<Sample #%lld %zd bytes>", (long long)self->seq,
                                PyObject_Length(self->buf));
}

static void
sample_dealloc(SampleObject *self)
{
    /* Dropping a sample releases it, as the GC would the Python one. */
    sample_release_impl(self, 0);
    Py_XDECREF(self->buf);
    PyObject_Free(self);
}

static PyMemberDef sample_members[] = {
    {"seq", T_LONGLONG, offsetof(SampleObject, seq), READONLY, "The sample's sequence number."},
    {"buf", T_OBJECT, offsetof(SampleObject, buf), READONLY,
     "A read-only memoryview of the sample, valid until released."},
    {NULL},
};

static PyGetSetDef sample_getset[] = {
    {"released", (getter)sample_get_released, NULL, "True after release().", NULL},
    {NULL},
};

static PyMethodDef sample_methods[] = {
    {"release", (PyCFunction)sample_release, METH_NOARGS,
     "release()\n--\n\nGive the slot back; buf is invalid afterwards (twice is harmless)."},
    {"tobytes", (PyCFunction)sample_tobytes, METH_NOARGS, "tobytes()\n--\n\nA copy."},
    {"__bytes__", (PyCFunction)sample_tobytes, METH_NOARGS, NULL},
    {"__enter__", (PyCFunction)sample_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))sample_exit, METH_FASTCALL, NULL},
    {NULL},
};

static PyMappingMethods sample_as_mapping = {
    (lenfunc)sample_len,
    (binaryfunc)sample_getitem,
    NULL,
};

PyTypeObject ps_sample_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "interproc.shm.Sample",
    .tp_basicsize = sizeof(SampleObject),
    .tp_dealloc = (destructor)sample_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A received sample: `buf` is a read-only memoryview, valid until released.\n\n"
              "Use it as a context manager or call release(); for block subscribers\n"
              "the publisher cannot reuse the slot until then.",
    .tp_repr = (reprfunc)sample_repr,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_as_mapping = &sample_as_mapping,
    .tp_richcompare = (richcmpfunc)sample_richcompare,
    .tp_methods = sample_methods,
    .tp_members = sample_members,
    .tp_getset = sample_getset,
};

