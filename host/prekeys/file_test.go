package prekeys

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/host/identity"
	"github.com/agentmesh/agentmesh-go/internal/meshtest"
	"github.com/agentmesh/agentmesh-go/internal/safefile"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// The golden files, both written by this package for goldenIdentity: signed
// prekey 2 made at goldenRotated, previous signed prekey 1, one-time
// prekeys 1, 3 and 4 published and 5 to 8 not.
const (
	goldenFile   = "testdata/prekeys-v2.json"
	goldenFileV1 = "testdata/prekeys-v1.json"
)

var (
	goldenRotated = time.Date(2026, 1, 10, 3, 4, 5, 600_000_000, time.UTC)
	// In the version 2 file signed prekey 2 was uploaded two seconds after
	// it was made, and the grace of signed prekey 1 ends a day later.
	goldenUploaded = goldenRotated.Add(2 * time.Second)
	goldenExpires  = goldenUploaded.Add(24 * time.Hour)
	// The version 1 file was written with a grace of 48 hours.
	goldenExpiresV1 = goldenRotated.Add(48 * time.Hour)
)

// goldenStatus is the Status of the version 2 golden file before the
// grace of signed prekey 1 ends.
var goldenStatus = Status{
	SignedPrekeyID:              2,
	SignedPrekeyCreated:         goldenRotated,
	SignedPrekeyPublished:       true,
	PreviousSignedPrekeyID:      1,
	PreviousSignedPrekeyExpires: goldenExpires,
	OneTimePrekeys:              7,
	UnpublishedOneTimePrekeys:   4,
	ConsumedOneTimePrekeys:      2,
	NextPrekeyID:                9,
}

func readGolden(t testing.TB) []byte { return readFile(t, goldenFile) }

// openGolden writes data as the prekey file of a new directory and opens
// it for goldenIdentity, on a clock set to at.
func openGolden(t *testing.T, data []byte, at time.Time) (s *Store, clk *meshtest.Clock, path string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "prekeys.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	clk = newClock()
	clk.Set(at)
	s, err := Open(path, goldenIdentity(t), Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s, clk, path
}

// TestGoldenFile loads the pinned version 2 file, checks what it records,
// and writes it back byte for byte.
func TestGoldenFile(t *testing.T) {
	data := readGolden(t)
	s, clk, _ := openGolden(t, data, goldenExpires.Add(-time.Nanosecond))
	if got := s.Status(); got != goldenStatus {
		t.Fatalf("Status() = %+v, want %+v", got, goldenStatus)
	}
	if got := s.state().current.uploaded; !got.Equal(goldenUploaded) {
		t.Errorf("signed prekey 2 uploaded at %v, want %v", got, goldenUploaded)
	}
	early := time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)
	late := time.Date(2026, 1, 10, 3, 4, 6, 250_000_000, time.UTC)
	wantInfo := []OneTimePrekeyInfo{
		{ID: 1, Created: early, Uploaded: early.Add(time.Second), Consumed: true},
		{ID: 3, Created: early, Uploaded: early.Add(time.Second), Consumed: true},
		{ID: 4, Created: early, Uploaded: early.Add(time.Second)},
		{ID: 5, Created: late}, {ID: 6, Created: late}, {ID: 7, Created: late}, {ID: 8, Created: late},
	}
	checkInfo(t, s.OneTimePrekeys(), wantInfo)
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
	out, err := encodeState(s.state(), s.amid)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("re-encoding the golden file changed it:\n%s", out)
	}
}

