/* Sequentially consistent atomics on 1, 2, 4 and 8 byte integers in a buffer.
 *
 * seq_cst is deliberate: these back SharedStruct fields and header words that
 * unrelated processes read without any other synchronisation, so the simplest
 * ordering that cannot surprise anyone is worth its few cycles.  The
 * shared-memory ring uses its own acquire/release code in ring.c.
 */
#include "native.h"

typedef enum { OP_LOAD, OP_STORE, OP_ADD, OP_XCHG, OP_CAS } atomic_op;

/* Parse a Python int for a field of `size` bytes; range-checked unless
 * `wrap` (addition wraps around like the C type does). */
static int
to_bits(PyObject *v, int size, int is_signed, int wrap, uint64_t *out)
{
    if (!PyLong_Check(v)) {
        PyErr_Format(PyExc_TypeError, "expected an int, got %.100s",
                     Py_TYPE(v)->tp_name);
        return -1;
    }
    if (wrap) {
        *out = (uint64_t)PyLong_AsUnsignedLongLongMask(v);
        return PyErr_Occurred() ? -1 : 0;
    }
    int bits = size * 8;
    if (is_signed) {
        long long x = PyLong_AsLongLong(v);
        if (x == -1 && PyErr_Occurred())
            return -1;
        if (bits < 64) {
            long long lo = -(1LL << (bits - 1)), hi = (1LL << (bits - 1)) - 1;
            if (x < lo || x > hi) {
                PyErr_Format(PyExc_OverflowError,
                             "%lld does not fit a signed %d-bit field", x, bits);
                return -1;
            }
        }
        *out = (uint64_t)x;
    } else {
        unsigned long long x = PyLong_AsUnsignedLongLong(v);
        if (x == (unsigned long long)-1 && PyErr_Occurred())
            return -1;
        if (bits < 64 && x >> bits) {
            PyErr_Format(PyExc_OverflowError,
                         "%llu does not fit an unsigned %d-bit field", x, bits);
            return -1;
        }
        *out = x;
    }
    return 0;
}

static PyObject *
from_bits(uint64_t raw, int size, int is_signed)
{
    if (is_signed) {
        switch (size) {
        case 1: return PyLong_FromLong((int8_t)raw);
        case 2: return PyLong_FromLong((int16_t)raw);
        case 4: return PyLong_FromLong((int32_t)raw);
        default: return PyLong_FromLongLong((int64_t)raw);
        }
    }
    switch (size) {
    case 1: return PyLong_FromUnsignedLong((uint8_t)raw);
    case 2: return PyLong_FromUnsignedLong((uint16_t)raw);
    case 4: return PyLong_FromUnsignedLong((uint32_t)raw);
    default: return PyLong_FromUnsignedLongLong(raw);
    }
}

#define APPLY(T)                                                              \
    do {                                                                      \
        T *p = (T *)ptr;                                                      \
        switch (op) {                                                         \
        case OP_LOAD: old = __atomic_load_n(p, __ATOMIC_SEQ_CST); break;      \
        case OP_STORE: __atomic_store_n(p, (T)a, __ATOMIC_SEQ_CST); break;    \
        case OP_ADD: old = __atomic_fetch_add(p, (T)a, __ATOMIC_SEQ_CST); break; \
        case OP_XCHG: old = __atomic_exchange_n(p, (T)a, __ATOMIC_SEQ_CST); break; \
        case OP_CAS: {                                                        \
            T expected = (T)a;                                                \
            swapped = __atomic_compare_exchange_n(p, &expected, (T)b, 0,      \
                                                  __ATOMIC_SEQ_CST,           \
                                                  __ATOMIC_SEQ_CST);          \
            old = expected;                                                   \
            break;                                                            \
        }                                                                     \
        }                                                                     \
    } while (0)

