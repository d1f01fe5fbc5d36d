/* GrowthBook's FNV-1a 32-bit hashes in C: the optional native half of assignment/hashing.py.
 *
 * Built by `make setup` (python -m assignment.native_build) with the machine's C compiler and
 * Python's own headers; no other dependency. When it is missing or fails to build,
 * assignment.hashing uses its pure-Python functions, which give identical results (a test
 * compares both on many random strings).
 *
 * Strings are hashed over their UTF-16 code units, like JavaScript's charCodeAt: a code point
 * beyond U+FFFF is two surrogate units; a lone surrogate in a Python str is its own unit (what
 * the pure path's "surrogatepass" UTF-16 encoding gives).
 *
 *   fnv1a32_extend(state, text) -> int        continue a hash from state over text
 *   hash_v1(seed, value, memo=None) -> float  fnv1a32(value + seed) % 1000 / 1000
 *   hash_v2(seed, value, memo=None) -> float  fnv1a32(str(fnv1a32(seed + value))) % 10000 / 10000
 *
 * hash_v1/hash_v2 take (and ignore) the pure path's memo argument, so that
 * functools.partial(hash_v2, seed) is a drop-in for SeededHash.function().
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define FNV_PRIME 16777619u
#define FNV_OFFSET 2166136261u

static uint32_t extend(uint32_t h, PyObject *text)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t i;
    switch (PyUnicode_KIND(text)) {
    case PyUnicode_1BYTE_KIND: {
        const Py_UCS1 *p = (const Py_UCS1 *)data;
        for (i = 0; i < n; i++)
            h = (h ^ p[i]) * FNV_PRIME;
        break;
    }
    case PyUnicode_2BYTE_KIND: {
        const Py_UCS2 *p = (const Py_UCS2 *)data;
        for (i = 0; i < n; i++)
            h = (h ^ p[i]) * FNV_PRIME;
        break;
    }
    default: {
        const Py_UCS4 *p = (const Py_UCS4 *)data;
        for (i = 0; i < n; i++) {
            Py_UCS4 c = p[i];
            if (c > 0xFFFF) {
                c -= 0x10000;
                h = (h ^ (0xD800 + (c >> 10))) * FNV_PRIME;
                h = (h ^ (0xDC00 + (c & 0x3FF))) * FNV_PRIME;
            } else {
                h = (h ^ c) * FNV_PRIME;
            }
        }
    }
    }
    return h;
}

static uint32_t decimal_hash(uint32_t value)
{
    char digits[10];
    int count = 0;
    uint32_t h = FNV_OFFSET;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    while (count)
        h = (h ^ (unsigned char)digits[--count]) * FNV_PRIME;
    return h;
}

static int check_str(PyObject *value, const char *name)
{
    if (!PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", name, Py_TYPE(value)->tp_name);
        return -1;
    }
    return PyUnicode_READY(value);
}

static int check_args(const char *function, Py_ssize_t nargs, Py_ssize_t low, Py_ssize_t high)
{
    if (nargs < low || nargs > high) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd to %zd arguments (%zd given)", function, low, high,
                     nargs);
        return -1;
    }
    return 0;
}

static PyObject *fnv1a32_extend(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_args("fnv1a32_extend", nargs, 2, 2) < 0)
        return NULL;
    if (!PyLong_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "state must be an int");
        return NULL;
    }
    uint32_t state = (uint32_t)PyLong_AsUnsignedLongMask(args[0]);
    if (state == (uint32_t)-1 && PyErr_Occurred())
        return NULL;
    if (check_str(args[1], "text") < 0)
        return NULL;
    return PyLong_FromUnsignedLong(extend(state, args[1]));
}

static PyObject *hash_v1(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_args("hash_v1", nargs, 2, 3) < 0 || check_str(args[0], "seed") < 0 ||
        check_str(args[1], "value") < 0)
        return NULL;
    uint32_t h = extend(extend(FNV_OFFSET, args[1]), args[0]);
    return PyFloat_FromDouble((double)(h % 1000) / 1000.0);
}

static PyObject *hash_v2(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_args("hash_v2", nargs, 2, 3) < 0 || check_str(args[0], "seed") < 0 ||
        check_str(args[1], "value") < 0)
        return NULL;
    uint32_t h = decimal_hash(extend(extend(FNV_OFFSET, args[0]), args[1]));
    return PyFloat_FromDouble((double)(h % 10000) / 10000.0);
}

static PyMethodDef methods[] = {
    {"fnv1a32_extend", (PyCFunction)(void (*)(void))fnv1a32_extend, METH_FASTCALL,
     "fnv1a32_extend(state, text) -> int: FNV-1a 32 from state over text's UTF-16 code units."},
    {"hash_v1", (PyCFunction)(void (*)(void))hash_v1, METH_FASTCALL,
     "hash_v1(seed, value, memo=None) -> float: GrowthBook's v1 hash (memo is ignored)."},
    {"hash_v2", (PyCFunction)(void (*)(void))hash_v2, METH_FASTCALL,
     "hash_v2(seed, value, memo=None) -> float: GrowthBook's v2 hash (memo is ignored)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_native_hash",
    "GrowthBook's FNV-1a 32-bit hashes in C (see assignment/hashing.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__native_hash(void)
{
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddIntConstant(module, "ABI", 1) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
