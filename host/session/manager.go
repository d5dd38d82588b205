package session

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/host/identity"
	"github.com/agentmesh/agentmesh-go/host/ratchet"
	"github.com/agentmesh/agentmesh-go/host/transport"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// Defaults of Config.
const (
	// DefaultHandshakeTimeout bounds the wait for an ACCEPT or REJECT.
	DefaultHandshakeTimeout = 30 * time.Second
	// DefaultKnockWorkers is how many KNOCKs are verified and evaluated at
	// once; more wait their turn.
	DefaultKnockWorkers = 64
	// requestQueue is how many REQUESTs a session holds for its handler
	// before refusing more with rate_limited.
	requestQueue = 64
	// inboxSize is how many encrypted messages a session buffers before
	// the receive loop waits for it.
	inboxSize = 256
)

// Directory is the registry as the session layer uses it: who a peer is
// and how to start X3DH with it. *registry.Client satisfies it.
type Directory interface {
	Lookup(ctx context.Context, amid string) (*registry.AgentLookup, error)
	FetchPrekeyBundle(ctx context.Context, amid string) (*registry.PrekeyBundle, error)
}

// PrekeyStore holds our private prekeys for answering KNOCKs.
type PrekeyStore interface {
	ratchet.PrekeySource
	// Consume forgets a one-time prekey once a session used it.
	Consume(id uint32) error
}

// RequestMeta says where a REQUEST came from.
type RequestMeta struct {
	SessionID string
	Peer      protocol.AMID
	// Schema is the schema id the REQUEST's message declared, if any.
	Schema string
}

// Handler serves the REQUESTs that arrive on sessions: the skill runtime.
type Handler interface {
	// Capabilities lists the capabilities the host offers, such as
	// "agentmesh/travel/flight-search/v1": the schemas of the installed
	// skills.
	Capabilities() []string
	// Route reports the capability an intent needs and whether a skill
	// handles the intent at all. An empty capability needs no
	// negotiation.
	Route(intent string) (capability string, ok bool)
	// Intents lists the intents the host handles, offered as fallbacks
	// when a REQUEST cannot be served.
	Intents() []string
	// HandleRequest runs a REQUEST and returns its RESPONSE or ERROR,
	// passing STATUS updates to onStatus as they come.
	HandleRequest(ctx context.Context, req *protocol.Request, meta RequestMeta, onStatus func(*protocol.Status)) protocol.Payload
}

// Recorded is one message of a session as a Recorder receives it.
type Recorded struct {
	SessionID string
	Peer      protocol.AMID
	// Sent is true for a message we sent, false for one we received.
	Sent bool
	Type protocol.PayloadType
	// Envelope is the plaintext message, the envelope of DESIGN.md §4.7.
	Envelope []byte
	Time     time.Time
}

// Recorder keeps the transcript of sessions (host/transcript): it is
// handed every message sent and received, once, in each direction's order.
// Record must not keep Envelope after it returns.
type Recorder interface {
	Record(Recorded)
}

