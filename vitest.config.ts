import { defineConfig } from 'vitest/config';

// Two cores: keep parallelism small so tests that spin up brokers, ptys and SQLite files don't starve each other.
export default defineConfig({
  test: {
    include: ['{protocol,hub,terminal,hardware,simulators,test}/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ['default'],
  },
});
