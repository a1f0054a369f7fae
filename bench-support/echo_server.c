/*
 * Minimal echo servers over raw syscalls: the yardstick `socklab bench --c-baseline` and
 * `socklab bench --compare` measure socklab's server models against.
 *
 *   echo_server MODEL PORT      MODEL: iterative | fork | thread | epoll
 *
 * Listens at 127.0.0.1:PORT (backlog 1024) and sends back every byte it reads until the client
 * closes its side, then closes: the same work as `socklab server --mode echo`, with nothing
 * else (no logging, no output, no idle timeout, no limit on connections). Each model is the
 * textbook one, as in Stevens, UNIX Network Programming vol. 1, ch. 5 and ch. 30:
 *
 * - iterative: accept, echo to EOF, close, next;
 * - fork: a child per connection; SIGCHLD reaps with waitpid(WNOHANG) (SA_RESTART);
 * - thread: a detached pthread per connection;
 * - epoll: one thread, non-blocking sockets, level-triggered; one read per ready socket, the
 *   echo written at once, EPOLLOUT only when the send buffer is full.
 *
 * SIGINT and SIGTERM keep their default action (the process ends); SIGPIPE is ignored so a
 * write to a reset connection fails with EPIPE and only that connection is closed.
 *
 * socklab embeds this file and builds it with `cc -O2 -pthread` at bench time.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define BUF (64 * 1024)
#define MAX_EVENTS 256

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* Writes all of buf; -1 on error. */
static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Blocking echo until EOF or error; closes fd. */
static void echo_blocking(int fd) {
    static __thread char buf[BUF];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (write_all(fd, buf, (size_t)n) < 0)
            break;
    }
    close(fd);
}

static int accept_one(int lfd) {
    for (;;) {
        int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0)
            return c;
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
            continue;
        return -1;
    }
}

/* accept_one for the fork and thread models: when descriptors or memory run out, waits 1 ms
 * for a connection to finish and tries again. */
static int accept_waiting(int lfd) {
    for (;;) {
        int c = accept_one(lfd);
        if (c >= 0)
            return c;
        if (errno != EMFILE && errno != ENFILE && errno != ENOMEM && errno != ENOBUFS)
            die("accept4");
        usleep(1000);
    }
}

static void run_iterative(int lfd) {
    for (;;) {
        int c = accept_one(lfd);
        if (c < 0)
            die("accept4");
        echo_blocking(c);
    }
}

static void on_sigchld(int sig) {
    (void)sig;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static void run_fork(int lfd) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigchld;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGCHLD, &sa, NULL) < 0)
        die("sigaction");
    for (;;) {
        int c = accept_waiting(lfd);
        pid_t pid = fork();
        if (pid == 0) {
            close(lfd);
            echo_blocking(c);
            _exit(0);
        }
        close(c);
    }
}

static void *thread_main(void *arg) {
    echo_blocking((int)(intptr_t)arg);
    return NULL;
}

static void run_thread(int lfd) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        int c = accept_waiting(lfd);
        pthread_t t;
        if (pthread_create(&t, &attr, thread_main, (void *)(intptr_t)c) != 0)
            close(c);
    }
}

/* One epoll connection: what is still to be written back. */
struct conn {
    char buf[BUF];
    size_t off, len;
};

static struct conn **conns;
static int nconns;

static struct conn *conn_for(int fd) {
    if (fd >= nconns) {
        int n = nconns ? nconns : 1024;
        while (n <= fd)
            n *= 2;
        conns = realloc(conns, (size_t)n * sizeof *conns);
        if (!conns)
            die("realloc");
        memset(conns + nconns, 0, (size_t)(n - nconns) * sizeof *conns);
        nconns = n;
    }
    if (!conns[fd]) {
        conns[fd] = malloc(sizeof(struct conn));
        if (!conns[fd])
            die("malloc");
    }
    conns[fd]->off = conns[fd]->len = 0;
    return conns[fd];
}

static void epoll_close(int fd) {
    close(fd); /* its last descriptor: it leaves the interest list too */
}

/* Writes pending output; 1 if all written, 0 if the send buffer is full, -1 on error. */
static int flush_pending(int fd, struct conn *c) {
    while (c->off < c->len) {
        ssize_t n = write(fd, c->buf + c->off, c->len - c->off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return -1;
        }
        c->off += (size_t)n;
    }
    c->off = c->len = 0;
    return 1;
}

static void run_epoll(int lfd) {
    /* One readiness report may stand for several queued connections, or for none left. */
    if (fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK) < 0)
        die("fcntl");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
        die("epoll_ctl");
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                for (int k = 0; k < 64; k++) {
                    int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                    if (c < 0)
                        break;
                    conn_for(c);
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) < 0)
                        epoll_close(c);
                }
                continue;
            }
            struct conn *c = conns[fd];
            if (c->len == 0) {
                ssize_t r = read(fd, c->buf, BUF);
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                if (r <= 0) {
                    epoll_close(fd);
                    continue;
                }
                c->off = 0;
                c->len = (size_t)r;
                int w = flush_pending(fd, c);
                if (w < 0) {
                    epoll_close(fd);
                } else if (w == 0) {
                    struct epoll_event oev = {.events = EPOLLOUT, .data.fd = fd};
                    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &oev) < 0)
                        epoll_close(fd);
                }
            } else {
                int w = flush_pending(fd, c);
                if (w < 0) {
                    epoll_close(fd);
                } else if (w == 1) {
                    struct epoll_event iev = {.events = EPOLLIN, .data.fd = fd};
                    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &iev) < 0)
                        epoll_close(fd);
                }
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s iterative|fork|thread|epoll PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int port = atoi(argv[2]);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0)
        die("bind");
    if (listen(lfd, 1024) < 0)
        die("listen");
    if (!strcmp(argv[1], "iterative"))
        run_iterative(lfd);
    else if (!strcmp(argv[1], "fork"))
        run_fork(lfd);
    else if (!strcmp(argv[1], "thread"))
        run_thread(lfd);
    else if (!strcmp(argv[1], "epoll"))
        run_epoll(lfd);
    fprintf(stderr, "%s: no model '%s'\n", argv[0], argv[1]);
    return 2;
}
