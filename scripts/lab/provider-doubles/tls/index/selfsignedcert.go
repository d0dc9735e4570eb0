package index

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // subject key id as RFC 5280 method 1
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
)

// SelfSignedCert is tls:index:SelfSignedCert.
type SelfSignedCert struct{}

func (c *SelfSignedCert) Annotate(a infer.Annotator) {
	a.Describe(&c, "TEST DOUBLE of tls:index:SelfSignedCert.")
}

// SelfSignedCertSubject is tls:index:SelfSignedCertSubject.
type SelfSignedCertSubject struct {
	CommonName         *string   `pulumi:"commonName,optional"`
	Country            *string   `pulumi:"country,optional"`
	EmailAddress       *string   `pulumi:"emailAddress,optional"`
	Locality           *string   `pulumi:"locality,optional"`
	Organization       *string   `pulumi:"organization,optional"`
	OrganizationalUnit *string   `pulumi:"organizationalUnit,optional"`
	PostalCode         *string   `pulumi:"postalCode,optional"`
	Province           *string   `pulumi:"province,optional"`
	SerialNumber       *string   `pulumi:"serialNumber,optional"`
	StreetAddresses    *[]string `pulumi:"streetAddresses,optional"`
}

// SelfSignedCertInputs: every input forces a new certificate, as in the Terraform schema.
type SelfSignedCertInputs struct {
	PrivateKeyPem       string                 `pulumi:"privateKeyPem" provider:"secret,replaceOnChanges"`
	Subject             *SelfSignedCertSubject `pulumi:"subject,optional" provider:"replaceOnChanges"`
	DnsNames            *[]string              `pulumi:"dnsNames,optional" provider:"replaceOnChanges"`
	IpAddresses         *[]string              `pulumi:"ipAddresses,optional" provider:"replaceOnChanges"`
	Uris                *[]string              `pulumi:"uris,optional" provider:"replaceOnChanges"`
	ValidityPeriodHours int                    `pulumi:"validityPeriodHours" provider:"replaceOnChanges"`
	EarlyRenewalHours   *int                   `pulumi:"earlyRenewalHours,optional" provider:"replaceOnChanges"`
	AllowedUses         []string               `pulumi:"allowedUses" provider:"replaceOnChanges"`
	IsCaCertificate     *bool                  `pulumi:"isCaCertificate,optional" provider:"replaceOnChanges"`
	SetSubjectKeyId     *bool                  `pulumi:"setSubjectKeyId,optional" provider:"replaceOnChanges"`
	SetAuthorityKeyId   *bool                  `pulumi:"setAuthorityKeyId,optional" provider:"replaceOnChanges"`
	MaxPathLength       *int                   `pulumi:"maxPathLength,optional" provider:"replaceOnChanges"`
}

func (c *SelfSignedCertInputs) Annotate(a infer.Annotator) {
	a.SetDefault(&c.EarlyRenewalHours, 0)
	a.SetDefault(&c.IsCaCertificate, false)
	a.SetDefault(&c.SetSubjectKeyId, false)
	a.SetDefault(&c.SetAuthorityKeyId, false)
	a.SetDefault(&c.MaxPathLength, 0)
}

// SelfSignedCertState adds the certificate and its validity window.
type SelfSignedCertState struct {
	SelfSignedCertInputs
	CertPem           string `pulumi:"certPem"`
	KeyAlgorithm      string `pulumi:"keyAlgorithm"`
	ValidityStartTime string `pulumi:"validityStartTime"`
	ValidityEndTime   string `pulumi:"validityEndTime"`
	ReadyForRenewal   bool   `pulumi:"readyForRenewal"`
}

var keyUsages = map[string]x509.KeyUsage{
	"digital_signature":  x509.KeyUsageDigitalSignature,
	"content_commitment": x509.KeyUsageContentCommitment,
	"key_encipherment":   x509.KeyUsageKeyEncipherment,
	"data_encipherment":  x509.KeyUsageDataEncipherment,
	"key_agreement":      x509.KeyUsageKeyAgreement,
	"cert_signing":       x509.KeyUsageCertSign,
	"crl_signing":        x509.KeyUsageCRLSign,
	"encipher_only":      x509.KeyUsageEncipherOnly,
	"decipher_only":      x509.KeyUsageDecipherOnly,
}

