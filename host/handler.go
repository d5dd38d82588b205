// Package host assembles the AgentMesh host from its parts: the skill
// runtime, the session layer, the transport and the agent's keys.
package host

import (
	"context"
	"slices"

	"github.com/agentmesh/agentmesh-go/host/session"
	"github.com/agentmesh/agentmesh-go/host/skills"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// SkillHandler serves sessions' REQUESTs with the installed skills. What
// it offers follows installs, removals and enabling as they happen.
type SkillHandler struct {
	Skills *skills.Manager
}

var _ session.Handler = SkillHandler{}

// enabled returns the manifests of the enabled, working skills.
func (h SkillHandler) enabled() []*skills.Manifest {
	var out []*skills.Manifest
	for _, info := range h.Skills.List() {
		if info.Enabled && info.Manifest != nil {
			out = append(out, info.Manifest)
		}
	}
	return out
}

// Capabilities returns the schema ids the enabled skills' capabilities
// name, sorted, each once.
func (h SkillHandler) Capabilities() []string {
	var out []string
	for _, m := range h.enabled() {
		out = append(out, m.Schemas()...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Route returns the schema of the enabled skill that declares intent.
func (h SkillHandler) Route(intent string) (string, bool) {
	for _, m := range h.enabled() {
		if c := m.Capability(intent); c != nil {
			return c.Schema, true
		}
	}
	return "", false
}

// Intents returns the intents the enabled skills declare, sorted.
func (h SkillHandler) Intents() []string {
	var out []string
	for _, m := range h.enabled() {
		for _, c := range m.Capabilities {
			out = append(out, c.Intent)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// HandleRequest dispatches req to its skill (which validates it first).
func (h SkillHandler) HandleRequest(ctx context.Context, req *protocol.Request, meta session.RequestMeta, onStatus func(*protocol.Status)) protocol.Payload {
	answer, err := h.Skills.Dispatch(ctx, req, skills.DispatchMeta{
		SessionID: meta.SessionID, Peer: string(meta.Peer), Schema: meta.Schema,
	}, func(st protocol.Status) { onStatus(&st) })
	if err != nil {
		return &protocol.ErrorPayload{Code: protocol.CodeUnavailable, Message: err.Error()}
	}
	return answer
}
