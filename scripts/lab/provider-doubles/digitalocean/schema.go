package main

// The Terraform-style schema and diff of the DigitalOcean provider TEST DOUBLE. The real
// pulumi-resource-digitalocean is terraform-provider-digitalocean (v2.99.1 for 4.80.1) behind
// the Pulumi Terraform bridge: a plan compares the program's inputs with the resource's STATE
// (what Create/Read stored), field by field, as the Terraform SDK does. This file re-states
// that per-field rule (Required/Optional/Computed/ForceNew/Default/StateFunc) for the few
// fields shortcircuit uses; the facts for each field are in ../README.md.

import (
	"crypto/sha1" //nolint:gosec // the provider stores user_data as its SHA-1 hex (util.HashStringStateFunc)
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi/sdk/v3/go/property"
)

type ftype int

const (
	tString ftype = iota
	tInt
	tBool
	tStringSet
	tIntSet
	tRuleSet // firewall inbound/outbound rules (a Terraform TypeSet of blocks)
)

// field is one Terraform attribute under its Pulumi name.
type field struct {
	name      string // Pulumi property name (camelCase)
	tf        string // Terraform attribute name
	typ       ftype
	required  bool
	optional  bool
	computed  bool
	forceNew  bool
	def       any                 // schema Default (plain value)
	stateFunc func(any) any       // schema StateFunc (what is stored for a configured value)
	suppress  func(o, n any) bool // schema DiffSuppressFunc
}

func (f field) input() bool { return f.required || f.optional }

// unknown marks a value that is not known yet (a preview's computed input).
type unknown struct{}

func isUnknown(v any) bool { _, ok := v.(unknown); return ok }

// plain converts a property value into Go values: string, float64, bool, []any,
// map[string]any, nil, unknown{}.
func plain(v property.Value) any {
	switch {
	case v.IsComputed():
		return unknown{}
	case v.IsNull():
		return nil
	case v.IsBool():
		return v.AsBool()
	case v.IsNumber():
		return v.AsNumber()
	case v.IsString():
		return v.AsString()
	case v.IsArray():
		out := []any{}
		for _, e := range v.AsArray().AsSlice() {
			out = append(out, plain(e))
		}
		return out
	case v.IsMap():
		out := map[string]any{}
		for k, e := range v.AsMap().All {
			out[k] = plain(e)
		}
		return out
	case v.IsResourceReference():
		ref := v.AsResourceReference()
		return plain(ref.ID)
	}
	return nil
}

func plainMap(m property.Map) map[string]any {
	out := map[string]any{}
	for k, v := range m.All {
		out[k] = plain(v)
	}
	return out
}

func value(v any) property.Value {
	switch v := v.(type) {
	case nil:
		return property.New(property.Null)
	case unknown:
		return property.New(property.Computed)
	case bool:
		return property.New(v)
	case float64:
		return property.New(v)
	case int:
		return property.New(float64(v))
	case string:
		return property.New(v)
	case []string:
		out := make([]property.Value, 0, len(v))
		for _, e := range v {
			out = append(out, property.New(e))
		}
		return property.New(out)
	case []any:
		out := make([]property.Value, 0, len(v))
		for _, e := range v {
			out = append(out, value(e))
		}
		return property.New(out)
	case map[string]any:
		out := map[string]property.Value{}
		for k, e := range v {
			if e == nil {
				continue
			}
			out[k] = value(e)
		}
		return property.New(out)
	}
	panic(fmt.Sprintf("TEST DOUBLE: no property value for %T", v))
}

// valueMap builds an output map; keys in secret keep the secret marker the inputs had.
func valueMap(m map[string]any, secret map[string]bool) property.Map {
	out := map[string]property.Value{}
	for k, v := range m {
		if v == nil {
			continue
		}
		pv := value(v)
		if secret[k] {
			pv = pv.WithSecret(true)
		}
		out[k] = pv
	}
	return property.NewMap(out)
}

func secretKeys(m property.Map) map[string]bool {
	out := map[string]bool{}
	for k, v := range m.All {
		if v.Secret() || v.HasSecrets() {
			out[k] = true
		}
	}
	return out
}

func lower(v any) any {
	if s, ok := v.(string); ok {
		return strings.ToLower(s)
	}
	return v
}

// sha1Hex is util.HashStringStateFunc: user_data is stored as the SHA-1 hex of the text.
func sha1Hex(v any) any {
	if s, ok := v.(string); ok {
		sum := sha1.Sum([]byte(s)) //nolint:gosec
		return hex.EncodeToString(sum[:])
	}
	return ""
}

func trimSpaceEqual(o, n any) bool {
	os, _ := o.(string)
	ns, _ := n.(string)
	return strings.TrimSpace(os) == strings.TrimSpace(ns)
}

// empty is Terraform's "not set": null, "", or an empty set/list.
func empty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	}
	return false
}