// TestGoldenFileVersion1 loads the pinned version 1 file: the same keys,
// with the time of reading for the times it never kept. The file stays as
// it is until the store changes, and is then written as version 2, which
// keeps those times.
func TestGoldenFileVersion1(t *testing.T) {
	data := readFile(t, goldenFileV1)
	read := goldenExpiresV1.Add(-time.Hour)
	s, clk, path := openGolden(t, data, read)
	dir := filepath.Dir(path)
	// Version 1 kept a longer grace, and nothing of consumption.
	want := goldenStatus
	want.PreviousSignedPrekeyExpires = goldenExpiresV1
	want.ConsumedOneTimePrekeys = 0
	if got := s.Status(); got != want {
		t.Fatalf("Status() = %+v, want %+v", got, want)
	}
	wantInfo := []OneTimePrekeyInfo{
		{ID: 1, Created: read, Uploaded: read}, {ID: 3, Created: read, Uploaded: read}, {ID: 4, Created: read, Uploaded: read},
		{ID: 5, Created: read}, {ID: 6, Created: read}, {ID: 7, Created: read}, {ID: 8, Created: read},
	}
	checkInfo(t, s.OneTimePrekeys(), wantInfo)
	// The keys are those of the version 2 file, made from the same state.
	golden, err := parseState(readGolden(t), s.amid, goldenIdentity(t).SigningPublicKey(), read)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint32{1, 3, 4, 5, 6, 7, 8} {
		got, _ := s.OneTimePrekey(id)
		if !got.Equal(golden.oneTime[id].key.PrivateKey()) {
			t.Errorf("one-time prekey %d differs from the version 2 golden file's", id)
		}
	}
	if got := readFile(t, path); !bytes.Equal(got, data) {
		t.Fatal("Open rewrote the version 1 file without a change")
	}
	if got := string(readFile(t, filepath.Join(dir, CounterFileName))); got != "9\n" {
		t.Fatalf("counter file after opening a file without one holds %q, want \"9\\n\"", got)
	}

	if err := s.Consume(5); err != nil {
		t.Fatal(err)
	}
	var head struct{ Version int }
	if err := json.Unmarshal(readFile(t, path), &head); err != nil || head.Version != 2 {
		t.Fatalf("after a change the file is version %d (%v), want 2", head.Version, err)
	}
	// Read again later, the file keeps the times of the first reading.
	clk.Advance(30 * time.Minute)
	again := reopen(t, s)
	checkInfo(t, again.OneTimePrekeys(), append(wantInfo[:3:3], wantInfo[4:]...))
	if got := again.Status(); !got.PreviousSignedPrekeyExpires.Equal(goldenExpiresV1) || got.OneTimePrekeys != 6 {
		t.Fatalf("the migrated file reads as %+v", got)
	}
}

// checkInfo compares what a store records of its one-time prekeys.
func checkInfo(t *testing.T, got, want []OneTimePrekeyInfo) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d one-time prekeys recorded, want %d: %+v", len(got), len(want), got)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || !g.Created.Equal(w.Created) || !g.Uploaded.Equal(w.Uploaded) || g.Consumed != w.Consumed {
			t.Errorf("one-time prekey record %d = %+v, want %+v", i, g, w)
		}
	}
}

// refusal is a damaged prekey file and how Open must report it.
type refusal struct {
	name   string
	data   []byte
	member string // "" for the file as a whole
	want   string // in the problem
}

