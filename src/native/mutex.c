/* Robust, process-shared, recursive lock placed in shared memory.
 *
 * Why not a robust pthread mutex: glibc keeps each thread's robust list as
 * pointers INTO the mutexes it holds, and both glibc and the kernel follow
 * those pointers (on lock, unlock and thread death).  A segment that another
 * user can write -- a global one, or a squatted name -- could then make us
 * write wherever that user likes.  This lock only ever reads and writes
 * integers in the segment, so a hostile writer can at worst hold it or break
 * mutual exclusion, never crash us or steer our memory writes.
 *
 * Layout (32 bytes, 8-aligned):
 *   +0  word   u32  futex word: 0 = free, else owner tid | WAITERS
 *   +4  magic  u32  IP_LOCK_MAGIC once initialised
 *   +8  count  u32  recursion depth of the owner
 *   +12 owner  u32  tid that wrote owner_start (the identity copy)
 *   +16 start  u64  start time of that thread (clock ticks since boot)
 *   +24 reserved
 *
 * Owner death (the Win32 WAIT_ABANDONED rule) is found by a liveness check,
 * like the rest of the library: a waiter that slept a whole slice without
 * progress reads /proc/<tid>/stat; a missing, zombie or recycled thread
 * (start time differs) is dead, and the waiter takes the lock over with a
 * compare-and-swap on the exact word it judged.  The uncontended path is one
 * CAS to lock and one exchange to unlock.
 */
#include "native.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pythread.h>

#define IP_LOCK_MAGIC 0x4b4c5049u  /* "IPLK" */
#define WAITERS 0x80000000u
#define TID_MASK 0x7fffffffu
#define SLICE_NS 50000000L         /* liveness re-check while blocked */

typedef struct {
    uint32_t word;
    uint32_t magic;
    uint32_t count;
    uint32_t owner;
    uint64_t start;
    uint64_t reserved;
} ip_lock;

/* -- who we are -------------------------------------------------------- */

static __thread uint32_t tls_tid;
static __thread uint64_t tls_start;

/* Read state and start time (field 22) of a task; -1 if it does not exist. */
static int
task_stat(uint32_t tid, char *state, uint64_t *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%u/stat", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* The command name may hold ')' and spaces: fields resume after the last. */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ')
        return -1;
    p += 2;
    *state = *p;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (p == NULL)
            return -1;
        p++;
    }
    *start = strtoull(p, NULL, 10);
    return 0;
}

static void
learn_self(void)
{
    char state;
    uint64_t start = 0;
    uint32_t tid = (uint32_t)syscall(SYS_gettid);
    /* /proc/<tid> answers for any thread id, not only process leaders. */
    if (task_stat(tid, &state, &start) < 0)
        start = 0; /* no /proc: ownership still works, reuse detection does not */
    tls_start = start;
    tls_tid = tid;
}

static inline uint32_t
my_tid(void)
{
    if (__builtin_expect(tls_tid == 0, 0))
        learn_self();
    return tls_tid;
}

/* After fork the child's thread has another tid: learn it again. */
static void
forget_self(void)
{
    tls_tid = 0;
}

/* True if the owner named by word `v` is certainly gone. */
static int
owner_dead(ip_lock *l, uint32_t v)
{
    uint32_t tid = v & TID_MASK;
    if (tid == 0)
        return 0;
    uint32_t copy = __atomic_load_n(&l->owner, __ATOMIC_ACQUIRE);
    uint64_t want = __atomic_load_n(&l->start, __ATOMIC_RELAXED);
    char state;
    uint64_t start;
    if (task_stat(tid, &state, &start) < 0)
        return 1;
    if (state == 'Z' || state == 'X' || state == 'x')
        return 1;
    /* The identity copy is written just after the CAS; until then only the
     * tid is known, and a live task with that tid counts as the owner. */
    if (copy == tid && want != 0 && start != want)
        return 1;
    return 0;
}

/* -- the lock ------------------------------------------------------------ */

