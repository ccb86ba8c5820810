/*
 * gpuctl's launcher: the head of a packed `dist/gpuctl` (tools/dist.ts), the single executable built where
 * Deno's `denort` is not at hand. The file is this program, then the payload — the pinned Deno runtime and
 * gpuctl's bundle — then a trailer that locates them and holds the payload's SHA-256.
 *
 * On its first run the launcher unpacks the payload, checking the SHA-256 while it copies, into a directory
 * only its owner can write, and marks it complete; every later run only stats that mark and execs Deno on the
 * bundle. So it costs one exec after the first run, and nothing is ever run from a directory another user could
 * change: every directory on the way is owned by root or the caller and writable by no one else (or sticky).
 * Where `gpuctl install` put this file (its directory holds install's mark), it unpacks beside it, and goes
 * with it; anywhere else (a download) into /var/lib/gpuctl/runtime (root) or ~/.cache/gpuctl/runtime, by
 * the payload's digest, which the installed copy of the same file shares. `GPUCTL_RUNTIME_DIR` names another.
 *
 * Deno runs with argv[0] as this program was called (gpuctl dispatches on it), with no configuration file
 * discovery (a deno.json in the working directory, an engine's bundle directory, is not gpuctl's), with the V8
 * options of a short-lived gpuctl unless it is `gpuctl serve` (tools/pack/build.ts), and with DENO_DIR in the
 * unpacked directory (its code cache). Variables that would change how Deno itself starts
 * (DENO_*, NODE_OPTIONS) are dropped; GPUCTL_SELF names this file for gpuctl (which removes it and DENO_DIR
 * from its environment before anything else).
 *
 * It is also the fronts' serve client (serve/fronts/client.c: `--serve-client`, for the sh fronts) and, with a
 * front's text after it instead of the payload, a binary front (serve/fronts/front.c).
 *
 * Static, so the dynamic loader's variables never apply to it. Written from the public SHA-256 standard
 * (FIPS 180-4) and the Linux man pages; no code of anyone else's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "../../serve/fronts/client.h"
#include "../../serve/fronts/front.h"

/* Deno's --v8-flags for a short-lived gpuctl: given by the build (tools/pack/build.ts, V8_FLAGS). */
#ifndef GPUCTL_V8_FLAGS
#error "build with tools/pack/build.ts's launcherArgs, which defines GPUCTL_V8_FLAGS"
#endif

#define TRAILER_SIZE 256
#define MAGIC "GPUCTL-PACK-1"
#define END_MAGIC "GPUCTLPK"

struct trailer {
  char magic[16];
  uint64_t deno_off, deno_len, js_off, js_len;
  char sha256[65]; /* hex of SHA-256(deno bytes || bundle bytes), NUL-terminated */
  char version[64];
  char pad[TRAILER_SIZE - 16 - 32 - 65 - 64 - 8];
  char end[8];
};
_Static_assert(sizeof(struct trailer) == TRAILER_SIZE, "trailer size");

static const char *self_name = "gpuctl";

static void die(const char *what, const char *why) {
  fprintf(stderr, "gpuctl: %s: %s\n", what, why);
  exit(1);
}

static void die_errno(const char *what, const char *doing) {
  char why[512];
  snprintf(why, sizeof why, "%s (%s)", doing, strerror(errno));
  die(what, why);
}

/* ---------- SHA-256 (FIPS 180-4) ---------- */
struct sha256 {
  uint32_t h[8];
  uint64_t len;
  unsigned char buf[64];
  size_t n;
};

static const uint32_t K[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(struct sha256 *s, const unsigned char *p) {
  uint32_t w[64], a, b, c, d, e, f, g, h;
  for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
  }
  s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d, s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha_init(struct sha256 *s) {
  static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, H0, sizeof H0);
  s->len = 0, s->n = 0;
}

static void sha_update(struct sha256 *s, const unsigned char *p, size_t len) {
  s->len += len;
  if (s->n) {
    size_t take = 64 - s->n < len ? 64 - s->n : len;
    memcpy(s->buf + s->n, p, take);
    s->n += take, p += take, len -= take;
    if (s->n < 64) return;
    sha_block(s, s->buf);
    s->n = 0;
  }
  for (; len >= 64; p += 64, len -= 64) sha_block(s, p);
  memcpy(s->buf, p, len);
  s->n = len;
}

