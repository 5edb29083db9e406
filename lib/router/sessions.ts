/**
 * Agent sessions as the gateway numbers them: a dense number per session id (what policies key on), the
 * index of each call in its session, and the last call of each (to tell the policies a session ended).
 * Nothing marks a program's end over HTTP, so a session with no call for `idleMs` is taken as ended and
 * forgotten: the policies' tables (homes, fair-share programs) stay bounded on a gateway that runs for weeks.
 */
import type { CallInfo } from '../policy/types';

interface Session {
  readonly number: number;
  calls: number;
  lastSeenMs: number;
  last: CallInfo | undefined;
}

export class SessionTable {
  private readonly byId = new Map<string, Session>();
  private next = 0;

  get size(): number {
    return this.byId.size;
  }

  /** A call of session `id` arrives: its session number and call index. */
  enter(id: string, nowMs: number): { readonly session: number; readonly callIndex: number } {
    let session = this.byId.get(id);
    if (session === undefined) {
      session = { number: this.next++, calls: 0, lastSeenMs: nowMs, last: undefined };
      this.byId.set(id, session);
    }
    // Map order is recency order, so that expiry stops at the first session still active.
    this.byId.delete(id);
    this.byId.set(id, session);
    session.lastSeenMs = nowMs;
    return { session: session.number, callIndex: session.calls++ };
  }

  /** Remembers a session's latest call (for the end-of-session event). */
  record(id: string, call: CallInfo): void {
    const session = this.byId.get(id);
    if (session !== undefined) session.last = call;
  }

  /** Forgets sessions idle since before `nowMs - idleMs`; returns their last calls. */
  expire(nowMs: number, idleMs: number): CallInfo[] {
    const ended: CallInfo[] = [];
    for (const [id, session] of this.byId) {
      if (nowMs - session.lastSeenMs < idleMs) break;
      this.byId.delete(id);
      if (session.last !== undefined) ended.push(session.last);
    }
    return ended;
  }
}
