package transport

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// benchPair returns two hosts, upgraded to a data channel when direct.
func benchPair(b *testing.B, direct bool) (x, y *host) {
	x, y = newPair(b, loopbackConfig(), loopbackConfig())
	if direct {
		upgrade(b, x, y)
	}
	return x, y
}

// BenchmarkFrames measures one-way frames per second, over the relay and
// over a data channel, in the same run.
func BenchmarkFrames(b *testing.B) {
	for _, direct := range []bool{false, true} {
		name := map[bool]string{false: "relay", true: "direct"}[direct]
		b.Run(name, func(b *testing.B) {
			x, y := benchPair(b, direct)
			payload := string(make([]byte, 256))
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			go func() {
				for range b.N {
					if err := x.h.Send(ctx, y.amid, protocol.MessageTypeMessage, payload); err != nil {
						return
					}
				}
			}()
			for range b.N {
				if _, err := y.h.Recv(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "frames/s")
		})
	}
}

// BenchmarkRoundTrip measures a frame's round trip (send, echo) over the
// relay and over a data channel.
func BenchmarkRoundTrip(b *testing.B) {
	for _, direct := range []bool{false, true} {
		name := map[bool]string{false: "relay", true: "direct"}[direct]
		b.Run(name, func(b *testing.B) {
			x, y := benchPair(b, direct)
			ctx := context.Background()
			go func() {
				for {
					in, err := y.h.Recv(ctx)
					if err != nil {
						return
					}
					if y.h.Send(ctx, x.amid, in.Type, in.Payload) != nil {
						return
					}
				}
			}()
			b.ResetTimer()
			for i := range b.N {
				if err := x.h.Send(ctx, y.amid, protocol.MessageTypeMessage, strconv.Itoa(i)); err != nil {
					b.Fatal(err)
				}
				if _, err := x.h.Recv(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUpgrade measures the time from Upgrade to frames going direct
// on loopback (host candidates, full gathering).
func BenchmarkUpgrade(b *testing.B) {
	for range b.N {
		b.StopTimer()
		x, y := newPair(b, loopbackConfig(), loopbackConfig())
		b.StartTimer()
		if err := x.h.Upgrade(context.Background(), y.amid); err != nil {
			b.Fatal(err)
		}
		// Close the pair's peer connections now, not when the benchmark
		// ends: live ICE agents of every earlier pair would load the
		// machine.
		b.StopTimer()
		x.h.Close()
		y.h.Close()
		b.StartTimer()
	}
}
