package sdk

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// newLogger returns the skill's logger: hclog JSON lines on w, the format
// go-plugin parses on the host side to keep each line's level (DESIGN.md
// §8): "@message", "@level" and "@timestamp" as
// 2006-01-02T15:04:05.000000Z07:00, one object per line.
func newLogger(w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Level:      hclog.Debug,
		Output:     w,
		JSONFormat: true,
		TimeFormat: hclog.TimeFormatJSON,
	})
}

// swapWriter is a writer whose destination can change, so that a test
// harness can move a skill's logs.
type swapWriter struct {
	w atomic.Pointer[io.Writer]
}

func newSwapWriter(w io.Writer) *swapWriter {
	s := new(swapWriter)
	s.set(w)
	return s
}

func (s *swapWriter) set(w io.Writer) { s.w.Store(&w) }

func (s *swapWriter) Write(p []byte) (int, error) { return (*s.w.Load()).Write(p) }

type callKey struct{}

// Logger returns the logger of the request ctx belongs to: the skill's
// logger with the request's intent and id. Outside a handler it returns
// hclog's default logger, which a serving skill sets to its own.
func Logger(ctx context.Context) hclog.Logger {
	if c, ok := ctx.Value(callKey{}).(*call); ok {
		return c.logger()
	}
	return hclog.Default()
}

func withCall(ctx context.Context, c *call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}
