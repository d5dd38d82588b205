package identity

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// The framework this package writes into new identity files (PROTOCOL.md
// §1.3 "framework" and "framework_version").
const (
	FrameworkName    = "agentmesh-go"
	FrameworkVersion = "0.2.0"
)

// Values for files written by the Python client, which has no framework
// members (PROTOCOL.md §1.3).
const (
	legacyFrameworkName    = "openclaw"
	legacyFrameworkVersion = "0.4.2"
)

// exchangeKeySize is the size of a raw X25519 private or public key.
const exchangeKeySize = 32

// atRestSalt is the HKDF salt of every key derived from the signing seed for
// files at rest (DESIGN.md §4.8). The info string names the kind of file.
const atRestSalt = "agentmesh-at-rest-v1"

// maxDIDVersion bounds the DID document version so that it always fits an
// int and survives a round trip through a JavaScript number.
const maxDIDVersion = 1<<31 - 1

// Identity is an agent's long-term key material and the metadata stored with
// it. It is immutable: [Identity.RotateExchangeKey] returns a new Identity.
// The zero value is not usable; create one with [Generate], [FromKeys] or
// [Load].
type Identity struct {
	// keys sits behind a pointer, and holds only pointers, so that fmt
	// prints addresses rather than key bytes when it cannot call Format: for
	// an Identity in an unexported field of a printed struct fmt does not
	// follow pointers below the top level, and for a verb a pointer does not
	// support (%s) it follows only the top one.
	keys *privateKeys

	amid             protocol.AMID
	createdAt        time.Time
	framework        string
	frameworkVersion string
	didVersion       int
	didUpdated       time.Time
}

type privateKeys struct {
	signing  *ed25519.PrivateKey // never modified after construction
	exchange *ecdh.PrivateKey
}

// Generate creates a new identity with fresh signing and exchange keys, made
// at now. rand is normally crypto/rand.Reader (nil means the same); tests may
// pass a deterministic reader.
func Generate(rand io.Reader, now time.Time) (*Identity, error) {
	var buf [ed25519.SeedSize + exchangeKeySize]byte
	defer clear(buf[:])
	if err := readRandom(rand, buf[:]); err != nil {
		return nil, err
	}
	return FromKeys(buf[:ed25519.SeedSize], buf[ed25519.SeedSize:], now)
}

// FromKeys builds an identity from a 32-byte Ed25519 seed and a 32-byte
// X25519 private key, created at createdAt, as this package would write it
// (framework [FrameworkName], DID version 1). It copies both keys.
func FromKeys(signingSeed, exchangePrivate []byte, createdAt time.Time) (*Identity, error) {
	if len(signingSeed) != ed25519.SeedSize {
		return nil, fmt.Errorf("identity: signing seed is %d bytes, want %d", len(signingSeed), ed25519.SeedSize)
	}
	if len(exchangePrivate) != exchangeKeySize {
		return nil, fmt.Errorf("identity: exchange private key is %d bytes, want %d", len(exchangePrivate), exchangeKeySize)
	}
	createdAt, err := fileTime(createdAt)
	if err != nil {
		return nil, fmt.Errorf("identity: creation time: %w", err)
	}
	keys, err := newPrivateKeys(signingSeed, exchangePrivate)
	if err != nil {
		return nil, err
	}
	return &Identity{
		keys:             keys,
		amid:             protocol.DeriveAMID(keys.signingPublic()),
		createdAt:        createdAt,
		framework:        FrameworkName,
		frameworkVersion: FrameworkVersion,
		didVersion:       1,
		didUpdated:       createdAt,
	}, nil
}

func newPrivateKeys(signingSeed, exchangePrivate []byte) (*privateKeys, error) {
	// X25519 accepts any 32 bytes (they are clamped on use), so this fails
	// only on a wrong length, which the callers have excluded.
	x, err := ecdh.X25519().NewPrivateKey(exchangePrivate)
	if err != nil {
		return nil, fmt.Errorf("identity: exchange private key: %w", err)
	}
	signing := ed25519.NewKeyFromSeed(signingSeed)
	return &privateKeys{signing: &signing, exchange: x}, nil
}

func (k *privateKeys) signingPublic() ed25519.PublicKey {
	return k.signing.Public().(ed25519.PublicKey)
}

// seed returns a copy of the Ed25519 seed; callers clear it after use.
func (k *privateKeys) seed() []byte { return k.signing.Seed() }

func readRandom(r io.Reader, b []byte) error {
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("identity: reading randomness: %w", err)
	}
	return nil
}

// fileTime brings t to the precision of the file's timestamps (JavaScript
// milliseconds, UTC) and checks that it can be written as a four-digit year.
func fileTime(t time.Time) (time.Time, error) {
	t = t.UTC().Truncate(time.Millisecond)
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, fmt.Errorf("year %d outside 0000 to 9999", y)
	}
	return t, nil
}

// AMID returns the agent's address, derived from its signing public key.
func (id *Identity) AMID() protocol.AMID { return id.amid }