var extKeyUsages = map[string]x509.ExtKeyUsage{
	"any_extended":                      x509.ExtKeyUsageAny,
	"server_auth":                       x509.ExtKeyUsageServerAuth,
	"client_auth":                       x509.ExtKeyUsageClientAuth,
	"code_signing":                      x509.ExtKeyUsageCodeSigning,
	"email_protection":                  x509.ExtKeyUsageEmailProtection,
	"ipsec_end_system":                  x509.ExtKeyUsageIPSECEndSystem,
	"ipsec_tunnel":                      x509.ExtKeyUsageIPSECTunnel,
	"ipsec_user":                        x509.ExtKeyUsageIPSECUser,
	"timestamping":                      x509.ExtKeyUsageTimeStamping,
	"ocsp_signing":                      x509.ExtKeyUsageOCSPSigning,
	"microsoft_server_gated_crypto":     x509.ExtKeyUsageMicrosoftServerGatedCrypto,
	"netscape_server_gated_crypto":      x509.ExtKeyUsageNetscapeServerGatedCrypto,
	"microsoft_commercial_code_signing": x509.ExtKeyUsageMicrosoftCommercialCodeSigning,
	"microsoft_kernel_code_signing":     x509.ExtKeyUsageMicrosoftKernelCodeSigning,
}

