package registryserver

import (
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/agentmesh/agentmesh-go/internal/safefile"
	"github.com/agentmesh/agentmesh-go/mesh/certs"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// RootValidity is how long a root CA certificate is valid: ten years.
const RootValidity = 10 * 365 * 24 * time.Hour

// Names of an Authority's files: root-<serial>.key (PKCS #8 PEM, 0600) and
// root-<serial>.pem (the certificate) for every root, and the file naming
// the serial of the root that signs now.
const (
	rootFilePrefix  = "root-"
	rootKeySuffix   = ".key"
	rootCertSuffix  = ".pem"
	currentRootFile = "current"
	// maxAuthorityFile bounds what is read of one key or certificate file.
	maxAuthorityFile = 64 << 10
)

// RootSubject is the subject of every root CA certificate.
func RootSubject() pkix.Name {
	return pkix.Name{Organization: []string{"AgentMesh"}, CommonName: "AgentMesh Registry Root CA"}
}

// Authority is the registry's root certificate authority. One root signs
// at a time (the current root); after a rotation the earlier roots stay
// published, and the certificates they signed stay valid until they
// expire. An Authority is safe for concurrent use.
type Authority struct {
	dir string // "" for an authority held in memory only

	mu      sync.RWMutex
	roots   []*certs.Issuer // oldest first
	current *certs.Issuer

	crlMu sync.Mutex
	crls  map[crlKey]*cachedCRL
}

// crlKey names the cached CRL of one issuer in one store.
type crlKey struct {
	store  *Store
	serial string
}

// cachedCRL is the last CRL signed for an issuer.
type cachedCRL struct {
	der         []byte
	thisUpdate  time.Time
	fingerprint [32]byte
}

// serialHex is how the registry names a certificate: its serial number in
// lowercase hex.
func serialHex(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// CertBackdate is how far before its issuance a certificate's validity
// starts, so that hosts whose clocks run a little behind the registry's
// accept it at once. It does not shorten the validity that follows
// issuance.
const CertBackdate = 5 * time.Minute

// newRoot creates a root CA valid for RootValidity, from CertBackdate
// before now.
func newRoot(now time.Time) (*certs.Issuer, error) {
	iss, err := certs.NewRootCA(rand.Reader, now.Add(-CertBackdate), RootValidity, RootSubject())
	if err != nil {
		return nil, fmt.Errorf("registry CA: %w", err)
	}
	return iss, nil
}

// NewAuthority returns an authority held in memory only, with a fresh root
// issued at now. Its certificates cannot be verified once the process
// ends; use it for tests and throwaway registries.
func NewAuthority(now time.Time) (*Authority, error) {
	root, err := newRoot(now)
	if err != nil {
		return nil, err
	}
	return &Authority{roots: []*certs.Issuer{root}, current: root}, nil
}

// LoadAuthority loads the roots kept in dir, creating the directory (mode
// 0700) and a first root (key file mode 0600) if there are none. It
// refuses a directory or key file that group or others can access. The
// root named by dir/current signs; without that file, the newest root does
// and the file is written.
func LoadAuthority(dir string, now time.Time) (*Authority, error) {
	if dir == "" {
		return nil, errors.New("registry CA: no directory given")
	}
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := safefile.MkdirAll(dir); err != nil {
			return nil, fmt.Errorf("registry CA: create directory: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("registry CA: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("registry CA: %s is not a directory", dir)
	default:
		if err := privateOrError(dir, "directory", "0700"); err != nil {
			return nil, err
		}
	}

	a := &Authority{dir: dir}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("registry CA: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, rootFilePrefix) || !strings.HasSuffix(name, rootKeySuffix) {
			continue
		}
		serial := strings.TrimSuffix(strings.TrimPrefix(name, rootFilePrefix), rootKeySuffix)
		root, err := a.loadRoot(serial)
		if err != nil {
			return nil, err
		}
		a.roots = append(a.roots, root)
	}
	slices.SortFunc(a.roots, func(x, y *certs.Issuer) int {
		if c := x.Cert.NotBefore.Compare(y.Cert.NotBefore); c != 0 {
			return c
		}
		return x.Cert.SerialNumber.Cmp(y.Cert.SerialNumber)
	})

	pointer := filepath.Join(dir, currentRootFile)
	data, err := safefile.ReadFile(pointer, maxAuthorityFile)
	switch {
	case err == nil:
		serial := strings.TrimSpace(string(data))
		for _, r := range a.roots {
			if serialHex(r.Cert) == serial {
				a.current = r
			}
		}
		if a.current == nil {
			return nil, fmt.Errorf("registry CA: %s names root %q, which has no key and certificate in %s", pointer, serial, dir)
		}
	case errors.Is(err, fs.ErrNotExist):
		if len(a.roots) == 0 {
			root, err := newRoot(now)
			if err != nil {
				return nil, err
			}
			if err := a.writeRoot(root); err != nil {
				return nil, err
			}
			a.roots = []*certs.Issuer{root}
		}
		a.current = a.roots[len(a.roots)-1]
		if err := a.writePointer(a.current); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("registry CA: %w", err)
	}
	return a, nil
}

// privateOrError refuses a path that group or others can access.
func privateOrError(path, what, mode string) error {
	err := safefile.CheckPrivate(path)
	var me *safefile.ModeError
	if errors.As(err, &me) {
		return fmt.Errorf("registry CA: %s %s has mode %04o; it must be accessible by its owner only (mode %s)",
			what, path, uint32(me.Mode.Perm()), mode)
	}
	if err != nil {
		return fmt.Errorf("registry CA: %w", err)
	}
	return nil
}

// loadRoot reads the key and certificate of the root with the given serial
// and checks that they belong together.
func (a *Authority) loadRoot(serial string) (*certs.Issuer, error) {
	if serial == "" || strings.Trim(serial, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("registry CA: %s%s%s: not a root key file name", rootFilePrefix, serial, rootKeySuffix)
	}
	keyPath := filepath.Join(a.dir, rootFilePrefix+serial+rootKeySuffix)
	certPath := filepath.Join(a.dir, rootFilePrefix+serial+rootCertSuffix)
	if err := privateOrError(keyPath, "key file", "0600"); err != nil {
		return nil, err
	}
	keyPEM, err := safefile.ReadFile(keyPath, maxAuthorityFile)
	if err != nil {
		return nil, fmt.Errorf("registry CA: %w", err)
	}
	blk, _ := pem.Decode(keyPEM)
	clear(keyPEM)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("registry CA: %s holds no PKCS #8 PRIVATE KEY block", keyPath)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	clear(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("registry CA: %s: %w", keyPath, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("registry CA: %s: the key is not Ed25519", keyPath)
	}
	certPEM, err := safefile.ReadFile(certPath, maxAuthorityFile)
	if err != nil {
		return nil, fmt.Errorf("registry CA: root certificate of %s: %w", keyPath, err)
	}
	cblk, _ := pem.Decode(certPEM)
	if cblk == nil || cblk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("registry CA: %s holds no CERTIFICATE block", certPath)
	}
	cert, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("registry CA: %s: %w", certPath, err)
	}
	if serialHex(cert) != serial {
		return nil, fmt.Errorf("registry CA: %s has serial %s, not the one its name says", certPath, serialHex(cert))
	}
	if !priv.Public().(ed25519.PublicKey).Equal(cert.PublicKey) {
		return nil, fmt.Errorf("registry CA: %s does not match the key in %s", certPath, keyPath)
	}
	if !cert.IsCA || cert.CheckSignatureFrom(cert) != nil {
		return nil, fmt.Errorf("registry CA: %s is not a self-signed CA certificate", certPath)
	}
	return &certs.Issuer{Cert: cert, Signer: priv}, nil
}

// writeRoot stores a root's key and certificate in the directory.
func (a *Authority) writeRoot(root *certs.Issuer) error {
	der, err := x509.MarshalPKCS8PrivateKey(root.Signer)
	if err != nil {
		return fmt.Errorf("registry CA: encode key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	clear(der)
	base := filepath.Join(a.dir, rootFilePrefix+serialHex(root.Cert))
	err = safefile.WriteFile(base+rootKeySuffix, keyPEM)
	clear(keyPEM)
	if err != nil {
		return fmt.Errorf("registry CA: write key: %w", err)
	}
	if err := safefile.WriteFile(base+rootCertSuffix, certs.EncodePEM([][]byte{root.Cert.Raw})); err != nil {
		return fmt.Errorf("registry CA: write certificate: %w", err)
	}
	return nil
}

// writePointer records which root signs.
func (a *Authority) writePointer(root *certs.Issuer) error {
	if err := safefile.WriteFile(filepath.Join(a.dir, currentRootFile), []byte(serialHex(root.Cert)+"\n")); err != nil {
		return fmt.Errorf("registry CA: record the current root: %w", err)
	}
	return nil
}

// Rotate creates a new root, issued at now, that signs every certificate
// and CRL from then on, and returns its certificate. Earlier roots stay
// published until they expire. For an authority kept in a directory, the
// new root is written there before it is used.
func (a *Authority) Rotate(now time.Time) (*x509.Certificate, error) {
	root, err := newRoot(now)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dir != "" {
		if err := a.writeRoot(root); err != nil {
			return nil, err
		}
		if err := a.writePointer(root); err != nil {
			return nil, err
		}
	}
	a.roots = append(a.roots, root)
	a.current = root
	return root.Cert, nil
}

// Root returns the certificate of the root that signs now.
func (a *Authority) Root() *x509.Certificate {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.current.Cert
}

// Roots returns the root certificates unexpired at now, the current root
// first and then the others from newest to oldest.
func (a *Authority) Roots(now time.Time) []*x509.Certificate {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := []*x509.Certificate{a.current.Cert}
	for i := len(a.roots) - 1; i >= 0; i-- {
		r := a.roots[i]
		if r != a.current && !now.After(r.Cert.NotAfter) {
			out = append(out, r.Cert)
		}
	}
	return out
}

// allRoots returns every root, expired or not, oldest first.
func (a *Authority) allRoots() []*certs.Issuer {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return slices.Clone(a.roots)
}

// signer returns the root that signs now.
func (a *Authority) signer() *certs.Issuer {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.current
}

// rootBySerial returns the root with the given serial (lowercase hex), or
// nil.
func (a *Authority) rootBySerial(serial string) *certs.Issuer {
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, r := range a.roots {
		if serialHex(r.Cert) == serial {
			return r
		}
	}
	return nil
}

// issuerOf returns the root that signed c, or nil.
func (a *Authority) issuerOf(c *x509.Certificate) *certs.Issuer {
	a.mu.RLock()
	defer a.mu.RUnlock()
	for i := len(a.roots) - 1; i >= 0; i-- {
		r := a.roots[i]
		if string(r.Cert.RawSubject) == string(c.RawIssuer) && c.CheckSignatureFrom(r.Cert) == nil {
			return r
		}
	}
	return nil
}

// newSerial draws a random positive 127-bit certificate serial number.
func newSerial() (*big.Int, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	b[0] &= 0x7f
	n := new(big.Int).SetBytes(b[:])
	if n.Sign() == 0 {
		n.SetInt64(1)
	}
	return n, nil
}

// Sealing of organization CA keys. The registry keeps each organization's
// private key sealed with XChaCha20-Poly1305 under a key that HKDF-SHA256
// derives from the private key of the root that certified the
// organization, with the organization's ID as associated data. The sealed
// form is padded base64 of version ‖ nonce ‖ ciphertext.
const (
	orgKeySealVersion = 1
	orgKeySealInfo    = "agentmesh-registry-org-key-v1"
)

// orgSealAEAD returns the cipher that seals organization keys under root.
func orgSealAEAD(root *certs.Issuer) (cipher.AEAD, error) {
	priv, ok := root.Signer.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("root key is not an Ed25519 private key")
	}
	seed := priv.Seed()
	key, err := hkdf.Key(sha256.New, seed, nil, orgKeySealInfo, chacha20poly1305.KeySize)
	clear(seed)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	clear(key)
	return aead, err
}

// sealOrgKey seals the organization orgID's private key under root.
func sealOrgKey(root *certs.Issuer, orgID string, key ed25519.PrivateKey) (string, error) {
	aead, err := orgSealAEAD(root)
	if err != nil {
		return "", fmt.Errorf("seal organization key: %w", err)
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+ed25519.SeedSize+16)
	out[0] = orgKeySealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return "", fmt.Errorf("seal organization key: %w", err)
	}
	seed := key.Seed()
	out = aead.Seal(out, out[1:1+aead.NonceSize()], seed, []byte(orgID))
	clear(seed)
	return protocol.B64.EncodeToString(out), nil
}

// openOrgKey opens a key sealOrgKey sealed.
func openOrgKey(root *certs.Issuer, orgID, sealed string) (ed25519.PrivateKey, error) {
	aead, err := orgSealAEAD(root)
	if err != nil {
		return nil, fmt.Errorf("open organization key: %w", err)
	}
	b, err := protocol.DecodeB64(sealed, 0)
	if err != nil {
		return nil, fmt.Errorf("open organization key: %w", err)
	}
	if len(b) < 1+aead.NonceSize() || b[0] != orgKeySealVersion {
		return nil, errors.New("open organization key: unknown format")
	}
	seed, err := aead.Open(nil, b[1:1+aead.NonceSize()], b[1+aead.NonceSize():], []byte(orgID))
	if err != nil {
		return nil, fmt.Errorf("open organization key: %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		clear(seed)
		return nil, errors.New("open organization key: wrong length")
	}
	key := ed25519.NewKeyFromSeed(seed)
	clear(seed)
	return key, nil
}
