/* zabby._logio: the txn log's pwrite + fdatasync on a thread that never takes the GIL.
 *
 * Writer(slots) starts one POSIX thread. submit(fd, offset, data, token) copies
 * `data` and queues the job; the thread takes every queued job, pwrites each in
 * order, fdatasyncs each distinct descriptor once (covering every write before it),
 * then posts (token, errno, sent) triples and bumps an eventfd, which the event loop
 * watches (fileno()). take() returns the finished triples. After a failed write nothing more
 * is written through that descriptor (a later batch after a missing one would be a
 * hole); those jobs answer that write's errno.
 *
 * submit(..., sock, message): once that job's data is durable the thread itself sends
 * `message` on the socket descriptor `sock` (without blocking) and closes `sock`: an
 * ensemble follower's ACK leaves the moment its proposal is on disk, not a loop
 * wake-up later. `sent` is the bytes that went (-errno: none); the caller sends the
 * rest, and gives a descriptor of its own (a dup) so that closing its socket meanwhile
 * cannot point `sock` at another file. A job that failed sends nothing.
 * cancel_send(token): the caller wants its socket back before the fdatasync is over
 * (it has other frames to write): True when the thread will not send that message
 * (sent then answers -ECANCELED), False when it has started to (wait for the answer).
 * Tokens must grow in the order jobs are submitted: the thread reaches them in that
 * order, so a token at or below the last one it reached is past cancelling. Several
 * jobs may each carry a message (to different sockets; a job with no data sends its
 * message once everything submitted before it is durable).
 *
 * submit(..., sock, message, quiet=1): the job's message is all the loop needs to hear
 * of it now. A finished batch whose every job is quiet and sent its message whole
 * does not bump the eventfd (an ensemble follower whose ACK went and which has no
 * client waiting on its log: waking its loop there only takes a core from the members
 * that do have work); take() collects it whenever the loop looks. A cancel_send that
 * comes too late makes the thread bump the eventfd once it is done, so a caller
 * waiting for its socket back is never left waiting.
 *
 * Tests only: Writer(stall_file) makes every fdatasync first sleep the seconds written
 * in that file (nothing, 0 or a missing file: no stall), as storage.fs.fsync_stall
 * does for the Python writers (zabby.testing.diskfaults.FsyncStall: a slow disk).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct job {
    struct job *next;
    int fd;
    int err;
    long long offset;
    long long token;
    size_t len;
    char *data;
    int sock;                  /* -1: nothing to send */
    long long sent;
    size_t msg_len;
    char *msg;
    int quiet;                 /* see `quiet` in the header comment */
} job;

#define MAX_CANCELLED 32

typedef struct {
    PyObject_HEAD
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *q_head, *q_tail;      /* queued for the thread */
    job *d_head, *d_tail;      /* finished, for take() */
    int efd;
    int stop;
    int started;
    int broken_fd;
    int broken_err;
    long long reached_token;   /* the last job with a message the thread came to send */
    long long cancelled[MAX_CANCELLED]; /* jobs whose message must not be sent */
    int ncancelled;
    int want_wake;             /* a cancel_send came too late: wake the loop when done */
    char *stall_file;          /* tests: a slow disk; NULL: none */
} Writer;

static void stall(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    double s = 0;
    if (fscanf(f, "%lf", &s) != 1)
        s = 0;
    fclose(f);
    if (s > 0) {
        struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        }
    }
}

/* append the chain first..last to the list at head, tail (the caller holds w->mu) */
static void append(job **head, job **tail, job *first, job *last) {
    if (*tail)
        (*tail)->next = first;
    else
        *head = first;
    *tail = last;
}

/* send j->msg on j->sock without blocking; j->sent: the bytes sent, or -errno */
static void send_message(job *j) {
    size_t done = 0;
    while (done < j->msg_len) {
        ssize_t n = send(j->sock, j->msg + done, j->msg_len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (done == 0)
                j->sent = -(long long)(errno ? errno : EIO);
            else
                j->sent = (long long)done;
            return;
        }
        done += (size_t)n;
    }
    j->sent = (long long)done;
}

