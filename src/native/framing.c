/* The inner loop of the stream framing decoder (interproc._framing).
 *
 * Frames are an 8-byte big-endian length and the body.  frame_scan hands
 * every *complete* frame of an acceptable size to `append` as bytes and
 * returns where it stopped; whatever needs judgement (a header over the
 * limit, a body still arriving, a body large enough to be received in
 * place) is left to the Python decoder, which reads on from that offset.
 * This is the per-message cost of every framed pipe and socket. */
#include "native.h"

static PyObject *
frame_scan(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "frame_scan(buffer, start, end, limit, append) takes 5 arguments");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    Py_ssize_t end = PyLong_AsSsize_t(args[2]);
    unsigned long long limit = PyLong_AsUnsignedLongLong(args[3]);
    PyObject *append = args[4];
    if (PyErr_Occurred())
        goto done;
    if (start < 0 || end < start || end > view.len) {
        PyErr_Format(PyExc_ValueError, "frame_scan: bad range %zd..%zd of %zd bytes",
                     start, end, view.len);
        goto done;
    }
    const unsigned char *buf = view.buf;
    while (end - start >= 8) {
        uint64_t n = 0;
        for (int i = 0; i < 8; i++)
            n = (n << 8) | buf[start + i];
        if (n > limit || n > (uint64_t)(end - start - 8))
            break; /* too large, or not all here yet: the Python side decides */
        PyObject *frame = PyBytes_FromStringAndSize((const char *)buf + start + 8,
                                                    (Py_ssize_t)n);
        if (frame == NULL)
            goto done;
        PyObject *r = PyObject_CallOneArg(append, frame);
        Py_DECREF(frame);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
        start += 8 + (Py_ssize_t)n;
    }
    result = PyLong_FromSsize_t(start);
done:
    PyBuffer_Release(&view);
    return result;
}

PyMethodDef ip_framing_methods[] = {
    {"frame_scan", (PyCFunction)(void (*)(void))frame_scan, METH_FASTCALL,
     "frame_scan($module, buffer, start, end, limit, append, /)\n--\n\n"
     "Pass each complete length-prefixed frame in buffer[start:end] whose\n"
     "length is <= limit to append(bytes); return the offset where it stopped."},
    {NULL, NULL, 0, NULL},
};
