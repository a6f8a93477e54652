/* Helpers every primitive uses: bounds-checked (buffer, offset) pairs,
 * timeouts and deadlines, and fastcall argument parsing.  A leaf: it needs
 * nothing but native.h, and module.c needs nothing from it. */
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
    if (PyBool_Check(timeout) || !(PyLong_Check(timeout) || PyFloat_Check(timeout))) {
        /* the same rule as interproc._deadline.check_timeout: "3" or True is a mistake */
        PyErr_Format(PyExc_TypeError, "timeout must be a number of seconds or None, not %s %R",
                     Py_TYPE(timeout)->tp_name, timeout);
        return -1;
    }
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

long long
ip_deadline_ns(PyObject *timeout, long long *out)
{
    int has;
    struct timespec ts;
    if (ip_deadline(timeout, &has, &ts) < 0)
        return -1;
    *out = has ? (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec : -1;
    return 0;
}

int
ip_parse_timeout_args(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames, int npos, PyObject **pos, PyObject **timeout)
{
    *timeout = Py_None;
    if (nargs != npos) {
        if (nargs == npos + 1) {
            *timeout = args[npos];
        } else {
            PyErr_Format(PyExc_TypeError, "%s() takes %d positional argument%s (%zd given)",
                         fname, npos, npos == 1 ? "" : "s", nargs);
            return -1;
        }
    }
    for (int i = 0; i < npos; i++)
        pos[i] = args[i];
    if (kwnames) {
        Py_ssize_t nk = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < nk; i++) {
            PyObject *k = PyTuple_GET_ITEM(kwnames, i);
            if (PyUnicode_CompareWithASCIIString(k, "timeout") != 0 || nargs > npos) {
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R",
                             fname, k);
                return -1;
            }
            *timeout = args[nargs + i];
        }
    }
    return 0;
}

int
ip_add_layout(PyObject *module, const char *name, const ip_layout_entry *entries, size_t n)
{
    PyObject *d = PyDict_New();
    if (!d)
        return -1;
    for (size_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLong(entries[i].value);
        if (!v || PyDict_SetItemString(d, entries[i].name, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return -1;
        }
        Py_DECREF(v);
    }
    int r = PyModule_AddObjectRef(module, name, d);
    Py_DECREF(d);
    return r;
}
