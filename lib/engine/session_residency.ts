/**
 * Where each agent session's KV lives in `saga engine`: resident in one of the llama.cpp context's
 * sequences, offloaded to the host tier (a state file under /dev/shm), or nowhere (dropped: its next call
 * recomputes it). The eviction policy decides, through the same KvCache keys it sets in the simulator:
 *
 * - Each session's context is mirrored as blocks of a KvCache (the native block core): allocated and
 *   released with the policy's keys when a call ends, re-keyed by the policy later as it learns
 *   (setSessionKeys). Hashes are salted per session: llama.cpp sequences share no KV with each other.
 * - A sequence holds a whole session, so the unit of eviction is a session: when a call needs a sequence
 *   and none is free, the idle session whose first block has the lowest key (the context the policy
 *   would keep least) gives its sequence up. A session that is running is never a victim, nor one the
 *   policy holds (`EvictionPolicy.holdUntilS`: its next call is expected soon enough that the waiting
 *   call should wait instead).
 * - The victim goes to the host tier when one is configured and the policy's `offload` says so (absent:
 *   always, as vLLM's offloading connector writes every block through to CPU memory), else it is dropped.
 *   A full host tier drops its own lowest-keyed sessions to make room.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SagaError } from '../errors';
import { KvCache } from '../kv/kv_cache';
import { HASH_ROOT, hashTokenBlocks } from '../kv/token_hash';
import { type IdleSession, type SessionVictim, chooseSessionVictim, releaseSessionBlocks } from '../policy/session_release';
import type { CallInfo, EvictionPolicy } from '../policy/types';
import { GOLDEN_GAMMA, MASK64 } from '../workloads/hashing';
import type { LlamaContextSequence } from './llama_runtime';

type Token = LlamaContextSequence['contextTokens'][number];

/** A padding token id for a session's last partial block (hashing covers whole blocks). */
const PAD_TOKEN = 0xffffffff;

export interface ResidencyOptions {
  readonly sequences: readonly LlamaContextSequence[];
  /** Tokens per KvCache block (bookkeeping granularity of keys). */
  readonly blockSize: number;
  /** Most tokens one sequence holds. */
  readonly contextSize: number;
  readonly eviction: EvictionPolicy;
  /** Host tier: directory for state files and its capacity in tokens (0: no host tier). */
  readonly hostDir: string;
  readonly hostTokens: number;
  /** Seconds to restore / recompute `tokens` tokens of KV (the engine's measured costs). */
  restoreS(tokens: number): number;
  recomputeS(tokens: number): number;
}

interface SessionKv {
  readonly session: number;
  /** Sequence index while resident, else -1. */
  slot: number;
  /** Block ids in the KvCache (device while resident, host while offloaded); empty when dropped. */
  blocks: Int32Array;
  /** Tokens held by the host-tier file, and its path. */
  hostTokens: number;
  hostFile: string | undefined;
  /** The write of hostFile, while in flight (a restore waits for it). */
  saving: Promise<void> | undefined;
}

/** What a call found when it got its sequence. */
export interface Placement {
  readonly slot: number;
  /** The session's KV came back from the host tier for this call. */
  readonly restored: boolean;
}

export interface ResidencyCounters {
  offloads: number;
  drops: number;
  restores: number;
}

export class SessionResidency {
  readonly counters: ResidencyCounters = { offloads: 0, drops: 0, restores: 0 };
  private readonly slots: { session: number; busy: boolean }[];
  private readonly sessions = new Map<number, SessionKv>();
  private readonly cache: KvCache;
  private readonly blocksPerSequence: number;
  private hostTokensUsed = 0;
  private releaseSequence = 0;

  constructor(private readonly options: ResidencyOptions) {
    this.slots = options.sequences.map(() => ({ session: -1, busy: false }));
    this.blocksPerSequence = Math.ceil(options.contextSize / options.blockSize);
    const hostBlocks = Math.ceil(options.hostTokens / options.blockSize) + this.blocksPerSequence;
    this.cache = new KvCache({
      deviceCapacity: this.slots.length * this.blocksPerSequence + this.blocksPerSequence,
      hostCapacity: options.hostTokens > 0 ? hostBlocks : 0,
    });
    options.eviction.attach?.(0, this.cache);
    if (options.hostTokens > 0) fs.mkdirSync(options.hostDir, { recursive: true });
  }

  get residentSessions(): number {
    return this.slots.filter((s) => s.session >= 0).length;
  }

  get hostSessions(): number {
    let n = 0;
    for (const s of this.sessions.values()) if (s.hostFile !== undefined) n++;
    return n;
  }

  sequence(slot: number): LlamaContextSequence {
    return this.options.sequences[slot];
  }

