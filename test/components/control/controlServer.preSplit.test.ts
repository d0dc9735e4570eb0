import * as fs from "node:fs";
import * as path from "node:path";
import ts from "typescript";

/*
 * test/e2e/adoption.test.ts scenario 9 runs the pre-split ControlServer (a .txt fixture, so the
 * project's tsc never sees it) in place of components/control/controlServer.ts. The program runs
 * under swc without a type-check, so a helper whose signature moved under it fails only as an
 * errored resource forty minutes into CI. This compiles it where it would sit, against today's
 * code, in seconds.
 */

const repoRoot = path.resolve(__dirname, "..", "..", "..");
const fixturePath = path.join(repoRoot, "test", "e2e", "fixtures", "controlServer.pre-split.ts.txt");
const componentPath = path.join(repoRoot, "components", "control", "controlServer.ts");

/** tsc's complaints about the project with `componentText` as components/control/controlServer.ts. */
function diagnosticsWithComponent(componentText: string): string[] {
    const configFile = ts.readConfigFile(path.join(repoRoot, "tsconfig.json"), (file) => ts.sys.readFile(file));
    if (configFile.error) throw new Error(ts.flattenDiagnosticMessageText(configFile.error.messageText, "\n"));
    const options = { ...ts.parseJsonConfigFileContent(configFile.config, ts.sys, repoRoot).options, noEmit: true };
    const host = ts.createCompilerHost(options);
    // The default host's getSourceFile reads through host.readFile, so this one substitution serves both.
    const readFile = host.readFile.bind(host);
    host.readFile = (file) => (path.resolve(file) === componentPath ? componentText : readFile(file));
    const program = ts.createProgram({ rootNames: [componentPath], options, host });
    return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
        const where = diagnostic.file
            ? `${path.relative(repoRoot, diagnostic.file.fileName)}:${diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0).line + 1}`
            : "";
        return `${where} ${ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n")}`;
    });
}

describe("the pre-split ControlServer fixture (e2e adoption scenario 9)", () => {
    const fixture = fs.readFileSync(fixturePath, "utf8");

    it("compiles against today's components in place of controlServer.ts", () => {
        expect(diagnosticsWithComponent(fixture)).toEqual([]);
    }, 120_000);

    it("would catch a call that no longer matches its helper (the positional deliverFiles call it had before b0f6451)", () => {
        const current = "deliverFiles(`${name}-${delivery.role}`, this, { connection, delivery, after: order.before(step), triggers: rebuilt })";
        expect(fixture).toContain(current);
        const stale = fixture.replace(current, "deliverFiles(`${name}-${delivery.role}`, this, connection, delivery, order.before(step), rebuilt)");
        expect(diagnosticsWithComponent(stale).join("\n")).toMatch(/components\/control\/controlServer\.ts:\d+ Expected 3 arguments, but got 6/);
    }, 120_000);
});
