/** @type {import('jest').Config} */
module.exports = {
    preset: "ts-jest",
    testEnvironment: "node",
    roots: ["<rootDir>/test"],
    testMatch: ["**/*.test.ts"],
    // Pulumi mocks keep global runtime state: every suite gets its own module registry,
    // and suites run serially because the real-tool suites share network namespaces.
    maxWorkers: 1,
    testTimeout: 30000,
    transform: { "^.+\\.ts$": ["ts-jest", { isolatedModules: false, diagnostics: { warnOnly: false } }] },
};
