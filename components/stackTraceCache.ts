/*
 * Why this exists: the Pulumi SDK reads `new Error().stack` about 45 times per resource (four
 * times per output property in `transferProperties`, for the URN and id, and once with
 * `Error.stackTraceLimit = Infinity` in `Resource.callsites()` for the source position). Under
 * ts-node (`npm run bench`, and the language host, which registers ts-node for a TypeScript
 * project) every one of those reads goes through @cspotcode/source-map-support's
 * `prepareStackTrace`, which maps each frame through the file's source map again. Profiled on
 * synthetic-200 that mapping was 42 % of building the graph (docs/development.md, Speed).
 *
 * The SDK's captures come from a handful of call sites, so the same trace repeats for every host:
 * 381 distinct traces among 83,000 reads for 200 hosts. This wraps the installed formatter and
 * keeps its result per trace, for bare `new Error()` objects only (no message, no name, no code:
 * what the SDK creates), whose header is always the same. The cached text is the formatter's own
 * output for the same frames, so a stack reads exactly as before; an error with a message, or of
 * any other class, goes to the formatter every time.
 */

/** Marks our wrapper on the function, across module reloads (the bench reloads the program per run). */
const WRAPPED = Symbol.for("shortcircuit.stackTraceCache");

/** Five times the distinct traces a program run has (381 for 200 hosts), a few MB at most; cleared when full. */
const MAX_TRACES = 2_000;

/** V8's call site; its own toString (the v8.dev stack-trace API) is missing from @types/node. */
type Frame = NodeJS.CallSite & { toString(): string };
type PrepareStackTrace = ((error: Error, frames: Frame[]) => unknown) & { [WRAPPED]?: true };
/** The hook as V8 sees it: a plain property of Error, unset in plain node. */
const hook = Error as unknown as { prepareStackTrace?: PrepareStackTrace };

/** An Error made by `new Error()`: Error's own prototype, and no own property but the stack. */
function isBareError(error: unknown): error is Error {
    if (typeof error !== "object" || error === null || Object.getPrototypeOf(error) !== Error.prototype) return false;
    const keys = Reflect.ownKeys(error);
    return keys.length === 1 && keys[0] === "stack";
}

/**
 * Wraps `Error.prepareStackTrace` in a cache for bare errors' traces. Nothing happens when no
 * formatter is installed (V8's own, in plain node) or when it is already wrapped.
 */
export function cacheBareStackTraces(): void {
    const installed = hook.prepareStackTrace;
    if (typeof installed !== "function" || installed[WRAPPED]) return;
    const traces = new Map<string, string>();
    const wrapper: PrepareStackTrace = function (this: unknown, error: Error, frames: Frame[]): unknown {
        if (!isBareError(error)) return installed.call(this, error, frames);
        // V8's own text of a frame names everything a formatter reads from it: function, receiver
        // type, method, file, line, column, eval origin, async.
        let key = "";
        for (const frame of frames) key += `${frame.toString()}\n`;
        const cached = traces.get(key);
        if (cached !== undefined) return cached;
        const text = installed.call(this, error, frames);
        // Only text is kept: a formatter that hands back anything else gets asked every time.
        if (typeof text !== "string") return text;
        if (traces.size >= MAX_TRACES) traces.clear();
        traces.set(key, text);
        return text;
    };
    wrapper[WRAPPED] = true;
    hook.prepareStackTrace = wrapper;
}
