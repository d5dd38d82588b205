package transcript

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/agentmesh/agentmesh-go/host/identity"
	"github.com/agentmesh/agentmesh-go/internal/safefile"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// stat returns the file of session id's transcript, or ErrNotFound.
func (s *Store) stat(id string) (fs.FileInfo, error) {
	path := s.path(id)
	fi, err := os.Lstat(path)
	if notFound(err) {
		return nil, fmt.Errorf("transcript: %s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, &FileError{Path: path, Err: safefile.ErrNotRegular}
	}
	return fi, nil
}

// Delete removes session id's transcript: it overwrites the file with
// zeros, syncs it and unlinks it (internal/safefile.Remove, with its
// limits). It fails with ErrNotFound when the session has no transcript.
func (s *Store) Delete(id string) error {
	if err := s.begin(id); err != nil {
		return err
	}
	defer s.end()
	unlock := s.files.lock(id)
	defer unlock()
	path := s.path(id)
	if err := safefile.Remove(path); err != nil {
		if notFound(err) {
			return fmt.Errorf("transcript: %s: %w", path, ErrNotFound)
		}
		return fmt.Errorf("transcript: deleting: %w", err)
	}
	return nil
}

// ExportSessionKey returns the key of session id's transcript in standard
// padded base64, for an auditor who is to read that one transcript: with
// it, each record opens with XChaCha20-Poly1305 given its nonce and
// ciphertext, without additional data. The export is first recorded in
// the audit log (the time and the session id, never the key); when that
// fails, no key is returned. It fails with ErrNotFound when the session
// has no transcript. The key stays valid until Reencrypt.
func (s *Store) ExportSessionKey(id string) (string, error) {
	if err := s.begin(id); err != nil {
		return "", err
	}
	defer s.end()
	unlock := s.files.lock(id)
	defer unlock()
	if _, err := s.stat(id); err != nil {
		return "", err
	}
	if err := s.audit("session_key_export", id); err != nil {
		return "", err
	}
	key, err := sessionKey(s.secret, id)
	if err != nil {
		return "", err
	}
	defer clear(key)
	return protocol.B64.EncodeToString(key), nil
}

// audit appends an event about session id to the audit log and syncs it:
// one JSON object per line, {"time","event","session_id"}.
func (s *Store) audit(event, id string) error {
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	path := filepath.Join(s.dir, AuditLogName)
	line := []byte(`{"time":"`)
	line = s.opts.Now().UTC().AppendFormat(line, timeFormat)
	line = append(line, `","event":`...)
	line = protocol.AppendJSString(line, event)
	line = append(line, `,"session_id":`...)
	line = protocol.AppendJSString(line, id)
	line = append(line, "}\n"...)

	f, _, err := openNoFollow(path, os.O_RDWR|os.O_CREATE|os.O_APPEND)
	if err != nil {
		return fmt.Errorf("transcript: audit log: %w", err)
	}
	_, err = f.Write(line)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("transcript: audit log %s: %w", path, err)
	}
	return nil
}

// Reencrypt moves every transcript to the keys of newID, the identity
// that replaces the store's after a rotation of the signing key, and from
// then on seals and opens with newID's keys. Each file is checked whole
// under the old key and replaced atomically; plaintext from an older
// version is sealed on the way, and the old file's blocks are overwritten.
// A file already under newID's key is left alone, so an interrupted
// re-encryption can be run again. A file that cannot be re-encrypted stays
// as it was and is reported in a *ReencryptError; the store switches to
// newID all the same. No other operation runs while Reencrypt does.
func (s *Store) Reencrypt(newID *identity.Identity) error {
	if newID == nil {
		return errors.New("transcript: Reencrypt: nil identity")
	}
	newSecret, err := newID.DeriveKey(secretInfo, keySize)
	if err != nil {
		return fmt.Errorf("transcript: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secret == nil {
		clear(newSecret)
		return ErrClosed
	}
	files, err := s.scan()
	if err != nil {
		clear(newSecret)
		return err
	}
	var failed []error
	for _, f := range files {
		if err := s.reencryptFile(f.id, newSecret); err != nil {
			s.log.Warn("transcript left under the old key", "session", f.id, "error", err)
			failed = append(failed, err)
		}
	}
	clear(s.secret)
	s.secret = newSecret
	if len(failed) > 0 {
		return &ReencryptError{Failed: failed}
	}
	return nil
}

// reencryptFile moves session id's transcript from the store's key to the
// one derived from newSecret. The caller holds the store for writing.
func (s *Store) reencryptFile(id string, newSecret []byte) error {
	path := s.path(id)
	c, _, err := s.load(path)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	oldAEAD, err := sessionAEAD(s.secret, id)
	if err != nil {
		return err
	}
	newAEAD, err := sessionAEAD(newSecret, id)
	if err != nil {
		return err
	}
	_, plains, err := decode(oldAEAD, id, path, c, true)
	if err != nil {
		if errors.Is(err, ErrDecrypt) && c.plain == 0 {
			if _, _, errNew := decode(newAEAD, id, path, c, false); errNew == nil {
				return nil // re-encrypted by an earlier, interrupted run
			}
		}
		return err
	}
	defer clearAll(plains)
	var out []byte
	for _, p := range plains {
		out = append(out, sealLine(newAEAD, p)...)
	}
	if err := s.replace(path, out); err != nil {
		return fmt.Errorf("transcript: re-encrypting %s: %w", path, err)
	}
	return nil
}
