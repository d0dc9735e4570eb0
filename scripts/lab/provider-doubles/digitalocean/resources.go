package main

// The resources of the DigitalOcean provider TEST DOUBLE. Each create/read/update/delete makes
// the API calls terraform-provider-digitalocean v2.99.1 makes (file named on each), against
// DIGITALOCEAN_API_URL. State = the configured values (StateFuncs applied) overlaid with what
// the provider's Read sets, as in a Terraform state.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

type resource struct {
	token     string
	fields    []field
	hasUpdate bool
	// customizeDiff adjusts the plan (schema CustomizeDiff); may return an error.
	customizeDiff func(olds, news map[string]any, diff map[string]diffEntry) error
	create        func(ctx context.Context, c *client, news map[string]any) (string, map[string]any, error)
	// read returns id "" when the object is gone. importing: the object is not in state yet.
	read   func(ctx context.Context, c *client, id string, olds map[string]any, importing bool) (string, map[string]any, error)
	update func(ctx context.Context, c *client, id string, olds, news map[string]any) (map[string]any, error)
	delete func(ctx context.Context, c *client, id string, olds map[string]any) error
}

type diffEntry struct {
	kind string
}

// storedInputs: the configured values as Terraform stores them (defaults and StateFuncs applied).
func storedInputs(fields []field, news map[string]any) map[string]any {
	out := map[string]any{}
	news = withDefaults(fields, news)
	for _, f := range fields {
		if v, ok := news[f.name]; ok && v != nil && f.input() {
			out[f.name] = stored(f, v)
		}
	}
	return out
}

func overlay(base map[string]any, top map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range top {
		out[k] = v
	}
	return out
}

// id.PrefixedUniqueId of the Terraform plugin SDK: prefix + UTC timestamp with 4 fractional
// digits + an 8-hex-digit counter.
var uniqueCounter atomic.Uint32

func prefixedUniqueID(prefix string) string {
	ts := strings.ReplaceAll(time.Now().UTC().Format("20060102150405.0000"), ".", "")
	return fmt.Sprintf("%s%s%08x", prefix, ts, uniqueCounter.Add(1))
}

// ---------------------------------------------------------------- digitalocean_droplet
// digitalocean/droplet/resource_droplet.go

var dropletFields = []field{
	{name: "image", tf: "image", typ: tString, required: true, forceNew: true},
	{name: "name", tf: "name", typ: tString, required: true},
	{name: "region", tf: "region", typ: tString, optional: true, computed: true, forceNew: true, stateFunc: lower},
	{name: "size", tf: "size", typ: tString, required: true, stateFunc: lower},
	{name: "gracefulShutdown", tf: "graceful_shutdown", typ: tBool, optional: true, def: false},
	{name: "resizeDisk", tf: "resize_disk", typ: tBool, optional: true, def: true},
	{name: "backups", tf: "backups", typ: tBool, optional: true, def: false},
	{name: "ipv6", tf: "ipv6", typ: tBool, optional: true, def: false},
	{name: "ipv6Address", tf: "ipv6_address", typ: tString, optional: true, computed: true},
	{name: "privateNetworking", tf: "private_networking", typ: tBool, optional: true, computed: true},
	{name: "publicNetworking", tf: "public_networking", typ: tBool, optional: true, computed: true, forceNew: true},
	{name: "sshKeys", tf: "ssh_keys", typ: tStringSet, optional: true, forceNew: true},
	{name: "userData", tf: "user_data", typ: tString, optional: true, forceNew: true, stateFunc: sha1Hex,
		// Older states kept the whole text: no diff when the stored value is the text itself.
		suppress: func(o, n any) bool { ns, _ := n.(string); return ns != "" && o == n }},
	{name: "volumeIds", tf: "volume_ids", typ: tStringSet, optional: true, computed: true},
	{name: "monitoring", tf: "monitoring", typ: tBool, optional: true, forceNew: true, def: false},
	{name: "dropletAgent", tf: "droplet_agent", typ: tBool, optional: true, forceNew: true},
	{name: "tags", tf: "tags", typ: tStringSet, optional: true},
	{name: "vpcUuid", tf: "vpc_uuid", typ: tString, optional: true, computed: true, forceNew: true},
	{name: "createdAt", tf: "created_at", typ: tString, computed: true},
	{name: "dropletUrn", tf: "urn", typ: tString, computed: true},
	{name: "disk", tf: "disk", typ: tInt, computed: true},
	{name: "vcpus", tf: "vcpus", typ: tInt, computed: true},
	{name: "memory", tf: "memory", typ: tInt, computed: true},
	{name: "priceHourly", tf: "price_hourly", typ: tInt, computed: true},
	{name: "priceMonthly", tf: "price_monthly", typ: tInt, computed: true},
	{name: "status", tf: "status", typ: tString, computed: true},
	{name: "locked", tf: "locked", typ: tBool, computed: true},
	{name: "ipv4Address", tf: "ipv4_address", typ: tString, computed: true},
	{name: "ipv4AddressPrivate", tf: "ipv4_address_private", typ: tString, computed: true},
}

// Inputs the double acts on; any other droplet input is refused in Check.
var dropletSupported = []string{"image", "name", "region", "size", "gracefulShutdown", "resizeDisk", "backups", "ipv6",
	"sshKeys", "userData", "monitoring", "tags"}

