/**
 * `ambit ztunnel` and `ambit waypoint`: start a node role on a mesh config,
 * follow reloads, stop on SIGTERM/SIGINT.
 *
 * @module
 */
import { ConfigStore } from "../config/store.ts";
import { diffViews, type LocalView, localView } from "../ztunnel/local_view.ts";
import { type Command, EXIT_OK, requireOption, UsageError } from "./command.ts";
import { untilStopSignal } from "./signals.ts";

const configOption = {
  config: {
    type: "string",
    short: "c",
    arg: "PATH",
    description: "mesh config file or directory (watched; SIGHUP reloads)",
  },
} as const;

/** `ambit ztunnel`. */
export const ztunnelCommand: Command = {
  name: "ztunnel",
  summary: "Run the per-host L4 proxy (identity, mTLS via HBONE, L4 policy) for one node",
  options: {
    ...configOption,
    node: {
      type: "string",
      short: "n",
      arg: "NAME",
      description: "this host's Node name in the config",
    },
  },
  description: `
Loads the mesh config, keeps it current (file changes and SIGHUP reload it;
an invalid change is rejected and the last good config stays in force) and
serves the enrolled workloads placed on --node.`,
  examples: ["ambit ztunnel --config /etc/ambit/mesh --node node-a"],
  async run(ctx) {
    const path = requireOption(ctx, "config");
    const node = requireOption(ctx, "node");
    const logger = ctx.logger.child({ role: "ztunnel", node });
    const store = await ConfigStore.open(path, { logger, sighup: true });
    let view: LocalView;
    try {
      view = localView(store.current, node);
    } catch (e) {
      await store.close();
      throw new UsageError((e as Error).message);
    }
    logger.info("config loaded", {
      generation: store.generation,
      workloads: [...view.workloads.keys()].join(",") || "none",
    });
    store.onReload((o) => {
      if (!o.applied) return;
      try {
        const next = localView(store.current, node);
        const d = diffViews(view, next);
        for (const k of d.added) {
          logger.info("workload enrolled", {
            workload: k,
            identity: next.workloads.get(k)!.identity,
          });
        }
        for (const k of d.removed) logger.info("workload left", { workload: k });
        for (const k of d.changed) logger.info("workload changed", { workload: k });
        view = next;
      } catch (e) {
        logger.error("this node is no longer in the config; serving nothing", {
          error: e as Error,
        });
      }
    });
    await untilStopSignal(logger);
    await store.close();
    return EXIT_OK;
  },
};

/** `ambit waypoint`. */
export const waypointCommand: Command = {
  name: "waypoint",
  summary: "Run an L7 waypoint proxy for the services and namespaces bound to it",
  options: {
    ...configOption,
    name: {
      type: "string",
      arg: "NS/NAME",
      description: "the waypoint's Gateway (class istio-waypoint) as namespace/name",
    },
  },
  examples: ["ambit waypoint --config /etc/ambit/mesh --name shop/waypoint"],
  async run(ctx) {
    const path = requireOption(ctx, "config");
    const name = requireOption(ctx, "name");
    if (!/^[^/]+\/[^/]+$/.test(name)) {
      throw new UsageError(`--name must be namespace/name, got "${name}"`);
    }
    const logger = ctx.logger.child({ role: "waypoint", waypoint: name });
    const store = await ConfigStore.open(path, { logger, sighup: true });
    const wp = store.current.waypoints.get(name);
    if (!wp) {
      const known = [...store.current.waypoints.keys()].join(", ") || "none";
      await store.close();
      throw new UsageError(
        `waypoint "${name}" is not in the config (waypoints: ${known}); add a Gateway with gatewayClassName istio-waypoint`,
      );
    }
    const bound = [...store.current.services.values()].filter((s) => s.waypoint === name);
    logger.info("config loaded", {
      generation: store.generation,
      address: `${wp.address}:${wp.port}`,
      services: bound.map((s) => s.key).join(",") || "none",
    });
    store.onReload((o) => {
      if (o.applied) {
        const now = [...store.current.services.values()].filter((s) => s.waypoint === name);
        logger.info("config updated", { services: now.map((s) => s.key).join(",") || "none" });
      }
    });
    await untilStopSignal(logger);
    await store.close();
    return EXIT_OK;
  },
};
