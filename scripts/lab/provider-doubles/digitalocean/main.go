// pulumi-resource-digitalocean TEST DOUBLE (shortcircuit, test/e2e): Droplet, SshKey,
// ReservedIp, ReservedIpAssignment, Volume, VolumeAttachment, Firewall and the getDroplet,
// getReservedIp, getVolume, getFirewall functions, with the real provider's property names and
// the create/read/update/delete/import behaviour of terraform-provider-digitalocean v2.99.1
// (what pulumi-digitalocean 4.80.1 bridges), talking to the DigitalOcean API at
// DIGITALOCEAN_API_URL (the e2e suite points it at the loopback API double,
// test/e2e/digitalocean/apiDouble.ts). It is NOT pulumi-digitalocean: see ../README.md for what
// it does, the facts each behaviour was taken from, and what it does not do.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	p "github.com/pulumi/pulumi-go-provider"
)

// Version is set at build time to the @pulumi/digitalocean pin the double stands in for.
var Version = "4.80.1"

func main() {
	fmt.Fprintf(os.Stderr, "pulumi-resource-digitalocean %s: shortcircuit TEST DOUBLE (scripts/lab/provider-doubles/digitalocean), not the real provider\n", Version)
	d := &double{}
	provider := p.Provider{
		CheckConfig: func(_ context.Context, req p.CheckRequest) (p.CheckResponse, error) {
			return p.CheckResponse{Inputs: req.Inputs}, nil
		},
		DiffConfig: func(context.Context, p.DiffRequest) (p.DiffResponse, error) {
			return p.DiffResponse{}, nil
		},
		Configure: d.configure,
		Check:     d.check,
		Diff:      d.diff,
		Create:    d.create,
		Read:      d.read,
		Update:    d.update,
		Delete:    d.delete,
		Invoke:    d.invoke,
	}
	if err := p.RunProvider(context.Background(), "digitalocean", Version, provider); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %s", err.Error())
		os.Exit(1)
	}
}

type double struct {
	c *client
}

func envFirst(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

func envDuration(name string, def time.Duration, unit time.Duration) time.Duration {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return time.Duration(v) * unit
	}
	return def
}

// configure: token from the provider config or DIGITALOCEAN_TOKEN / DIGITALOCEAN_ACCESS_TOKEN,
// endpoint from apiEndpoint or DIGITALOCEAN_API_URL (default https://api.digitalocean.com),
// as the real provider's schema defaults.
func (d *double) configure(_ context.Context, req p.ConfigureRequest) error {
	args := plainMap(req.Args)
	token := str(args, "token")
	if token == "" {
		token = envFirst("DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN")
	}
	endpoint := str(args, "apiEndpoint")
	if endpoint == "" {
		endpoint = envFirst("DIGITALOCEAN_API_URL")
	}
	if endpoint == "" {
		endpoint = "https://api.digitalocean.com"
	}
	d.c = &client{
		base:  endpoint,
		token: token,
		http:  &http.Client{Timeout: 60 * time.Second},
		// The real provider polls every >= 3 s after a 10 s delay; the double polls faster.
		poll:    envDuration("DIGITALOCEAN_DOUBLE_POLL_MS", 200*time.Millisecond, time.Millisecond),
		timeout: envDuration("DIGITALOCEAN_DOUBLE_TIMEOUT_SECONDS", 120*time.Second, time.Second),
	}
	return nil
}

func (d *double) client() *client {
	if d.c == nil {
		_ = d.configure(context.Background(), p.ConfigureRequest{})
	}
	return d.c
}

func lookup(typ string) (*resource, error) {
	r, ok := resources[typ]
	if !ok {
		return nil, fmt.Errorf("TEST DOUBLE: resource type %s is not served by this DigitalOcean provider double", typ)
	}
	return r, nil
}

func contains(xs []string, x string) bool {
	for _, e := range xs {
		if e == x {
			return true
		}
	}
	return false
}

func (d *double) check(_ context.Context, req p.CheckRequest) (p.CheckResponse, error) {
	typ := string(req.Urn.Type())
	r, err := lookup(typ)
	if err != nil {
		return p.CheckResponse{}, err
	}
	news := plainMap(req.Inputs)
	var failures []p.CheckFailure
	for k := range news {
		if strings.HasPrefix(k, "__") {
			continue
		}
		if !contains(supported[typ], k) {
			failures = append(failures, p.CheckFailure{Property: k, Reason: fmt.Sprintf("TEST DOUBLE: %s is not supported by the DigitalOcean provider double", k)})
		}
	}
	for _, f := range r.fields {
		if v, ok := news[f.name]; f.required && (!ok || v == nil) {
			failures = append(failures, p.CheckFailure{Property: f.name, Reason: fmt.Sprintf("Missing required argument: The argument %q is required, but no definition was found.", f.tf)})
		}
	}
	return p.CheckResponse{Inputs: req.Inputs, Failures: failures}, nil
}

func topLevel(path string) string {
	for i, ch := range path {
		if ch == '.' || ch == '[' {
			return path[:i]
		}
	}
	return path
}