// setDropletAttributes (the image is deliberately not read back: it may drift).
func dropletAttributes(d *doDroplet) map[string]any {
	out := map[string]any{
		"name":               d.Name,
		"dropletUrn":         fmt.Sprintf("do:droplet:%d", d.ID),
		"region":             d.Region.Slug,
		"size":               d.Size.Slug,
		"priceHourly":        d.Size.PriceHourly,
		"priceMonthly":       d.Size.PriceMonthly,
		"disk":               float64(d.Disk),
		"vcpus":              float64(d.Vcpus),
		"memory":             float64(d.Memory),
		"status":             d.Status,
		"locked":             d.Locked,
		"createdAt":          d.CreatedAt,
		"vpcUuid":            d.VPCUUID,
		"ipv4Address":        d.address(false, "public"),
		"ipv4AddressPrivate": d.address(false, "private"),
		"ipv6Address":        strings.ToLower(d.address(true, "public")),
		"publicNetworking":   d.address(false, "public") != "",
		"volumeIds":          stringsAny(d.VolumeIDs),
		"tags":               stringsAny(d.Tags),
	}
	if d.Features != nil {
		out["backups"] = d.has("backups")
		out["ipv6"] = d.has("ipv6")
		out["privateNetworking"] = d.has("private_networking")
		out["monitoring"] = d.has("monitoring")
	}
	return out
}

// waitForDropletAttribute: poll GET /v2/droplets/<id> until attr == target (skipping while
// locked). A 404 is retried on create, is "Not Found" on delete, an error on update.
func waitForDroplet(ctx context.Context, c *client, id int, attr, target string, pending []string, op string) (*doDroplet, error) {
	var last *doDroplet
	err := c.waitUntil(ctx, fmt.Sprintf("droplet (%d) to have %s of %s", id, attr, target), func() (bool, error) {
		d, err := c.getDroplet(ctx, id)
		if err != nil {
			if isStatus(err, 404) {
				switch op {
				case "create":
					return false, nil
				case "delete":
					if target == "Not Found" {
						return true, nil
					}
					return false, fmt.Errorf("unexpected state 'Not Found', wanted target '%s'", target)
				default:
					return false, fmt.Errorf("droplet (%d) not found during update", id)
				}
			}
			return false, fmt.Errorf("Error retrieving droplet: %s", err)
		}
		last = d
		if d.Locked && attr != "locked" {
			return false, nil
		}
		var got string
		switch attr {
		case "status":
			got = d.Status
		case "locked":
			got = strconv.FormatBool(d.Locked)
		case "name":
			got = d.Name
		case "ipv6":
			got = strconv.FormatBool(d.has("ipv6"))
		}
		if got == target {
			return true, nil
		}
		for _, p := range pending {
			if got == p {
				return false, nil
			}
		}
		return false, fmt.Errorf("unexpected state '%s', wanted target '%s'", got, target)
	})
	return last, err
}

func dropletCreate(ctx context.Context, c *client, news map[string]any) (string, map[string]any, error) {
	body := map[string]any{
		"name":               str(news, "name"),
		"region":             str(news, "region"),
		"size":               str(news, "size"),
		"backups":            boolean(news, "backups"),
		"ipv6":               boolean(news, "ipv6"),
		"private_networking": false,
		"monitoring":         boolean(news, "monitoring"),
		"tags":               stringsAny(strings_(news, "tags")),
	}
	// expandDropletCreateRequest: a numeric image is an image id, else a slug; the same for ssh_keys.
	if n, err := strconv.Atoi(str(news, "image")); err == nil {
		body["image"] = n
	} else {
		body["image"] = str(news, "image")
	}
	if ud := str(news, "userData"); ud != "" {
		body["user_data"] = ud
	}
	if keys := strings_(news, "sshKeys"); len(keys) > 0 {
		expanded := []any{}
		for _, k := range keys {
			if n, err := strconv.Atoi(k); err == nil {
				expanded = append(expanded, n)
			} else {
				expanded = append(expanded, k)
			}
		}
		body["ssh_keys"] = expanded
	}
	var out struct {
		Droplet doDroplet `json:"droplet"`
	}
	if err := c.do(ctx, "POST", "/v2/droplets", body, &out); err != nil {
		return "", nil, fmt.Errorf("Error creating droplet: %s", err)
	}
	id := out.Droplet.ID
	d, err := waitForDroplet(ctx, c, id, "status", "active", []string{"new"}, "create")
	if err != nil {
		// The droplet exists: Terraform keeps it in state (tainted); here the create fails.
		return strconv.Itoa(id), nil, fmt.Errorf("Error waiting for droplet (%d) to become ready: %s", id, err)
	}
	return strconv.Itoa(id), overlay(storedInputs(dropletFields, news), dropletAttributes(d)), nil
}

func dropletRead(ctx context.Context, c *client, id string, olds map[string]any, importing bool) (string, map[string]any, error) {
	n, err := strconv.Atoi(id)
	if err != nil {
		return "", nil, fmt.Errorf("invalid droplet id: %v", err)
	}
	state := olds
	if importing {
		// resourceDigitalOceanDropletImport: image from the API, resize_disk at its default.
		d, err := c.getDroplet(ctx, n)
		if err != nil {
			return "", nil, fmt.Errorf("Error importing droplet: %s", err)
		}
		state = map[string]any{"resizeDisk": true}
		if d.Image.Slug != "" {
			state["image"] = d.Image.Slug
		} else {
			state["image"] = strconv.Itoa(d.Image.ID)
		}
	}
	d, err := c.getDroplet(ctx, n)
	if err != nil {
		if isStatus(err, 404) {
			return "", nil, nil
		}
		return "", nil, fmt.Errorf("Error retrieving droplet: %s", err)
	}
	return id, overlay(state, dropletAttributes(d)), nil
}

