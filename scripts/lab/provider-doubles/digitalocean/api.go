package main

// The DigitalOcean API client of the TEST DOUBLE: the same requests (paths, bodies) godo sends
// for the calls terraform-provider-digitalocean v2.99.1 makes, and its error text
// ("<METHOD> <url>: <status> (request "<id>") <message>"). No retries (the real client retries
// 429/5xx up to http_retry_max times); polling is bounded by DIGITALOCEAN_DOUBLE_TIMEOUT_SECONDS.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

type client struct {
	base    string
	token   string
	http    *http.Client
	poll    time.Duration
	timeout time.Duration
}

type apiError struct {
	Method, URL string
	Status      int
	ID          string
	Message     string
	RequestID   string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d (request %q) %s", e.Method, e.URL, e.Status, e.RequestID, e.Message)
}

func isStatus(err error, status int) bool {
	if e, ok := err.(*apiError); ok {
		return e.Status == status
	}
	return false
}

func (c *client) do(ctx context.Context, method, path string, body any, out any) error {
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(b)
	}
	url := strings.TrimRight(c.base, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, url, reader)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "pulumi-resource-digitalocean TEST DOUBLE (shortcircuit)")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &apiError{Method: method, URL: url, Status: resp.StatusCode}
		var payload struct {
			ID        string `json:"id"`
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal(data, &payload) == nil {
			e.ID, e.Message, e.RequestID = payload.ID, payload.Message, payload.RequestID
		}
		return e
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding the response: %w", method, url, err)
		}
	}
	return nil
}

// waitUntil polls check every c.poll until it reports done, bounded by c.timeout.
func (c *client) waitUntil(ctx context.Context, what string, check func() (bool, error)) error {
	deadline := time.Now().Add(c.timeout)
	for {
		done, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timeout while waiting for %s (%s, TEST DOUBLE bound)", what, c.timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.poll):
		}
	}
}

// API objects (the fields the provider reads).

type doRegion struct {
	Slug string `json:"slug"`
	Name string `json:"name"`
}

type doNetwork struct {
	IPAddress string `json:"ip_address"`
	Type      string `json:"type"`
}

type doDroplet struct {
	ID        int      `json:"id"`
	Name      string   `json:"name"`
	Memory    int      `json:"memory"`
	Vcpus     int      `json:"vcpus"`
	Disk      int      `json:"disk"`
	Locked    bool     `json:"locked"`
	Status    string   `json:"status"`
	CreatedAt string   `json:"created_at"`
	Features  []string `json:"features"`
	VolumeIDs []string `json:"volume_ids"`
	Tags      []string `json:"tags"`
	VPCUUID   string   `json:"vpc_uuid"`
	Image     struct {
		ID   int    `json:"id"`
		Slug string `json:"slug"`
	} `json:"image"`
	Size struct {
		Slug         string  `json:"slug"`
		PriceMonthly float64 `json:"price_monthly"`
		PriceHourly  float64 `json:"price_hourly"`
	} `json:"size"`
	Region   doRegion `json:"region"`
	Networks struct {
		V4 []doNetwork `json:"v4"`
		V6 []doNetwork `json:"v6"`
	} `json:"networks"`
}

func (d *doDroplet) address(v6 bool, kind string) string {
	nets := d.Networks.V4
	if v6 {
		nets = d.Networks.V6
	}
	for _, n := range nets {
		if n.Type == kind {
			return n.IPAddress
		}
	}
	return ""
}

func (d *doDroplet) has(feature string) bool {
	for _, f := range d.Features {
		if f == feature {
			return true
		}
	}
	return false
}

type doAction struct {
	ID          int     `json:"id"`
	Status      string  `json:"status"`
	Type        string  `json:"type"`
	CompletedAt *string `json:"completed_at"`
}

type doKey struct {
	ID          int    `json:"id"`
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	PublicKey   string `json:"public_key"`
}

type doReservedIP struct {
	IP      string     `json:"ip"`
	Region  doRegion   `json:"region"`
	Droplet *doDroplet `json:"droplet"`
}

type doVolume struct {
	ID              string   `json:"id"`
	Name            string   `json:"name"`
	Description     string   `json:"description"`
	SizeGigaBytes   int      `json:"size_gigabytes"`
	Region          doRegion `json:"region"`
	DropletIDs      []int    `json:"droplet_ids"`
	FilesystemType  string   `json:"filesystem_type"`
	FilesystemLabel string   `json:"filesystem_label"`
	Tags            []string `json:"tags"`
}

type doRuleTargets struct {
	Addresses        []string `json:"addresses,omitempty"`
	Tags             []string `json:"tags,omitempty"`
	DropletIDs       []int    `json:"droplet_ids,omitempty"`
	LoadBalancerUIDs []string `json:"load_balancer_uids,omitempty"`
	KubernetesIDs    []string `json:"kubernetes_ids,omitempty"`
}

type doInboundRule struct {
	Protocol  string         `json:"protocol,omitempty"`
	PortRange string         `json:"ports,omitempty"`
	Sources   *doRuleTargets `json:"sources,omitempty"`
}

