/**
 * The Agent Execution Graph (DESIGN.md, "The three mechanisms"): learned online from the events every
 * policy sees, it predicts for a paused session when its next call comes and how much of its context
 * that call will read, and for a kind's shared prefix how deep it is. docs/aeg.md has the model.
 *
 * A node (step state) is where a call's end leaves its session: the program's tenant and workflow kind,
 * why the call stopped (`tool_use`, `end_turn`, ...), the tool it invoked, and its call index (log2
 * buckets: agents behave differently early and late). Finest of all, the same with the order of
 * magnitude of the session's pace instead of the call index: a running geometric mean of its gaps
 * (sessions keep their pace: on the Claude Code traces its last gap alone cut saga's misses at 5% capacity
 * from 1.44x Bélády's to 1.40x; the mean over gaps from the calls' ends, 1.34x -> 1.33x). Each node's
 * StepStats count next calls and ends, sketch the gaps, and average the reuse. Nodes back off to coarser
 * ones until they have evidence: tenant+kind+stop+tool+pace -> tenant+kind+stop+tool+index ->
 * kind+stop+tool+index -> kind+stop+tool -> kind+stop -> kind -> all.
 * Every observation updates its whole chain, so a new tenant's programs start from what the kind taught.
 * A gap grows with the output of the call before it; per kind, a robust fit learns by how much
 * (./gap_slope.ts), the nodes sketch what remains, and a prediction adds the output's part back (on the
 * Claude Code traces, 1.41x -> 1.37x Bélády's misses at 5% capacity).
 *
 * A gap counts from the call's end: the event's time, or the later end a replay reads from its trace
 * (it serves each call at its start; 1.37x -> 1.34x Bélády's misses at 5% on the Claude Code traces).
 *
 * Causal by construction: it learns from an event when the event happens, and a prediction uses only
 * what was learned before it. The end of a program is learned when its last call finishes (the session
 * closes); the next call and its gap when that call arrives.
 */
import { AEG } from '../constants';
import { GapSlope } from './gap_slope';
import { StepStats } from './step_stats';

/**
 * What the graph reads of a call. lib/policy's ObservedCall has these fields (the graph sits below the
 * policies and knows nothing else of them).
 */
export interface ObservedCall {
  readonly session: number;
  readonly tenant: string;
  readonly kind: string;
  readonly callIndex: number;
  readonly blockHashes: BigUint64Array;
  /** Read at the call's finish only (its length is unknown before). */
  readonly outputTokens: number;
}

/** The events the graph learns from (lib/policy's PolicyEvent is one of these shapes). */
export interface GraphEvent {
  readonly type: string;
  readonly call: ObservedCall;
  readonly nowS: number;
  /** call-finish: the program ended with this call; why it stopped; the tool it invoked. */
  readonly lastCall?: boolean;
  readonly stop?: string;
  readonly toolKind?: string;
  /** call-finish: when the call ended, where that is after nowS (a replay serves a call at its start); else nowS. */
  readonly endS?: number;
}

/**
 * When a finished call ended: its event's time, unless the driver knows a later end (a replay serves a
 * call at its start and reads its end from the trace). For the graph's events and lib/policy's releases.
 */
export function callEndS(at: { readonly nowS: number; readonly endS?: number }): number {
  return at.endS !== undefined && at.endS > at.nowS ? at.endS : at.nowS;
}

/** A gap's order of magnitude: log2(1 + seconds), 0..12. */
export function gapBucket(gapS: number): number {
  return Math.min(12, Math.max(0, Math.floor(Math.log2(1 + gapS))));
}

/** How far along its program a call is: 0, 1, 2-3, 4-7, 8-15, 16+. */
export function callIndexBucket(callIndex: number): number {
  return callIndex <= 0 ? 0 : Math.min(5, 1 + Math.floor(Math.log2(callIndex)));
}

