import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    // TF.js WASM kernels run at half speed in some processes without this flag (measured).
    execArgv: ['--no-wasm-dynamic-tiering'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
