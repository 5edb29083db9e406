/**
 * Shared prefixes between sessions, learned online (for the peers' eviction policies: continuum, kvflow).
 *
 * Sessions whose first prompts start with the same block (a system prompt, a tool schema) form a group.
 * A session's shared depth is how many leading blocks of its first prompt it has in common with the
 * group's first member (the representative), as seen when the session arrives; the representative's own
 * shared depth is the largest of its members'. The block core records which session allocated a block,
 * so `setSessionKeys` re-keys a session's own blocks only: the first `sharedDepth` blocks of a session's
 * prompt may belong to another session, and a policy keys them with the group in mind instead.
 * Causal: a group knows only the sessions that have arrived.
 */

export interface PrefixGroup {
  /** The first member's first-call hashes (a copy). */
  readonly rep: BigUint64Array;
  readonly repSession: number;
  /** Sessions of the group that have arrived and not ended. */
  readonly live: Set<number>;
}

function lcp(a: BigUint64Array, b: BigUint64Array): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class PrefixGroups {
  private readonly byFirst = new Map<bigint, PrefixGroup>();
  private readonly groupOf = new Map<number, PrefixGroup>();
  private readonly depth = new Map<number, number>();

  /** A session's first call arrived with prompt `hashes`. */
  join(session: number, hashes: BigUint64Array): void {
    if (hashes.length === 0 || this.groupOf.has(session)) return;
    const first = hashes[0];
    const group = this.byFirst.get(first);
    if (group === undefined) {
      const created: PrefixGroup = { rep: hashes.slice(), repSession: session, live: new Set([session]) };
      this.byFirst.set(first, created);
      this.groupOf.set(session, created);
      this.depth.set(session, 0);
      return;
    }
    const shared = lcp(group.rep, hashes);
    group.live.add(session);
    this.groupOf.set(session, group);
    this.depth.set(session, shared);
    if (group.live.has(group.repSession) && shared > (this.depth.get(group.repSession) ?? 0)) this.depth.set(group.repSession, shared);
  }

  /** Leading blocks of the session's prompts that other sessions may hold (0 when it shares none). */
  sharedDepth(session: number): number {
    return this.depth.get(session) ?? 0;
  }

  /** The other live sessions of the session's group (empty when none). */
  others(session: number): Iterable<number> {
    const group = this.groupOf.get(session);
    if (group === undefined) return [];
    return [...group.live].filter((s) => s !== session);
  }

  hasOthers(session: number): boolean {
    const group = this.groupOf.get(session);
    return group !== undefined && (group.live.size > 1 || !group.live.has(session));
  }

  /** The session ended: it leaves its group (ask for its shared depth before). */
  leave(session: number): void {
    const group = this.groupOf.get(session);
    if (group === undefined) return;
    group.live.delete(session);
    this.groupOf.delete(session);
    if (group.live.size === 0 && this.byFirst.get(group.rep[0]) === group) this.byFirst.delete(group.rep[0]);
    this.depth.delete(session);
  }
}
