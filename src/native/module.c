/* interproc._native: module definition and the helpers every primitive uses. */
#include "native.h"

#include <math.h>
#include <time.h>

void *
ip_locate(Py_buffer *view, Py_ssize_t offset, Py_ssize_t size, Py_ssize_t align)
{
    if (offset < 0 || size < 0 || offset > view->len - size) {
        PyErr_Format(PyExc_ValueError,
                     "offset %zd (+%zd bytes) is outside the buffer of %zd bytes",
                     offset, size, view->len);
        return NULL;
    }
    char *p = (char *)view->buf + offset;
    if (align > 1 && ((uintptr_t)p % (uintptr_t)align) != 0) {
        PyErr_Format(PyExc_ValueError,
                     "offset %zd is not aligned to %zd bytes", offset, align);
        return NULL;
    }
    return p;
}

int
ip_deadline(PyObject *timeout, int *has_deadline, struct timespec *deadline)
{
    *has_deadline = 0;
    if (timeout == NULL || timeout == Py_None)
        return 0;
    double t = PyFloat_AsDouble(timeout);
    if (t == -1.0 && PyErr_Occurred())
        return -1;
    if (isnan(t) || t < 0) {
        PyErr_Format(PyExc_ValueError,
                     "timeout must be None or >= 0 seconds, not %R", timeout);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, deadline);
    if (t > 1e9)
        t = 1e9; /* ~31 years: effectively forever, and no overflow */
    double whole = floor(t);
    deadline->tv_sec += (time_t)whole;
    deadline->tv_nsec += (long)((t - whole) * 1e9);
    if (deadline->tv_nsec >= 1000000000L) {
        deadline->tv_sec += 1;
        deadline->tv_nsec -= 1000000000L;
    }
    *has_deadline = 1;
    return 0;
}

int
ip_remaining(const struct timespec *deadline, struct timespec *left)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    left->tv_sec = deadline->tv_sec - now.tv_sec;
    left->tv_nsec = deadline->tv_nsec - now.tv_nsec;
    if (left->tv_nsec < 0) {
        left->tv_sec -= 1;
        left->tv_nsec += 1000000000L;
    }
    if (left->tv_sec < 0) {
        left->tv_sec = 0;
        left->tv_nsec = 0;
        return 0;
    }
    return 1;
}

static int
native_exec(PyObject *m)
{
    PyMethodDef *tables[] = {ip_atomic_methods, ip_futex_methods,
                             ip_mutex_methods, ip_ring_methods,
                             ip_pubsub_methods, ip_framing_methods};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        if (PyModule_AddFunctions(m, tables[i]) < 0)
            return -1;
    }
    if (ip_mutex_add_constants(m) < 0)
        return -1;
    if (ip_ring_init(m) < 0)
        return -1;
    return 0;
}

static PyModuleDef_Slot native_slots[] = {
    {Py_mod_exec, native_exec},
    {0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "interproc._native",
    .m_doc = "interproc's native core: atomics, futexes, robust mutexes, rings.\n\n"
             "Every function addresses shared memory as (buffer, offset) and\n"
             "bounds-checks the pair; waits release the GIL and return on signals.",
    .m_size = 0,
    .m_slots = native_slots,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModuleDef_Init(&native_module);
}
