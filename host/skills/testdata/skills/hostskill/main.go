// Command hostskill is a skill for the tests of package skills that is
// granted the status host service and reports what it says.
package main

import (
	"context"
	_ "embed"
	"os"

	"github.com/agentmesh/agentmesh-go/sdk"
)

//go:embed skill.json
var manifest []byte

type state struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

type status struct {
	HostVersion string  `json:"host_version"`
	AMID        string  `json:"amid"`
	Skills      []state `json:"skills"`
}

func main() {
	s := sdk.New(manifest)
	sdk.Handle(s, "test/host-status", func(ctx context.Context, req *sdk.Request[struct{}]) (status, error) {
		st, err := s.HostStatus(ctx)
		if err != nil {
			return status{}, err
		}
		out := status{HostVersion: st.HostVersion, AMID: st.AMID}
		for _, sk := range st.Skills {
			out.Skills = append(out.Skills, state{Name: sk.Name, State: sk.State, Reason: sk.QuarantineReason})
		}
		return out, nil
	})
	os.Exit(s.Main())
}