func (d *double) diff(_ context.Context, req p.DiffRequest) (p.DiffResponse, error) {
	r, err := lookup(string(req.Urn.Type()))
	if err != nil {
		return p.DiffResponse{}, err
	}
	olds := plainMap(req.State)
	news := withDefaults(r.fields, plainMap(req.Inputs))
	entries := map[string]diffEntry{}
	kinds := map[string]p.DiffKind{}
	for _, f := range r.fields {
		if !f.input() {
			continue
		}
		if kind, changed := fieldDiff(f, olds[f.name], news[f.name]); changed {
			kinds[f.name] = kind
			entries[f.name] = diffEntry{kind: string(kind)}
		}
	}
	if r.customizeDiff != nil {
		if err := r.customizeDiff(olds, news, entries); err != nil {
			return p.DiffResponse{}, err
		}
		for k, e := range entries {
			if e.kind == "replace" {
				kinds[k] = p.UpdateReplace
			}
		}
	}
	// The bridge drops ignored paths from the plan.
	for _, path := range req.IgnoreChanges {
		delete(kinds, topLevel(path))
	}
	detailed := map[string]p.PropertyDiff{}
	for k, kind := range kinds {
		detailed[k] = p.PropertyDiff{Kind: kind}
	}
	return p.DiffResponse{HasChanges: len(detailed) > 0, DetailedDiff: detailed}, nil
}

func previewState(r *resource, state map[string]any) map[string]any {
	out := overlay(state, nil)
	for _, f := range r.fields {
		if _, ok := out[f.name]; !ok && f.computed {
			out[f.name] = unknown{}
		}
	}
	return out
}

func (d *double) create(ctx context.Context, req p.CreateRequest) (p.CreateResponse, error) {
	r, err := lookup(string(req.Urn.Type()))
	if err != nil {
		return p.CreateResponse{}, err
	}
	news := withDefaults(r.fields, plainMap(req.Properties))
	secret := secretKeys(req.Properties)
	if req.DryRun {
		return p.CreateResponse{Properties: valueMap(previewState(r, storedInputs(r.fields, news)), secret)}, nil
	}
	id, state, err := r.create(ctx, d.client(), news)
	if err != nil {
		if id != "" {
			if state == nil {
				state = storedInputs(r.fields, news)
			}
			return p.CreateResponse{ID: id, Properties: valueMap(state, secret), PartialState: &p.InitializationFailed{Reasons: []string{err.Error()}}}, nil
		}
		return p.CreateResponse{}, err
	}
	return p.CreateResponse{ID: id, Properties: valueMap(state, secret)}, nil
}

func (d *double) read(ctx context.Context, req p.ReadRequest) (p.ReadResponse, error) {
	r, err := lookup(string(req.Urn.Type()))
	if err != nil {
		return p.ReadResponse{}, err
	}
	olds := plainMap(req.Properties)
	importing := len(olds) == 0
	id, state, err := r.read(ctx, d.client(), req.ID, olds, importing)
	if err != nil {
		return p.ReadResponse{}, err
	}
	if id == "" {
		return p.ReadResponse{}, nil
	}
	secret := secretKeys(req.Properties)
	for k := range secretKeys(req.Inputs) {
		secret[k] = true
	}
	inputs := req.Inputs
	if importing {
		inputs = valueMap(extractInputs(r.fields, state), secret)
	}
	return p.ReadResponse{ID: id, Properties: valueMap(state, secret), Inputs: inputs}, nil
}

func (d *double) update(ctx context.Context, req p.UpdateRequest) (p.UpdateResponse, error) {
	r, err := lookup(string(req.Urn.Type()))
	if err != nil {
		return p.UpdateResponse{}, err
	}
	if !r.hasUpdate {
		return p.UpdateResponse{}, fmt.Errorf("TEST DOUBLE: %s has no update (every input forces a new one)", r.token)
	}
	olds := plainMap(req.State)
	news := withDefaults(r.fields, plainMap(req.Inputs))
	secret := secretKeys(req.Inputs)
	if req.DryRun {
		return p.UpdateResponse{Properties: valueMap(overlay(olds, storedInputs(r.fields, news)), secret)}, nil
	}
	state, err := r.update(ctx, d.client(), req.ID, olds, news)
	if err != nil {
		return p.UpdateResponse{}, err
	}
	return p.UpdateResponse{Properties: valueMap(state, secret)}, nil
}

func (d *double) delete(ctx context.Context, req p.DeleteRequest) error {
	r, err := lookup(string(req.Urn.Type()))
	if err != nil {
		return err
	}
	return r.delete(ctx, d.client(), req.ID, plainMap(req.Properties))
}

// ---------------------------------------------------------------- functions (data sources)

func (d *double) invoke(ctx context.Context, req p.InvokeRequest) (p.InvokeResponse, error) {
	args := plainMap(req.Args)
	c := d.client()
	var out map[string]any
	var err error
	switch string(req.Token) {
	case "digitalocean:index/getDroplet:getDroplet":
		out, err = getDroplet(ctx, c, args)
	case "digitalocean:index/getReservedIp:getReservedIp":
		out, err = getReservedIP(ctx, c, args)
	case "digitalocean:index/getVolume:getVolume":
		out, err = getVolume(ctx, c, args)
	case "digitalocean:index/getFirewall:getFirewall":
		out, err = getFirewall(ctx, c, args)
	default:
		return p.InvokeResponse{}, fmt.Errorf("TEST DOUBLE: function %s is not served by this DigitalOcean provider double", req.Token)
	}
	if err != nil {
		return p.InvokeResponse{}, err
	}
	return p.InvokeResponse{Return: valueMap(out, nil)}, nil
}

