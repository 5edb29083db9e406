/**
 * `continuum`: a peer, implemented from its paper's description. Continuum (H. Li, Q. Mang, R. He et al.,
 * "Continuum: Efficient and Robust Multi-Turn LLM Agent Scheduling with KV Cache Time-to-Live",
 * arXiv 2511.02230, 2025; later versions retitled "CacheTTL").
 *
 * What the paper describes (abstract, and its design sections on the TTL choice and scheduling):
 * - When an LLM call ends in a tool call, the program's KV cache is pinned in GPU memory for a
 *   time-to-live; when the TTL expires the KV is released to ordinary eviction (robust to tools that run
 *   long). While pinned, the KV is kept; the next call of the program, arriving within the TTL, finds it.
 * - The TTL is chosen by a cost/benefit rule on the tool's duration distribution, learned online:
 *     tau* = argmax_tau  F_tool(tau) x (eta x Q + Reload(context)) - tau
 *   F_tool: the empirical CDF of that tool's observed durations (tau ranges over 0 and the observed
 *   values); Reload: the seconds to recompute the context (prefill, no host tier here); Q: the mean
 *   queueing delay a program's returning call suffers when its KV was not kept; eta: the ordering benefit,
 *   -Pearson correlation between steps done k and steps left N-k over completed programs (the paper's
 *   observation that programs deep in their turns are close to finishing). Pinning for tau costs tau.
 *   Cold start (arXiv v6, section 4.2): with at most 100 tool returns observed in all, an exponential
 *   prior of mean 1 s and eta = 1 (the rule then gives tau = ln(B / 1 s) for B > 1 s, else 0); with at
 *   most 100 of this tool, the pooled CDF of all tools; else the tool's own CDF.
 * - Scheduling: program-level first-come-first-serve (a call's priority is its program's arrival), a
 *   returning call whose KV is pinned goes first (section 4.3), and the running call of the latest
 *   program is the one preempted. Routing is not the paper's subject: vLLM's session affinity (./vllm.ts).
 *
 * Source note: the search tools reached the paper's abstract and summaries (arxiv.org/html/2511.02230v2,
 * v4; sciencestack.ai's summary names "reload costs, per-turn queueing reductions and tool-call
 * distributions" and an optimal TTL tau*), not its full text; the exact form of the rule above (equation
 * 2, the v6 cold-start thresholds, the queue order) follows the section-by-section transcription in
 * github.com/burninglhw/vllm-continuum docs/continuum-paper.md. Our choices where the paper leaves them
 * open: windows of the last 1024 durations per tool, 256 queueing samples, 256 completed programs;
 * Reload = context tokens / RELOAD_TOKENS_PER_S (the simulator's Llama-3.1-8B/H100 prefill,
 * docs/cost-model.md: 4,096 tokens in 107 ms, 16,384 in 532 ms); a tool's duration is measured from the
 * call's end (its release) to the arrival of the program's next call.
 *
 * On the block core (lowest key evicted first): unpinned blocks take vLLM's LRU key, a per-engine counter
 * ticked at every release (as `sequence` is); pinned blocks take PIN_KEY_BASE - (program arrival), above
 * every LRU key, so they go only when nothing else is left, the latest program's first (the paper's
 * order for releasing pins under memory pressure). Keys are static, so a pin's expiry is applied by
 * re-keying (`setSessionKeys`) the session's blocks to the LRU counter at the first release or event at
 * or after the expiry, in expiry order (strictly after the deadline, as the paper's algorithm): lazily,
 * hence causally, and before any later release takes its key, so the LRU order is as if the blocks had
 * been freed at expiry. A pinned program whose next call has arrived stays pinned until that call is
 * admitted (then its blocks are referenced; any left over go back to LRU). The block core knows which
 * session allocated a block, and `setSessionKeys` reaches only those: the leading blocks a session shares
 * with other sessions (./prefix_groups.ts) therefore take the LRU key, never a pin (they are refreshed by
 * every session using them). Re-keying at expiry also refreshes the session's blocks of earlier calls.
 */
