package meshtest

import (
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// Logger returns a logger named name that writes warnings and errors to the
// test log, where they show for a failed test (or with go test -v).
func Logger(t testing.TB, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: logWriter{t}})
}

// logWriter writes each line it gets to a test log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
