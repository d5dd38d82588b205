// Package servercmdtest runs the server commands (agentmesh-registry and
// agentmesh-relay) in their tests: it builds a command's binary, starts it
// on a loopback port and stops it with SIGTERM.
package servercmdtest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// BuildBinary compiles the command in the package directory pkgDir into a
// temporary directory of t and returns the binary's path.
func BuildBinary(t testing.TB, pkgDir string) string {
	t.Helper()
	abs, err := filepath.Abs(pkgDir)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), filepath.Base(abs))
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = abs
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// listenRE finds the address in the "<name> listening: addr=" log line
// that servercmd.Serve writes once it listens.
var listenRE = regexp.MustCompile(` listening: addr=(\S+)`)

// Process is a server command running under a test.
type Process struct {
	Cmd  *exec.Cmd
	Addr string // host:port it listens on
	done chan error
}

// Start runs bin with "--listen 127.0.0.1:0" and args, in this process's
// environment extended by env, logs its stderr to t and returns once its
// "listening" log line says where it listens. The process is killed at
// the end of the test if it is still running.
func Start(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	name := filepath.Base(bin)
	cmd := exec.Command(bin, append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Log(sc.Text())
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	p := &Process{Cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	select {
	case p.Addr = <-addr:
		return p
	case err := <-p.done:
		p.done <- err // for the cleanup
		t.Fatalf("%s exited before listening: %v", name, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start listening", name)
	}
	return nil
}

// Stop sends SIGTERM and fails t unless the process exits cleanly within
// 20 seconds.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	name := filepath.Base(p.Cmd.Path)
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("%s exit after SIGTERM: %v", name, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not stop on SIGTERM", name)
	}
}
