/*
 * A binary front: what `gpuctl install` writes, from a packed gpuctl, as `gpuctl-runtime` and
 * `nvidia-container-runtime-hook` — this launcher's program, then the sh front's own text (serve/fronts.ts writes
 * it), then a trailer that locates that text. Run, it does what the sh text says (runtime.sh, hook.sh; ask.sh
 * through client.c) with no shell and no other process on the way; the text stays the one source of its settings
 * (the preamble's quoted assignments), which doctor and install read as they read a sh front.
 *
 * Its tests are the sh front's: the same cases, the same random argument vectors against gpuctl's own reading of
 * runc's command line, the same serve tests, run against both.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "front.h"

/* The preamble's settings, read from the text. */
struct settings {
  char *version, *config, *had_config, *from_nvidia, *default_config, *markers, *runtimes, *sbin, *s, *t, *protocol;
  char *unsafe; /* the hook's: the variables it drops, separated by spaces */
  char *self;
  char **gpuctl; /* the words of `gpuctl() { exec … "$@"; }` */
  int ngpuctl;
};

/* One sh single-quoted word at *p ('…', with '\'' for a quote); advances *p. NULL if *p is no such word. */
static char *quoted(const char **p, const char *end) {
  const char *q = *p;
  if (q >= end || *q != '\'') return NULL;
  size_t cap = 64, n = 0;
  char *out = malloc(cap);
  if (!out) return NULL;
  q++;
  for (;;) {
    if (q >= end) return free(out), NULL;
    if (*q == '\'') {
      if (end - q >= 4 && !memcmp(q, "'\\''", 4)) {
        q += 4;
        if (n + 1 >= cap && !(out = realloc(out, cap *= 2))) return NULL;
        out[n++] = '\'';
        continue;
      }
      q++;
      break;
    }
    if (n + 1 >= cap && !(out = realloc(out, cap *= 2))) return NULL;
    out[n++] = *q++;
  }
  out[n] = 0;
  *p = q;
  return out;
}

/* The settings from the text: `NAME='value'` lines, then the gpuctl() line. 0 when it holds them. */
static int parse(const char *text, size_t len, struct settings *st) {
  const char *p = text, *end = text + len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    if (!strncmp(p, "gpuctl() { exec ", 16)) {
      const char *q = p + 16;
      char **w = NULL;
      int n = 0;
      char *word;
      while ((word = quoted(&q, end))) {
        if (!(w = realloc(w, sizeof *w * (size_t)(n + 2)))) return -1;
        w[n++] = word;
        if (q < end && *q == ' ') q++;
      }
      if (n == 0 || strncmp(q, "\"$@\"; }", 7)) return -1;
      w[n] = NULL;
      st->gpuctl = w, st->ngpuctl = n;
      return 0;
    }
    const char *eq = memchr(p, '=', (size_t)(eol - p));
    if (eq && eq > p && eq[1] == '\'') {
      char name[32];
      size_t nl = (size_t)(eq - p);
      const char *q = eq + 1;
      char *v = nl < sizeof name ? quoted(&q, end) : NULL;
      if (v) {
        memcpy(name, p, nl), name[nl] = 0;
        struct { const char *k; char **to; } keys[] = {
          {"VERSION", &st->version}, {"SELF", &st->self}, {"CONFIG", &st->config},
          {"HAD_CONFIG", &st->had_config}, {"FROM_NVIDIA", &st->from_nvidia},
          {"DEFAULT_CONFIG", &st->default_config}, {"MARKERS", &st->markers}, {"RUNTIMES", &st->runtimes},
          {"SBIN", &st->sbin}, {"S", &st->s}, {"T", &st->t}, {"PROTOCOL", &st->protocol},
          {"UNSAFE", &st->unsafe},
        };
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
          if (!strcmp(name, keys[i].k)) *keys[i].to = v;
        p = q;
        eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
      }
    }
    p = eol + 1;
  }
  return -1;
}

static struct settings st;

/*
 * Runs gpuctl as the sh front's gpuctl() does: its words (the subcommand last), then the command's own arguments,
 * argv[2..] (argv[1], client.c's name for the subcommand, is the same one).
 */
