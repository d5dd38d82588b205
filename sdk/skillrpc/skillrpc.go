// Package skillrpc is the contract between an AgentMesh host and its skill
// plugins: the gRPC services of skill.proto (generated into skillpb), the
// go-plugin handshake, the plugin set, and the adapters both sides use.
//
// A skill author never imports this package: package sdk serves the Skill
// service. The host starts a plugin with [ClientConfig], dispenses a
// [*Client] with [Dispense], and talks to the skill through the Client's
// methods, each of which takes the caller's context.
//
// # Versions
//
// The plugin protocol version ([ProtocolVersion]) is negotiated by
// go-plugin through [PluginSet]. Fields are added to skill.proto without a
// version change; a change an older peer could misread adds a new version
// to PluginSet, and the host keeps serving the old one as long as skills
// built with it are supported.
//
// # Regenerating skillpb
//
// With protoc 3.21 and the protoc-gen-go (matching go.mod's
// google.golang.org/protobuf) and protoc-gen-go-grpc generators on PATH,
// run go generate in this directory.
package skillrpc

//go:generate protoc --proto_path=. --go_out=skillpb --go_opt=paths=source_relative --go-grpc_out=skillpb --go-grpc_opt=paths=source_relative skill.proto

import (
	"context"
	"errors"

	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// ProtocolVersion is the newest plugin protocol version of this contract.
const ProtocolVersion = 1

// PluginName is the name under which a skill plugin is dispensed.
const PluginName = "skill"

// Handshake is the go-plugin handshake both sides share. The magic cookie
// is not a security measure: it only tells a skill binary started by hand
// that it is not meant to run alone.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "AGENTMESH_SKILL_PLUGIN",
	MagicCookieValue: "e0lFCGUA_KlT1DUGrQhQxAal4EfF7Xqd",
}

// PluginSet returns the plugin sets by protocol version, for the
// VersionedPlugins of a host's plugin.ClientConfig. The host side needs no
// implementation; a skill serves its own set (see [ServePluginSet]).
func PluginSet() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &SkillGRPCPlugin{}},
	}
}

// ServePluginSet returns the plugin sets a skill passes as the
// VersionedPlugins of its plugin.ServeConfig.
func ServePluginSet(p *SkillGRPCPlugin) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: p},
	}
}

// SkillGRPCPlugin is the go-plugin plugin of the Skill service. It serves
// only over gRPC.
type SkillGRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin

	// Impl serves the Skill service in the plugin process; the host leaves
	// it nil.
	Impl skillpb.SkillServer

	// UseBroker, when set, is called in the plugin process with the broker
	// to the host before the service is registered. The skill keeps it to
	// reach host services with [DialHostServices].
	UseBroker func(*plugin.GRPCBroker)
}

var _ plugin.GRPCPlugin = (*SkillGRPCPlugin)(nil)

// GRPCServer registers Impl on s. It is called by go-plugin in the plugin
// process.
func (p *SkillGRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("skillrpc: SkillGRPCPlugin.Impl is nil")
	}
	if p.UseBroker != nil {
		p.UseBroker(broker)
	}
	skillpb.RegisterSkillServer(s, p.Impl)
	return nil
}

// GRPCClient returns a *Client over conn. It is called by go-plugin in the
// host when the plugin is dispensed; ctx ends when the plugin process
// exits.
func (p *SkillGRPCPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return NewClient(conn, broker), nil
}