import { Heap } from 'heap-js';
import { callEndS } from '../graph/aeg';
import type { KvCache } from '../kv/kv_cache';
import { composeBundle } from './bundle';
import { EngineKeys } from './engine_keys';
import { PrefixGroups } from './prefix_groups';
import type { CallInfo, EvictionPolicy, PolicyBundle, PolicyEvent, QueuePolicy, ReleaseInfo, RunningInfo } from './types';
import { SessionAffinityRouting } from './vllm';

/** Pinned keys are PIN_KEY_BASE - program arrival (seconds): above any LRU counter. */
export const PIN_KEY_BASE = 1e15;
/** Tool returns observed (in all, then of one tool) up to which the cold-start rules hold (v6, 4.2). */
export const COLD_START_SAMPLES = 100;
/** Mean of the cold-start exponential prior on tool durations, seconds (v6, 4.2). */
export const PRIOR_MEAN_S = 1;
/** Recompute rate behind Reload(context): the simulator's Llama-3.1-8B prefill on one H100. */
export const RELOAD_TOKENS_PER_S = 32_000;
export const TOOL_WINDOW = 1024;
export const QUEUE_WINDOW = 256;
export const PROGRAM_WINDOW = 256;
/** Priority lead of a returning call whose KV is pinned (it goes before program-level FCFS order). */
const PINNED_LEAD_S = 1e12;

function upperBound(a: number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The last `capacity` values, kept sorted (for an empirical CDF). */
class SortedWindow {
  private readonly order: number[] = [];
  readonly sorted: number[] = [];
  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.sorted.length;
  }

  add(x: number): void {
    if (this.order.length === this.capacity) {
      const old = this.order.shift() as number;
      this.sorted.splice(upperBound(this.sorted, old) - 1, 1);
    }
    this.order.push(x);
    this.sorted.splice(upperBound(this.sorted, x), 0, x);
  }
}

/** tau maximizing F(tau) x benefit - tau over tau in {0} and the samples (ties: the smaller tau). */
export function bestTtl(sorted: readonly number[], benefitS: number): number {
  const n = sorted.length;
  if (n === 0 || !(benefitS > 0)) return 0;
  let i = 0;
  while (i < n && sorted[i] <= 0) i++;
  let best = 0;
  let bestUtility = (i / n) * benefitS;
  while (i < n) {
    const tau = sorted[i];
    if (tau >= benefitS) break; // F <= 1: utility below 0 <= the utility of tau = 0
    while (i < n && sorted[i] === tau) i++;
    const utility = (i / n) * benefitS - tau;
    if (utility > bestUtility) {
      best = tau;
      bestUtility = utility;
    }
  }
  return best;
}

interface Pin {
  readonly engineId: number;
  readonly deadlineS: number;
  /** The program's next call has arrived: protected until it is admitted. */
  returned: boolean;
}

/** A pin's expiry, queued by deadline (then session); stale entries are skipped when popped. */
interface Expiry {
  readonly deadlineS: number;
  readonly session: number;
}

/** -Pearson correlation of (k, N - k), k = 1..N-1, over the last PROGRAM_WINDOW completed programs. */
class OrderingBenefit {
  private readonly lengths: number[] = [];
  private n = 0;
  private sx = 0;
  private sy = 0;
  private sxx = 0;
  private syy = 0;
  private sxy = 0;

  private apply(length: number, sign: number): void {
    for (let k = 1; k < length; k++) {
      const y = length - k;
      this.n += sign;
      this.sx += sign * k;
      this.sy += sign * y;
      this.sxx += sign * k * k;
      this.syy += sign * y * y;
      this.sxy += sign * k * y;
    }
  }

  add(length: number): void {
    if (this.lengths.length === PROGRAM_WINDOW) this.apply(this.lengths.shift() as number, -1);
    this.lengths.push(length);
    this.apply(length, 1);
  }

  /** eta; 0 while the correlation is undefined. */
  value(): number {
    const n = this.n;
    if (n < 2) return 0;
    const vx = this.sxx - (this.sx * this.sx) / n;
    const vy = this.syy - (this.sy * this.sy) / n;
    if (!(vx > 1e-9) || !(vy > 1e-9)) return 0;
    const cov = this.sxy - (this.sx * this.sy) / n;
    return Math.max(-1, Math.min(1, -cov / Math.sqrt(vx * vy)));
  }
}

