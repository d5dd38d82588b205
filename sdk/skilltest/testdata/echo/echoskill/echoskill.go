// Package echoskill is a skill for testing the SDK: each intent exercises
// one behaviour of a skill. Command echo, in the parent directory, serves it.
package echoskill

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk"
	"github.com/hashicorp/go-hclog"
)

//go:embed skill.json
var manifest []byte

// EchoParams are the parameters of test/echo.
type EchoParams struct {
	Text  string `json:"text"`
	Steps int    `json:"steps"`
}

// EchoResult is the results of test/echo.
type EchoResult struct {
	Text  string `json:"text"`
	Steps int    `json:"steps"`
}

// Echo handles test/echo: it reports Steps STATUS events and returns the
// text.
func Echo(ctx context.Context, req *sdk.Request[EchoParams]) (EchoResult, error) {
	for i := range req.Params.Steps {
		req.Report(sdk.Status{
			Progress: float64(i+1) / float64(req.Params.Steps),
			Message:  fmt.Sprintf("step %d", i+1),
			Phase:    "echo",
			ETA:      time.Duration(req.Params.Steps-i-1) * time.Second,
		})
	}
	return EchoResult{Text: req.Params.Text, Steps: req.Params.Steps}, nil
}

type failParams struct {
	Code    protocol.ErrorCode `json:"code"`
	Message string             `json:"message"`
	Details map[string]string  `json:"details"`
	Retry   int                `json:"retry_after_seconds"`
}

type logParams struct {
	Level   string `json:"level"`
	Message string `json:"message"`
}

type configResult struct {
	Greeting string  `json:"greeting"`
	MaxSteps int64   `json:"max_steps"`
	Ratio    float64 `json:"ratio"`
	RatioSet bool    `json:"ratio_set"`
	Verbose  bool    `json:"verbose"`
}

type partial struct {
	Found int `json:"found"`
}

func (partial) ResultStatus() protocol.ResponseStatus { return protocol.ResponsePartialSuccess }

// New returns the skill, ready to serve.
func New() *sdk.Skill {
	s := sdk.New(manifest)
	sdk.Handle(s, "test/echo", Echo)
	sdk.Handle(s, "test/fail", func(ctx context.Context, req *sdk.Request[failParams]) (struct{}, error) {
		p := req.Params
		if p.Code == "" {
			return struct{}{}, errors.New("secret internal detail")
		}
		err := &sdk.Error{Code: p.Code, Message: p.Message, RetryAfter: time.Duration(p.Retry) * time.Second}
		if p.Details != nil {
			err.Details = p.Details
		}
		return struct{}{}, fmt.Errorf("wrapped: %w", err)
	})
	sdk.Handle(s, "test/panic", func(ctx context.Context, req *sdk.Request[struct{}]) (struct{}, error) {
		panic("handler bug")
	})
	sdk.Handle(s, "test/block", func(ctx context.Context, req *sdk.Request[struct{}]) (struct{}, error) {
		req.Progress(0, "blocked")
		<-ctx.Done()
		return struct{}{}, ctx.Err()
	})
	sdk.Handle(s, "test/log", func(ctx context.Context, req *sdk.Request[logParams]) (struct{}, error) {
		sdk.Logger(ctx).Log(hclog.LevelFromString(req.Params.Level), req.Params.Message, "marker", "echo-log")
		return struct{}{}, nil
	})
	sdk.Handle(s, "test/config", func(ctx context.Context, req *sdk.Request[struct{}]) (configResult, error) {
		c := s.Config()
		return configResult{c.String("greeting"), c.Int("max_steps"), c.Float("ratio"), c.IsSet("ratio"), c.Bool("verbose")}, nil
	})
	sdk.Handle(s, "test/host-status", func(ctx context.Context, req *sdk.Request[struct{}]) (*sdk.HostStatus, error) {
		st, err := s.HostStatus(ctx)
		if errors.Is(err, sdk.ErrHostAPINotGranted) {
			return nil, sdk.Errorf(protocol.CodeForbidden, "%v", err)
		}
		return st, err
	})
	sdk.Handle(s, "test/partial", func(ctx context.Context, req *sdk.Request[struct{}]) (partial, error) {
		return partial{Found: 1}, nil
	})
	return s
}