/** Leading blocks two prompts share. */
export function commonPrefixBlocks(a: BigUint64Array, b: BigUint64Array): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** A step state: its chain of StepStats, finest first, and its kind's gap-per-output-token fit. */
export interface Step {
  readonly nodes: readonly StepStats[];
  readonly slope: GapSlope;
}

export interface Prediction {
  /** Probability that the session makes another call (given it has not yet, if it has been away). */
  readonly nextCallProbability: number;
  /** Median seconds until that call, from now; undefined when it has been away longer than any gap seen. */
  readonly remainingGapS: number | undefined;
  /** Share of the previous prompt's blocks the next call reads again (1 = all of it). */
  readonly reuseRatio: number;
}

/**
 * A live session's state, one object per session, updated in place from call to call (a gateway sees a
 * session's calls every few milliseconds to minutes: a new object per call would outlive the young
 * generation and become old-generation garbage, which only a full GC frees).
 */
interface SessionState {
  /** Its last call has finished and its next has not arrived: `step`, `finishS` and the hashes are that call's. */
  paused: boolean;
  step: Step;
  finishS: number;
  /** The finished call's prompt hashes: the first `hashCount` entries (a copy, callers may reuse their buffers; the buffer is reused). */
  hashes: BigUint64Array;
  hashCount: number;
  /**
   * Its pace: a running geometric mean of its gaps in seconds (weight AEG.paceNewestWeight on the newest,
   * over 1 + seconds); sessions keep their pace (a user at the keyboard, a fast tool). NaN before its second call.
   */
  paceS: number;
  /** The finished call's output tokens (the gap after it grows with them: ./gap_slope.ts). */
  outputTokens: number;
  /** When its running call was admitted; NaN while none is. */
  admittedS: number;
}

const NO_HASHES = new BigUint64Array(0);
/** A new session's step until its first call finishes (nothing learns into it: a session is paused, and its
 * gap recorded, only once a finished call has set its step). */
const NO_STEP: Step = { nodes: [], slope: new GapSlope() };

export class AgentExecutionGraph {
  private readonly nodes = new Map<string, StepStats>();
  /** Gap per output token, by workflow kind. */
  private readonly slopes = new Map<string, GapSlope>();
  /** Each step's chain of nodes, by the step's key (a step state is asked for again and again). */
  private readonly steps = new Map<string, Step>();
  /** Output keys (outputKeys) by tenant and kind. */
  private readonly outputKeyLists = new Map<string, readonly string[]>();
  /** Live sessions: from their first call's admission or finish until their last call or forgetSession. */
  private readonly sessions = new Map<number, SessionState>();
  /** Admission-to-finish seconds of calls (by output keys). */
  private readonly serviceS = new Map<string, { sum: number; n: number }>();
  /** Output tokens of finished calls: per tenant+kind, per kind, and over all (sum, count). */
  private readonly outputs = new Map<string, { sum: number; n: number }>();
  /** Per tenant+kind: the last first prompt, and the recent common prefixes of first prompts. */
  private readonly firstPrompts = new Map<string, { last: BigUint64Array; shared: number[] }>();

  observe(event: GraphEvent): void {
    if (event.type === 'call-admit') this.sessionState(event.call.session).admittedS = event.nowS;
    else if (event.type === 'call-arrive') this.arrive(event.call, event.nowS);
    else if (event.type === 'call-finish') this.finish(event.call, callEndS(event), event.lastCall === true, event.stop, event.toolKind);
  }