static void sha_hex(struct sha256 *s, char out[65]) {
  uint64_t bits = s->len * 8;
  unsigned char pad = 0x80, zero = 0, lenb[8];
  sha_update(s, &pad, 1);
  while (s->n != 56) sha_update(s, &zero, 1);
  for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(bits >> (56 - 8 * i));
  sha_update(s, lenb, 8);
  for (int i = 0; i < 8; i++) sprintf(out + 8 * i, "%08x", s->h[i]);
  out[64] = 0;
}

/* ---------- where to unpack ---------- */

/* Every directory from `dir` up to / is owned by root or us and writable by no one else unless sticky. */
static int secure_path(const char *dir, char *why, size_t cap) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s", dir);
  uid_t me = geteuid();
  for (;;) {
    struct stat st;
    if (lstat(p, &st) != 0) {
      snprintf(why, cap, "%s: %s", p, strerror(errno));
      return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
      snprintf(why, cap, "%s is not a directory", p);
      return 0;
    }
    if (st.st_uid != 0 && st.st_uid != me) {
      snprintf(why, cap, "%s is owned by uid %u", p, (unsigned)st.st_uid);
      return 0;
    }
    if ((st.st_mode & 022) && !(st.st_mode & S_ISVTX)) {
      snprintf(why, cap, "%s is writable by others", p);
      return 0;
    }
    char *slash = strrchr(p, '/');
    if (slash == NULL || slash == p) {
      if (strcmp(p, "/") == 0) return 1;
      snprintf(p, sizeof p, "/");
      continue;
    }
    *slash = 0;
  }
}

/* mkdir -p with mode 0700 for what it makes; existing directories are left as they are (checked after). */
static void make_dirs(const char *dir) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s", dir);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(p, 0755) != 0 && errno != EEXIST) die_errno(p, "cannot create the directory to unpack gpuctl into");
    *s = '/';
  }
  if (mkdir(p, 0700) != 0 && errno != EEXIST) die_errno(p, "cannot create the directory to unpack gpuctl into");
}

static void choose_base(const char *self, char *base, size_t cap) {
  char why[PATH_MAX + 64];
  const char *given = getenv("GPUCTL_RUNTIME_DIR");
  if (given && *given) {
    if (given[0] != '/') die("GPUCTL_RUNTIME_DIR", "must be an absolute path");
    make_dirs(given);
    if (!secure_path(given, why, sizeof why)) die("GPUCTL_RUNTIME_DIR", why);
    snprintf(base, cap, "%s", given);
    return;
  }
  /* Next to this file where gpuctl install put it, and that directory is safe to run from. */
  char dir[PATH_MAX], mark[PATH_MAX + 32];
  snprintf(dir, sizeof dir, "%s", self);
  char *slash = strrchr(dir, '/');
  struct stat ms;
  if (slash && slash != dir) {
    *slash = 0;
    snprintf(mark, sizeof mark, "%s/.installed-by-gpuctl", dir);
    if (lstat(mark, &ms) == 0 && S_ISREG(ms.st_mode) && secure_path(dir, why, sizeof why)) {
      char next[PATH_MAX];
      snprintf(next, sizeof next, "%s/.gpuctl-runtime", dir);
      if (mkdir(next, 0700) == 0 || errno == EEXIST) {
        if (secure_path(next, why, sizeof why)) {
          snprintf(base, cap, "%s", next);
          return;
        }
      }
    }
  }
  if (geteuid() == 0) {
    snprintf(base, cap, "/var/lib/gpuctl/runtime");
  } else {
    /* (No getpwuid: a static program would need the C library's shared NSS modules for it.) */
    const char *cache = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (cache && cache[0] == '/') snprintf(base, cap, "%s/gpuctl/runtime", cache);
    else if (home && home[0] == '/') snprintf(base, cap, "%s/.cache/gpuctl/runtime", home);
    else die("the directory to unpack gpuctl into", "none: set HOME or GPUCTL_RUNTIME_DIR");
  }
  make_dirs(base);
  if (!secure_path(base, why, sizeof why)) die("the directory to unpack gpuctl into", why);
}

/* ---------- unpacking ---------- */

