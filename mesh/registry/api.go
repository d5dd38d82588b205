package registry

import "encoding/json"

// ErrorResponse is the body of every error the registry returns unless an
// endpoint says otherwise: {"error": "<text>"}. Code, when present, is a
// machine-readable error code such as "invalid_score" or
// "oauth_verification_failed".
type ErrorResponse struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

// Notification is something the registry tells an agent in the response to
// one of its own signed requests, such as that its one-time prekeys are
// running low.
type Notification struct {
	Type string `json:"type"`
	// OneTimePrekeysRemaining is set for NotificationLowPrekeys.
	OneTimePrekeysRemaining *int `json:"one_time_prekeys_remaining,omitempty"`
	// Threshold is the count below which the notification is sent.
	Threshold int `json:"threshold,omitempty"`
}

// Notification types.
const (
	// NotificationLowPrekeys: fewer than LowPrekeyThreshold one-time prekeys
	// are left; the agent should upload more.
	NotificationLowPrekeys = "low_prekeys"
)

// LowPrekeyThreshold is the count of unconsumed one-time prekeys below which
// the registry sends NotificationLowPrekeys.
const LowPrekeyThreshold = 10

// SuccessResponse is the body of a successful mutation that returns nothing
// else: {"success": true}.
type SuccessResponse struct {
	Success       bool           `json:"success"`
	Notifications []Notification `json:"notifications,omitempty"`
}

// Signed carries the timestamp signature of an agent-signed request: the
// agent's Ed25519 signature (padded base64) over the UTF-8 bytes of
// Timestamp, exactly as sent.
type Signed struct {
	Timestamp string `json:"timestamp"`
	Signature string `json:"signature"`
}

// DefaultRelayEndpoint is the relay an agent registers with when it names
// none.
const DefaultRelayEndpoint = "wss://relay.agentmesh.online/v1/connect"

// RegisterRequest is the body of POST /v1/registry/register.
type RegisterRequest struct {
	AMID              string   `json:"amid"`
	SigningPublicKey  string   `json:"signing_public_key"`
	ExchangePublicKey string   `json:"exchange_public_key"`
	DisplayName       *string  `json:"display_name,omitempty"`
	Capabilities      []string `json:"capabilities,omitempty"`
	RelayEndpoint     string   `json:"relay_endpoint,omitempty"`
	DirectEndpoint    *string  `json:"direct_endpoint,omitempty"`
	// VerificationToken is an OAuth access token; a valid one registers
	// the agent as verified.
	VerificationToken string `json:"verification_token,omitempty"`
	Signed
}

// RegisterResponse is the body of every answer to register.
type RegisterResponse struct {
	Success bool   `json:"success"`
	AMID    string `json:"amid"`
	Tier    Tier   `json:"tier"`
	// Certificate is the agent's certificate (PEM), issued when the agent
	// registered as verified.
	Certificate string `json:"certificate,omitempty"`
	// CertificateChain is the chain from the agent's certificate up to,
	// and including, the registry's root, each padded base64 of DER.
	CertificateChain []string `json:"certificate_chain,omitempty"`
	Error            string   `json:"error,omitempty"`
}

// AgentFlag is a warning the registry attaches to an agent in lookups.
type AgentFlag struct {
	Reason        string   `json:"reason"`
	FlaggedAt     string   `json:"flagged_at"`
	PreviousScore *float64 `json:"previous_score,omitempty"`
	CurrentScore  *float64 `json:"current_score,omitempty"`
}

// Flag reasons besides the reputation engine's rapid-change reasons.
const (
	FlagRevoked = "revoked"
)

// Reputation status values of AgentLookup.
const (
	ReputationRated   = "rated"
	ReputationUnrated = "unrated"
)

