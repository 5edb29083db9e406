/**
 * Run in a child process (node --import tsx) so SAGA_BACKEND is read fresh: loads the addon, makes a
 * small cache with the default backend, and prints one JSON line saying what happened.
 */
import { SagaError } from '../../lib/errors';
import { KvCache } from '../../lib/kv/kv_cache';
import { nativeBackend } from '../../lib/native';

try {
  const native = nativeBackend();
  const cache = new KvCache({ deviceCapacity: 2 });
  console.log(JSON.stringify({ ok: true, backend: native.backend, reason: native.reason, cacheBackend: cache.backend }));
} catch (err) {
  const e = err as Error & { code?: string };
  console.log(JSON.stringify({ ok: false, sagaError: err instanceof SagaError, code: e.code, message: e.message }));
}