func dropletUpdate(ctx context.Context, c *client, id string, olds, news map[string]any) (map[string]any, error) {
	n, err := strconv.Atoi(id)
	if err != nil {
		return nil, fmt.Errorf("invalid droplet id: %v", err)
	}
	newsStored := storedInputs(dropletFields, news)
	changed := func(k string) bool {
		f := fieldByName(dropletFields, k)
		_, ch := fieldDiff(f, olds[k], withDefaults(dropletFields, news)[k])
		return ch
	}
	path := fmt.Sprintf("/v2/droplets/%d/actions", n)
	if changed("size") {
		if _, err := c.postAction(ctx, path, map[string]any{"type": "power_off"}); err != nil &&
			!strings.Contains(err.Error(), "Droplet is already powered off") {
			return nil, fmt.Errorf("Error powering off droplet (%s): %s", id, err)
		}
		if _, err := waitForDroplet(ctx, c, n, "status", "off", []string{"active"}, "update"); err != nil {
			return nil, fmt.Errorf("Error waiting for droplet (%s) to become powered off: %s", id, err)
		}
		action, err := c.postAction(ctx, path, map[string]any{"type": "resize", "size": str(newsStored, "size"), "disk": boolean(newsStored, "resizeDisk")})
		if err == nil {
			err = c.waitForAction(ctx, action)
		}
		if err != nil {
			_, _ = c.postAction(ctx, path, map[string]any{"type": "power_on"})
			return nil, fmt.Errorf("Error resizing droplet (%s): %s", id, err)
		}
		if _, err := c.postAction(ctx, path, map[string]any{"type": "power_on"}); err != nil {
			return nil, fmt.Errorf("Error powering on droplet (%s) after resize: %s", id, err)
		}
		if _, err := waitForDroplet(ctx, c, n, "status", "active", []string{"off"}, "update"); err != nil {
			return nil, err
		}
	}
	if changed("name") {
		if _, err := c.postAction(ctx, path, map[string]any{"type": "rename", "name": str(news, "name")}); err != nil {
			return nil, fmt.Errorf("Error renaming droplet (%s): %s", id, err)
		}
		if _, err := waitForDroplet(ctx, c, n, "name", str(news, "name"), []string{"", str(olds, "name")}, "update"); err != nil {
			return nil, fmt.Errorf("Error waiting for rename droplet (%s) to finish: %s", id, err)
		}
	}
	if changed("backups") || changed("tags") {
		return nil, errors.New("TEST DOUBLE: changing a droplet's backups or tags is not implemented")
	}
	if changed("ipv6") && boolean(newsStored, "ipv6") {
		if _, err := c.postAction(ctx, path, map[string]any{"type": "enable_ipv6"}); err != nil {
			return nil, fmt.Errorf("Error turning on ipv6 for droplet (%s): %s", id, err)
		}
		if _, err := waitForDroplet(ctx, c, n, "ipv6", "true", []string{"", "false"}, "update"); err != nil {
			return nil, fmt.Errorf("Error waiting for ipv6 to be turned on for droplet (%s): %s", id, err)
		}
	}
	d, err := c.getDroplet(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("Error retrieving droplet: %s", err)
	}
	return overlay(overlay(olds, newsStored), dropletAttributes(d)), nil
}

func dropletDelete(ctx context.Context, c *client, id string, olds map[string]any) error {
	n, err := strconv.Atoi(id)
	if err != nil {
		return fmt.Errorf("invalid droplet id: %v", err)
	}
	// Waiting for "unlocked" re-reads the droplet, so the volumes detached next are the live ones.
	d, err := waitForDroplet(ctx, c, n, "locked", "false", []string{"", "true"}, "delete")
	if err != nil {
		return fmt.Errorf("Error waiting for droplet to be unlocked for destroy (%s): %s", id, err)
	}
	path := fmt.Sprintf("/v2/droplets/%d/actions", n)
	if boolean(olds, "gracefulShutdown") {
		if _, err := c.postAction(ctx, path, map[string]any{"type": "shutdown"}); err != nil {
			return fmt.Errorf("Error shutting down the the droplet (%s): %s", id, err)
		}
		if _, err := waitForDroplet(ctx, c, n, "status", "off", []string{"active"}, "delete"); err != nil {
			return fmt.Errorf("Error waiting for droplet (%s) to become off: %s", id, err)
		}
	}
	for _, volumeID := range d.VolumeIDs {
		action, err := c.postAction(ctx, "/v2/volumes/"+volumeID+"/actions", map[string]any{"type": "detach", "droplet_id": n})
		if err == nil {
			err = c.waitForAction(ctx, action)
		}
		if err != nil {
			return fmt.Errorf("Error detaching the volumes from the droplet (%s): Error detaching volume %q from droplet (%s): %s", id, volumeID, id, err)
		}
	}
	if err := c.do(ctx, "DELETE", "/v2/droplets/"+id, nil, nil); err != nil {
		if isStatus(err, 404) {
			return nil
		}
	}
	// waitForDropletDestroy: until GET answers 404.
	if _, err := waitForDroplet(ctx, c, n, "status", "Not Found", []string{"active", "off"}, "delete"); err != nil {
		return fmt.Errorf("Error deleting droplet: %s", err)
	}
	return nil
}

// ---------------------------------------------------------------- digitalocean_ssh_key
// digitalocean/sshkey/resource_ssh_key.go

var sshKeyFields = []field{
	{name: "name", tf: "name", typ: tString, required: true},
	{name: "publicKey", tf: "public_key", typ: tString, required: true, forceNew: true, suppress: trimSpaceEqual},
	{name: "fingerprint", tf: "fingerprint", typ: tString, computed: true},
}

func sshKeyAttributes(k *doKey) map[string]any {
	return map[string]any{"name": k.Name, "fingerprint": k.Fingerprint, "publicKey": k.PublicKey}
}

func sshKeyCreate(ctx context.Context, c *client, news map[string]any) (string, map[string]any, error) {
	var out struct {
		SSHKey doKey `json:"ssh_key"`
	}
	if err := c.do(ctx, "POST", "/v2/account/keys", map[string]any{"name": str(news, "name"), "public_key": str(news, "publicKey")}, &out); err != nil {
		return "", nil, fmt.Errorf("Error creating SSH Key: %s", err)
	}
	id := strconv.Itoa(out.SSHKey.ID)
	_, state, err := sshKeyRead(ctx, c, id, storedInputs(sshKeyFields, news), false)
	if err != nil {
		return id, nil, fmt.Errorf("Error retrieving SSH Key: %s", err)
	}
	return id, state, nil
}

