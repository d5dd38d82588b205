package skills

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	sumA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	sumB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestLockRoundTrip(t *testing.T) {
	installed := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	in := &lockFile{Version: lockFormat, Skills: []lockEntry{
		{Name: "zeta", Version: "2.0.0", Source: "/src/zeta.tar.gz", SHA256: sumA, ManifestSHA256: sumB, InstalledAt: installed},
		{Name: "alpha", Version: "1.0.0-rc.1", Source: "/src/alpha", SHA256: sumB, ManifestSHA256: sumA, Enabled: true, InstalledAt: installed,
			Config: map[string]json.RawMessage{"max_results": json.RawMessage("5")}},
	}}
	dir := t.TempDir()
	if err := writeLock(dir, in); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, lockName))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("lock mode = %04o, want 0600", got)
	}
	out, err := readLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Skills) != 2 || out.Skills[0].Name != "alpha" || out.Skills[1].Name != "zeta" {
		t.Fatalf("skills = %+v, want alpha then zeta", out.Skills)
	}
	if got := string(out.Skills[0].Config["max_results"]); got != "5" {
		t.Errorf("alpha config max_results = %q, want 5", got)
	}
	if !out.Skills[1].InstalledAt.Equal(installed) || out.Skills[0].Enabled != true || out.Skills[1].Enabled {
		t.Errorf("entries changed in the round trip: %+v", out.Skills)
	}
}

func TestReadLockMissing(t *testing.T) {
	lf, err := readLock(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(lf.Skills) != 0 || lf.Version != lockFormat {
		t.Errorf("missing lock = %+v, want an empty lock", lf)
	}
}

func TestDecodeLockErrors(t *testing.T) {
	entry := func(mod string) string {
		e := `{"name":"alpha","version":"1.0.0","source":"/s","sha256":"` + sumA + `","manifest_sha256":"` + sumB + `","enabled":true,"installed_at":"2025-01-01T00:00:00Z"}`
		if mod != "" {
			e = strings.Replace(e, `"enabled":true`, mod, 1)
		}
		return e
	}
	tests := []struct {
		name string
		data string
		want string
	}{
		{"unknown top-level member", `{"version":1,"skills":[],"extra":1}`, `unknown field "extra"`},
		{"unknown entry member", `{"version":1,"skills":[` + entry(`"enabled":true,"x":1`) + `]}`, `unknown field "x"`},
		{"wrong format", `{"version":2,"skills":[]}`, "version: 2"},
		{"trailing data", `{"version":1,"skills":[]} {}`, "data after"},
		{"bad name", `{"version":1,"skills":[` + strings.Replace(entry(""), `"alpha"`, `"../x"`, 1) + `]}`, "skills[0].name"},
		{"bad version", `{"version":1,"skills":[` + strings.Replace(entry(""), `"1.0.0"`, `"1.0"`, 1) + `]}`, "skills[0].version"},
		{"bad hash", `{"version":1,"skills":[` + strings.Replace(entry(""), sumA, "ABC", 1) + `]}`, "skills[0].sha256"},
		{"missing time", `{"version":1,"skills":[` + strings.Replace(entry(""), `,"installed_at":"2025-01-01T00:00:00Z"`, "", 1) + `]}`, "skills[0].installed_at"},
		{"duplicate", `{"version":1,"skills":[` + entry("") + `,` + entry("") + `]}`, `skills[1].name: "alpha" is listed twice`},
		{"wrong type", `{"version":1,"skills":[` + entry(`"enabled":"yes"`) + `]}`, "/skills/enabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeLock([]byte(tt.data))
			if err == nil {
				t.Fatal("decodeLock succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to mention %q", err, tt.want)
			}
		})
	}
}