  /** The step a call ending now with `stop`/`toolKind` leaves its session in. */
  stepOf(call: ObservedCall, stop: string | undefined, toolKind: string | undefined): Step {
    const k = call.kind;
    const s = stop ?? '?';
    const t = toolKind ?? '?';
    const b = callIndexBucket(call.callIndex);
    const pace = this.sessions.get(call.session)?.paceS ?? NaN;
    const g = Number.isNaN(pace) ? '-' : String(gapBucket(pace));
    const key = `${call.tenant}\u0000${k}\u0000${s}\u0000${t}\u0000${b}\u0000${g}`;
    let step = this.steps.get(key);
    if (step === undefined) {
      const nodes = [
        this.node(`${call.tenant}\u0000${k}\u0000${s}\u0000${t}\u0000gap${g}`),
        this.node(`${call.tenant}\u0000${k}\u0000${s}\u0000${t}\u0000${b}`),
        this.node(`*\u0000${k}\u0000${s}\u0000${t}\u0000${b}`),
        this.node(`*\u0000${k}\u0000${s}\u0000${t}`),
        this.node(`*\u0000${k}\u0000${s}`),
        this.node(`*\u0000${k}`),
        this.node('*'),
      ];
      step = { nodes, slope: this.slopeOf(k) };
      this.steps.set(key, step);
    }
    return step;
  }

  /**
   * What follows `step`, for a session away `elapsedS` seconds already (0 at the call's end; negative
   * before it, in a replay that serves a call at its start) whose last call wrote `outputTokens`: the gap
   * is the kind's seconds per output token times those (./gap_slope.ts) plus a residual, whose
   * distribution the nodes sketch.
   */
  predict(step: Step, elapsedS = 0, outputTokens = 0): Prediction {
    const outcome = finest(step, (s) => s.evidence);
    const w = AEG.priorWeight;
    const p0 = outcome === undefined ? AEG.priorNextCallProbability : (outcome.continued + w * AEG.priorNextCallProbability) / (outcome.evidence + w);
    const gapStats = finest(step, (s) => s.gaps.count);
    let remainingGapS: number | undefined;
    let stillAway = 1; // P(gap > elapsed | a next call comes)
    if (gapStats === undefined) {
      // The prior gap, or once that has passed the prior gap again (no evidence of when it returns).
      remainingGapS = elapsedS < AEG.priorGapS ? AEG.priorGapS - elapsedS : AEG.priorGapS;
    } else {
      // Time away past the part of the gap the output accounts for: the residual's elapsed time.
      const residualElapsedS = elapsedS - step.slope.secondsPerToken * tokensOrZero(outputTokens);
      if (residualElapsedS <= 0) {
        remainingGapS = gapStats.gaps.quantile(0.5) - residualElapsedS; // the residual's median, plus the output's part still to run
      } else {
        remainingGapS = gapStats.gaps.remainingMedian(residualElapsedS);
        stillAway = 1 - gapStats.gaps.cdf(residualElapsedS);
      }
    }
    // Bayes: having waited `elapsed` without a call makes a call less likely.
    const p = stillAway < 1 ? (p0 * stillAway) / (p0 * stillAway + (1 - p0)) : p0;
    const reuse = finest(step, (s) => s.reuseCount);
    const reuseRatio = reuse === undefined ? AEG.priorReuseRatio : reuse.typicalReuse();
    return { nextCallProbability: remainingGapS === undefined ? 0 : p, remainingGapS, reuseRatio };
  }

  /** The prediction for a paused session at `nowS`; undefined for a session not paused (or unknown). */
  predictSession(session: number, nowS: number): Prediction | undefined {
    const state = this.sessions.get(session);
    return state === undefined || !state.paused ? undefined : this.predict(state.step, nowS - state.finishS, state.outputTokens);
  }

  /**
   * Lets a session go without learning from it: a server that takes a long-idle session as ended (nothing
   * over HTTP says a program ended) drops its per-session state, so the graph stays bounded. Nothing is
   * recorded as an end or a gap: the session's absence taught what it could through the overdue re-checks.
   */
  forgetSession(session: number): void {
    this.sessions.delete(session);
  }

