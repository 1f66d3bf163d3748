/**
 * Which addresses belong to this host itself (loopback, the addresses of its
 * interfaces). A host service bound to 0.0.0.0 answers on every one of them,
 * so inbound delivery to such an address is limited to the ports a workload
 * declares; an address the host does not own (a container's or a VM's
 * behind a bridge) is the workload's alone, and any port of it is served,
 * as Istio serves any port of a pod.
 *
 * @module
 */
import { canonicalIp, isLoopbackIp } from "../config/formats.ts";

/** A cached view of the host's interface addresses, re-read at most every `ttlMs`. */
export class HostAddresses {
  #at = -Infinity;
  #set: Set<string> | undefined = new Set();

  constructor(
    readonly options: {
      ttlMs?: number;
      /** The interface addresses (default: Deno.networkInterfaces()); throws when unknown. */
      list?: () => readonly string[];
    } = {},
  ) {}

  /**
   * Whether `ip` is loopback or assigned to one of this host's interfaces.
   * When the interfaces cannot be read, every address counts as the host's
   * (the safe side: only declared ports are delivered).
   */
  has(ip: string): boolean {
    if (isLoopbackIp(ip)) return true;
    const now = Date.now();
    if (now - this.#at > (this.options.ttlMs ?? 5000)) {
      this.#at = now;
      try {
        const list = this.options.list?.() ?? Deno.networkInterfaces().map((i) => i.address);
        this.#set = new Set(list.map(canonicalIp));
      } catch {
        this.#set = undefined;
      }
    }
    return this.#set === undefined || this.#set.has(canonicalIp(ip));
  }
}
