package session

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/host/identity"
	"github.com/agentmesh/agentmesh-go/host/ratchet"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

func testFiles(tb testing.TB) (*sessionFiles, *identity.Identity) {
	tb.Helper()
	id, err := identity.Generate(rand.Reader, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	f, err := openSessionFiles(filepath.Join(tb.TempDir(), "sessions"), id)
	if err != nil {
		tb.Fatal(err)
	}
	return f, id
}

// prekeySource serves one signed prekey.
type prekeySource struct{ spk *ratchet.SignedPrekey }

func (p prekeySource) SignedPrekey(id uint32) (*ratchet.PrivateKey, bool) {
	return p.spk.PrivateKey(), id == 1
}
func (prekeySource) OneTimePrekey(uint32) (*ratchet.PrivateKey, bool) { return nil, false }

// ratchetPair returns an initiator's and a responder's ratchet from a real
// X3DH, the initiator able to send.
func ratchetPair(tb testing.TB) (*ratchet.State, *ratchet.State) {
	tb.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	aID, _ := ratchet.GeneratePrivateKey(rand.Reader)
	bID, _ := ratchet.GeneratePrivateKey(rand.Reader)
	spk, err := ratchet.GenerateSignedPrekey(rand.Reader, 1, priv)
	if err != nil {
		tb.Fatal(err)
	}
	sk, msg, err := ratchet.InitiateX3DH(rand.Reader, aID, ratchet.NewBundle(bID.PublicKey(), spk, nil), pub)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := ratchet.RespondX3DH(bID, aID.PublicKey(), msg, prekeySource{spk})
	if err != nil {
		tb.Fatal(err)
	}
	b, err := ratchet.NewResponder(resp.SharedSecret, msg.EphemeralKey, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	a, err := ratchet.NewInitiator(sk, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	if err := a.SetRemoteRatchetKey(b.RatchetPublicKey()); err != nil {
		tb.Fatal(err)
	}
	return a, b
}

// BenchmarkPersistPerMessage compares the ratchet's cost per message with
// the same plus writing the sending and receiving sessions' files, as the
// session layer does for every message. "turns" alternates the direction
// (a DH ratchet step per message, as REQUEST and RESPONSE do); "stream"
// keeps it (symmetric steps only, the cheapest ratchet message).
func BenchmarkPersistPerMessage(b *testing.B) {
	plain := bytes.Repeat([]byte("x"), 512)
	peer := protocol.AMID("5HueCGU8rMjxEXxiPuD5BDku4MkFqeZyd4")
	for _, mode := range []string{"stream", "turns"} {
		for _, persist := range []bool{false, true} {
			name := mode + "/ratchet"
			if persist {
				name = mode + "/ratchet+files"
			}
			b.Run(name, func(b *testing.B) {
				files, _ := testFiles(b)
				x, y := ratchetPair(b)
				save := func(st *ratchet.State, id string) {
					raw, err := st.MarshalBinary()
					if err != nil {
						b.Fatal(err)
					}
					rec := &sessionRecord{ID: id, Peer: string(peer), Type: "one-shot", Ratchet: raw,
						Local: []string{"agentmesh/travel/flight-search/v1"}, Agreed: []string{"agentmesh/travel/flight-search/v1"}}
					if err := files.save(rec); err != nil {
						b.Fatal(err)
					}
				}
				send := func(from, to *ratchet.State, fromID, toID string) {
					h, ct, err := from.Encrypt(plain)
					if err != nil {
						b.Fatal(err)
					}
					if persist {
						save(from, fromID)
					}
					if _, err := to.Decrypt(h, ct); err != nil {
						b.Fatal(err)
					}
					if persist {
						save(to, toID)
					}
				}
				send(x, y, "sess_a", "sess_b") // the responder may send from now on
				b.SetBytes(int64(len(plain)))
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					if mode == "turns" && i%2 == 1 {
						send(y, x, "sess_b", "sess_a")
					} else {
						send(x, y, "sess_a", "sess_b")
					}
				}
			})
		}
	}
}

func TestSessionFileRoundTrip(t *testing.T) {
	f, id := testFiles(t)
	peer := protocol.AMID("5HueCGU8rMjxEXxiPuD5BDku4MkFqeZyd4")
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, sid := range []string{"sess_0123456789abcdef0123456789abcdef", "weird/../id with spaces", "~x"} {
		rec := &sessionRecord{ID: sid, Peer: string(peer), Initiator: true, Intent: "travel", Type: "one-shot",
			CreatedAt: now, LastUsed: now, ExpiresAt: now.Add(time.Hour), Messages: 7, SendSeq: 4, RecvNext: 3,
			Local: []string{"a/v1"}, Agreed: []string{"a/v1"}, Ratchet: []byte("state bytes")}
		if err := f.save(rec); err != nil {
			t.Fatal(err)
		}
		path := f.path(peer, sid)
		if filepath.Dir(path) != filepath.Join(f.dir, string(peer)) {
			t.Fatalf("session id %q escapes the peer's directory: %s", sid, path)
		}
		got, err := f.open(path, peer)
		if err != nil {
			t.Fatalf("%q: %v", sid, err)
		}
		if got.ID != sid || got.Messages != 7 || !bytes.Equal(got.Ratchet, rec.Ratchet) || !got.LastUsed.Equal(now) {
			t.Fatalf("round trip of %q gave %+v", sid, got)
		}
		// Another identity cannot open it; nor can the file under another
		// peer's name.
		other, err := openSessionFiles(f.dir, mustIdentity(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.open(path, peer); err == nil {
			t.Fatal("another identity opened the session file")
		}
		if _, err := f.open(path, protocol.AMID("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy")); err == nil {
			t.Fatal("the file opened under another peer's name")
		}
	}
	_ = id
}

func mustIdentity(tb testing.TB) *identity.Identity {
	tb.Helper()
	id, err := identity.Generate(rand.Reader, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func FuzzSessionFile(f *testing.F) {
	files, _ := testFiles(f)
	peer := protocol.AMID("5HueCGU8rMjxEXxiPuD5BDku4MkFqeZyd4")
	rec := &sessionRecord{ID: "sess_00", Peer: string(peer), Ratchet: []byte{1, 2, 3}}
	if err := files.save(rec); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(files.path(peer, "sess_00"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		path := files.path(peer, "sess_00")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := files.open(path, peer)
		if err == nil && (got == nil || got.ID != "sess_00") {
			t.Fatalf("opened %+v", got)
		}
		if err == nil && !bytes.Equal(got.Ratchet, []byte{1, 2, 3}) {
			// Only a sealed record decrypts: whatever opens is the one saved.
			t.Fatalf("a changed file opened as %+v", got)
		}
	})
}

func TestSessionFileSlots(t *testing.T) {
	f, _ := testFiles(t)
	peer := protocol.AMID("5HueCGU8rMjxEXxiPuD5BDku4MkFqeZyd4")
	path := f.path(peer, "sess_1")
	save := func(state string) {
		t.Helper()
		if err := f.save(&sessionRecord{ID: "sess_1", Peer: string(peer), Ratchet: []byte(state)}); err != nil {
			t.Fatal(err)
		}
	}
	load := func() *sessionRecord {
		t.Helper()
		rec, err := f.open(path, peer)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	save("one")
	save("two")
	save("three")
	if rec := load(); string(rec.Ratchet) != "three" || rec.Generation != 3 {
		t.Fatalf("loaded %q generation %d, want three, 3", rec.Ratchet, rec.Generation)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("one")) || len(data) != 8+2*minSlotSize {
		t.Fatalf("file of %d bytes; the oldest state must be overwritten in place", len(data))
	}
	// "three" went to slot 0 (one, two, three: 0, 1, 0). A write torn in
	// slot 0 leaves "two".
	data[8+4+40] ^= 0xff
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if rec := load(); string(rec.Ratchet) != "two" {
		t.Fatalf("after damaging the newest slot loaded %q, want two", rec.Ratchet)
	}
	// A record larger than the slots makes a new file with larger slots.
	big := string(bytes.Repeat([]byte("b"), 3*minSlotSize))
	save(big)
	if rec := load(); string(rec.Ratchet) != big {
		t.Fatal("large record not loaded")
	}
	save("small again")
	if rec := load(); string(rec.Ratchet) != "small again" {
		t.Fatalf("loaded %q", rec.Ratchet)
	}
}
