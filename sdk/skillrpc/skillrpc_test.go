package skillrpc_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"os/exec"
	"slices"
	"testing"

	"github.com/agentmesh/agentmesh-go/sdk/skillrpc"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

func TestClientConfig(t *testing.T) {
	t.Setenv("HOME", "/home/skill")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
	t.Setenv("AGENTMESH_HOME", "/home/skill/.agentmesh")
	cmd := exec.Command("/bin/true")
	cmd.Env = []string{"EXTRA=1"}
	sum := sha256.Sum256([]byte("binary"))
	logger := hclog.New(&hclog.LoggerOptions{Name: "host-under-test"})
	cfg := skillrpc.ClientConfig(cmd, sum[:], logger)

	if cfg.HandshakeConfig != skillrpc.Handshake {
		t.Errorf("got handshake %+v", cfg.HandshakeConfig)
	}
	if _, ok := cfg.VersionedPlugins[skillrpc.ProtocolVersion][skillrpc.PluginName]; !ok {
		t.Errorf("got plugins %v, want %s at version %d", cfg.VersionedPlugins, skillrpc.PluginName, skillrpc.ProtocolVersion)
	}
	if !slices.Equal(cfg.AllowedProtocols, []plugin.Protocol{plugin.ProtocolGRPC}) {
		t.Errorf("got protocols %v, want gRPC only", cfg.AllowedProtocols)
	}
	if !cfg.AutoMTLS || !cfg.SkipHostEnv || !cfg.Managed || cfg.Cmd != cmd {
		t.Errorf("got AutoMTLS %v SkipHostEnv %v Managed %v", cfg.AutoMTLS, cfg.SkipHostEnv, cfg.Managed)
	}
	if cfg.Logger == nil || cfg.Logger.Name() != "host-under-test" || cfg.Stderr == nil {
		t.Errorf("got Logger %v and Stderr %v, want the host's logger and the stderr parser", cfg.Logger, cfg.Stderr)
	}
	if cfg.SecureConfig == nil || string(cfg.SecureConfig.Checksum) != string(sum[:]) || cfg.SecureConfig.Hash == nil {
		t.Fatalf("got SecureConfig %+v", cfg.SecureConfig)
	}
	sum[0] ^= 1
	if cfg.SecureConfig.Checksum[0] == sum[0] {
		t.Error("SecureConfig shares the caller's checksum slice")
	}
	if cfg.SyncStdout != nil || cfg.SyncStderr != nil {
		t.Error("SyncStdout or SyncStderr set")
	}
	if want := []string{"EXTRA=1", "HOME=/home/skill"}; !slices.Equal(filterPrefix(cmd.Env, "EXTRA=", "HOME=", "AWS_", "AGENTMESH_"), want) {
		t.Errorf("got env %q, want %q", cmd.Env, want)
	}
}

func filterPrefix(env []string, prefixes ...string) []string {
	var out []string
	for _, kv := range env {
		for _, p := range prefixes {
			if len(kv) >= len(p) && kv[:len(p)] == p {
				out = append(out, kv)
			}
		}
	}
	return out
}