static void copy_out(int in, uint64_t off, uint64_t len, const char *path, mode_t mode, struct sha256 *sha) {
  int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (out < 0) die_errno(path, "cannot create");
  static unsigned char buf[1 << 20];
  while (len > 0) {
    size_t want = len < sizeof buf ? (size_t)len : sizeof buf;
    ssize_t got = pread(in, buf, want, (off_t)off);
    if (got <= 0) die(self_name, "truncated: download it again");
    sha_update(sha, buf, (size_t)got);
    for (ssize_t done = 0; done < got;) {
      ssize_t w = write(out, buf + done, (size_t)(got - done));
      if (w < 0) die_errno(path, "cannot write");
      done += w;
    }
    off += (uint64_t)got, len -= (uint64_t)got;
  }
  if (fsync(out) != 0 || close(out) != 0) die_errno(path, "cannot write");
}

static void remove_tree(const char *dir) {
  char p[PATH_MAX];
  const char *names[] = {"deno", "gpuctl.js", "ok"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    unlink(p);
  }
  rmdir(dir);
}

static void unpack(int in, const struct trailer *t, const char *dir, const char *base) {
  char tmp[PATH_MAX], p[PATH_MAX], got[65];
  snprintf(tmp, sizeof tmp, "%s/.unpack-%ld", base, (long)getpid());
  remove_tree(tmp);
  if (mkdir(tmp, 0700) != 0) die_errno(tmp, "cannot create");
  struct sha256 sha;
  sha_init(&sha);
  snprintf(p, sizeof p, "%s/deno", tmp);
  copy_out(in, t->deno_off, t->deno_len, p, 0755, &sha);
  snprintf(p, sizeof p, "%s/gpuctl.js", tmp);
  copy_out(in, t->js_off, t->js_len, p, 0644, &sha);
  sha_hex(&sha, got);
  if (strcmp(got, t->sha256) != 0) {
    remove_tree(tmp);
    char why[256];
    snprintf(why, sizeof why, "corrupt: its payload's SHA-256 is %.16s…, not %.16s…; download it again", got, t->sha256);
    die(self_name, why);
  }
  snprintf(p, sizeof p, "%s/ok", tmp);
  int ok = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (ok < 0 || close(ok) != 0) die_errno(p, "cannot create");
  int d = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d >= 0) fsync(d), close(d);
  if (rename(tmp, dir) != 0) {
    /* Another gpuctl unpacked the same payload meanwhile: use that one. */
    remove_tree(tmp);
    if (errno != EEXIST && errno != ENOTEMPTY) die_errno(dir, "cannot move the unpacked runtime into place");
  }
}

/*
 * A binary front's trailer (serve/fronts/front.h): this program, then a sh front's text, then this. `gpuctl install`
 * writes such a file from a packed gpuctl's head, as gpuctl-runtime and nvidia-container-runtime-hook.
 */
struct front_trailer {
  char magic[16];
  uint64_t text_off, text_len;
  char pad[TRAILER_SIZE - 16 - 16 - 8];
  char end[8];
};
_Static_assert(sizeof(struct front_trailer) == TRAILER_SIZE, "front trailer size");
#define MAX_FRONT_TEXT (1 << 20)

/* This file, opened once, and its last TRAILER_SIZE bytes: a packed gpuctl's trailer or a binary front's. */
struct self_file {
  int fd, err; /* fd < 0: not opened, err its errno */
  struct stat st;
  int tail_ok; /* the file is that long, and its tail was read */
  unsigned char tail[TRAILER_SIZE];
};

static void open_self(struct self_file *f) {
  memset(&f->st, 0, sizeof f->st);
  f->fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  f->err = errno;
  f->tail_ok = f->fd >= 0 && fstat(f->fd, &f->st) == 0 && f->st.st_size >= TRAILER_SIZE &&
               pread(f->fd, f->tail, TRAILER_SIZE, f->st.st_size - TRAILER_SIZE) == TRAILER_SIZE;
}

static int launch_self(struct self_file *f, int argc, char **argv);

/* The serve client's way to run gpuctl (client.c): as this program would. */
static int launch(int argc, char **argv) {
  struct self_file f;
  open_self(&f);
  return launch_self(&f, argc, argv);
}

