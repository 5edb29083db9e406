/**
 * `saga serve`'s config: the JSON file's shape, its defaults, and its checks. Every field is checked at
 * start; a wrong one is a SagaError ERR_SAGA_BAD_CONFIG whose message names the field (`engines[1].url`).
 * README.md ("saga serve") is the reference of every field.
 */
import * as fs from 'node:fs';
import { GATEWAY } from '../constants';
import { SagaError } from '../errors';
import { DEFAULT_SLO } from '../metrics/metrics';

export const ENGINE_KINDS = ['saga-engine', 'vllm', 'sglang', 'llama.cpp', 'openai'] as const;
export type EngineKind = (typeof ENGINE_KINDS)[number];
export const GATEWAY_POLICIES = ['saga', 'affinity', 'round-robin', 'least-loaded', 'saga-routing', 'afs'] as const;
export type GatewayPolicyName = (typeof GATEWAY_POLICIES)[number];

export interface EngineConfig {
  /** Unique; labels metrics and logs. */
  readonly name: string;
  /** Base URL (http or https), without /v1. */
  readonly url: string;
  readonly kind: EngineKind;
  /** Calls the gateway keeps in flight on the engine at most; the rest wait in the gateway's queue. */
  readonly capacity: number;
  /**
   * Engines that hold whole sessions, one per slot: llama.cpp's slots (`-np`; `id_slot` stays below it),
   * saga engine's sequences (`--sequences`). The stealing test counts a session a move would push out of
   * them. Default: capacity.
   */
  readonly slots: number;
  /** vLLM: the engine runs with `--scheduling-policy priority` (else vLLM refuses a `priority`, so none is sent). */
  readonly priorityScheduling: boolean;
  /** Prefill tokens per second, for the cost of moving a session here (work stealing). */
  readonly prefillTokensPerS: number;
  /**
   * Tokens of KV cache the engine holds (vLLM logs it at start: "GPU KV cache size: N tokens"). Given for
   * every engine, saga's routing keeps a tenant that floods the fleet off the other tenants' engines
   * (fair-share placement, lib/policy/fair_share_placement.ts); unknown, it does not.
   */
  readonly kvTokens: number | undefined;
  /** Sent as `authorization: Bearer ...`; without it the client's own authorization header is passed on. */
  readonly apiKey: string | undefined;
}

export interface TenantConfig {
  readonly name: string;
  /** Fair-share weight: a tenant of weight w is charged service / w. */
  readonly weight: number;
  readonly slo: { readonly slowdown: number };
}

export interface GatewayConfig {
  readonly listen: { readonly host: string; readonly port: number };
  readonly policy: GatewayPolicyName;
  readonly engines: readonly EngineConfig[];
  readonly tenants: readonly TenantConfig[];
  readonly admission: { readonly maxQueuedPerEngine: number; readonly retryAfterS: number };
  readonly timeouts: { readonly connectMs: number; readonly firstByteMs: number; readonly requestMs: number };
  readonly limits: { readonly maxBodyBytes: number };
  readonly health: { readonly intervalMs: number; readonly timeoutMs: number };
}

type DeepPartial<T> = { -readonly [K in keyof T]?: T[K] extends readonly (infer E)[] ? DeepPartial<E>[] : T[K] extends object ? DeepPartial<T[K]> : T[K] };

/** What a config file may hold: every field but the engines optional (defaults in lib/constants.ts GATEWAY). */
export type GatewayConfigInput = DeepPartial<GatewayConfig> & { engines: DeepPartial<EngineConfig>[] };

type Json = Readonly<Record<string, unknown>>;

function bad(path: string, message: string): SagaError {
  return new SagaError(`gateway config: ${path} ${message}`, 'ERR_SAGA_BAD_CONFIG');
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The object at `path`, or {} when absent. Unknown keys are refused, so that a typo does not pass silently. */
function section(value: unknown, path: string, known: readonly string[]): Json {
  if (value === undefined) return {};
  if (!isObject(value)) throw bad(path, `must be an object, got ${JSON.stringify(value)}`);
  for (const key of Object.keys(value)) if (!known.includes(key)) throw bad(`${path}.${key}`, `is not a known field (known: ${known.join(', ')})`);
  return value;
}

function integer(value: unknown, path: string, fallback: number | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw bad(path, `must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`);
  }
  return value;
}

