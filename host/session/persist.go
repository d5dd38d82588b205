package session

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/agentmesh/agentmesh-go/host/identity"
	"github.com/agentmesh/agentmesh-go/internal/safefile"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Session files (DESIGN.md §4 item 8): <dir>/<peer AMID>/<session id>. A
// file is written on every message, so it is built to be overwritten in
// place rather than replaced: a header, then two slots of equal size,
//
//	"AMS1" || slot size (4 bytes, big endian) || slot 0 || slot 1
//	slot  = length (4 bytes, big endian; 0 for an empty slot) || sealed || padding
//	sealed = version (1 byte, 1) || nonce (24 bytes) || ciphertext
//
// Each save seals the whole record, with a generation one above the last,
// and writes it over the older slot; the newer one stays intact, so a
// crash in the middle of a write leaves the previous state readable, and
// loading takes the slot with the highest generation that decrypts. Old
// states are overwritten rather than left behind in the file, which keeps
// past chain keys off the disk as far as the filesystem allows. A record
// too large for its slot makes the file be rewritten with larger slots.
//
// Records are sealed with XChaCha20-Poly1305 under the 32-byte key the
// identity derives with the info "session" (HKDF-SHA256 over the signing
// seed), with the additional data "agentmesh-session-v1", the peer's AMID
// and the session id, so that a file moved to another peer's or session's
// name does not open.
const (
	sessionFileVersion = 1
	// maxSessionFileSize bounds a session file: a ratchet state holds at
	// most a few thousand skipped keys.
	maxSessionFileSize = 8 << 20
	// sessionFileMagic starts every session file.
	sessionFileMagic = "AMS1"
	// minSlotSize is the smallest slot; a fresh session's record fits.
	minSlotSize = 4096
	// SessionIdleLimit is how long a session file may go unused before
	// the cleanup deletes it.
	SessionIdleLimit = 7 * 24 * time.Hour
	// SessionCleanupInterval is how often the cleanup runs.
	SessionCleanupInterval = 6 * time.Hour
)