/* When this file is a binary front: runs it (never returns). */
static void front(struct self_file *f, int argc, char **argv) {
  struct front_trailer t;
  memcpy(&t, f->tail, sizeof t);
  if (!f->tail_ok || memcmp(t.magic, FRONT_MAGIC, sizeof FRONT_MAGIC) || memcmp(t.end, FRONT_END, 8)) return;
  if (t.text_len > MAX_FRONT_TEXT || t.text_off + t.text_len > (uint64_t)f->st.st_size - TRAILER_SIZE)
    die(argv[0], "a front cut short: run gpuctl install again");
  char *text = malloc(t.text_len + 1);
  if (!text || pread(f->fd, text, t.text_len, (off_t)t.text_off) != (ssize_t)t.text_len)
    die(argv[0], "cannot read its own text: run gpuctl install again");
  close(f->fd);
  text[t.text_len] = 0;
  exit(front_main(argc, argv, text, t.text_len));
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--serve-client") == 0) return serve_client(argc, argv, launch);
  struct self_file f;
  open_self(&f);
  front(&f, argc, argv);
  return launch_self(&f, argc, argv);
}

static int launch_self(struct self_file *f, int argc, char **argv) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) die("gpuctl", "cannot find its own file (/proc/self/exe): is /proc mounted?");
  self[n] = 0;
  self_name = self;
  int in = f->fd;
  errno = f->err;
  if (in < 0) die_errno(self, "cannot read itself");
  uint64_t size = (uint64_t)f->st.st_size;
  if (size < TRAILER_SIZE) die(self, "not a packed gpuctl (too short)");
  struct trailer t;
  memcpy(&t, f->tail, sizeof t);
  if (!f->tail_ok || memcmp(t.magic, MAGIC, sizeof MAGIC) || memcmp(t.end, END_MAGIC, 8) || t.sha256[64] != 0 ||
      t.deno_off + t.deno_len > size || t.js_off + t.js_len > size - TRAILER_SIZE)
    die(self, "not a packed gpuctl, or cut short: download it again");

  char base[PATH_MAX], dir[PATH_MAX], mark[PATH_MAX + 8];
  choose_base(self, base, sizeof base);
  snprintf(dir, sizeof dir, "%s/%.16s", base, t.sha256);
  snprintf(mark, sizeof mark, "%s/ok", dir);
  struct stat ms;
  if (stat(mark, &ms) != 0) unpack(in, &t, dir, base);
  close(in);

  /* argv: argv[0] as called, Deno's own options, the bundle, then every argument as given. */
  char deno[PATH_MAX + 8], js[PATH_MAX + 16];
  snprintf(deno, sizeof deno, "%s/deno", dir);
  snprintf(js, sizeof js, "%s/gpuctl.js", dir);
  /* `serve` anywhere in the command line (its command, or an argument that only looks like it: then a short-lived
   * process goes without the options, which only cost it speed) keeps V8's own sizing. */
  int serve = 0;
  for (int i = 1; i < argc; i++) serve |= strcmp(argv[i], "serve") == 0;
  const char *pre[] = {"run", "-A", "--quiet", "--no-config", "--no-lock", "--cached-only", "--no-prompt",
                       GPUCTL_V8_FLAGS, js};
  size_t npre = sizeof pre / sizeof *pre;
  if (serve) pre[--npre - 1] = js; /* the bundle in the options' place */
  char **av = calloc((size_t)argc + npre + 1, sizeof *av);
  if (!av) die(self, "out of memory");
  av[0] = argv[0];
  for (size_t i = 0; i < npre; i++) av[1 + i] = (char *)pre[i];
  for (int i = 1; i < argc; i++) av[npre + (size_t)i] = argv[i];

  extern char **environ;
  size_t ne = 0;
  while (environ[ne]) ne++;
  char **env = calloc(ne + 4, sizeof *env);
  if (!env) die(self, "out of memory");
  size_t k = 0;
  for (size_t i = 0; i < ne; i++) {
    const char *e = environ[i];
    if (!strncmp(e, "DENO_", 5) || !strncmp(e, "NODE_OPTIONS=", 13) || !strncmp(e, "GPUCTL_SELF=", 12)) continue;
    env[k++] = environ[i];
  }
  static char deno_dir[PATH_MAX + 32], self_env[PATH_MAX + 16];
  snprintf(deno_dir, sizeof deno_dir, "DENO_DIR=%s/deno-dir", dir);
  snprintf(self_env, sizeof self_env, "GPUCTL_SELF=%s", self);
  env[k++] = deno_dir;
  env[k++] = self_env;
  env[k++] = "DENO_NO_UPDATE_CHECK=1";
  env[k] = NULL;
  execve(deno, av, env);
  die_errno(deno, "cannot run the unpacked Deno");
  return 1;
}
