import { cacheBareStackTraces } from "../../components/stackTraceCache";

/*
 * The cache in front of the stack-trace formatter: a bare `new Error()` reads exactly what the
 * installed formatter wrote for the same frames, the formatter runs once per distinct trace, and
 * anything else (an error with a message, a subclass) still goes to the formatter every time.
 */

/** V8's call site, with the toString @types/node leaves out. */
type Frame = NodeJS.CallSite & { toString(): string };
type Formatter = (error: Error, frames: Frame[]) => unknown;
/** The hook as V8 sees it: a plain property of Error, unset in plain node. */
const hook = Error as unknown as { prepareStackTrace?: Formatter };

/** Stands in for source-map-support: text from the header and V8's frames, counted. */
function countingFormatter(): { formatter: Formatter; calls: string[] } {
    const calls: string[] = [];
    const formatter: Formatter = (error, frames) => {
        const text = `${error.name}: ${error.message}${frames.map((frame) => `\n    at ${frame.toString()}`).join("")} #${calls.length}`;
        calls.push(text);
        return text;
    };
    return { formatter, calls };
}

/** The same call site every time, as the SDK's captures are. */
function bareStack(): string | undefined {
    return new Error().stack;
}

describe("cacheBareStackTraces", () => {
    let saved: Formatter | undefined;
    beforeEach(() => {
        saved = hook.prepareStackTrace;
    });
    afterEach(() => {
        hook.prepareStackTrace = saved;
    });

    it("formats a repeated bare trace once and returns the formatter's own text for it", () => {
        const { formatter, calls } = countingFormatter();
        hook.prepareStackTrace = formatter;
        cacheBareStackTraces();
        const stacks = Array.from({ length: 5 }, () => bareStack());
        expect(calls).toHaveLength(1);
        expect(new Set(stacks)).toEqual(new Set([calls[0]]));
        expect(calls[0]).toContain("bareStack");
    });

    it("formats a bare trace from another call site anew", () => {
        const { formatter, calls } = countingFormatter();
        hook.prepareStackTrace = formatter;
        cacheBareStackTraces();
        const first = bareStack();
        const other = new Error().stack;
        expect(calls).toEqual([first, other]);
        expect(other).not.toEqual(first);
    });

    it("leaves an error with a message, a named error and a subclass to the formatter every time", () => {
        const { formatter, calls } = countingFormatter();
        hook.prepareStackTrace = formatter;
        cacheBareStackTraces();
        const read = (): (string | undefined)[] => {
            const named = new Error();
            named.name = "Named";
            return [new Error("with a message").stack, named.stack, new TypeError().stack];
        };
        const stacks = [...read(), ...read()];
        expect(calls).toHaveLength(6);
        expect(stacks).toEqual(calls);
        expect(stacks[0]).toMatch(/^Error: with a message\n/);
        expect(stacks[1]).toMatch(/^Named: \n/);
    });

    it("wraps once, however often the program is loaded", () => {
        const { formatter, calls } = countingFormatter();
        hook.prepareStackTrace = formatter;
        cacheBareStackTraces();
        const wrapped = hook.prepareStackTrace;
        cacheBareStackTraces();
        expect(hook.prepareStackTrace).toBe(wrapped);
        for (let read = 0; read < 2; read++) bareStack();
        expect(calls).toHaveLength(1);
    });

    it("installs nothing where no formatter is set (plain node keeps V8's own)", () => {
        hook.prepareStackTrace = undefined;
        cacheBareStackTraces();
        expect(hook.prepareStackTrace).toBeUndefined();
    });

    it("passes on what a formatter returns other than text, uncached", () => {
        let calls = 0;
        hook.prepareStackTrace = (_error, frames) => {
            calls++;
            return frames.length;
        };
        cacheBareStackTraces();
        const depths = Array.from({ length: 2 }, () => bareStack() as unknown);
        expect(calls).toBe(2);
        expect(typeof depths[0]).toBe("number");
    });
});