func sshKeyRead(ctx context.Context, c *client, id string, olds map[string]any, _ bool) (string, map[string]any, error) {
	var out struct {
		SSHKey doKey `json:"ssh_key"`
	}
	if err := c.do(ctx, "GET", "/v2/account/keys/"+id, nil, &out); err != nil {
		if isStatus(err, 404) {
			return "", nil, nil
		}
		return "", nil, fmt.Errorf("Error retrieving SSH key: %s", err)
	}
	return id, overlay(olds, sshKeyAttributes(&out.SSHKey)), nil
}

func sshKeyUpdate(ctx context.Context, c *client, id string, olds, news map[string]any) (map[string]any, error) {
	if err := c.do(ctx, "PUT", "/v2/account/keys/"+id, map[string]any{"name": str(news, "name")}, nil); err != nil {
		return nil, fmt.Errorf("Failed to update SSH key: %s", err)
	}
	_, state, err := sshKeyRead(ctx, c, id, overlay(olds, storedInputs(sshKeyFields, news)), false)
	return state, err
}

func sshKeyDelete(ctx context.Context, c *client, id string, _ map[string]any) error {
	if err := c.do(ctx, "DELETE", "/v2/account/keys/"+id, nil, nil); err != nil {
		return fmt.Errorf("Error deleting SSH key: %s", err)
	}
	return nil
}

// ---------------------------------------------------------------- digitalocean_reserved_ip
// digitalocean/reservedip/resource_reserved_ip.go, reserved_ip_actions.go

var reservedIPFields = []field{
	{name: "region", tf: "region", typ: tString, required: true, forceNew: true, stateFunc: lower},
	{name: "reservedIpUrn", tf: "urn", typ: tString, computed: true},
	{name: "ipAddress", tf: "ip_address", typ: tString, optional: true, computed: true},
	{name: "dropletId", tf: "droplet_id", typ: tInt, optional: true},
}

func reservedIPAssign(ctx context.Context, c *client, ip string, dropletID int) error {
	if err := c.waitOnDroplet(ctx, dropletID); err != nil {
		return fmt.Errorf("Error waiting for droplet (%d) to be ready for reserved IP assign: %s", dropletID, err)
	}
	action, err := c.postAction(ctx, "/v2/reserved_ips/"+ip+"/actions", map[string]any{"type": "assign", "droplet_id": dropletID})
	if err != nil {
		return fmt.Errorf("Error Assigning reserved IP (%s) to the Droplet: %s", ip, err)
	}
	if err := c.waitForReservedIPAction(ctx, ip, action); err != nil {
		return fmt.Errorf("Error waiting for reserved IP (%s) to be Assigned: %s", ip, err)
	}
	return nil
}

func reservedIPUnassign(ctx context.Context, c *client, ip string) error {
	action, err := c.postAction(ctx, "/v2/reserved_ips/"+ip+"/actions", map[string]any{"type": "unassign"})
	if err != nil {
		return fmt.Errorf("Error unassigning reserved IP (%s): %s", ip, err)
	}
	if err := c.waitForReservedIPAction(ctx, ip, action); err != nil {
		return fmt.Errorf("Error waiting for reserved IP (%s) to be Unassigned: %s", ip, err)
	}
	return nil
}

func reservedIPCreate(ctx context.Context, c *client, news map[string]any) (string, map[string]any, error) {
	var out struct {
		ReservedIP doReservedIP `json:"reserved_ip"`
	}
	if err := c.do(ctx, "POST", "/v2/reserved_ips", map[string]any{"region": str(news, "region")}, &out); err != nil {
		return "", nil, fmt.Errorf("Error creating reserved IP: %s", err)
	}
	ip := out.ReservedIP.IP
	if dropletID := num(news, "dropletId"); dropletID != 0 {
		if err := reservedIPAssign(ctx, c, ip, dropletID); err != nil {
			return ip, nil, err
		}
	}
	_, state, err := reservedIPRead(ctx, c, ip, storedInputs(reservedIPFields, news), false)
	return ip, state, err
}

func reservedIPRead(ctx context.Context, c *client, id string, olds map[string]any, importing bool) (string, map[string]any, error) {
	r, err := c.getReservedIP(ctx, id)
	if err != nil {
		if isStatus(err, 404) {
			return "", nil, nil
		}
		return "", nil, fmt.Errorf("Error retrieving reserved IP: %s", err)
	}
	state := overlay(olds, nil)
	if importing {
		// resourceDigitalOceanReservedIPImport: droplet_id is set when the IP is assigned.
		if r.Droplet != nil {
			state["dropletId"] = float64(r.Droplet.ID)
		}
	}
	// Read: droplet_id (and the droplet's region) only refreshes when the state has one; a
	// stored droplet_id is left as is when the IP is no longer assigned.
	if num(state, "dropletId") != 0 && r.Droplet != nil {
		state["region"] = r.Droplet.Region.Slug
		state["dropletId"] = float64(r.Droplet.ID)
	} else {
		state["region"] = r.Region.Slug
	}
	state["ipAddress"] = r.IP
	state["reservedIpUrn"] = "do:reservedip:" + r.IP
	return id, state, nil
}

func reservedIPUpdate(ctx context.Context, c *client, id string, olds, news map[string]any) (map[string]any, error) {
	f := fieldByName(reservedIPFields, "dropletId")
	if _, changed := fieldDiff(f, olds["dropletId"], news["dropletId"]); changed {
		if dropletID := num(news, "dropletId"); dropletID != 0 {
			if err := reservedIPAssign(ctx, c, id, dropletID); err != nil {
				return nil, err
			}
		} else if err := reservedIPUnassign(ctx, c, id); err != nil {
			return nil, err
		}
	}
	state := overlay(olds, storedInputs(reservedIPFields, news))
	if _, ok := news["dropletId"]; !ok {
		delete(state, "dropletId")
	}
	_, out, err := reservedIPRead(ctx, c, id, state, false)
	return out, err
}