type doOutboundRule struct {
	Protocol     string         `json:"protocol,omitempty"`
	PortRange    string         `json:"ports,omitempty"`
	Destinations *doRuleTargets `json:"destinations,omitempty"`
}

type doFirewall struct {
	ID             string           `json:"id"`
	Name           string           `json:"name"`
	Status         string           `json:"status"`
	CreatedAt      string           `json:"created_at"`
	InboundRules   []doInboundRule  `json:"inbound_rules"`
	OutboundRules  []doOutboundRule `json:"outbound_rules"`
	DropletIDs     []int            `json:"droplet_ids"`
	Tags           []string         `json:"tags"`
	PendingChanges []struct {
		DropletID int    `json:"droplet_id"`
		Removing  bool   `json:"removing"`
		Status    string `json:"status"`
	} `json:"pending_changes"`
}

// Calls.

func (c *client) getDroplet(ctx context.Context, id int) (*doDroplet, error) {
	var out struct {
		Droplet doDroplet `json:"droplet"`
	}
	if err := c.do(ctx, "GET", fmt.Sprintf("/v2/droplets/%d", id), nil, &out); err != nil {
		return nil, err
	}
	return &out.Droplet, nil
}

// util.WaitForAction: GET /v2/actions/<id> until completed_at is set ("errored" fails).
func (c *client) waitForAction(ctx context.Context, action doAction) error {
	return c.waitUntil(ctx, fmt.Sprintf("action %d (%s)", action.ID, action.Type), func() (bool, error) {
		var out struct {
			Action doAction `json:"action"`
		}
		if err := c.do(ctx, "GET", fmt.Sprintf("/v2/actions/%d", action.ID), nil, &out); err != nil {
			return false, err
		}
		if out.Action.Status == "errored" {
			return false, fmt.Errorf("unexpected state 'errored', wanted target 'completed'")
		}
		return out.Action.CompletedAt != nil, nil
	})
}

func (c *client) postAction(ctx context.Context, path string, body map[string]any) (doAction, error) {
	var out struct {
		Action doAction `json:"action"`
	}
	err := c.do(ctx, "POST", path, body, &out)
	return out.Action, err
}

func (c *client) getReservedIP(ctx context.Context, ip string) (*doReservedIP, error) {
	var out struct {
		ReservedIP doReservedIP `json:"reserved_ip"`
	}
	if err := c.do(ctx, "GET", "/v2/reserved_ips/"+ip, nil, &out); err != nil {
		return nil, err
	}
	return &out.ReservedIP, nil
}

func (c *client) getVolume(ctx context.Context, id string) (*doVolume, error) {
	var out struct {
		Volume doVolume `json:"volume"`
	}
	if err := c.do(ctx, "GET", "/v2/volumes/"+id, nil, &out); err != nil {
		return nil, err
	}
	return &out.Volume, nil
}

func (c *client) getFirewall(ctx context.Context, id string) (*doFirewall, error) {
	var out struct {
		Firewall doFirewall `json:"firewall"`
	}
	if err := c.do(ctx, "GET", "/v2/firewalls/"+id, nil, &out); err != nil {
		return nil, err
	}
	return &out.Firewall, nil
}

// waitOnDroplet (reserved_ip_actions.go): before an assign, wait until none of the droplet's
// actions is pending (GET /v2/droplets/<id>/actions?per_page=50).
func (c *client) waitOnDroplet(ctx context.Context, dropletID int) error {
	return c.waitUntil(ctx, fmt.Sprintf("droplet (%d) pending events", dropletID), func() (bool, error) {
		var out struct {
			Actions []doAction `json:"actions"`
		}
		if err := c.do(ctx, "GET", fmt.Sprintf("/v2/droplets/%d/actions?page=1&per_page=50", dropletID), nil, &out); err != nil {
			return false, fmt.Errorf("Error retrieving droplet (%d) actions: %s", dropletID, err)
		}
		for _, a := range out.Actions {
			if a.Status != "completed" && a.Status != "errored" {
				return false, nil
			}
		}
		return true, nil
	})
}

// waitForReservedIPAction: GET /v2/reserved_ips/<ip>/actions/<id> until "completed".
func (c *client) waitForReservedIPAction(ctx context.Context, ip string, action doAction) error {
	return c.waitUntil(ctx, fmt.Sprintf("reserved IP (%s) action (%d)", ip, action.ID), func() (bool, error) {
		var out struct {
			Action doAction `json:"action"`
		}
		if err := c.do(ctx, "GET", fmt.Sprintf("/v2/reserved_ips/%s/actions/%d", ip, action.ID), nil, &out); err != nil {
			return false, fmt.Errorf("Error retrieving reserved IP (%s) ActionId (%d): %s", ip, action.ID, err)
		}
		if out.Action.Status == "errored" {
			return false, fmt.Errorf("unexpected state 'errored', wanted target 'completed'")
		}
		return out.Action.Status == "completed", nil
	})
}
