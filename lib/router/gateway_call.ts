/**
 * One client request through the gateway, from admission to its one answer: what policies see of it (a
 * CallInfo), what goes upstream (the body, the identity), where it is (queued on an engine, in flight,
 * answered), and how its answer goes out (`respond`, from the HTTP handler). `settle` takes effect once:
 * every accepted request gets exactly one answer, whatever fails.
 */
import type { ServerResponse } from 'node:http';
import type { ProgramIdentity } from '../engine/types';
import type { CallInfo } from '../policy/types';
import { CallAbort } from './call_abort';
import type { EngineState, QueuedCall } from './engine_state';

export type CompletionPath = '/v1/chat/completions' | '/v1/completions';

/** How a request ended, for its HTTP handler. */
export type Settlement =
  /** An answer for the handler to send (an error, or a whole upstream body). */
  | { readonly kind: 'reply'; readonly status: number; readonly headers: Readonly<Record<string, string>>; readonly body: string | Buffer }
  /** The answer was streamed on the raw response already. */
  | { readonly kind: 'streamed' }
  /** The client left: nobody to answer. */
  | { readonly kind: 'gone' };

export class GatewayCall implements QueuedCall {
  /** Engine it is queued on or running on. */
  engine: EngineState<GatewayCall> | undefined;
  enqueuedS = 0;
  priority = 0;
  tieBreak = 0;
  /** Engines tried so far. */
  attempts = 0;
  /** performance.now() when it was last sent upstream. */
  sentAtMs = 0;
  /** The body's bytes as the client sent them (JSON), for engines that take no hints. */
  rawBody: Buffer | undefined;
  /** Characters of the prompt text its token estimate and block hashes came from. */
  promptChars = 0;
  /** The request's max_tokens (or max_completion_tokens), if it gave one. */
  maxTokens: number | undefined = undefined;
  /** Prompt tokens (gateway estimate) the engine was expected to cache when it was last sent. */
  estimatedCachedTokens = 0;
  /** llama.cpp slot held while in flight. */
  slot: number | undefined;
  /** Aborted when the client leaves before its answer is complete. */
  readonly clientGone = new CallAbort();
  private done = false;

  constructor(
    public call: CallInfo,
    readonly order: number,
    readonly identity: ProgramIdentity,
    readonly path: CompletionPath,
    readonly body: Readonly<Record<string, unknown>>,
    readonly stream: boolean,
    readonly model: string | undefined,
    /** Client headers passed on (authorization). */
    readonly authorization: string | undefined,
    readonly arrivalMs: number,
    /** Takes the response over from the HTTP framework and sends the status and headers of a stream. */
    private readonly takeResponse: (status: number, headers: Readonly<Record<string, string>>) => ServerResponse,
    /** Sends (or drops) the answer once the call settles; called once. */
    private readonly respond: (settlement: Settlement) => void,
  ) {}

  get answered(): boolean {
    return this.done;
  }

  /** Starts a streamed answer (settles the call): from here on, failures can only end the stream. */
  openStream(status: number, headers: Readonly<Record<string, string>>): ServerResponse {
    this.settle({ kind: 'streamed' });
    return this.takeResponse(status, headers);
  }

  settle(settlement: Settlement): void {
    if (this.done) return;
    this.done = true;
    this.respond(settlement);
  }
}
