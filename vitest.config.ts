import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Suites share one PostgreSQL database and a few loopback ports: run files one at a time.
    fileParallelism: false
  }
})
