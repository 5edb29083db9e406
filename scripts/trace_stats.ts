/**
 * Statistics of the Claude Code agent traces (../shared/data/traces/claude-code) that the workload
 * generators cite in lib/workloads/generators/parameters.ts. Read-only; prints a table (and JSON with --json).
 *
 *   npx tsx scripts/trace_stats.ts [dir] [--json]
 *
 * Only the top-level agent's requests (type `n`/`s`) are measured; `subagent` entries are counted apart.
 * "Tool gap": think_time of a request whose input is a tool result (the time the tool ran, plus the proxy).
 * "User gap": think_time of a request whose input is plain text after an `end_turn` (a person typing).
 * "Tool result tokens": in[i+1] - in[i] - out[i] for a tool-result request that did not shrink the context.
 * "Reuse depth": longest common prefix of hash_ids[i] and hash_ids[i+1] over hash_ids[i].length.
 * "Compaction": in[i+1] < 0.7 x in[i] (the context was cut or summarised between the two calls);
 *   "contextAfterCompaction" is in[i+1] minus the session's system prompt and tool schema (the summary plus
 *   whatever the agent kept).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

interface Req {
  t: number; type: string; in?: number; out?: number; hash_ids?: number[];
  input_types?: string[]; output_types?: string[]; stop?: string; think_time?: number; api_time?: number;
  requests?: Req[];
}
interface Session { id: string; block_size: number; tool_tokens: number; system_tokens: number; requests: Req[] }

const args = process.argv.slice(2);
const json = args.includes('--json');
const dir = args.find((a) => !a.startsWith('--')) ?? join(__dirname, '..', '..', 'shared', 'data', 'traces', 'claude-code');

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
function summary(xs: number[]): Record<string, number> {
  return {
    n: xs.length, mean: mean(xs), p10: quantile(xs, 0.1), p25: quantile(xs, 0.25), p50: quantile(xs, 0.5),
    p75: quantile(xs, 0.75), p90: quantile(xs, 0.9), p99: quantile(xs, 0.99), min: Math.min(...xs), max: Math.max(...xs),
  };
}
function lcp(a: number[], b: number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

const files = readdirSync(dir).filter((f) => /^trace_\d+\.json(\.gz)?$/.test(f)).sort();
const sessions: Session[] = files.map((f) => {
  const raw = readFileSync(join(dir, f));
  return JSON.parse((f.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8')) as Session;
});

const callsPerSession: number[] = [];
const turnsPerSession: number[] = []; // end_turn count: user turns
const callsPerTurn: number[] = [];
const systemTokens: number[] = [];
const toolTokens: number[] = [];
const firstInput: number[] = [];
const firstInputOverScaffold: number[] = [];
const inputTokens: number[] = [];
const lastInput: number[] = [];
const outToolUse: number[] = [];
const outEndTurn: number[] = [];
const toolGap: number[] = [];
const userGap: number[] = [];
const toolResult: number[] = [];
const reuseDepth: number[] = [];
const reuseDepthAfterTool: number[] = [];
const inputBeforeCompaction: number[] = [];
const contextAfterCompaction: number[] = []; // in[i+1] minus the session's system + tool schema tokens
let pairs = 0;
let compactions = 0;
let subagents = 0;
let stopToolUse = 0;
let stopEndTurn = 0;
let stopOther = 0;

for (const s of sessions) {
  const reqs = s.requests.filter((r) => r.type === 'n' || r.type === 's');
  subagents += s.requests.length - reqs.length;
  callsPerSession.push(reqs.length);
  systemTokens.push(s.system_tokens);
  toolTokens.push(s.tool_tokens);
  let turns = 0;
  let inTurn = 0;
  for (let i = 0; i < reqs.length; i++) {
    const r = reqs[i];
    inTurn++;
    const inTok = r.in ?? 0;
    const outTok = r.out ?? 0;
    inputTokens.push(inTok);
    if (i === 0) {
      firstInput.push(inTok);
      firstInputOverScaffold.push(inTok / Math.max(1, s.system_tokens + s.tool_tokens));
    }
    if (i === reqs.length - 1) lastInput.push(inTok);
    if (r.stop === 'tool_use') { stopToolUse++; outToolUse.push(outTok); }
    else if (r.stop === 'end_turn') { stopEndTurn++; outEndTurn.push(outTok); turns++; callsPerTurn.push(inTurn); inTurn = 0; }
    else stopOther++;
    if (i + 1 < reqs.length) {
      const n = reqs[i + 1];
      pairs++;
      const nIn = n.in ?? 0;
      const isTool = (n.input_types ?? []).includes('tool_result');
      if (nIn < 0.7 * inTok) {
        compactions++;
        inputBeforeCompaction.push(inTok);
        contextAfterCompaction.push(nIn - s.system_tokens - s.tool_tokens);
      }
      if (isTool && r.stop === 'tool_use') {
        toolGap.push(n.think_time ?? 0);
        if (nIn >= inTok) toolResult.push(nIn - inTok - outTok);
      } else if (r.stop === 'end_turn' && !isTool) {
        userGap.push(n.think_time ?? 0);
      }
      const a = r.hash_ids ?? [];
      const b = n.hash_ids ?? [];
      if (a.length > 0) {
        const d = lcp(a, b) / a.length;
        reuseDepth.push(d);
        if (isTool && r.stop === 'tool_use') reuseDepthAfterTool.push(d);
      }
    }
  }
  turnsPerSession.push(turns);
}

const fullReuse = (xs: number[]): number => xs.filter((d) => d >= 0.999).length / xs.length;
const result = {
  dir,
  sessions: sessions.length,
  blockSize: sessions[0]?.block_size,
  subagentEntries: subagents,
  callsPerSession: summary(callsPerSession),
  endTurnsPerSession: summary(turnsPerSession),
  callsPerTurn: summary(callsPerTurn),
  systemTokens: summary(systemTokens),
  toolSchemaTokens: summary(toolTokens),
  firstCallInputTokens: summary(firstInput),
  firstInputOverScaffold: summary(firstInputOverScaffold),
  inputTokens: summary(inputTokens),
  lastCallInputTokens: summary(lastInput),
  outputTokensToolUse: summary(outToolUse),
  outputTokensEndTurn: summary(outEndTurn),
  // `unrecorded`: streaming requests whose stop reason the proxy left empty.
  stopShare: { tool_use: stopToolUse / (stopToolUse + stopEndTurn + stopOther), end_turn: stopEndTurn / (stopToolUse + stopEndTurn + stopOther), unrecorded: stopOther / (stopToolUse + stopEndTurn + stopOther) },
  toolGapS: summary(toolGap),
  userGapS: summary(userGap),
  toolResultTokens: summary(toolResult),
  reuseDepth: { ...summary(reuseDepth), fullShare: fullReuse(reuseDepth) },
  reuseDepthAfterTool: { ...summary(reuseDepthAfterTool), fullShare: fullReuse(reuseDepthAfterTool) },
  compactionPerCall: compactions / pairs,
  inputBeforeCompaction: summary(inputBeforeCompaction),
  contextAfterCompaction: summary(contextAfterCompaction),
};

if (json) {
  console.log(JSON.stringify(result, null, 2));
} else {
  const fmt = (x: number): string => (Number.isInteger(x) ? String(x) : x.toFixed(x < 10 ? 3 : 1));
  console.log(`${result.sessions} sessions in ${dir} (block ${result.blockSize} tokens, ${subagents} subagent entries not measured)`);
  for (const [k, v] of Object.entries(result)) {
    if (v === null || typeof v !== 'object') continue;
    console.log(`${k.padEnd(24)} ${Object.entries(v).map(([a, b]) => `${a}=${fmt(b as number)}`).join(' ')}`);
  }
  console.log(`${'compactionPerCall'.padEnd(24)} ${fmt(result.compactionPerCall)}`);
}
