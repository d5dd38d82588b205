package identity

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/internal/safefile"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// The files under testdata were written by the other implementations'
// serialisers, from keys counting up from a fixed byte:
//   - identity.golden.json: JavaScript JSON.stringify(data, null, 2) of what
//     this package must write for seed 00..1f and exchange key 20..3f;
//   - ts-identity.json: JSON.stringify as the TypeScript SDK writes it (seed
//     40..5f, exchange key 60..7f);
//   - py-identity.json: Python json.dump(indent=2) of the Python client's
//     older file without framework members (seed 80..9f, exchange key a0..bf).
const (
	goldenFile = "testdata/identity.golden.json"
	tsFile     = "testdata/ts-identity.json"
	pyFile     = "testdata/py-identity.json"

	tsAMID = "3c71vEB4tm9Satj5grTKC8oWsbV"
	pyAMID = "28wqxJE6UaKMtYaFwkrD8qYyWkSh"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// writePrivate writes data to path (creating its directory) with mode 0600,
// so that Load has no reason to warn or to touch the repository's testdata.
func writePrivate(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestMarshalGolden(t *testing.T) {
	got := goldenIdentity(t).marshal()
	want := readTestdata(t, goldenFile)
	if !bytes.Equal(got, want) {
		t.Errorf("identity file =\n%s\nwant\n%s", got, want)
	}
}

func TestAppendJSString(t *testing.T) {
	// Expected values are the output of JavaScript's JSON.stringify.
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"plain", "agentmesh-go", `"agentmesh-go"`},
		{"quote and backslash", `q"b\s`, `"q\"b\\s"`},
		{"short escapes", "\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"other controls", "\x00\x1f\x7f", `"\u0000\u001f` + "\x7f" + `"`},
		{"left literal", "é\u2028\u2029<>&/", "\"é\u2028\u2029<>&/\""},
		{"astral", "😀", `"😀"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(protocol.AppendJSString(nil, tt.in)); got != tt.want {
				t.Errorf("AppendJSString(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	id, err := Generate(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	path := DefaultPath(filepath.Join(t.TempDir(), "home"))
	if err := id.Save(path); err != nil {
		t.Fatal(err)
	}
	got, warnings, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings = %q, want none", warnings)
	}
	if got.AMID() != id.AMID() {
		t.Errorf("AMID = %s, want %s", got.AMID(), id.AMID())
	}
	if !got.ExchangeKey().Equal(id.ExchangeKey()) {
		t.Error("exchange key changed in a round trip")
	}
	msg := []byte("round trip")
	if !bytes.Equal(got.Sign(msg), id.Sign(msg)) {
		t.Error("signing key changed in a round trip")
	}
	if !got.CreatedAt().Equal(id.CreatedAt()) || !got.DIDUpdated().Equal(id.DIDUpdated()) {
		t.Errorf("times = %v, %v; want %v, %v", got.CreatedAt(), got.DIDUpdated(), id.CreatedAt(), id.DIDUpdated())
	}
	if got.Framework() != FrameworkName || got.FrameworkVersion() != FrameworkVersion || got.DIDVersion() != 1 {
		t.Errorf("metadata = %q %q %d, want %q %q 1", got.Framework(), got.FrameworkVersion(), got.DIDVersion(),
			FrameworkName, FrameworkVersion)
	}
	onDisk := readTestdata(t, path)
	if !bytes.Equal(onDisk, id.marshal()) {
		t.Errorf("file on disk =\n%s\nwant\n%s", onDisk, id.marshal())
	}
}

func TestLoadOtherImplementations(t *testing.T) {
	tests := []struct {
		name             string
		file             string
		wantAMID         string
		wantCreated      time.Time
		wantFramework    string
		wantFrameworkVer string
	}{
		{
			name:             "go",
			file:             goldenFile,
			wantAMID:         goldenAMID,
			wantCreated:      goldenTime,
			wantFramework:    FrameworkName,
			wantFrameworkVer: FrameworkVersion,
		},
		{
			name:             "typescript",
			file:             tsFile,
			wantAMID:         tsAMID,
			wantCreated:      time.Date(2025, 11, 3, 8, 9, 10, 11_000_000, time.UTC),
			wantFramework:    "agentmesh-js",
			wantFrameworkVer: "0.1.0",
		},
		{
			// T-PY with microseconds, no framework members.
			name:             "python",
			file:             pyFile,
			wantAMID:         pyAMID,
			wantCreated:      time.Date(2026, 1, 15, 12, 34, 56, 789_000_000, time.UTC),
			wantFramework:    "openclaw",
			wantFrameworkVer: "0.4.2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "identity.json")
			writePrivate(t, path, readTestdata(t, tt.file))
			id, warnings, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != 0 {
				t.Errorf("warnings = %q, want none", warnings)
			}
			if got := string(id.AMID()); got != tt.wantAMID {
				t.Errorf("AMID = %s, want %s", got, tt.wantAMID)
			}
			if got := id.CreatedAt(); !got.Equal(tt.wantCreated) {
				t.Errorf("CreatedAt = %v, want %v", got, tt.wantCreated)
			}
			if got := id.DIDUpdated(); !got.Equal(tt.wantCreated) {
				t.Errorf("DIDUpdated = %v, want the creation time %v", got, tt.wantCreated)
			}
			if got := id.DIDVersion(); got != 1 {
				t.Errorf("DIDVersion = %d, want 1", got)
			}
			if id.Framework() != tt.wantFramework || id.FrameworkVersion() != tt.wantFrameworkVer {
				t.Errorf("framework = %q %q, want %q %q", id.Framework(), id.FrameworkVersion(),
					tt.wantFramework, tt.wantFrameworkVer)
			}

			// Saving keeps what was loaded.
			again, _, err := parse(id.marshal())
			if err != nil {
				t.Fatalf("re-parsing the saved form: %v", err)
			}
			if again.AMID() != id.AMID() || again.Framework() != tt.wantFramework || !again.CreatedAt().Equal(tt.wantCreated) {
				t.Errorf("saved form loads as %v %q %v", again, again.Framework(), again.CreatedAt())
			}
		})
	}
}

// editGolden applies old→new replacements to the golden file, failing if an
// old string is absent (the test would then prove nothing).
func editGolden(t testing.TB, pairs ...string) []byte {
	t.Helper()
	s := string(readTestdata(t, goldenFile))
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("golden file has no %q", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return []byte(s)
}

// Values of the golden file, for edits.
const (
	goldenSeedB64     = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	goldenExchangeB64 = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
	goldenSigningPub  = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
	goldenExchangePub = "NYBy1jZYgNGu6jKa35EhODhR7SGijjt16WXQ0s0WYlQ="
	tsSigningPub      = "JUO5L/EJVRFHatyDadtt3JM2ZaEZeN2hQE7hBmypVZ0="
	tsExchangePub     = "Z13VdO13iTELPS52gfN5C0ZsdzsVIf7PNld5WDcepS8="
)

func TestLoadLenientKeys(t *testing.T) {
	tests := []struct {
		name  string
		edits []string
		want  []string // fields named by the warnings, in order
	}{
		{
			name:  "unprefixed signing private key",
			edits: []string{`"ed25519:` + goldenSeedB64, `"` + goldenSeedB64},
			want:  []string{"signing_private_key: no \"ed25519:\" prefix"},
		},
		{
			name: "all unprefixed",
			edits: []string{
				`"ed25519:` + goldenSeedB64, `"` + goldenSeedB64,
				`"ed25519:` + goldenSigningPub, `"` + goldenSigningPub,
				`"x25519:` + goldenExchangeB64, `"` + goldenExchangeB64,
				`"x25519:` + goldenExchangePub, `"` + goldenExchangePub,
			},
			want: []string{
				"signing_private_key: no", "signing_public_key: no",
				"exchange_private_key: no", "exchange_public_key: no",
			},
		},
		{
			name:  "other prefix",
			edits: []string{`"x25519:` + goldenExchangePub, `"curve25519:` + goldenExchangePub},
			want:  []string{"exchange_public_key: prefix is not \"x25519:\""},
		},
		{
			name:  "prefix of the other key type",
			edits: []string{`"ed25519:` + goldenSigningPub, `"x25519:` + goldenSigningPub},
			want:  []string{"signing_public_key: prefix is not \"ed25519:\""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, warnings, err := parse(editGolden(t, tt.edits...))
			if err != nil {
				t.Fatal(err)
			}
			if id.AMID() != goldenAMID {
				t.Errorf("AMID = %s, want %s", id.AMID(), goldenAMID)
			}
			if len(warnings) != len(tt.want) {
				t.Fatalf("warnings = %q, want %d of them", warnings, len(tt.want))
			}
			for i, w := range warnings {
				if !strings.HasPrefix(w, tt.want[i]) {
					t.Errorf("warning %d = %q, want it to start with %q", i, w, tt.want[i])
				}
				for _, secret := range []string{goldenSeedB64, goldenExchangeB64} {
					if strings.Contains(w, secret) {
						t.Errorf("warning %q quotes a private key", w)
					}
				}
			}
			// What is written back is canonical again.
			if got, want := id.marshal(), readTestdata(t, goldenFile); !bytes.Equal(got, want) {
				t.Errorf("saved form =\n%s\nwant the golden file", got)
			}
		})
	}
}

func TestLoadRejects(t *testing.T) {
	golden := string(readTestdata(t, goldenFile))
	tests := []struct {
		name        string
		file        []byte
		wantField   string
		wantProblem string
	}{
		{"amid of another key", editGolden(t, goldenAMID, tsAMID), "amid", "does not match signing_public_key"},
		{"amid not base58", editGolden(t, goldenAMID, "0OIl"), "amid", "does not match"},
		{"signing public key of another seed", editGolden(t, goldenSigningPub, tsSigningPub), "signing_public_key", "does not match signing_private_key"},
		{"exchange public key of another key", editGolden(t, goldenExchangePub, tsExchangePub), "exchange_public_key", "does not match exchange_private_key"},
		{"amid missing", editGolden(t, `"amid":`, `"amid_":`), "amid", "missing"},
		{"created_at missing", editGolden(t, `"created_at"`, `"createdAt"`), "created_at", "missing"},
		{"exchange private key missing", editGolden(t, `"exchange_private_key"`, `"exchange_private"`), "exchange_private_key", "missing"},
		{"amid number", editGolden(t, `"`+goldenAMID+`"`, `42`), "amid", "want a string, got number"},
		{"signing key array", editGolden(t, `"ed25519:`+goldenSeedB64+`"`, `["x"]`), "signing_private_key", "want a string, got array"},
		{"signing key null", editGolden(t, `"ed25519:`+goldenSeedB64+`"`, `null`), "signing_private_key", "want a string, got null"},
		{"exchange key object", editGolden(t, `"x25519:`+goldenExchangeB64+`"`, `{"a":1}`), "exchange_private_key", "want a string, got object"},
		{"public key boolean", editGolden(t, `"x25519:`+goldenExchangePub+`"`, `true`), "exchange_public_key", "want a string, got boolean"},
		{"seed not base64", editGolden(t, goldenSeedB64, "!!!!"+goldenSeedB64[4:]), "signing_private_key", "not standard padded base64"},
		{"seed unpadded", editGolden(t, goldenSeedB64, strings.TrimSuffix(goldenSeedB64, "=")), "signing_private_key", "not standard padded base64"},
		{"seed base64url", editGolden(t, goldenSigningPub, strings.ReplaceAll(goldenSigningPub, "/", "_")), "signing_public_key", "not standard padded base64"},
		{"seed too short", editGolden(t, goldenSeedB64, "AAECAwQFBgcICQoLDA0ODw=="), "signing_private_key", "decodes to 16 bytes, want 32"},
		{"exchange key too long", editGolden(t, goldenExchangeB64, goldenExchangeB64[:43]+"AAAA="), "exchange_private_key", "decodes to 35 bytes"},
		{"created_at garbage", editGolden(t, `"created_at": "2026-02-01T16:25:10.555Z"`, `"created_at": "yesterday"`), "created_at", "not an RFC 3339"},
		{"created_at number", editGolden(t, `"created_at": "2026-02-01T16:25:10.555Z"`, `"created_at": 1769963110555`), "created_at", "want a string, got number"},
		{"created_at year before 0000 in UTC", editGolden(t, `"created_at": "2026-02-01T16:25:10.555Z"`, `"created_at": "0000-01-01T00:00:00+01:00"`), "created_at", "year -1"},
		{"framework number", editGolden(t, `"agentmesh-go"`, `1`), "framework", "want a string, got number"},
		{"framework_version array", editGolden(t, `"0.2.0"`, `[]`), "framework_version", "want a string, got array"},
		{"did_version zero", editGolden(t, `"did_version": 1`, `"did_version": 0`), "did_version", "want an integer from 1 to 2147483647, got 0"},
		{"did_version fraction", editGolden(t, `"did_version": 1`, `"did_version": 1.5`), "did_version", "got 1.5"},
		{"did_version exponent", editGolden(t, `"did_version": 1`, `"did_version": 1e3`), "did_version", "got 1e3"},
		{"did_version too large", editGolden(t, `"did_version": 1`, `"did_version": 2147483648`), "did_version", "got 2147483648"},
		{"did_version string", editGolden(t, `"did_version": 1`, `"did_version": "1"`), "did_version", "got string"},
		{"did_updated garbage", editGolden(t, `"did_updated": "2026-02-01T16:25:10.555Z"`, `"did_updated": "2026-02-30T00:00:00Z"`), "did_updated", "no such day"},
		{"duplicate member", editGolden(t, `"framework":`, `"amid": "x", "framework":`), "amid", "appears more than once"},
		{"array", []byte(`[]`), "", "want a JSON object, got array"},
		{"string", []byte(`"identity"`), "", "want a JSON object, got string"},
		{"null", []byte(`null`), "", "want a JSON object, got null"},
		{"number", []byte(`42`), "", "want a JSON object, got number"},
		{"empty", []byte{}, "", "truncated JSON"},
		{"truncated", []byte(golden[:200]), "", "truncated JSON"},
		{"truncated after brace", []byte(`{`), "", "truncated JSON"},
		{"garbage", []byte(`{"amid": "x",,}`), "", "malformed JSON near byte"},
		{"trailing object", append(readTestdata(t, goldenFile), "{}"...), "", "data after the JSON object"},
		{"trailing garbage", append(readTestdata(t, goldenFile), " x"...), "", "data after the JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, warnings, err := parse(tt.file)
			if err == nil {
				t.Fatalf("parse succeeded with AMID %s", id.AMID())
			}
			if id != nil || warnings != nil {
				t.Error("parse returned values with an error")
			}
			var de *protocol.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *protocol.DecodeError", err, err)
			}
			if de.Field != tt.wantField || !strings.Contains(de.Problem, tt.wantProblem) {
				t.Errorf("error field %q problem %q, want field %q problem containing %q", de.Field, de.Problem, tt.wantField, tt.wantProblem)
			}
			for _, secret := range []string{goldenSeedB64, goldenExchangeB64, goldenSeedB64[4:], goldenExchangeB64[:43]} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q quotes a private key", err)
				}
			}
		})
	}
}

func TestLoadFileChecks(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "identity.json")
	writePrivate(t, good, readTestdata(t, goldenFile))
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(good, link); err != nil {
		if os.Getenv("CI") != "" { // CI must run every test
			t.Fatalf("cannot create symbolic links: %v", err)
		}
		t.Skipf("cannot create symbolic links: %v", err)
	}
	big := filepath.Join(dir, "big.json")
	writePrivate(t, big, append(readTestdata(t, goldenFile), bytes.Repeat([]byte(" "), MaxFileSize)...))

	tests := []struct {
		name string
		path string
		want error
	}{
		{"symlink", link, safefile.ErrSymlink},
		{"too large", big, safefile.ErrTooLarge},
		{"missing", filepath.Join(dir, "missing.json"), fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := Load(tt.path); !errors.Is(err, tt.want) {
				t.Errorf("Load error = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("decode error names the path", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.json")
		writePrivate(t, bad, editGolden(t, goldenAMID, tsAMID))
		_, _, err := Load(bad)
		var de *protocol.DecodeError
		if !errors.As(err, &de) || de.Field != "amid" || !strings.Contains(err.Error(), bad) {
			t.Errorf("Load error = %v, want a DecodeError for amid that names %s", err, bad)
		}
	})
}

func TestHome(t *testing.T) {
	t.Run("override", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv(HomeEnv, dir)
		got, err := Home()
		if err != nil {
			t.Fatal(err)
		}
		if got != dir {
			t.Errorf("Home = %s, want %s", got, dir)
		}
	})
	t.Run("relative override", func(t *testing.T) {
		t.Setenv(HomeEnv, "state")
		got, err := Home()
		if err != nil {
			t.Fatal(err)
		}
		cwd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(cwd, "state"); got != want {
			t.Errorf("Home = %s, want %s", got, want)
		}
	})
	t.Run("default", func(t *testing.T) {
		user := t.TempDir()
		t.Setenv(HomeEnv, "")
		t.Setenv("HOME", user)        // Unix
		t.Setenv("USERPROFILE", user) // Windows
		t.Setenv("home", user)        // Plan 9
		got, err := Home()
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(user, ".agentmesh"); got != want {
			t.Errorf("Home = %s, want %s", got, want)
		}
	})
}

func TestLoadDefault(t *testing.T) {
	goPath := "identity/identity.json"
	tsPath := "identity/identity"
	pyPath := "keys/identity.json"
	tests := []struct {
		name        string
		files       map[string]string // home-relative path → testdata file
		wantAMID    string
		wantWarning string // "" for none
	}{
		{"go", map[string]string{goPath: goldenFile}, goldenAMID, ""},
		{"typescript", map[string]string{tsPath: tsFile}, tsAMID, "TypeScript SDK"},
		{"python", map[string]string{pyPath: pyFile}, pyAMID, "Python client"},
		{"go before typescript", map[string]string{goPath: goldenFile, tsPath: tsFile}, goldenAMID, ""},
		{"go before python", map[string]string{goPath: goldenFile, pyPath: pyFile}, goldenAMID, ""},
		{"typescript before python", map[string]string{tsPath: tsFile, pyPath: pyFile}, tsAMID, "TypeScript SDK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			for rel, src := range tt.files {
				writePrivate(t, filepath.Join(home, filepath.FromSlash(rel)), readTestdata(t, src))
			}
			id, warnings, err := LoadDefault(home)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(id.AMID()); got != tt.wantAMID {
				t.Errorf("AMID = %s, want %s", got, tt.wantAMID)
			}
			hasWarning := slices.ContainsFunc(warnings, func(w string) bool {
				return tt.wantWarning != "" && strings.Contains(w, tt.wantWarning) && strings.Contains(w, DefaultPath(home))
			})
			if (tt.wantWarning != "") != hasWarning || (tt.wantWarning == "" && len(warnings) != 0) {
				t.Errorf("warnings = %q, want one naming %q and the default path: %v", warnings, tt.wantWarning, tt.wantWarning != "")
			}

			// Once saved, the identity is found at the Go location.
			if err := id.Save(DefaultPath(home)); err != nil {
				t.Fatal(err)
			}
			path, err := Find(home)
			if err != nil {
				t.Fatal(err)
			}
			if path != DefaultPath(home) {
				t.Errorf("Find after Save = %s, want %s", path, DefaultPath(home))
			}
		})
	}

	t.Run("none", func(t *testing.T) {
		home := t.TempDir()
		if _, _, err := LoadDefault(home); !errors.Is(err, ErrNotFound) {
			t.Errorf("LoadDefault in an empty home: %v, want %v", err, ErrNotFound)
		}
	})
	t.Run("broken go file is not skipped", func(t *testing.T) {
		home := t.TempDir()
		writePrivate(t, filepath.Join(home, goPath), []byte("{"))
		writePrivate(t, filepath.Join(home, tsPath), readTestdata(t, tsFile))
		var de *protocol.DecodeError
		if _, _, err := LoadDefault(home); !errors.As(err, &de) {
			t.Errorf("LoadDefault with a broken Go file: %v, want its decode error", err)
		}
	})
}
