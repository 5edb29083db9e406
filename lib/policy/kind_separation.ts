/**
 * Keeping workflow kinds apart (saga's routing at a gateway; never vLLM's): which kind each homed session is,
 * and how many sessions of each kind each engine homes. SessionAffinityRouting.otherKindShare says why and
 * how routing uses it.
 *
 * Sessions' workflow kinds, and each engine's sessions by kind: homed (counted, for routing without a
 * liveness estimate), or live (summed by the estimate, per routing decision, alongside the engine's total).
 */
export class KindSeparation {
  readonly kindOf = new Map<number, string>();
  private readonly counts: Map<string, number>[] = [];
  private readonly liveSums: Map<string, number>[] = [];

  /** Sessions of `kind` homed on the engine. */
  homed(engineId: number, kind: string): number {
    return this.counts[engineId]?.get(kind) ?? 0;
  }

  /** The session's home on `engineId` is set (+1) or unset (-1); its kind must be in `kindOf` already. */
  add(session: number, engineId: number, delta: 1 | -1): void {
    const kind = this.kindOf.get(session);
    if (kind === undefined) return;
    const counts = (this.counts[engineId] ??= new Map());
    counts.set(kind, (counts.get(kind) ?? 0) + delta);
  }

  /** Liveness `p` of a session homed on the engine, as the engine's total is summed. */
  addLive(engineId: number, session: number, p: number): void {
    const kind = this.kindOf.get(session);
    if (kind === undefined) return;
    const sums = (this.liveSums[engineId] ??= new Map());
    sums.set(kind, (sums.get(kind) ?? 0) + p);
  }

  /** Live sessions of `kind` on the engine, as last summed (0 if none were). */
  live(engineId: number, kind: string): number {
    return this.liveSums[engineId]?.get(kind) ?? 0;
  }

  /** The sums are stale (a new decision, or a home changed). */
  forgetLive(): void {
    this.liveSums.length = 0;
  }
}
