//go:build unix

package skilltest_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc"
	"github.com/agentmesh/agentmesh-go/sdk/skilltest"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// TestStdoutCarriesOnlyHandshake runs the skill binary as go-plugin
// would and checks that the first line on its stdout is the handshake,
// although the skill logs before it, and that every stderr line is hclog
// JSON in the format the host parses.
func TestStdoutCarriesOnlyHandshake(t *testing.T) {
	cmd := exec.Command(skilltest.Build(t, echoDir))
	cmd.Env = []string{
		skillrpc.Handshake.MagicCookieKey + "=" + skillrpc.Handshake.MagicCookieValue,
		"PLUGIN_PROTOCOL_VERSIONS=" + strconv.Itoa(skillrpc.ProtocolVersion),
		"TMPDIR=" + t.TempDir(),
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	first, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the handshake: %v (got %q)", err, first)
	}
	handshake := regexp.MustCompile(`^1\|1\|unix\|[^|]+\|grpc\|\n$`)
	if !handshake.MatchString(first) {
		t.Fatalf("first stdout line %q is not the go-plugin handshake", first)
	}
	// The warning about test/unhandled is logged before the handshake.
	sc := bufio.NewScanner(stderr)
	sawWarning := false
	for !sawWarning && sc.Scan() {
		line := sc.Bytes()
		var e struct {
			Message   *string `json:"@message"`
			Level     *string `json:"@level"`
			Timestamp *string `json:"@timestamp"`
		}
		if err := json.Unmarshal(line, &e); err != nil || e.Message == nil || e.Level == nil || e.Timestamp == nil {
			t.Fatalf("stderr line %q is not hclog JSON with @message, @level and @timestamp", line)
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000000Z07:00", *e.Timestamp); err != nil {
			t.Errorf("@timestamp %q: %v", *e.Timestamp, err)
		}
		sawWarning = *e.Level == "warn" && strings.Contains(*e.Message, "no handler")
	}
	if !sawWarning {
		t.Fatalf("stderr ended (%v) without the warning about test/unhandled", sc.Err())
	}
}

func TestNotStartedByHost(t *testing.T) {
	cmd := exec.Command(skilltest.Build(t, echoDir))
	cmd.Env = []string{}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("got %v, want exit status 1", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("got stdout %q, want none", stdout.String())
	}
	if !strings.Contains(stderr.String(), "AgentMesh skill echo 1.0.0") {
		t.Errorf("got stderr %q, want it to say what the program is", stderr.String())
	}
}

// TestLogsReachHostLogger checks that what a skill logs arrives in the
// host's hclog logger at the level it was logged at, with its fields.
func TestLogsReachHostLogger(t *testing.T) {
	logs := new(logBuffer)
	h := skilltest.StartWithOptions(t, skilltest.Build(t, echoDir), skilltest.Options{Logger: logs.logger()})
	levels := []string{"debug", "info", "warn", "error"}
	for _, level := range levels {
		msg := "message at " + level
		res, err := h.Handle(t.Context(), "test/log", map[string]string{"level": level, "message": msg})
		if err != nil || res.Response == nil {
			t.Fatalf("test/log %s: %+v, %v", level, res, err)
		}
	}
	h.Close() // waits until the host has read all of the skill's stderr
	for _, level := range levels {
		msg := "message at " + level
		found := logs.find(func(e logEntry) bool {
			return e.Message == msg && e.Level == level &&
				e.str("marker") == "echo-log" && e.str("intent") == "test/log" &&
				strings.HasPrefix(e.str("@module"), "host.echo")
		})
		if !found {
			t.Errorf("no host log entry %q at level %s with the skill's fields; got:\n%s", msg, level, logs)
		}
	}
}

// TestLogLevelFromHost checks that the level the host asks for filters
// the skill's logs in the skill.
func TestLogLevelFromHost(t *testing.T) {
	logs := new(logBuffer)
	h := skilltest.StartWithOptions(t, skilltest.Build(t, echoDir), skilltest.Options{Logger: logs.logger()})
	if err := h.ConfigureLogLevel(t.Context(), "warn"); err != nil {
		t.Fatal(err)
	}
	for _, level := range []string{"info", "warn"} {
		if _, err := h.Handle(t.Context(), "test/log", map[string]string{"level": level, "message": "filtered " + level}); err != nil {
			t.Fatal(err)
		}
	}
	h.Close()
	if logs.find(func(e logEntry) bool { return e.Message == "filtered info" }) {
		t.Error("an info line reached the host after it asked for warn")
	}
	if !logs.find(func(e logEntry) bool { return e.Message == "filtered warn" }) {
		t.Error("the warn line did not reach the host")
	}
}

func TestTamperedBinaryRefused(t *testing.T) {
	bin := skilltest.Build(t, echoDir)
	sum := sha256.Sum256([]byte("not the binary"))
	pc := plugin.NewClient(skillrpc.ClientConfig(exec.Command(bin), sum[:], hclog.NewNullLogger()))
	defer pc.Kill()
	_, err := pc.Client()
	if !errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
		t.Fatalf("got %v, want plugin.ErrChecksumsDoNotMatch", err)
	}
}

// TestSIGTERM checks that SIGTERM cancels the requests in flight with
// ERROR cancelled and that the skill then exits with status 0.
func TestSIGTERM(t *testing.T) {
	logs := new(logBuffer)
	h := skilltest.StartWithOptions(t, skilltest.Build(t, echoDir), skilltest.Options{Logger: logs.logger()})
	done := startBlocked(t, h)
	if err := syscall.Kill(h.PID(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	o := waitOutcome(t, done)
	if o.err != nil {
		t.Fatalf("blocked request: %v", o.err)
	}
	if o.res.Error == nil || o.res.Error.Code != protocol.CodeCancelled || o.res.Error.Message != "skill is shutting down" {
		t.Fatalf("blocked request: got %+v, want ERROR cancelled: skill is shutting down", o.res)
	}
	logtest.Eventually(t, "the skill to exit", h.Exited, &logs.Buffer)
	h.Close()
	if !logs.find(func(e logEntry) bool { return e.Message == "plugin process exited" && e.Level == "info" }) {
		t.Errorf("no clean exit in the host's log:\n%s", logs)
	}
}

// TestExitsAfterHost starts a host process that starts the skill, kills
// the host with SIGKILL, and checks that the skill exits by itself.
func TestExitsAfterHost(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fakeHostEnv+"="+skilltest.Build(t, echoDir))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("fake host: %v (said %q)", err, line)
	}
	pidStr, ok := strings.CutPrefix(strings.TrimSpace(line), "plugin-pid ")
	pid, err := strconv.Atoi(pidStr)
	if !ok || err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("fake host said %q", line)
	}
	if !running(pid) {
		t.Fatalf("plugin %d is not running before its host is killed", pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	t.Cleanup(func() {
		if running(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	logtest.Eventually(t, fmt.Sprintf("plugin %d to exit after its host", pid), func() bool { return !running(pid) })
}

// running reports whether pid is a live process: it exists and, where
// /proc tells, is not a zombie waiting for a parent to reap it.
func running(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// The state follows the command name, which is in parentheses.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}
