/** Requests to a gateway in tests: OpenAI calls with identity headers, answers read whole. */

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The body as JSON, or undefined when it is not JSON. */
  readonly json: any;
  /** The engine that served it (x-saga-engine), if any. */
  readonly engine: string | null;
}

export interface CallOptions {
  readonly session?: string;
  readonly tenant?: string;
  readonly headers?: Record<string, string>;
  /** Fields merged over a small chat body. */
  readonly body?: Record<string, unknown>;
  /** A raw body instead (sent as it is). */
  readonly raw?: string;
  readonly path?: '/v1/chat/completions' | '/v1/completions';
}

export async function call(url: string, options: CallOptions = {}): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...options.headers };
  if (options.session !== undefined) headers['x-saga-session'] = options.session;
  if (options.tenant !== undefined) headers['x-saga-tenant'] = options.tenant;
  const body = options.raw ?? JSON.stringify({ model: 'stub-model', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 8, ...options.body });
  const res = await fetch(`${url}${options.path ?? '/v1/chat/completions'}`, { method: 'POST', headers, body });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json, engine: res.headers.get('x-saga-engine') };
}

/** A chat body whose prompt grows with the turn, as an agent's does. */
export function agentTurn(session: string, turn: number): Record<string, unknown> {
  const messages = [{ role: 'system', content: `You are agent ${session}. ${'Follow the tool protocol. '.repeat(20)}` }];
  for (let i = 0; i < turn; i++) messages.push({ role: 'user', content: `observation ${i}: ${'output line '.repeat(30)}` });
  return { messages };
}

/** Sum of a Prometheus metric's samples whose labels include `labels` (e.g. 'engine="e0"'). */
export function metricSum(text: string, name: string, labels = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (labels !== '' && !line.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Polls `check` every 20 ms until it holds (or fails after `timeoutMs`). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
