package session

import (
	"reflect"
	"testing"
)

func TestNegotiate(t *testing.T) {
	const fs = "agentmesh/travel/flight-search"
	pySupported := []string{"text", "json", "binary", fs + "/v1", "agentmesh/commerce/product-search/v1", "agentmesh/marketplace/skill-bid/v1"}
	tests := []struct {
		name               string
		offered, supported []string
		accepted, rejected []string
	}{
		{"higher offer takes our highest", []string{fs + "/v3"}, []string{fs + "/v1", fs + "/v2"}, []string{fs + "/v2"}, nil},
		{"equal versions", []string{fs + "/v2"}, []string{fs + "/v1", fs + "/v2"}, []string{fs + "/v2"}, nil},
		{"lower offer takes that version", []string{fs + "/v1"}, []string{fs + "/v1", fs + "/v2"}, []string{fs + "/v1"}, nil},
		{"we lack older versions", []string{fs + "/v1"}, []string{fs + "/v2"}, nil, []string{fs + "/v1"}},
		{"several offered versions", []string{fs + "/v1", fs + "/v4"}, []string{fs + "/v1", fs + "/v3", fs + "/v5"}, []string{fs + "/v3"}, nil},
		{"gap in ours", []string{fs + "/v2"}, []string{fs + "/v1", fs + "/v3"}, []string{fs + "/v1"}, nil},
		{"multi-digit versions", []string{fs + "/v10"}, []string{fs + "/v9", fs + "/v10", fs + "/v11"}, []string{fs + "/v10"}, nil},
		{"plain exact", []string{"json", "text", "xml"}, pySupported, []string{"json", "text"}, []string{"xml"}},
		{"plain is not a family", []string{fs}, []string{fs + "/v1"}, nil, []string{fs}},
		{"family is not plain", []string{fs + "/v1"}, []string{fs}, nil, []string{fs + "/v1"}},
		{"unknown family", []string{"agentmesh/x/y/v1", "text"}, pySupported, []string{"text"}, []string{"agentmesh/x/y/v1"}},
		{"mixed, sorted, deduplicated",
			[]string{"text", "agentmesh/commerce/product-search/v2", "text", fs + "/v1", "zz", "aa"},
			pySupported,
			[]string{"agentmesh/commerce/product-search/v1", fs + "/v1", "text"}, []string{"aa", "zz"}},
		{"v0 is a version", []string{fs + "/v0"}, []string{fs + "/v0", fs + "/v1"}, []string{fs + "/v0"}, nil},
		{"not a version suffix", []string{"a/vx", "a/v", "/v1"}, []string{"a/vx", "/v1"}, []string{"/v1", "a/vx"}, []string{"a/v"}},
		{"nothing offered", nil, pySupported, nil, nil},
		{"nothing supported", []string{"text", fs + "/v1"}, nil, nil, []string{fs + "/v1", "text"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acc, rej := Negotiate(tt.offered, tt.supported)
			if !reflect.DeepEqual(acc, tt.accepted) || !reflect.DeepEqual(rej, tt.rejected) {
				t.Errorf("Negotiate(%q, %q) =\n  %q, %q\nwant\n  %q, %q", tt.offered, tt.supported, acc, rej, tt.accepted, tt.rejected)
			}
			// Deterministic: the same answer with the inputs reversed.
			acc2, rej2 := Negotiate(reversed(tt.offered), reversed(tt.supported))
			if !reflect.DeepEqual(acc, acc2) || !reflect.DeepEqual(rej, rej2) {
				t.Errorf("order of the inputs changed the answer: %q, %q", acc2, rej2)
			}
			if NoCommon(acc) != (len(tt.accepted) == 0) {
				t.Errorf("NoCommon(%q) = %v", acc, NoCommon(acc))
			}
		})
	}
}

func reversed(s []string) []string {
	if s == nil {
		return nil
	}
	r := make([]string, len(s))
	for i, v := range s {
		r[len(s)-1-i] = v
	}
	return r
}

func TestSplitCapability(t *testing.T) {
	tests := []struct {
		in     string
		family string
		v      int
		ok     bool
	}{
		{"agentmesh/a/b/v2", "agentmesh/a/b", 2, true},
		{"a/v12", "a", 12, true},
		{"text", "", 0, false},
		{"a/v", "", 0, false},
		{"a/v1x", "", 0, false},
		{"a/v-1", "", 0, false},
		{"/v1", "", 0, false},
		{"a/v99999999999", "", 0, false},
	}
	for _, tt := range tests {
		f, v, ok := splitCapability(tt.in)
		if f != tt.family || v != tt.v || ok != tt.ok {
			t.Errorf("splitCapability(%q) = %q, %d, %v; want %q, %d, %v", tt.in, f, v, ok, tt.family, tt.v, tt.ok)
		}
	}
}