// AgentLookup is an agent as the registry describes it (GET
// /v1/registry/lookup, and the items of a search).
type AgentLookup struct {
	AMID              string   `json:"amid"`
	Tier              Tier     `json:"tier"`
	DisplayName       *string  `json:"display_name"`
	Organization      *string  `json:"organization"`
	SigningPublicKey  string   `json:"signing_public_key"`
	ExchangePublicKey string   `json:"exchange_public_key"`
	Capabilities      []string `json:"capabilities"`
	RelayEndpoint     string   `json:"relay_endpoint"`
	DirectEndpoint    *string  `json:"direct_endpoint"`
	Status            string   `json:"status"`
	ReputationScore   float64  `json:"reputation_score"`
	LastSeen          string   `json:"last_seen"`
	// Certificate is the agent's current certificate (PEM), if it has one.
	Certificate string `json:"certificate,omitempty"`
	// CertificateChain is the agent's certificate and its issuers up to the
	// root, each padded base64 of DER, leaf first.
	CertificateChain []string    `json:"certificate_chain,omitempty"`
	Flags            []AgentFlag `json:"flags,omitempty"`
	Revoked          bool        `json:"revoked,omitempty"`
	RatingsCount     int         `json:"ratings_count"`
	ReputationStatus string      `json:"reputation_status"`
}

// SearchQuery selects agents by capability (GET /v1/registry/search).
type SearchQuery struct {
	Capability string
	// TierMin keeps agents whose tier level is at most TierMin: 1 keeps
	// verified and organization agents, 2 (or 0, unset) keeps all.
	TierMin int
	// ReputationMin keeps agents whose shown score is at least this.
	ReputationMin float64
	Status        string
	Limit         int // default DefaultSearchLimit, at most MaxSearchLimit
	Offset        int
}

// Search limits.
const (
	DefaultSearchLimit = 20
	MaxSearchLimit     = 100
)

// SearchResponse is the body of a search. Rated agents come before unrated
// ones, each group by score, then by last seen.
type SearchResponse struct {
	Results []AgentLookup `json:"results"`
	Total   int           `json:"total"`
	Limit   int           `json:"limit"`
	Offset  int           `json:"offset"`
}

// StatusRequest is the body of POST /v1/registry/status.
type StatusRequest struct {
	AMID   string `json:"amid"`
	Status string `json:"status"`
	Signed
}

// CapabilitiesRequest is the body of POST /v1/registry/capabilities.
type CapabilitiesRequest struct {
	AMID         string   `json:"amid"`
	Capabilities []string `json:"capabilities"`
	Signed
}

// ExchangeKeyUpdate is the body of POST /v1/registry/exchange-key, which
// replaces the agent's registered X25519 exchange key. The timestamp
// signature does not cover the key, so KeySignature binds it: the agent's
// Ed25519 signature (padded base64) over ExchangeKeySigningBytes(AMID,
// ExchangePublicKey, Timestamp), with ExchangePublicKey exactly as sent.
type ExchangeKeyUpdate struct {
	AMID              string `json:"amid"`
	ExchangePublicKey string `json:"exchange_public_key"`
	Signed
	KeySignature string `json:"key_signature"`
}

// exchangeKeyContext starts the bytes an exchange key signature covers, so
// that no other signed message of the protocol can stand for one.
const exchangeKeyContext = "agentmesh/exchange-key"

// ExchangeKeySigningBytes returns what the key_signature of an exchange key
// update covers: the UTF-8 bytes of "agentmesh/exchange-key\n" + amid +
// "\n" + key + "\n" + timestamp, with key and timestamp exactly as they
// are sent.
func ExchangeKeySigningBytes(amid, key, timestamp string) []byte {
	return []byte(exchangeKeyContext + "\n" + amid + "\n" + key + "\n" + timestamp)
}

// Health is the body of GET /v1/health.
type Health struct {
	Status           string `json:"status"`
	Version          string `json:"version,omitempty"`
	AgentsRegistered int    `json:"agents_registered"`
	AgentsOnline     int    `json:"agents_online"`
	Message          string `json:"message,omitempty"`
}

// Stats is the body of GET /v1/registry/stats.
type Stats struct {
	TotalAgents       int            `json:"total_agents"`
	OnlineAgents      int            `json:"online_agents"`
	ByTier            map[string]int `json:"by_tier"`
	ByStatus          map[string]int `json:"by_status"`
	AverageReputation float64        `json:"average_reputation"`
}

// DIDDocument is an agent's W3C DID document (GET /v1/registry/did/{amid}).
// It is kept as raw JSON: its members follow the DID core vocabulary.
type DIDDocument = json.RawMessage
