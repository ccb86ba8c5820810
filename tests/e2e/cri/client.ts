/**
 * A CRI client, as the kubelet is one: gRPC over containerd's socket (`@grpc/grpc-js`, the messages from
 * `runtime.proto` through `@grpc/proto-loader`). Only what the tests drive: pod sandboxes and containers.
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";

const PROTO = new URL("./runtime.proto", import.meta.url).pathname;

/** A CRI call's failure: gRPC's status code and the runtime's message, as the kubelet would show it. */
export class CriError extends Error {
  constructor(readonly call: string, readonly code: number, readonly details: string) {
    super(`${call}: ${details} (gRPC code ${code})`);
  }
}

type Call = (req: unknown, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

export interface KeyValue {
  key: string;
  value: string;
}

export interface PodConfig {
  metadata: { name: string; uid: string; namespace: string; attempt?: number };
  hostname?: string;
  log_directory: string;
  annotations?: Record<string, string>;
  linux: { security_context: { namespace_options: { network: "POD" | "NODE" } } };
}

export interface ContainerConfig {
  metadata: { name: string };
  image: { image: string };
  command: string[];
  args?: string[];
  envs?: KeyValue[];
  mounts?: { container_path: string; host_path: string; readonly?: boolean }[];
  annotations?: Record<string, string>;
  log_path: string;
  linux?: { security_context: { privileged?: boolean; capabilities?: { add_capabilities: string[] } } };
}

export interface ContainerStatus {
  id: string;
  state: "CONTAINER_CREATED" | "CONTAINER_RUNNING" | "CONTAINER_EXITED" | "CONTAINER_UNKNOWN";
  exit_code: number;
  reason: string;
  message: string;
  log_path: string;
}

export class Cri {
  readonly #client: grpc.Client & Record<string, Call>;

  constructor(socket: string) {
    const def = loader.loadSync(PROTO, { keepCase: true, enums: String, defaults: true, longs: Number });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      runtime: { v1: { RuntimeService: new (addr: string, creds: grpc.ChannelCredentials) => grpc.Client } };
    };
    this.#client = new pkg.runtime.v1.RuntimeService(
      `unix://${socket}`,
      grpc.credentials.createInsecure(),
    ) as grpc.Client & Record<string, Call>;
  }

  #call<T>(name: string, req: unknown): Promise<T> {
    return new Promise((ok, fail) => {
      const deadline = new Date(Date.now() + 60_000);
      (this.#client[name] as unknown as (
        r: unknown,
        m: grpc.Metadata,
        o: grpc.CallOptions,
        cb: (err: grpc.ServiceError | null, res: unknown) => void,
      ) => void).call(this.#client, req, new grpc.Metadata(), { deadline }, (err, res) => {
        if (err) fail(new CriError(name, err.code, err.details));
        else ok(res as T);
      });
    });
  }

  version(): Promise<{ runtime_name: string; runtime_version: string; runtime_api_version: string }> {
    return this.#call("Version", { version: "v1" });
  }

  async runPodSandbox(config: PodConfig, handler: string): Promise<string> {
    return (await this.#call<{ pod_sandbox_id: string }>("RunPodSandbox", {
      config,
      runtime_handler: handler,
    }))
      .pod_sandbox_id;
  }

  async stopPodSandbox(id: string): Promise<void> {
    await this.#call("StopPodSandbox", { pod_sandbox_id: id });
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.#call("RemovePodSandbox", { pod_sandbox_id: id });
  }

  async createContainer(pod: string, config: ContainerConfig, sandbox: PodConfig): Promise<string> {
    return (await this.#call<{ container_id: string }>("CreateContainer", {
      pod_sandbox_id: pod,
      config,
      sandbox_config: sandbox,
    })).container_id;
  }

  async startContainer(id: string): Promise<void> {
    await this.#call("StartContainer", { container_id: id });
  }

  async removeContainer(id: string): Promise<void> {
    await this.#call("RemoveContainer", { container_id: id });
  }

  async containerStatus(id: string): Promise<ContainerStatus> {
    return (await this.#call<{ status: ContainerStatus }>("ContainerStatus", { container_id: id })).status;
  }

  close(): void {
    this.#client.close();
  }
}