// sessionRecord is the content of a session file.
type sessionRecord struct {
	// Generation grows by one with every save of the session.
	Generation uint64    `json:"generation"`
	ID         string    `json:"session_id"`
	Peer       string    `json:"peer_amid"`
	Initiator  bool      `json:"initiator"`
	Intent     string    `json:"intent"`
	Type       string    `json:"type"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsed   time.Time `json:"last_used"`
	ExpiresAt  time.Time `json:"expires_at"`
	Messages   uint64    `json:"message_count"`
	SendSeq    uint64    `json:"send_sequence"`
	RecvNext   uint64    `json:"receive_sequence"`
	Local      []string  `json:"local_capabilities"`
	Agreed     []string  `json:"agreed_capabilities"`
	Ratchet    []byte    `json:"ratchet_state"`
}

// sessionFiles keeps sessions on disk.
type sessionFiles struct {
	dir  string
	aead cipher.AEAD

	mu    sync.Mutex
	slots map[string]*slotState // by path: where the next save goes
}

// slotState is what a process knows of a session file it has written.
type slotState struct {
	size int    // slot size
	next int    // the slot the next save overwrites
	gen  uint64 // the generation last written
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
	return &sessionFiles{dir: dir, aead: aead, slots: make(map[string]*slotState)}, nil
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

// seal returns rec sealed, with generation gen.
func (f *sessionFiles) seal(rec *sessionRecord, gen uint64) ([]byte, error) {
	rec.Generation = gen
	plain, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	out := make([]byte, 1+chacha20poly1305.NonceSizeX, 1+chacha20poly1305.NonceSizeX+len(plain)+f.aead.Overhead())
	out[0] = sessionFileVersion
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		return nil, err
	}
	return f.aead.Seal(out, out[1:], plain, additionalData(rec.Peer, rec.ID)), nil
}

// save writes rec into its session file: over the older slot when the
// file was written by this process and the record fits, otherwise as a
// new file (atomically replaced) with slots that fit it.
func (f *sessionFiles) save(rec *sessionRecord) error {
	path := f.path(protocol.AMID(rec.Peer), rec.ID)
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.slots[path]
	gen := rec.Generation + 1
	if st != nil {
		gen = max(gen, st.gen+1)
	}
	sealed, err := f.seal(rec, gen)
	if err != nil {
		return err
	}
	if st != nil && 4+len(sealed) <= st.size {
		slot := make([]byte, 4+len(sealed))
		binary.BigEndian.PutUint32(slot, uint32(len(sealed)))
		copy(slot[4:], sealed)
		if err := writeAt(path, slot, int64(8+st.next*st.size)); err == nil {
			st.next ^= 1
			st.gen = gen
			return nil
		}
		// The file is gone or unwritable: write it anew.
	}
	size := minSlotSize
	for size < 2*(4+len(sealed)) {
		size *= 2
	}
	file := make([]byte, 8+2*size)
	copy(file, sessionFileMagic)
	binary.BigEndian.PutUint32(file[4:], uint32(size))
	binary.BigEndian.PutUint32(file[8:], uint32(len(sealed)))
	copy(file[12:], sealed)
	if err := safefile.MkdirAll(filepath.Dir(path)); err != nil {
		return err
	}
	if err := safefile.ReplaceFile(path, file); err != nil {
		delete(f.slots, path)
		return err
	}
	f.slots[path] = &slotState{size: size, next: 1, gen: gen}
	return nil
}

// writeAt overwrites part of an existing file.
func writeAt(path string, b []byte, off int64) error {
	fh, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fh.WriteAt(b, off)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}

// open reads a session file of peer: the newest slot that decrypts.
func (f *sessionFiles) open(path string, peer protocol.AMID) (*sessionRecord, error) {
	id, ok := idOfFile(filepath.Base(path))
	if !ok {
		return nil, errors.New("its name is not a session id")
	}
	data, err := safefile.ReadFile(path, maxSessionFileSize)
	if err != nil {
		return nil, err
	}
	if len(data) < 8 || string(data[:4]) != sessionFileMagic {
		return nil, errors.New("not a session file (no AMS1 header)")
	}
	size := int(binary.BigEndian.Uint32(data[4:8]))
	if size < minSlotSize || len(data) < 8+2*size {
		return nil, fmt.Errorf("%d bytes, too short for two slots of %d", len(data), size)
	}
	var best *sessionRecord
	var problems []string
	for i := range 2 {
		slot := data[8+i*size : 8+(i+1)*size]
		n := int(binary.BigEndian.Uint32(slot))
		if n == 0 {
			continue
		}
		rec, err := f.openSealed(slot[4:], n, peer, id)
		if err != nil {
			problems = append(problems, fmt.Sprintf("slot %d: %v", i, err))
			continue
		}
		if best == nil || rec.Generation > best.Generation {
			best = rec
		}
	}
	if best == nil {
		if len(problems) == 0 {
			return nil, errors.New("both slots are empty")
		}
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return best, nil
}

func (f *sessionFiles) openSealed(b []byte, n int, peer protocol.AMID, id string) (*sessionRecord, error) {
	if n > len(b) || n < 1+chacha20poly1305.NonceSizeX+f.aead.Overhead() {
		return nil, fmt.Errorf("record of %d bytes does not fit", n)
	}
	b = b[:n]
	if b[0] != sessionFileVersion {
		return nil, fmt.Errorf("version %d, want %d", b[0], sessionFileVersion)
	}
	plain, err := f.aead.Open(nil, b[1:1+chacha20poly1305.NonceSizeX], b[1+chacha20poly1305.NonceSizeX:], additionalData(string(peer), id))
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
	path := f.path(peer, id)
	f.mu.Lock()
	delete(f.slots, path)
	f.mu.Unlock()
	err := safefile.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
