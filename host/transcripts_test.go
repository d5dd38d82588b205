package host

import (
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/host/identity"
	"github.com/agentmesh/agentmesh-go/host/session"
	"github.com/agentmesh/agentmesh-go/host/transcript"
	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

func TestTranscriptRecorderAppends(t *testing.T) {
	id, err := identity.Generate(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st, err := transcript.Open(t.TempDir(), id, transcript.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	peer := id.AMID() // any well-formed AMID
	r := TranscriptRecorder{Store: st, Logger: logtest.Logger(t, "", hclog.Info)}
	at := time.Now().UTC().Truncate(time.Millisecond)
	r.Record(session.Recorded{SessionID: "sess_1", Peer: peer, Sent: true, Type: protocol.PayloadRequest,
		Envelope: []byte(`{"type":"request","sequence":0}`), Time: at})
	r.Record(session.Recorded{SessionID: "sess_1", Peer: peer, Type: protocol.PayloadResponse,
		Envelope: []byte(`{"type":"response","sequence":0}`), Time: at})
	got, err := st.Read("sess_1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Direction != transcript.Sent || got[1].Direction != transcript.Received ||
		got[0].Type != "request" || got[1].Peer != peer || !got[0].Time.Equal(at) {
		t.Fatalf("transcript %+v", got)
	}
	var env struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(got[1].Message, &env); err != nil || env.Type != "response" {
		t.Fatalf("message %s", got[1].Message)
	}
}