// DID returns the agent's decentralised identifier, did:agentmesh:<AMID>.
func (id *Identity) DID() string { return id.amid.DID() }

// SigningPublicKey returns a copy of the Ed25519 public key.
func (id *Identity) SigningPublicKey() ed25519.PublicKey {
	return id.keys.signingPublic()
}

// ExchangePublicKey returns the X25519 public key, the agent's X3DH identity
// key as its peers see it.
func (id *Identity) ExchangePublicKey() *ecdh.PublicKey {
	return id.keys.exchange.PublicKey()
}

// ExchangeKey returns the X25519 private key for X3DH. The key is opaque: use
// its ECDH method; do not persist its bytes.
func (id *Identity) ExchangeKey() *ecdh.PrivateKey { return id.keys.exchange }

// Sign signs msg with the Ed25519 signing key.
func (id *Identity) Sign(msg []byte) []byte {
	return ed25519.Sign(*id.keys.signing, msg)
}

// Signer returns a crypto.Signer over the signing key, for APIs that take
// one (such as relay.Dial), without handing out the key itself. Its Sign
// signs the message as given (crypto.Hash(0)) and refuses pre-hashed input.
func (id *Identity) Signer() crypto.Signer { return identitySigner{id} }

type identitySigner struct{ id *Identity }

func (s identitySigner) Public() crypto.PublicKey { return s.id.SigningPublicKey() }

func (s identitySigner) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != crypto.Hash(0) {
		return nil, errors.New("identity: Ed25519 signs whole messages, not digests")
	}
	return s.id.Sign(msg), nil
}

// DeriveKey derives an n-byte key for a file at rest with HKDF-SHA256 over
// the Ed25519 seed, salt "agentmesh-at-rest-v1" and info, which must name the
// file's purpose (for example "session" or "transcript") so that each kind
// of file gets its own key (PROTOCOL.md §13 W-27). The seed never leaves the
// Identity.
func (id *Identity) DeriveKey(info string, n int) ([]byte, error) {
	if info == "" {
		return nil, errors.New("identity: DeriveKey: empty info string")
	}
	if n < 1 {
		return nil, fmt.Errorf("identity: DeriveKey: key length %d, want at least 1", n)
	}
	seed := id.keys.seed()
	defer clear(seed)
	k, err := hkdf.Key(sha256.New, seed, []byte(atRestSalt), info, n)
	if err != nil {
		return nil, fmt.Errorf("identity: DeriveKey: %w", err)
	}
	return k, nil
}

// CreatedAt returns when the identity was created, in UTC with millisecond
// precision.
func (id *Identity) CreatedAt() time.Time { return id.createdAt }

// Framework returns the name of the software that created the identity:
// [FrameworkName] for identities made here, "agentmesh-js" or "openclaw" for
// files of the other SDKs.
func (id *Identity) Framework() string { return id.framework }

// FrameworkVersion returns the version that goes with [Identity.Framework].
func (id *Identity) FrameworkVersion() string { return id.frameworkVersion }

// DIDVersion returns the version of the agent's DID document: 1 for a new
// identity, plus one for each key rotation.
func (id *Identity) DIDVersion() int { return id.didVersion }

// DIDUpdated returns when the keys last changed: the creation time, or the
// time of the last rotation.
func (id *Identity) DIDUpdated() time.Time { return id.didUpdated }

// RotateExchangeKey returns a copy of id with a fresh X25519 exchange key,
// a DID version one higher and an update time of now. The signing key and
// so the AMID stay the same. id itself is unchanged; save the result to make
// the rotation permanent.
func (id *Identity) RotateExchangeKey(rand io.Reader, now time.Time) (*Identity, error) {
	if id.didVersion >= maxDIDVersion {
		return nil, errors.New("identity: DID version exhausted")
	}
	now, err := fileTime(now)
	if err != nil {
		return nil, fmt.Errorf("identity: rotation time: %w", err)
	}
	var buf [exchangeKeySize]byte
	defer clear(buf[:])
	if err := readRandom(rand, buf[:]); err != nil {
		return nil, err
	}
	x, err := ecdh.X25519().NewPrivateKey(buf[:])
	if err != nil {
		return nil, fmt.Errorf("identity: exchange private key: %w", err)
	}
	next := *id
	next.keys = &privateKeys{signing: id.keys.signing, exchange: x}
	next.didVersion++
	next.didUpdated = now
	return &next, nil
}

// The three printing methods have value receivers so that an Identity value
// is redacted as well as a pointer to one.

// String returns "Identity(<AMID>)". No key material is ever printed.
func (id Identity) String() string { return "Identity(" + string(id.amid) + ")" }

// GoString is String: %#v must not print keys either.
func (id Identity) GoString() string { return id.String() }

// Format prints String for every verb and flag, so that no verb (%x, %+v,
// %#v) can reach the key fields.
func (id Identity) Format(f fmt.State, verb rune) { io.WriteString(f, id.String()) }