func reservedIPDelete(ctx context.Context, c *client, id string, olds map[string]any) error {
	if num(olds, "dropletId") != 0 {
		action, err := c.postAction(ctx, "/v2/reserved_ips/"+id+"/actions", map[string]any{"type": "unassign"})
		if !isStatus(err, 422) {
			if err != nil {
				return fmt.Errorf("Error unassigning reserved IP (%s) from the droplet: %s", id, err)
			}
			if err := c.waitForReservedIPAction(ctx, id, action); err != nil {
				return fmt.Errorf("Error waiting for reserved IP (%s) to be unassigned: %s", id, err)
			}
		}
	}
	if err := c.do(ctx, "DELETE", "/v2/reserved_ips/"+id, nil, nil); err != nil {
		return fmt.Errorf("Error deleting reserved IP: %s", err)
	}
	return nil
}

// ---------------------------------------------------------------- digitalocean_reserved_ip_assignment
// digitalocean/reservedip/resource_reserved_ip_assignment.go

var reservedIPAssignmentFields = []field{
	{name: "ipAddress", tf: "ip_address", typ: tString, required: true, forceNew: true},
	{name: "dropletId", tf: "droplet_id", typ: tInt, required: true, forceNew: true},
}

func reservedIPAssignmentCreate(ctx context.Context, c *client, news map[string]any) (string, map[string]any, error) {
	ip, dropletID := str(news, "ipAddress"), num(news, "dropletId")
	if err := c.waitOnDroplet(ctx, dropletID); err != nil {
		return "", nil, fmt.Errorf("Error waiting for droplet (%d) to be ready for reserved IP assign: %s", dropletID, err)
	}
	action, err := c.postAction(ctx, "/v2/reserved_ips/"+ip+"/actions", map[string]any{"type": "assign", "droplet_id": dropletID})
	if err != nil {
		return "", nil, fmt.Errorf("Error Assigning reserved IP (%s) to the droplet: %s", ip, err)
	}
	if err := c.waitForReservedIPAction(ctx, ip, action); err != nil {
		return "", nil, fmt.Errorf("Error waiting for reserved IP (%s) to be Assigned: %s", ip, err)
	}
	id := prefixedUniqueID(fmt.Sprintf("%d-%s-", dropletID, ip))
	return reservedIPAssignmentRead(ctx, c, id, storedInputs(reservedIPAssignmentFields, news), false)
}

func reservedIPAssignmentRead(ctx context.Context, c *client, id string, olds map[string]any, importing bool) (string, map[string]any, error) {
	state := olds
	if importing {
		// resourceDigitalOceanReservedIPAssignmentImport: "<ip>,<droplet id>".
		parts := strings.Split(id, ",")
		if len(parts) < 2 {
			return "", nil, errors.New("must use the reserved IP and the ID of the Droplet joined with a comma (e.g. `ip_address,droplet_id`)")
		}
		dropletID, err := strconv.Atoi(parts[1])
		if err != nil {
			return "", nil, err
		}
		id = prefixedUniqueID(fmt.Sprintf("%s-%s-", parts[1], parts[0]))
		state = map[string]any{"ipAddress": parts[0], "dropletId": float64(dropletID)}
	}
	r, err := c.getReservedIP(ctx, str(state, "ipAddress"))
	if err != nil {
		return "", nil, fmt.Errorf("Error retrieving reserved IP: %s", err)
	}
	if r.Droplet == nil || r.Droplet.ID != num(state, "dropletId") {
		return "", nil, nil
	}
	return id, state, nil
}

func reservedIPAssignmentDelete(ctx context.Context, c *client, _ string, olds map[string]any) error {
	ip, dropletID := str(olds, "ipAddress"), num(olds, "dropletId")
	r, err := c.getReservedIP(ctx, ip)
	if err != nil {
		return fmt.Errorf("Error retrieving reserved IP: %s", err)
	}
	if r.Droplet == nil {
		// The real provider dereferences reservedIP.Droplet unguarded here and crashes.
		return fmt.Errorf("TEST DOUBLE: reserved IP %s is not assigned; the real provider (v2.99.1 resourceDigitalOceanReservedIPAssignmentDelete) panics on a nil Droplet here", ip)
	}
	if r.Droplet.ID == dropletID {
		action, err := c.postAction(ctx, "/v2/reserved_ips/"+ip+"/actions", map[string]any{"type": "unassign"})
		if err != nil {
			return fmt.Errorf("Error unassigning reserved IP (%s) from the droplet: %s", ip, err)
		}
		if err := c.waitForReservedIPAction(ctx, ip, action); err != nil {
			return fmt.Errorf("Error waiting for reserved IP (%s) to be unassigned: %s", ip, err)
		}
	}
	return nil
}

// ---------------------------------------------------------------- digitalocean_volume
// digitalocean/volume/resource_volume.go

var volumeFields = []field{
	{name: "region", tf: "region", typ: tString, required: true, forceNew: true, stateFunc: lower},
	{name: "name", tf: "name", typ: tString, required: true, forceNew: true},
	{name: "volumeUrn", tf: "urn", typ: tString, computed: true},
	{name: "size", tf: "size", typ: tInt, required: true},
	{name: "description", tf: "description", typ: tString, optional: true, forceNew: true},
	{name: "snapshotId", tf: "snapshot_id", typ: tString, optional: true, forceNew: true},
	{name: "initialFilesystemType", tf: "initial_filesystem_type", typ: tString, optional: true, forceNew: true},
	{name: "initialFilesystemLabel", tf: "initial_filesystem_label", typ: tString, optional: true, forceNew: true},
	{name: "dropletIds", tf: "droplet_ids", typ: tIntSet, computed: true},
	{name: "filesystemType", tf: "filesystem_type", typ: tString, optional: true, computed: true},
	{name: "filesystemLabel", tf: "filesystem_label", typ: tString, computed: true},
	{name: "tags", tf: "tags", typ: tStringSet, optional: true},
}

var volumeSupported = []string{"region", "name", "size", "description", "initialFilesystemType", "initialFilesystemLabel", "filesystemType", "tags"}

