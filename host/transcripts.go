package host

import (
	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/host/session"
	"github.com/agentmesh/agentmesh-go/host/transcript"
)

// TranscriptRecorder keeps every session's messages in the owner's
// encrypted transcripts.
type TranscriptRecorder struct {
	Store *transcript.Store
	// Logger receives failures to record; nil discards them. A failure
	// never stops a message.
	Logger hclog.Logger
}

var _ session.Recorder = TranscriptRecorder{}

// Record appends m to its session's transcript.
func (r TranscriptRecorder) Record(m session.Recorded) {
	dir := transcript.Received
	if m.Sent {
		dir = transcript.Sent
	}
	err := r.Store.Append(m.SessionID, transcript.Entry{
		Direction: dir, Peer: m.Peer, SessionID: m.SessionID, Type: string(m.Type),
		Message: m.Envelope, Time: m.Time,
	})
	if err != nil && r.Logger != nil {
		r.Logger.Warn("recording a message in the transcript", "session", m.SessionID, "error", err)
	}
}