  /** Leading blocks the programs of a tenant's kind share (a system prompt, a tool schema): learned. */
  sharedPrefixBlocks(tenant: string, kind: string): number {
    const entry = this.firstPrompts.get(`${tenant}\u0000${kind}`);
    if (entry === undefined || entry.shared.length === 0) return 0;
    const sorted = [...entry.shared].sort((a, b) => a - b);
    return sorted[(sorted.length - 1) >> 1];
  }

  /**
   * Output tokens a call of this tenant and kind is expected to write: the mean over finished calls
   * (an output's length is learned when it ends), backing off to the kind, then all calls, then the prior.
   */
  expectedOutputTokens(call: ObservedCall): number {
    return meanOf(this.outputs, this.outputKeys(call)) ?? AEG.priorOutputTokens;
  }

  /**
   * Seconds of work left in `call`'s program, the call included, were it alone: the call's service, then
   * the expected further calls (geometric, from the kind's chance that a program ends after a call), each
   * a gap and a call's service. Service times are admission to finish as observed (so they include the
   * batch they shared); undefined until a call of the kind has finished.
   */
  remainingWorkS(call: ObservedCall): number | undefined {
    const keys = this.outputKeys(call);
    const service = meanOf(this.serviceS, keys);
    if (service === undefined) return undefined;
    const kind = this.nodes.get(keys[1]); // the kind's node: `*\u0000${kind}`
    if (kind === undefined || kind.evidence === 0) return service;
    const w = AEG.priorWeight;
    const pEnd = (kind.ended + w * (1 - AEG.priorNextCallProbability)) / (kind.evidence + w);
    const furtherCalls = (1 - pEnd) / Math.max(pEnd, 1e-3);
    const residual = kind.gaps.count > 0 ? kind.gaps.quantile(0.5) : AEG.priorGapS;
    const gap = residual + this.slopeOf(call.kind).secondsPerToken * this.expectedOutputTokens(call);
    return service + furtherCalls * (gap + service);
  }

  /** Step states with any evidence (for reports and tests). */
  get nodeCount(): number {
    return this.nodes.size;
  }

  /** A session's state, created on its first event. */
  private sessionState(session: number): SessionState {
    let state = this.sessions.get(session);
    if (state === undefined) {
      state = { paused: false, step: NO_STEP, finishS: 0, hashes: NO_HASHES, hashCount: 0, paceS: NaN, outputTokens: 0, admittedS: NaN };
      this.sessions.set(session, state);
    }
    return state;
  }

  /** Keys of the output and service means, finest first: tenant+kind, kind, all (the same array for every call of a tenant and kind). */
  private outputKeys(call: ObservedCall): readonly string[] {
    const key = `${call.tenant}\u0000${call.kind}`;
    let keys = this.outputKeyLists.get(key);
    if (keys === undefined) {
      keys = [key, `*\u0000${call.kind}`, '*'];
      this.outputKeyLists.set(key, keys);
    }
    return keys;
  }

  private slopeOf(kind: string): GapSlope {
    return entry(this.slopes, kind, () => new GapSlope());
  }

  private node(key: string): StepStats {
    return entry(this.nodes, key, () => new StepStats());
  }

  private arrive(call: ObservedCall, nowS: number): void {
    const state = this.sessions.get(call.session);
    if (state !== undefined && state.paused) {
      const reuse = state.hashCount === 0 ? 1 : commonPrefixOf(state.hashes, state.hashCount, call.blockHashes) / state.hashCount;
      const gap = Math.max(0, nowS - state.finishS);
      state.paceS = paceAfter(state.paceS, gap);
      // The nodes sketch what the output does not account for; the fit then learns from the whole gap.
      const residual = gap - state.step.slope.secondsPerToken * state.outputTokens;
      for (const stats of state.step.nodes) stats.recordNextCall(residual, reuse);
      state.step.slope.add(state.outputTokens, gap);
      state.paused = false;
    }
    if (call.callIndex === 0) this.learnSharedPrefix(call);
  }

