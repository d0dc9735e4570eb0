// Package index holds the tls:index:* TEST DOUBLES (package index -> token tls:index:<Type>).
package index

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // the real provider's resource id is a SHA-1 of the public key PEM
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"

	"github.com/pulumi/pulumi-go-provider/infer"
	"golang.org/x/crypto/ssh"
)

// PrivateKey is tls:index:PrivateKey.
type PrivateKey struct{}

func (k *PrivateKey) Annotate(a infer.Annotator) {
	a.Describe(&k, "TEST DOUBLE of tls:index:PrivateKey: generates an RSA, ECDSA or ED25519 key.")
}

// PrivateKeyInputs: every input forces a new key (the Terraform schema marks each RequiresReplace).
type PrivateKeyInputs struct {
	Algorithm  string  `pulumi:"algorithm" provider:"replaceOnChanges"`
	EcdsaCurve *string `pulumi:"ecdsaCurve,optional" provider:"replaceOnChanges"`
	RsaBits    *int    `pulumi:"rsaBits,optional" provider:"replaceOnChanges"`
}

func (k *PrivateKeyInputs) Annotate(a infer.Annotator) {
	a.SetDefault(&k.EcdsaCurve, "P224")
	a.SetDefault(&k.RsaBits, 2048)
}

// PrivateKeyState: the private formats are secret, the public ones are not.
type PrivateKeyState struct {
	PrivateKeyInputs
	PrivateKeyPem              string `pulumi:"privateKeyPem" provider:"secret"`
	PrivateKeyPemPkcs8         string `pulumi:"privateKeyPemPkcs8" provider:"secret"`
	PrivateKeyOpenssh          string `pulumi:"privateKeyOpenssh" provider:"secret"`
	PublicKeyPem               string `pulumi:"publicKeyPem"`
	PublicKeyOpenssh           string `pulumi:"publicKeyOpenssh"`
	PublicKeyFingerprintMd5    string `pulumi:"publicKeyFingerprintMd5"`
	PublicKeyFingerprintSha256 string `pulumi:"publicKeyFingerprintSha256"`
}

// Create makes the key (nothing in preview: the outputs are unknown there). The ID is the
// SHA-1 hex of the public key PEM, as the Terraform provider's hashForState.
func (*PrivateKey) Create(_ context.Context, req infer.CreateRequest[PrivateKeyInputs]) (infer.CreateResponse[PrivateKeyState], error) {
	state := PrivateKeyState{PrivateKeyInputs: req.Inputs}
	if req.DryRun {
		return infer.CreateResponse[PrivateKeyState]{Output: state}, nil
	}
	var key crypto.Signer
	var sec1 []byte
	var blockType string
	var err error
	switch req.Inputs.Algorithm {
	case "RSA":
		bits := 2048
		if req.Inputs.RsaBits != nil {
			bits = *req.Inputs.RsaBits
		}
		var rk *rsa.PrivateKey
		rk, err = rsa.GenerateKey(rand.Reader, bits)
		if err == nil {
			key, blockType, sec1 = rk, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)
		}
	case "ECDSA":
		curve := "P224"
		if req.Inputs.EcdsaCurve != nil {
			curve = *req.Inputs.EcdsaCurve
		}
		var c elliptic.Curve
		switch curve {
		case "P224":
			c = elliptic.P224()
		case "P256":
			c = elliptic.P256()
		case "P384":
			c = elliptic.P384()
		case "P521":
			c = elliptic.P521()
		default:
			return infer.CreateResponse[PrivateKeyState]{}, fmt.Errorf("invalid ecdsaCurve %q", curve)
		}
		var ek *ecdsa.PrivateKey
		ek, err = ecdsa.GenerateKey(c, rand.Reader)
		if err == nil {
			blockType = "EC PRIVATE KEY"
			key = ek
			sec1, err = x509.MarshalECPrivateKey(ek)
		}
	case "ED25519":
		var ek ed25519.PrivateKey
		_, ek, err = ed25519.GenerateKey(rand.Reader)
		if err == nil {
			key, blockType = ek, "PRIVATE KEY"
			sec1, err = x509.MarshalPKCS8PrivateKey(ek)
		}
	default:
		return infer.CreateResponse[PrivateKeyState]{}, fmt.Errorf("invalid algorithm %q: RSA, ECDSA or ED25519", req.Inputs.Algorithm)
	}
	if err != nil {
		return infer.CreateResponse[PrivateKeyState]{}, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return infer.CreateResponse[PrivateKeyState]{}, err
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return infer.CreateResponse[PrivateKeyState]{}, err
	}
	state.PrivateKeyPem = string(pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: sec1}))
	state.PrivateKeyPemPkcs8 = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))
	state.PublicKeyPem = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	// OpenSSH formats are empty for ECDSA P224, which OpenSSH does not support.
	if sshPub, err := ssh.NewPublicKey(key.Public()); err == nil {
		state.PublicKeyOpenssh = string(ssh.MarshalAuthorizedKey(sshPub))
		state.PublicKeyFingerprintMd5 = ssh.FingerprintLegacyMD5(sshPub)
		state.PublicKeyFingerprintSha256 = ssh.FingerprintSHA256(sshPub)
		if block, err := ssh.MarshalPrivateKey(key, ""); err == nil {
			state.PrivateKeyOpenssh = string(pem.EncodeToMemory(block))
		}
	}
	sum := sha1.Sum([]byte(state.PublicKeyPem)) //nolint:gosec
	return infer.CreateResponse[PrivateKeyState]{ID: hex.EncodeToString(sum[:]), Output: state}, nil
}
