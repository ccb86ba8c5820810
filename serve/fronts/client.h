/*
 * The serve client (client.c) as the fronts in C use it: the launcher's `--serve-client` (called by the sh
 * fronts) and a binary front (front.c) both hand a container's work to gpuctl serve through these.
 */
#ifndef GPUCTL_CLIENT_H
#define GPUCTL_CLIENT_H

/* Runs gpuctl with argv[1] its subcommand (`runtime` or `hook`) and argv[2..] that command's arguments. */
typedef int launch_fn(int argc, char **argv);

/* Where gpuctl serve listens and how long to wait for it: S, T and PROTOCOL of the fronts' preamble. */
struct client {
  const char *dir, *protocol;
  long timeout;
  int dirfd;
  long server;
  char reply[32];
};

/* The client for the preamble's S, T (seconds; 0 if it is not a number) and PROTOCOL. */
struct client client_settings(const char *dir, const char *timeout, const char *protocol);

/* The hook: served when a server listens, else gpuctl (the state given back on stdin). CALLER may be "". */
int client_hook(launch_fn *launch, char *argv0, struct client *c, const char *caller, char **args, int nargs);

/*
 * A create or run: to the runtime when config.json mentions no request and FRESH is "1"; else served, or gpuctl.
 * o: RUNTIME FRESH GN ID BUNDLE CMD MARKERS, as the sh front passes them.
 */
int client_runtime(launch_fn *launch, char *argv0, struct client *c, char **o, char **args, int nargs);

/* Execs the runtime with args (GPUCTL_RUNTIME_EXEC set, as for every runtime a front runs); returns on failure. */
int client_exec_runtime(const char *rt, char **args, int nargs);

/* `--serve-client VERB S T PROTOCOL OPTIONS... -- ARGS...`: the sh fronts' way in. */
int serve_client(int argc, char **argv, launch_fn *launch);

#endif
