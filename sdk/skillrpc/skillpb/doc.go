// Package skillpb holds the Go code that protoc generates from
// sdk/skillrpc/skill.proto: the Skill service every skill plugin serves and
// the HostServices service the host offers through the plugin broker.
//
// Use it through package skillrpc; regenerate it with go generate in
// sdk/skillrpc.
package skillpb
