/**
 * `kvflow`: a peer, implemented from its paper's description. KVFlow (Z. Pan et al., "KVFlow: Efficient
 * Prefix Caching for Accelerating LLM-Based Multi-Agent Workflows", arXiv 2507.07400, 2025).
 *
 * What the paper describes (abstract; section 3, workflow-aware eviction): the agent execution schedule
 * is abstracted as an Agent Step Graph, and each agent gets a steps-to-execution value, how many workflow
 * steps remain until it is invoked again (0 for agents of the current step). Eviction works on the nodes
 * of the prefix tree: a node's value is the smallest steps-to-execution of the agents whose prompts pass
 * through it (a shared prefix is as urgent as its most urgent user), and the node with the largest value
 * goes first. Its prefetching (loading KV back from host memory ahead of the next step) is left out: the
 * block core here has no host tier in `saga simulate` or `saga replay`. The authors' SGLang code
 * (github.com/PanZaifeng/KVFlow, agent_manager.py) takes a node's priority as the minimum over its agents,
 * as above.
 *
 * Mapping onto our workloads (agent programs chaining LLM calls with tool or user time between them):
 * - An agent is a session (one program): its calls are the agent's invocations, a tool gap is the time
 *   it is not running. The workflow's step clock is the invocation count: each LLM call admitted (on any
 *   engine) is one step, so steps-to-execution counts how many other invocations run before this one's
 *   next, in rounds: the invocations in between divided by the programs live at the time (in the paper's
 *   workflows a step is a round in which each active agent runs once; with many independent programs
 *   interleaved, a round is one invocation per live program). Values are whole steps, as in the paper.
 * - The Agent Step Graph is learned online, since our programs come with no declared workflow: a node is
 *   a step state, (workflow kind, how the call ended: stop reason and tool), and its edge to the agent's
 *   next invocation carries the mean number of steps observed between a call ending in that state and
 *   the program's next call arriving. Whether there is a next invocation is known at the call's end (the
 *   call-finish event says when the program ends): an ended program's steps-to-execution is infinite.
 *   Before any observation of a node, the mean over all nodes (1 step before anything is observed: the
 *   agent runs again next).
 * - A session whose next call has arrived (waiting to be admitted) or runs has steps-to-execution 0. While
 *   it waits between calls its value is its graph node's (the ASG has no clock: an agent sitting in the
 *   same step state is as far from execution as the graph says, however long it has sat there).
 * - Keys on the block core: key = -(whole steps-to-execution) x 2^32 + (the engine's release counter), so
 *   the largest steps-to-execution is evicted first and, among equal values, the least recently released
 *   (the paper's tie-break, and vLLM's order); an ended program's own blocks take the largest value. A
 *   session's blocks are re-keyed (`setSessionKeys`) when its value changes between calls: to 0 when its
 *   next call arrives, to the ended value when it ends.
 * - Prefix tree: blocks are prefix-chained, so a block's users are the sessions whose prompts hold it.
 *   The prefix a session shares with other sessions (same first prompt block: a system prompt; learned
 *   online, ./prefix_groups.ts) takes the smallest steps-to-execution over the live sessions sharing it,
 *   the paper's node value; past that prefix a block is the session's own. When a session ends, its
 *   shared prefix keeps the group's value while other sessions of the group live.
 * Within one release, ties go deeper block first, as the core orders them (vLLM's tail-first order).
 * Causal: the graph, groups and step clock come from events up to now.
 */
import type { KvCache } from '../kv/kv_cache';
import { composeBundle } from './bundle';
import { EngineKeys } from './engine_keys';
import { PrefixGroups } from './prefix_groups';
import type { EvictionPolicy, PolicyBundle, PolicyEvent, ReleaseInfo } from './types';
import { FcfsQueue, SessionAffinityRouting } from './vllm';

interface Edge {
  steps: number;
  count: number;
}

interface SessionState {
  engineId: number;
  /** Its steps-to-execution now: 0 while its call waits or runs, the graph's value while it is between calls. */
  steps: number;
  /** Graph node of the last finished call and the step it finished at (for learning the edge). */
  node: string | undefined;
  finishStep: number;
}

/** Keys are -(steps-to-execution) x STEP_SCALE + (the engine's release counter): steps first, then LRU. */
export const STEP_SCALE = 2 ** 32;
/** Steps-to-execution are whole steps, at most STEP_CAP (so keys stay exact doubles); an ended program's is ENDED_STEPS. */
export const STEP_CAP = 2 ** 19;
export const ENDED_STEPS = 2 ** 20;