static int exec_gpuctl(int argc, char **argv) {
  char **av = calloc((size_t)(st.ngpuctl + argc + 1), sizeof *av);
  if (!av) return 1;
  int n = 0;
  for (int i = 0; i < st.ngpuctl; i++) av[n++] = st.gpuctl[i];
  for (int i = 2; i < argc; i++) av[n++] = argv[i];
  av[n] = NULL;
  execv(av[0], av);
  fprintf(stderr, "gpuctl: %s: cannot run it (%s); run gpuctl install again\n", av[0], strerror(errno));
  return 127;
}

/* gpuctl with the front's own arguments (args after the subcommand the gpuctl() line names). */
static int gpuctl(char **args, int nargs) {
  char **av = calloc((size_t)nargs + 3, sizeof *av);
  if (!av) return 1;
  av[0] = "gpuctl", av[1] = "-";
  for (int i = 0; i < nargs; i++) av[2 + i] = args[i];
  return exec_gpuctl(nargs + 2, av);
}

static int executable(const char *p) {
  struct stat s;
  return access(p, X_OK) == 0 && stat(p, &s) == 0 && !S_ISDIR(s.st_mode);
}

/* runtime.sh's runtime(): the configured names, by path, or on PATH then the sbin directories. */
static char *find_runtime(void) {
  static char found[4096];
  const char *path = getenv("PATH");
  for (const char *n = st.runtimes; n && *n;) {
    const char *e = strchr(n, '\n');
    size_t nl = e ? (size_t)(e - n) : strlen(n);
    char name[1024];
    if (nl > 0 && nl < sizeof name) {
      memcpy(name, n, nl), name[nl] = 0;
      if (name[0] == '/') {
        if (executable(name)) return strcpy(found, name);
      } else {
        char dirs[8192];
        snprintf(dirs, sizeof dirs, "%s:%s", path ? path : "", st.sbin ? st.sbin : "");
        for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
          if (d[0] != '/') continue;
          snprintf(found, sizeof found, "%s/%s", d, name);
          if (executable(found)) return found;
        }
      }
    }
    n += nl + (e ? 1 : 0);
  }
  return NULL;
}

/* runtime.sh's fresh(): the configuration is the one this front was written from, unchanged since. */
static int fresh(void) {
  const char *env = getenv("GPUCTL_CONFIG");
  struct stat c, self;
  if (!strcmp(st.from_nvidia ? st.from_nvidia : "", "1")) {
    if ((env && *env) || stat(st.default_config, &c) == 0) return 0;
  } else {
    const char *want = env && *env ? env : st.default_config;
    if (!want || !st.config || strcmp(want, st.config)) return 0;
  }
  int exists = st.config && stat(st.config, &c) == 0;
  if (strcmp(st.had_config ? st.had_config : "", "1")) return !exists;
  if (!exists || stat(st.self, &self) != 0) return 0;
  return c.st_mtim.tv_sec == self.st_mtim.tv_sec && c.st_mtim.tv_nsec == self.st_mtim.tv_nsec;
}

/*
 * runtime.sh's scan of runc's arguments: the command, how many global options precede it, the bundle and the
 * container id, read as the shim reads them (a differential test holds the fronts to oci/runc_args.ts).
 */
struct scan {
  const char *cmd, *bundle, *id;
  int gn;
};

static const char *undashed(const char *a) {
  if (*a == '-') a++;
  if (*a == '-') a++;
  return a;
}

/* sh's `?*=*`: an `=` after the first character. */
static int assigns(const char *n) {
  return n[0] != 0 && strchr(n + 1, '=') != NULL;
}

static int is(const char *n, const char *const *names) {
  for (; *names; names++)
    if (!strcmp(n, *names)) return 1;
  return 0;
}

static struct scan scan_args(char **args, int nargs) {
  struct scan r = {"", "", "", 0};
  enum { GLOBAL, NEXT, ARGS } phase = GLOBAL;
  enum { NONE, SKIP, BUNDLE, ID } want = NONE;
  static const char *const globals[] = {"root", "log", "log-format", "criu", "rootless", NULL};
  static const char *const skips[] = {"console-socket", "pid-file", "preserve-fds", "pidfd-socket", NULL};
  for (int i = 0; i < nargs; i++) {
    const char *a = args[i];
    if (want != NONE) {
      if (want == BUNDLE) r.bundle = a;
      if (want == ID) {
        r.id = a;
        break;
      }
      want = NONE;
      continue;
    }
    if (phase == GLOBAL) {
      if (!strcmp(a, "--")) phase = NEXT;
      else if (a[0] == '-' && a[1] != 0) {
        const char *n = undashed(a);
        if (!assigns(n) && is(n, globals)) want = SKIP;
      } else r.cmd = a, phase = ARGS, r.gn = i;
    } else if (phase == NEXT) {
      r.cmd = a, phase = ARGS, r.gn = i;
    } else if (!strcmp(a, "--")) {
      if (*r.id) break;
      want = ID;
    } else if (a[0] == '-' && a[1] != 0) {
      const char *n = undashed(a);
      if (!strncmp(n, "bundle=", 7) || !strncmp(n, "b=", 2)) r.bundle = strchr(n, '=') + 1;
      else if (assigns(n)) continue;
      else if (!strcmp(n, "bundle") || !strcmp(n, "b")) want = BUNDLE;
      else if (is(n, skips)) want = SKIP;
    } else if (!*r.id) r.id = a;
  }
  return r;
}

