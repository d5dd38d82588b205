package sdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func jsonUnmarshalStrict(line string, v any) error {
	dec := json.NewDecoder(bytes.NewReader([]byte(line)))
	return dec.Decode(v)
}

func parseTimestamp(s string) error {
	ts, err := time.Parse("2006-01-02T15:04:05.000000Z07:00", s)
	if err != nil {
		return err
	}
	if got := ts.Format("2006-01-02T15:04:05.000000Z07:00"); got != s {
		return fmt.Errorf("does not round-trip: %s", got)
	}
	return nil
}

func TestLoggerFormat(t *testing.T) {
	// go-plugin keeps a skill's log level only for lines in exactly this
	// format (DESIGN.md §8).
	var buf bytes.Buffer
	l := newLogger(&buf)
	l.Warn("low fuel", "litres", 3)
	line := strings.TrimSuffix(buf.String(), "\n")
	if strings.Contains(line, "\n") {
		t.Fatalf("more than one line: %q", buf.String())
	}
	var e struct {
		Message   string `json:"@message"`
		Level     string `json:"@level"`
		Timestamp string `json:"@timestamp"`
		Litres    int    `json:"litres"`
	}
	if err := jsonUnmarshalStrict(line, &e); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	if e.Message != "low fuel" || e.Level != "warn" || e.Litres != 3 {
		t.Errorf("got %+v", e)
	}
	if err := parseTimestamp(e.Timestamp); err != nil {
		t.Errorf("@timestamp %q: %v", e.Timestamp, err)
	}
	if l.GetLevel() != hclog.Debug {
		t.Errorf("got default level %s, want debug", l.GetLevel())
	}
}
