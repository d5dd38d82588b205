package skills

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Remove stops the skill name, letting requests in flight finish until
// ctx ends, removes it from skills.lock and deletes its directory.
func (m *Manager) Remove(ctx context.Context, name string) error {
	return m.update(ctx, name, func(lf *lockFile, i int) error {
		lf.Skills = append(lf.Skills[:i], lf.Skills[i+1:]...)
		return nil
	}, func() error {
		if err := checkTree(m.dir, name, false); err != nil {
			return err
		}
		return os.RemoveAll(filepath.Join(m.dir, name))
	})
}

// Enable enables the skill name, so that REQUESTs reach it again. It also
// lifts a quarantine, clearing the crash count. Enabling a skill that
// declares an intent another enabled skill handles is an
// ErrIntentConflict.
func (m *Manager) Enable(ctx context.Context, name string) error {
	err := m.update(ctx, name, func(lf *lockFile, i int) error {
		sk := m.skillNamed(name)
		if sk != nil && sk.manifest != nil {
			if err := m.checkIntents(sk.manifest); err != nil {
				return err
			}
		}
		lf.Skills[i].Enabled = true
		return nil
	}, nil)
	if err != nil {
		return err
	}
	// A skill that was enabled already may still be quarantined.
	if sk := m.skillNamed(name); sk != nil {
		sk.sup.enable()
	}
	return nil
}

// Disable disables the skill name: its plugin stops, letting requests in
// flight finish until ctx ends, and its intents are no longer routed.
func (m *Manager) Disable(ctx context.Context, name string) error {
	return m.update(ctx, name, func(lf *lockFile, i int) error {
		lf.Skills[i].Enabled = false
		return nil
	}, nil)
}

// SetConfig replaces the configuration values the user set for the skill
// name (nil clears them, leaving the manifest's defaults). Each value must
// suit its option's type, enum and bounds. A running plugin is restarted
// with the new configuration.
func (m *Manager) SetConfig(ctx context.Context, name string, values map[string]json.RawMessage) error {
	return m.update(ctx, name, func(lf *lockFile, i int) error {
		sk := m.skillNamed(name)
		if sk == nil || sk.manifest == nil {
			return fmt.Errorf("%s cannot be loaded", name)
		}
		if _, err := resolveConfig(sk.manifest, values); err != nil {
			return err
		}
		cfg := make(map[string]json.RawMessage, len(values))
		for k, v := range values {
			cfg[k] = append(json.RawMessage(nil), v...)
		}
		if len(cfg) == 0 {
			cfg = nil
		}
		lf.Skills[i].Config = cfg
		return nil
	}, nil)
}

// update changes the lock entry of name with change, writes the lock,
// applies it and then runs after, all under the operation and directory
// locks.
func (m *Manager) update(ctx context.Context, name string, change func(lf *lockFile, i int) error, after func() error) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if m.isClosed() {
		return ErrClosed
	}
	unlock, err := lockDir(m.dir)
	if err != nil {
		return fmt.Errorf("skills: %w", err)
	}
	defer unlock()
	if err := m.reloadLocked(ctx); err != nil {
		return err
	}
	lf, _, err := m.readLock()
	if err != nil {
		return fmt.Errorf("skills: %w", err)
	}
	i := lf.find(name)
	if i < 0 {
		return fmt.Errorf("skills: %q: %w", truncate(name), ErrNotInstalled)
	}
	nl := lf.clone()
	if err := change(nl, i); err != nil {
		return fmt.Errorf("skills: %s: %w", name, err)
	}
	if err := m.commit(ctx, nl); err != nil {
		return fmt.Errorf("skills: %s: %w", name, err)
	}
	if after != nil {
		if err := after(); err != nil {
			return fmt.Errorf("skills: %s: %w", name, err)
		}
	}
	return nil
}

func (m *Manager) skillNamed(name string) *skill {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.skills[name]
}
