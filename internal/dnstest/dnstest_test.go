package dnstest

import (
	"context"
	"errors"
	"net"
	"testing"
)

func TestServesTXT(t *testing.T) {
	d := New(t)
	r := d.Resolver()
	ctx := context.Background()
	d.SetTXT("_x.example.", []string{"one"}, []string{"tw", "o"})
	got, err := r.LookupTXT(ctx, "_X.example.")
	if err != nil || len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Fatalf("LookupTXT = %q, %v; want [one two] (strings of a record joined)", got, err)
	}
	_, err = r.LookupTXT(ctx, "_y.example.")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Fatalf("unknown name: %v, want not found", err)
	}
}
