package relay_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/relay"
	"github.com/agentmesh/agentmesh-go/mesh/relay/relayserver"
)

// Throughput and latency of the relay against a bare WebSocket forwarder,
// both on loopback in this process. Run them in one invocation so that they
// compare within the same run:
//
//	go test -run '^$' -bench 'Relay|RawWebSocket' -benchmem -count 5 ./mesh/relay/

// benchPayloadSize is the size of every benchmark message.
const benchPayloadSize = 1024

// benchWindow bounds the messages in flight in the throughput benchmarks.
// It stays below the relay's outbound queue (relayserver's default 64), so
// that the relay delivers every message live and none through its store.
const benchWindow = 32

// benchPayload is 1 KiB of base64 text, what an encrypted payload looks like.
func benchPayload() string {
	raw := make([]byte, benchPayloadSize/4*3)
	rand.Read(raw)
	return protocol.B64.EncodeToString(raw)
}

// benchRelay starts the real relay without rate limits or logs, and two
// Conns connected to it.
func benchRelay(b *testing.B) (a, c *relay.Conn) {
	b.Helper()
	r := startRelay(b, func(cfg *relayserver.Config) {
		noLimits(cfg)
		cfg.Logger = hclog.NewNullLogger()
	})
	quiet := relay.WithLogger(hclog.NewNullLogger())
	return dial(b, r.url(), newKey(b), quiet), dial(b, r.url(), newKey(b), quiet)
}

// benchThroughput measures b.N messages, each written by send and taken
// by receive (which fails b itself), with at most benchWindow in flight.
func benchThroughput(b *testing.B, send func(context.Context) error, receive func(context.Context)) {
	ctx := context.Background()
	window := make(chan struct{}, benchWindow)
	errc := make(chan error, 1)
	b.SetBytes(benchPayloadSize)
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for range b.N {
			window <- struct{}{}
			if err := send(ctx); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for range b.N {
		receive(ctx)
		<-window
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkRelayThroughput(b *testing.B) {
	a, c := benchRelay(b)
	payload := benchPayload()
	benchThroughput(b, func(ctx context.Context) error {
		return a.Send(ctx, c.AMID(), payload, protocol.MessageTypeMessage, nil)
	}, func(ctx context.Context) {
		ev, err := c.Receive(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if m, ok := ev.(*relay.Message); !ok || len(m.Payload) != benchPayloadSize {
			b.Fatalf("got %T %+v", ev, ev)
		}
	})
}

func BenchmarkRawWebSocketThroughput(b *testing.B) {
	a, c := rawPair(b)
	payload := []byte(benchPayload())
	benchThroughput(b, func(ctx context.Context) error {
		return a.Write(ctx, websocket.MessageText, payload)
	}, func(ctx context.Context) {
		_, data, err := c.Read(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(data) != benchPayloadSize {
			b.Fatalf("got %d bytes", len(data))
		}
	})
}

// benchRoundTrip measures b.N round trips while echo, in a goroutine of
// its own until the benchmark ends, sends every message back. roundTrip
// sends one message, takes the answer (failing b itself) and returns the
// size of its payload.
func benchRoundTrip(b *testing.B, echo func(context.Context), roundTrip func(context.Context) int) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { echo(ctx) })
	durations := make([]time.Duration, 0, b.N)
	b.SetBytes(benchPayloadSize)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		n := roundTrip(ctx)
		durations = append(durations, time.Since(start))
		if n != benchPayloadSize {
			b.Fatalf("got %d bytes", n)
		}
	}
	b.StopTimer()
	reportPercentiles(b, durations)
}

func BenchmarkRelayRoundTrip(b *testing.B) {
	a, c := benchRelay(b)
	payload := benchPayload()
	benchRoundTrip(b, func(ctx context.Context) {
		for {
			ev, err := c.Receive(ctx)
			if err != nil {
				return
			}
			m := ev.(*relay.Message)
			if err := c.Send(ctx, m.From, m.Payload, m.Type, nil); err != nil {
				return
			}
		}
	}, func(ctx context.Context) int {
		if err := a.Send(ctx, c.AMID(), payload, protocol.MessageTypeMessage, nil); err != nil {
			b.Fatal(err)
		}
		ev, err := a.Receive(ctx)
		if err != nil {
			b.Fatal(err)
		}
		m, ok := ev.(*relay.Message)
		if !ok {
			b.Fatalf("got %T %+v", ev, ev)
		}
		return len(m.Payload)
	})
}

func BenchmarkRawWebSocketRoundTrip(b *testing.B) {
	a, c := rawPair(b)
	payload := []byte(benchPayload())
	benchRoundTrip(b, func(ctx context.Context) {
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, data); err != nil {
				return
			}
		}
	}, func(ctx context.Context) int {
		if err := a.Write(ctx, websocket.MessageText, payload); err != nil {
			b.Fatal(err)
		}
		_, data, err := a.Read(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return len(data)
	})
}

// reportPercentiles reports the median and 99th percentile of ds.
func reportPercentiles(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	at := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))].Nanoseconds()) }
	b.ReportMetric(at(0.50), "p50-ns")
	b.ReportMetric(at(0.99), "p99-ns")
}

// rawPair starts a bare WebSocket forwarder, which passes every message
// from one client to the other without looking at it, and connects the two
// clients.
func rawPair(b *testing.B) (a, c *websocket.Conn) {
	b.Helper()
	f := &forwarder{peers: make(map[string]*websocket.Conn), ready: make(chan struct{})}
	srv := httptest.NewServer(f)
	b.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	conns := make([]*websocket.Conn, 2)
	for i, side := range []string{"/a", "/b"} {
		ws, _, err := websocket.Dial(ctx, "ws"+srv.URL[len("http"):]+side, nil)
		if err != nil {
			b.Fatal(err)
		}
		ws.SetReadLimit(protocol.MaxFrameSize)
		b.Cleanup(func() { ws.Close(websocket.StatusNormalClosure, "") })
		conns[i] = ws
	}
	select {
	case <-f.ready:
	case <-ctx.Done():
		b.Fatal("forwarder did not pair the clients")
	}
	return conns[0], conns[1]
}

// forwarder pairs the connections on /a and /b and forwards each one's
// messages to the other, as they come.
type forwarder struct {
	mu    sync.Mutex
	peers map[string]*websocket.Conn
	ready chan struct{}
}

func (f *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ws.SetReadLimit(protocol.MaxFrameSize)
	other := map[string]string{"/a": "/b", "/b": "/a"}[r.URL.Path]
	f.mu.Lock()
	f.peers[r.URL.Path] = ws
	if len(f.peers) == 2 {
		close(f.ready)
	}
	f.mu.Unlock()
	<-f.ready
	f.mu.Lock()
	peer := f.peers[other]
	f.mu.Unlock()
	ctx := r.Context()
	for {
		typ, data, err := ws.Read(ctx)
		if err != nil {
			return
		}
		if err := peer.Write(ctx, typ, data); err != nil {
			return
		}
	}
}