// data source digitalocean_droplet (droplet/datasource_droplet.go, droplets.go
// flattenDigitalOceanDroplet): by id only here.
func getDroplet(ctx context.Context, c *client, args map[string]any) (map[string]any, error) {
	id := num(args, "id")
	if id == 0 {
		return nil, fmt.Errorf("TEST DOUBLE: getDroplet is served by id only")
	}
	dr, err := c.getDroplet(ctx, id)
	if err != nil {
		return nil, err
	}
	out := map[string]any{
		"id":               float64(dr.ID),
		"name":             dr.Name,
		"urn":              fmt.Sprintf("do:droplet:%d", dr.ID),
		"region":           dr.Region.Slug,
		"size":             dr.Size.Slug,
		"priceHourly":      dr.Size.PriceHourly,
		"priceMonthly":     dr.Size.PriceMonthly,
		"disk":             float64(dr.Disk),
		"vcpus":            float64(dr.Vcpus),
		"memory":           float64(dr.Memory),
		"status":           dr.Status,
		"locked":           dr.Locked,
		"createdAt":        dr.CreatedAt,
		"vpcUuid":          dr.VPCUUID,
		"volumeIds":        stringsAny(dr.VolumeIDs),
		"tags":             stringsAny(dr.Tags),
		"gpuPartitionMode": "",
		"gpu":              false,
	}
	if dr.Image.Slug == "" {
		out["image"] = strconv.Itoa(dr.Image.ID)
	} else {
		out["image"] = dr.Image.Slug
	}
	for key, addr := range map[string]string{
		"ipv4Address":        dr.address(false, "public"),
		"ipv4AddressPrivate": dr.address(false, "private"),
		"ipv6Address":        strings.ToLower(dr.address(true, "public")),
		"ipv6AddressPrivate": strings.ToLower(dr.address(true, "private")),
	} {
		if addr != "" {
			out[key] = addr
		}
	}
	if dr.Features != nil {
		out["backups"] = dr.has("backups")
		out["ipv6"] = dr.has("ipv6")
		out["privateNetworking"] = dr.has("private_networking")
		out["monitoring"] = dr.has("monitoring")
	}
	return out, nil
}

// data source digitalocean_reserved_ip (reservedip/datasource_reserved_ip.go): it runs the
// resource's Read on a fresh state, where droplet_id is never set (Read refreshes droplet_id only
// when the state already has one), so dropletId is never returned.
func getReservedIP(ctx context.Context, c *client, args map[string]any) (map[string]any, error) {
	ip := str(args, "ipAddress")
	id, state, err := reservedIPRead(ctx, c, ip, map[string]any{}, false)
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, fmt.Errorf("TEST DOUBLE: reserved IP %s not found (the real data source's answer here was not checked)", ip)
	}
	return map[string]any{"id": ip, "ipAddress": str(state, "ipAddress"), "region": str(state, "region"), "urn": str(state, "reservedIpUrn")}, nil
}

// data source digitalocean_volume (volume/datasource_volume.go): GET /v2/volumes?name=&region=,
// exactly one volume of that name.
func getVolume(ctx context.Context, c *client, args map[string]any) (map[string]any, error) {
	name := str(args, "name")
	query := "/v2/volumes?name=" + name + "&page=1&per_page=200"
	if region := str(args, "region"); region != "" {
		query += "&region=" + region
	}
	var list struct {
		Volumes []doVolume `json:"volumes"`
	}
	if err := c.do(ctx, "GET", query, nil, &list); err != nil {
		return nil, fmt.Errorf("Error retrieving volumes: %s", err)
	}
	var found []doVolume
	for _, v := range list.Volumes {
		if v.Name == name {
			found = append(found, v)
		}
	}
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("no volumes found with name %s", name)
	case len(found) > 1:
		return nil, fmt.Errorf("too many volumes found with name %s (found %d, expected 1)", name, len(found))
	}
	v := found[0]
	out := volumeAttributes(&v)
	out["id"] = v.ID
	out["urn"] = out["volumeUrn"]
	delete(out, "volumeUrn")
	return out, nil
}

// data source digitalocean_firewall (firewall/datasource_firewall.go): the resource's Read by firewall_id.
func getFirewall(ctx context.Context, c *client, args map[string]any) (map[string]any, error) {
	id := str(args, "firewallId")
	got, state, err := firewallRead(ctx, c, id, map[string]any{}, false)
	if err != nil {
		return nil, err
	}
	if got == "" {
		return nil, fmt.Errorf("TEST DOUBLE: firewall %s not found (the real data source's answer here was not checked)", id)
	}
	state["id"] = id
	state["firewallId"] = id
	return state, nil
}
