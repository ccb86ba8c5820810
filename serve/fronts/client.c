/*
 * The serve client in C: what serve/fronts/ask.sh does with mkfifo, head, a background sleep and subshells, done
 * in the process the front execs, with no other process. It is part of a packed gpuctl's launcher
 * (tools/pack/launcher.c), which calls it when its first argument is `--serve-client`; `gpuctl install` names that
 * executable in the fronts it writes (CLIENT), and a front without one (gpuctl run by Deno on a module, or
 * `deno compile`'s output) speaks the protocol in sh as before. Same protocol, same files, same fail-closed rules
 * (serve/server.ts is the other side):
 *
 *   gpuctl --serve-client hook S T PROTOCOL CALLER -- HOOK-ARGS...
 *   gpuctl --serve-client runtime S T PROTOCOL RUNTIME FRESH GN ID BUNDLE CMD MARKERS -- RUNC-ARGS...
 *
 * S: the serve directory (empty for none); T: seconds to wait for an answer; CALLER: the hook front's host pid for
 * container-edits (or empty); RUNTIME: the low-level runtime by path; FRESH: 1 when the front's configuration is
 * unchanged; GN: how many of runc's arguments are global options; ID, BUNDLE, CMD: as the front found them;
 * MARKERS: the request markers, one per line.
 *
 * Where the sh front runs gpuctl, this runs the launcher itself (`launch`) with the same arguments. Every
 * descriptor it opens is close-on-exec and numbered above those an engine hands runc (--preserve-fds), and a
 * hook's state, once read, is given back on stdin to a gpuctl that runs after all.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

/* config.json's bound in gpuctl (oci/spec.ts MAX_SPEC_BYTES), and one byte more so that the server sees it over. */
#define MAX_STATE ((size_t)16 << 20)
/* A config.json larger than this is handed to gpuctl unread (it refuses it by name). */
#define MAX_SCAN ((size_t)64 << 20)
#define MAX_ANSWER 65536

static int64_t boot_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads at most max bytes of fd into a growing buffer; the count in *len (max+1 means "more"). */
static char *read_bounded(int fd, size_t max, size_t *len) {
  size_t cap = 65536, n = 0;
  char *b = malloc(cap);
  if (!b) return NULL;
  for (;;) {
    if (n == cap) {
      size_t nc = cap * 2 > max + 1 ? max + 1 : cap * 2;
      if (nc == cap) break;
      char *g = realloc(b, nc);
      if (!g) return free(b), NULL;
      b = g, cap = nc;
    }
    ssize_t r = read(fd, b + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return free(b), NULL;
    if (r == 0) break;
    n += (size_t)r;
  }
  *len = n;
  return b;
}

/* The process at pid lives and started at start (field 22 of /proc/PID/stat): not a pid since given to another. */
static int alive(long pid, const char *start) {
  char p[64], st[1024];
  snprintf(p, sizeof p, "/proc/%ld/stat", pid);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, st, sizeof st - 1);
  close(fd);
  if (n <= 0) return 0;
  st[n] = 0;
  char *s = strrchr(st, ')');
  if (!s) return 0;
  s++;
  char *save = NULL, *tok = strtok_r(s, " \n", &save);
  for (int i = 0; tok && i < 19; i++) tok = strtok_r(NULL, " \n", &save);
  return tok && strcmp(tok, start) == 0;
}

/*
 * Whether a server listens in c->dir: the directory (and the one it is in) this user's and no link, its request
 * FIFO there, and its pid file naming a live server. Opens the directory for every later file.
 */
