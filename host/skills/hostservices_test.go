package skills

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

func TestHostServicesOnlyWhenGranted(t *testing.T) {
	t.Parallel()
	h := newTestHost(t, withOptions(func(o *Options) { o.Restart.MaxCrashes = 1 }))
	h.install(t, "hostskill")
	h.install(t, "testskill")
	h.install(t, "rogue")
	// Quarantine testskill so that the status shows a reason.
	wantError(t, dispatch(t, h, request("test/crash", ``), nil), protocol.CodeInternalError)

	t.Run("granted", func(t *testing.T) {
		resp := wantResponse(t, dispatch(t, h, request("test/host-status", ``), nil))
		var st struct {
			HostVersion string `json:"host_version"`
			AMID        string `json:"amid"`
			Skills      []struct {
				Name, State, Reason string
			} `json:"skills"`
		}
		if err := json.Unmarshal(resp.Results, &st); err != nil {
			t.Fatal(err)
		}
		if st.HostVersion != "0.2.0-test" || st.AMID != "test-amid" {
			t.Errorf("host = %q %q", st.HostVersion, st.AMID)
		}
		var names []string
		for _, sk := range st.Skills {
			names = append(names, sk.Name)
			switch sk.Name {
			case "hostskill":
				if sk.State != string(StateRunning) {
					t.Errorf("hostskill state = %q", sk.State)
				}
			case "testskill":
				if sk.State != string(StateQuarantined) || !strings.Contains(sk.Reason, "crashed 1 times") {
					t.Errorf("testskill = %+v, want quarantined with its reason", sk)
				}
			}
		}
		if !slices.Equal(names, []string{"hostskill", "rogue", "testskill"}) {
			t.Errorf("skills = %v", names)
		}
	})

	t.Run("not granted through the SDK", func(t *testing.T) {
		if err := h.Enable(t.Context(), "testskill"); err != nil {
			t.Fatal(err)
		}
		e := wantError(t, dispatch(t, h, request("test/ask-host", ``), nil), protocol.CodeForbidden)
		if !strings.Contains(e.Message, "not granted") {
			t.Errorf("message = %q", e.Message)
		}
	})

	t.Run("not granted, dialling the broker directly", func(t *testing.T) {
		resp := wantResponse(t, dispatch(t, h, request("test/dial-host", ``), nil))
		var rep struct {
			ConfiguredID uint32   `json:"configured_id"`
			Granted      []string `json:"granted"`
			Reached      []uint32 `json:"reached"`
		}
		if err := json.Unmarshal(resp.Results, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.ConfiguredID != 0 || len(rep.Granted) != 0 || len(rep.Reached) != 0 {
			t.Errorf("a skill without host_api got broker id %d, grants %v and reached %v", rep.ConfiguredID, rep.Granted, rep.Reached)
		}
	})
}
