//go:build unix

package skills

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// processGone reports whether pid has exited: it no longer exists, or it
// is a zombie waiting for a parent that is not reaping it.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, fs.ErrNotExist) {
		// No /proc on this system: the process exists, as kill said.
		_, err := os.Stat("/proc/self")
		return err == nil
	}
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(data, ')')
	return i >= 0 && i+2 < len(data) && data[i+2] == 'Z'
}

func TestPluginKilledMidRequest(t *testing.T) {
	t.Parallel()
	h := newTestHost(t)
	h.install(t, "testskill")
	var pid int
	onStatus := func(st protocol.Status) {
		if _, err := fmt.Sscanf(st.Message, "pid %d", &pid); err != nil {
			t.Errorf("status %q: %v", st.Message, err)
			return
		}
		// The plugin dies in the middle of the request.
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Errorf("killing the plugin: %v", err)
		}
	}
	e := wantError(t, dispatch(t, h, request("test/sleep", ``), onStatus), protocol.CodeInternalError)
	if !strings.Contains(e.Message, "testskill") {
		t.Errorf("message = %q, want it to name the skill", e.Message)
	}
	if pid == 0 {
		t.Fatal("the skill never reported its pid")
	}
	// The next request is served by a restarted plugin.
	if got := resultText(t, wantResponse(t, dispatch(t, h, request("test/echo", `{"text":"back"}`), nil))); got != "back" {
		t.Errorf("after the restart: %q", got)
	}
	info, _ := h.Info("testskill")
	if info.State != StateRunning || info.PID == 0 || info.PID == pid {
		t.Errorf("after the restart: %s pid %d (killed %d), want a new running process", info.State, info.PID, pid)
	}
	if !processGone(pid) {
		t.Errorf("the killed plugin %d was not reaped", pid)
	}
}

func TestCrashLoopQuarantine(t *testing.T) {
	t.Parallel()
	h := newTestHost(t, withOptions(func(o *Options) { o.Restart.MaxCrashes = 3 }))
	h.install(t, "testskill")
	for i := range 3 {
		e := wantError(t, dispatch(t, h, request("test/crash", ``), nil), protocol.CodeInternalError)
		if !strings.Contains(e.Message, "testskill") {
			t.Errorf("crash %d: message = %q", i+1, e.Message)
		}
	}
	info, _ := h.Info("testskill")
	if info.State != StateQuarantined || !strings.Contains(info.Reason, "crashed 3 times within 1m0s") {
		t.Fatalf("after 3 crashes: %s (%s), want quarantined with the reason", info.State, info.Reason)
	}
	e := wantError(t, dispatch(t, h, request("test/echo", `{"text":"x"}`), nil), protocol.CodeServiceUnavailable)
	if !strings.Contains(e.Message, "quarantined") || !strings.Contains(e.Message, "crashed 3 times") {
		t.Errorf("refusal = %q, want the quarantine and its reason", e.Message)
	}
	if err := h.Start(t.Context(), "testskill"); !errors.Is(err, ErrQuarantined) {
		t.Errorf("Start of a quarantined skill: %v", err)
	}
	// Enabling lifts the quarantine.
	if err := h.Enable(t.Context(), "testskill"); err != nil {
		t.Fatal(err)
	}
	wantResponse(t, dispatch(t, h, request("test/echo", `{"text":"x"}`), nil))
}

func TestCloseKillsPlugins(t *testing.T) {
	t.Parallel()
	h := newTestHost(t)
	h.install(t, "testskill")
	if err := h.Start(t.Context(), "testskill"); err != nil {
		t.Fatal(err)
	}
	info, _ := h.Info("testskill")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	logtest.Eventually(t, "the plugin to exit", func() bool { return processGone(info.PID) })
}

func TestSIGKILLedHostLeavesNoPlugin(t *testing.T) {
	t.Parallel()
	setup := newTestHost(t)
	setup.install(t, "testskill")
	setup.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envTestHost+"="+setup.home)
	cmd.Stderr = logtest.Writer(t)
	out, err := cmd.StdoutPipe()
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
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the host's output: %v", err)
	}
	var pid int
	if _, err := fmt.Sscanf(line, "pid %d", &pid); err != nil || pid == 0 {
		t.Fatalf("host said %q: %v", line, err)
	}
	t.Cleanup(func() {
		if !processGone(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if processGone(pid) {
		t.Fatalf("plugin %d is not running", pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	logtest.Eventually(t, fmt.Sprintf("plugin %d to exit after its host was killed", pid), func() bool {
		return processGone(pid)
	})
}
