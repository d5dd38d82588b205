package transcript

import (
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/host/identity"
	"github.com/agentmesh/agentmesh-go/internal/safefile"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Names under the agent's home directory.
const (
	// DirName is the directory of the transcripts, under the home.
	DirName = "transcripts"
	// AuditLogName is the file, in the transcripts directory, that records
	// every export of a session key.
	AuditLogName = "audit.log"
	// fileExt ends the name of every transcript file.
	fileExt = ".jsonl"
)

// Defaults of Options.
const (
	// DefaultMaxFileSize is the default of Options.MaxFileSize.
	DefaultMaxFileSize = 64 << 20
	// DefaultSearchLimit is the default of Options.SearchLimit.
	DefaultSearchLimit = 100
)

// Options configures a Store. The zero value gives the defaults.
type Options struct {
	// MaxFileSize bounds a transcript file, in bytes: larger files are not
	// read and appends stop short of it. Default DefaultMaxFileSize.
	MaxFileSize int64
	// MaxMessageSize bounds the message of one entry, in bytes. Default
	// DefaultMaxMessageSize.
	MaxMessageSize int
	// SearchLimit is how many of the most recently modified transcripts
	// Search reads. Default DefaultSearchLimit.
	SearchLimit int
	// Sync makes Append sync the file after each record, so that the
	// entry survives a power failure. Without it an entry survives the
	// process being killed but may be lost, along with the writes of the
	// last seconds, when the machine stops.
	Sync bool
	// Now reads the clock for entries without a time and for the audit
	// log. Default time.Now.
	Now func() time.Time
	// Logger receives notices of migrations and of failures that do not
	// stop an operation; nil discards them. Nothing logged holds a key or
	// an entry's content.
	Logger hclog.Logger
}

// Store keeps the transcripts of one agent. It is safe for concurrent use
// by several goroutines; it must be the only writer of its directory.
type Store struct {
	dir  string
	opts Options
	log  hclog.Logger

	// mu guards secret. Operations hold it for reading; Reencrypt and
	// Close hold it for writing, so that no record is sealed or opened
	// with a key that is being replaced.
	mu sync.RWMutex
	// secret is the transcript secret of the identity (see the package
	// documentation); nil once the store is closed.
	secret []byte

	// files serialises the operations on each transcript file.
	files fileLocks
	// auditMu serialises writes to the audit log.
	auditMu sync.Mutex
}

// Open returns the Store of the transcripts under home, sealed with keys
// of the identity id. It creates <home>/transcripts with mode 0700, or
// tightens an existing directory that others may enter.
func Open(home string, id *identity.Identity, opts Options) (*Store, error) {
	if id == nil {
		return nil, errors.New("transcript: Open: nil identity")
	}
	if opts.MaxFileSize < 0 || opts.MaxMessageSize < 0 || opts.SearchLimit < 0 {
		return nil, errors.New("transcript: Open: negative limit in options")
	}
	if opts.MaxFileSize == 0 {
		opts.MaxFileSize = DefaultMaxFileSize
	}
	if opts.MaxMessageSize == 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	if opts.SearchLimit == 0 {
		opts.SearchLimit = DefaultSearchLimit
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	dir := filepath.Join(home, DirName)
	if err := safefile.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("transcript: directory: %w", err)
	}
	secret, err := id.DeriveKey(secretInfo, keySize)
	if err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	return &Store{
		dir:    dir,
		opts:   opts,
		log:    opts.Logger,
		secret: secret,
		files:  fileLocks{m: make(map[string]*fileLock)},
	}, nil
}

// Dir returns the directory of the transcripts.
func (s *Store) Dir() string { return s.dir }

// Close forgets the store's key. Every later call returns ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.secret)
	s.secret = nil
	return nil
}

// path returns the file of session id's transcript.
func (s *Store) path(id string) string { return filepath.Join(s.dir, fileName(id)) }

// begin checks id and takes the store for reading; the caller calls end.
func (s *Store) begin(id string) error {
	if err := checkSessionID(id); err != nil {
		return err
	}
	s.mu.RLock()
	if s.secret == nil {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) end() { s.mu.RUnlock() }

// checkSessionID accepts the ids that peers assign: 1 to 128 printable
// ASCII characters.
func checkSessionID(id string) error {
	if id == "" || len(id) > protocol.MaxSessionIDLen {
		return fmt.Errorf("transcript: session id must be 1 to %d characters, got %d", protocol.MaxSessionIDLen, len(id))
	}
	if !printableASCII(id) {
		return errors.New("transcript: session id holds characters other than printable ASCII")
	}
	return nil
}

// b32 encodes the session ids that cannot be file names as they are.
var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// fileName returns the name of session id's transcript file (see the
// package documentation, "Files").
func fileName(id string) string {
	if plainName(id) {
		return id + fileExt
	}
	return "+" + b32.EncodeToString([]byte(id)) + fileExt
}

// sessionOfFile inverts fileName; ok is false for a name that fileName does
// not produce.
func sessionOfFile(name string) (id string, ok bool) {
	base, found := strings.CutSuffix(name, fileExt)
	if !found {
		return "", false
	}
	if enc, found := strings.CutPrefix(base, "+"); found {
		b, err := b32.DecodeString(enc)
		id = string(b)
		if err != nil || checkSessionID(id) != nil || fileName(id) != name {
			return "", false
		}
		return id, true
	}
	return base, plainName(base)
}

// plainName reports whether a session id can be its own file name: lower
// case letters, digits, '_' and '-', and not a name Windows reserves.
func plainName(id string) bool {
	if id == "" || len(id) > protocol.MaxSessionIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return !windowsReserved(id)
}

// windowsReserved reports the device names Windows reserves whatever the
// extension.
func windowsReserved(id string) bool {
	switch id {
	case "con", "prn", "aux", "nul":
		return true
	}
	return len(id) == 4 && (strings.HasPrefix(id, "com") || strings.HasPrefix(id, "lpt")) && id[3] >= '0' && id[3] <= '9'
}

// transcriptFile is a transcript file found in the directory.
type transcriptFile struct {
	id   string
	info fs.FileInfo
}

// scan returns the transcript files of the directory, in the order of
// their names.
func (s *Store) scan() ([]transcriptFile, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("transcript: reading the directory: %w", err)
	}
	var files []transcriptFile
	for _, de := range des {
		id, ok := sessionOfFile(de.Name())
		if !ok || !de.Type().IsRegular() {
			continue
		}
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return nil, fmt.Errorf("transcript: %w", err)
		}
		files = append(files, transcriptFile{id: id, info: fi})
	}
	return files, nil
}

// fileLocks holds one mutex per transcript file in use, and forgets it
// when nobody holds or waits for it, so that a long-running host does not
// collect one per session it ever had.
type fileLocks struct {
	mu sync.Mutex
	m  map[string]*fileLock
}

type fileLock struct {
	sync.Mutex
	refs int
}

// lock locks the file of session id and returns its unlock function.
func (l *fileLocks) lock(id string) (unlock func()) {
	l.mu.Lock()
	fl := l.m[id]
	if fl == nil {
		fl = new(fileLock)
		l.m[id] = fl
	}
	fl.refs++
	l.mu.Unlock()

	fl.Lock()
	return func() {
		fl.Unlock()
		l.mu.Lock()
		if fl.refs--; fl.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
}