// Config configures a Manager. Identity, Directory, Transport, Prekeys and
// Nonces are required.
type Config struct {
	// Identity is the host's agent. Replace it after a key rotation with
	// Manager.SetIdentity.
	Identity *identity.Identity
	// Directory is the registry: every peer's keys, tier and reputation
	// come from it, never from the peer.
	Directory Directory
	// Transport carries frames to and from peers.
	Transport transport.Transport
	// Prekeys answers X3DH for KNOCKs we receive.
	Prekeys PrekeyStore
	// Nonces remembers the KNOCK nonces seen, across restarts.
	Nonces *NonceStore
	// Policy decides which KNOCKs to accept; nil means DefaultPolicy.
	Policy *Policy
	// Certs checks the certificate chains of verified and organization
	// senders. When nil and Directory also implements CertDirectory, a
	// checker over it is made; otherwise such senders are refused with
	// invalid_certificate.
	Certs *CertChecker
	// CertificateChain is our own chain (base64 DER, leaf first), sent in
	// our KNOCKs; nil for an anonymous agent.
	CertificateChain []string
	// Handler serves REQUESTs; nil refuses every REQUEST with
	// capability_mismatch.
	Handler Handler
	// OnSession, when set, is called with every session that opens, on
	// either side, or is resumed from its file, before any of its messages
	// is handled.
	OnSession func(*Session)
	// SessionDir keeps sessions across restarts (normally
	// <home>/sessions): one encrypted file per session, written on every
	// message sent and received, loaded by New. Empty keeps sessions in
	// memory only.
	SessionDir string
	// SessionCacheTTL is how long Connect reuses a session for a peer and
	// intent category (default DefaultSessionCacheTTL).
	SessionCacheTTL time.Duration
	// Recorder, when set, keeps the transcript of every session.
	Recorder Recorder
	// Logger receives the session layer's logs; nil discards them.
	Logger hclog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Rand is the randomness for keys and nonces (default crypto/rand).
	Rand io.Reader
	// HandshakeTimeout bounds the wait for an answer to our KNOCK
	// (default DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// KnockWorkers bounds the KNOCKs handled at once (default
	// DefaultKnockWorkers).
	KnockWorkers int
}

// Manager runs the host's sessions: it opens them (Open), answers KNOCKs,
// and moves every session's messages between the transport and the
// handler. Its methods are safe for concurrent use.
type Manager struct {
	cfg   Config
	log   hclog.Logger
	now   func() time.Time
	rand  io.Reader
	eval  *Evaluator
	certs *CertChecker
	id    atomic.Pointer[identity.Identity]

	knockSlots chan struct{}
	files      *sessionFiles // nil: sessions live in memory only
	cache      *sessionCache
	optimistic optimisticInbox

	notFoundMu   sync.Mutex
	notFoundSent map[sessionKey]time.Time // session_not_found answers, to send each at most once a minute

	mu       sync.Mutex
	sessions map[sessionKey]*Session
	pending  map[string]*pendingKnock // our KNOCKs awaiting an answer, by nonce
	closed   bool

	done chan struct{}
	wg   sync.WaitGroup
}

type sessionKey struct {
	peer protocol.AMID
	id   string
}

// ErrManagerClosed is returned once the Manager is closed.
var ErrManagerClosed = errors.New("session manager closed")

