/* Robust, process-shared, recursive mutex placed in shared memory.
 *
 * This is glibc's robust pthread mutex: the kernel walks each dying thread's
 * robust list and marks the mutexes it still held, so the next locker gets
 * EOWNERDEAD -- the Win32 WAIT_ABANDONED rule -- even after SIGKILL.
 * Recursive like a Win32 mutex: the owning thread may lock it again.
 *
 * pthread_mutex_clocklock does not return on EINTR, so a long wait is cut
 * into short slices with a signal check between them; that keeps Ctrl-C
 * working at the cost of one wake-up per slice while blocked.
 */
#include "native.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <pythread.h>

#define SLICE_NS 50000000L /* 50 ms between signal checks */

static int
make_attr(pthread_mutexattr_t *attr)
{
    int rc = pthread_mutexattr_init(attr);
    if (!rc) rc = pthread_mutexattr_setpshared(attr, PTHREAD_PROCESS_SHARED);
    if (!rc) rc = pthread_mutexattr_setrobust(attr, PTHREAD_MUTEX_ROBUST);
    if (!rc) rc = pthread_mutexattr_settype(attr, PTHREAD_MUTEX_RECURSIVE);
    return rc;
}

#ifdef __GLIBC__
/* The mutex lives in memory other processes can write, and glibc trusts
 * its type word: a garbage type sends pthread_mutex_lock down paths that
 * abort the process.  So before every use the type word must be exactly
 * what mutex_init writes (learnt once from a reference mutex).  This turns
 * random corruption into an error; it cannot stop a peer that writes a
 * well-formed but hostile mutex -- writers of a segment are trusted. */
static int expected_kind = -1;

static int
learn_kind(void)
{
    pthread_mutexattr_t attr;
    pthread_mutex_t ref;
    int rc = make_attr(&attr);
    if (!rc) rc = pthread_mutex_init(&ref, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc)
        return rc;
    expected_kind = ref.__data.__kind;
    pthread_mutex_destroy(&ref);
    return 0;
}
#endif

/* Locate the mutex at `offset` and check it looks like one of ours. */
static pthread_mutex_t *
locate_mutex(Py_buffer *view, Py_ssize_t offset, int initialised)
{
    pthread_mutex_t *m = ip_locate(view, offset, sizeof(pthread_mutex_t), 8);
#ifdef __GLIBC__
    if (m != NULL && initialised &&
        __atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED) != expected_kind) {
        PyErr_Format(PyExc_ValueError,
                     "the mutex at offset %zd is corrupted (type word %d)",
                     offset, m->__data.__kind);
        return NULL;
    }
#endif
    return m;
}

static PyObject *
mutex_init(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    if (!PyArg_ParseTuple(args, "w*n", &view, &offset))
        return NULL;
    PyObject *result = NULL;
    pthread_mutex_t *m = locate_mutex(&view, offset, 0);
    if (m != NULL) {
        pthread_mutexattr_t attr;
        int rc = make_attr(&attr);
        if (!rc) {
            memset(m, 0, sizeof(*m));
            rc = pthread_mutex_init(m, &attr);
        }
        pthread_mutexattr_destroy(&attr);
        if (rc) {
            errno = rc;
            PyErr_SetFromErrno(PyExc_OSError);
        } else {
            result = Py_NewRef(Py_None);
        }
    }
    PyBuffer_Release(&view);
    return result;
}

/* Lock `m`, waiting up to the deadline in slices with signal checks.
 * Returns 0 (acquired), 1 (acquired, previous owner died), -1 (timed out),
 * -2 (error: exception set).  Called with the GIL held. */
static int
lock_with_deadline(pthread_mutex_t *m, int has_deadline,
                   const struct timespec *deadline)
{
    struct timespec slice;
    int rc = pthread_mutex_trylock(m);
    while (rc == EBUSY) {
        struct timespec left = {0, 0};
        if (has_deadline && !ip_remaining(deadline, &left)) {
            rc = ETIMEDOUT;
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &slice);
        if (has_deadline && left.tv_sec == 0 && left.tv_nsec < SLICE_NS) {
            slice = *deadline;
        } else {
            slice.tv_nsec += SLICE_NS;
            if (slice.tv_nsec >= 1000000000L) {
                slice.tv_sec += 1;
                slice.tv_nsec -= 1000000000L;
            }
        }
        Py_BEGIN_ALLOW_THREADS
        rc = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &slice);
        Py_END_ALLOW_THREADS
        if (rc == ETIMEDOUT) {
            if (PyErr_CheckSignals() < 0)
                return -2;
            rc = EBUSY;
        }
    }
    switch (rc) {
    case 0:
        return 0;
    case EOWNERDEAD:
        /* We own it now; mark it usable again and tell the caller. */
        pthread_mutex_consistent(m);
        return 1;
    case ETIMEDOUT:
        return -1;
    default:
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -2;
    }
}

