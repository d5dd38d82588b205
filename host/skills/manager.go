package skills

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/host/schema"
	"github.com/agentmesh/agentmesh-go/internal/safefile"
)

// Options configure a [Manager]. Home and Schemas are required; every
// other zero field takes the default its comment gives.
type Options struct {
	// Home is the AgentMesh state directory (normally ~/.agentmesh; the
	// caller resolves AGENTMESH_HOME). Skills live in Home/skills.
	Home string
	// Logger receives the Manager's logs and, named after each skill, the
	// skills' own; nil discards them.
	Logger hclog.Logger
	// Schemas validates REQUEST parameters and RESPONSE results, in its
	// mode, and receives the schemas skills ship.
	Schemas *schema.Catalogue
	// GoBinary is the go command that builds skills installed from
	// source (default "go", looked up in PATH).
	GoBinary string
	// RequestTimeout bounds one Dispatch, including a cold start of the
	// plugin (default 30s).
	RequestTimeout time.Duration
	// StartTimeout bounds the start of a plugin process: exec, handshake,
	// Describe and Configure (default 30s).
	StartTimeout time.Duration
	// HealthInterval is how often running plugins are pinged (default
	// 10s; negative disables the periodic check, leaving the one before
	// every dispatch).
	HealthInterval time.Duration
	// Restart says how crashed plugins are restarted and when they are
	// quarantined.
	Restart RestartPolicy
	// HostVersion is reported to skills by the status host service.
	HostVersion string
	// AMID returns the host's AMID for the status host service; nil, or
	// an empty result, reports none.
	AMID func() string
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.GoBinary == "" {
		o.GoBinary = "go"
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.HealthInterval == 0 {
		o.HealthInterval = 10 * time.Second
	}
	o.Restart = o.Restart.withDefaults()
	return o
}

// pingTimeout bounds a health check ping.
const pingTimeout = 5 * time.Second

// reloadCheckInterval is how often Dispatch looks at whether skills.lock
// changed.
const reloadCheckInterval = time.Second

// Errors of the Manager's operations; test for them with errors.Is.
var (
	// ErrClosed reports a call on a closed Manager.
	ErrClosed = errors.New("skills manager closed")
	// ErrNotInstalled reports a skill name that is not installed.
	ErrNotInstalled = errors.New("skill not installed")
	// ErrAlreadyInstalled reports an install of a skill that is already
	// installed (upgrade it instead).
	ErrAlreadyInstalled = errors.New("skill already installed")
	// ErrNotNewer reports an upgrade to a version that is not newer than
	// the one installed.
	ErrNotNewer = errors.New("version is not newer than the installed one")
	// ErrIntentConflict reports a skill declaring an intent that another
	// enabled skill already handles.
	ErrIntentConflict = errors.New("intent already handled by another skill")
	// ErrChecksumMismatch reports a plugin binary whose SHA-256 is not
	// the one skills.lock records, or that was built with another
	// skill.json than the one installed.
	ErrChecksumMismatch = errors.New("checksum mismatch")
)

// Manager installs, supervises and calls the skills of one AgentMesh home.
// It is safe for concurrent use.
type Manager struct {
	opts    Options
	log     hclog.Logger
	cat     *schema.Catalogue
	dir     string // Home/skills
	started time.Time
	hostSvc *hostServices

	// opMu serialises the operations that change skills: install,
	// upgrade, remove, enable, disable, configure and reload.
	opMu sync.Mutex

	mu        sync.RWMutex
	skills    map[string]*skill
	routes    map[string]route // by intent; enabled, loadable skills only
	lockInfo  fs.FileInfo      // skills.lock as last read or written
	lastCheck time.Time
	closed    bool

	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

// skill is one installed skill.
type skill struct {
	name     string
	dir      string    // Home/skills/<name>/<version>
	manifest *Manifest // nil when the skill is broken
	sup      *supervisor

	mu    sync.Mutex
	entry lockEntry
}

func (sk *skill) lockEntry() lockEntry {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	return sk.entry
}

// sameInstall reports whether e records the installed files sk was loaded
// from.
func (sk *skill) sameInstall(e lockEntry) bool {
	cur := sk.lockEntry()
	return sk.manifest != nil && cur.Version == e.Version && cur.SHA256 == e.SHA256 && cur.ManifestSHA256 == e.ManifestSHA256
}

// route is where REQUESTs of one intent go.
type route struct {
	sk  *skill
	cap *Capability
}

// New returns a Manager for opts.Home, creating Home/skills if needed. It
// refuses a skills directory that is a symbolic link, that another user
// owns or that group or others can write, and it loads skills.lock; a
// skill whose files cannot be loaded is listed as broken, not an error.
// No plugin starts until it is first used.
func New(opts Options) (*Manager, error) {
	opts = opts.withDefaults()
	if opts.Home == "" {
		return nil, errors.New("skills: Options.Home is empty")
	}
	if opts.Schemas == nil {
		return nil, errors.New("skills: Options.Schemas is nil")
	}
	if err := safefile.MkdirAll(opts.Home); err != nil {
		return nil, fmt.Errorf("skills: %w", err)
	}
	dir := filepath.Join(opts.Home, "skills")
	if err := prepareSkillsDir(dir); err != nil {
		return nil, fmt.Errorf("skills: %w", err)
	}
	m := &Manager{
		opts:    opts,
		log:     opts.Logger.Named("skills"),
		cat:     opts.Schemas,
		dir:     dir,
		started: time.Now(),
		skills:  map[string]*skill{},
		routes:  map[string]route{},
		done:    make(chan struct{}),
	}
	m.hostSvc = &hostServices{m: m}
	lf, info, err := m.readLock()
	if err != nil {
		return nil, fmt.Errorf("skills: %w", err)
	}
	m.apply(context.Background(), lf, info)
	if opts.HealthInterval > 0 {
		m.wg.Go(m.healthLoop)
	}
	return m, nil
}

// Close stops every plugin and waits for the Manager's goroutines. REQUESTs
// in flight fail. Close is idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.done)
	sks := slices.Collect(maps.Values(m.skills))
	m.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no draining: the host is going away
	var wg sync.WaitGroup
	for _, sk := range sks {
		wg.Go(func() { sk.sup.stop(ctx, stateRetired) })
	}
	wg.Wait()
	m.wg.Wait()
	return nil
}

// spawn runs f on a goroutine Close waits for.
func (m *Manager) spawn(f func()) { m.wg.Go(f) }

func (m *Manager) healthLoop() {
	t := time.NewTicker(m.opts.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
		}
		m.mu.RLock()
		sks := slices.Collect(maps.Values(m.skills))
		m.mu.RUnlock()
		for _, sk := range sks {
			sk.sup.healthCheck(pingTimeout)
		}
	}
}

