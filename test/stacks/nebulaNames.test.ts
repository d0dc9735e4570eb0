import { nebulaGroupProblem, nebulaNameProblem } from "../../stacks/nebulaNames";

/* The fleet's rules for Nebula certificate names and groups, checked in the config. */

describe("name and group rules", () => {
    it.each([
        ["", /must not be empty/],
        [" node", /whitespace/],
        ["node\n", /whitespace/],
        ["no\u0001de", /control characters/],
        ["any", /host: any/],
        ["\ud800", /valid Unicode/],
    ])("rejects name %j", (name, reason) => {
        expect(nebulaNameProblem(name)).toMatch(reason);
    });

    it.each([["node-a"], ["lighthouse.example.net"], ["Ümlaut host"]])("accepts name %j", (name) => {
        expect(nebulaNameProblem(name)).toBeUndefined();
    });

    it("accepts names up to 253 bytes of UTF-8", () => {
        expect(nebulaNameProblem("x".repeat(253))).toBeUndefined();
        expect(nebulaNameProblem("ü".repeat(126) + "x")).toBeUndefined();
        expect(nebulaNameProblem("ü".repeat(127))).toMatch(/at most 253 bytes/);
    });

    it.each([
        ["", /must not be empty/],
        ["a,b", /comma separated/],
        [" servers", /whitespace/],
        ["servers\t", /whitespace/],
        ["se\u007frvers", /control characters/],
        ["any", /group: any/],
    ])("rejects group %j", (group, reason) => {
        expect(nebulaGroupProblem(group)).toMatch(reason);
    });

    it.each(["servers", "k3s-control-plane", "team:ops", "with space"])("accepts group %j", (group) => {
        expect(nebulaGroupProblem(group)).toBeUndefined();
    });
});
