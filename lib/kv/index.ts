export { KvCache, Tier, BlockState, type KvCacheOptions, type KvCounts, type KvState } from './kv_cache';
export { hashTokenBlocks, HASH_ROOT } from './token_hash';