function positive(value: unknown, path: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw bad(path, `must be a positive number, got ${JSON.stringify(value)}`);
  return value;
}

function text(value: unknown, path: string, fallback?: string): string {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'string' || value.trim() === '') throw bad(path, `must be a non-empty string, got ${JSON.stringify(value)}`);
  return value;
}

function oneOf<T extends string>(value: unknown, path: string, known: readonly T[], fallback?: T): T {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'string' || !(known as readonly string[]).includes(value)) throw bad(path, `must be one of ${known.join(', ')}, got ${JSON.stringify(value)}`);
  return value as T;
}

function bool(value: unknown, path: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw bad(path, `must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

/** An http(s) URL without a path beyond `/` (the gateway appends /v1/...), trailing slash dropped. */
function baseUrl(value: unknown, path: string): string {
  const raw = text(value, path);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw bad(path, `must be an http or https URL, got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad(path, `must be an http or https URL, got ${JSON.stringify(raw)}`);
  if (url.search !== '' || url.hash !== '') throw bad(path, `must have no query or fragment, got ${JSON.stringify(raw)}`);
  if (/\/v1\/?$/.test(url.pathname)) throw bad(path, `is the engine's base URL, without /v1 (the gateway adds /v1/...), got ${JSON.stringify(raw)}`);
  return raw.replace(/\/+$/, '');
}

function uniqueNames(items: readonly { readonly name: string }[], path: string): void {
  const seen = new Set<string>();
  items.forEach((item, i) => {
    if (seen.has(item.name)) throw bad(`${path}[${i}].name`, `repeats the name ${JSON.stringify(item.name)}`);
    seen.add(item.name);
  });
}

const ENGINE_FIELDS = ['name', 'url', 'kind', 'capacity', 'slots', 'priorityScheduling', 'prefillTokensPerS', 'kvTokens', 'apiKey'] as const;

function parseEngine(value: unknown, path: string): EngineConfig {
  const e = section(value, path, ENGINE_FIELDS);
  if (value === undefined) throw bad(path, 'is missing');
  const capacity = integer(e.capacity, `${path}.capacity`, undefined, 1);
  const kind = oneOf(e.kind, `${path}.kind`, ENGINE_KINDS);
  // Refused where they mean nothing (a resolved config's defaults, slots = capacity and false, pass again).
  if (e.slots !== undefined && e.slots !== capacity && kind !== 'llama.cpp' && kind !== 'saga-engine') {
    throw bad(`${path}.slots`, `applies to kinds llama.cpp and saga-engine only (this engine is ${kind})`);
  }
  if (e.priorityScheduling === true && kind !== 'vllm') throw bad(`${path}.priorityScheduling`, `applies to kind vllm only (this engine is ${kind})`);
  const slots = integer(e.slots, `${path}.slots`, capacity, 1);
  if (slots < capacity) throw bad(`${path}.slots`, `(${slots}) must be at least capacity (${capacity}): each call in flight needs a slot of its own`);
  return {
    name: text(e.name, `${path}.name`),
    url: baseUrl(e.url, `${path}.url`),
    kind,
    capacity,
    slots,
    priorityScheduling: bool(e.priorityScheduling, `${path}.priorityScheduling`, false),
    prefillTokensPerS: positive(e.prefillTokensPerS, `${path}.prefillTokensPerS`, GATEWAY.prefillTokensPerS),
    kvTokens: e.kvTokens === undefined ? undefined : integer(e.kvTokens, `${path}.kvTokens`, undefined, 1),
    apiKey: e.apiKey === undefined ? undefined : text(e.apiKey, `${path}.apiKey`),
  };
}

function parseTenant(value: unknown, path: string): TenantConfig {
  if (value === undefined) throw bad(path, 'is missing');
  const t = section(value, path, ['name', 'weight', 'slo']);
  const slo = section(t.slo, `${path}.slo`, ['slowdown']);
  const slowdown = positive(slo.slowdown, `${path}.slo.slowdown`, DEFAULT_SLO);
  if (slowdown < 1) throw bad(`${path}.slo.slowdown`, `must be at least 1 (a slowdown is TCT / isolated TCT), got ${slowdown}`);
  return { name: text(t.name, `${path}.name`), weight: positive(t.weight, `${path}.weight`, GATEWAY.tenantWeight), slo: { slowdown } };
}

function list<T>(value: unknown, path: string, parse: (item: unknown, path: string) => T, required: boolean): T[] {
  if (value === undefined && !required) return [];
  if (!Array.isArray(value)) throw bad(path, `must be an array, got ${JSON.stringify(value)}`);
  return value.map((item, i) => parse(item, `${path}[${i}]`));
}

/** Checks a config (parsed JSON, or an object built in code) and fills in the defaults. Idempotent. */
export function parseGatewayConfig(json: unknown): GatewayConfig {
  const c = section(json, 'the config', ['listen', 'policy', 'engines', 'tenants', 'admission', 'timeouts', 'limits', 'health']);
  if (json === undefined) throw bad('the config', 'is missing');
  const listen = section(c.listen, 'listen', ['host', 'port']);
  const admission = section(c.admission, 'admission', ['maxQueuedPerEngine', 'retryAfterS']);
  const timeouts = section(c.timeouts, 'timeouts', ['connectMs', 'firstByteMs', 'requestMs']);
  const limits = section(c.limits, 'limits', ['maxBodyBytes']);
  const health = section(c.health, 'health', ['intervalMs', 'timeoutMs']);
  const engines = list(c.engines, 'engines', parseEngine, true);
  if (engines.length === 0) throw bad('engines', 'must list at least one engine');
  uniqueNames(engines, 'engines');
  // Shares of the fleet's KV need every engine's: one left out would count as none.
  const unsized = engines.findIndex((e) => e.kvTokens === undefined);
  if (unsized >= 0 && engines.some((e) => e.kvTokens !== undefined)) {
    throw bad(`engines[${unsized}].kvTokens`, 'is missing: give kvTokens for every engine or for none');
  }
  const tenants = list(c.tenants, 'tenants', parseTenant, false);
  uniqueNames(tenants, 'tenants');
  const config: GatewayConfig = {
    listen: { host: text(listen.host, 'listen.host', GATEWAY.host), port: integer(listen.port, 'listen.port', GATEWAY.port, 0, 65535) },
    policy: oneOf(c.policy, 'policy', GATEWAY_POLICIES, GATEWAY.policy),
    engines,
    tenants,
    admission: {
      maxQueuedPerEngine: integer(admission.maxQueuedPerEngine, 'admission.maxQueuedPerEngine', GATEWAY.maxQueuedPerEngine, 0),
      retryAfterS: integer(admission.retryAfterS, 'admission.retryAfterS', GATEWAY.retryAfterS, 0),
    },
    timeouts: {
      connectMs: integer(timeouts.connectMs, 'timeouts.connectMs', GATEWAY.connectMs, 1),
      firstByteMs: integer(timeouts.firstByteMs, 'timeouts.firstByteMs', GATEWAY.firstByteMs, 1),
      requestMs: integer(timeouts.requestMs, 'timeouts.requestMs', GATEWAY.requestMs, 1),
    },
    limits: { maxBodyBytes: integer(limits.maxBodyBytes, 'limits.maxBodyBytes', GATEWAY.maxBodyBytes, 1) },
    health: {
      intervalMs: integer(health.intervalMs, 'health.intervalMs', GATEWAY.probeIntervalMs, 1),
      timeoutMs: integer(health.timeoutMs, 'health.timeoutMs', GATEWAY.probeTimeoutMs, 1),
    },
  };
  return config;
}

/** Reads and checks a config file (JSON). */
export function loadGatewayConfig(file: string): GatewayConfig {
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new SagaError(`gateway config: cannot read ${file}: ${(error as Error).message}`, 'ERR_SAGA_BAD_CONFIG');
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (error) {
    throw new SagaError(`gateway config: ${file} is not valid JSON: ${(error as Error).message}`, 'ERR_SAGA_BAD_CONFIG');
  }
  return parseGatewayConfig(json);
}
