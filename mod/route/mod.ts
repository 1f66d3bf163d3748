/**
 * The waypoint's L7 routing engine: route tables per Service port, the
 * routing decision per request, weighted backend choice and filters. Pure
 * functions over the config snapshot and a small request model.
 *
 * @module
 */
export * from "./compile.ts";
export * from "./errors.ts";
export * from "./filters.ts";
export * from "./match.ts";
export * from "./pick.ts";
