/* A doorbell (doorbell.c) as a Python object, for Python-driven objects
 * that want a descriptor: the shm:// listener.  It holds no buffer: each
 * call that touches the published slot takes (buffer, offset), so the
 * segment can be closed whatever the doorbell's state. */
#include "doorbell.h"

typedef struct {
    PyObject_HEAD
    ip_doorbell bell;
} BellObject;

static ip_bell_slot *
slot_in(Py_buffer *view, Py_ssize_t offset)
{
    return (ip_bell_slot *)ip_locate(view, offset, sizeof(ip_bell_slot), 8);
}

static PyObject *
bell_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    if (PyTuple_GET_SIZE(args) || (kw && PyDict_GET_SIZE(kw))) {
        PyErr_SetString(PyExc_TypeError, "Doorbell() takes no arguments");
        return NULL;
    }
    BellObject *self = (BellObject *)type->tp_alloc(type, 0);
    if (self)
        ip_doorbell_init(&self->bell);
    return (PyObject *)self;
}

static void
bell_dealloc(BellObject *self)
{
    ip_doorbell_close(&self->bell, NULL);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* open(buf, offset, what) -> fd: make the pipe and epoll set on first use and
 * publish the pipe at buf[offset] (an ip_bell_slot); the epoll descriptor. */
static PyObject *
bell_open(BellObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    const char *what;
    if (!PyArg_ParseTuple(args, "w*ns:open", &view, &offset, &what))
        return NULL;
    ip_bell_slot *slot = slot_in(&view, offset);
    int rc = slot ? ip_doorbell_open(&self->bell, slot, -1, 0, 0, what) : -1;
    PyBuffer_Release(&view);
    if (rc < 0)
        return NULL;
    return PyLong_FromLong(self->bell.ep);
}

static PyObject *
bell_drain(BellObject *self, PyObject *unused)
{
    return PyBool_FromLong(ip_doorbell_drain(&self->bell));
}

static PyObject *
bell_ring(BellObject *self, PyObject *unused)
{
    ip_doorbell_ring(&self->bell);
    Py_RETURN_NONE;
}

/* close(buf=None, offset=0): unpublish from buf[offset] if given, close all. */
static PyObject *
bell_close(BellObject *self, PyObject *args)
{
    PyObject *buf = Py_None;
    Py_ssize_t offset = 0;
    if (!PyArg_ParseTuple(args, "|On:close", &buf, &offset))
        return NULL;
    ip_bell_slot *slot = NULL;
    Py_buffer view;
    int have = 0;
    if (buf != Py_None) {
        if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0)
            return NULL;
        have = 1;
        slot = slot_in(&view, offset);
        if (slot == NULL) {
            PyBuffer_Release(&view);
            return NULL;
        }
    }
    ip_doorbell_close(&self->bell, slot);
    if (have)
        PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *
bell_is_open(BellObject *self, void *unused)
{
    return PyBool_FromLong(ip_doorbell_ok(&self->bell));
}

static PyMethodDef bell_methods[] = {
    {"open", (PyCFunction)bell_open, METH_VARARGS,
     "open(buf, offset, what) -> fd: make (first call) and publish the doorbell; the descriptor to poll."},
    {"drain", (PyCFunction)bell_drain, METH_NOARGS, "Empty the pipe; True if it had rung."},
    {"ring", (PyCFunction)bell_ring, METH_NOARGS, "Wake our own pollers."},
    {"close", (PyCFunction)bell_close, METH_VARARGS,
     "close(buf=None, offset=0): unpublish (when buf is given) and close the descriptors."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef bell_getset[] = {
    {"is_open", (getter)bell_is_open, NULL, "True between open() and close().", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject Bell_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "interproc._native.Doorbell",
    .tp_basicsize = sizeof(BellObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The waiting side of a doorbell (src/native/doorbell.h) for a Python-driven object.",
    .tp_new = bell_new,
    .tp_dealloc = (destructor)bell_dealloc,
    .tp_methods = bell_methods,
    .tp_getset = bell_getset,
};

/* ring_doorbell(buf, offset, pid): ring the doorbell process `pid` published
 * at buf[offset], if any (only a FIFO with the published inode is opened). */
static PyObject *
ring_doorbell(PyObject *mod, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    unsigned int pid;
    if (!PyArg_ParseTuple(args, "w*nI:ring_doorbell", &view, &offset, &pid))
        return NULL;
    ip_bell_slot *slot = slot_in(&view, offset);
    if (slot) {
        ip_bell_peer peer;
        ip_bell_peer_init(&peer);
        ip_bell_peer_ring(&peer, slot, pid);
        ip_bell_peer_close(&peer);
    }
    PyBuffer_Release(&view);
    if (slot == NULL)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef listen_bell_functions[] = {
    {"ring_doorbell", (PyCFunction)ring_doorbell, METH_VARARGS,
     "ring_doorbell(buf, offset, pid): ring the doorbell process pid published at buf[offset]."},
    {NULL, NULL, 0, NULL},
};

int
ip_listen_bell_init(PyObject *module)
{
    if (PyType_Ready(&Bell_Type) < 0)
        return -1;
    if (PyModule_AddFunctions(module, listen_bell_functions) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "Doorbell", (PyObject *)&Bell_Type);
}
