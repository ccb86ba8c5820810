/**
 * cgroup v2 device rules: the eBPF device program attached to the container's cgroup (runc installs one that
 * denies what the spec does not allow) is replaced by one that first allows the GPU nodes, then runs the
 * original program's instructions unchanged. The replacement is atomic (`BPF_F_REPLACE`) where the cgroup uses
 * multi-attach, as runc does.
 * @module
 */
import { EINVAL } from "../errors/errno.ts";
import { GpuctlError } from "../errors/mod.ts";
import { backend } from "../ffi/mod.ts";
import { bpf, check, libc, O_CLOEXEC, O_DIRECTORY, O_RDONLY, SyscallError } from "../ffi/libc.ts";
import type { DeviceRule } from "./cgroup.ts";

const BPF_PROG_LOAD = 5, BPF_PROG_ATTACH = 8, BPF_PROG_DETACH = 9, BPF_PROG_GET_FD_BY_ID = 13;
const BPF_OBJ_GET_INFO_BY_FD = 15, BPF_PROG_QUERY = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE = 15, BPF_CGROUP_DEVICE = 6;
export const BPF_F_ALLOW_OVERRIDE = 1, BPF_F_ALLOW_MULTI = 2, BPF_F_REPLACE = 4;
const DEV_CHAR = 2;

/** One eBPF instruction. */
export interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

const ins = (code: number, dst: number, src: number, off: number, imm: number): Insn => ({
  code,
  dst,
  src,
  off,
  imm,
});

/** Encodes instructions as the kernel reads them (8 bytes each, little-endian). */
export function encode(prog: readonly Insn[]): Uint8Array {
  const b = new Uint8Array(prog.length * 8);
  const v = new DataView(b.buffer);
  prog.forEach((i, k) => {
    v.setUint8(k * 8, i.code);
    v.setUint8(k * 8 + 1, (i.src << 4) | (i.dst & 0xf));
    v.setInt16(k * 8 + 2, i.off, true);
    v.setInt32(k * 8 + 4, i.imm, true);
  });
  return b;
}

/** Decodes instructions (e.g. a program's translated instructions). */
export function decode(b: Uint8Array): Insn[] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: Insn[] = [];
  for (let k = 0; k + 8 <= b.length; k += 8) {
    const regs = v.getUint8(k + 1);
    out.push(ins(v.getUint8(k), regs & 0xf, regs >> 4, v.getInt16(k + 2, true), v.getInt32(k + 4, true)));
  }
  return out;
}

/**
 * A prologue that returns 1 (allow) for a character device in `rules`, and otherwise falls through with r1 (the
 * context) untouched, so that an existing program can follow it.
 */
export function allowPrologue(rules: readonly DeviceRule[]): Insn[] {
  const p: Insn[] = [
    ins(0x61, 2, 1, 0, 0), // r2 = *(u32 *)(r1 + 0): access << 16 | type
    ins(0x61, 3, 1, 4, 0), // r3 = major
    ins(0x61, 4, 1, 8, 0), // r4 = minor
    ins(0xbc, 5, 2, 0, 0), // w5 = w2
    ins(0x54, 5, 0, 0, 0xffff), // w5 &= 0xffff: the device type
  ];
  for (const r of rules) {
    p.push(
      ins(0x55, 5, 0, 4, DEV_CHAR), // if r5 != char goto next
      ins(0x55, 3, 0, 3, r.major), // if r3 != major goto next
      ins(0x55, 4, 0, 2, r.minor), // if r4 != minor goto next
      ins(0xb7, 0, 0, 0, 1), // r0 = 1
      ins(0x95, 0, 0, 0, 0), // exit
    );
  }
  return p;
}

/** A complete program: allow `rules`, deny everything else (what runc's would do with only these rules). */
export function allowOnlyProgram(rules: readonly DeviceRule[]): Insn[] {
  return [...allowPrologue(rules), ins(0xb7, 0, 0, 0, 0), ins(0x95, 0, 0, 0, 0)];
}

function attr(size = 128): { b: Uint8Array; v: DataView } {
  const b = new Uint8Array(size);
  return { b, v: new DataView(b.buffer) };
}

/** Loads a device program; returns its descriptor. */
export function loadDeviceProgram(prog: readonly Insn[]): number {
  raiseMemlock();
  const code = encode(prog);
  const license = new TextEncoder().encode("GPL\0");
  const log = new Uint8Array(1 << 16);
  const { b, v } = attr();
  v.setUint32(0, BPF_PROG_TYPE_CGROUP_DEVICE, true);
  v.setUint32(4, prog.length, true);
  v.setBigUint64(8, backend().addressOf(code), true);
  v.setBigUint64(16, backend().addressOf(license), true);
  v.setUint32(24, 1, true); // log level
  v.setUint32(28, log.length, true);
  v.setBigUint64(32, backend().addressOf(log), true);
  v.setUint32(68, BPF_CGROUP_DEVICE, true); // expected_attach_type
  b.set(new TextEncoder().encode("gpuctl_dev"), 48);
  try {
    return bpf(BPF_PROG_LOAD, b);
  } catch (e) {
    const end = log.indexOf(0);
    const text = new TextDecoder().decode(log.subarray(0, end < 0 ? log.length : end)).trim().split("\n")
      .slice(-3).join("; ");
    throw new GpuctlError(
      "device cgroup (eBPF)",
      `the kernel refused the device program: ${(e as Error).message}${text ? ` (${text})` : ""}`,
      1,
      { cause: e },
    );
  }
}