func parseSigner(pemText string) (crypto.Signer, string, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, "", errors.New("privateKeyPem: no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, "", fmt.Errorf("privateKeyPem: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, "RSA", nil
	case *ecdsa.PrivateKey:
		return k, "ECDSA", nil
	case ed25519.PrivateKey:
		return k, "ED25519", nil
	}
	return nil, "", errors.New("privateKeyPem: unsupported key type")
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func one(s *string) []string {
	if s == nil {
		return nil
	}
	return []string{*s}
}

// readyForRenewal: past (end - earlyRenewalHours), or already expired.
func readyForRenewal(end string, earlyHours *int, now time.Time) bool {
	t, err := time.Parse(time.RFC3339, end)
	if err != nil {
		return false
	}
	early := 0
	if earlyHours != nil {
		early = *earlyHours
	}
	return !now.Before(t.Add(-time.Duration(early) * time.Hour))
}

// Create signs the certificate with its own key: serial = 128 random bits (the ID is its
// decimal text), notBefore = now, notAfter = now + validityPeriodHours.
func (*SelfSignedCert) Create(_ context.Context, req infer.CreateRequest[SelfSignedCertInputs]) (infer.CreateResponse[SelfSignedCertState], error) {
	in := req.Inputs
	state := SelfSignedCertState{SelfSignedCertInputs: in}
	if req.DryRun {
		return infer.CreateResponse[SelfSignedCertState]{Output: state}, nil
	}
	signer, algorithm, err := parseSigner(in.PrivateKeyPem)
	if err != nil {
		return infer.CreateResponse[SelfSignedCertState]{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return infer.CreateResponse[SelfSignedCertState]{}, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	end := now.Add(time.Duration(in.ValidityPeriodHours) * time.Hour)
	template := &x509.Certificate{SerialNumber: serial, NotBefore: now, NotAfter: end, BasicConstraintsValid: true}
	if s := in.Subject; s != nil {
		template.Subject = pkix.Name{
			CommonName: str(s.CommonName), Country: one(s.Country), Locality: one(s.Locality),
			Organization: one(s.Organization), OrganizationalUnit: one(s.OrganizationalUnit),
			PostalCode: one(s.PostalCode), Province: one(s.Province), SerialNumber: str(s.SerialNumber),
		}
		if s.StreetAddresses != nil {
			template.Subject.StreetAddress = *s.StreetAddresses
		}
		if s.EmailAddress != nil {
			template.EmailAddresses = []string{*s.EmailAddress}
		}
	}
	for _, use := range in.AllowedUses {
		if ku, ok := keyUsages[use]; ok {
			template.KeyUsage |= ku
		} else if eku, ok := extKeyUsages[use]; ok {
			template.ExtKeyUsage = append(template.ExtKeyUsage, eku)
		} else {
			return infer.CreateResponse[SelfSignedCertState]{}, fmt.Errorf("allowedUses: unknown usage %q", use)
		}
	}
	if in.DnsNames != nil {
		template.DNSNames = *in.DnsNames
	}
	if in.IpAddresses != nil {
		for _, text := range *in.IpAddresses {
			ip := net.ParseIP(text)
			if ip == nil {
				return infer.CreateResponse[SelfSignedCertState]{}, fmt.Errorf("ipAddresses: invalid IP %q", text)
			}
			template.IPAddresses = append(template.IPAddresses, ip)
		}
	}
	if in.Uris != nil {
		for _, text := range *in.Uris {
			u, err := url.Parse(text)
			if err != nil {
				return infer.CreateResponse[SelfSignedCertState]{}, fmt.Errorf("uris: %w", err)
			}
			template.URIs = append(template.URIs, u)
		}
	}
	if in.IsCaCertificate != nil && *in.IsCaCertificate {
		template.IsCA = true
		if in.MaxPathLength != nil {
			template.MaxPathLen = *in.MaxPathLength
			template.MaxPathLenZero = *in.MaxPathLength == 0
		}
	}
	if (in.SetSubjectKeyId != nil && *in.SetSubjectKeyId) || (in.SetAuthorityKeyId != nil && *in.SetAuthorityKeyId) {
		pub, err := x509.MarshalPKIXPublicKey(signer.Public())
		if err != nil {
			return infer.CreateResponse[SelfSignedCertState]{}, err
		}
		sum := sha1.Sum(pub) //nolint:gosec
		if in.SetSubjectKeyId != nil && *in.SetSubjectKeyId {
			template.SubjectKeyId = sum[:]
		}
		if in.SetAuthorityKeyId != nil && *in.SetAuthorityKeyId {
			template.AuthorityKeyId = sum[:]
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, signer.Public(), signer)
	if err != nil {
		return infer.CreateResponse[SelfSignedCertState]{}, err
	}
	state.CertPem = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	state.KeyAlgorithm = algorithm
	state.ValidityStartTime = now.Format(time.RFC3339)
	state.ValidityEndTime = end.Format(time.RFC3339)
	state.ReadyForRenewal = readyForRenewal(state.ValidityEndTime, in.EarlyRenewalHours, time.Now())
	return infer.CreateResponse[SelfSignedCertState]{ID: serial.String(), Output: state}, nil
}

// Read (refresh) recomputes readyForRenewal against the clock; nothing else changes.
func (*SelfSignedCert) Read(_ context.Context, req infer.ReadRequest[SelfSignedCertInputs, SelfSignedCertState]) (infer.ReadResponse[SelfSignedCertInputs, SelfSignedCertState], error) {
	state := req.State
	state.ReadyForRenewal = readyForRenewal(state.ValidityEndTime, state.EarlyRenewalHours, time.Now())
	return infer.ReadResponse[SelfSignedCertInputs, SelfSignedCertState]{ID: req.ID, Inputs: req.Inputs, State: state}, nil
}

// Diff: any changed input replaces the certificate, and so does a certificate that is ready
// for renewal (the Terraform provider's ModifyPlan forces a new resource then).
func (*SelfSignedCert) Diff(_ context.Context, req infer.DiffRequest[SelfSignedCertInputs, SelfSignedCertState]) (infer.DiffResponse, error) {
	diff := map[string]p.PropertyDiff{}
	oldFields, err := fieldsOf(req.State.SelfSignedCertInputs)
	if err != nil {
		return infer.DiffResponse{}, err
	}
	newFields, err := fieldsOf(req.Inputs)
	if err != nil {
		return infer.DiffResponse{}, err
	}
	for key, value := range newFields {
		if old, ok := oldFields[key]; !ok || string(old) != string(value) {
			diff[key] = p.PropertyDiff{Kind: p.UpdateReplace, InputDiff: true}
		}
	}
	for key := range oldFields {
		if _, ok := newFields[key]; !ok {
			diff[key] = p.PropertyDiff{Kind: p.DeleteReplace, InputDiff: true}
		}
	}
	if req.State.ReadyForRenewal || readyForRenewal(req.State.ValidityEndTime, req.Inputs.EarlyRenewalHours, time.Now()) {
		diff["readyForRenewal"] = p.PropertyDiff{Kind: p.UpdateReplace}
	}
	return infer.DiffResponse{HasChanges: len(diff) > 0, DetailedDiff: diff}, nil
}

// fieldsOf gives each set input's JSON text by its schema name (the pulumi tags match the
// json names because the struct is marshalled through its pulumi tags' names below).
func fieldsOf(in SelfSignedCertInputs) (map[string]json.RawMessage, error) {
	named := map[string]any{
		"privateKeyPem": in.PrivateKeyPem, "subject": in.Subject, "dnsNames": in.DnsNames,
		"ipAddresses": in.IpAddresses, "uris": in.Uris, "validityPeriodHours": in.ValidityPeriodHours,
		"earlyRenewalHours": in.EarlyRenewalHours, "allowedUses": in.AllowedUses,
		"isCaCertificate": in.IsCaCertificate, "setSubjectKeyId": in.SetSubjectKeyId,
		"setAuthorityKeyId": in.SetAuthorityKeyId, "maxPathLength": in.MaxPathLength,
	}
	out := map[string]json.RawMessage{}
	for key, value := range named {
		text, err := json.Marshal(value)
		if err != nil {
			return nil, err
		}
		if string(text) != "null" {
			out[key] = text
		}
	}
	return out, nil
}
