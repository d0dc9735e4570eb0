// The lab harness: throw-away test hosts (network namespaces running sshd) and their doubles.
export * from "./labFleet";
