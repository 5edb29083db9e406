/**
 * Keeping workflow kinds apart (saga's routing at a gateway; never vLLM's): which kind each homed session is,
 * and how many sessions of each kind each engine homes. SessionAffinityRouting.otherKindShare says why and
 * how routing uses it.
 */
export interface AffinityOptions {
  /** Prefer engines whose live sessions are of the new session's workflow kind (SessionAffinityRouting.otherKindShare). */
  readonly separateKinds?: boolean;
}

/** Sessions' workflow kinds, and how many sessions of each kind each engine homes. */
export class KindSeparation {
  readonly kindOf = new Map<number, string>();
  private readonly counts: Map<string, number>[] = [];

  /** Sessions of `kind` homed on the engine. */
  homed(engineId: number, kind: string): number {
    return this.counts[engineId]?.get(kind) ?? 0;
  }

  /** The session's home on `engineId` is set (+1) or unset (-1). */
  add(session: number, engineId: number, delta: 1 | -1): void {
    const kind = this.kindOf.get(session);
    if (kind === undefined) return;
    while (this.counts.length <= engineId) this.counts.push(new Map());
    this.counts[engineId].set(kind, this.homed(engineId, kind) + delta);
  }
}
