/**
 * Random operation sequences for the differential property tests: fast-check arbitraries that produce
 * plain, printable operation descriptions, the resolution of each description into one concrete call
 * (ids picked among the blocks in a given state, so most calls are meaningful and some are not), and
 * the comparison of one call made on a KvCache and on the ReferencePool.
 *
 * Ids, hashes and keys are drawn from small sets so that ties in the eviction order, duplicate hashes,
 * double releases, full tiers and full table rows all happen often.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { SagaError } from '../../lib/errors';
import type { KvCache } from '../../lib/kv/kv_cache';
import { CACHED, FREE, ModelError, REFERENCED, type ReferencePool, type Snapshot } from './reference_pool';

// ---- descriptions ----

/** Which block an id argument names, resolved against the model's state when the op runs. */
export type IdPick = { from: 'referenced' | 'refNoHash' | 'cachedDevice' | 'cachedHost' | 'free' | 'any' | 'raw'; n: number };
/** 0n, a hash never used before, a value from a small universe, or a hash some block holds now. */
export type HashPick = { kind: 'zero' } | { kind: 'fresh' } | { kind: 'universe'; u: number } | { kind: 'held'; n: number };

/** A table row: usually one of the table's rows (n mod tableRows), sometimes a raw value (-1..5). */
export type RowPick = { kind: 'in'; n: number } | { kind: 'raw'; row: number };
/** A truncation length: usually within the row's current length (n mod (length + 1)), sometimes raw. */
export type LengthPick = { kind: 'in'; n: number } | { kind: 'raw'; length: number };

export type Op =
  | { op: 'lookup'; hashes: HashPick[]; heldPrefix: number }
  | { op: 'allocate'; items: { hash: HashPick; session: number; position: number }[] }
  | { op: 'commit'; items: { id: IdPick; hash: HashPick }[] }
  | { op: 'acquire'; ids: IdPick[] }
  | { op: 'release'; items: { id: IdPick; key: KeyPick }[] }
  | { op: 'setKeys'; items: { id: IdPick; key: KeyPick }[] }
  | { op: 'setSessionKeys'; items: { session: number; key: KeyPick; minPosition: number }[] }
  | { op: 'victims'; tier: 0 | 1; k: number }
  | { op: 'evict'; ids: IdPick[] }
  | { op: 'offload'; ids: IdPick[] }
  | { op: 'restore'; ids: IdPick[] }
  | { op: 'tableAppend'; items: { row: RowPick; id: IdPick }[] }
  | { op: 'tableTruncate'; items: { row: RowPick; length: LengthPick }[] }
  | { op: 'tableFree'; rows: RowPick[] }
  | { op: 'tableRead'; rows: RowPick[] }
  | { op: 'writePayload'; ids: IdPick[]; seed: number }
  | { op: 'readPayload'; ids: IdPick[] }
  | { op: 'malformed'; call: 'release' | 'allocate' | 'setKeys' | 'offload' | 'tableAppend'; flaw: 'length' | 'type' };

export interface PoolConfig {
  deviceCapacity: number;
  hostCapacity: number;
  payloadBytes: number;
  tableRows: number;
  tableCols: number;
}

export const HASH_UNIVERSE = 24;

/**
 * Hash values chosen to stress an open-addressing index whose slot is hash & mask (mask + 1 a power
 * of two, 16..128 here): half the values share their low 7 bits (one home slot, long probe runs),
 * the 0x7f ones sit in the last slot so runs wrap around, and many have bit 63 set (u64 across N-API).
 */
export function universeHash(u: number): bigint {
  return u <= HASH_UNIVERSE / 2 ? BigInt(u) : (BigInt(u) << 48n) | 0x7fn;
}
function freshHash(k: bigint): bigint {
  return k % 2n === 0n ? 1000n + k : (1n << 63n) | (k << 8n) | 0x7fn;
}

type From = IdPick['from'];
const ALL_FROM: From[] = ['referenced', 'refNoHash', 'cachedDevice', 'cachedHost', 'free', 'any', 'raw'];

/**
 * Ids for one batch: each mostly from the `intended` states (what the operation accepts), now and
 * then from any state or a raw value, so one batch in a few carries a fault.
 */
