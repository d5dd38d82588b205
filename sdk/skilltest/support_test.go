package skilltest_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// logBuffer collects a host logger's JSON lines.
type logBuffer struct{ logtest.Buffer }

// logger returns a host logger writing JSON to b, at every level.
func (b *logBuffer) logger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Trace, Output: b, JSONFormat: true})
}

type logEntry struct {
	Level   string
	Message string
	Fields  map[string]any
}

func (e logEntry) str(key string) string {
	s, _ := e.Fields[key].(string)
	return s
}

func (b *logBuffer) entries() []logEntry {
	var out []logEntry
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		e := logEntry{Fields: m}
		e.Level, _ = m["@level"].(string)
		e.Message, _ = m["@message"].(string)
		out = append(out, e)
	}
	return out
}

func (b *logBuffer) find(match func(logEntry) bool) bool {
	for _, e := range b.entries() {
		if match(e) {
			return true
		}
	}
	return false
}

const fakeHostEnv = "SKILLTEST_FAKE_HOST_PLUGIN"

// runAsFakeHost makes the test binary act as a host when started by
// TestExitsAfterHost: it starts the plugin named in the environment,
// prints the plugin's pid and waits to be killed. It reports whether it
// ran.
func runAsFakeHost() bool {
	bin := os.Getenv(fakeHostEnv)
	if bin == "" {
		return false
	}
	sum, err := os.ReadFile(bin)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	digest := sha256.Sum256(sum)
	pc := plugin.NewClient(skillrpc.ClientConfig(exec.Command(bin), digest[:], hclog.NewNullLogger()))
	if _, err := pc.Client(); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Printf("plugin-pid %d\n", pc.ReattachConfig().Pid)
	select {} // until SIGKILL
}
