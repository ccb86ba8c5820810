/**
 * Linux's errno values gpuctl tells apart, by name (the same on x86_64 and aarch64: asm-generic's numbering).
 * @module
 */
export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EAGAIN = 11;
/** The same value as EAGAIN on Linux: what flock(LOCK_NB) says of a lock held elsewhere. */
export const EWOULDBLOCK = 11;
export const EACCES = 13;
export const EEXIST = 17;
export const EXDEV = 18;
export const ENOTDIR = 20;
export const EISDIR = 21;
export const EINVAL = 22;
export const ENOSPC = 28;
export const EROFS = 30;
export const ENOSYS = 38;
export const ENOTEMPTY = 39;
export const ELOOP = 40;