function idPicks(intended: From[], maxLength: number, minLength = 0): fc.Arbitrary<IdPick[]> {
  return fc.array(idPickOf(intended), { minLength, maxLength });
}
function idPickOf(intended: From[]): fc.Arbitrary<IdPick> {
  return fc.record({
    from: fc.oneof({ arbitrary: fc.constantFrom(...intended), weight: 30 }, { arbitrary: fc.constantFrom(...ALL_FROM), weight: 1 }),
    n: fc.nat({ max: 1000 }),
  });
}

const hashPick: fc.Arbitrary<HashPick> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'zero' as const }), weight: 6 },
  { arbitrary: fc.constant({ kind: 'fresh' as const }), weight: 12 },
  { arbitrary: fc.record({ kind: fc.constant('universe' as const), u: fc.integer({ min: 1, max: HASH_UNIVERSE }) }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('held' as const), n: fc.nat({ max: 1000 }) }), weight: 1 },
);
/** Hashes an allocate can always take: 0 or never used. */
const cleanHashPick: fc.Arbitrary<HashPick> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'zero' as const }), weight: 1 },
  { arbitrary: fc.constant({ kind: 'fresh' as const }), weight: 3 },
);
/** For commit: mostly new hashes, sometimes 0 or a taken one. */
const commitHashPick: fc.Arbitrary<HashPick> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'fresh' as const }), weight: 20 },
  { arbitrary: fc.constant({ kind: 'zero' as const }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('held' as const), n: fc.nat({ max: 1000 }) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('universe' as const), u: fc.integer({ min: 1, max: HASH_UNIVERSE }) }), weight: 2 },
);

/**
 * An eviction key: one of a few values (ties are the point), both zeros, infinities, rarely NaN, or
 * 'now', a clock that only grows (the LRU pattern: key = release time).
 */
export type KeyPick = number | 'now';
const key: fc.Arbitrary<KeyPick> = fc.oneof(
  { arbitrary: fc.constantFrom(0, 1, 2, 3), weight: 45 },
  { arbitrary: fc.constant('now' as const), weight: 25 },
  { arbitrary: fc.constantFrom(-0, 1.5, -1, Infinity, -Infinity), weight: 12 },
  { arbitrary: fc.constant(NaN), weight: 1 },
);
const session = fc.oneof({ arbitrary: fc.integer({ min: 0, max: 3 }), weight: 30 }, { arbitrary: fc.constant(-1), weight: 3 }, { arbitrary: fc.constant(-2), weight: 1 });
const position = fc.oneof({ arbitrary: fc.integer({ min: 0, max: 6 }), weight: 40 }, { arbitrary: fc.constant(-1), weight: 1 });
const validSession = fc.integer({ min: -1, max: 3 });
const validPosition = fc.integer({ min: 0, max: 6 });
const rowPick: fc.Arbitrary<RowPick> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('in' as const), n: fc.nat({ max: 100 }) }), weight: 15 },
  { arbitrary: fc.record({ kind: fc.constant('raw' as const), row: fc.integer({ min: -1, max: 5 }) }), weight: 1 },
);
const lengthPick: fc.Arbitrary<LengthPick> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('in' as const), n: fc.nat({ max: 100 }) }), weight: 10 },
  { arbitrary: fc.record({ kind: fc.constant('raw' as const), length: fc.integer({ min: -1, max: 7 }) }), weight: 1 },
);

const small = <T>(arb: fc.Arbitrary<T>, maxLength = 5) => fc.array(arb, { maxLength });
const op = <T extends string>(name: T) => fc.constant(name);