static PyObject *
mutex_lock(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"buffer", "offset", "timeout", NULL};
    Py_buffer view;
    Py_ssize_t offset;
    PyObject *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "w*n|O", kw, &view, &offset,
                                     &timeout))
        return NULL;

    PyObject *result = NULL;
    int has_deadline;
    struct timespec deadline;
    pthread_mutex_t *m = locate_mutex(&view, offset, 1);
    if (m != NULL && ip_deadline(timeout, &has_deadline, &deadline) == 0) {
        int got = lock_with_deadline(m, has_deadline, &deadline);
        if (got > -2)
            result = PyLong_FromLong(got);
    }
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
mutex_unlock(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    if (!PyArg_ParseTuple(args, "w*n", &view, &offset))
        return NULL;
    PyObject *result = NULL;
    pthread_mutex_t *m = locate_mutex(&view, offset, 1);
    if (m != NULL) {
        int rc = pthread_mutex_unlock(m);
        if (rc) {
            errno = rc;
            PyErr_SetFromErrno(PyExc_OSError);
        } else {
            result = Py_NewRef(Py_None);
        }
    }
    PyBuffer_Release(&view);
    return result;
}

PyMethodDef ip_mutex_methods[] = {
    {"mutex_init", mutex_init, METH_VARARGS,
     "mutex_init($module, buffer, offset, /)\n--\n\n"
     "Initialise a robust, process-shared, recursive mutex at `offset`."},
    {"mutex_lock", (PyCFunction)(void (*)(void))mutex_lock,
     METH_VARARGS | METH_KEYWORDS,
     "mutex_lock($module, buffer, offset, timeout=None)\n--\n\n"
     "Lock the mutex: 0 = acquired, 1 = acquired but its previous owner died\n"
     "holding it (made consistent again), -1 = timed out.  Releases the GIL\n"
     "and checks for signals every 50 ms while it waits."},
    {"mutex_unlock", mutex_unlock, METH_VARARGS,
     "mutex_unlock($module, buffer, offset, /)\n--\n\n"
     "Unlock the mutex; OSError(EPERM) if this thread does not own it."},
    {NULL, NULL, 0, NULL},
};

/* RobustMutex: the same mutex as an object that keeps its buffer, so the
 * hot path (an uncontended lock or unlock) parses nothing and locates
 * nothing.  It also keeps the owning thread's recursion depth, which
 * tells when the `abandoned` mark may be cleared and lets a release by a
 * thread that does not hold the mutex fail before it reaches pthread. */
typedef struct {
    PyObject_HEAD
    Py_buffer view;
    pthread_mutex_t *m;
    unsigned long owner; /* PyThread id of the holder in this process, 0 if none */
    long depth;
    int abandoned;
} RobustMutex;

