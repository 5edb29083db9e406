/**
 * LRU as vLLM evicts: its free-block queue takes the least recently used block first and, within a
 * request, the tail (deepest) block first, because vLLM frees a request's blocks in reverse order.
 * As keys: every block of a request takes the request's logical clock (its sequence number), so older
 * requests' blocks go first, and the core's tie rule (deeper position first) puts a request's tail
 * before its head. The engine releases a request's blocks tail-first, so the keys reach the core in
 * order and it keeps them in its O(1) list (docs/block-core.md). Online: it uses the request in hand only.
 */
import type { EvictionPolicy, PolicyRequest } from './policy';

export class LruPolicy implements EvictionPolicy {
  readonly name = 'lru';
  readonly bound = false;

  keys(request: PolicyRequest, out: Float64Array): void {
    out.fill(request.index);
  }
}
