package sdk

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/agentmesh/agentmesh-go/sdk/skillrpc"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
)

// ErrHostAPINotGranted is returned when a skill calls a host service that
// the host did not grant it: skill.json must list the service in
// permissions.host_api, and the host must offer it.
var ErrHostAPINotGranted = errors.New("host service not granted")

// HostStatus is the host's state as the status host service reports it.
type HostStatus struct {
	// HostVersion is the version of the AgentMesh host.
	HostVersion string
	// AMID is the host agent's address; empty before it has an identity.
	AMID string
	// Uptime is how long the host has been running.
	Uptime time.Duration
	// Skills lists the installed skills.
	Skills []SkillState
}

// SkillState is one installed skill as the host sees it.
type SkillState struct {
	Name    string
	Version string
	// State is, for example, "running", "stopped", "disabled" or
	// "quarantined".
	State string
	// QuarantineReason says why the skill is quarantined; empty otherwise.
	QuarantineReason string
}

// HostStatus asks the host for its state. It needs "status" in
// permissions.host_api; without it, it returns an error wrapping
// ErrHostAPINotGranted.
func (s *Skill) HostStatus(ctx context.Context) (*HostStatus, error) {
	host, err := s.hostClient(skillrpc.HostAPIStatus)
	if err != nil {
		return nil, err
	}
	resp, err := host.Status(ctx, &skillpb.HostStatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("host status: %w", err)
	}
	st := &HostStatus{
		HostVersion: resp.GetHostVersion(),
		AMID:        resp.GetAmid(),
		Uptime:      time.Duration(resp.GetUptimeSeconds()) * time.Second,
	}
	for _, sk := range resp.GetSkills() {
		st.Skills = append(st.Skills, SkillState{
			Name:             sk.GetName(),
			Version:          sk.GetVersion(),
			State:            sk.GetState(),
			QuarantineReason: sk.GetQuarantineReason(),
		})
	}
	return st, nil
}

// hostClient returns the client of the host services, connecting on first
// use, if the host granted api.
func (s *Skill) hostClient(api string) (skillpb.HostServicesClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.granted, api) || s.hostID == 0 || s.broker == nil {
		return nil, fmt.Errorf("host service %q: %w", api, ErrHostAPINotGranted)
	}
	if s.host == nil {
		host, closer, err := skillrpc.DialHostServices(s.broker, s.hostID)
		if err != nil {
			return nil, fmt.Errorf("host service %q: %w", api, err)
		}
		s.host, s.hostCloser = host, closer
	}
	return s.host, nil
}
