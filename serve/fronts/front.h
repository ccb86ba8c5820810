/* A binary front (front.c): the launcher's program with a sh front's text after it, run as that front. */
#ifndef GPUCTL_FRONT_H
#define GPUCTL_FRONT_H
#include <stddef.h>

/* The trailer that ends a binary front: its text's place in the file. */
#define FRONT_MAGIC "GPUCTL-FRONT-1"
#define FRONT_END "GPUCTLFR"

/* Runs the front `text` (a sh front's, as serve/fronts.ts writes it) with the engine's argv. */
int front_main(int argc, char **argv, const char *text, size_t len);

#endif