static int listening(struct client *c) {
  const char *s = c->dir;
  if (!*s) return 0;
  uid_t me = geteuid();
  struct stat st, pst, fst;
  if (lstat(s, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != me) return 0;
  const char *slash = strrchr(s, '/');
  if (!slash || slash == s) return 0;
  char parent[PATH_MAX];
  snprintf(parent, sizeof parent, "%.*s", (int)(slash - s), s);
  if (lstat(parent, &pst) != 0 || S_ISLNK(pst.st_mode) || pst.st_uid != me) return 0;
  int d = open(s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (d < 0) return 0;
  if (fstat(d, &fst) != 0 || fst.st_ino != st.st_ino || fst.st_dev != st.st_dev) return close(d), 0;
  if (fstatat(d, "requests", &fst, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISFIFO(fst.st_mode)) return close(d), 0;
  int pf = openat(d, "pid", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  char buf[128];
  ssize_t n = pf < 0 ? -1 : read(pf, buf, sizeof buf - 1);
  if (pf >= 0) close(pf);
  if (n <= 0) return close(d), 0;
  buf[n] = 0;
  char *end;
  long pid = strtol(buf, &end, 10);
  char start[64];
  if (pid <= 0 || *end != ' ' || sscanf(end + 1, "%63[0-9]", start) != 1 || !alive(pid, start)) return close(d), 0;
  c->dirfd = d;
  c->server = pid;
  snprintf(c->reply, sizeof c->reply, "%ld.reply", (long)getpid());
  return 1;
}

static int write_all(int fd, const char *b, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, b, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    b += w, n -= (size_t)w;
  }
  return 0;
}

/* A request file, created new (a name that exists, a planted link, is never written through). */
static int request_file(struct client *c, const char *name, const char *const *fields, int nf, const char *data,
                        size_t len) {
  int fd = openat(c->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  int bad = 0;
  for (int i = 0; i < nf && !bad; i++) bad = write_all(fd, fields[i], strlen(fields[i]) + 1);
  if (!bad && data) bad = write_all(fd, data, len);
  return close(fd) != 0 || bad ? -1 : 0;
}

/* A request's files, and the reply FIFO. */
static void unlink_request(struct client *c, const char *path) {
  char name[64];
  snprintf(name, sizeof name, "%s.argv", path);
  unlinkat(c->dirfd, name, 0);
  snprintf(name, sizeof name, "%s.stdin", path);
  unlinkat(c->dirfd, name, 0);
  unlinkat(c->dirfd, c->reply, 0);
}

/*
 * Hands VERB with its arguments (and, for hook, the state) to the server; its answer line in answer. 1, having
 * done nothing, when it cannot be asked; 2, having said why, when it did not answer in time (it may still act).
 */
static int ask(struct client *c, const char *verb, char **args, int nargs, const char *state, size_t slen,
               char *answer) {
  char name[64], path[64];
  struct stat st;
  if (mkfifoat(c->dirfd, c->reply, 0600) != 0 &&
      (errno != EEXIST || fstatat(c->dirfd, c->reply, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISFIFO(st.st_mode)))
    return 1;
  const char *cfg = getenv("GPUCTL_CONFIG");
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) return 1;
  const char **fields = calloc((size_t)nargs + 3, sizeof *fields);
  if (!fields) return 1;
  fields[0] = c->protocol, fields[1] = cfg ? cfg : "", fields[2] = cwd;
  for (int i = 0; i < nargs; i++) fields[3 + i] = args[i];
  snprintf(path, sizeof path, "%ld.%s", (long)getpid(), verb);
  snprintf(name, sizeof name, "%s.argv", path);
  int bad = request_file(c, name, fields, nargs + 3, NULL, 0);
  free(fields);
  if (!bad && state) {
    snprintf(name, sizeof name, "%s.stdin", path);
    bad = request_file(c, name, NULL, 0, state, slen);
  }
  if (bad) {
    unlink_request(c, path); /* nothing of a request not sent is left behind */
    return 1;
  }
  /* Read and write: the server finds a reader (its sign that this caller waits), and no read ever ends early. */
  int r = openat(c->dirfd, c->reply, O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  int q = openat(c->dirfd, "requests", O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (r < 0 || q < 0) {
    if (r >= 0) close(r);
    if (q >= 0) close(q);
    unlink_request(c, path);
    return 1;
  }
  int64_t deadline = boot_ms() + c->timeout * 1000;
  char line[PATH_MAX + 64];
  int n = snprintf(line, sizeof line, "%s/%s %lld\n", c->dir, path, (long long)(deadline / 1000));
  size_t got = 0;
  answer[0] = 0;
  for (;;) {
    int64_t left = deadline - boot_ms();
    if (left <= 0) break;
    if (q >= 0) {
      ssize_t w = write(q, line, (size_t)n);
      if (w == n) {
        close(q);
        q = -1; /* sent */
        continue;
      }
      if (w >= 0 || (errno != EAGAIN && errno != EINTR)) break;
      /* A full FIFO (a stopped server): wait for room, within the same deadline. */
      struct pollfd p = {q, POLLOUT, 0};
      poll(&p, 1, (int)(left > 1000 ? 1000 : left));
      continue;
    }
    struct pollfd p = {r, POLLIN, 0};
    if (poll(&p, 1, (int)(left > 1000 ? 1000 : left)) <= 0) continue;
    ssize_t k = read(r, answer + got, MAX_ANSWER - 1 - got);
    if (k > 0) got += (size_t)k;
    answer[got] = 0;
    if (memchr(answer, '\n', got) || got >= MAX_ANSWER - 1) break;
  }
  close(r);
  if (q >= 0) close(q);
  char *nl = memchr(answer, '\n', got);
  if (nl) {
    *nl = 0;
    return 0;
  }
  /* Given up: its files go (a server that comes back drops the request, being past its deadline). */
  unlink_request(c, path);
  fprintf(stderr,
          "gpuctl: gpuctl serve (pid %ld, in %s) did not answer in %lds and may still act, so this stops here: restart "
          "it, or stop it to run gpuctl per container\n",
          c->server, c->dir, c->timeout);
  return 2;
}

/* An answer line: its code, word and message. */
static void answered(char *a, int *code, char **word, char **msg) {
  *code = atoi(a);
  char *w = strchr(a, ' ');
  *word = w ? w + 1 : (char *)"";
  char *m = w ? strchr(w + 1, ' ') : NULL;
  if (m) *m = 0;
  *msg = m ? m + 1 : (char *)"";
}

static int fail(int code, const char *msg) {
  fprintf(stderr, "gpuctl: %s\n", msg);
  return code;
}

/* Runs gpuctl VERB ARGS: the launcher itself, with the front's argv[0]. */
static int run_gpuctl(launch_fn *launch, char *argv0, const char *verb, char **args, int nargs) {
  char **av = calloc((size_t)nargs + 3, sizeof *av);
  if (!av) return fail(1, "out of memory");
  av[0] = argv0, av[1] = (char *)verb;
  for (int i = 0; i < nargs; i++) av[2 + i] = args[i];
  return launch(nargs + 2, av);
}

/* The runtime's argv: RUNTIME, then args. */
static char **runtime_argv(const char *rt, char **args, int nargs) {
  char **av = calloc((size_t)nargs + 2, sizeof *av);
  if (!av) exit(fail(1, "out of memory"));
  av[0] = (char *)rt;
  for (int i = 0; i < nargs; i++) av[1 + i] = args[i];
  return av;
}

int client_exec_runtime(const char *rt, char **args, int nargs) {
  setenv("GPUCTL_RUNTIME_EXEC", rt, 1);
  execv(rt, runtime_argv(rt, args, nargs));
  fprintf(stderr, "gpuctl: %s: cannot run it (%s)\n", rt, strerror(errno));
  return errno == ENOENT ? 127 : 126;
}

/* Runs the runtime with args and waits: its exit status, as sh reports one (128 + a signal's number). */
static int run_runtime(const char *rt, char **argv, int quiet) {
  pid_t p = fork();
  if (p < 0) return fail(1, "cannot start the runtime (fork failed)");
  if (p == 0) {
    setenv("GPUCTL_RUNTIME_EXEC", rt, 1);
    if (quiet) {
      int n = open("/dev/null", O_RDWR);
      if (n >= 0) dup2(n, 1), dup2(n, 2);
    }
    execv(rt, argv);
    _exit(errno == ENOENT ? 127 : 126);
  }
  int st;
  while (waitpid(p, &st, 0) < 0)
    if (errno != EINTR) return 1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* config.json mentions a request marker, holds a JSON escape, or cannot be read. */
static int mentions(const char *bundle, const char *markers) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/config.json", *bundle ? bundle : ".");
  int fd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return 1;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > MAX_SCAN) return close(fd), 1;
  size_t len;
  char *b = read_bounded(fd, MAX_SCAN, &len);
  close(fd);
  if (!b || len > MAX_SCAN) return free(b), 1;
  int found = 0;
  for (const char *m = markers; *m && !found;) {
    const char *e = strchr(m, '\n');
    size_t ml = e ? (size_t)(e - m) : strlen(m);
    if (ml > 0 && memmem(b, len, m, ml)) found = 1;
    m += ml + (e ? 1 : 0);
  }
  free(b);
  return found;
}

/* The state read from stdin given back on stdin (a memory file), for a gpuctl that runs after all. */
static void restore_stdin(const char *state, size_t len) {
  int fd = memfd_create("state", MFD_CLOEXEC);
  if (fd < 0 || write_all(fd, state, len) != 0 || lseek(fd, 0, SEEK_SET) != 0 || dup2(fd, 0) != 0)
    exit(fail(1, "cannot hand the container's state to gpuctl (memfd_create failed)"));
  close(fd);
}

int client_hook(launch_fn *launch, char *argv0, struct client *c, const char *caller, char **args, int nargs) {
  if (!listening(c)) return run_gpuctl(launch, argv0, "hook", args, nargs);
  size_t len;
  char *state = read_bounded(0, MAX_STATE + 1, &len);
  if (!state) return fail(1, "cannot read the container's state from stdin");
  char callerArg[64];
  char **a = calloc((size_t)nargs + 1, sizeof *a);
  if (!a) return fail(1, "out of memory");
  int n = 0;
  if (*caller) {
    snprintf(callerArg, sizeof callerArg, "--caller=%s", caller);
    a[n++] = callerArg;
  }
  for (int i = 0; i < nargs; i++) a[n++] = args[i];
  static char answer[MAX_ANSWER];
  int s = ask(c, "hook", a, n, state, len, answer);
  if (s == 2) return 1;
  int code = 0;
  char *word = "direct", *msg = "";
  if (s == 0) answered(answer, &code, &word, &msg);
  if (s == 0 && strcmp(word, "ok") == 0) return 0;
  if (s == 1 || strcmp(word, "direct") == 0) {
    restore_stdin(state, len);
    return run_gpuctl(launch, argv0, "hook", args, nargs);
  }
  return fail(code, msg);
}

int client_runtime(launch_fn *launch, char *argv0, struct client *c, char **o, char **args, int nargs) {
  const char *rt = o[0], *fresh = o[1], *id = o[3], *bundle = o[4], *cmd = o[5], *markers = o[6];
  int gn = atoi(o[2]);
  if (gn < 0 || gn > nargs) gn = 0;
  if (strcmp(fresh, "1") == 0 && !mentions(bundle, markers)) return client_exec_runtime(rt, args, nargs);
  static char answer[MAX_ANSWER];
  int s = 1;
  if (strcmp(cmd, "create") == 0 && listening(c)) s = ask(c, "runtime", args, nargs, NULL, 0, answer);
  if (s == 2) return 1;
  if (s == 1) return run_gpuctl(launch, argv0, "runtime", args, nargs);
  int code;
  char *word, *msg;
  answered(answer, &code, &word, &msg);
  if (strcmp(word, "pass") == 0) return client_exec_runtime(rt, args, nargs);
  if (strcmp(word, "direct") == 0) return run_gpuctl(launch, argv0, "runtime", args, nargs);
  if (strcmp(word, "view") != 0) return fail(code, msg);
  /* gpuctl serve has edited config.json and written the rootfs's files; the view comes once runc has created it.
   * The view request's arguments are the runtime's argv: its path, then runc's arguments. */
  char **rargv = runtime_argv(rt, args, nargs);
  int st = run_runtime(rt, rargv, 0);
  if (st != 0) return st;
  /* The server again, as it is now: one that stopped meanwhile cannot make the view. */
  close(c->dirfd);
  s = listening(c) ? ask(c, "view", rargv, nargs + 1, NULL, 0, answer) : 1;
  if (s == 0) {
    answered(answer, &code, &word, &msg);
    if (strcmp(word, "ok") == 0) return 0;
    return fail(code, msg);
  }
  /* No view: the container must not run without it. runc's global options, then delete --force ID. */
  char **d = calloc((size_t)gn + 5, sizeof *d);
  if (!d) return fail(1, "out of memory");
  d[0] = (char *)rt;
  for (int i = 0; i < gn; i++) d[1 + i] = args[i];
  d[gn + 1] = "delete", d[gn + 2] = "--force", d[gn + 3] = (char *)id;
  run_runtime(rt, d, 1);
  if (s == 1) {
    fprintf(stderr,
            "gpuctl: gpuctl serve stopped before container %s had its /proc/driver/nvidia view; it was deleted\n", id);
  }
  return 1;
}

struct client client_settings(const char *dir, const char *timeout, const char *protocol) {
  char *end;
  struct client c = {dir, protocol, strtol(timeout, &end, 10), -1, 0, ""};
  if (*end || c.timeout < 0) c.timeout = 0;
  return c;
}

int serve_client(int argc, char **argv, launch_fn *launch) {
  /* argv: gpuctl --serve-client VERB S T PROTOCOL OPTIONS... -- ARGS... */
  int dash = 0;
  for (int i = 2; i < argc; i++)
    if (strcmp(argv[i], "--") == 0) {
      dash = i;
      break;
    }
  int nopt = dash - 6;
  const char *verb = argc > 2 ? argv[2] : "";
  int hookv = strcmp(verb, "hook") == 0, rtv = strcmp(verb, "runtime") == 0;
  if (!dash || (!(hookv && nopt == 1) && !(rtv && nopt == 7)))
    return fail(2, "--serve-client: the fronts' own command line, not for use by hand (see gpuctl install)");
  struct client c = client_settings(argv[3], argv[4], argv[5]);
  char **args = argv + dash + 1;
  int nargs = argc - dash - 1;
  if (hookv) return client_hook(launch, argv[0], &c, argv[6], args, nargs);
  return client_runtime(launch, argv[0], &c, argv + 6, args, nargs);
}