// New returns a Manager. Call Run to start receiving.
func New(cfg Config) (*Manager, error) {
	switch {
	case cfg.Identity == nil:
		return nil, errors.New("session: Config.Identity is required")
	case cfg.Directory == nil:
		return nil, errors.New("session: Config.Directory is required")
	case cfg.Transport == nil:
		return nil, errors.New("session: Config.Transport is required")
	case cfg.Prekeys == nil:
		return nil, errors.New("session: Config.Prekeys is required")
	case cfg.Nonces == nil:
		return nil, errors.New("session: Config.Nonces is required")
	}
	policy := cfg.Policy
	if policy == nil {
		policy = DefaultPolicy()
	}
	eval, err := NewEvaluator(policy)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	m := &Manager{
		cfg:      cfg,
		log:      cfg.Logger,
		now:      cfg.Now,
		rand:     cfg.Rand,
		eval:     eval,
		certs:    cfg.Certs,
		sessions: make(map[sessionKey]*Session),
		pending:  make(map[string]*pendingKnock),
		done:     make(chan struct{}),
	}
	if m.log == nil {
		m.log = hclog.NewNullLogger()
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.rand == nil {
		m.rand = rand.Reader
	}
	if m.cfg.HandshakeTimeout <= 0 {
		m.cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if m.cfg.KnockWorkers <= 0 {
		m.cfg.KnockWorkers = DefaultKnockWorkers
	}
	if m.certs == nil {
		if cd, ok := cfg.Directory.(CertDirectory); ok {
			m.certs = NewCertChecker(cd)
		}
	}
	m.knockSlots = make(chan struct{}, m.cfg.KnockWorkers)
	m.notFoundSent = make(map[sessionKey]time.Time)
	m.optimistic.frames = make(map[optimisticID]optimisticPending)
	m.optimistic.waiting = make(map[optimisticID]optimisticSession)
	m.id.Store(cfg.Identity)
	if cfg.SessionDir != "" {
		if m.files, err = openSessionFiles(cfg.SessionDir, cfg.Identity); err != nil {
			return nil, fmt.Errorf("session: %w", err)
		}
		m.loadSessions()
		m.wg.Add(1)
		go m.cleanupLoop()
	}
	m.cache = newSessionCache(cfg.SessionCacheTTL, m.files)
	m.cache.onSaveError = func(err error) { m.log.Warn("saving the session cache", "error", err) }
	if err := m.cache.load(m.now()); err != nil {
		m.log.Warn("session cache not loaded; starting empty", "error", err)
	}
	return m, nil
}

// AMID returns the host's address.
func (m *Manager) AMID() protocol.AMID { return m.identity().AMID() }

func (m *Manager) identity() *identity.Identity { return m.id.Load() }

// SetIdentity replaces the host's identity, after its exchange key was
// rotated (and the registry told): sessions already open keep their
// ratchets; KNOCKs answered from now on use the new key.
func (m *Manager) SetIdentity(id *identity.Identity) error {
	if id == nil {
		return errors.New("session: SetIdentity: nil identity")
	}
	if id.AMID() != m.AMID() {
		return fmt.Errorf("session: SetIdentity: identity %s is not this host's agent %s", id.AMID(), m.AMID())
	}
	m.id.Store(id)
	if n := m.cache.drop(func(cacheEntry) bool { return true }); n > 0 {
		m.log.Info("session cache cleared after a key change", "entries", n)
	}
	return nil
}

// Run receives frames from the transport and handles them until ctx ends,
// the transport closes or Close is called. It returns nil on Close or a
// closed transport.
func (m *Manager) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-m.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		in, err := m.cfg.Transport.Recv(ctx)
		if err != nil {
			select {
			case <-m.done:
				return nil
			default:
			}
			if errors.Is(err, transport.ErrClosed) {
				return nil
			}
			return err
		}
		m.handle(ctx, in)
	}
}

// handle dispatches one inbound frame. KNOCKs go to a worker, because
// checking one asks the registry; everything else is quick or queued.
func (m *Manager) handle(ctx context.Context, in transport.Inbound) {
	switch in.Type {
	case protocol.MessageTypeKnock:
		select {
		case m.knockSlots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer func() { <-m.knockSlots }()
			m.handleKnock(ctx, in)
		}()
	case protocol.MessageTypeAccept, protocol.MessageTypeReject:
		m.handleAnswer(in)
	case protocol.MessageTypeMessage:
		m.handleMessage(ctx, in)
	case protocol.MessageTypeClose:
		m.handlePlainClose(in)
	case protocol.MessageTypeStatus:
		m.handlePlainStatus(in)
	case protocol.MessageTypeOptimistic:
		m.handleOptimistic(ctx, in)
	default:
		m.log.Debug("ignoring frame", "type", in.Type, "from", in.From.Short())
	}
}

// Close ends every session with reason, stops answering KNOCKs and waits
// for the Manager's goroutines. It does not close the transport.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.done)
	all := m.sessionList()
	for _, p := range m.pending {
		p.fail(ErrManagerClosed)
	}
	m.mu.Unlock()
	if m.files != nil {
		// Kept sessions resume at the next start: stop them quietly.
		for _, s := range all {
			s.stop()
		}
		m.wg.Wait()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range all {
		s.Close(ctx, protocol.CloseMaintenance)
	}
	m.wg.Wait()
	return nil
}

// sessionList returns the open sessions; m.mu must be held.
func (m *Manager) sessionList() []*Session {
	out := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		out = append(out, s)
	}
	return out
}

// Sessions returns the open sessions, oldest first.
func (m *Manager) Sessions() []*Session {
	m.mu.Lock()
	out := m.sessionList()
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b *Session) int { return a.created.Compare(b.created) })
	return out
}

