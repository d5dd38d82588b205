package prekeys

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/host/identity"
	"github.com/agentmesh/agentmesh-go/internal/safefile"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

const goldenFile = "testdata/prekeys-v1.json"

// The golden file was written by this package for goldenIdentity: signed
// prekey 2 made at goldenRotated, previous signed prekey 1 honoured until
// goldenExpires, one-time prekeys 1, 3 and 4 published and 5 to 8 not.
var (
	goldenRotated = time.Date(2026, 1, 10, 3, 4, 5, 600_000_000, time.UTC)
	goldenExpires = goldenRotated.Add(DefaultGrace)
)

func readGolden(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestGoldenFile loads the pinned version 1 file and writes it back
// byte for byte.
func TestGoldenFile(t *testing.T) {
	data := readGolden(t)
	path := filepath.Join(t.TempDir(), "prekeys.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	clk.Set(goldenExpires.Add(-time.Nanosecond))
	s, err := Open(path, goldenIdentity(t), Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	want := Status{
		SignedPrekeyID:              2,
		SignedPrekeyCreated:         goldenRotated,
		SignedPrekeyPublished:       true,
		PreviousSignedPrekeyID:      1,
		PreviousSignedPrekeyExpires: goldenExpires,
		OneTimePrekeys:              7,
		UnpublishedOneTimePrekeys:   4,
		NextPrekeyID:                9,
	}
	if got := s.Status(); got != want {
		t.Fatalf("Status() = %+v, want %+v", got, want)
	}
	for id := uint32(1); id <= 9; id++ {
		_, ok := s.OneTimePrekey(id)
		if want := id != 2 && id != 9; ok != want {
			t.Errorf("OneTimePrekey(%d) present = %v, want %v", id, ok, want)
		}
	}
	if _, ok := s.SignedPrekey(1); !ok {
		t.Error("previous signed prekey 1 does not answer within its grace")
	}
	clk.Set(goldenExpires)
	if _, ok := s.SignedPrekey(1); ok {
		t.Error("previous signed prekey 1 answers at its expiry")
	}

	// Encoding the loaded state gives the file back byte for byte.
	st := s.state().clone()
	out, err := encodeState(st, s.amid)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("re-encoding the golden file changed it:\n%s", out)
	}
}

// TestCorruptFileIsReportedNotReplaced damages a valid file in many ways:
// Open fails naming the file and the member, quotes no key, and leaves the
// file exactly as it was.
func TestCorruptFileIsReportedNotReplaced(t *testing.T) {
	valid := readGolden(t)
	other, err := identity.FromKeys(bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{8}, 32), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		data   []byte
		member string // "" for the file as a whole
		want   string // in the problem
	}{
		{"empty", nil, "", "truncated"},
		{"truncated", valid[:len(valid)/2], "", "truncated"},
		{"not JSON", []byte("prekeys\n"), "", "malformed JSON near byte"},
		{"array", []byte("[]"), "", "want an object"},
		{"trailing data", append(bytes.Clone(valid), "{}"...), "", "malformed JSON"},
		{"no version", edit(t, valid, func(m map[string]any) { delete(m, "version") }), "version", "missing"},
		{"newer version", edit(t, valid, func(m map[string]any) { m["version"] = 2 }), "version", "only version"},
		{"unknown member", edit(t, valid, func(m map[string]any) { m["extra"] = true }), "", `unknown member "extra"`},
		{"another agent", edit(t, valid, func(m map[string]any) { m["amid"] = string(other.AMID()) }), "amid", "another agent"},
		{"no signed prekey", edit(t, valid, func(m map[string]any) { delete(m, "signed_prekey") }), "signed_prekey", "missing"},
		{"signed prekey id zero", edit(t, valid, func(m map[string]any) { member(m, "signed_prekey")["id"] = 0 }), "signed_prekey.id", "between 1 and"},
		{"signed prekey id a string", edit(t, valid, func(m map[string]any) { member(m, "signed_prekey")["id"] = "2" }), "signed_prekey.id", "is a JSON string"},
		{"signed prekey key not base64", edit(t, valid, func(m map[string]any) { member(m, "signed_prekey")["private_key"] = "not base64!" }), "signed_prekey.private_key", "base64"},
		{"signed prekey key replaced", edit(t, valid, func(m map[string]any) {
			member(m, "signed_prekey")["private_key"] = protocol.B64.EncodeToString(bytes.Repeat([]byte{9}, 32))
		}), "signed_prekey.signature", "does not verify"},
		{"signed prekey signature short", edit(t, valid, func(m map[string]any) { member(m, "signed_prekey")["signature"] = "AAAA" }), "signed_prekey.signature", "bytes"},
		{"signed prekey created", edit(t, valid, func(m map[string]any) { member(m, "signed_prekey")["created"] = "yesterday" }), "signed_prekey.created", "RFC 3339"},
		{"previous not older", edit(t, valid, func(m map[string]any) { member(m, "previous_signed_prekey")["id"] = 2 }), "previous_signed_prekey.id", "not below"},
		{"previous expires", edit(t, valid, func(m map[string]any) { member(m, "previous_signed_prekey")["expires"] = "soon" }), "previous_signed_prekey.expires", "RFC 3339"},
		{"previous published", edit(t, valid, func(m map[string]any) { member(m, "previous_signed_prekey")["published"] = true }), "", `unknown member "published"`},
		{"one-time key short", edit(t, valid, func(m map[string]any) { oneTime(m, 1)["private_key"] = "AAAA" }), "one_time_prekeys[1].private_key", "decodes to 3 bytes"},
		{"one-time id twice", edit(t, valid, func(m map[string]any) { oneTime(m, 2)["id"] = 1 }), "one_time_prekeys[2].id", "also the id of one_time_prekeys[0]"},
		{"one-time id not below next", edit(t, valid, func(m map[string]any) { oneTime(m, 0)["id"] = 9 }), "one_time_prekeys[0].id", "next_prekey_id"},
		{"one-time id zero", edit(t, valid, func(m map[string]any) { oneTime(m, 0)["id"] = 0 }), "one_time_prekeys[0].id", "between 1"},
		{"next id zero", edit(t, valid, func(m map[string]any) { m["next_prekey_id"] = 0 }), "next_prekey_id", "between 1"},
		{"next id past the registry's range", edit(t, valid, func(m map[string]any) { m["next_prekey_id"] = int64(1)<<31 + 1 }), "next_prekey_id", "between 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "prekeys.json")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(path, goldenIdentity(t), Options{})
			if err == nil {
				t.Fatal("Open accepted the file")
			}
			if s != nil {
				t.Fatal("Open returned a store with an error")
			}
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v (%T), want a *FileError", err, err)
			}
			if fe.Path != path || fe.Member != tc.member || !strings.Contains(fe.Problem, tc.want) {
				t.Fatalf("err = %+v, want path %s, member %q, problem containing %q", fe, path, tc.member, tc.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || (tc.member != "" && !strings.Contains(msg, "member "+tc.member+":")) {
				t.Fatalf("message %q does not name the file and member", msg)
			}
			for _, secret := range privateKeyStrings(t, goldenFile) {
				if strings.Contains(msg, secret) {
					t.Fatalf("message %q quotes a private key", msg)
				}
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(after, tc.data) {
				t.Fatal("Open changed the corrupt file")
			}
		})
	}
}

// TestOpenRefusesUnreadableFiles covers failures before decoding: a file
// over MaxFileSize and a symbolic link.
func TestOpenRefusesUnreadableFiles(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, bytes.Repeat([]byte(" "), MaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(big, goldenIdentity(t), Options{}); !errors.Is(err, safefile.ErrTooLarge) || !strings.Contains(err.Error(), big) {
		t.Fatalf("oversized file: %v, want ErrTooLarge naming %s", err, big)
	}
	if fi, err := os.Stat(big); err != nil || fi.Size() != MaxFileSize+1 {
		t.Fatal("Open changed the oversized file")
	}

	target := filepath.Join(dir, "target.json")
	if err := os.WriteFile(target, readGolden(t), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(link, goldenIdentity(t), Options{}); !errors.Is(err, safefile.ErrSymlink) {
		t.Fatalf("symbolic link: %v, want ErrSymlink", err)
	}
}

// edit decodes a file, lets fn change it and encodes it again.
func edit(t *testing.T, data []byte, fn func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func member(m map[string]any, name string) map[string]any { return m[name].(map[string]any) }

func oneTime(m map[string]any, i int) map[string]any {
	return m["one_time_prekeys"].([]any)[i].(map[string]any)
}

var privateKeyRE = regexp.MustCompile(`"private_key": *"([^"]+)"`)

// privateKeyStrings returns the base64 private keys in the file at path.
func privateKeyStrings(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range privateKeyRE.FindAllSubmatch(data, -1) {
		out = append(out, string(m[1]))
	}
	if len(out) == 0 {
		t.Fatalf("no private keys found in %s", path)
	}
	return out
}

func decodeB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := protocol.B64.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