// TestCorruptFileIsReportedNotReplaced damages valid files of both
// versions in many ways: Open fails naming the file and the member, quotes
// no key, and leaves the file exactly as it was.
func TestCorruptFileIsReportedNotReplaced(t *testing.T) {
	v1, v2 := readFile(t, goldenFileV1), readGolden(t)
	other, err := identity.FromKeys(bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{8}, 32), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cases := []refusal{
		{"empty", nil, "", "truncated"},
		{"truncated", v2[:len(v2)/2], "", "truncated"},
		{"not JSON", []byte("prekeys\n"), "", "malformed JSON near byte"},
		{"array", []byte("[]"), "", "want an object"},
		{"trailing data", append(bytes.Clone(v2), "{}"...), "", "malformed JSON"},
		{"no version", edit(t, v2, func(m map[string]any) { delete(m, "version") }), "version", "missing"},
		{"newer version", edit(t, v2, func(m map[string]any) { m["version"] = 3 }), "version", "the versions this host reads"},
		{"version zero", edit(t, v2, func(m map[string]any) { m["version"] = 0 }), "version", "the versions this host reads"},
		{"unknown member", edit(t, v2, func(m map[string]any) { m["extra"] = true }), "", `unknown member "extra"`},
		{"another agent", edit(t, v2, func(m map[string]any) { m["amid"] = string(other.AMID()) }), "amid", "another agent"},
		{"no signed prekey", edit(t, v2, func(m map[string]any) { delete(m, "signed_prekey") }), "signed_prekey", "missing"},
		{"signed prekey id zero", edit(t, v2, func(m map[string]any) { member(m, "signed_prekey")["id"] = 0 }), "signed_prekey.id", "between 1 and"},
		{"signed prekey id a string", edit(t, v2, func(m map[string]any) { member(m, "signed_prekey")["id"] = "2" }), "signed_prekey.id", "is a JSON string"},
		{"signed prekey key not base64", edit(t, v2, func(m map[string]any) { member(m, "signed_prekey")["private_key"] = "not base64!" }), "signed_prekey.private_key", "base64"},
		{"signed prekey key replaced", edit(t, v2, func(m map[string]any) {
			member(m, "signed_prekey")["private_key"] = protocol.B64.EncodeToString(bytes.Repeat([]byte{9}, 32))
		}), "signed_prekey.signature", "does not verify"},
		{"signed prekey signature short", edit(t, v2, func(m map[string]any) { member(m, "signed_prekey")["signature"] = "AAAA" }), "signed_prekey.signature", "bytes"},
		{"signed prekey created_at", edit(t, v2, func(m map[string]any) { member(m, "signed_prekey")["created_at"] = "yesterday" }), "signed_prekey.created_at", "RFC 3339"},
		{"signed prekey uploaded_at", edit(t, v2, func(m map[string]any) { member(m, "signed_prekey")["uploaded_at"] = "2026-13-01T00:00:00Z" }), "signed_prekey.uploaded_at", "RFC 3339"},
		{"signed prekey in the version 1 form", edit(t, v2, func(m map[string]any) { member(m, "signed_prekey")["published"] = true }), "", `unknown member "published"`},
		{"previous not older", edit(t, v2, func(m map[string]any) { member(m, "previous_signed_prekey")["id"] = 2 }), "previous_signed_prekey.id", "not below"},
		{"previous created_at missing", edit(t, v2, func(m map[string]any) { delete(member(m, "previous_signed_prekey"), "created_at") }), "previous_signed_prekey.created_at", "RFC 3339"},
		{"previous expires", edit(t, v2, func(m map[string]any) { member(m, "previous_signed_prekey")["expires"] = "soon" }), "previous_signed_prekey.expires", "RFC 3339"},
		{"previous uploaded_at", edit(t, v2, func(m map[string]any) { member(m, "previous_signed_prekey")["uploaded_at"] = "2026-01-01T00:00:00Z" }), "", `unknown member "uploaded_at"`},
		{"one-time key short", edit(t, v2, func(m map[string]any) { oneTime(m, 1)["private_key"] = "AAAA" }), "one_time_prekeys[1].private_key", "decodes to 3 bytes"},
		{"one-time id twice", edit(t, v2, func(m map[string]any) { oneTime(m, 2)["id"] = 1 }), "one_time_prekeys[2].id", "also the id of one_time_prekeys[0]"},
		{"one-time id not below next", edit(t, v2, func(m map[string]any) { oneTime(m, 0)["id"] = 9 }), "one_time_prekeys[0].id", "next_prekey_id"},
		{"one-time id zero", edit(t, v2, func(m map[string]any) { oneTime(m, 0)["id"] = 0 }), "one_time_prekeys[0].id", "between 1"},
		{"one-time created_at missing", edit(t, v2, func(m map[string]any) { delete(oneTime(m, 3), "created_at") }), "one_time_prekeys[3].created_at", "RFC 3339"},
		{"one-time uploaded_at", edit(t, v2, func(m map[string]any) { oneTime(m, 2)["uploaded_at"] = "later" }), "one_time_prekeys[2].uploaded_at", "RFC 3339"},
		{"one-time consumed a string", edit(t, v2, func(m map[string]any) { oneTime(m, 0)["consumed"] = "yes" }), "one_time_prekeys.consumed", "is a JSON string, want a boolean"},
		{"one-time consumed, never uploaded", edit(t, v2, func(m map[string]any) { oneTime(m, 4)["consumed"] = true }), "one_time_prekeys[4].consumed", "never had"},
		{"one-time in the version 1 form", edit(t, v2, func(m map[string]any) { oneTime(m, 4)["published"] = false }), "", `unknown member "published"`},
		{"next id zero", edit(t, v2, func(m map[string]any) { m["next_prekey_id"] = 0 }), "next_prekey_id", "between 1"},
		{"next id past the registry's range", edit(t, v2, func(m map[string]any) { m["next_prekey_id"] = int64(1)<<31 + 1 }), "next_prekey_id", "between 1"},

		// Version 1 files are read as strictly, by their own members.
		{"v1 truncated", v1[:len(v1)/2], "", "truncated"},
		{"v1 unknown member", edit(t, v1, func(m map[string]any) { m["extra"] = true }), "", `unknown member "extra"`},
		{"v1 another agent", edit(t, v1, func(m map[string]any) { m["amid"] = string(other.AMID()) }), "amid", "another agent"},
		{"v1 signed prekey created", edit(t, v1, func(m map[string]any) { member(m, "signed_prekey")["created"] = "yesterday" }), "signed_prekey.created", "RFC 3339"},
		{"v1 signed prekey in the version 2 form", edit(t, v1, func(m map[string]any) { member(m, "signed_prekey")["created_at"] = "2026-01-01T00:00:00Z" }), "", `unknown member "created_at"`},
		{"v1 signed prekey key replaced", edit(t, v1, func(m map[string]any) {
			member(m, "signed_prekey")["private_key"] = protocol.B64.EncodeToString(bytes.Repeat([]byte{9}, 32))
		}), "signed_prekey.signature", "does not verify"},
		{"v1 previous created", edit(t, v1, func(m map[string]any) { member(m, "previous_signed_prekey")["created"] = "then" }), "previous_signed_prekey.created", "RFC 3339"},
		{"v1 previous expires", edit(t, v1, func(m map[string]any) { member(m, "previous_signed_prekey")["expires"] = "soon" }), "previous_signed_prekey.expires", "RFC 3339"},
		{"v1 previous published", edit(t, v1, func(m map[string]any) { member(m, "previous_signed_prekey")["published"] = true }), "", `unknown member "published"`},
		{"v1 one-time key short", edit(t, v1, func(m map[string]any) { oneTime(m, 1)["private_key"] = "AAAA" }), "one_time_prekeys[1].private_key", "decodes to 3 bytes"},
		{"v1 one-time id twice", edit(t, v1, func(m map[string]any) { oneTime(m, 2)["id"] = 1 }), "one_time_prekeys[2].id", "also the id of one_time_prekeys[0]"},
		{"v1 one-time consumed", edit(t, v1, func(m map[string]any) { oneTime(m, 0)["consumed"] = true }), "", `unknown member "consumed"`},
		{"v1 next id zero", edit(t, v1, func(m map[string]any) { m["next_prekey_id"] = 0 }), "next_prekey_id", "between 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkRefused(t, tc) })
	}
}

// checkRefused writes tc's file and checks that Open refuses it as tc says.
func checkRefused(t *testing.T, tc refusal) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "prekeys.json")
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
	for _, secret := range append(privateKeyStrings(t, goldenFile), privateKeyStrings(t, goldenFileV1)...) {
		if strings.Contains(msg, secret) {
			t.Fatalf("message %q quotes a private key", msg)
		}
	}
	if after := readFile(t, path); !bytes.Equal(after, tc.data) {
		t.Fatal("Open changed the corrupt file")
	}
}