let memlockRaised = false;
function raiseMemlock(): void {
  if (memlockRaised) return;
  const rl = new BigUint64Array([~0n, ~0n]); // RLIM_INFINITY
  libc().setrlimit(8, /* RLIMIT_MEMLOCK */ new Uint8Array(rl.buffer)); // best effort: newer kernels account by memcg
  memlockRaised = true;
}

/** The device programs attached to a cgroup, and the attach flags. */
export function queryDevicePrograms(cgroupFd: number): { ids: number[]; flags: number } {
  const ids = new Uint32Array(64);
  const { b, v } = attr();
  v.setUint32(0, cgroupFd, true);
  v.setUint32(4, BPF_CGROUP_DEVICE, true);
  v.setBigUint64(16, backend().addressOf(new Uint8Array(ids.buffer)), true);
  v.setUint32(24, ids.length, true);
  bpf(BPF_PROG_QUERY, b);
  const n = v.getUint32(24, true);
  return { ids: [...ids.subarray(0, n)], flags: v.getUint32(12, true) };
}

function progFdById(id: number): number {
  const { b, v } = attr();
  v.setUint32(0, id, true);
  return bpf(BPF_PROG_GET_FD_BY_ID, b);
}

/** A loaded program's translated instructions. */
export function programInstructions(progFd: number): Insn[] {
  const info = new Uint8Array(256);
  const get = () => {
    const { b, v } = attr();
    v.setUint32(0, progFd, true);
    v.setUint32(4, info.length, true);
    v.setBigUint64(8, backend().addressOf(info), true);
    bpf(BPF_OBJ_GET_INFO_BY_FD, b);
  };
  get();
  const iv = new DataView(info.buffer);
  const len = iv.getUint32(20, true); // xlated_prog_len
  if (len === 0) {
    throw new GpuctlError(
      "device cgroup (eBPF)",
      "cannot read the existing device program (no CAP_SYS_ADMIN?)",
    );
  }
  const insns = new Uint8Array(len);
  info.fill(0);
  iv.setUint32(20, len, true);
  iv.setBigUint64(32, backend().addressOf(insns), true);
  get();
  return decode(insns);
}

function attachOp(cmd: number, cgroupFd: number, progFd: number, flags: number, replaceFd = 0): void {
  const { b, v } = attr();
  v.setUint32(0, cgroupFd, true);
  v.setUint32(4, progFd, true);
  v.setUint32(8, BPF_CGROUP_DEVICE, true);
  v.setUint32(12, flags, true);
  v.setUint32(16, replaceFd, true);
  bpf(cmd, b);
}

/** Attaches a device program to a cgroup. */
export function attachDeviceProgram(cgroupFd: number, progFd: number, flags: number, replaceFd = 0): void {
  attachOp(BPF_PROG_ATTACH, cgroupFd, progFd, flags, replaceFd);
}

/**
 * Allows `rules` in the cgroup v2 directory `dir`: each attached device program is replaced by one that allows
 * the rules first and then runs the original. A cgroup without device programs already allows everything.
 */
export function allowV2(dir: string, rules: readonly DeviceRule[]): number {
  const cg = check(`open ${dir}`, () => libc().open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0));
  try {
    const { ids, flags } = queryDevicePrograms(cg);
    for (const id of ids) {
      const old = progFdById(id);
      try {
        const prog = [...allowPrologue(rules), ...programInstructions(old)];
        const fresh = loadDeviceProgram(prog);
        try {
          if (flags & BPF_F_ALLOW_MULTI) {
            try {
              attachDeviceProgram(cg, fresh, BPF_F_ALLOW_MULTI | BPF_F_REPLACE, old);
            } catch (e) {
              if (!(e instanceof SyscallError && e.errno === EINVAL /* no BPF_F_REPLACE */)) throw e;
              attachDeviceProgram(cg, fresh, BPF_F_ALLOW_MULTI);
              attachOp(BPF_PROG_DETACH, cg, old, BPF_F_ALLOW_MULTI);
            }
          } else {
            attachDeviceProgram(cg, fresh, flags); // a single program is replaced by attaching another
          }
        } finally {
          libc().close(fresh);
        }
      } finally {
        libc().close(old);
      }
    }
    return ids.length;
  } finally {
    libc().close(cg);
  }
}