static PyObject *
atomic_common(PyObject *args, PyObject *kwargs, atomic_op op)
{
    static char *kw_one[] = {"buffer", "offset", "size", "signed", NULL};
    static char *kw_val[] = {"buffer", "offset", "value", "size", "signed", NULL};
    static char *kw_cas[] = {"buffer", "offset", "expected", "desired", "size",
                             "signed", NULL};
    Py_buffer view;
    Py_ssize_t offset;
    PyObject *va = NULL, *vb = NULL;
    int size = 8, is_signed = 1, ok;

    if (op == OP_LOAD)
        ok = PyArg_ParseTupleAndKeywords(args, kwargs, "w*n|$ip", kw_one,
                                         &view, &offset, &size, &is_signed);
    else if (op == OP_CAS)
        ok = PyArg_ParseTupleAndKeywords(args, kwargs, "w*nOO|$ip", kw_cas,
                                         &view, &offset, &va, &vb, &size,
                                         &is_signed);
    else
        ok = PyArg_ParseTupleAndKeywords(args, kwargs, "w*nO|$ip", kw_val,
                                         &view, &offset, &va, &size, &is_signed);
    if (!ok)
        return NULL;

    PyObject *result = NULL;
    uint64_t a = 0, b = 0, old = 0;
    int swapped = 0;
    if (size != 1 && size != 2 && size != 4 && size != 8) {
        PyErr_Format(PyExc_ValueError, "size must be 1, 2, 4 or 8, not %d", size);
        goto done;
    }
    void *ptr = ip_locate(&view, offset, size, size);
    if (ptr == NULL)
        goto done;
    if (va && to_bits(va, size, is_signed, op == OP_ADD, &a) < 0)
        goto done;
    if (vb && to_bits(vb, size, is_signed, 0, &b) < 0)
        goto done;

    switch (size) {
    case 1: APPLY(uint8_t); break;
    case 2: APPLY(uint16_t); break;
    case 4: APPLY(uint32_t); break;
    default: APPLY(uint64_t); break;
    }

    if (op == OP_STORE) {
        result = Py_NewRef(Py_None);
    } else if (op == OP_CAS) {
        PyObject *prev = from_bits(old, size, is_signed);
        if (prev)
            result = Py_BuildValue("(NN)", PyBool_FromLong(swapped), prev);
    } else {
        result = from_bits(old, size, is_signed);
    }
done:
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
atomic_load(PyObject *self, PyObject *args, PyObject *kw)
{
    return atomic_common(args, kw, OP_LOAD);
}
static PyObject *
atomic_store(PyObject *self, PyObject *args, PyObject *kw)
{
    return atomic_common(args, kw, OP_STORE);
}
static PyObject *
atomic_add(PyObject *self, PyObject *args, PyObject *kw)
{
    return atomic_common(args, kw, OP_ADD);
}
static PyObject *
atomic_exchange(PyObject *self, PyObject *args, PyObject *kw)
{
    return atomic_common(args, kw, OP_XCHG);
}
static PyObject *
atomic_compare_exchange(PyObject *self, PyObject *args, PyObject *kw)
{
    return atomic_common(args, kw, OP_CAS);
}

PyMethodDef ip_atomic_methods[] = {
    {"atomic_load", (PyCFunction)(void (*)(void))atomic_load,
     METH_VARARGS | METH_KEYWORDS,
     "atomic_load($module, buffer, offset, *, size=8, signed=True)\n--\n\n"
     "Atomically read the integer of `size` bytes at `offset`."},
    {"atomic_store", (PyCFunction)(void (*)(void))atomic_store,
     METH_VARARGS | METH_KEYWORDS,
     "atomic_store($module, buffer, offset, value, *, size=8, signed=True)\n--\n\n"
     "Atomically write `value`; OverflowError if it does not fit."},
    {"atomic_add", (PyCFunction)(void (*)(void))atomic_add,
     METH_VARARGS | METH_KEYWORDS,
     "atomic_add($module, buffer, offset, value, *, size=8, signed=True)\n--\n\n"
     "Atomically add `value` (wrapping like the C type); returns the old value."},
    {"atomic_exchange", (PyCFunction)(void (*)(void))atomic_exchange,
     METH_VARARGS | METH_KEYWORDS,
     "atomic_exchange($module, buffer, offset, value, *, size=8, signed=True)\n--\n\n"
     "Atomically replace the value; returns the old value."},
    {"atomic_compare_exchange", (PyCFunction)(void (*)(void))atomic_compare_exchange,
     METH_VARARGS | METH_KEYWORDS,
     "atomic_compare_exchange($module, buffer, offset, expected, desired, *, size=8, signed=True)\n--\n\n"
     "Store `desired` if the value equals `expected`; returns (swapped, old)."},
    {NULL, NULL, 0, NULL},
};