/** Operations with allocate batches of up to `maxBatch` blocks (other batches stay small). */
export function opArbWith({ maxBatch }: { maxBatch: number }): fc.Arbitrary<Op> {
  return fc.oneof(
  { arbitrary: fc.record({ op: op('lookup'), hashes: small(hashPick, 4), heldPrefix: fc.nat({ max: 4 }) }), weight: 3 },
  { arbitrary: fc.record({ op: op('allocate'), items: fc.array(fc.record({ hash: hashPick, session, position }), { maxLength: maxBatch }) }), weight: 4 },
  // allocations valid but for the pool's size, so pools fill up and eviction happens
  {
    arbitrary: fc.record({ op: op('allocate'), items: fc.array(fc.record({ hash: cleanHashPick, session: validSession, position: validPosition }), { minLength: 1, maxLength: maxBatch }) }),
    weight: 8,
  },
  { arbitrary: fc.record({ op: op('commit'), items: small(fc.record({ id: idPickOf(['refNoHash']), hash: commitHashPick }), 3) }), weight: 3 },
  { arbitrary: fc.record({ op: op('acquire'), ids: idPicks(['cachedDevice', 'referenced'], 5) }), weight: 4 },
  { arbitrary: fc.record({ op: op('release'), items: fc.array(fc.record({ id: idPickOf(['referenced']), key }), { maxLength: Math.max(8, maxBatch) }) }), weight: 12 },
  { arbitrary: fc.record({ op: op('setKeys'), items: small(fc.record({ id: idPickOf(['referenced', 'cachedDevice', 'cachedHost']), key })) }), weight: 3 },
  {
    arbitrary: fc.record({
      op: op('setSessionKeys'),
      items: small(fc.record({ session: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 3 }), weight: 15 }, { arbitrary: fc.constant(-1), weight: 1 }), key, minPosition: fc.oneof({ arbitrary: validPosition, weight: 15 }, { arbitrary: fc.constant(-1), weight: 1 }) }), 3),
    }),
    weight: 3,
  },
  { arbitrary: fc.record({ op: op('victims'), tier: fc.constantFrom(0 as const, 1 as const), k: fc.nat({ max: 60 }) }), weight: 2 },
  { arbitrary: fc.record({ op: op('evict'), ids: idPicks(['cachedDevice', 'cachedHost'], 4) }), weight: 3 },
  { arbitrary: fc.record({ op: op('offload'), ids: idPicks(['cachedDevice'], Math.max(4, Math.floor(maxBatch / 3)), 1) }), weight: 6 },
  { arbitrary: fc.record({ op: op('restore'), ids: idPicks(['cachedHost'], Math.max(4, Math.floor(maxBatch / 3)), 1) }), weight: 6 },
  { arbitrary: fc.record({ op: op('tableAppend'), items: small(fc.record({ row: rowPick, id: idPickOf(['referenced', 'cachedDevice']) }), 6) }), weight: 4 },
  { arbitrary: fc.record({ op: op('tableTruncate'), items: small(fc.record({ row: rowPick, length: lengthPick }), 3) }), weight: 2 },
  { arbitrary: fc.record({ op: op('tableFree'), rows: small(rowPick, 2) }), weight: 1 },
  { arbitrary: fc.record({ op: op('tableRead'), rows: small(rowPick, 3) }), weight: 1 },
  { arbitrary: fc.record({ op: op('writePayload'), ids: idPicks(['referenced', 'cachedDevice', 'cachedHost'], 3), seed: fc.nat({ max: 255 }) }), weight: 3 },
  { arbitrary: fc.record({ op: op('readPayload'), ids: idPicks(['referenced', 'cachedDevice', 'cachedHost'], 3) }), weight: 2 },
  {
    arbitrary: fc.record({
      op: op('malformed'),
      call: fc.constantFrom('release' as const, 'allocate' as const, 'setKeys' as const, 'offload' as const, 'tableAppend' as const),
      flaw: fc.constantFrom('length' as const, 'type' as const),
    }),
    weight: 1,
  },
) as fc.Arbitrary<Op>;
}

export const opArb = opArbWith({ maxBatch: 12 });

/** Larger pools for long sequences (heap compaction, long free queues, deep eviction). */
export const largeConfigArb: fc.Arbitrary<PoolConfig> = fc.record({
  deviceCapacity: fc.integer({ min: 64, max: 200 }),
  hostCapacity: fc.integer({ min: 0, max: 64 }),
  payloadBytes: fc.constantFrom(0, 4),
  tableRows: fc.integer({ min: 1, max: 8 }),
  tableCols: fc.integer({ min: 4, max: 40 }),
});

export const configArb: fc.Arbitrary<PoolConfig> = fc.record({
  deviceCapacity: fc.integer({ min: 8, max: 40 }),
  hostCapacity: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 16 }), weight: 6 }, { arbitrary: fc.constant(0), weight: 1 }),
  payloadBytes: fc.constantFrom(0, 4, 4, 8, 8),
  tableRows: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 4 }), weight: 6 }, { arbitrary: fc.constant(0), weight: 1 }),
  tableCols: fc.integer({ min: 0, max: 6 }),
});

