/**
 * The gateway's session table (lib/router/sessions.ts): numbers and call indices, and expiry of idle
 * sessions, exact although a session moves to the end of the table at most once every `reorderMs`.
 */
import { describe, expect, it } from 'vitest';
import type { CallInfo } from '../lib/policy/types';
import { SessionTable } from '../lib/router/sessions';

function callOf(session: number, callIndex: number): CallInfo {
  return { taskIndex: session, callIndex, session, tenant: 't', kind: 'agent', arrivalS: 0, promptTokens: 1, outputTokens: 0, blockHashes: new BigUint64Array(0) };
}

/** A call of session `id` at `nowMs`, recorded as its session's latest. */
function visit(table: SessionTable, id: string, nowMs: number): CallInfo {
  const { session, callIndex } = table.enter(id, nowMs);
  const call = callOf(session, callIndex);
  table.record(id, call);
  return call;
}

describe('the gateway session table', () => {
  it('numbers sessions densely and their calls in order', () => {
    const table = new SessionTable();
    expect(table.enter('a', 0)).toEqual({ session: 0, callIndex: 0 });
    expect(table.enter('b', 1)).toEqual({ session: 1, callIndex: 0 });
    expect(table.enter('a', 2)).toEqual({ session: 0, callIndex: 1 });
    expect(table.size).toBe(2);
  });

  it("ends a session at its client's word only once every call it entered is settled", () => {
    const table = new SessionTable();
    expect(table.end('a')).toBe('unknown');
    const first = visit(table, 'a', 0);
    const second = visit(table, 'a', 1);
    expect(table.end('a')).toBe('open');
    table.settled('a', first.session);
    expect(table.end('a')).toBe('open');
    table.settled('a', second.session);
    // Settling more than entered changes nothing.
    table.settled('a', second.session);
    expect(table.end('a')).toBe(second);
    expect(table.size).toBe(0);
    expect(table.end('a')).toBe('unknown');
    // The id starts a new session; a late settlement of the old one does not close the new one's call.
    const next = visit(table, 'a', 2);
    expect(next.session).not.toBe(first.session);
    table.settled('a', first.session);
    expect(table.end('a')).toBe('open');
    table.settled('a', next.session);
    expect(table.end('a')).toBe(next);
  });

  it('expires exactly the sessions idle for idleMs, with their last calls, whatever the reorder interval', () => {
    for (const reorderMs of [0, 7, 1000, 1e9]) {
      const table = new SessionTable(reorderMs);
      // Sessions seen at scattered times, some often (within the reorder interval), some once.
      const last = new Map<string, CallInfo>();
      const seen = new Map<string, number>();
      let t = 0;
      for (let i = 0; i < 2000; i++) {
        t += (i * 7919) % 13;
        const id = `s${(i * 31) % (i < 1000 ? 50 : 20)}`;
        last.set(id, visit(table, id, t));
        seen.set(id, t);
      }
      const idleMs = 3000;
      const ended = table.expire(t + 1, idleMs);
      const expected = [...seen].filter(([, at]) => t + 1 - at >= idleMs).map(([id]) => last.get(id));
      expect(new Set(ended)).toEqual(new Set(expected));
      expect(ended.length).toBeGreaterThan(0);
      expect(table.size).toBe(seen.size - expected.length);
      // The rest expire once idle too, and a session seen again lives on.
      visit(table, 's1', t + 2);
      const later = table.expire(t + 1 + idleMs, idleMs);
      expect(later.map((c) => c.session).sort((a, b) => a - b)).toEqual(
        [...seen.keys()].filter((id) => id !== 's1' && !expected.includes(last.get(id))).map((id) => last.get(id)!.session).sort((a, b) => a - b),
      );
      expect(table.size).toBe(1);
    }
  });
});
