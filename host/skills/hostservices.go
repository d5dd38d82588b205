package skills

import (
	"context"
	"time"

	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
)

// hostServices serves the HostServices of skill.proto to skills. It is
// offered to a skill over the plugin broker only when the skill's manifest
// lists a service in permissions.host_api, and then only the services
// listed (skillrpc.ServeHostServices gates each method).
type hostServices struct {
	skillpb.UnimplementedHostServicesServer
	m *Manager
}

var _ skillpb.HostServicesServer = (*hostServices)(nil)

// Status reports the host's version, AMID, uptime and every installed
// skill with its state and, when quarantined, the reason.
func (h *hostServices) Status(ctx context.Context, _ *skillpb.HostStatusRequest) (*skillpb.HostStatusResponse, error) {
	m := h.m
	resp := &skillpb.HostStatusResponse{
		HostVersion:   m.opts.HostVersion,
		UptimeSeconds: int64(time.Since(m.started) / time.Second),
	}
	if m.opts.AMID != nil {
		resp.Amid = m.opts.AMID()
	}
	for _, info := range m.List() {
		st := &skillpb.SkillState{Name: info.Name, Version: info.Version, State: string(info.State)}
		if info.State == StateQuarantined {
			st.QuarantineReason = info.Reason
		}
		resp.Skills = append(resp.Skills, st)
	}
	return resp, nil
}