// ---- resolution into concrete calls ----

/** Per-run state of the resolver: the counter behind fresh hashes. */
export class Resolver {
  private nextFresh = 0n;
  constructor(private readonly config: PoolConfig) {}

  private blockCount(): number {
    return this.config.deviceCapacity + this.config.hostCapacity;
  }

  pickId(p: IdPick, s: Snapshot): number {
    const D = this.config.deviceCapacity;
    const N = this.blockCount();
    const candidates: number[] = [];
    for (let id = 0; id < N; id++) {
      const st = s.state[id];
      const host = id >= D;
      const match =
        (p.from === 'referenced' && st === REFERENCED) ||
        (p.from === 'refNoHash' && st === REFERENCED && s.hash[id] === 0n) ||
        (p.from === 'cachedDevice' && st === CACHED && !host) ||
        (p.from === 'cachedHost' && st === CACHED && host) ||
        (p.from === 'free' && st === FREE) ||
        p.from === 'any';
      if (match) candidates.push(id);
    }
    if (p.from !== 'raw' && candidates.length > 0) return candidates[p.n % candidates.length];
    return (p.n % (N + 4)) - 2; // -2 .. N+1: mostly valid ids, some out of range
  }

  /**
   * Ids for a batch. With `distinct`, a pick that lands on an id already in the batch moves on to the
   * next unused candidate of its state, so batches that must be distinct mostly are (repeats remain
   * when a state has too few blocks, or through picks from other states).
   */
  pickIds(picks: IdPick[], s: Snapshot, distinct: boolean): Int32Array {
    const out: number[] = [];
    for (const p of picks) {
      let id = this.pickId(p, s);
      if (distinct && out.includes(id)) {
        for (let j = 1; j < 64; j++) {
          const next = this.pickId({ ...p, n: p.n + j }, s);
          if (!out.includes(next)) {
            id = next;
            break;
          }
        }
      }
      out.push(id);
    }
    return Int32Array.from(out);
  }

  /** 'now' reads the clock (from 4, past the fixed keys) and advances it now and then. */
  pickKey(k: KeyPick): number {
    if (k !== 'now') return k;
    this.clockTicks++;
    return 4 + Math.floor(this.clockTicks / 3);
  }
  private clockTicks = 0;

  pickRow(p: RowPick): number {
    if (p.kind === 'raw' || this.config.tableRows === 0) return p.kind === 'raw' ? p.row : (p.n % 3) - 1;
    return p.n % this.config.tableRows;
  }

  pickHash(p: HashPick, s: Snapshot): bigint {
    switch (p.kind) {
      case 'zero':
        return 0n;
      case 'fresh':
        return freshHash(this.nextFresh++);
      case 'universe':
        return universeHash(p.u);
      case 'held': {
        const held = Array.from(s.hash).filter((h) => h !== 0n);
        return held.length > 0 ? held[p.n % held.length] : universeHash((p.n % HASH_UNIVERSE) + 1);
      }
    }
  }

  /** The hashes some block holds now, and the universe: what lookups probe for the invariants. */
  probeHashes(s: Snapshot): bigint[] {
    const out = Array.from({ length: HASH_UNIVERSE }, (_, i) => universeHash(i + 1));
    for (const h of s.hash) if (h !== 0n) out.push(h);
    return out;
  }