func volumeAttributes(v *doVolume) map[string]any {
	out := map[string]any{
		"name":       v.Name,
		"region":     v.Region.Slug,
		"size":       float64(v.SizeGigaBytes),
		"volumeUrn":  "do:volume:" + v.ID,
		"tags":       stringsAny(v.Tags),
		"dropletIds": intsAny(v.DropletIDs),
	}
	if v.Description != "" {
		out["description"] = v.Description
	}
	if v.FilesystemType != "" {
		out["filesystemType"] = v.FilesystemType
	}
	if v.FilesystemLabel != "" {
		out["filesystemLabel"] = v.FilesystemLabel
	}
	return out
}

func volumeCreate(ctx context.Context, c *client, news map[string]any) (string, map[string]any, error) {
	body := map[string]any{
		"name":           str(news, "name"),
		"description":    str(news, "description"),
		"region":         strings.ToLower(str(news, "region")),
		"size_gigabytes": num(news, "size"),
		"tags":           stringsAny(strings_(news, "tags")),
	}
	if t := str(news, "initialFilesystemType"); t != "" {
		body["filesystem_type"] = t
	} else if t := str(news, "filesystemType"); t != "" {
		body["filesystem_type"] = t
	}
	if l := str(news, "initialFilesystemLabel"); l != "" {
		body["filesystem_label"] = l
	}
	var out struct {
		Volume doVolume `json:"volume"`
	}
	if err := c.do(ctx, "POST", "/v2/volumes", body, &out); err != nil {
		return "", nil, fmt.Errorf("Error creating Volume: %s", err)
	}
	return volumeRead(ctx, c, out.Volume.ID, storedInputs(volumeFields, news), false)
}

// Import is passthrough: the same Read, so initial_filesystem_type is never in an imported state.
func volumeRead(ctx context.Context, c *client, id string, olds map[string]any, _ bool) (string, map[string]any, error) {
	v, err := c.getVolume(ctx, id)
	if err != nil {
		if isStatus(err, 404) {
			return "", nil, nil
		}
		return "", nil, fmt.Errorf("Error retrieving volume: %s", err)
	}
	return id, overlay(olds, volumeAttributes(v)), nil
}

func volumeUpdate(ctx context.Context, c *client, id string, olds, news map[string]any) (map[string]any, error) {
	if num(news, "size") != num(olds, "size") {
		action, err := c.postAction(ctx, "/v2/volumes/"+id+"/actions", map[string]any{"type": "resize", "size_gigabytes": num(news, "size"), "region": strings.ToLower(str(olds, "region"))})
		if err != nil {
			return nil, fmt.Errorf("Error resizing volume (%s): %s", id, err)
		}
		if err := c.waitForAction(ctx, action); err != nil {
			return nil, fmt.Errorf("Error waiting for resize volume (%s) to finish: %s", id, err)
		}
	}
	if _, changed := fieldDiff(fieldByName(volumeFields, "tags"), olds["tags"], news["tags"]); changed {
		return nil, errors.New("TEST DOUBLE: changing a volume's tags is not implemented")
	}
	_, state, err := volumeRead(ctx, c, id, overlay(olds, storedInputs(volumeFields, news)), false)
	return state, err
}

func volumeDelete(ctx context.Context, c *client, id string, _ map[string]any) error {
	if err := c.do(ctx, "DELETE", "/v2/volumes/"+id, nil, nil); err != nil {
		return fmt.Errorf("Error deleting volume: %s", err)
	}
	return nil
}

// ---------------------------------------------------------------- digitalocean_volume_attachment
// digitalocean/volume/resource_volume_attachment.go (no importer)

var volumeAttachmentFields = []field{
	{name: "dropletId", tf: "droplet_id", typ: tInt, required: true, forceNew: true},
	{name: "volumeId", tf: "volume_id", typ: tString, required: true, forceNew: true},
}

func volumeAttachmentCreate(ctx context.Context, c *client, news map[string]any) (string, map[string]any, error) {
	dropletID, volumeID := num(news, "dropletId"), str(news, "volumeId")
	v, err := c.getVolume(ctx, volumeID)
	if err != nil {
		return "", nil, fmt.Errorf("Error retrieving volume: %s", err)
	}
	// Attach only when the volume is not already on this droplet (its first droplet id).
	if len(v.DropletIDs) == 0 || v.DropletIDs[0] != dropletID {
		deadline := time.Now().Add(c.timeout)
		for {
			action, err := c.postAction(ctx, "/v2/volumes/"+volumeID+"/actions", map[string]any{"type": "attach", "droplet_id": dropletID})
			if err != nil {
				// Retried only on "Droplet already has a pending event." (422).
				if e, ok := err.(*apiError); ok && e.Status == 422 && strings.Contains(strings.ToLower(e.Message), "droplet already has a pending event") && time.Now().Before(deadline) {
					time.Sleep(c.poll)
					continue
				}
				return "", nil, fmt.Errorf("Error attaching volume to droplet after retry timeout: [WARN] Error attaching volume (%s) to Droplet (%d): %s", volumeID, dropletID, err)
			}
			if err := c.waitForAction(ctx, action); err != nil {
				return "", nil, fmt.Errorf("Error attaching volume to droplet after retry timeout: [DEBUG] Error waiting for attach volume (%s) to Droplet (%d) to finish: %s", volumeID, dropletID, err)
			}
			break
		}
	}
	return prefixedUniqueID(fmt.Sprintf("%d-%s-", dropletID, volumeID)), storedInputs(volumeAttachmentFields, news), nil
}

func volumeAttachmentRead(ctx context.Context, c *client, id string, olds map[string]any, importing bool) (string, map[string]any, error) {
	if importing {
		return "", nil, errors.New("resource digitalocean_volume_attachment doesn't support import")
	}
	v, err := c.getVolume(ctx, str(olds, "volumeId"))
	if err != nil {
		if isStatus(err, 404) {
			return "", nil, nil
		}
		return "", nil, fmt.Errorf("Error retrieving volume: %s", err)
	}
	if len(v.DropletIDs) == 0 || v.DropletIDs[0] != num(olds, "dropletId") {
		return "", nil, nil
	}
	return id, olds, nil
}

