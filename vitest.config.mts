import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Native pools are process-global resources; forks keep one addon instance per worker process.
    pool: 'forks',
    testTimeout: 60_000,
  },
});