  /** The concrete call for `op` given the model's snapshot `s`. */
  resolve(op: Op, s: Snapshot): Call {
    const ids = (picks: IdPick[], distinct = false) => this.pickIds(picks, s, distinct);
    const P = this.config.payloadBytes;
    switch (op.op) {
      case 'lookup': {
        // start with a few held hashes (in id order) so that long prefixes happen, then the random ones
        const held = Array.from(s.hash).filter((h) => h !== 0n).slice(0, op.heldPrefix);
        const hashes = BigUint64Array.from([...held, ...op.hashes.map((h) => this.pickHash(h, s))]);
        return { name: 'lookup', args: [hashes, filled(hashes.length + 1)], outputs: [1], describe: `lookup([${hashes}])` };
      }
      case 'allocate': {
        const hashes = BigUint64Array.from(op.items.map((i) => this.pickHash(i.hash, s)));
        const sessions = Int32Array.from(op.items, (i) => i.session);
        const positions = Int32Array.from(op.items, (i) => i.position);
        return { name: 'allocate', args: [hashes, sessions, positions, filled(hashes.length)], outputs: [3], describe: `allocate([${hashes}], [${sessions}], [${positions}])` };
      }
      case 'commit': {
        const i = ids(op.items.map((x) => x.id), true);
        const h = BigUint64Array.from(op.items.map((x) => this.pickHash(x.hash, s)));
        return { name: 'commit', args: [i, h], outputs: [], describe: `commit([${i}], [${h}])` };
      }
      case 'acquire':
      case 'evict': {
        const i = ids(op.ids, op.op === 'evict');
        return { name: op.op, args: [i], outputs: [], describe: `${op.op}([${i}])` };
      }
      case 'release':
      case 'setKeys': {
        // release: distinct picks, so most batches are valid; repeats still come from mixed picks
        const i = ids(op.items.map((x) => x.id), op.op === 'release');
        const k = Float64Array.from(op.items, (x) => this.pickKey(x.key));
        return { name: op.op, args: [i, k], outputs: [], describe: `${op.op}([${i}], [${fmtKeys(k)}])` };
      }
      case 'setSessionKeys': {
        const sessions = Int32Array.from(op.items, (x) => x.session);
        const k = Float64Array.from(op.items, (x) => this.pickKey(x.key));
        const minPositions = Int32Array.from(op.items, (x) => x.minPosition);
        return { name: 'setSessionKeys', args: [sessions, k, minPositions], outputs: [], describe: `setSessionKeys([${sessions}], [${fmtKeys(k)}], [${minPositions}])` };
      }
      case 'victims':
        return { name: 'victims', args: [op.tier, filled(op.k)], outputs: [1], describe: `victims(${op.tier}, k=${op.k})` };
      case 'offload':
      case 'restore': {
        const i = ids(op.ids, true);
        return { name: op.op, args: [i, filled(i.length)], outputs: [1], describe: `${op.op}([${i}])` };
      }
      case 'tableAppend': {
        const rows = Int32Array.from(op.items, (x) => this.pickRow(x.row));
        const i = ids(op.items.map((x) => x.id));
        return { name: 'tableAppend', args: [rows, i], outputs: [], describe: `tableAppend([${rows}], [${i}])` };
      }
      case 'tableTruncate': {
        const rows = Int32Array.from(op.items, (x) => this.pickRow(x.row));
        // 'in' lengths stay within the row's length as the batch so far has left it
        const current = new Map<number, number>();
        const lengths = Int32Array.from(op.items, (x, i) => {
          const row = rows[i];
          const length = current.get(row) ?? (row >= 0 && row < this.config.tableRows ? s.tableLengths[row] : 0);
          const cut = x.length.kind === 'raw' ? x.length.length : x.length.n % (length + 1);
          if (cut >= 0 && cut <= length) current.set(row, cut);
          return cut;
        });
        return { name: 'tableTruncate', args: [rows, lengths], outputs: [], describe: `tableTruncate([${rows}], [${lengths}])` };
      }
      case 'tableFree': {
        const rows = Int32Array.from(op.rows, (r) => this.pickRow(r));
        return { name: 'tableFree', args: [rows], outputs: [], describe: `tableFree([${rows}])` };
      }
      case 'tableRead': {
        const rows = Int32Array.from(op.rows, (r) => this.pickRow(r));
        return {
          name: 'tableRead',
          args: [rows, filled(rows.length * this.config.tableCols), filled(rows.length)],
          outputs: [1, 2],
          describe: `tableRead([${rows}])`,
        };
      }
      case 'writePayload': {
        const i = ids(op.ids);
        const data = Uint8Array.from({ length: i.length * P }, (_, j) => (op.seed * 31 + j * 7) & 0xff);
        return { name: 'writePayload', args: [i, data], outputs: [], describe: `writePayload([${i}], seed ${op.seed})` };
      }
      case 'readPayload': {
        const i = ids(op.ids);
        return { name: 'readPayload', args: [i, new Uint8Array(i.length * P).fill(0xa5)], outputs: [1], payloadIds: i, describe: `readPayload([${i}])` };
      }
      case 'malformed':
        return malformed(op.call, op.flaw);
    }
  }
}

