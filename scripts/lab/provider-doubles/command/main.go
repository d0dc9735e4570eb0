// pulumi-resource-command TEST DOUBLE (shortcircuit, test/e2e): serves command:remote:Command
// with the real provider's schema shape, defaults and lifecycle, on the same framework
// (pulumi-go-provider infer) the real command provider 1.2.1 uses, so the engine gives it the
// same diff/update/replace behaviour. It is NOT pulumi-command: see ../README.md for what it
// does and the facts each behaviour was taken from.
package main

import (
	"context"
	"fmt"
	"os"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi-go-provider/middleware/schema"

	"shortcircuit/e2e/provider-doubles/command/remote"
)

// Version is set at build time to the @pulumi/command pin the double stands in for.
var Version = "1.2.1"

func main() {
	provider := infer.Provider(infer.Options{
		Metadata: schema.Metadata{
			DisplayName: "Command (shortcircuit test double)",
			Description: "TEST DOUBLE of the Pulumi Command provider's remote.Command, written for shortcircuit's end-to-end suite.",
		},
		Resources: []infer.InferredResource{infer.Resource(&remote.Command{})},
	})
	if err := p.RunProvider(context.Background(), "command", Version, provider); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %s", err.Error())
		os.Exit(1)
	}
}