// canonical renders a value for comparison (sets sorted, numbers as numbers).
func canonical(f field, v any) string {
	switch f.typ {
	case tStringSet, tIntSet, tRuleSet:
		list, _ := v.([]any)
		items := make([]string, 0, len(list))
		seen := map[string]bool{}
		for _, e := range list {
			var s string
			if f.typ == tRuleSet {
				s = canonicalRule(e)
			} else {
				b, _ := json.Marshal(e)
				s = string(b)
			}
			if !seen[s] {
				seen[s] = true
				items = append(items, s)
			}
		}
		sort.Strings(items)
		return strings.Join(items, "\n")
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// canonicalRule: a firewall rule with its address/droplet sets sorted and empty members dropped.
func canonicalRule(v any) string {
	m, _ := v.(map[string]any)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := []string{}
	for _, k := range keys {
		e := m[k]
		if empty(e) {
			continue
		}
		if list, ok := e.([]any); ok {
			items := []string{}
			for _, x := range list {
				b, _ := json.Marshal(x)
				items = append(items, string(b))
			}
			sort.Strings(items)
			parts = append(parts, k+"="+strings.Join(items, ","))
			continue
		}
		b, _ := json.Marshal(e)
		parts = append(parts, k+"="+string(b))
	}
	return strings.Join(parts, ";")
}

func containsUnknown(v any) bool {
	switch v := v.(type) {
	case unknown:
		return true
	case []any:
		for _, e := range v {
			if containsUnknown(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range v {
			if containsUnknown(e) {
				return true
			}
		}
	}
	return false
}

// stored is the value Terraform would store for a configured value (StateFunc applied).
func stored(f field, v any) any {
	if v == nil || containsUnknown(v) || f.stateFunc == nil {
		return v
	}
	return f.stateFunc(v)
}

// withDefaults returns the inputs with schema defaults filled in (as the Terraform SDK's config does).
func withDefaults(fields []field, news map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range news {
		out[k] = v
	}
	for _, f := range fields {
		if _, ok := out[f.name]; (!ok || out[f.name] == nil) && f.def != nil {
			out[f.name] = f.def
		}
	}
	return out
}

// fieldDiff is the Terraform SDK's per-attribute plan: does the configured value (n) differ from
// the stored one (o)? Unknown configured values count as a change (planned "known after apply").
func fieldDiff(f field, o, n any) (p.DiffKind, bool) {
	kind := func(k, replace p.DiffKind) (p.DiffKind, bool) {
		if f.forceNew {
			return replace, true
		}
		return k, true
	}
	if containsUnknown(n) {
		if o == nil {
			return kind(p.Add, p.AddReplace)
		}
		return kind(p.Update, p.UpdateReplace)
	}
	if n == nil {
		// Not configured: a Computed attribute keeps what the provider stored; an
		// Optional one that is stored non-empty is planned away.
		if f.computed || empty(o) {
			return "", false
		}
		return kind(p.Delete, p.DeleteReplace)
	}
	if empty(o) && empty(n) {
		return "", false
	}
	if o == nil && f.def != nil && canonical(f, n) == canonical(f, f.def) {
		// A default that was never stored (an imported object): see README "does not do".
		return "", false
	}
	if f.suppress != nil && f.suppress(o, n) {
		return "", false
	}
	if canonical(f, o) == canonical(f, stored(f, n)) {
		return "", false
	}
	if o == nil {
		return kind(p.Add, p.AddReplace)
	}
	return kind(p.Update, p.UpdateReplace)
}

// extractInputs is what the bridge returns as the inputs of an imported object: the stored
// values of every attribute a program can set.
func extractInputs(fields []field, state map[string]any) map[string]any {
	out := map[string]any{}
	for _, f := range fields {
		if !f.input() {
			continue
		}
		if v, ok := state[f.name]; ok && !empty(v) {
			out[f.name] = v
		}
	}
	return out
}

// Plain-value accessors.

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func num(m map[string]any, k string) int {
	switch v := m[k].(type) {
	case float64:
		return int(v)
	case string:
		var i int
		_, _ = fmt.Sscanf(v, "%d", &i)
		return i
	}
	return 0
}

func boolean(m map[string]any, k string) bool {
	b, _ := m[k].(bool)
	return b
}

func list(m map[string]any, k string) []any {
	l, _ := m[k].([]any)
	return l
}

func strings_(m map[string]any, k string) []string {
	out := []string{}
	for _, e := range list(m, k) {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func ints(m map[string]any, k string) []int {
	out := []int{}
	for _, e := range list(m, k) {
		switch v := e.(type) {
		case float64:
			out = append(out, int(v))
		case string:
			var i int
			if _, err := fmt.Sscanf(v, "%d", &i); err == nil {
				out = append(out, i)
			}
		}
	}
	return out
}

func intsAny(xs []int) []any {
	out := make([]any, 0, len(xs))
	for _, x := range xs {
		out = append(out, float64(x))
	}
	return out
}

func stringsAny(xs []string) []any {
	out := make([]any, 0, len(xs))
	for _, x := range xs {
		out = append(out, x)
	}
	return out
}