  /** A call ended at `endS` (the event's time, or later in a replay: GraphEvent's endS). */
  private finish(call: ObservedCall, endS: number, lastCall: boolean, stop: string | undefined, toolKind: string | undefined): void {
    const keys = this.outputKeys(call);
    const known = this.sessions.get(call.session);
    if (known !== undefined && !Number.isNaN(known.admittedS)) {
      addTo(this.serviceS, keys, endS - known.admittedS);
      known.admittedS = NaN;
    }
    addTo(this.outputs, keys, call.outputTokens);
    const step = this.stepOf(call, stop, toolKind);
    if (lastCall) {
      for (const stats of step.nodes) stats.recordEnd();
      this.sessions.delete(call.session);
      return;
    }
    const state = known ?? this.sessionState(call.session);
    state.paused = true;
    state.step = step;
    state.finishS = endS;
    state.outputTokens = tokensOrZero(call.outputTokens);
    const n = call.blockHashes.length;
    if (state.hashes.length < n) state.hashes = new BigUint64Array(Math.max(n, 2 * state.hashes.length));
    state.hashes.set(call.blockHashes);
    state.hashCount = n;
  }

  private learnSharedPrefix(call: ObservedCall): void {
    const key = `${call.tenant}\u0000${call.kind}`;
    const entry = this.firstPrompts.get(key);
    const hashes = call.blockHashes.slice();
    if (entry === undefined) {
      this.firstPrompts.set(key, { last: hashes, shared: [] });
      return;
    }
    entry.shared.push(commonPrefixBlocks(entry.last, hashes));
    if (entry.shared.length > AEG.sharedPrefixWindow) entry.shared.shift();
    entry.last = hashes;
  }
}

function addTo(sums: Map<string, { sum: number; n: number }>, keys: readonly string[], value: number): void {
  for (const key of keys) {
    const o = sums.get(key);
    if (o === undefined) sums.set(key, { sum: value, n: 1 });
    else {
      o.sum += value;
      o.n++;
    }
  }
}

/** The mean at the finest key with enough evidence, else over all; undefined with none. */
function meanOf(sums: Map<string, { sum: number; n: number }>, keys: readonly string[]): number | undefined {
  for (const key of keys) {
    const o = sums.get(key);
    if (o !== undefined && o.n >= AEG.minEvidence) return o.sum / o.n;
  }
  const all = sums.get(keys[keys.length - 1]);
  return all === undefined || all.n === 0 ? undefined : all.sum / all.n;
}

/** The map's value for `key`, made and stored on first use. */
function entry<V>(map: Map<string, V>, key: string, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}

/** A session's pace after a gap: the gap itself first, then a geometric running mean over 1 + seconds. */
function paceAfter(paceS: number, gapS: number): number {
  if (Number.isNaN(paceS)) return gapS;
  const w = AEG.paceNewestWeight;
  return Math.expm1(w * Math.log1p(gapS) + (1 - w) * Math.log1p(paceS));
}

/** A count of output tokens as the gap fit reads it: an unknown (NaN) or negative one counts as none. */
function tokensOrZero(tokens: number): number {
  return tokens > 0 && Number.isFinite(tokens) ? tokens : 0;
}

/** Leading blocks of `b` equal to the first `n` of `a`. */
function commonPrefixOf(a: BigUint64Array, n: number, b: BigUint64Array): number {
  const m = Math.min(n, b.length);
  let i = 0;
  while (i < m && a[i] === b[i]) i++;
  return i;
}

/** The finest stats in the chain with enough evidence by `measure`, else the coarsest with any. */
function finest(step: Step, measure: (s: StepStats) => number): StepStats | undefined {
  const nodes = step.nodes;
  for (const stats of nodes) if (measure(stats) >= AEG.minEvidence) return stats;
  for (let i = nodes.length - 1; i >= 0; i--) if (measure(nodes[i]) > 0) return nodes[i];
  return undefined;
}