// readLock reads skills.lock and describes the file read.
func (m *Manager) readLock() (*lockFile, fs.FileInfo, error) {
	info, err := os.Lstat(filepath.Join(m.dir, lockName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	lf, err := readLock(m.dir)
	if err != nil {
		return nil, nil, err
	}
	return lf, info, nil
}

// Reload reads skills.lock again and brings the running skills in line
// with it: new skills become available, removed ones stop, upgraded ones
// restart, and disabled ones stop. Another process's changes to the lock
// become visible this way; Dispatch calls it when the file has changed.
func (m *Manager) Reload(ctx context.Context) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	return m.reloadLocked(ctx)
}

func (m *Manager) reloadLocked(ctx context.Context) error {
	if m.isClosed() {
		return ErrClosed
	}
	lf, info, err := m.readLock()
	if err != nil {
		return fmt.Errorf("skills: %w", err)
	}
	m.apply(ctx, lf, info)
	return nil
}

// maybeReload reloads the lock if it changed on disk, at most once per
// reloadCheckInterval, and never waits for an operation under way (which
// reloads when it finishes anyway).
func (m *Manager) maybeReload(ctx context.Context) {
	now := time.Now()
	m.mu.RLock()
	due := now.Sub(m.lastCheck) >= reloadCheckInterval
	known := m.lockInfo
	m.mu.RUnlock()
	if !due || !m.opMu.TryLock() {
		return
	}
	defer m.opMu.Unlock()
	m.mu.Lock()
	m.lastCheck = now
	m.mu.Unlock()
	info, err := os.Lstat(filepath.Join(m.dir, lockName))
	switch {
	case errors.Is(err, fs.ErrNotExist) && known == nil:
		return
	case err == nil && known != nil && os.SameFile(info, known) &&
		info.ModTime().Equal(known.ModTime()) && info.Size() == known.Size():
		return
	}
	if err := m.reloadLocked(ctx); err != nil {
		m.log.Warn("reloading the skills lock", "error", err)
	}
}

// apply makes the loaded skills match lf. m.opMu must be held.
func (m *Manager) apply(ctx context.Context, lf *lockFile, info fs.FileInfo) {
	type stopReq struct {
		sup  *supervisor
		st   State
		warm *supervisor // started after the stop, if the old one ran
	}
	var stops []stopReq
	var enables []*supervisor

	m.mu.Lock()
	old := m.skills
	next := make(map[string]*skill, len(lf.Skills))
	for _, e := range lf.Skills {
		if o := old[e.Name]; o != nil && o.sameInstall(e) {
			o.mu.Lock()
			prev := o.entry
			o.entry = e
			o.mu.Unlock()
			next[e.Name] = o
			switch {
			case !e.Enabled && prev.Enabled:
				stops = append(stops, stopReq{sup: o.sup, st: StateDisabled})
			case e.Enabled && !prev.Enabled:
				enables = append(enables, o.sup)
			case e.Enabled && !maps.EqualFunc(prev.Config, e.Config, jsonBytesEqual):
				// Configure is sent once per process: restart it.
				st, _, _ := o.sup.status()
				req := stopReq{sup: o.sup, st: StateStopped}
				if st == StateRunning {
					req.warm = o.sup
				}
				stops = append(stops, req)
			}
			continue
		}
		sk := m.loadSkill(e)
		next[e.Name] = sk
		if o := old[e.Name]; o != nil {
			req := stopReq{sup: o.sup, st: stateRetired}
			if st, _, _ := o.sup.status(); st == StateRunning && sk.manifest != nil && e.Enabled {
				req.warm = sk.sup
			}
			stops = append(stops, req)
		}
	}
	for name, o := range old {
		if next[name] == nil {
			stops = append(stops, stopReq{sup: o.sup, st: stateRetired})
		}
	}
	m.skills = next
	m.routes = m.buildRoutes(next)
	m.lockInfo = info
	m.lastCheck = time.Now()
	m.mu.Unlock()

	for _, s := range enables {
		s.enable()
	}
	var warms []*supervisor
	for _, s := range stops {
		s.sup.stop(ctx, s.st)
		if s.warm != nil {
			warms = append(warms, s.warm)
		}
	}
	// A plugin that was running runs again, in its new version or with
	// its new configuration, before the operation returns.
	for _, s := range warms {
		p, err := s.acquire(ctx)
		if err != nil {
			s.log.Warn("restarting skill", "error", err)
			continue
		}
		p.release()
	}
}

// buildRoutes maps each intent to the enabled, loadable skill that
// declares it. When two skills claim an intent (only an edited lock can
// cause this), the first by name keeps it.
func (m *Manager) buildRoutes(sks map[string]*skill) map[string]route {
	routes := make(map[string]route)
	for _, name := range slices.Sorted(maps.Keys(sks)) {
		sk := sks[name]
		if sk.manifest == nil || !sk.lockEntry().Enabled {
			continue
		}
		for i := range sk.manifest.Capabilities {
			c := &sk.manifest.Capabilities[i]
			if r, taken := routes[c.Intent]; taken {
				m.log.Warn("two enabled skills declare one intent; ignoring the second", "intent", c.Intent, "kept", r.sk.name, "ignored", name)
				continue
			}
			routes[c.Intent] = route{sk: sk, cap: c}
		}
	}
	return routes
}

// loadSkill loads an installed skill from its directory. A skill that
// cannot be loaded is returned broken, with the reason.
func (m *Manager) loadSkill(e lockEntry) *skill {
	sk := &skill{name: e.Name, dir: filepath.Join(m.dir, e.Name, e.Version), entry: e}
	man, err := m.loadManifest(e)
	state, reason := StateStopped, ""
	switch {
	case err != nil:
		state, reason = StateBroken, err.Error()
		m.log.Error("installed skill cannot be loaded", "skill", e.Name, "version", e.Version, "error", err)
	case !e.Enabled:
		state = StateDisabled
	}
	sk.manifest = man
	sk.sup = m.newSupervisor(sk, state, reason)
	return sk
}

// loadManifest reads and checks the installed skill.json of e.
func (m *Manager) loadManifest(e lockEntry) (*Manifest, error) {
	if err := checkTree(m.dir, e.Name+"/"+e.Version, false); err != nil {
		return nil, err
	}
	data, err := safefile.ReadFile(filepath.Join(m.dir, e.Name, e.Version, ManifestFile), maxManifestSize)
	if err != nil {
		return nil, err
	}
	if got := sha256Hex(data); got != e.ManifestSHA256 {
		return nil, fmt.Errorf("%w: %s has SHA-256 %s…, but %s records %s…", ErrChecksumMismatch, ManifestFile, got[:12], lockName, e.ManifestSHA256[:12])
	}
	man, err := ParseManifest(data)
	if err != nil {
		return nil, err
	}
	if man.Name != e.Name || man.Version != e.Version {
		return nil, fmt.Errorf("%s names %s %s, but %s records %s %s", ManifestFile, man.Name, man.Version, lockName, e.Name, e.Version)
	}
	if _, err := resolveConfig(man, e.Config); err != nil {
		return nil, err
	}
	return man, nil
}

func (m *Manager) newSupervisor(sk *skill, st State, reason string) *supervisor {
	return &supervisor{
		name:         sk.name,
		log:          m.log.Named(sk.name),
		policy:       m.opts.Restart,
		start:        func(ctx context.Context) (conn, error) { return m.startPlugin(ctx, sk) },
		startTimeout: m.opts.StartTimeout,
		spawn:        m.spawn,
		done:         m.done,
		state:        st,
		reason:       reason,
		changed:      make(chan struct{}),
	}
}

func (m *Manager) isClosed() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.closed
}

