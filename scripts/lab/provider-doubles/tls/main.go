// pulumi-resource-tls TEST DOUBLE (shortcircuit, test/e2e): serves tls:index:PrivateKey and
// tls:index:SelfSignedCert with the real provider's property names, defaults, secrets and
// replace-on-any-change behaviour. It is NOT pulumi-tls (a Terraform-bridged provider): see
// ../README.md for what it does and the facts each behaviour was taken from.
package main

import (
	"context"
	"fmt"
	"os"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi-go-provider/middleware/schema"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"

	"shortcircuit/e2e/provider-doubles/tls/index"
)

// Version is set at build time to the @pulumi/tls pin the double stands in for.
var Version = "5.6.1"

func main() {
	provider := infer.Provider(infer.Options{
		Metadata: schema.Metadata{
			DisplayName: "TLS (shortcircuit test double)",
			Description: "TEST DOUBLE of the Pulumi TLS provider's PrivateKey and SelfSignedCert, written for shortcircuit's end-to-end suite.",
		},
		Resources: []infer.InferredResource{
			infer.Resource(&index.PrivateKey{}),
			infer.Resource(&index.SelfSignedCert{}),
		},
		// The Node.js SDK registers the bridged provider's long tokens
		// (tls:index/privateKey:PrivateKey): dispatch maps their module to ours.
		ModuleMap: map[tokens.ModuleName]tokens.ModuleName{
			"index/privateKey":     "index",
			"index/selfSignedCert": "index",
		},
	})
	if err := p.RunProvider(context.Background(), "tls", Version, provider); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %s", err.Error())
		os.Exit(1)
	}
}
