import { NEBULA_PEM_TYPES, decodeNebulaPem, generateNebulaHostKeyPair, nebulaCertMatchesKey, parseNebulaCertBundle, signNebulaHostCert } from "./nebulaCert";
import type { NebulaMember } from "./nebulaMembers";

/*
 * The operator's own Nebula CA (made with `nebula-cert ca`, outside the program), read from the
 * stack secrets shortcircuit:nebulaCaCert and shortcircuit:nebulaCaKey. Checked before any
 * resource is declared: no message repeats a value, and every one names the config key.
 */

/** A Nebula CA's certificate and Ed25519 key, as PEM: the operator's (stack secrets) or one the program makes. */
export interface NebulaCaMaterial {
    certPem: string;
    keyPem: string;
}

export type ExistingCaKey = "nebulaCaCert" | "nebulaCaKey";

export interface ExistingCaProblem {
    key: ExistingCaKey;
    message: string;
}

const SET_HINT = (key: ExistingCaKey, file: string): string => `set it with: pulumi config set --secret shortcircuit:${key} < ${file}`;

/**
 * What is wrong with the operator's CA: it must be one CA certificate (not a host certificate,
 * not a bundle), unexpired at `now`, with its Ed25519 key (seed || public key), and able to sign
 * every member's certificate (a CA made with -groups, -ips or -subnets constrains them).
 */
export function existingCaProblems(certPem: string | undefined, keyPem: string | undefined, members: readonly NebulaMember[], now: Date): ExistingCaProblem[] {
    const problems: ExistingCaProblem[] = [];
    const problem = (key: ExistingCaKey, message: string): void => {
        problems.push({ key, message });
    };
    const why = "overlays.nebula.pki uses the existing CA";
    let certOk = false;
    if (!certPem) {
        problem("nebulaCaCert", `required secret is missing (${why}); ${SET_HINT("nebulaCaCert", "ca.crt")}`);
    } else {
        let certs: ReturnType<typeof parseNebulaCertBundle> = [];
        try {
            certs = parseNebulaCertBundle(certPem);
        } catch (error) {
            problem("nebulaCaCert", `is not a ${NEBULA_PEM_TYPES.certificate} PEM: ${(error as Error).message}`);
        }
        const [ca] = certs;
        if (certs.length > 1) {
            problem("nebulaCaCert", `holds ${certs.length} certificates: give the one CA that signs the fleet's certificates (nebula-cert ca's ca.crt)`);
        } else if (ca && !ca.isCA) {
            problem("nebulaCaCert", `is a host certificate (${ca.name}), not a CA: give the CA's ca.crt`);
        } else if (ca && ca.notAfter.getTime() <= now.getTime()) {
            problem(
                "nebulaCaCert",
                `the CA expired at ${ca.notAfter.toISOString()}: no certificate it signs is valid; let the program make a new CA (overlays.nebula.pki.ca "generated")`,
            );
        } else if (ca) {
            certOk = true;
        }
    }
    let keyOk = false;
    if (!keyPem) {
        problem("nebulaCaKey", `required secret is missing (${why}); ${SET_HINT("nebulaCaKey", "ca.key")}`);
    } else {
        try {
            decodeNebulaPem(keyPem, NEBULA_PEM_TYPES.ed25519PrivateKey);
            keyOk = true;
        } catch (error) {
            problem("nebulaCaKey", `is not a ${NEBULA_PEM_TYPES.ed25519PrivateKey} PEM: ${(error as Error).message}`);
        }
    }
    if (!certOk || !keyOk || !certPem || !keyPem) {
        return problems;
    }
    if (!nebulaCertMatchesKey(certPem, keyPem)) {
        problem("nebulaCaKey", "is not the key of the CA in shortcircuit:nebulaCaCert (its public key differs, or the key file is corrupt)");
        return problems;
    }
    // A trial signature per member: the CA's own constraints (groups, ips, subnets) must admit it.
    const { publicKeyPem } = generateNebulaHostKeyPair();
    for (const member of members) {
        try {
            signNebulaHostCert({
                caCertPem: certPem,
                caKeyPem: keyPem,
                name: member.name,
                address: member.addressWithPrefix,
                groups: member.groups,
                notBefore: new Date(Math.floor(now.getTime() / 1000) * 1000),
                notAfter: new Date(Math.floor(now.getTime() / 1000) * 1000 + 1000),
                publicKeyPem,
            });
        } catch (error) {
            const reason = (error as { reason?: string }).reason ?? (error as Error).message;
            problem("nebulaCaCert", `the CA cannot sign ${member.name}'s certificate: ${reason}`);
        }
    }
    return problems;
}