// SkillInfo describes an installed skill.
type SkillInfo struct {
	Name    string
	Version string
	// Source is where the skill was installed from.
	Source      string
	SHA256      string
	Enabled     bool
	InstalledAt time.Time
	// Dir is the skill's installed directory.
	Dir string
	// State is where its plugin is; Reason says why it is quarantined,
	// broken or restarting.
	State  State
	Reason string
	// PID is the plugin's process id while one runs, else 0.
	PID int
	// Manifest is nil for a broken skill.
	Manifest *Manifest
	// Config holds the values the user set (not the defaults).
	Config map[string]json.RawMessage
}

// List returns every installed skill, sorted by name.
func (m *Manager) List() []SkillInfo {
	m.mu.RLock()
	sks := slices.Collect(maps.Values(m.skills))
	m.mu.RUnlock()
	out := make([]SkillInfo, 0, len(sks))
	for _, sk := range sks {
		out = append(out, sk.info())
	}
	slices.SortFunc(out, func(a, b SkillInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Info describes the installed skill name, or returns ErrNotInstalled.
func (m *Manager) Info(name string) (SkillInfo, error) {
	m.mu.RLock()
	sk := m.skills[name]
	m.mu.RUnlock()
	if sk == nil {
		return SkillInfo{}, fmt.Errorf("skills: %q: %w", truncate(name), ErrNotInstalled)
	}
	return sk.info(), nil
}

func (sk *skill) info() SkillInfo {
	e := sk.lockEntry()
	st, reason, pid := sk.sup.status()
	cfg := make(map[string]json.RawMessage, len(e.Config))
	for k, v := range e.Config {
		cfg[k] = slices.Clone(v)
	}
	return SkillInfo{
		Name:        e.Name,
		Version:     e.Version,
		Source:      e.Source,
		SHA256:      e.SHA256,
		Enabled:     e.Enabled,
		InstalledAt: e.InstalledAt,
		Dir:         sk.dir,
		State:       st,
		Reason:      reason,
		PID:         pid,
		Manifest:    sk.manifest,
		Config:      cfg,
	}
}

// Start starts the plugin of the skill name now, if it is not running,
// and waits until it runs or fails to start. A skill otherwise starts on
// its first REQUEST; Start reports why one cannot, for example a binary
// that does not match the lock.
func (m *Manager) Start(ctx context.Context, name string) error {
	m.mu.RLock()
	sk := m.skills[name]
	closed := m.closed
	m.mu.RUnlock()
	switch {
	case closed:
		return ErrClosed
	case sk == nil:
		return fmt.Errorf("skills: %q: %w", truncate(name), ErrNotInstalled)
	}
	p, err := sk.sup.acquire(ctx)
	if err != nil {
		return fmt.Errorf("skills: %w", err)
	}
	p.release()
	return nil
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func jsonBytesEqual(a, b json.RawMessage) bool { return string(a) == string(b) }
