package protocol

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestFormatTimestamps(t *testing.T) {
	tests := []struct {
		name                       string
		t                          time.Time
		signing, js, py, rfc, serd string
	}{
		{
			name:    "milliseconds",
			t:       time.Date(2026, 2, 1, 16, 25, 10, 555_000_000, time.UTC),
			signing: "2026-02-01T16:25:10.555+00:00", js: "2026-02-01T16:25:10.555Z",
			py: "2026-02-01T16:25:10.555000+00:00", rfc: "2026-02-01T16:25:10.555+00:00",
			serd: "2026-02-01T16:25:10.555Z",
		},
		{
			name:    "trailing zero milliseconds keep three digits",
			t:       time.Date(2026, 2, 1, 16, 25, 10, 120_000_000, time.UTC),
			signing: "2026-02-01T16:25:10.120+00:00", js: "2026-02-01T16:25:10.120Z",
			py: "2026-02-01T16:25:10.120000+00:00", rfc: "2026-02-01T16:25:10.120+00:00",
			serd: "2026-02-01T16:25:10.120Z",
		},
		{
			name:    "whole second has no fraction",
			t:       time.Date(2026, 2, 1, 16, 25, 10, 0, time.UTC),
			signing: "2026-02-01T16:25:10+00:00", js: "2026-02-01T16:25:10.000Z",
			py: "2026-02-01T16:25:10+00:00", rfc: "2026-02-01T16:25:10+00:00",
			serd: "2026-02-01T16:25:10Z",
		},
		{
			name:    "sub-millisecond is truncated when signing",
			t:       time.Date(2026, 2, 1, 16, 25, 10, 555_123_456, time.UTC),
			signing: "2026-02-01T16:25:10.555+00:00", js: "2026-02-01T16:25:10.555Z",
			py: "2026-02-01T16:25:10.555123+00:00", rfc: "2026-02-01T16:25:10.555123456+00:00",
			serd: "2026-02-01T16:25:10.555123456Z",
		},
		{
			name:    "microseconds",
			t:       time.Date(2026, 2, 1, 16, 25, 10, 555_123_000, time.FixedZone("x", 3600)),
			signing: "2026-02-01T15:25:10.555+00:00", js: "2026-02-01T15:25:10.555Z",
			py: "2026-02-01T15:25:10.555123+00:00", rfc: "2026-02-01T15:25:10.555123+00:00",
			serd: "2026-02-01T15:25:10.555123Z",
		},
		{
			name:    "under a millisecond only",
			t:       time.Date(2026, 2, 1, 16, 25, 10, 999, time.UTC),
			signing: "2026-02-01T16:25:10+00:00", js: "2026-02-01T16:25:10.000Z",
			py: "2026-02-01T16:25:10+00:00", rfc: "2026-02-01T16:25:10.000000999+00:00",
			serd: "2026-02-01T16:25:10.000000999Z",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct{ fn, got, want string }{
				{"FormatSigningTimestamp", FormatSigningTimestamp(tt.t), tt.signing},
				{"FormatJSTimestamp", FormatJSTimestamp(tt.t), tt.js},
				{"FormatPYTimestamp", FormatPYTimestamp(tt.t), tt.py},
				{"FormatRFCTimestamp", FormatRFCTimestamp(tt.t), tt.rfc},
				{"FormatServerTimestamp", FormatServerTimestamp(tt.t), tt.serd},
			} {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.fn, c.got, c.want)
				}
				back, err := ParseTimestamp(c.got)
				if err != nil {
					t.Errorf("ParseTimestamp(%s(…) = %q): %v", c.fn, c.got, err)
				} else if d := tt.t.Sub(back); d < 0 || d >= time.Millisecond {
					// Every form keeps at least milliseconds, truncating the rest.
					t.Errorf("ParseTimestamp(%q) = %v, %v from the original", c.got, back, d)
				}
			}
		})
	}
}

func TestParseTimestamp(t *testing.T) {
	want := time.Date(2026, 2, 1, 16, 25, 10, 0, time.UTC)
	good := []struct {
		in   string
		want time.Time
	}{
		{"2026-02-01T16:25:10Z", want},
		{"2026-02-01T16:25:10z", want},
		{"2026-02-01t16:25:10Z", want},
		{"2026-02-01T16:25:10+00:00", want},
		{"2026-02-01T17:25:10+01:00", want},
		{"2026-02-01T11:55:10-04:30", want},
		{"2026-02-01T16:25:10.5Z", want.Add(500 * time.Millisecond)},
		{"2026-02-01T16:25:10.123456789Z", want.Add(123456789)},
		{"2026-02-01T16:25:10.000000001+00:00", want.Add(1)},
		{"2024-02-29T00:00:00Z", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range good {
		got, err := ParseTimestamp(tt.in)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseTimestamp(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
	bad := []struct{ in, wantErr string }{
		{"", "not an RFC 3339"},
		{"2026-02-01", "not an RFC 3339"},
		{"2026-02-01T16:25:10", "not an RFC 3339"},
		{"2026-02-01 16:25:10Z", "not an RFC 3339"},
		{"2026-02-01T16:25:10.Z", "1 to 9 digits"},
		{"2026-02-01T16:25:10.1234567890Z", "1 to 9 digits"},
		{"2026-02-01T16:25:10+0000", "Z or a ±hh:mm"},
		{"2026-02-01T16:25:10+24:00", "invalid offset"},
		{"2026-02-01T16:25:10UTC", "Z or a ±hh:mm"},
		{"2026-13-01T16:25:10Z", "out of range"},
		{"2026-02-01T24:00:00Z", "out of range"},
		{"2026-02-01T16:60:10Z", "out of range"},
		{"2026-02-01T16:25:60Z", "out of range"},
		{"2025-02-29T16:25:10Z", "no such day"},
		{"2026-02-00T16:25:10Z", "no such day"},
		{"+026-02-01T16:25:10Z", "not an RFC 3339"},
		{"1769963110555", "not an RFC 3339"},
	}
	for _, tt := range bad {
		_, err := ParseTimestamp(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseTimestamp(%q) = %v, want error containing %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestCheckFreshness(t *testing.T) {
	now := time.Date(2026, 2, 1, 16, 25, 10, 0, time.UTC)
	tests := []struct {
		name   string
		offset time.Duration // timestamp minus now
		ok     bool
	}{
		{"now", 0, true},
		{"five minutes old", -5 * time.Minute, true},
		{"just over five minutes old", -5*time.Minute - time.Millisecond, false},
		{"one minute ahead", time.Minute, true},
		{"just over one minute ahead", time.Minute + time.Millisecond, false},
		{"an hour old", -time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFreshness(now.Add(tt.offset), now)
			if (err == nil) != tt.ok {
				t.Errorf("CheckFreshness(now%+v) = %v, want ok=%v", tt.offset, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrStale) {
				t.Errorf("error %v does not wrap ErrStale", err)
			}
		})
	}
	ms := MillisOf(now)
	for _, c := range []struct {
		d  time.Duration
		ok bool
	}{{0, true}, {5 * time.Minute, true}, {-5 * time.Minute, true}, {5*time.Minute + time.Millisecond, false}, {-5*time.Minute - time.Millisecond, false}} {
		err := CheckKnockFreshness(ms+UnixMillis(c.d.Milliseconds()), now)
		if (err == nil) != c.ok {
			t.Errorf("CheckKnockFreshness(now%+v) = %v, want ok=%v", c.d, err, c.ok)
		}
	}
	if got := ms.Time(); !got.Equal(now) {
		t.Errorf("UnixMillis round trip = %v, want %v", got, now)
	}
}