/** Whether a finished call ended in a tool call (the program continues after a tool). */
function endsInTool(stop: string | undefined, toolKind: string | undefined): boolean {
  return stop === 'tool_use' || (stop === undefined && toolKind !== undefined);
}

export class ContinuumEviction implements EvictionPolicy {
  readonly name = 'continuum';
  /** Per engine: the cache and the LRU counter (one tick per release and per pin returned to LRU). */
  private readonly engines = new EngineKeys();
  private readonly pins = new Map<number, Pin>();
  private readonly heap = new Heap<Expiry>((a, b) => a.deadlineS - b.deadlineS || a.session - b.session);
  private readonly groups = new PrefixGroups();
  private readonly programArrivalS = new Map<number, number>();
  /** Per session: when its last call ended and, if it ended in a tool call, the tool. */
  private readonly lastFinish = new Map<number, { endS: number; tool: string | undefined }>();
  private readonly arrivalS = new Map<number, number>();
  private readonly pinnedAtArrival = new Set<number>();
  private readonly durations = new Map<string, SortedWindow>();
  private readonly allDurations = new SortedWindow(TOOL_WINDOW);
  private toolSamples = 0;
  private readonly queueDelays: number[] = [];
  private queueDelaySum = 0;
  private readonly eta = new OrderingBenefit();
  /** TTLs chosen (> 0) and tool-call releases, for diagnostics and tests. */
  pinsMade = 0;
  toolReleases = 0;

  attach(engineId: number, cache: KvCache): void {
    this.engines.attach(engineId, cache);
  }

  /** The TTL (seconds) for a call that ended in `tool` holding `contextTokens` of KV. */
  chooseTtl(tool: string, contextTokens: number): number {
    const reloadS = contextTokens / RELOAD_TOKENS_PER_S;
    const queueS = this.queueDelays.length === 0 ? 0 : this.queueDelaySum / this.queueDelays.length;
    if (this.toolSamples <= COLD_START_SAMPLES) {
      const benefit = queueS + reloadS; // eta = 1 at cold start
      return benefit > PRIOR_MEAN_S ? PRIOR_MEAN_S * Math.log(benefit / PRIOR_MEAN_S) : 0;
    }
    const own = this.durations.get(tool);
    const window = own !== undefined && own.size > COLD_START_SAMPLES ? own : this.allDurations;
    return bestTtl(window.sorted, this.eta.value() * queueS + reloadS);
  }

  /** Is the session's KV pinned now (for the queue policy and tests)? */
  isPinned(session: number): boolean {
    return this.pins.has(session);
  }

  pinnedAtArrivalOf(session: number): boolean {
    return this.pinnedAtArrival.has(session);
  }

  programArrivalOf(call: CallInfo): number {
    return this.programArrivalS.get(call.session) ?? call.arrivalS;
  }

  /** Returns the session's blocks to LRU order (now) and forgets its pin. */
  private unpin(session: number, pin: Pin): void {
    this.pins.delete(session);
    this.engines.rekeySession(pin.engineId, session, this.engines.tick(pin.engineId), 0);
  }

  /** Applies every expiry strictly before `nowS`, in deadline order. */
  private expire(nowS: number): void {
    for (let top = this.heap.peek(); top !== undefined && top.deadlineS < nowS; top = this.heap.peek()) {
      this.heap.pop();
      const session = top.session;
      const pin = this.pins.get(session);
      if (pin === undefined || pin.deadlineS !== top.deadlineS || pin.returned) continue;
      this.unpin(session, pin);
    }
  }

