package skillrpc

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Host API names: the values of permissions.host_api in skill.json that
// this contract serves.
const (
	HostAPIStatus = "status"
)

// hostAPIByMethod maps each HostServices method to the host_api name that
// grants it. A method missing here is never served.
var hostAPIByMethod = map[string]string{
	skillpb.HostServices_Status_FullMethodName: HostAPIStatus,
}

// HostAPIs returns the host_api names this contract can serve.
func HostAPIs() []string {
	names := make([]string, 0, len(hostAPIByMethod))
	for _, n := range hostAPIByMethod {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// ServeHostServices serves impl to the plugin over broker and returns the
// broker id to send in ConfigureRequest.host_services_broker_id. Only the
// methods whose host_api name is in granted are served; the others fail
// with codes.PermissionDenied. When granted is empty nothing is served and
// the id is 0.
//
// The server runs until the broker closes, which go-plugin does when the
// plugin client is killed.
func ServeHostServices(broker *plugin.GRPCBroker, impl skillpb.HostServicesServer, granted []string) uint32 {
	if broker == nil || impl == nil || len(granted) == 0 {
		return 0
	}
	allowed := slices.Clone(granted)
	gate := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		name, ok := hostAPIByMethod[info.FullMethod]
		if !ok || !slices.Contains(allowed, name) {
			return nil, status.Errorf(codes.PermissionDenied, "host service %q not granted in permissions.host_api", name)
		}
		return handler(ctx, req)
	}
	gateStream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		name, ok := hostAPIByMethod[info.FullMethod]
		if !ok || !slices.Contains(allowed, name) {
			return status.Errorf(codes.PermissionDenied, "host service %q not granted in permissions.host_api", name)
		}
		return handler(srv, ss)
	}
	id := broker.NextId()
	go broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		opts = append(opts, grpc.ChainUnaryInterceptor(gate), grpc.ChainStreamInterceptor(gateStream))
		s := grpc.NewServer(opts...)
		skillpb.RegisterHostServicesServer(s, impl)
		return s
	})
	return id
}

// DialHostServices connects a skill to the host services served under id.
// Close the returned io.Closer when done with the client.
func DialHostServices(broker *plugin.GRPCBroker, id uint32) (skillpb.HostServicesClient, io.Closer, error) {
	if broker == nil || id == 0 {
		return nil, nil, fmt.Errorf("dial host services: no broker id")
	}
	conn, err := broker.Dial(id)
	if err != nil {
		return nil, nil, fmt.Errorf("dial host services: %w", err)
	}
	return skillpb.NewHostServicesClient(conn), conn, nil
}