// TestCorruptCounterIsReportedNotReplaced damages the counter file: Open
// fails naming it, leaves it as it was, and creates no prekey file, whose
// ids would have to come from the counter.
func TestCorruptCounterIsReportedNotReplaced(t *testing.T) {
	for name, content := range map[string]string{
		"empty":           "",
		"not a number":    "next\n",
		"zero":            "0\n",
		"negative":        "-5\n",
		"past the range":  "2147483649\n",
		"two newlines":    "12\n\n",
		"spaces":          " 12\n",
		"hexadecimal":     "0x10\n",
		"longer than one": strings.Repeat("1", maxCounterSize+1),
	} {
		t.Run(name, func(t *testing.T) {
			home := t.TempDir()
			counter := DefaultCounterPath(home)
			if err := os.WriteFile(counter, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(DefaultPath(home), goldenIdentity(t), Options{})
			var fe *FileError
			if !errors.As(err, &fe) || fe.Path != counter || !strings.Contains(err.Error(), counter) {
				t.Fatalf("Open with counter %q: %v, want a *FileError naming %s", content, err, counter)
			}
			if got := string(readFile(t, counter)); got != content {
				t.Fatalf("Open changed the counter file to %q", got)
			}
			if _, err := os.Stat(DefaultPath(home)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Open created a prekey file with a corrupt counter: %v", err)
			}
		})
	}
	// The largest counter is valid, and a store then has no ids left.
	home := t.TempDir()
	if err := os.WriteFile(DefaultCounterPath(home), []byte("2147483648\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(DefaultPath(home), goldenIdentity(t), Options{Batch: 1}); err == nil || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("Open with the ids used up: %v, want ids exhausted", err)
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
