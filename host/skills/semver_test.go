package skills

import "testing"

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want int
	}{
		{"equal", "1.2.3", "1.2.3", 0},
		{"patch", "1.2.3", "1.2.4", -1},
		{"minor beats patch", "1.3.0", "1.2.9", 1},
		{"numeric not lexical", "1.10.0", "1.9.0", 1},
		{"major", "2.0.0", "10.0.0", -1},
		{"release above pre-release", "1.0.0", "1.0.0-rc.1", 1},
		{"pre-release below release", "1.0.0-alpha", "1.0.0", -1},
		{"numeric identifiers numerically", "1.0.0-rc.2", "1.0.0-rc.10", -1},
		{"numeric below alphanumeric", "1.0.0-1", "1.0.0-alpha", -1},
		{"alphanumeric in ASCII order", "1.0.0-alpha", "1.0.0-beta", -1},
		{"more identifiers rank higher", "1.0.0-alpha.1", "1.0.0-alpha", 1},
		{"build metadata ignored", "1.0.0+build.1", "1.0.0+build.2", 0},
		{"huge numbers", "18446744073709551616.0.0", "18446744073709551615.0.0", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := compareVersions(tt.a, tt.b); got != tt.want {
				t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
			if got := compareVersions(tt.b, tt.a); got != -tt.want {
				t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
			}
		})
	}
}
