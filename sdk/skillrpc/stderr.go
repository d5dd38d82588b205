package skillrpc

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// go-plugin reads a plugin's stderr and, unless the logger it files the
// lines under is off, parses each line with unchecked type assertions: a
// skill writing {"@message":1} would panic the host. So the host's logger
// is wrapped to turn that parsing off (hostLogger), and the raw lines,
// which go-plugin also copies to ClientConfig.Stderr, are parsed here
// instead (stderrLog), with the same results for well-formed lines.

// hostLogger is the host's logger as go-plugin sees it: everything passes
// through, except the logger go-plugin names after the plugin binary to
// file its stderr lines, which is off.
type hostLogger struct {
	hclog.Logger
	skill string // base name of the plugin binary
}

var offLogger = hclog.New(&hclog.LoggerOptions{Level: hclog.Off, Output: io.Discard})

func (l *hostLogger) Named(name string) hclog.Logger {
	if name == l.skill {
		return offLogger
	}
	return l.Logger.Named(name)
}

// maxStderrLine bounds a buffered stderr line; go-plugin hands over long
// lines in pieces, and a piece beyond this is logged as it is.
const maxStderrLine = 64 << 10

// stderrLog is the io.Writer go-plugin copies a plugin's stderr to: it
// reassembles lines and logs each to log, at its level when it is hclog
// JSON (DESIGN.md §8), else at debug, or at error for a Go panic.
type stderrLog struct {
	log hclog.Logger

	mu      sync.Mutex
	line    []byte
	inPanic bool // a panic started: the following lines are its trace
}

func (w *stderrLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.line = append(w.line, p...)
			if len(w.line) > maxStderrLine {
				w.emit(w.line)
				w.line = w.line[:0]
			}
			break
		}
		w.line = append(w.line, p[:i]...)
		w.emit(w.line)
		w.line = w.line[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (w *stderrLog) emit(line []byte) {
	if len(line) == 0 {
		return
	}
	if msg, level, args, ok := parseLogLine(line); ok {
		w.log.Log(level, msg, args...)
		return
	}
	text := string(line)
	level := hclog.Debug
	for _, p := range []struct {
		prefix string
		level  hclog.Level
	}{{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info}, {"[WARN]", hclog.Warn}, {"[ERROR]", hclog.Error}} {
		if bytes.HasPrefix(line, []byte(p.prefix)) {
			level = p.level
		}
	}
	if bytes.HasPrefix(line, []byte("panic: ")) || bytes.HasPrefix(line, []byte("fatal error: ")) {
		w.inPanic = true
	}
	if w.inPanic {
		level = hclog.Error
	}
	w.log.Log(level, text)
}

// parseLogLine reads an hclog JSON line: an object with a string
// "@message", a known string "@level" and, optionally, a string
// "@timestamp" (kept as the field "timestamp"); its other members become
// fields. ok is false for anything else.
func parseLogLine(line []byte) (msg string, level hclog.Level, args []any, ok bool) {
	if line[0] != '{' {
		return "", 0, nil, false
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(line, &raw) != nil {
		return "", 0, nil, false
	}
	var lvl, ts string
	if json.Unmarshal(raw["@message"], &msg) != nil || json.Unmarshal(raw["@level"], &lvl) != nil {
		return "", 0, nil, false
	}
	if level = hclog.LevelFromString(lvl); level == hclog.NoLevel || level == hclog.Off {
		return "", 0, nil, false
	}
	if t, has := raw["@timestamp"]; has {
		if json.Unmarshal(t, &ts) != nil {
			return "", 0, nil, false
		}
		args = append(args, "timestamp", ts)
	}
	for k, v := range raw {
		switch k {
		case "@message", "@level", "@timestamp":
			continue
		}
		var val any
		if json.Unmarshal(v, &val) == nil {
			args = append(args, k, val)
		}
	}
	return msg, level, args, true
}
