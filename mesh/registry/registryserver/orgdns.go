package registryserver

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"
)

// DNS verification of an organization's domain: the admin publishes the
// challenge as a TXT record named _agentmesh.<domain>.

// dnsLookupTimeout bounds one TXT lookup.
const dnsLookupTimeout = 10 * time.Second

// txtMismatch is the answer when no TXT record holds the challenge.
const txtMismatch = "DNS TXT record not found or doesn't match"

// checkDomainTXT looks up the challenge record of domain through the
// configured resolver and reports whether one of its TXT records equals
// want. A record's strings are taken together (the resolver joins them)
// and surrounding quotes are ignored. When it fails, why is the message for
// the client: a missing or different record, or the resolver's failure.
func (s *Server) checkDomainTXT(ctx context.Context, domain, want string) (ok bool, why string) {
	ctx, cancel := context.WithTimeout(ctx, dnsLookupTimeout)
	defer cancel()
	// The trailing dot makes the name absolute, so no search domain of the
	// host's resolver configuration is tried.
	records, err := s.cfg.Resolver.LookupTXT(ctx, OrgChallengeLabel+domain+".")
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) {
			if de.IsNotFound {
				return false, txtMismatch
			}
			// Err alone leaves out the name and the resolver's address.
			return false, "DNS verification failed: " + de.Err
		}
		return false, "DNS verification failed: " + err.Error()
	}
	for _, rec := range records {
		if txtValue(rec) == want {
			return true, ""
		}
	}
	return false, txtMismatch
}

// txtValue is a TXT record's text without surrounding space and quotes.
func txtValue(rec string) string {
	v := strings.TrimSpace(rec)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return v
}
