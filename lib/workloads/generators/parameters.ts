/**
 * Every constant of the workload generators, each with its source next to it.
 *
 * Source tags used below:
 * - [CC]  measured on ../shared/data/traces/claude-code (146 real Claude Code sessions) by
 *         `npx tsx scripts/trace_stats.ts` (top-level requests only; the script's header says how each
 *         statistic is computed). Claude Code is a coding agent like the SWE-bench ones but interactive.
 * - [SWEB] SWE-bench (Jimenez et al., ICLR 2024), Table 1: issue text length mean 195.1 words, max 4,477.
 * - [SWEA] SWE-agent (Yang et al., NeurIPS 2024), repository princeton-nlp/SWE-agent, config/default.yaml.
 * - [OH]  OpenHands' SWE-bench evaluation README (evaluation/benchmarks/swe_bench): example runs pass
 *         max_iter 100; "if no condenser configuration is specified, the 'noop' condenser will be used".
 * - [AGENTS] SWE-agent and OpenHands agents on SWE-bench Verified average roughly 20-60 LLM calls per
 *         task, with contexts growing to tens of thousands of tokens (published agent statistics).
 * - [WA]  WebArena (Zhou et al., ICLR 2024): tasks take ~10-30 steps; accessibility-tree observations of
 *         a few thousand tokens each.
 * - [WARUN] repository web-arena-x/webarena, run.py defaults: --max_steps 30, --max_tokens 384,
 *         --max_obs_length 1920 (tokens; the reference agent truncates each observation to it), and
 *         `args.sleep_after_execution = 2.0` (seconds the harness waits after every browser action).
 * - [WAPROMPT] web-arena-x/webarena agent/prompts/raw/p_cot_id_actree_2s.py, the reference CoT agent's
 *         prompt (intro, action space, two worked examples): 4,703 characters.
 * - [CPT] ~4 characters per token for English text and code (OpenAI's tokenizer rule of thumb), and
 *         ~1.3 tokens per English word; used only to turn sizes in characters or words into tokens.
 * - "estimate": no source gives the number; the comment says what it was chosen to match.
 *
 * Lognormals are given by median and p90 (see rng.ts); sizes in tokens, times in seconds.
 */
import type { LognormalSpec } from './rng';

export type { LognormalSpec };

/** Defaults of `generateWorkload` options. */
export const DEFAULT_OPTIONS = {
  /** Tasks (programs) in a workload. Estimate: enough for stable averages, small enough for a quick run. */
  tasks: 100,
  /** Poisson task arrivals per second. Estimate: one task every 10 s, a moderate load; callers sweep it. */
  ratePerS: 0.1,
  /** Seed of every random draw. */
  seed: 1,
  /** Tokens per KV block: vLLM's default block size (16). */
  blockSize: 16,
} as const;

// ---------------------------------------------------------------------------------------------------
// swebench: coding agents (SWE-agent / OpenHands CodeAct style) resolving SWE-bench issues.
// ---------------------------------------------------------------------------------------------------

export type SwebenchTool = 'test' | 'shell' | 'edit' | 'read' | 'search';
export const SWEBENCH_TOOLS: readonly SwebenchTool[] = ['test', 'shell', 'edit', 'read', 'search'];

export interface ToolSpec {
  /** Relative frequency among tool calls. */
  share: number;
  /** Seconds the tool runs (the gap until the next call). */
  gapS: LognormalSpec;
  /** Tokens of the tool's result appended to the context. */
  resultTokens: LognormalSpec;
}

export interface SwebenchParams {
  /** System prompt + tool schema at the head of every call; the same blocks for every task of a tenant. */
  scaffoldTokens: number;
  /** The issue text (the task's own instruction). */
  issueTokens: LognormalSpec;
  /** The fixed instance instructions that wrap the issue (after it in the prompt, so not shared). */
  instanceTemplateTokens: number;
  /** LLM calls per task. */
  callsPerTask: LognormalSpec;
  /** Output tokens of a call that ends in a tool call. */
  outputTokensToolUse: LognormalSpec;
  /** Output tokens of the last call (ends the turn). */
  outputTokensEndTurn: LognormalSpec;
  tools: Record<SwebenchTool, ToolSpec>;
  /** A prompt that would exceed this many tokens is compacted first. */
  compactAtTokens: number;
  /** Tokens kept after a compaction (summary plus what the agent keeps), beyond scaffold and instruction. */
  keptAfterCompactionTokens: LognormalSpec;
}

