package transport

import (
	"context"
	"errors"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/relay"
)

// Relay is a Transport over a relay connection.
type Relay struct {
	conn *relay.Conn
	log  hclog.Logger
}

// NewRelay returns a Transport that sends and receives through conn. Relay
// error frames, which name no frame, are logged at warning level; ICE
// signalling is not a session frame and is left to the direct path.
func NewRelay(conn *relay.Conn, log hclog.Logger) *Relay {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Relay{conn: conn, log: log}
}

// Send implements Transport.
func (r *Relay) Send(ctx context.Context, to protocol.AMID, typ protocol.MessageType, payload string) error {
	err := r.conn.Send(ctx, to, payload, typ, nil)
	if errors.Is(err, relay.ErrClosed) {
		return ErrClosed
	}
	return err
}

// Recv implements Transport.
func (r *Relay) Recv(ctx context.Context) (Inbound, error) {
	for {
		ev, err := r.conn.Receive(ctx)
		if err != nil {
			if errors.Is(err, relay.ErrClosed) {
				return Inbound{}, ErrClosed
			}
			return Inbound{}, err
		}
		switch ev := ev.(type) {
		case *relay.Message:
			return Inbound{From: ev.From, Type: ev.Type, Payload: ev.Payload}, nil
		case *relay.ErrorEvent:
			r.log.Warn("relay reported an error", "code", ev.Err.Code, "message", ev.Err.Message)
		}
	}
}