static void *run(void *arg) {
    Writer *w = (Writer *)arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->q_head && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->q_head && w->stop) {
            pthread_mutex_unlock(&w->mu);
            return NULL;
        }
        job *batch = w->q_head;
        w->q_head = w->q_tail = NULL;
        pthread_mutex_unlock(&w->mu);

        int fds[16];
        int nfds = 0;
        for (job *j = batch; j; j = j->next) {
            if (j->fd == w->broken_fd) {
                j->err = w->broken_err;
                continue;
            }
            size_t done = 0;
            while (done < j->len) {
                ssize_t n = pwrite(j->fd, j->data + done, j->len - done, j->offset + (long long)done);
                if (n < 0) {
                    if (errno == EINTR)
                        continue;
                    j->err = errno ? errno : EIO;
                    w->broken_fd = j->fd;
                    w->broken_err = j->err;
                    break;
                }
                done += (size_t)n;
            }
            if (!j->err) {
                int seen = 0;
                for (int k = 0; k < nfds; k++)
                    if (fds[k] == j->fd)
                        seen = 1;
                if (!seen && nfds < 16)
                    fds[nfds++] = j->fd;
            }
        }
        int errs[16];
        for (int k = 0; k < nfds; k++) {
            int r;
            if (w->stall_file)
                stall(w->stall_file);
            do {
                r = fdatasync(fds[k]);
            } while (r < 0 && errno == EINTR);
            errs[k] = r < 0 ? (errno ? errno : EIO) : 0;
        }
        job *last = NULL;
        int wake = 0;
        for (job *j = batch; j; j = j->next) {
            if (!j->err) {
                for (int k = 0; k < nfds; k++)
                    if (fds[k] == j->fd)
                        j->err = errs[k];
            }
            free(j->data);
            j->data = NULL;
            if (j->sock >= 0) {
                int cancelled = 0;
                pthread_mutex_lock(&w->mu);
                for (int k = 0; k < w->ncancelled; k++) {
                    if (w->cancelled[k] == j->token) {
                        w->cancelled[k] = w->cancelled[--w->ncancelled];
                        cancelled = 1;
                        break;
                    }
                }
                if (j->token > w->reached_token)
                    w->reached_token = j->token;
                pthread_mutex_unlock(&w->mu);
                if (j->err)
                    j->sent = -(long long)j->err;
                else if (cancelled)
                    j->sent = -(long long)ECANCELED;
                else
                    send_message(j);
                close(j->sock);
                j->sock = -1;
            }
            /* (a quiet job always had a message: submit sets quiet only with a socket) */
            if (!j->quiet || j->err || j->sent != (long long)j->msg_len)
                wake = 1;
            free(j->msg);
            j->msg = NULL;
            last = j;
        }
        pthread_mutex_lock(&w->mu);
        append(&w->d_head, &w->d_tail, batch, last);
        if (w->want_wake) {
            wake = 1;
            w->want_wake = 0;
        }
        pthread_mutex_unlock(&w->mu);
        if (wake) {
            uint64_t one = 1;
            ssize_t ignored = write(w->efd, &one, sizeof one);
            (void)ignored;
        }
    }
}

static int Writer_init(Writer *w, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"stall_file", NULL};
    const char *stall_file = NULL;
    if (w->started) {
        PyErr_SetString(PyExc_RuntimeError, "Writer already started");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|z", kwlist, &stall_file))
        return -1;
    if (stall_file) {
        w->stall_file = strdup(stall_file);
        if (!w->stall_file) {
            PyErr_NoMemory();
            return -1;
        }
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->q_head = w->q_tail = w->d_head = w->d_tail = NULL;
    w->stop = 0;
    w->broken_fd = -1;
    w->reached_token = -1;
    w->ncancelled = 0;
    w->want_wake = 0;
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    int r = pthread_create(&w->thread, NULL, run, w);
    if (r) {
        close(w->efd);
        w->efd = -1;
        errno = r;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    w->started = 1;
    return 0;
}

static PyObject *Writer_submit(Writer *w, PyObject *args) {
    int fd, sock = -1, quiet = 0;
    long long offset, token;
    Py_buffer buf, msg = {0};
    if (!PyArg_ParseTuple(args, "iLy*L|iy*p", &fd, &offset, &buf, &token, &sock, &msg, &quiet))
        return NULL;
    if (!w->started || w->stop) {
        PyBuffer_Release(&buf);
        if (msg.obj)
            PyBuffer_Release(&msg);
        PyErr_SetString(PyExc_RuntimeError, "Writer is closed");
        return NULL;
    }
    if (sock >= 0 && !msg.obj) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_TypeError, "a socket needs a message");
        return NULL;
    }
    job *j = calloc(1, sizeof *j);
    char *data = malloc(buf.len ? (size_t)buf.len : 1);
    char *m = sock >= 0 ? malloc(msg.len ? (size_t)msg.len : 1) : NULL;
    if (!j || !data || (sock >= 0 && !m)) {
        free(j);
        free(data);
        free(m);
        PyBuffer_Release(&buf);
        if (msg.obj)
            PyBuffer_Release(&msg);
        return PyErr_NoMemory();
    }
    memcpy(data, buf.buf, (size_t)buf.len);
    j->fd = fd;
    j->offset = offset;
    j->token = token;
    j->len = (size_t)buf.len;
    j->data = data;
    j->sock = sock;
    j->sent = 0;
    j->quiet = sock >= 0 && quiet;
    if (m) {
        memcpy(m, msg.buf, (size_t)msg.len);
        j->msg = m;
        j->msg_len = (size_t)msg.len;
    }
    PyBuffer_Release(&buf);
    if (msg.obj)
        PyBuffer_Release(&msg);
    pthread_mutex_lock(&w->mu);
    append(&w->q_head, &w->q_tail, j, j);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    Py_RETURN_NONE;
}

