/**
 * A tenant flooding a fleet of fake engines (./fake_engine.ts), for the fair-share placement tests of the
 * simulator's routing and of the gateway's: one light session, then a flood of sessions opening far faster.
 */
import type { CallInfo, EngineView, RoutingPolicy } from '../../lib/policy/types';

/** 100 blocks of 16 tokens: the KV of each flooded fake engine. */
export const FLOOD_ENGINE_BLOCKS = 100;
export const FLOOD_ENGINE_TOKENS = 1600;

/** The first call (unless `callIndex`) of session `session`, of workflow kind `coding`, with no block hashes. */
export function sessionCall(session: number, tenant: string, promptTokens: number, arrivalS: number, callIndex = 0): CallInfo {
  return { taskIndex: session, callIndex, session, tenant, kind: 'coding', arrivalS, promptTokens, outputTokens: 10, blockHashes: new BigUint64Array(0) };
}

/**
 * One light session (half an engine of context) at t = 0, then a flood session of half an engine every
 * 0.5 s from t = 1 until `floodSessions` are open, all routed by `routing`. Returns the homes it chose.
 */
export function routeFlood(routing: Pick<RoutingPolicy, 'route'>, engines: readonly EngineView[], floodSessions: number): { lightHome: number; floodHomes: number[] } {
  const lightHome = routing.route(sessionCall(0, 'light', FLOOD_ENGINE_TOKENS / 2, 0), engines, 0);
  const floodHomes: number[] = [];
  for (let i = 0; i < floodSessions; i++) {
    const t = 1 + i * 0.5;
    floodHomes.push(routing.route(sessionCall(100 + i, 'flood', FLOOD_ENGINE_TOKENS / 2, t), engines, t));
  }
  return { lightHome, floodHomes };
}
