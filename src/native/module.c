/* interproc._native: the module definition and its state (the exception
 * classes interproc._errors gives meaning to, as msgspec keeps its
 * MsgspecState).  The helpers every primitive uses are in helpers.c. */
#include "native.h"

static struct PyModuleDef native_module;

/* The module state.  The types are static, so they find it through the
 * (single-phase) module object: PyState_FindModule. */
ip_state *
ip_get_state(void)
{
    PyObject *m = PyState_FindModule(&native_module);
    return m ? (ip_state *)PyModule_GetState(m) : NULL;
}

PyObject *
ip_error(int which, PyObject *fallback)
{
    ip_state *st = ip_get_state();
    PyObject *cls = NULL;
    if (st) {
        switch (which) {
        case IP_ERR_CLOSED: cls = st->closed; break;
        case IP_ERR_TIMEOUT: cls = st->timeout; break;
        case IP_ERR_PROTOCOL: cls = st->protocol; break;
        case IP_ERR_TOO_LARGE: cls = st->too_large; break;
        case IP_ERR_HANDLE_CLOSED: cls = st->handle_closed; break;
        }
    }
    return cls ? cls : fallback;
}

static PyObject *
set_errors(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"closed", "timeout", "protocol", "too_large", "handle_closed", NULL};
    PyObject *all[5] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$OOOOO", kw, &all[0], &all[1], &all[2],
                                     &all[3], &all[4]))
        return NULL;
    for (int i = 0; i < 5; i++) {
        if (!PyExceptionClass_Check(all[i])) {
            PyErr_SetString(PyExc_TypeError, "set_errors() takes exception classes");
            return NULL;
        }
    }
    ip_state *st = PyModule_GetState(mod);
    Py_XSETREF(st->closed, Py_NewRef(all[0]));
    Py_XSETREF(st->timeout, Py_NewRef(all[1]));
    Py_XSETREF(st->protocol, Py_NewRef(all[2]));
    Py_XSETREF(st->too_large, Py_NewRef(all[3]));
    Py_XSETREF(st->handle_closed, Py_NewRef(all[4]));
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"set_errors", (PyCFunction)(void (*)(void))set_errors, METH_VARARGS | METH_KEYWORDS,
     "set_errors($module, *, closed, timeout, protocol, too_large, handle_closed)\n--\n\n"
     "Tell the native core which exceptions to raise (interproc's error tree)."},
    {NULL, NULL, 0, NULL},
};

static int
state_traverse(PyObject *m, visitproc visit, void *arg)
{
    ip_state *st = PyModule_GetState(m);
    Py_VISIT(st->closed);
    Py_VISIT(st->timeout);
    Py_VISIT(st->protocol);
    Py_VISIT(st->too_large);
    Py_VISIT(st->handle_closed);
    return 0;
}

static int
state_clear(PyObject *m)
{
    ip_state *st = PyModule_GetState(m);
    Py_CLEAR(st->closed);
    Py_CLEAR(st->timeout);
    Py_CLEAR(st->protocol);
    Py_CLEAR(st->too_large);
    Py_CLEAR(st->handle_closed);
    return 0;
}

static int
native_exec(PyObject *m)
{
    PyMethodDef *tables[] = {ip_atomic_methods, ip_futex_methods,
                             ip_mutex_methods, ip_ring_methods,
                             ip_pubsub_core_methods,
                             ip_framing_methods};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        if (PyModule_AddFunctions(m, tables[i]) < 0)
            return -1;
    }
    if (ip_mutex_add_constants(m) < 0)
        return -1;
    if (ip_ring_init(m) < 0 || ip_pubsub_init(m) < 0 || ip_listen_bell_init(m) < 0)
        return -1;
    return 0;
}

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "interproc._native",
    .m_doc = "interproc's native core: atomics, futexes, robust mutexes, rings.\n\n"
             "Every function addresses shared memory as (buffer, offset) and\n"
             "bounds-checks the pair; waits release the GIL and return on signals.",
    .m_size = sizeof(ip_state),
    .m_methods = module_methods,
    .m_traverse = state_traverse,
    .m_clear = state_clear,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    /* Single-phase: the static types reach the state via PyState_FindModule. */
    PyObject *m = PyModule_Create(&native_module);
    if (m && native_exec(m) < 0)
        Py_CLEAR(m);
    return m;
}