static ip_lock *
locate_lock(Py_buffer *view, Py_ssize_t offset, int initialised)
{
    ip_lock *l = ip_locate(view, offset, sizeof(ip_lock), 8);
    if (l != NULL && initialised &&
        __atomic_load_n(&l->magic, __ATOMIC_RELAXED) != IP_LOCK_MAGIC) {
        PyErr_Format(PyExc_ValueError,
                     "the mutex at offset %zd is corrupted (magic %#x)",
                     offset, l->magic);
        return NULL;
    }
    return l;
}

static inline void
took(ip_lock *l, uint32_t me)
{
    __atomic_store_n(&l->start, tls_start, __ATOMIC_RELAXED);
    __atomic_store_n(&l->owner, me, __ATOMIC_RELEASE);
    __atomic_store_n(&l->count, 1, __ATOMIC_RELAXED);
}

/* Lock, waiting until the deadline.  Returns 0 (acquired), 1 (acquired, the
 * previous owner died), -1 (timed out), -2 (error: exception set).  Called
 * with the GIL held; releases it while it sleeps. */
static int
lock_with_deadline(ip_lock *l, int has_deadline, const struct timespec *deadline)
{
    uint32_t me = my_tid();
    uint32_t v = 0;
    if (__builtin_expect(__atomic_compare_exchange_n(&l->word, &v, me, 0, __ATOMIC_ACQUIRE,
                                                     __ATOMIC_RELAXED), 1)) {
        took(l, me);
        return 0;
    }
    if ((v & TID_MASK) == me &&
        !(__atomic_load_n(&l->owner, __ATOMIC_ACQUIRE) == me &&
          __atomic_load_n(&l->start, __ATOMIC_RELAXED) != tls_start)) {
        /* Ours already (an earlier thread with our id that died holding it
         * recorded another start time, and is taken over below instead). */
        uint32_t c = __atomic_load_n(&l->count, __ATOMIC_RELAXED);
        if (c == UINT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "mutex recursion is too deep");
            return -2;
        }
        __atomic_store_n(&l->count, c + 1, __ATOMIC_RELAXED);
        return 0;
    }
    /* An earlier holder with our very id is dead by definition: check at once. */
    int checked = (v & TID_MASK) == me;
    for (;;) {
        v = __atomic_load_n(&l->word, __ATOMIC_RELAXED);
        if (v == 0) {
            /* We may have slept: keep WAITERS so our unlock wakes the next. */
            if (__atomic_compare_exchange_n(&l->word, &v, me | WAITERS, 0,
                                            __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
                took(l, me);
                return 0;
            }
            continue;
        }
        struct timespec left = {0, SLICE_NS};
        int time_left = 1;
        if (has_deadline)
            time_left = ip_remaining(deadline, &left);
        if (checked || !time_left) {
            /* A slice passed without progress (or we cannot wait at all):
             * is the owner still there? */
            checked = 0;
            if (owner_dead(l, v)) {
                if (__atomic_compare_exchange_n(&l->word, &v, me | (v & WAITERS), 0,
                                                __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
                    took(l, me);
                    return 1;
                }
                continue;
            }
            if (!time_left)
                return -1;
        }
        if (!(v & WAITERS)) {
            if (!__atomic_compare_exchange_n(&l->word, &v, v | WAITERS, 0,
                                             __ATOMIC_RELAXED, __ATOMIC_RELAXED))
                continue;
            v |= WAITERS;
        }
        if (left.tv_sec > 0 || left.tv_nsec > SLICE_NS) {
            left.tv_sec = 0;
            left.tv_nsec = SLICE_NS;
        }
        long rc;
        int err;
        Py_BEGIN_ALLOW_THREADS
        rc = ip_futex(&l->word, FUTEX_WAIT, v, &left);
        err = errno;
        Py_END_ALLOW_THREADS
        if (rc < 0 && err == ETIMEDOUT)
            checked = 1;
        /* On every wake-up, not only EINTR: a signal that landed outside
         * the system call left only Python's flag behind. */
        if (PyErr_CheckSignals() < 0)
            return -2;
    }
}

/* 0 on success, EPERM if the calling thread does not own it. */
static int
unlock_lock(ip_lock *l)
{
    uint32_t me = my_tid();
    uint32_t v = __atomic_load_n(&l->word, __ATOMIC_RELAXED);
    if ((v & TID_MASK) != me)
        return EPERM;
    uint32_t c = __atomic_load_n(&l->count, __ATOMIC_RELAXED);
    if (c > 1) {
        __atomic_store_n(&l->count, c - 1, __ATOMIC_RELAXED);
        return 0;
    }
    __atomic_store_n(&l->count, 0, __ATOMIC_RELAXED);
    if (__atomic_exchange_n(&l->word, 0, __ATOMIC_RELEASE) & WAITERS)
        ip_futex(&l->word, FUTEX_WAKE, 1, NULL);
    return 0;
}

static PyObject *
mutex_init(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    if (!PyArg_ParseTuple(args, "w*n", &view, &offset))
        return NULL;
    PyObject *result = NULL;
    ip_lock *l = locate_lock(&view, offset, 0);
    if (l != NULL) {
        memset(l, 0, sizeof(*l));
        __atomic_store_n(&l->magic, IP_LOCK_MAGIC, __ATOMIC_RELEASE);
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&view);
    return result;
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
    ip_lock *l = locate_lock(&view, offset, 1);
    if (l != NULL && ip_deadline(timeout, &has_deadline, &deadline) == 0) {
        int got = lock_with_deadline(l, has_deadline, &deadline);
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
    ip_lock *l = locate_lock(&view, offset, 1);
    if (l != NULL) {
        int rc = unlock_lock(l);
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
     "Initialise a robust, process-shared, recursive lock at `offset`\n"
     "(MUTEX_SIZE bytes of integers: no pointers, safe in writable-by-others memory)."},
    {"mutex_lock", (PyCFunction)(void (*)(void))mutex_lock,
     METH_VARARGS | METH_KEYWORDS,
     "mutex_lock($module, buffer, offset, timeout=None)\n--\n\n"
     "Lock: 0 = acquired, 1 = acquired but its previous owner died holding\n"
     "it, -1 = timed out.  Releases the GIL while it waits; Ctrl-C works."},
    {"mutex_unlock", mutex_unlock, METH_VARARGS,
     "mutex_unlock($module, buffer, offset, /)\n--\n\n"
     "Unlock; OSError(EPERM) if this thread does not own it."},
    {NULL, NULL, 0, NULL},
};

/* RobustMutex: the same lock as an object that keeps its buffer, so the
 * hot path (an uncontended lock or unlock) parses nothing and locates
 * nothing.  It also keeps the owning thread's recursion depth through this
 * handle, which tells when the `abandoned` mark may be cleared. */
typedef struct {
    PyObject_HEAD
    Py_buffer view;
    ip_lock *m;
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
    self->m = locate_lock(&self->view, offset, 0);
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
    if (__atomic_load_n(&self->m->magic, __ATOMIC_RELAXED) != IP_LOCK_MAGIC) {
        PyErr_Format(PyExc_ValueError, "the mutex is corrupted (magic %#x)",
                     self->m->magic);
        return -1;
    }
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
    int rc = unlock_lock(self->m);
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
     "close($self, /)\n--\n\nLet go of the buffer (the lock itself is untouched)."},
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
              "A handle on the robust lock at `offset` of a writable buffer\n"
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
    static int registered = 0;
    if (PyModule_AddIntConstant(module, "MUTEX_SIZE", sizeof(ip_lock)) < 0)
        return -1;
    if (!registered) {
        const char *hook = getenv("INTERPROC_TEST_STOP_AFTER_WAKE");
        ip_stop_after_wake = hook != NULL && hook[0] == '1';
        if (pthread_atfork(NULL, NULL, forget_self) != 0) {
            PyErr_SetString(PyExc_OSError, "pthread_atfork failed");
            return -1;
        }
        registered = 1;
    }
    if (PyType_Ready(&RobustMutexType) < 0)
        return -1;
    Py_INCREF(&RobustMutexType);
    if (PyModule_AddObject(module, "RobustMutex", (PyObject *)&RobustMutexType) < 0) {
        Py_DECREF(&RobustMutexType);
        return -1;
    }
    return 0;
}
