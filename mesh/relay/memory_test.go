package relay_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/mesh/relay"
	"github.com/agentmesh/agentmesh-go/mesh/relay/relayserver"
)

// BenchmarkIdleConnMemory holds idleConns authenticated, idle connections
// to one relay and reports the memory each costs, after a GC, as the growth
// of live heap (runtime.MemStats.HeapAlloc) and of goroutine stacks
// (StackInuse) divided by the number of connections:
//
//   - server-only: the clients run in a child process (this test binary
//     again, see TestMain), so the growth measured in this process is the
//     relay's alone (server-heap-B/conn, server-stack-B/conn, and their sum
//     server-B/conn).
//   - in-process: the clients run in this process too, and the growth is
//     relay and clients together (total-B/conn and its parts); subtracting
//     server-B/conn estimates the clients' share.
//
// An iteration, timed whole, dials idleConns connections and so takes
// seconds: the benchmark runs once per -count. It raises RLIMIT_NOFILE to
// what the connections need (one descriptor each in the relay's process,
// two in-process); where the hard limit is lower and cannot be raised, it
// holds as many connections as the limit allows and reports the number as
// the conns metric.
func BenchmarkIdleConnMemory(b *testing.B) {
	b.Run("server-only", func(b *testing.B) {
		for range b.N {
			n := fileLimitedConns(b, 1)
			heap, stack := idleConnGrowth(b, n, false)
			b.ReportMetric(float64(n), "conns")
			b.ReportMetric(heap, "server-heap-B/conn")
			b.ReportMetric(stack, "server-stack-B/conn")
			b.ReportMetric(heap+stack, "server-B/conn")
		}
	})
	b.Run("in-process", func(b *testing.B) {
		for range b.N {
			n := fileLimitedConns(b, 2)
			heap, stack := idleConnGrowth(b, n, true)
			b.ReportMetric(float64(n), "conns")
			b.ReportMetric(heap, "total-heap-B/conn")
			b.ReportMetric(stack, "total-stack-B/conn")
			b.ReportMetric(heap+stack, "total-B/conn")
		}
	})
}

// idleConns is the number of connections BenchmarkIdleConnMemory holds.
const idleConns = 10_000

// holderEnv names the relay URL in the environment of the child process
// that holds the clients, and holderCountEnv how many it holds.
const (
	holderEnv      = "AGENTMESH_RELAY_TEST_HOLD_URL"
	holderCountEnv = "AGENTMESH_RELAY_TEST_HOLD_COUNT"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(holderEnv); url != "" {
		n, err := strconv.Atoi(os.Getenv(holderCountEnv))
		if err == nil {
			err = holdConns(url, n, os.Stdin, os.Stdout)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "holder:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holdConns dials n Conns to url, writes "ready", and holds them until in
// is closed.
func holdConns(url string, n int, in io.Reader, out io.Writer) error {
	conns, err := dialMany(url, n)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "ready")
	io.Copy(io.Discard, in)
	closeMany(conns)
	return nil
}

// dialMany dials n Conns with fresh keys, a few at a time.
func dialMany(url string, n int) ([]*relay.Conn, error) {
	keys := make([]ed25519.PrivateKey, n)
	for i := range keys {
		_, keys[i], _ = ed25519.GenerateKey(nil)
	}
	conns := make([]*relay.Conn, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range next {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				c, err := relay.Dial(ctx, url, keys[i], relay.WithLogger(hclog.NewNullLogger()), relay.WithReceiveBuffer(1))
				cancel()
				if err != nil {
					errs <- fmt.Errorf("conn %d: %w", i, err)
					continue
				}
				conns[i] = c
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		closeMany(conns)
		return nil, err
	}
	return conns, nil
}

func closeMany(conns []*relay.Conn) {
	var wg sync.WaitGroup
	next := make(chan *relay.Conn)
	for range 64 {
		wg.Go(func() {
			for c := range next {
				c.Close()
			}
		})
	}
	for _, c := range conns {
		if c != nil {
			next <- c
		}
	}
	close(next)
	wg.Wait()
}

// idleConnGrowth returns the heap and stack growth per connection of
// holding n connections to a new relay, with the clients in this process
// or in a child process.
func idleConnGrowth(b *testing.B, n int, inProcess bool) (heap, stack float64) {
	r := startRelay(b, func(cfg *relayserver.Config) { cfg.Logger = hclog.NewNullLogger() })
	defer r.stop()
	before := settledMemStats()
	var release func()
	if inProcess {
		conns, err := dialMany(r.url(), n)
		if err != nil {
			b.Fatal(err)
		}
		release = func() { closeMany(conns) }
	} else {
		release = startHolder(b, r.url(), n)
	}
	after := settledMemStats()
	release()
	return (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(n),
		(float64(after.StackInuse) - float64(before.StackInuse)) / float64(n)
}

// startHolder runs this test binary as a child that holds n Conns to url,
// and returns once they are connected. The returned function makes the
// child close them and waits for it.
func startHolder(b *testing.B, url string, n int) (release func()) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"="+url, holderCountEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		stdin.Close()
		cmd.Wait()
		b.Fatalf("holder process: %q, %v", line, err)
	}
	return func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Errorf("holder process: %v", err)
		}
	}
}

// settledMemStats collects garbage until the live heap stops shrinking,
// and returns the memory statistics then.
func settledMemStats() runtime.MemStats {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	for range 5 {
		prev := ms.HeapAlloc
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc >= prev {
			break
		}
	}
	return ms
}

// fileLimitedConns raises RLIMIT_NOFILE so that this process can hold
// idleConns connections using perConn descriptors each, as far as the hard
// limit allows, and returns how many connections it can hold.
func fileLimitedConns(b *testing.B, perConn int) int {
	const spare = 512 // listeners, the store, the Go runtime, the proxy…
	want := uint64(idleConns*perConn + spare)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur < want {
		raised := syscall.Rlimit{Cur: want, Max: max(lim.Max, want)}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) != nil {
			// Not allowed above the hard limit: go as far as it.
			raised = syscall.Rlimit{Cur: min(want, lim.Max), Max: lim.Max}
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
				b.Fatal(err)
			}
		}
		lim = raised
	}
	return min(idleConns, int(lim.Cur-spare)/perConn)
}