static PyObject *Writer_take(Writer *w, PyObject *unused) {
    uint64_t n;
    ssize_t ignored = read(w->efd, &n, sizeof n); /* clears the eventfd (nonblocking) */
    (void)ignored;
    pthread_mutex_lock(&w->mu);
    job *done = w->d_head;
    w->d_head = w->d_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    PyObject *out = PyList_New(0);
    while (done) {
        job *next = done->next;
        if (out) {
            PyObject *pair = Py_BuildValue("(LiL)", done->token, done->err, done->sent);
            if (!pair || PyList_Append(out, pair) < 0) {
                Py_XDECREF(pair);
                Py_CLEAR(out);
            } else {
                Py_DECREF(pair);
            }
        }
        free(done);
        done = next;
    }
    return out;
}

static PyObject *Writer_cancel_send(Writer *w, PyObject *arg) {
    long long token = PyLong_AsLongLong(arg);
    if (token == -1 && PyErr_Occurred())
        return NULL;
    int cancelled;
    pthread_mutex_lock(&w->mu);
    cancelled = token > w->reached_token && w->ncancelled < MAX_CANCELLED;
    if (cancelled)
        w->cancelled[w->ncancelled++] = token;
    else
        w->want_wake = 1;
    pthread_mutex_unlock(&w->mu);
    return PyBool_FromLong(cancelled);
}

static PyObject *Writer_fileno(Writer *w, PyObject *unused) {
    return PyLong_FromLong(w->efd);
}

static void stop_thread(Writer *w) {
    if (!w->started)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    Py_BEGIN_ALLOW_THREADS
    pthread_join(w->thread, NULL);
    Py_END_ALLOW_THREADS
    w->started = 0;
}

static PyObject *Writer_close(Writer *w, PyObject *unused) {
    stop_thread(w);
    Py_RETURN_NONE;
}

static void Writer_dealloc(Writer *w) {
    stop_thread(w);
    for (job *j = w->d_head; j;) {
        job *n = j->next;
        free(j->data);
        free(j->msg);
        free(j);
        j = n;
    }
    if (w->efd >= 0)
        close(w->efd);
    free(w->stall_file);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static PyObject *Writer_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    Writer *w = (Writer *)type->tp_alloc(type, 0);
    if (w) {
        w->efd = -1;
        w->stall_file = NULL;
    }
    return (PyObject *)w;
}

static PyMethodDef Writer_methods[] = {
    {"submit", (PyCFunction)Writer_submit, METH_VARARGS,
     "submit(fd, offset, data, token[, sock, message[, quiet]]): pwrite then fdatasync "
     "on the writer thread, then send message on sock (a descriptor the thread closes)"},
    {"take", (PyCFunction)Writer_take, METH_NOARGS,
     "take() -> [(token, errno, sent)] of the jobs finished since the last take"},
    {"cancel_send", (PyCFunction)Writer_cancel_send, METH_O,
     "cancel_send(token) -> True when that job's message will not be sent"},
    {"fileno", (PyCFunction)Writer_fileno, METH_NOARGS,
     "the eventfd that becomes readable when jobs finish"},
    {"close", (PyCFunction)Writer_close, METH_NOARGS,
     "finish the queued jobs, then stop the thread"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "zabby._logio.Writer",
    .tp_basicsize = sizeof(Writer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Writer(stall_file=None): pwrite + fdatasync of log batches on a thread "
              "without the GIL",
    .tp_new = Writer_new,
    .tp_init = (initproc)Writer_init,
    .tp_dealloc = (destructor)Writer_dealloc,
    .tp_methods = Writer_methods,
};

static struct PyModuleDef logio_module = {
    PyModuleDef_HEAD_INIT, "_logio", "The txn log's writer thread (no GIL).", -1, NULL,
};

PyMODINIT_FUNC PyInit__logio(void) {
    if (PyType_Ready(&WriterType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&logio_module);
    if (!m)
        return NULL;
    Py_INCREF(&WriterType);
    if (PyModule_AddObject(m, "Writer", (PyObject *)&WriterType) < 0) {
        Py_DECREF(&WriterType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