// Session returns the open session with the given id, or nil.
func (m *Manager) Session(id string) *Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, s := range m.sessions {
		if k.id == id {
			return s
		}
	}
	return nil
}

// activeSessions counts the open sessions.
func (m *Manager) activeSessions() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

// addSession registers s; it fails once the Manager is closed.
func (m *Manager) addSession(s *Session) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrManagerClosed
	}
	m.sessions[sessionKey{s.peer, s.ID()}] = s
	m.mu.Unlock()
	s.mu.Lock()
	s.persistLocked()
	s.mu.Unlock()
	if m.cfg.OnSession != nil {
		m.cfg.OnSession(s)
	}
	s.start()
	return nil
}

func (m *Manager) removeSession(s *Session) {
	m.mu.Lock()
	if m.sessions[sessionKey{s.peer, s.ID()}] == s {
		delete(m.sessions, sessionKey{s.peer, s.ID()})
	}
	m.mu.Unlock()
}

// findSession returns the session of peer with id, or, for a peer whose
// envelopes carry its own session id (the TypeScript SDK), its only
// session.
func (m *Manager) findSession(peer protocol.AMID, id string) *Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.sessions[sessionKey{peer, id}]; s != nil {
		return s
	}
	var only *Session
	for k, s := range m.sessions {
		if k.peer == peer {
			if only != nil {
				return nil
			}
			only = s
		}
	}
	return only
}

// Policy returns a copy of the policy in force.
func (m *Manager) Policy() *Policy { return m.eval.Policy() }

// SetPolicy replaces the policy for KNOCKs evaluated from now on and clears
// the session cache. Open sessions are not affected.
func (m *Manager) SetPolicy(p *Policy) error {
	if err := m.eval.SetPolicy(p); err != nil {
		return err
	}
	m.cache.drop(func(cacheEntry) bool { return true })
	return nil
}

// Pause refuses new sessions (REJECT paused) until Resume; open sessions
// go on.
func (m *Manager) Pause() { m.eval.Pause() }

// Resume undoes Pause and reports whether new sessions are taken again
// (not after EmergencyStop).
func (m *Manager) Resume() bool { return m.eval.Resume() }

// State returns the circuit state.
func (m *Manager) State() CircuitState { return m.eval.State() }

// Kill ends the session with the given id (CLOSE session_killed) and
// reports whether it was open.
func (m *Manager) Kill(ctx context.Context, id string) bool {
	s := m.Session(id)
	if s == nil {
		return false
	}
	s.Close(ctx, protocol.CloseSessionKilled)
	return true
}

// EmergencyStop refuses every new session for the rest of the Manager's
// life and kills every open one.
func (m *Manager) EmergencyStop(ctx context.Context) {
	m.eval.Stop()
	m.mu.Lock()
	all := m.sessionList()
	m.mu.Unlock()
	for _, s := range all {
		s.Close(ctx, protocol.CloseSessionKilled)
	}
	m.log.Warn("emergency stop: all sessions killed, new sessions refused", "killed", len(all))
}

// AnnounceCapabilities tells every open session's peer what changed in the
// capabilities we offer since we last told it (a skill installed or
// removed): a capability_update, which the peer acknowledges or rejects
// with a capability_response.
func (m *Manager) AnnounceCapabilities(ctx context.Context) error {
	if m.cfg.Handler == nil {
		return nil
	}
	offered := m.cfg.Handler.Capabilities()
	var errs []error
	for _, s := range m.Sessions() {
		if err := s.announce(ctx, offered); err != nil {
			errs = append(errs, fmt.Errorf("session %s: %w", s.ID(), err))
		}
	}
	return errors.Join(errs...)
}

// offered returns the capabilities our Handler offers.
func (m *Manager) offered() []string {
	if m.cfg.Handler == nil {
		return nil
	}
	return slices.Clone(m.cfg.Handler.Capabilities())
}

// send writes one frame to peer.
func (m *Manager) send(ctx context.Context, to protocol.AMID, typ protocol.MessageType, payload []byte) error {
	return m.cfg.Transport.Send(ctx, to, typ, string(payload))
}
