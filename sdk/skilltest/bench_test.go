package skilltest_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
	"github.com/agentmesh/agentmesh-go/sdk/skilltest"
	"github.com/agentmesh/agentmesh-go/sdk/skilltest/testdata/echo/echoskill"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// benchCases are the requests every Handle benchmark sends: a bare round
// trip, and one with three STATUS events before the RESPONSE.
var benchCases = []struct {
	name   string
	params echoskill.EchoParams
}{
	{"response", echoskill.EchoParams{Text: strings.Repeat("x", 256)}},
	{"3-statuses", echoskill.EchoParams{Text: strings.Repeat("x", 256), Steps: 3}},
}

func benchRequest(b *testing.B, p echoskill.EchoParams) *skillpb.HandleRequest {
	params, err := json.Marshal(p)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := json.Marshal(&protocol.Request{Intent: "test/echo", Parameters: params})
	if err != nil {
		b.Fatal(err)
	}
	return &skillpb.HandleRequest{RequestId: "bench", Intent: "test/echo", RequestJson: raw}
}

func benchHandle(b *testing.B, c *skillrpc.Client) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			req := benchRequest(b, bc.params)
			b.SetBytes(int64(len(req.RequestJson)))
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				ev, err := c.Handle(ctx, req, nil)
				if err != nil {
					b.Fatal(err)
				}
				if ev.GetResponse() == nil {
					b.Fatalf("got %v, want a RESPONSE", ev)
				}
			}
		})
	}
}

// BenchmarkHandleGRPC is one REQUEST through a real plugin process:
// go-plugin, AutoMTLS, a unix socket.
func BenchmarkHandleGRPC(b *testing.B) {
	bin := skilltest.Build(b, echoDir)
	pc := plugin.NewClient(skillrpc.ClientConfig(exec.Command(bin), fileSum(b, bin), hclog.NewNullLogger()))
	b.Cleanup(pc.Kill)
	rpc, err := pc.Client()
	if err != nil {
		b.Fatal(err)
	}
	c, err := skillrpc.Dispense(rpc)
	if err != nil {
		b.Fatal(err)
	}
	benchHandle(b, c)
}

// BenchmarkHandlePlainGRPC is the same service served in-process over
// plain gRPC on a unix socket: no go-plugin, no TLS, no second process.
func BenchmarkHandlePlainGRPC(b *testing.B) {
	p := echoskill.New().PluginForTest(nopWriter{}).(*skillrpc.SkillGRPCPlugin)
	sock := filepath.Join(b.TempDir(), "skill.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	skillpb.RegisterSkillServer(srv, p.Impl)
	go srv.Serve(ln)
	b.Cleanup(srv.Stop)
	benchHandle(b, dialUnix(b, sock, insecure.NewCredentials()))
}

// BenchmarkHandlePlainGRPCProcess is the same service over plain gRPC on a
// unix socket, served by a separate process, without and with TLS: what
// go-plugin costs on top of gRPC to another process is
// BenchmarkHandleGRPC minus the "tls" case.
func BenchmarkHandlePlainGRPCProcess(b *testing.B) {
	for _, useTLS := range []bool{false, true} {
		name := "plain"
		if useTLS {
			name = "tls"
		}
		b.Run(name, func(b *testing.B) {
			sock := filepath.Join(b.TempDir(), "skill.sock")
			cmd := exec.Command(skilltest.Build(b, echoDir))
			cmd.Env = append(os.Environ(), "ECHO_PLAIN_GRPC_SOCKET="+sock)
			if useTLS {
				cmd.Env = append(cmd.Env, "ECHO_PLAIN_GRPC_TLS=1")
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				b.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				cmd.Process.Kill()
				cmd.Wait()
			})
			line, err := bufio.NewReader(out).ReadString('\n')
			fields := strings.Fields(line)
			if err != nil || len(fields) == 0 || fields[0] != "ready" {
				b.Fatalf("plain server said %q: %v", line, err)
			}
			creds := insecure.NewCredentials()
			if useTLS {
				der, err := base64.StdEncoding.DecodeString(fields[1])
				if err != nil {
					b.Fatal(err)
				}
				cert, err := x509.ParseCertificate(der)
				if err != nil {
					b.Fatal(err)
				}
				pool := x509.NewCertPool()
				pool.AddCert(cert)
				creds = credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})
			}
			benchHandle(b, dialUnix(b, sock, creds))
		})
	}
}

func dialUnix(b *testing.B, sock string, creds credentials.TransportCredentials) *skillrpc.Client {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(creds))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return skillrpc.NewClient(conn, nil)
}

// BenchmarkHandleInProcess calls the handler function directly, with the
// parameters decoded and the results encoded as the SDK does.
func BenchmarkHandleInProcess(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			req := benchRequest(b, bc.params)
			var pr protocol.Request
			if err := json.Unmarshal(req.RequestJson, &struct {
				Parameters *json.RawMessage `json:"parameters"`
			}{&pr.Parameters}); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(req.RequestJson)))
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				r := &sdk.Request[echoskill.EchoParams]{Intent: "test/echo"}
				if err := json.Unmarshal(pr.Parameters, &r.Params); err != nil {
					b.Fatal(err)
				}
				res, err := echoskill.Echo(ctx, r)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := json.Marshal(res); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkColdStart starts the plugin as a host does (checksum, process,
// handshake with AutoMTLS), asks for its manifest and stops it.
func BenchmarkColdStart(b *testing.B) {
	bin := skilltest.Build(b, echoDir)
	sum := fileSum(b, bin)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		pc := plugin.NewClient(skillrpc.ClientConfig(exec.Command(bin), sum, hclog.NewNullLogger()))
		rpc, err := pc.Client()
		if err != nil {
			b.Fatal(err)
		}
		c, err := skillrpc.Dispense(rpc)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Describe(ctx); err != nil {
			b.Fatal(err)
		}
		pc.Kill()
	}
}

func fileSum(b *testing.B, path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return sum[:]
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
