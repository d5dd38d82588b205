// Package dnstest runs an authoritative DNS server on loopback for tests that
// look up TXT records, such as an organization's domain challenge: the
// internet's DNS cannot be reached from tests, so the server speaks the
// real protocol on 127.0.0.1 and a resolver sends every query to it.
package dnstest

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Server is an authoritative DNS server on 127.0.0.1 (UDP) that answers
// TXT queries with the records a test sets, NXDOMAIN for other names and
// SERVFAIL for names set to fail.
type Server struct {
	conn net.PacketConn

	mu      sync.Mutex
	txt     map[string][][]string // by lower-case absolute name; each record a list of strings
	failing map[string]bool
}

// New starts a Server, stopped when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &Server{conn: pc, txt: make(map[string][][]string), failing: make(map[string]bool)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.serve()
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return d
}

func dnsKey(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".")) + "."
}

// SetTXT makes name answer with the given TXT records, each made of one or
// more strings; no records makes it NXDOMAIN again.
func (d *Server) SetTXT(name string, records ...[]string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(records) == 0 {
		delete(d.txt, dnsKey(name))
	} else {
		d.txt[dnsKey(name)] = records
	}
}

// Fail makes queries for name answer SERVFAIL.
func (d *Server) Fail(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failing[dnsKey(name)] = true
}

// Resolver returns a pure-Go resolver that sends every query to d.
func (d *Server) Resolver() *net.Resolver {
	addr := d.conn.LocalAddr().String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "udp", addr)
		},
	}
}

func (d *Server) serve() {
	buf := make([]byte, 4096)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp, err := d.answer(buf[:n]); err == nil {
			d.conn.WriteTo(resp, from)
		}
	}
}

func (d *Server) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	key := dnsKey(q.Name.String())
	d.mu.Lock()
	records, failing := d.txt[key], d.failing[key]
	d.mu.Unlock()

	rh := dnsmessage.Header{
		ID: h.ID, Response: true, Authoritative: true,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true,
	}
	switch {
	case failing:
		rh.RCode = dnsmessage.RCodeServerFailure
	case records == nil:
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if q.Type == dnsmessage.TypeTXT && !failing {
		for _, rec := range records {
			err := b.TXTResource(dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeTXT, Class: dnsmessage.ClassINET},
				dnsmessage.TXTResource{TXT: rec})
			if err != nil {
				return nil, err
			}
		}
	}
	return b.Finish()
}
