package session

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/agentmesh/agentmesh-go/host/identity"
	"github.com/agentmesh/agentmesh-go/internal/safefile"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Session files (DESIGN.md §4 item 8): <dir>/<peer AMID>/<session id>, each
// holding one session's state sealed with XChaCha20-Poly1305:
//
//	version (1 byte, 1) || nonce (24 bytes) || ciphertext
//
// under the 32-byte key the identity derives with the info "session"
// (HKDF-SHA256 over the signing seed), with the additional data
// "agentmesh-session-v1", the peer's AMID and the session id, so that a
// file moved to another peer's or session's name does not open.
const (
	sessionFileVersion = 1
	// maxSessionFileSize bounds a session file: a ratchet state holds at
	// most a few thousand skipped keys.
	maxSessionFileSize = 1 << 20
	// SessionIdleLimit is how long a session file may go unused before
	// the cleanup deletes it.
	SessionIdleLimit = 7 * 24 * time.Hour
	// SessionCleanupInterval is how often the cleanup runs.
	SessionCleanupInterval = 6 * time.Hour
)

// sessionRecord is the content of a session file.
type sessionRecord struct {
	ID        string    `json:"session_id"`
	Peer      string    `json:"peer_amid"`
	Initiator bool      `json:"initiator"`
	Intent    string    `json:"intent"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	LastUsed  time.Time `json:"last_used"`
	ExpiresAt time.Time `json:"expires_at"`
	Messages  uint64    `json:"message_count"`
	SendSeq   uint64    `json:"send_sequence"`
	RecvNext  uint64    `json:"receive_sequence"`
	Local     []string  `json:"local_capabilities"`
	Agreed    []string  `json:"agreed_capabilities"`
	Ratchet   []byte    `json:"ratchet_state"`
}

// sessionFiles keeps sessions on disk.
type sessionFiles struct {
	dir  string
	aead cipher.AEAD
}

func openSessionFiles(dir string, id *identity.Identity) (*sessionFiles, error) {
	key, err := id.DeriveKey("session", chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	if err := safefile.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("session directory: %w", err)
	}
	return &sessionFiles{dir: dir, aead: aead}, nil
}

// plainName matches session ids used as file names unchanged.
var plainName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// fileName is the file name of a session id: the id itself when it is
// safe, else "~" and its hex digits ("~" cannot start a safe id).
func fileName(id string) string {
	if plainName.MatchString(id) {
		return id
	}
	return "~" + hex.EncodeToString([]byte(id))
}

// idOfFile inverts fileName.
func idOfFile(name string) (string, bool) {
	if plainName.MatchString(name) {
		return name, true
	}
	if len(name) > 1 && name[0] == '~' {
		if b, err := hex.DecodeString(name[1:]); err == nil && !plainName.MatchString(string(b)) {
			return string(b), true
		}
	}
	return "", false
}

func (f *sessionFiles) path(peer protocol.AMID, id string) string {
	return filepath.Join(f.dir, string(peer), fileName(id))
}

func additionalData(peer, id string) []byte {
	return []byte("agentmesh-session-v1\x00" + peer + "\x00" + id)
}

// save writes rec's file, replacing it atomically.
func (f *sessionFiles) save(rec *sessionRecord) error {
	plain, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	defer clear(plain)
	out := make([]byte, 1+chacha20poly1305.NonceSizeX, 1+chacha20poly1305.NonceSizeX+len(plain)+f.aead.Overhead())
	out[0] = sessionFileVersion
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		return err
	}
	out = f.aead.Seal(out, out[1:], plain, additionalData(rec.Peer, rec.ID))
	peerDir := filepath.Join(f.dir, rec.Peer)
	if err := safefile.MkdirAll(peerDir); err != nil {
		return err
	}
	return safefile.ReplaceFile(f.path(protocol.AMID(rec.Peer), rec.ID), out)
}

// open decrypts a session file of peer.
func (f *sessionFiles) open(path string, peer protocol.AMID) (*sessionRecord, error) {
	data, err := safefile.ReadFile(path, maxSessionFileSize)
	if err != nil {
		return nil, err
	}
	if len(data) < 1+chacha20poly1305.NonceSizeX+f.aead.Overhead() {
		return nil, fmt.Errorf("%d bytes, too short for a session file", len(data))
	}
	if data[0] != sessionFileVersion {
		return nil, fmt.Errorf("version %d, want %d", data[0], sessionFileVersion)
	}
	id, ok := idOfFile(filepath.Base(path))
	if !ok {
		return nil, errors.New("its name is not a session id")
	}
	nonce, ct := data[1:1+chacha20poly1305.NonceSizeX], data[1+chacha20poly1305.NonceSizeX:]
	plain, err := f.aead.Open(nil, nonce, ct, additionalData(string(peer), id))
	if err != nil {
		return nil, errors.New("does not decrypt: damaged, or written under another key")
	}
	defer clear(plain)
	var rec sessionRecord
	if err := json.Unmarshal(plain, &rec); err != nil {
		return nil, fmt.Errorf("content: %w", err)
	}
	if rec.ID != id || rec.Peer != string(peer) {
		return nil, errors.New("names another session than its file name")
	}
	return &rec, nil
}

// loadAll reads every session file. Files that cannot be read are left in
// place and reported in problems, one per file, naming it.
func (f *sessionFiles) loadAll() (recs []*sessionRecord, paths []string, problems []error) {
	peers, err := os.ReadDir(f.dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			problems = append(problems, fmt.Errorf("session directory %s: %w", f.dir, err))
		}
		return nil, nil, problems
	}
	for _, p := range peers {
		if !p.IsDir() {
			continue
		}
		peer, err := protocol.ParseAMID(p.Name())
		if err != nil {
			problems = append(problems, fmt.Errorf("session directory %s: not an AMID", filepath.Join(f.dir, p.Name())))
			continue
		}
		files, err := os.ReadDir(filepath.Join(f.dir, p.Name()))
		if err != nil {
			problems = append(problems, fmt.Errorf("session directory %s: %w", filepath.Join(f.dir, p.Name()), err))
			continue
		}
		for _, e := range files {
			if e.IsDir() || e.Name()[0] == '.' {
				continue // temporary files of an interrupted write start with "."
			}
			path := filepath.Join(f.dir, p.Name(), e.Name())
			rec, err := f.open(path, peer)
			if err != nil {
				problems = append(problems, fmt.Errorf("session file %s: %w", path, err))
				continue
			}
			recs = append(recs, rec)
			paths = append(paths, path)
		}
	}
	return recs, paths, problems
}

// remove securely deletes the file of a session, if there is one.
func (f *sessionFiles) remove(peer protocol.AMID, id string) error {
	err := safefile.Remove(f.path(peer, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