function fmtKeys(k: Float64Array): string {
  return Array.from(k, (x) => (Object.is(x, -0) ? '-0' : String(x))).join(',');
}

/** An Int32Array output buffer prefilled with a sentinel, so writes past what the contract allows show. */
function filled(n: number): Int32Array {
  return new Int32Array(n).fill(-7);
}

/** Calls KvCache rejects in TypeScript: lengths that differ, or a plain Array where a TypedArray goes. */
function malformed(call: Extract<Op, { op: 'malformed' }>['call'], flaw: 'length' | 'type'): Call {
  const bad = flaw === 'type';
  const arr = <T>(typed: T, plain: unknown[]): T => (bad ? (plain as unknown as T) : typed);
  switch (call) {
    case 'release':
      return { name: 'release', args: [arr(Int32Array.of(0, 1), [0, 1]), bad ? keysOf(2) : keysOf(1)], outputs: [], describe: `release (${flaw})` };
    case 'allocate':
      return {
        name: 'allocate',
        args: [BigUint64Array.of(0n), arr(Int32Array.of(0), [0]), bad ? Int32Array.of(0) : Int32Array.of(0, 1), new Int32Array(2)],
        outputs: [],
        describe: `allocate (${flaw})`,
      };
    case 'setKeys':
      return { name: 'setKeys', args: [Int32Array.of(0), bad ? [1] : keysOf(2)], outputs: [], describe: `setKeys (${flaw})` };
    case 'offload':
      return { name: 'offload', args: [arr(Int32Array.of(0), [0]), new Int32Array(bad ? 1 : 0)], outputs: [], describe: `offload (${flaw})` };
    case 'tableAppend':
      return { name: 'tableAppend', args: [arr(Int32Array.of(0), [0]), bad ? Int32Array.of(0) : Int32Array.of(0, 0)], outputs: [], describe: `tableAppend (${flaw})` };
  }
}

function keysOf(n: number): Float64Array {
  return new Float64Array(n);
}

// ---- running one call on both ----

export interface Call {
  name: string;
  args: unknown[];
  /** Indices of args that are output buffers, compared after the call. */
  outputs: number[];
  /** For readPayload: the ids whose bytes the contract defines (compared only then). */
  payloadIds?: Int32Array;
  describe: string;
}

export interface Outcome {
  value?: unknown;
  outputs: unknown[];
  error?: unknown;
}

function cloneArg(a: unknown): unknown {
  return ArrayBuffer.isView(a) ? (a as unknown as { slice(): unknown }).slice() : Array.isArray(a) ? [...a] : a;
}

export function apply(pool: KvCache | ReferencePool, call: Call): Outcome {
  const args = call.args.map(cloneArg);
  const fn = (pool as unknown as Record<string, (...a: unknown[]) => unknown>)[call.name];
  try {
    const value = fn.apply(pool, args);
    return { value, outputs: call.outputs.map((i) => Array.from(args[i] as ArrayLike<number>)) };
  } catch (error) {
    return { error, outputs: [] };
  }
}

/**
 * The native outcome must match the model's: both throw a SagaError with the same code (the model's
 * code is the one the documented validation order gives), or both return the same value and outputs.
 */
export function expectSameOutcome(call: Call, model: Outcome, native: Outcome, payloadDefined: boolean): void {
  const where = call.describe;
  if (model.error !== undefined) {
    if (!(model.error instanceof ModelError)) throw model.error; // a bug in the model itself
    expect(native.error, `${where}: model threw ${model.error.code} (${model.error.message}), native returned ${String(native.value)}`).toBeDefined();
    expect(native.error, `${where}: not a SagaError: ${String(native.error)}`).toBeInstanceOf(SagaError);
    const code = (native.error as SagaError).code;
    expect(code, `${where}: native threw ${code} (${(native.error as Error).message}); model: ${model.error.message}`).toBe(model.error.code);
    return;
  }
  if (native.error !== undefined) {
    throw new Error(`${where}: native threw ${String((native.error as SagaError).code)} (${(native.error as Error).message}), model returned ${String(model.value)}`);
  }
  expect(native.value, `${where}: return value`).toEqual(model.value);
  if (call.name === 'readPayload' && !payloadDefined) return; // bytes the contract leaves open
  expect(native.outputs, `${where}: outputs`).toEqual(model.outputs);
}
