package protocol

import (
	"fmt"
	"strconv"
	"time"
)

// Freshness window for signed timestamps (PROTOCOL.md §0.5): a timestamp may
// be at most MaxTimestampAge old and at most MaxTimestampSkew in the future.
const (
	MaxTimestampAge  = 5 * time.Minute
	MaxTimestampSkew = 1 * time.Minute
	// KnockWindow bounds |now − timestamp| for KNOCK, ACCEPT and REJECT
	// (PROTOCOL.md §6.1).
	KnockWindow = 5 * time.Minute
)

// FormatSigningTimestamp renders t in the form every Go client signs and sends
// (PROTOCOL.md §0.3): UTC, millisecond precision, the fraction written with
// exactly three digits and left out entirely when the milliseconds are zero,
// and the offset "+00:00". Both the Rust relay (which re-renders) and every
// registry endpoint (which verify the raw string) accept it.
func FormatSigningTimestamp(t time.Time) string {
	t = t.UTC().Truncate(time.Millisecond)
	b := t.AppendFormat(make([]byte, 0, 29), "2006-01-02T15:04:05")
	if ms := t.Nanosecond() / 1e6; ms != 0 {
		b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	}
	return string(append(b, "+00:00"...))
}

// FormatJSTimestamp renders t as JavaScript's Date.toISOString does (T-JS):
// always three fractional digits and "Z".
func FormatJSTimestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// FormatPYTimestamp renders t as Python's datetime.isoformat does for an aware
// UTC value (T-PY): six fractional digits, omitted when the microseconds are
// zero, and "+00:00".
func FormatPYTimestamp(t time.Time) string {
	t = t.UTC().Truncate(time.Microsecond)
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02T15:04:05+00:00")
	}
	return t.Format("2006-01-02T15:04:05.000000+00:00")
}

// FormatRFCTimestamp renders t as Rust chrono's to_rfc3339 does (T-RFC):
// the shortest of 0, 3, 6 or 9 fractional digits that is exact, and
// "+00:00". Servers use it to also accept signatures that the Rust relay and
// registry would accept (PROTOCOL.md §2.2).
func FormatRFCTimestamp(t time.Time) string {
	return formatAutoSi(t, "+00:00")
}

// FormatServerTimestamp renders t as chrono's serde form (T-SERDE), used for
// every timestamp servers emit: like FormatRFCTimestamp but with "Z".
func FormatServerTimestamp(t time.Time) string {
	return formatAutoSi(t, "Z")
}

func formatAutoSi(t time.Time, zone string) string {
	t = t.UTC()
	ns := t.Nanosecond()
	layout := "2006-01-02T15:04:05"
	switch {
	case ns == 0:
	case ns%1e6 == 0:
		layout += ".000"
	case ns%1e3 == 0:
		layout += ".000000"
	default:
		layout += ".000000000"
	}
	return t.Format(layout) + zone
}

// ParseTimestamp reads an RFC 3339 date-time with 0 to 9 fractional digits
// and either "Z" or a ±hh:mm offset, the union of every form the protocol's
// implementations emit (PROTOCOL.md §0.3).
func ParseTimestamp(s string) (time.Time, error) {
	bad := func(problem string) (time.Time, error) {
		return time.Time{}, fmt.Errorf("timestamp %q: %s", truncateForError(s), problem)
	}
	// YYYY-MM-DDTHH:MM:SS is 19 bytes.
	if len(s) < 20 || len(s) > 35 {
		return bad("not an RFC 3339 date-time")
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for i := from; i < to; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	if s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return bad("not an RFC 3339 date-time")
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 7)
	day, ok3 := num(8, 10)
	hour, ok4 := num(11, 13)
	minute, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return bad("not an RFC 3339 date-time")
	}
	i, nanos := 19, 0
	if s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		digits := j - i - 1
		if digits == 0 || digits > 9 {
			return bad("fraction must have 1 to 9 digits")
		}
		n, _ := num(i+1, j)
		for k := digits; k < 9; k++ {
			n *= 10
		}
		nanos, i = n, j
	}
	offset := 0
	switch zone := s[i:]; {
	case zone == "Z" || zone == "z":
	case len(zone) == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':':
		oh, okh := num(i+1, i+3)
		om, okm := num(i+4, i+6)
		if !okh || !okm || oh > 23 || om > 59 {
			return bad("invalid offset")
		}
		offset = oh*3600 + om*60
		if zone[0] == '-' {
			offset = -offset
		}
	default:
		return bad("want Z or a ±hh:mm offset")
	}
	if month < 1 || month > 12 || hour > 23 || minute > 59 || sec > 59 {
		return bad("field out of range")
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nanos, time.FixedZone("", offset))
	if t.Day() != day {
		return bad("no such day")
	}
	return t.UTC(), nil
}

// CheckFreshness reports whether ts lies within the protocol's window around
// now: at most MaxTimestampAge old and at most MaxTimestampSkew ahead. The
// error wraps ErrStale.
func CheckFreshness(ts, now time.Time) error {
	if age := now.Sub(ts); age > MaxTimestampAge {
		return fmt.Errorf("%w: %s old, limit %s", ErrStale, age.Truncate(time.Second), MaxTimestampAge)
	}
	if ahead := ts.Sub(now); ahead > MaxTimestampSkew {
		return fmt.Errorf("%w: %s in the future, limit %s", ErrStale, ahead.Truncate(time.Second), MaxTimestampSkew)
	}
	return nil
}

// UnixMillis is a timestamp in integer milliseconds since the Unix epoch, the
// form of JavaScript's Date.now() used in KNOCK, ACCEPT and REJECT (T-MS).
type UnixMillis int64

// MillisOf converts t to UnixMillis.
func MillisOf(t time.Time) UnixMillis { return UnixMillis(t.UnixMilli()) }

// Time converts m back to a time.Time in UTC.
func (m UnixMillis) Time() time.Time { return time.UnixMilli(int64(m)).UTC() }

// CheckKnockFreshness reports whether m is within KnockWindow of now, in
// either direction (PROTOCOL.md §6.1). The error wraps ErrStale.
func CheckKnockFreshness(m UnixMillis, now time.Time) error {
	d := now.Sub(m.Time())
	if d > KnockWindow || d < -KnockWindow {
		return fmt.Errorf("%w: %s from now, limit ±%s", ErrStale, d.Truncate(time.Second), KnockWindow)
	}
	return nil
}

func (m UnixMillis) String() string { return strconv.FormatInt(int64(m), 10) }

// truncateForError keeps error messages short when input is hostile.
func truncateForError(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
