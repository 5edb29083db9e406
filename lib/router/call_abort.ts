/**
 * A one-shot abort flag with listeners: what a call's "client left" and an attempt's "stop" need, without
 * an AbortController's EventTarget per request (one of the gateway's larger allocations per call). It has
 * the EventEmitter shape undici accepts as a request's `signal` (`on`/`once`/`removeListener`, `aborted`,
 * `reason`).
 */
type Listener = () => void;

export class CallAbort {
  aborted = false;
  reason: unknown = undefined;
  private listeners: Listener[] | undefined;

  /** Aborts once; later calls do nothing. Listeners run in the order they were added. */
  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners !== undefined) for (const listener of listeners) listener();
  }

  /** `listener` runs once, at the abort (never, if it came already). */
  once(_event: 'abort', listener: Listener): this {
    if (!this.aborted) (this.listeners ??= []).push(listener);
    return this;
  }

  on(event: 'abort', listener: Listener): this {
    return this.once(event, listener);
  }

  removeListener(_event: 'abort', listener: Listener): this {
    const listeners = this.listeners;
    if (listeners === undefined) return this;
    const i = listeners.indexOf(listener);
    if (i >= 0) listeners.splice(i, 1);
    return this;
  }
}