  isRunning(session: number): boolean {
    const kv = this.sessions.get(session);
    return kv !== undefined && kv.slot >= 0 && this.slots[kv.slot].busy;
  }

  /**
   * True when `session` could get a sequence now: its own, a free one, or one an idle session gives up
   * (the policy holding none of them against a waiting call).
   */
  canPlace(session: number, nowS: number): boolean {
    const kv = this.sessions.get(session);
    if (kv !== undefined && kv.slot >= 0) return !this.slots[kv.slot].busy;
    return this.slots.some((s) => s.session < 0 && !s.busy) || this.victim(nowS).slot >= 0;
  }

  /**
   * The earliest time after `nowS` at which the policy stops holding an idle session (a call waiting
   * for a sequence can be placed then, if nothing else frees one first); Infinity when none is held.
   */
  nextHoldExpiryS(nowS: number): number {
    return this.victim(nowS).heldUntilS;
  }

  /** The session's blocks' salted hashes for `tokens` (whole blocks; a partial last one padded). */
  blockHashes(session: number, tokens: readonly Token[]): BigUint64Array {
    const b = this.options.blockSize;
    const padded = new Uint32Array(Math.ceil(tokens.length / b) * b).fill(PAD_TOKEN);
    for (let i = 0; i < tokens.length; i++) padded[i] = tokens[i] as number;
    const salt = (HASH_ROOT ^ ((BigInt(session + 1) * GOLDEN_GAMMA) & MASK64)) || 1n;
    return hashTokenBlocks(padded, b, salt);
  }

  /**
   * Gives `session` a sequence, marked busy: its own if resident, else a free one or an idle session's
   * (offloaded or dropped by the policy), restoring the session from the host tier where it is there.
   * Call only when canPlace(session).
   */
  async place(session: number, nowS: number): Promise<Placement> {
    let kv = this.sessions.get(session);
    if (kv === undefined) {
      kv = { session, slot: -1, blocks: new Int32Array(0), hostTokens: 0, hostFile: undefined, saving: undefined };
      this.sessions.set(session, kv);
    }
    if (kv.slot >= 0) {
      this.slots[kv.slot].busy = true;
      return { slot: kv.slot, restored: false };
    }
    const slot = this.freeSlot(nowS);
    this.slots[slot].busy = true; // claimed before any await, so concurrent placements cannot take it
    const seq = this.options.sequences[slot];
    await this.savesInFlight.get(slot); // the previous occupant's state is written before it is cleared
    await seq.clearHistory();
    this.slots[slot].session = session;
    kv.slot = slot;
    let restored = false;
    await kv.saving;
    if (kv.hostFile !== undefined) {
      const file = kv.hostFile;
      try {
        await seq.loadStateFromFile(file, { acceptRisk: true });
        const back = new Int32Array(kv.blocks.length);
        this.cache.restore(kv.blocks, back);
        kv.blocks = back;
        restored = true;
        this.counters.restores++;
      } catch {
        // A state file that cannot be read back costs a recompute, nothing else.
        await seq.clearHistory();
        this.forgetBlocks(kv);
      }
      this.leaveHostTier(kv);
    }
    return { slot, restored };
  }

  /**
   * The call in `slot` ended: its session's context (now `tokens`) is mirrored in the cache and released
   * with the policy's keys; the sequence stays with the session, idle.
   */
  release(slot: number, call: CallInfo, tokens: readonly Token[], nowS: number, stop?: string): void {
    const s = this.slots[slot];
    const kv = this.sessions.get(s.session);
    if (kv === undefined) throw new SagaError(`sequence ${slot} has no session`, 'ERR_SAGA_INTERNAL');
    s.busy = false;
    this.forgetBlocks(kv);
    const hashes = this.blockHashes(kv.session, tokens);
    const ids = releaseSessionBlocks(this.cache, this.options.eviction, { call, hashes, nowS, sequence: this.releaseSequence++, stop });
    kv.blocks = ids;
  }

  /** A call that failed or was aborted: the sequence goes back idle, its KV dropped (it may be partial). */
  async abandon(slot: number): Promise<void> {
    const s = this.slots[slot];
    const kv = this.sessions.get(s.session);
    if (kv !== undefined) {
      this.forgetBlocks(kv);
      kv.slot = -1;
    }
    s.session = -1;
    await this.options.sequences[slot].clearHistory();
    s.busy = false;
  }

  /** Removes every file of the host tier. */
  close(): void {
    for (const kv of this.sessions.values()) if (kv.hostFile !== undefined) fs.rmSync(kv.hostFile, { force: true });
  }