static struct client serve_settings(void) {
  return client_settings(st.s ? st.s : "", st.t ? st.t : "0", st.protocol ? st.protocol : "");
}

/* runtime.sh. */
static int runtime_front(char *argv0, char **args, int nargs) {
  const char *loop = getenv("GPUCTL_RUNTIME_EXEC");
  if ((loop && *loop) || (nargs > 0 && !strcmp(args[0], "configure"))) return gpuctl(args, nargs);
  struct scan s = scan_args(args, nargs);
  char *rt = find_runtime();
  if (nargs == 1 && (!strcmp(args[0], "--version") || !strcmp(args[0], "-v"))) {
    printf("gpuctl-runtime version %s (gpuctl)\n\n", st.version ? st.version : "");
    fflush(stdout);
    return rt ? client_exec_runtime(rt, args, nargs) : 0;
  }
  if (!rt) return gpuctl(args, nargs);
  if (strcmp(s.cmd, "create") && strcmp(s.cmd, "run")) return client_exec_runtime(rt, args, nargs);
  struct client c = serve_settings();
  char gn[16];
  snprintf(gn, sizeof gn, "%d", s.gn);
  char *o[] = {rt, fresh() ? "1" : "0", gn, (char *)s.id, (char *)s.bundle, (char *)s.cmd,
               st.markers ? st.markers : ""};
  return client_runtime(exec_gpuctl, argv0, &c, o, args, nargs);
}

/* hook.sh. */
static int hook_front(char *argv0, char **args, int nargs) {
  /* hook.sh's UNSAFE: the variables that change how programs load and run, dropped so that nothing this runs
   * sees them (a front without the list is not one install wrote whole). */
  if (!st.unsafe || !*st.unsafe) {
    fprintf(stderr, "gpuctl: %s: not a front gpuctl install wrote whole; run gpuctl install again\n", argv0);
    return 1;
  }
  for (char *save = NULL, *v = strtok_r(st.unsafe, " ", &save); v; v = strtok_r(NULL, " ", &save)) unsetenv(v);
  const char *stage = nargs > 0 ? args[0] : "";
  if (strcmp(stage, "prestart") && strcmp(stage, "createRuntime") && strcmp(stage, "container-edits"))
    return gpuctl(args, nargs);
  /* container-edits runs in the container's mount namespace: the server enters it through this process's pid as
   * the host numbers it, read through the host's /proc, which this namespace still has. */
  char me[32] = "";
  if (!strcmp(stage, "container-edits")) {
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, me, sizeof me - 1) : -1;
    if (fd >= 0) close(fd);
    me[n > 0 ? n : 0] = 0;
    me[strspn(me, "0123456789")] = 0;
  }
  struct client c = serve_settings();
  return client_hook(exec_gpuctl, argv0, &c, me, args, nargs);
}

int front_main(int argc, char **argv, const char *text, size_t len) {
  if (parse(text, len, &st) != 0 || st.ngpuctl < 2) {
    fprintf(stderr, "gpuctl: %s: not a front gpuctl install wrote whole; run gpuctl install again\n", argv[0]);
    return 1;
  }
  const char *kind = st.gpuctl[st.ngpuctl - 1];
  if (!strcmp(kind, "runtime")) return runtime_front(argv[0], argv + 1, argc - 1);
  if (!strcmp(kind, "hook")) return hook_front(argv[0], argv + 1, argc - 1);
  fprintf(stderr, "gpuctl: %s: a front of an unknown kind (%s); run gpuctl install again\n", argv[0], kind);
  return 1;
}