static int
rm_init(RobustMutex *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"buffer", "offset", NULL};
    Py_ssize_t offset = 0;
    if (self->m != NULL) {
        PyErr_SetString(PyExc_TypeError, "RobustMutex is already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "w*|n", kw, &self->view, &offset))
        return -1;
    self->m = locate_mutex(&self->view, offset, 0);
    if (self->m == NULL) {
        PyBuffer_Release(&self->view);
        return -1;
    }
    return 0;
}

static void
rm_release_buffer(RobustMutex *self)
{
    if (self->m != NULL) {
        self->m = NULL;
        PyBuffer_Release(&self->view);
    }
}

static void
rm_dealloc(RobustMutex *self)
{
    rm_release_buffer(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
rm_check(RobustMutex *self)
{
    if (self->m == NULL) {
        PyErr_SetString(PyExc_ValueError, "the mutex handle is closed");
        return -1;
    }
#ifdef __GLIBC__
    if (__atomic_load_n(&self->m->__data.__kind, __ATOMIC_RELAXED) != expected_kind) {
        PyErr_Format(PyExc_ValueError, "the mutex is corrupted (type word %d)",
                     self->m->__data.__kind);
        return -1;
    }
#endif
    return 0;
}

static PyObject *
rm_acquire(RobustMutex *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"blocking", "timeout", NULL};
    int blocking = 1, has_deadline = 0, got;
    PyObject *timeout = Py_None;
    struct timespec deadline;
    if (rm_check(self) < 0)
        return NULL;
    if (PyTuple_GET_SIZE(args) || kwargs) {
        if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|pO", kw, &blocking, &timeout))
            return NULL;
        if (ip_deadline(timeout, &has_deadline, &deadline) < 0)
            return NULL;
        if (!blocking) {
            has_deadline = 1;
            clock_gettime(CLOCK_MONOTONIC, &deadline);
        }
    }
    got = lock_with_deadline(self->m, has_deadline, &deadline);
    if (got == -2)
        return NULL;
    if (got == -1)
        Py_RETURN_FALSE;
    unsigned long me = PyThread_get_thread_ident();
    if (self->owner == me) {
        self->depth++;
    } else {
        self->owner = me;
        self->depth = 1;
    }
    if (got == 1)
        self->abandoned = 1;
    Py_RETURN_TRUE;
}

static PyObject *
rm_release(RobustMutex *self, PyObject *unused)
{
    if (rm_check(self) < 0)
        return NULL;
    if (self->depth == 0 || self->owner != PyThread_get_thread_ident()) {
        errno = EPERM;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    int rc = pthread_mutex_unlock(self->m);
    if (rc) {
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (--self->depth == 0) {
        self->owner = 0;
        self->abandoned = 0;
    }
    Py_RETURN_NONE;
}

static PyObject *
rm_enter(RobustMutex *self, PyObject *unused)
{
    PyObject *args = PyTuple_New(0), *ok;
    if (args == NULL)
        return NULL;
    ok = rm_acquire(self, args, NULL);
    Py_DECREF(args);
    if (ok == NULL)
        return NULL;
    Py_DECREF(ok);
    return Py_NewRef(self);
}

static PyObject *
rm_exit(RobustMutex *self, PyObject *args)
{
    return rm_release(self, NULL);
}

static PyObject *
rm_close(RobustMutex *self, PyObject *unused)
{
    rm_release_buffer(self);
    Py_RETURN_NONE;
}

static PyObject *
rm_get_abandoned(RobustMutex *self, void *closure)
{
    return PyBool_FromLong(self->abandoned);
}

static PyObject *
rm_get_held(RobustMutex *self, void *closure)
{
    return PyBool_FromLong(self->depth > 0 &&
                           self->owner == PyThread_get_thread_ident());
}

static PyMethodDef rm_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))rm_acquire, METH_VARARGS | METH_KEYWORDS,
     "acquire($self, blocking=True, timeout=None)\n--\n\n"
     "Lock; False if it timed out.  Sets `abandoned` if the previous owner died."},
    {"release", (PyCFunction)rm_release, METH_NOARGS,
     "release($self, /)\n--\n\nUnlock; OSError(EPERM) if this thread does not hold it."},
    {"close", (PyCFunction)rm_close, METH_NOARGS,
     "close($self, /)\n--\n\nLet go of the buffer (the mutex itself is untouched)."},
    {"__enter__", (PyCFunction)rm_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)rm_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef rm_getset[] = {
    {"abandoned", (getter)rm_get_abandoned, NULL,
     "True from an acquire that found the previous owner dead until the outermost release.", NULL},
    {"held", (getter)rm_get_held, NULL, "True if the calling thread holds it.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject RobustMutexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "interproc._native.RobustMutex",
    .tp_basicsize = sizeof(RobustMutex),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "RobustMutex(buffer, offset=0)\n--\n\n"
              "A handle on the robust mutex at `offset` of a writable buffer\n"
              "(initialised by mutex_init).  Holds the buffer until close().",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)rm_init,
    .tp_dealloc = (destructor)rm_dealloc,
    .tp_methods = rm_methods,
    .tp_getset = rm_getset,
};

int
ip_mutex_add_constants(PyObject *module)
{
    if (PyModule_AddIntConstant(module, "MUTEX_SIZE", sizeof(pthread_mutex_t)) < 0)
        return -1;
#ifdef __GLIBC__
    int rc = learn_kind();
    if (rc) {
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
#endif
    if (PyType_Ready(&RobustMutexType) < 0)
        return -1;
    Py_INCREF(&RobustMutexType);
    if (PyModule_AddObject(module, "RobustMutex", (PyObject *)&RobustMutexType) < 0) {
        Py_DECREF(&RobustMutexType);
        return -1;
    }
    return 0;
}
