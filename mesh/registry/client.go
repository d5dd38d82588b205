package registry

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// DefaultBaseURL is the public registry's API root.
const DefaultBaseURL = "https://agentmesh.online/v1"

// maxResponseSize bounds what the client reads of a response body.
const maxResponseSize = 4 << 20

// Client talks to one registry. Its methods are safe for concurrent use.
type Client struct {
	base string
	http *http.Client
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithHTTPClient makes the client send requests through hc.
func WithHTTPClient(hc *http.Client) ClientOption {
	return func(c *Client) { c.http = hc }
}

// NewClient returns a client for the registry whose API root is baseURL,
// such as "https://agentmesh.online/v1" or "http://127.0.0.1:8080/v1".
func NewClient(baseURL string, opts ...ClientOption) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("registry: base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("registry: base URL %q: scheme must be http or https", baseURL)
	}
	c := &Client{base: strings.TrimRight(baseURL, "/"), http: &http.Client{Timeout: 30 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// BaseURL returns the API root the client talks to.
func (c *Client) BaseURL() string { return c.base }

// APIError is a response with a status other than the one an endpoint
// answers on success.
type APIError struct {
	StatusCode int
	// Message is the registry's "error" text, or the body if it was not
	// JSON.
	Message string
	// Code is the registry's machine-readable code, when it sent one.
	Code string
}

func (e *APIError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("registry: %d %s: %s", e.StatusCode, e.Code, e.Message)
	}
	return fmt.Sprintf("registry: %d: %s", e.StatusCode, e.Message)
}

// IsStatus reports whether err is an *APIError with the given status code.
func IsStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == status
}

// do sends a request with body in (JSON, unless nil) and decodes a response
// with status want into out (unless nil). Any other status is an *APIError.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any, want int) error {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("registry: encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("registry: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("registry: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		return fmt.Errorf("registry: %s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode != want {
		ae := &APIError{StatusCode: resp.StatusCode}
		var er ErrorResponse
		if json.Unmarshal(data, &er) == nil && er.Error != "" {
			ae.Message, ae.Code = er.Error, er.Code
		} else {
			ae.Message = strings.TrimSpace(string(data))
		}
		return ae
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("registry: %s %s: decode response: %w", method, path, err)
		}
	}
	return nil
}

// Signer signs an agent's requests. Every signature is over a timestamp
// later than the last one it made, so two requests never share a signature
// (the registry refuses a signature it has seen).
type Signer struct {
	AMID protocol.AMID
	pub  ed25519.PublicKey
	sign func(msg []byte) []byte
	now  func() time.Time

	mu   sync.Mutex
	last time.Time
}

// NewSigner returns a signer for the agent whose signing key is key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return NewSignerFunc(key.Public().(ed25519.PublicKey), func(msg []byte) []byte { return ed25519.Sign(key, msg) })
}

// NewSignerFunc returns a signer for the agent whose signing public key is
// pub, signing through sign, such as an identity's Sign method, so that the
// private key never leaves its keeper.
func NewSignerFunc(pub ed25519.PublicKey, sign func(msg []byte) []byte) *Signer {
	return &Signer{AMID: protocol.DeriveAMID(pub), pub: pub, sign: sign, now: time.Now}
}

// PublicKey returns the signing public key in its wire form.
func (s *Signer) PublicKey() string {
	return protocol.EncodeSigningPublicKey(s.pub)
}

// Sign returns a fresh timestamp and the signature over it.
func (s *Signer) Sign() Signed {
	s.mu.Lock()
	t := s.now().UTC().Truncate(time.Millisecond)
	if !t.After(s.last) {
		t = s.last.Add(time.Millisecond)
	}
	s.last = t
	s.mu.Unlock()
	ts := protocol.FormatSigningTimestamp(t)
	return Signed{Timestamp: ts, Signature: protocol.B64.EncodeToString(s.sign([]byte(ts)))}
}

// SignBytes signs arbitrary bytes with the agent's key, padded base64.
func (s *Signer) SignBytes(b []byte) string {
	return protocol.B64.EncodeToString(s.sign(b))
}