export const SWEBENCH: SwebenchParams = {
  // [CC] system_tokens p50 2,767 + tool_tokens p50 11,899 (per session; the scaffold at the head of every
  // request of the session).
  scaffoldTokens: 2767 + 11899,
  // [SWEB] mean 195.1 words ≈ 250 tokens at [CPT] 1.3 tokens/word, max 4,477 words ≈ 5,800 tokens. Median
  // and p90 are an estimate: right-skewed (mean > median) with this lognormal's mean ≈ 250.
  issueTokens: { median: 180, p90: 500, min: 20, max: 5800 },
  // [SWEA] instance_template in config/default.yaml: 3,149 characters ≈ 790 tokens at [CPT] 4 chars/token.
  instanceTemplateTokens: 790,
  // [AGENTS] 20-60 calls per task on average. Median 35 / p90 70 (mean ≈ 40.5) is an estimate placing the
  // mean mid-range; min 5 is an estimate (reproduce, locate, edit, test, submit); max 100 = [OH] max_iter.
  callsPerTask: { median: 35, p90: 70, min: 5, max: 100 },
  // [CC] output tokens of tool_use calls: p50 236, p90 874; max 15,390 (the clamp).
  outputTokensToolUse: { median: 236, p90: 874, min: 1, max: 15390 },
  // [CC] output tokens of end_turn calls: p50 446, p90 942; max 2,735 (the clamp).
  outputTokensEndTurn: { median: 446, p90: 942, min: 1, max: 2735 },
  tools: {
    // Test runs: gap = [CC] tool gap (all tools) p50 10 s, p90 67 s, given to test runs as the tool with
    // the slow tail (estimate: the traces do not name tools); max 600 s = [CC] tool gap p99 625 s, rounded.
    // Result: estimate (pytest summary and a traceback or two): median 1,500, p90 6,000 tokens.
    // Share: estimate (a reproduce-fix-verify loop runs tests every few steps).
    test: {
      share: 0.15,
      gapS: { median: 10, p90: 67, min: 0.5, max: 600 },
      resultTokens: { median: 1500, p90: 6000, min: 10, max: 30000 },
    },
    // Shell commands (ls, grep, git, running a script): gap estimate median 2 s, p90 10 s (a command in
    // the agent's container). Result: [CC] tool result tokens p50 577, p90 3,977 (all tools; shell output
    // is the generic case); max 30,000 (estimate; [CC] p99 17,141).
    shell: {
      share: 0.2,
      gapS: { median: 2, p90: 10, min: 0.2, max: 300 },
      resultTokens: { median: 577, p90: 3977, min: 1, max: 30000 },
    },
    // Edits: gap estimate median 1 s, p90 3 s (a file write and a lint). Result: estimate median 300, p90
    // 1,200: the editor echoes a snippet around the edit (SWE-agent's edit_linting shows the edited window).
    edit: {
      share: 0.25,
      gapS: { median: 1, p90: 3, min: 0.1, max: 60 },
      resultTokens: { median: 300, p90: 1200, min: 5, max: 8000 },
    },
    // File views: gap estimate as edit. Result: [SWEA] WINDOW: 100 lines per view; ~10 tokens per line of
    // Python (estimate) -> median 1,000; p90 3,000 (estimate: larger views, e.g. `cat` of a whole file).
    read: {
      share: 0.3,
      gapS: { median: 1, p90: 3, min: 0.1, max: 60 },
      resultTokens: { median: 1000, p90: 3000, min: 10, max: 20000 },
    },
    // Code search (search_dir / grep / find_file): gap estimate median 1.5 s, p90 5 s (a scan of the
    // repository). Result: estimate median 300, p90 1,500 (a list of matching files and lines).
    search: {
      share: 0.1,
      gapS: { median: 1.5, p90: 5, min: 0.1, max: 120 },
      resultTokens: { median: 300, p90: 1500, min: 5, max: 10000 },
    },
  },
  // [CC] input tokens of the call before a compaction (input drops below 70%): p50 150,875 (n = 58); [OH]
  // runs SWE-bench without a condenser by default, so compaction only happens at this size, i.e. rarely.
  compactAtTokens: 150_000,
  // [CC] context after a compaction minus system + tool schema: p50 49,730, p90 81,630, max 101,449.
  keptAfterCompactionTokens: { median: 49730, p90: 81630, min: 1000, max: 101449 },
};

// ---------------------------------------------------------------------------------------------------
// webarena: browser agents on WebArena (accessibility-tree observations, one action per step).
// ---------------------------------------------------------------------------------------------------

export type WebarenaAction = 'click' | 'type' | 'goto' | 'scroll';
export const WEBARENA_ACTIONS: readonly WebarenaAction[] = ['click', 'type', 'goto', 'scroll'];

export interface ActionSpec {
  /** Relative frequency among actions. */
  share: number;
  /** Seconds the browser takes to perform the action (before the harness's fixed wait). */
  executeS: LognormalSpec;
}

