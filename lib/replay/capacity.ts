/**
 * `--capacity`: a number of blocks (`2000`) or a share of the trace's distinct blocks (`5%`), which is
 * round(N / 100 x unique blocks). Either must come to at least one block.
 */
import { badArgument } from '../errors';

export type CapacitySpec = { blocks: number } | { percent: number };

export function parseCapacity(text: string): CapacitySpec {
  const s = text.trim();
  const percent = /^(\d+(?:\.\d+)?|\.\d+)\s*%$/.exec(s);
  if (percent) {
    const value = Number(percent[1]);
    if (!(value > 0)) throw badArgument(`capacity must be more than 0%, got "${text}"`);
    return { percent: value };
  }
  if (/^\d+$/.test(s)) {
    const blocks = Number(s);
    if (blocks < 1) throw badArgument(`capacity must be at least 1 block, got "${text}"`);
    if (blocks > 0x3fffffff) throw badArgument(`capacity of ${text} blocks is too large`);
    return { blocks };
  }
  throw badArgument(`capacity must be a number of blocks (e.g. 2000) or a share of the distinct blocks (e.g. 5%), got "${text}"`);
}

/** Blocks for `spec` on a trace with `uniqueBlocks` distinct blocks. */
export function resolveCapacity(spec: CapacitySpec, uniqueBlocks: number): number {
  if ('blocks' in spec) return spec.blocks;
  const blocks = Math.round((spec.percent / 100) * uniqueBlocks);
  if (blocks < 1) {
    throw badArgument(`capacity ${spec.percent}% of ${uniqueBlocks} distinct blocks rounds to 0 blocks: give a larger share or a block count`);
  }
  return blocks;
}

export function describeCapacity(spec: CapacitySpec): string {
  return 'blocks' in spec ? `${spec.blocks} blocks` : `${spec.percent}% of distinct blocks`;
}
