package transcript

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// benchEntry is a REQUEST of a typical size.
func benchEntry(b *testing.B) (Entry, []byte) {
	b.Helper()
	peer := newIdentity(b)
	e := Entry{
		Direction: Sent,
		Peer:      peer.AMID(),
		Type:      "request",
		Message: json.RawMessage(`{"type":"request","session_id":"sess_0123456789abcdef0123456789abcdef","sequence":7,` +
			`"timestamp":"2026-03-01T12:00:00.000000","payload":{"type":"request","intent":"weather.forecast",` +
			`"parameters":{"city":"Lyon","days":3,"units":"metric"},"priority":"normal","budget":{"amount":0.5,"currency":"USD"}}}`),
		Time: t0,
	}
	var plain bytes.Buffer
	if err := appendEntry(&plain, &e, "sess_bench", t0, DefaultMaxMessageSize); err != nil {
		b.Fatal(err)
	}
	return e, plain.Bytes()
}

// BenchmarkAppend measures Append to a real file against the floors of
// the work it cannot avoid, all for the same entry (bytes = its
// plaintext):
//
//   - file: Append as the host calls it, without Options.Sync;
//   - record: the same without the file: entry JSON, key derivation,
//     sealing and encoding the line;
//   - seal: XChaCha20-Poly1305 sealing of the plaintext alone, with the
//     cipher ready.
func BenchmarkAppend(b *testing.B) {
	e, plain := benchEntry(b)
	id := newIdentity(b)

	b.Run("file", func(b *testing.B) {
		s := openStore(b, b.TempDir(), id, Options{})
		// A new session every perSession appends keeps files under the size
		// limit; finished files are removed outside the timer.
		const perSession = 20000
		b.SetBytes(int64(len(plain)))
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if n%perSession == 0 && n > 0 {
				b.StopTimer()
				if err := os.Remove(s.path(fmt.Sprintf("sess_%d", n/perSession-1))); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			if err := s.Append(fmt.Sprintf("sess_%d", n/perSession), e); err != nil {
				b.Fatal(err)
			}
			n++
		}
	})

	b.Run("record", func(b *testing.B) {
		secret, err := id.DeriveKey(secretInfo, keySize)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(plain)))
		b.ReportAllocs()
		for b.Loop() {
			var buf bytes.Buffer
			buf.Grow(256 + len(e.Message) + chacha20poly1305.Overhead)
			if err := appendEntry(&buf, &e, "sess_bench", t0, DefaultMaxMessageSize); err != nil {
				b.Fatal(err)
			}
			aead, err := sessionAEAD(secret, "sess_bench")
			if err != nil {
				b.Fatal(err)
			}
			sealLine(aead, buf.Bytes())
		}
	})

	b.Run("seal", func(b *testing.B) {
		aead, err := chacha20poly1305.NewX(make([]byte, keySize))
		if err != nil {
			b.Fatal(err)
		}
		nonce := make([]byte, chacha20poly1305.NonceSizeX)
		out := make([]byte, 0, len(plain)+chacha20poly1305.Overhead)
		b.SetBytes(int64(len(plain)))
		b.ReportAllocs()
		for b.Loop() {
			out = aead.Seal(out[:0], nonce, plain, nil)
		}
	})
}