  releaseKeys(info: ReleaseInfo, out: Float64Array): void {
    this.expire(info.nowS);
    const session = info.call.session;
    const lru = this.engines.tick(info.engineId);
    if (info.reason === 'finish') {
      const tool = endsInTool(info.stop, info.toolKind) ? (info.toolKind ?? info.stop ?? 'tool') : undefined;
      const endS = callEndS(info); // a tool call starts when the LLM call ends (later than now in a replay)
      this.lastFinish.set(session, { endS, tool });
      if (tool !== undefined) {
        this.toolReleases++;
        const ttl = this.chooseTtl(tool, info.call.promptTokens + info.call.outputTokens);
        if (ttl > 0) {
          this.pinsMade++;
          const old = this.pins.get(session);
          if (old !== undefined) this.pins.delete(session);
          const pin: Pin = { engineId: info.engineId, deadlineS: endS + ttl, returned: false };
          this.pins.set(session, pin);
          this.heap.push({ deadlineS: pin.deadlineS, session });
          const key = PIN_KEY_BASE - this.programArrivalOf(info.call);
          const shared = this.groups.sharedDepth(session);
          const positions = info.positions;
          for (let i = 0; i < info.count; i++) out[i] = positions[i] < shared ? lru : key;
          return;
        }
      }
    }
    out.fill(lru, 0, info.count);
  }

  observe(event: PolicyEvent): void {
    this.expire(event.nowS);
    const { session, callIndex } = event.call;
    if (event.type === 'call-arrive') {
      this.arrivalS.set(session, event.nowS);
      if (callIndex === 0) {
        this.programArrivalS.set(session, event.nowS);
        this.groups.join(session, event.call.blockHashes);
      } else {
        const last = this.lastFinish.get(session);
        if (last?.tool !== undefined) {
          const seconds = Math.max(0, event.nowS - last.endS);
          let own = this.durations.get(last.tool);
          if (own === undefined) {
            own = new SortedWindow(TOOL_WINDOW);
            this.durations.set(last.tool, own);
          }
          own.add(seconds);
          this.allDurations.add(seconds);
          this.toolSamples++;
        }
      }
      const pin = this.pins.get(session);
      if (pin !== undefined) {
        pin.returned = true;
        this.pinnedAtArrival.add(session);
      } else {
        this.pinnedAtArrival.delete(session);
      }
    } else if (event.type === 'call-admit') {
      const pin = this.pins.get(session);
      if (pin !== undefined) this.unpin(session, pin);
      const arrived = this.arrivalS.get(session);
      if (callIndex > 0 && !this.pinnedAtArrival.has(session) && arrived !== undefined) {
        const wait = Math.max(0, event.nowS - arrived);
        this.queueDelays.push(wait);
        this.queueDelaySum += wait;
        if (this.queueDelays.length > QUEUE_WINDOW) this.queueDelaySum -= this.queueDelays.shift() as number;
      }
    } else if (event.lastCall) {
      const pin = this.pins.get(session);
      if (pin !== undefined) this.unpin(session, pin);
      this.eta.add(callIndex + 1);
      this.groups.leave(session);
      this.programArrivalS.delete(session);
      this.lastFinish.delete(session);
      this.arrivalS.delete(session);
      this.pinnedAtArrival.delete(session);
    }
  }
}

/** Program-level FCFS; a returning call whose KV is pinned first; preempt the latest program's call. */
export class ContinuumQueue implements QueuePolicy {
  readonly name = 'program-fcfs';
  constructor(private readonly eviction: ContinuumEviction) {}

  priority(call: CallInfo, _nowS: number): number {
    const program = this.eviction.programArrivalOf(call);
    return this.eviction.pinnedAtArrivalOf(call.session) ? program - PINNED_LEAD_S : program;
  }

  preemptionVictim(running: readonly RunningInfo[], _nowS: number): number {
    let victim = running.length - 1;
    let latest = -Infinity;
    for (let i = running.length - 1; i >= 0; i--) {
      const program = this.eviction.programArrivalOf(running[i].call);
      if (program > latest) {
        latest = program;
        victim = i;
      }
    }
    return victim;
  }
}

export function createContinuumBundle(): PolicyBundle {
  const eviction = new ContinuumEviction();
  return composeBundle({ name: 'continuum', routing: new SessionAffinityRouting(), queue: new ContinuumQueue(eviction), eviction });
}