func TestFilterEnv(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{name: "allowlisted kept in order", in: []string{"TZ=UTC", "PATH=/bin", "HOME=/h", "LANG=C"}, want: []string{"TZ=UTC", "HOME=/h", "LANG=C"}},
		{name: "secrets dropped", in: []string{"GITHUB_TOKEN=x", "SSH_AUTH_SOCK=/s", "HTTPS_PROXY=p"}, want: nil},
		{name: "prefix is not a match", in: []string{"HOMEDIR=/x", "TZDATA=y"}, want: nil},
		{name: "malformed entries dropped", in: []string{"HOME", "=x"}, want: nil},
		{name: "empty value kept", in: []string{"TMPDIR="}, want: []string{"TMPDIR="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := skillrpc.FilterEnv(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// scriptedSkill answers Handle with a fixed list of events, then err.
type scriptedSkill struct {
	skillpb.UnimplementedSkillServer
	events []*skillpb.HandleEvent
	err    error
	block  bool
}

func (s *scriptedSkill) Handle(_ *skillpb.HandleRequest, stream grpc.ServerStreamingServer[skillpb.HandleEvent]) error {
	for _, ev := range s.events {
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
	if s.block {
		<-stream.Context().Done()
	}
	return s.err
}

func dialSkill(t *testing.T, impl skillpb.SkillServer) *skillrpc.Client {
	t.Helper()
	ln := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	skillpb.RegisterSkillServer(srv, impl)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return skillrpc.NewClient(conn, nil)
}

func statusEv(p float64) *skillpb.HandleEvent {
	return &skillpb.HandleEvent{Event: &skillpb.HandleEvent_Status{Status: &skillpb.Status{Progress: p}}}
}

func TestClientHandle(t *testing.T) {
	resp := &skillpb.HandleEvent{Event: &skillpb.HandleEvent_Response{Response: &skillpb.Response{Status: "success", ResultsJson: []byte(`{}`)}}}
	errEv := &skillpb.HandleEvent{Event: &skillpb.HandleEvent_Error{Error: &skillpb.Error{Code: "not_found", Message: "m"}}}
	tests := []struct {
		name         string
		skill        *scriptedSkill
		wantStatuses []float64
		wantFinal    *skillpb.HandleEvent
		wantErr      error
		wantCode     codes.Code
	}{
		{name: "statuses then response", skill: &scriptedSkill{events: []*skillpb.HandleEvent{statusEv(0.5), statusEv(1), resp}}, wantStatuses: []float64{0.5, 1}, wantFinal: resp},
		{name: "error event", skill: &scriptedSkill{events: []*skillpb.HandleEvent{errEv}}, wantFinal: errEv},
		{name: "final event ends reading", skill: &scriptedSkill{events: []*skillpb.HandleEvent{resp, statusEv(1)}, block: true}, wantFinal: resp},
		{name: "stream ends without final event", skill: &scriptedSkill{events: []*skillpb.HandleEvent{statusEv(0.5)}}, wantStatuses: []float64{0.5}, wantErr: skillrpc.ErrNoFinalEvent},
		{name: "empty event", skill: &scriptedSkill{events: []*skillpb.HandleEvent{{}}}},
		{name: "skill fails the call", skill: &scriptedSkill{err: status.Error(codes.Internal, "boom")}, wantCode: codes.Internal},
		{name: "deadline seen by the skill", skill: &scriptedSkill{err: status.Error(codes.DeadlineExceeded, "late")}, wantErr: context.DeadlineExceeded, wantCode: codes.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialSkill(t, tt.skill)
			var got []float64
			final, err := c.Handle(t.Context(), &skillpb.HandleRequest{Intent: "x/y"}, func(st *skillpb.Status) {
				got = append(got, st.GetProgress())
			})
			if !slices.Equal(got, tt.wantStatuses) {
				t.Errorf("got statuses %v, want %v", got, tt.wantStatuses)
			}
			if tt.wantFinal != nil {
				if err != nil {
					t.Fatalf("got error %v", err)
				}
				if final.GetResponse().GetStatus() != tt.wantFinal.GetResponse().GetStatus() || final.GetError().GetCode() != tt.wantFinal.GetError().GetCode() {
					t.Errorf("got final %v, want %v", final, tt.wantFinal)
				}
				return
			}
			if err == nil || final != nil {
				t.Fatalf("got final %v and error %v, want only an error", final, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
			if st, ok := status.FromError(err); tt.wantCode != codes.OK && (!ok || st.Code() != tt.wantCode) {
				t.Errorf("got %v, want gRPC code %s", err, tt.wantCode)
			}
		})
	}
}

func TestClientHandleContext(t *testing.T) {
	c := dialSkill(t, &scriptedSkill{events: []*skillpb.HandleEvent{statusEv(0)}, block: true})
	ctx, cancel := context.WithCancel(t.Context())
	_, err := c.Handle(ctx, &skillpb.HandleRequest{}, func(*skillpb.Status) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want an error wrapping context.Canceled", err)
	}
}

// hostStatus answers Status with a fixed version.
type hostStatus struct {
	skillpb.UnimplementedHostServicesServer
}

func (hostStatus) Status(context.Context, *skillpb.HostStatusRequest) (*skillpb.HostStatusResponse, error) {
	return &skillpb.HostStatusResponse{HostVersion: "1.2.3"}, nil
}

func TestHostServices(t *testing.T) {
	tests := []struct {
		name     string
		granted  []string
		wantID   bool
		wantCode codes.Code
	}{
		{name: "granted", granted: []string{skillrpc.HostAPIStatus}, wantID: true, wantCode: codes.OK},
		{name: "other service granted", granted: []string{"transcripts"}, wantID: true, wantCode: codes.PermissionDenied},
		{name: "nothing granted", wantID: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			skillSide := make(chan *plugin.GRPCBroker, 1)
			p := &skillrpc.SkillGRPCPlugin{
				Impl:      &scriptedSkill{},
				UseBroker: func(b *plugin.GRPCBroker) { skillSide <- b },
			}
			gc, gs := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{skillrpc.PluginName: p})
			t.Cleanup(func() {
				gc.Close()
				<-gs.DoneCh
			})
			c, err := skillrpc.Dispense(gc)
			if err != nil {
				t.Fatal(err)
			}
			id := skillrpc.ServeHostServices(c.Broker(), hostStatus{}, tt.granted)
			if (id != 0) != tt.wantID {
				t.Fatalf("got broker id %d, want one: %v", id, tt.wantID)
			}
			if id == 0 {
				return
			}
			host, closer, err := skillrpc.DialHostServices(<-skillSide, id)
			if err != nil {
				t.Fatal(err)
			}
			defer closer.Close()
			resp, err := host.Status(t.Context(), &skillpb.HostStatusRequest{})
			if got := status.Code(err); got != tt.wantCode {
				t.Fatalf("got %v, want code %s", err, tt.wantCode)
			}
			if err == nil && resp.GetHostVersion() != "1.2.3" {
				t.Errorf("got %v", resp)
			}
		})
	}
}

func TestHostAPIs(t *testing.T) {
	if got, want := skillrpc.HostAPIs(), []string{"status"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDialHostServicesWithoutID(t *testing.T) {
	if _, _, err := skillrpc.DialHostServices(nil, 0); err == nil {
		t.Error("got no error for broker id 0")
	}
}

func TestPluginWithoutImpl(t *testing.T) {
	if err := (&skillrpc.SkillGRPCPlugin{}).GRPCServer(nil, grpc.NewServer()); err == nil {
		t.Error("got no error serving a plugin without Impl")
	}
}
