/**
 * Agent sessions as the gateway numbers them: a dense number per session id (what policies key on), the
 * index of each call in its session, and the last call of each (to tell the policies a session ended).
 * A client may say a program ended (`DELETE /saga/sessions/:id`, lib/router/server.ts); else, as nothing in
 * OpenAI's API marks a program's end, a session with no call for `idleMs` is taken as ended and forgotten:
 * the policies' tables (homes, fair-share programs) stay bounded on a gateway that runs for weeks.
 *
 * The table is in the order sessions were last moved to its end, which a session is at most once every
 * `reorderMs` (not on every call: a long-lived Map's delete-and-set churn rehashes its table in the old
 * generation, garbage that only a full GC frees). Since a session's last move is at most `reorderMs` before
 * its last call, expiry still finds every idle session and stops at the first moved too recently to be idle.
 */
import type { CallInfo } from '../policy/types';

interface Session {
  readonly number: number;
  calls: number;
  /** Calls entered and not yet answered (queued or in flight). */
  open: number;
  lastSeenMs: number;
  /** When it was last moved to the end of the table (at most `reorderMs` before lastSeenMs). */
  movedMs: number;
  last: CallInfo | undefined;
}

/** How often at most a session is moved to the end of the table (ms). */
const REORDER_MS = 1000;

export class SessionTable {
  private readonly byId = new Map<string, Session>();
  private next = 0;

  constructor(private readonly reorderMs = REORDER_MS) {}

  get size(): number {
    return this.byId.size;
  }

  /** A call of session `id` arrives: its session number and call index. */
  enter(id: string, nowMs: number): { readonly session: number; readonly callIndex: number } {
    let session = this.byId.get(id);
    if (session === undefined) {
      session = { number: this.next++, calls: 0, open: 0, lastSeenMs: nowMs, movedMs: nowMs, last: undefined };
      this.byId.set(id, session);
    } else if (nowMs - session.movedMs >= this.reorderMs) {
      // Map order is the order of the last moves, so that expiry stops at the first session moved too recently to be idle.
      this.byId.delete(id);
      this.byId.set(id, session);
      session.movedMs = nowMs;
    }
    session.lastSeenMs = nowMs;
    session.open++;
    return { session: session.number, callIndex: session.calls++ };
  }

  /** A call that `enter` numbered `session` was answered (or refused): it no longer holds the session open. */
  settled(id: string, session: number): void {
    const entry = this.byId.get(id);
    if (entry !== undefined && entry.number === session && entry.open > 0) entry.open--;
  }

  /** Remembers a session's latest call (for the end-of-session event). */
  record(id: string, call: CallInfo): void {
    const session = this.byId.get(id);
    if (session !== undefined) session.last = call;
  }

  /**
   * The client says session `id` ended: forgets it and returns its last call. Nothing changes if no such
   * session is known (`unknown`) or it has calls not yet answered (`open`: the policies would learn of
   * them after forgetting it). A later call with the same id starts a new session.
   */
  end(id: string): CallInfo | 'unknown' | 'open' {
    const session = this.byId.get(id);
    if (session === undefined || session.last === undefined) return 'unknown';
    if (session.open > 0) return 'open';
    this.byId.delete(id);
    return session.last;
  }

  /** Forgets sessions idle since before `nowMs - idleMs`; returns their last calls. */
  expire(nowMs: number, idleMs: number): CallInfo[] {
    const ended: CallInfo[] = [];
    for (const [id, session] of this.byId) {
      // Every session after this one was moved later, so was seen since nowMs - idleMs.
      if (nowMs - session.movedMs < idleMs) break;
      if (nowMs - session.lastSeenMs < idleMs) continue; // seen since its last move, within reorderMs of it
      this.byId.delete(id);
      if (session.last !== undefined) ended.push(session.last);
    }
    return ended;
  }
}
