package skillrpc

import (
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// allowedEnv lists the host environment variables a skill inherits. A
// skill gets nothing else of the host's environment (DESIGN.md §9): no
// credentials, proxies, AGENTMESH_HOME or PATH. A skill reaches the host's
// state only through host services.
var allowedEnv = []string{
	"HOME",   // where a skill with a filesystem permission resolves "~"
	"TMPDIR", // os.TempDir
	"LANG",   // locale, for messages a skill formats
	"LC_ALL", // locale override
	"TZ",     // time zone, for dates a skill reasons about
}

// allowedEnvWindows is added on Windows, where networking (go-plugin uses
// TCP there) fails without it.
var allowedEnvWindows = []string{"SYSTEMROOT"}

// AllowedEnv returns the names of the host environment variables passed to
// a skill.
func AllowedEnv() []string {
	names := append([]string(nil), allowedEnv...)
	if runtime.GOOS == "windows" {
		names = append(names, allowedEnvWindows...)
	}
	return names
}

// FilterEnv returns the entries of environ ("KEY=value", as os.Environ
// returns them) whose key is in [AllowedEnv].
func FilterEnv(environ []string) []string {
	allowed := AllowedEnv()
	var out []string
	for _, kv := range environ {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		for _, a := range allowed {
			if k == a || (runtime.GOOS == "windows" && strings.EqualFold(k, a)) {
				out = append(out, kv)
				break
			}
		}
	}
	return out
}

// ClientConfig returns the go-plugin configuration a host starts a skill
// with: the [Handshake], [PluginSet], gRPC only, AutoMTLS, and a
// SecureConfig that refuses to run the binary at cmd.Path unless its
// SHA-256 equals checksum (an empty checksum makes the start fail). The
// skill's environment is scrubbed: the allowlisted variables of the host's
// environment are appended to cmd.Env (the caller may set others on
// cmd.Env before) and nothing else is inherited.
//
// The client is managed, so plugin.CleanupClients kills it. The skill's
// stderr lines, hclog JSON written by package sdk, are logged to logger
// named after the binary, at their own level; other lines at debug, a Go
// panic at error. No line can crash the host: go-plugin's own parser of
// these lines is turned off (it panics on some malformed JSON), and
// Stderr is set to the parser that replaces it, so callers must not
// change Logger or Stderr. logger nil means hclog's default logger. The
// caller may change other fields, such as StartTimeout, before starting
// the client.
func ClientConfig(cmd *exec.Cmd, checksum []byte, logger hclog.Logger) *plugin.ClientConfig {
	cmd.Env = append(cmd.Env, FilterEnv(os.Environ())...)
	if logger == nil {
		logger = hclog.Default()
	}
	skill := filepath.Base(cmd.Path)
	return &plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: PluginSet(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SecureConfig: &plugin.SecureConfig{
			Checksum: append([]byte(nil), checksum...),
			Hash:     sha256.New(),
		},
		SkipHostEnv: true,
		Managed:     true,
		Logger:      &hostLogger{Logger: logger, skill: skill},
		Stderr:      &stderrLog{log: logger.Named(skill)},
	}
}