func volumeAttachmentDelete(ctx context.Context, c *client, _ string, olds map[string]any) error {
	dropletID, volumeID := num(olds, "dropletId"), str(olds, "volumeId")
	deadline := time.Now().Add(c.timeout)
	for {
		action, err := c.postAction(ctx, "/v2/volumes/"+volumeID+"/actions", map[string]any{"type": "detach", "droplet_id": dropletID})
		if err != nil {
			if e, ok := err.(*apiError); ok && e.Status == 422 && strings.Contains(strings.ToLower(e.Message), "droplet already has a pending event") && time.Now().Before(deadline) {
				time.Sleep(c.poll)
				continue
			}
			return fmt.Errorf("Error detaching volume from droplet after retry timeout: [WARN] Error detaching volume (%s) from Droplet (%d): %s", volumeID, dropletID, err)
		}
		if err := c.waitForAction(ctx, action); err != nil {
			return fmt.Errorf("Error detaching volume from droplet after retry timeout: Error waiting for detach volume (%s) from Droplet (%d) to finish: %s", volumeID, dropletID, err)
		}
		return nil
	}
}

// ---------------------------------------------------------------- digitalocean_firewall
// digitalocean/firewall/resource_firewall.go, firewalls.go

var firewallFields = []field{
	{name: "name", tf: "name", typ: tString, required: true},
	{name: "dropletIds", tf: "droplet_ids", typ: tIntSet, optional: true},
	{name: "inboundRules", tf: "inbound_rule", typ: tRuleSet, optional: true},
	{name: "outboundRules", tf: "outbound_rule", typ: tRuleSet, optional: true},
	{name: "status", tf: "status", typ: tString, computed: true},
	{name: "createdAt", tf: "created_at", typ: tString, computed: true},
	{name: "pendingChanges", tf: "pending_changes", typ: tString, computed: true},
	{name: "tags", tf: "tags", typ: tStringSet, optional: true},
}

func ruleTargets(rule map[string]any, prefix string) *doRuleTargets {
	return &doRuleTargets{
		Addresses:        strings_(rule, prefix+"Addresses"),
		Tags:             strings_(rule, prefix+"Tags"),
		DropletIDs:       ints(rule, prefix+"DropletIds"),
		LoadBalancerUIDs: strings_(rule, prefix+"LoadBalancerUids"),
		KubernetesIDs:    strings_(rule, prefix+"KubernetesIds"),
	}
}

func firewallRequest(news map[string]any) map[string]any {
	inbound := []doInboundRule{}
	for _, r := range list(news, "inboundRules") {
		rule, _ := r.(map[string]any)
		inbound = append(inbound, doInboundRule{Protocol: str(rule, "protocol"), PortRange: str(rule, "portRange"), Sources: ruleTargets(rule, "source")})
	}
	outbound := []doOutboundRule{}
	for _, r := range list(news, "outboundRules") {
		rule, _ := r.(map[string]any)
		outbound = append(outbound, doOutboundRule{Protocol: str(rule, "protocol"), PortRange: str(rule, "portRange"), Destinations: ruleTargets(rule, "destination")})
	}
	body := map[string]any{"name": str(news, "name"), "tags": stringsAny(strings_(news, "tags"))}
	if ids := ints(news, "dropletIds"); len(ids) > 0 {
		body["droplet_ids"] = ids
	}
	if len(inbound) > 0 {
		body["inbound_rules"] = inbound
	}
	if len(outbound) > 0 {
		body["outbound_rules"] = outbound
	}
	return body
}

// flattenFirewall*Rules: port "0" is "all" (nothing for icmp); only the target lists the API returned.
func flattenRule(protocol, ports string, t *doRuleTargets, prefix string) map[string]any {
	rule := map[string]any{"protocol": protocol}
	if ports == "0" {
		if protocol != "icmp" {
			rule["portRange"] = "all"
		}
	} else if ports != "" {
		rule["portRange"] = ports
	}
	if t != nil {
		if t.Tags != nil {
			rule[prefix+"Tags"] = stringsAny(t.Tags)
		}
		if t.DropletIDs != nil {
			rule[prefix+"DropletIds"] = intsAny(t.DropletIDs)
		}
		if t.Addresses != nil {
			rule[prefix+"Addresses"] = stringsAny(t.Addresses)
		}
		if t.LoadBalancerUIDs != nil {
			rule[prefix+"LoadBalancerUids"] = stringsAny(t.LoadBalancerUIDs)
		}
		if t.KubernetesIDs != nil {
			rule[prefix+"KubernetesIds"] = stringsAny(t.KubernetesIDs)
		}
	}
	return rule
}

func firewallAttributes(f *doFirewall) map[string]any {
	inbound := []any{}
	for _, r := range f.InboundRules {
		inbound = append(inbound, flattenRule(r.Protocol, r.PortRange, r.Sources, "source"))
	}
	outbound := []any{}
	for _, r := range f.OutboundRules {
		outbound = append(outbound, flattenRule(r.Protocol, r.PortRange, r.Destinations, "destination"))
	}
	pending := []any{}
	for _, p := range f.PendingChanges {
		pending = append(pending, map[string]any{"dropletId": float64(p.DropletID), "removing": p.Removing, "status": p.Status})
	}
	return map[string]any{
		"name":           f.Name,
		"status":         f.Status,
		"createdAt":      f.CreatedAt,
		"pendingChanges": pending,
		"dropletIds":     intsAny(f.DropletIDs),
		"inboundRules":   inbound,
		"outboundRules":  outbound,
		"tags":           stringsAny(f.Tags),
	}
}

func firewallCreate(ctx context.Context, c *client, news map[string]any) (string, map[string]any, error) {
	var out struct {
		Firewall doFirewall `json:"firewall"`
	}
	if err := c.do(ctx, "POST", "/v2/firewalls", firewallRequest(news), &out); err != nil {
		return "", nil, fmt.Errorf("Error creating firewall: %s", err)
	}
	return firewallRead(ctx, c, out.Firewall.ID, storedInputs(firewallFields, news), false)
}

