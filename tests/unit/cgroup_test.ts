import { assertEquals, assertThrows } from "../assert.ts";
import { findDeviceCgroup } from "../../apply/cgroup.ts";
import { GpuctlError } from "../../errors/mod.ts";
import { tempDir } from "../helpers.ts";

function procfs(dir: string, cgroup: string, mountinfo: string): string {
  Deno.mkdirSync(`${dir}/42`, { recursive: true });
  Deno.mkdirSync(`${dir}/self`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/42/cgroup`, cgroup);
  Deno.writeTextFileSync(`${dir}/self/mountinfo`, mountinfo);
  return dir;
}

Deno.test("findDeviceCgroup() tells v1, v2 and hybrid hosts apart and finds the container's directory", () => {
  using t = tempDir();
  const v1 = procfs(
    `${t.path}/v1`,
    "12:pids:/docker/abc\n5:devices:/docker/abc\n1:name=systemd:/docker/abc\n0::/docker/abc\n",
    "30 25 0:27 / /sys/fs/cgroup/devices rw,nosuid - cgroup cgroup rw,devices\n" +
      "31 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
  );
  assertEquals(findDeviceCgroup(42, v1), { version: 1, dir: "/sys/fs/cgroup/devices/docker/abc" });
  const v2 = procfs(
    `${t.path}/v2`,
    "0::/system.slice/docker-abc.scope\n",
    "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
  );
  assertEquals(findDeviceCgroup(42, v2), { version: 2, dir: "/sys/fs/cgroup/system.slice/docker-abc.scope" });
  // A cgroup namespace or a bind: the mount's root is cut from the path.
  const nested = procfs(
    `${t.path}/n`,
    "0::/kubepods/pod1/c1\n",
    "29 23 0:26 /kubepods /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
  );
  assertEquals(findDeviceCgroup(42, nested), { version: 2, dir: "/sys/fs/cgroup/pod1/c1" });
  const none = procfs(
    `${t.path}/x`,
    "3:cpu:/a\n",
    "29 23 0:26 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n",
  );
  assertThrows(
    () => findDeviceCgroup(42, none),
    GpuctlError,
    "shows neither a v1 devices controller nor a v2 hierarchy",
  );
});
