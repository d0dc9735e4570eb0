/*
 * Three projects, chosen by where a suite sits and what it runs:
 * - unit: test/**\/*.test.ts beside the module it tests (test/<module path>), in-process (the
 *   renderers, the plan, the program under mocks) plus quick local CLIs; `npm run test:unit`
 *   runs it in parallel as the inner loop.
 * - lab: *.lab.test.ts, the scripts and real tools run as processes and waited on (mostly root:
 *   mount and network namespaces, nebula, headscale, tailscaled, sshd, the k3s double); their
 *   bridges are fixed, so they run one suite at a time.
 * - e2e: test/e2e, the real Pulumi engine on the lab fleet.
 * Every project compiles with swc (no type-check: scripts/test.sh runs a strict tsc first),
 * which starts a suite in a fraction of ts-jest's time. Pulumi mocks keep global runtime state:
 * jest gives every suite its own module registry.
 */

/** swc's CommonJS output for the TypeScript the project writes (tsconfig.json: ES2022, commonjs). */
const transform = {
    "^.+\\.ts$": [
        "@swc/jest",
        {
            jsc: { parser: { syntax: "typescript" }, target: "es2022" },
            module: { type: "commonjs" },
            sourceMaps: "inline",
        },
    ],
};

const common = { testEnvironment: "node", transform, rootDir: __dirname };

/** @type {import('jest').Config} */
module.exports = {
    // Whole runs (scripts/test.sh) are serial: lab and e2e suites share fixed bridges and the engine.
    maxWorkers: 1,
    testTimeout: 30000,
    projects: [
        {
            ...common,
            displayName: "unit",
            testMatch: ["<rootDir>/test/**/*.test.ts"],
            testPathIgnorePatterns: ["/node_modules/", "\\.lab\\.test\\.ts$", "<rootDir>/test/e2e/"],
        },
        { ...common, displayName: "lab", testMatch: ["<rootDir>/test/**/*.lab.test.ts"], testPathIgnorePatterns: ["/node_modules/", "<rootDir>/test/e2e/"] },
        { ...common, displayName: "e2e", testMatch: ["<rootDir>/test/e2e/**/*.test.ts"] },
    ],
};