export interface WebarenaParams {
  /** System prompt, action space and worked examples: the same blocks for every task of a tenant. */
  scaffoldTokens: number;
  /** The task's objective (and start URL). */
  objectiveTokens: LognormalSpec;
  /** LLM calls (steps) per task. */
  stepsPerTask: LognormalSpec;
  /** Tokens of one page observation (accessibility tree) before truncation. */
  observationTokens: LognormalSpec;
  /** Truncate every observation to this many tokens; 0 = no truncation. */
  observationCapTokens: number;
  /** Output tokens of a step (reasoning + action). */
  outputTokens: LognormalSpec;
  /** Tokens the harness adds to the history per step besides the output (the action's description). */
  actionEchoTokens: number;
  /** Seconds the harness waits after every action, added to the action's own time. */
  waitAfterActionS: number;
  actions: Record<WebarenaAction, ActionSpec>;
}

export const WEBARENA: WebarenaParams = {
  // [WAPROMPT] 4,703 characters ≈ 1,180 tokens at [CPT] 4 chars/token.
  scaffoldTokens: 1180,
  // Estimate: WebArena objectives are one sentence (e.g. "What is the price of HP Inkjet Fax Machine",
  // [WAPROMPT]'s example) plus the start URL: median 30, p90 60 tokens.
  objectiveTokens: { median: 30, p90: 60, min: 8, max: 300 },
  // [WA] ~10-30 steps; max 30 = [WARUN] --max_steps. Median 15 / p90 28 is an estimate within that range;
  // min 2 (at least one action and the stop).
  stepsPerTask: { median: 15, p90: 28, min: 2, max: 30 },
  // [WA] "a few thousand tokens" per accessibility tree: median 2,500, p90 6,000 is an estimate of that;
  // min 200 / max 16,000 are estimates (an empty page; a long listing).
  observationTokens: { median: 2500, p90: 6000, min: 200, max: 16000 },
  // 0: full observations, as in the issue's model of browser agents ("a few thousand tokens each").
  // [WARUN]'s reference agent uses 1,920; pass { observationCapTokens: 1920 } to model it.
  observationCapTokens: 0,
  // Max 384 = [WARUN] --max_tokens. Median 100 / p90 250 is an estimate: [WAPROMPT]'s example answers
  // ("Let's think step-by-step ... In summary, the next action I will perform is ```click [1234]```")
  // are 60-80 tokens; real pages need longer reasoning.
  outputTokens: { median: 100, p90: 250, min: 10, max: 384 },
  // Estimate: a line such as "click [1234] where [1234] is link 'Add to Cart'" plus the URL.
  actionEchoTokens: 20,
  // [WARUN] sleep_after_execution = 2.0 s.
  waitAfterActionS: 2.0,
  actions: {
    // Shares: estimate (clicking links and buttons dominates web navigation; typing into search boxes and
    // forms next; scrolling long pages; goto for direct URLs). Times: estimates of Playwright action plus
    // page update, giving total gaps (with the 2 s wait) of ~2-7 s, the "short, ~1-5 s" browser gaps.
    click: { share: 0.55, executeS: { median: 0.8, p90: 3, min: 0.05, max: 30 } },
    type: { share: 0.2, executeS: { median: 0.6, p90: 2, min: 0.05, max: 30 } },
    goto: { share: 0.1, executeS: { median: 1.5, p90: 5, min: 0.1, max: 30 } },
    scroll: { share: 0.15, executeS: { median: 0.2, p90: 0.6, min: 0.02, max: 10 } },
  },
};

// ---------------------------------------------------------------------------------------------------
// mixed: several tenants sharing a cluster.
// ---------------------------------------------------------------------------------------------------

export type GeneratorKind = 'swebench' | 'webarena';

export interface TenantSpec {
  /** Tenant name (also keys the tenant's own scaffold: two tenants never share scaffold blocks). */
  name: string;
  kind: GeneratorKind;
  /** Share of the workload's task arrival rate (shares are normalised over tenants). */
  share: number;
  /** Overrides of the kind's parameters for this tenant. */
  params?: Partial<SwebenchParams> | Partial<WebarenaParams>;
}

/**
 * The tenants of `mixed` when given a count n (default 3), a choice rather than data: tenant j
 * (0-based) is a coding tenant (`coding-j`, swebench) for even j and a browsing tenant (`browsing-j`,
 * webarena) for odd j, with arrival-rate shares proportional to 1/(j+1) (Zipf-like: a few large tenants
 * and a tail of small ones; estimate of a typical multi-tenant skew). Each tenant has its own scaffold.
 * n = 3 gives coding-0 (6/11 ≈ 55% of arrivals), browsing-1 (27%) and coding-2 (18%): two tenants of one
 * kind that compete without sharing a prefix, and one of the other kind.
 */
export function defaultTenants(n: number): TenantSpec[] {
  const out: TenantSpec[] = [];
  for (let j = 0; j < n; j++) {
    const kind: GeneratorKind = j % 2 === 0 ? 'swebench' : 'webarena';
    out.push({ name: `${kind === 'swebench' ? 'coding' : 'browsing'}-${j}`, kind, share: 1 / (j + 1) });
  }
  return out;
}

/** Tenants of `mixed` by default. */
export const DEFAULT_TENANT_COUNT = 3;
