package skillrpc

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrNoFinalEvent is returned by [Client.Handle] when the skill ends the
// stream without a Response or Error event.
var ErrNoFinalEvent = errors.New("skill ended the stream without a response or error")

// Client is the host's view of one skill plugin. Its methods are safe for
// concurrent use and each takes the caller's context: cancelling it
// cancels the call in the skill.
type Client struct {
	rpc    skillpb.SkillClient
	broker *plugin.GRPCBroker
}

// NewClient returns a Client over conn. broker may be nil when no host
// service is offered (for example in tests over a plain gRPC connection).
// Hosts normally get a Client from [Dispense].
func NewClient(conn grpc.ClientConnInterface, broker *plugin.GRPCBroker) *Client {
	return &Client{rpc: skillpb.NewSkillClient(conn), broker: broker}
}

// Dispense returns the Client of a started plugin.
func Dispense(pc plugin.ClientProtocol) (*Client, error) {
	raw, err := pc.Dispense(PluginName)
	if err != nil {
		return nil, fmt.Errorf("dispense %s plugin: %w", PluginName, err)
	}
	c, ok := raw.(*Client)
	if !ok {
		return nil, fmt.Errorf("dispense %s plugin: got %T, want *skillrpc.Client", PluginName, raw)
	}
	return c, nil
}

// Broker returns the broker to the plugin process, over which the host
// serves host services ([ServeHostServices]); nil when the Client was made
// without one.
func (c *Client) Broker() *plugin.GRPCBroker { return c.broker }

// Describe returns the skill's manifest and its digest.
func (c *Client) Describe(ctx context.Context) (*skillpb.DescribeResponse, error) {
	resp, err := c.rpc.Describe(ctx, &skillpb.DescribeRequest{})
	if err != nil {
		return nil, callErr(ctx, "describe", err)
	}
	return resp, nil
}

// Configure hands the skill its configuration and granted host services.
func (c *Client) Configure(ctx context.Context, req *skillpb.ConfigureRequest) error {
	if _, err := c.rpc.Configure(ctx, req); err != nil {
		return callErr(ctx, "configure", err)
	}
	return nil
}

// Handle sends one REQUEST to the skill. It calls onStatus (when not nil)
// for each Status event, in order, on the calling goroutine, and returns
// the final event, which holds either a Response or an Error.
//
// The error is non-nil only when no final event arrived: the stream broke
// (the plugin crashed or was killed), the skill ended it without a final
// event ([ErrNoFinalEvent]), or ctx ended, in which case the error wraps
// ctx.Err().
func (c *Client) Handle(ctx context.Context, req *skillpb.HandleRequest, onStatus func(*skillpb.Status)) (*skillpb.HandleEvent, error) {
	// Cancelling when done releases the stream even if the skill has not
	// closed it yet after its final event.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.Handle(ctx, req)
	if err != nil {
		return nil, callErr(ctx, "handle", err)
	}
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return nil, fmt.Errorf("skill: handle %q: %w", req.GetIntent(), ErrNoFinalEvent)
		}
		if err != nil {
			return nil, callErr(ctx, "handle", err)
		}
		switch e := ev.GetEvent().(type) {
		case *skillpb.HandleEvent_Status:
			if onStatus != nil && e.Status != nil {
				onStatus(e.Status)
			}
		case *skillpb.HandleEvent_Response, *skillpb.HandleEvent_Error:
			return ev, nil
		default:
			return nil, fmt.Errorf("skill: handle %q: event with no status, response or error", req.GetIntent())
		}
	}
}

// Shutdown asks the skill to stop: it refuses new requests, lets the ones
// in flight finish until ctx ends, cancels the rest, and then exits. The
// host still kills the process afterwards (go-plugin's Client.Kill) in
// case it does not.
func (c *Client) Shutdown(ctx context.Context) error {
	if _, err := c.rpc.Shutdown(ctx, &skillpb.ShutdownRequest{}); err != nil {
		return callErr(ctx, "shutdown", err)
	}
	return nil
}

// callErr wraps the error of a call, preferring ctx's own error when the
// call failed because ctx ended. A deadline can be noticed by the skill's
// side first, so a DeadlineExceeded status also wraps
// context.DeadlineExceeded.
func callErr(ctx context.Context, call string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("skill: %s: %w", call, ctxErr)
	}
	if status.Code(err) == codes.DeadlineExceeded {
		return fmt.Errorf("skill: %s: %w: %w", call, context.DeadlineExceeded, err)
	}
	return fmt.Errorf("skill: %s: %w", call, err)
}