  /** A free sequence, or one taken from the idle session the policy keeps least. */
  private freeSlot(nowS: number): number {
    const free = this.slots.findIndex((s) => s.session < 0 && !s.busy);
    if (free >= 0) return free;
    const { slot, key } = this.victim(nowS);
    if (slot < 0) throw new SagaError('no idle sequence to take', 'ERR_SAGA_INTERNAL');
    this.evictSlot(slot, key, nowS);
    return slot;
  }

  /** The idle session a waiting call would displace now (lib/policy/session_release.ts's rule). */
  private victim(nowS: number): SessionVictim {
    const idle: IdleSession[] = [];
    this.slots.forEach((s, slot) => {
      if (s.busy || s.session < 0) return;
      const blocks = this.sessions.get(s.session)?.blocks;
      const firstBlock = blocks === undefined || blocks.length === 0 ? -1 : blocks[0];
      idle.push({ slot, session: s.session, firstBlock, tokens: this.options.sequences[slot].contextTokens.length });
    });
    return chooseSessionVictim(this.cache, this.options.eviction, idle, nowS, this.options);
  }

  /** Moves the session in `slot` to the host tier or drops it, as the policy decides; frees the slot. */
  private evictSlot(slot: number, key: number, nowS: number): void {
    const s = this.slots[slot];
    const kv = this.sessions.get(s.session);
    s.session = -1;
    if (kv === undefined) return;
    kv.slot = -1;
    const seq = this.options.sequences[slot];
    const tokens = seq.contextTokens.length;
    const offload =
      this.options.hostTokens >= tokens &&
      kv.blocks.length > 0 &&
      (this.options.eviction.offload?.({ session: kv.session, tokens, key, nowS, restoreS: this.options.restoreS(tokens), recomputeS: this.options.recomputeS(tokens) }) ?? true) &&
      this.makeHostRoom(tokens, key);
    if (!offload) {
      this.forgetBlocks(kv);
      this.counters.drops++;
      return;
    }
    // The state is written synchronously with respect to this sequence's next use: place() awaits
    // clearHistory on it after this returns, and llama.cpp serialises work per context.
    const file = path.join(this.options.hostDir, `session-${kv.session}.kv`);
    kv.hostFile = file;
    kv.hostTokens = tokens;
    this.hostTokensUsed += tokens;
    const hostIds = new Int32Array(kv.blocks.length);
    this.cache.offload(kv.blocks, hostIds);
    kv.blocks = hostIds;
    this.counters.offloads++;
    // Started before any other work on the sequence; place() awaits it before clearing the sequence. A
    // write that fails leaves the session dropped.
    const saving = seq.saveStateToFile(file).then(
      () => undefined,
      () => {
        if (kv.hostFile !== file) return;
        this.leaveHostTier(kv);
        this.forgetBlocks(kv);
        this.counters.offloads--;
        this.counters.drops++;
      },
    );
    kv.saving = saving;
    this.savesInFlight.set(slot, saving);
    void saving.then(() => {
      if (kv.saving === saving) kv.saving = undefined;
      if (this.savesInFlight.get(slot) === saving) this.savesInFlight.delete(slot);
    });
  }

  /** State writes in flight, by sequence. */
  private readonly savesInFlight = new Map<number, Promise<void>>();

  /** Drops host-tier sessions keyed below `key` until `tokens` fit; false when they cannot. */
  private makeHostRoom(tokens: number, key: number): boolean {
    if (this.hostTokensUsed + tokens <= this.options.hostTokens) return true;
    const keys = this.cache.snapshot().key;
    const held = [...this.sessions.values()].filter((kv) => kv.hostFile !== undefined).sort((a, b) => keys[a.blocks[0]] - keys[b.blocks[0]]);
    let freed = 0;
    const need = this.hostTokensUsed + tokens - this.options.hostTokens;
    const drop: SessionKv[] = [];
    for (const kv of held) {
      if (freed >= need) break;
      if (keys[kv.blocks[0]] > key) return false; // what is held is worth more than the newcomer
      drop.push(kv);
      freed += kv.hostTokens;
    }
    if (freed < need) return false;
    for (const kv of drop) {
      this.leaveHostTier(kv);
      this.forgetBlocks(kv);
      this.counters.drops++;
    }
    return true;
  }

  /** The session's state file is no longer held: its room is given back and the file removed. */
  private leaveHostTier(kv: SessionKv): void {
    if (kv.hostFile === undefined) return;
    fs.rm(kv.hostFile, { force: true }, () => undefined);
    this.hostTokensUsed -= kv.hostTokens;
    kv.hostTokens = 0;
    kv.hostFile = undefined;
  }

  private forgetBlocks(kv: SessionKv): void {
    if (kv.blocks.length > 0) this.cache.evict(kv.blocks);
    kv.blocks = new Int32Array(0);
  }
}
