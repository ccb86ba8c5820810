/**
 * What a capability plugin contributes. Plugins are plain values: the planner reads them; nothing in a plugin
 * runs code or touches the host.
 * @module
 */

/** A file to bind into the container: the first candidate that exists under the driver root. */
export interface FileSpec {
  /** Host paths relative to the driver root, tried in order. */
  candidates: readonly string[];
  /** Where it goes in the container; defaults to the candidate that was found. */
  containerPath?: string;
  /** A library (SONAME prefix) of the same capability the file names: without it, the file is not given. */
  library?: string;
  /** A directory rather than a file (bound read-only, like files). */
  dir?: boolean;
}

/** An IPC endpoint of a host daemon: a socket, or a directory of sockets/pipes. */
export interface IpcSpec {
  path: string;
  kind: "socket" | "dir";
}

/** A symlink to create in the container's library directory: `link` → `target` (both file names). */
export interface LibrarySymlink {
  link: string;
  target: string;
}

/** A capability: what `NVIDIA_DRIVER_CAPABILITIES=<name>` brings into a container. */
export interface Capability {
  name: string;
  description: string;
  /** Capabilities whose contributions this one includes (video → compute, display → graphics). */
  implies?: readonly string[];
  /** SONAME prefixes matched against ld.so.cache keys (`libcuda.so` matches `libcuda.so.1`). */
  libraries?: readonly string[];
  /** Accept libraries at any version (declarative plugins for non-driver libraries); default: the driver's. */
  anyLibraryVersion?: boolean;
  /**
   * Libraries the driver ships at versions of their own (the EGL external platforms: `libnvidia-egl-wayland.so.1.1.10`
   * beside a 535 driver), as SONAME prefixes taken at whatever version they are.
   */
  ownVersionLibraries?: readonly string[];
  binaries?: readonly string[];
  ipcs?: readonly IpcSpec[];
  /**
   * Device nodes under /dev: names like `nvidia-uvm`, or paths; the last component may hold `*` for a family of
   * nodes (`/dev/nvidia-fs*`). Checked only when the capability is asked for: a missing one is a warning, or an
   * error when it leaves the capability with nothing to give.
   */
  deviceNodes?: readonly string[];
  files?: readonly FileSpec[];
  symlinks?: readonly LibrarySymlink[];
  env?: Readonly<Record<string, string>>;
  /** compat32: resolve the other requested capabilities' libraries for 32-bit too. */
  compat32?: boolean;
  /** Where the plugin came from: `builtin` or a file path. */
  origin?: string;
}
