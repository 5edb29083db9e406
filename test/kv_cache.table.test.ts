/** The dense block table: tableAppend / tableTruncate / tableFree / tableRead / tableAddress. */
import { describe, expect, it } from 'vitest';
import { allocate, cpuCache, ids, release } from './support/fixtures';
import { checkInvariants, diffSnapshots } from './support/pool_assertions';

function readRows(cache: ReturnType<typeof cpuCache>, rows: number[]): { ids: number[][]; lengths: number[] } {
  const outIds = new Int32Array(rows.length * cache.tableCols).fill(-9);
  const outLengths = new Int32Array(rows.length).fill(-9);
  cache.tableRead(Int32Array.from(rows), outIds, outLengths);
  const cols = cache.tableCols;
  return { ids: rows.map((_, i) => Array.from(outIds.subarray(i * cols, (i + 1) * cols))), lengths: Array.from(outLengths) };
}

describe('block table', () => {
  it('appends ids to rows in order, -1 past each row length', () => {
    const cache = cpuCache({ deviceCapacity: 6, tableRows: 3, tableCols: 4 });
    const [a, b, c, d] = allocate(cache, [1, 2, 0, 0]);
    cache.tableAppend(ids(2, 0, 2, 2), ids(a, d, b, c));
    expect(readRows(cache, [0, 1, 2])).toEqual({
      ids: [
        [d, -1, -1, -1],
        [-1, -1, -1, -1],
        [a, b, c, -1],
      ],
      lengths: [1, 0, 3],
    });
    const s = cache.snapshot();
    expect(Array.from(s.tableLengths)).toEqual([1, 0, 3]);
    expect(Array.from(s.table)).toEqual([d, -1, -1, -1, -1, -1, -1, -1, a, b, c, -1]);
    checkInvariants(cache);
  });

  it('accepts cached device blocks and reads a row twice in one call', () => {
    const cache = cpuCache({ deviceCapacity: 2, tableRows: 1, tableCols: 2 });
    const [a] = allocate(cache, [1]);
    release(cache, [a]);
    cache.tableAppend(ids(0), ids(a));
    expect(readRows(cache, [0, 0])).toEqual({ ids: [[a, -1], [a, -1]], lengths: [1, 1] });
  });

  it('fills a row exactly to its width', () => {
    const cache = cpuCache({ deviceCapacity: 3, tableRows: 1, tableCols: 3 });
    const blocks = allocate(cache, [0, 0, 0]);
    cache.tableAppend(ids(0, 0, 0), Int32Array.from(blocks));
    expect(readRows(cache, [0])).toEqual({ ids: [blocks], lengths: [3] });
  });

  it('truncates rows (cells past the new length read -1) and appends after the cut', () => {
    const cache = cpuCache({ deviceCapacity: 6, tableRows: 2, tableCols: 3 });
    const [a, b, c, d, e] = allocate(cache, [0, 0, 0, 0, 0]);
    cache.tableAppend(ids(0, 0, 0, 1, 1), ids(a, b, c, d, e));
    cache.tableTruncate(ids(0, 1), ids(1, 2)); // row 1 "truncated" to its own length: no change
    expect(readRows(cache, [0, 1])).toEqual({ ids: [[a, -1, -1], [d, e, -1]], lengths: [1, 2] });
    cache.tableAppend(ids(0), ids(e));
    expect(readRows(cache, [0])).toEqual({ ids: [[a, e, -1]], lengths: [2] });
    checkInvariants(cache);
  });

  it('frees rows (truncate to zero)', () => {
    const cache = cpuCache({ deviceCapacity: 4, tableRows: 2, tableCols: 2 });
    const [a, b, c] = allocate(cache, [0, 0, 0]);
    cache.tableAppend(ids(0, 0, 1), ids(a, b, c));
    cache.tableFree(ids(0));
    expect(readRows(cache, [0, 1])).toEqual({ ids: [[-1, -1], [c, -1]], lengths: [0, 1] });
    cache.tableFree(ids(1, 1, 0));
    expect(readRows(cache, [0, 1])).toEqual({ ids: [[-1, -1], [-1, -1]], lengths: [0, 0] });
  });

  it('keeps block state and references untouched (the table holds ids, not references)', () => {
    const cache = cpuCache({ deviceCapacity: 3, tableRows: 1, tableCols: 2 });
    const [a] = allocate(cache, [1]);
    const before = cache.snapshot();
    cache.tableAppend(ids(0), ids(a));
    const after = cache.snapshot();
    expect(Array.from(after.refcount)).toEqual(Array.from(before.refcount));
    expect(Array.from(after.state)).toEqual(Array.from(before.state));
  });

  it('reads nothing for an empty batch and changes nothing on read', () => {
    const cache = cpuCache({ deviceCapacity: 2, tableRows: 1, tableCols: 2 });
    const before = cache.snapshot();
    cache.tableRead(ids(), new Int32Array(0), new Int32Array(0));
    readRows(cache, [0]);
    expect(diffSnapshots(before, cache.snapshot())).toEqual([]);
  });

  it('exposes the table address as a bigint', () => {
    const cache = cpuCache({ deviceCapacity: 2, tableRows: 2, tableCols: 4 });
    const address = cache.tableAddress();
    expect(typeof address).toBe('bigint');
    expect(address).not.toBe(0n); // a non-empty table lives somewhere
    expect(cache.tableAddress()).toBe(address); // and does not move
  });
});