func firewallRead(ctx context.Context, c *client, id string, olds map[string]any, _ bool) (string, map[string]any, error) {
	f, err := c.getFirewall(ctx, id)
	if err != nil {
		if isStatus(err, 404) {
			return "", nil, nil
		}
		return "", nil, fmt.Errorf("Error retrieving firewall: %s", err)
	}
	return id, overlay(olds, firewallAttributes(f)), nil
}

func firewallUpdate(ctx context.Context, c *client, id string, olds, news map[string]any) (map[string]any, error) {
	if err := c.do(ctx, "PUT", "/v2/firewalls/"+id, firewallRequest(news), nil); err != nil {
		return nil, fmt.Errorf("Error updating firewall: %s", err)
	}
	_, state, err := firewallRead(ctx, c, id, overlay(olds, storedInputs(firewallFields, news)), false)
	return state, err
}

func firewallDelete(ctx context.Context, c *client, id string, _ map[string]any) error {
	err := c.do(ctx, "DELETE", "/v2/firewalls/"+id, nil, nil)
	if err != nil && !isStatus(err, 404) {
		return fmt.Errorf("Error deleting firewall: %s", err)
	}
	return nil
}

// firewall CustomizeDiff: at least one rule; tcp/udp rules need port_range.
func firewallCustomizeDiff(_, news map[string]any, _ map[string]diffEntry) error {
	in, out := list(news, "inboundRules"), list(news, "outboundRules")
	if len(in) == 0 && len(out) == 0 && !containsUnknown(news["inboundRules"]) && !containsUnknown(news["outboundRules"]) {
		return errors.New("At least one rule must be specified")
	}
	for kind, rules := range map[string][]any{"inbound": in, "outbound": out} {
		for _, r := range rules {
			rule, _ := r.(map[string]any)
			if rule == nil || containsUnknown(rule["portRange"]) {
				continue
			}
			if str(rule, "protocol") != "icmp" && str(rule, "portRange") == "" {
				return fmt.Errorf("`port_range` of %s rules is required if protocol is `tcp` or `udp`", kind)
			}
		}
	}
	return nil
}

func fieldByName(fields []field, name string) field {
	for _, f := range fields {
		if f.name == name {
			return f
		}
	}
	panic("TEST DOUBLE: no field " + name)
}

var resources = map[string]*resource{
	"digitalocean:index/droplet:Droplet": {
		token: "digitalocean:index/droplet:Droplet", fields: dropletFields, hasUpdate: true,
		create: dropletCreate, read: dropletRead, update: dropletUpdate, delete: dropletDelete,
		customizeDiff: func(olds, news map[string]any, diff map[string]diffEntry) error {
			// ipv6 true -> false forces a new droplet (CustomizeDiff ForceNewIfChange).
			if d, ok := diff["ipv6"]; ok && boolean(olds, "ipv6") && !boolean(news, "ipv6") {
				d.kind = "replace"
				diff["ipv6"] = d
			}
			return nil
		},
	},
	"digitalocean:index/sshKey:SshKey": {
		token: "digitalocean:index/sshKey:SshKey", fields: sshKeyFields, hasUpdate: true,
		create: sshKeyCreate, read: sshKeyRead, update: sshKeyUpdate, delete: sshKeyDelete,
	},
	"digitalocean:index/reservedIp:ReservedIp": {
		token: "digitalocean:index/reservedIp:ReservedIp", fields: reservedIPFields, hasUpdate: true,
		create: reservedIPCreate, read: reservedIPRead, update: reservedIPUpdate, delete: reservedIPDelete,
	},
	"digitalocean:index/reservedIpAssignment:ReservedIpAssignment": {
		token: "digitalocean:index/reservedIpAssignment:ReservedIpAssignment", fields: reservedIPAssignmentFields,
		create: reservedIPAssignmentCreate, read: reservedIPAssignmentRead, delete: reservedIPAssignmentDelete,
	},
	"digitalocean:index/volume:Volume": {
		token: "digitalocean:index/volume:Volume", fields: volumeFields, hasUpdate: true,
		create: volumeCreate, read: volumeRead, update: volumeUpdate, delete: volumeDelete,
		customizeDiff: func(olds, news map[string]any, _ map[string]diffEntry) error {
			if _, known := news["size"].(float64); known && olds["size"] != nil && num(news, "size") < num(olds, "size") {
				return errors.New("volumes `size` can only be expanded and not shrunk")
			}
			return nil
		},
	},
	"digitalocean:index/volumeAttachment:VolumeAttachment": {
		token: "digitalocean:index/volumeAttachment:VolumeAttachment", fields: volumeAttachmentFields,
		create: volumeAttachmentCreate, read: volumeAttachmentRead, delete: volumeAttachmentDelete,
	},
	"digitalocean:index/firewall:Firewall": {
		token: "digitalocean:index/firewall:Firewall", fields: firewallFields, hasUpdate: true,
		create: firewallCreate, read: firewallRead, update: firewallUpdate, delete: firewallDelete,
		customizeDiff: firewallCustomizeDiff,
	},
}

// supported lists the inputs the double acts on per resource (others are refused in Check).
var supported = map[string][]string{
	"digitalocean:index/droplet:Droplet":                           dropletSupported,
	"digitalocean:index/sshKey:SshKey":                             {"name", "publicKey"},
	"digitalocean:index/reservedIp:ReservedIp":                     {"region", "ipAddress", "dropletId"},
	"digitalocean:index/reservedIpAssignment:ReservedIpAssignment": {"ipAddress", "dropletId"},
	"digitalocean:index/volume:Volume":                             volumeSupported,
	"digitalocean:index/volumeAttachment:VolumeAttachment":         {"dropletId", "volumeId"},
	"digitalocean:index/firewall:Firewall":                         {"name", "dropletIds", "inboundRules", "outboundRules", "tags"},
}
