package skills

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/agentmesh/agentmesh-go/sdk/skillrpc"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
)

// pluginProc is a running plugin process: the go-plugin client that owns
// it and the skill's RPC client.
type pluginProc struct {
	client *plugin.Client
	proto  plugin.ClientProtocol
	rpc    *skillrpc.Client
	pidv   int
}

var _ conn = (*pluginProc)(nil)

func (p *pluginProc) handle(ctx context.Context, req *skillpb.HandleRequest, onStatus func(*skillpb.Status)) (*skillpb.HandleEvent, error) {
	return p.rpc.Handle(ctx, req, onStatus)
}

// ping runs go-plugin's health check, which takes no context, bounded by
// ctx. A ping that outlives ctx ends when the process is killed.
func (p *pluginProc) ping(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- p.proto.Ping() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pluginProc) exited() bool { return p.client.Exited() }
func (p *pluginProc) kill()        { p.client.Kill() }
func (p *pluginProc) pid() int     { return p.pidv }

// binaryPath returns the plugin binary of sk after checking, without
// following links, the skills directory itself (its mode may have changed
// since New checked it), the directories down to the binary and the
// binary itself.
func (m *Manager) binaryPath(name, version, binary string) (string, error) {
	fi, err := os.Lstat(m.dir)
	if err != nil {
		return "", err
	}
	if err := checkOwnedPrivate(m.dir, fi, fs.ModeDir); err != nil {
		return "", err
	}
	rel := name + "/" + version + "/" + binary
	if err := checkTree(m.dir, rel, true); err != nil {
		return "", err
	}
	return filepath.Join(m.dir, filepath.FromSlash(rel)), nil
}

// checkBinary hashes the binary at path and compares the hash with the
// hex SHA-256 want, returning the raw hash for go-plugin's SecureConfig.
// A mismatch is an ErrChecksumMismatch naming the skill and the first
// hex digits of both hashes.
func checkBinary(name, path, want string) ([]byte, error) {
	got, err := hashFile(path)
	if err != nil {
		return nil, err
	}
	if gotHex := hex.EncodeToString(got); gotHex != want {
		return nil, fmt.Errorf("skill %s: %w: binary %s has SHA-256 %s…, but %s records %s…; refusing to run it (reinstall or upgrade the skill)",
			name, ErrChecksumMismatch, path, gotHex[:12], lockName, want[:12])
	}
	return got, nil
}

func hashFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// startPlugin starts sk's plugin and readies it for REQUESTs: it checks
// the binary against the lock, execs it through go-plugin (whose
// SecureConfig checks the hash again), checks that the binary was built
// with the installed skill.json, offers the host services the manifest
// lists, and sends the configuration. A process that fails any step is
// killed. Failures that a restart cannot cure are *quarantineError.
func (m *Manager) startPlugin(ctx context.Context, sk *skill) (conn, error) {
	e := sk.lockEntry()
	man := sk.manifest
	bin, err := m.binaryPath(e.Name, e.Version, man.Binary)
	if err != nil {
		return nil, &quarantineError{err, "its installed files are not safe to run"}
	}
	sum, err := checkBinary(e.Name, bin, e.SHA256)
	if err != nil {
		return nil, &quarantineError{err, peerChecksum}
	}
	cfgJSON, err := resolveConfig(man, e.Config)
	if err != nil {
		return nil, &quarantineError{err, "its configuration is invalid"}
	}
	p, err := m.launch(ctx, bin, sk.dir, sum, e.Name)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			p.kill()
		}
	}()
	if err := checkDescribe(ctx, p.rpc, e.Name, e.ManifestSHA256); err != nil {
		return nil, err
	}
	granted := slices.DeleteFunc(slices.Clone(man.Permissions.HostAPI), func(api string) bool {
		return !slices.Contains(skillrpc.HostAPIs(), api)
	})
	var brokerID uint32
	if len(granted) > 0 {
		brokerID = skillrpc.ServeHostServices(p.rpc.Broker(), m.hostSvc, granted)
	}
	err = p.rpc.Configure(ctx, &skillpb.ConfigureRequest{
		ConfigJson:           cfgJSON,
		HostServicesBrokerId: brokerID,
		GrantedHostApi:       granted,
		LogLevel:             skillLogLevel(m.log.GetLevel()),
	})
	if err != nil {
		return nil, fmt.Errorf("skill %s: %w", e.Name, err)
	}
	ok = true
	return p, nil
}

// peerChecksum is what peers are told of a skill quarantined because its
// files do not match the lock.
const peerChecksum = "its binary does not match the one installed"

// skillLogLevel is the level a skill logs at: the host's, so that the
// skill sends no lines the host would drop.
func skillLogLevel(l hclog.Level) string {
	switch l {
	case hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error:
		return l.String()
	case hclog.Off:
		return hclog.Error.String()
	}
	return ""
}

// launch execs the binary at bin in dir through go-plugin and dispenses
// the skill client. sum is the binary's expected SHA-256.
func (m *Manager) launch(ctx context.Context, bin, dir string, sum []byte, name string) (*pluginProc, error) {
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cfg := skillrpc.ClientConfig(cmd, sum, m.log.Named(name))
	cfg.StartTimeout = m.opts.StartTimeout
	client := plugin.NewClient(cfg)
	proto, err := client.Client()
	if err != nil {
		client.Kill()
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			// The binary changed between our check and go-plugin's.
			return nil, &quarantineError{fmt.Errorf("skill %s: %w: binary %s changed while starting", name, ErrChecksumMismatch, bin), peerChecksum}
		}
		return nil, fmt.Errorf("skill %s: starting the plugin: %w", name, err)
	}
	rpc, err := skillrpc.Dispense(proto)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("skill %s: %w", name, err)
	}
	pid := 0
	if rc := client.ReattachConfig(); rc != nil {
		pid = rc.Pid
	}
	if err := ctx.Err(); err != nil {
		client.Kill()
		return nil, err
	}
	return &pluginProc{client: client, proto: proto, rpc: rpc, pidv: pid}, nil
}

// checkDescribe asks the skill for the digest of the skill.json it was
// built with and compares it with the installed one's.
func checkDescribe(ctx context.Context, rpc *skillrpc.Client, name, want string) error {
	d, err := rpc.Describe(ctx)
	if err != nil {
		return fmt.Errorf("skill %s: %w", name, err)
	}
	if got := d.GetManifestSha256(); got != want {
		short := got
		if len(short) > 12 {
			short = short[:12]
		}
		return &quarantineError{fmt.Errorf("skill %s: %w: the binary was built with a %s whose SHA-256 is %s…, but the installed one's is %s…",
			name, ErrChecksumMismatch, ManifestFile, short, want[:12]), peerChecksum}
	}
	return nil
}