export class KvflowEviction implements EvictionPolicy {
  readonly name = 'kvflow';
  /** Per engine: the cache and the release counter (LRU among equal steps-to-execution). */
  private readonly engines = new EngineKeys();
  private readonly graph = new Map<string, Edge>();
  private totalSteps = 0;
  private totalCount = 0;
  private readonly sessions = new Map<number, SessionState>();
  private readonly groups = new PrefixGroups();
  /** Invocations admitted so far (the clock the steps are counted on). */
  step = 0;

  attach(engineId: number, cache: KvCache): void {
    this.engines.attach(engineId, cache);
  }

  /** The eviction key of blocks whose steps-to-execution is `steps`, released at counter `seq`. */
  static key(steps: number, seq: number): number {
    const whole = steps >= ENDED_STEPS ? ENDED_STEPS : Math.min(STEP_CAP, Math.round(steps));
    return -whole * STEP_SCALE + seq;
  }

  /** The graph node of a call that ended with `stop` / `toolKind` in a program of `kind`. */
  static node(kind: string, stop: string | undefined, toolKind: string | undefined): string {
    return `${kind}\u0000${stop ?? ''}\u0000${toolKind ?? ''}`;
  }

  /** Learned steps-to-execution from a node (mean steps until the agent's next invocation). */
  stepsFrom(node: string): number {
    const edge = this.graph.get(node);
    if (edge !== undefined && edge.count > 0) return edge.steps / edge.count;
    return this.totalCount > 0 ? this.totalSteps / this.totalCount : 1;
  }

  /** Smallest steps-to-execution over the session and the other live sessions sharing its prefix. */
  private groupSteps(session: number, own: number): number {
    let best = own;
    for (const other of this.groups.others(session)) {
      const state = this.sessions.get(other);
      if (state !== undefined && state.steps < best) best = state.steps;
    }
    return best;
  }

  releaseKeys(info: ReleaseInfo, out: Float64Array): void {
    const session = info.call.session;
    let state = this.sessions.get(session);
    if (state === undefined) {
      state = { engineId: info.engineId, steps: 0, node: undefined, finishStep: this.step };
      this.sessions.set(session, state);
    }
    state.engineId = info.engineId;
    if (info.reason === 'preempt') {
      // Re-admitted as soon as it can be: steps-to-execution 0.
      state.steps = 0;
    } else {
      const node = KvflowEviction.node(info.call.kind, info.stop, info.toolKind);
      state.node = node;
      state.finishStep = this.step;
      state.steps = this.stepsFrom(node);
    }
    const seq = this.engines.tick(info.engineId);
    const ownKey = KvflowEviction.key(state.steps, seq);
    const shared = this.groups.sharedDepth(session);
    const sharedKey = shared > 0 ? KvflowEviction.key(this.groupSteps(session, state.steps), seq) : ownKey;
    const positions = info.positions;
    for (let i = 0; i < info.count; i++) out[i] = positions[i] < shared ? sharedKey : ownKey;
  }

  observe(event: PolicyEvent): void {
    const { session, callIndex } = event.call;
    if (event.type === 'call-arrive') {
      if (callIndex === 0) this.groups.join(session, event.call.blockHashes);
      const state = this.sessions.get(session);
      if (state === undefined) {
        this.sessions.set(session, { engineId: event.engineId, steps: 0, node: undefined, finishStep: this.step });
        return;
      }
      if (state.node !== undefined) {
        // Steps in rounds: a round runs every live program once (the paper's workflow step).
        const steps = (this.step - state.finishStep) / Math.max(1, this.sessions.size);
        const edge = this.graph.get(state.node);
        if (edge === undefined) this.graph.set(state.node, { steps, count: 1 });
        else {
          edge.steps += steps;
          edge.count++;
        }
        this.totalSteps += steps;
        this.totalCount++;
        state.node = undefined;
      }
      // The agent is invoked now: steps-to-execution 0 for its cached blocks.
      state.steps = 0;
      this.engines.rekeySession(state.engineId, session, KvflowEviction.key(0, this.engines.tick(state.engineId)), 0);
    } else if (event.type === 'call-admit') {
      this.step++;
    } else if (event.lastCall) {
      const state = this.sessions.get(session);
      // Never invoked again: its own blocks go first; a prefix other live sessions share keeps their value.
      const keep = this.groups.hasOthers(session) ? this.groups.sharedDepth(session) : 0;
      if (state !== undefined) this.engines.rekeySession(state.engineId, session, KvflowEviction.key(ENDED_STEPS, this.engines.tick(state.engineId)), keep);
      this.groups.leave(session);
      this.sessions.delete(session);
    }
  }
}

/** KVFlow changes eviction only: vLLM's routing (session affinity) and FCFS queue around it. */
export function createKvflowBundle(): PolicyBundle {
  return composeBundle({ name: 'kvflow', routing: new SessionAffinityRouting(), queue: new FcfsQueue(), eviction: new KvflowEviction() });
}
